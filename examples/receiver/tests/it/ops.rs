//! Operating the receiver: its metrics after a known mix of deliveries,
//! readiness while its database goes away and comes back, JSON logs, and
//! logs without colour when redirected.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use ricloud_webhook::{sign, Secret};
use ricloud_webhook_cli::{event_url, unix_seconds};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pg::Pg;
use crate::{event_body, eventually, id, Api, Process, TempDir, SECRET};

/// A GET over a connection of its own: the status and the body.
pub(crate) async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8(answer).expect("text");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// The samples of `/metrics`, parsed as the Prometheus text format:
/// `name{label="value",...}` to value, labels sorted.
async fn scrape(admin: &str) -> HashMap<String, f64> {
    let (status, text) = get(admin, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let (prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value)) = sample.value
            else {
                return None;
            };
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            Some((format!("{}{{{}}}", sample.metric, labels.join(",")), value))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_each_kind_of_delivery_on_the_admin_listener_only() {
    let dir = TempDir::new("metrics");
    let receiver = Process::start(dir.path(), &[]);
    let admin = receiver.admin.clone().expect("an admin listener");
    let api = Api::new();
    let base = receiver.base();
    let sender = ricloud_webhook_cli::Sender::new(Duration::from_secs(5), None).expect("sender");

    // Two new events, one of them delivered twice.
    for n in [1, 2] {
        assert_eq!(api.deliver(&base, &event_body(&id(n))).await, Some(200));
    }
    assert_eq!(api.deliver(&base, &event_body(&id(1))).await, Some(200));
    // Forged: another secret.
    let wrong = Secret::new("not-the-secret").expect("secret");
    let forged = sender
        .post_event(&base, &wrong, event_body(&id(3)))
        .await
        .expect("an answer");
    assert_eq!(forged.status().as_u16(), 401);
    // Stale: the right secret, an hour ago.
    let body = event_body(&id(4));
    let secret = Secret::new(SECRET).expect("secret");
    let hour_ago = unix_seconds(SystemTime::now()) - 3600;
    let url = event_url(&base, &id(4)).expect("url");
    let stale = sender
        .post_signed(&url, &sign(&secret, hour_ago, &body), body.into())
        .await
        .expect("an answer");
    assert_eq!(stale.status().as_u16(), 401);
    // Too large: over the 1 MiB default.
    let url = event_url(&base, &id(5)).expect("url");
    let large = vec![b' '; (1 << 20) + 1024];
    let too_large = sender
        .post_signed(&url, &sign(&secret, hour_ago, &large), large.into())
        .await
        .expect("an answer");
    assert_eq!(too_large.status().as_u16(), 413);
    // Wrong path.
    let url = format!("http://{}/elsewhere/{}", receiver.addr, id(6))
        .parse()
        .expect("url");
    let body = event_body(&id(6));
    let wrong_path = sender
        .post_signed(&url, &sign(&secret, hour_ago + 3600, &body), body.into())
        .await
        .expect("an answer");
    assert_eq!(wrong_path.status().as_u16(), 404);
    for n in [1, 2] {
        receiver.until_handled(&id(n)).await;
    }

    let samples = scrape(&admin).await;
    let deliveries = |status: &str, reason: &str| {
        value(
            &samples,
            &format!("ricloud_webhook_deliveries_total{{reason=\"{reason}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(deliveries("200", "ok"), 2.0);
    assert_eq!(deliveries("200", "duplicate"), 1.0);
    assert_eq!(deliveries("401", "bad_signature"), 1.0);
    assert_eq!(deliveries("401", "stale"), 1.0);
    assert_eq!(deliveries("413", "too_large"), 1.0);
    assert_eq!(deliveries("404", "not_found"), 1.0);
    assert_eq!(
        value(
            &samples,
            "ricloud_webhook_secret_matched_total{secret=\"current\"}"
        ),
        3.0
    );
    // Every answer took its place in the histogram of answer times.
    assert_eq!(
        value(&samples, "ricloud_webhook_delivery_seconds_count{}"),
        7.0
    );
    // The queue's workers ran the handlers of the two new events.
    assert_eq!(
        value(
            &samples,
            "ricloud_webhook_handler_runs_total{outcome=\"ok\",slug=\"task.succeeded\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "ricloud_webhook_handler_seconds_count{slug=\"task.succeeded\"}"
        ),
        2.0
    );
    assert_eq!(
        value(&samples, "ricloud_webhook_inbox_events{state=\"done\"}"),
        2.0
    );
    assert_eq!(
        value(&samples, "ricloud_webhook_inbox_events{state=\"pending\"}"),
        0.0
    );
    assert_eq!(
        value(&samples, "ricloud_webhook_inbox_oldest_pending_seconds{}"),
        0.0
    );
    assert!(value(&samples, "ricloud_webhook_inbox_commit_seconds_count{}") >= 1.0);

    // The public listener has neither metrics nor readiness.
    assert_eq!(get(&receiver.addr, "/metrics").await.0, 404);
    assert_eq!(get(&receiver.addr, "/readyz").await.0, 404);
    assert_eq!(get(&receiver.addr, "/healthz").await.0, 200);
    assert_eq!(get(&admin, "/healthz").await.0, 200);
    assert_eq!(get(&admin, "/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test.sh installs it and runs these"]
async fn readiness_follows_the_database() {
    let pg = Pg::start();
    let url = pg.database("ready");
    let dir = TempDir::new("ready");
    let receiver = Process::start(dir.path(), &[("RICLOUD_WEBHOOK_DATABASE_URL", &url)]);
    let admin = receiver.admin.clone().expect("an admin listener");
    assert_eq!(get(&admin, "/readyz").await, (200, "ready\n".to_owned()));

    pg.stop();
    eventually("/readyz answers 503", Duration::from_secs(20), || async {
        let (status, body) = get(&admin, "/readyz").await;
        status == 503 && body.contains("inbox: ")
    })
    .await;
    // Alive all the same.
    assert_eq!(get(&admin, "/healthz").await.0, 200);

    pg.start_server();
    eventually(
        "/readyz answers 200 again",
        Duration::from_secs(30),
        || async { get(&admin, "/readyz").await.0 == 200 },
    )
    .await;
    let api = Api::new();
    assert_eq!(
        api.deliver(&receiver.base(), &event_body(&id(1))).await,
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_name_the_failing_event_and_why() {
    let dir = TempDir::new("json-logs");
    let receiver = Process::start(
        dir.path(),
        &[
            ("RICLOUD_WEBHOOK_LOG_FORMAT", "json"),
            ("RICLOUD_WEBHOOK_DATABASE_URL", "memory"),
        ],
    );
    // A task whose data does not fit the `Task` view: its handler cannot run.
    let mut event: serde_json::Value = serde_json::from_slice(&event_body(&id(1))).expect("json");
    event["data"] = serde_json::json!("line\nbreak");
    let body = serde_json::to_vec(&event).expect("json");
    assert_eq!(Api::new().deliver(&receiver.base(), &body).await, Some(200));

    let failing = id(1);
    eventually(
        "the failure's log line",
        Duration::from_secs(10),
        || async { receiver.logged(&["\"level\":\"ERROR\""]) },
    )
    .await;
    let lines = receiver.log.lock().expect("lock").clone();
    let mut errors = 0;
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        if object["level"] == "ERROR" {
            errors += 1;
            assert_eq!(object["event_id"], failing.as_str(), "{line}");
            assert_eq!(object["slug"], "task.succeeded", "{line}");
            let reason = object["reason"].as_str().expect("a reason");
            assert!(reason.contains("Task"), "{line}");
            assert!(!line.contains("line\\nbreak"), "the body leaked: {line}");
        }
    }
    assert_eq!(errors, 1, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirected_log_has_no_escape_codes() {
    let dir = TempDir::new("plain-logs");
    // EnvFilter syntax: DEBUG for the library's own lines only.
    let receiver = Process::start(dir.path(), &[("RUST_LOG", "info,ricloud_webhook=debug")]);
    assert_eq!(
        Api::new()
            .deliver(&receiver.base(), &event_body(&id(1)))
            .await,
        Some(200)
    );
    receiver.until_handled(&id(1)).await;
    eventually(
        "the library's DEBUG line",
        Duration::from_secs(10),
        || async { receiver.logged(&["DEBUG", "ricloud_webhook"]) },
    )
    .await;
    let lines = receiver.log.lock().expect("lock").clone();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("hyper")),
        "DEBUG lines of other crates: {lines:#?}"
    );
    for line in lines {
        assert!(!line.contains('\u{1b}'), "an escape code: {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_fails_while_shutting_down() {
    let dir = TempDir::new("ready-shutdown");
    // Inline, with handlers that take their time: a delivery is still in
    // flight when SIGTERM comes, so the process drains for a while.
    let receiver = Process::start(
        dir.path(),
        &[
            ("RICLOUD_WEBHOOK_DATABASE_URL", "memory"),
            ("RICLOUD_WEBHOOK_HANDLER_DELAY_MS", "3000"),
        ],
    );
    let admin = receiver.admin.clone().expect("an admin listener");
    assert_eq!(get(&admin, "/readyz").await.0, 200);
    let base = receiver.base();
    let in_flight =
        tokio::spawn(async move { Api::new().deliver(&base, &event_body(&id(1))).await });
    // Verified (so counted) before its handler runs, which then waits.
    eventually(
        "the delivery in flight",
        Duration::from_secs(10),
        || async {
            get(&admin, "/metrics")
                .await
                .1
                .contains("ricloud_webhook_secret_matched_total{secret=\"current\"} 1")
        },
    )
    .await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &receiver.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    eventually("/readyz answers 503", Duration::from_secs(5), || async {
        let (status, body) = get(&admin, "/readyz").await;
        status == 503 && body.contains("receiver: shutting down")
    })
    .await;
    assert_eq!(in_flight.await.expect("joined"), Some(200));
}
