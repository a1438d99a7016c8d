//! Group commit: every write goes through one task, which runs whatever
//! has queued up since its last commit in one transaction, and answers each
//! caller only once that transaction is committed.
//!
//! While one batch commits (an fsync, milliseconds), the next one fills, so
//! concurrent deliveries share commits without waiting on a timer.

use std::collections::HashSet;
use std::fmt::Write as _;

use bytes::Bytes;
use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::db::{on_db, Db};
use crate::InboxError;

/// The most operations one transaction takes.
const MAX_BATCH: usize = 512;
/// Rows per multi-row statement (well under both engines' parameter limits).
const ROWS_PER_STATEMENT: usize = 64;

/// A write, with where to send its result.
pub(crate) enum Op {
    /// Queued mode: insert a pending row unless the event is there.
    Enqueue {
        row: NewRow,
        reply: oneshot::Sender<Result<bool, InboxError>>,
    },
    /// Inline mode: take the event, or say who has it.
    Claim {
        row: NewRow,
        owner: String,
        lease_until: i64,
        reply: oneshot::Sender<Result<InlineClaim, InboxError>>,
    },
    /// Inline mode: the handlers are done (`handled`) or gave up.
    Finish {
        event_id: String,
        owner: String,
        handled: bool,
        now: i64,
        reply: oneshot::Sender<Result<(), InboxError>>,
    },
    /// Workers: claim up to `limit` due rows.
    Take {
        owner: String,
        limit: i64,
        now: i64,
        lease_until: i64,
        postgres: bool,
        reply: oneshot::Sender<Result<Vec<Taken>, InboxError>>,
    },
    /// Workers: a row's outcome, fenced on the lease owner.
    Settle {
        event_id: String,
        owner: String,
        outcome: Settle,
        now: i64,
        reply: oneshot::Sender<Result<bool, InboxError>>,
    },
    /// Workers: extend the leases of rows still being handled.
    Renew {
        event_ids: Vec<String>,
        owner: String,
        until: i64,
        reply: oneshot::Sender<Result<(), InboxError>>,
    },
}

/// A verified event to store.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    pub(crate) event_id: String,
    pub(crate) slug: String,
    pub(crate) body: Bytes,
    pub(crate) now: i64,
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
    pub(crate) event_id: String,
    pub(crate) body: Vec<u8>,
    pub(crate) attempts: i64,
}

/// How a row ends a run.
#[derive(Debug, Clone)]
pub(crate) enum Settle {
    Done,
    Retry { run_at: i64, error: String },
    Dead { error: String },
}

/// The handle callers send their writes through.
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    ops: mpsc::Sender<Op>,
}

impl Committer {
    /// Starts the task that commits for `db`; `wake` is notified after
    /// every commit that made rows due.
    pub(crate) fn spawn(db: Db, wake: std::sync::Arc<Notify>) -> Self {
        let (ops, received) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, received, wake));
        Self { ops }
    }

    /// Sends `op` (built around a reply channel) and waits for its result.
    pub(crate) async fn call<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, InboxError>>) -> Op,
    ) -> Result<T, InboxError> {
        let (reply, result) = oneshot::channel();
        self.ops
            .send(op(reply))
            .await
            .map_err(|_| InboxError::closed())?;
        result.await.map_err(|_| InboxError::closed())?
    }
}

async fn run(db: Db, mut received: mpsc::Receiver<Op>, wake: std::sync::Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while received.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let made_due = batch.iter().any(|op| matches!(op, Op::Enqueue { .. }))
            || batch.iter().any(|op| {
                matches!(
                    op,
                    Op::Settle {
                        outcome: Settle::Retry { .. },
                        ..
                    }
                )
            });
        commit(&db, &mut batch).await;
        if made_due {
            wake.notify_waiters();
        }
    }
}

/// A reply waiting for the commit, with its result.
enum Pending {
    Enqueue(oneshot::Sender<Result<bool, InboxError>>, bool),
    Claim(
        oneshot::Sender<Result<InlineClaim, InboxError>>,
        InlineClaim,
    ),
    Unit(oneshot::Sender<Result<(), InboxError>>),
    Take(oneshot::Sender<Result<Vec<Taken>, InboxError>>, Vec<Taken>),
    Settle(oneshot::Sender<Result<bool, InboxError>>, bool),
}

impl Pending {
    fn ok(self) {
        let _ = match self {
            Self::Enqueue(reply, new) => reply.send(Ok(new)).map_err(drop),
            Self::Claim(reply, claim) => reply.send(Ok(claim)).map_err(drop),
            Self::Unit(reply) => reply.send(Ok(())).map_err(drop),
            Self::Take(reply, rows) => reply.send(Ok(rows)).map_err(drop),
            Self::Settle(reply, settled) => reply.send(Ok(settled)).map_err(drop),
        };
    }
}

/// Fails every operation of a batch with `error`.
fn fail_all(ops: Vec<Op>, pending: Vec<Pending>, error: &InboxError) {
    for op in ops {
        let _ = match op {
            Op::Enqueue { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Op::Claim { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Op::Finish { reply, .. } | Op::Renew { reply, .. } => {
                reply.send(Err(error.clone())).map_err(drop)
            }
            Op::Take { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Op::Settle { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
        };
    }
    for pending in pending {
        let _ = match pending {
            Pending::Enqueue(reply, _) => reply.send(Err(error.clone())).map_err(drop),
            Pending::Claim(reply, _) => reply.send(Err(error.clone())).map_err(drop),
            Pending::Unit(reply) => reply.send(Err(error.clone())).map_err(drop),
            Pending::Take(reply, _) => reply.send(Err(error.clone())).map_err(drop),
            Pending::Settle(reply, _) => reply.send(Err(error.clone())).map_err(drop),
        };
    }
}

/// Runs `batch` in one transaction; every caller learns the outcome only
/// after the commit, and all of them fail together if anything fails.
async fn commit(db: &Db, batch: &mut Vec<Op>) {
    let (enqueues, others): (Vec<Op>, Vec<Op>) = std::mem::take(batch)
        .into_iter()
        .partition(|op| matches!(op, Op::Enqueue { .. }));
    let (dones, others): (Vec<Op>, Vec<Op>) = others.into_iter().partition(|op| {
        matches!(
            op,
            Op::Settle {
                outcome: Settle::Done,
                ..
            }
        )
    });
    let mut enqueues = enqueues.into_iter();
    let mut dones = dones.into_iter();
    let mut others = others.into_iter();
    let mut pending = Vec::new();
    let result = on_db!(db, pool => {
        async {
            let mut tx = pool.begin().await?;
            // Enqueues: one multi-row insert per chunk; the ids it returns
            // are the new ones, the rest were there already (a redelivery,
            // or the same event twice in this batch: the first one counts).
            let mut new_ids = HashSet::new();
            loop {
                let chunk: Vec<Op> = enqueues.by_ref().take(ROWS_PER_STATEMENT).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut sql = String::from(
                    "INSERT INTO ricloud_inbox (event_id, slug, body, state, attempts, run_at, received_at, updated_at) VALUES ",
                );
                for i in 0..chunk.len() {
                    let p = 4 * i;
                    let _ = write!(
                        sql,
                        "{}(${}, ${}, ${}, 'pending', 0, ${}, ${}, ${})",
                        if i == 0 { "" } else { ", " },
                        p + 1, p + 2, p + 3, p + 4, p + 4, p + 4
                    );
                }
                sql.push_str(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for op in &chunk {
                    if let Op::Enqueue { row, .. } = op {
                        query = query
                            .bind(row.event_id.as_str())
                            .bind(row.slug.as_str())
                            .bind(row.body.as_ref())
                            .bind(row.now);
                    }
                }
                let inserted = query.fetch_all(&mut *tx).await;
                let inserted = match inserted {
                    Ok(rows) => rows,
                    Err(e) => {
                        // Put the chunk back in line to be failed with the rest.
                        let rest: Vec<Op> = chunk.into_iter().chain(enqueues.by_ref()).collect();
                        enqueues = rest.into_iter();
                        return Err(e);
                    }
                };
                let mut any_new = false;
                for r in &inserted {
                    if let Ok(id) = r.try_get::<String, _>(0) {
                        any_new = true;
                        new_ids.insert(id);
                    }
                }
                for op in chunk {
                    if let Op::Enqueue { row, reply } = op {
                        pending.push(Pending::Enqueue(reply, new_ids.remove(&row.event_id)));
                    }
                }
                if any_new && db.is_postgres() {
                    // Wakes the workers of every replica, at commit.
                    sqlx::query("SELECT pg_notify('ricloud_inbox', '')")
                        .execute(&mut *tx)
                        .await?;
                }
            }
            // Rows done: one update per chunk, fenced on the lease owner;
            // the ids it returns are the ones this worker still held.
            loop {
                let chunk: Vec<Op> = dones.by_ref().take(ROWS_PER_STATEMENT).collect();
                let Some(Op::Settle { owner, now, .. }) = chunk.first() else {
                    break;
                };
                let (owner, now) = (owner.clone(), *now);
                let mut sql = String::from(
                    "UPDATE ricloud_inbox SET state = 'done', done_at = $2, updated_at = $2, lease_owner = NULL, lease_expires = NULL \
                     WHERE lease_owner = $1 AND state = 'running' AND event_id IN (",
                );
                for i in 0..chunk.len() {
                    let _ = write!(sql, "{}${}", if i == 0 { "" } else { ", " }, i + 3);
                }
                sql.push_str(") RETURNING event_id");
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner.as_str()).bind(now);
                for op in &chunk {
                    if let Op::Settle { event_id, .. } = op {
                        query = query.bind(event_id.as_str());
                    }
                }
                // Fenced on one owner: another owner's rows (a process has
                // one) go through one by one below.
                let mut settled = HashSet::new();
                match query.fetch_all(&mut *tx).await {
                    Ok(rows) => {
                        for r in &rows {
                            if let Ok(id) = r.try_get::<String, _>(0) {
                                settled.insert(id);
                            }
                        }
                    }
                    Err(e) => {
                        let rest: Vec<Op> = chunk.into_iter().chain(dones.by_ref()).collect();
                        dones = rest.into_iter();
                        return Err(e);
                    }
                }
                for op in chunk {
                    match op {
                        Op::Settle { event_id, owner: o, reply, .. } if o == owner => {
                            pending.push(Pending::Settle(reply, settled.contains(&event_id)));
                        }
                        other => tx.apply(other, &mut pending).await?,
                    }
                }
            }
            for op in others.by_ref() {
                tx.apply(op, &mut pending).await?;
            }
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        }
        .await
    });
    match result {
        Ok(()) => pending.into_iter().for_each(Pending::ok),
        Err(e) => {
            let error = InboxError::database(e);
            tracing::error!(error = %error, "inbox commit failed; its deliveries are answered 503");
            fail_all(
                enqueues.chain(dones).chain(others).collect(),
                pending,
                &error,
            );
        }
    }
}

/// Runs one operation other than an enqueue in the batch's transaction.
/// On an error the operation is lost with its reply, whose caller then
/// sees the writer's answer missing: an error too.
trait Apply {
    fn apply<'a>(
        &'a mut self,
        op: Op,
        pending: &'a mut Vec<Pending>,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a;
}

/// The same statements for each engine: the SQL reads the same on both.
macro_rules! impl_apply {
    ($db:ty) => {
        impl Apply for sqlx::Transaction<'_, $db> {
            #[allow(clippy::too_many_lines, reason = "one arm per operation, each a statement")]
            fn apply<'a>(
                &'a mut self,
                op: Op,
                pending: &'a mut Vec<Pending>,
            ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a {
                async move {
    match op {
        Op::Enqueue { .. } => {}
        Op::Claim {
            row,
            owner,
            lease_until,
            reply,
        } => {
            let claimed = sqlx::query(
                "INSERT INTO ricloud_inbox (event_id, slug, body, state, attempts, run_at, lease_owner, lease_expires, received_at, updated_at) \
                 VALUES ($1, $2, $3, 'running', 1, $4, $5, $6, $4, $4) \
                 ON CONFLICT (event_id) DO UPDATE SET state = 'running', attempts = ricloud_inbox.attempts + 1, \
                 lease_owner = excluded.lease_owner, lease_expires = excluded.lease_expires, updated_at = excluded.updated_at \
                 WHERE ricloud_inbox.state = 'pending' OR (ricloud_inbox.state = 'running' AND ricloud_inbox.lease_expires < excluded.updated_at) \
                 RETURNING event_id",
            )
            .bind(row.event_id.as_str())
            .bind(row.slug.as_str())
            .bind(row.body.as_ref())
            .bind(row.now)
            .bind(owner.as_str())
            .bind(lease_until)
            .fetch_optional(&mut **self)
            .await?;
            let claim = if claimed.is_some() {
                InlineClaim::Claimed
            } else {
                let state = sqlx::query("SELECT state FROM ricloud_inbox WHERE event_id = $1")
                    .bind(row.event_id.as_str())
                    .fetch_optional(&mut **self)
                    .await?;
                match state.map(|r| r.try_get::<String, _>(0)).transpose()?.as_deref() {
                    Some("done" | "dead") => InlineClaim::Handled,
                    _ => InlineClaim::Busy,
                }
            };
            pending.push(Pending::Claim(reply, claim));
        }
        Op::Finish {
            event_id,
            owner,
            handled,
            now,
            reply,
        } => {
            let done = if handled {
                sqlx::query(
                    "UPDATE ricloud_inbox SET state = 'done', done_at = $3, updated_at = $3, lease_owner = NULL, lease_expires = NULL \
                     WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'",
                )
                .bind(event_id.as_str())
                .bind(owner.as_str())
                .bind(now)
                .execute(&mut **self)
                .await?
            } else {
                sqlx::query(
                    "DELETE FROM ricloud_inbox WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'",
                )
                .bind(event_id.as_str())
                .bind(owner.as_str())
                .execute(&mut **self)
                .await?
            };
            if done.rows_affected() == 0 {
                tracing::warn!(
                    event_id,
                    "the claim's lease ran out before the handlers finished; another delivery may run them again"
                );
            }
            pending.push(Pending::Unit(reply));
        }
        Op::Take {
            owner,
            limit,
            now,
            lease_until,
            postgres,
            reply,
        } => {
            // Due pending rows first, oldest first, then rows whose lease ran
            // out (a worker that died): each one statement that an index on
            // (state, run_at) serves, where one `OR` made a scan and a sort of
            // every pending row. PostgreSQL: rows another replica is taking
            // are skipped, not waited for; SQLite has one writer, this task.
            let (pending_sql, expired_sql) = if postgres {
                (
                    "UPDATE ricloud_inbox SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires = $2, updated_at = $3 \
                     WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE state = 'pending' AND run_at <= $3 \
                     ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING event_id, body, attempts",
                    "UPDATE ricloud_inbox SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires = $2, updated_at = $3 \
                     WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE state = 'running' AND lease_expires < $3 \
                     LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING event_id, body, attempts",
                )
            } else {
                (
                    "UPDATE ricloud_inbox SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires = $2, updated_at = $3 \
                     WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE state = 'pending' AND run_at <= $3 \
                     ORDER BY run_at LIMIT $4) \
                     RETURNING event_id, body, attempts",
                    "UPDATE ricloud_inbox SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires = $2, updated_at = $3 \
                     WHERE event_id IN (SELECT event_id FROM ricloud_inbox WHERE state = 'running' AND lease_expires < $3 \
                     LIMIT $4) \
                     RETURNING event_id, body, attempts",
                )
            };
            let mut taken = Vec::new();
            for sql in [expired_sql, pending_sql] {
                let room = limit - i64::try_from(taken.len()).unwrap_or(limit);
                if room <= 0 {
                    break;
                }
                let rows = sqlx::query(sql)
                    .bind(owner.as_str())
                    .bind(lease_until)
                    .bind(now)
                    .bind(room)
                    .fetch_all(&mut **self)
                    .await?;
                for r in &rows {
                    taken.push(Taken {
                        event_id: r.try_get(0)?,
                        body: r.try_get(1)?,
                        attempts: i64::from(r.try_get::<i32, _>(2)?),
                    });
                }
            }
            pending.push(Pending::Take(reply, taken));
        }
        Op::Settle {
            event_id,
            owner,
            outcome,
            now,
            reply,
        } => {
            let (state, run_at, error) = match &outcome {
                Settle::Done => ("done", now, None),
                Settle::Retry { run_at, error } => ("pending", *run_at, Some(error.as_str())),
                Settle::Dead { error } => ("dead", now, Some(error.as_str())),
            };
            // Fenced on the lease owner: a worker whose lease ran out (and
            // was taken over) changes nothing.
            let settled = sqlx::query(
                "UPDATE ricloud_inbox SET state = $3, run_at = $5, \
                 done_at = CASE WHEN $3 = 'done' THEN $4 ELSE done_at END, \
                 last_error = COALESCE($6, last_error), updated_at = $4, lease_owner = NULL, lease_expires = NULL \
                 WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'",
            )
            .bind(event_id.as_str())
            .bind(owner.as_str())
            .bind(state)
            .bind(now)
            .bind(run_at)
            .bind(error)
            .execute(&mut **self)
            .await?
            .rows_affected()
                == 1;
            pending.push(Pending::Settle(reply, settled));
        }
        Op::Renew {
            event_ids,
            owner,
            until,
            reply,
        } => {
            for event_id in &event_ids {
                sqlx::query(
                    "UPDATE ricloud_inbox SET lease_expires = $3 WHERE event_id = $1 AND lease_owner = $2 AND state = 'running'",
                )
                .bind(event_id.as_str())
                .bind(owner.as_str())
                .bind(until)
                .execute(&mut **self)
                .await?;
            }
            pending.push(Pending::Unit(reply));
        }
    }
    Ok(())
                }
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_apply!(sqlx::Sqlite);
#[cfg(feature = "postgres")]
impl_apply!(sqlx::Postgres);
