//! What a forwarded message carries: the verified bytes, unchanged, and
//! the delivery's facts as named headers (NATS headers, stream fields).

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ricloud_webhook::Event;

/// The header names a forwarded message carries, the same on every broker
/// (NATS message headers, Redis stream fields).
pub mod header {
    /// The event's id; also the broker's deduplication id.
    pub const EVENT_ID: &str = "Ricloud-Event-Id";
    /// The event's slug, `<type>.<action>`.
    pub const SLUG: &str = "Ricloud-Event-Slug";
    /// When the receiver received the event: Unix time in milliseconds.
    pub const RECEIVED_AT: &str = "Ricloud-Received-At";
    /// The `Ricloud-Signature` header value the event was verified with,
    /// as received, or the one a catch-up made with the secret for an event
    /// it fetched from the API; absent for one fetched without a secret.
    pub const SIGNATURE: &str = "Ricloud-Signature";
    /// The signature's timestamp (`t=`), in Unix seconds.
    pub const SIGNATURE_TIMESTAMP: &str = "Ricloud-Signature-Timestamp";
    /// The receiver's name for the webhook config that delivered the event,
    /// when it serves several.
    pub const CONFIG: &str = "Ricloud-Webhook-Config";
    /// The Redis stream field that holds the body (NATS: the payload).
    pub const BODY: &str = "body";
}

/// One event as it goes to a broker: the event, borrowed, and the
/// headers made for it.
///
/// The body is [`Event::raw`]: the bytes whose signature matched, never
/// re-serialised, so that a consumer holding the secret can verify
/// `HMAC-SHA256(secret, "<Ricloud-Signature-Timestamp>.<body>")` against
/// the forwarded `Ricloud-Signature` exactly as a receiver does.
#[derive(Clone, PartialEq, Eq)]
pub struct Message<'a> {
    event: &'a Event,
    headers: Vec<(&'static str, Cow<'a, str>)>,
}

impl<'a> Message<'a> {
    /// The message for `event`, received at `received_at` unless the event
    /// carries its own received time ([`Event::received_at`]).
    pub fn new(event: &'a Event, received_at: SystemTime) -> Self {
        let received_at = event.received_at().unwrap_or(received_at);
        let millis = received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut headers = vec![
            (header::EVENT_ID, Cow::Borrowed(event.id.as_str())),
            (header::SLUG, Cow::Owned(event.slug())),
            (header::RECEIVED_AT, Cow::Owned(millis.to_string())),
        ];
        if let Some(signature) = event.signature() {
            headers.push((header::SIGNATURE, Cow::Owned(signature.to_string())));
            headers.push((
                header::SIGNATURE_TIMESTAMP,
                Cow::Owned(signature.timestamp().to_string()),
            ));
        }
        if let Some(config) = event.config() {
            headers.push((header::CONFIG, Cow::Borrowed(config)));
        }
        Self { event, headers }
    }

    /// The event's id, the broker's deduplication id.
    pub fn event_id(&self) -> &'a str {
        &self.event.id
    }

    /// The event's type (`task`, `poll`, ...).
    pub fn kind(&self) -> &'a str {
        &self.event.kind
    }

    /// The event's action (`succeeded`, ...).
    pub fn action(&self) -> &'a str {
        &self.event.action
    }

    /// The verified body, byte for byte as received.
    pub fn body(&self) -> &'a Bytes {
        self.event.raw()
    }

    /// The headers, in a fixed order: id, slug, received time, then the
    /// signature and its timestamp and the config when present.
    pub fn headers(&self) -> &[(&'static str, Cow<'a, str>)] {
        &self.headers
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold personal data; the signature invites copying.
        f.debug_struct("Message")
            .field("event_id", &self.event.id)
            .field("kind", &self.event.kind)
            .field("action", &self.event.action)
            .field("body_len", &self.event.raw().len())
            .finish_non_exhaustive()
    }
}
