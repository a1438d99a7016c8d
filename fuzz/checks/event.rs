//! The `event` check: arbitrary bytes as an event body, through
//! [`Event::from_json`], every typed view, and a JSON round trip.
//!
//! Shared by `fuzz/fuzz_targets/event.rs` and the corpus replay test of the
//! core crate; it uses only the core crate's public API and `serde_json`.

use ricloud_webhook::{Event, EventData, EventError};

/// Slugs that select each typed view, plus one that selects none.
const VIEW_SLUGS: [(&str, &str); 5] = [
    ("webhook_config", "test"),
    ("task", "succeeded"),
    ("poll", "completed"),
    ("session", "expired"),
    ("invoice", "paid"),
];

/// Serialises a view, deserialises it back, and expects the same value.
macro_rules! round_trip {
    ($view:expr, $ty:ty) => {{
        let view: &$ty = $view;
        let value = serde_json::to_value(view).expect("a view serialises");
        let back: $ty = serde_json::from_value(value).expect("a serialised view parses");
        assert_eq!(&back, view, "view changed through JSON");
    }};
}

/// Parsing never panics; a parsed event keeps its bytes, gives every typed
/// view without panicking, and survives a JSON round trip unchanged.
pub(crate) fn check(data: &[u8]) {
    let event = match Event::from_json(data.to_vec()) {
        Ok(event) => event,
        Err(error) => {
            if data.is_empty() {
                assert_eq!(error, EventError::Truncated);
            }
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    assert!(!event.id.is_empty(), "an event with an empty id parsed");
    assert_eq!(event.raw().as_ref(), data, "raw bytes not kept");
    assert_eq!(event.slug(), format!("{}.{}", event.kind, event.action));
    assert!(event.is(&event.kind, &event.action));
    let _ = format!("{event:?}");

    views(&event);
    for (kind, action) in VIEW_SLUGS {
        let mut other = event.clone();
        kind.clone_into(&mut other.kind);
        action.clone_into(&mut other.action);
        views(&other);
    }

    let bytes = serde_json::to_vec(&event).expect("an event serialises");
    let again = Event::from_json(bytes).expect("a serialised event parses");
    let (before, after) = (
        serde_json::to_value(&event).expect("serialises"),
        serde_json::to_value(&again).expect("serialises"),
    );
    assert!(
        same_json(&before, &after),
        "event changed through JSON:\n{before:?}\n{after:?}"
    );
    assert_eq!(shape(&again.data()), shape(&event.data()));
}

/// JSON equality, except that two floats may differ in their last bits.
///
/// serde_json's default float parser is not correctly rounded (its
/// `float_roundtrip` feature is off in this workspace), so a float in
/// `data` can come back one or two ULPs away, even when serde_json printed
/// it itself (fuzzing found `123456789012365478901234567890`). Everything
/// else must be exact. Tighten this if the core turns the feature on.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Which view a slug chose and whether the data fit it.
fn shape(data: &EventData) -> (u8, bool) {
    match data {
        EventData::WebhookConfig(view) => (0, view.is_ok()),
        EventData::Task(view) => (1, view.is_ok()),
        EventData::Poll(view) => (2, view.is_ok()),
        EventData::Session(view) => (3, view.is_ok()),
        _ => (4, true),
    }
}

fn views(event: &Event) {
    match event.data() {
        EventData::WebhookConfig(Ok(view)) => round_trip!(&view, ricloud_webhook::WebhookConfig),
        EventData::Task(Ok(view)) => round_trip!(&view, ricloud_webhook::Task),
        EventData::Poll(Ok(view)) => round_trip!(&view, ricloud_webhook::Poll),
        EventData::Session(Ok(view)) => round_trip!(&view, ricloud_webhook::Session),
        EventData::WebhookConfig(Err(error))
        | EventData::Task(Err(error))
        | EventData::Poll(Err(error))
        | EventData::Session(Err(error)) => {
            assert!(!error.to_string().is_empty());
            let _ = error.detail();
        }
        _ => {}
    }
}
