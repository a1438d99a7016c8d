//! A typed client for the ricloud API's side of webhooks: webhook configs,
//! their tests, tasks, events (to catch up on those missed), and the
//! organisation's default config. On reqwest with rustls; lists are
//! [`Pages`] streams.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::TryStreamExt as _;
//! use ricloud_webhook_api::{Client, EventFilter};
//!
//! # async fn run() -> Result<(), ricloud_webhook_api::ApiError> {
//! let client = Client::builder(std::env::var("RICLOUD_TOKEN").unwrap_or_default()).build()?;
//!
//! // A config for a receiver, tested once the receiver answers.
//! let config = client.create_webhook_config("https://hooks.example.com/webhooks").await?;
//! let config = client.test_and_wait(config.id.as_str(), Duration::from_secs(60)).await?;
//! println!("{} is {}", config.id, config.state_str());
//!
//! // Every event the API gave up delivering, page by page.
//! let mut failed = client.events(EventFilter { state: Some("failed".into()), ..Default::default() });
//! while let Some(event) = failed.try_next().await? {
//!     println!("{} {}", event.id, event.slug());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`Client::register`] is the start-up path of a service that registers
//! its own URL: find or create its config, get the secret, and
//! [`Registration::validate`] it once the receiver answers.
//!
//! # What the client does for you
//!
//! - **Lists page themselves.** [`Pages`] asks for pages of up to 1,000
//!   (the API's maximum `limit`) with the `after_id` cursor until
//!   `has_more` is false.
//! - **Retries.** A 429, a 5xx, a connection that could not be made, or a
//!   timeout is retried (4 times by default) with exponential backoff and
//!   jitter, honouring `Retry-After`; a `Retry-After` longer than
//!   [`ClientBuilder::max_retry_wait`] ends the retries with the API's
//!   error. Creating a config is retried only when the API cannot have
//!   acted on the request (429, no connection), so it never makes two.
//! - **Errors.** [`ApiError::Api`] carries the status and the API's error
//!   `code`, `message` and `params`.
//! - **The token** travels in a header marked sensitive and appears in no
//!   log line, error or `Debug`; a config's secret is a [`ConfigSecret`],
//!   redacted and wiped like the core crate's [`Secret`](ricloud_webhook::Secret).
//! - **Resources are tolerant**: unknown fields are ignored and unknown
//!   states kept, as the event views do. Tasks are the core crate's
//!   [`Task`](ricloud_webhook::Task).
//!
//! # Feature flags
//!
//! | flag | default | what |
//! |---|---|---|
//! | (none) | | the crate has no optional features |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.94 (the workspace's; sqlx 0.9 in `ricloud-webhook-inbox` sets it).

mod client;
mod endpoints;
mod error;
mod pages;
mod register;
mod resources;
pub mod transport;

pub use crate::client::{
    Client, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_MAX_PAGES, DEFAULT_RETRIES, DEFAULT_TIMEOUT,
};
pub use crate::endpoints::{ConfigFilter, ConfigUpdate, EventFilter, MAX_PAGE, SINCE_PARAM};
pub use crate::error::ApiError;
pub use crate::pages::{Listed, Pages};
pub use crate::register::Registration;
pub use crate::resources::{ApiEvent, ConfigSecret, Organisation, WebhookConfigWithSecret};
