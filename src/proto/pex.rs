//! Peer exchange (BEP 11, extension `ut_pex`): a bencoded dictionary of peers added and dropped
//! since the last message, as compact addresses (`added`, `dropped`: 6 bytes per IPv4 peer;
//! `added6`, `dropped6`: 18 bytes per IPv6 peer) with one flag byte per added peer (`added.f`,
//! `added6.f`).
//!
//! Decoding keeps at most [`MAX_PEX_KEEP`] addresses per list and reads only those: a message
//! naming 10,000 peers is cut, not turned into 10,000 entries. Encoding sends at most
//! [`MAX_PEX_SEND`] per list, as BEP 11 asks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bendy::value::Value;

use super::bencode::{self, as_dict, BencodeError, Dict, DictExt};

/// Most addresses kept from each list of a received message.
pub const MAX_PEX_KEEP: usize = 200;
/// Most addresses sent in each list of a message (BEP 11: at most 50 added per message).
pub const MAX_PEX_SEND: usize = 50;

/// Flags of an added peer (`added.f`, BEP 11).
pub mod flags {
    /// Prefers encryption.
    pub const ENCRYPTION: u8 = 0x01;
    /// Seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// Supports uTP.
    pub const UTP: u8 = 0x04;
    /// Supports the holepunch extension (BEP 55).
    pub const HOLEPUNCH: u8 = 0x08;
    /// Reachable: the sender reached it by an outgoing connection.
    pub const REACHABLE: u8 = 0x10;
}

/// Why a `ut_pex` message was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PexError {
    /// Not a bencoded dictionary, or a key of the wrong type.
    #[error("peer exchange message: {0}")]
    Bencode(#[from] BencodeError),
    /// A compact list whose length is not a multiple of its entry size.
    #[error("peer exchange `{key}` of {len} bytes is not a whole number of addresses")]
    Ragged {
        /// The key.
        key: &'static str,
        /// Its length.
        len: usize,
    },
}

/// A peer named in `added` / `added6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PexPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its [`flags`] (0 when the sender gave none).
    pub flags: u8,
}

/// A `ut_pex` message: IPv4 and IPv6 peers together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pex {
    /// Peers the sender connected to since its last message.
    pub added: Vec<PexPeer>,
    /// Peers it disconnected from.
    pub dropped: Vec<SocketAddr>,
}

impl Pex {
    /// Decode the payload of a `ut_pex` message (after the extended sub-id byte). At most
    /// [`MAX_PEX_KEEP`] addresses per list are kept; entries with port 0 are skipped; a flags
    /// string of the wrong length is ignored (flags 0).
    pub fn decode(payload: &[u8]) -> Result<Pex, PexError> {
        let value = bencode::decode(payload)?;
        let d = as_dict(&value, "ut_pex message")?;
        let mut pex = Pex::default();
        for (key, fkey, width) in [("added", "added.f", 6), ("added6", "added6.f", 18)] {
            let addrs = compact(d, key, width)?;
            let fl = d
                .opt_bytes(fkey)?
                .filter(|f| f.len() * width == addrs.len());
            let peers = addrs
                .chunks_exact(width)
                .enumerate()
                .filter_map(|(i, c)| {
                    let flags = fl.map_or(0, |f| f[i]);
                    addr(c).map(|addr| PexPeer { addr, flags })
                })
                .take(MAX_PEX_KEEP);
            pex.added.extend(peers);
        }
        for (key, width) in [("dropped", 6), ("dropped6", 18)] {
            let addrs = compact(d, key, width)?;
            let peers = addrs
                .chunks_exact(width)
                .filter_map(addr)
                .take(MAX_PEX_KEEP);
            pex.dropped.extend(peers);
        }
        Ok(pex)
    }

    /// Encode as a `ut_pex` payload: at most [`MAX_PEX_SEND`] peers of each family in each list
    /// (the first ones); the rest is for the next message.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Dict::new();
        let mut put = |key: &str, b: Vec<u8>| {
            d.insert(bencode::key(key), bencode::bytes(b));
        };
        for v6 in [false, true] {
            let added = self
                .added
                .iter()
                .filter(|p| p.addr.is_ipv6() == v6)
                .take(MAX_PEX_SEND);
            let (mut a, mut f) = (Vec::new(), Vec::new());
            for p in added {
                push_addr(&mut a, &p.addr);
                f.push(p.flags);
            }
            let dropped = self
                .dropped
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .take(MAX_PEX_SEND);
            let mut dr = Vec::new();
            for a in dropped {
                push_addr(&mut dr, a);
            }
            let (ka, kf, kd) = match v6 {
                false => ("added", "added.f", "dropped"),
                true => ("added6", "added6.f", "dropped6"),
            };
            // IPv4 keys always (clients expect them); IPv6 ones only when there is something.
            if !v6 || !a.is_empty() || !dr.is_empty() {
                put(ka, a);
                put(kf, f);
                put(kd, dr);
            }
        }
        bencode::encode(&Value::Dict(d))
    }
}

/// The compact list under `key` (empty when absent), checked to be whole entries.
fn compact<'a>(d: &'a Dict, key: &'static str, width: usize) -> Result<&'a [u8], PexError> {
    let b = d.opt_bytes(key)?.unwrap_or(&[]);
    if b.len() % width != 0 {
        return Err(PexError::Ragged { key, len: b.len() });
    }
    Ok(b)
}

/// One compact address (6 or 18 bytes); `None` for port 0.
fn addr(c: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = c.split_at(c.len() - 2);
    let port = u16::from_be_bytes([port[0], port[1]]);
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
        _ => return None,
    };
    (port != 0).then_some(SocketAddr::new(ip, port))
}

fn push_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str, flags: u8) -> PexPeer {
        PexPeer {
            addr: s.parse().unwrap(),
            flags,
        }
    }

    #[test]
    fn reference_bytes_round_trip() {
        let pex = Pex {
            added: vec![peer("127.0.0.1:6881", flags::SEED | flags::REACHABLE)],
            dropped: vec!["10.0.0.2:80".parse().unwrap()],
        };
        let enc = pex.encode();
        assert_eq!(
            enc,
            b"d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f1:\x127:dropped6:\x0a\x00\x00\x02\x00\x50e"
                .to_vec()
        );
        assert_eq!(Pex::decode(&enc).unwrap(), pex);
        let both = Pex {
            added: vec![peer("[::1]:7000", 1), peer("127.0.0.1:1", 0)],
            dropped: vec!["[fe80::1]:9".parse().unwrap()],
        };
        let back = Pex::decode(&both.encode()).unwrap();
        // IPv4 first on decode.
        assert_eq!(back.added, [both.added[1], both.added[0]]);
        assert_eq!(back.dropped, both.dropped);
    }

    #[test]
    fn ten_thousand_addresses_are_cut_not_kept() {
        let mut added = Vec::new();
        for i in 0..10_000u32 {
            added.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
            added.extend_from_slice(&6881u16.to_be_bytes());
        }
        let mut d = Dict::new();
        d.insert(bencode::key("added"), bencode::bytes(added.clone()));
        d.insert(bencode::key("dropped"), bencode::bytes(added));
        let pex = Pex::decode(&bencode::encode(&Value::Dict(d))).unwrap();
        assert_eq!(pex.added.len(), MAX_PEX_KEEP);
        assert_eq!(pex.dropped.len(), MAX_PEX_KEEP);
        // Flags of the wrong length are ignored.
        assert!(pex.added.iter().all(|p| p.flags == 0));
        // Sending caps each list at 50.
        let back = Pex::decode(&pex.encode()).unwrap();
        assert_eq!(back.added.len(), MAX_PEX_SEND);
        assert_eq!(back.dropped.len(), MAX_PEX_SEND);
        assert_eq!(back.added[..], pex.added[..MAX_PEX_SEND]);
    }

    #[test]
    fn hostile_messages() {
        let d = |b: &[u8]| Pex::decode(b);
        assert!(matches!(
            d(b"d5:added5:abcdee"),
            Err(PexError::Ragged {
                key: "added",
                len: 5
            })
        ));
        assert!(matches!(
            d(b"d8:dropped61:xe"),
            Err(PexError::Ragged { .. })
        ));
        assert!(matches!(d(b"d5:addedi1ee"), Err(PexError::Bencode(_))));
        assert!(matches!(d(b"d7:added.fi1ee"), Err(PexError::Bencode(_))));
        assert!(matches!(d(b"le"), Err(PexError::Bencode(_))));
        assert!(matches!(d(b""), Err(PexError::Bencode(_))));
        assert!(matches!(d(b"d5:added6:abcd"), Err(PexError::Bencode(_))));
        // Port 0 is skipped; unknown keys ignored; empty is fine.
        let p =
            d(b"d5:added12:\x01\x02\x03\x04\x00\x00\x01\x02\x03\x04\x00\x017:unknowni1ee").unwrap();
        assert_eq!(p.added, [peer("1.2.3.4:1", 0)]);
        assert_eq!(d(b"de").unwrap(), Pex::default());
    }
}
