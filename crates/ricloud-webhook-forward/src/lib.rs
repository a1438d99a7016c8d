//! Forwarding verified ricloud webhook events into a message broker the
//! service already runs: NATS JetStream (feature `nats`) or Redis Streams
//! (feature `redis`), acknowledged to the API only once the broker has
//! them.
//!
//! A [`Forwarder`] is two things:
//!
//! - **The receiver's queue** ([`Receiver::queued`](ricloud_webhook::Receiver::queued)):
//!   a delivery is answered 200 only after the broker acknowledged the
//!   message, and 503 with `Retry-After` when it did not (down, slow,
//!   refusing), so the API delivers it again. Nothing to run in-process.
//! - **A handler of an inbox's workers** (inbox first): the durable inbox
//!   acknowledges the delivery and its workers publish; a broker that is
//!   down for longer than the API retries becomes pending rows that drain
//!   when it is back, not failed deliveries.
//!
//! Either way the event id is the broker's deduplication id (JetStream's
//! `Nats-Msg-Id`; a seen-key set in the same Lua script as the `XADD` on
//! Redis), so a redelivery is stored once.
//!
//! **What a message carries** ([`Message`]): the body exactly as verified,
//! never re-serialised, and the headers of [`header`]: the event id, the
//! slug, the received time, the original `Ricloud-Signature` and its
//! timestamp, and the config's name when there are several. A consumer
//! holding the secret verifies `HMAC-SHA256(secret, "<timestamp>.<body>")`
//! exactly as a receiver does ([`verify_forwarded`]); the crate's examples
//! `consume_nats` and `consume_redis` are a consumer for each broker.
//!
//! ```no_run
//! # #[cfg(feature = "nats")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ricloud_webhook::{Receiver, Secret, Verifier};
//! use ricloud_webhook_forward::nats::{JetStream, StreamSpec};
//! use ricloud_webhook_forward::Forwarder;
//!
//! let jetstream = JetStream::connect("nats://127.0.0.1:4222")
//!     .await?
//!     .create_stream(StreamSpec::new("RICLOUD"));
//! let verifier = Verifier::new(Secret::new(std::env::var("RICLOUD_WEBHOOK_SECRET")?)?);
//! let receiver = Receiver::queued(verifier, Forwarder::new(jetstream));
//! # let _ = receiver; Ok(()) }
//! ```
//!
//! [`from_url`] builds one from a URL with the options as query
//! parameters (the example receiver's `RICLOUD_WEBHOOK_FORWARD`).

mod consume;
mod forwarder;
mod message;
pub mod telemetry;
mod url;

#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;

pub use consume::{verify_forwarded, ConsumeError};
pub use forwarder::{Broker, ForwardError, Forwarder, Published};
pub use message::{header, Message};
pub use url::{from_url, UrlError};
