//! What a delivery ended as: one [`Outcome`] with one [`Reason`], and the
//! HTTP status each reason is answered with.
//!
//! # The vocabulary
//!
//! A **delivery** ([`Delivery`](crate::Delivery)) is one HTTP request.
//! Verification turns its bytes into a [`VerifiedBody`](crate::VerifiedBody),
//! then a [`VerifiedEvent`](crate::VerifiedEvent); a store's worker reads a
//! [`StoredEvent`](crate::StoredEvent) back. Every delivery ends as one
//! [`Outcome`], whose [`Reason`] says why, in one of four groups:
//!
//! | group | reasons | status |
//! |---|---|---|
//! | refused before the event is known | [`Unverified`](Reason::Unverified), [`NotAnEvent`](Reason::NotAnEvent), [`PathMismatch`](Reason::PathMismatch), [`NotFound`](Reason::NotFound), [`UnknownConfig`](Reason::UnknownConfig), [`MethodNotAllowed`](Reason::MethodNotAllowed) | 400, 401, 404, 405 |
//! | not taken now, to be delivered again | [`ShuttingDown`](Reason::ShuttingDown), [`Busy`](Reason::Busy), [`StoreFull`](Reason::StoreFull), [`StoreUnavailable`](Reason::StoreUnavailable) | 503 |
//! | the store knew it | [`AlreadyHandled`](Reason::AlreadyHandled), [`Queued`](Reason::Queued), [`AlreadyQueued`](Reason::AlreadyQueued) | 200 |
//! | the handlers ran (what [`Dispatcher::dispatch`](crate::Dispatcher::dispatch) returns) | [`Handled`](Reason::Handled), [`NoHandler`](Reason::NoHandler), [`HandlerGaveUp`](Reason::HandlerGaveUp), [`ViewMismatch`](Reason::ViewMismatch) | 200 |
//! | | [`HandlerRetry`](Reason::HandlerRetry), [`HandlerPanicked`](Reason::HandlerPanicked), [`ViewMismatch`](Reason::ViewMismatch) with `redeliver` | 500 |
//!
//! *Acknowledged* means answered with a 2xx: the API will not deliver the
//! event again. [`Reason::status`] is the one place a status is decided;
//! the README's status table is tested against it.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::{Event, EventError, VerifyError};

/// What happened to a delivery, and the HTTP status to answer with.
///
/// Once the event is verified and parsed, the outcome holds it (shared, not
/// copied), so keeping an outcome keeps the event's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub(crate) reason: Reason,
    pub(crate) event: Option<Arc<Event>>,
    pub(crate) matched_secret: Option<usize>,
    pub(crate) config: Option<Arc<str>>,
}

impl Outcome {
    /// An outcome decided before the event was known.
    pub fn new(reason: Reason) -> Self {
        Self {
            reason,
            event: None,
            matched_secret: None,
            config: None,
        }
    }

    /// An outcome for a verified event.
    pub(crate) fn of(reason: Reason, event: &crate::VerifiedEvent) -> Self {
        Self {
            reason,
            event: Some(Arc::clone(event.event())),
            matched_secret: Some(event.matched_secret()),
            config: event.event().config.clone(),
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

    /// The webhook config the delivery's path names, once known, when the
    /// receiver serves several ([`Verifiers::named`](crate::Verifiers::named)).
    pub fn config(&self) -> Option<&str> {
        self.config.as_deref()
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

    /// Logs the outcome once. A line at WARN or ERROR names the event's
    /// `event_id`, `slug` and `config` when known, and the `reason`: for a
    /// handler's failure its own text, escaped (`{:?}`), since it may quote
    /// the event's data; never the body or a secret.
    pub(crate) fn log(&self) {
        let status = self.status().as_u16();
        let event_id = self.event_id();
        let slug = self
            .event
            .as_deref()
            .map(|e| tracing::field::display(Slug(e)));
        let config = self.config();
        match &self.reason {
            Reason::HandlerPanicked { message } => tracing::error!(
                status,
                event_id,
                slug,
                config,
                reason = ?message,
                "handler panicked; asking for redelivery"
            ),
            Reason::HandlerRetry { message } => tracing::error!(
                status,
                event_id,
                slug,
                config,
                reason = ?message,
                "handler failed; asking for redelivery"
            ),
            Reason::HandlerGaveUp { message } => tracing::error!(
                status,
                event_id,
                slug,
                config,
                reason = ?message,
                "handler gave up on the event; acknowledged"
            ),
            reason @ Reason::ViewMismatch { .. } => tracing::error!(
                status,
                event_id,
                slug,
                config,
                reason = %reason,
                "event data does not fit a handler's view"
            ),
            Reason::NoHandler => tracing::info!(
                status,
                event_id,
                slug,
                config,
                "no handler for this event; acknowledged"
            ),
            reason if self.status().is_success() => {
                let secret = self.matched_secret.unwrap_or(0);
                if secret > 0 {
                    tracing::info!(
                        status,
                        event_id,
                        slug,
                        config,
                        secret,
                        "verified with a previous secret"
                    );
                }
                tracing::debug!(status, event_id, slug, config, %reason, "delivery done");
            }
            reason @ (Reason::StoreFull | Reason::StoreUnavailable | Reason::Busy) => {
                tracing::warn!(status, event_id, slug, config, %reason, "delivery not taken; asking for redelivery");
            }
            // Everything else is what a sender without the secret can
            // cause, at will and in bulk: not worth a line at WARN.
            reason => {
                tracing::debug!(status, event_id, slug, config, %reason, "delivery refused");
            }
        }
    }
}

/// An event's slug for a log field, without building the string.
pub(crate) struct Slug<'a>(pub(crate) &'a Event);

impl fmt::Display for Slug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0.kind, self.0.action)
    }
}

/// Why a delivery ended as it did; decides the status (see the module's
/// table).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Every matching handler succeeded: 200.
    Handled {
        /// How many ran.
        handlers: usize,
    },
    /// No handler matches the event: 200.
    NoHandler,
    /// A handler gave up on the event ([`HandlerError::give_up`](crate::HandlerError::give_up)):
    /// 200, logged at ERROR, so the API does not retry what cannot succeed.
    HandlerGaveUp {
        /// The handler's message (its own text: logged escaped, never the body).
        message: String,
    },
    /// A handler asked for redelivery: 500.
    HandlerRetry {
        /// The handler's message (its own text: logged escaped, never the body).
        message: String,
    },
    /// A handler panicked: 500.
    HandlerPanicked {
        /// The panic message (its own text: logged escaped, never the body).
        message: String,
    },
    /// A typed handler could not run, the data does not fit its view: 200,
    /// or 500 when the dispatcher redelivers such events.
    ViewMismatch {
        /// The view's type name.
        view: &'static str,
        /// Whether the dispatcher asks for redelivery
        /// ([`OnViewMismatch::Redeliver`](crate::OnViewMismatch::Redeliver)).
        redeliver: bool,
    },
    /// Inline: the event was handled before; 200 without running handlers.
    AlreadyHandled,
    /// Queued: the event is now committed to the queue: 200.
    Queued,
    /// Queued: the event was in the queue already (a redelivery): 200.
    AlreadyQueued,
    /// Signature verification failed: 400 for a malformed header, else 401.
    Unverified(VerifyError),
    /// The verified body is not an event: 400.
    NotAnEvent(EventError),
    /// The event id in the path differs from the signed body's `id`: 400.
    PathMismatch,
    /// The path has no event id: 404.
    NotFound,
    /// The path names no webhook config this receiver serves
    /// ([`Verifiers::named`](crate::Verifiers::named)): 404.
    UnknownConfig,
    /// The method is not POST: 405.
    MethodNotAllowed,
    /// The receiver is shutting down: 503, the API retries later.
    ShuttingDown,
    /// Another delivery of the event is being handled where this one cannot
    /// wait for it (another replica): 503.
    Busy,
    /// The delivery store is full of events inside the replay window: 503.
    StoreFull,
    /// The delivery store or queue failed: 503, never an acknowledgement.
    StoreUnavailable,
}

impl Reason {
    /// The HTTP status for this reason.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Handled { .. }
            | Self::NoHandler
            | Self::HandlerGaveUp { .. }
            | Self::ViewMismatch {
                redeliver: false, ..
            }
            | Self::AlreadyHandled
            | Self::Queued
            | Self::AlreadyQueued => StatusCode::OK,
            Self::HandlerRetry { .. }
            | Self::HandlerPanicked { .. }
            | Self::ViewMismatch {
                redeliver: true, ..
            } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unverified(VerifyError::MalformedHeader(_)) => StatusCode::BAD_REQUEST,
            Self::Unverified(_) => StatusCode::UNAUTHORIZED,
            Self::NotAnEvent(_) | Self::PathMismatch => StatusCode::BAD_REQUEST,
            Self::NotFound | Self::UnknownConfig => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ShuttingDown | Self::Busy | Self::StoreFull | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Whether the delivery is acknowledged (answered 2xx): the API will not
    /// deliver it again.
    pub fn is_acknowledged(&self) -> bool {
        self.status().is_success()
    }

    /// A short, fixed name for the reason: the `reason` label of the
    /// `ricloud_webhook_deliveries_total` metric and the value of the
    /// [`OUTCOME_HEADER`](Self::OUTCOME_HEADER) answer header. `ok` for an
    /// event taken (handled or committed) now, `duplicate` for one the
    /// store knew.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Handled { .. } | Self::Queued => "ok",
            Self::AlreadyHandled | Self::AlreadyQueued => "duplicate",
            Self::NoHandler => "no_handler",
            Self::HandlerGaveUp { .. } => "handler_gave_up",
            Self::HandlerRetry { .. } => "handler_failed",
            Self::HandlerPanicked { .. } => "handler_panicked",
            Self::ViewMismatch { .. } => "view_mismatch",
            Self::Unverified(VerifyError::MissingHeader) => "missing_signature",
            Self::Unverified(VerifyError::MalformedHeader(_)) => "malformed_header",
            Self::Unverified(VerifyError::SignatureMismatch) => "bad_signature",
            Self::Unverified(
                VerifyError::TimestampTooOld { .. } | VerifyError::TimestampTooFarAhead { .. },
            ) => "stale",
            Self::NotAnEvent(_) => "not_an_event",
            Self::PathMismatch => "path_mismatch",
            Self::NotFound => "not_found",
            Self::UnknownConfig => "unknown_config",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ShuttingDown => "shutting_down",
            Self::Busy => "busy",
            Self::StoreFull => "store_full",
            Self::StoreUnavailable => "store_error",
        }
    }

    /// The answer header that carries [`label`](Self::label) on every
    /// answer of the hyper endpoint but the commonest, a new event taken
    /// (`ok`), which goes without it: a 2xx without the header is a new
    /// event, one with `duplicate` an event the receiver had.
    pub const OUTCOME_HEADER: &'static str = "ricloud-webhook-outcome";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handled { handlers } => write!(f, "handled by {handlers} handler(s)"),
            Self::NoHandler => f.write_str("no handler; acknowledged"),
            Self::HandlerGaveUp { .. } => {
                f.write_str("a handler gave up on the event; acknowledged")
            }
            Self::HandlerRetry { .. } => f.write_str("a handler failed; please redeliver"),
            Self::HandlerPanicked { .. } => f.write_str("a handler panicked; please redeliver"),
            Self::ViewMismatch { view, redeliver } => write!(
                f,
                "event data does not fit the `{view}` view of a handler{}",
                if *redeliver {
                    "; please redeliver"
                } else {
                    "; acknowledged"
                }
            ),
            Self::AlreadyHandled => f.write_str("event already handled"),
            Self::Queued => f.write_str("event committed to the queue"),
            Self::AlreadyQueued => f.write_str("event already in the queue"),
            Self::Unverified(e) => fmt::Display::fmt(e, f),
            Self::NotAnEvent(e) => fmt::Display::fmt(e, f),
            Self::PathMismatch => {
                f.write_str("event id in the path differs from the `id` in the signed body")
            }
            Self::NotFound => f.write_str("path has no event id"),
            Self::UnknownConfig => f.write_str("path names no webhook config served here"),
            Self::MethodNotAllowed => f.write_str("only POST is accepted"),
            Self::ShuttingDown => f.write_str("receiver is shutting down; please redeliver"),
            Self::Busy => {
                f.write_str("another delivery of this event is being handled; please redeliver")
            }
            Self::StoreFull => f.write_str("too many events to remember; please redeliver"),
            Self::StoreUnavailable => {
                f.write_str("the delivery store is unavailable; please redeliver")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderError;

    /// One of each reason: the match in `name` is exhaustive, so a new
    /// reason does not compile until it is added here and to the tables.
    fn every_reason() -> Vec<Reason> {
        let message = || "m".to_owned();
        vec![
            Reason::Handled { handlers: 1 },
            Reason::NoHandler,
            Reason::HandlerGaveUp { message: message() },
            Reason::HandlerRetry { message: message() },
            Reason::HandlerPanicked { message: message() },
            Reason::ViewMismatch {
                view: "Task",
                redeliver: false,
            },
            Reason::ViewMismatch {
                view: "Task",
                redeliver: true,
            },
            Reason::AlreadyHandled,
            Reason::Queued,
            Reason::AlreadyQueued,
            Reason::Unverified(VerifyError::MalformedHeader(HeaderError::Repeated)),
            Reason::Unverified(VerifyError::SignatureMismatch),
            Reason::NotAnEvent(EventError::Truncated),
            Reason::PathMismatch,
            Reason::NotFound,
            Reason::UnknownConfig,
            Reason::MethodNotAllowed,
            Reason::ShuttingDown,
            Reason::Busy,
            Reason::StoreFull,
            Reason::StoreUnavailable,
        ]
    }

    fn name(reason: &Reason) -> &'static str {
        match reason {
            Reason::Handled { .. } => "Handled",
            Reason::NoHandler => "NoHandler",
            Reason::HandlerGaveUp { .. } => "HandlerGaveUp",
            Reason::HandlerRetry { .. } => "HandlerRetry",
            Reason::HandlerPanicked { .. } => "HandlerPanicked",
            Reason::ViewMismatch { .. } => "ViewMismatch",
            Reason::AlreadyHandled => "AlreadyHandled",
            Reason::Queued => "Queued",
            Reason::AlreadyQueued => "AlreadyQueued",
            Reason::Unverified(_) => "Unverified",
            Reason::NotAnEvent(_) => "NotAnEvent",
            Reason::PathMismatch => "PathMismatch",
            Reason::NotFound => "NotFound",
            Reason::UnknownConfig => "UnknownConfig",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::ShuttingDown => "ShuttingDown",
            Reason::Busy => "Busy",
            Reason::StoreFull => "StoreFull",
            Reason::StoreUnavailable => "StoreUnavailable",
        }
    }

    /// The rows of the markdown table in `text` whose first line starts
    /// with `header`: each row's cells.
    fn table(text: &str, header: &str) -> Vec<Vec<String>> {
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start_matches("//!").trim())
            .collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with(header))
            .expect("the table");
        lines[start + 2..]
            .iter()
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_vocabulary_table_says_what_each_reason_answers() {
        let rows = table(include_str!("outcome.rs"), "| group | reasons | status |");
        for reason in every_reason() {
            let link = format!("(Reason::{})", name(&reason));
            let status = reason.status().as_u16().to_string();
            assert!(
                rows.iter()
                    .any(|row| row[1].contains(&link) && row[2].contains(&status)),
                "{reason:?} answers {status}, which the module's table does not say"
            );
        }
    }

    #[test]
    fn the_readme_status_table_has_every_status_a_reason_answers() {
        let rows = table(include_str!("../../../README.md"), "| status | when |");
        let documented: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
        for reason in every_reason() {
            let status = reason.status().as_u16().to_string();
            assert!(
                documented.iter().any(|d| d.starts_with(&status)),
                "{reason:?} answers {status}, missing from the README's status table"
            );
        }
        // And every status of the core's range in the README is one a
        // reason answers (408, 413 and 415 are the adapter's).
        let answered: Vec<String> = every_reason()
            .iter()
            .map(|r| r.status().as_u16().to_string())
            .collect();
        for status in documented {
            let code = &status[..3];
            assert!(
                ["408", "413", "415"].contains(&code) || answered.iter().any(|a| a == code),
                "the README documents {code}, which no reason answers"
            );
        }
    }
}
