//! Strangers cannot shut the API out: the example receiver, run as a real
//! process on its defaults, while 300 connections without the secret each
//! send most of a 1 MiB body and hold it, stays under a stated memory bound
//! and answers correctly signed deliveries sent meanwhile with 200.

use std::time::{Duration, SystemTime};

use ricloud_webhook::Secret;
use ricloud_webhook_cli::{sample_event, Sender};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{Process, TempDir, SECRET};

/// Connections without the secret.
const STRANGERS: usize = 300;
/// What each declares: the default body limit, 1 MiB.
const DECLARED: usize = 1024 * 1024;
/// What each sends of it before holding the connection open.
const SENT: usize = 1_000_000;
/// The bound on the receiver's peak resident memory: its byte budget for
/// unverified bodies (64 MiB), 64 KiB of connection buffer each, and the
/// process itself, with room for the allocator.
const MEMORY_BOUND_KIB: u64 = 128 * 1024;

/// Peak resident set size of process `pid` so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A stranger from the loopback address `from`: declares a 1 MiB body,
/// sends most of it, then holds the connection open until the test ends
/// (or the receiver gives up on it).
async fn stranger(addr: String, from: std::net::Ipv4Addr) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind((from, 0).into()).ok()?;
    let mut stream = socket.connect(addr.parse().ok()?).await.ok()?;
    let head = format!(
        "POST /webhooks/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nRicloud-Signature: t=1,s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nContent-Length: {DECLARED}\r\n\r\n",
        uuid::Uuid::new_v4()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let body = vec![b' '; SENT];
    // Once the receiver stops reading (its budget spent), the rest of the
    // body sits in the socket buffers and this write waits: that is the
    // point. Give up waiting after a while and hold what was sent.
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.write_all(&body)).await;
    Some(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_holding_large_bodies_neither_exhaust_memory_nor_block_the_api() {
    // The receiver on its defaults: a SQLite inbox in its working directory.
    let dir = TempDir::new("strangers");
    let receiver = Process::start(dir.path(), &[]);
    let base = receiver.base();
    let idle_rss = peak_rss_kib(receiver.pid());

    // From five addresses other than the API's (127.0.0.1), each under
    // the receiver's cap of 64 connections per address.
    let strangers: Vec<_> = (0..STRANGERS)
        .map(|n| {
            let from = std::net::Ipv4Addr::new(127, 0, 0, 10 + (n % 5) as u8);
            tokio::spawn(stranger(receiver.addr.clone(), from))
        })
        .collect();
    let mut held = Vec::new();
    for stranger in strangers {
        held.extend(stranger.await.expect("stranger task"));
    }
    assert!(
        held.len() >= STRANGERS * 9 / 10,
        "only {} of {STRANGERS} strangers connected",
        held.len()
    );

    // The API's deliveries, sent while the strangers hold their uploads:
    // every one is answered 200 within a few seconds.
    ricloud_webhook_testkit::install_tls_provider();
    let sender = Sender::new(Duration::from_secs(5), None).expect("client");
    let secret = Secret::new(SECRET).expect("secret");
    for slug in ["webhook_config.test", "task.succeeded", "poll.completed"] {
        for _ in 0..5 {
            let event = sample_event(slug, &base, SystemTime::now()).expect("sample");
            let body = serde_json::to_vec(&event).expect("json");
            let response = sender
                .post_event(&base, &secret, body)
                .await
                .unwrap_or_else(|e| panic!("{slug}: no answer within 5 s: {e}"));
            assert_eq!(response.status().as_u16(), 200, "{slug}: {response:?}");
        }
    }

    let peak = peak_rss_kib(receiver.pid());
    eprintln!(
        "receiver peak RSS: {} MiB at rest, {} MiB with {} strangers holding ~1 MB each",
        idle_rss / 1024,
        peak / 1024,
        held.len()
    );
    assert!(
        peak < MEMORY_BOUND_KIB,
        "peak RSS {peak} KiB, over the {MEMORY_BOUND_KIB} KiB bound"
    );
    drop(held);
}
