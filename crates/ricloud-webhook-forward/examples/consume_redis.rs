//! A Redis Streams consumer of forwarded events that verifies each one
//! again with the webhook secret before handling it:
//!
//! ```text
//! RICLOUD_WEBHOOK_SECRET=... REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run -p ricloud-webhook-forward --features redis --example consume_redis
//! ```
//!
//! The consumer group `workers` on the stream `ricloud:events`; an entry
//! that does not verify is acknowledged (so never handed out again) and
//! logged.

use std::collections::HashMap;
use std::ops::ControlFlow;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use ricloud_webhook::{Event, Secret, Verifier};
use ricloud_webhook_forward::{header, verify_forwarded};

type Error = Box<dyn std::error::Error + Send + Sync>;

const STREAM: &str = "ricloud:events";
const GROUP: &str = "workers";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let verifier = Verifier::new(Secret::new(std::env::var("RICLOUD_WEBHOOK_SECRET")?)?);
    consume(&url, &verifier, |event| {
        println!("{} {}", event.slug(), event.id);
        ControlFlow::Continue(())
    })
    .await
}

/// Hands each verified event to `handle` and acknowledges it, until
/// `handle` breaks.
pub(crate) async fn consume(
    url: &str,
    verifier: &Verifier,
    mut handle: impl FnMut(&Event) -> ControlFlow<()>,
) -> Result<(), Error> {
    let mut redis = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    // The group, from the stream's start; it exists already after a restart.
    let created: redis::RedisResult<()> = redis.xgroup_create_mkstream(STREAM, GROUP, "0").await;
    if let Err(e) = created {
        if e.code() != Some("BUSYGROUP") {
            return Err(e.into());
        }
    }
    let options = StreamReadOptions::default()
        .group(GROUP, "worker-1")
        .count(100)
        .block(5_000);
    loop {
        let reply: StreamReadReply = redis.xread_options(&[STREAM], &[">"], &options).await?;
        for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
            let fields: HashMap<String, Vec<u8>> = entry
                .map
                .into_iter()
                .filter_map(|(name, value)| match value {
                    Value::BulkString(bytes) => Some((name, bytes)),
                    _ => None,
                })
                .collect();
            let text = |name: &str| fields.get(name).and_then(|v| std::str::from_utf8(v).ok());
            let body = fields.get(header::BODY).cloned().unwrap_or_default();
            let flow = match verify_forwarded(verifier, text, body) {
                Ok(verified) => handle(verified.event()),
                Err(e) => {
                    eprintln!("refused entry {} of {STREAM}: {e}", entry.id);
                    ControlFlow::Continue(())
                }
            };
            let _: i64 = redis.xack(STREAM, GROUP, &[&entry.id]).await?;
            if flow.is_break() {
                return Ok(());
            }
        }
    }
}
