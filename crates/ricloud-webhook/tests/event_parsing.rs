//! `Event::from_json` on generated bodies: well-formed events with any
//! `data` and any field text, and token soup that is mostly not JSON. Each
//! body goes through the `event` fuzz check (`fuzz/checks/event.rs`), which
//! also compares the event with serde_json's plain reading of the envelope.

use proptest::prelude::*;
use ricloud_webhook::Event;
use serde_json::{json, Value};

#[path = "../../../fuzz/checks/event.rs"]
mod event;
#[path = "support/json_value.rs"]
mod json_value;

use json_value::{any_value, text_of};

/// An envelope field's value: mostly a string, sometimes something else.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => any::<String>().prop_map(Value::String),
        1 => Just(Value::Null),
        1 => any::<u64>().prop_map(Value::from),
        1 => Just(json!(-0.0)),
        1 => Just(json!([])),
    ]
}

/// Pieces that make JSON and almost-JSON when strung together.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\t",
        "\"a\"",
        "\"id\"",
        "\"data\"",
        "\"type\"",
        "\"action\"",
        "\"retries\"",
        "\"x\\u00e9\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\udc00\"",
        "\"\\q\"",
        "\"\t\"",
        "\"é\"",
        "\"\\\"\"",
        "1",
        "-0",
        "-",
        "01",
        "1.",
        "1.5e3",
        "2E-2",
        "1e",
        "18446744073709551616",
        "true",
        "null",
        "nul",
        "falsey",
        "\"",
        "\\",
        "\u{7f}",
        "é",
    ])
}

fn envelope_with(data: &str, extra: &str) -> Vec<u8> {
    format!(r#"{{"id":"e1","type":"task","action":"succeeded","data":{data}{extra}}}"#).into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A well-formed event is read, with `data` kept byte for byte, however
    /// it is laid out.
    #[test]
    fn well_formed_events_are_read(data in any_value(), pretty in any::<bool>()) {
        let text = text_of(&data, pretty);
        let body = envelope_with(&text, "");
        event::check(&body);
        let read = Event::from_json(body).expect("a well-formed event");
        prop_assert_eq!(read.data_json(), text.as_str());
    }

    /// Envelope fields of any text (escaped as serde_json escapes it) or of
    /// the wrong type, in any order, agree with serde_json.
    #[test]
    fn envelope_fields_agree(
        fields in prop::collection::vec(
            (prop::sample::select(vec![
                "id", "type", "action", "resource", "state", "retries",
                "date_created", "date_delivered", "data", "other",
            ]), field()),
            0..12,
        )
    ) {
        let members: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{}", json!(k), v))
            .collect();
        let body = format!("{{{}}}", members.join(","));
        event::check(body.as_bytes());
    }

    /// Token soup, inside an envelope and on its own, agrees with serde_json
    /// and never panics.
    #[test]
    fn token_soup_agrees(tokens in prop::collection::vec(token(), 0..24), wrap in any::<bool>()) {
        let soup: String = tokens.concat();
        let body = if wrap { envelope_with(&soup, "") } else { soup.into_bytes() };
        event::check(&body);
    }
}

mod borrowed_views {
    use std::borrow::Cow;

    use ricloud_webhook::Event;

    #[derive(serde::Deserialize)]
    struct TaskRef<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
        target: Option<&'a str>,
        /// serde copies a `Cow` inside an `Option`, borrow or not.
        #[serde(borrow)]
        state: Option<Cow<'a, str>>,
        results: ResultsRef<'a>,
    }

    #[derive(serde::Deserialize)]
    struct ResultsRef<'a> {
        #[serde(borrow)]
        data: Vec<ResultRef<'a>>,
    }

    #[derive(serde::Deserialize)]
    struct ResultRef<'a> {
        #[serde(borrow)]
        url: Cow<'a, str>,
    }

    #[derive(serde::Deserialize)]
    struct StrOnly<'a> {
        #[allow(dead_code)]
        id: &'a str,
    }

    fn event(data: &str) -> Event {
        let body = format!(r#"{{"id":"e","type":"task","action":"succeeded","data":{data}}}"#);
        Event::from_json(body).expect("an event")
    }

    #[test]
    fn plain_strings_are_borrowed_from_the_event() {
        let event = event(
            r#"{"id": "t1", "target": "messages.sms", "state": "succeeded", "results": {"data": [{"url": "gs://b/f.json", "size": 1}], "has_more": false}}"#,
        );
        let view: TaskRef<'_> = event.data_borrowed().expect("a view");
        let data = event.data_json().as_bytes().as_ptr_range();
        let inside = |text: &str| data.contains(&text.as_ptr());
        let borrowed = |text: &Cow<'_, str>| matches!(text, Cow::Borrowed(s) if inside(s));
        assert!(borrowed(&view.id));
        assert!(view.target.is_some_and(inside));
        assert!(matches!(view.state, Some(Cow::Owned(ref s)) if s == "succeeded"));
        assert_eq!(view.results.data.len(), 1);
        assert!(borrowed(&view.results.data[0].url));
        // An owned reading gives the same values.
        let owned: serde_json::Value = event.data_as().expect("a value");
        assert_eq!(owned["id"].as_str(), Some(&*view.id));
        assert_eq!(owned["target"].as_str(), view.target);
        assert_eq!(
            owned["results"]["data"][0]["url"].as_str(),
            Some(&*view.results.data[0].url)
        );
    }

    #[test]
    fn escaped_strings_are_decoded_into_owned_copies() {
        let event = event(r#"{"id": "t\u00e9\n", "results": {"data": []}}"#);
        let view: TaskRef<'_> = event.data_borrowed().expect("a view");
        assert!(matches!(&view.id, Cow::Owned(s) if s == "té\n"));
        assert_eq!(view.target, None);
        assert_eq!(view.state, None);
        // A `&str` field cannot hold it: the view fails, with the reason.
        let err = event
            .data_borrowed::<StrOnly<'_>>()
            .err()
            .expect("a &str cannot hold an escaped string");
        assert!(err.detail().contains("borrowed string"), "{}", err.detail());
    }

    #[test]
    fn data_that_does_not_fit_is_a_view_error() {
        let event = event(r#"{"id": 7, "results": {"data": []}}"#);
        assert!(event.data_borrowed::<TaskRef<'_>>().is_err());
        let absent = Event::from_json(&br#"{"id":"e","type":"task","action":"succeeded"}"#[..])
            .expect("an event");
        assert!(absent.data_borrowed::<TaskRef<'_>>().is_err());
        assert!(absent
            .data_borrowed::<Option<TaskRef<'_>>>()
            .expect("null")
            .is_none());
    }
}
