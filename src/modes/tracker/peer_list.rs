//! One torrent's seeders or leechers of one address family, packed: each peer is a fixed-size
//! record of its address and port (network order) and a 4-byte stamp, in a dense `Vec` (cheap
//! random windows for answers), plus an open-addressing index of `u32` slots keyed by address
//! (cheap updates). An IPv4 peer costs 10 bytes of record and about 6 of index; nothing else
//! (no peer id, no `left`) is kept. Removal swaps the last record into the hole.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

/// What identifies a peer in a swarm: its address and listen port. Many peers share one IP on a
/// LAN or on loopback, so the IP alone is not enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr {
    /// The peer's address (IPv4-mapped IPv6 folded to IPv4).
    pub ip: IpAddr,
    /// Its listen port.
    pub port: u16,
}

impl PeerAddr {
    /// The key of a peer listening on `port` at `ip`.
    pub fn new(ip: IpAddr, port: u16) -> PeerAddr {
        PeerAddr {
            ip: ip.to_canonical(),
            port,
        }
    }

    /// As a socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The key bytes of a record: the address octets, then the port, big-endian.
    pub fn key(&self) -> ([u8; 18], usize) {
        let mut key = [0u8; 18];
        let len = match self.ip {
            IpAddr::V4(v4) => {
                key[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                key[..16].copy_from_slice(&v6.octets());
                16
            }
        };
        key[len..len + 2].copy_from_slice(&self.port.to_be_bytes());
        (key, len + 2)
    }
}

/// One peer as the tracker remembers it (decoded from its record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Where it listens.
    pub key: PeerAddr,
    /// When it last announced, in seconds since the table's epoch.
    pub last_seen: u32,
    /// Whether its finished download was counted already.
    pub counted: bool,
}

/// The stamp's top bit: this peer's download was counted (`completed` counts once per peer).
const COUNTED: u32 = 1 << 31;

/// A record's stamp for a peer seen at `secs` (seconds since the table's epoch, saturating at
/// 2^31 - 1: 68 years) that has, or has not, had its download counted.
pub fn stamp(secs: u32, counted: bool) -> u32 {
    secs.min(COUNTED - 1) | if counted { COUNTED } else { 0 }
}

/// The seconds and the counted flag of a stamp.
pub fn unstamp(stamp: u32) -> (u32, bool) {
    (stamp & !COUNTED, stamp & COUNTED != 0)
}

/// Bytes of the stamp at the end of every record.
const STAMP: usize = 4;
/// An empty index slot.
const EMPTY: u32 = u32::MAX;

/// IPv4 peers: 4 bytes of address, 2 of port, 4 of stamp.
pub type V4List = PeerList<10>;
/// IPv6 peers: 16 bytes of address, 2 of port, 4 of stamp.
pub type V6List = PeerList<22>;

/// A set of peers with O(1) lookup, insert, remove and indexed access. `N` is the record size:
/// 10 for IPv4, 22 for IPv6.
#[derive(Debug, Default)]
pub struct PeerList<const N: usize> {
    records: Vec<[u8; N]>,
    /// Slots into `records`, by hash of the key; linear probing; a power of two long (or empty),
    /// at most 3/4 full.
    index: Box<[u32]>,
}

impl<const N: usize> PeerList<N> {
    /// How many peers.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, in slot order.
    pub fn records(&self) -> &[[u8; N]] {
        &self.records
    }

    /// Where the peer of `record` listens.
    pub fn addr(record: &[u8; N]) -> SocketAddr {
        let port = u16::from_be_bytes([record[N - STAMP - 2], record[N - STAMP - 1]]);
        let ip: IpAddr = match N - STAMP - 2 {
            4 => Ipv4Addr::new(record[0], record[1], record[2], record[3]).into(),
            _ => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&record[..16]);
                Ipv6Addr::from(octets).into()
            }
        };
        SocketAddr::new(ip, port)
    }

    /// The stamp of `record`.
    pub fn stamp_of(record: &[u8; N]) -> u32 {
        let mut s = [0u8; STAMP];
        s.copy_from_slice(&record[N - STAMP..]);
        u32::from_le_bytes(s)
    }

    /// The peer of `record`, decoded.
    pub fn peer(record: &[u8; N]) -> Peer {
        let addr = Self::addr(record);
        let (last_seen, counted) = unstamp(Self::stamp_of(record));
        Peer {
            key: PeerAddr::new(addr.ip(), addr.port()),
            last_seen,
            counted,
        }
    }

    /// The stamp of the peer with `key` (see [`PeerAddr::key`]), if present.
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        let slot = self.find(key)?.1;
        Some(Self::stamp_of(&self.records[slot as usize]))
    }

    /// Add the peer with `key`, or set its stamp if present.
    pub fn insert(&mut self, key: &[u8], stamp: u32) {
        debug_assert_eq!(key.len(), N - STAMP);
        let mut record = [0u8; N];
        record[..N - STAMP].copy_from_slice(key);
        record[N - STAMP..].copy_from_slice(&stamp.to_le_bytes());
        if let Some((_, slot)) = self.find(key) {
            self.records[slot as usize] = record;
            return;
        }
        if (self.records.len() + 1) * 4 > self.index.len() * 3 {
            self.rebuild((self.index.len() * 2).max(8));
        }
        if self.records.len() == self.records.capacity() {
            // Grow by a quarter, not double: at a million peers the slack is the memory.
            self.records.reserve_exact(self.records.len() / 4 + 4);
        }
        // Slots are u32: the caller's per-torrent cap keeps lists far below 4 billion.
        let slot = self.records.len() as u32;
        self.records.push(record);
        let mask = self.index.len() - 1;
        let mut at = self.home(key);
        while self.index[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.index[at] = slot;
    }

    /// Remove the peer with `key`; returns its stamp.
    pub fn remove(&mut self, key: &[u8]) -> Option<u32> {
        let (at, slot) = self.find(key)?;
        self.unindex(at);
        let record = self.records.swap_remove(slot as usize);
        if let Some(moved) = self.records.get(slot as usize) {
            // The former last record now lives at `slot`: point its index entry there.
            let from = self.records.len() as u32;
            let mask = self.index.len() - 1;
            let mut at = self.home(&moved[..N - STAMP]);
            while self.index[at] != from {
                at = (at + 1) & mask;
            }
            self.index[at] = slot;
        }
        self.shrink();
        Some(Self::stamp_of(&record))
    }

    /// Keep only the peers for which `keep` is true; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8; N]) -> bool) -> usize {
        let before = self.records.len();
        self.records.retain(|r| keep(r));
        if self.records.len() != before {
            let size = self.index.len();
            self.rebuild(size);
            self.shrink();
        }
        before - self.records.len()
    }

    /// The index position and the slot of `key`.
    fn find(&self, key: &[u8]) -> Option<(usize, u32)> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut at = self.home(key);
        loop {
            let slot = self.index[at];
            if slot == EMPTY {
                return None;
            }
            if &self.records[slot as usize][..N - STAMP] == key {
                return Some((at, slot));
            }
            at = (at + 1) & mask;
        }
    }

    /// Empty index position `hole`, shifting later entries of the probe run back into it so
    /// that every key stays reachable from its home without tombstones.
    fn unindex(&mut self, mut hole: usize) {
        let mask = self.index.len() - 1;
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let slot = self.index[at];
            if slot == EMPTY {
                break;
            }
            let home = self.home(&self.records[slot as usize][..N - STAMP]);
            // The entry at `at` may move to `hole` if its home is not in (hole, at], cyclically.
            let stays = match hole <= at {
                true => hole < home && home <= at,
                false => hole < home || home <= at,
            };
            if !stays {
                self.index[hole] = slot;
                hole = at;
            }
        }
        self.index[hole] = EMPTY;
    }

    /// Give memory back when the list has shrunk to a fraction of what it holds room for.
    fn shrink(&mut self) {
        let len = self.records.len();
        if len == 0 {
            self.index = Box::default();
            self.records = Vec::new();
            return;
        }
        if self.index.len() > 8 && len * 8 < self.index.len() {
            self.rebuild(fitting(len));
        }
        if self.records.capacity() > 2 * len + 8 {
            self.records.shrink_to(len + len / 4);
        }
    }

    /// A fresh index of `size` positions (a power of two) over the records.
    fn rebuild(&mut self, size: usize) {
        let size = size.max(fitting(self.records.len()));
        self.index = vec![EMPTY; size].into_boxed_slice();
        let mask = size - 1;
        for (slot, record) in self.records.iter().enumerate() {
            let mut at = self.home(&record[..N - STAMP]);
            while self.index[at] != EMPTY {
                at = (at + 1) & mask;
            }
            self.index[at] = slot as u32;
        }
    }

    /// Where `key`'s probe run starts.
    fn home(&self, key: &[u8]) -> usize {
        (hash(key) as usize) & (self.index.len() - 1)
    }
}

/// The smallest index size that holds `len` entries at most 3/4 full.
fn fitting(len: usize) -> usize {
    (len * 4 / 3 + 1).next_power_of_two().max(8)
}

/// A keyed hash of a record key. The key is random per process, so nobody outside can choose
/// addresses that all land in one probe run.
fn hash(key: &[u8]) -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    let mut h = *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u8));
    for chunk in key.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 32;
    }
    // The finaliser of MurmurHash3: every input bit reaches the low bits used as the position.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> Vec<u8> {
        let (k, n) = PeerAddr::new([127, 0, 0, 1].into(), port).key();
        k[..n].to_vec()
    }

    /// Every record is found at its own slot, and the index holds exactly the records.
    fn check<const N: usize>(list: &PeerList<N>) {
        let used = list.index.iter().filter(|&&s| s != EMPTY).count();
        assert_eq!(used, list.records.len());
        for (slot, record) in list.records.iter().enumerate() {
            assert_eq!(list.find(&record[..N - STAMP]).unwrap().1, slot as u32);
        }
    }

    #[test]
    fn insert_remove_retain_keep_the_index_right() {
        let mut list = V4List::default();
        for port in 1..=10 {
            list.insert(&key(port), stamp(port.into(), false));
        }
        list.insert(&key(3), stamp(99, true));
        assert_eq!(list.len(), 10);
        assert_eq!(unstamp(list.get(&key(3)).unwrap()), (99, true));
        assert_eq!(list.remove(&key(1)), Some(stamp(1, false)));
        assert_eq!(list.remove(&key(1)), None);
        check(&list);
        let port = |r: &[u8; 10]| V4List::addr(r).port();
        assert_eq!(list.retain(|r| port(r) % 2 == 0), 4);
        check(&list);
        let mut ports: Vec<u16> = list.records().iter().map(port).collect();
        ports.sort();
        assert_eq!(ports, [2, 4, 6, 8, 10]);
        assert!(list.get(&key(10)).is_some() && list.get(&key(9)).is_none());
        assert_eq!(list.retain(|_| false), 5);
        assert!(list.is_empty());
        check(&list);
    }

    #[test]
    fn many_inserts_and_removals_in_random_order() {
        // Enough to grow and shrink the index several times, with long probe runs to repair.
        let mut list = V4List::default();
        let mut x = 0x1234_5678_u64;
        let mut present = std::collections::HashSet::new();
        for round in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = (x % 3000) as u16;
            if round % 3 == 2 || present.len() > 2500 {
                assert_eq!(list.remove(&key(port)).is_some(), present.remove(&port));
            } else {
                list.insert(&key(port), stamp(round, false));
                present.insert(port);
            }
            assert_eq!(list.len(), present.len());
        }
        check(&list);
        for port in present.iter() {
            assert!(list.get(&key(*port)).is_some());
        }
        for port in present.clone() {
            list.remove(&key(port));
        }
        assert!(list.is_empty() && list.index.len() <= 8);
    }

    #[test]
    fn records_decode_to_their_peer() {
        let mut list = V6List::default();
        let a = PeerAddr::new("2001:db8::7".parse().unwrap(), 6881);
        let (k, n) = a.key();
        list.insert(&k[..n], stamp(42, true));
        let p = V6List::peer(&list.records()[0]);
        assert_eq!((p.key, p.last_seen, p.counted), (a, 42, true));
        assert_eq!(stamp(u32::MAX, false), COUNTED - 1);
        assert_eq!(std::mem::size_of::<[u8; 10]>(), 10);
    }

    #[test]
    fn mapped_ipv6_and_ipv4_are_the_same_peer() {
        let v6: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(PeerAddr::new(v6, 1), PeerAddr::new([10, 0, 0, 1].into(), 1));
        assert_eq!(PeerAddr::new(v6, 1).addr().to_string(), "10.0.0.1:1");
        assert_eq!(PeerAddr::new(v6, 1).key().1, 6);
    }
}
