//! A secret's keyed HMAC-SHA256 state: what both signing and verifying use,
//! and the one place that handles key material after a [`Secret`] is read.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::Secret;

/// Length of an HMAC-SHA256 tag in bytes.
pub(crate) const TAG_LEN: usize = 32;

/// A secret's keyed HMAC-SHA256 state, in a heap slot of its own.
///
/// The state signs as well as the secret does. It is built once, in place,
/// and never moves or gets copied afterwards: the slot is boxed, so a
/// verifier's list of keys moves only pointers when it grows, and `hmac`
/// wipes the state (and every per-delivery clone of it) when it is dropped.
pub(crate) struct Key(Box<Hmac<Sha256>>);

impl Key {
    pub(crate) fn new(secret: &Secret) -> Self {
        let key = Self::keyed(secret.expose());
        // Keying runs on the stack in frames below this one: the padded
        // key blocks `hmac` builds there are not wiped by it, so the stack
        // they used is overwritten here. `keyed` is never inlined, so its
        // frames lie within the region this clears.
        zeroize::zeroize_stack::<KEYING_STACK>();
        key
    }

    #[inline(never)]
    fn keyed(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this never fails; an empty
        // key cannot reach it (`Secret` refuses one).
        Self(Box::new(
            Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        ))
    }

    /// The state for one message, `<digits>.<body>`, fed and ready to
    /// finish.
    pub(crate) fn mac(&self, digits: &[u8], body: &[u8]) -> Hmac<Sha256> {
        let mut mac = (*self.0).clone();
        // `<digits>.` in one piece: a `u64` has at most 20 digits.
        let mut prefix = [b'.'; 21];
        let len = digits.len().min(20);
        prefix[..len].copy_from_slice(&digits[..len]);
        mac.update(&prefix[..=len]);
        mac.update(body);
        mac
    }

    /// A copy of the state in a box of its own.
    #[inline(never)]
    pub(crate) fn copy(&self) -> Self {
        Self(Box::new((*self.0).clone()))
    }

    /// The tag of `<timestamp>.<body>`. Never inlined, so the stack it uses
    /// lies within what the caller clears after it.
    #[inline(never)]
    pub(crate) fn tag(&self, timestamp: u64, body: &[u8]) -> [u8; TAG_LEN] {
        let tag = self
            .mac(timestamp.to_string().as_bytes(), body)
            .finalize()
            .into_bytes();
        let mut signature = [0u8; TAG_LEN];
        signature.copy_from_slice(&tag);
        signature
    }
}

/// Stack cleared after keying: `hmac` and `sha2` use a few hundred bytes
/// for it; this leaves room for a debug build's larger frames.
pub(crate) const KEYING_STACK: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_709_815_072;

    fn secret(s: &str) -> Secret {
        Secret::new(s).expect("non-empty")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc_4231_vectors() {
        // Test cases 1, 2, 6 and 7: a short key, a key shorter than the
        // output, and a key longer than a block with a short and a long
        // message.
        let long = b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
        for (key, data, expected) in [
            (
                &[0x0b; 20][..],
                &b"Hi There"[..],
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &[0xaa; 131],
                long,
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ] {
            let key = Key::new(&Secret::new(key).expect("non-empty"));
            let mut mac = (*key.0).clone();
            mac.update(data);
            assert_eq!(hex(&mac.finalize().into_bytes()), expected);
        }
    }

    #[test]
    fn the_message_is_the_timestamp_a_dot_and_the_body() {
        let key = Key::new(&secret("k"));
        for t in [0, 7, 10, T, u64::MAX] {
            let mut plain = Hmac::<Sha256>::new_from_slice(b"k").expect("any length");
            plain.update(format!("{t}.").as_bytes());
            plain.update(b"body");
            assert_eq!(
                key.mac(t.to_string().as_bytes(), b"body")
                    .finalize()
                    .into_bytes(),
                plain.finalize().into_bytes(),
                "{t}"
            );
        }
    }
}
