//! The event envelope the API sends, with its slug and raw bytes.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::ser::{Error as _, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::{self, JsonError};

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
/// parse like any other. `data` is kept as the raw JSON text it arrived as
/// (checked to be well-formed JSON, not parsed further): [`Event::data`]
/// parses the typed view for the documented slugs, [`Event::data_as`] any
/// type, and [`Event::data_json`] gives the text itself.
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
/// let data: serde_json::Value = event.data_as()?;
/// assert_eq!(data["state"], "succeeded");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Event {
    /// The event's identifier (a UUID), also the last segment of the URL.
    pub id: String,
    /// The resource type, `"event"`.
    pub resource: Option<String>,
    /// What kind of resource the event is about (`task`, `poll`, ...); JSON `type`.
    pub kind: String,
    /// What happened (`succeeded`, `test`, ...).
    pub action: String,
    /// Delivery state: `pending`, `delivered` or `failed`.
    pub state: Option<String>,
    /// How many times delivery has been retried.
    pub retries: Option<u64>,
    /// When the event was created (ISO 8601, as sent).
    pub date_created: Option<String>,
    /// When the event was delivered, if it was.
    pub date_delivered: Option<String>,
    /// `data` as received (a slice of `raw`, checked to be well-formed
    /// UTF-8 JSON), `null` when absent.
    data: Bytes,
    /// The body exactly as received and signed; empty for an event
    /// deserialised from elsewhere.
    raw: Bytes,
}

/// `data` when it is absent or `null`.
const NULL: &[u8] = b"null";

impl Event {
    /// Parses an event from the raw body, keeping the bytes.
    ///
    /// The whole body must be well-formed JSON text (RFC 8259: UTF-8
    /// throughout, nesting at most 128 deep), `data` included, and an
    /// object; `data` is not parsed further until a view asks for it.
    ///
    /// # Errors
    /// [`EventError`] when the body is not JSON, not an object, or lacks a
    /// string `id`, `type` or `action`.
    pub fn from_json(body: impl Into<Bytes>) -> Result<Self, EventError> {
        let raw = body.into();
        let env = json::envelope(&raw).map_err(|e| EventError::from_reader(&raw, e))?;
        let owned = |text: Option<Cow<'_, str>>| text.map(Cow::into_owned);
        let id = owned(env.id).unwrap_or_default();
        if id.is_empty() {
            return Err(EventError::EmptyId);
        }
        // A view into the body, not a copy.
        let data = env
            .data
            .map_or_else(|| Bytes::from_static(NULL), |range| raw.slice(range));
        Ok(Self {
            id,
            resource: owned(env.resource),
            kind: owned(env.kind).unwrap_or_default(),
            action: owned(env.action).unwrap_or_default(),
            state: owned(env.state),
            retries: env.retries,
            date_created: owned(env.date_created),
            date_delivered: owned(env.date_delivered),
            data,
            raw,
        })
    }

    /// The slug `type.action` that names the event, e.g. `task.succeeded`.
    pub fn slug(&self) -> String {
        format!("{}.{}", self.kind, self.action)
    }

    /// Whether the slug is `kind.action`, without building it.
    pub fn is(&self, kind: &str, action: &str) -> bool {
        self.kind == kind && self.action == action
    }

    /// The body exactly as received (empty for an event deserialised from
    /// elsewhere than [`Event::from_json`]).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// `data` as JSON text, exactly as received; `null` when it was absent.
    pub fn data_json(&self) -> &str {
        // Always UTF-8: `from_json` checked the whole body, and `data` from
        // elsewhere is serde_json's output.
        std::str::from_utf8(&self.data).unwrap_or("null")
    }

    /// Parses `data` as `T`: a [`serde_json::Value`], one of this crate's
    /// views, or a type of your own.
    ///
    /// The result is what `serde_json::from_str` gives on the same text,
    /// value or error. The common forms are read by the crate's own
    /// scanner, about a fifth faster for the views; serde_json reads
    /// whatever it leaves (floats, long integers, enums, `RawValue`) and
    /// every input with an error.
    ///
    /// # Errors
    /// [`ViewError`] when `data` does not fit `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, ViewError> {
        view(self.data_json())
    }

    /// Parses `data` as a `T` that borrows its text from the event: no
    /// allocation for its strings, and only the fields `T` names are
    /// kept. The owned views ([`Task`](crate::Task) and the others) copy
    /// every string, which costs more than everything else the receiver
    /// does per delivery (BENCHMARKS.md).
    ///
    /// Declare text fields as `Cow<'a, str>` with `#[serde(borrow)]`: they
    /// borrow when the JSON string has no escape and hold a decoded copy
    /// when it has one. A `&'a str` field cannot hold a string with an
    /// escape and makes the whole view fail on one, so keep it for text
    /// that never has one (states, dates, UUIDs). serde borrows only for a
    /// `Cow` field itself: an `Option<Cow<'a, str>>` always copies, while an
    /// `Option<&'a str>` borrows.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use ricloud_webhook::Event;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct TaskState<'a> {
    ///     #[serde(borrow)]
    ///     id: Cow<'a, str>,
    ///     state: Option<&'a str>,
    /// }
    ///
    /// let body: &[u8] = br#"{"id": "e1", "type": "task", "action": "succeeded",
    ///     "data": {"id": "t1", "state": "succeeded", "results": {"data": []}}}"#;
    /// let event = Event::from_json(body)?;
    /// let task: TaskState<'_> = event.data_borrowed()?;
    /// assert!(matches!(task.id, Cow::Borrowed("t1")));
    /// assert_eq!(task.state, Some("succeeded"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ViewError`] when `data` does not fit `T`.
    pub fn data_borrowed<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ViewError> {
        view(self.data_json())
    }

    /// A typed view of `data` chosen by the slug.
    ///
    /// A documented slug whose data does not fit its view gives that view's
    /// `Err`; `data` itself stays available either way.
    pub fn data(&self) -> EventData {
        match (self.kind.as_str(), self.action.as_str()) {
            ("webhook_config", "test") => EventData::WebhookConfig(view(self.data_json())),
            ("task", _) => EventData::Task(view(self.data_json())),
            ("poll", _) => EventData::Poll(view(self.data_json())),
            ("session", "expired") => EventData::Session(view(self.data_json())),
            _ => EventData::Other,
        }
    }
}

/// Parses a typed view from `data`'s JSON text, as serde_json would, with
/// the envelope's scanner where it can (`json::from_str`).
fn view<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, ViewError> {
    json::from_str(data).map_err(|e| ViewError {
        detail: e.to_string(),
        view: None,
    })
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.resource == other.resource
            && self.kind == other.kind
            && self.action == other.action
            && self.state == other.state
            && self.retries == other.retries
            && self.date_created == other.date_created
            && self.date_delivered == other.date_delivered
            && self.data == other.data
            && self.raw == other.raw
    }
}

impl Eq for Event {}

impl Serialize for Event {
    /// The envelope's fields, with `data` as JSON (parsed from the kept
    /// text, so any serde format gets a value, not a string).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data: Value = serde_json::from_slice(&self.data).map_err(S::Error::custom)?;
        let optional = [
            self.resource.is_some(),
            self.state.is_some(),
            self.retries.is_some(),
            self.date_created.is_some(),
            self.date_delivered.is_some(),
        ];
        let len = 4 + optional.iter().filter(|present| **present).count();
        let mut out = serializer.serialize_struct("Event", len)?;
        out.serialize_field("id", &self.id)?;
        if let Some(resource) = &self.resource {
            out.serialize_field("resource", resource)?;
        }
        out.serialize_field("type", &self.kind)?;
        out.serialize_field("action", &self.action)?;
        out.serialize_field("data", &data)?;
        if let Some(state) = &self.state {
            out.serialize_field("state", state)?;
        }
        if let Some(retries) = &self.retries {
            out.serialize_field("retries", retries)?;
        }
        if let Some(date) = &self.date_created {
            out.serialize_field("date_created", date)?;
        }
        if let Some(date) = &self.date_delivered {
            out.serialize_field("date_delivered", date)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    /// From any serde format; [`Event::raw`] is then empty. For a received
    /// body use [`Event::from_json`], which keeps the bytes. (From
    /// serde_json, `data` may nest one level less than with `from_json`:
    /// serde_json's own recursion limit applies first.)
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through JSON text and the one envelope reader, so the same rules
        // hold whatever the format. A `Value` keeps only the last of two
        // equal keys, so the envelope's own keys are collected first, and a
        // repeated one is refused as `from_json` refuses it.
        let value = deserializer.deserialize_map(UniqueKeys)?;
        let text = serde_json::to_vec(&value).map_err(D::Error::custom)?;
        let mut event = Self::from_json(text).map_err(D::Error::custom)?;
        event.raw = Bytes::new();
        Ok(event)
    }
}

/// A JSON object whose keys are each present once.
struct UniqueKeys;

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                // The key is not quoted: error messages never repeat the body.
                return Err(A::Error::custom("the event repeats a field"));
            }
            let value = access.next_value::<Value>()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
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
    /// A slug without a typed view: use [`Event::data_as`] or [`Event::data_json`].
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
    view: Option<&'static str>,
}

impl ViewError {
    /// The name of the view that did not fit (`"Task"`, ...), when a
    /// handler's argument was being built; `None` from [`Event::data_as`].
    pub fn view(&self) -> Option<&'static str> {
        self.view
    }

    /// Names the view, unless an inner one was named already.
    pub(crate) fn in_view(mut self, view: &'static str) -> Self {
        self.view.get_or_insert(view);
        self
    }

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
    /// The JSON is valid but not an event: not an object, a required field
    /// missing, or a field repeated or of the wrong type (`id`, `type` and
    /// `action` are strings; `retries` a non-negative integer or null; the
    /// other envelope fields strings or null; `data` anything).
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
    fn from_reader(body: &[u8], e: JsonError) -> Self {
        match e {
            JsonError::Eof => Self::Truncated,
            JsonError::Syntax(at) => {
                let (line, column) = line_column(body, at);
                Self::NotJson { line, column }
            }
            JsonError::Shape(at) => {
                let (line, column) = line_column(body, at);
                Self::NotAnEvent { line, column }
            }
        }
    }
}

/// 1-based line and column (in bytes) of `offset` in `body`.
fn line_column(body: &[u8], offset: usize) -> (usize, usize) {
    let before = body.get(..offset).unwrap_or(body);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson { line, column } => {
                write!(f, "body is not valid JSON (line {line}, column {column})")
            }
            Self::NotAnEvent { line, column } => write!(
                f,
                "body is not a ricloud event (line {line}, column {column}): it must be an object whose `id`, `type` and `action` are strings, `retries` a non-negative integer or null, and other envelope fields strings or null, each at most once"
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
        assert_eq!(e.data_as::<Value>(), Ok(serde_json::json!([1, 2])));
        assert_eq!(e.data_json(), "[1,2]");
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
        assert_eq!(e.data_as::<Value>(), Ok(Value::from("oops")));
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
        // serde's derive reads a struct from an array of its fields too.
        assert_eq!(
            Event::from_json(&br#" ["x", null, "task", "succeeded"]"#[..]),
            Err(EventError::NotAnEvent { line: 1, column: 2 })
        );
        assert_eq!(Event::from_json(&b"[1,"[..]), Err(EventError::Truncated));
        // Invalid UTF-8 is refused even in a field nothing reads.
        assert_eq!(
            Event::from_json(
                &b"{\"id\":\"x\",\"type\":\"t\",\"action\":\"a\",\n\"other\":\"\xff\"}"[..]
            ),
            Err(EventError::NotJson {
                line: 2,
                column: 10
            })
        );
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
        assert_eq!(again.data_as::<Value>(), e.data_as::<Value>());
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
        assert_eq!(again.data_as::<Value>(), e.data_as::<Value>());
        assert_eq!(
            e.data_as::<Value>().ok().and_then(|v| v.as_f64()),
            Some(1.234_567_890_123_654_8e29)
        );
    }

    #[test]
    fn data_is_kept_as_sent() {
        let body = br#"{"id":"x","type":"t","action":"a","data": { "b" : [1, 2.50, "\u00e9"] } }"#;
        let e = Event::from_json(&body[..]).expect("event");
        assert_eq!(e.data_json(), r#"{ "b" : [1, 2.50, "\u00e9"] }"#);
        assert_eq!(
            e.data_as::<Value>(),
            Ok(serde_json::json!({"b": [1, 2.5, "\u{e9}"]}))
        );
        for body in [
            &br#"{"id":"x","type":"t","action":"a"}"#[..],
            &br#"{"id":"x","type":"t","action":"a","data":null}"#[..],
        ] {
            let e = Event::from_json(body).expect("event");
            assert_eq!(e.data_json(), "null");
            assert_eq!(e.data(), EventData::Other);
        }
    }

    #[test]
    fn malformed_or_repeated_data_is_refused() {
        for body in [
            &br#"{"id":"x","type":"t","action":"a","data":{"a":}}"#[..],
            &br#"{"id":"x","type":"t","action":"a","data":[1,]}"#[..],
            &b"{\"id\":\"x\",\"type\":\"t\",\"action\":\"a\",\"data\":\"\xff\"}"[..],
        ] {
            assert!(
                matches!(Event::from_json(body), Err(EventError::NotJson { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let repeated = &br#"{"id":"x","type":"t","action":"a","data":1,"data":2}"#[..];
        assert!(matches!(
            Event::from_json(repeated),
            Err(EventError::NotAnEvent { .. })
        ));
    }

    #[test]
    fn data_beyond_a_value_parses_and_its_views_refuse_it() {
        // Well-formed JSON, so the event parses; `data` is only parsed for a
        // view, which then refuses it with an error, never a panic. Nesting
        // beyond 128 levels is refused when the event is read.
        let body = br#"{"id":"x","type":"task","action":"succeeded","data":{"id":"t","id":"u","n":1e400}}"#;
        let e = Event::from_json(&body[..]).expect("event");
        assert!(matches!(e.data(), EventData::Task(Err(_))));
        assert!(e.data_as::<Value>().is_err());
        assert!(serde_json::to_vec(&e).is_err());
        let deep = format!(
            r#"{{"id":"x","type":"t","action":"a","data":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(
            Event::from_json(deep.into_bytes()),
            Err(EventError::NotJson { line: 1, .. })
        ));
    }

    #[test]
    fn deserialises_from_a_value_without_raw_bytes() {
        let value = serde_json::json!({"id": "x", "type": "task", "action": "created",
            "data": {"id": "t1"}, "retries": 1});
        let e: Event = serde_json::from_value(value.clone()).expect("event");
        assert!(e.raw().is_empty());
        assert_eq!(e.retries, Some(1));
        assert!(matches!(e.data(), EventData::Task(Ok(ref t)) if t.id == "t1"));
        assert_eq!(serde_json::to_value(&e).ok(), Some(value));
        // The same rules as a received body.
        let empty_id = serde_json::json!({"id": "", "type": "t", "action": "a"});
        assert!(serde_json::from_value::<Event>(empty_id).is_err());
        assert!(serde_json::from_value::<Event>(serde_json::json!(["x", null, "t", "a"])).is_err());
        // A repeated field is refused from text too, as `from_json` does
        // (a `Value` on the way would keep only the last one).
        let repeated = r#"{"id": "a", "id": "b", "type": "t", "action": "a"}"#;
        assert!(Event::from_json(repeated).is_err());
        let error = serde_json::from_str::<Event>(repeated).expect_err("repeated id");
        assert!(error.to_string().contains("repeats a field"), "{error}");
        // Repeated keys inside `data` are `data`'s business, as in `from_json`.
        let inner = r#"{"id": "a", "type": "t", "action": "a", "data": {"k": 1, "k": 2}}"#;
        assert!(Event::from_json(inner).is_ok());
        assert!(serde_json::from_str::<Event>(inner).is_ok());
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
