//! Realistic sample events for every documented slug.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use uuid::Uuid;

/// The event slugs the API documents (the core crate's list).
pub const EVENT_SLUGS: [&str; 7] = ricloud_webhook::Event::DOCUMENTED_SLUGS;

/// The organisation every sample belongs to.
const ORGANISATION: u64 = 4954;
/// The API key every sample was created with.
const KEY: u64 = 7;

/// A realistic event for a documented slug, as the API would send it at
/// `now`: a fresh random event id, `state` `pending`, `retries` 0, and a
/// `data` resource carrying every documented field (optional ones included,
/// as `null` where the resource has no value yet).
///
/// `url` is the receiver's URL, the base the event is posted under; only a
/// `webhook_config.test` event carries it (as its config's `url`).
///
/// ```
/// use std::time::SystemTime;
/// use ricloud_webhook_cli::{sample_event, EVENT_SLUGS};
///
/// for slug in EVENT_SLUGS {
///     let event = sample_event(slug, "http://127.0.0.1:8080/webhooks", SystemTime::now())?;
///     let parsed = ricloud_webhook::Event::from_json(serde_json::to_vec(&event)?)?;
///     assert_eq!(parsed.slug(), slug);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`SampleError::UnknownSlug`] for a slug not in [`EVENT_SLUGS`].
pub fn sample_event(slug: &str, url: &str, now: SystemTime) -> Result<Value, SampleError> {
    let Some((kind, action)) = slug.split_once('.').filter(|_| EVENT_SLUGS.contains(&slug)) else {
        return Err(SampleError::UnknownSlug {
            slug: slug.to_owned(),
        });
    };
    let ago = |secs: u64| iso8601_utc(now.checked_sub(Duration::from_secs(secs)).unwrap_or(now));
    let event_id = new_id();
    let data = match (kind, action) {
        ("webhook_config", _) => json!({
            "id": new_id(),
            "resource": "webhook_config",
            "organisation": ORGANISATION,
            "url": url,
            "state": "new",
            "date_created": ago(1),
        }),
        ("session", _) => session(&ago),
        ("poll", "created") => poll(&ago, false),
        ("poll", _) => poll(&ago, true),
        (_, action) => task(&ago, action),
    };
    Ok(json!({
        "id": event_id,
        "resource": "event",
        "type": kind,
        "action": action,
        "data": data,
        "state": "pending",
        "retries": 0,
        "date_created": iso8601_utc(now),
        "date_delivered": null,
    }))
}

/// A `session` that has just expired, with its source nested.
fn session(ago: &dyn Fn(u64) -> String) -> Value {
    let user = new_id();
    json!({
        "id": new_id(),
        "resource": "session",
        "organisation": ORGANISATION,
        "key": KEY,
        "user": user,
        "source": {
            "id": new_id(),
            "resource": "source",
            "type": "icloud.account",
            "identifier": "john.appleseed@example.com",
            "user": user,
            "state": "active",
            "date_created": ago(30 * 86_400),
        },
        "state": "expired",
        "error": null,
        "date_created": ago(86_400),
        "date_expired": ago(0),
    })
}

/// A `poll` of two tasks, just created or completed (one task per outcome).
fn poll(ago: &dyn Fn(u64) -> String, completed: bool) -> Value {
    let id = new_id();
    let tasks = [new_id(), new_id()];
    let (pending, succeeded, failed, results, started, finished) = if completed {
        let result = result(ago, &tasks[0], "messages.sms");
        (
            vec![],
            vec![&tasks[0]],
            vec![&tasks[1]],
            vec![result],
            json!(ago(170)),
            json!(ago(0)),
        )
    } else {
        (
            tasks.iter().collect(),
            vec![],
            vec![],
            vec![],
            json!(null),
            json!(null),
        )
    };
    let errors = if completed {
        vec![json!({"task": tasks[1], "error": "target-unavailable"})]
    } else {
        vec![]
    };
    json!({
        "id": id,
        "resource": "poll",
        "organisation": ORGANISATION,
        "key": KEY,
        "user": new_id(),
        "source": new_id(),
        "session": new_id(),
        "subscription": null,
        "tasks_pending": pending,
        "tasks_processing": [],
        "tasks_succeeded": succeeded,
        "tasks_failed": failed,
        "tasks_suspended": [],
        "results": {"data": results, "has_more": false},
        "errors": {"data": errors, "has_more": false},
        "state": if completed { "completed" } else { "pending" },
        "date_created": ago(180),
        "date_started": started,
        "date_completed": finished,
    })
}

/// A `task` fetching SMS messages, in the state `action` leads to.
fn task(ago: &dyn Fn(u64) -> String, action: &str) -> Value {
    let id = new_id();
    let (state, results, error, started, finished) = match action {
        "succeeded" => (
            "succeeded",
            vec![result(ago, &id, "messages.sms")],
            json!(null),
            json!(ago(120)),
            json!(ago(0)),
        ),
        "failed" => (
            "failed",
            vec![],
            json!("target-unavailable"),
            json!(ago(120)),
            json!(ago(0)),
        ),
        _ => ("pending", vec![], json!(null), json!(null), json!(null)),
    };
    json!({
        "id": id,
        "resource": "task",
        "organisation": ORGANISATION,
        "key": KEY,
        "user": new_id(),
        "source": new_id(),
        "session": new_id(),
        "poll": new_id(),
        "source_type": "icloud.account",
        "type": "fetch.data",
        "target": "messages.sms",
        "state": state,
        "results": {"data": results, "has_more": false},
        "error": error,
        "date_created": ago(180),
        "date_started": started,
        "date_completed": finished,
    })
}

/// An `available` result of `task`.
fn result(ago: &dyn Fn(u64) -> String, task: &str, identifier: &str) -> Value {
    let id = new_id();
    json!({
        "id": id,
        "resource": "result",
        "task": task,
        "identifier": identifier,
        "url": format!("https://storage.example.com/results/{id}.json"),
        "checksum": md5_like(),
        "size": 48_213,
        "state": "available",
        "date_created": ago(1),
        "date_consumed": null,
        "date_deleted": null,
    })
}

/// A fresh random identifier (UUID v4, as the API's ids are).
fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// 32 random lowercase hex digits, shaped like an MD5 checksum.
fn md5_like() -> String {
    Uuid::new_v4().simple().to_string()
}

/// `time` in ISO 8601 UTC with milliseconds, as the API writes its dates
/// (`2026-11-27T10:43:00.123Z`).
pub fn iso8601_utc(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map_or_else(
        |_| "1970-01-01T00:00:00.000Z".to_owned(),
        |t| format!("{t:.3}"),
    )
}

/// Why a sample event could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// The slug is not one of [`EVENT_SLUGS`].
    #[error("no sample for event `{slug}`: choose one of {}", EVENT_SLUGS.join(", "))]
    UnknownSlug {
        /// The slug asked for.
        slug: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricloud_webhook::{Event, EventData};

    const URL: &str = "http://127.0.0.1:8080/webhooks";

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    fn sorted(mut fields: Vec<&str>) -> Vec<&str> {
        fields.sort_unstable();
        fields
    }

    #[test]
    fn every_slug_parses_with_its_typed_view() {
        for slug in EVENT_SLUGS {
            let value = sample_event(slug, URL, SystemTime::now()).expect("sample");
            let body = serde_json::to_vec(&value).expect("json");
            let event = Event::from_json(body).expect(slug);
            assert_eq!(event.slug(), slug);
            assert_eq!(event.resource.as_deref(), Some("event"));
            assert_eq!(event.state.as_deref(), Some("pending"));
            assert_eq!(event.retries, Some(0));
            match event.data() {
                EventData::WebhookConfig(view) => {
                    assert_eq!(view.expect(slug).url.as_deref(), Some(URL))
                }
                EventData::Session(view) => assert!(view.expect(slug).source.is_some()),
                EventData::Poll(view) => {
                    assert_eq!(view.expect(slug).resource.as_deref(), Some("poll"))
                }
                EventData::Task(view) => {
                    assert_eq!(view.expect(slug).resource.as_deref(), Some("task"))
                }
                other => panic!("{slug}: {other:?}"),
            }
        }
    }

    #[test]
    fn samples_carry_every_documented_field() {
        let envelope = sorted(vec![
            "id",
            "resource",
            "type",
            "action",
            "data",
            "state",
            "retries",
            "date_created",
            "date_delivered",
        ]);
        let task = sorted(vec![
            "id",
            "resource",
            "organisation",
            "key",
            "user",
            "source",
            "session",
            "poll",
            "source_type",
            "type",
            "target",
            "state",
            "results",
            "error",
            "date_created",
            "date_started",
            "date_completed",
        ]);
        let poll = sorted(vec![
            "id",
            "resource",
            "organisation",
            "key",
            "user",
            "source",
            "session",
            "subscription",
            "tasks_pending",
            "tasks_processing",
            "tasks_succeeded",
            "tasks_failed",
            "tasks_suspended",
            "results",
            "errors",
            "state",
            "date_created",
            "date_started",
            "date_completed",
        ]);
        let session = sorted(vec![
            "id",
            "resource",
            "organisation",
            "key",
            "user",
            "source",
            "state",
            "error",
            "date_created",
            "date_expired",
        ]);
        let config = sorted(vec![
            "id",
            "resource",
            "organisation",
            "url",
            "state",
            "date_created",
        ]);
        let result = sorted(vec![
            "id",
            "resource",
            "task",
            "identifier",
            "url",
            "checksum",
            "size",
            "state",
            "date_created",
            "date_consumed",
            "date_deleted",
        ]);
        for slug in EVENT_SLUGS {
            let event = sample_event(slug, URL, SystemTime::now()).expect("sample");
            assert_eq!(keys(&event), envelope, "{slug}");
            let data = &event["data"];
            let expected = match slug.split('.').next() {
                Some("task") => &task,
                Some("poll") => &poll,
                Some("session") => &session,
                _ => &config,
            };
            assert_eq!(&keys(data), expected, "{slug}");
            for r in data["results"]["data"].as_array().into_iter().flatten() {
                assert_eq!(keys(r), result, "{slug}");
                assert_eq!(r["checksum"].as_str().map(str::len), Some(32));
            }
        }
    }

    #[test]
    fn states_follow_the_action() {
        let state = |slug: &str| {
            let event = sample_event(slug, URL, SystemTime::now()).expect("sample");
            event["data"]["state"].as_str().map(str::to_owned)
        };
        assert_eq!(state("task.created").as_deref(), Some("pending"));
        assert_eq!(state("task.succeeded").as_deref(), Some("succeeded"));
        assert_eq!(state("task.failed").as_deref(), Some("failed"));
        assert_eq!(state("poll.created").as_deref(), Some("pending"));
        assert_eq!(state("poll.completed").as_deref(), Some("completed"));
        assert_eq!(state("session.expired").as_deref(), Some("expired"));
        assert_eq!(state("webhook_config.test").as_deref(), Some("new"));
    }

    #[test]
    fn identifiers_are_fresh() {
        let a = sample_event("task.succeeded", URL, SystemTime::now()).expect("sample");
        let b = sample_event("task.succeeded", URL, SystemTime::now()).expect("sample");
        assert_ne!(a["id"], b["id"]);
        assert_ne!(a["id"], a["data"]["id"]);
        assert_eq!(a["data"]["results"]["data"][0]["task"], a["data"]["id"]);
    }

    #[test]
    fn dates_are_iso_8601_utc_with_milliseconds() {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_764_240_180_123);
        assert_eq!(iso8601_utc(at), "2025-11-27T10:43:00.123Z");
        assert_eq!(
            iso8601_utc(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn unknown_slugs_are_refused() {
        for slug in ["task", "task.exploded", "", "webhook_config.test.extra"] {
            let err = sample_event(slug, URL, SystemTime::now()).expect_err(slug);
            assert!(err.to_string().contains("task.succeeded"), "{err}");
        }
    }
}
