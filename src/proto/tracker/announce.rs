//! The announce answer: interval, swarm counts and peers, compact (BEP 23 `peers`, BEP 7
//! `peers6`) or as a list of dictionaries.
//!
//! Encoding writes bencode by hand (it runs once per announce on the tracker); the tests compare
//! it byte for byte with the reference encoder. Parsing accepts every peer form real trackers
//! send and skips peer entries it cannot use rather than failing the whole answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{check_failure, int_u32, put_bytes, put_int, put_key_int, TrackerError};
use crate::proto::bencode::{self, as_dict, DictExt, Value};

/// Bytes of one compact IPv4 peer: address and port, big-endian.
const COMPACT_V4: usize = 6;
/// Bytes of one compact IPv6 peer.
const COMPACT_V6: usize = 18;

/// One peer in an announce answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerEntry {
    /// Where the peer listens.
    pub addr: SocketAddr,
    /// Its peer id, when known (never in compact form).
    pub peer_id: Option<[u8; 20]>,
}

/// The answer to an announce that the tracker accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// Seconds the peer should wait before its next regular announce.
    pub interval: u32,
    /// Seconds the peer must wait at least before announcing again, if the tracker says.
    pub min_interval: Option<u32>,
    /// Seeders in the swarm.
    pub complete: u32,
    /// Leechers in the swarm.
    pub incomplete: u32,
    /// Peers to connect to.
    pub peers: Vec<PeerEntry>,
    /// A `warning message` to show the user; the announce still counts.
    pub warning: Option<String>,
}

impl AnnounceResponse {
    /// The bencoded body. `compact` writes IPv4 peers as 6-byte records in `peers` and IPv6 ones
    /// as 18-byte records in `peers6`; otherwise `peers` is a list of `ip`/`port`/`peer id`
    /// dictionaries (`peer id` left out with `no_peer_id` or when unknown).
    pub fn encode(&self, compact: bool, no_peer_id: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.peers.len() * if compact { 6 } else { 64 });
        out.push(b'd');
        put_key_int(&mut out, b"complete", self.complete.into());
        put_key_int(&mut out, b"incomplete", self.incomplete.into());
        put_key_int(&mut out, b"interval", self.interval.into());
        if let Some(min) = self.min_interval {
            put_key_int(&mut out, b"min interval", min.into());
        }
        put_bytes(&mut out, b"peers");
        if compact {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for p in &self.peers {
                match canonical(p.addr) {
                    SocketAddr::V4(a) => {
                        v4.extend(a.ip().octets().iter().chain(&a.port().to_be_bytes()))
                    }
                    SocketAddr::V6(a) => {
                        v6.extend(a.ip().octets().iter().chain(&a.port().to_be_bytes()))
                    }
                }
            }
            put_bytes(&mut out, &v4);
            if !v6.is_empty() {
                put_bytes(&mut out, b"peers6");
                put_bytes(&mut out, &v6);
            }
        } else {
            out.push(b'l');
            for p in &self.peers {
                let addr = canonical(p.addr);
                out.push(b'd');
                put_bytes(&mut out, b"ip");
                put_bytes(&mut out, addr.ip().to_string().as_bytes());
                if let (Some(id), false) = (p.peer_id, no_peer_id) {
                    put_bytes(&mut out, b"peer id");
                    put_bytes(&mut out, &id);
                }
                put_bytes(&mut out, b"port");
                put_int(&mut out, addr.port().into());
                out.push(b'e');
            }
            out.push(b'e');
        }
        if let Some(w) = &self.warning {
            put_bytes(&mut out, b"warning message");
            put_bytes(&mut out, w.as_bytes());
        }
        out.push(b'e');
        out
    }

    /// Parse a tracker's answer. `failure reason` becomes [`TrackerError::Failure`]; `peers` may be
    /// compact or a dictionary list, and `peers6` adds IPv6 peers. Dictionary entries whose `ip`
    /// is not an IP address (BEP 3 allows DNS names), and peers of either form whose port is 0 or
    /// out of range, are skipped.
    pub fn parse(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
        let value = bencode::decode(body)?;
        let d = as_dict(&value, "response")?;
        check_failure(d)?;
        let mut peers = Vec::new();
        match d.raw("peers") {
            None => {}
            Some(Value::Bytes(b)) => compact_peers(b, COMPACT_V4, &mut peers)?,
            Some(Value::List(list)) => peers.extend(list.iter().filter_map(dict_peer)),
            Some(_) => return Err(bencode::type_err("peers", "a byte string or a list").into()),
        }
        if let Some(b) = d.opt_bytes("peers6")? {
            compact_peers(b, COMPACT_V6, &mut peers)?;
        }
        Ok(AnnounceResponse {
            interval: int_u32(d, "interval")?
                .ok_or(bencode::BencodeError::Missing("interval".into()))?,
            min_interval: int_u32(d, "min interval")?,
            complete: int_u32(d, "complete")?.unwrap_or(0),
            incomplete: int_u32(d, "incomplete")?.unwrap_or(0),
            peers,
            warning: d.opt_text("warning message")?,
        })
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports) as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Split a compact peer string into records of `size` bytes (6: IPv4, 18: IPv6). A record with
/// port 0 cannot be dialled and is skipped, as in the dictionary form.
fn compact_peers(b: &[u8], size: usize, out: &mut Vec<PeerEntry>) -> Result<(), TrackerError> {
    if !b.len().is_multiple_of(size) {
        let key = if size == COMPACT_V4 {
            "peers"
        } else {
            "peers6"
        };
        return Err(TrackerError::Malformed(format!(
            "`{key}` is {} bytes, not a multiple of {size}",
            b.len()
        )));
    }
    out.extend(b.chunks_exact(size).filter_map(|rec| {
        let (ip, port) = rec.split_at(size - 2);
        let port = u16::from_be_bytes([port[0], port[1]]);
        let ip = match <[u8; 4]>::try_from(ip) {
            Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
            Err(_) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).unwrap_or_default())),
        };
        (port != 0).then_some(PeerEntry {
            addr: SocketAddr::new(ip, port),
            peer_id: None,
        })
    }));
    Ok(())
}

/// One `{ip, port, peer id}` dictionary, if usable.
fn dict_peer(v: &Value<'static>) -> Option<PeerEntry> {
    let d = as_dict(v, "peer").ok()?;
    let ip: IpAddr = std::str::from_utf8(d.opt_bytes("ip").ok()??)
        .ok()?
        .parse()
        .ok()?;
    let port = u16::try_from(d.opt_int("port").ok()??)
        .ok()
        .filter(|&p| p != 0)?;
    let peer_id = d
        .opt_bytes("peer id")
        .ok()
        .flatten()
        .and_then(|b| <[u8; 20]>::try_from(b).ok());
    Some(PeerEntry {
        addr: SocketAddr::new(ip, port),
        peer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bencode::{bytes, key, text, Dict};

    fn peer(addr: &str, id: Option<u8>) -> PeerEntry {
        PeerEntry {
            addr: addr.parse().unwrap(),
            peer_id: id.map(|b| [b; 20]),
        }
    }

    fn sample() -> AnnounceResponse {
        AnnounceResponse {
            interval: 1800,
            min_interval: Some(60),
            complete: 3,
            incomplete: 4,
            peers: vec![
                peer("127.0.0.1:6881", Some(b'a')),
                peer("10.1.2.3:65535", Some(0)),
                peer("[::1]:6882", Some(0xff)),
                peer("[2001:db8::7]:1", Some(b'z')),
            ],
            warning: Some("be nice".into()),
        }
    }

    /// The same answer built with the reference encoder.
    fn reference(r: &AnnounceResponse, compact: bool, no_peer_id: bool) -> Vec<u8> {
        let mut d = Dict::new();
        let int = |n: u32| Value::Integer(n.into());
        d.insert(key("interval"), int(r.interval));
        d.insert(key("complete"), int(r.complete));
        d.insert(key("incomplete"), int(r.incomplete));
        if let Some(m) = r.min_interval {
            d.insert(key("min interval"), int(m));
        }
        if let Some(w) = &r.warning {
            d.insert(key("warning message"), text(w));
        }
        if compact {
            let (mut v4, mut v6) = (vec![], vec![]);
            for p in &r.peers {
                match p.addr {
                    SocketAddr::V4(a) => {
                        v4.extend([&a.ip().octets()[..], &a.port().to_be_bytes()].concat())
                    }
                    SocketAddr::V6(a) => {
                        v6.extend([&a.ip().octets()[..], &a.port().to_be_bytes()].concat())
                    }
                }
            }
            d.insert(key("peers"), bytes(v4));
            if !v6.is_empty() {
                d.insert(key("peers6"), bytes(v6));
            }
        } else {
            let list = r.peers.iter().map(|p| {
                let mut pd = Dict::new();
                pd.insert(key("ip"), text(&p.addr.ip().to_string()));
                pd.insert(key("port"), Value::Integer(p.addr.port().into()));
                if let (Some(id), false) = (p.peer_id, no_peer_id) {
                    pd.insert(key("peer id"), bytes(id.to_vec()));
                }
                Value::Dict(pd)
            });
            d.insert(key("peers"), Value::List(list.collect()));
        }
        bencode::encode(&Value::Dict(d))
    }

    #[test]
    fn encoding_matches_the_reference_encoder() {
        let mut r = sample();
        for (compact, no_id) in [(true, false), (false, false), (false, true)] {
            assert_eq!(r.encode(compact, no_id), reference(&r, compact, no_id));
        }
        r.min_interval = None;
        r.warning = None;
        r.peers.retain(|p| p.addr.is_ipv4());
        assert_eq!(r.encode(true, false), reference(&r, true, false));
        r.peers.clear();
        assert_eq!(
            r.encode(true, false),
            b"d8:completei3e10:incompletei4e8:intervali1800e5:peers0:e"
        );
        assert_eq!(
            r.encode(false, false),
            b"d8:completei3e10:incompletei4e8:intervali1800e5:peerslee"
        );
    }

    #[test]
    fn compact_round_trip_keeps_addresses_and_splits_families() {
        let r = sample();
        let body = r.encode(true, false);
        assert!(
            body.windows(11).any(|w| w == b"6:peers636:"),
            "two 18-byte IPv6 records"
        );
        let back = AnnounceResponse::parse(&body).unwrap();
        let want: Vec<PeerEntry> = r
            .peers
            .iter()
            .map(|p| PeerEntry {
                peer_id: None,
                ..*p
            })
            .collect();
        assert_eq!(back, AnnounceResponse { peers: want, ..r });
    }

    #[test]
    fn dict_round_trip_keeps_peer_ids() {
        let r = sample();
        assert_eq!(AnnounceResponse::parse(&r.encode(false, false)).unwrap(), r);
        let no_ids = AnnounceResponse::parse(&r.encode(false, true)).unwrap();
        assert!(no_ids.peers.iter().all(|p| p.peer_id.is_none()));
    }

    #[test]
    fn mapped_ipv6_is_sent_as_ipv4() {
        let r = AnnounceResponse {
            peers: vec![peer("[::ffff:127.0.0.1]:7000", None)],
            ..AnnounceResponse::default()
        };
        let back = AnnounceResponse::parse(&r.encode(true, false)).unwrap();
        assert_eq!(back.peers, vec![peer("127.0.0.1:7000", None)]);
        let back = AnnounceResponse::parse(&r.encode(false, false)).unwrap();
        assert_eq!(back.peers, vec![peer("127.0.0.1:7000", None)]);
    }

    #[test]
    fn parses_foreign_answers() {
        // opentracker style: compact, no min interval.
        let body = b"d8:completei1e10:downloadedi0e10:incompletei0e8:intervali1800e12:min intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
        let r = AnnounceResponse::parse(body).unwrap();
        assert_eq!(
            (r.interval, r.min_interval, r.complete),
            (1800, Some(900), 1)
        );
        assert_eq!(r.peers, vec![peer("127.0.0.1:6881", None)]);
        // A dict list with a DNS name, a bad port, a short id and a non-dict: only usable ones stay.
        let body = b"d8:intervali60e5:peersld2:ip9:127.0.0.24:porti80eed2:ip5:a.com4:porti1eed2:ip3:::14:porti0eed2:ip3:::17:peer id2:xx4:porti9eei5eee";
        let r = AnnounceResponse::parse(body).unwrap();
        assert_eq!(
            r.peers,
            vec![peer("127.0.0.2:80", None), peer("[::1]:9", None)]
        );
        assert_eq!((r.complete, r.incomplete, r.warning), (0, 0, None));
    }

    #[test]
    fn compact_peers_with_port_zero_are_skipped_like_dict_ones() {
        // Found by the tracker_response fuzz target: the compact form kept a port-0 peer that
        // the dictionary form drops, so the two forms of one answer disagreed.
        let body = b"d8:intervali60e5:peers12:\x80\x00\x00\x00\x00\x00\x00\x03\x02\x03\xc8\xd5e";
        let r = AnnounceResponse::parse(body).unwrap();
        assert_eq!(r.peers, vec![peer("0.3.2.3:51413", None)]);
        assert_eq!(AnnounceResponse::parse(&r.encode(false, false)).unwrap(), r);
    }

    #[test]
    fn failures_and_bad_bodies_are_errors() {
        let f = AnnounceResponse::parse(&super::super::failure("torrent not allowed"));
        assert_eq!(f, Err(TrackerError::Failure("torrent not allowed".into())));
        let bad = |b: &[u8]| AnnounceResponse::parse(b).unwrap_err().to_string();
        assert_eq!(
            bad(b"d5:peers7:1234567e"),
            "bad tracker response: `peers` is 7 bytes, not a multiple of 6"
        );
        assert_eq!(
            bad(b"d8:intervali1e6:peers65:12345e"),
            "bad tracker response: `peers6` is 5 bytes, not a multiple of 18"
        );
        assert_eq!(
            bad(b"d5:peers0:e"),
            "bad tracker response: missing key `interval`"
        );
        assert_eq!(
            bad(b"d8:intervali-1ee"),
            "bad tracker response: key `interval` should be a non-negative integer"
        );
        assert_eq!(
            bad(b"d8:intervali1e5:peersi1ee"),
            "bad tracker response: key `peers` should be a byte string or a list"
        );
        assert!(bad(b"<html>").starts_with("bad tracker response: "));
        assert!(bad(b"").starts_with("bad tracker response: "));
        assert!(bad(b"le").contains("dictionary"));
        let huge = AnnounceResponse::parse(b"d8:intervali99999999999ee").unwrap();
        assert_eq!(huge.interval, u32::MAX);
    }

    #[test]
    fn never_panics_on_truncated_or_flipped_input() {
        let body = sample().encode(true, false);
        for cut in 0..body.len() {
            assert!(AnnounceResponse::parse(&body[..cut]).is_err(), "{cut}");
            // A flipped byte is an error or a different answer, never the sample unchanged.
            let mut flipped = body.clone();
            flipped[cut] ^= 0x5a;
            let want = AnnounceResponse::parse(&body).unwrap();
            assert_ne!(AnnounceResponse::parse(&flipped).ok(), Some(want), "{cut}");
        }
        let body = sample().encode(false, false);
        for cut in 0..body.len() {
            assert!(AnnounceResponse::parse(&body[..cut]).is_err(), "{cut}");
        }
    }
}
