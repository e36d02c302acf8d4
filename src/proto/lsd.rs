//! Local service discovery (BEP 14): the `BT-SEARCH` announce that peers multicast on a LAN to
//! say "I have these torrents, call me on this port".
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! cookie: 5f3a9c1e\r\n
//! \r\n
//! \r\n
//! ```
//!
//! Header names are case-insensitive; a message may carry several `Infohash` headers. The
//! `cookie` lets a sender recognise (and ignore) its own announces, which multicast loops back.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::ids::InfoHash;

/// The IPv4 multicast group and port of BEP 14.
pub const GROUP_V4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 192, 152, 143), 6771);

/// Longest datagram accepted (an Ethernet MTU; libtorrent reads at most 1500 bytes too).
pub const MAX_MESSAGE: usize = 1500;

/// Most info-hashes taken from one message (more are ignored, not an error).
pub const MAX_HASHES: usize = 16;

/// Longest cookie kept (longer ones are cut; the cookie is only compared).
pub const MAX_COOKIE: usize = 64;

/// One announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The TCP port the sender takes peer connections on (its address is the datagram's source).
    pub port: u16,
    /// The torrents it has, at most [`MAX_HASHES`].
    pub info_hashes: Vec<InfoHash>,
    /// The sender's cookie, if it sent one.
    pub cookie: Option<String>,
}

/// Why a datagram is not an announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdError {
    /// Longer than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is over {MAX_MESSAGE}")]
    TooLong(usize),
    /// The first line is not `BT-SEARCH * HTTP/1.1`.
    #[error("not a BT-SEARCH request")]
    NotSearch,
    /// No `Port` header, or one that is not a port from 1 to 65535.
    #[error("no valid Port header")]
    BadPort,
    /// No `Infohash` header with 40 hex digits.
    #[error("no valid Infohash header")]
    NoInfoHash,
}

/// The datagram announcing `info_hash` on `port` with `cookie` (IPv4 group).
pub fn encode(port: u16, info_hash: &InfoHash, cookie: &str) -> Vec<u8> {
    format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: {GROUP_V4}\r\nPort: {port}\r\nInfohash: {}\r\ncookie: {cookie}\r\n\r\n\r\n",
        info_hash.hex()
    )
    .into_bytes()
}

/// Parse a datagram. Never panics; lines that are not `Name: value` are skipped, unknown
/// headers ignored, malformed info-hashes skipped.
pub fn parse(data: &[u8]) -> Result<Announce, LsdError> {
    if data.len() > MAX_MESSAGE {
        return Err(LsdError::TooLong(data.len()));
    }
    let mut lines = data
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(|b| *b == b' ').filter(|w| !w.is_empty());
    if words.next() != Some(b"BT-SEARCH".as_slice()) {
        return Err(LsdError::NotSearch);
    }
    let mut port = None;
    let mut info_hashes = Vec::new();
    let mut cookie = None;
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"port") {
            port = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u16>().ok())
                .filter(|p| *p != 0);
        } else if name.eq_ignore_ascii_case(b"infohash") {
            let hash = std::str::from_utf8(value)
                .ok()
                .filter(|v| v.len() == 40)
                .and_then(InfoHash::from_hex);
            if let Some(h) = hash {
                if info_hashes.len() < MAX_HASHES && !info_hashes.contains(&h) {
                    info_hashes.push(h);
                }
            }
        } else if name.eq_ignore_ascii_case(b"cookie") {
            let v = &value[..value.len().min(MAX_COOKIE)];
            cookie = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    let port = port.ok_or(LsdError::BadPort)?;
    if info_hashes.is_empty() {
        return Err(LsdError::NoInfoHash);
    }
    Ok(Announce {
        port,
        info_hashes,
        cookie,
    })
}

/// `s` without leading and trailing ASCII white space.
fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    #[test]
    fn round_trip() {
        let msg = encode(6881, &hash(0xab), "c00k1e");
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(text.starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n"));
        assert!(text.ends_with("\r\n\r\n\r\n"));
        assert_eq!(
            parse(&msg).unwrap(),
            Announce {
                port: 6881,
                info_hashes: vec![hash(0xab)],
                cookie: Some("c00k1e".into()),
            }
        );
    }

    #[test]
    fn libtorrent_style_several_hashes_any_case() {
        // Upper-case hex, lower-case header names, bare \n line ends, an unknown header.
        let h1 = "ABABABABABABABABABABABABABABABABABABABAB";
        let h2 = "0101010101010101010101010101010101010101";
        let msg = format!(
            "BT-SEARCH * HTTP/1.1\nhost: 239.192.152.143:6771\nport:  51413 \n\
             infohash: {h1}\nX-Other: y\nINFOHASH: {h2}\nInfohash: {h1}\n\n"
        );
        let a = parse(msg.as_bytes()).unwrap();
        assert_eq!(a.port, 51413);
        assert_eq!(
            a.info_hashes,
            vec![hash(0xab), hash(0x01)],
            "duplicates once"
        );
        assert_eq!(a.cookie, None);
    }

    #[test]
    fn rejects_what_is_not_an_announce() {
        let h = "abababababababababababababababababababab";
        assert_eq!(parse(b""), Err(LsdError::NotSearch));
        assert_eq!(
            parse(b"M-SEARCH * HTTP/1.1\r\nPort: 1\r\n"),
            Err(LsdError::NotSearch)
        );
        let no_port = format!("BT-SEARCH * HTTP/1.1\r\nInfohash: {h}\r\n");
        assert_eq!(parse(no_port.as_bytes()), Err(LsdError::BadPort));
        let zero = format!("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: {h}\r\n");
        assert_eq!(parse(zero.as_bytes()), Err(LsdError::BadPort));
        let big = format!("BT-SEARCH * HTTP/1.1\r\nPort: 70000\r\nInfohash: {h}\r\n");
        assert_eq!(parse(big.as_bytes()), Err(LsdError::BadPort));
        let short = "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: abab\r\n";
        assert_eq!(parse(short.as_bytes()), Err(LsdError::NoInfoHash));
        let long = vec![b' '; MAX_MESSAGE + 1];
        assert_eq!(parse(&long), Err(LsdError::TooLong(MAX_MESSAGE + 1)));
    }

    #[test]
    fn bounded_hashes_and_cookie() {
        let mut msg = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 9\r\n");
        msg.push_str(&format!("cookie: {}\r\n", "x".repeat(200)));
        for i in 0..(MAX_HASHES + 5) {
            msg.push_str(&format!("Infohash: {:040x}\r\n", i + 1));
        }
        assert!(msg.len() <= MAX_MESSAGE);
        let a = parse(msg.as_bytes()).unwrap();
        assert_eq!(a.info_hashes.len(), MAX_HASHES);
        assert_eq!(a.cookie.map(|c| c.len()), Some(MAX_COOKIE));
    }
}
