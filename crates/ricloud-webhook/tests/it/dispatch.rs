//! Dispatch rules: patterns, typed handlers, several handlers, failures, panics.

use std::sync::{Arc, Mutex};

use ricloud_webhook::{
    sign, Dispatcher, Event, FromEvent, HandlerError, OnViewMismatch, Poll, Reason, Task,
    VerifiedEvent, Verifier, WebhookConfig,
};

use crate::{at, block_on, event_body, secret, NOW};

fn verified(body: &[u8]) -> VerifiedEvent {
    let s = secret("k");
    let header = sign(&s, NOW, body).to_string();
    let verified = Verifier::new(s)
        .verify_at(Some(header.as_bytes()), body.to_vec(), at(NOW))
        .expect("valid");
    VerifiedEvent::parse(verified).expect("event")
}

fn event(kind: &str, action: &str) -> VerifiedEvent {
    verified(&event_body("e1", kind, action))
}

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(
    log: &Log,
    name: &'static str,
) -> impl Fn(Arc<Event>) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |event: Arc<Event>| {
        log.lock()
            .expect("lock")
            .push(format!("{name}:{}", event.slug()));
        std::future::ready(Ok(()))
    }
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().expect("lock"))
}

#[test]
fn exact_type_and_catch_all_patterns() {
    let log = Log::default();
    let d = Dispatcher::new()
        .on("task.succeeded", recorder(&log, "exact"))
        .on("task.*", recorder(&log, "type"))
        .on("*", recorder(&log, "any"));

    assert_eq!(
        block_on(d.dispatch(&event("task", "succeeded"))),
        Reason::Handled { handlers: 3 }
    );
    assert_eq!(
        taken(&log),
        [
            "exact:task.succeeded",
            "type:task.succeeded",
            "any:task.succeeded"
        ]
    );

    block_on(d.dispatch(&event("task", "failed")));
    assert_eq!(taken(&log), ["type:task.failed", "any:task.failed"]);

    block_on(d.dispatch(&event("poll", "completed")));
    assert_eq!(taken(&log), ["any:poll.completed"]);

    // "task.*" does not match a type that merely starts with "task".
    block_on(d.dispatch(&event("taskforce", "succeeded")));
    assert_eq!(taken(&log), ["any:taskforce.succeeded"]);
}

#[test]
fn no_matching_handler() {
    let log = Log::default();
    let d = Dispatcher::new().on("task.succeeded", recorder(&log, "x"));
    let out = block_on(d.dispatch(&event("webhook_config", "test")));
    assert_eq!(out, Reason::NoHandler);
    assert!(out.is_acknowledged());
    assert!(taken(&log).is_empty());
}

#[test]
fn typed_handlers_receive_their_view() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2, s3) = (Arc::clone(&seen), Arc::clone(&seen), Arc::clone(&seen));
    let d = Dispatcher::new()
        .on("task.succeeded", move |task: Task| {
            let seen = Arc::clone(&s1);
            async move {
                seen.lock().expect("lock").push(format!("task {}", task.id));
                Ok(())
            }
        })
        .on("poll.*", move |(poll, event): (Poll, Arc<Event>)| {
            let seen = Arc::clone(&s2);
            async move {
                seen.lock()
                    .expect("lock")
                    .push(format!("poll {} in {}", poll.id, event.id));
                Ok(())
            }
        })
        .on("webhook_config.test", move |config: WebhookConfig| {
            let seen = Arc::clone(&s3);
            async move {
                seen.lock()
                    .expect("lock")
                    .push(format!("config {}", config.id));
                Ok(())
            }
        });
    block_on(d.dispatch(&event("task", "succeeded")));
    block_on(d.dispatch(&event("poll", "created")));
    block_on(d.dispatch(&event("webhook_config", "test")));
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "task f3e452f2-3cbb-4daa-a4c1-84fa48a7c825",
            "poll f3e452f2-3cbb-4daa-a4c1-84fa48a7c825 in e1",
            "config f3e452f2-3cbb-4daa-a4c1-84fa48a7c825",
        ]
    );
}

#[test]
fn a_view_that_does_not_fit_is_acknowledged_unless_told_otherwise() {
    let body = br#"{"id":"e1","type":"task","action":"succeeded","data":{"id":{"not":"an id"}}}"#;
    for (policy, redeliver) in [
        (None, false),
        (Some(OnViewMismatch::Acknowledge), false),
        (Some(OnViewMismatch::Redeliver), true),
    ] {
        let log = Log::default();
        let mut d = Dispatcher::new()
            .on("task.succeeded", |_: Task| async { Ok(()) })
            .on("*", recorder(&log, "any"));
        if let Some(policy) = policy {
            d = d.on_view_mismatch(policy);
        }
        let out = block_on(d.dispatch(&verified(body)));
        assert_eq!(
            out,
            Reason::ViewMismatch {
                view: "Task",
                redeliver
            }
        );
        assert_eq!(out.is_acknowledged(), !redeliver);
        // The catch-all still ran on the raw event.
        assert_eq!(taken(&log), ["any:task.succeeded"]);
    }
}

#[test]
fn a_redelivered_view_mismatch_loses_to_nothing_and_an_acknowledged_one_to_retry() {
    let body = br#"{"id":"e1","type":"task","action":"succeeded","data":"not a task"}"#;
    let d = Dispatcher::new()
        .on("task.succeeded", |_: Task| async { Ok(()) })
        .on("*", |_: Arc<Event>| async {
            Err(HandlerError::retry("down"))
        });
    let out = block_on(d.dispatch(&verified(body)));
    assert!(matches!(out, Reason::HandlerRetry { .. }), "{out:?}");
}

#[test]
fn a_pair_names_the_view_that_does_not_fit() {
    // `data` fits `Task` but not `WebhookConfig` (`url` is a number).
    let body = br#"{"id":"e1","type":"task","action":"succeeded","data":{"id":"t1","url":5}}"#;
    let d = Dispatcher::new().on("task.*", |_: (Task, WebhookConfig)| async { Ok(()) });
    let out = block_on(d.dispatch(&verified(body)));
    assert_eq!(
        out,
        Reason::ViewMismatch {
            view: "WebhookConfig",
            redeliver: false
        }
    );
    let d = Dispatcher::new().on("task.*", |_: (WebhookConfig, Task)| async { Ok(()) });
    let out = block_on(d.dispatch(&verified(body)));
    assert_eq!(
        out,
        Reason::ViewMismatch {
            view: "WebhookConfig",
            redeliver: false
        }
    );
    let event = Arc::new(Event::from_json(&body[..]).expect("event"));
    let error = <(Task, WebhookConfig) as FromEvent>::from_event(&event).expect_err("does not fit");
    assert_eq!(error.view(), Some("WebhookConfig"));
    assert_eq!(
        event
            .data_as::<WebhookConfig>()
            .expect_err("no view")
            .view(),
        None
    );
}

#[test]
fn any_failure_fails_the_delivery_and_all_handlers_run() {
    let log = Log::default();
    let d = Dispatcher::new()
        .on("task.*", |_: Arc<Event>| async {
            Err(HandlerError::retry("db down"))
        })
        .on("*", recorder(&log, "any"));
    let out = block_on(d.dispatch(&event("task", "succeeded")));
    assert_eq!(
        out,
        Reason::HandlerRetry {
            message: "db down".into()
        }
    );
    assert!(!out.is_acknowledged());
    assert_eq!(taken(&log), ["any:task.succeeded"]);
}

#[test]
fn question_mark_asks_for_redelivery() {
    async fn handler(event: Arc<Event>) -> Result<(), HandlerError> {
        let _n: u32 = event.action.parse()?;
        Ok(())
    }
    let d = Dispatcher::new().on("*", handler);
    let out = block_on(d.dispatch(&event("task", "succeeded")));
    assert!(matches!(out, Reason::HandlerRetry { .. }), "{out:?}");
}

#[test]
fn acknowledged_failure_is_not_retried() {
    let d = Dispatcher::new()
        .on("task.*", |_: Arc<Event>| async {
            Err(HandlerError::give_up("malformed forever"))
        })
        .on("*", |_: Arc<Event>| async { Ok(()) });
    let out = block_on(d.dispatch(&event("task", "succeeded")));
    assert_eq!(
        out,
        Reason::HandlerGaveUp {
            message: "malformed forever".into()
        }
    );
    assert!(out.is_acknowledged());
}

#[test]
fn retry_wins_over_acknowledge() {
    let d = Dispatcher::new()
        .on("*", |_: Arc<Event>| async {
            Err(HandlerError::give_up("a"))
        })
        .on("*", |_: Arc<Event>| async { Err(HandlerError::retry("r")) });
    let out = block_on(d.dispatch(&event("task", "succeeded")));
    assert_eq!(
        out,
        Reason::HandlerRetry {
            message: "r".into()
        }
    );
}

#[test]
fn panics_are_caught_and_ask_for_redelivery() {
    let log = Log::default();
    let d = Dispatcher::new()
        .on("task.*", |_: Arc<Event>| async {
            panic!("boom in the future");
        })
        .on("*", recorder(&log, "any"));
    let out = block_on(d.dispatch(&event("task", "succeeded")));
    assert_eq!(
        out,
        Reason::HandlerPanicked {
            message: "boom in the future".into()
        }
    );
    assert!(!out.is_acknowledged());
    assert_eq!(taken(&log), ["any:task.succeeded"]);
}

#[test]
fn panics_before_the_future_are_caught_too() {
    #[allow(unreachable_code, reason = "the panic is the point")]
    let d = Dispatcher::new().on(
        "*",
        |_: Arc<Event>| -> std::future::Ready<Result<(), HandlerError>> {
            panic!("boom while building the future");
        },
    );
    let out = block_on(d.dispatch(&event("task", "succeeded")));
    assert!(matches!(out, Reason::HandlerPanicked { .. }), "{out:?}");
}

#[test]
#[should_panic(expected = "invalid event pattern")]
fn invalid_patterns_are_refused_at_registration() {
    let _ = Dispatcher::new().on("task", |_: Arc<Event>| async { Ok(()) });
}

#[test]
fn pattern_syntax() {
    for bad in [
        "",
        ".",
        "task.",
        ".x",
        "*.succeeded",
        "task.suc*",
        "a.b.c",
        "**",
    ] {
        let result = std::panic::catch_unwind(|| {
            let _ = Dispatcher::new().on(bad, |_: Arc<Event>| async { Ok(()) });
        });
        assert!(result.is_err(), "{bad:?} should be refused");
        assert_eq!(ricloud_webhook::SlugPattern::parse(bad), None, "{bad:?}");
    }
    let task = event("task", "succeeded");
    for (pattern, matches) in [
        ("*", true),
        ("task.*", true),
        ("task.succeeded", true),
        ("task.failed", false),
        ("poll.*", false),
    ] {
        let parsed = ricloud_webhook::SlugPattern::parse(pattern).expect(pattern);
        assert_eq!(parsed.matches(task.event()), matches, "{pattern}");
    }
}
