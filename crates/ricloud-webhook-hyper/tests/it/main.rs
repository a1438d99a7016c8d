//! Integration tests of the hyper adapter: the service called directly, over
//! a real `127.0.0.1:0` socket, and mounted in axum.

mod axum_mount;
mod direct;
mod socket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ricloud_webhook::{sign, Dispatcher, Event, HandlerError, Receiver, Secret, Verifier};
use ricloud_webhook_hyper::{serve, Config, WebhookService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

pub(crate) const SECRET: &str = "EZVNcphl95WzskoobnuXh_28qCZG_blz";

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A fresh event id per call, so tests do not collide in the dedup store.
pub(crate) fn new_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!(
        "00000000-0000-4000-8000-{:012}",
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

pub(crate) fn event_body(id: &str, slug: &str) -> Vec<u8> {
    let (kind, action) = slug.split_once('.').expect("slug");
    serde_json::to_vec(&serde_json::json!({
        "id": id, "resource": "event", "type": kind, "action": action,
        "data": {"id": "f3e452f2-3cbb-4daa-a4c1-84fa48a7c825", "resource": kind},
        "state": "pending", "retries": 0, "date_created": "2026-11-27T10:43:00.123Z",
        "date_delivered": null
    }))
    .expect("json")
}

pub(crate) fn signature(body: &[u8], t: u64, secret: &str) -> String {
    sign(&Secret::new(secret).expect("secret"), t, body).to_string()
}

/// Counters and gates shared with the test handlers.
#[derive(Default)]
pub(crate) struct Probe {
    /// `task.succeeded` handler calls.
    pub(crate) handled: AtomicUsize,
    /// The length of the last `task.succeeded` event's `data`, as JSON text.
    pub(crate) data_len: AtomicUsize,
    /// `session.expired` handlers that started.
    pub(crate) started: Notify,
    /// Released to let `session.expired` handlers finish.
    pub(crate) gate: Notify,
}

/// A receiver whose handlers: count `task.succeeded`; fail `task.failed`;
/// panic on `poll.completed`; block on `session.expired` until the gate opens.
pub(crate) fn receiver(probe: &Arc<Probe>) -> Receiver {
    let (p1, p2) = (Arc::clone(probe), Arc::clone(probe));
    let dispatcher = Dispatcher::new()
        .on("task.succeeded", move |event: Arc<Event>| {
            p1.data_len.store(event.data_json().len(), Ordering::SeqCst);
            p1.handled.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .on("task.failed", |_: Arc<Event>| async {
            Err(HandlerError::retry("downstream unavailable"))
        })
        .on("poll.completed", |_: Arc<Event>| async {
            panic!("handler bug");
        })
        .on("session.expired", move |_: Arc<Event>| {
            let p = Arc::clone(&p2);
            async move {
                p.started.notify_one();
                p.gate.notified().await;
                Ok(())
            }
        });
    Receiver::new(
        Verifier::new(Secret::new(SECRET).expect("secret")),
        dispatcher,
    )
}

/// A running `serve` on 127.0.0.1:0.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) probe: Arc<Probe>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(crate) async fn start(config: Config) -> Self {
        let probe = Arc::new(Probe::default());
        let service = WebhookService::with_config(receiver(&probe), config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, service, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            probe,
            stop: Some(stop),
            task,
        }
    }

    /// Starts the graceful shutdown; returns the handle to await its end.
    pub(crate) fn shutdown(mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends raw bytes on a new connection and reads the response to EOF
/// (requests carry `Connection: close`), within 10 s.
pub(crate) async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_reply(&mut stream).await
}

pub(crate) async fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("response within 10 s")
        .expect("read");
    parse_reply(&buf)
}

pub(crate) fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").expect("complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A `POST` request with `Content-Length`, the given headers and body.
pub(crate) fn post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A signed delivery of `slug` as the API sends it.
pub(crate) fn delivery(id: &str, slug: &str) -> Vec<u8> {
    let body = event_body(id, slug);
    let sig = signature(&body, unix_now(), SECRET);
    post(
        &format!("/webhooks/{id}"),
        &[
            ("Content-Type", "application/json"),
            ("Ricloud-Signature", &sig),
        ],
        &body,
    )
}
