//! The UDP tracker protocol (BEP 15): connect, announce, scrape and error datagrams, both ways.
//!
//! Every value is big-endian. A client first sends *connect* (the magic [`PROTOCOL_ID`] in
//! place of a connection id) and gets a connection id back; *announce* (98 bytes) and
//! *scrape* (16 + 20 per info-hash) then carry that id. Answers repeat the client's
//! transaction id. An announce answer's peers are 6-byte IPv4 records when the request came
//! over IPv4, 18-byte IPv6 records when it came over IPv6; the caller says which.
//!
//! Pure: bytes in, values out. Every length is checked before a field is read; datagrams
//! longer than a request needs are accepted (BEP 41 appends options to an announce), shorter
//! ones are refused, and nothing here allocates more than the datagram's own length allows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::query::{AnnounceRequest, Event};
use super::scrape::ScrapeStats;

/// The connection id of a connect request: identifies the protocol.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Action of a connect datagram.
pub const ACTION_CONNECT: u32 = 0;
/// Action of an announce datagram.
pub const ACTION_ANNOUNCE: u32 = 1;
/// Action of a scrape datagram.
pub const ACTION_SCRAPE: u32 = 2;
/// Action of an error answer.
pub const ACTION_ERROR: u32 = 3;

/// Bytes of a connect request and of its answer.
pub const CONNECT_LEN: usize = 16;
/// Bytes of an announce request (without BEP 41 options).
pub const ANNOUNCE_LEN: usize = 98;
/// Bytes of an announce answer before its peers.
pub const ANNOUNCE_ANSWER_HEAD: usize = 20;
/// Most info-hashes one scrape may name: 74 keeps request (1,496 bytes) and answer (896) in
/// one unfragmented datagram on a 1,500-byte link, which is why BEP 15 names the number.
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Largest datagram this codec reads: the largest scrape, plus room for BEP 41 options on an
/// announce. The server drops anything longer unread.
pub const MAX_DATAGRAM: usize = 2048;
/// Longest error message kept from an answer (longer ones are cut).
const MAX_MESSAGE: usize = 1024;
/// Largest byte count kept from `downloaded`, `left`, `uploaded` (as the HTTP parser's cap).
const MAX_BYTE_COUNT: u64 = 1 << 53;

/// Bytes of one IPv4 peer record.
const PEER_V4: usize = 6;
/// Bytes of one IPv6 peer record.
const PEER_V6: usize = 18;

/// Why a datagram could not be read. The server answers none of these except through
/// [`UdpError::transaction_id`] (and then only if the answer is no larger than the request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    /// Fewer bytes than the action needs.
    #[error("datagram of {got} bytes is too short: {what} needs {need}")]
    Short {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes received.
        got: usize,
    },
    /// An action this side does not take.
    #[error("unknown action {0}")]
    UnknownAction(u32),
    /// A connect request without the protocol id.
    #[error("not a BEP 15 connect request (protocol id missing)")]
    NotBep15,
    /// A scrape that names no info-hash, or a partial one.
    #[error("scrape must name 1 to {MAX_SCRAPE_HASHES} whole 20-byte info-hashes")]
    BadScrape,
    /// A scrape naming more than [`MAX_SCRAPE_HASHES`] torrents.
    #[error("too many info-hashes: at most {MAX_SCRAPE_HASHES} per scrape")]
    TooManyHashes,
    /// An announce whose listen port is 0.
    #[error("port is 0")]
    ZeroPort,
    /// An announce with an event number outside 0..=3.
    #[error("unknown event {0}")]
    BadEvent(u32),
    /// An answer whose peer list is not a whole number of records.
    #[error("peer list of {0} bytes is not a whole number of peer records")]
    PartialPeer(usize),
}

/// A request, as a tracker receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Ask for a connection id.
    Connect {
        /// Chosen by the client, echoed in the answer.
        transaction_id: u32,
    },
    /// Announce (the fields BEP 15 shares with HTTP are in `request`).
    Announce(Announce),
    /// Ask for the counts of some torrents.
    Scrape {
        /// The id from a connect answer.
        connection_id: u64,
        /// Chosen by the client, echoed in the answer.
        transaction_id: u32,
        /// 1 to [`MAX_SCRAPE_HASHES`] torrents.
        info_hashes: Vec<[u8; 20]>,
    },
}

/// An announce datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The id from a connect answer.
    pub connection_id: u64,
    /// Chosen by the client, echoed in the answer.
    pub transaction_id: u32,
    /// The announce itself. `numwant` is `None` for BEP 15's -1 ("default"); `ip` is the
    /// claimed IPv4 address when not 0; `key` is the 32-bit key in hex; `compact` is true.
    pub request: AnnounceRequest,
}

/// An answer, as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A connection id, valid about a minute.
    Connect {
        /// The client's transaction id.
        transaction_id: u32,
        /// The id to put in announces and scrapes.
        connection_id: u64,
    },
    /// An announce answer.
    Announce {
        /// The client's transaction id.
        transaction_id: u32,
        /// Seconds until the next regular announce.
        interval: u32,
        /// Leechers in the swarm.
        leechers: u32,
        /// Seeders in the swarm.
        seeders: u32,
        /// Peers to connect to.
        peers: Vec<SocketAddr>,
    },
    /// A scrape answer: one entry per info-hash asked, in order.
    Scrape {
        /// The client's transaction id.
        transaction_id: u32,
        /// Counts per torrent.
        stats: Vec<ScrapeStats>,
    },
    /// The tracker refused; the message is for a person.
    Error {
        /// The client's transaction id.
        transaction_id: u32,
        /// Why (lossily decoded as UTF-8, cut at 1 KiB).
        message: String,
    },
}

impl Response {
    /// The transaction id the answer carries.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }
}

/// A cursor over a datagram: each read checks the length first.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    what: &'static str,
    need: usize,
}

impl<'a> Reader<'a> {
    /// A reader that first checks `buf` holds the `need` bytes `what` takes.
    fn new(buf: &'a [u8], what: &'static str, need: usize) -> Result<Reader<'a>, UdpError> {
        if buf.len() < need {
            return Err(UdpError::Short {
                what,
                need,
                got: buf.len(),
            });
        }
        Ok(Reader {
            buf,
            at: 0,
            what,
            need,
        })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], UdpError> {
        let end = self.at + N;
        let slice = self.buf.get(self.at..end).ok_or(UdpError::Short {
            what: self.what,
            need: self.need.max(end),
            got: self.buf.len(),
        })?;
        self.at = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, UdpError> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, UdpError> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, UdpError> {
        self.take().map(u64::from_be_bytes)
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.at.min(self.buf.len())..]
    }
}

/// The action and transaction id of a datagram of at least 16 bytes that looks like a request
/// (so that an error can be answered to it), else `None`.
pub fn request_header(buf: &[u8]) -> Option<(u32, u32)> {
    let action = u32::from_be_bytes(buf.get(8..12)?.try_into().ok()?);
    let transaction_id = u32::from_be_bytes(buf.get(12..16)?.try_into().ok()?);
    Some((action, transaction_id))
}

/// A byte count from BEP 15's signed 64-bit field: negative (some clients send -1 for
/// "unknown") counts as the cap, so an unknown `left` is never taken for a seeder.
fn byte_count(raw: u64) -> u64 {
    match raw as i64 {
        n if n < 0 => MAX_BYTE_COUNT,
        n => (n as u64).min(MAX_BYTE_COUNT),
    }
}

impl Request {
    /// Read a request datagram.
    pub fn parse(buf: &[u8]) -> Result<Request, UdpError> {
        let mut r = Reader::new(buf, "a request", CONNECT_LEN)?;
        let connection_id = r.u64()?;
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT if connection_id == PROTOCOL_ID => {
                Ok(Request::Connect { transaction_id })
            }
            ACTION_CONNECT => Err(UdpError::NotBep15),
            ACTION_ANNOUNCE => {
                let mut r = Reader::new(buf, "an announce", ANNOUNCE_LEN)?;
                r.at = CONNECT_LEN;
                let info_hash = r.take::<20>()?;
                let peer_id = r.take::<20>()?;
                let downloaded = byte_count(r.u64()?);
                let left = byte_count(r.u64()?);
                let uploaded = byte_count(r.u64()?);
                let event = match r.u32()? {
                    0 => Event::None,
                    1 => Event::Completed,
                    2 => Event::Started,
                    3 => Event::Stopped,
                    n => return Err(UdpError::BadEvent(n)),
                };
                let ip = r.u32()?;
                let key = r.u32()?;
                let numwant = r.u32()? as i32;
                let port = r.u16()?;
                if port == 0 {
                    return Err(UdpError::ZeroPort);
                }
                Ok(Request::Announce(Announce {
                    connection_id,
                    transaction_id,
                    request: AnnounceRequest {
                        info_hash,
                        peer_id,
                        port,
                        uploaded,
                        downloaded,
                        left,
                        event,
                        compact: true,
                        no_peer_id: true,
                        numwant: u32::try_from(numwant).ok(),
                        key: Some(format!("{key:08x}")),
                        ip: (ip != 0).then(|| Ipv4Addr::from(ip).to_string()),
                    },
                }))
            }
            ACTION_SCRAPE => {
                let hashes = r.rest();
                if hashes.len() > MAX_SCRAPE_HASHES * 20 {
                    return Err(UdpError::TooManyHashes);
                }
                if hashes.is_empty() || hashes.len() % 20 != 0 {
                    return Err(UdpError::BadScrape);
                }
                let info_hashes = hashes
                    .chunks_exact(20)
                    .map(|c| {
                        let mut h = [0u8; 20];
                        h.copy_from_slice(c);
                        h
                    })
                    .collect();
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }
            n => Err(UdpError::UnknownAction(n)),
        }
    }

    /// Append the datagram to `out`. `key` goes out as the low 32 bits of the hex `key` (0
    /// when absent or not hex), `ip` as 0 unless it is an IPv4 address.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce(a) => {
                let q = &a.request;
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(&q.info_hash);
                out.extend_from_slice(&q.peer_id);
                out.extend_from_slice(&q.downloaded.to_be_bytes());
                out.extend_from_slice(&q.left.to_be_bytes());
                out.extend_from_slice(&q.uploaded.to_be_bytes());
                let event: u32 = match q.event {
                    Event::None => 0,
                    Event::Completed => 1,
                    Event::Started => 2,
                    Event::Stopped => 3,
                };
                out.extend_from_slice(&event.to_be_bytes());
                let ip =
                    q.ip.as_deref()
                        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                        .map_or(0, u32::from);
                out.extend_from_slice(&ip.to_be_bytes());
                let key = q
                    .key
                    .as_deref()
                    .and_then(|k| u64::from_str_radix(k, 16).ok())
                    .map_or(0, |k| k as u32);
                out.extend_from_slice(&key.to_be_bytes());
                let numwant = q
                    .numwant
                    .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
                out.extend_from_slice(&numwant.to_be_bytes());
                out.extend_from_slice(&q.port.to_be_bytes());
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes.iter().take(MAX_SCRAPE_HASHES) {
                    out.extend_from_slice(h);
                }
            }
        }
    }
}

impl Response {
    /// Read an answer. `ipv6` says the request went over IPv6 (peers are 18-byte records).
    pub fn parse(buf: &[u8], ipv6: bool) -> Result<Response, UdpError> {
        let mut r = Reader::new(buf, "an answer", 8)?;
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT => {
                let mut r = Reader::new(buf, "a connect answer", CONNECT_LEN)?;
                r.at = 8;
                Ok(Response::Connect {
                    transaction_id,
                    connection_id: r.u64()?,
                })
            }
            ACTION_ANNOUNCE => {
                let mut r = Reader::new(buf, "an announce answer", ANNOUNCE_ANSWER_HEAD)?;
                r.at = 8;
                let interval = r.u32()?;
                let leechers = r.u32()?;
                let seeders = r.u32()?;
                let rest = r.rest();
                let size = if ipv6 { PEER_V6 } else { PEER_V4 };
                if rest.len() % size != 0 {
                    return Err(UdpError::PartialPeer(rest.len()));
                }
                let peers = rest
                    .chunks_exact(size)
                    .map(|c| {
                        let (ip, port) = c.split_at(size - 2);
                        let port = u16::from_be_bytes([port[0], port[1]]);
                        let ip: IpAddr = match <[u8; 4]>::try_from(ip) {
                            Ok(v4) => Ipv4Addr::from(v4).into(),
                            Err(_) => {
                                Ipv6Addr::from(<[u8; 16]>::try_from(ip).unwrap_or_default()).into()
                            }
                        };
                        SocketAddr::new(ip, port)
                    })
                    .collect();
                Ok(Response::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                })
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                if rest.len() % 12 != 0 || rest.len() > MAX_SCRAPE_HASHES * 12 {
                    return Err(UdpError::BadScrape);
                }
                let stats = rest
                    .chunks_exact(12)
                    .map(|c| {
                        let n = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                        ScrapeStats {
                            complete: n(0),
                            downloaded: n(4),
                            incomplete: n(8),
                        }
                    })
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => {
                let rest = r.rest();
                let mut message =
                    String::from_utf8_lossy(&rest[..rest.len().min(MAX_MESSAGE)]).into_owned();
                // Replacement characters may have made it longer: cut at a character boundary.
                let mut end = message.len().min(MAX_MESSAGE);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                Ok(Response::Error {
                    transaction_id,
                    message,
                })
            }
            n => Err(UdpError::UnknownAction(n)),
        }
    }

    /// Append the datagram to `out`. Announce peers go out in the family of each address; the
    /// caller puts only one family in one answer.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                for p in peers {
                    put_peer(out, *p);
                }
            }
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for s in stats.iter().take(MAX_SCRAPE_HASHES) {
                    out.extend_from_slice(&s.complete.to_be_bytes());
                    out.extend_from_slice(&s.downloaded.to_be_bytes());
                    out.extend_from_slice(&s.incomplete.to_be_bytes());
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                put_error(out, *transaction_id, message);
            }
        }
    }
}

/// Append an error answer (action 3) with `message`.
pub fn put_error(out: &mut Vec<u8>, transaction_id: u32, message: &str) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
}

/// Append one peer record: 4 + 2 bytes for IPv4, 16 + 2 for IPv6 (an IPv4-mapped IPv6
/// address stays 16 bytes: the caller folds addresses to one family before).
pub fn put_peer(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> Announce {
        Announce {
            connection_id: 0x1122_3344_5566_7788,
            transaction_id: 0xdead_beef,
            request: AnnounceRequest {
                left: 1234,
                downloaded: 7,
                uploaded: 9,
                event: Event::Started,
                no_peer_id: true,
                numwant: Some(30),
                key: Some("0000abcd".into()),
                ip: Some("10.1.2.3".into()),
                ..AnnounceRequest::new([1; 20], [2; 20], 6881)
            },
        }
    }

    fn bytes(r: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
    }

    #[test]
    fn connect_matches_bep_15_byte_for_byte() {
        let out = bytes(&Request::Connect {
            transaction_id: 0x0102_0304,
        });
        assert_eq!(
            out,
            [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]
        );
        assert_eq!(
            Request::parse(&out),
            Ok(Request::Connect {
                transaction_id: 0x0102_0304
            })
        );
        let mut wrong = out.clone();
        wrong[0] = 1;
        assert_eq!(Request::parse(&wrong), Err(UdpError::NotBep15));
    }

    #[test]
    fn announce_is_98_bytes_at_bep_15_offsets_and_round_trips() {
        let a = announce();
        let out = bytes(&Request::Announce(a.clone()));
        assert_eq!(out.len(), ANNOUNCE_LEN);
        assert_eq!(&out[8..12], &[0, 0, 0, 1]);
        assert_eq!(&out[16..36], &[1; 20]);
        assert_eq!(&out[36..56], &[2; 20]);
        assert_eq!(&out[56..64], &7u64.to_be_bytes()); // downloaded
        assert_eq!(&out[64..72], &1234u64.to_be_bytes()); // left
        assert_eq!(&out[72..80], &9u64.to_be_bytes()); // uploaded
        assert_eq!(&out[80..84], &[0, 0, 0, 2]); // started
        assert_eq!(&out[84..88], &[10, 1, 2, 3]);
        assert_eq!(&out[88..92], &[0, 0, 0xab, 0xcd]);
        assert_eq!(&out[92..96], &30u32.to_be_bytes());
        assert_eq!(&out[96..98], &6881u16.to_be_bytes());
        assert_eq!(Request::parse(&out), Ok(Request::Announce(a.clone())));
        // BEP 41 options after the 98 bytes are ignored.
        let mut longer = out.clone();
        longer.extend_from_slice(&[2, 5, b'/', b'a', b'n', b'n', b'o', 0]);
        assert_eq!(Request::parse(&longer), Ok(Request::Announce(a)));
        // numwant -1 means "default"; a negative `left` is "unknown", never a seeder.
        let mut def = out.clone();
        def[92..96].copy_from_slice(&(-1i32).to_be_bytes());
        def[64..72].copy_from_slice(&(-1i64).to_be_bytes());
        let Ok(Request::Announce(d)) = Request::parse(&def) else {
            panic!("not an announce")
        };
        assert_eq!(d.request.numwant, None);
        assert_eq!(d.request.left, MAX_BYTE_COUNT);
        // Port 0 and unknown events are refused.
        let mut zero = out.clone();
        zero[96..98].copy_from_slice(&[0, 0]);
        assert_eq!(Request::parse(&zero), Err(UdpError::ZeroPort));
        let mut ev = out;
        ev[80..84].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(Request::parse(&ev), Err(UdpError::BadEvent(9)));
    }

    #[test]
    fn scrape_round_trips_and_is_bounded() {
        let req = Request::Scrape {
            connection_id: 5,
            transaction_id: 6,
            info_hashes: vec![[3; 20], [4; 20]],
        };
        let out = bytes(&req);
        assert_eq!(out.len(), 16 + 40);
        assert_eq!(Request::parse(&out), Ok(req));
        let most = Request::Scrape {
            connection_id: 5,
            transaction_id: 6,
            info_hashes: vec![[9; 20]; MAX_SCRAPE_HASHES],
        };
        let mut out = bytes(&most);
        assert!(Request::parse(&out).is_ok());
        out.extend_from_slice(&[9; 20]);
        assert_eq!(Request::parse(&out), Err(UdpError::TooManyHashes));
        assert_eq!(Request::parse(&out[..16]), Err(UdpError::BadScrape));
        assert_eq!(Request::parse(&out[..16 + 19]), Err(UdpError::BadScrape));
    }

    #[test]
    fn answers_round_trip_in_both_families() {
        let v4 = Response::Announce {
            transaction_id: 1,
            interval: 1800,
            leechers: 3,
            seeders: 4,
            peers: vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:1".parse().unwrap(),
            ],
        };
        let mut out = Vec::new();
        v4.encode(&mut out);
        assert_eq!(out.len(), ANNOUNCE_ANSWER_HEAD + 2 * 6);
        assert_eq!(&out[20..26], &[127, 0, 0, 1, 0x1a, 0xe1]);
        assert_eq!(Response::parse(&out, false), Ok(v4));
        // An IPv4 list read as IPv6 is 12 bytes: not whole 18-byte records.
        assert_eq!(Response::parse(&out, true), Err(UdpError::PartialPeer(12)));
        let v6 = Response::Announce {
            transaction_id: 2,
            interval: 60,
            leechers: 0,
            seeders: 1,
            peers: vec!["[::1]:7000".parse().unwrap()],
        };
        let mut out = Vec::new();
        v6.encode(&mut out);
        assert_eq!(out.len(), ANNOUNCE_ANSWER_HEAD + 18);
        assert_eq!(Response::parse(&out, true), Ok(v6));
        for r in [
            Response::Connect {
                transaction_id: 7,
                connection_id: 0xfeed,
            },
            Response::Scrape {
                transaction_id: 8,
                stats: vec![ScrapeStats {
                    complete: 1,
                    incomplete: 2,
                    downloaded: 3,
                }],
            },
            Response::Error {
                transaction_id: 9,
                message: "torrent not allowed".into(),
            },
        ] {
            let mut out = Vec::new();
            r.encode(&mut out);
            assert_eq!(Response::parse(&out, false).as_ref(), Ok(&r));
            assert_eq!(r.transaction_id(), out[7] as u32);
        }
        // Scrape order on the wire: seeders, completed, leechers.
        let mut out = Vec::new();
        Response::Scrape {
            transaction_id: 0,
            stats: vec![ScrapeStats {
                complete: 1,
                incomplete: 2,
                downloaded: 3,
            }],
        }
        .encode(&mut out);
        assert_eq!(&out[8..], &[0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2]);
    }

    #[test]
    fn every_truncation_of_every_datagram_is_an_error_not_a_panic() {
        let mut requests = Vec::new();
        for r in [
            Request::Connect { transaction_id: 1 },
            Request::Announce(announce()),
            Request::Scrape {
                connection_id: 1,
                transaction_id: 2,
                info_hashes: vec![[1; 20]],
            },
        ] {
            requests.push(bytes(&r));
        }
        for full in &requests {
            for cut in 0..full.len() {
                assert!(
                    Request::parse(&full[..cut]).is_err(),
                    "{cut} of {}",
                    full.len()
                );
            }
        }
        let mut answers = Vec::new();
        for r in [
            Response::Connect {
                transaction_id: 1,
                connection_id: 2,
            },
            Response::Announce {
                transaction_id: 1,
                interval: 2,
                leechers: 3,
                seeders: 4,
                peers: vec![],
            },
        ] {
            let mut out = Vec::new();
            r.encode(&mut out);
            answers.push(out);
        }
        for full in &answers {
            for cut in 0..full.len() {
                assert!(Response::parse(&full[..cut], false).is_err());
            }
        }
        assert_eq!(
            Request::parse(&[0; 15]),
            Err(UdpError::Short {
                what: "a request",
                need: 16,
                got: 15
            })
        );
        let mut unknown = bytes(&Request::Connect { transaction_id: 1 });
        unknown[11] = 9;
        assert_eq!(Request::parse(&unknown), Err(UdpError::UnknownAction(9)));
        assert_eq!(request_header(&unknown), Some((9, 1)));
        assert_eq!(request_header(&unknown[..15]), None);
    }

    #[test]
    fn garbage_never_panics_and_error_text_is_bounded() {
        // A deterministic spray of lengths and bytes (the fuzz target does the real search).
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for len in 0..600 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = Request::parse(&buf);
            if let Ok(Response::Error { message, .. }) = Response::parse(&buf, len % 2 == 0) {
                assert!(message.len() <= MAX_MESSAGE);
            }
        }
        let mut long = vec![0, 0, 0, 3, 0, 0, 0, 1];
        long.extend(vec![b'x'; 5000]);
        let Ok(Response::Error { message, .. }) = Response::parse(&long, false) else {
            panic!("not an error answer")
        };
        assert_eq!(message.len(), MAX_MESSAGE);
        // Invalid UTF-8 becomes U+FFFD (3 bytes): still at most MAX_MESSAGE bytes.
        let mut bad = vec![0, 0, 0, 3, 0, 0, 0, 1];
        bad.extend(vec![0xff; 5000]);
        let Ok(Response::Error { message, .. }) = Response::parse(&bad, false) else {
            panic!("not an error answer")
        };
        assert!(message.len() <= MAX_MESSAGE && message.len() > MAX_MESSAGE - 3);
    }
}
