//! The `verify` check: an arbitrary secret, header, body and clock through
//! [`Verifier::verify_at`], against an oracle built from [`sign`] and the
//! documented window; then sign-then-verify round trips.
//!
//! Shared by `fuzz/fuzz_targets/verify.rs` and the corpus replay test of the
//! core crate; it uses the core crate's public API, and the `hmac` crate
//! directly to check the message `sign` authenticates (`<t>.<body>`).
//!
//! Input layout (simple framing so that `fuzz/make_corpus.py` can write
//! seeds from the reference vectors):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | flags: bit 0 set = a header is sent |
//! | 1..9 | the clock, Unix seconds, `i64` little-endian (negative: before 1970); also the signing time of the round trips, as `u64` |
//! | 9..11 | `u16` little-endian: where the clock sits in the window for the round trips, `value % 901 - 300` seconds after the signing time |
//! | 11 | secret length `n`, then `n` bytes of secret |
//! | next | header length `m`, then `m` bytes of header |
//! | rest | the body |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use ricloud_webhook::{sign, Secret, SecretError, SignatureHeader, Verifier, VerifyError};
use sha2::Sha256;

/// The default window, as documented: 600 s old, 300 s ahead, both inclusive.
const MAX_AGE: u64 = 600;
const MAX_AHEAD: u64 = 300;

struct Input<'a> {
    send_header: bool,
    clock: i64,
    offset: i64,
    secret: &'a [u8],
    header: &'a [u8],
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn decode(data: &'a [u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let (clock, rest) = rest.split_first_chunk::<8>()?;
        let (offset, rest) = rest.split_first_chunk::<2>()?;
        let (secret, rest) = length_prefixed(rest)?;
        let (header, body) = length_prefixed(rest)?;
        Some(Self {
            send_header: flags & 1 == 1,
            clock: i64::from_le_bytes(*clock),
            offset: i64::from(u16::from_le_bytes(*offset) % 901) - 300,
            secret,
            header,
            body,
        })
    }
}

fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = data.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A `SystemTime` `secs` from the epoch, if the platform can hold it.
fn instant(secs: i64) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// The documented window check at Unix second `now`.
fn window(timestamp: u64, now: u64) -> Result<(), VerifyError> {
    let age = now.saturating_sub(timestamp);
    if age > MAX_AGE {
        return Err(VerifyError::TimestampTooOld {
            age_secs: age,
            max_age_secs: MAX_AGE,
        });
    }
    let ahead = timestamp.saturating_sub(now);
    if ahead > MAX_AHEAD {
        return Err(VerifyError::TimestampTooFarAhead {
            ahead_secs: ahead,
            max_ahead_secs: MAX_AHEAD,
        });
    }
    Ok(())
}

/// Runs both checks on one input; inputs too short to decode are skipped.
pub(crate) fn check(data: &[u8]) {
    let Some(input) = Input::decode(data) else {
        return;
    };
    let Ok(secret) = Secret::new(input.secret.to_vec()) else {
        assert!(input.secret.is_empty());
        assert_eq!(Secret::new(Vec::new()).err(), Some(SecretError::Empty));
        return;
    };
    arbitrary_delivery(&input, &secret);
    round_trips(&input, &secret);
}

/// Whatever comes in, `verify_at` answers exactly what the oracle says.
fn arbitrary_delivery(input: &Input<'_>, secret: &Secret) {
    let Some(now) = instant(input.clock) else {
        return;
    };
    // A clock before 1970 counts as 1970 (the verifier's documented choice).
    let now_secs = u64::try_from(input.clock).unwrap_or(0);
    let header = input.send_header.then_some(input.header);
    let expected = match header.map(SignatureHeader::parse) {
        None => Err(VerifyError::MissingHeader),
        Some(Err(reason)) => Err(VerifyError::MalformedHeader(reason)),
        Some(Ok(parsed)) if parsed != sign(secret, parsed.timestamp(), input.body) => {
            Err(VerifyError::SignatureMismatch)
        }
        Some(Ok(parsed)) => window(parsed.timestamp(), now_secs).map(|()| parsed.timestamp()),
    };
    let verifier = Verifier::new(secret.clone());
    let got = verifier.verify_at(header, input.body.to_vec(), now);
    if let Ok(verified) = &got {
        assert_eq!(verified.body().as_ref(), input.body);
        assert_eq!(verified.matched_secret(), 0);
    }
    let got = got.map(|v| v.timestamp());
    assert_eq!(got, expected);
}

/// `sign` then `verify_at` inside the window always succeeds; any other
/// secret, any flipped body bit, and the instants just outside the window
/// fail as documented.
fn round_trips(input: &Input<'_>, secret: &Secret) {
    // Reinterpreting the clock's bits reaches timestamps up to `u64::MAX`.
    let t = input.clock as u64;
    let body = input.body;
    let header = sign(secret, t, body);
    // The tag is HMAC-SHA256 of `<t>.<body>` as the `hmac` crate computes it.
    let mut mac = Hmac::<Sha256>::new_from_slice(input.secret).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    assert_eq!(header.signature()[..], mac.finalize().into_bytes()[..]);
    let text = header.to_string();
    assert_eq!(SignatureHeader::parse(text.as_bytes()), Ok(header));
    assert_eq!(header.timestamp(), t);

    let at = |delta: i64| -> Option<SystemTime> {
        let secs = i64::try_from(i128::from(t) + i128::from(delta)).ok()?;
        if secs < 0 {
            return None;
        }
        instant(secs)
    };
    let verifier = Verifier::new(secret.clone());
    let verify = |verifier: &Verifier, body: &[u8], now: SystemTime| {
        verifier.verify_at(Some(text.as_bytes()), body.to_vec(), now)
    };

    let Some(now) = at(input.offset) else {
        return;
    };
    let verified = verify(&verifier, body, now).expect("a fresh signature verifies");
    assert_eq!(verified.timestamp(), t);
    assert_eq!(verified.matched_secret(), 0);
    assert_eq!(verified.body().as_ref(), body);

    // Another secret: flipping a bit of the first byte gives an HMAC key
    // that is really different (appending a NUL byte to a short key would
    // not be: HMAC pads short keys with zeros).
    let mut other = input.secret.to_vec();
    other[0] ^= 1;
    let other = Secret::new(other).expect("non-empty");
    assert_eq!(
        verify(&Verifier::new(other.clone()), body, now).err(),
        Some(VerifyError::SignatureMismatch)
    );
    // ... unless the real one is kept as a previous secret.
    let rotating = Verifier::new(other).previous_secret(secret.clone());
    let verified = verify(&rotating, body, now).expect("the previous secret verifies");
    assert_eq!(verified.matched_secret(), 1);

    if !body.is_empty() {
        let mut flipped = body.to_vec();
        let at = input.offset.unsigned_abs() as usize % flipped.len();
        flipped[at] ^= 1 << (input.offset.unsigned_abs() % 8);
        assert_eq!(
            verify(&verifier, &flipped, now).err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    // The window's edges, inclusive.
    for (delta, ok) in [(600, true), (601, false), (-300, true), (-301, false)] {
        let Some(edge) = at(delta) else {
            continue;
        };
        let got = verify(&verifier, body, edge);
        assert_eq!(got.is_ok(), ok, "at signing time {delta:+} s: {got:?}");
    }
}
