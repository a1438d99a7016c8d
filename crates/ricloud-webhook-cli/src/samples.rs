//! Realistic sample events for every documented slug.

use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::clock::iso8601_utc;
use crate::uuid::{fill_random, push_hex, uuid_v4_from_bytes};

/// The event slugs the API documents (the core crate's list).
pub const EVENT_SLUGS: [&str; 7] = ricloud_webhook::DOCUMENTED_SLUGS;

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
/// [`SampleError::UnknownSlug`] for a slug not in [`EVENT_SLUGS`];
/// [`SampleError::Random`] when the random source fails.
pub fn sample_event(slug: &str, url: &str, now: SystemTime) -> Result<Value, SampleError> {
    let Some((kind, action)) = slug.split_once('.').filter(|_| EVENT_SLUGS.contains(&slug)) else {
        return Err(SampleError::UnknownSlug {
            slug: slug.to_owned(),
        });
    };
    let mut ids = Ids::new().map_err(SampleError::Random)?;
    let ago = |secs: u64| iso8601_utc(now.checked_sub(Duration::from_secs(secs)).unwrap_or(now));
    let event_id = ids.next();
    let data = match (kind, action) {
        ("webhook_config", _) => json!({
            "id": ids.next(),
            "resource": "webhook_config",
            "organisation": ORGANISATION,
            "url": url,
            "state": "new",
            "date_created": ago(1),
        }),
        ("session", _) => session(&mut ids, &ago),
        ("poll", "created") => poll(&mut ids, &ago, false),
        ("poll", _) => poll(&mut ids, &ago, true),
        (_, action) => task(&mut ids, &ago, action),
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
fn session(ids: &mut Ids, ago: &dyn Fn(u64) -> String) -> Value {
    let user = ids.next();
    json!({
        "id": ids.next(),
        "resource": "session",
        "organisation": ORGANISATION,
        "key": KEY,
        "user": user,
        "source": {
            "id": ids.next(),
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
fn poll(ids: &mut Ids, ago: &dyn Fn(u64) -> String, completed: bool) -> Value {
    let id = ids.next();
    let tasks = [ids.next(), ids.next()];
    let (pending, succeeded, failed, results, started, finished) = if completed {
        let result = result(ids, ago, &tasks[0], "messages.sms");
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
        "user": ids.next(),
        "source": ids.next(),
        "session": ids.next(),
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
fn task(ids: &mut Ids, ago: &dyn Fn(u64) -> String, action: &str) -> Value {
    let id = ids.next();
    let (state, results, error, started, finished) = match action {
        "succeeded" => (
            "succeeded",
            vec![result(ids, ago, &id, "messages.sms")],
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
        "user": ids.next(),
        "source": ids.next(),
        "session": ids.next(),
        "poll": ids.next(),
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
fn result(ids: &mut Ids, ago: &dyn Fn(u64) -> String, task: &str, identifier: &str) -> Value {
    let id = ids.next();
    json!({
        "id": id,
        "resource": "result",
        "task": task,
        "identifier": identifier,
        "url": format!("https://storage.example.com/results/{id}.json"),
        "checksum": ids.md5_like(),
        "size": 48_213,
        "state": "available",
        "date_created": ago(1),
        "date_consumed": null,
        "date_deleted": null,
    })
}

/// Random identifiers for one sample, drawn from the OS in a single call.
struct Ids {
    pool: [u8; 16 * Ids::CAPACITY],
    used: usize,
}

impl Ids {
    /// More than the largest sample needs (a completed poll uses 9).
    const CAPACITY: usize = 12;

    fn new() -> io::Result<Self> {
        let mut pool = [0u8; 16 * Self::CAPACITY];
        fill_random(&mut pool)?;
        Ok(Self { pool, used: 0 })
    }

    /// The next 16 random bytes. Past `CAPACITY` it wraps around (repeating
    /// identifiers) instead of panicking; the tests, which build every
    /// sample, catch a sample that outgrows the pool.
    fn next_bytes(&mut self) -> [u8; 16] {
        debug_assert!(self.used < Self::CAPACITY, "raise Ids::CAPACITY");
        let start = (self.used % Self::CAPACITY) * 16;
        self.used += 1;
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.pool[start..start + 16]);
        out
    }

    fn next(&mut self) -> String {
        uuid_v4_from_bytes(self.next_bytes())
    }

    /// 32 lowercase hex digits, shaped like an MD5 checksum.
    fn md5_like(&mut self) -> String {
        let mut out = String::with_capacity(32);
        for b in self.next_bytes() {
            push_hex(&mut out, b);
        }
        out
    }
}

/// Why a sample event could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum SampleError {
    /// The slug is not one of [`EVENT_SLUGS`].
    UnknownSlug {
        /// The slug asked for.
        slug: String,
    },
    /// The operating system's random source failed.
    Random(io::Error),
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSlug { slug } => write!(
                f,
                "no sample for event `{slug}`: choose one of {}",
                EVENT_SLUGS.join(", ")
            ),
            Self::Random(e) => write!(f, "cannot generate identifiers: {e}"),
        }
    }
}

impl std::error::Error for SampleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Random(e) => Some(e),
            Self::UnknownSlug { .. } => None,
        }
    }
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
    fn unknown_slugs_are_refused() {
        for slug in ["task", "task.exploded", "", "webhook_config.test.extra"] {
            let err = sample_event(slug, URL, SystemTime::now()).expect_err(slug);
            assert!(err.to_string().contains("task.succeeded"), "{err}");
        }
    }
}
