//! Integration tests of the inbox on real databases: a SQLite file in a
//! temporary directory, and a throwaway PostgreSQL cluster.

// Built with one engine only, the other engine's helpers go unused.
#![cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]

mod faults;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[path = "../support/pg.rs"]
mod pg;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ricloud_webhook::{Dispatcher, Event, EventQueue, HandlerError, VerifiedEvent};
use ricloud_webhook_inbox::{Inbox, RowState, WorkerConfig};

#[cfg(feature = "sqlite")]
pub(crate) use ricloud_webhook_testkit::TempDir;
pub(crate) use ricloud_webhook_testkit::{event_body as body, eventually};

/// How long a test waits for the workers, at most.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A `poll.completed` event whose data does not fit the `Poll` view.
pub(crate) fn misfit(id: &str) -> VerifiedEvent {
    let body = serde_json::json!({"id": id, "type": "poll", "action": "completed", "data": {"id": {"not": "an id"}}});
    ricloud_webhook_testkit::verified_event(serde_json::to_vec(&body).expect("json"))
}

pub(crate) fn event(id: &str, slug: &str) -> VerifiedEvent {
    ricloud_webhook_testkit::verified_event(body(id, slug))
}

pub(crate) fn id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Every handler run, in order: `<event id>`.
#[derive(Clone, Default)]
pub(crate) struct Runs(pub(crate) Arc<Mutex<Vec<String>>>);

impl Runs {
    pub(crate) fn of(&self, id: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| *r == id)
            .count()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
}

/// A dispatcher whose `*` handler records each run and then: succeeds for
/// `task.succeeded`, asks for a retry for `task.failed`, acknowledges a
/// permanent failure for `task.created`; and a `poll.completed` handler
/// takes the `Poll` view, which [`misfit`]'s data does not fit.
pub(crate) fn dispatcher(runs: &Runs) -> Dispatcher {
    let r = runs.clone();
    Dispatcher::new()
        .on("*", move |event: Arc<Event>| {
            r.0.lock().expect("lock").push(event.id.clone());
            let slug = event.slug();
            async move {
                match slug.as_str() {
                    "task.failed" => Err(HandlerError::retry("downstream unavailable")),
                    "task.created" => Err(HandlerError::give_up("cannot ever handle this")),
                    _ => Ok(()),
                }
            }
        })
        .on("poll.completed", |_: ricloud_webhook::Poll| async {
            Ok(())
        })
}

/// Workers that retry fast, for tests.
pub(crate) fn fast() -> WorkerConfig {
    WorkerConfig::default()
        .poll(Duration::from_millis(50))
        .backoff_base(Duration::from_millis(20))
        .backoff_max(Duration::from_millis(100))
        .max_attempts(3)
        .shutdown_grace(Duration::from_secs(2))
}

/// Waits until event `id` is in `state`.
pub(crate) async fn until_state(inbox: &Inbox, id: &str, state: RowState) {
    eventually(&format!("{id} to be {state}"), WAIT, || async {
        inbox.get(id).await.is_ok_and(|e| e.row.state == state)
    })
    .await;
}

pub(crate) async fn enqueue(inbox: &Inbox, id: &str, slug: &str) -> ricloud_webhook::Enqueued {
    inbox
        .enqueue(&event(id, slug), SystemTime::now())
        .await
        .expect("committed")
}

/// What the inbox logged, for every test of this binary (a global
/// subscriber, installed once, at DEBUG).
#[derive(Clone)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Whether one line holds every one of `parts`.
    pub(crate) fn contains(&self, parts: &[&str]) -> bool {
        let text = self.0.lock().expect("lock");
        String::from_utf8_lossy(&text)
            .lines()
            .any(|line| parts.iter().all(|p| line.contains(p)))
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs(Arc::default());
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
    .clone()
}
