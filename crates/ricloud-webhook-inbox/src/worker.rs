//! Workers: take due rows under a lease, run the handlers, settle each row
//! (done, retried later with backoff, or dead), fenced on the lease.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ricloud_webhook::{Dispatcher, HandlerResult};
#[cfg(feature = "postgres")]
use ricloud_webhook::{Event, SlugPattern};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::commit::{Lease, Settle, Taken};
use crate::inbox::Inbox;

mod config;
mod settle;

pub use config::WorkerConfig;
use settle::{run_one, settle_one};

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
