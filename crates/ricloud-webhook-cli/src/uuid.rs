//! Random version 4 UUIDs from the operating system's random source.

use std::io;

/// A fresh random UUID (version 4, RFC 9562 variant) in lowercase hyphenated
/// form, e.g. `2abc5619-25ab-489b-967e-4d928a831817`.
///
/// The 122 random bits come from the operating system through `getrandom`,
/// the same quality of randomness the API's own identifiers have.
///
/// ```
/// let id = ricloud_webhook_cli::uuid_v4()?;
/// assert_eq!(id.len(), 36);
/// assert_eq!(&id[14..15], "4");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// An [`io::Error`] when the operating system's random source fails.
pub fn uuid_v4() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(uuid_v4_from_bytes(bytes))
}

/// Formats 16 random bytes as a version 4 UUID, overwriting the version and
/// variant bits.
///
/// Deterministic, for callers that draw their randomness in bulk (a load
/// generator) or need repeatable identifiers (tests).
///
/// ```
/// let id = ricloud_webhook_cli::uuid_v4_from_bytes([0xff; 16]);
/// assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
/// ```
pub fn uuid_v4_from_bytes(mut bytes: [u8; 16]) -> String {
    // Version 4 in the high nibble of byte 6; variant 0b10 in the top two
    // bits of byte 8 (RFC 9562, section 5.4).
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        push_hex(&mut out, *b);
    }
    out
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(format!("random source failed: {e}")))
}

/// Appends the two lowercase hex digits of `b`.
pub(crate) fn push_hex(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(DIGITS[usize::from(b >> 4)]));
    out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the textual layout, the version nibble and the variant bits.
    fn assert_v4(id: &str) {
        assert_eq!(id.len(), 36, "{id}");
        for (i, c) in id.char_indices() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{id}");
            } else {
                assert!(matches!(c, '0'..='9' | 'a'..='f'), "{id}");
            }
        }
        assert_eq!(&id[14..15], "4", "version nibble of {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant bits of {id}"
        );
    }

    #[test]
    fn fixed_bytes() {
        assert_eq!(
            uuid_v4_from_bytes([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
        assert_eq!(
            uuid_v4_from_bytes([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        let counting: [u8; 16] = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0) * 17);
        assert_eq!(
            uuid_v4_from_bytes(counting),
            "00112233-4455-4677-8899-aabbccddeeff"
        );
    }

    #[test]
    fn random_ids_are_v4_and_distinct() {
        let ids: Vec<String> = (0..64).map(|_| uuid_v4().expect("random")).collect();
        for id in &ids {
            assert_v4(id);
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }
}
