//! ricloud-py 3.2.0's own signatures give its own verdicts here.

use ricloud_webhook::{sign, SignatureHeader, TimeWindow, Verifier, VerifyError};
use serde_json::Value;

use crate::{at, secret};

struct Vector {
    name: String,
    secret: String,
    timestamp: u64,
    body: String,
    header: String,
    valid: bool,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../data/ricloud-py-signatures.json");
    let doc: Value = serde_json::from_str(text).expect("vector file is JSON");
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| Vector {
            name: v["name"].as_str().expect("name").to_owned(),
            secret: v["secret"].as_str().expect("secret").to_owned(),
            timestamp: v["timestamp"].as_u64().expect("timestamp"),
            body: v["body"].as_str().expect("body").to_owned(),
            header: v["header"].as_str().expect("header").to_owned(),
            valid: v["valid"].as_bool().expect("valid"),
        })
        .collect()
}

#[test]
fn every_vector_gets_the_reference_verdict() {
    let vectors = vectors();
    assert!(vectors.len() >= 24, "vector file shrank: {}", vectors.len());
    for v in &vectors {
        // The reference verdict is signature-only, without a time window.
        let verifier = Verifier::new(secret(&v.secret)).window(TimeWindow::unchecked());
        let result = verifier.verify_at(
            Some(v.header.as_bytes()),
            v.body.clone().into_bytes(),
            at(0),
        );
        match (v.valid, result) {
            (true, Ok(ok)) => assert_eq!(ok.matched_secret(), 0, "{}", v.name),
            (false, Err(VerifyError::SignatureMismatch)) => {}
            (expected, got) => panic!("{}: expected valid={expected}, got {got:?}", v.name),
        }
    }
}

#[test]
fn signing_reproduces_the_reference_header_byte_for_byte() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.valid) {
        let header = sign(&secret(&v.secret), v.timestamp, v.body.as_bytes());
        assert_eq!(header.to_string(), v.header, "{}", v.name);
        assert_eq!(
            SignatureHeader::parse(v.header.as_bytes()),
            Ok(header),
            "{}",
            v.name
        );
        checked += 1;
    }
    assert!(checked >= 6);
}

#[test]
fn vectors_cover_long_and_non_ascii_secrets_and_bodies() {
    let vectors = vectors();
    assert!(vectors.iter().any(|v| v.valid && v.secret.len() > 64));
    assert!(vectors.iter().any(|v| v.valid && !v.secret.is_ascii()));
    assert!(vectors.iter().any(|v| v.valid && !v.body.is_ascii()));
    assert!(vectors.iter().any(|v| v.valid && v.body.len() >= 64 * 1024));
}
