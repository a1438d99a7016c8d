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
        matched_secret: r
            .try_get::<Option<i32>, _>(12)?
            .and_then(|i| u32::try_from(i).ok()),
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
    /// Which of the receiver's secrets verified it: 0 the current one, 1..
    /// a previous one; `None` for an event fetched from the API.
    pub matched_secret: Option<u32>,
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
    /// Only events received at or after this time.
    pub since: Option<SystemTime>,
    /// Only events received before this time.
    pub until: Option<SystemTime>,
    /// Only events delivered by this webhook config.
    pub config: Option<String>,
    /// Only the event with this id.
    pub event_id: Option<String>,
    /// Only events after this one in the listing's order (newest first):
    /// the next page's start.
    pub after: Option<Cursor>,
    /// At most this many (default 50).
    pub limit: u32,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            state: None,
            slug: None,
            since: None,
            until: None,
            config: None,
            event_id: None,
            after: None,
            limit: 50,
        }
    }
}

/// Where a page of [`Inbox::list`](crate::Inbox::list) ended: the last
/// row's arrival and id. Written and read as `<milliseconds>.<event id>`
/// for a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) received_ms: i64,
    pub(crate) event_id: String,
}

impl Cursor {
    /// The cursor after `row`.
    pub fn after(row: &Row) -> Self {
        Self {
            received_ms: crate::inbox::millis(row.received_at),
            event_id: row.event_id.clone(),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.received_ms, self.event_id)
    }
}

impl FromStr for Cursor {
    type Err = InboxError;

    fn from_str(s: &str) -> Result<Self, InboxError> {
        let bad =
            || InboxError::config(format!("{s:?} is not a cursor (<milliseconds>.<event id>)"));
        let (ms, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            received_ms: ms.parse().map_err(|_| bad())?,
            event_id: id.to_owned(),
        })
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

    /// Only events received at or after `since`.
    #[must_use]
    pub fn since(mut self, since: SystemTime) -> Self {
        self.since = Some(since);
        self
    }

    /// Only events received before `until`.
    #[must_use]
    pub fn until(mut self, until: SystemTime) -> Self {
        self.until = Some(until);
        self
    }

    /// Only events delivered by the webhook config `config`.
    #[must_use]
    pub fn config(mut self, config: impl Into<String>) -> Self {
        self.config = Some(config.into());
        self
    }

    /// Only the event `event_id`.
    #[must_use]
    pub fn event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// Only events after `cursor` (the next page).
    #[must_use]
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// At most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Appends ` WHERE ...` for the filter's conditions (the cursor's
    /// included when `paged`) to `query`.
    pub(crate) fn push_where<DB>(&self, query: &mut sqlx::QueryBuilder<DB>, paged: bool)
    where
        DB: sqlx::Database,
        for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        query.push(" WHERE 1 = 1");
        if let Some(state) = self.state {
            query
                .push(" AND state = ")
                .push_bind(state.as_str().to_owned());
        }
        if let Some(slug) = &self.slug {
            query.push(" AND slug = ").push_bind(slug.clone());
        }
        if let Some(since) = self.since {
            query
                .push(" AND received_at >= ")
                .push_bind(crate::inbox::millis(since));
        }
        if let Some(until) = self.until {
            query
                .push(" AND received_at < ")
                .push_bind(crate::inbox::millis(until));
        }
        if let Some(config) = &self.config {
            query.push(" AND config = ").push_bind(config.clone());
        }
        if let Some(id) = &self.event_id {
            query.push(" AND event_id = ").push_bind(id.clone());
        }
        if let (true, Some(after)) = (paged, &self.after) {
            query
                .push(" AND (received_at < ")
                .push_bind(after.received_ms)
                .push(" OR (received_at = ")
                .push_bind(after.received_ms)
                .push(" AND event_id > ")
                .push_bind(after.event_id.clone())
                .push("))");
        }
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
    /// Every event the filter selects (its cursor and limit aside).
    Matching(ListFilter),
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
