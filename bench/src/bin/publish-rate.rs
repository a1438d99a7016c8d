//! A broker's own acknowledged publish rate, with its own Rust client, as
//! the ceiling for forwarding to it:
//! `publish-rate --url nats://127.0.0.1:4222 --connections 64 --duration 10s`.
//!
//! `--connections` tasks each publish a 1 KiB message and wait for its
//! acknowledgement before the next, as the receiver's connections do:
//! - NATS: a JetStream publish to `ricloud.task.succeeded` with a distinct
//!   `Nats-Msg-Id` and the forwarder's headers, into the stream `RICLOUD`
//!   (`ricloud.>`, file storage, a 24 hour duplicate window), waiting for
//!   the publish ack;
//! - Redis: an `XADD` of the forwarder's fields and body to
//!   `ricloud:publish-rate`, waiting for the reply.
//!
//! Prints one human line and one JSON line (`rps`, `p50_us`, `p99_us`) on
//! stdout, like `loadgen`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{value_parser, Arg, Command};
use ricloud_webhook_bench::Summary;

fn command() -> Command {
    Command::new("publish-rate")
        .about("Acknowledged publishes per second to NATS JetStream or Redis Streams, with the broker's own client")
        .arg(Arg::new("url").long("url").required(true).help("nats://HOST:PORT or redis://HOST:PORT"))
        .arg(Arg::new("label").long("label").default_value("publish"))
        .arg(
            Arg::new("connections")
                .long("connections")
                .default_value("64")
                .value_parser(value_parser!(usize)),
        )
        .arg(Arg::new("duration").long("duration").default_value("10s"))
        .arg(Arg::new("warmup").long("warmup").default_value("2s"))
}

fn seconds(text: &str) -> anyhow::Result<Duration> {
    let number = text.strip_suffix('s').unwrap_or(text);
    Ok(Duration::from_secs_f64(
        number.parse().with_context(|| format!("{text:?}: seconds"))?,
    ))
}

/// One client, cloned into each task.
#[derive(Clone)]
enum Client {
    Nats(async_nats::jetstream::Context),
    Redis(redis::aio::ConnectionManager),
}

impl Client {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("nats://") {
            let context = async_nats::jetstream::new(async_nats::connect(url).await?);
            context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: "RICLOUD".into(),
                    subjects: vec!["ricloud.>".into()],
                    duplicate_window: Duration::from_secs(24 * 3600),
                    storage: async_nats::jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await?;
            Ok(Self::Nats(context))
        } else {
            let client = redis::Client::open(url)?;
            Ok(Self::Redis(client.get_connection_manager().await?))
        }
    }

    async fn publish(&mut self, n: u64, body: &Bytes) -> anyhow::Result<()> {
        let id = format!("publish-rate-{n:016}");
        let fields = [
            ("Ricloud-Event-Id", id.as_str()),
            ("Ricloud-Event-Slug", "task.succeeded"),
            ("Ricloud-Received-At", "1764979200000"),
            (
                "Ricloud-Signature",
                "t=1764979200,s=67dXTYtIqCpNu0wFFlddu2iZYiszPaXpyOK81aQ0cr0=",
            ),
            ("Ricloud-Signature-Timestamp", "1764979200"),
        ];
        match self {
            Self::Nats(context) => {
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in fields {
                    headers.insert(name, value);
                }
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(body.clone())
                    .headers(headers)
                    .message_id(id.as_str());
                context
                    .send_publish("ricloud.task.succeeded", publish)
                    .await?
                    .await?;
            }
            Self::Redis(connection) => {
                let mut command = redis::cmd("XADD");
                command.arg("ricloud:publish-rate").arg("*");
                for (name, value) in fields {
                    command.arg(name).arg(value);
                }
                command.arg("body").arg(body.as_ref());
                let _: String = command.query_async(connection).await?;
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let m = command().get_matches();
    let url = m.get_one::<String>("url").cloned().unwrap_or_default();
    let label = m.get_one::<String>("label").cloned().unwrap_or_default();
    let connections = m.get_one::<usize>("connections").copied().unwrap_or(64);
    let duration = seconds(m.get_one::<String>("duration").map_or("10s", String::as_str))?;
    let warmup = seconds(m.get_one::<String>("warmup").map_or("2s", String::as_str))?;
    let client = Client::connect(&url).await?;
    // A 1 KiB body, as the deliveries' events are.
    let body = Bytes::from(vec![b'x'; 1024]);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (mut client, body, next) = (client.clone(), body.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                client.publish(n, &body).await?;
                if sent >= measure_from {
                    latencies.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let summary = Summary::new(latencies, duration.as_secs_f64());
    println!(
        "{label}: {connections} publishers, {:.1} s: {:.0} acknowledged publishes/s, p50 {:.3} ms, p99 {:.3} ms",
        summary.seconds(),
        summary.rate(),
        summary.p50_ns() as f64 / 1e6,
        summary.p99_ns() as f64 / 1e6,
    );
    let line = serde_json::json!({
        "label": label,
        "connections": connections,
        "seconds": summary.seconds(),
        "rps": summary.rate(),
        "p50_us": summary.p50_ns() as f64 / 1e3,
        "p99_us": summary.p99_ns() as f64 / 1e3,
    });
    println!("{line}");
    Ok(())
}
