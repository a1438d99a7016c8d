//! What the receiver logs: one line per refused or failed delivery carrying
//! the event id and slug, the `delivery` span at its configured level, and
//! never the secret, a signature or the body at `INFO` and above.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use ricloud_webhook::{sign, Delivery, Dispatcher, Event, HandlerError, Receiver, Verifier};
use ricloud_webhook_testkit::LogCapture;
use tracing::Level;

use crate::{at, block_on, secret, NOW};

const ID: &str = "0b5c6f4e-0d57-4a51-9d25-5d1f1e0c3a77";
const SECRET: &str = "log-test-secret-7f3a";
const MARKER: &str = "private-body-marker-91c2";

fn body(action: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": ID, "type": "task", "action": action,
        "data": {"id": "t1", "note": MARKER},
    }))
    .expect("json")
}

/// Runs `deliveries` (body, signing secret) through `receiver` with a
/// subscriber at `max`, and returns what it wrote.
fn logged(receiver: &Receiver, max: Level, deliveries: &[(Vec<u8>, &str)]) -> String {
    let out = LogCapture::start(max);
    for (body, key) in deliveries {
        let mut headers = HeaderMap::new();
        let header = sign(&secret(key), NOW, body).to_string();
        headers.insert(
            "Ricloud-Signature",
            HeaderValue::from_str(&header).expect("ascii"),
        );
        let path = format!("/webhooks/{ID}");
        let delivery = Delivery {
            method: &Method::POST,
            path: &path,
            headers: &headers,
            body: body.clone().into(),
        };
        block_on(receiver.receive_at(delivery, at(NOW)));
    }
    out.text()
}

fn failing_receiver() -> Receiver {
    let dispatcher = Dispatcher::new().on("task.failed", |_: Arc<Event>| async {
        Err(HandlerError::retry("downstream unavailable"))
    });
    Receiver::new(Verifier::new(secret(SECRET)), dispatcher)
}

#[test]
fn failure_lines_carry_the_event_without_a_span_by_default() {
    let text = logged(
        &failing_receiver(),
        Level::INFO,
        &[(body("failed"), SECRET)],
    );
    let line = text
        .lines()
        .find(|l| l.contains("handler failed; asking for redelivery"))
        .unwrap_or_else(|| panic!("no failure line in {text:?}"));
    assert!(line.contains(&format!("event_id=\"{ID}\"")), "{line}");
    assert!(line.contains("slug=task.failed"), "{line}");
    assert!(line.contains("reason=\"downstream unavailable\""), "{line}");
    assert!(line.contains("status=500"), "{line}");
    assert!(
        !line.contains("delivery{"),
        "span at INFO by default: {line}"
    );
}

#[test]
fn the_span_appears_at_its_configured_level() {
    let receiver = failing_receiver().span_level(Level::INFO);
    let text = logged(&receiver, Level::INFO, &[(body("failed"), SECRET)]);
    assert!(
        text.contains(&format!("delivery{{event_id=\"{ID}\" slug=task.failed}}")),
        "{text}"
    );
    // The default DEBUG span shows once DEBUG is enabled.
    let text = logged(
        &failing_receiver(),
        Level::DEBUG,
        &[(body("failed"), SECRET)],
    );
    assert!(text.contains("delivery{event_id="), "{text}");
}

#[test]
fn no_secret_signature_or_body_at_info_and_above() {
    let receiver = failing_receiver().span_level(Level::INFO);
    let deliveries = [
        (body("failed"), SECRET),
        (body("succeeded"), SECRET),
        (body("created"), "wrong-secret"),
    ];
    let text = logged(&receiver, Level::INFO, &deliveries);
    assert!(
        text.contains("handler failed; asking for redelivery"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "secret logged: {text}");
    assert!(!text.contains(MARKER), "body logged: {text}");
    for (body, key) in &deliveries {
        let signature = sign(&secret(key), NOW, body).to_string();
        let tag = signature.split("s=").nth(1).expect("tag");
        assert!(!text.contains(tag), "signature logged: {text}");
    }
}

#[test]
fn a_handler_message_is_the_failure_line_reason_escaped() {
    // The handler's own text is the reason on the ERROR line, escaped: a
    // newline or an escape code in it cannot forge a line or colour the
    // log.
    let dispatcher = Dispatcher::new()
        .on("task.failed", |_: Arc<Event>| async {
            Err(HandlerError::retry("first\nERROR forged line \u{1b}[31m"))
        })
        .on("task.created", |_: Arc<Event>| async {
            Err(HandlerError::give_up("not for us"))
        });
    let receiver = Receiver::new(Verifier::new(secret(SECRET)), dispatcher);
    let deliveries = [(body("failed"), SECRET), (body("created"), SECRET)];
    let text = logged(&receiver, Level::INFO, &deliveries);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("handler failed; asking for redelivery"),
        "{text}"
    );
    assert!(
        lines[0].contains(r#"reason="first\nERROR forged line \u{1b}[31m""#),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(lines[1].contains("handler gave up on the event"), "{text}");
    assert!(lines[1].contains(r#"reason="not for us""#), "{text}");
    for line in lines {
        assert!(line.contains(&format!("event_id=\"{ID}\"")), "{line}");
    }
    assert!(!text.contains(MARKER), "body logged: {text}");
}

#[test]
fn refusals_a_stranger_can_cause_are_logged_at_debug_only() {
    let receiver = failing_receiver();
    let strangers = [
        (body("created"), "wrong-secret"),
        (b"not json".to_vec(), "x"),
    ];
    let text = logged(&receiver, Level::INFO, &strangers);
    assert!(
        text.is_empty(),
        "a stranger's refusal logged at INFO or above: {text}"
    );
    let text = logged(&receiver, Level::DEBUG, &strangers);
    assert_eq!(text.matches("delivery refused").count(), 2, "{text}");
    assert!(text.contains("status=401"), "{text}");
}
