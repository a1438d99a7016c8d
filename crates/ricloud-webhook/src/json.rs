//! A strict one-pass reader of the event envelope.
//!
//! It reads what [`Event::from_json`](crate::Event::from_json) needs (the
//! envelope's fields, and where `data` starts and ends) and checks the rest
//! of the body is well-formed JSON (RFC 8259: UTF-8, no trailing commas, no
//! comments, nesting at most [`MAX_DEPTH`]) without building anything for it.
//! `data` is parsed later, by the view a handler asks for, with the same
//! reader's scanning under a serde deserializer (`from_str`, in `de.rs`).
//!
//! serde_json's derive does the same work through a generic visitor,
//! skipping `data` about a byte at a time; this reader skips strings and
//! indentation eight bytes at a time (BENCHMARKS.md has the figures). It
//! agrees with serde_json on every input it accepts, and accepts every
//! object serde_json reads but for invalid UTF-8 and nesting beyond
//! [`MAX_DEPTH`] (the `event` fuzz target and `tests/event_parsing.rs`
//! check both directions).

use std::borrow::Cow;
use std::ops::Range;

mod de;

pub(crate) use de::from_str;

/// Deepest nesting of arrays and objects accepted, the envelope included
/// (serde_json's own limit is 128).
pub(crate) const MAX_DEPTH: u32 = 128;

/// The envelope's fields, borrowed from the body where no escape was used.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub(crate) id: Option<Cow<'a, str>>,
    pub(crate) resource: Option<Cow<'a, str>>,
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) action: Option<Cow<'a, str>>,
    pub(crate) state: Option<Cow<'a, str>>,
    pub(crate) retries: Option<u64>,
    pub(crate) date_created: Option<Cow<'a, str>>,
    pub(crate) date_delivered: Option<Cow<'a, str>>,
    /// Byte range of `data`'s JSON text; `None` when absent or `null`.
    pub(crate) data: Option<Range<usize>>,
    /// Which known fields were read (bit per field), to refuse repeats.
    seen: u16,
}

/// Why the body is not an envelope, with the byte offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not well-formed JSON (or not UTF-8, or nested too deeply).
    Syntax(usize),
    /// The body ends inside the JSON.
    Eof,
    /// Well-formed so far, but not an event object: a field of the wrong
    /// type, a repeated field, a missing required field.
    Shape(usize),
}

type Result<T> = std::result::Result<T, JsonError>;

/// Reads the envelope of `body`.
pub(crate) fn envelope(body: &[u8]) -> Result<Envelope<'_>> {
    // UTF-8 throughout, checked once: strings are then cut from the text.
    let text = std::str::from_utf8(body).map_err(|e| JsonError::Syntax(e.valid_up_to()))?;
    let mut r = Reader { text, pos: 0 };
    r.ws();
    if r.peek()? != b'{' {
        // A well-formed value that is not an object is the wrong shape.
        let at = r.pos;
        r.skip_value(0)?;
        return Err(JsonError::Shape(at));
    }
    r.pos += 1;
    let mut env = Envelope::default();
    r.ws();
    if r.peek()? == b'}' {
        r.pos += 1;
    } else {
        loop {
            r.ws();
            if r.peek()? != b'"' {
                return Err(JsonError::Syntax(r.pos));
            }
            let key = r.key_name()?;
            r.ws();
            r.expect(b':')?;
            r.ws();
            r.member(&key, &mut env)?;
            r.ws();
            match r.peek()? {
                b',' => r.pos += 1,
                b'}' => {
                    r.pos += 1;
                    break;
                }
                _ => return Err(JsonError::Syntax(r.pos)),
            }
        }
    }
    if env.id.is_none() || env.kind.is_none() || env.action.is_none() {
        return Err(JsonError::Shape(r.pos));
    }
    r.ws();
    if r.pos != r.bytes().len() {
        return Err(JsonError::Syntax(r.pos));
    }
    Ok(env)
}

/// The reader over a body already checked to be UTF-8.
struct Reader<'a> {
    /// The body as text (checked to be UTF-8 once, up front).
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline(always)]
    fn peek(&self) -> Result<u8> {
        self.bytes().get(self.pos).copied().ok_or(JsonError::Eof)
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(JsonError::Syntax(self.pos))
        }
    }

    /// The byte at the reader, or 0 past the end: a byte that no JSON text
    /// has outside a string, so the end stops every token as a wrong byte
    /// would, and [`fail`](Self::fail) tells the two apart.
    #[inline(always)]
    fn at(&self) -> u8 {
        self.bytes().get(self.pos).copied().unwrap_or(0)
    }

    /// The error for the byte at the reader: [`JsonError::Eof`] past the
    /// end, else [`JsonError::Syntax`] at it.
    #[cold]
    fn fail(&self) -> JsonError {
        if self.pos >= self.bytes().len() {
            JsonError::Eof
        } else {
            JsonError::Syntax(self.pos)
        }
    }

    /// Skips whitespace and returns the byte after it (0 at the end). No
    /// whitespace, the usual case between tokens, costs one comparison.
    #[inline(always)]
    fn ws(&mut self) -> u8 {
        let next = self.at();
        if next > b' ' {
            return next;
        }
        // Then the one space after a colon of pretty-printed JSON.
        if next == b' ' {
            let after = self.bytes().get(self.pos + 1).copied().unwrap_or(0);
            if after > b' ' {
                self.pos += 1;
                return after;
            }
        }
        self.ws_run(next)
    }

    fn ws_run(&mut self, mut next: u8) -> u8 {
        const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
        while let b' ' | b'\n' | b'\r' | b'\t' = next {
            self.pos += 1;
            // Then a run of spaces (indentation), up to eight at a time: the
            // first non-space byte is the lowest non-zero byte of the xor.
            while let Some(word) = self.word() {
                let other = word ^ SPACES;
                if other != 0 {
                    self.pos += (other.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            next = self.at();
        }
        next
    }

    /// The next eight bytes as a little-endian word, if there are eight.
    #[inline(always)]
    fn word(&self) -> Option<u64> {
        let chunk = self.bytes().get(self.pos..self.pos + 8)?;
        <[u8; 8]>::try_from(chunk).ok().map(u64::from_le_bytes)
    }

    /// The text of `range`, known to be UTF-8 (checked for the whole body).
    fn str_at(&self, start: usize, end: usize) -> Result<&'a str> {
        // A cut at a byte that is not a character boundary is `None`: the
        // reader only cuts before and after ASCII bytes, so it never is.
        self.text.get(start..end).ok_or(JsonError::Syntax(start))
    }

    /// One member of the envelope object, the reader at its value.
    fn member(&mut self, key: &[u8], env: &mut Envelope<'a>) -> Result<()> {
        let at = self.pos;
        // The text fields: which bit marks them read, where they go, and
        // whether `null` is refused (the three that name the event).
        let (bit, slot, required) = match key {
            b"id" => (0, &mut env.id, true),
            b"type" => (1, &mut env.kind, true),
            b"action" => (2, &mut env.action, true),
            b"resource" => (3, &mut env.resource, false),
            b"state" => (4, &mut env.state, false),
            b"date_created" => (5, &mut env.date_created, false),
            b"date_delivered" => (6, &mut env.date_delivered, false),
            b"retries" => {
                first(&mut env.seen, 7, at)?;
                env.retries = self.optional(Self::unsigned)?;
                return Ok(());
            }
            b"data" => {
                first(&mut env.seen, 8, at)?;
                env.data = self.optional(|r| {
                    let start = r.pos;
                    r.skip_value(1)?;
                    Ok(Some(start..r.pos))
                })?;
                return Ok(());
            }
            _ => return self.skip_value(1),
        };
        first(&mut env.seen, bit, at)?;
        *slot = self.text(required)?;
        Ok(())
    }

    /// An envelope key, the reader at its opening quote: its bytes, decoded
    /// only if it has an escape.
    fn key_name(&mut self) -> Result<Cow<'a, [u8]>> {
        let start = self.pos + 1;
        self.pos = start;
        self.scan_plain();
        if self.peek()? == b'"' {
            let plain = self.bytes().get(start..self.pos).unwrap_or_default();
            self.pos += 1;
            return Ok(Cow::Borrowed(plain));
        }
        self.pos = start - 1;
        Ok(Cow::Owned(self.string()?.into_owned().into_bytes()))
    }

    /// A string field, the reader at its value; `null` is `None` unless
    /// the field is `required` (then it is the wrong shape, as for serde).
    fn text(&mut self, required: bool) -> Result<Option<Cow<'a, str>>> {
        let at = self.pos;
        if required && self.peek()? == b'n' {
            return Err(JsonError::Shape(at));
        }
        self.optional(|r| {
            if r.peek()? == b'"' {
                r.string().map(Some)
            } else {
                Err(JsonError::Shape(r.pos))
            }
        })
    }

    /// `null` as `None`, anything else read by `read` (which may refuse it).
    fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Ok(None)
        } else {
            read(self)
        }
    }

    /// A number that must be a non-negative integer fitting `u64`. `-0` is
    /// refused too: serde_json reads it as the float `-0.0`.
    fn unsigned(&mut self) -> Result<Option<u64>> {
        let at = self.pos;
        match self.peek()? {
            b'-' | b'0'..=b'9' => {}
            _ => return Err(JsonError::Shape(at)),
        }
        let negative = self.peek()? == b'-';
        let integer = self.number()?;
        if negative || !integer {
            return Err(JsonError::Shape(at));
        }
        self.str_at(at, self.pos)?
            .parse::<u64>()
            .map(Some)
            .map_err(|_| JsonError::Shape(at))
    }

    /// Skips one number; true when it has no fraction and no exponent.
    #[inline(always)]
    fn number(&mut self) -> Result<bool> {
        let mut integer = true;
        if self.at() == b'-' {
            self.pos += 1;
        }
        match self.at() {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return Err(self.fail()),
        }
        if self.at() == b'.' {
            self.pos += 1;
            integer = false;
            self.at_least_one_digit()?;
        }
        if let b'e' | b'E' = self.at() {
            self.pos += 1;
            integer = false;
            if let b'+' | b'-' = self.at() {
                self.pos += 1;
            }
            self.at_least_one_digit()?;
        }
        Ok(integer)
    }

    #[inline(always)]
    fn digits(&mut self) {
        while self.at().is_ascii_digit() {
            self.pos += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Result<()> {
        if !self.at().is_ascii_digit() {
            return Err(self.fail());
        }
        self.digits();
        Ok(())
    }

    /// `true`, `false` or `null`, compared whole; the byte loop only finds
    /// where a wrong one goes wrong.
    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            return Ok(());
        }
        for &expected in word {
            if self.at() != expected {
                return Err(self.fail());
            }
            self.pos += 1;
        }
        Ok(())
    }

    /// Skips one value of any kind, checking it; `depth` is the nesting of
    /// the container it is in (0 for a value at the top).
    fn skip_value(&mut self, depth: u32) -> Result<()> {
        // Bit i of `objects` tells whether container i (counted from the
        // outermost one of this value) is an object; `open` counts them,
        // and `object` is the innermost one's bit, read from the set only
        // when a container closes (a shift of the 128-bit set per element
        // cost more than the rest of the element's bookkeeping).
        // No recursion and no allocation, whatever the input.
        let mut objects: u128 = 0;
        let mut open: u32 = 0;
        let mut object = false;
        let innermost = |objects: u128, open: u32| open > 0 && (objects >> (open - 1)) & 1 == 1;
        'value: loop {
            match self.ws() {
                c @ (b'{' | b'[') => {
                    if depth + open >= MAX_DEPTH {
                        return Err(JsonError::Syntax(self.pos));
                    }
                    self.pos += 1;
                    object = c == b'{';
                    if object {
                        objects |= 1 << open;
                    } else {
                        objects &= !(1 << open);
                    }
                    open += 1;
                    let next = self.ws();
                    // `}` and `]` are two code points after `{` and `[`.
                    if next == c + 2 {
                        self.pos += 1;
                        open -= 1;
                        object = innermost(objects, open);
                    } else {
                        if object {
                            self.key(next)?;
                        }
                        continue 'value;
                    }
                }
                b'"' => self.skip_string()?,
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(self.fail()),
            }
            // After a value: close containers, or go on to the next element.
            loop {
                if open == 0 {
                    return Ok(());
                }
                match (self.ws(), object) {
                    (b',', true) => {
                        self.pos += 1;
                        let next = self.ws();
                        self.key(next)?;
                        continue 'value;
                    }
                    (b',', false) => {
                        self.pos += 1;
                        continue 'value;
                    }
                    (b'}', true) | (b']', false) => {
                        self.pos += 1;
                        open -= 1;
                        object = innermost(objects, open);
                    }
                    _ => return Err(self.fail()),
                }
            }
        }
    }

    /// An object key and its colon, the reader at the key, whose first
    /// byte is `first`.
    #[inline(always)]
    fn key(&mut self, first: u8) -> Result<()> {
        if first != b'"' {
            return Err(self.fail());
        }
        self.skip_string()?;
        if self.ws() != b':' {
            return Err(self.fail());
        }
        self.pos += 1;
        Ok(())
    }

    /// Moves past the string's plain characters to the next `"`, `\` or
    /// control character, eight bytes at a time.
    #[inline(always)]
    fn scan_plain(&mut self) {
        const fn each(byte: u8) -> u64 {
            u64::from_le_bytes([byte; 8])
        }
        while let Some(word) = self.word() {
            // A set high bit for each byte below 0x20, `"` or `\`, with the
            // classic test for bytes below `n`: `(v - n) & !v`, bytes of
            // 0x80 and above never setting it. Flipping bit 1 turns `"`
            // (0x22) into 0x20 and keeps the bytes below 0x20 below it, so
            // one test on `word ^ 0x02` finds both, and a second one on
            // `word ^ '\\'` (below 1: zero) finds backslashes. A borrow can
            // also set the bit of a later byte, never of an earlier one: the
            // lowest set bit is exactly the first special byte (the word is
            // little-endian).
            let quote_or_control = word ^ each(0x02);
            let backslash = word ^ each(b'\\');
            let special = (quote_or_control.wrapping_sub(each(0x21)) & !quote_or_control
                | backslash.wrapping_sub(each(0x01)) & !backslash)
                & each(0x80);
            if special != 0 {
                self.pos += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.pos += 8;
        }
        while let Some(&b) = self.bytes().get(self.pos) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return;
            }
            self.pos += 1;
        }
    }

    /// Skips a string, the reader at its opening quote. Any `\u` escape is
    /// accepted, as the JSON grammar does (and serde_json when skipping).
    #[inline(always)]
    fn skip_string(&mut self) -> Result<()> {
        self.pos += 1;
        loop {
            self.scan_plain();
            match self.at() {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape()?;
                }
                _ => return Err(self.fail()),
            }
        }
    }

    /// Checks one escape after its backslash and returns the code unit it
    /// stands for (a UTF-16 unit for `\u`).
    fn escape(&mut self) -> Result<u32> {
        let unit = match self.peek()? {
            b'"' => u32::from(b'"'),
            b'\\' => u32::from(b'\\'),
            b'/' => u32::from(b'/'),
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => u32::from(b'\n'),
            b'r' => u32::from(b'\r'),
            b't' => u32::from(b'\t'),
            b'u' => {
                self.pos += 1;
                let mut unit = 0;
                for _ in 0..4 {
                    let digit = char::from(self.peek()?)
                        .to_digit(16)
                        .ok_or(JsonError::Syntax(self.pos))?;
                    unit = unit * 16 + digit;
                    self.pos += 1;
                }
                return Ok(unit);
            }
            _ => return Err(JsonError::Syntax(self.pos)),
        };
        self.pos += 1;
        Ok(unit)
    }

    /// Reads a string, the reader at its opening quote: borrowed when it has
    /// no escape, decoded otherwise. A `\u` escape must make a whole
    /// character: a lone surrogate is refused, as serde_json does for a
    /// string it decodes.
    fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        self.scan_plain();
        if self.peek()? == b'"' {
            let plain = self.str_at(start, self.pos)?;
            self.pos += 1;
            return Ok(Cow::Borrowed(plain));
        }
        let mut out = String::from(self.str_at(start, self.pos)?);
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    let at = self.pos;
                    self.pos += 1;
                    let unit = self.escape()?;
                    let code = match unit {
                        0xD800..=0xDBFF => {
                            // A high surrogate needs a low one right after.
                            if self.bytes().get(self.pos..self.pos + 2) != Some(b"\\u") {
                                return Err(JsonError::Syntax(at));
                            }
                            self.pos += 1;
                            let low = self.escape()?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return Err(JsonError::Syntax(at));
                            }
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => return Err(JsonError::Syntax(at)),
                        other => other,
                    };
                    out.push(char::from_u32(code).ok_or(JsonError::Syntax(at))?);
                }
                _ => return Err(JsonError::Syntax(self.pos)),
            }
            let from = self.pos;
            self.scan_plain();
            out.push_str(self.str_at(from, self.pos)?);
        }
    }
}

/// Marks field `index` as read; a repeated field is refused, as serde's
/// derive does, even when its first value was null: two values leave the
/// event ambiguous.
fn first(seen: &mut u16, index: u8, at: usize) -> Result<()> {
    let bit = 1 << index;
    if *seen & bit != 0 {
        return Err(JsonError::Shape(at));
    }
    *seen |= bit;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_data(data: &str) -> Vec<u8> {
        format!(r#"{{"id":"e","type":"t","action":"a","data":{data}}}"#).into_bytes()
    }

    #[test]
    fn special_bytes_are_found_at_every_offset() {
        // A quote, backslash or control byte at each position of an
        // eight-byte word, after each length of plain prefix.
        for prefix in 0..20 {
            // The neighbours of `"` (`!`, `#`) and of the control bytes
            // (space) are plain and must not stop the scan.
            for special in [
                "\"", "\\n", "\t", "\u{0}", "\u{1}", "\u{1f}", " ", "!", "#", "\u{7f}",
            ] {
                let plain = "é".repeat(prefix / 2) + &"x".repeat(prefix % 2);
                let text = format!(r#""{plain}{special}z""#);
                let body = with_data(&text);
                let read = envelope(&body);
                let serde = serde_json::from_str::<serde::de::IgnoredAny>(&text);
                assert_eq!(read.is_ok(), serde.is_ok(), "{text:?}");
                if let Ok(env) = read {
                    assert_eq!(
                        body.get(env.data.unwrap_or_default()),
                        Some(text.as_bytes())
                    );
                }
            }
        }
    }

    #[test]
    fn bytes_from_0x80_up_are_plain() {
        let text = "\"\u{80}\u{a0}\u{ff}\u{7ff}\u{ffff}\u{10ffff}é\"";
        let body = with_data(text);
        let env = envelope(&body).expect("envelope");
        assert_eq!(env.data.map(|r| &body[r]), Some(text.as_bytes()));
    }

    #[test]
    fn indentation_of_any_width() {
        for width in 0..40 {
            let pad = format!("\n{}", " ".repeat(width));
            let body = format!(
                "{{{pad}\"id\":{pad}\"e\",{pad}\"type\": \"t\",\t\"action\"\r\n:\"a\",{pad}\"data\":{pad}[{pad}1{pad},{pad}{{}}{pad}]{pad}}}{pad}"
            );
            let env = envelope(body.as_bytes()).expect("envelope");
            let data = env.data.map(|r| &body[r]);
            assert!(data.is_some_and(|d| d.starts_with('[') && d.ends_with(']')));
        }
    }

    #[test]
    fn nesting_up_to_the_limit() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // The envelope is one level: data may open 127 more.
        assert!(envelope(&with_data(&nested(127))).is_ok());
        assert_eq!(
            envelope(&with_data(&nested(128))).map(|_| ()),
            Err(JsonError::Syntax(41 + 127))
        );
    }

    #[test]
    fn envelope_fields_and_their_shapes() {
        let env = envelope(
            br#"{"i\u0064":"a\u00e9\ud83d\ude00","type":"t","action":"a","retries":0,"state":null,"x":[{"id":5}]}"#,
        )
        .expect("envelope");
        assert_eq!(env.id.as_deref(), Some("a\u{e9}\u{1f600}"));
        assert_eq!(env.retries, Some(0));
        assert_eq!(env.state, None);
        assert_eq!(env.data, None);
        for (body, error) in [
            (&br#"{"id":"a","type":"t"}"#[..], JsonError::Shape(21)),
            (
                br#"{"id":null,"type":"t","action":"a"}"#,
                JsonError::Shape(6),
            ),
            (
                br#"{"id":"a","id":"b","type":"t","action":"a"}"#,
                JsonError::Shape(15),
            ),
            (
                br#"{"id":"a","type":"t","action":"a","state":null,"state":"x"}"#,
                JsonError::Shape(55),
            ),
            (
                br#"{"id":"a","type":"t","action":"a","retries":1.0}"#,
                JsonError::Shape(44),
            ),
            (
                br#"{"id":"a","type":"t","action":"a","retries":-1}"#,
                JsonError::Shape(44),
            ),
            (
                br#"{"id":"a","type":"t","action":"a","retries":-0}"#,
                JsonError::Shape(44),
            ),
            (
                br#"{"id":"\ud800","type":"t","action":"a"}"#,
                JsonError::Syntax(7),
            ),
            (
                br#"{"id":"a","type":"t","action":"a",}"#,
                JsonError::Syntax(34),
            ),
            (
                br#"{"id":"a","type":"t","action":"a"} x"#,
                JsonError::Syntax(35),
            ),
            (br#"{"id":"a","type":"t","action":"a""#, JsonError::Eof),
            (br#"[1]"#, JsonError::Shape(0)),
        ] {
            assert_eq!(
                envelope(body).map(|_| ()),
                Err(error),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
