//! The inbox's error.

use std::sync::Arc;

/// Why the inbox could not do what it was asked.
///
/// The database's own error is kept as the [`source`](std::error::Error::source),
/// so no driver type is part of this crate's API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct InboxError {
    kind: Kind,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Database,
    Migration,
    Closed,
    TimedOut,
    Internal,
    NotFound,
}

impl InboxError {
    pub(crate) fn config(message: String) -> Self {
        Self {
            kind: Kind::Config,
            source: None,
            message,
        }
    }

    pub(crate) fn database(error: sqlx::Error) -> Self {
        Self {
            kind: Kind::Database,
            message: format!("database error: {error}"),
            source: Some(Arc::new(error)),
        }
    }

    pub(crate) fn migration(error: sqlx::migrate::MigrateError) -> Self {
        Self {
            kind: Kind::Migration,
            message: format!("cannot create or upgrade the inbox's table: {error}"),
            source: Some(Arc::new(error)),
        }
    }

    pub(crate) fn closed() -> Self {
        Self {
            kind: Kind::Closed,
            source: None,
            message: "the inbox's writer has stopped".to_owned(),
        }
    }

    pub(crate) fn timed_out(after: std::time::Duration) -> Self {
        Self {
            kind: Kind::TimedOut,
            source: None,
            message: format!(
                "the inbox's writer did not answer within {} s",
                after.as_secs()
            ),
        }
    }

    pub(crate) fn internal(message: String) -> Self {
        Self {
            kind: Kind::Internal,
            source: None,
            message,
        }
    }

    pub(crate) fn not_found(event_id: &str) -> Self {
        Self {
            kind: Kind::NotFound,
            source: None,
            message: format!("no event {event_id} in the inbox"),
        }
    }

    /// Whether the database could not be reached or refused the work (as
    /// opposed to a mistake in what was asked): worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            Kind::Database | Kind::Closed | Kind::TimedOut | Kind::Internal
        )
    }

    /// Whether the event asked for is not in the inbox.
    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }
}

impl From<InboxError> for ricloud_webhook::StoreError {
    fn from(error: InboxError) -> Self {
        ricloud_webhook::StoreError::unavailable(error)
    }
}
