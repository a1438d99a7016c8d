//! The whole status matrix over a real socket, plus connection-level limits
//! and graceful shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ricloud_webhook_hyper::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{
    delivery, event_body, new_id, post, raw, read_reply, signature, unix_now, Server, SECRET,
};

fn json_signed(sig: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".to_owned()),
        ("Ricloud-Signature", sig.to_owned()),
    ]
}

fn headers<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_matrix() {
    let server = Server::start(Config::default().body_limit(64 * 1024)).await;
    let addr = server.addr;
    let now = unix_now();

    // Valid event: 200, and its redelivery: 200 with handlers run once.
    let id = new_id();
    assert_eq!(
        raw(addr, &delivery(&id, "task.succeeded")).await.status,
        200
    );
    assert_eq!(
        raw(addr, &delivery(&id, "task.succeeded")).await.status,
        200
    );
    assert_eq!(server.probe.handled.load(Ordering::SeqCst), 1);

    // Unknown slug: 200.
    assert_eq!(
        raw(addr, &delivery(&new_id(), "invoice.paid")).await.status,
        200
    );

    let id = new_id();
    let body = event_body(&id, "task.succeeded");
    let path = format!("/webhooks/{id}");
    let good = signature(&body, now, SECRET);

    // Tampered body, wrong secret, expired and future timestamps, missing header: 401.
    let mut tampered = body.clone();
    tampered[12] ^= 1;
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("tampered body", tampered, Some(good.clone())),
        (
            "wrong secret",
            body.clone(),
            Some(signature(&body, now, "not-the-secret")),
        ),
        (
            "expired",
            body.clone(),
            Some(signature(&body, now - 601, SECRET)),
        ),
        (
            "future",
            body.clone(),
            Some(signature(&body, now + 301, SECRET)),
        ),
        ("missing header", body.clone(), None),
    ];
    for (name, sent, sig) in cases {
        let mut list = vec![("Content-Type", "application/json".to_owned())];
        if let Some(sig) = sig {
            list.push(("Ricloud-Signature", sig));
        }
        let reply = raw(addr, &post(&path, &headers(&list), &sent)).await;
        assert_eq!(reply.status, 401, "{name}: {reply:?}");
    }

    // Malformed header: 400.
    let list = json_signed("t=abc,s=xyz");
    assert_eq!(
        raw(addr, &post(&path, &headers(&list), &body)).await.status,
        400
    );

    // Correctly signed body that is not JSON: 400.
    let junk = b"not json at all".to_vec();
    let list = json_signed(&signature(&junk, now, SECRET));
    let reply = raw(addr, &post(&path, &headers(&list), &junk)).await;
    assert_eq!(reply.status, 400, "{reply:?}");

    // Path id different from body id: 400.
    let list = json_signed(&good);
    let other = format!("/webhooks/{}", new_id());
    let reply = raw(addr, &post(&other, &headers(&list), &body)).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("differs"), "{reply:?}");

    // GET on the webhook path: 405 with Allow.
    let get = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let reply = raw(addr, get.as_bytes()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));

    // Wrong path: 404. Health check: 200.
    let reply = raw(addr, &post("/elsewhere/x", &headers(&list), &body)).await;
    assert_eq!(reply.status, 404);
    let health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(addr, health).await.status, 200);

    // Wrong content type: 415.
    let list = vec![
        ("Content-Type", "text/plain".to_owned()),
        ("Ricloud-Signature", good.clone()),
    ];
    assert_eq!(
        raw(addr, &post(&path, &headers(&list), &body)).await.status,
        415
    );

    // Oversized with Content-Length: 413 without sending the body.
    let big = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nRicloud-Signature: {good}\r\nContent-Length: {}\r\n\r\n",
        10 * 1024 * 1024
    );
    assert_eq!(raw(addr, big.as_bytes()).await.status, 413);

    // Oversized and chunked, without Content-Length: 413 once past the limit.
    let reply = chunked_upload(addr, &path, &good, 200 * 1024).await;
    assert_eq!(reply.status, 413);

    // Handler failure: 500. Handler panic: 500, and the server keeps serving.
    assert_eq!(
        raw(addr, &delivery(&new_id(), "task.failed")).await.status,
        500
    );
    assert_eq!(
        raw(addr, &delivery(&new_id(), "poll.completed"))
            .await
            .status,
        500
    );
    assert_eq!(
        raw(addr, &delivery(&new_id(), "task.succeeded"))
            .await
            .status,
        200
    );
    assert_eq!(server.probe.handled.load(Ordering::SeqCst), 2);

    server.shutdown().await.expect("join").expect("serve");
}

/// Streams `total` bytes of JSON-ish body in 8 KiB chunks without a
/// `Content-Length`, stopping early if the server answers.
async fn chunked_upload(
    addr: std::net::SocketAddr,
    path: &str,
    sig: &str,
    total: usize,
) -> crate::Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nRicloud-Signature: {sig}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 8 * 1024];
    let mut sent = 0;
    while sent < total {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break; // the server answered and closed: expected
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    crate::parse_reply(&buf)
}

/// A signed event of about 900 KiB, in many frames with `Content-Length` and
/// as 8 KiB chunks without it, is accepted whole: the verifier hashes the
/// whole body and the handler sees all of `data`. The same body with
/// one byte changed in its middle is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_signed_bodies_in_many_frames_are_accepted_whole() {
    let server = Server::start(Config::default()).await;
    let addr = server.addr;
    let padding = "x".repeat(900 * 1024);
    let event = |id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": id, "resource": "event", "type": "task", "action": "succeeded",
            "data": {"id": "f3e452f2-3cbb-4daa-a4c1-84fa48a7c825", "resource": "task", "padding": padding},
            "state": "pending", "retries": 0, "date_created": "2026-11-27T10:43:00.123Z",
            "date_delivered": null
        }))
        .expect("json")
    };
    let data_len = |body: &[u8]| {
        let value: serde_json::Value = serde_json::from_slice(body).expect("json");
        value["data"].to_string().len()
    };

    let id = new_id();
    let body = event(&id);
    let path = format!("/webhooks/{id}");
    let list = json_signed(&signature(&body, unix_now(), SECRET));
    let reply = raw(addr, &post(&path, &headers(&list), &body)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(server.probe.handled.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.probe.data_len.load(Ordering::SeqCst),
        data_len(&body)
    );

    let id = new_id();
    let body = event(&id);
    let path = format!("/webhooks/{id}");
    let reply = chunked_body(addr, &path, &signature(&body, unix_now(), SECRET), &body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(server.probe.handled.load(Ordering::SeqCst), 2);

    let id = new_id();
    let mut body = event(&id);
    let path = format!("/webhooks/{id}");
    let sig = signature(&body, unix_now(), SECRET);
    let middle = body.len() / 2;
    body[middle] = b'y';
    let reply = chunked_body(addr, &path, &sig, &body).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(server.probe.handled.load(Ordering::SeqCst), 2);

    server.shutdown().await.expect("join").expect("serve");
}

/// Sends `body` in 8 KiB chunks with `Transfer-Encoding: chunked`.
async fn chunked_body(
    addr: std::net::SocketAddr,
    path: &str,
    sig: &str,
    body: &[u8],
) -> crate::Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nRicloud-Signature: {sig}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for chunk in body.chunks(8 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        stream.write_all(&frame).await.expect("chunk");
    }
    stream.write_all(b"0\r\n\r\n").await.expect("end");
    crate::read_reply(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(Config::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    for _ in 0..3 {
        delivered_kept_alive(&mut stream).await;
    }
    assert_eq!(server.probe.handled.load(Ordering::SeqCst), 3);
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_an_idle_kept_alive_connection_at_once() {
    // Defaults: a 30 s grace period and a 10 s header timeout, so only the
    // shutdown itself can close the connection within 3 s.
    let server = Server::start(Config::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    delivered_kept_alive(&mut stream).await;
    let stopped = tokio::time::timeout(Duration::from_secs(3), server.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "serve waited for an idle kept-alive connection"
    );
    assert!(closed_within(&mut stream, Duration::from_secs(1)).await);
}

/// Sends a new `task.succeeded` delivery on `stream` without
/// `Connection: close` and checks it is answered 200.
async fn delivered_kept_alive(stream: &mut TcpStream) {
    let request = String::from_utf8(delivery(&new_id(), "task.succeeded"))
        .expect("utf-8")
        .replace("Connection: close\r\n", "");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_is_served() {
    let server = Server::start(Config::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // The HTTP/2 connection preface and an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut frame))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(frame[3], 0x04, "server answers with a SETTINGS frame");
    // A raw client never acknowledges GOAWAY: close it so shutdown is quick.
    drop(stream);
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_is_closed_after_the_header_timeout() {
    let server =
        Server::start(Config::default().header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"POST /webhooks/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial head");
    // The server must close the connection; the 10 s bound only keeps a
    // broken server from hanging the test.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open after 10 s");
    // A well-behaved client is still served.
    let reply = raw(server.addr, &delivery(&new_id(), "task.succeeded")).await;
    assert_eq!(reply.status, 200);
    server.shutdown().await.expect("join").expect("serve");
}

// Tokio's paused clock: the server's timers and the test's windows are
// one logical time, which jumps ahead whenever both sides wait.
#[tokio::test(start_paused = true)]
async fn slow_loris_after_a_first_request_is_closed_after_the_header_timeout() {
    // The idle timeout is long: only the header timeout can close it.
    let config = Config::default()
        .header_read_timeout(Duration::from_millis(300))
        .idle_timeout(Duration::from_secs(60));
    let server = Server::start(config).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    delivered_kept_alive(&mut stream).await;
    let mut buf = vec![0u8; 1024];
    // The next request's head, a byte every 50 ms: the connection must be
    // closed before the head is done (it would take 4 s).
    let head = b"POST /webhooks/x HTTP/1.1\r\nHost: x\r\nX-Padding: 0123456789012345678901234567890123456789\r\n";
    let mut closed = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!("unexpected reply: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    assert!(closed, "a trickled head was read to its end");
    server.shutdown().await.expect("join").expect("serve");
}

// Tokio's paused clock: the server's timers and the test's windows are
// one logical time, which jumps ahead whenever both sides wait.
#[tokio::test(start_paused = true)]
async fn http2_connection_after_a_request_waits_for_the_idle_timeout() {
    // HTTP/2 has no request heads to wait for between requests: only the
    // idle timeout applies once a request was made.
    let config = Config::default()
        .header_read_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(1_500));
    let server = Server::start(config).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // HEADERS (END_STREAM | END_HEADERS) on stream 1: GET http /healthz,
    // HPACK indexed :method GET and :scheme http, :path and :authority as
    // literals with indexed names.
    let block: &[u8] = b"\x82\x86\x04\x08/healthz\x01\x01x";
    let mut headers = vec![0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1];
    headers.extend_from_slice(block);
    stream
        .write_all(&[PREFACE, EMPTY_SETTINGS, &headers].concat())
        .await
        .expect("request");
    let answered = read_h2_until_headers(&mut stream, 1).await;
    assert!(answered, "no response HEADERS on stream 1");
    assert!(
        !closed_within(&mut stream, Duration::from_millis(800)).await,
        "HTTP/2 connection closed by the header timeout after a request"
    );
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "HTTP/2 connection still open 5 s after a 1.5 s idle timeout"
    );
    server.shutdown().await.expect("join").expect("serve");
}

/// Reads HTTP/2 frames (acknowledging the server's SETTINGS) until a
/// HEADERS frame on `stream_id`; false if the connection ends first.
async fn read_h2_until_headers(stream: &mut TcpStream, stream_id: u32) -> bool {
    loop {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head)).await;
        if !matches!(read, Ok(Ok(_))) {
            return false;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return false;
        }
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match (head[3], head[4] & 0x01) {
            (0x04, 0) => {
                let ack = [0, 0, 0, 0x04, 0x01, 0, 0, 0, 0];
                if stream.write_all(&ack).await.is_err() {
                    return false;
                }
            }
            (0x01, _) if id == stream_id => return true,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_delivery_finish() {
    let server = Server::start(Config::default()).await;
    let addr = server.addr;
    let probe = std::sync::Arc::clone(&server.probe);
    let in_flight =
        tokio::spawn(async move { raw(addr, &delivery(&new_id(), "session.expired")).await });
    probe.started.notified().await;

    let stopped = server.shutdown();
    // New connections are no longer accepted once the listener is dropped.
    let refused = async {
        loop {
            match TcpStream::connect(addr).await {
                Err(_) => break,
                Ok(mut s) => {
                    // Accepted by the kernel backlog before the drop: the
                    // server must not answer it with a delivery outcome.
                    let _ = s.write_all(&delivery(&new_id(), "task.succeeded")).await;
                    let mut buf = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
                    if buf.is_empty() || buf.starts_with(b"HTTP/1.1 503") {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("listener closed");
    assert!(
        !stopped.is_finished(),
        "serve returned before the in-flight delivery"
    );

    probe.gate.notify_one();
    let reply = in_flight.await.expect("join");
    assert_eq!(reply.status, 200, "{reply:?}");
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("serve returns after the delivery")
        .expect("join")
        .expect("serve");
    assert_eq!(probe.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_does_not_take_the_server_down() {
    let server = Server::start(Config::default()).await;
    for _ in 0..3 {
        assert_eq!(
            raw(server.addr, &delivery(&new_id(), "poll.completed"))
                .await
                .status,
            500
        );
    }
    assert_eq!(
        raw(server.addr, &delivery(&new_id(), "task.succeeded"))
            .await
            .status,
        200
    );
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_reply_helper_sees_the_healthz_body() {
    let server = Server::start(Config::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let reply = read_reply(&mut stream).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    server.shutdown().await.expect("join").expect("serve");
}

/// Whether the server closes `stream` within `within` (reading whatever it
/// sends first).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut buf))
        .await
        .is_ok()
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_a_request_are_closed() {
    // Before the protocol is known: silence, half an HTTP/2 preface, or an
    // HTTP/2 connection that never opens a stream must all be closed.
    let config = Config::default()
        .header_read_timeout(Duration::from_millis(300))
        .idle_timeout(Duration::from_secs(60));
    let server = Server::start(config).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut partial = TcpStream::connect(server.addr).await.expect("connect");
    partial
        .write_all(&PREFACE[..16])
        .await
        .expect("half a preface");
    let mut quiet_h2 = TcpStream::connect(server.addr).await.expect("connect");
    quiet_h2
        .write_all(&[PREFACE, EMPTY_SETTINGS].concat())
        .await
        .expect("preface");
    for (name, stream) in [
        ("silent", &mut silent),
        ("half a preface", &mut partial),
        ("HTTP/2 without a request", &mut quiet_h2),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "{name}: still open 5 s after a 300 ms header timeout"
        );
    }
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_idle_after_a_request_are_closed() {
    // The header timeout (10 s by default) would close an idle HTTP/1
    // connection too, later; the idle timeout closes it first.
    let config = Config::default().idle_timeout(Duration::from_millis(300));
    let server = Server::start(config).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    delivered_kept_alive(&mut stream).await;
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "idle connection still open 5 s after a 300 ms idle timeout"
    );
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_lock_out_deliveries() {
    let config = Config::default()
        .max_connections(2)
        .header_read_timeout(Duration::from_millis(300));
    let server = Server::start(config).await;
    let _silent: Vec<TcpStream> = vec![
        TcpStream::connect(server.addr).await.expect("connect"),
        TcpStream::connect(server.addr).await.expect("connect"),
    ];
    // Both permits are held by silent connections until they are closed;
    // then the delivery waiting in the backlog is served.
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        raw(server.addr, &delivery(&new_id(), "task.succeeded")),
    )
    .await
    .expect("served once the silent connections were closed");
    assert_eq!(reply.status, 200);
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_frees_its_slot() {
    let config = Config::default()
        .max_deliveries(1)
        .body_read_timeout(Duration::from_millis(300));
    let server = Server::start(config).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(
        b"POST /webhooks/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":",
    )
    .await
    .expect("head and a little body");
    let reply = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut slow))
        .await
        .expect("answered in time");
    assert_eq!(reply.status, 408, "{reply:?}");
    // The only delivery slot is free again.
    let reply = raw(server.addr, &delivery(&new_id(), "task.succeeded")).await;
    assert_eq!(reply.status, 200);
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_still_open_after_the_grace_period_are_closed() {
    let config = Config::default().shutdown_grace(Duration::from_millis(300));
    let server = Server::start(config).await;
    let probe = std::sync::Arc::clone(&server.probe);
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // A delivery whose handler never finishes (the gate is never opened).
    stream
        .write_all(&delivery(&new_id(), "session.expired"))
        .await
        .expect("write");
    probe.started.notified().await;
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("serve returns after the grace period")
        .expect("join")
        .expect("serve");
    // Its connection is closed with serve's end, with no answer: the
    // delivery was cancelled, so the API will redeliver it.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection left open after serve returned");
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
}

/// Opens a connection that declares a `declared`-byte body, sends `sent`
/// bytes of it and then holds it open, sending nothing more.
async fn stalled_upload(addr: std::net::SocketAddr, declared: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /webhooks/{} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nRicloud-Signature: t=1,s=x\r\nContent-Length: {declared}\r\n\r\n",
        new_id()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // The server may stop reading once the budget is spent: the rest stays
    // in the socket buffers, so a write that cannot finish is left pending.
    let body = vec![b' '; sent];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.write_all(&body)).await;
    stream
}

/// Strangers holding large uploads spend the budget's large pool; a signed
/// event (a small body) still gets through from the share kept for small
/// bodies, a large signed upload meanwhile waits for room and then gets
/// 503, and once the strangers' uploads time out there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_holding_large_uploads_do_not_block_the_api() {
    let config = Config::default()
        .body_limit(512 * 1024)
        .body_budget(1024 * 1024)
        .small_body_share(256 * 1024)
        .budget_wait(Duration::from_millis(300))
        .body_read_timeout(Duration::from_secs(3));
    let server = Server::start(config).await;
    let mut strangers = Vec::new();
    for _ in 0..8 {
        strangers.push(stalled_upload(server.addr, 500 * 1024, 400 * 1024).await);
    }
    for _ in 0..3 {
        let reply = raw(server.addr, &delivery(&new_id(), "task.succeeded")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // A large body cannot find room while the strangers hold the large pool.
    let id = new_id();
    let body = [event_body(&id, "task.succeeded"), vec![b' '; 300 * 1024]].concat();
    let list = json_signed(&signature(&body, unix_now(), SECRET));
    let request = post(&format!("/webhooks/{id}"), &headers(&list), &body);
    let reply = raw(server.addr, &request).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.header("retry-after").is_some(), "{reply:?}");
    // The stalled uploads end with 408 and give their bytes back.
    for stranger in &mut strangers {
        let reply = tokio::time::timeout(Duration::from_secs(10), read_reply(stranger))
            .await
            .expect("the stalled upload is ended");
        assert!(matches!(reply.status, 408 | 503), "{reply:?}");
    }
    let reply = raw(server.addr, &request).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    server.shutdown().await.expect("join").expect("serve");
}

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    // Eight connections in all, at most three from one address; a silent
    // connection would be held for a minute.
    let config = Config::default()
        .max_connections(8)
        .max_connections_per_ip(3)
        .header_read_timeout(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(60));
    let server = Server::start(config).await;
    // 127.0.0.2 opens twenty and keeps them.
    let mut hoard = Vec::new();
    for _ in 0..20 {
        hoard.push(connect_from("127.0.0.2", server.addr).await);
    }
    // Signed deliveries from 127.0.0.1 meanwhile: every one answered 200.
    for _ in 0..10 {
        let mut stream = connect_from("127.0.0.1", server.addr).await;
        stream
            .write_all(&delivery(&new_id(), "task.succeeded"))
            .await
            .expect("write");
        let reply = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut stream))
            .await
            .expect("answered while another address hoards connections");
        assert_eq!(reply.status, 200);
    }
    // Of the hoard, three are still open; the rest were told 503 with
    // Retry-After at once and closed.
    let mut open = 0;
    for stream in &mut hoard {
        let mut answer = Vec::new();
        match tokio::time::timeout(Duration::from_millis(200), stream.read_to_end(&mut answer))
            .await
        {
            Err(_) => open += 1,
            Ok(_) => {
                let answer = String::from_utf8_lossy(&answer);
                assert!(
                    answer.starts_with("HTTP/1.1 503") && answer.contains("Retry-After: 5"),
                    "{answer}"
                );
            }
        }
    }
    assert_eq!(open, 3);
    drop(hoard);
    server.shutdown().await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_cap_from_one_address_are_refused_before_their_body_is_read() {
    let config = Config::default()
        .max_requests_per_ip(2)
        .body_read_timeout(Duration::from_secs(60));
    requests_past_a_cap_are_refused(config, "127.0.0.2", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_cap_over_every_address_are_refused_before_their_body_is_read() {
    let config = Config::default()
        .max_requests(2)
        .body_read_timeout(Duration::from_secs(60));
    // The third comes from another address: the cap is over all of them.
    requests_past_a_cap_are_refused(config, "127.0.0.3", false).await;
}

/// Two uploads from 127.0.0.2 that never finish fill the cap; a signed
/// delivery from `third_from` is answered 503; one from 127.0.0.1 gets 200
/// when `others_served` (the cap was 127.0.0.2's alone).
async fn requests_past_a_cap_are_refused(config: Config, third_from: &str, others_served: bool) {
    let server = Server::start(config).await;
    // Two uploads from 127.0.0.2 that never finish (a well-formed
    // signature header, so the body is waited for) hold its two requests.
    let header = signature(b"{}", unix_now(), SECRET);
    let head = format!(
        "POST /webhooks/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nRicloud-Signature: {header}\r\nContent-Length: 100\r\n\r\n{{"
    );
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from("127.0.0.2", server.addr).await;
        stream.write_all(head.as_bytes()).await.expect("write");
        slow.push(stream);
    }
    // The third is refused with 503 and Retry-After, its body unread.
    let mut third = connect_from(third_from, server.addr).await;
    let mut tries = 0;
    let reply = loop {
        tries += 1;
        assert!(tries < 100, "the uploads never counted as in progress");
        third
            .write_all(&delivery(&new_id(), "task.succeeded"))
            .await
            .expect("write");
        let reply = read_reply(&mut third).await;
        // The two uploads may not have been read yet: until they are, the
        // third goes through.
        if reply.status != 200 {
            break reply;
        }
        third = connect_from(third_from, server.addr).await;
    };
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        reply.head.to_ascii_lowercase().contains("retry-after"),
        "{reply:?}"
    );
    // Another address is not held back by one address's cap.
    if others_served {
        let mut other = connect_from("127.0.0.1", server.addr).await;
        other
            .write_all(&delivery(&new_id(), "task.succeeded"))
            .await
            .expect("write");
        assert_eq!(read_reply(&mut other).await.status, 200);
    }
    drop(slow);
    server.shutdown().await.expect("join").expect("serve");
}
