//! HTTP/1.1 load generator for webhook receivers:
//! `loadgen --url http://127.0.0.1:PORT/webhooks --connections 64 --duration 10s`.
//!
//! Pre-signs distinct `task.succeeded` deliveries (one UUID event id each),
//! then keeps `--connections` keep-alive connections busy, one task per
//! connection, each sending its next request as soon as the previous answer
//! is read. After `--warmup`, every request's latency (send to last body
//! byte) is recorded for `--duration`. Prints one human line and one JSON
//! line on stdout.
//!
//! Throughput (`rps`) counts 2xx answers only: a refusal is not a delivery
//! taken. A run that gets any other status, except those `--allow-status`
//! names, prints its report and fails (exit status 1), so a benchmark can
//! never pass on answers it did not ask for. `--upload-bytes N` instead
//! sends one N-byte body with a wrong signature over and over, to load the
//! receiver's memory (pass `--allow-status 401`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{value_parser, Arg, ArgMatches, Command};
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ricloud_webhook::{Secret, SignatureHeader};
use ricloud_webhook_bench::{Deliveries, StatusCounts, Summary};
use tokio::net::TcpStream;

fn command() -> Command {
    Command::new("loadgen")
        .about("Sends signed ricloud webhook deliveries at a fixed concurrency and reports throughput and latency")
        .arg(
            Arg::new("url")
                .long("url")
                .required(true)
                .help("Webhook prefix URL, e.g. http://127.0.0.1:8080/webhooks"),
        )
        .arg(
            Arg::new("secret")
                .long("secret")
                .env("RICLOUD_WEBHOOK_SECRET")
                .default_value("bench-secret")
                .hide_env_values(true)
                .help("Secret to sign deliveries with"),
        )
        .arg(
            Arg::new("connections")
                .long("connections")
                .default_value("64")
                .value_parser(value_parser!(usize))
                .help("Concurrent keep-alive connections"),
        )
        .arg(
            Arg::new("duration")
                .long("duration")
                .default_value("10s")
                .help("Measured time (ms, s, m)"),
        )
        .arg(
            Arg::new("warmup")
                .long("warmup")
                .default_value("2s")
                .help("Time under load before measuring"),
        )
        .arg(
            Arg::new("deliveries")
                .long("deliveries")
                .value_parser(value_parser!(usize))
                .help("Distinct deliveries to pre-sign [default: (warmup + duration) x 150k/s]; reused beyond that, and the reuse is reported"),
        )
        .arg(
            Arg::new("upload-bytes")
                .long("upload-bytes")
                .value_parser(value_parser!(usize))
                .help("Memory test: send this many bytes per request with a wrong signature instead"),
        )
        .arg(
            Arg::new("allow-status")
                .long("allow-status")
                .value_delimiter(',')
                .value_parser(value_parser!(u16))
                .help("Non-2xx statuses this run expects (comma-separated); any other fails the run"),
        )
        .arg(
            Arg::new("threads")
                .long("threads")
                .value_parser(value_parser!(usize))
                .help("Runtime worker threads [default: CPUs this process may use]"),
        )
        .arg(
            Arg::new("label")
                .long("label")
                .default_value("run")
                .help("Name of the run in the output"),
        )
}

struct Options {
    addr: String,
    host: HeaderValue,
    prefix: String,
    secret: Secret,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    deliveries: Option<usize>,
    upload_bytes: Option<usize>,
    allowed: Vec<u16>,
    threads: usize,
    label: String,
}

impl Options {
    fn from(m: &ArgMatches) -> anyhow::Result<Self> {
        let text = |name: &str| m.get_one::<String>(name).cloned().unwrap_or_default();
        let url: Uri = text("url").parse().context("--url is not a URL")?;
        anyhow::ensure!(
            url.scheme_str() == Some("http"),
            "--url must be http://host:port/prefix"
        );
        let authority = url.authority().context("--url has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            addr: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str())?,
            prefix: url.path().trim_end_matches('/').to_owned(),
            secret: Secret::new(text("secret"))?,
            connections: m.get_one("connections").copied().unwrap_or(64).max(1),
            duration: duration(&text("duration"))?,
            warmup: duration(&text("warmup"))?,
            deliveries: m.get_one("deliveries").copied(),
            upload_bytes: m.get_one("upload-bytes").copied(),
            allowed: m
                .get_many::<u16>("allow-status")
                .map(|s| s.copied().collect())
                .unwrap_or_default(),
            threads: m.get_one("threads").copied().unwrap_or(cpus).max(1),
            label: text("label"),
        })
    }
}

/// What every connection task shares.
struct Shared {
    deliveries: Deliveries,
    next: AtomicUsize,
    addr: String,
    host: HeaderValue,
    measure_from: Instant,
    end: Instant,
}

/// What one connection task saw while measuring.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    statuses: StatusCounts,
    io_errors: u64,
    connects: u64,
    completed: u64,
    last_done: Option<Instant>,
}

fn main() -> anyhow::Result<()> {
    let options = Options::from(&command().get_matches())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let prepared = Instant::now();
    let deliveries = match options.upload_bytes {
        Some(len) => Deliveries::badly_signed_upload(len, now)?,
        None => {
            let secs = (options.warmup + options.duration).as_secs_f64();
            let n = options
                .deliveries
                .unwrap_or((secs * 150_000.0).ceil() as usize)
                .max(1);
            Deliveries::signed(&options.secret, now, n, cpus)?
        }
    }
    .with_prefix(&options.prefix)?;
    eprintln!(
        "loadgen: {} deliveries ready in {:.1} s; {} connections to {}{} for {:?} after {:?} warm-up",
        deliveries.len(),
        prepared.elapsed().as_secs_f64(),
        options.connections,
        options.addr,
        options.prefix,
        options.duration,
        options.warmup,
    );
    let runtime = if options.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(options, deliveries))
}

async fn run(options: Options, deliveries: Deliveries) -> anyhow::Result<()> {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        deliveries,
        next: AtomicUsize::new(0),
        addr: options.addr.clone(),
        host: options.host.clone(),
        measure_from: start + options.warmup,
        end: start + options.warmup + options.duration,
    });
    // Room for 200k requests/s spread over the connections, so recording
    // never reallocates in the common case.
    let per_connection =
        ((options.duration.as_secs_f64() * 200_000.0) as usize / options.connections).max(1024);
    let tasks: Vec<_> = (0..options.connections)
        .map(|_| tokio::spawn(connection(Arc::clone(&shared), per_connection)))
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = StatusCounts::default();
    let (mut io_errors, mut connects, mut completed) = (0, 0, 0);
    let mut last_done = shared.measure_from;
    for task in tasks {
        let tally = task.await.context("a connection task panicked")?;
        latencies.extend_from_slice(&tally.latencies_ns);
        statuses.merge(&tally.statuses);
        io_errors += tally.io_errors;
        connects += tally.connects;
        completed += tally.completed;
        last_done = last_done.max(tally.last_done.unwrap_or(last_done));
    }
    let seconds = last_done.duration_since(shared.measure_from).as_secs_f64();
    let summary = Summary::new(latencies, seconds);
    let sent = shared.next.load(Ordering::Relaxed);
    let reused = match options.upload_bytes {
        Some(_) => 0,
        None => sent.saturating_sub(shared.deliveries.len()),
    };
    let counts = Counts {
        io_errors,
        connects,
        completed,
        reused,
    };
    report(&options, &summary, &statuses, &counts);
    let unexpected = statuses.outside(&options.allowed);
    anyhow::ensure!(
        unexpected.is_empty(),
        "{}: answers this run did not ask for ({}): the result is not a throughput",
        options.label,
        unexpected.describe()
    );
    Ok(())
}

/// A duration as people type it (`10s`, `500ms`, `2m`), read by jiff.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let span: jiff::SignedDuration = text
        .parse()
        .with_context(|| format!("`{text}` is not a duration (10s, 500ms, 2m)"))?;
    Duration::try_from(span).with_context(|| format!("`{text}` is negative"))
}

async fn connection(shared: Arc<Shared>, capacity: usize) -> Tally {
    let mut tally = Tally {
        latencies_ns: Vec::with_capacity(capacity),
        ..Tally::default()
    };
    'connect: while Instant::now() < shared.end {
        let Ok(stream) = TcpStream::connect(&shared.addr).await else {
            tally.io_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
        else {
            tally.io_errors += 1;
            continue;
        };
        tally.connects += 1;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        loop {
            if Instant::now() >= shared.end {
                break 'connect;
            }
            if sender.ready().await.is_err() {
                tally.io_errors += 1;
                continue 'connect;
            }
            let delivery = shared
                .deliveries
                .get(shared.next.fetch_add(1, Ordering::Relaxed));
            let request = Request::builder()
                .method(Method::POST)
                .uri(delivery.path().clone())
                .header(HOST, shared.host.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header(SignatureHeader::NAME, delivery.signature().clone())
                .body(Full::new(delivery.body().clone()));
            let Ok(request) = request else {
                tally.io_errors += 1;
                continue;
            };
            let started = Instant::now();
            let mut closing = false;
            let status = match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // A server that closes after each answer (HTTP/1.0
                    // style) is not failing: reconnect, count the connect.
                    closing = response.version() == Version::HTTP_10
                        || response
                            .headers()
                            .get(CONNECTION)
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                    let mut body = response.into_body();
                    let mut broken = false;
                    while let Some(frame) = body.frame().await {
                        if frame.is_err() {
                            broken = true;
                            break;
                        }
                    }
                    (!broken).then_some(status)
                }
                Err(_) => None,
            };
            let done = Instant::now();
            let Some(status) = status else {
                tally.io_errors += 1;
                continue 'connect;
            };
            tally.completed += 1;
            if started >= shared.measure_from {
                tally
                    .latencies_ns
                    .push(u64::try_from((done - started).as_nanos()).unwrap_or(u64::MAX));
                tally.statuses.add(status);
                tally.last_done = Some(done);
            }
            if closing {
                continue 'connect;
            }
        }
    }
    tally
}

/// Totals of a run beyond the measured latencies.
struct Counts {
    /// Failed connects, sends and body reads.
    io_errors: u64,
    /// Connections opened.
    connects: u64,
    /// Answers read, warm-up included (for CPU per request).
    completed: u64,
    /// Requests that had to reuse an event id.
    reused: usize,
}

fn report(options: &Options, summary: &Summary, statuses: &StatusCounts, counts: &Counts) {
    let Counts {
        io_errors,
        connects,
        completed,
        reused,
    } = *counts;
    let ms = |ns: u64| ns as f64 / 1e6;
    // Only what was taken counts as throughput.
    let ok = statuses.total() - statuses.non_2xx();
    let ok_rate = if summary.seconds() > 0.0 {
        ok as f64 / summary.seconds()
    } else {
        0.0
    };
    println!(
        "{}: {} connections, {:.1} s: {:.0} req/s (2xx), p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {} requests ({}), {} non-2xx, {} io errors, {} connects, {} reused ids",
        options.label,
        options.connections,
        summary.seconds(),
        ok_rate,
        ms(summary.p50_ns()),
        ms(summary.p99_ns()),
        ms(summary.max_ns()),
        summary.count(),
        statuses.describe(),
        statuses.non_2xx(),
        io_errors,
        connects,
        reused,
    );
    let line = serde_json::json!({
        "label": options.label,
        "connections": options.connections,
        "threads": options.threads,
        "seconds": summary.seconds(),
        "warmup_seconds": options.warmup.as_secs_f64(),
        "upload_bytes": options.upload_bytes,
        "requests": summary.count(),
        "rps": ok_rate,
        "answers_per_s": summary.rate(),
        "p50_us": summary.p50_ns() as f64 / 1e3,
        "p99_us": summary.p99_ns() as f64 / 1e3,
        "max_us": summary.max_ns() as f64 / 1e3,
        "status": statuses.to_json(),
        "non_2xx": statuses.non_2xx(),
        "io_errors": io_errors,
        "connects": connects,
        "reused_ids": reused,
        "completed_incl_warmup": completed,
    });
    println!("{line}");
}
