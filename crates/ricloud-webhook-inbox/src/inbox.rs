//! The inbox: the receiver's store in both modes, and what an operator
//! asks of it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ricloud_webhook::{
    Claim, DeliveryStore, Enqueued, Event, EventQueue, SignatureHeader, StoreError, StoreFuture,
    VerifiedEvent,
};
use sqlx::Row as _;
use tokio::sync::Notify;

use crate::commit::{Committer, InlineClaim, NewRow};
use crate::db::{on_db, Db};
use crate::rows::{read_row, ListFilter, Replay, Row, RowWithBody, Stats};
use crate::InboxError;

/// A durable inbox on SQLite or PostgreSQL: one table that is both the
/// deduplication set and the queue, keyed by event id.
///
/// - As an [`EventQueue`] (give it to
///   [`Receiver::queued`](ricloud_webhook::Receiver::queued)): a verified
///   event is committed as a `pending` row before the delivery is answered
///   200; [`Inbox::workers`] run the handlers.
/// - As a [`DeliveryStore`] (give it to
///   [`Receiver::inline`](ricloud_webhook::Receiver::inline)): the
///   inline mode's record of handled events, shared by every replica on
///   one PostgreSQL database and kept across restarts.
///
/// The queue's writes (enqueues, inline claims, the workers' takes,
/// renewals and outcomes) go through one task per process, on a connection
/// of its own, that commits whatever has queued up since its last commit in
/// one transaction (group commit) and answers each caller after that
/// commit. Operators' writes ([`Inbox::replay`], [`Inbox::purge_done_before`],
/// [`Inbox::take_back_abandoned`]) and transactional handlers use a pool
/// beside it. Cloning an `Inbox` shares it.
#[derive(Clone)]
pub struct Inbox {
    pub(crate) inner: Arc<Shared>,
    inline_lease: Duration,
}

pub(crate) struct Shared {
    /// Reads, operators' writes, transactional handlers.
    pub(crate) db: Db,
    /// The group-commit writer, on a connection of its own.
    pub(crate) committer: Committer,
    /// Notified after a commit that made rows due.
    pub(crate) wake: Arc<Notify>,
    /// This process's name on the leases it takes.
    pub(crate) owner: String,
}

/// The columns [`read_row`] reads, in its order.
macro_rules! row_columns {
    () => {
        "event_id, slug, state, attempts, run_at, lease_owner, lease_expires, last_error, received_at, updated_at, done_at, config, matched_secret"
    };
}

impl Inbox {
    /// Connects to `url` (`sqlite://path/to/file.db`, created when
    /// missing, or `postgres://user:password@host/database`), creates or
    /// upgrades the table, and starts the writer task.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL`: an acknowledged
    /// event is on disk. Only one process may use a SQLite inbox (the
    /// CLI's `inbox` commands besides); use PostgreSQL for several
    /// replicas.
    ///
    /// Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// An unsupported URL, a database that cannot be reached, or a table
    /// that cannot be created.
    pub async fn connect(url: &str) -> Result<Self, InboxError> {
        Self::open(url, false).await
    }

    /// As [`Inbox::connect`], but a SQLite file that does not exist is an
    /// error instead of a new, empty inbox: for tools that inspect an
    /// inbox a receiver made (the CLI's `inbox` commands).
    ///
    /// # Errors
    /// As [`Inbox::connect`], and when the SQLite file is missing.
    pub async fn connect_existing(url: &str) -> Result<Self, InboxError> {
        Self::open(url, true).await
    }

    async fn open(url: &str, must_exist: bool) -> Result<Self, InboxError> {
        let (db, writer) = Db::connect(url, must_exist).await?;
        let wake = Arc::new(Notify::new());
        let committer = Committer::spawn(writer, Arc::clone(&wake));
        Ok(Self {
            inner: Arc::new(Shared {
                db,
                committer,
                wake,
                owner: owner_name(),
            }),
            inline_lease: Duration::from_secs(60),
        })
    }

    /// How long an inline claim holds an event before another delivery may
    /// take it over (default 60 s; keep it above the endpoint's delivery
    /// timeout), by the database's clock.
    #[must_use]
    pub fn inline_lease(mut self, lease: Duration) -> Self {
        self.inline_lease = lease;
        self
    }

    /// Whether the inbox is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.inner.db.is_postgres()
    }

    /// The events in the inbox, newest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Row>, InboxError> {
        let rows = on_db!(&self.inner.db, pool => {
            let mut query = sqlx::QueryBuilder::new(concat!("SELECT ", row_columns!(), " FROM ricloud_inbox"));
            filter.push_where(&mut query, true);
            query
                .push(" ORDER BY received_at DESC, event_id LIMIT ")
                .push_bind(i64::from(filter.limit));
            query
                .build()
                .fetch_all(pool)
                .await
                .map_err(InboxError::database)?
                .iter()
                .map(read_row)
                .collect::<Result<Vec<_>, sqlx::Error>>()
        });
        rows.map_err(InboxError::database)
    }

    /// How many events `filter` selects (its cursor and limit aside).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn count(&self, filter: &ListFilter) -> Result<u64, InboxError> {
        let count: i64 = on_db!(&self.inner.db, pool => {
            let mut query = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM ricloud_inbox");
            filter.push_where(&mut query, false);
            query.build().fetch_one(pool).await.and_then(|r| r.try_get(0))
        })
        .map_err(InboxError::database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The slugs and configs the inbox holds events of, each sorted: what a
    /// filter can choose from.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn seen(&self) -> Result<(Vec<String>, Vec<String>), InboxError> {
        on_db!(&self.inner.db, pool => {
            let slugs = sqlx::query_scalar("SELECT DISTINCT slug FROM ricloud_inbox ORDER BY slug")
                .fetch_all(pool)
                .await;
            let configs = sqlx::query_scalar(
                "SELECT DISTINCT config FROM ricloud_inbox WHERE config IS NOT NULL ORDER BY config",
            )
            .fetch_all(pool)
            .await;
            slugs.and_then(|s| Ok((s, configs?)))
        })
        .map_err(InboxError::database)
    }

    /// One stored event with its body.
    ///
    /// # Errors
    /// When the event is not there ([`InboxError::is_not_found`]) or the
    /// database cannot be read.
    pub async fn get(&self, event_id: &str) -> Result<RowWithBody, InboxError> {
        let found = on_db!(&self.inner.db, pool => {
            sqlx::query(
                concat!("SELECT ", row_columns!(), ", body FROM ricloud_inbox WHERE event_id = $1"),
            )
            .bind(event_id)
            .fetch_optional(pool)
            .await
            .map_err(InboxError::database)?
            .map(|r| (read_row(&r), r.try_get::<Vec<u8>, _>(13)))
        });
        let Some((row, body)) = found else {
            return Err(InboxError::not_found(event_id));
        };
        Ok(RowWithBody {
            row: row.map_err(InboxError::database)?,
            body: Bytes::from(body.map_err(InboxError::database)?),
        })
    }

    /// Puts events back to `pending`, due now, with their attempts reset:
    /// the workers run them again. They were verified when they arrived,
    /// so no signature or time window is checked again. Rows being run
    /// right now are left alone. Returns how many rows changed.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn replay(&self, which: &Replay) -> Result<u64, InboxError> {
        let changed = match which {
            Replay::Ids(ids) => {
                let mut changed = 0;
                for id in ids {
                    changed += on_db!(&self.inner.db, pool => {
                        sqlx::query(
                            "UPDATE ricloud_inbox SET state = 'pending', run_at = (SELECT now_ms FROM ricloud_inbox_clock), attempts = 0, \
                             lease_owner = NULL, lease_expires = NULL, updated_at = (SELECT now_ms FROM ricloud_inbox_clock) \
                             WHERE state <> 'running' AND event_id = $1",
                        )
                        .bind(id.as_str())
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                    })
                    .map_err(InboxError::database)?;
                }
                changed
            }
            Replay::Dead => on_db!(&self.inner.db, pool => {
                sqlx::query(
                    "UPDATE ricloud_inbox SET state = 'pending', run_at = (SELECT now_ms FROM ricloud_inbox_clock), attempts = 0, \
                     lease_owner = NULL, lease_expires = NULL, updated_at = (SELECT now_ms FROM ricloud_inbox_clock) WHERE state = 'dead'",
                )
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(InboxError::database)?,
            Replay::Matching(filter) => on_db!(&self.inner.db, pool => {
                let mut query = sqlx::QueryBuilder::new(
                    "UPDATE ricloud_inbox SET state = 'pending', run_at = (SELECT now_ms FROM ricloud_inbox_clock), attempts = 0, \
                     lease_owner = NULL, lease_expires = NULL, updated_at = (SELECT now_ms FROM ricloud_inbox_clock) \
                     WHERE state <> 'running' AND event_id IN (SELECT event_id FROM ricloud_inbox",
                );
                filter.push_where(&mut query, false);
                query.push(")");
                query.build().execute(pool).await.map(|r| r.rows_affected())
            })
            .map_err(InboxError::database)?,
            Replay::Since(since) => on_db!(&self.inner.db, pool => {
                sqlx::query(
                    "UPDATE ricloud_inbox SET state = 'pending', run_at = (SELECT now_ms FROM ricloud_inbox_clock), attempts = 0, \
                     lease_owner = NULL, lease_expires = NULL, updated_at = (SELECT now_ms FROM ricloud_inbox_clock) \
                     WHERE state <> 'running' AND received_at >= $1",
                )
                .bind(millis(*since))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(InboxError::database)?,
        };
        if changed > 0 {
            self.inner.wake.notify_waiters();
            if self.is_postgres() {
                let _ = on_db!(&self.inner.db, pool => {
                    sqlx::query("SELECT pg_notify('ricloud_inbox', '')")
                        .execute(pool)
                        .await
                        .map(drop)
                });
            }
        }
        Ok(changed)
    }

    /// Counts by state, and when the oldest pending event arrived.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn stats(&self) -> Result<Stats, InboxError> {
        let rows = on_db!(&self.inner.db, pool => {
            sqlx::query(
                "SELECT state, COUNT(*), MIN(received_at) FROM ricloud_inbox GROUP BY state",
            )
            .fetch_all(pool)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get::<String, _>(0)?,
                            r.try_get::<i64, _>(1)?,
                            r.try_get::<Option<i64>, _>(2)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            })
        })
        .map_err(InboxError::database)?;
        let mut stats = Stats::default();
        for (state, count, oldest) in rows {
            let count = u64::try_from(count).unwrap_or(0);
            match state.as_str() {
                "pending" => {
                    stats.pending = count;
                    stats.oldest_pending = oldest.map(time);
                }
                "running" => stats.running = count,
                "done" => stats.done = count,
                _ => stats.dead = count,
            }
        }
        Ok(stats)
    }

    /// Deletes the `done` events finished before `before`. Returns how
    /// many were deleted. `dead` events are kept until replayed or deleted
    /// by hand.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn purge_done_before(&self, before: SystemTime) -> Result<u64, InboxError> {
        on_db!(&self.inner.db, pool => {
            sqlx::query("DELETE FROM ricloud_inbox WHERE state = 'done' AND done_at < $1")
                .bind(millis(before))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(InboxError::database)
    }
}

impl Inbox {
    /// Lets every `running` row be taken again at once, by expiring its
    /// lease. For SQLite, whose one process is this one: the rows a
    /// previous run left running when it stopped or died belong to no one.
    /// Never call it on a database other live processes use.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn take_back_abandoned(&self) -> Result<u64, InboxError> {
        on_db!(&self.inner.db, pool => {
            sqlx::query("UPDATE ricloud_inbox SET lease_expires = 0 WHERE state = 'running'")
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(InboxError::database)
    }

    pub(crate) async fn expire_leases(&self) -> Result<u64, InboxError> {
        self.take_back_abandoned().await
    }

    /// A listener on the channel commits notify (PostgreSQL), on a
    /// connection of its own, or `None` when it cannot be set up (the
    /// workers then poll).
    #[cfg(feature = "postgres")]
    pub(crate) async fn listener(&self) -> Option<sqlx::postgres::PgListener> {
        self.inner.db.listener().await
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("postgres", &self.is_postgres())
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// Commits an event fetched from the ricloud API itself, over the API's
    /// authenticated channel (a catch-up), for the workers to run; a
    /// delivery's event goes through [`EventQueue::enqueue`] instead, which
    /// takes only a [`VerifiedEvent`].
    ///
    /// # Errors
    /// When the event could not be made durable.
    pub async fn enqueue_fetched(
        &self,
        event: &Event,
        now: SystemTime,
    ) -> Result<Enqueued, InboxError> {
        self.commit_fetched(new_row(event, None, now)).await
    }

    /// [`enqueue_fetched`](Self::enqueue_fetched), with `signature` (made
    /// for the body with the webhook config's secret by
    /// [`sign`](ricloud_webhook::sign)) kept as its `Ricloud-Signature`,
    /// as a delivery's is: handlers get it as [`Event::signature`], so a
    /// forwarder passes on a signature that its consumers can verify with
    /// the secret.
    ///
    /// # Errors
    /// When the event could not be made durable.
    pub async fn enqueue_fetched_signed(
        &self,
        event: &Event,
        signature: &SignatureHeader,
        now: SystemTime,
    ) -> Result<Enqueued, InboxError> {
        let mut row = new_row(event, None, now);
        row.signature = Some(signature.to_string());
        self.commit_fetched(row).await
    }

    async fn commit_fetched(&self, row: NewRow) -> Result<Enqueued, InboxError> {
        Ok(if self.inner.committer.enqueue(row).await? {
            Enqueued::New
        } else {
            Enqueued::AlreadyQueued
        })
    }
}

impl EventQueue for Inbox {
    fn enqueue<'a>(
        &'a self,
        event: &'a VerifiedEvent,
        now: SystemTime,
    ) -> StoreFuture<'a, Enqueued> {
        Box::pin(async move {
            let row = new_row(event.event(), Some(event.matched_secret()), now);
            Ok(if self.inner.committer.enqueue(row).await? {
                Enqueued::New
            } else {
                Enqueued::AlreadyQueued
            })
        })
    }
}

impl DeliveryStore for Inbox {
    fn claim<'a>(&'a self, event: &'a VerifiedEvent, now: SystemTime) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            let claim = self
                .inner
                .committer
                .claim(
                    new_row(event.event(), Some(event.matched_secret()), now),
                    self.inner.owner.clone(),
                    self.inline_lease,
                )
                .await?;
            Ok(match claim {
                InlineClaim::Claimed => Claim::Claimed,
                InlineClaim::Handled => Claim::AlreadyHandled,
                InlineClaim::Busy => Claim::Busy,
            })
        })
    }

    fn finish<'a>(
        &'a self,
        event_id: &'a str,
        handled: bool,
        _now: SystemTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner
                .committer
                .finish(event_id.to_owned(), self.inner.owner.clone(), handled)
                .await
                .map_err(StoreError::from)
        })
    }
    // `abandon` keeps the default: the claim's lease runs out, and a
    // redelivery after that takes the event over.
}

fn new_row(event: &Event, matched_secret: Option<usize>, now: SystemTime) -> NewRow {
    NewRow {
        matched_secret: matched_secret.map(|i| i32::try_from(i).unwrap_or(i32::MAX)),
        event_id: event.id.clone(),
        slug: event.slug(),
        body: event.raw().clone(),
        config: event.config().map(str::to_owned),
        signature: event.signature().map(ToString::to_string),
        received_ms: millis(now),
    }
}

/// A name for this process's leases: its pid and 64 random bits.
fn owner_name() -> String {
    let mut random = [0u8; 8];
    // Without randomness the pid alone still tells processes apart on one host.
    let _ = getrandom::fill(&mut random);
    format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(random))
}

/// Milliseconds since the Unix epoch (0 before it, `i64::MAX` far after).
pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The instant `ms` milliseconds after the Unix epoch.
pub(crate) fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
