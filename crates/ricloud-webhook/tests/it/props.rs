//! Properties: sign then verify succeeds; any changed bit fails; parsing
//! arbitrary bytes never panics.

use proptest::prelude::*;
use ricloud_webhook::{
    sign, Bytes, Event, RawBody, Secret, SignatureHeader, TimeWindow, Verifier, VerifyError,
};

use crate::at;

fn any_secret() -> impl Strategy<Value = Vec<u8>> {
    // Up to 200 bytes: past the 64-byte HMAC block, where keys get hashed.
    prop::collection::vec(any::<u8>(), 1..200)
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

fn verifier(key: &[u8]) -> Verifier {
    Verifier::new(Secret::new(key.to_vec()).expect("non-empty"))
        .with_window(TimeWindow::unchecked())
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
    fn a_body_in_pieces_verifies_as_the_whole(key in any_secret(), body in any_body(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6), tamper in any::<Option<prop::sample::Index>>()) {
        let header = sign(&Secret::new(key.clone()).expect("non-empty"), 1, &body).to_string();
        let mut sent = body.clone();
        if let (Some(at), false) = (tamper, sent.is_empty()) {
            sent[at.index(body.len())] ^= 1;
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(sent.len() + 1)).collect();
        cuts.push(sent.len());
        cuts.sort_unstable();
        let mut start = 0;
        let pieces: RawBody = cuts.iter().map(|&end| {
            let piece = Bytes::copy_from_slice(&sent[start..end]);
            start = end;
            piece
        }).collect();
        prop_assert_eq!(pieces.len(), sent.len());
        let whole = verifier(&key).verify_at(Some(header.as_bytes()), sent.clone(), at(0));
        let chunked = verifier(&key).verify_at(Some(header.as_bytes()), pieces, at(0));
        prop_assert_eq!(whole.is_ok(), sent == body);
        match (whole, chunked) {
            (Ok(whole), Ok(chunked)) => prop_assert_eq!(whole.body(), chunked.body()),
            (Err(whole), Err(chunked)) => prop_assert_eq!(whole, chunked),
            (whole, chunked) => prop_assert!(false, "whole {:?}, in pieces {:?}", whole, chunked),
        }
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

    #[test]
    fn header_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(header) = SignatureHeader::parse(&bytes) {
            // Whatever parses formats back to a value that parses the same.
            prop_assert_eq!(header.to_string().parse::<SignatureHeader>(), Ok(header));
        }
    }

    #[test]
    fn header_like_input_never_panics(t in "[0-9+\\- ]{0,25}", s in "[A-Za-z0-9+/=_\\-]{0,50}", sep in "[,;= ]{1,2}") {
        let text = format!("t={t}{sep}s={s}");
        let _ = SignatureHeader::parse(text.as_bytes());
        let _ = verifier(b"k").verify_at(Some(text.as_bytes()), Vec::new(), at(0));
    }

    #[test]
    fn event_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(event) = Event::from_json(bytes) {
            let _ = event.data();
            let _ = event.slug();
        }
    }
}
