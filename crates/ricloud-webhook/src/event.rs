//! The event envelope the API sends, with its slug and raw bytes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::resources::{Poll, Session, Task, WebhookConfig};
use crate::SignatureHeader;

mod error;

pub use error::{EventError, ViewError};

/// An event as the ricloud API sends it.
///
/// Only `id`, `type` and `action` are required: the envelope tolerates
/// missing and extra fields, and events of types this crate does not know
/// parse like any other. `data` is kept as the JSON text it arrived as
/// (serde_json checks that it is well-formed without building it):
/// [`Event::data`] parses the typed view for the documented slugs,
/// [`Event::data_as`] any type, and [`Event::data_json`] gives the text.
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
///
/// # What the envelope accepts
///
/// The body is read by serde_json into a derived struct, after a check
/// that the whole body is UTF-8. Beyond what JSON itself requires:
///
/// - **Duplicate keys**: an envelope field given twice (`"id"` twice, say)
///   refuses the body ([`EventError::NotAnEvent`]). Unknown fields are
///   skipped, repeated or not. Inside `data`, a repeated key is left to the
///   view: serde_json refuses it for a field of a typed view, and a
///   [`serde_json::Value`] keeps the last one.
/// - **Invalid UTF-8** anywhere in the body, even in a field nothing reads,
///   refuses it ([`EventError::NotUtf8`]).
/// - **Deep nesting**: `data` and unknown fields are skipped without
///   recursion, so any depth is read without risk to the stack; a view of
///   `data` nested more than 128 levels deep fails with a [`ViewError`]
///   (serde_json's recursion limit).
/// - The body must be an object (serde's derive would also read an array
///   of the fields in order) and its `id` non-empty.
/// - `id`, `type` and `action` hold no control character (U+0000 to
///   U+001F, U+007F to U+009F) and are at most [`Event::MAX_NAME_LEN`]
///   bytes: they name the event in stores, paths and logs
///   ([`EventError::ControlCharacter`], [`EventError::TooLong`]).
#[derive(Clone, PartialEq, Eq)]
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
    /// `data` as received (a slice of `raw`), `null` when absent.
    data: Bytes,
    /// The body exactly as received and signed.
    raw: Bytes,
    /// The receiver's name for the webhook config that delivered it, when
    /// the receiver serves several; not part of the body.
    pub(crate) config: Option<Arc<str>>,
    /// The header that verified it, when it was verified by this process
    /// or a store kept it; not part of the body.
    pub(crate) signature: Option<SignatureHeader>,
    /// When the receiver received it; not part of the body.
    pub(crate) received_at: Option<SystemTime>,
}

/// The envelope as serde_json reads it, borrowing from the body.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    retries: Option<u64>,
    #[serde(default)]
    date_created: Option<String>,
    #[serde(default)]
    date_delivered: Option<String>,
}

/// `data` when it is absent or `null`.
const NULL: &str = "null";

impl Event {
    /// The event slugs the API documents, in the order its documentation lists
    /// them. The API may send others at any time; a receiver accepts those too.
    pub const DOCUMENTED_SLUGS: [&'static str; 7] = [
        "webhook_config.test",
        "session.expired",
        "poll.created",
        "poll.completed",
        "task.created",
        "task.succeeded",
        "task.failed",
    ];

    /// The longest `id`, `type` or `action` accepted, in bytes. The API's
    /// ids are UUIDs and its slugs short words; the cap keeps every name a
    /// store indexes well inside its key limits.
    pub const MAX_NAME_LEN: usize = 256;

    /// Parses an event from the raw body, keeping the bytes.
    ///
    /// # Errors
    /// [`EventError`] when the body is not UTF-8, not JSON, not an object,
    /// or lacks a string `id`, `type` or `action` (see the type's docs for
    /// what else is refused).
    pub fn from_json(body: impl Into<Bytes>) -> Result<Self, EventError> {
        let raw = body.into();
        let text = std::str::from_utf8(&raw).map_err(|e| EventError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let env: Envelope<'_> = serde_json::from_str(text).map_err(EventError::from_json)?;
        // serde's derive also reads a struct from an array of its fields.
        let start = text.len() - text.trim_start().len();
        if !text[start..].starts_with('{') {
            let line = 1 + text[..start].matches('\n').count();
            let column = start - text[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
            return Err(EventError::NotAnEvent { line, column });
        }
        if env.id.is_empty() {
            return Err(EventError::EmptyId);
        }
        for (field, value) in [
            ("id", &env.id),
            ("type", &env.kind),
            ("action", &env.action),
        ] {
            if value.len() > Self::MAX_NAME_LEN {
                return Err(EventError::TooLong { field });
            }
            if value.chars().any(char::is_control) {
                return Err(EventError::ControlCharacter { field });
            }
        }
        // A view into the body, not a copy.
        let data = env.data.map_or_else(
            || Bytes::from_static(NULL.as_bytes()),
            |d| raw.slice_ref(d.get().as_bytes()),
        );
        Ok(Self {
            id: env.id.into_owned(),
            resource: env.resource,
            kind: env.kind.into_owned(),
            action: env.action.into_owned(),
            state: env.state,
            retries: env.retries,
            date_created: env.date_created,
            date_delivered: env.date_delivered,
            data,
            raw,
            config: None,
            signature: None,
            received_at: None,
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

    /// The slug if it is one of [`Event::DOCUMENTED_SLUGS`], else `"other"`:
    /// a label with a bounded set of values, for metrics.
    pub fn slug_label(&self) -> &'static str {
        Self::DOCUMENTED_SLUGS
            .iter()
            .find(|slug| slug.split_once('.') == Some((&*self.kind, &*self.action)))
            .copied()
            .unwrap_or("other")
    }

    /// The name of the webhook config that delivered the event, when the
    /// receiver serves several ([`Verifiers`](crate::Verifiers)); `None`
    /// for a receiver of one config and for an event fetched from the API.
    pub fn config(&self) -> Option<&str> {
        self.config.as_deref()
    }

    /// The `Ricloud-Signature` header that verified the body (its `Display`
    /// is the value as received), so that the event can be passed on with
    /// it and verified again. `None` for an event fetched from the API and
    /// one parsed with [`Event::from_json`].
    pub fn signature(&self) -> Option<&SignatureHeader> {
        self.signature.as_ref()
    }

    /// When the receiver received (verified) the event, by its clock, or
    /// when a store recorded it. `None` for one parsed with
    /// [`Event::from_json`].
    pub fn received_at(&self) -> Option<SystemTime> {
        self.received_at
    }

    /// The body exactly as received and signed.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// `data` as JSON text, exactly as received; `null` when it was absent.
    pub fn data_json(&self) -> &str {
        // Always UTF-8: `from_json` checked the whole body.
        std::str::from_utf8(&self.data).unwrap_or(NULL)
    }

    /// Parses `data` as `T` with serde_json: a [`serde_json::Value`], one
    /// of this crate's views, or a type of your own.
    ///
    /// # Errors
    /// [`ViewError`] when `data` does not fit `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, ViewError> {
        view(self.data_json())
    }

    /// Parses `data` as a `T` that borrows its text from the event: no
    /// allocation for its strings, and only the fields `T` names are kept.
    ///
    /// Declare text fields as `Cow<'a, str>` with `#[serde(borrow)]`: they
    /// borrow when the JSON string has no escape and hold a decoded copy
    /// when it has one. A `&'a str` field cannot hold a string with an
    /// escape and makes the whole view fail on one, so keep it for text
    /// that never has one (states, dates, UUIDs).
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
            ("webhook_config", "test") => EventData::WebhookConfig(self.data_as()),
            ("task", _) => EventData::Task(self.data_as()),
            ("poll", _) => EventData::Poll(self.data_as()),
            ("session", "expired") => EventData::Session(self.data_as()),
            _ => EventData::Other,
        }
    }
}

fn view<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, ViewError> {
    serde_json::from_str(data).map_err(|e| ViewError {
        detail: e.to_string(),
        view: None,
    })
}

/// The envelope as written back: the fields present, `data` as received.
#[derive(Serialize)]
struct Written<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    action: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_created: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_delivered: Option<&'a str>,
}

impl Serialize for Event {
    /// The envelope's fields, with `data` as the JSON text received (meant
    /// for serde_json, which writes it unchanged).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data: &RawValue =
            serde_json::from_str(self.data_json()).map_err(serde::ser::Error::custom)?;
        Written {
            id: &self.id,
            resource: self.resource.as_deref(),
            kind: &self.kind,
            action: &self.action,
            data,
            state: self.state.as_deref(),
            retries: self.retries,
            date_created: self.date_created.as_deref(),
            date_delivered: self.date_delivered.as_deref(),
        }
        .serialize(serializer)
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
            .field("config", &self.config)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn event(body: &[u8]) -> Result<Event, EventError> {
        Event::from_json(body.to_vec())
    }

    #[test]
    fn unknown_slug_and_extra_fields_parse() {
        let e = event(
            br#"{"id":"x","type":"invoice","action":"paid","data":[1,2],"new_field":{"a":1}}"#,
        )
        .expect("event");
        assert_eq!(e.slug(), "invoice.paid");
        assert_eq!(e.data(), EventData::Other);
        assert_eq!(e.data_as::<Value>(), Ok(serde_json::json!([1, 2])));
        assert_eq!(e.data_json(), "[1,2]");
        assert!(e.raw().starts_with(b"{\"id\""));
    }

    #[test]
    fn data_is_a_view_into_the_body() {
        let e = event(br#"{"id":"x","type":"t","action":"a","data":{"k":1}}"#).expect("event");
        let (raw, data) = (e.raw().as_ptr() as usize, e.data_json().as_ptr() as usize);
        assert!(data > raw && data < raw + e.raw().len());
    }

    #[test]
    fn known_slug_with_misfit_data_still_parses() {
        let e = event(br#"{"id":"x","type":"task","action":"succeeded","data":"oops"}"#)
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
        assert_eq!(event(b""), Err(EventError::Truncated));
        assert_eq!(event(b"{\"id\":"), Err(EventError::Truncated));
        assert!(matches!(event(b"{x"), Err(EventError::NotJson { .. })));
        assert!(matches!(
            event(b"not json"),
            Err(EventError::NotJson { .. })
        ));
        assert!(matches!(event(b"{}"), Err(EventError::NotAnEvent { .. })));
        assert!(matches!(event(b"[1]"), Err(EventError::NotAnEvent { .. })));
        // serde's derive reads a struct from an array of its fields; an event is an object.
        assert_eq!(
            event(br#" ["x", null, "task", "succeeded"]"#),
            Err(EventError::NotAnEvent { line: 1, column: 2 })
        );
        assert!(matches!(
            event(br#"{"id":5,"type":"t","action":"a"}"#),
            Err(EventError::NotAnEvent { .. })
        ));
        assert!(matches!(
            event(br#"{"id":"x","type":"t","action":"a","retries":-1}"#),
            Err(EventError::NotAnEvent { .. })
        ));
        assert_eq!(
            event(br#"{"id":"","type":"t","action":"a"}"#),
            Err(EventError::EmptyId)
        );
        assert!(matches!(
            event(br#"{"id":"x","type":"t","action":"a"} trailing"#),
            Err(EventError::NotJson { .. })
        ));
    }

    #[test]
    fn names_with_control_characters_or_too_long_are_refused() {
        // A NUL in `type` would fail a PostgreSQL text column; a newline or
        // an escape would forge log lines or rewrite a terminal.
        for (body, field) in [
            (
                &br#"{"id":"x","type":"po\u0000ll","action":"a"}"#[..],
                "type",
            ),
            (
                br#"{"id":"x\n2026 INFO forged","type":"t","action":"a"}"#,
                "id",
            ),
            (br#"{"id":"x","type":"t","action":"\u001b[2J"}"#, "action"),
            (br#"{"id":"x","type":"t","action":"a\u0085"}"#, "action"),
        ] {
            assert_eq!(
                event(body),
                Err(EventError::ControlCharacter { field }),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = "a".repeat(Event::MAX_NAME_LEN + 1);
        let body = format!(r#"{{"id":"{long}","type":"t","action":"a"}}"#);
        assert_eq!(
            event(body.as_bytes()),
            Err(EventError::TooLong { field: "id" })
        );
        let body = format!(r#"{{"id":"x","type":"{}","action":"a"}}"#, &long[1..]);
        assert!(
            event(body.as_bytes()).is_ok(),
            "exactly the limit is accepted"
        );
        // Other text, non-ASCII included, is fine.
        assert!(event(r#"{"id":"x","type":"tâche","action":"réussie"}"#.as_bytes()).is_ok());
        // Control characters elsewhere in the body are left to the views.
        assert!(event(br#"{"id":"x","type":"t","action":"a","data":{"s":"\u0000"}}"#).is_ok());
    }

    #[test]
    fn invalid_utf8_is_refused_wherever_it_is() {
        // In a field nothing reads (serde_json alone would skip it unchecked).
        assert_eq!(
            event(b"{\"id\":\"x\",\"type\":\"t\",\"action\":\"a\",\n\"other\":\"\xff\"}"),
            Err(EventError::NotUtf8 { offset: 44 })
        );
        assert_eq!(
            event(b"{\"id\":\"\xff\",\"type\":\"t\",\"action\":\"a\"}"),
            Err(EventError::NotUtf8 { offset: 7 })
        );
        assert!(matches!(
            event(b"{\"id\":\"x\",\"type\":\"t\",\"action\":\"a\",\"data\":\"\xc3\"}"),
            Err(EventError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn repeated_envelope_fields_are_refused_and_others_left_alone() {
        let repeated = br#"{"id":"x","type":"t","action":"a","data":1,"data":2}"#;
        assert!(matches!(
            event(repeated),
            Err(EventError::NotAnEvent { .. })
        ));
        let repeated = br#"{"id":"a","id":"b","type":"t","action":"a"}"#;
        assert!(matches!(
            event(repeated),
            Err(EventError::NotAnEvent { .. })
        ));
        // An unknown field twice is skipped twice.
        let unknown = br#"{"id":"a","type":"t","action":"a","x":1,"x":2}"#;
        assert!(event(unknown).is_ok());
        // Inside `data`: a typed view refuses a repeated field, a Value keeps the last.
        let inner = br#"{"id":"a","type":"task","action":"succeeded","data":{"id":"t","id":"u"}}"#;
        let e = event(inner).expect("event");
        assert!(matches!(e.data(), EventData::Task(Err(_))));
        assert_eq!(e.data_as::<Value>(), Ok(serde_json::json!({"id": "u"})));
    }

    #[test]
    fn deep_nesting_is_read_and_left_to_the_views() {
        let nested = |depth: usize| {
            format!(
                r#"{{"id":"x","type":"t","action":"a","data":{}{},"other":{}null{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth),
                "{\"a\":".repeat(depth),
                "}".repeat(depth),
            )
        };
        let e = Event::from_json(nested(100_000)).expect("any depth is skipped without recursion");
        assert_eq!(e.data_json().len(), 200_000);
        assert!(
            e.data_as::<Value>().is_err(),
            "beyond serde_json's limit of 128"
        );
        let e = Event::from_json(nested(100)).expect("event");
        assert!(e.data_as::<Value>().is_ok());
    }

    #[test]
    fn round_trips_through_json() {
        let e = event(br#"{"id":"x","resource":"event","type":"poll","action":"completed","data":{"id":"p"},"state":"pending","retries":2,"date_created":"d","date_delivered":null}"#)
            .expect("event");
        let again = Event::from_json(serde_json::to_vec(&e).expect("serialise")).expect("event");
        assert_eq!(again.id, e.id);
        assert_eq!(again.data_json(), e.data_json());
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
        let e = event(body).expect("event");
        assert_eq!(
            e.data_as::<Value>().ok().and_then(|v| v.as_f64()),
            Some(1.234_567_890_123_654_8e29)
        );
    }

    #[test]
    fn data_is_kept_as_sent() {
        let body = br#"{"id":"x","type":"t","action":"a","data": { "b" : [1, 2.50, "\u00e9"] } }"#;
        let e = event(body).expect("event");
        assert_eq!(e.data_json(), r#"{ "b" : [1, 2.50, "\u00e9"] }"#);
        assert_eq!(
            e.data_as::<Value>(),
            Ok(serde_json::json!({"b": [1, 2.5, "\u{e9}"]}))
        );
        for body in [
            &br#"{"id":"x","type":"t","action":"a"}"#[..],
            &br#"{"id":"x","type":"t","action":"a","data":null}"#[..],
        ] {
            let e = event(body).expect("event");
            assert_eq!(e.data_json(), "null");
            assert_eq!(e.data(), EventData::Other);
        }
    }

    #[test]
    fn malformed_data_is_refused() {
        for body in [
            &br#"{"id":"x","type":"t","action":"a","data":{"a":}}"#[..],
            &br#"{"id":"x","type":"t","action":"a","data":[1,]}"#[..],
        ] {
            assert!(
                matches!(event(body), Err(EventError::NotJson { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn debug_leaves_data_out() {
        let e = event(
            br#"{"id":"x","type":"session","action":"expired","data":{"id":"s","note":"private"}}"#,
        )
        .expect("event");
        assert!(!format!("{e:?}").contains("private"));
    }
}
