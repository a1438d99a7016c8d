//! [`Forwarder`]: a broker as the receiver's [`EventQueue`] (acknowledge
//! once the broker has it) or as an inbox worker's handler (inbox first).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ricloud_webhook::{
    BoxFuture, Enqueued, Event, EventQueue, Handler, HandlerError, HandlerResult, StoreError,
    StoreFuture, VerifiedEvent,
};

use crate::{telemetry, Message};

/// A broker that takes [`Message`]s: NATS JetStream (`nats::JetStream`,
/// feature `nats`) or Redis Streams (`redis::RedisStreams`, feature
/// `redis`), or one of your own.
pub trait Broker: Send + Sync + 'static {
    /// A short name for metrics and logs (`nats`, `redis`).
    fn name(&self) -> &'static str;

    /// Publishes `message` and resolves once the broker acknowledged it
    /// durably, or found it already there (same event id inside its
    /// deduplication window).
    ///
    /// # Errors
    /// [`ForwardError`] when the broker did not acknowledge it.
    fn publish<'a>(
        &'a self,
        message: &'a Message<'_>,
    ) -> Pin<Box<dyn Future<Output = Result<Published, ForwardError>> + Send + 'a>>;

    /// Whether the broker answers now, for a readiness check (`/readyz`).
    /// The default claims it does.
    ///
    /// # Errors
    /// [`ForwardError`] when it does not.
    fn ping(&self) -> Pin<Box<dyn Future<Output = Result<(), ForwardError>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What a broker answered to a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The message is new and the broker has it.
    New,
    /// The broker had a message with this event id already (a redelivery
    /// inside its deduplication window); nothing was added.
    Duplicate,
}

/// Why a message was not acknowledged: the delivery is answered 503
/// (queue) or retried (inbox first), never acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The broker did not answer within the publish timeout.
    #[error("{broker} did not acknowledge the publish within {timeout:?}")]
    TimedOut {
        /// The broker's name.
        broker: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The broker could not be reached, or refused the message.
    #[error("{broker}: {source}")]
    Broker {
        /// The broker's name.
        broker: &'static str,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ForwardError {
    /// Wraps a broker client's error.
    pub fn broker(
        broker: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Broker {
            broker,
            source: source.into(),
        }
    }
}

/// Forwards verified events to a [`Broker`].
///
/// - As the receiver's queue ([`Receiver::queued`](ricloud_webhook::Receiver::queued)):
///   a delivery is answered 200 only once the broker acknowledged the
///   message (or found it a duplicate), and 503 with `Retry-After` when it
///   did not, within [`timeout`](Self::timeout), so the API delivers it
///   again.
/// - As a handler of an inbox's workers (inbox first,
///   `Dispatcher::new().on("*", forwarder)`): the inbox acknowledges the
///   delivery, and a broker that is down leaves the row pending, retried
///   with the inbox's backoff.
///
/// Both use the event id as the broker's deduplication id, so a
/// redelivery, or a publish retried after an acknowledgement that was lost,
/// is stored once.
#[derive(Clone)]
pub struct Forwarder {
    broker: Arc<dyn Broker>,
    timeout: Duration,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("broker", &self.broker.name())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Forwarder {
    /// The default publish timeout: well inside the API's request timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A forwarder to `broker`.
    pub fn new(broker: impl Broker) -> Self {
        Self {
            broker: Arc::new(broker),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// How long a publish may wait for the broker's acknowledgement
    /// (default [`Self::DEFAULT_TIMEOUT`]); past it, the delivery is not
    /// acknowledged.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The broker's name (`nats`, `redis`).
    pub fn broker_name(&self) -> &'static str {
        self.broker.name()
    }

    /// Whether the broker answers within the publish timeout, for a
    /// readiness check.
    ///
    /// # Errors
    /// [`ForwardError`] when it does not.
    pub async fn ping(&self) -> Result<(), ForwardError> {
        let broker = self.broker.name();
        tokio::time::timeout(self.timeout, self.broker.ping())
            .await
            .unwrap_or(Err(ForwardError::TimedOut {
                broker,
                timeout: self.timeout,
            }))
    }

    /// Publishes `event` (received at `now` unless it says otherwise),
    /// recording the outcome's metrics.
    ///
    /// # Errors
    /// [`ForwardError`] when the broker did not acknowledge it in time.
    pub async fn forward(&self, event: &Event, now: SystemTime) -> Result<Published, ForwardError> {
        let result = self.publish(event, now).await;
        if let Err(e) = &result {
            tracing::warn!(
                event_id = %event.id.escape_debug(),
                slug = %event.slug_label(),
                config = event.config().unwrap_or(""),
                reason = %e,
                "forward failed; the event is not acknowledged"
            );
        }
        result
    }

    /// [`forward`](Self::forward) without its log line.
    async fn publish(&self, event: &Event, now: SystemTime) -> Result<Published, ForwardError> {
        let message = Message::new(event, now);
        let broker = self.broker.name();
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.broker.publish(&message)).await {
            Ok(result) => result,
            Err(_) => Err(ForwardError::TimedOut {
                broker,
                timeout: self.timeout,
            }),
        };
        telemetry::published(broker, result.as_ref().ok().copied(), started.elapsed());
        result
    }
}

impl EventQueue for Forwarder {
    fn enqueue<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        now: SystemTime,
    ) -> StoreFuture<'a, Enqueued> {
        Box::pin(async move {
            match self.forward(event.event(), now).await {
                Ok(Published::New) => Ok(Enqueued::New),
                Ok(Published::Duplicate) => Ok(Enqueued::AlreadyQueued),
                Err(e) => Err(StoreError::unavailable(e)),
            }
        })
    }
}

impl Handler<Arc<Event>> for Forwarder {
    fn call(&self, event: Arc<Event>) -> BoxFuture<HandlerResult> {
        let this = self.clone();
        Box::pin(async move {
            // The inbox's worker logs the failure, with the retry it makes.
            this.publish(&event, SystemTime::now())
                .await
                .map(|_| ())
                .map_err(HandlerError::retry)
        })
    }
}
