//! Typed views of `data`, read by the envelope reader's scanner.
//!
//! A serde [`Deserializer`](de::Deserializer) over [`Reader`]: whitespace
//! and strings eight bytes at a time, strings borrowed where they have no
//! escape, integers of up to 18 digits read directly. Whatever it does not
//! read exactly as serde_json would (every other number, serde_json's own
//! `RawValue`, enums, bytes, 128-bit integers, keys read as numbers, and
//! any input with an error) it declines, and [`from_str`] then hands the
//! same text to serde_json: the result, and every error message, is
//! serde_json's. The unit tests, two property tests and the `event` fuzz
//! target check that a value it reads itself is the one serde_json reads.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, Visitor};
use serde::Deserialize;

use super::{Reader, MAX_DEPTH};

/// Parses `text` (one JSON value, known to be UTF-8) as `T`, as
/// `serde_json::from_str` does.
pub(crate) fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    match read(text) {
        Ok(value) => Ok(value),
        Err(Declined) => serde_json::from_str(text),
    }
}

/// The reader alone.
fn read<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T> {
    let mut de = ViewReader {
        r: Reader { text, pos: 0 },
        depth: 0,
    };
    let value = T::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// This reader leaves the text to serde_json. It carries nothing: serde_json
/// reads the text again and gives the error its message.
#[derive(Debug)]
struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Declined
    }
}

impl From<super::JsonError> for Declined {
    fn from(_: super::JsonError) -> Self {
        Declined
    }
}

type Result<T> = std::result::Result<T, Declined>;

struct ViewReader<'a> {
    r: Reader<'a>,
    /// Containers open around the reader.
    depth: u32,
}

impl<'a> ViewReader<'a> {
    /// Only whitespace may follow the value.
    fn end(&mut self) -> Result<()> {
        self.r.ws();
        if self.r.pos == self.r.bytes().len() {
            Ok(())
        } else {
            Err(Declined)
        }
    }

    /// A number, the reader at its first byte. Integers of up to 18 digits
    /// (19 without a sign) are read here: they fit `u64` and `i64`, and
    /// serde_json gives them to the visitor the same way. The rest (`-0`,
    /// fractions, exponents, long integers) go through `serde_json::Number`,
    /// which reads them as serde_json's deserializer does.
    fn number<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value> {
        let start = self.r.pos;
        let integer = self.r.number()?;
        let text = self.r.str_at(start, self.r.pos)?;
        if integer {
            let (negative, digits) = match text.strip_prefix('-') {
                Some(digits) => (true, digits),
                None => (false, text),
            };
            if digits.len() <= 18 || (!negative && digits.len() == 19) {
                let magnitude = digits
                    .bytes()
                    .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                if !negative {
                    return visitor.visit_u64(magnitude);
                }
                if magnitude != 0 {
                    // At most 18 digits: below `i64::MAX`.
                    let value = i64::try_from(magnitude).map_err(|_| Declined)?;
                    return visitor.visit_i64(-value);
                }
            }
        }
        let number = serde_json::Number::from_str(text).map_err(|_| Declined)?;
        if let Some(n) = number.as_u64() {
            visitor.visit_u64(n)
        } else if let Some(n) = number.as_i64() {
            visitor.visit_i64(n)
        } else if let Some(n) = number.as_f64() {
            visitor.visit_f64(n)
        } else {
            Err(Declined)
        }
    }

    /// Opens a container, the reader at its bracket.
    fn open(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(Declined);
        }
        self.r.pos += 1;
        Ok(())
    }

    /// Closes a container: the visitor must have read every element.
    fn close(&mut self, bracket: u8) -> Result<()> {
        if self.r.ws() != bracket {
            return Err(Declined);
        }
        self.r.pos += 1;
        self.depth -= 1;
        Ok(())
    }

    /// Before an element: true when the container goes on, false at its
    /// closing bracket (left for [`close`](Self::close)).
    fn more(&mut self, first: &mut bool, bracket: u8) -> Result<bool> {
        let next = self.r.ws();
        if next == bracket {
            return Ok(false);
        }
        if *first {
            *first = false;
        } else if next == b',' {
            self.r.pos += 1;
            self.r.ws();
        } else {
            return Err(Declined);
        }
        Ok(true)
    }
}

/// `deserialize_*` methods that leave the value to serde_json.
macro_rules! decline {
    ($($method:ident),+) => {$(
        fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
            Err(Declined)
        }
    )+};
}

/// `deserialize_*` methods that read the value as `deserialize_any` does
/// when its first byte is one of the given ones, and decline it otherwise.
macro_rules! only {
    ($($first:literal => $($method:ident $(($($arg:ident: $ty:ty),*))?),+;)*) => {$($(
        fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? visitor: V) -> Result<V::Value> {
            if $first.contains(&self.r.ws()) {
                self.deserialize_any(visitor)
            } else {
                Err(Declined)
            }
        }
    )+)*};
}

impl<'de> de::Deserializer<'de> for &mut ViewReader<'de> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.r.ws() {
            b'n' => {
                self.r.literal(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.r.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.r.literal(b"false")?;
                visitor.visit_bool(false)
            }
            b'"' => match self.r.string()? {
                Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
                // Decoded: serde_json hands such a string over as `visit_str`.
                Cow::Owned(text) => visitor.visit_str(&text),
            },
            b'-' | b'0'..=b'9' => self.number(visitor),
            b'[' => {
                self.open()?;
                let value = visitor.visit_seq(Items {
                    de: self,
                    first: true,
                })?;
                self.close(b']')?;
                Ok(value)
            }
            b'{' => {
                self.open()?;
                let value = visitor.visit_map(Items {
                    de: self,
                    first: true,
                })?;
                self.close(b'}')?;
                Ok(value)
            }
            _ => Err(Declined),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.r.ws() == b'n' {
            self.r.literal(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        // serde_json's `RawValue` asks for its text through a private name.
        if name.starts_with("$serde_json") {
            return Err(Declined);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.r.skip_value(self.depth)?;
        visitor.visit_unit()
    }

    // Left to serde_json: what it reads in ways of its own.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(Declined)
    }

    decline! { deserialize_bytes, deserialize_byte_buf, deserialize_i128, deserialize_u128 }

    // The rest as serde_json reads them: from the forms each one accepts
    // (a struct from an object or an array), declined for any other, which
    // serde_json refuses before asking the visitor.
    only! {
        b"n" => deserialize_unit, deserialize_unit_struct(_name: &'static str);
        b"tf" => deserialize_bool;
        b"-0123456789" => deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64,
            deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64,
            deserialize_f32, deserialize_f64;
        b"\"" => deserialize_char, deserialize_str, deserialize_string, deserialize_identifier;
        b"[" => deserialize_seq, deserialize_tuple(_len: usize),
            deserialize_tuple_struct(_name: &'static str, _len: usize);
        b"{" => deserialize_map;
        b"{[" => deserialize_struct(_name: &'static str, _fields: &'static [&'static str]);
    }
}

/// The elements of an array or the members of an object, the reader
/// inside it.
struct Items<'r, 'de> {
    de: &'r mut ViewReader<'de>,
    /// No element has been read yet (none is preceded by a comma).
    first: bool,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = Declined;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.de.more(&mut self.first, b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.de.more(&mut self.first, b'}')? {
            return Ok(None);
        }
        if self.de.r.at() != b'"' {
            return Err(Declined);
        }
        let key = seed.deserialize(Key(self.de.r.string()?))?;
        if self.de.r.ws() != b':' {
            return Err(Declined);
        }
        self.de.r.pos += 1;
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }
}

/// An object's key: text, as serde_json gives it to a visitor. serde_json
/// also reads numbers and booleans out of keys, and enums and bytes its own
/// way: those are declined.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserializer<'de> for Key<'de> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
            Cow::Owned(text) => visitor.visit_str(&text),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(Declined)
    }

    decline! {
        deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64,
        deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64,
        deserialize_u128, deserialize_f32, deserialize_f64, deserialize_bytes,
        deserialize_byte_buf
    }

    serde::forward_to_deserialize_any! {
        char str string unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// The tests' strategy for any JSON value, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/support/json_value.rs"]
mod json_value;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    use super::json_value::{any_value, text_of};
    use super::*;
    use crate::{Poll, Session, Task, WebhookConfig};

    /// `from_str` gives what serde_json gives, value or error message.
    fn same<'a, T>(text: &'a str) -> serde_json::Result<T>
    where
        T: Deserialize<'a> + PartialEq + fmt::Debug,
    {
        let ours = from_str::<T>(text);
        let serde = serde_json::from_str::<T>(text);
        match (&ours, &serde) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            _ => panic!("{text}: ours {ours:?}, serde_json {serde:?}"),
        }
        ours
    }

    /// The reader itself reads `text` (not serde_json behind it), and as
    /// serde_json does.
    fn read_here<'a, T>(text: &'a str) -> T
    where
        T: Deserialize<'a> + PartialEq + fmt::Debug,
    {
        let alone = read::<T>(text).unwrap_or_else(|_| panic!("declined {text}"));
        assert_eq!(
            Ok(&alone),
            same::<T>(text).as_ref().map_err(|_| ()),
            "{text}"
        );
        alone
    }

    #[test]
    fn values_of_every_kind() {
        for text in [
            "null",
            "true",
            "false",
            "0",
            "7",
            "-7",
            "\"\"",
            "\"text\"",
            "[]",
            "{}",
            " [ 1 , [ ] , { } , \"a\" , null ] ",
            "{\"a\": {\"b\": [true, false]}, \"c\": -1}",
            "\n\t{\r\n        \"indented\":    1\n}\n",
            // Escapes, decoded: a pair of surrogates makes one character.
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#,
            // Integers the reader reads itself, up to 18 digits (19 unsigned).
            "999999999999999999",
            "-999999999999999999",
            "9999999999999999999",
            "18446744073709551615", // u64::MAX: 20 digits, through serde_json's number
            "-9223372036854775808",
        ] {
            let value: Value = read_here(text);
            assert_eq!(
                value,
                serde_json::from_str::<Value>(text).expect("serde_json")
            );
        }
    }

    #[test]
    fn numbers_serde_json_reads_its_own_way() {
        // `-0` is a float for serde_json; long integers overflow into floats;
        // fractions and exponents are floats, rounded as serde_json rounds.
        for (text, expected) in [
            ("-0", json!(-0.0)),
            ("18446744073709551616", json!(18446744073709551616.0)),
            ("-9223372036854775809", json!(-9223372036854775809.0)),
            ("1.5", json!(1.5)),
            ("-2.5e-3", json!(-0.0025)),
            ("1E+2", json!(100.0)),
            (
                "123456789012365478901234567890",
                json!(1.2345678901236548e29),
            ),
            ("0.1", json!(0.1)),
        ] {
            let value: Value = read_here(text);
            assert_eq!(value, expected, "{text}");
            assert_eq!(value.is_f64(), expected.is_f64(), "{text}");
        }
        assert_eq!(
            read_here::<Value>("-0").as_f64().map(f64::is_sign_negative),
            Some(true)
        );
    }

    #[test]
    fn errors_are_serde_json_s() {
        for text in [
            "",
            " ",
            "nul",
            "tru",
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{1:2}",
            "[1] x",
            "01",
            "1.",
            "-",
            "1e400",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\x\"",
            "\"a\u{1}\"",
            "[",
            "{",
            "{\"a\":",
        ] {
            assert!(same::<Value>(text).is_err(), "{text:?}");
        }
        // Shapes that do not fit the type.
        assert!(same::<Vec<u8>>("[1, 256]").is_err());
        assert!(same::<Task>(r#"{"id": 1.5}"#).is_err());
        assert!(same::<Task>(r#"{"id": "t", "id": "u"}"#).is_err());
        assert!(same::<(u8, u8)>("[1, 2, 3]").is_err());
        assert!(same::<String>("5").is_err());
        assert!(same::<u64>("\"5\"").is_err());
        assert!(same::<()>("[]").is_err());
    }

    #[test]
    fn nesting_to_serde_json_s_limit() {
        for depth in [1, 126, 127, 128, 129, 200] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let _ = same::<Value>(&text);
        }
        let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
        let _: Value = read_here(&deep);
    }

    /// A number type that also accepts text, as some hand-written
    /// visitors do: asked for a `u64`, serde_json refuses a string before
    /// the visitor sees it, and so must the reader.
    #[derive(Debug, PartialEq)]
    struct Lenient(u64);

    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct LenientVisitor;
            impl Visitor<'_> for LenientVisitor {
                type Value = Lenient;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a number, or its digits")
                }
                fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Lenient, E> {
                    Ok(Lenient(n))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Lenient, E> {
                    s.parse().map(Lenient).map_err(E::custom)
                }
            }
            d.deserialize_u64(LenientVisitor)
        }
    }

    #[test]
    fn each_kind_is_read_only_from_its_own_forms() {
        assert_eq!(read_here::<Lenient>("5"), Lenient(5));
        assert!(same::<Lenient>("\"5\"").is_err());
        assert!(same::<Vec<Lenient>>("[\"5\"]").is_err());
        // Keys: serde_json reads numbers out of them; the reader leaves
        // those to it, and the result is the same.
        assert!(read::<HashMap<u32, bool>>(r#"{"1": true}"#).is_err());
        assert_eq!(
            same::<HashMap<u32, bool>>(r#"{"1": true, "22": false}"#).ok(),
            Some(HashMap::from([(1, true), (22, false)]))
        );
        assert!(same::<HashMap<u32, bool>>(r#"{"x": true}"#).is_err());
        assert!(same::<BTreeMap<Lenient2, u8>>(r#"{"7": 1}"#).is_ok());
        // A struct from an array, as serde_json allows.
        let config: WebhookConfig = read_here(r#"["d13c", "webhook_config"]"#);
        assert_eq!(config.id, "d13c");
    }

    /// A key type that asks for a number: serde_json reads it out of the
    /// key's text.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    struct Lenient2(u64);

    #[test]
    fn forms_left_to_serde_json() {
        #[derive(Debug, PartialEq, Deserialize)]
        enum Kind {
            Unit,
            Newtype(u8),
        }
        #[derive(Debug, Deserialize)]
        struct WithRaw<'a> {
            #[serde(borrow)]
            raw: &'a RawValue,
        }
        assert!(read::<Kind>("\"Unit\"").is_err());
        assert_eq!(same::<Kind>("\"Unit\"").ok(), Some(Kind::Unit));
        assert_eq!(
            same::<Kind>(r#"{"Newtype": 3}"#).ok(),
            Some(Kind::Newtype(3))
        );
        assert!(same::<Kind>(r#"{"Newtype": 3, "Unit": null}"#).is_err());
        let text = r#"{"raw": [1, {"a": "b"}] }"#;
        assert!(read::<WithRaw<'_>>(text).is_err());
        let with_raw = from_str::<WithRaw<'_>>(text).expect("serde_json reads it");
        assert_eq!(with_raw.raw.get(), r#"[1, {"a": "b"}]"#);
        assert!(read::<i128>("5").is_err());
        assert_eq!(
            from_str::<i128>("-170141183460469231731687303715884105728").ok(),
            Some(i128::MIN)
        );
        assert_eq!(from_str::<Vec<u8>>("[1, 2]").ok(), Some(vec![1, 2]));
    }

    #[test]
    fn borrowed_text_as_serde_json_borrows_it() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Borrowed<'a> {
            plain: &'a str,
            #[serde(borrow)]
            either: Cow<'a, str>,
        }
        let view: Borrowed<'_> = read_here(r#"{"plain": "p", "either": "e"}"#);
        assert!(matches!(view.either, Cow::Borrowed("e")));
        let view: Borrowed<'_> = read_here(r#"{"plain": "p", "either": "\u0065"}"#);
        assert!(matches!(view.either, Cow::Owned(ref e) if e == "e"));
        // A `&str` cannot hold a decoded escape: an error, serde_json's.
        assert!(same::<Borrowed<'_>>(r#"{"plain": "\u0070", "either": "e"}"#).is_err());
    }

    /// Which of a visitor's string methods the text arrived through.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Given {
        Borrowed,
        Str,
        String,
    }

    impl<'de> Deserialize<'de> for Given {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct GivenVisitor;
            impl<'de> Visitor<'de> for GivenVisitor {
                type Value = Given;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E>(self, _: &'de str) -> std::result::Result<Given, E> {
                    Ok(Given::Borrowed)
                }
                fn visit_str<E>(self, _: &str) -> std::result::Result<Given, E> {
                    Ok(Given::Str)
                }
                fn visit_string<E>(self, _: String) -> std::result::Result<Given, E> {
                    Ok(Given::String)
                }
            }
            d.deserialize_any(GivenVisitor)
        }
    }

    #[test]
    fn strings_reach_visitors_as_serde_json_hands_them_over() {
        // Borrowed without an escape, `visit_str` with one, values and keys.
        assert_eq!(read_here::<Given>(r#""plain""#), Given::Borrowed);
        assert_eq!(read_here::<Given>(r#""\u0065scaped""#), Given::Str);
        let keys: BTreeMap<Given, u8> = read_here(r#"{"plain": 1, "\u0065": 2}"#);
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            [(Given::Borrowed, 1), (Given::Str, 2)]
        );
    }

    #[test]
    fn the_views_of_the_reference_events() {
        let vectors: Value =
            serde_json::from_str(include_str!("../../tests/data/ricloud-py-signatures.json"))
                .expect("vectors");
        let mut read = 0;
        for vector in vectors["vectors"].as_array().expect("vectors") {
            let Some(body) = vector["body"].as_str() else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(body) else {
                continue;
            };
            let data = serde_json::to_string_pretty(&event["data"]).expect("data");
            let _: Value = read_here(&data);
            match event["type"].as_str() {
                Some("task") => drop(read_here::<Task>(&data)),
                Some("poll") => drop(read_here::<Poll>(&data)),
                Some("session") => drop(read_here::<Session>(&data)),
                Some("webhook_config") => drop(read_here::<WebhookConfig>(&data)),
                _ => continue,
            }
            read += 1;
        }
        assert!(read >= 4, "only {read} views read");
    }

    proptest! {
        #[test]
        fn any_value_reads_as_serde_json_reads_it(value in any_value(), pretty in any::<bool>()) {
            let text = text_of(&value, pretty);
            let alone = read::<Value>(&text);
            prop_assert!(alone.is_ok(), "declined {}", text);
            prop_assert_eq!(alone.ok(), Some(value));
        }

        #[test]
        fn any_text_reads_as_serde_json_reads_it(text in "[\\[\\]{}\":,0-9.eE+\\-ntruefals \\\\u]{0,24}") {
            let _ = same::<Value>(&text);
            let _ = same::<Task>(&text);
        }
    }
}
