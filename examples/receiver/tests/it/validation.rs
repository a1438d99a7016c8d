//! The API's validation test end to end over a real socket: what
//! `ricloud-webhook send-test` sends, against the example's receiver.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ricloud_webhook::{Receiver, Secret};
use ricloud_webhook_cli::{sample_event, Sender, EVENT_SLUGS};
use ricloud_webhook_examples::{dispatcher, verifier};
use ricloud_webhook_hyper::{serve, WebhookService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SECRET: &str = "s3cr3t with spaces & ünïcode";

struct Running {
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The example's receiver (same verifier and handlers) on 127.0.0.1:0.
async fn start() -> Running {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let report = Arc::new(move |line: String| sink.lock().expect("lock").push(line));
    let verifier = verifier(SECRET.to_owned(), Some("previous".to_owned())).expect("secrets");
    let service = WebhookService::new(Receiver::new(verifier, dispatcher(report, Duration::ZERO)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/webhooks", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, service, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        lines,
        stop,
        task,
    }
}

async fn send(base: &str, secret: &str, slug: &str) -> (u16, String) {
    let event = sample_event(slug, base, SystemTime::now()).expect("sample");
    let id = event["id"].as_str().expect("id").to_owned();
    let body = serde_json::to_vec(&event).expect("json");
    let secret = Secret::new(secret).expect("secret");
    ricloud_webhook_testkit::install_tls_provider();
    let sender = Sender::new(Duration::from_secs(10), None).expect("client");
    let response = sender
        .post_event(base, &secret, body)
        .await
        .expect("delivered");
    (response.status().as_u16(), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_is_valid_against_the_example_receiver() {
    let running = start().await;
    let (status, id) = send(&running.base, SECRET, "webhook_config.test").await;
    assert_eq!(status, 200);
    let lines = running.lines.lock().expect("lock").clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("handled webhook_config.test {id} ")),
        "{lines:?}"
    );

    // The previous secret is accepted during a rotation; a wrong one is not.
    assert_eq!(
        send(&running.base, "previous", "webhook_config.test")
            .await
            .0,
        200
    );
    assert_eq!(
        send(&running.base, "wrong", "webhook_config.test").await.0,
        401
    );

    let _ = running.stop.send(());
    running.task.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_slug_gets_its_typed_handler() {
    let running = start().await;
    for slug in EVENT_SLUGS {
        let (status, id) = send(&running.base, SECRET, slug).await;
        assert_eq!(status, 200, "{slug}");
        let lines = running.lines.lock().expect("lock").clone();
        let line = lines.last().expect("a line per event");
        assert!(line.starts_with(&format!("handled {slug} {id} ")), "{line}");
        assert!(!line.contains("no typed view"), "{line}");
    }
    assert_eq!(running.lines.lock().expect("lock").len(), EVENT_SLUGS.len());
    let _ = running.stop.send(());
    running.task.await.expect("join").expect("serve");
}
