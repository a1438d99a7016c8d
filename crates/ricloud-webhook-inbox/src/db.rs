//! The database: connecting, the embedded migrations, and the one macro
//! that runs the same SQL on whichever engine the inbox is on.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};

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

impl Db {
    /// Connects to `url` (`sqlite://path`, `postgres://...`) and applies
    /// the migrations.
    pub(crate) async fn connect(url: &str) -> Result<Self, InboxError> {
        let db = if url.starts_with("sqlite:") {
            Self::sqlite(url).await?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::postgres(url).await?
        } else {
            return Err(InboxError::config(format!(
                "unsupported database URL scheme (expected sqlite:// or postgres://): {}",
                redact(url)
            )));
        };
        db.migrate().await?;
        Ok(db)
    }

    #[cfg(feature = "sqlite")]
    async fn sqlite(url: &str) -> Result<Self, InboxError> {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| InboxError::config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            // Acknowledged means on disk: the WAL is synced at every commit.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(InboxError::database)?;
        Ok(Self::Sqlite(pool))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn sqlite(_: &str) -> Result<Self, InboxError> {
        Err(InboxError::config(
            "this build has no SQLite support (the `sqlite` feature)".to_owned(),
        ))
    }

    #[cfg(feature = "postgres")]
    async fn postgres(url: &str) -> Result<Self, InboxError> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| InboxError::config(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
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
    async fn postgres(_: &str) -> Result<Self, InboxError> {
        Err(InboxError::config(
            "this build has no PostgreSQL support (the `postgres` feature)".to_owned(),
        ))
    }

    async fn migrate(&self) -> Result<(), InboxError> {
        let (sql, engine) = match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => (
                include_str!("../migrations/sqlite/0001_inbox.sql"),
                "sqlite",
            ),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => (
                include_str!("../migrations/postgres/0001_inbox.sql"),
                "postgres",
            ),
        };
        let mut migrator = Migrator::with_migrations(vec![Migration::new(
            1,
            format!("inbox ({engine})").into(),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        )]);
        migrator.dangerous_set_table_name("ricloud_inbox_migrations");
        on_db!(self, pool => migrator.run(pool).await).map_err(InboxError::migration)
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

use sqlx::SqlSafeStr as _;

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
