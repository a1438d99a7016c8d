//! Workers: take due rows under a lease, run the handlers, settle each row
//! (done, retried later with backoff, or dead), fenced on the lease.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use ricloud_webhook::{Dispatcher, HandlerResult, Reason, StoredEvent};
#[cfg(feature = "postgres")]
use ricloud_webhook::{Event, SlugPattern};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::commit::{Lease, Settle, Taken};
use crate::inbox::Inbox;

/// How workers run stored events.
///
/// ```
/// use std::time::Duration;
/// use ricloud_webhook_inbox::WorkerConfig;
///
/// let config = WorkerConfig::default()
///     .concurrency(16)
///     .max_attempts(5)
///     .lease(Duration::from_secs(60));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    concurrency: usize,
    lease: Duration,
    poll: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    retention: Duration,
    shutdown_grace: Duration,
    transactional_concurrency: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 128,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(2),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            shutdown_grace: Duration::from_secs(30),
            transactional_concurrency: 4,
        }
    }
}

impl WorkerConfig {
    /// Events run at once in this process (default 128). Lower it when
    /// the handlers hold a scarce resource (a small connection pool): each
    /// running event holds a handler. A take waits for a commit, so too few
    /// slots make the workers fall behind a busy receiver.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long a worker holds a row it runs (default 30 s). It renews the
    /// lease every third of that while the handlers run; a worker that
    /// dies lets it run out, and another worker (of any replica) takes the
    /// row over.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How often workers look for due rows without being woken (default
    /// 2 s): rows made due by another process (a replay from the CLI,
    /// another replica) or by time (a retry's backoff).
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// Runs of an event before it is given up on as `dead` (default 8).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first retry's delay (default 2 s), doubled for each attempt up
    /// to [`WorkerConfig::backoff_max`]; backon's jitter adds up to as much
    /// again, so that retries of many events spread out.
    #[must_use]
    pub fn backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// The longest retry delay before jitter (default 15 minutes).
    #[must_use]
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = max;
        self
    }

    /// How long `done` rows are kept before the workers delete them
    /// (default 7 days; checked hourly). `dead` rows are kept.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long [`Workers::shutdown`] lets running handlers finish
    /// (default 30 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Transactional handlers run at once (PostgreSQL; default 4, at most
    /// 6). Each holds a connection of the inbox's shared pool of 8 for its
    /// transaction; the cap leaves connections for reads and operators'
    /// writes, and the writer and the `LISTEN` connection have their own,
    /// so slow transactional handlers never hold up deliveries. Events
    /// waiting for a slot keep their leases.
    #[must_use]
    pub fn transactional_concurrency(mut self, n: usize) -> Self {
        let most = usize::try_from(crate::db::POOL_SIZE).unwrap_or(8) - 2;
        self.transactional_concurrency = n.clamp(1, most);
        self
    }

    /// The delay before a retry after `attempts` runs: the `attempts`th
    /// step of backon's exponential backoff, with its jitter.
    fn backoff(&self, attempts: u32) -> Duration {
        let steps = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_base)
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .without_max_times()
            .build()
            // Past the cap every step is the cap: no need to walk there.
            .nth(steps.min(64))
            .unwrap_or(self.backoff_max)
    }
}

/// The future a transactional handler returns.
pub type TxFuture<'c> = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'c>>;

/// A handler that writes in the inbox's own transaction (PostgreSQL): its
/// writes commit together with the row's `done`, or not at all.
#[cfg(feature = "postgres")]
pub trait TransactionalHandler: Send + Sync + 'static {
    /// Handles `event` with `connection`, inside the transaction that will
    /// mark the event done.
    fn call<'c>(
        &'c self,
        event: Arc<Event>,
        connection: &'c mut sqlx::PgConnection,
    ) -> TxFuture<'c>;
}

#[cfg(feature = "postgres")]
impl<F> TransactionalHandler for F
where
    F: for<'c> Fn(Arc<Event>, &'c mut sqlx::PgConnection) -> TxFuture<'c> + Send + Sync + 'static,
{
    fn call<'c>(
        &'c self,
        event: Arc<Event>,
        connection: &'c mut sqlx::PgConnection,
    ) -> TxFuture<'c> {
        self(event, connection)
    }
}

/// Builds [`Workers`]: the dispatcher, the configuration and, on
/// PostgreSQL, transactional handlers.
pub struct WorkersBuilder {
    inbox: Inbox,
    dispatcher: Dispatcher,
    config: WorkerConfig,
    #[cfg(feature = "postgres")]
    transactional: Vec<(SlugPattern, Arc<dyn TransactionalHandler>)>,
}

impl Inbox {
    /// Workers that run `dispatcher`'s handlers for this inbox's events.
    pub fn workers(&self, dispatcher: Dispatcher) -> WorkersBuilder {
        WorkersBuilder {
            inbox: self.clone(),
            dispatcher,
            config: WorkerConfig::default(),
            #[cfg(feature = "postgres")]
            transactional: Vec::new(),
        }
    }
}

impl WorkersBuilder {
    /// Sets how the workers run.
    #[must_use]
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a handler that runs in the transaction that marks a matching
    /// event done (PostgreSQL only): effect exactly once for writes to the
    /// same database. `pattern` is as for
    /// [`Dispatcher::on`](ricloud_webhook::Dispatcher::on). It runs after
    /// the dispatcher's handlers succeeded; if it fails, the transaction is
    /// rolled back and the event retried (the dispatcher's handlers then
    /// run again).
    ///
    /// # Panics
    /// When `pattern` is not `"*"`, `"<type>.*"` or `"<type>.<action>"`.
    #[cfg(feature = "postgres")]
    #[must_use]
    #[track_caller]
    pub fn transactional(mut self, pattern: &str, handler: impl TransactionalHandler) -> Self {
        let Some(parsed) = SlugPattern::parse(pattern) else {
            panic!(
                "invalid event pattern {pattern:?}: {}",
                SlugPattern::EXPECTED
            );
        };
        self.transactional.push((parsed, Arc::new(handler)));
        self
    }

    /// Starts the workers on the current Tokio runtime.
    ///
    /// On SQLite (one process per file), rows a previous run of this
    /// process left `running` when it stopped or died are taken back at
    /// once.
    pub fn spawn(self) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let grace = self.config.shutdown_grace;
        let shared = Arc::new(Run {
            inbox: self.inbox,
            dispatcher: self.dispatcher,
            #[cfg(feature = "postgres")]
            transaction_slots: tokio::sync::Semaphore::new(self.config.transactional_concurrency),
            config: self.config,
            held: Mutex::new(HashSet::new()),
            #[cfg(feature = "postgres")]
            transactional: self.transactional,
        });
        let task = tokio::spawn(run(shared, stopped));
        Workers { stop, task, grace }
    }
}

impl fmt::Debug for WorkersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersBuilder")
            .field("inbox", &self.inbox)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Running workers; [`Workers::shutdown`] stops them.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    grace: Duration,
}

impl Workers {
    /// Stops taking rows and lets the handlers running finish for up to
    /// the shutdown grace; rows still running then keep their lease, which
    /// runs out, and are taken again later.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(self.grace + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("inbox workers did not stop within the shutdown grace");
        }
    }
}

/// What every worker task shares.
struct Run {
    inbox: Inbox,
    dispatcher: Dispatcher,
    config: WorkerConfig,
    /// The leases of the rows this process is running: what the renewer
    /// renews. A row leaves it once its outcome is committed, or just
    /// before a transactional handler's transaction marks it done.
    held: Mutex<HashSet<Lease>>,
    #[cfg(feature = "postgres")]
    transactional: Vec<(SlugPattern, Arc<dyn TransactionalHandler>)>,
    /// Transactional handlers running at once, each holding a connection
    /// of the shared pool.
    #[cfg(feature = "postgres")]
    transaction_slots: tokio::sync::Semaphore,
}

impl Run {
    fn hold(&self, lease: &Lease) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(lease.clone());
    }

    fn release(&self, lease: &Lease) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(lease);
    }
}

async fn run(shared: Arc<Run>, mut stopped: watch::Receiver<bool>) {
    let inbox = &shared.inbox;
    if !inbox.is_postgres() {
        if let Err(e) = inbox.expire_leases().await {
            tracing::warn!(error = %e, "cannot take back the rows a previous run left running");
        }
    }
    // Leases are renewed by a task of their own, never from inside a
    // handler's future: a renewal that waits cannot keep a handler (or its
    // transaction) from being polled.
    let renewer = tokio::spawn(renew(Arc::clone(&shared)));
    #[cfg(feature = "postgres")]
    let mut listener = inbox.listener().await;
    // Handlers running, each ending with how its row is to be settled.
    let mut running: JoinSet<Option<(Lease, Settle)>> = JoinSet::new();
    // Settles waiting for their commit: a handler's slot is free as soon as
    // it is done, not a commit later, so each commit takes a full batch.
    let mut settling: JoinSet<()> = JoinSet::new();
    let mut poll = tokio::time::interval(shared.config.poll);
    let mut purge = tokio::time::interval(Duration::from_secs(60 * 60));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Take only when a quarter of the slots are free (or none are busy):
    // each take waits for a commit, so many small ones would starve.
    let batch = (shared.config.concurrency / 4).max(1);
    loop {
        if *stopped.borrow() {
            break;
        }
        while let Some(ended) = running.try_join_next() {
            settle(&shared, &mut settling, ended);
        }
        while settling.try_join_next().is_some() {}
        // Registered before looking, so a commit in between still wakes us.
        let woken = inbox.inner.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let room = shared.config.concurrency.saturating_sub(running.len());
        if room >= batch || (room > 0 && running.is_empty()) {
            match take(inbox, &shared.config, room).await {
                Ok(rows) => {
                    let full = rows.len() == room;
                    for row in rows {
                        shared.hold(&row.lease);
                        running.spawn(run_one(Arc::clone(&shared), row));
                    }
                    if full {
                        // More may be due: look again as soon as there is room.
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inbox workers cannot take rows; trying again shortly");
                    tokio::select! {
                        _ = stopped.changed() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
        }
        #[cfg(feature = "postgres")]
        let notified = async {
            match listener.as_mut() {
                Some(listener) => match listener.try_recv().await {
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                },
                None => std::future::pending().await,
            }
        };
        #[cfg(not(feature = "postgres"))]
        let notified = std::future::pending::<()>();
        tokio::select! {
            _ = stopped.changed() => break,
            () = &mut woken => {}
            () = notified => {}
            Some(ended) = running.join_next(), if !running.is_empty() => settle(&shared, &mut settling, ended),
            _ = poll.tick() => {}
            _ = purge.tick() => {
                let before = SystemTime::now()
                    .checked_sub(shared.config.retention)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                match inbox.purge_done_before(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "purged done events past their retention"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge done events"),
                }
            }
        }
    }
    let grace = shared.config.shutdown_grace;
    let drained = async {
        while let Some(ended) = running.join_next().await {
            settle(&shared, &mut settling, ended);
        }
        while settling.join_next().await.is_some() {}
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            "handlers still running after the shutdown grace; their rows will be retried"
        );
        running.shutdown().await;
    }
    while settling.join_next().await.is_some() {}
    renewer.abort();
}

/// Renews the leases of every row this process runs, every third of the
/// lease, in one operation.
async fn renew(shared: Arc<Run>) {
    let every = shared.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let leases: Vec<Lease> = shared
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        if leases.is_empty() {
            continue;
        }
        let renewed = shared
            .inbox
            .inner
            .committer
            .renew(leases, shared.config.lease, shared.inbox.is_postgres())
            .await;
        if let Err(e) = renewed {
            tracing::warn!(error = %e, "cannot renew the leases of running events");
        }
    }
}

/// Sends a finished run's outcome to be committed, without holding the
/// run's slot while it is.
fn settle(
    shared: &Arc<Run>,
    settling: &mut JoinSet<()>,
    ended: Result<Option<(Lease, Settle)>, tokio::task::JoinError>,
) {
    match ended {
        Ok(Some((lease, outcome))) => {
            settling.spawn(settle_one(Arc::clone(shared), lease, outcome));
        }
        Ok(None) => {}
        Err(e) => report_panic::<()>(Err(e)),
    }
}

fn report_panic<T>(ended: Result<T, tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!("an inbox worker task panicked");
        }
    }
}

async fn take(
    inbox: &Inbox,
    config: &WorkerConfig,
    room: usize,
) -> Result<Vec<Taken>, crate::InboxError> {
    inbox
        .inner
        .committer
        .take(
            inbox.inner.owner.clone(),
            room,
            config.lease,
            inbox.is_postgres(),
        )
        .await
}

/// Runs one row's handlers; how the row is to be settled (`None` when a
/// transactional handler settled it already).
async fn run_one(shared: Arc<Run>, row: Taken) -> Option<(Lease, Settle)> {
    let Taken {
        lease,
        body,
        attempts,
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
    let settle = match StoredEvent::from_store(body) {
        Ok(event) => {
            let outcome = shared.dispatcher.dispatch_stored(&event).await;
            settle_for(&shared, &event, &lease, attempts, outcome).await
        }
        Err(e) => Some(Settle::Dead {
            error: format!("the stored body is not an event: {e}"),
        }),
    };
    let settle = settle?;
    log(&lease.event_id, attempts, &settle);
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
async fn settle_one(shared: Arc<Run>, lease: Lease, outcome: Settle) {
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
    let result = shared
        .inbox
        .inner
        .committer
        .settle(lease.clone(), outcome)
        .await;
    shared.release(&lease);
    let event_id = lease.event_id.escape_debug();
    match result {
        Ok(true) => {}
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

fn log(event_id: &str, attempts: u32, settle: &Settle) {
    let event_id = event_id.escape_debug();
    match settle {
        Settle::Done => tracing::debug!(event_id = %event_id, attempts, "event done"),
        Settle::Retry { error, .. } => {
            tracing::debug!(event_id = %event_id, error = %error.escape_debug(), "handler failure");
            tracing::warn!(
                event_id = %event_id,
                attempts,
                "handlers failed; the event will be retried"
            );
        }
        Settle::Dead { error } => {
            tracing::debug!(event_id = %event_id, error = %error.escape_debug(), "why the event is dead");
            tracing::error!(
                event_id = %event_id,
                attempts,
                "event given up on (dead); replay it once fixed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let config = WorkerConfig::default()
            .backoff_base(Duration::from_secs(2))
            .backoff_max(Duration::from_secs(60));
        let secs = Duration::from_secs;
        for (attempts, step) in [
            (1, secs(2)),
            (2, secs(4)),
            (4, secs(16)),
            (10, secs(60)),
            (u32::MAX, secs(60)),
        ] {
            for _ in 0..50 {
                let delay = config.backoff(attempts);
                assert!(
                    (step..step * 2).contains(&delay),
                    "attempt {attempts}: {delay:?} outside [{step:?}, {:?})",
                    step * 2
                );
            }
        }
    }
}
