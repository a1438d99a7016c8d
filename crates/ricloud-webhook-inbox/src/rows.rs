//! What an operator sees of the inbox: its rows and their states, the
//! filters and selections of [`Inbox`](crate::Inbox)'s listing and replay,
//! and its counts.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use bytes::Bytes;

use crate::inbox::time;
use crate::InboxError;

pub(crate) fn read_row<R: sqlx::Row>(r: &R) -> Result<Row, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = r.try_get(2)?;
    Ok(Row {
        event_id: r.try_get(0)?,
        slug: r.try_get(1)?,
        state: state.parse().unwrap_or(RowState::Dead),
        attempts: u32::try_from(r.try_get::<i32, _>(3)?).unwrap_or(0),
        run_at: time(r.try_get(4)?),
        lease_owner: r.try_get(5)?,
        lease_expires: r.try_get::<Option<i64>, _>(6)?.map(time),
        last_error: r.try_get(7)?,
        received_at: time(r.try_get(8)?),
        updated_at: time(r.try_get(9)?),
        done_at: r.try_get::<Option<i64>, _>(10)?.map(time),
        config: r.try_get(11)?,
    })
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// Waiting for a worker (new, or to be retried at `run_at`).
    Pending,
    /// A worker holds its lease and runs its handlers.
    Running,
    /// Handled: its handlers succeeded (or none matched).
    Done,
    /// Given up on: a handler acknowledged a permanent failure, its data
    /// did not fit a view, or it failed every attempt. Kept until replayed
    /// or purged.
    Dead,
}

impl RowState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }
}

impl FromStr for RowState {
    type Err = InboxError;

    fn from_str(s: &str) -> Result<Self, InboxError> {
        Ok(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "done" => Self::Done,
            "dead" => Self::Dead,
            other => {
                return Err(InboxError::config(format!(
                    "unknown state `{other}`: use pending, running, done or dead"
                )))
            }
        })
    }
}

impl fmt::Display for RowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event as the inbox keeps it, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Row {
    /// The event's id.
    pub event_id: String,
    /// `type.action`.
    pub slug: String,
    /// Where it is.
    pub state: RowState,
    /// How many times a worker (or an inline delivery) took it.
    pub attempts: u32,
    /// When it is due (pending), or was last due.
    pub run_at: SystemTime,
    /// Who holds it while it runs.
    pub lease_owner: Option<String>,
    /// When that hold runs out.
    pub lease_expires: Option<SystemTime>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it was first received and committed.
    pub received_at: SystemTime,
    /// When its row last changed.
    pub updated_at: SystemTime,
    /// When its handlers finished.
    pub done_at: Option<SystemTime>,
    /// The webhook config that delivered it, when the receiver serves
    /// several ([`Event::config`](ricloud_webhook::Event::config)).
    pub config: Option<String>,
}

/// A stored event: its row and the body exactly as it was verified.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RowWithBody {
    /// Where it is.
    pub row: Row,
    /// The body as received and verified (may hold personal data).
    pub body: Bytes,
}

impl fmt::Debug for RowWithBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowWithBody")
            .field("row", &self.row)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Which rows [`Inbox::list`](crate::Inbox::list) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only events in this state.
    pub state: Option<RowState>,
    /// Only events with this slug.
    pub slug: Option<String>,
    /// At most this many (default 50).
    pub limit: u32,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            state: None,
            slug: None,
            limit: 50,
        }
    }
}

impl ListFilter {
    /// Only events in `state`.
    #[must_use]
    pub fn state(mut self, state: RowState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only events with `slug`.
    #[must_use]
    pub fn slug(mut self, slug: impl Into<String>) -> Self {
        self.slug = Some(slug.into());
        self
    }

    /// At most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

/// Which events [`Inbox::replay`](crate::Inbox::replay) puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// These events.
    Ids(Vec<String>),
    /// Every `dead` event.
    Dead,
    /// Every event received since this time, whatever its state.
    Since(SystemTime),
}

/// What [`Inbox::stats`](crate::Inbox::stats) counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events waiting for a worker.
    pub pending: u64,
    /// Events being run.
    pub running: u64,
    /// Events handled.
    pub done: u64,
    /// Events given up on.
    pub dead: u64,
    /// When the oldest pending event arrived.
    pub oldest_pending: Option<SystemTime>,
}
