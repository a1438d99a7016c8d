//! The handlers and set-up shared by the `receiver` example and its tests.
//!
//! Run the example with `cargo run --release --bin receiver`.

use std::sync::Arc;
use std::time::Duration;

use ricloud_webhook::{
    Dispatcher, Event, HandlerResult, Poll, Secret, SecretError, Session, Task, Verifier,
    WebhookConfig,
};

/// Where handled events are reported (the example prints them on stdout).
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// A typed handler for every documented slug and a catch-all for the rest;
/// each reports one line with the slug and the event id, after `delay`
/// (zero but for tests that need a handler to be running when they act).
pub fn dispatcher(report: Report, delay: Duration) -> Dispatcher {
    /// Reports `detail` for `event` once `delay` has passed.
    async fn line(
        report: Report,
        delay: Duration,
        event: Arc<Event>,
        detail: String,
    ) -> HandlerResult {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        report(format!("handled {} {} {detail}", event.slug(), event.id));
        Ok(())
    }
    let r = Arc::clone(&report);
    let mut dispatcher = Dispatcher::new().on(
        "webhook_config.test",
        move |(config, event): (WebhookConfig, Arc<Event>)| {
            line(
                Arc::clone(&r),
                delay,
                event,
                format!("config={}", config.id),
            )
        },
    );
    for slug in ["task.created", "task.succeeded", "task.failed"] {
        let r = Arc::clone(&report);
        dispatcher = dispatcher.on(slug, move |(task, event): (Task, Arc<Event>)| {
            let results = task.results.data.len();
            line(
                Arc::clone(&r),
                delay,
                event,
                format!("task={} results={results}", task.id),
            )
        });
    }
    for slug in ["poll.created", "poll.completed"] {
        let r = Arc::clone(&report);
        dispatcher = dispatcher.on(slug, move |(poll, event): (Poll, Arc<Event>)| {
            line(Arc::clone(&r), delay, event, format!("poll={}", poll.id))
        });
    }
    let r = Arc::clone(&report);
    dispatcher = dispatcher.on(
        "session.expired",
        move |(session, event): (Session, Arc<Event>)| {
            line(
                Arc::clone(&r),
                delay,
                event,
                format!("session={}", session.id),
            )
        },
    );
    dispatcher.on("*", move |event: Arc<Event>| {
        let r = Arc::clone(&report);
        async move {
            if is_documented(&event) {
                return Ok(());
            }
            line(r, delay, event, "(no typed view)".to_owned()).await
        }
    })
}

fn is_documented(event: &Event) -> bool {
    Event::DOCUMENTED_SLUGS
        .iter()
        .any(|slug| slug.split_once('.') == Some((&event.kind, &event.action)))
}

/// A verifier for the current secret and an optional previous one.
///
/// # Errors
/// When a secret is empty.
pub fn verifier(current: String, previous: Option<String>) -> Result<Verifier, SecretError> {
    let mut verifier = Verifier::new(Secret::new(current)?);
    if let Some(previous) = previous {
        verifier = verifier.previous_secret(Secret::new(previous)?);
    }
    Ok(verifier)
}
