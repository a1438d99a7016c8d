//! Properties: sign then verify succeeds; any change fails; parsing never
//! panics. Inputs start from a correctly signed event and are then mutated,
//! so most reach the assertions behind a successful parse.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use ricloud_webhook::{
    sign, Delivery, Dispatcher, Event, Receiver, Secret, SignatureHeader, TimeWindow, Verifier,
    VerifyError,
};

use crate::{at, block_on};

fn any_secret() -> impl Strategy<Value = Vec<u8>> {
    // Up to 200 bytes: past the 64-byte HMAC block, where keys get hashed.
    prop::collection::vec(any::<u8>(), 1..200)
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

/// A realistic event with random field text and a random `data` shape.
fn any_event() -> impl Strategy<Value = Vec<u8>> {
    let data = prop_oneof![
        Just(serde_json::Value::Null),
        any::<String>().prop_map(serde_json::Value::from),
        (any::<String>(), any::<u32>(), any::<bool>()).prop_map(|(id, n, b)| serde_json::json!({
            "id": id, "resource": "task", "state": "succeeded", "n": n, "ok": b,
            "results": {"data": [{"id": "r", "size": n}], "has_more": false}
        })),
    ];
    (
        "[a-z0-9-]{1,36}",
        prop::sample::select(vec!["task", "poll", "session", "webhook_config", "invoice"]),
        prop::sample::select(vec!["succeeded", "created", "completed", "expired", "test"]),
        data,
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(id, kind, action, data, retries, pretty)| {
            let event = serde_json::json!({
                "id": id, "resource": "event", "type": kind, "action": action,
                "data": data, "state": "pending", "retries": retries,
                "date_created": "2026-11-27T10:43:00.123Z", "date_delivered": null
            });
            if pretty {
                serde_json::to_vec_pretty(&event)
            } else {
                serde_json::to_vec(&event)
            }
            .expect("json")
        })
}

/// A change to some bytes: replace, insert or delete one, at a place
/// chosen by `at`.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Replace(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Delete(i) if !bytes.is_empty() => {
            bytes.remove(i.index(bytes.len()));
        }
        _ => {}
    }
}

fn verifier(key: &[u8]) -> Verifier {
    Verifier::new(Secret::new(key.to_vec()).expect("non-empty")).window(TimeWindow::unchecked())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_succeeds(key in any_secret(), body in any_body(), t in any::<u64>()) {
        let header = sign(&Secret::new(key.clone()).expect("non-empty"), t, &body).to_string();
        let ok = verifier(&key).verify_at(Some(header.as_bytes()), body.clone(), at(0));
        prop_assert!(ok.is_ok(), "{:?}", ok);
        let ok = ok.expect("checked");
        prop_assert_eq!(ok.timestamp(), t);
        prop_assert_eq!(&ok.body()[..], &body[..]);
    }

    #[test]
    fn sign_then_verify_in_the_window(key in any_secret(), body in any_body(), skew in -600i64..=300) {
        let now = crate::NOW;
        let t = now.checked_add_signed(skew).expect("in range");
        let secret = Secret::new(key.clone()).expect("non-empty");
        let header = sign(&secret, t, &body).to_string();
        let verifier = Verifier::new(secret);
        prop_assert!(verifier.verify_at(Some(header.as_bytes()), body, at(now)).is_ok());
    }

    #[test]
    fn any_changed_body_bit_fails(key in any_secret(), body in prop::collection::vec(any::<u8>(), 1..512), bit in any::<prop::sample::Index>()) {
        let header = sign(&Secret::new(key.clone()).expect("non-empty"), 1, &body).to_string();
        let mut tampered = body;
        let i = bit.index(tampered.len() * 8);
        tampered[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(
            verifier(&key).verify_at(Some(header.as_bytes()), tampered, at(0)).err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn any_changed_timestamp_fails(key in any_secret(), body in any_body(), t in any::<u64>(), other in any::<u64>()) {
        prop_assume!(t != other);
        let signed = sign(&Secret::new(key.clone()).expect("non-empty"), t, &body);
        let moved = SignatureHeader::new(other, *signed.signature()).to_string();
        prop_assert_eq!(
            verifier(&key).verify_at(Some(moved.as_bytes()), body, at(0)).err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn any_changed_signature_bit_fails(key in any_secret(), body in any_body(), bit in 0usize..256) {
        let signed = sign(&Secret::new(key.clone()).expect("non-empty"), 7, &body);
        let mut tag = *signed.signature();
        tag[bit / 8] ^= 1 << (bit % 8);
        let header = SignatureHeader::new(7, tag).to_string();
        prop_assert_eq!(
            verifier(&key).verify_at(Some(header.as_bytes()), body, at(0)).err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn another_secret_fails(key in any_secret(), other in any_secret(), body in any_body()) {
        prop_assume!(key != other);
        let header = sign(&Secret::new(other).expect("non-empty"), 7, &body).to_string();
        prop_assert_eq!(
            verifier(&key).verify_at(Some(header.as_bytes()), body, at(0)).err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    /// A signed header with a few bytes changed: it parses exactly when it
    /// is still a canonical header, and then formats back to its bytes, so
    /// no two spellings of one header are accepted.
    #[test]
    fn a_mutated_header_parses_only_in_its_canonical_form(
        t in any::<u64>(),
        tag in any::<[u8; 32]>(),
        mutations in prop::collection::vec(any_mutation(), 0..3),
    ) {
        let mut text = SignatureHeader::new(t, tag).to_string().into_bytes();
        for m in &mutations {
            mutate(&mut text, m);
        }
        match SignatureHeader::parse(&text) {
            Ok(header) => prop_assert_eq!(header.to_string().into_bytes(), text),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    /// A realistic event with a few bytes changed: parsing never panics,
    /// and what parses keeps its bytes and gives every view without
    /// panicking.
    #[test]
    fn a_mutated_event_parses_or_is_refused(
        body in any_event(),
        mutations in prop::collection::vec(any_mutation(), 0..3),
    ) {
        let mut body = body;
        for m in &mutations {
            mutate(&mut body, m);
        }
        if let Ok(event) = Event::from_json(body.clone()) {
            prop_assert_eq!(&event.raw()[..], &body[..]);
            prop_assert!(!event.id.is_empty());
            let _ = event.data();
            let _ = event.data_as::<serde_json::Value>();
            let again = Event::from_json(serde_json::to_vec(&event).expect("serialises"));
            prop_assert_eq!(again.map(|e| e.data_json().to_owned()).ok(), Some(event.data_json().to_owned()));
        }
    }

    /// A correctly signed delivery of a random event, then a change to its
    /// body or its header: the receiver answers 200 only when nothing was
    /// changed, and 400 or 401 otherwise.
    #[test]
    fn a_signed_event_is_accepted_only_unchanged(
        body in any_event(),
        in_header in any::<bool>(),
        mutations in prop::collection::vec(any_mutation(), 0..3),
    ) {
        let secret = Secret::new("k").expect("non-empty");
        let id = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let header = sign(&secret, crate::NOW, &body).to_string().into_bytes();
        let (mut sent_body, mut sent_header) = (body.clone(), header.clone());
        for m in &mutations {
            mutate(if in_header { &mut sent_header } else { &mut sent_body }, m);
        }
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&sent_header) {
            headers.insert("ricloud-signature", value);
        }
        let receiver = Receiver::new(Verifier::new(secret), Dispatcher::new());
        let outcome = block_on(receiver.receive_at(
            Delivery {
                method: &Method::POST,
                path: &format!("/webhooks/{id}"),
                headers: &headers,
                body: sent_body.clone().into(),
            },
            at(crate::NOW),
        ));
        let unchanged = sent_body == body && sent_header == header;
        if unchanged {
            prop_assert_eq!(outcome.status(), StatusCode::OK);
        } else {
            prop_assert!(
                matches!(outcome.status(), StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED),
                "{:?}", outcome
            );
        }
    }
}
