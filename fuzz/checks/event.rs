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
    let parsed = Event::from_json(data.to_vec());
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
    for name in [&event.id, &event.kind, &event.action] {
        assert!(
            !name.chars().any(char::is_control) && name.len() <= Event::MAX_NAME_LEN,
            "an event named with a control character or too long parsed"
        );
    }
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

    // Written back, the envelope keeps every field and `data` byte for byte.
    let bytes = serde_json::to_vec(&event).expect("an event serialises");
    let again = Event::from_json(bytes).expect("a serialised event parses");
    assert_eq!(
        again.data_json(),
        event.data_json(),
        "data changed through JSON"
    );
    let fields = |e: &Event| {
        (
            e.id.clone(),
            e.resource.clone(),
            e.kind.clone(),
            e.action.clone(),
            e.state.clone(),
            e.retries,
            e.date_created.clone(),
            e.date_delivered.clone(),
        )
    };
    assert_eq!(
        fields(&again),
        fields(&event),
        "envelope changed through JSON"
    );
    assert_eq!(shape(&again.data()), shape(&event.data()));
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
