//! The API's resources as the client reads them: tolerant of fields this
//! crate does not know, as the event views are.

use std::fmt;

use ricloud_webhook::resources::{Id, WebhookConfigState};
use ricloud_webhook::{Secret, SecretError, WebhookConfig};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use zeroize::Zeroizing;

/// A `webhook_config` resource as the management endpoints return it: the
/// resource itself (the core crate's [`WebhookConfig`], which this
/// dereferences to, as `webhook_config.test` events carry it) and, when the
/// API sent one, the secret its events are signed with.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct WebhookConfigWithSecret {
    /// The resource.
    #[serde(flatten)]
    pub config: WebhookConfig,
    /// The secret events are signed with, when the API sent it.
    #[serde(default)]
    pub secret: Option<ConfigSecret>,
}

impl WebhookConfigWithSecret {
    /// The state as the API spells it, `"?"` when it sent none.
    pub fn state_str(&self) -> &str {
        self.config
            .state
            .as_ref()
            .map_or("?", WebhookConfigState::as_str)
    }
}

impl std::ops::Deref for WebhookConfigWithSecret {
    type Target = WebhookConfig;

    fn deref(&self) -> &WebhookConfig {
        &self.config
    }
}

/// A config's secret as the API returned it.
///
/// Like [`Secret`], its `Debug` prints `[redacted]`, it has no `Display`,
/// and its bytes are wiped on drop. [`ConfigSecret::reveal`] gives the text,
/// for the one place that must write it out (a `0600` file, or stdout when
/// asked to).
#[derive(Clone)]
pub struct ConfigSecret(Zeroizing<String>);

impl ConfigSecret {
    /// The secret's text. Never log it.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The secret as the core crate's [`Secret`], to build a verifier with.
    ///
    /// # Errors
    /// [`SecretError::Empty`] when the API sent an empty secret.
    pub fn to_secret(&self) -> Result<Secret, SecretError> {
        Secret::new(self.0.as_bytes().to_vec())
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for ConfigSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

/// An event as `GET /events` returns it: the fields a catch-up filters on,
/// and the event's JSON exactly as the API sent it, which is what a
/// receiver is handed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiEvent {
    /// The event id.
    pub id: Id,
    /// `type`: what the event is about (`task`, `poll`, ...).
    pub kind: String,
    /// `action`: what happened (`succeeded`, `completed`, ...).
    pub action: String,
    /// The event's delivery state (`pending`, `succeeded`, `failed`, ...).
    pub state: Option<String>,
    /// Creation time (ISO 8601).
    pub date_created: Option<String>,
    json: Box<RawValue>,
}

impl ApiEvent {
    /// `<type>.<action>`, as the dispatcher matches it.
    pub fn slug(&self) -> String {
        format!("{}.{}", self.kind, self.action)
    }

    /// The event's JSON text as the API sent it.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// The creation time, when the API sent one that parses.
    pub fn created(&self) -> Option<jiff::Timestamp> {
        self.date_created.as_deref().and_then(|t| t.parse().ok())
    }
}

impl<'de> Deserialize<'de> for ApiEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            id: Id,
            #[serde(rename = "type")]
            kind: String,
            action: String,
            #[serde(default)]
            state: Option<String>,
            #[serde(default)]
            date_created: Option<String>,
        }
        let json = Box::<RawValue>::deserialize(d)?;
        let fields: Fields = serde_json::from_str(json.get()).map_err(de::Error::custom)?;
        Ok(Self {
            id: fields.id,
            kind: fields.kind,
            action: fields.action,
            state: fields.state,
            date_created: fields.date_created,
            json,
        })
    }
}

/// The `organisation` resource, as far as webhooks are concerned.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct Organisation {
    /// Resource identifier.
    pub id: Id,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// The webhook config used by keys that name none of their own.
    #[serde(default)]
    pub webhook_config_default: Option<Id>,
}

/// One page of a list object: `{"resource": "list", "data": [...],
/// "has_more": bool, "total_count": n, "url": "..."}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPage<T> {
    pub(crate) data: Vec<T>,
    #[serde(default)]
    pub(crate) has_more: bool,
    #[serde(default)]
    pub(crate) total_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_keeps_its_json_and_ignores_unknown_fields() {
        let text = r#"{"id": "e1", "resource": "event", "type": "task", "action": "succeeded",
            "data": {"id": "t1"}, "state": "failed", "retries": 5, "new_field": [1, 2],
            "date_created": "2026-12-01T10:00:00.123456Z"}"#;
        let event: ApiEvent = serde_json::from_str(text).expect("event");
        assert_eq!(event.id, "e1");
        assert_eq!(event.slug(), "task.succeeded");
        assert_eq!(event.state.as_deref(), Some("failed"));
        assert_eq!(event.json(), text);
        assert_eq!(
            event.created().map(|t| t.as_millisecond()),
            Some(1_796_119_200_123)
        );
    }

    #[test]
    fn a_config_secret_is_redacted() {
        let config: WebhookConfigWithSecret = serde_json::from_str(
            r#"{"id": "c1", "url": "https://h/webhooks", "state": "valid", "secret": "s3cr3t-value", "extra": 1}"#,
        )
        .expect("config");
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert_eq!(config.state_str(), "valid");
        assert_eq!(
            config.secret.as_ref().map(ConfigSecret::reveal),
            Some("s3cr3t-value")
        );
    }
}
