//! The `Ricloud-Signature` header: strict parsing, formatting and signing.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::mac::Keyed;
use crate::Secret;

/// The name of the header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Ricloud-Signature";

/// The longest header value the parser looks at, checked before anything else.
///
/// A well-formed value is at most `t=` + 20 digits + `,s=` + 44 characters:
/// 69 bytes. Anything much longer is not from the API.
pub const MAX_HEADER_LEN: usize = 128;

/// Length of an HMAC-SHA256 tag in bytes.
pub const SIGNATURE_LEN: usize = 32;

/// Length of the base64 text of a tag, with its `=` padding.
const SIGNATURE_B64_LEN: usize = 44;

/// Length of `,s=<tag>`, the end of every valid header.
const SIGNATURE_TAIL_LEN: usize = 3 + SIGNATURE_B64_LEN;

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
    signature: [u8; SIGNATURE_LEN],
}

impl SignatureHeader {
    /// Builds a header from its parts.
    pub const fn new(timestamp: u64, signature: [u8; SIGNATURE_LEN]) -> Self {
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
    pub const fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// Parses a header value strictly.
    ///
    /// Accepted: `t=` then the timestamp in decimal digits (no sign, no
    /// leading zero, at most `u64::MAX`), a comma, `s=` then 44 characters of
    /// standard padded base64 that decode to exactly 32 bytes. Each field
    /// once, in that order, nothing else, no whitespace. The length bound
    /// ([`MAX_HEADER_LEN`]) is checked before any other work.
    ///
    /// # Errors
    /// A [`HeaderError`] naming the first rule the value breaks.
    pub fn parse(value: &[u8]) -> Result<Self, HeaderError> {
        Self::parse_with_digits(value).map(|(header, _)| header)
    }

    /// Parses like [`parse`](Self::parse), also returning the timestamp's
    /// digits as received. The parser accepts canonical decimal only, so
    /// they are exactly what the sender signed and the verifier can hash
    /// them instead of formatting the timestamp again.
    pub(crate) fn parse_with_digits(value: &[u8]) -> Result<(Self, &[u8]), HeaderError> {
        // Every delivery takes the fast path; anything it does not accept
        // goes through the field-by-field parser, which names the error.
        if let Some(parsed) = Self::parse_canonical(value) {
            return Ok(parsed);
        }
        let header = Self::parse_fields(value)?;
        // Every accepted value is `t=<digits>,s=<44 characters>`. Should
        // that ever change, the empty fallback fails closed: no tag matches.
        let digits = value
            .get(2..value.len().saturating_sub(SIGNATURE_TAIL_LEN))
            .unwrap_or_default();
        Ok((header, digits))
    }

    /// The one form the API sends, `t=<digits>,s=<44 base64 characters>`,
    /// in one pass, with the digits. Accepts exactly what
    /// [`parse_fields`](Self::parse_fields) accepts with the same result
    /// (except 20-digit timestamps, left to it); `None` for everything else.
    fn parse_canonical(value: &[u8]) -> Option<(Self, &[u8])> {
        if value.len() > MAX_HEADER_LEN {
            return None;
        }
        // The signature part has a fixed length, so no search is needed.
        let split = value.len().checked_sub(SIGNATURE_TAIL_LEN)?;
        let (head, tail) = value.split_at(split);
        let digits = head.strip_prefix(b"t=")?;
        let text = tail.strip_prefix(b",s=")?;
        let timestamp = parse_short_timestamp(digits)?;
        let signature = decode_canonical_tag(text)?;
        Some((Self::new(timestamp, signature), digits))
    }

    fn parse_fields(value: &[u8]) -> Result<Self, HeaderError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(HeaderError::TooLong { len: value.len() });
        }
        if value.is_empty() {
            return Err(HeaderError::Empty);
        }
        let mut timestamp = None;
        let mut signature = None;
        for field in value.split(|&b| b == b',') {
            let Some(eq) = field.iter().position(|&b| b == b'=') else {
                return Err(HeaderError::FieldWithoutValue);
            };
            let (name, rest) = field.split_at(eq);
            let text = &rest[1..];
            match name {
                b"t" => {
                    if timestamp.is_some() {
                        return Err(HeaderError::DuplicateTimestamp);
                    }
                    if signature.is_some() {
                        return Err(HeaderError::FieldsOutOfOrder);
                    }
                    timestamp = Some(parse_timestamp(text)?);
                }
                b"s" => {
                    if signature.is_some() {
                        return Err(HeaderError::DuplicateSignature);
                    }
                    signature = Some(text);
                }
                _ => return Err(HeaderError::UnknownField),
            }
        }
        let timestamp = timestamp.ok_or(HeaderError::MissingTimestamp)?;
        let signature = parse_signature(signature.ok_or(HeaderError::MissingSignature)?)?;
        Ok(Self::new(timestamp, signature))
    }
}

fn parse_timestamp(text: &[u8]) -> Result<u64, HeaderError> {
    match text {
        [] => return Err(HeaderError::EmptyTimestamp),
        [b'0', _, ..] => return Err(HeaderError::TimestampLeadingZero),
        _ => {}
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return Err(HeaderError::TimestampNotDigits);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(HeaderError::TimestampOverflow)?;
    }
    Ok(value)
}

/// `10^i` for every `i` a 19-digit number needs.
const POWERS_OF_TEN: [u64; 19] = {
    let mut powers = [1u64; 19];
    let mut i = 1;
    while i < powers.len() {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// Canonical decimal digits of at most 19 digits (which cannot overflow a
/// `u64`): each digit is scaled by its power of ten independently, with no
/// multiply carried from one digit to the next. `None` for anything else,
/// 20-digit values included; [`parse_timestamp`] then decides.
fn parse_short_timestamp(digits: &[u8]) -> Option<u64> {
    match digits {
        [] | [b'0', _, ..] => return None,
        _ if digits.len() > POWERS_OF_TEN.len() => return None,
        _ => {}
    }
    let mut value = 0u64;
    let mut not_digit = false;
    for (&b, power) in digits.iter().rev().zip(POWERS_OF_TEN) {
        let d = b.wrapping_sub(b'0');
        not_digit |= d > 9;
        // Wrapping: with a non-digit the value is meaningless and dropped.
        value = value.wrapping_add(u64::from(d).wrapping_mul(power));
    }
    (!not_digit).then_some(value)
}

/// Marks a byte outside the alphabet in [`SHIFTED`].
const OUTSIDE: u32 = 1 << 31;

/// The standard base64 alphabet's values, pre-shifted for each place of a
/// four-symbol group (`SHIFTED[k][byte]` is the value shifted left by
/// `18 - 6k`), so a group decodes to its 24 bits by four lookups and three
/// ORs. Every other byte has [`OUTSIDE`] set, which survives the ORs.
static SHIFTED: [[u32; 256]; 4] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut tables = [[OUTSIDE; 256]; 4];
    let mut place = 0;
    while place < 4 {
        let mut i = 0;
        while i < alphabet.len() {
            tables[place][alphabet[i] as usize] = (i as u32) << (18 - 6 * place);
            i += 1;
        }
        place += 1;
    }
    tables
};

/// Decodes a tag in the only form that is valid: 43 symbols of the
/// standard alphabet, the last with its two unused bits clear, then one
/// `=`. `None` for anything else; [`parse_signature`] then says what is
/// wrong. Straight-line work over a public value: the tag on the wire is
/// not a secret, so this need not be constant-time.
///
/// This replaces the general base64 decoder on the request path, where it
/// cost about two thirds of header parsing; the pre-shifted tables cut
/// another fifth (see `benches/verify.rs`).
fn decode_canonical_tag(text: &[u8]) -> Option<[u8; SIGNATURE_LEN]> {
    let text: &[u8; SIGNATURE_B64_LEN] = text.try_into().ok()?;
    if text[SIGNATURE_B64_LEN - 1] != b'=' {
        return None;
    }
    let bits = |place: usize, i: usize| SHIFTED[place][usize::from(text[i])];
    let mut out = [0u8; SIGNATURE_LEN];
    let mut outside = 0u32;
    // Fixed-size indexing: no bounds checks, no iterator set-up.
    for group in 0..10 {
        let i = 4 * group;
        let n = bits(0, i) | bits(1, i + 1) | bits(2, i + 2) | bits(3, i + 3);
        outside |= n;
        let [_, x, y, z] = n.to_be_bytes();
        out[3 * group] = x;
        out[3 * group + 1] = y;
        out[3 * group + 2] = z;
    }
    // Three symbols, 18 bits: the last 16 bits of the tag and 2 unused
    // bits (bits 6 and 7 here) that must be 0.
    let n = bits(0, 40) | bits(1, 41) | bits(2, 42);
    outside |= n;
    let [_, x, y, _] = n.to_be_bytes();
    out[30] = x;
    out[31] = y;
    (outside & OUTSIDE == 0 && n & 0xC0 == 0).then_some(out)
}

fn parse_signature(text: &[u8]) -> Result<[u8; SIGNATURE_LEN], HeaderError> {
    if text.is_empty() {
        return Err(HeaderError::EmptySignature);
    }
    // The length is public (it is on the wire), so checking it first leaks nothing.
    if text.len() != SIGNATURE_B64_LEN {
        return Err(HeaderError::SignatureLength { len: text.len() });
    }
    let mut out = [0u8; SIGNATURE_LEN];
    match STANDARD.decode_slice(text, &mut out) {
        Ok(SIGNATURE_LEN) => Ok(out),
        Ok(_) => Err(HeaderError::SignatureLength { len: text.len() }),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
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
            base64::DecodeError::InvalidPadding => HeaderError::SignaturePadding {
                offset: SIGNATURE_B64_LEN - 1,
            },
            base64::DecodeError::InvalidLastSymbol(offset, _) => {
                HeaderError::SignatureNonCanonical { offset }
            }
            base64::DecodeError::InvalidLength(_) => {
                HeaderError::SignatureLength { len: text.len() }
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
        let mut b64 = [0u8; SIGNATURE_B64_LEN];
        let n = STANDARD
            .encode_slice(self.signature, &mut b64)
            .map_err(|_| fmt::Error)?;
        let b64 = std::str::from_utf8(&b64[..n]).map_err(|_| fmt::Error)?;
        write!(f, "t={},s={b64}", self.timestamp)
    }
}

impl fmt::Debug for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The tag here is the one received on the wire, never an expected one.
        f.debug_tuple("SignatureHeader")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// Signs `body` at `timestamp` exactly as the ricloud API and ricloud-py do:
/// `base64(HMAC-SHA256(secret, "<timestamp>.<body>"))`.
///
/// ```
/// use ricloud_webhook::{sign, Secret};
///
/// let secret = Secret::new("s3cr3t with spaces & ünïcode")?;
/// let body = br#"{"id": "2abc5619-25ab-489b-967e-4d928a831817"}"#;
/// let header = sign(&secret, 1_709_815_072, body);
/// assert!(header.to_string().starts_with("t=1709815072,s="));
/// # Ok::<(), ricloud_webhook::SecretError>(())
/// ```
pub fn sign(secret: &Secret, timestamp: u64, body: &[u8]) -> SignatureHeader {
    sign_with(&keyed(secret), timestamp, body)
}

/// HMAC-SHA256 keyed with `secret`, once per secret.
pub(crate) fn keyed(secret: &Secret) -> Keyed {
    Keyed::new(secret.expose())
}

/// The tag of `"<timestamp>.<body>"` under an already keyed state.
pub(crate) fn tag(keyed: &Keyed, timestamp: u64, body: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut digits = [0u8; 20];
    tag_with_digits(keyed, decimal(timestamp, &mut digits), &[body])
}

/// The tag of `"<digits>.<body>"` under an already keyed state, `digits`
/// being a timestamp in canonical decimal and the body given in chunks.
pub(crate) fn tag_with_digits<B: AsRef<[u8]>>(
    keyed: &Keyed,
    digits: &[u8],
    body: &[B],
) -> [u8; SIGNATURE_LEN] {
    // `<digits>.` as one piece: each piece has a fixed cost that shows at
    // small bodies, and a timestamp has at most 20 digits.
    let mut prefix = [0u8; 21];
    match prefix.get_mut(..=digits.len()) {
        Some(buf) => {
            buf[..digits.len()].copy_from_slice(digits);
            buf[digits.len()] = b'.';
            keyed.tag(&[buf], body)
        }
        None => keyed.tag(&[digits, b"."], body),
    }
}

pub(crate) fn sign_with(keyed: &Keyed, timestamp: u64, body: &[u8]) -> SignatureHeader {
    SignatureHeader::new(timestamp, tag(keyed, timestamp, body))
}

/// Writes `n` in decimal into `buf` without allocating; returns the digits.
/// Only signing uses it: verification hashes the digits as received.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Why a `Ricloud-Signature` value could not be parsed.
///
/// Messages never repeat the input: it is untrusted and may be meant for a
/// log injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value is longer than [`MAX_HEADER_LEN`].
    TooLong {
        /// Length received, in bytes.
        len: usize,
    },
    /// The value is empty.
    Empty,
    /// The request carries more than one `Ricloud-Signature` header.
    Repeated,
    /// A comma-separated field has no `=`.
    FieldWithoutValue,
    /// A field other than `t` or `s`.
    UnknownField,
    /// No `t=` field.
    MissingTimestamp,
    /// No `s=` field.
    MissingSignature,
    /// `t=` appears more than once.
    DuplicateTimestamp,
    /// `s=` appears more than once.
    DuplicateSignature,
    /// `s=` comes before `t=`.
    FieldsOutOfOrder,
    /// `t=` has no digits.
    EmptyTimestamp,
    /// `t=` holds something other than ASCII digits.
    TimestampNotDigits,
    /// `t=` starts with a zero and has more digits.
    TimestampLeadingZero,
    /// `t=` is larger than `u64::MAX`.
    TimestampOverflow,
    /// `s=` is empty.
    EmptySignature,
    /// `s=` is not 44 characters long (32 bytes in padded base64).
    SignatureLength {
        /// Length received, in characters.
        len: usize,
    },
    /// `s=` uses the URL-safe base64 alphabet (`-`, `_`).
    SignatureUrlSafeAlphabet {
        /// Offset of the first such character within `s=`.
        offset: usize,
    },
    /// `s=` has a character outside the base64 alphabet.
    SignatureByte {
        /// Offset of the character within `s=`.
        offset: usize,
    },
    /// `s=` has missing, misplaced or extra `=` padding.
    SignaturePadding {
        /// Offset of the problem within `s=`.
        offset: usize,
    },
    /// `s=` has unused low bits set in its last symbol (not canonical base64).
    SignatureNonCanonical {
        /// Offset of the symbol within `s=`.
        offset: usize,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => write!(
                f,
                "signature header is {len} bytes long, more than the {MAX_HEADER_LEN} allowed"
            ),
            Self::Empty => f.write_str("signature header is empty"),
            Self::Repeated => f.write_str("request has more than one signature header"),
            Self::FieldWithoutValue => f.write_str("signature header has a field without `=`"),
            Self::UnknownField => {
                f.write_str("signature header has a field other than `t=` and `s=`")
            }
            Self::MissingTimestamp => f.write_str("signature header has no `t=` field"),
            Self::MissingSignature => f.write_str("signature header has no `s=` field"),
            Self::DuplicateTimestamp => f.write_str("signature header has `t=` more than once"),
            Self::DuplicateSignature => f.write_str("signature header has `s=` more than once"),
            Self::FieldsOutOfOrder => {
                f.write_str("signature header has `s=` before `t=`; `t=` must come first")
            }
            Self::EmptyTimestamp => f.write_str("signature header `t=` is empty"),
            Self::TimestampNotDigits => {
                f.write_str("signature header `t=` is not made of decimal digits only")
            }
            Self::TimestampLeadingZero => {
                f.write_str("signature header `t=` has a leading zero")
            }
            Self::TimestampOverflow => {
                f.write_str("signature header `t=` is too large for a unix timestamp")
            }
            Self::EmptySignature => f.write_str("signature header `s=` is empty"),
            Self::SignatureLength { len } => write!(
                f,
                "signature header `s=` is {len} characters long; a padded base64 HMAC-SHA256 is 44"
            ),
            Self::SignatureUrlSafeAlphabet { offset } => write!(
                f,
                "signature header `s=` uses the url-safe base64 alphabet at offset {offset}; expected the standard one"
            ),
            Self::SignatureByte { offset } => write!(
                f,
                "signature header `s=` has a character outside the base64 alphabet at offset {offset}"
            ),
            Self::SignaturePadding { offset } => write!(
                f,
                "signature header `s=` has bad base64 padding at offset {offset}"
            ),
            Self::SignatureNonCanonical { offset } => write!(
                f,
                "signature header `s=` is not canonical base64 (unused bits set at offset {offset})"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

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
        for t in ["-1", "+1", "1.5", "1e9", " 1", "1 ", "1x10", "١٢", "1_000"] {
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
        // 48 characters decoding to 36 bytes would be valid base64, wrong length.
        assert_eq!(
            with(&"A".repeat(48)),
            Err(HeaderError::SignatureLength { len: 48 })
        );
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
        // Padding in the middle, and two `=` where one belongs.
        let mid = format!("{}={}", &S[..20], &S[21..]);
        assert!(matches!(
            with(&mid),
            Err(HeaderError::SignaturePadding { .. })
        ));
        let double = format!("{}==", &S[..42]);
        assert!(matches!(
            with(&double),
            Err(HeaderError::SignaturePadding { .. }
                | HeaderError::SignatureNonCanonical { .. }
                | HeaderError::SignatureLength { .. })
        ));
        // Last symbol with unused bits set: `0=` vs `1=`.
        let noncanon = format!("{}1=", &S[..42]);
        assert_eq!(
            with(&noncanon),
            Err(HeaderError::SignatureNonCanonical { offset: 42 })
        );
    }

    #[test]
    fn length_is_checked_first() {
        let long = "x".repeat(MAX_HEADER_LEN + 1);
        assert_eq!(
            parse(&long),
            Err(HeaderError::TooLong {
                len: MAX_HEADER_LEN + 1
            })
        );
        // At exactly the bound the parser goes on to the fields.
        let exactly = format!("t=1,s={S}{}", ",".repeat(MAX_HEADER_LEN - 50));
        assert_eq!(exactly.len(), MAX_HEADER_LEN);
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
    fn errors_do_not_echo_input() {
        let evil = "t=1,s=\u{1b}[31mINJECTED\u{1b}[0m";
        let message = parse(evil).expect_err("invalid").to_string();
        assert!(!message.contains("INJECTED"), "{message}");
    }

    #[test]
    fn fast_decoder_agrees_with_base64() {
        let check = |text: &[u8]| {
            assert_eq!(
                decode_canonical_tag(text),
                parse_signature(text).ok(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        };
        let mut tags: Vec<[u8; SIGNATURE_LEN]> = vec![[0; 32], [0xFF; 32]];
        tags.extend((0u8..16).map(|i| std::array::from_fn(|j| i.wrapping_mul(31) ^ j as u8)));
        for tag in tags {
            let mut text = [0u8; SIGNATURE_B64_LEN];
            let n = STANDARD.encode_slice(tag, &mut text).expect("44 bytes");
            assert_eq!(n, SIGNATURE_B64_LEN);
            assert_eq!(decode_canonical_tag(&text), Some(tag));
            // Every byte value at every position.
            for i in 0..SIGNATURE_B64_LEN {
                for b in 0..=255u8 {
                    let mut changed = text;
                    changed[i] = b;
                    check(&changed);
                }
            }
            check(&text[..43]);
            check(&[&text[..], b"A"].concat());
            check(&[&text[..42], b"=="].concat());
        }
    }

    #[test]
    fn received_digits_are_the_canonical_decimal() {
        for t in [0, 7, 10, 1_709_815_072, 9_999_999_999_999_999_999, u64::MAX] {
            let text = format!("t={t},s={S}");
            let (header, digits) =
                SignatureHeader::parse_with_digits(text.as_bytes()).expect("valid");
            assert_eq!(header.timestamp(), t);
            let mut buf = [0u8; 20];
            assert_eq!(digits, decimal(t, &mut buf));
        }
        assert!(SignatureHeader::parse_with_digits(b"t=01,s=x").is_err());
    }

    #[test]
    fn fast_path_agrees_with_field_parser() {
        let cases = [
            format!("t=1709815072,s={S}"),
            format!("t=0,s={S}"),
            format!("t=18446744073709551615,s={S}"),
            format!("t=18446744073709551616,s={S}"),
            format!("t=01,s={S}"),
            format!("t=,s={S}"),
            format!("t=1,s={S},"),
            format!("t=1,s={S},s={S}"),
            format!("t=1,t=2,s={S}"),
            format!("t==1,s={S}"),
            format!("t=1,s=={S}"),
            format!("t=1,,s={S}"),
            format!("s={S},t=1"),
            format!("t=1;s={S}"),
            "t=1,s=".to_owned(),
            "t=1".to_owned(),
            "t=1,".to_owned(),
            String::new(),
        ];
        for case in cases {
            let fields = SignatureHeader::parse_fields(case.as_bytes());
            assert_eq!(SignatureHeader::parse(case.as_bytes()), fields, "{case}");
            if let Some((fast, _)) = SignatureHeader::parse_canonical(case.as_bytes()) {
                assert_eq!(Ok(fast), fields, "{case}");
            } else {
                // Only 20-digit timestamps are valid yet left to the slow path.
                assert!(fields.is_err() || case.starts_with("t=18446744073709551615,"));
            }
        }
    }

    #[test]
    fn decimal_matches_std() {
        let mut cases = vec![0, 1, 9, 10, 99, 100, 101, 999, 1_709_815_072, u64::MAX];
        cases.extend((0..64).map(|shift| (1u64 << shift) - 1));
        cases.extend((0..20).map(|e| 10u64.saturating_pow(e)));
        for n in cases {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn short_timestamps_agree_with_the_full_parser() {
        let mut cases: Vec<String> = [
            "",
            "0",
            "00",
            "01",
            "7",
            "1709815072",
            "9999999999999999999",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        cases.extend((0..20).map(|e| 10u64.pow(e.min(19)).to_string()));
        cases.push(u64::MAX.to_string());
        cases.push("18446744073709551616".to_owned());
        for base in ["1709815072", "1"] {
            for i in 0..base.len() {
                for b in 0..=255u8 {
                    let mut bytes = base.as_bytes().to_vec();
                    bytes[i] = b;
                    cases.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        for case in cases {
            let full = parse_timestamp(case.as_bytes()).ok();
            match parse_short_timestamp(case.as_bytes()) {
                Some(v) => assert_eq!(Some(v), full, "{case:?}"),
                // Only the 20-digit values are left to the full parser.
                None => assert!(full.is_none() || case.len() == 20, "{case:?}"),
            }
        }
    }
}
