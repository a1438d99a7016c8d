//! The sans-IO receiver pipeline: request parts in, an HTTP outcome out.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tracing::field::Empty;
use tracing::{Instrument, Level};

use crate::store::{Claim, DeliveryStore, MemoryStore};
use crate::{
    Dispatched, Dispatcher, Event, EventError, HeaderError, RawBody, VerifiedEvent, Verifier,
    VerifyError,
};

/// [`SIGNATURE_HEADER`](crate::SIGNATURE_HEADER) as a ready header name: a
/// lookup by `&str` parses and lower-cases the name on every request.
const SIGNATURE_HEADER_NAME: HeaderName = HeaderName::from_static("ricloud-signature");

/// One HTTP request as the receiver needs it.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request path, without the query; its last segment is the event id.
    pub path: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The whole body, byte for byte, whole or in chunks (anything that
    /// converts into [`RawBody`], `Bytes` and `Vec<u8>` among them, with
    /// `.into()`).
    pub body: RawBody,
}

/// Verifies, parses, deduplicates and dispatches deliveries.
///
/// See the crate documentation for the steps and the status table.
pub struct Receiver {
    verifier: Verifier,
    dispatcher: Dispatcher,
    store: Arc<dyn DeliveryStore>,
    shutting_down: AtomicBool,
    span_level: Level,
}

impl Receiver {
    /// A receiver with the default in-memory [`MemoryStore`].
    pub fn new(verifier: Verifier, dispatcher: Dispatcher) -> Self {
        Self {
            verifier,
            dispatcher,
            store: Arc::new(MemoryStore::new()),
            shutting_down: AtomicBool::new(false),
            span_level: Level::DEBUG,
        }
    }

    /// Sets the level of the `delivery` span that wraps each delivery and
    /// its handlers, with the event's `event_id` and `slug` (default
    /// `DEBUG`).
    ///
    /// The receiver's own log lines carry `event_id` and `slug` whatever this
    /// level. Raise it to `INFO` to have your handlers' log lines inside the
    /// span at the `INFO` level too; it costs a span per delivery in the
    /// subscriber (with `tracing_subscriber::fmt`, about a microsecond).
    #[must_use]
    pub fn with_span_level(mut self, level: Level) -> Self {
        self.span_level = level;
        self
    }

    /// Replaces the deduplication store.
    #[must_use]
    pub fn with_store(mut self, store: impl DeliveryStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// From now on, new deliveries are answered 503 so the API retries them
    /// later; deliveries already past this check run to the end.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether [`begin_shutdown`](Self::begin_shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Handles one delivery at the system clock's time.
    pub async fn receive(&self, delivery: Delivery<'_>) -> Outcome {
        self.receive_at(delivery, SystemTime::now()).await
    }

    /// Handles one delivery as if the time were `now`.
    ///
    /// Steps, each ending the delivery on failure: shutdown check, method
    /// and path, signature (then timestamp), event parsing, path id equals
    /// body id, deduplication, dispatch. Logs the outcome once, with the
    /// event id and slug, inside the `delivery` span (see
    /// [`with_span_level`](Self::with_span_level)).
    pub async fn receive_at(&self, delivery: Delivery<'_>, now: SystemTime) -> Outcome {
        let span = delivery_span(self.span_level);
        let outcome = self
            .pipeline(delivery, now, &span)
            .instrument(span.clone())
            .await;
        span.in_scope(|| outcome.log());
        outcome
    }

    async fn pipeline(
        &self,
        delivery: Delivery<'_>,
        now: SystemTime,
        span: &tracing::Span,
    ) -> Outcome {
        if self.is_shutting_down() {
            return Outcome::new(Reason::ShuttingDown);
        }
        if delivery.method != Method::POST {
            return Outcome::new(Reason::MethodNotAllowed);
        }
        let Some(path_id) = event_id_from_path(delivery.path) else {
            return Outcome::new(Reason::NotFound);
        };
        let mut values = delivery.headers.get_all(SIGNATURE_HEADER_NAME).iter();
        let header = values.next().map(HeaderValue::as_bytes);
        if values.next().is_some() {
            // Two signatures are never sent by the API; which one a proxy
            // keeps is not ours to guess.
            return Outcome::new(Reason::Verify(VerifyError::MalformedHeader(
                HeaderError::Repeated,
            )));
        }
        let verified = match self.verifier.verify_at(header, delivery.body, now) {
            Ok(verified) => verified,
            Err(e) => return Outcome::new(Reason::Verify(e)),
        };
        let event = match VerifiedEvent::parse(verified) {
            Ok(event) => event,
            Err(e) => return Outcome::new(Reason::NotAnEvent(e)),
        };
        let mut outcome = Outcome {
            reason: Reason::Duplicate,
            event: Some(Arc::clone(event.event())),
            matched_secret: Some(event.matched_secret()),
        };
        span.record("event_id", event.event().id.as_str());
        span.record("slug", tracing::field::display(Slug(event.event())));
        if event.event().id != path_id {
            outcome.reason = Reason::PathMismatch;
            return outcome;
        }
        outcome.reason = self.deduplicate_and_dispatch(&event, now).await;
        outcome
    }

    async fn deduplicate_and_dispatch(&self, event: &VerifiedEvent, now: SystemTime) -> Reason {
        let id = event.event().id.as_str();
        loop {
            match self.store.claim(id, now) {
                Claim::Claimed => break,
                Claim::AlreadyHandled => return Reason::Duplicate,
                // The other delivery's outcome decides: handled means this
                // one is a duplicate; released means this one should try.
                Claim::InFlight(wait) => {
                    if wait.await {
                        return Reason::Duplicate;
                    }
                }
            }
        }
        let guard = ClaimGuard {
            store: &*self.store,
            id,
            now,
            armed: true,
        };
        let dispatched = self.dispatcher.dispatch(event).await;
        guard.finish(dispatched.acknowledges());
        Reason::Dispatched(dispatched)
    }
}

/// The span around one delivery; each level needs its own call site.
fn delivery_span(level: Level) -> tracing::Span {
    macro_rules! span_at {
        ($level:expr) => {
            tracing::span!($level, "delivery", event_id = Empty, slug = Empty)
        };
    }
    match level {
        Level::ERROR => span_at!(Level::ERROR),
        Level::WARN => span_at!(Level::WARN),
        Level::INFO => span_at!(Level::INFO),
        Level::DEBUG => span_at!(Level::DEBUG),
        _ => span_at!(Level::TRACE),
    }
}

/// Releases a claim if the delivery is dropped before its handlers finish
/// (for example by a timeout), so a redelivery runs them.
struct ClaimGuard<'a> {
    store: &'a dyn DeliveryStore,
    id: &'a str,
    now: SystemTime,
    armed: bool,
}

impl ClaimGuard<'_> {
    fn finish(mut self, handled: bool) {
        self.armed = false;
        self.store.finish(self.id, handled, self.now);
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.store.finish(self.id, false, self.now);
        }
    }
}

/// The last non-empty path segment, tolerating one trailing slash.
fn event_id_from_path(path: &str) -> Option<&str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    // A plain loop: for a path this short, `rsplit_once`'s `memrchr` call
    // costs more than the search.
    let slash = path.bytes().rposition(|b| b == b'/')?;
    let id = path.get(slash + 1..)?;
    (!id.is_empty()).then_some(id)
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("verifier", &self.verifier)
            .field("dispatcher", &self.dispatcher)
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

/// What happened to a delivery, and the HTTP status to answer with.
///
/// Once the event is verified and parsed, the outcome holds it (shared, not
/// copied), so keeping an outcome keeps the event's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    reason: Reason,
    event: Option<Arc<Event>>,
    matched_secret: Option<usize>,
}

impl Outcome {
    /// An outcome decided before the event was known.
    pub fn new(reason: Reason) -> Self {
        Self {
            reason,
            event: None,
            matched_secret: None,
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// Why.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The verified event, once known.
    pub fn event(&self) -> Option<&Arc<Event>> {
        self.event.as_ref()
    }

    /// The verified event's id, once known.
    pub fn event_id(&self) -> Option<&str> {
        self.event.as_deref().map(|e| e.id.as_str())
    }

    /// The verified event's slug, once known.
    pub fn slug(&self) -> Option<String> {
        self.event.as_deref().map(Event::slug)
    }

    /// Which secret verified the delivery (0 = current), once known.
    pub fn matched_secret(&self) -> Option<usize> {
        self.matched_secret
    }

    /// A short text for the response body: `OK` on success, else the reason.
    /// Never holds a secret, a signature or the body.
    pub fn body(&self) -> String {
        if self.status().is_success() {
            "OK".to_owned()
        } else {
            self.reason.to_string()
        }
    }

    /// Logs the outcome once, with the event's id and slug when known (so
    /// the line identifies the event whether or not the span is enabled).
    fn log(&self) {
        let status = self.status().as_u16();
        let secret = self.matched_secret.unwrap_or(0);
        let event_id = self.event_id();
        let slug = self
            .event
            .as_deref()
            .map(|e| tracing::field::display(Slug(e)));
        match &self.reason {
            Reason::Dispatched(Dispatched::Panicked { message }) => {
                tracing::debug!(
                    event_id,
                    slug,
                    panic = message.as_str(),
                    "handler panic message"
                );
                tracing::error!(
                    status,
                    event_id,
                    slug,
                    "handler panicked; asking for redelivery"
                );
            }
            // A handler's message is its own text and may quote the event
            // (an error from parsing `data` does): debug level only, as
            // for panic messages.
            Reason::Dispatched(Dispatched::Retry { message }) => {
                tracing::debug!(event_id, slug, error = message.as_str(), "handler error");
                tracing::error!(status, event_id, slug, "handler asked for redelivery");
            }
            Reason::Dispatched(Dispatched::Acknowledged { message }) => {
                tracing::debug!(event_id, slug, error = message.as_str(), "handler error");
                tracing::error!(
                    status,
                    event_id,
                    slug,
                    "handler failed permanently; acknowledged"
                );
            }
            Reason::Dispatched(Dispatched::ViewMismatch { view }) => {
                tracing::error!(
                    status,
                    event_id,
                    slug,
                    view,
                    "event data does not fit the handler's view"
                );
            }
            Reason::Dispatched(Dispatched::NoHandler) => {
                tracing::info!(
                    status,
                    event_id,
                    slug,
                    "no handler for this event; acknowledged"
                );
            }
            reason if self.status().is_success() => {
                if secret > 0 {
                    tracing::info!(
                        status,
                        event_id,
                        slug,
                        secret,
                        "verified with a previous secret"
                    );
                }
                tracing::debug!(status, event_id, slug, %reason, "delivery done");
            }
            reason if self.status().is_server_error() => {
                tracing::warn!(status, event_id, slug, %reason, "delivery refused");
            }
            reason => tracing::warn!(status, event_id, slug, %reason, "delivery rejected"),
        }
    }
}

/// An event's slug for a log field, without building the string.
struct Slug<'a>(&'a Event);

impl fmt::Display for Slug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0.kind, self.0.action)
    }
}

/// Why a delivery ended as it did; decides the status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The handlers ran (or none matched); see the report. 200 unless a
    /// handler asked for redelivery, panicked, or could not get its view (500).
    Dispatched(Dispatched),
    /// The event was handled before: 200 without running handlers.
    Duplicate,
    /// Signature verification failed: 400 for a malformed header, else 401.
    Verify(VerifyError),
    /// The verified body is not an event: 400.
    NotAnEvent(EventError),
    /// The event id in the path differs from the signed body's `id`: 400.
    PathMismatch,
    /// The path has no event id: 404.
    NotFound,
    /// The method is not POST: 405.
    MethodNotAllowed,
    /// The receiver is shutting down: 503, the API retries later.
    ShuttingDown,
}

impl Reason {
    /// The HTTP status for this reason (the crate's status table).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Dispatched(d) if d.acknowledges() => StatusCode::OK,
            Self::Dispatched(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Duplicate => StatusCode::OK,
            Self::Verify(VerifyError::MalformedHeader(_)) => StatusCode::BAD_REQUEST,
            Self::Verify(_) => StatusCode::UNAUTHORIZED,
            Self::NotAnEvent(_) | Self::PathMismatch => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dispatched(Dispatched::Handled { handlers }) => {
                write!(f, "handled by {handlers} handler(s)")
            }
            Self::Dispatched(Dispatched::NoHandler) => f.write_str("no handler; acknowledged"),
            Self::Dispatched(Dispatched::Acknowledged { .. }) => {
                f.write_str("a handler failed permanently; acknowledged")
            }
            Self::Dispatched(Dispatched::Retry { .. }) => {
                f.write_str("a handler failed; please redeliver")
            }
            Self::Dispatched(Dispatched::ViewMismatch { view }) => write!(
                f,
                "event data does not fit the `{view}` view of a handler; please redeliver"
            ),
            Self::Dispatched(Dispatched::Panicked { .. }) => {
                f.write_str("a handler panicked; please redeliver")
            }
            Self::Duplicate => f.write_str("event already handled"),
            Self::Verify(e) => fmt::Display::fmt(e, f),
            Self::NotAnEvent(e) => fmt::Display::fmt(e, f),
            Self::PathMismatch => {
                f.write_str("event id in the path differs from the `id` in the signed body")
            }
            Self::NotFound => f.write_str("path has no event id"),
            Self::MethodNotAllowed => f.write_str("only POST is accepted"),
            Self::ShuttingDown => f.write_str("receiver is shutting down; please redeliver"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_name_is_the_signature_header() {
        let parsed = HeaderName::from_bytes(crate::SIGNATURE_HEADER.as_bytes()).expect("valid");
        assert_eq!(SIGNATURE_HEADER_NAME, parsed);
    }

    #[test]
    fn path_ids() {
        assert_eq!(event_id_from_path("/webhooks/abc"), Some("abc"));
        assert_eq!(event_id_from_path("/webhooks/abc/"), Some("abc"));
        assert_eq!(event_id_from_path("/webhooks/"), Some("webhooks"));
        assert_eq!(event_id_from_path("/"), None);
        assert_eq!(event_id_from_path(""), None);
        assert_eq!(event_id_from_path("//"), None);
    }
}
