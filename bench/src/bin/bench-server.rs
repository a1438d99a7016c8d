//! Servers to benchmark: `bench-server --mode ours|bare --addr 127.0.0.1:0`.
//!
//! - `ours`: the real endpoint, `ricloud_webhook_hyper::serve` with default
//!   limits over a `Receiver` with one trivial `task.succeeded` handler, as
//!   an application would run it. `--handler task` (the default) gives the
//!   handler the typed `Task` view, parsed from `data` for it; `--handler
//!   event` gives it the `Arc<Event>`, so only the envelope is parsed: the
//!   receiver's own cost. `--handler borrowed` gives it the `Arc<Event>`
//!   and reads the fields a results fetcher needs with
//!   `Event::data_borrowed` (no string copies).
//! - `bare`: the transport limit, a bare hyper 1.x server (the same
//!   `hyper_util` auto builder and settings on the same multi-thread tokio
//!   runtime) that reads the whole body and answers 200 `OK` without
//!   verifying anything.
//! - `verify` and `parse`: the floor of any correct receiver, in layers.
//!   `bare` plus the core crate's `Verifier` on the body (401 when it
//!   refuses it); `parse` then also reads the event from the verified body
//!   (`VerifiedEvent::parse`: the envelope and the check that all of it is
//!   well-formed JSON; 400 when it is not). No routing, limits, store or
//!   dispatch: what ours adds beyond `parse` is the rest of the endpoint.
//!
//! - `ours --forward URL`: the real endpoint forwarding to NATS JetStream
//!   or Redis Streams (`RICLOUD_WEBHOOK_FORWARD`'s URL), each delivery
//!   answered once the broker acknowledged it.
//!
//! Prints its bound address on stdout, then serves until Ctrl-C or SIGTERM.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{value_parser, Arg, Command};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use ricloud_webhook::{
    Dispatcher, Event, MemoryStore, Receiver, Secret, Task, VerifiedEvent, Verifier,
};
use ricloud_webhook_hyper::{serve, shutdown_signal, Config, WebhookService};
use ricloud_webhook_inbox::Inbox;
use tokio::net::TcpListener;

/// `Ricloud-Signature`, as a ready header name (as the receiver looks it up).
const SIGNATURE: HeaderName = HeaderName::from_static("ricloud-signature");

fn command() -> Command {
    Command::new("bench-server")
        .about("The servers the load generator compares: ours (the real endpoint) and bare hyper")
        .arg(
            Arg::new("mode")
                .long("mode")
                .required(true)
                .value_parser(["ours", "bare", "verify", "parse"])
                .help("ours: ricloud_webhook_hyper::serve; bare: hyper reading the body and answering 200; verify, parse: bare plus the signature check, plus reading the event"),
        )
        .arg(
            Arg::new("addr")
                .long("addr")
                .default_value("127.0.0.1:0")
                .help("Address to listen on; port 0 picks a free one"),
        )
        .arg(
            Arg::new("secret")
                .long("secret")
                .env("RICLOUD_WEBHOOK_SECRET")
                .default_value("bench-secret")
                .hide_env_values(true)
                .help("Webhook secret (ours)"),
        )
        .arg(
            Arg::new("handler")
                .long("handler")
                .default_value("task")
                .value_parser(["task", "event", "borrowed"])
                .help("ours: the handler takes the typed Task view (task), the Arc<Event> (event), or reads a borrowed view of data (borrowed)"),
        )
        .arg(
            Arg::new("store-capacity")
                .long("store-capacity")
                .value_parser(value_parser!(usize))
                .help("ours: events the dedup store remembers [default: 100000: with its 250 ms replay window, never full below 400,000 deliveries/s]"),
        )
        .arg(
            Arg::new("inbox")
                .long("inbox")
                .value_name("URL")
                .help("ours: queued mode on a durable inbox at URL (sqlite://FILE or postgres://...), workers running the handler"),
        )
        .arg(
            Arg::new("forward")
                .long("forward")
                .value_name("URL")
                .help("ours: forward each event to a broker (nats://... or redis://..., ricloud_webhook_forward::from_url), answered once it acknowledged"),
        )
        .arg(
            Arg::new("threads")
                .long("threads")
                .value_parser(value_parser!(usize))
                .help("Runtime worker threads [default: CPUs this process may use]"),
        )
        .arg(
            Arg::new("log")
                .long("log")
                .default_value("info")
                .value_parser(["off", "error", "warn", "info", "debug"])
                .help("stderr log level, like the receiver example (info)"),
        )
}

fn main() -> anyhow::Result<()> {
    let m = command().get_matches();
    let text = |name: &str| m.get_one::<String>(name).cloned().unwrap_or_default();
    if let Ok(level) = text("log").parse::<tracing::Level>() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(level)
            .init();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = m.get_one::<usize>("threads") {
        runtime.worker_threads((*threads).max(1));
    }
    let runtime = runtime.enable_all().build()?;
    let mode = text("mode");
    let store_capacity = m.get_one::<usize>("store-capacity").copied();
    let inbox = m.get_one::<String>("inbox").cloned();
    let forward = m.get_one::<String>("forward").cloned();
    let handler = match text("handler").as_str() {
        "task" => Handler::Task,
        "borrowed" => Handler::Borrowed,
        _ => Handler::Event,
    };
    let secret = Secret::new(text("secret"))?;
    let addr = text("addr");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{local}")?;
        out.flush()?;
        drop(out);
        match mode.as_str() {
            "ours" => {
                // A store at its steady state: full, forgetting its oldest
                // event for each new one. It must never refuse (loadgen
                // fails a run with a 503 in it), so it holds more than the
                // fastest load delivers within its replay window: the
                // window is shortened from its default 15 minutes to
                // 250 ms, and 100,000 events then last up to 400,000
                // deliveries a second.
                let store = MemoryStore::with_bounds(
                    store_capacity.unwrap_or(100_000),
                    Duration::from_secs(24 * 3600),
                )
                .replay_window(Duration::from_millis(250));
                if let Some(url) = forward {
                    let forwarder = ricloud_webhook_forward::from_url(&url).await?;
                    let receiver = Receiver::queued(Verifier::new(secret), forwarder);
                    let service = WebhookService::with_config(receiver, Config::default());
                    return Ok(serve(listener, service, shutdown_signal()?).await?);
                }
                ours(listener, secret, handler, store, inbox).await
            }
            "verify" => bare(listener, Some((Verifier::new(secret), Layers::Verify))).await,
            "parse" => bare(listener, Some((Verifier::new(secret), Layers::Parse))).await,
            _ => bare(listener, None).await,
        }
    })
}

/// What the `task.succeeded` handler takes.
#[derive(Clone, Copy)]
enum Handler {
    /// The owned `Task` view.
    Task,
    /// The `Arc<Event>` alone.
    Event,
    /// The `Arc<Event>`, reading [`TaskResults`] from it.
    Borrowed,
}

/// What a handler fetching a task's results reads, borrowed from the event.
#[derive(serde::Deserialize)]
struct TaskResults<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    state: Option<&'a str>,
    #[serde(borrow)]
    results: ResultUrls<'a>,
}

#[derive(serde::Deserialize)]
struct ResultUrls<'a> {
    #[serde(borrow)]
    data: Vec<ResultUrl<'a>>,
}

#[derive(serde::Deserialize)]
struct ResultUrl<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    identifier: Option<&'a str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
}

async fn ours(
    listener: TcpListener,
    secret: Secret,
    handler: Handler,
    store: MemoryStore,
    inbox: Option<String>,
) -> anyhow::Result<()> {
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    let dispatcher = match handler {
        Handler::Task => Dispatcher::new().on("task.succeeded", move |task: Task| {
            let counter = Arc::clone(&counter);
            async move {
                std::hint::black_box(&task.id);
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }),
        Handler::Event => Dispatcher::new().on("task.succeeded", move |event: Arc<Event>| {
            let counter = Arc::clone(&counter);
            async move {
                std::hint::black_box(&event.id);
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }),
        Handler::Borrowed => Dispatcher::new().on("task.succeeded", move |event: Arc<Event>| {
            let counter = Arc::clone(&counter);
            async move {
                let task: TaskResults<'_> = event.data_borrowed()?;
                std::hint::black_box((&task.id, task.state));
                for result in &task.results.data {
                    std::hint::black_box((&result.id, result.identifier, &result.url));
                }
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }),
    };
    let (receiver, workers) = match inbox {
        None => (
            Receiver::inline(Verifier::new(secret), dispatcher, store),
            None,
        ),
        Some(url) => {
            let inbox = Inbox::connect(&url).await?;
            let workers = inbox.workers(dispatcher).spawn();
            (
                Receiver::queued(Verifier::new(secret), inbox),
                Some(workers),
            )
        }
    };
    let service = WebhookService::with_config(receiver, Config::default());
    serve(listener, service, shutdown_signal()?).await?;
    // What the workers ran while the load was on (queued mode).
    let at_stop = handled.load(Ordering::Relaxed);
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    eprintln!(
        "bench-server: handled {at_stop} events while serving, {} in all",
        handled.load(Ordering::Relaxed)
    );
    println!("{{\"handled_at_stop\": {at_stop}}}");
    Ok(())
}

/// What `bare` does on top of reading the body.
#[derive(Clone, Copy, PartialEq)]
enum Layers {
    /// Verify the signature.
    Verify,
    /// Verify, then read the event.
    Parse,
}

/// The status for a body: 200, or what the layers refuse it with.
fn check(layers: Option<&(Verifier, Layers)>, headers: &HeaderMap, body: Bytes) -> StatusCode {
    let Some((verifier, layers)) = layers else {
        return StatusCode::OK;
    };
    let signature = headers.get(SIGNATURE).map(HeaderValue::as_bytes);
    let Ok(verified) = verifier.verify(signature, body) else {
        return StatusCode::UNAUTHORIZED;
    };
    if *layers == Layers::Parse && VerifiedEvent::parse(verified).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    StatusCode::OK
}

async fn bare(listener: TcpListener, layers: Option<(Verifier, Layers)>) -> anyhow::Result<()> {
    let layers = Arc::new(layers);
    // hyper as it is usually set up to protect itself: keep-alive, the
    // tokio timer and a header read timeout, as `ricloud_webhook_hyper::serve`
    // sets it up.
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder.http2().timer(TokioTimer::new());
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let layers = Arc::clone(&layers);
        async move {
            let (parts, body) = request.into_parts();
            let status = match body.collect().await {
                Ok(body) => check(layers.as_ref().as_ref(), &parts.headers, body.to_bytes()),
                Err(_) => StatusCode::BAD_REQUEST,
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"OK")));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    });
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

