//! The `forwarded` check: what a consumer reads from a broker (anyone who
//! can write to the stream chooses it) through
//! [`verify_forwarded`], against an oracle built from [`sign`]; then an
//! event's round trip through [`Message::new`] and back.
//!
//! Shared by `fuzz/fuzz_targets/forwarded.rs` and the corpus replay test of
//! the forward crate; it uses the public APIs of the core and forward
//! crates only.
//!
//! Input layout:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | flags: bit 0 = a `Ricloud-Signature` header, bit 1 = a `Ricloud-Received-At` header |
//! | 1 | header length `n`, then `n` bytes of `Ricloud-Signature` (lossy UTF-8) |
//! | next | length `m`, then `m` bytes of `Ricloud-Received-At` (lossy UTF-8) |
//! | rest | the body |

use std::time::{Duration, UNIX_EPOCH};

use ricloud_webhook::{sign, Event, Secret, SignatureHeader, VerifiedEvent, Verifier};
use ricloud_webhook_forward::{header, verify_forwarded, Message};

/// The consumer's secret.
const SECRET: &str = "fuzz-forwarded-secret";
/// The default window, as documented: 600 s old, 300 s ahead.
const MAX_AGE_MS: u64 = 600_000;
const MAX_AHEAD_MS: u64 = 300_000;

fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = data.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Runs the check on one input.
///
/// # Panics
/// When a property does not hold.
pub(crate) fn check(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((signature, rest)) = length_prefixed(rest) else {
        return;
    };
    let Some((received, body)) = length_prefixed(rest) else {
        return;
    };
    let signature = String::from_utf8_lossy(signature).into_owned();
    let received = String::from_utf8_lossy(received).into_owned();
    let secret = Secret::new(SECRET).expect("a secret");
    let verifier = Verifier::new(secret.clone());
    let lookup = |name: &str| match name {
        header::SIGNATURE if flags & 1 == 1 => Some(signature.as_str()),
        header::RECEIVED_AT if flags & 2 == 2 => Some(received.as_str()),
        _ => None,
    };

    // Accepted only when the API's signature over these bytes, fresh at
    // the received time, is what the message carries.
    if let Ok(verified) = verify_forwarded(&verifier, lookup, body.to_vec()) {
        let parsed =
            SignatureHeader::parse(signature.as_bytes()).expect("an accepted header parses");
        assert_eq!(
            sign(&secret, parsed.timestamp(), body).to_string(),
            signature,
            "accepted a signature that does not sign the body"
        );
        let received_ms: u64 = received.parse().expect("an accepted received time");
        let signed_ms = parsed.timestamp().saturating_mul(1000);
        assert!(
            received_ms.saturating_sub(signed_ms) <= MAX_AGE_MS + 999
                && signed_ms.saturating_sub(received_ms) <= MAX_AHEAD_MS,
            "accepted a signature outside the window at the received time"
        );
        assert_eq!(&verified.event().raw()[..], body);
    }

    // An event forwarded as a receiver forwards it verifies back, the same
    // bytes; the body changed by one bit does not.
    let Ok(event) = Event::from_json(body.to_vec()) else {
        return;
    };
    let t = 1_700_000_000 + u64::from(flags);
    let header = sign(&secret, t, body).to_string();
    let now = UNIX_EPOCH + Duration::from_secs(t);
    let verified = verifier
        .verify_at(Some(header.as_bytes()), body.to_vec(), now)
        .expect("signed just now");
    let verified = VerifiedEvent::parse(verified).expect("it parsed before");
    let message = Message::new(verified.event(), now);
    assert_eq!(message.event_id(), event.id);
    assert_eq!(&message.body()[..], body);
    let lookup = |name: &str| {
        message
            .headers()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    };
    let again = verify_forwarded(&verifier, lookup, message.body().clone())
        .expect("a forwarded event verifies again");
    assert_eq!(again.event().id, event.id);
    assert_eq!(again.event().raw(), message.body());
    let mut flipped = body.to_vec();
    let at = usize::from(flags) % flipped.len().max(1);
    if let Some(byte) = flipped.get_mut(at) {
        *byte ^= 1;
        assert!(
            verify_forwarded(&verifier, lookup, flipped).is_err(),
            "a changed body verified"
        );
    }
}
