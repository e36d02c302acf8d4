//! The tracker protocols: HTTP (BEP 3, BEP 23 compact peers, BEP 7 `peers6`, BEP 48 scrape),
//! announce and scrape requests as binary-safe query strings and their bencoded answers; and UDP
//! (BEP 15, in [`udp`]), fixed-layout datagrams.
//!
//! Pure: bytes and text in, values out. The tracker server parses requests and encodes
//! responses with it; a tracker client builds requests and parses responses with the same types.
//! Nothing here trusts a length it has not bounded, and no input makes it panic.

mod announce;
mod query;
mod scrape;
pub mod udp;

pub use announce::{AnnounceResponse, PeerEntry};
pub use query::{
    AnnounceRequest, Event, QueryError, ScrapeRequest, MAX_QUERY_LEN, MAX_SCRAPE_HASHES,
};
pub use scrape::{ScrapeResponse, ScrapeStats};

use super::bencode::BencodeError;

/// Why a tracker response could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrackerError {
    /// The tracker refused the request and said why (`failure reason`).
    #[error("tracker refused: {0}")]
    Failure(String),
    /// The body is not a bencoded dictionary of the expected shape.
    #[error("bad tracker response: {0}")]
    Bencode(#[from] BencodeError),
    /// The body is bencode, but a field is unusable (e.g. a compact peer string of 7 bytes).
    #[error("bad tracker response: {0}")]
    Malformed(String),
}

/// The bencoded body of a refusal: `d14:failure reason<len>:<reason>e`.
pub fn failure(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(reason.len() + 24);
    out.push(b'd');
    put_bytes(&mut out, b"failure reason");
    put_bytes(&mut out, reason.as_bytes());
    out.push(b'e');
    out
}

/// The scrape URL of an announce URL (BEP 48): the last path component must start with
/// `announce`, which becomes `scrape` (`http://t/announce?k=1` -> `http://t/scrape?k=1`,
/// `http://t/x/announce.php` -> `http://t/x/scrape.php`). `None` when the tracker cannot scrape.
pub fn scrape_url(announce_url: &str) -> Option<String> {
    let path_end = announce_url.find('?').unwrap_or(announce_url.len());
    let slash = announce_url[..path_end].rfind('/')?;
    let last = &announce_url[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    Some(format!("{}scrape{rest}", &announce_url[..=slash]))
}

/// Append a bencoded byte string.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_decimal(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Append a bencoded non-negative integer.
fn put_int(out: &mut Vec<u8>, n: u64) {
    out.push(b'i');
    put_decimal(out, n);
    out.push(b'e');
}

/// Append a dictionary key and an integer value.
fn put_key_int(out: &mut Vec<u8>, key: &[u8], n: u64) {
    put_bytes(out, key);
    put_int(out, n);
}

/// Append the decimal digits of `n` without a temporary string.
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A non-negative integer field as `u32`, saturating: counts and intervals beyond `u32` are
/// nonsense, but not worth refusing a whole answer for.
fn int_u32(d: &super::bencode::Dict, key: &str) -> Result<Option<u32>, TrackerError> {
    use super::bencode::{type_err, DictExt};
    match d.opt_int(key)? {
        None => Ok(None),
        Some(i) if i < 0 => Err(type_err(key, "a non-negative integer").into()),
        Some(i) => Ok(Some(u32::try_from(i).unwrap_or(u32::MAX))),
    }
}

/// The `failure reason` of a decoded answer as an error, if there is one.
fn check_failure(d: &super::bencode::Dict) -> Result<(), TrackerError> {
    use super::bencode::DictExt;
    match d.opt_text("failure reason")? {
        Some(reason) => Err(TrackerError::Failure(reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bencode::{self, key, text, Dict, Value};

    #[test]
    fn failure_body_matches_the_reference_encoder() {
        let mut d = Dict::new();
        d.insert(key("failure reason"), text("missing info_hash"));
        assert_eq!(
            failure("missing info_hash"),
            bencode::encode(&Value::Dict(d))
        );
        assert_eq!(failure(""), b"d14:failure reason0:e");
    }

    #[test]
    fn decimal_digits() {
        for n in [0, 7, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            put_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn scrape_urls_follow_bep_48() {
        let cases = [
            ("http://t.example/announce", Some("http://t.example/scrape")),
            ("http://t/x/announce.php", Some("http://t/x/scrape.php")),
            ("http://t/announce?pk=a/b", Some("http://t/scrape?pk=a/b")),
            ("http://t:6969/announce/", None),
            ("http://t/a", None),
            (
                "http://t/x/announce?y=announce",
                Some("http://t/x/scrape?y=announce"),
            ),
            ("http://t/announce/x", None),
            ("announce", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(scrape_url(input).as_deref(), want, "{input}");
        }
    }
}
