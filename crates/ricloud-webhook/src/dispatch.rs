//! Routing verified events to async handlers, by slug, by type, or all.

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll as TaskPoll;
use std::time::Instant;

use crate::resources::{Poll, Session, Task, WebhookConfig};
use crate::{telemetry, Event, Reason, StoredEvent, VerifiedEvent, ViewError};

/// A boxed, sendable future, as handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a handler returns: `Ok(())`, or a [`HandlerError`] saying whether the
/// API should deliver the event again.
pub type HandlerResult = Result<(), HandlerError>;

/// A handler failure, either asking for redelivery or giving up on the event.
///
/// Any error converts into a failure that asks for redelivery, so `?` works in
/// handlers. Use [`HandlerError::give_up`] for an event that can never be
/// handled (retrying it would only cause a retry storm): it is logged and
/// answered with success.
pub struct HandlerError {
    retry: bool,
    message: String,
}

impl HandlerError {
    /// A failure that asks the API to deliver the event again (HTTP 500).
    pub fn retry(message: impl fmt::Display) -> Self {
        Self {
            retry: true,
            message: message.to_string(),
        }
    }

    /// A permanent failure: the handler gives up on the event. It is logged
    /// at ERROR, then acknowledged (HTTP 200) so the API does not retry; a
    /// durable inbox marks it dead.
    pub fn give_up(message: impl fmt::Display) -> Self {
        Self {
            retry: false,
            message: message.to_string(),
        }
    }

    /// Whether the failure asks for redelivery.
    pub fn is_retry(&self) -> bool {
        self.retry
    }

    /// The handler's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::retry(error.into())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("retry", &self.retry)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a handler can take as its argument: the whole event, a typed view of
/// its data, or a pair of those.
pub trait FromEvent: Sized + Send + 'static {
    /// Name of the view, for logs.
    const NAME: &'static str;

    /// Builds the argument from a verified event.
    ///
    /// # Errors
    /// [`ViewError`] when `data` does not fit the view.
    fn from_event(event: &Arc<Event>) -> Result<Self, ViewError>;
}

impl FromEvent for Arc<Event> {
    const NAME: &'static str = "Event";

    fn from_event(event: &Arc<Event>) -> Result<Self, ViewError> {
        Ok(Arc::clone(event))
    }
}

macro_rules! data_view {
    ($($ty:ident),*) => {$(
        impl FromEvent for $ty {
            const NAME: &'static str = stringify!($ty);

            fn from_event(event: &Arc<Event>) -> Result<Self, ViewError> {
                event
                    .data_as()
                    .map_err(|e: ViewError| e.in_view(Self::NAME))
            }
        }
    )*};
}

data_view!(Task, Poll, Session, WebhookConfig);

impl<A: FromEvent, B: FromEvent> FromEvent for (A, B) {
    /// The first view's name; a [`ViewError`] names the one that failed.
    const NAME: &'static str = A::NAME;

    fn from_event(event: &Arc<Event>) -> Result<Self, ViewError> {
        Ok((A::from_event(event)?, B::from_event(event)?))
    }
}

/// An async function that handles events, taking `T` (see [`FromEvent`]).
///
/// Implemented for every `Fn(T) -> impl Future<Output = HandlerResult>`.
pub trait Handler<T>: Send + Sync + 'static {
    /// Runs the handler.
    fn call(&self, arg: T) -> BoxFuture<HandlerResult>;
}

impl<T, F, Fut> Handler<T> for F
where
    T: FromEvent,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, arg: T) -> BoxFuture<HandlerResult> {
        Box::pin(self(arg))
    }
}

/// Which events a handler is for: an exact slug (`"task.succeeded"`), a
/// whole type (`"task.*"`), or every event (`"*"`). [`Dispatcher::on`]
/// reads its patterns with it, and so can other registries of handlers
/// (a durable inbox's transactional handlers, say).
///
/// ```
/// use ricloud_webhook::{Event, SlugPattern};
///
/// let event = Event::from_json(&br#"{"id": "e1", "type": "task", "action": "succeeded"}"#[..])?;
/// assert!(SlugPattern::parse("task.*").is_some_and(|p| p.matches(&event)));
/// assert!(SlugPattern::parse("task.failed").is_some_and(|p| !p.matches(&event)));
/// assert!(SlugPattern::parse("*.succeeded").is_none());
/// # Ok::<(), ricloud_webhook::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlugPattern(Pattern);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact { kind: String, action: String },
    Kind(String),
    Any,
}

impl SlugPattern {
    /// What a malformed pattern is told, for the registries that refuse it.
    pub const EXPECTED: &'static str = "use \"*\", \"<type>.*\" or \"<type>.<action>\"";

    /// Reads `"*"`, `"<type>.*"` or `"<type>.<action>"`; `None` for
    /// anything else.
    pub fn parse(pattern: &str) -> Option<Self> {
        if pattern == "*" {
            return Some(Self(Pattern::Any));
        }
        let (kind, action) = pattern.split_once('.')?;
        let valid = |s: &str| !s.is_empty() && !s.contains(['*', '.']);
        if !valid(kind) {
            return None;
        }
        if action == "*" {
            return Some(Self(Pattern::Kind(kind.to_owned())));
        }
        valid(action).then(|| {
            Self(Pattern::Exact {
                kind: kind.to_owned(),
                action: action.to_owned(),
            })
        })
    }

    /// Whether `event` is one of the events the pattern is for.
    pub fn matches(&self, event: &Event) -> bool {
        match &self.0 {
            Pattern::Exact { kind, action } => event.is(kind, action),
            Pattern::Kind(kind) => event.kind == *kind,
            Pattern::Any => true,
        }
    }
}

type ErasedHandler =
    Box<dyn Fn(&Arc<Event>) -> Result<BoxFuture<HandlerResult>, ViewError> + Send + Sync>;

struct Route {
    pattern: SlugPattern,
    view: &'static str,
    handler: ErasedHandler,
}

/// Handlers registered by slug pattern; runs every match for an event.
///
/// Patterns: an exact slug (`"task.succeeded"`), a whole type (`"task.*"`),
/// or every event (`"*"`). A handler's argument decides what it receives:
/// `Arc<Event>`, a typed view ([`Task`], [`Poll`], [`Session`],
/// [`WebhookConfig`]), or a pair such as `(Task, Arc<Event>)`.
///
/// ```
/// use std::sync::Arc;
/// use ricloud_webhook::{Dispatcher, Event, HandlerError, Task};
///
/// let dispatcher = Dispatcher::new()
///     .on("task.succeeded", |task: Task| async move {
///         println!("task {} has {} results", task.id, task.results.data.len());
///         Ok(())
///     })
///     .on("poll.*", |event: Arc<Event>| async move {
///         Err(HandlerError::retry(format!("not ready for {}", event.id)))
///     });
/// assert_eq!(dispatcher.len(), 2);
/// ```
#[derive(Default)]
pub struct Dispatcher {
    routes: Vec<Route>,
    on_view_mismatch: OnViewMismatch,
}

/// What a delivery is answered when the data does not fit a handler's
/// typed view (see [`Dispatcher::on_view_mismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnViewMismatch {
    /// 200, with an ERROR log line naming the event id and the view: the
    /// same data will not fit on a redelivery either, so retrying it for
    /// hours helps no one. The default.
    #[default]
    Acknowledge,
    /// 500, so the API redelivers (useful while a view is being fixed and
    /// deployed within the API's retry period).
    Redeliver,
}

impl Dispatcher {
    /// A dispatcher with no handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for events matching `pattern`.
    ///
    /// # Panics
    /// When `pattern` is not `"*"`, `"<type>.*"` or `"<type>.<action>"`
    /// (a programming error, caught at start-up).
    #[must_use]
    #[track_caller]
    pub fn on<T: FromEvent, H: Handler<T>>(mut self, pattern: &str, handler: H) -> Self {
        let Some(parsed) = SlugPattern::parse(pattern) else {
            panic!(
                "invalid event pattern {pattern:?}: {}",
                SlugPattern::EXPECTED
            );
        };
        self.routes.push(Route {
            pattern: parsed,
            view: T::NAME,
            handler: Box::new(move |event| Ok(handler.call(T::from_event(event)?))),
        });
        self
    }

    /// Sets what a delivery is answered when its data does not fit a
    /// handler's typed view (default [`OnViewMismatch::Acknowledge`]).
    #[must_use]
    pub fn on_view_mismatch(mut self, policy: OnViewMismatch) -> Self {
        self.on_view_mismatch = policy;
        self
    }

    /// Number of registered handlers.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// How many handlers match `event`.
    pub fn matching(&self, event: &Event) -> usize {
        self.routes
            .iter()
            .filter(|r| r.pattern.matches(event))
            .count()
    }

    /// Runs every handler that matches a verified delivery's event, in
    /// registration order, and reports the combined result as one of the
    /// handler [`Reason`]s: [`Handled`](Reason::Handled),
    /// [`NoHandler`](Reason::NoHandler), [`HandlerGaveUp`](Reason::HandlerGaveUp),
    /// [`ViewMismatch`](Reason::ViewMismatch), [`HandlerRetry`](Reason::HandlerRetry)
    /// or [`HandlerPanicked`](Reason::HandlerPanicked).
    ///
    /// All matching handlers run even when one fails. A panic in a handler is
    /// caught and counts as asking for redelivery. A typed view that does
    /// not fit the data (the handler could not run) is acknowledged or
    /// redelivered as [`Dispatcher::on_view_mismatch`] says. The receiver
    /// deduplicates whole events, so a redelivery runs every matching
    /// handler again, those that succeeded included: handlers sharing an
    /// event should be idempotent.
    pub async fn dispatch(&self, event: &VerifiedEvent) -> Reason {
        self.run(event.event()).await
    }

    /// As [`dispatch`](Self::dispatch), for an event a store's worker read
    /// back from the store that verified it before committing it.
    pub async fn dispatch_stored(&self, event: &StoredEvent) -> Reason {
        self.run(event.event()).await
    }

    async fn run(&self, event: &Arc<Event>) -> Reason {
        let started = Instant::now();
        let reason = self.run_matching(event).await;
        telemetry::handlers_ran(event, &reason, started.elapsed());
        reason
    }

    async fn run_matching(&self, event: &Arc<Event>) -> Reason {
        let mut handled = 0;
        let mut worst = Reason::NoHandler;
        for route in self.routes.iter().filter(|r| r.pattern.matches(event)) {
            let result = match catch_unwind(AssertUnwindSafe(|| (route.handler)(event))) {
                Ok(Ok(future)) => run_caught(future).await,
                Ok(Err(view_error)) => {
                    tracing::debug!(detail = view_error.detail(), "view does not fit");
                    Err(Reason::ViewMismatch {
                        view: view_error.view().unwrap_or(route.view),
                        redeliver: self.on_view_mismatch == OnViewMismatch::Redeliver,
                    })
                }
                Err(panic) => Err(Reason::HandlerPanicked {
                    message: panic_message(&*panic),
                }),
            };
            let failure = match result {
                Ok(Ok(())) => {
                    handled += 1;
                    continue;
                }
                Ok(Err(e)) if e.retry => Reason::HandlerRetry { message: e.message },
                Ok(Err(e)) => Reason::HandlerGaveUp { message: e.message },
                Err(failure) => failure,
            };
            if rank(&failure) > rank(&worst) {
                worst = failure;
            }
        }
        match worst {
            Reason::NoHandler if handled > 0 => Reason::Handled { handlers: handled },
            other => other,
        }
    }
}

/// How bad a handler result is: the worst of an event's handlers decides.
fn rank(reason: &Reason) -> u8 {
    match reason {
        Reason::NoHandler => 1,
        Reason::HandlerGaveUp { .. }
        | Reason::ViewMismatch {
            redeliver: false, ..
        } => 2,
        Reason::HandlerRetry { .. }
        | Reason::ViewMismatch {
            redeliver: true, ..
        } => 3,
        Reason::HandlerPanicked { .. } => 4,
        _ => 0,
    }
}

/// Polls a handler's future, turning a panic into a value.
async fn run_caught(mut future: BoxFuture<HandlerResult>) -> Result<HandlerResult, Reason> {
    poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(TaskPoll::Ready(result)) => TaskPoll::Ready(Ok(result)),
            Ok(TaskPoll::Pending) => TaskPoll::Pending,
            // The future is dropped with the closure and never polled again.
            Err(panic) => TaskPoll::Ready(Err(Reason::HandlerPanicked {
                message: panic_message(&*panic),
            })),
        }
    })
    .await
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_owned())
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| (&r.pattern, r.view))
                    .collect::<Vec<_>>(),
            )
            .field("on_view_mismatch", &self.on_view_mismatch)
            .finish()
    }
}
