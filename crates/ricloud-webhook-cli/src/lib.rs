//! The pieces behind the `ricloud-webhook` command-line tool, for tests,
//! benchmarks and other tools: realistic sample events, random UUIDs, ISO 8601
//! timestamps, and a small HTTP/1.1 client that delivers a signed event the
//! way the ricloud API does.
//!
//! ```
//! use std::time::SystemTime;
//! use ricloud_webhook::{sign, Event, Secret, Verifier};
//! use ricloud_webhook_cli::{event_id, event_url, sample_event, unix_seconds};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "http://127.0.0.1:8080/webhooks";
//! let secret = Secret::new("EZVNcphl95WzskoobnuXh_28qCZG_blz")?;
//!
//! // What the API's `webhook_config.test` task sends, and where.
//! let body = serde_json::to_vec(&sample_event("webhook_config.test", url, SystemTime::now())?)?;
//! let id = event_id(&body)?;
//! assert_eq!(event_url(url, &id)?.to_string(), format!("{url}/{id}"));
//! let header = sign(&secret, unix_seconds(SystemTime::now()), &body);
//!
//! // A receiver built on the core crate accepts it.
//! let verified = Verifier::new(secret).verify(Some(header.to_string().as_bytes()), body)?;
//! let event = Event::from_json(verified.into_body())?;
//! assert_eq!(event.slug(), "webhook_config.test");
//! # Ok(())
//! # }
//! ```
//!
//! [`post_event`] does all of this and POSTs the event, as
//! `ricloud-webhook send-test` does:
//!
//! ```no_run
//! # use std::time::SystemTime;
//! # use ricloud_webhook::Secret;
//! # use ricloud_webhook_cli::{post_event, sample_event, DEFAULT_TIMEOUT};
//! # async fn run(secret: Secret) -> Result<(), Box<dyn std::error::Error>> {
//! let url = "http://127.0.0.1:8080/webhooks";
//! let event = sample_event("webhook_config.test", url, SystemTime::now())?;
//! let response = post_event(url, &secret, serde_json::to_vec(&event)?, DEFAULT_TIMEOUT).await?;
//! println!("{}", if response.is_success() { "valid" } else { "invalid" });
//! # Ok(())
//! # }
//! ```
//!
//! The binary (`src/main.rs`, with its `args` and `commands` modules) is a
//! thin command-line layer over these functions.
//!
//! # Security
//!
//! The client speaks plain HTTP only: there is no TLS, so use it against a
//! receiver on localhost or through a TLS-terminating proxy. The signature
//! covers the body and the timestamp, not the URL or other headers.
//!
//! # Feature flags
//!
//! | flag | default | what |
//! |---|---|---|
//! | (none) | | the crate has no optional features |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85.

mod clock;
mod http;
mod samples;
mod uuid;

pub use crate::clock::{iso8601_utc, unix_seconds};
pub use crate::http::{
    event_id, event_url, post_event, post_signed, Response, SendError, DEFAULT_TIMEOUT,
    MAX_RESPONSE_BODY,
};
pub use crate::samples::{sample_event, SampleError, EVENT_SLUGS};
pub use crate::uuid::{uuid_v4, uuid_v4_from_bytes};
