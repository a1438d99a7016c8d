//! Group commit: the queue's writes go through one task, which runs
//! whatever has queued up since its last commit in one transaction, and
//! answers each caller only once that transaction is committed.
//!
//! While one batch commits (an fsync, milliseconds), the next one fills, so
//! concurrent deliveries share commits without waiting on a timer.
//!
//! One bad operation does not sink its batch: when the database refuses a
//! batch, each of its operations is run again in a transaction of its own,
//! so the good ones commit and only the one the database refuses is
//! answered with an error. A batch that fails for want of a connection
//! fails whole (running it again one by one would only wait longer).
//!
//! The writer has a connection of its own; on PostgreSQL its statements
//! have a lock and a statement timeout, and every call into it has a
//! timeout, so a lock held elsewhere is an error, never a frozen writer.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::db::{on_db, Db};
use crate::InboxError;

/// The most operations one transaction takes.
const MAX_BATCH: usize = 512;
/// Rows per multi-row statement (well under both engines' parameter limits).
const ROWS_PER_STATEMENT: usize = 64;
/// How long a caller waits for the writer's answer (queueing included).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The database's clock in milliseconds since the epoch (a view the
/// migrations create on both engines).
macro_rules! now_ms {
    () => {
        "(SELECT now_ms FROM ricloud_inbox_clock)"
    };
}

/// The hold of one take of a row: renewing and settling are fenced on the
/// token, which every take of the row raises.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Lease {
    pub(crate) event_id: String,
    pub(crate) token: i64,
}

/// A write. Plain data, so a batch the database refused can be run again
/// one operation at a time.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    /// Queued mode: insert a pending row unless the event is there.
    Enqueue(NewRow),
    /// Inline mode: take the event, or say who has it.
    Claim {
        row: NewRow,
        owner: String,
        lease_ms: i64,
    },
    /// Inline mode: the handlers are done (`handled`) or gave up.
    Finish {
        event_id: String,
        owner: String,
        handled: bool,
    },
    /// Workers: take up to `limit` due rows.
    Take {
        owner: String,
        limit: i64,
        lease_ms: i64,
        postgres: bool,
    },
    /// Workers: a row's outcome, fenced on its lease.
    Settle { lease: Lease, outcome: Settle },
    /// Workers: extend the leases of rows still being handled.
    Renew {
        leases: Vec<Lease>,
        lease_ms: i64,
        postgres: bool,
    },
}

/// What an operation answers.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Enqueue: whether the row is new.
    Enqueued(bool),
    /// Claim.
    Claim(InlineClaim),
    /// Finish, Renew.
    Done,
    /// Take.
    Taken(Vec<Taken>),
    /// Settle: whether the lease still held the row.
    Settled(bool),
}

/// A verified event to store.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    pub(crate) event_id: String,
    pub(crate) slug: String,
    pub(crate) body: Bytes,
    /// The webhook config that delivered it, when the receiver serves several.
    pub(crate) config: Option<String>,
    /// Which secret verified it; `None` when fetched from the API.
    pub(crate) matched_secret: Option<i32>,
    /// The `Ricloud-Signature` value that verified it; `None` when fetched
    /// from the API.
    pub(crate) signature: Option<String>,
    /// When it was received, by the receiver's clock (shown to operators).
    pub(crate) received_ms: i64,
}

/// What an inline claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InlineClaim {
    Claimed,
    Handled,
    Busy,
}

/// A row a worker took.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) lease: Lease,
    pub(crate) body: Vec<u8>,
    pub(crate) attempts: i64,
    pub(crate) config: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) received_ms: i64,
}

/// How a row ends a run.
#[derive(Debug, Clone)]
pub(crate) enum Settle {
    Done,
    /// Pending again, due `delay_ms` from now by the database's clock.
    Retry {
        delay_ms: i64,
        error: String,
    },
    Dead {
        error: String,
    },
}

type Reply = oneshot::Sender<Result<Answer, InboxError>>;

/// The handle callers send their writes through.
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    ops: mpsc::Sender<(Work, Reply)>,
}

impl Committer {
    /// Starts the task that commits on `db` (the writer's own
    /// connection); `wake` is notified after every commit that made rows
    /// due.
    pub(crate) fn spawn(db: Db, wake: std::sync::Arc<Notify>) -> Self {
        let (ops, received) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, received, wake));
        Self { ops }
    }

    /// Sends `work` and waits, at most [`CALL_TIMEOUT`], for its result.
    pub(crate) async fn call(&self, work: Work) -> Result<Answer, InboxError> {
        let (reply, result) = oneshot::channel();
        let answer = async {
            self.ops
                .send((work, reply))
                .await
                .map_err(|_| InboxError::closed())?;
            result.await.map_err(|_| InboxError::closed())?
        };
        tokio::time::timeout(CALL_TIMEOUT, answer)
            .await
            .map_err(|_| InboxError::timed_out(CALL_TIMEOUT))?
    }

    pub(crate) async fn enqueue(&self, row: NewRow) -> Result<bool, InboxError> {
        match self.call(Work::Enqueue(row)).await? {
            Answer::Enqueued(new) => Ok(new),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn claim(
        &self,
        row: NewRow,
        owner: String,
        lease: Duration,
    ) -> Result<InlineClaim, InboxError> {
        let lease_ms = ms(lease);
        match self
            .call(Work::Claim {
                row,
                owner,
                lease_ms,
            })
            .await?
        {
            Answer::Claim(claim) => Ok(claim),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn finish(
        &self,
        event_id: String,
        owner: String,
        handled: bool,
    ) -> Result<(), InboxError> {
        let work = Work::Finish {
            event_id,
            owner,
            handled,
        };
        self.call(work).await.map(drop)
    }

    pub(crate) async fn take(
        &self,
        owner: String,
        limit: usize,
        lease: Duration,
        postgres: bool,
    ) -> Result<Vec<Taken>, InboxError> {
        let work = Work::Take {
            owner,
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            lease_ms: ms(lease),
            postgres,
        };
        match self.call(work).await? {
            Answer::Taken(rows) => Ok(rows),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn settle(&self, lease: Lease, outcome: Settle) -> Result<bool, InboxError> {
        match self.call(Work::Settle { lease, outcome }).await? {
            Answer::Settled(settled) => Ok(settled),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn renew(
        &self,
        leases: Vec<Lease>,
        lease: Duration,
        postgres: bool,
    ) -> Result<(), InboxError> {
        let work = Work::Renew {
            leases,
            lease_ms: ms(lease),
            postgres,
        };
        self.call(work).await.map(drop)
    }
}

/// A duration in whole milliseconds, as the table keeps times.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn unexpected(answer: &Answer) -> InboxError {
    InboxError::internal(format!(
        "the writer answered {answer:?} to another operation"
    ))
}

async fn run(db: Db, mut received: mpsc::Receiver<(Work, Reply)>, wake: std::sync::Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while received.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (works, replies): (Vec<Work>, Vec<Reply>) = batch.drain(..).unzip();
        let made_due = works.iter().any(|w| {
            matches!(
                w,
                Work::Enqueue(_)
                    | Work::Settle {
                        outcome: Settle::Retry { .. },
                        ..
                    }
            )
        });
        let results = commit(&db, &works).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that gave up waiting is gone; nothing to tell.
            let _ = reply.send(result);
        }
        if made_due {
            wake.notify_waiters();
        }
    }
}

/// Runs `works` in one transaction and returns each one's result, in
/// order. When the database refuses the batch, each operation runs again in
/// a transaction of its own, so that only the ones it refuses fail.
async fn commit(db: &Db, works: &[Work]) -> Vec<Result<Answer, InboxError>> {
    let started = std::time::Instant::now();
    let batch = on_db!(db, pool => run_batch(pool, works).await);
    crate::telemetry::commit_seconds(started.elapsed());
    let error = match batch {
        Ok(answers) => return answers.into_iter().map(Ok).collect(),
        Err(error) => error,
    };
    if works.len() == 1 || !matches!(error, sqlx::Error::Database(_)) {
        let error = InboxError::database(error);
        tracing::error!(error = %error, operations = works.len(), "inbox commit failed; its deliveries are answered 503");
        return works.iter().map(|_| Err(error.clone())).collect();
    }
    tracing::warn!(
        error = %error,
        operations = works.len(),
        "inbox commit refused; running its operations one by one"
    );
    let mut results = Vec::with_capacity(works.len());
    for work in works {
        let one = on_db!(db, pool => run_batch(pool, std::slice::from_ref(work)).await);
        results.push(match one {
            Ok(mut answers) => answers.pop().ok_or_else(|| unexpected(&Answer::Done)),
            Err(e) if !matches!(e, sqlx::Error::Database(_)) => {
                // The database went away meanwhile: the rest fail at once
                // rather than each waiting for a connection in turn.
                let error = InboxError::database(e);
                tracing::error!(error = %error, "inbox commit failed; its deliveries are answered 503");
                while results.len() < works.len() {
                    results.push(Err(error.clone()));
                }
                return results;
            }
            Err(e) => {
                let error = InboxError::database(e);
                tracing::error!(error = %error, operation = work.name(), "an inbox operation was refused; answered with an error");
                Err(error)
            }
        });
    }
    results
}

impl Work {
    fn name(&self) -> &'static str {
        match self {
            Self::Enqueue(_) => "enqueue",
            Self::Claim { .. } => "claim",
            Self::Finish { .. } => "finish",
            Self::Take { .. } => "take",
            Self::Settle { .. } => "settle",
            Self::Renew { .. } => "renew",
        }
    }
}

// After `now_ms!`, which the batch's statements use.
mod batch;

use batch::run_batch;
