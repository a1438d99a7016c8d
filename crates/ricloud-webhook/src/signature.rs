//! The `Ricloud-Signature` header: strict parsing, formatting and signing.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::key::Key;
use crate::Secret;

/// Length of the base64 text of a tag, with its `=` padding.
const SIGNATURE_B64_LEN: usize = 44;

/// A parsed `Ricloud-Signature` value: `t=<unix seconds>,s=<base64 tag>`.
///
/// [`SignatureHeader::parse`] accepts exactly what the API sends and nothing
/// else; [`Display`](fmt::Display) writes it back in the same form.
///
/// ```
/// use ricloud_webhook::SignatureHeader;
///
/// let header = SignatureHeader::parse(b"t=1709815072,s=67dXTYtIqCpNu0wFFlddu2iZYiszPaXpyOK81aQ0cr0=")?;
/// assert_eq!(header.timestamp(), 1_709_815_072);
/// assert_eq!(header.to_string(), "t=1709815072,s=67dXTYtIqCpNu0wFFlddu2iZYiszPaXpyOK81aQ0cr0=");
/// # Ok::<(), ricloud_webhook::HeaderError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignatureHeader {
    timestamp: u64,
    signature: [u8; Self::TAG_LEN],
}

impl SignatureHeader {
    /// The name of the header that carries the signature.
    pub const NAME: &'static str = "Ricloud-Signature";

    /// The longest header value the parser looks at, checked before anything else.
    ///
    /// A well-formed value is at most `t=` + 20 digits + `,s=` + 44 characters:
    /// 69 bytes. Anything much longer is not from the API.
    pub const MAX_LEN: usize = 128;

    /// Length of an HMAC-SHA256 tag in bytes.
    pub const TAG_LEN: usize = crate::key::TAG_LEN;

    /// Builds a header from its parts.
    pub const fn new(timestamp: u64, signature: [u8; Self::TAG_LEN]) -> Self {
        Self {
            timestamp,
            signature,
        }
    }

    /// The signing time, in seconds since the Unix epoch.
    pub const fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The HMAC-SHA256 tag the sender claims.
    pub const fn signature(&self) -> &[u8; Self::TAG_LEN] {
        &self.signature
    }

    /// Parses a header value strictly.
    ///
    /// Accepted: `t=` then the timestamp in decimal digits (no sign, no
    /// leading zero, at most `u64::MAX`), a comma, `s=` then 44 characters of
    /// standard padded base64 that decode to exactly 32 bytes. Each field
    /// once, in that order, nothing else, no whitespace. The length bound
    /// ([`Self::MAX_LEN`]) is checked before any other work. Being strict
    /// makes the spelling canonical: an accepted value formats back to the
    /// same bytes, so the digits hashed are the digits received.
    ///
    /// # Errors
    /// A [`HeaderError`] naming the first rule the value breaks.
    pub fn parse(value: &[u8]) -> Result<Self, HeaderError> {
        if value.len() > Self::MAX_LEN {
            return Err(HeaderError::TooLong { len: value.len() });
        }
        if value.is_empty() {
            return Err(HeaderError::Empty);
        }
        let mut timestamp = None;
        let mut signature = None;
        let mut rest = value;
        loop {
            // `contains` looks a word at a time (std's memchr), so the 44
            // characters of `s=` are not searched for a comma byte by byte.
            let (field, next) = if rest.contains(&b',') {
                let comma = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
                (&rest[..comma], rest.get(comma + 1..))
            } else {
                (rest, None)
            };
            let Some(eq) = field.iter().position(|&b| b == b'=') else {
                return Err(HeaderError::FieldWithoutValue);
            };
            let (name, text) = (&field[..eq], &field[eq + 1..]);
            match name {
                [b't'] if timestamp.is_some() => return Err(HeaderError::DuplicateTimestamp),
                [b't'] if signature.is_some() => return Err(HeaderError::FieldsOutOfOrder),
                [b't'] => timestamp = Some(parse_timestamp(text)?),
                [b's'] if signature.is_some() => return Err(HeaderError::DuplicateSignature),
                [b's'] => signature = Some(text),
                _ => return Err(HeaderError::UnknownField),
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
        let timestamp = timestamp.ok_or(HeaderError::MissingTimestamp)?;
        let signature = parse_signature(signature.ok_or(HeaderError::MissingSignature)?)?;
        Ok(Self::new(timestamp, signature))
    }
}

/// The digits of `t=` in a value [`SignatureHeader::parse`] accepted: it
/// starts with `t=` and the digits run to the first comma.
pub(crate) fn timestamp_digits(accepted: &[u8]) -> &[u8] {
    let end = accepted
        .iter()
        .position(|&b| b == b',')
        .unwrap_or(accepted.len());
    accepted.get(2..end).unwrap_or_default()
}

fn parse_timestamp(text: &[u8]) -> Result<u64, HeaderError> {
    match text {
        [] => return Err(HeaderError::EmptyTimestamp),
        _ if !text.iter().all(u8::is_ascii_digit) => return Err(HeaderError::TimestampNotDigits),
        [b'0', _, ..] => return Err(HeaderError::TimestampLeadingZero),
        _ => {}
    }
    let digit = |d: &u8| u64::from(d - b'0');
    // Up to 19 digits cannot overflow a `u64`; only longer ones are checked.
    if text.len() < 20 {
        return Ok(text.iter().fold(0, |n, d| n * 10 + digit(d)));
    }
    text.iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(digit(d)))
        .ok_or(HeaderError::TimestampOverflow)
}

fn parse_signature(text: &[u8]) -> Result<[u8; SignatureHeader::TAG_LEN], HeaderError> {
    if text.is_empty() {
        return Err(HeaderError::EmptySignature);
    }
    // The length is public (it is on the wire), so checking it first leaks nothing.
    if text.len() != SIGNATURE_B64_LEN {
        return Err(HeaderError::SignatureLength { len: text.len() });
    }
    let mut out = [0u8; SignatureHeader::TAG_LEN];
    match STANDARD.decode_slice(text, &mut out) {
        Ok(SignatureHeader::TAG_LEN) => Ok(out),
        // 44 characters with one `=` or two decode to 32 or 31 bytes; none
        // decode to 33 or more, so every other outcome is a wrong length.
        Ok(_)
        | Err(base64::DecodeSliceError::OutputSliceTooSmall)
        | Err(base64::DecodeSliceError::DecodeError(base64::DecodeError::InvalidLength(_))) => {
            Err(HeaderError::SignatureLength { len: text.len() })
        }
        Err(base64::DecodeSliceError::DecodeError(e)) => Err(match e {
            base64::DecodeError::InvalidByte(offset, b'-' | b'_') => {
                HeaderError::SignatureUrlSafeAlphabet { offset }
            }
            base64::DecodeError::InvalidByte(offset, b'=') => {
                HeaderError::SignaturePadding { offset }
            }
            base64::DecodeError::InvalidByte(offset, _) => HeaderError::SignatureByte { offset },
            base64::DecodeError::InvalidLastSymbol(offset, _) => {
                HeaderError::SignatureNonCanonical { offset }
            }
            base64::DecodeError::InvalidPadding | base64::DecodeError::InvalidLength(_) => {
                HeaderError::SignaturePadding {
                    offset: SIGNATURE_B64_LEN - 1,
                }
            }
        }),
    }
}

impl std::str::FromStr for SignatureHeader {
    type Err = HeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Display for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={},s={}",
            self.timestamp,
            STANDARD.encode(self.signature)
        )
    }
}

impl fmt::Debug for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The tag is public (it travels in the header), but a signature in
        // a log line invites copying it somewhere it does not belong.
        f.debug_struct("SignatureHeader")
            .field("timestamp", &self.timestamp)
            .field("signature", &"[..]")
            .finish()
    }
}

/// Signs `body` at `timestamp` with `secret`, exactly as the API does:
/// `HMAC-SHA256(secret, "<timestamp>.<body>")`.
///
/// ```
/// use ricloud_webhook::{sign, Secret};
///
/// let header = sign(&Secret::new("s3cr3t")?, 1_709_815_072, br#"{"id": "e"}"#);
/// assert!(header.to_string().starts_with("t=1709815072,s="));
/// # Ok::<(), ricloud_webhook::SecretError>(())
/// ```
pub fn sign(secret: &Secret, timestamp: u64, body: &[u8]) -> SignatureHeader {
    sign_with(&Key::new(secret), timestamp, body)
}

/// Signs with a keyed state.
pub(crate) fn sign_with(key: &Key, timestamp: u64, body: &[u8]) -> SignatureHeader {
    let signature = key.tag(timestamp, body);
    // As after a verification (see `Verifier::verify_at`); signing is not
    // on the request path, so the margin is generous.
    zeroize::zeroize_stack::<{ 16 * 1024 }>();
    SignatureHeader::new(timestamp, signature)
}

/// Why a `Ricloud-Signature` value could not be parsed.
///
/// Messages never repeat the input: it is untrusted and may be meant for a
/// log injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value is longer than [`SignatureHeader::MAX_LEN`].
    #[error(
        "signature header is {len} bytes long, more than the {} allowed",
        SignatureHeader::MAX_LEN
    )]
    TooLong {
        /// Length received, in bytes.
        len: usize,
    },
    /// The value is empty.
    #[error("signature header is empty")]
    Empty,
    /// The request carries more than one `Ricloud-Signature` header (found
    /// by the receiver, which sees all the request's headers).
    #[error("request has more than one signature header")]
    Repeated,
    /// A comma-separated field has no `=`.
    #[error("signature header has a field without `=`")]
    FieldWithoutValue,
    /// A field other than `t` or `s`.
    #[error("signature header has a field other than `t=` and `s=`")]
    UnknownField,
    /// No `t=` field.
    #[error("signature header has no `t=` field")]
    MissingTimestamp,
    /// No `s=` field.
    #[error("signature header has no `s=` field")]
    MissingSignature,
    /// `t=` appears more than once.
    #[error("signature header has `t=` more than once")]
    DuplicateTimestamp,
    /// `s=` appears more than once.
    #[error("signature header has `s=` more than once")]
    DuplicateSignature,
    /// `s=` comes before `t=`.
    #[error("signature header has `s=` before `t=`; `t=` must come first")]
    FieldsOutOfOrder,
    /// `t=` is empty.
    #[error("signature header `t=` is empty")]
    EmptyTimestamp,
    /// `t=` holds something other than decimal digits.
    #[error("signature header `t=` is not made of decimal digits only")]
    TimestampNotDigits,
    /// `t=` has a leading zero (`t=01`): not the canonical decimal.
    #[error("signature header `t=` has a leading zero")]
    TimestampLeadingZero,
    /// `t=` is larger than `u64::MAX`.
    #[error("signature header `t=` is too large for a unix timestamp")]
    TimestampOverflow,
    /// `s=` is empty.
    #[error("signature header `s=` is empty")]
    EmptySignature,
    /// `s=` is not 44 characters long, or does not decode to 32 bytes.
    #[error("signature header `s=` is {len} characters long; a padded base64 HMAC-SHA256 is 44")]
    SignatureLength {
        /// Length received, in characters.
        len: usize,
    },
    /// `s=` uses the URL-safe base64 alphabet (`-`, `_`).
    #[error("signature header `s=` uses the url-safe base64 alphabet at offset {offset}; expected the standard one")]
    SignatureUrlSafeAlphabet {
        /// Offset of the first such character within `s=`.
        offset: usize,
    },
    /// `s=` has a character outside the base64 alphabet.
    #[error(
        "signature header `s=` has a character outside the base64 alphabet at offset {offset}"
    )]
    SignatureByte {
        /// Offset of the character within `s=`.
        offset: usize,
    },
    /// `s=` has missing, misplaced or extra `=` padding.
    #[error("signature header `s=` has bad base64 padding at offset {offset}")]
    SignaturePadding {
        /// Offset of the problem within `s=`.
        offset: usize,
    },
    /// `s=` has unused low bits set in its last symbol (not canonical base64).
    #[error("signature header `s=` is not canonical base64 (unused bits set at offset {offset})")]
    SignatureNonCanonical {
        /// Offset of the symbol within `s=`.
        offset: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "67dXTYtIqCpNu0wFFlddu2iZYiszPaXpyOK81aQ0cr0=";

    fn parse(s: &str) -> Result<SignatureHeader, HeaderError> {
        SignatureHeader::parse(s.as_bytes())
    }

    #[test]
    fn parses_and_formats_back() {
        let text = format!("t=1709815072,s={S}");
        let header = parse(&text).expect("valid");
        assert_eq!(header.timestamp(), 1_709_815_072);
        assert_eq!(header.to_string(), text);
        assert_eq!(text.parse::<SignatureHeader>(), Ok(header));
        assert!(!format!("{header:?}").contains(S));
    }

    #[test]
    fn zero_and_max_timestamps() {
        assert_eq!(parse(&format!("t=0,s={S}")).map(|h| h.timestamp()), Ok(0));
        let max = format!("t={},s={S}", u64::MAX);
        assert_eq!(parse(&max).map(|h| h.timestamp()), Ok(u64::MAX));
    }

    #[test]
    fn missing_fields() {
        assert_eq!(parse(&format!("s={S}")), Err(HeaderError::MissingTimestamp));
        assert_eq!(parse("t=1709815072"), Err(HeaderError::MissingSignature));
        assert_eq!(parse(""), Err(HeaderError::Empty));
        assert_eq!(parse(","), Err(HeaderError::FieldWithoutValue));
        assert_eq!(
            parse(&format!("1709815072,{S}")),
            Err(HeaderError::FieldWithoutValue)
        );
    }

    #[test]
    fn empty_fields() {
        assert_eq!(
            parse(&format!("t=,s={S}")),
            Err(HeaderError::EmptyTimestamp)
        );
        assert_eq!(parse("t=1709815072,s="), Err(HeaderError::EmptySignature));
    }

    #[test]
    fn duplicated_fields() {
        assert_eq!(
            parse(&format!("t=1,t=1,s={S}")),
            Err(HeaderError::DuplicateTimestamp)
        );
        assert_eq!(
            parse(&format!("t=1,s={S},s={S}")),
            Err(HeaderError::DuplicateSignature)
        );
        assert_eq!(
            parse(&format!("t=1,s={S},t=1")),
            Err(HeaderError::DuplicateTimestamp)
        );
    }

    #[test]
    fn reordered_fields() {
        assert_eq!(
            parse(&format!("s={S},t=1709815072")),
            Err(HeaderError::FieldsOutOfOrder)
        );
    }

    #[test]
    fn unknown_and_decorated_fields() {
        assert_eq!(
            parse(&format!("t=1,s={S},v1=x")),
            Err(HeaderError::UnknownField)
        );
        assert_eq!(
            parse(&format!(" t=1,s={S}")),
            Err(HeaderError::UnknownField)
        );
        assert_eq!(parse(&format!("T=1,s={S}")), Err(HeaderError::UnknownField));
        assert_eq!(
            parse(&format!("t=1, s={S}")),
            Err(HeaderError::UnknownField)
        );
        assert_eq!(
            parse(&format!("t=1,s={S},")),
            Err(HeaderError::FieldWithoutValue)
        );
    }

    #[test]
    fn timestamp_must_be_plain_digits() {
        for t in [
            "-1", "+1", "1.5", "1e9", " 1", "1 ", "1x10", "١٢", "1_000", "0x1",
        ] {
            assert_eq!(
                parse(&format!("t={t},s={S}")),
                Err(HeaderError::TimestampNotDigits),
                "{t}"
            );
        }
        assert_eq!(
            parse(&format!("t=01709815072,s={S}")),
            Err(HeaderError::TimestampLeadingZero)
        );
        assert_eq!(
            parse(&format!("t=00,s={S}")),
            Err(HeaderError::TimestampLeadingZero)
        );
    }

    #[test]
    fn timestamp_overflow() {
        assert_eq!(
            parse(&format!("t=18446744073709551616,s={S}")),
            Err(HeaderError::TimestampOverflow)
        );
        assert_eq!(
            parse(&format!("t=99999999999999999999999,s={S}")),
            Err(HeaderError::TimestampOverflow)
        );
    }

    #[test]
    fn signature_base64_rules() {
        let with = |s: &str| parse(&format!("t=1,s={s}"));
        // Unpadded: 43 characters.
        assert_eq!(
            with(&S[..43]),
            Err(HeaderError::SignatureLength { len: 43 })
        );
        // Too short and too long.
        assert_eq!(with("AAAA"), Err(HeaderError::SignatureLength { len: 4 }));
        assert_eq!(
            with(&format!("{S}AAAA")),
            Err(HeaderError::SignatureLength { len: 48 })
        );
        // 44 characters without padding decode to 33 bytes: too long.
        assert_eq!(
            with(&"A".repeat(44)),
            Err(HeaderError::SignatureLength { len: 44 })
        );
        // Two `=` where one belongs: 31 bytes.
        let double = format!("{}A==", &S[..41]);
        assert_eq!(with(&double), Err(HeaderError::SignatureLength { len: 44 }));
        // Url-safe alphabet.
        let url_safe = format!("{}-{}", &S[..10], &S[11..]);
        assert_eq!(
            with(&url_safe),
            Err(HeaderError::SignatureUrlSafeAlphabet { offset: 10 })
        );
        let url_safe = format!("{}_{}", &S[..3], &S[4..]);
        assert_eq!(
            with(&url_safe),
            Err(HeaderError::SignatureUrlSafeAlphabet { offset: 3 })
        );
        // Foreign byte.
        let bad = format!("{}*{}", &S[..5], &S[6..]);
        assert_eq!(with(&bad), Err(HeaderError::SignatureByte { offset: 5 }));
        // Padding in the middle.
        let mid = format!("{}={}", &S[..20], &S[21..]);
        assert_eq!(
            with(&mid),
            Err(HeaderError::SignaturePadding { offset: 20 })
        );
        // Last symbol with unused bits set: `0=` vs `1=`.
        let noncanon = format!("{}1=", &S[..42]);
        assert_eq!(
            with(&noncanon),
            Err(HeaderError::SignatureNonCanonical { offset: 42 })
        );
    }

    #[test]
    fn length_is_checked_first() {
        let long = "x".repeat(SignatureHeader::MAX_LEN + 1);
        assert_eq!(
            parse(&long),
            Err(HeaderError::TooLong {
                len: SignatureHeader::MAX_LEN + 1
            })
        );
        // At exactly the bound the parser goes on to the fields.
        let exactly = format!("t=1,s={S}{}", ",".repeat(SignatureHeader::MAX_LEN - 50));
        assert_eq!(exactly.len(), SignatureHeader::MAX_LEN);
        assert_eq!(parse(&exactly), Err(HeaderError::FieldWithoutValue));
    }

    #[test]
    fn non_ascii_and_control_bytes() {
        assert_eq!(
            SignatureHeader::parse(b"t=1\xff,s=x"),
            Err(HeaderError::TimestampNotDigits)
        );
        assert_eq!(
            SignatureHeader::parse(b"\0t=1"),
            Err(HeaderError::UnknownField)
        );
    }

    #[test]
    fn the_digits_of_an_accepted_header_are_its_timestamp_in_decimal() {
        for t in [0, 7, 10, 1_709_815_072, u64::MAX] {
            let text = format!("t={t},s={S}");
            let header = parse(&text).expect("valid");
            assert_eq!(timestamp_digits(text.as_bytes()), t.to_string().as_bytes());
            assert_eq!(header.timestamp(), t);
        }
    }

    #[test]
    fn errors_do_not_echo_input() {
        let evil = "t=1,s=\u{1b}[31mINJECTED\u{1b}[0m";
        let message = parse(evil).expect_err("invalid").to_string();
        assert!(!message.contains("INJECTED"), "{message}");
    }
}
