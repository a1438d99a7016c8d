//! The pieces behind the `ricloud-webhook` command-line tool, for tests,
//! benchmarks and other tools: realistic sample events, and a client that
//! delivers a signed event the way the ricloud API does, over HTTP or HTTPS.
//!
//! ```
//! use std::time::SystemTime;
//! use ricloud_webhook::{sign, Event, Secret, Verifier};
//! use ricloud_webhook_cli::{event_id, event_url, sample_event, unix_seconds};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://receiver.example.com/webhooks";
//! let secret = Secret::new("EZVNcphl95WzskoobnuXh_28qCZG_blz")?;
//!
//! // What the API's `webhook_config.test` task sends, and where.
//! let body = serde_json::to_vec(&sample_event("webhook_config.test", url, SystemTime::now())?)?;
//! let id = event_id(&body)?;
//! assert_eq!(event_url(url, &id)?.as_str(), format!("{url}/{id}"));
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
//! [`Sender::post_event`] does all of this and POSTs the event, as
//! `ricloud-webhook send-test` does. The binary (`src/main.rs`, with its
//! `args` and `commands` modules) is a thin command-line layer over these
//! functions.
//!
//! # Security
//!
//! HTTPS is rustls, checking the receiver's certificate against the
//! system's authorities and any private CA given to [`Sender::new`]
//! (`--ca-cert`), through the API crate's transport. The library installs
//! no crypto provider; the `ricloud-webhook` binary installs ring's. Redirects are not followed. The signature covers the body
//! and the timestamp, not the URL or other headers.
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
mod samples;

pub use crate::client::{
    event_id, event_url, unix_seconds, Response, SendError, Sender, DEFAULT_TIMEOUT,
    MAX_RESPONSE_BODY,
};
pub use crate::samples::{iso8601_utc, sample_event, SampleError, EVENT_SLUGS};
pub use ricloud_webhook_api::transport::HttpVersion;

/// `text` with its control characters (newlines, escapes, NULs, ...)
/// written as Rust escapes, for a terminal or a log line: text from an
/// event or a handler must not move the cursor, clear the screen or start
/// a line of its own.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_for_terminals_and_logs() {
        assert_eq!(printable("task.succeeded"), "task.succeeded");
        assert_eq!(printable("tâche"), "tâche");
        assert_eq!(printable("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(printable("\u{1b}[2Jx"), "\\u{1b}[2Jx");
        assert_eq!(printable("nul\0"), "nul\\u{0}");
    }
}
