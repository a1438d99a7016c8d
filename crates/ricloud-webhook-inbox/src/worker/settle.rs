//! One row's run and its outcome: the handlers, the settle that commits
//! done, retry or dead fenced on the row's lease, the transactional
//! handlers' own done (PostgreSQL), and what is logged.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use ricloud_webhook::{Reason, SignatureHeader, StoredEvent};

use super::Run;
use crate::commit::{Lease, Settle, Taken};

/// Runs one row's handlers; how the row is to be settled (`None` when a
/// transactional handler settled it already).
pub(super) async fn run_one(shared: Arc<Run>, row: Taken) -> Option<(Lease, Settle)> {
    let Taken {
        lease,
        body,
        attempts,
        config,
        signature,
        received_ms,
    } = row;
    // A run that ends without an outcome (its task panicked or was
    // aborted) must not have its lease renewed for as long as the process
    // lives: the row would never run again.
    let held = Held {
        shared: &shared,
        lease: &lease,
        handed_over: false,
    };
    let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
    // The row's body was committed only after the receiver verified it
    // (or after it was fetched from the API itself, by a catch-up).
    let (settle, slug) = match StoredEvent::from_store(body, config.as_deref()) {
        Ok(event) => {
            // What the receiver recorded of the delivery, for handlers that
            // pass the event on as it arrived (a forwarder).
            let event = event.with_delivery(
                signature.and_then(|s| SignatureHeader::parse(s.as_bytes()).ok()),
                u64::try_from(received_ms)
                    .ok()
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            );
            let outcome = shared.dispatcher.dispatch_stored(&event).await;
            let slug = event.event().slug();
            (
                settle_for(&shared, &event, &lease, attempts, outcome).await,
                slug,
            )
        }
        Err(e) => (
            Some(Settle::Dead {
                error: format!("the stored body is not an event: {e}"),
            }),
            String::new(),
        ),
    };
    let settle = settle?;
    log(&lease.event_id, &slug, config.as_deref(), attempts, &settle);
    // Held until its outcome is committed: `settle_one` releases it.
    held.hand_over();
    Some((lease, settle))
}

/// A running row's lease in the renewal set, taken out when dropped
/// unless handed over to the settle that commits the row's outcome.
struct Held<'a> {
    shared: &'a Run,
    lease: &'a Lease,
    handed_over: bool,
}

impl Held<'_> {
    fn hand_over(mut self) {
        self.handed_over = true;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.shared.release(self.lease);
        }
    }
}

/// Commits a row's outcome, fenced on its lease: the outcome of a run
/// whose lease was taken again (by any worker) is refused.
pub(super) async fn settle_one(shared: Arc<Run>, lease: Lease, outcome: Settle) {
    let outcome = match outcome {
        Settle::Done => Settle::Done,
        Settle::Retry { delay_ms, error } => Settle::Retry {
            delay_ms,
            error: clean_error(&error),
        },
        Settle::Dead { error } => Settle::Dead {
            error: clean_error(&error),
        },
    };
    let dead = matches!(outcome, Settle::Dead { .. });
    let result = shared
        .inbox
        .inner
        .committer
        .settle(lease.clone(), outcome)
        .await;
    shared.release(&lease);
    let event_id = lease.event_id.escape_debug();
    match result {
        Ok(true) => {
            if dead {
                crate::telemetry::dead();
            }
        }
        Ok(false) => tracing::warn!(
            event_id = %event_id,
            lease = lease.token,
            "outcome refused: the lease ran out before the handlers finished and the event was taken again"
        ),
        Err(e) => tracing::warn!(
            event_id = %event_id,
            error = %e,
            "cannot record the event's outcome; it runs again once its lease runs out"
        ),
    }
}

/// The longest `last_error` kept, in bytes.
const MAX_ERROR: usize = 4096;

/// A handler's message as the table keeps it: no NUL (PostgreSQL's text
/// refuses it), at most [`MAX_ERROR`] bytes, cut at a character boundary.
fn clean_error(error: &str) -> String {
    let mut clean: String = error.chars().filter(|c| *c != '\0').collect();
    if clean.len() > MAX_ERROR {
        const MORE: &str = " [...]";
        let mut end = MAX_ERROR - MORE.len();
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str(MORE);
    }
    clean
}

/// What becomes of the row after its handlers ran; `None` when a
/// transactional handler settled it already.
#[allow(
    clippy::unused_async,
    reason = "awaits the transactional handlers when built with PostgreSQL"
)]
async fn settle_for(
    shared: &Run,
    event: &StoredEvent,
    lease: &Lease,
    attempts: u32,
    outcome: Reason,
) -> Option<Settle> {
    let retry = |error: String| {
        if attempts >= shared.config.max_attempts {
            Settle::Dead {
                error: format!("gave up after {attempts} attempts: {error}"),
            }
        } else {
            let delay = shared.config.backoff(attempts);
            Settle::Retry {
                delay_ms: crate::commit::ms(delay),
                error,
            }
        }
    };
    Some(match outcome {
        Reason::Handled { .. } | Reason::NoHandler => {
            #[cfg(feature = "postgres")]
            if let Some(settled) = run_transactional(shared, event, lease).await {
                return settled.map_or_else(|error| Some(retry(error)), |()| None);
            }
            let _ = (event, lease);
            Settle::Done
        }
        Reason::HandlerGaveUp { message } => Settle::Dead {
            error: format!("a handler gave up on it: {message}"),
        },
        Reason::ViewMismatch {
            view,
            redeliver: false,
        } => Settle::Dead {
            error: format!("its data does not fit the `{view}` view"),
        },
        Reason::ViewMismatch { view, .. } => {
            retry(format!("its data does not fit the `{view}` view"))
        }
        Reason::HandlerRetry { message } => retry(message),
        Reason::HandlerPanicked { message } => retry(format!("a handler panicked: {message}")),
        // Not a handler's reason (the dispatcher returns only those):
        // treated as a failure to retry.
        other => retry(other.to_string()),
    })
}

/// Runs the transactional handlers matching `event` and marks its row done
/// in their transaction. `None` when none match; `Some(Ok)` when the row is
/// settled (done, or left to the run that took it again);
/// `Some(Err)` with the error to retry with.
#[cfg(feature = "postgres")]
async fn run_transactional(
    shared: &Run,
    event: &StoredEvent,
    lease: &Lease,
) -> Option<Result<(), String>> {
    let matching: Vec<_> = shared
        .transactional
        .iter()
        .filter(|(pattern, _)| pattern.matches(event.event()))
        .map(|(_, handler)| Arc::clone(handler))
        .collect();
    if matching.is_empty() {
        return None;
    }
    #[cfg_attr(not(feature = "sqlite"), allow(irrefutable_let_patterns))]
    let crate::db::Db::Postgres(pool) = &shared.inbox.inner.db
    else {
        return Some(Err("transactional handlers need PostgreSQL".to_owned()));
    };
    // Bounded below the pool's size, so reads and operators' writes always
    // find a connection.
    let Ok(_slot) = shared.transaction_slots.acquire().await else {
        return Some(Err("the inbox is shutting down".to_owned()));
    };
    let event_id = lease.event_id.escape_debug();
    let work = async {
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        for handler in &matching {
            handler
                .call(Arc::clone(event.event()), &mut tx)
                .await
                .map_err(|e| e.message().to_owned())?;
        }
        // From here the row is locked by this transaction: stop renewing
        // its lease (a renewal would skip the locked row anyway).
        shared.release(lease);
        let marked = sqlx::query(
            "UPDATE ricloud_inbox SET state = 'done', done_at = (SELECT now_ms FROM ricloud_inbox_clock), \
             updated_at = (SELECT now_ms FROM ricloud_inbox_clock), lease_owner = NULL, lease_expires = NULL, last_error = NULL, \
             lease_token = $2 WHERE event_id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(lease.event_id.as_str())
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        if marked.rows_affected() == 1 {
            tx.commit().await.map_err(|e| e.to_string())?;
            tracing::debug!(
                event_id = %event_id,
                "event done, with its transactional handlers' writes"
            );
        } else {
            tx.rollback().await.map_err(|e| e.to_string())?;
            tracing::warn!(
                event_id = %event_id,
                "lease lost before the transaction committed; its writes were rolled back"
            );
        }
        Ok(())
    };
    Some(work.await)
}

/// Logs a run's outcome: a failure at WARN (retried) or ERROR (dead) with
/// the event's id, slug and config and the reason, escaped (a handler's
/// own text may quote the event's data; the body itself is never logged).
fn log(event_id: &str, slug: &str, config: Option<&str>, attempts: u32, settle: &Settle) {
    let event_id = event_id.escape_debug();
    let slug = slug.escape_debug();
    match settle {
        Settle::Done => {
            tracing::debug!(event_id = %event_id, slug = %slug, config, attempts, "event done");
        }
        Settle::Retry { error, .. } => tracing::warn!(
            event_id = %event_id,
            slug = %slug,
            config,
            attempts,
            reason = %error.escape_debug(),
            "handlers failed; the event will be retried"
        ),
        Settle::Dead { error } => {
            tracing::error!(
                event_id = %event_id,
                slug = %slug,
                config,
                attempts,
                reason = %error.escape_debug(),
                "event given up on (dead); replay it once fixed"
            );
        }
    }
}
