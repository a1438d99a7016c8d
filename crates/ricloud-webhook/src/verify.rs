//! Verification of a delivery against one or more secrets, in constant time.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::Mac as _;

use crate::key::{Key, KEYING_STACK};
use crate::signature::{self, HeaderError, SignatureHeader};
use crate::{Secret, SecretError};

/// How far a signature's timestamp may be from the receiver's clock.
///
/// The default refuses timestamps more than 600 s old (ricloud-py's default
/// `delta`) or more than 300 s ahead (the reference does not check the
/// future; a bound is added here so a captured signature with a forged
/// future timestamp cannot be replayed for long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    max_age: Option<u64>,
    max_ahead: Option<u64>,
}

impl TimeWindow {
    /// Refuses timestamps more than `max_age` seconds old or more than
    /// `max_ahead` seconds in the future. Both ends are inclusive: a
    /// timestamp exactly `max_age` old is accepted.
    pub const fn new(max_age: u64, max_ahead: u64) -> Self {
        Self {
            max_age: Some(max_age),
            max_ahead: Some(max_ahead),
        }
    }

    /// Accepts any timestamp: only the signature is checked.
    ///
    /// This removes replay protection; it exists for offline tools (such as
    /// checking a stored delivery), not for a receiver.
    pub const fn unchecked() -> Self {
        Self {
            max_age: None,
            max_ahead: None,
        }
    }

    /// The oldest accepted age in seconds, if bounded.
    pub const fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// The furthest accepted distance into the future in seconds, if bounded.
    pub const fn max_ahead(&self) -> Option<u64> {
        self.max_ahead
    }

    fn check(&self, timestamp: u64, now: u64) -> Result<(), VerifyError> {
        if let Some(max_age) = self.max_age {
            let age = now.saturating_sub(timestamp);
            if age > max_age {
                return Err(VerifyError::TimestampTooOld {
                    age_secs: age,
                    max_age_secs: max_age,
                });
            }
        }
        if let Some(max_ahead) = self.max_ahead {
            let ahead = timestamp.saturating_sub(now);
            if ahead > max_ahead {
                return Err(VerifyError::TimestampTooFarAhead {
                    ahead_secs: ahead,
                    max_ahead_secs: max_ahead,
                });
            }
        }
        Ok(())
    }
}

impl Default for TimeWindow {
    fn default() -> Self {
        Self::new(600, 300)
    }
}

/// Stack cleared after each verification: it runs on the request path, so
/// this is sized to what a release build uses, with room to spare; the
/// `key-wipe` check (checks/key-wipe) makes sure it is enough.
const VERIFY_STACK: usize = 1024;

/// Checks `Ricloud-Signature` headers against the current secret and any
/// previous ones still accepted during a rotation.
///
/// Each secret is keyed into an HMAC-SHA256 state once, at construction; a
/// verification clones that state, so the key schedule never runs on the
/// request path. The tag is compared by `hmac`'s `verify_slice`, which is
/// constant-time. The signature is checked before the timestamp, so a
/// stranger learns nothing about the window without a valid signature.
///
/// Cloning a verifier shares its keyed states; they are wiped when the last
/// clone is dropped.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ricloud_webhook::{sign, Secret, Verifier, VerifyError};
///
/// let current = Secret::new("new-secret")?;
/// let old = Secret::new("old-secret")?;
/// let verifier = Verifier::new(current.clone()).previous_secret(old.clone());
///
/// let body = br#"{"id": "e"}"#;
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let header = sign(&old, 1_700_000_000, body).to_string();
///
/// let verified = verifier.verify_at(Some(header.as_bytes()), &body[..], now)?;
/// assert_eq!(verified.matched_secret(), 1); // the first previous secret
///
/// let forged = sign(&Secret::new("guess")?, 1_700_000_000, body).to_string();
/// assert_eq!(
///     verifier.verify_at(Some(forged.as_bytes()), &body[..], now).unwrap_err(),
///     VerifyError::SignatureMismatch,
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<Vec<Key>>,
    window: TimeWindow,
}

impl Verifier {
    /// A verifier for one secret with the default [`TimeWindow`].
    pub fn new(secret: Secret) -> Self {
        Self {
            keys: Arc::new(vec![Key::new(&secret)]),
            window: TimeWindow::default(),
        }
    }

    /// A verifier for the first secret (current) and the others (previous,
    /// in order).
    ///
    /// # Errors
    /// [`SecretError::NoSecrets`] when the iterator is empty: a verifier
    /// always has a secret.
    pub fn from_secrets(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, SecretError> {
        // The keys are boxes: growing this list moves pointers, not states.
        let keys: Vec<Key> = secrets.into_iter().map(|s| Key::new(&s)).collect();
        if keys.is_empty() {
            return Err(SecretError::NoSecrets);
        }
        Ok(Self {
            keys: Arc::new(keys),
            window: TimeWindow::default(),
        })
    }

    /// Also accepts `secret`, a previous secret kept during a rotation.
    /// Previous secrets are numbered from 1 in the order they are added.
    #[must_use]
    pub fn previous_secret(self, secret: Secret) -> Self {
        let keys = match Arc::try_unwrap(self.keys) {
            // Only this verifier holds them: move the boxes over.
            Ok(keys) => keys,
            // Shared with a clone, which keeps them: copy each state into a
            // new box (the secrets are gone), clearing the stack the copies
            // passed through.
            Err(shared) => {
                let copies = shared.iter().map(Key::copy).collect();
                zeroize::zeroize_stack::<KEYING_STACK>();
                copies
            }
        };
        let mut keys = keys;
        keys.push(Key::new(&secret));
        Self {
            keys: Arc::new(keys),
            window: self.window,
        }
    }

    /// Sets the accepted time window.
    #[must_use]
    pub fn window(mut self, window: TimeWindow) -> Self {
        self.window = window;
        self
    }

    /// How many secrets are accepted (1 + previous ones).
    pub fn secret_count(&self) -> usize {
        self.keys.len()
    }

    /// Signs `body` at `timestamp` with the current secret.
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> SignatureHeader {
        signature::sign_with(&self.keys[0], timestamp, body)
    }

    /// Verifies a delivery against the system clock.
    ///
    /// # Errors
    /// See [`Verifier::verify_at`].
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        body: impl Into<Bytes>,
    ) -> Result<VerifiedBody, VerifyError> {
        self.verify_at(header, body, SystemTime::now())
    }

    /// Verifies a delivery as if the time were `now`.
    ///
    /// `header` is the raw `Ricloud-Signature` value (`None` when the
    /// request has none), `body` the raw request body, byte for byte.
    ///
    /// # Errors
    /// [`VerifyError::MissingHeader`], [`VerifyError::MalformedHeader`],
    /// [`VerifyError::SignatureMismatch`] when no secret produces the tag,
    /// then (only for a valid signature) [`VerifyError::TimestampTooOld`] or
    /// [`VerifyError::TimestampTooFarAhead`].
    pub fn verify_at(
        &self,
        header: Option<&[u8]>,
        body: impl Into<Bytes>,
        now: SystemTime,
    ) -> Result<VerifiedBody, VerifyError> {
        let text = header.ok_or(VerifyError::MissingHeader)?;
        let header = SignatureHeader::parse(text).map_err(VerifyError::MalformedHeader)?;
        // The parser accepts the canonical decimal only, so the digits as
        // received (`t=<digits>,`) are the ones the sender signed.
        let digits = signature::timestamp_digits(text);
        let body = body.into();
        let matched = self.matching_key(digits, &body, header.signature());
        // SHA-256's compression leaves a copy of the state it starts from
        // on the stack: for the last block of the outer hash, that is the
        // keyed state itself, which signs as well as the secret does.
        zeroize::zeroize_stack::<VERIFY_STACK>();
        let matched = matched.ok_or(VerifyError::SignatureMismatch)?;
        self.window.check(header.timestamp(), unix_seconds(now))?;
        Ok(VerifiedBody {
            body,
            header,
            matched_secret: matched,
            verified_at: now,
        })
    }
}

impl Verifier {
    /// The first key whose tag for `<digits>.<body>` is `tag`, compared in
    /// constant time. Never inlined, so the stack it uses lies within what
    /// the caller clears after it.
    #[inline(never)]
    fn matching_key(&self, digits: &[u8], body: &[u8], tag: &[u8]) -> Option<usize> {
        self.keys
            .iter()
            .position(|key| key.mac(digits, body).verify_slice(tag).is_ok())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &format_args!("[redacted; {}]", self.keys.len()))
            .field("window", &self.window)
            .finish()
    }
}

fn unix_seconds(now: SystemTime) -> u64 {
    // A clock before 1970 is treated as 1970: every timestamp is then "ahead".
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A delivery whose signature matched one of the verifier's secrets and
/// whose timestamp is within the window.
///
/// Only [`Verifier`] constructs it, and only a `VerifiedBody` parses into
/// a [`VerifiedEvent`](crate::VerifiedEvent), so unverified bytes cannot
/// reach a handler.
#[derive(Clone)]
pub struct VerifiedBody {
    body: Bytes,
    header: SignatureHeader,
    matched_secret: usize,
    verified_at: SystemTime,
}

impl VerifiedBody {
    /// The verified body, byte for byte as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The signing time from the header, in Unix seconds.
    pub fn timestamp(&self) -> u64 {
        self.header.timestamp()
    }

    /// The `Ricloud-Signature` header that verified the body. Its text
    /// ([`SignatureHeader`]'s `Display`) is the header value byte for byte,
    /// since the parser accepts the canonical spelling only: what a
    /// forwarder passes on, so that a consumer can verify the body again.
    pub fn signature_header(&self) -> &SignatureHeader {
        &self.header
    }

    /// The time the body was verified at (the `now` of
    /// [`Verifier::verify_at`]): when the receiver received it.
    pub fn verified_at(&self) -> SystemTime {
        self.verified_at
    }

    /// Which secret matched: 0 is the current one, 1.. the previous ones in
    /// the order they were added. A previous secret that stops matching can
    /// be retired.
    pub fn matched_secret(&self) -> usize {
        self.matched_secret
    }

    /// Consumes the token, giving the body back.
    pub fn into_body(self) -> Bytes {
        self.body
    }
}

impl fmt::Debug for VerifiedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is left out: it may hold personal data.
        f.debug_struct("VerifiedBody")
            .field("body_len", &self.body.len())
            .field("timestamp", &self.header.timestamp())
            .field("matched_secret", &self.matched_secret)
            .finish()
    }
}

/// Why a delivery failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request has no `Ricloud-Signature` header.
    #[error("request has no `Ricloud-Signature` header")]
    MissingHeader,
    /// The header could not be parsed; the reason says which rule it broke.
    #[error("malformed {0}")]
    MalformedHeader(#[source] HeaderError),
    /// No accepted secret produces the signature for this body and timestamp.
    #[error("signature does not match the body with any accepted secret")]
    SignatureMismatch,
    /// The signature is valid but older than the window allows.
    #[error("signature timestamp is {age_secs} s old, more than the {max_age_secs} s allowed")]
    TimestampTooOld {
        /// How old the timestamp is, in seconds.
        age_secs: u64,
        /// The largest accepted age, in seconds.
        max_age_secs: u64,
    },
    /// The signature is valid but its timestamp is too far in the future.
    #[error(
        "signature timestamp is {ahead_secs} s in the future, more than the {max_ahead_secs} s allowed"
    )]
    TimestampTooFarAhead {
        /// How far ahead the timestamp is, in seconds.
        ahead_secs: u64,
        /// The largest accepted distance, in seconds.
        max_ahead_secs: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T: u64 = 1_709_815_072;
    /// The latest instant `SystemTime` can hold on every platform we build for.
    const FAR: u64 = i64::MAX as u64 / 2;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn secret(s: &str) -> Secret {
        Secret::new(s).expect("non-empty")
    }

    fn check(verifier: &Verifier, ts: u64, now: u64) -> Result<VerifiedBody, VerifyError> {
        let header = verifier.sign(ts, b"{}").to_string();
        verifier.verify_at(Some(header.as_bytes()), &b"{}"[..], at(now))
    }

    #[test]
    fn window_edges() {
        let v = Verifier::new(secret("k"));
        assert!(check(&v, T, T).is_ok());
        assert!(check(&v, T, T + 599).is_ok());
        assert!(check(&v, T, T + 600).is_ok());
        assert_eq!(
            check(&v, T, T + 601).err(),
            Some(VerifyError::TimestampTooOld {
                age_secs: 601,
                max_age_secs: 600
            })
        );
        assert!(check(&v, T + 299, T).is_ok());
        assert!(check(&v, T + 300, T).is_ok());
        assert_eq!(
            check(&v, T + 301, T).err(),
            Some(VerifyError::TimestampTooFarAhead {
                ahead_secs: 301,
                max_ahead_secs: 300
            })
        );
    }

    #[test]
    fn custom_and_disabled_window() {
        let v = Verifier::new(secret("k")).window(TimeWindow::new(10, 0));
        assert!(check(&v, T, T + 10).is_ok());
        assert!(check(&v, T, T + 11).is_err());
        assert!(check(&v, T + 1, T).is_err());
        let v = v.window(TimeWindow::unchecked());
        assert!(check(&v, 0, FAR).is_ok());
        assert!(check(&v, u64::MAX, 0).is_ok());
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let v = Verifier::new(secret("k"));
        assert!(check(&v, u64::MAX, 0).is_err());
        assert!(check(&v, 0, FAR).is_err());
        let header = v.sign(0, b"").to_string();
        let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
        assert!(v
            .verify_at(Some(header.as_bytes()), Bytes::new(), before_epoch)
            .is_ok());
    }

    #[test]
    fn signature_is_checked_before_timestamp() {
        let v = Verifier::new(secret("k"));
        let other = Verifier::new(secret("not-k"));
        let header = other.sign(T, b"{}").to_string();
        // Wrong signature AND expired: the signature error wins.
        assert_eq!(
            v.verify_at(Some(header.as_bytes()), &b"{}"[..], at(T + 10_000))
                .err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn rotation_reports_the_matching_secret() {
        let v = Verifier::from_secrets([secret("new"), secret("old"), secret("older")])
            .expect("secrets");
        for (i, s) in ["new", "old", "older"].into_iter().enumerate() {
            let h = signature::sign(&secret(s), T, b"x").to_string();
            let ok = v
                .verify_at(Some(h.as_bytes()), &b"x"[..], at(T))
                .expect("valid");
            assert_eq!(ok.matched_secret(), i);
        }
        // Once "older" is removed, it is refused.
        let v = Verifier::new(secret("new")).previous_secret(secret("old"));
        let h = signature::sign(&secret("older"), T, b"x").to_string();
        assert_eq!(
            v.verify_at(Some(h.as_bytes()), &b"x"[..], at(T)).err(),
            Some(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn adding_a_secret_to_a_shared_verifier_leaves_the_clone_as_it_was() {
        let first = Verifier::new(secret("new"));
        let clone = first.clone();
        let rotated = first.previous_secret(secret("old"));
        let old = signature::sign(&secret("old"), T, b"x").to_string();
        let new = signature::sign(&secret("new"), T, b"x").to_string();
        assert_eq!(clone.secret_count(), 1);
        assert!(clone
            .verify_at(Some(old.as_bytes()), &b"x"[..], at(T))
            .is_err());
        assert_eq!(rotated.secret_count(), 2);
        for (header, matched) in [(&new, 0), (&old, 1)] {
            let ok = rotated
                .verify_at(Some(header.as_bytes()), &b"x"[..], at(T))
                .expect("valid");
            assert_eq!(ok.matched_secret(), matched);
        }
    }

    #[test]
    fn fails_closed_without_secrets() {
        assert_eq!(
            Verifier::from_secrets(Vec::new()).err(),
            Some(SecretError::NoSecrets)
        );
    }

    #[test]
    fn missing_and_malformed_header() {
        let v = Verifier::new(secret("k"));
        assert_eq!(
            v.verify_at(None, Bytes::new(), at(T)).err(),
            Some(VerifyError::MissingHeader)
        );
        assert_eq!(
            v.verify_at(Some(b"t=1"), Bytes::new(), at(T)).err(),
            Some(VerifyError::MalformedHeader(HeaderError::MissingSignature))
        );
    }

    #[test]
    fn debug_hides_keys_and_body() {
        let v = Verifier::new(secret("topsecret"));
        assert!(!format!("{v:?}").contains("topsecret"));
        let ok = check(&v, T, T).expect("valid");
        assert!(!format!("{ok:?}").contains("{}"));
    }
}
