//! A durable inbox for ricloud webhooks: persist, then acknowledge. SQLite
//! by default (one process), PostgreSQL for several replicas.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ricloud_webhook::{Dispatcher, Event, Receiver, Secret, Verifier};
//! use ricloud_webhook_hyper::{serve, WebhookService};
//! use ricloud_webhook_inbox::{Inbox, WorkerConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let inbox = Inbox::connect("sqlite://ricloud-webhook.db").await?;
//!     // SQLite serves one process: rows a previous run left `running`
//!     // (killed mid-handler) are this one's to take back. Not on
//!     // PostgreSQL, where another replica may be running them: leases
//!     // take those back.
//!     if !inbox.is_postgres() {
//!         inbox.take_back_abandoned().await?;
//!     }
//!     let dispatcher = Dispatcher::new().on("task.succeeded", |event: Arc<Event>| async move {
//!         println!("task done: {}", event.id);
//!         Ok(())
//!     });
//!     // Workers run the handlers of committed events, retrying failures.
//!     let workers = inbox.workers(dispatcher).config(WorkerConfig::default()).spawn();
//!     // The receiver answers 200 once an event is committed.
//!     let verifier = Verifier::new(Secret::new(std::env::var("RICLOUD_WEBHOOK_SECRET")?)?);
//!     let service = WebhookService::new(Receiver::queued(verifier, inbox.clone()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     serve(listener, service, ricloud_webhook_hyper::shutdown_signal()?).await?;
//!     workers.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! # Two modes, and what a 200 means
//!
//! - **Queued** ([`Receiver::queued`](ricloud_webhook::Receiver::queued)
//!   with an [`Inbox`]): a verified event is inserted as a `pending` row,
//!   and the delivery is answered 200 only once that row is committed (on
//!   disk: SQLite's `synchronous=FULL`, PostgreSQL's commit). A redelivery
//!   of an event already there is answered 200 once the first copy is
//!   committed, without a second row; the first verified body is kept.
//!   After the commit, nothing a handler does changes the answer:
//!   [`Workers`] take due rows under a lease, run the handlers, and settle
//!   each row `done`, `pending` again after a backoff with jitter (a
//!   failure; default 8 attempts), or `dead` (a handler's
//!   [`HandlerError::give_up`](ricloud_webhook::HandlerError::give_up),
//!   data that does not fit a view, or the last attempt failed).
//!   *Acknowledged* means: the event is stored durably and will be run
//!   until it is done or dead; a crash between a handler's success and
//!   its `done` makes it run again (handlers should be idempotent).
//! - **Inline** ([`Receiver::inline`](ricloud_webhook::Receiver::inline)
//!   with an [`Inbox`]): the handlers run before the answer, as with the
//!   in-memory store, but the record of handled events is this table:
//!   it survives restarts and is shared by every replica on one
//!   PostgreSQL. A 200 means the handlers succeeded and the event is
//!   recorded `done`.
//!
//! In both modes a database error is never an acknowledgement: the
//! delivery is answered 503 with `Retry-After`, and the API delivers it
//! again.
//!
//! # The table
//!
//! One table, `ricloud_inbox`, is both the deduplication set and the queue,
//! keyed by event id: slug, body, the webhook config that delivered it
//! (when the receiver serves several; [`Row::config`], and
//! [`Event::config`](ricloud_webhook::Event::config) for the handlers),
//! state (`pending`, `running`, `done`, `dead`), attempts, next run time,
//! lease owner, token and expiry, last error, and times (milliseconds since
//! the epoch). It is created and
//! upgraded by migrations embedded in this crate (`migrations/`), recorded
//! in `ricloud_inbox_migrations`.
//!
//! # What holds under faults
//!
//! - **Group commit, on a connection of its own.** The queue's writes
//!   (enqueues, inline claims, the workers' takes, renewals and outcomes)
//!   go through one task per process that commits whatever has queued up
//!   since its last commit in one transaction, and answers each caller
//!   after that commit: concurrent deliveries share an fsync. Operators'
//!   writes ([`Inbox::replay`], [`Inbox::purge_done_before`],
//!   [`Inbox::take_back_abandoned`]) and transactional handlers use a
//!   pool beside it (PostgreSQL: 8 connections).
//! - **One bad operation fails alone.** When the database refuses a
//!   batch, its operations are run again one by one, each in a transaction
//!   of its own: the good ones commit, and only the one refused is answered
//!   with an error. (A batch that fails for want of a connection fails
//!   whole.) The happy path pays nothing for this.
//! - **No writer waits forever.** On PostgreSQL the writer's statements
//!   have a 2 s `lock_timeout` and a 10 s `statement_timeout`; every call
//!   into the writer times out after 15 s, as an error (a delivery gets
//!   503). Renewals skip rows locked elsewhere instead of waiting.
//! - **Leases per take.** Every take of a row raises its lease token;
//!   renewing and settling are fenced on it (and write it, so an audit of
//!   the table can check it), so the outcome of a run whose lease ran out
//!   and was taken again (by any worker, in any process) is refused and
//!   logged, never applied. Leases and due times are computed from the
//!   database's clock (`now()` on PostgreSQL, through the view
//!   `ricloud_inbox_clock`), so the replicas' clocks do not matter. Each
//!   process renews the leases of its running rows every third of the
//!   lease from a task of its own, so a renewal never keeps a handler from
//!   being polled. Inline claims are fenced on the process's owner name.
//! - **Errors are stored safely.** A handler's message is stored without
//!   NULs, cut to 4 KiB at a character boundary, and cleared when the event
//!   later succeeds. Events whose id or slug holds a control character
//!   never reach the table: the core refuses them with 400.
//! - **SQLite**: WAL, `synchronous=FULL`, one process (the CLI's `inbox`
//!   commands may open it meanwhile). Workers poll every 2 s besides being
//!   woken by the process's own commits, so a replay made from the CLI is
//!   picked up within seconds.
//! - **PostgreSQL**: workers of every replica take rows with
//!   `FOR UPDATE SKIP LOCKED`; a replica that dies mid-handler lets its
//!   lease run out and another takes the row over. Commits
//!   `NOTIFY ricloud_inbox`, which wakes every replica's workers (`LISTEN`,
//!   on a connection of its own), with the slow poll as backstop.
//! - **Transactional handlers** ([`WorkersBuilder::transactional`],
//!   PostgreSQL) write in the transaction that marks the row done: their
//!   writes commit exactly once, with the `done`, or not at all. Such a
//!   handler may write to any table of the inbox's database and take its
//!   time (its lease is renewed meanwhile); it must not commit or roll back
//!   the transaction itself, nor lock rows of `ricloud_inbox` (the `done`
//!   would wait for its own lock). At most
//!   [`WorkerConfig::transactional_concurrency`] (4, at most 6) run at
//!   once, each holding one of the pool's connections; events waiting for
//!   a slot keep their leases.
//! - **Retention**: `done` rows are deleted after 7 days (configurable);
//!   `dead` rows are kept until replayed ([`Inbox::replay`]) or purged.
//!
//! # Operating it
//!
//! [`Inbox::record_metrics`] reads the counts by state and the oldest
//! pending event's age into gauges, and [`Inbox::ping`] says whether the
//! database answers; an admin listener calls them on each scrape and
//! readiness check (`ricloud-webhook-ops`). Group commits are timed and
//! dead events counted as they happen ([`telemetry`]). Every failed run is
//! logged at WARN (retried) or ERROR (dead) with the event's id, slug and
//! config and the handler's reason, escaped.
//!
//! # Feature flags
//!
//! | flag | default | what |
//! |---|---|---|
//! | `sqlite` | yes | SQLite, bundled with the crate (no system library) |
//! | `postgres` | no | PostgreSQL |
//! | `console` | no | [`console`]: the inbox console's pages, for an admin listener (axum, maud) |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.94 (sqlx 0.9).

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("ricloud-webhook-inbox needs a database: enable the `sqlite` feature, the `postgres` feature, or both");

mod commit;
#[cfg(feature = "console")]
pub mod console;
mod db;
mod error;
mod inbox;
mod rows;
pub mod telemetry;
pub mod time;
mod worker;

pub use error::InboxError;
pub use inbox::Inbox;
pub use rows::{Cursor, ListFilter, Replay, Row, RowState, RowWithBody, Stats};
#[cfg(feature = "postgres")]
pub use worker::TransactionalHandler;
pub use worker::{TxFuture, WorkerConfig, Workers, WorkersBuilder};
