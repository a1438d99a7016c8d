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
    let error = match on_db!(db, pool => run_batch(pool, works).await) {
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

async fn run_batch<DB: Engine>(
    pool: &sqlx::Pool<DB>,
    works: &[Work],
) -> Result<Vec<Answer>, sqlx::Error> {
    DB::run_batch(pool, works).await
}

/// The statements of a batch, on one engine.
trait Engine: sqlx::Database {
    fn run_batch<'a>(
        pool: &'a sqlx::Pool<Self>,
        works: &'a [Work],
    ) -> impl std::future::Future<Output = Result<Vec<Answer>, sqlx::Error>> + Send + 'a;
}

/// The same statements for each engine: the SQL reads the same on both.
macro_rules! impl_engine {
    ($db:ty) => {
        impl Engine for $db {
            fn run_batch<'a>(
                pool: &'a sqlx::Pool<Self>,
                works: &'a [Work],
            ) -> impl std::future::Future<Output = Result<Vec<Answer>, sqlx::Error>> + Send + 'a
            {
                async move {
                    let mut tx = pool.begin().await?;
                    let mut answers: Vec<Option<Answer>> = works.iter().map(|_| None).collect();
                    enqueue_all(&mut tx, works, &mut answers).await?;
                    settle_done_all(&mut tx, works, &mut answers).await?;
                    for (work, answer) in works.iter().zip(answers.iter_mut()) {
                        if answer.is_none() {
                            *answer = Some(apply(&mut tx, work).await?);
                        }
                    }
                    tx.commit().await?;
                    answers
                        .into_iter()
                        .map(|a| a.ok_or_else(|| sqlx::Error::Protocol("an operation without an answer".into())))
                        .collect()
                }
            }
        }

        impl_engine!(@ops $db);
    };
    (@ops $db:ty) => {
        /// Enqueues: one multi-row insert per chunk; the ids it returns
        /// are the new ones, the rest were there already (a redelivery, or
        /// the same event twice in this batch: the first one counts).
        #[allow(dead_code, reason = "one copy per engine")]
        async fn enqueue_all(
            tx: &mut sqlx::Transaction<'_, $db>,
            works: &[Work],
            answers: &mut [Option<Answer>],
        ) -> Result<(), sqlx::Error> {
            let rows: Vec<(usize, &NewRow)> = works
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match w {
                    Work::Enqueue(row) => Some((i, row)),
                    _ => None,
                })
                .collect();
            let mut any_new = false;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO ricloud_inbox (event_id, slug, body, state, attempts, run_at, received_at, updated_at) ",
                );
                query.push_values(chunk, |mut b, (_, row)| {
                    b.push_bind(row.event_id.as_str())
                        .push_bind(row.slug.as_str())
                        .push_bind(row.body.as_ref())
                        .push("'pending'")
                        .push("0")
                        .push(now_ms!())
                        .push_bind(row.received_ms)
                        .push(now_ms!());
                });
                query.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let mut new_ids = HashSet::new();
                for r in query.build().fetch_all(&mut **tx).await? {
                    new_ids.insert(r.try_get::<String, _>(0)?);
                }
                any_new |= !new_ids.is_empty();
                for (i, row) in chunk {
                    answers[*i] = Some(Answer::Enqueued(new_ids.remove(&row.event_id)));
                }
            }
            if any_new && <$db as sqlx::Database>::NAME == "PostgreSQL" {
                // Wakes the workers of every replica, at commit.
                sqlx::query("SELECT pg_notify('ricloud_inbox', '')")
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Rows done: one update per chunk, each row fenced on its lease;
        /// the ids it returns are the ones whose lease still held.
        #[allow(dead_code, reason = "one copy per engine")]
        async fn settle_done_all(
            tx: &mut sqlx::Transaction<'_, $db>,
            works: &[Work],
            answers: &mut [Option<Answer>],
        ) -> Result<(), sqlx::Error> {
            let leases: Vec<(usize, &Lease)> = works
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match w {
                    Work::Settle { lease, outcome: Settle::Done } => Some((i, lease)),
                    _ => None,
                })
                .collect();
            for chunk in leases.chunks(ROWS_PER_STATEMENT) {
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "UPDATE ricloud_inbox SET state = 'done', done_at = ", now_ms!(), ", updated_at = ", now_ms!(),
                    ", lease_owner = NULL, lease_expires = NULL, last_error = NULL, lease_token = CASE"
                ));
                // Each row written with the token of the take settling it
                // (the same as the row's, since the update is fenced on
                // it): what an audit of the table can check.
                for (_, lease) in chunk {
                    query
                        .push(" WHEN event_id = ")
                        .push_bind(lease.event_id.as_str())
                        .push(" THEN ")
                        .push_bind(lease.token);
                }
                query.push(" ELSE lease_token END WHERE state = 'running' AND (");
                fenced(&mut query, chunk.iter().map(|(_, lease)| *lease));
                query.push(") RETURNING event_id");
                let mut settled = HashSet::new();
                for r in query.build().fetch_all(&mut **tx).await? {
                    settled.insert(r.try_get::<String, _>(0)?);
                }
                for (i, lease) in chunk {
                    answers[*i] = Some(Answer::Settled(settled.contains(&lease.event_id)));
                }
            }
            Ok(())
        }

        /// `(event_id = .. AND lease_token = ..) OR ...` for `leases`.
        #[allow(dead_code, reason = "one copy per engine")]
        fn fenced<'a>(query: &mut sqlx::QueryBuilder<$db>, leases: impl Iterator<Item = &'a Lease>) {
            let mut or = query.separated(" OR ");
            for lease in leases {
                or.push("(event_id = ")
                    .push_bind_unseparated(lease.event_id.as_str())
                    .push_unseparated(" AND lease_token = ")
                    .push_bind_unseparated(lease.token)
                    .push_unseparated(")");
            }
        }

        /// Runs one operation other than an enqueue or a done in the
        /// batch's transaction.
        #[allow(dead_code, reason = "one copy per engine")]
        #[allow(clippy::too_many_lines, reason = "one arm per operation, each a statement")]
        async fn apply(tx: &mut sqlx::Transaction<'_, $db>, work: &Work) -> Result<Answer, sqlx::Error> {
            Ok(match work {
                // Answered by the multi-row insert before `apply` runs;
                // should one ever get here, it fails (a 503), never
                // "already queued" for a row not written.
                Work::Enqueue(_) => {
                    return Err(sqlx::Error::Protocol(
                        "an enqueue outside the multi-row insert".into(),
                    ))
                }
                Work::Claim { row, owner, lease_ms } => {
                    let claimed = sqlx::query(concat!(
                        "INSERT INTO ricloud_inbox (event_id, slug, body, state, attempts, lease_token, run_at, lease_owner, lease_expires, received_at, updated_at) \
                         VALUES ($1, $2, $3, 'running', 1, 1, ", now_ms!(), ", $5, ", now_ms!(), " + $6, $4, ", now_ms!(), ") \
                         ON CONFLICT (event_id) DO UPDATE SET state = 'running', attempts = ricloud_inbox.attempts + 1, \
                         lease_token = ricloud_inbox.lease_token + 1, \
                         lease_owner = excluded.lease_owner, lease_expires = excluded.lease_expires, updated_at = excluded.updated_at \
                         WHERE ricloud_inbox.state = 'pending' OR (ricloud_inbox.state = 'running' AND ricloud_inbox.lease_expires < excluded.updated_at) \
                         RETURNING event_id"
                    ))
                    .bind(row.event_id.as_str())
                    .bind(row.slug.as_str())
                    .bind(row.body.as_ref())
                    .bind(row.received_ms)
                    .bind(owner.as_str())
                    .bind(*lease_ms)
                    .fetch_optional(&mut **tx)
                    .await?;
                    Answer::Claim(if claimed.is_some() {
                        InlineClaim::Claimed
                    } else {
                        let state = sqlx::query("SELECT state FROM ricloud_inbox WHERE event_id = $1")
                            .bind(row.event_id.as_str())
                            .fetch_optional(&mut **tx)
                            .await?;
                        match state.map(|r| r.try_get::<String, _>(0)).transpose()?.as_deref() {
                            Some("done" | "dead") => InlineClaim::Handled,
                            _ => InlineClaim::Busy,
                        }
                    })
                }
                Work::Finish { event_id, owner, handled } => {
                    let sql = if *handled {
                        concat!(
                            "UPDATE ricloud_inbox SET state = 'done', done_at = ", now_ms!(), ", updated_at = ", now_ms!(),
                            ", lease_owner = NULL, lease_expires = NULL, last_error = NULL \
                             WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'"
                        )
                    } else {
                        "DELETE FROM ricloud_inbox WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'"
                    };
                    let done = sqlx::query(sql)
                        .bind(event_id.as_str())
                        .bind(owner.as_str())
                        .execute(&mut **tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        tracing::warn!(
                            event_id = %event_id.escape_debug(),
                            "the claim's lease ran out before the handlers finished; another delivery may run them again"
                        );
                    }
                    Answer::Done
                }
                Work::Take { owner, limit, lease_ms, postgres } => {
                    // Rows whose lease ran out (a worker that died) first,
                    // then due pending rows, oldest first: each one
                    // statement that the index on (state, run_at) serves.
                    // PostgreSQL: rows another replica is taking are
                    // skipped, not waited for; SQLite has one writer, this
                    // task. Every take raises the row's lease token.
                    macro_rules! take_sql {
                        ($which:literal, $lock:literal) => {
                            concat!(
                                "UPDATE ricloud_inbox SET state = 'running', attempts = attempts + 1, lease_token = lease_token + 1, \
                                 lease_owner = $1, lease_expires = ", now_ms!(), " + $2, updated_at = ", now_ms!(),
                                " WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE ", $which, " LIMIT $3", $lock, ") \
                                 RETURNING event_id, body, attempts, lease_token"
                            )
                        };
                    }
                    let statements = if *postgres {
                        [
                            take_sql!("state = 'running' AND lease_expires < (SELECT now_ms FROM ricloud_inbox_clock)", " FOR UPDATE SKIP LOCKED"),
                            take_sql!("state = 'pending' AND run_at <= (SELECT now_ms FROM ricloud_inbox_clock) ORDER BY run_at", " FOR UPDATE SKIP LOCKED"),
                        ]
                    } else {
                        [
                            take_sql!("state = 'running' AND lease_expires < (SELECT now_ms FROM ricloud_inbox_clock)", ""),
                            take_sql!("state = 'pending' AND run_at <= (SELECT now_ms FROM ricloud_inbox_clock) ORDER BY run_at", ""),
                        ]
                    };
                    let mut taken = Vec::new();
                    for sql in statements {
                        let room = limit - i64::try_from(taken.len()).unwrap_or(*limit);
                        if room <= 0 {
                            break;
                        }
                        let rows = sqlx::query(sql)
                            .bind(owner.as_str())
                            .bind(*lease_ms)
                            .bind(room)
                            .fetch_all(&mut **tx)
                            .await?;
                        for r in &rows {
                            taken.push(Taken {
                                lease: Lease {
                                    event_id: r.try_get(0)?,
                                    token: r.try_get(3)?,
                                },
                                body: r.try_get(1)?,
                                attempts: i64::from(r.try_get::<i32, _>(2)?),
                            });
                        }
                    }
                    Answer::Taken(taken)
                }
                Work::Settle { lease, outcome } => {
                    let (state, delay_ms, error) = match outcome {
                        Settle::Done => ("done", 0, None),
                        Settle::Retry { delay_ms, error } => ("pending", *delay_ms, Some(error.as_str())),
                        Settle::Dead { error } => ("dead", 0, Some(error.as_str())),
                    };
                    // Fenced on the lease token: a run whose lease ran out
                    // (and was taken again, by any worker) changes nothing.
                    // A success clears the error of an earlier attempt.
                    let settled = sqlx::query(concat!(
                        "UPDATE ricloud_inbox SET state = $3, \
                         run_at = CASE WHEN $3 = 'pending' THEN ", now_ms!(), " + $4 ELSE run_at END, \
                         done_at = CASE WHEN $3 = 'done' THEN ", now_ms!(), " ELSE done_at END, \
                         last_error = $5, updated_at = ", now_ms!(), ", lease_owner = NULL, lease_expires = NULL, lease_token = $2 \
                         WHERE event_id = $1 AND lease_token = $2 AND state = 'running'"
                    ))
                    .bind(lease.event_id.as_str())
                    .bind(lease.token)
                    .bind(state)
                    .bind(delay_ms)
                    .bind(error)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
                        == 1;
                    Answer::Settled(settled)
                }
                Work::Renew { leases, lease_ms, postgres } => {
                    // PostgreSQL: a row locked elsewhere (a transactional
                    // handler marking it done) is skipped, never waited for.
                    for chunk in leases.chunks(ROWS_PER_STATEMENT) {
                        let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                            "UPDATE ricloud_inbox SET lease_expires = ", now_ms!(), " + "
                        ));
                        query.push_bind(*lease_ms);
                        query.push(" WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE state = 'running' AND (");
                        fenced(&mut query, chunk.iter());
                        query.push(if *postgres { ") FOR UPDATE SKIP LOCKED)" } else { "))" });
                        query.build().execute(&mut **tx).await?;
                    }
                    Answer::Done
                }
            })
        }
    };
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    impl_engine!(sqlx::Sqlite);
}
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    impl_engine!(sqlx::Postgres);
}
