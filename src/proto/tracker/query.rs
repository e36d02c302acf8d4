//! Announce and scrape requests as query strings, binary-safe both ways.
//!
//! `info_hash` and `peer_id` are 20 raw bytes sent percent-encoded; they are not text, so the raw
//! query is split on `&` and `=` and each value is percent-decoded to bytes here (a `&str` query
//! parser would mangle them). Unknown keys are ignored; each missing or malformed field gets its
//! own error, whose text is fit to send back as a `failure reason`.

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest raw query accepted, in bytes. A real announce is ~250 bytes; this leaves room for a
/// scrape of [`MAX_SCRAPE_HASHES`] hashes (71 bytes each, fully escaped) and stays under the
/// HTTP server's 8 KiB head limit.
pub const MAX_QUERY_LEN: usize = 6 * 1024;

/// Most `info_hash` values one scrape may name.
pub const MAX_SCRAPE_HASHES: usize = 64;

/// Longest `key` or `ip` value accepted, in bytes of UTF-8 text after decoding.
const MAX_TEXT_LEN: usize = 255;

/// Largest byte count accepted in `uploaded`, `downloaded` and `left`: 2^53 bytes (8 PiB) is
/// beyond any torrent, and fits every integer type the value is later stored or printed in.
const MAX_BYTE_COUNT: u64 = 1 << 53;

/// Bytes sent as themselves; everything else is escaped (`[A-Za-z0-9.-_~]` stay).
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    /// A regular announce (no `event`, an empty one, or BEP 21 `paused`).
    #[default]
    None,
    /// The first announce of a download or seed.
    Started,
    /// The download just finished (sent once).
    Completed,
    /// The peer is leaving the swarm.
    Stopped,
}

impl Event {
    /// The query value (`""` for [`Event::None`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::None => "",
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }
}

/// Why a query was refused. The text names the field and is meant for a `failure reason`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// The query is longer than [`MAX_QUERY_LEN`].
    #[error("query too long: {0} bytes, at most {MAX_QUERY_LEN}")]
    TooLong(usize),
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A `%` is not followed by two hex digits.
    #[error("{0} has a bad percent-escape")]
    BadEscape(&'static str),
    /// `info_hash` or `peer_id` does not decode to exactly 20 bytes.
    #[error("{field} must be 20 bytes, got {len}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// Its decoded length.
        len: usize,
    },
    /// A number field holds something other than decimal digits.
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    /// A number is outside what the field allows.
    #[error("{field} out of range (at most {max})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The largest value allowed.
        max: u64,
    },
    /// `port` is 0.
    #[error("port must not be 0")]
    ZeroPort,
    /// `event` is none of `started`, `completed`, `stopped`, `paused` or empty.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// `key` or `ip` is longer than 255 bytes.
    #[error("{0} too long")]
    TextTooLong(&'static str),
    /// A scrape names more than [`MAX_SCRAPE_HASHES`] torrents.
    #[error("too many info_hash values: at most {MAX_SCRAPE_HASHES} per scrape")]
    TooManyHashes,
}

/// An announce: who the peer is, where it listens, how far along it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: [u8; 20],
    /// The peer's id.
    pub peer_id: [u8; 20],
    /// The peer's listen port (never 0).
    pub port: u16,
    /// Bytes uploaded since `started`.
    pub uploaded: u64,
    /// Bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes still missing; 0 means a seeder.
    pub left: u64,
    /// Why this announce is sent.
    pub event: Event,
    /// The peer accepts compact peer strings (BEP 23).
    pub compact: bool,
    /// The peer does not want peer ids in a dictionary peer list.
    pub no_peer_id: bool,
    /// How many peers the peer wants (the tracker caps it).
    pub numwant: Option<u32>,
    /// An opaque key that identifies the peer across IP changes.
    pub key: Option<String>,
    /// The address the peer claims (trackers ignore it unless configured otherwise).
    pub ip: Option<String>,
}

/// A scrape: the torrents asked about; none means every torrent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeRequest {
    /// The info-hashes named, in order, at most [`MAX_SCRAPE_HASHES`].
    pub info_hashes: Vec<[u8; 20]>,
}

impl AnnounceRequest {
    /// A regular announce (no event) of a peer that has transferred nothing and lacks nothing,
    /// asking for compact peers; set the other fields as needed:
    /// `AnnounceRequest { left, event: Event::Started, ..AnnounceRequest::new(hash, id, port) }`.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20], port: u16) -> AnnounceRequest {
        AnnounceRequest {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            compact: true,
            no_peer_id: false,
            numwant: None,
            key: None,
            ip: None,
        }
    }

    /// Parse the raw query string (the part after `?`, still percent-encoded).
    pub fn parse_query(raw_query: &str) -> Result<Self, QueryError> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = None;
        let mut downloaded = None;
        let mut left = None;
        let mut event = Event::None;
        let mut compact = false;
        let mut no_peer_id = false;
        let mut numwant = None;
        let mut key = None;
        let mut ip = None;
        for (name, value) in pairs(raw_query)? {
            match name {
                b"info_hash" => info_hash = Some(hash20("info_hash", value)?),
                b"peer_id" => peer_id = Some(hash20("peer_id", value)?),
                b"port" => port = Some(number("port", value, u16::MAX.into())?),
                b"uploaded" => uploaded = Some(number("uploaded", value, MAX_BYTE_COUNT)?),
                b"downloaded" => downloaded = Some(number("downloaded", value, MAX_BYTE_COUNT)?),
                b"left" => left = Some(number("left", value, MAX_BYTE_COUNT)?),
                b"event" => event = parse_event(value)?,
                b"compact" => compact = value == b"1",
                b"no_peer_id" => no_peer_id = value == b"1",
                b"numwant" => numwant = Some(number("numwant", value, u32::MAX.into())? as u32),
                b"key" => key = Some(text("key", value)?),
                b"ip" => ip = Some(text("ip", value)?),
                _ => {}
            }
        }
        let port = port.ok_or(QueryError::Missing("port"))? as u16;
        if port == 0 {
            return Err(QueryError::ZeroPort);
        }
        Ok(AnnounceRequest {
            info_hash: info_hash.ok_or(QueryError::Missing("info_hash"))?,
            peer_id: peer_id.ok_or(QueryError::Missing("peer_id"))?,
            port,
            uploaded: uploaded.ok_or(QueryError::Missing("uploaded"))?,
            downloaded: downloaded.ok_or(QueryError::Missing("downloaded"))?,
            left: left.ok_or(QueryError::Missing("left"))?,
            event,
            compact,
            no_peer_id,
            numwant,
            key,
            ip,
        })
    }

    /// The query string (without `?`); every byte outside `[A-Za-z0-9.-_~]` is escaped.
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            percent_encode(&self.info_hash, ESCAPED),
            percent_encode(&self.peer_id, ESCAPED),
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
            u8::from(self.compact),
        );
        if self.no_peer_id {
            q.push_str("&no_peer_id=1");
        }
        if self.event != Event::None {
            q.push_str("&event=");
            q.push_str(self.event.as_str());
        }
        if let Some(n) = self.numwant {
            q.push_str(&format!("&numwant={n}"));
        }
        for (name, value) in [("key", &self.key), ("ip", &self.ip)] {
            if let Some(v) = value {
                q.push_str(&format!(
                    "&{name}={}",
                    percent_encode(v.as_bytes(), ESCAPED)
                ));
            }
        }
        q
    }

    /// The full announce URL: `announce_url` plus this query, joined with `?` or, when the URL
    /// already has a query (a private tracker's passkey), with `&`.
    pub fn url(&self, announce_url: &str) -> String {
        let sep = if announce_url.contains('?') { '&' } else { '?' };
        format!("{announce_url}{sep}{}", self.to_query())
    }
}

impl ScrapeRequest {
    /// Parse the raw query string: any number of `info_hash` (up to [`MAX_SCRAPE_HASHES`]);
    /// other keys are ignored.
    pub fn parse_query(raw_query: &str) -> Result<Self, QueryError> {
        let mut info_hashes = Vec::new();
        for (name, value) in pairs(raw_query)? {
            if name == b"info_hash" {
                if info_hashes.len() == MAX_SCRAPE_HASHES {
                    return Err(QueryError::TooManyHashes);
                }
                info_hashes.push(hash20("info_hash", value)?);
            }
        }
        Ok(ScrapeRequest { info_hashes })
    }

    /// The query string (without `?`); empty when no hash is named.
    pub fn to_query(&self) -> String {
        let parts: Vec<String> = self
            .info_hashes
            .iter()
            .map(|h| format!("info_hash={}", percent_encode(h, ESCAPED)))
            .collect();
        parts.join("&")
    }
}

/// Split a bounded raw query into `(name, value)` pairs, still escaped. Empty pieces
/// (`a=1&&b=2`) are skipped; a piece without `=` has an empty value.
fn pairs(raw_query: &str) -> Result<impl Iterator<Item = (&[u8], &[u8])>, QueryError> {
    if raw_query.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong(raw_query.len()));
    }
    Ok(raw_query
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &b""[..]),
        }))
}

/// Percent-decode a value to bytes. Strict: a `%` must start a two-hex-digit escape (the lenient
/// decoder would keep a stray `%` as is and make a wrong hash of it). `+` stays `+`.
fn decode(field: &'static str, value: &[u8]) -> Result<Vec<u8>, QueryError> {
    for (i, &b) in value.iter().enumerate() {
        if b == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .ok_or(QueryError::BadEscape(field))?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(QueryError::BadEscape(field));
            }
        }
    }
    Ok(percent_decode(value).collect())
}

/// Exactly 20 decoded bytes.
fn hash20(field: &'static str, value: &[u8]) -> Result<[u8; 20], QueryError> {
    let bytes = decode(field, value)?;
    <[u8; 20]>::try_from(bytes.as_slice()).map_err(|_| QueryError::WrongLength {
        field,
        len: bytes.len(),
    })
}

/// Decimal digits only (no sign, no escapes), at most `max`.
fn number(field: &'static str, value: &[u8], max: u64) -> Result<u64, QueryError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(QueryError::NotANumber(field));
    }
    let mut n: u64 = 0;
    for &d in value {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .filter(|&n| n <= max)
            .ok_or(QueryError::OutOfRange { field, max })?;
    }
    Ok(n)
}

/// A short free-text value (`key`, `ip`); bytes that are not UTF-8 are replaced. The length is
/// measured after the replacement (one stray byte becomes the 3 bytes of U+FFFD), so that what
/// is accepted also fits when sent again.
fn text(field: &'static str, value: &[u8]) -> Result<String, QueryError> {
    let text = String::from_utf8_lossy(&decode(field, value)?).into_owned();
    if text.len() > MAX_TEXT_LEN {
        return Err(QueryError::TextTooLong(field));
    }
    Ok(text)
}

fn parse_event(value: &[u8]) -> Result<Event, QueryError> {
    match value {
        b"started" => Ok(Event::Started),
        b"completed" => Ok(Event::Completed),
        b"stopped" => Ok(Event::Stopped),
        b"" | b"empty" | b"paused" => Ok(Event::None),
        other => {
            let shown = String::from_utf8_lossy(&other[..other.len().min(32)]).into_owned();
            Err(QueryError::UnknownEvent(shown))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AnnounceRequest {
        let mut info_hash = [0u8; 20];
        for (i, b) in info_hash.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(250); // spans escaped and plain bytes
        }
        AnnounceRequest {
            info_hash,
            peer_id: *b"-BT0001-\x00\xff %&=+?#/ab",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            compact: true,
            no_peer_id: false,
            numwant: Some(80),
            key: Some("k y&=".into()),
            ip: Some("::1".into()),
        }
    }

    /// A query with every field, where `skip` leaves one out and `with` replaces one.
    fn query(skip: &str, with: (&str, &str)) -> String {
        let fields = [
            ("info_hash", "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"),
            ("peer_id", "-BT0001-abcdefghijkl"),
            ("port", "6881"),
            ("uploaded", "0"),
            ("downloaded", "0"),
            ("left", "100"),
        ];
        let mut out: Vec<String> = fields
            .iter()
            .filter(|(k, _)| *k != skip)
            .map(|&(k, v)| if k == with.0 { (k, with.1) } else { (k, v) })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !fields.iter().any(|(k, _)| *k == with.0) && !with.0.is_empty() {
            out.push(format!("{}={}", with.0, with.1));
        }
        out.join("&")
    }

    #[test]
    fn round_trips_every_byte() {
        let mut req = sample();
        assert_eq!(
            AnnounceRequest::parse_query(&req.to_query()),
            Ok(req.clone())
        );
        for b in 0..=255u8 {
            req.info_hash = [b; 20];
            req.peer_id[19] = b;
            req.event = [Event::None, Event::Completed, Event::Stopped][b as usize % 3];
            req.compact = b % 2 == 0;
            req.no_peer_id = b % 3 == 0;
            req.numwant = (b % 4 != 0).then_some(u32::from(b));
            req.key = None;
            let q = req.to_query();
            assert!(
                q.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-_~%=&".contains(&c)),
                "{q}"
            );
            assert_eq!(AnnounceRequest::parse_query(&q), Ok(req.clone()));
        }
    }

    #[test]
    fn escapes_exactly_the_reserved_bytes() {
        let mut req = sample();
        req.info_hash = *b"az09.-_~ /%+\x00\x7f\x80\xffAZ!!";
        let q = req.to_query();
        assert!(
            q.starts_with("info_hash=az09.-_~%20%2F%25%2B%00%7F%80%FFAZ%21%21&"),
            "{q}"
        );
    }

    #[test]
    fn parses_a_real_query_and_ignores_unknown_keys() {
        let q = query("", ("supportcrypto", "1")) + "&compact=1&event=completed&corrupt=0&&x";
        let r = AnnounceRequest::parse_query(&q).unwrap();
        assert_eq!(r.info_hash[..4], [0x12, 0x34, 0x56, 0x78]);
        assert_eq!(&r.peer_id, b"-BT0001-abcdefghijkl");
        assert_eq!(
            (r.port, r.left, r.event, r.compact),
            (6881, 100, Event::Completed, true)
        );
        assert_eq!(
            (r.numwant, r.key, r.ip, r.no_peer_id),
            (None, None, None, false)
        );
    }

    #[test]
    fn each_missing_field_is_named() {
        for field in [
            "info_hash",
            "peer_id",
            "port",
            "uploaded",
            "downloaded",
            "left",
        ] {
            let e = AnnounceRequest::parse_query(&query(field, ("", ""))).unwrap_err();
            assert_eq!(e, QueryError::Missing(field));
            assert_eq!(e.to_string(), format!("missing {field}"));
        }
        assert_eq!(
            AnnounceRequest::parse_query(""),
            Err(QueryError::Missing("port"))
        );
    }

    #[test]
    fn malformed_fields_get_specific_errors() {
        let bad = |k: &str, v: &str| AnnounceRequest::parse_query(&query("", (k, v))).unwrap_err();
        let short = QueryError::WrongLength {
            field: "info_hash",
            len: 19,
        };
        assert_eq!(bad("info_hash", "%12345678901234567890"), short);
        assert_eq!(
            bad("info_hash", &"a".repeat(21)).to_string(),
            "info_hash must be 20 bytes, got 21"
        );
        assert_eq!(
            bad("peer_id", "abc").to_string(),
            "peer_id must be 20 bytes, got 3"
        );
        assert_eq!(
            bad("info_hash", "%zz345678901234567890"),
            QueryError::BadEscape("info_hash")
        );
        assert_eq!(
            bad("peer_id", "1234567890123456789%"),
            QueryError::BadEscape("peer_id")
        );
        assert_eq!(bad("port", "0"), QueryError::ZeroPort);
        assert_eq!(
            bad("port", "65536").to_string(),
            "port out of range (at most 65535)"
        );
        assert_eq!(bad("port", "-1"), QueryError::NotANumber("port"));
        assert_eq!(bad("port", ""), QueryError::NotANumber("port"));
        assert_eq!(bad("left", "1e9"), QueryError::NotANumber("left"));
        assert_eq!(bad("left", "%31"), QueryError::NotANumber("left"));
        assert_eq!(
            bad("uploaded", "99999999999999999999999999"),
            QueryError::OutOfRange {
                field: "uploaded",
                max: MAX_BYTE_COUNT
            }
        );
        assert_eq!(
            bad("downloaded", &(MAX_BYTE_COUNT + 1).to_string()).to_string(),
            format!("downloaded out of range (at most {MAX_BYTE_COUNT})")
        );
        assert_eq!(
            bad("numwant", "4294967296"),
            QueryError::OutOfRange {
                field: "numwant",
                max: u32::MAX.into()
            }
        );
        assert_eq!(
            bad("event", "start%00ed").to_string(),
            "unknown event \"start%00ed\""
        );
        assert_eq!(bad("key", &"k".repeat(256)), QueryError::TextTooLong("key"));
        assert_eq!(bad("ip", "%4"), QueryError::BadEscape("ip"));
    }

    #[test]
    fn long_queries_are_refused_before_parsing() {
        let q = query("", ("pad", &"x".repeat(MAX_QUERY_LEN)));
        assert_eq!(
            AnnounceRequest::parse_query(&q),
            Err(QueryError::TooLong(q.len()))
        );
        assert_eq!(
            ScrapeRequest::parse_query(&q),
            Err(QueryError::TooLong(q.len()))
        );
    }

    #[test]
    fn scrape_queries() {
        let req = ScrapeRequest {
            info_hashes: (0..MAX_SCRAPE_HASHES as u8)
                .map(|i| [i.wrapping_mul(151); 20])
                .collect(),
        };
        let q = req.to_query();
        assert!(q.len() <= MAX_QUERY_LEN);
        assert_eq!(ScrapeRequest::parse_query(&q), Ok(req));
        assert_eq!(ScrapeRequest::parse_query(""), Ok(ScrapeRequest::default()));
        assert_eq!(
            ScrapeRequest::parse_query("a=1&b")
                .unwrap()
                .info_hashes
                .len(),
            0
        );
        let one = ScrapeRequest {
            info_hashes: vec![[0xff; 20]],
        };
        let too_many = vec![one.to_query(); MAX_SCRAPE_HASHES + 1].join("&");
        let e = ScrapeRequest::parse_query(&too_many).unwrap_err();
        assert!(
            matches!(e, QueryError::TooManyHashes | QueryError::TooLong(_)),
            "{e}"
        );
        let plain = vec!["info_hash=aaaaaaaaaaaaaaaaaaaa"; MAX_SCRAPE_HASHES + 1].join("&");
        assert_eq!(
            ScrapeRequest::parse_query(&plain),
            Err(QueryError::TooManyHashes)
        );
        assert_eq!(
            ScrapeRequest::parse_query("info_hash=short")
                .unwrap_err()
                .to_string(),
            "info_hash must be 20 bytes, got 5"
        );
    }

    #[test]
    fn urls_join_with_the_right_separator() {
        let req = sample();
        assert!(req
            .url("http://t/announce")
            .starts_with("http://t/announce?info_hash="));
        assert!(req
            .url("http://t/announce?pk=1")
            .starts_with("http://t/announce?pk=1&info_hash="));
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        let nasty = [
            "%",
            "%%",
            "=",
            "&=&=&",
            "info_hash=%",
            "info_hash=%f",
            "port=%ff",
            "ip=%e2%82",
            "\u{fffd}=\u{1f600}",
            "event=\u{1f600}",
        ];
        for q in nasty {
            // None of them is a whole announce; none names a usable info-hash.
            assert!(AnnounceRequest::parse_query(q).is_err(), "{q}");
            if let Ok(s) = ScrapeRequest::parse_query(q) {
                assert!(s.info_hashes.is_empty(), "{q}");
            }
        }
        let r = AnnounceRequest::parse_query(&query("", ("ip", "%e2%82"))).unwrap();
        assert_eq!(r.ip.as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn text_length_is_measured_after_replacing_bad_utf8() {
        // Found by the tracker_query fuzz target: 100 stray bytes passed the 255-byte bound but
        // became 300 bytes of U+FFFD, so the request could not be sent and parsed again.
        let bad = |n| query("", ("key", &"%ff".repeat(n)));
        assert_eq!(
            AnnounceRequest::parse_query(&bad(86)),
            Err(QueryError::TextTooLong("key"))
        );
        let r = AnnounceRequest::parse_query(&bad(85)).unwrap();
        assert_eq!(r.key.as_deref().map(str::len), Some(255));
        assert_eq!(AnnounceRequest::parse_query(&r.to_query()), Ok(r));
    }
}
