//! One torrent's seeders or leechers: a dense `Vec` (cheap random windows for answers) plus an
//! index from address to slot (cheap updates). Removal swaps the last peer into the hole.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

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
}

/// One peer as the tracker remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Where it listens.
    pub key: PeerAddr,
    /// Its last peer id.
    pub peer_id: [u8; 20],
    /// Bytes it still lacks (0 for a seeder).
    pub left: u64,
    /// When it last announced, in seconds since the table's epoch.
    pub last_seen: u32,
}

/// A set of peers with O(1) lookup, insert, remove and indexed access.
#[derive(Debug, Default)]
pub struct PeerList {
    peers: Vec<Peer>,
    slots: HashMap<PeerAddr, u32>,
}

impl PeerList {
    /// How many peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Every peer, in slot order.
    pub fn as_slice(&self) -> &[Peer] {
        &self.peers
    }

    /// The peer at `key`, if present.
    pub fn get_mut(&mut self, key: &PeerAddr) -> Option<&mut Peer> {
        let slot = *self.slots.get(key)?;
        self.peers.get_mut(slot as usize)
    }

    /// True if a peer listens at `key`.
    pub fn contains(&self, key: &PeerAddr) -> bool {
        self.slots.contains_key(key)
    }

    /// Add a peer whose key is not in the list yet (a present one is replaced).
    pub fn insert(&mut self, peer: Peer) {
        if let Some(old) = self.get_mut(&peer.key) {
            *old = peer;
            return;
        }
        // Slots are u32: the caller's per-torrent cap keeps lists far below 4 billion.
        self.slots.insert(peer.key, self.peers.len() as u32);
        self.peers.push(peer);
    }

    /// Remove and return the peer at `key`.
    pub fn remove(&mut self, key: &PeerAddr) -> Option<Peer> {
        let slot = self.slots.remove(key)? as usize;
        let peer = self.peers.swap_remove(slot);
        if let Some(moved) = self.peers.get(slot) {
            self.slots.insert(moved.key, slot as u32);
        }
        Some(peer)
    }

    /// Keep only the peers for which `keep` is true; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Peer) -> bool) -> usize {
        let before = self.peers.len();
        let mut slot = 0;
        while slot < self.peers.len() {
            if keep(&self.peers[slot]) {
                slot += 1;
            } else {
                let key = self.peers[slot].key;
                self.remove(&key);
            }
        }
        if self.peers.len() < before / 4 {
            self.peers.shrink_to_fit();
            self.slots.shrink_to_fit();
        }
        before - self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> Peer {
        Peer {
            key: PeerAddr::new([127, 0, 0, 1].into(), port),
            peer_id: [port as u8; 20],
            left: port.into(),
            last_seen: port.into(),
        }
    }

    /// Every key points at the slot that holds it.
    fn check(list: &PeerList) {
        assert_eq!(list.peers.len(), list.slots.len());
        for (key, &slot) in &list.slots {
            assert_eq!(list.peers[slot as usize].key, *key);
        }
    }

    #[test]
    fn insert_remove_retain_keep_the_index_right() {
        let mut list = PeerList::default();
        for port in 1..=10 {
            list.insert(peer(port));
        }
        list.insert(Peer {
            left: 99,
            ..peer(3)
        });
        assert_eq!(list.len(), 10);
        assert_eq!(list.get_mut(&peer(3).key).unwrap().left, 99);
        assert_eq!(list.remove(&peer(1).key), Some(peer(1)));
        assert_eq!(list.remove(&peer(1).key), None);
        check(&list);
        assert_eq!(list.retain(|p| p.key.port % 2 == 0), 4);
        check(&list);
        let mut ports: Vec<u16> = list.as_slice().iter().map(|p| p.key.port).collect();
        ports.sort();
        assert_eq!(ports, [2, 4, 6, 8, 10]);
        assert!(list.contains(&peer(10).key) && !list.contains(&peer(9).key));
        assert_eq!(list.retain(|_| false), 5);
        assert!(list.is_empty());
        check(&list);
    }

    #[test]
    fn mapped_ipv6_and_ipv4_are_the_same_peer() {
        let v6: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(PeerAddr::new(v6, 1), PeerAddr::new([10, 0, 0, 1].into(), 1));
        assert_eq!(PeerAddr::new(v6, 1).addr().to_string(), "10.0.0.1:1");
    }
}
