//! Which peer each verified piece came from, for displays (the web page's piece map): the
//! sender of most of its blocks, as a `u16` index into a per-torrent table of addresses, so a
//! torrent's record costs two bytes a piece whatever the swarm does.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Distinct senders remembered per torrent; pieces from senders past it count as unknown.
pub const MAX_ORIGINS: usize = u16::MAX as usize - 1;

/// The sender of each verified piece (see the module doc).
#[derive(Debug, Default)]
pub struct Origins {
    /// Senders, in the order their first piece was verified.
    addrs: Vec<SocketAddr>,
    index: HashMap<SocketAddr, u16>,
    /// Per piece: 0 unknown (on disk at the start, or not verified), else 1 + an index of
    /// `addrs`. Allocated at the first piece verified.
    pieces: Vec<u16>,
}

impl Origins {
    /// Piece `piece` (of `count`) was verified with most of its blocks from `addr`.
    pub fn record(&mut self, piece: u32, count: usize, addr: SocketAddr) {
        if piece as usize >= count {
            return;
        }
        let slot = match self.index.get(&addr) {
            Some(&i) => i,
            None if self.addrs.len() < MAX_ORIGINS => {
                self.addrs.push(addr);
                let i = self.addrs.len() as u16;
                self.index.insert(addr, i);
                i
            }
            None => 0,
        };
        if self.pieces.len() != count {
            self.pieces.resize(count, 0);
        }
        self.pieces[piece as usize] = slot;
    }

    /// The senders, in the order of their first verified piece.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The sender of piece `i`: an index into [`Origins::addrs`], `None` when unknown.
    pub fn of(&self, i: usize) -> Option<usize> {
        match self.pieces.get(i) {
            Some(&s) if s > 0 => Some(s as usize - 1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_one_index_per_sender_and_stays_bounded() {
        let mut o = Origins::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        o.record(0, 4, a);
        o.record(2, 4, b);
        o.record(3, 4, a);
        o.record(9, 4, b); // out of range: ignored
        assert_eq!(o.addrs(), &[a, b]);
        assert_eq!(
            (0..4).map(|i| o.of(i)).collect::<Vec<_>>(),
            [Some(0), None, Some(1), Some(0)]
        );
        for port in 0..(MAX_ORIGINS as u32 + 10) {
            let addr = SocketAddr::from((std::net::Ipv4Addr::from(0x7f00_0000 + port), 9));
            o.record(1, 4, addr);
        }
        assert_eq!(o.addrs().len(), MAX_ORIGINS);
        assert_eq!(o.of(1), None, "a sender past the table is unknown");
    }
}
