//! Small helpers over `bendy`: decode a whole buffer into a [`Value`] with a bounded depth, and
//! typed accessors that turn a missing or mistyped key into an error naming the key.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bendy::decoding::{Decoder, FromBencode};
use bendy::encoding::Encoder;
pub use bendy::value::Value;

/// Deepest nesting we accept. Real metainfo and tracker answers nest 4 or 5 levels; the bound
/// keeps a hostile `llllll…` from recursing the stack away.
pub const MAX_DEPTH: usize = 64;

/// A bencode dictionary with owned keys.
pub type Dict = BTreeMap<Cow<'static, [u8]>, Value<'static>>;

/// Why a bencoded value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BencodeError {
    /// The bytes are not valid bencode (or nest deeper than [`MAX_DEPTH`]).
    #[error("not valid bencode: {0}")]
    Syntax(String),
    /// The buffer holds more than one value.
    #[error("{0} stray bytes after the bencoded value")]
    Trailing(usize),
    /// The buffer is empty.
    #[error("empty input")]
    Empty,
    /// A required key is absent.
    #[error("missing key `{0}`")]
    Missing(String),
    /// A key holds a value of the wrong type or range.
    #[error("key `{key}` should be {expected}")]
    Type {
        /// The offending key.
        key: String,
        /// What it should hold.
        expected: &'static str,
    },
}

/// Decode exactly one bencoded value from `bytes` (no trailing bytes allowed).
pub fn decode(bytes: &[u8]) -> Result<Value<'static>, BencodeError> {
    let mut decoder = Decoder::new(bytes).with_max_depth(MAX_DEPTH);
    let value = decode_next(&mut decoder)?.ok_or(BencodeError::Empty)?;
    let at_end = matches!(decoder.next_object(), Ok(None));
    match at_end {
        true => Ok(value),
        false => {
            // Count what is left for the message; re-encoding tells us where the value ended.
            let used = encode(&value).len();
            Err(BencodeError::Trailing(bytes.len().saturating_sub(used)))
        }
    }
}

/// Decode the next value of a decoder, if any.
pub fn decode_next(decoder: &mut Decoder<'_>) -> Result<Option<Value<'static>>, BencodeError> {
    let object = decoder.next_object().map_err(syntax)?;
    match object {
        None => Ok(None),
        Some(object) => Value::decode_bencode_object(object)
            .map(|v| Some(v.into_owned()))
            .map_err(syntax),
    }
}

/// Map a bendy error to ours, keeping only its first line (bendy appends a context block).
pub fn syntax(e: impl std::fmt::Display) -> BencodeError {
    let text = e.to_string();
    BencodeError::Syntax(text.lines().next().unwrap_or("").trim().to_string())
}

/// Encode a value. Dictionaries come out with sorted keys, as bencode requires.
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    // Encoding into a Vec fails only past the depth bound, which decoded input cannot reach;
    // an empty buffer (never a panic) would then fail the caller's own checks.
    let mut encoder = Encoder::new().with_max_depth(MAX_DEPTH + 1);
    match encoder.emit(value) {
        Ok(()) => encoder.get_output().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Make a byte-string value.
pub fn bytes(b: impl Into<Vec<u8>>) -> Value<'static> {
    Value::Bytes(Cow::Owned(b.into()))
}

/// Make a text value.
pub fn text(s: &str) -> Value<'static> {
    bytes(s.as_bytes().to_vec())
}

/// Make a dictionary key.
pub fn key(s: &str) -> Cow<'static, [u8]> {
    Cow::Owned(s.as_bytes().to_vec())
}

/// Typed read access to a dictionary, with errors that name the key.
pub trait DictExt {
    /// The raw value of `k`, if present.
    fn raw(&self, k: &str) -> Option<&Value<'static>>;

    /// A byte string, if present.
    fn opt_bytes(&self, k: &str) -> Result<Option<&[u8]>, BencodeError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b)),
            Some(_) => Err(type_err(k, "a byte string")),
        }
    }

    /// A required byte string.
    fn req_bytes(&self, k: &str) -> Result<&[u8], BencodeError> {
        self.opt_bytes(k)?
            .ok_or_else(|| BencodeError::Missing(k.into()))
    }

    /// A text string (invalid UTF-8 is replaced, never rejected), if present.
    fn opt_text(&self, k: &str) -> Result<Option<String>, BencodeError> {
        Ok(self
            .opt_bytes(k)?
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    /// An integer, if present.
    fn opt_int(&self, k: &str) -> Result<Option<i64>, BencodeError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Integer(i)) => Ok(Some(*i)),
            Some(_) => Err(type_err(k, "an integer")),
        }
    }

    /// A required non-negative integer.
    fn req_u64(&self, k: &str) -> Result<u64, BencodeError> {
        let i = self
            .opt_int(k)?
            .ok_or_else(|| BencodeError::Missing(k.into()))?;
        u64::try_from(i).map_err(|_| type_err(k, "a non-negative integer"))
    }

    /// A list, if present.
    fn opt_list(&self, k: &str) -> Result<Option<&[Value<'static>]>, BencodeError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::List(l)) => Ok(Some(l)),
            Some(_) => Err(type_err(k, "a list")),
        }
    }

    /// A dictionary, if present.
    fn opt_dict(&self, k: &str) -> Result<Option<&Dict>, BencodeError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Dict(d)) => Ok(Some(d)),
            Some(_) => Err(type_err(k, "a dictionary")),
        }
    }
}

impl DictExt for Dict {
    fn raw(&self, k: &str) -> Option<&Value<'static>> {
        self.get(k.as_bytes())
    }
}

/// A type error for key `k`.
pub fn type_err(k: &str, expected: &'static str) -> BencodeError {
    BencodeError::Type {
        key: k.into(),
        expected,
    }
}

/// The value as a dictionary, or a type error naming `what`.
pub fn as_dict<'a>(v: &'a Value<'static>, what: &str) -> Result<&'a Dict, BencodeError> {
    match v {
        Value::Dict(d) => Ok(d),
        _ => Err(type_err(what, "a dictionary")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sorted_keys() {
        let mut d = Dict::new();
        d.insert(key("zeta"), Value::Integer(-3));
        d.insert(key("alpha"), text("x"));
        d.insert(
            key("list"),
            Value::List(vec![Value::Integer(1), bytes(vec![0, 255])]),
        );
        let enc = encode(&Value::Dict(d.clone()));
        assert_eq!(enc, b"d5:alpha1:x4:listli1e2:\x00\xffe4:zetai-3ee".to_vec());
        assert_eq!(decode(&enc).unwrap(), Value::Dict(d));
    }

    #[test]
    fn rejects_garbage_trailing_and_depth() {
        assert!(matches!(decode(b""), Err(BencodeError::Empty)));
        assert!(matches!(decode(b"i1ei2e"), Err(BencodeError::Trailing(3))));
        assert!(matches!(decode(b"5:ab"), Err(BencodeError::Syntax(_))));
        assert!(matches!(decode(b"i12"), Err(BencodeError::Syntax(_))));
        let deep = format!("{}{}", "l".repeat(10_000), "e".repeat(10_000));
        assert!(matches!(
            decode(deep.as_bytes()),
            Err(BencodeError::Syntax(_))
        ));
        // A string length that claims far more than the buffer must not allocate it.
        assert!(matches!(
            decode(b"99999999999999:x"),
            Err(BencodeError::Syntax(_))
        ));
    }

    #[test]
    fn typed_access_names_the_key() {
        let v = decode(b"d1:ai-1e1:b1:xe").unwrap();
        let d = as_dict(&v, "root").unwrap();
        assert_eq!(d.opt_int("a").unwrap(), Some(-1));
        assert_eq!(
            d.req_u64("a").unwrap_err().to_string(),
            "key `a` should be a non-negative integer"
        );
        assert_eq!(d.req_u64("c").unwrap_err().to_string(), "missing key `c`");
        assert_eq!(
            d.opt_list("b").unwrap_err().to_string(),
            "key `b` should be a list"
        );
    }
}
