//! The inbox's metrics, through the `metrics` facade (nothing is recorded
//! until the application installs a recorder).

use std::time::{Duration, SystemTime};

use crate::db::on_db;
use crate::{Inbox, InboxError};

/// Gauge: rows by `state` (`pending`, `running`, `done`, `dead`), as of the
/// last [`Inbox::record_metrics`].
pub const EVENTS: &str = "ricloud_webhook_inbox_events";
/// Gauge: seconds since the oldest pending event arrived (0 when none is
/// pending), as of the last [`Inbox::record_metrics`].
pub const OLDEST_PENDING_SECONDS: &str = "ricloud_webhook_inbox_oldest_pending_seconds";
/// Histogram: seconds one group commit's transaction took.
pub const COMMIT_SECONDS: &str = "ricloud_webhook_inbox_commit_seconds";
/// Counter: events the workers gave up on (committed as `dead`).
pub const DEAD: &str = "ricloud_webhook_inbox_dead_total";

pub(crate) fn commit_seconds(took: Duration) {
    metrics::histogram!("ricloud_webhook_inbox_commit_seconds").record(took.as_secs_f64());
}

pub(crate) fn dead() {
    metrics::counter!("ricloud_webhook_inbox_dead_total").increment(1);
}

impl Inbox {
    /// Reads the counts by state and the oldest pending event's age
    /// ([`Inbox::stats`]) into the [`EVENTS`] and [`OLDEST_PENDING_SECONDS`]
    /// gauges. An exporter calls it before each scrape, so the gauges are
    /// as fresh as the scrape without a task polling the database.
    ///
    /// # Errors
    /// When the database cannot be read (the gauges keep their values).
    pub async fn record_metrics(&self) -> Result<(), InboxError> {
        let stats = self.stats().await?;
        for (state, count) in [
            ("pending", stats.pending),
            ("running", stats.running),
            ("done", stats.done),
            ("dead", stats.dead),
        ] {
            #[allow(clippy::cast_precision_loss, reason = "a count of rows")]
            metrics::gauge!(EVENTS, "state" => state).set(count as f64);
        }
        let age = stats
            .oldest_pending
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        metrics::gauge!(OLDEST_PENDING_SECONDS).set(age.as_secs_f64());
        Ok(())
    }

    /// Whether the database answers: a `SELECT 1` on the pool, for a
    /// readiness check.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), InboxError> {
        on_db!(&self.inner.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
            .map_err(InboxError::database)
    }
}
