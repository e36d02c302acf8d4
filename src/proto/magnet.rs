//! Magnet links (BEP 9, with the `x.pe` peer parameter; `urn:btmh` topics of BEP 53 are skipped):
//! `magnet:?xt=urn:btih:HASH&dn=NAME&tr=URL&x.pe=HOST:PORT`, parsed into a [`Magnet`] and built
//! back by its `Display` (`to_string()`), which the parser reads back to an equal value.
//!
//! The hash is 40 hex or 32 base32 digits, either case. `tr` and `x.pe` may repeat. Values are
//! percent-decoded; unknown keys are ignored. The input length and every count are bounded.

use std::fmt;
use std::net::SocketAddr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::ids::InfoHash;

/// Longest link accepted, in bytes: room for dozens of trackers, and a bound on the work a pasted
/// (or hostile) link can cause.
pub const MAX_MAGNET_LEN: usize = 16 * 1024;
/// Most `tr` (tracker) parameters kept.
pub const MAX_TRACKERS: usize = 64;
/// Most `x.pe` (peer address) parameters kept.
pub const MAX_PEERS: usize = 64;
/// Longest host name in an `x.pe` address (the DNS limit).
pub const MAX_HOST_LEN: usize = 253;

/// The prefix every magnet link starts with (compared without regard to case).
const PREFIX: &str = "magnet:?";

/// Characters left as they are when building a link: RFC 3986 "unreserved"; all else is
/// percent-encoded, so a name or tracker URL can never break the link's structure.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a magnet link was refused. Values quoted in a message are shown escaped (`{:?}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The text does not start with `magnet:?`.
    #[error("not a magnet link (it should start with `magnet:?`)")]
    NotMagnet,
    /// The link is longer than [`MAX_MAGNET_LEN`].
    #[error("magnet link of {len} bytes is longer than the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// [`MAX_MAGNET_LEN`].
        max: usize,
    },
    /// No `xt=urn:btih:` parameter.
    #[error("magnet link has no `xt=urn:btih:` info-hash")]
    NoInfoHash,
    /// The info-hash is not 40 hex or 32 base32 digits.
    #[error("magnet info-hash {0:?} is not 40 hex or 32 base32 digits")]
    BadInfoHash(String),
    /// Two `urn:btih:` topics that disagree.
    #[error("magnet link names two different info-hashes")]
    TwoInfoHashes,
    /// An `x.pe` value that is not `HOST:PORT`, `IPv4:PORT` or `[IPv6]:PORT`.
    #[error("magnet peer address {0:?} is not HOST:PORT")]
    BadPeer(String),
    /// More parameters of one kind than allowed.
    #[error("magnet link has more than {max} `{key}` parameters")]
    TooMany {
        /// The key (`tr` or `x.pe`).
        key: &'static str,
        /// Its limit.
        max: usize,
    },
}

/// A peer named by `x.pe`: an IP address, or a host name left for the caller to resolve (this
/// module does no I/O).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MagnetPeer {
    /// `IPv4:PORT` or `[IPv6]:PORT`.
    Addr(SocketAddr),
    /// `HOST:PORT`: a syntactically valid DNS name (letters, digits, `-`, `.`).
    Host {
        /// The name.
        name: String,
        /// The port (never 0).
        port: u16,
    },
}

impl fmt::Display for MagnetPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MagnetPeer::Addr(a) => write!(f, "{a}"),
            MagnetPeer::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The torrent (`xt=urn:btih:`).
    pub info_hash: InfoHash,
    /// The suggested name (`dn`), percent-decoded; invalid UTF-8 is replaced. Unchecked: treat
    /// it as text from a stranger (escape it to print it, check it before using it as a path).
    pub name: Option<String>,
    /// Tracker URLs (`tr`), percent-decoded, in order, duplicates removed; empty ones skipped.
    pub trackers: Vec<String>,
    /// Peers to try (`x.pe`), in order, duplicates removed.
    pub peers: Vec<MagnetPeer>,
}

impl Magnet {
    /// A link for a torrent: its info-hash, name and trackers (for `bt info --magnet`).
    pub fn new(info_hash: InfoHash, name: Option<String>, trackers: Vec<String>) -> Magnet {
        Magnet {
            info_hash,
            name,
            trackers,
            peers: Vec::new(),
        }
    }

    /// Parse a magnet link.
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        if link.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong {
                len: link.len(),
                max: MAX_MAGNET_LEN,
            });
        }
        let query = match link.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => &link[PREFIX.len()..],
            _ => return Err(MagnetError::NotMagnet),
        };
        let mut info_hash = None;
        let mut name = None;
        let mut trackers: Vec<String> = Vec::new();
        let mut peers: Vec<MagnetPeer> = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "xt" => {
                    let topic = decode(value, false);
                    let Some(hash) = strip_prefix_ignore_case(&topic, "urn:btih:") else {
                        continue; // another kind of topic (BEP 53 `urn:btmh:`): not ours
                    };
                    let hash = parse_hash(hash)
                        .ok_or_else(|| MagnetError::BadInfoHash(hash.to_string()))?;
                    match info_hash {
                        Some(h) if h != hash => return Err(MagnetError::TwoInfoHashes),
                        _ => info_hash = Some(hash),
                    }
                }
                // `+` is a space in names (form encoding, used by some sites).
                "dn" => name = Some(decode(value, true)),
                "tr" => {
                    let url = decode(value, false);
                    if url.is_empty() || trackers.contains(&url) {
                        continue;
                    }
                    if trackers.len() == MAX_TRACKERS {
                        return Err(MagnetError::TooMany {
                            key: "tr",
                            max: MAX_TRACKERS,
                        });
                    }
                    trackers.push(url);
                }
                "x.pe" => {
                    let peer = parse_peer(&decode(value, false))?;
                    if peers.contains(&peer) {
                        continue;
                    }
                    if peers.len() == MAX_PEERS {
                        return Err(MagnetError::TooMany {
                            key: "x.pe",
                            max: MAX_PEERS,
                        });
                    }
                    peers.push(peer);
                }
                _ => {}
            }
        }
        Ok(Magnet {
            info_hash: info_hash.ok_or(MagnetError::NoInfoHash)?,
            name,
            trackers,
            peers,
        })
    }
}

impl std::str::FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Magnet, MagnetError> {
        Magnet::parse(s)
    }
}

/// The link: `magnet:?xt=urn:btih:<hex>` then `dn`, each `tr`, each `x.pe`, percent-encoded.
impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}xt=urn:btih:{}", self.info_hash.hex())?;
        if let Some(name) = &self.name {
            write!(f, "&dn={}", utf8_percent_encode(name, ENCODE))?;
        }
        for tr in self.trackers.iter().filter(|t| !t.is_empty()) {
            write!(f, "&tr={}", utf8_percent_encode(tr, ENCODE))?;
        }
        for pe in &self.peers {
            let text = pe.to_string();
            write!(f, "&x.pe={}", utf8_percent_encode(&text, ENCODE))?;
        }
        Ok(())
    }
}

/// Percent-decode a value (invalid UTF-8 replaced), with `+` as a space when `plus_is_space`.
fn decode(value: &str, plus_is_space: bool) -> String {
    if plus_is_space && value.contains('+') {
        let spaced = value.replace('+', " ");
        return percent_decode_str(&spaced).decode_utf8_lossy().into_owned();
    }
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    match s.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(prefix) => Some(&s[prefix.len()..]),
        _ => None,
    }
}

/// 40 hex digits or 32 base32 digits (RFC 4648 alphabet, no padding), either case.
fn parse_hash(s: &str) -> Option<InfoHash> {
    match s.len() {
        40 if s.bytes().all(|b| b.is_ascii_hexdigit()) => InfoHash::from_hex(s),
        32 => base32_20(s.as_bytes()).map(InfoHash),
        _ => None,
    }
}

/// Decode 32 base32 digits into 20 bytes (32 x 5 bits = 160 bits exactly).
fn base32_20(digits: &[u8]) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let mut acc: u64 = 0;
    let mut bits = 0;
    let mut at = 0;
    for &c in digits {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(at)? = (acc >> bits) as u8;
            at += 1;
            acc &= (1 << bits) - 1;
        }
    }
    (at == 20).then_some(out)
}

/// `IPv4:PORT`, `[IPv6]:PORT` or `HOST:PORT`; port 0 is refused (nothing listens there).
fn parse_peer(s: &str) -> Result<MagnetPeer, MagnetError> {
    let bad = || MagnetError::BadPeer(s.to_string());
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return match addr.port() {
            0 => Err(bad()),
            _ => Ok(MagnetPeer::Addr(addr)),
        };
    }
    let (name, port) = s.rsplit_once(':').ok_or_else(bad)?;
    // Digits only: `u16::from_str` would also take a sign (`+881`).
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    // An address that `SocketAddr` refused only for the port's spelling (`0881`) is still an
    // address, not a host name: the link we build from it must parse back the same.
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return match port {
            0 => Err(bad()),
            _ => Ok(MagnetPeer::Addr(SocketAddr::new(ip, port))),
        };
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if port == 0 || name.is_empty() || name.len() > MAX_HOST_LEN || !name.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(MagnetPeer::Host {
        name: name.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    fn hash() -> InfoHash {
        InfoHash::from_hex(HEX).unwrap()
    }

    #[test]
    fn parses_a_full_link() {
        let link = format!(
            "magnet:?xt=urn:btih:{}&dn=My%20Album+2&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce\
             &tr=udp://t.example:80&x.pe=127.0.0.1:6881&x.pe=[::1]:7000&x.pe=Seed.example:51413\
             &xl=123&unknown&ws=http://x",
            HEX.to_uppercase()
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, hash());
        assert_eq!(m.name.as_deref(), Some("My Album 2"));
        assert_eq!(
            m.trackers,
            ["http://127.0.0.1:6969/announce", "udp://t.example:80"]
        );
        assert_eq!(
            m.peers,
            [
                MagnetPeer::Addr("127.0.0.1:6881".parse().unwrap()),
                MagnetPeer::Addr("[::1]:7000".parse().unwrap()),
                MagnetPeer::Host {
                    name: "seed.example".into(),
                    port: 51413
                },
            ]
        );
    }

    #[test]
    fn base32_and_hex_name_the_same_hash() {
        // RFC 4648 base32 of the 20 bytes above, computed independently (Python base64.b32encode).
        let b32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";
        let a = Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap();
        let b = Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{}", b32.to_lowercase())).unwrap();
        assert_eq!(a.info_hash, hash());
        assert_eq!(b.info_hash, hash());
    }

    #[test]
    fn builds_a_link_that_parses_back() {
        let mut m = Magnet::new(
            hash(),
            Some("a&b=c d%/é\u{1b}".into()),
            vec!["http://127.0.0.1:1/announce?x=1&y=2".into()],
        );
        m.peers.push(MagnetPeer::Addr("[::1]:9".parse().unwrap()));
        let link = m.to_string();
        assert!(link.starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=a%26b%3Dc%20d%25%2F")));
        assert!(!link.contains(' ') && !link.contains('\u{1b}'));
        assert_eq!(Magnet::parse(&link).unwrap(), m);
        // No name, no trackers: just the hash.
        let bare = Magnet::new(hash(), None, vec![]);
        assert_eq!(bare.to_string(), format!("magnet:?xt=urn:btih:{HEX}"));
        assert_eq!(Magnet::parse(&bare.to_string()).unwrap(), bare);
    }

    #[test]
    fn each_way_to_be_wrong_has_its_error() {
        use MagnetError::*;
        let p = |s: &str| Magnet::parse(s).unwrap_err();
        assert_eq!(p("http://x"), NotMagnet);
        assert_eq!(p(""), NotMagnet);
        assert_eq!(p("magnet:?dn=x&tr=http://t"), NoInfoHash);
        assert_eq!(p("magnet:?xt=urn:btmh:1220abcd"), NoInfoHash);
        assert!(matches!(p("magnet:?xt=urn:btih:"), BadInfoHash(_)));
        assert!(matches!(
            p(&format!("magnet:?xt=urn:btih:{HEX}0")),
            BadInfoHash(_)
        ));
        assert!(matches!(
            p(&format!("magnet:?xt=urn:btih:{}", "g".repeat(40))),
            BadInfoHash(_)
        ));
        assert!(matches!(
            p(&format!("magnet:?xt=urn:btih:{}", "1".repeat(32))),
            BadInfoHash(_)
        ));
        assert!(matches!(
            p(&format!("magnet:?xt=urn:btih:+{}", &HEX[1..])),
            BadInfoHash(_)
        ));
        let two = format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "0".repeat(40));
        assert_eq!(p(&two), TwoInfoHashes);
        let same = format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}",
            HEX.to_uppercase()
        );
        assert!(Magnet::parse(&same).is_ok());
        for peer in [
            "1.2.3.4",
            "1.2.3.4:0",
            "1.2.3.4:70000",
            ":80",
            "a..b:1",
            "-a:1",
            "a_b:1",
            "[::1:5",
        ] {
            let link = format!("magnet:?xt=urn:btih:{HEX}&x.pe={peer}");
            assert!(matches!(p(&link), BadPeer(_)), "{peer}");
        }
        let long = format!(
            "magnet:?xt=urn:btih:{HEX}&dn={}",
            "x".repeat(MAX_MAGNET_LEN)
        );
        assert!(matches!(p(&long), TooLong { .. }));
        let many: String = (0..=MAX_TRACKERS)
            .map(|i| format!("&tr=http://t{i}"))
            .collect();
        assert_eq!(
            p(&format!("magnet:?xt=urn:btih:{HEX}{many}")),
            TooMany {
                key: "tr",
                max: MAX_TRACKERS
            }
        );
        let many: String = (0..=MAX_PEERS)
            .map(|i| format!("&x.pe=10.0.0.1:{}", i + 1))
            .collect();
        assert_eq!(
            p(&format!("magnet:?xt=urn:btih:{HEX}{many}")),
            TooMany {
                key: "x.pe",
                max: MAX_PEERS
            }
        );
        // The error text shows a hostile value escaped.
        let e = p("magnet:?xt=urn:btih:\u{1b}[2J");
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[test]
    fn fuzz_regression_signed_or_padded_port() {
        // Found by the `extension` fuzz target: `127.0.0.1:+881` became a host named
        // `127.0.0.1`, which the link built from it parsed back as an address.
        let link = format!("magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:+881");
        assert!(matches!(Magnet::parse(&link), Err(MagnetError::BadPeer(_))));
        let link = format!("magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:0881");
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(
            m.peers,
            [MagnetPeer::Addr("127.0.0.1:881".parse().unwrap())]
        );
        assert_eq!(Magnet::parse(&m.to_string()).unwrap(), m);
        let link = format!("magnet:?xt=urn:btih:{HEX}&x.pe=host:-1");
        assert!(matches!(Magnet::parse(&link), Err(MagnetError::BadPeer(_))));
    }

    #[test]
    fn duplicates_and_odd_but_harmless_input() {
        let link = format!("magnet:?&&xt=urn:btih:{HEX}&tr=http://a&tr=http://a&tr=&dn=%ff%fe&x.pe=127.0.0.1:1&x.pe=127.0.0.1:1&=&%%");
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.trackers, ["http://a"]);
        assert_eq!(m.peers.len(), 1);
        assert_eq!(m.name.as_deref(), Some("\u{fffd}\u{fffd}"));
        // Multi-byte text never splits a char when checking the prefix.
        assert_eq!(Magnet::parse("magnét:?xt"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("é"), Err(MagnetError::NotMagnet));
    }
}
