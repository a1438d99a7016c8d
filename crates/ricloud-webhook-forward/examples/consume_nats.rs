//! A JetStream consumer of forwarded events that verifies each one again
//! with the webhook secret before handling it:
//!
//! ```text
//! RICLOUD_WEBHOOK_SECRET=... NATS_URL=nats://127.0.0.1:4222 \
//!     cargo run -p ricloud-webhook-forward --features nats --example consume_nats
//! ```
//!
//! A durable pull consumer `workers` on the stream `RICLOUD`; a message
//! that does not verify is terminated (never redelivered) and logged.

use std::ops::ControlFlow;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use ricloud_webhook::{Event, Secret, Verifier};
use ricloud_webhook_forward::verify_forwarded;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
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
    let jetstream = jetstream::new(async_nats::connect(url).await?);
    let stream = jetstream.get_stream("RICLOUD").await?;
    let consumer = stream
        .get_or_create_consumer(
            "workers",
            pull::Config {
                durable_name: Some("workers".into()),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let headers = message.headers.as_ref();
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        match verify_forwarded(verifier, header, message.payload.clone()) {
            Ok(verified) => {
                let flow = handle(verified.event());
                message.ack().await?;
                if flow.is_break() {
                    return Ok(());
                }
            }
            Err(e) => {
                eprintln!("refused a message on {}: {e}", message.subject);
                message.ack_with(AckKind::Term).await?;
            }
        }
    }
    Ok(())
}
