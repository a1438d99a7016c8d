//! Views that borrow their text from the event (`Event::data_borrowed`).

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
