//! Typed views of the resources that arrive in an event's `data`.
//!
//! Every field but `id` is optional: the documentation and the API drift,
//! and a view that refused a delivery for a missing field would lose events.
//! Unknown fields are ignored (the raw JSON stays on the [`Event`](crate::Event)).
//! States are enums with an `Other` case so a new state does not break parsing.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A resource identifier: a UUID string, or an integer for some resources
/// (organisations, keys). Kept as text either way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub String);

impl Id {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or integer identifier")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// Defines a state enum that keeps unknown states instead of failing.
macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A state this crate does not know yet, as sent.
            Other(String),
        }

        impl $name {
            /// The state as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A visitor, not a `Cow<str>`: serde's `Cow` is always owned,
                // which would allocate for every known state.
                struct StateVisitor;
                impl Visitor<'_> for StateVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a state string")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        Ok(match s {
                            $($text => $name::$variant,)*
                            _ => $name::Other(s.to_owned()),
                        })
                    }
                }
                d.deserialize_str(StateVisitor)
            }
        }
    };
}

state_enum! {
    /// State of a [`WebhookConfig`].
    WebhookConfigState {
        /// Just created or updated, not tested yet.
        New = "new",
        /// Passed the validation test.
        Valid = "valid",
        /// Failed the validation test.
        Invalid = "invalid",
        /// Retired by its organisation.
        Deactivated = "deactivated",
    }
}

state_enum! {
    /// State of a [`Task`].
    TaskState {
        /// Waiting to run.
        Pending = "pending",
        /// Running.
        Processing = "processing",
        /// Paused.
        Suspended = "suspended",
        /// Finished with results.
        Succeeded = "succeeded",
        /// Finished with an error.
        Failed = "failed",
    }
}

state_enum! {
    /// State of a [`Poll`].
    PollState {
        /// Waiting to run.
        Pending = "pending",
        /// Running its tasks.
        Processing = "processing",
        /// All tasks finished.
        Completed = "completed",
    }
}

state_enum! {
    /// State of a [`Session`].
    SessionState {
        /// Being set up.
        Pending = "pending",
        /// Usable.
        Active = "active",
        /// Could not be set up.
        Failed = "failed",
        /// No longer usable.
        Expired = "expired",
    }
}

state_enum! {
    /// State of a [`ResultResource`].
    ResultState {
        /// Ready to download.
        Available = "available",
        /// Downloaded and acknowledged.
        Consumed = "consumed",
        /// No longer available.
        Expired = "expired",
    }
}

/// The `webhook_config` resource, sent with `webhook_config.test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Resource identifier.
    pub id: Id,
    /// `"webhook_config"`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Owning organisation.
    #[serde(default)]
    pub organisation: Option<Id>,
    /// The URL events are sent to.
    #[serde(default)]
    pub url: Option<String>,
    /// Config state.
    #[serde(default)]
    pub state: Option<WebhookConfigState>,
    /// Creation time (ISO 8601).
    #[serde(default)]
    pub date_created: Option<String>,
}

/// A list object of results (`{"data": [...], "has_more": false}`); a bare
/// array is accepted too.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct ResultList {
    /// The results on this page.
    pub data: Vec<ResultResource>,
    /// Whether the API holds more than this page.
    pub has_more: bool,
}

impl<'de> Deserialize<'de> for ResultList {
    /// A list object, a bare array, or `null` (no results). Read in one pass:
    /// serde's `untagged` would buffer the whole value to try each form.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ResultList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of results, as an object with `data` or as an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ResultList, E> {
                Ok(ResultList::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<ResultList, E> {
                Ok(ResultList::default())
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<ResultList, A::Error> {
                let data = Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(ResultList {
                    data,
                    has_more: false,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ResultList, A::Error> {
                let list = ListObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ResultList {
                    data: list.data,
                    has_more: list.has_more,
                })
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// The object form of a list, as the API sends it.
#[derive(Deserialize)]
struct ListObject {
    #[serde(default)]
    data: Vec<ResultResource>,
    #[serde(default)]
    has_more: bool,
}

/// The `result` resource: one file a task produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResultResource {
    /// Resource identifier.
    pub id: Id,
    /// `"result"`.
    #[serde(default)]
    pub resource: Option<String>,
    /// The task that produced it.
    #[serde(default)]
    pub task: Option<Id>,
    /// What the result holds (e.g. `messages.sms`).
    #[serde(default)]
    pub identifier: Option<String>,
    /// Where to fetch it.
    #[serde(default)]
    pub url: Option<String>,
    /// MD5 of the content.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Result state.
    #[serde(default)]
    pub state: Option<ResultState>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// When it was consumed.
    #[serde(default)]
    pub date_consumed: Option<String>,
    /// When it was deleted.
    #[serde(default)]
    pub date_deleted: Option<String>,
}

/// The `task` resource, sent with every `task.*` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Task {
    /// Resource identifier.
    pub id: Id,
    /// `"task"`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Owning organisation.
    #[serde(default)]
    pub organisation: Option<Id>,
    /// The API key that created it.
    #[serde(default)]
    pub key: Option<Id>,
    /// The user it runs for.
    #[serde(default)]
    pub user: Option<Id>,
    /// The source it reads.
    #[serde(default)]
    pub source: Option<Id>,
    /// The session it uses.
    #[serde(default)]
    pub session: Option<Id>,
    /// The poll that created it.
    #[serde(default)]
    pub poll: Option<Id>,
    /// The type of source (e.g. `icloud.account`).
    #[serde(default)]
    pub source_type: Option<String>,
    /// The task type (e.g. `fetch.data`); JSON `type`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// What it fetches (e.g. `messages.sms`).
    #[serde(default)]
    pub target: Option<String>,
    /// Task state.
    #[serde(default)]
    pub state: Option<TaskState>,
    /// The results it produced.
    #[serde(default)]
    pub results: ResultList,
    /// Error code when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Start time.
    #[serde(default)]
    pub date_started: Option<String>,
    /// Completion time.
    #[serde(default)]
    pub date_completed: Option<String>,
}

/// The `poll` resource, sent with every `poll.*` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Poll {
    /// Resource identifier.
    pub id: Id,
    /// `"poll"`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Owning organisation.
    #[serde(default)]
    pub organisation: Option<Id>,
    /// The API key that created it.
    #[serde(default)]
    pub key: Option<Id>,
    /// The user it runs for.
    #[serde(default)]
    pub user: Option<Id>,
    /// The source it reads.
    #[serde(default)]
    pub source: Option<Id>,
    /// The session it uses.
    #[serde(default)]
    pub session: Option<Id>,
    /// The subscription that created it.
    #[serde(default)]
    pub subscription: Option<Id>,
    /// IDs of tasks waiting to run.
    #[serde(default)]
    pub tasks_pending: Vec<Id>,
    /// IDs of tasks running.
    #[serde(default)]
    pub tasks_processing: Vec<Id>,
    /// IDs of tasks that succeeded.
    #[serde(default)]
    pub tasks_succeeded: Vec<Id>,
    /// IDs of tasks that failed.
    #[serde(default)]
    pub tasks_failed: Vec<Id>,
    /// IDs of tasks suspended.
    #[serde(default)]
    pub tasks_suspended: Vec<Id>,
    /// The results its tasks produced.
    #[serde(default)]
    pub results: ResultList,
    /// Errors, as sent.
    #[serde(default)]
    pub errors: Option<Value>,
    /// Poll state.
    #[serde(default)]
    pub state: Option<PollState>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Start time.
    #[serde(default)]
    pub date_started: Option<String>,
    /// Completion time.
    #[serde(default)]
    pub date_completed: Option<String>,
}

/// The `session` resource, sent with `session.expired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// Resource identifier.
    pub id: Id,
    /// `"session"`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Owning organisation.
    #[serde(default)]
    pub organisation: Option<Id>,
    /// The API key that created it.
    #[serde(default)]
    pub key: Option<Id>,
    /// The user it belongs to.
    #[serde(default)]
    pub user: Option<Id>,
    /// The source it opens, nested, as sent.
    #[serde(default)]
    pub source: Option<Value>,
    /// Session state.
    #[serde(default)]
    pub state: Option<SessionState>,
    /// Error code when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Expiry time.
    #[serde(default)]
    pub date_expired: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_from_a_full_payload() {
        let task: Task = serde_json::from_value(json!({
            "id": "f3e4", "resource": "task", "organisation": 42, "key": 7,
            "type": "fetch.data", "target": "messages.sms", "state": "succeeded",
            "results": {"data": [{"id": "r1", "resource": "result", "size": 1234,
                                  "state": "available", "checksum": "d41d"}], "has_more": false},
            "error": null, "surprise": [1, 2, 3]
        }))
        .expect("task");
        assert_eq!(task.id, "f3e4");
        assert_eq!(task.organisation, Some(Id("42".into())));
        assert_eq!(task.state, Some(TaskState::Succeeded));
        assert_eq!(task.results.data[0].size, Some(1234));
        assert_eq!(task.results.data[0].state, Some(ResultState::Available));
    }

    #[test]
    fn minimal_and_unknown_states() {
        let session: Session =
            serde_json::from_value(json!({"id": "s", "state": "hibernating"})).expect("session");
        assert_eq!(
            session.state,
            Some(SessionState::Other("hibernating".into()))
        );
        assert_eq!(
            session.state.as_ref().map(SessionState::as_str),
            Some("hibernating")
        );
        let poll: Poll = serde_json::from_value(json!({"id": "p"})).expect("poll");
        assert!(poll.tasks_pending.is_empty());
        assert!(serde_json::from_value::<Task>(json!({"state": "x"})).is_err());
    }

    #[test]
    fn result_lists_in_every_form() {
        let list = |v: Value| serde_json::from_value::<ResultList>(v);
        let object =
            list(json!({"data": [{"id": "r"}], "has_more": true, "url": "/x"})).expect("object");
        assert_eq!((object.data.len(), object.has_more), (1, true));
        assert_eq!(
            list(json!({})).expect("empty object"),
            ResultList::default()
        );
        assert_eq!(list(json!(null)).expect("null"), ResultList::default());
        assert_eq!(list(json!([])).expect("empty array"), ResultList::default());
        assert!(list(json!("results")).is_err());
        assert!(list(json!({"data": [{"no_id": 1}]})).is_err());
        assert!(list(json!({"data": "x"})).is_err());
        let duplicated = r#"{"data": [], "data": [{"id": "r"}]}"#;
        assert!(serde_json::from_str::<ResultList>(duplicated).is_err());
        let task: Task = serde_json::from_str(r#"{"id": "t", "results": null}"#).expect("task");
        assert!(task.results.data.is_empty());
        // Keys and states are matched after unescaping, from text and from values.
        let escaped =
            r#"{"d\u0061ta": [{"id": "r", "state": "av\u0061ilable"}], "has_more": true}"#;
        let list: ResultList = serde_json::from_str(escaped).expect("escaped key");
        assert_eq!((list.data.len(), list.has_more), (1, true));
        assert_eq!(list.data[0].state, Some(ResultState::Available));
        let value: Value = serde_json::from_str(escaped).expect("value");
        assert_eq!(list, ResultList::deserialize(value).expect("from a value"));
    }

    #[test]
    fn results_as_bare_array() {
        let task: Task =
            serde_json::from_value(json!({"id": "t", "results": [{"id": "r"}]})).expect("task");
        assert_eq!(task.results.data.len(), 1);
    }

    #[test]
    fn views_serialise_back() {
        let config: WebhookConfig = serde_json::from_value(json!({
            "id": "d13c", "resource": "webhook_config", "organisation": 4954,
            "url": "https://r.example/webhooks", "state": "new"
        }))
        .expect("config");
        let again: WebhookConfig =
            serde_json::from_value(serde_json::to_value(&config).expect("ser")).expect("de");
        assert_eq!(again, config);
        assert_eq!(again.state, Some(WebhookConfigState::New));
    }
}
