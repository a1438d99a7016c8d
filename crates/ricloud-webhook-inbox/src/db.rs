//! The database: connecting, the embedded migrations, the pools each kind
//! of work gets, and the one macro that runs the same SQL on whichever
//! engine the inbox is on.

use std::str::FromStr;
use std::time::Duration;

use crate::InboxError;

/// A connection pool on one of the engines this crate was built with.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the engine's own pool: the SQL in
/// this crate is written once, with `$1`-style parameters, which both
/// engines read.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            $crate::db::Db::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The connections of PostgreSQL's pool for reads, operators' writes and
/// transactional handlers. The writer and the `LISTEN` connection have one
/// connection each besides.
pub(crate) const POOL_SIZE: u32 = 8;

/// How long the writer's statements may wait for a row lock, and run at
/// all, on PostgreSQL: a lock held elsewhere becomes an error (and a
/// retry), never a writer that waits forever.
#[cfg(feature = "postgres")]
pub(crate) const WRITER_LOCK_TIMEOUT: Duration = Duration::from_secs(2);
#[cfg(feature = "postgres")]
pub(crate) const WRITER_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Reads, operators' writes, transactional handlers: a pool.
    Shared,
    /// The group-commit writer: one connection of its own, with timeouts.
    Writer,
}

impl Db {
    /// Connects to `url` (`sqlite://path`, `postgres://...`) and applies
    /// the migrations; the pool for reads, operators' writes and
    /// transactional handlers, and the writer's own connection.
    ///
    /// With `must_exist`, a SQLite file that is not there is an error
    /// instead of a new empty database.
    pub(crate) async fn connect(url: &str, must_exist: bool) -> Result<(Self, Self), InboxError> {
        let db = Self::open(url, Role::Shared, must_exist).await?;
        db.migrate().await?;
        let writer = Self::open(url, Role::Writer, true).await?;
        Ok((db, writer))
    }

    async fn open(url: &str, role: Role, must_exist: bool) -> Result<Self, InboxError> {
        if url.starts_with("sqlite:") {
            Self::sqlite(url, role, must_exist).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::postgres(url, role).await
        } else {
            Err(InboxError::config(format!(
                "unsupported database URL scheme (expected sqlite:// or postgres://): {}",
                redact(url)
            )))
        }
    }

    #[cfg(feature = "sqlite")]
    async fn sqlite(url: &str, role: Role, must_exist: bool) -> Result<Self, InboxError> {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| InboxError::config(format!("invalid SQLite URL: {e}")))?;
        if must_exist && role == Role::Shared && !options.get_filename().exists() {
            return Err(InboxError::config(format!(
                "no SQLite inbox at {} (the receiver creates it)",
                options.get_filename().display()
            )));
        }
        let options = options
            .create_if_missing(true)
            // Acknowledged means on disk: the WAL is synced at every commit.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(if role == Role::Writer { 1 } else { 4 })
            .connect_with(options)
            .await
            .map_err(InboxError::database)?;
        Ok(Self::Sqlite(pool))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn sqlite(_: &str, _: Role, _: bool) -> Result<Self, InboxError> {
        Err(InboxError::config(
            "this build has no SQLite support (the `sqlite` feature)".to_owned(),
        ))
    }

    #[cfg(feature = "postgres")]
    async fn postgres(url: &str, role: Role) -> Result<Self, InboxError> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| InboxError::config(format!("invalid PostgreSQL URL: {e}")))?;
        if role == Role::Writer {
            options = options.options([
                (
                    "lock_timeout",
                    format!("{}ms", WRITER_LOCK_TIMEOUT.as_millis()),
                ),
                (
                    "statement_timeout",
                    format!("{}ms", WRITER_STATEMENT_TIMEOUT.as_millis()),
                ),
            ]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(if role == Role::Writer { 1 } else { POOL_SIZE })
            // A database that went away is noticed at the next use, and the
            // pool reconnects by itself when it is back.
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(InboxError::database)?;
        Ok(Self::Postgres(pool))
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(_: &str, _: Role) -> Result<Self, InboxError> {
        Err(InboxError::config(
            "this build has no PostgreSQL support (the `postgres` feature)".to_owned(),
        ))
    }

    async fn migrate(&self) -> Result<(), InboxError> {
        // Each engine's migrations, embedded at build time by sqlx, in the
        // inbox's own table of applied migrations.
        let mut migrator = match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => sqlx::migrate!("migrations/sqlite"),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => sqlx::migrate!("migrations/postgres"),
        };
        migrator.dangerous_set_table_name("ricloud_inbox_migrations");
        on_db!(self, pool => migrator.run(pool).await).map_err(InboxError::migration)
    }

    /// A connection of its own for `LISTEN` (PostgreSQL), so that the
    /// listener never waits for, or holds, one of the shared pool's.
    #[cfg(feature = "postgres")]
    pub(crate) async fn listener(&self) -> Option<sqlx::postgres::PgListener> {
        #[cfg_attr(not(feature = "sqlite"), allow(irrefutable_let_patterns))]
        let Self::Postgres(pool) = self
        else {
            return None;
        };
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with((*pool.connect_options()).clone())
            .await
            .ok()?;
        let mut listener = sqlx::postgres::PgListener::connect_with(&own).await.ok()?;
        listener.listen("ricloud_inbox").await.ok()?;
        Some(listener)
    }

    /// Whether this is PostgreSQL (several replicas, `SKIP LOCKED`,
    /// `LISTEN`/`NOTIFY`).
    pub(crate) fn is_postgres(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => true,
        }
    }
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_left_out_of_messages() {
        assert_eq!(
            redact("postgres://app:hunter2@db.example.com:5432/inbox"),
            "postgres://app:***@db.example.com:5432/inbox"
        );
        assert_eq!(redact("postgres://app@db/inbox"), "postgres://app@db/inbox");
        assert_eq!(redact("sqlite://inbox.db"), "sqlite://inbox.db");
    }
}
