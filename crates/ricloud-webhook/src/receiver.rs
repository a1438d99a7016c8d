//! The sans-IO receiver pipeline: request parts in, an HTTP outcome out.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tracing::{Instrument, Level};

use crate::outcome::Slug;
use crate::store::{Claim, DeliveryStore, Enqueued, EventQueue, MemoryStore, StoreError};
use crate::{
    telemetry, Dispatcher, Event, HeaderError, Outcome, Reason, VerifiedEvent, Verifiers,
    VerifyError,
};

/// [`SignatureHeader::NAME`](SignatureHeader::NAME) as a ready header name.
const SIGNATURE_HEADER_NAME: HeaderName = HeaderName::from_static("ricloud-signature");

/// One HTTP request as the receiver needs it.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request path, without the query; its last segment is the event
    /// id, and the one before it the config's name when the receiver serves
    /// several ([`Verifiers::named`]).
    pub path: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The whole body, byte for byte.
    pub body: Bytes,
}

/// Verifies, parses, deduplicates and dispatches deliveries.
///
/// Two modes:
///
/// - **Inline** ([`Receiver::new`], [`Receiver::inline`]): the handlers run before the answer,
///   and their outcome decides it (200 or 500); the [`DeliveryStore`]
///   records handled events, so a redelivery does not run them again.
/// - **Queued** ([`Receiver::queued`]): a verified event is committed to an
///   [`EventQueue`] and only then answered 200; the queue's own workers run
///   the handlers later, retrying failures. Nothing a handler does changes
///   the answer.
///
/// [`Receiver::receive`] runs the whole pipeline. An adapter that wants to
/// free what it holds for an unverified request before the rest runs (the
/// hyper adapter's byte budget) calls its two halves:
/// [`Receiver::verify_at`], which needs no I/O, then
/// [`Receiver::handle_at`]. See the crate documentation for the status table.
pub struct Receiver {
    verifiers: Verifiers,
    sink: Sink,
    shutting_down: AtomicBool,
    span_level: Level,
}

/// Where a verified event goes.
enum Sink {
    Inline {
        dispatcher: Dispatcher,
        store: Arc<dyn DeliveryStore>,
    },
    Queued(Arc<dyn EventQueue>),
}

impl Receiver {
    /// An inline receiver with the default in-memory [`MemoryStore`].
    pub fn new(verifiers: impl Into<Verifiers>, dispatcher: Dispatcher) -> Self {
        Self::inline(verifiers, dispatcher, MemoryStore::new())
    }

    /// An inline receiver that records handled events in `store` (a
    /// durable one, such as `ricloud-webhook-inbox`'s, keeps them across
    /// restarts and replicas).
    pub fn inline(
        verifiers: impl Into<Verifiers>,
        dispatcher: Dispatcher,
        store: impl DeliveryStore,
    ) -> Self {
        Self::with_sink(
            verifiers.into(),
            Sink::Inline {
                dispatcher,
                store: Arc::new(store),
            },
        )
    }

    /// A queued receiver: each verified event is committed to `queue`, and
    /// the delivery is answered 200 once it is (or was already) there.
    pub fn queued(verifiers: impl Into<Verifiers>, queue: impl EventQueue) -> Self {
        Self::with_sink(verifiers.into(), Sink::Queued(Arc::new(queue)))
    }

    fn with_sink(verifiers: Verifiers, sink: Sink) -> Self {
        Self {
            verifiers,
            sink,
            shutting_down: AtomicBool::new(false),
            span_level: Level::DEBUG,
        }
    }

    /// Sets the level of the `delivery` span that wraps each verified
    /// delivery and its handlers, with the event's `event_id` and `slug`
    /// (default `DEBUG`).
    ///
    /// The receiver's own log lines carry `event_id` and `slug` whatever this
    /// level. Raise it to `INFO` to have your handlers' log lines inside the
    /// span at the `INFO` level too.
    #[must_use]
    pub fn span_level(mut self, level: Level) -> Self {
        self.span_level = level;
        self
    }

    /// The webhook configs served, with their secrets.
    pub fn verifiers(&self) -> &Verifiers {
        &self.verifiers
    }

    /// The dispatcher of an inline receiver; `None` for a queued one, whose
    /// handlers belong to the queue's workers.
    pub fn dispatcher(&self) -> Option<&Dispatcher> {
        match &self.sink {
            Sink::Inline { dispatcher, .. } => Some(dispatcher),
            Sink::Queued(_) => None,
        }
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

    /// Handles one delivery as if the time were `now`:
    /// [`verify_at`](Self::verify_at), then [`handle_at`](Self::handle_at).
    pub async fn receive_at(&self, delivery: Delivery<'_>, now: SystemTime) -> Outcome {
        match self.verify_at(delivery, now) {
            Ok(event) => self.handle_at(event, now).await,
            Err(refused) => refused,
        }
    }

    /// The steps that need no I/O, each ending the delivery on failure:
    /// shutdown check, method and path, signature (then timestamp), event
    /// parsing, path id equal to the body's id. A refusal is logged (at
    /// `DEBUG` for what a stranger without the secret can cause) and
    /// returned as the outcome to answer with.
    ///
    /// # Errors
    /// The [`Outcome`] to answer with when the delivery is refused.
    pub fn verify_at(
        &self,
        delivery: Delivery<'_>,
        now: SystemTime,
    ) -> Result<VerifiedEvent, Outcome> {
        self.verify_inner(delivery, now).inspect_err(Outcome::log)
    }

    fn verify_inner(
        &self,
        delivery: Delivery<'_>,
        now: SystemTime,
    ) -> Result<VerifiedEvent, Outcome> {
        if self.is_shutting_down() {
            return Err(Outcome::new(Reason::ShuttingDown));
        }
        if delivery.method != Method::POST {
            return Err(Outcome::new(Reason::MethodNotAllowed));
        }
        let Some(path_id) = event_id_from_path(delivery.path) else {
            return Err(Outcome::new(Reason::NotFound));
        };
        let Some((config, verifier)) = self.verifiers.for_path(delivery.path) else {
            return Err(Outcome::new(Reason::UnknownConfig));
        };
        let refused = |reason| Outcome {
            reason,
            event: None,
            matched_secret: None,
            config: config.cloned(),
        };
        let mut values = delivery.headers.get_all(SIGNATURE_HEADER_NAME).iter();
        let header = values.next().map(HeaderValue::as_bytes);
        if values.next().is_some() {
            // Two signatures are never sent by the API; which one a proxy
            // keeps is not ours to guess.
            return Err(refused(Reason::Unverified(VerifyError::MalformedHeader(
                HeaderError::Repeated,
            ))));
        }
        let verified = verifier
            .verify_at(header, delivery.body, now)
            .map_err(|e| refused(Reason::Unverified(e)))?;
        telemetry::secret_matched(verified.matched_secret(), config);
        let event = VerifiedEvent::parse_for(verified, config.cloned())
            .map_err(|e| refused(Reason::NotAnEvent(e)))?;
        if event.event().id != path_id {
            return Err(Outcome::of(Reason::PathMismatch, &event));
        }
        Ok(event)
    }

    /// Inline: deduplicates and dispatches a verified event. Queued:
    /// commits it to the queue. Inside the `delivery` span; logs the
    /// outcome once.
    pub async fn handle_at(&self, event: VerifiedEvent, now: SystemTime) -> Outcome {
        let span = delivery_span(self.span_level, event.event());
        let reason = match &self.sink {
            Sink::Inline { dispatcher, store } => {
                self.deduplicate_and_dispatch(dispatcher, &**store, &event, now)
                    .instrument(span.clone())
                    .await
            }
            Sink::Queued(queue) => {
                self.enqueue(&**queue, &event, now)
                    .instrument(span.clone())
                    .await
            }
        };
        let outcome = Outcome::of(reason, &event);
        span.in_scope(|| outcome.log());
        outcome
    }

    async fn enqueue(
        &self,
        queue: &dyn EventQueue,
        event: &VerifiedEvent,
        now: SystemTime,
    ) -> Reason {
        if self.is_shutting_down() {
            return Reason::ShuttingDown;
        }
        match queue.enqueue(event, now).await {
            Ok(Enqueued::New) => Reason::Queued,
            Ok(Enqueued::AlreadyQueued) => Reason::AlreadyQueued,
            Err(e) => store_failed(&e),
        }
    }

    async fn deduplicate_and_dispatch(
        &self,
        dispatcher: &Dispatcher,
        store: &dyn DeliveryStore,
        event: &VerifiedEvent,
        now: SystemTime,
    ) -> Reason {
        if self.is_shutting_down() {
            return Reason::ShuttingDown;
        }
        let id = event.event().id.as_str();
        loop {
            match store.claim(event, now).await {
                Ok(Claim::Claimed) => break,
                Ok(Claim::AlreadyHandled) => return Reason::AlreadyHandled,
                // The other delivery's outcome decides: handled means this
                // one is a duplicate; released means this one should try.
                Ok(Claim::InFlight(wait)) => {
                    if wait.await {
                        return Reason::AlreadyHandled;
                    }
                }
                Ok(Claim::Busy) => return Reason::Busy,
                Err(e) => return store_failed(&e),
            }
        }
        let guard = ClaimGuard {
            store,
            id,
            armed: true,
        };
        let reason = dispatcher.dispatch(event).await;
        match guard.finish(reason.is_acknowledged(), now).await {
            Ok(()) => reason,
            Err(e) => store_failed(&e),
        }
    }
}

/// Logs a store failure with its cause, and the reason to answer with.
fn store_failed(error: &StoreError) -> Reason {
    match error {
        StoreError::Full => Reason::StoreFull,
        _ => {
            tracing::error!(error = %error, "delivery store failed");
            Reason::StoreUnavailable
        }
    }
}

/// The span around one verified delivery; each level needs its own call site.
fn delivery_span(level: Level, event: &Event) -> tracing::Span {
    macro_rules! span_at {
        ($level:expr) => {
            tracing::span!(
                $level,
                "delivery",
                event_id = event.id.as_str(),
                slug = %Slug(event)
            )
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

/// Abandons a claim if the delivery is dropped before its handlers finish
/// (for example by a timeout), so a redelivery runs them.
struct ClaimGuard<'a> {
    store: &'a dyn DeliveryStore,
    id: &'a str,
    armed: bool,
}

impl ClaimGuard<'_> {
    async fn finish(mut self, handled: bool, now: SystemTime) -> Result<(), StoreError> {
        let result = self.store.finish(self.id, handled, now).await;
        self.armed = false;
        result
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.store.abandon(self.id);
        }
    }
}

/// The last non-empty path segment, tolerating one trailing slash.
fn event_id_from_path(path: &str) -> Option<&str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let (_, id) = path.rsplit_once('/')?;
    (!id.is_empty()).then_some(id)
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("verifiers", &self.verifiers)
            .field("dispatcher", &self.dispatcher())
            .field("queued", &matches!(self.sink, Sink::Queued(_)))
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_name_is_the_signature_header() {
        let parsed =
            HeaderName::from_bytes(crate::SignatureHeader::NAME.as_bytes()).expect("valid");
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
