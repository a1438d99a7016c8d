//! The `event` check: arbitrary bytes as an event body, through
//! [`Event::from_json`], every typed view, and a JSON round trip; and
//! differentially against serde_json reading the same envelope.
//!
//! Shared by `fuzz/fuzz_targets/event.rs` and the corpus replay test of the
//! core crate; it uses only the core crate's public API, `serde` and
//! `serde_json`.

use ricloud_webhook::{Event, EventData, EventError};
use serde_json::value::RawValue;

/// The envelope as serde_json's derive reads it, with nothing more checked:
/// the reference the crate must agree with.
#[derive(serde::Deserialize)]
struct Reference<'a> {
    id: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    action: String,
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

/// The crate's own envelope reader against plain serde_json. Every event
/// the crate reads, serde_json reads with the same fields and the same
/// `data` text. Every object serde_json reads, the crate reads too, except
/// where the crate is stricter by design: invalid UTF-8 anywhere
/// (serde_json does not check the strings it skips), nesting deeper than
/// 128, an empty id. (serde_json also reads an array of the fields in
/// order; the crate wants an object.)
fn differential(data: &[u8], ours: &Result<Event, EventError>) {
    let reference = serde_json::from_slice::<Reference<'_>>(data);
    match (ours, &reference) {
        (Ok(event), Ok(r)) => {
            assert_eq!(event.id, r.id);
            assert_eq!(event.resource, r.resource);
            assert_eq!(event.kind, r.kind);
            assert_eq!(event.action, r.action);
            assert_eq!(event.state, r.state);
            assert_eq!(event.retries, r.retries);
            assert_eq!(event.date_created, r.date_created);
            assert_eq!(event.date_delivered, r.date_delivered);
            assert_eq!(event.data_json(), r.data.map_or("null", |d| d.get()));
        }
        (Ok(_), Err(e)) => panic!("the crate read an event serde_json refuses: {e}"),
        (Err(ours), Ok(r)) => {
            let object = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            // At most this deep, counting every bracket (even in strings).
            let nesting = data.iter().filter(|&&b| b == b'{' || b == b'[').count();
            if object && nesting <= 128 && std::str::from_utf8(data).is_ok() {
                if r.id.is_empty() {
                    assert_eq!(*ours, EventError::EmptyId);
                } else {
                    panic!("serde_json reads an event the crate refuses: {ours}");
                }
            }
        }
        (Err(_), Err(_)) => {}
    }
}

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
    let parsed = Event::from_json(data.to_vec());
    differential(data, &parsed);
    let event = match parsed {
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

    // `data` is only checked to be well-formed JSON when the event is read;
    // a number out of `f64` range or nesting deeper than serde_json's limit
    // parse as raw text but not as a value, and then the event cannot be
    // serialised as one either (an error, never a panic).
    if event.data_as::<serde_json::Value>().is_err() {
        assert!(
            serde_json::to_vec(&event).is_err(),
            "data that is not a value serialised"
        );
        return;
    }
    let bytes = serde_json::to_vec(&event).expect("an event serialises");
    let again = Event::from_json(bytes).expect("a serialised event parses");
    let (before, after) = (
        serde_json::to_value(&event).expect("serialises"),
        serde_json::to_value(&again).expect("serialises"),
    );
    // Exact, floats included: the workspace enables serde_json's
    // `float_roundtrip` (without it, fuzzing found
    // `123456789012365478901234567890` coming back one ULP away).
    assert_eq!(before, after, "event changed through JSON");
    // Data that fits its view still fits after the round trip. The reverse
    // need not hold: a view refuses an object with a repeated key, which the
    // round trip through a value collapses to its last occurrence.
    let ((kind, fits), (kind_again, fits_again)) = (shape(&event.data()), shape(&again.data()));
    assert_eq!(kind, kind_again);
    assert!(!fits || fits_again, "a view that fit stopped fitting");
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

/// A view read by the crate (`Event::data_as`, its own reader with
/// serde_json behind it) equals serde_json's reading of the same text: the
/// same value, or an error with the same message.
macro_rules! same_as_serde_json {
    ($event:expr, $($ty:ty),+) => {$({
        let event: &Event = $event;
        let ours = event.data_as::<$ty>().map_err(|e| e.detail().to_owned());
        let serde = serde_json::from_str::<$ty>(event.data_json()).map_err(|e| e.to_string());
        assert_eq!(ours, serde, "{} read otherwise than serde_json reads it", stringify!($ty));
    })+};
}

fn views(event: &Event) {
    same_as_serde_json!(
        event,
        serde_json::Value,
        ricloud_webhook::Task,
        ricloud_webhook::Poll,
        ricloud_webhook::Session,
        ricloud_webhook::WebhookConfig
    );
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
