//! The `http` check: raw bytes, as a client would write them on a
//! connection, served by the adapter's `WebhookService` through hyper's
//! HTTP/1 connection over an in-memory `tokio::io::duplex` pipe.
//!
//! Shared by `fuzz/fuzz_targets/http.rs` and, later, a corpus replay test of
//! the adapter crate.
//!
//! The receiver accepts any timestamp (`TimeWindow::unchecked`): the
//! adapter reads the system clock, and the seeds, signed once with the
//! reference vectors' secret, must keep reaching the handlers. Each input
//! gets a fresh service, so no state carries over between inputs.
//!
//! Asserted: no panic; the connection ends by itself once the client has
//! written everything and shut its side (time is paused, so a stuck
//! connection is seen at once instead of after a real timeout); the
//! response bytes are bounded; the first status is one the adapter
//! documents or hyper sends on a malformed request.

use std::future::Future;
use std::panic;
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use ricloud_webhook::{
    Dispatcher, Event, HandlerError, HandlerResult, Poll, Receiver, Secret, Task, TimeWindow,
    Verifier,
};
use ricloud_webhook_hyper::WebhookService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The secret of the reference vectors' first body (see `make_corpus.py`).
const SECRET: &str = "s3cr3t with spaces & ünïcode";
/// More than any answer to a fuzz input can honestly need.
const MAX_RESPONSE: usize = 1 << 20;
/// Virtual time a connection may take once the client is done.
const MAX_TIME: Duration = Duration::from_secs(300);
/// What the adapter documents, and what hyper itself answers to a request it
/// cannot parse (100 comes before a final status after `Expect: 100-continue`).
const STATUSES: [&[u8]; 14] = [
    b"100", b"200", b"400", b"401", b"404", b"405", b"413", b"414", b"415", b"431", b"500", b"501",
    b"503", b"505",
];

/// The payload of the handler that panics on purpose.
struct IntendedPanic;

fn quiet_intended_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // libfuzzer-sys's hook aborts on every panic, even a caught one.
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<IntendedPanic>().is_none() {
                previous(info);
            }
        }));
    });
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    })
}

fn service() -> WebhookService {
    let secret = Secret::new(SECRET).expect("non-empty");
    let verifier = Verifier::new(secret).window(TimeWindow::unchecked());
    let dispatcher = Dispatcher::new()
        .on("*", |_: Arc<Event>| async { Ok(()) })
        .on("task.failed", |_: Task| async {
            Err(HandlerError::retry("fuzz: retry"))
        })
        .on("poll.*", |_: Poll| panics());
    WebhookService::new(Receiver::new(verifier, dispatcher))
}

async fn panics() -> HandlerResult {
    panic::panic_any(IntendedPanic)
}

/// Serves one connection whose client writes `data`, then shuts down.
pub(crate) fn check(data: &[u8]) {
    quiet_intended_panics();
    let response = runtime().block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service());
        let (mut reader, mut writer) = tokio::io::split(client);
        let write = async move {
            // The server may close first (after a 400, say): then writing fails.
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let read = async move {
            let mut response = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => response.extend_from_slice(&buf[..n]),
                }
                assert!(response.len() <= MAX_RESPONSE, "response is unbounded");
            }
            response
        };
        let all = async {
            // A connection error (a malformed request) is a normal ending.
            let (_, (), response) = tokio::join!(connection, write, read);
            response
        };
        within(MAX_TIME, all).await
    });
    let Some(response) = response else {
        panic!("the connection did not end after the client shut its side");
    };
    if response.is_empty() {
        return;
    }
    let status = response
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| response.strip_prefix(b"HTTP/1.0 "))
        .and_then(|rest| rest.get(..3));
    let Some(status) = status else {
        panic!("the response does not start with a status line");
    };
    assert!(
        STATUSES.contains(&status),
        "unexpected status {}",
        String::from_utf8_lossy(status)
    );
}

async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, future).await.ok()
}
