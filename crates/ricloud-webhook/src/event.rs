//! The event envelope the API sends, with its slug and raw bytes.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resources::{Poll, Session, Task, WebhookConfig};

/// The event slugs the API documents, in the order its documentation lists
/// them. The API may send others at any time; a receiver accepts those too.
pub const DOCUMENTED_SLUGS: [&str; 7] = [
    "webhook_config.test",
    "session.expired",
    "poll.created",
    "poll.completed",
    "task.created",
    "task.succeeded",
    "task.failed",
];

/// An event as the ricloud API sends it.
///
/// Only `id`, `type` and `action` are required: the envelope tolerates
/// missing and extra fields, and events of types this crate does not know
/// parse like any other. `data` stays raw JSON; [`Event::data`] gives a
/// typed view for the documented slugs.
///
/// ```
/// use ricloud_webhook::{Event, EventData};
///
/// let body: &[u8] = br#"{"id": "e1", "resource": "event", "type": "task",
///     "action": "succeeded", "data": {"id": "t1", "resource": "task", "state": "succeeded"}}"#;
/// let event = Event::from_json(body)?;
/// assert_eq!(event.slug(), "task.succeeded");
/// match event.data() {
///     EventData::Task(Ok(task)) => assert_eq!(task.id, "t1"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), ricloud_webhook::EventError>(())
/// ```
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// The event's identifier (a UUID), also the last segment of the URL.
    pub id: String,
    /// The resource type, `"event"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// What kind of resource the event is about (`task`, `poll`, ...); JSON `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened (`succeeded`, `test`, ...).
    pub action: String,
    /// The whole resource the event is about, as raw JSON.
    #[serde(default)]
    pub data: Value,
    /// Delivery state: `pending`, `delivered` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How many times delivery has been retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    /// When the event was created (ISO 8601, as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    /// When the event was delivered, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_delivered: Option<String>,
    /// The body exactly as received and signed; empty for events built in code.
    #[serde(skip)]
    raw: Bytes,
}

impl Event {
    /// Parses an event from the raw body, keeping the bytes.
    ///
    /// # Errors
    /// [`EventError`] when the body is not JSON, not an object, or lacks a
    /// string `id`, `type` or `action`.
    pub fn from_json(body: impl Into<Bytes>) -> Result<Self, EventError> {
        let raw = body.into();
        let mut event: Self = serde_json::from_slice(&raw).map_err(EventError::from_json)?;
        if event.id.is_empty() {
            return Err(EventError::EmptyId);
        }
        event.raw = raw;
        Ok(event)
    }

    /// The slug `type.action` that names the event, e.g. `task.succeeded`.
    pub fn slug(&self) -> String {
        format!("{}.{}", self.kind, self.action)
    }

    /// Whether the slug is `kind.action`, without building it.
    pub fn is(&self, kind: &str, action: &str) -> bool {
        self.kind == kind && self.action == action
    }

    /// The body exactly as received (empty for an event built in code).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// A typed view of `data` chosen by the slug.
    ///
    /// A documented slug whose data does not fit its view gives that view's
    /// `Err`; `data` itself stays available either way.
    pub fn data(&self) -> EventData {
        match (self.kind.as_str(), self.action.as_str()) {
            ("webhook_config", "test") => EventData::WebhookConfig(view(&self.data)),
            ("task", _) => EventData::Task(view(&self.data)),
            ("poll", _) => EventData::Poll(view(&self.data)),
            ("session", "expired") => EventData::Session(view(&self.data)),
            _ => EventData::Other,
        }
    }
}

/// Deserialises a typed view from `data`.
pub(crate) fn view<T: for<'de> Deserialize<'de>>(data: &Value) -> Result<T, ViewError> {
    T::deserialize(data).map_err(|e| ViewError {
        detail: e.to_string(),
    })
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `data` and the raw body are left out: they may hold personal data.
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("action", &self.action)
            .field("state", &self.state)
            .field("retries", &self.retries)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// A typed view of an event's `data`, chosen by its slug.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventData {
    /// `webhook_config.test`.
    WebhookConfig(Result<WebhookConfig, ViewError>),
    /// Every `task.*` event.
    Task(Result<Task, ViewError>),
    /// Every `poll.*` event.
    Poll(Result<Poll, ViewError>),
    /// `session.expired`.
    Session(Result<Session, ViewError>),
    /// A slug without a typed view: use [`Event::data`](struct@Event) as JSON.
    Other,
}

/// `data` does not fit the typed view of the event's slug.
///
/// `Display` names the problem without quoting the data; [`ViewError::detail`]
/// has serde's message, which may quote a fragment of the body (log it at
/// debug level only).
#[derive(Clone, PartialEq, Eq)]
pub struct ViewError {
    detail: String,
}

impl ViewError {
    /// serde's description, which may quote part of the event body.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Debug for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ViewError { .. }")
    }
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event data does not fit the typed view of its slug")
    }
}

impl std::error::Error for ViewError {}

/// Why a body is not an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// The body is not valid JSON (or not UTF-8).
    NotJson {
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
    },
    /// The JSON is valid but not an event object with string `id`, `type`
    /// and `action`.
    NotAnEvent {
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
    },
    /// The body ends before the JSON does (includes an empty body).
    Truncated,
    /// The `id` is an empty string.
    EmptyId,
}

impl EventError {
    fn from_json(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            Category::Eof => Self::Truncated,
            Category::Syntax | Category::Io => Self::NotJson { line, column },
            Category::Data => Self::NotAnEvent { line, column },
        }
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson { line, column } => {
                write!(f, "body is not valid JSON (line {line}, column {column})")
            }
            Self::NotAnEvent { line, column } => write!(
                f,
                "body is not an event object with string `id`, `type` and `action` (line {line}, column {column})"
            ),
            Self::Truncated => f.write_str("body ends before the JSON event does"),
            Self::EmptyId => f.write_str("event `id` is empty"),
        }
    }
}

impl std::error::Error for EventError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_slug_and_extra_fields_parse() {
        let e = Event::from_json(
            &br#"{"id":"x","type":"invoice","action":"paid","data":[1,2],"new_field":{"a":1}}"#[..],
        )
        .expect("event");
        assert_eq!(e.slug(), "invoice.paid");
        assert_eq!(e.data(), EventData::Other);
        assert_eq!(e.data, serde_json::json!([1, 2]));
        assert!(e.raw().starts_with(b"{\"id\""));
    }

    #[test]
    fn known_slug_with_misfit_data_still_parses() {
        let e = Event::from_json(
            &br#"{"id":"x","type":"task","action":"succeeded","data":"oops"}"#[..],
        )
        .expect("event");
        let EventData::Task(Err(err)) = e.data() else {
            panic!("expected a view error");
        };
        assert!(!err.to_string().contains("oops"));
        assert!(err.detail().contains("oops"));
        assert_eq!(e.data, Value::from("oops"));
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert_eq!(Event::from_json(Bytes::new()), Err(EventError::Truncated));
        assert_eq!(
            Event::from_json(&b"{\"id\":"[..]),
            Err(EventError::Truncated)
        );
        assert!(matches!(
            Event::from_json(&b"not json"[..]),
            Err(EventError::NotJson { .. })
        ));
        assert!(matches!(
            Event::from_json(&b"{}"[..]),
            Err(EventError::NotAnEvent { .. })
        ));
        assert!(matches!(
            Event::from_json(&b"[1]"[..]),
            Err(EventError::NotAnEvent { .. })
        ));
        assert!(matches!(
            Event::from_json(&br#"{"id":5,"type":"t","action":"a"}"#[..]),
            Err(EventError::NotAnEvent { .. })
        ));
        assert_eq!(
            Event::from_json(&br#"{"id":"","type":"t","action":"a"}"#[..]),
            Err(EventError::EmptyId)
        );
        assert!(matches!(
            Event::from_json(&b"{\"id\":\"\xff\",\"type\":\"t\",\"action\":\"a\"}"[..]),
            Err(EventError::NotJson { .. })
        ));
    }

    #[test]
    fn round_trips_through_json() {
        let e = Event::from_json(
            &br#"{"id":"x","resource":"event","type":"poll","action":"completed","data":{"id":"p"},"state":"pending","retries":2,"date_created":"d","date_delivered":null}"#[..],
        )
        .expect("event");
        let again = Event::from_json(serde_json::to_vec(&e).expect("serialise")).expect("event");
        assert_eq!(again.id, e.id);
        assert_eq!(again.data, e.data);
        assert_eq!(again.retries, Some(2));
        assert_eq!(
            serde_json::to_value(&again).ok(),
            serde_json::to_value(&e).ok()
        );
    }

    #[test]
    fn floats_in_data_round_trip_exactly() {
        // Found by the `event` fuzz target: without serde_json's
        // `float_roundtrip`, this came back as 1.2345678901236549e29.
        let body = br#"{"id":"a","type":"t","action":"a","data":123456789012365478901234567890}"#;
        let e = Event::from_json(&body[..]).expect("event");
        let again = Event::from_json(serde_json::to_vec(&e).expect("serialise")).expect("event");
        assert_eq!(again.data, e.data);
        assert_eq!(e.data.as_f64(), Some(1.234_567_890_123_654_8e29));
    }

    #[test]
    fn debug_leaves_data_out() {
        let e = Event::from_json(
            &br#"{"id":"x","type":"session","action":"expired","data":{"id":"s","note":"private"}}"#[..],
        )
        .expect("event");
        assert!(!format!("{e:?}").contains("private"));
    }
}
