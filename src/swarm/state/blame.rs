//! Who sent bad data. A piece that fails its check may mix blocks from an honest peer and a
//! liar (or a peer whose disk is damaged), so nobody is blamed for a mixed piece at once:
//! each sender's blocks are remembered by their SHA-1, the piece is fetched again whole from
//! one peer, and when that copy passes, the senders whose blocks differ from it sent the bad
//! bytes. A piece that came whole from one peer and failed blames that peer directly.
//! (libtorrent calls this smart ban.)
//!
//! A peer is banned after [`MAX_STRIKES`] bad pieces, unless it sent more good pieces than
//! bad (a seeder with a few damaged pieces is still worth its good ones; its bad pieces are
//! fetched elsewhere). The ban refuses connections *from* its IP address, so that it cannot come
//! back from a new port, but spares the addresses at the same IP that we have reason to trust
//! (a NAT, or the loopback demo): those that sent verified data, and those connected now with
//! no strike. We still call other addresses at that IP that a tracker lists.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{Action, CloseReason, PeerKey, PeerTotals, TorrentState};
use crate::proto::layout::BLOCK;
use crate::swarm::dialer::Ban;
use crate::swarm::hashing::sha1;

/// Bad pieces a peer may send before it is dropped and banned.
pub const MAX_STRIKES: u32 = 2;

/// One sender's block of a failed piece.
#[derive(Debug, Clone)]
pub(super) struct Suspect {
    addr: SocketAddr,
    block: usize,
    hash: [u8; 20],
}

/// The senders of pieces being verified, and the suspects of pieces that failed.
#[derive(Debug, Default)]
pub(super) struct Blame {
    /// Who sent each block of a piece now being verified (`None`: the sender has left).
    senders: HashMap<u32, Vec<Option<SocketAddr>>>,
    /// The blocks of pieces that failed with several senders, until a good copy arrives.
    suspects: HashMap<u32, Vec<Suspect>>,
}

impl TorrentState {
    /// Remember who sent the blocks of piece `index`, which goes to be verified now.
    pub(super) fn note_senders(&mut self, index: u32, senders: &[PeerKey]) {
        let addrs = senders
            .iter()
            .map(|k| self.peers.get(k).map(|p| p.addr))
            .collect();
        self.blame.senders.insert(index, addrs);
    }

    /// Piece `index` failed its check; `data` is what we received. Returns the keys of the
    /// connected senders (avoided when the piece is fetched again).
    pub(super) fn blame_failed(&mut self, index: u32, data: &[u8]) -> Vec<PeerKey> {
        let senders = self.blame.senders.remove(&index).unwrap_or_default();
        let mut distinct: Vec<SocketAddr> = senders.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let all_from_one = distinct.len() == 1 && senders.iter().all(Option::is_some);
        if all_from_one {
            self.strike(distinct[0], index);
        } else {
            let list = self.blame.suspects.entry(index).or_default();
            for (block, addr) in senders.iter().enumerate() {
                let Some(addr) = *addr else { continue };
                let range = block * BLOCK as usize..((block + 1) * BLOCK as usize).min(data.len());
                let hash = sha1(&data[range]);
                list.push(Suspect { addr, block, hash });
            }
        }
        self.peers
            .iter()
            .filter(|(_, p)| distinct.contains(&p.addr))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Piece `index` passed its check: credit the sender of most of it, and blame the senders
    /// of earlier failed copies whose blocks differ from this one.
    pub(super) fn blame_verified(&mut self, index: u32, data: &[u8]) {
        let senders = self.blame.senders.remove(&index).unwrap_or_default();
        let mut counts: Vec<(SocketAddr, usize)> = Vec::new();
        for addr in senders.iter().flatten() {
            match counts.iter_mut().find(|(a, _)| a == addr) {
                Some((_, n)) => *n += 1,
                None => counts.push((*addr, 1)),
            }
        }
        if let Some((addr, _)) = counts
            .iter()
            .max_by_key(|(a, n)| (*n, std::cmp::Reverse(*a)))
        {
            self.history.entry(*addr).or_default().pieces += 1;
            let count = self.layout.piece_count();
            self.origins.record(index, count, *addr);
        }
        let Some(suspects) = self.blame.suspects.remove(&index) else {
            return;
        };
        let mut liars: Vec<SocketAddr> = Vec::new();
        for s in suspects {
            let range = s.block * BLOCK as usize..((s.block + 1) * BLOCK as usize).min(data.len());
            if data.get(range).map(sha1) != Some(s.hash) && !liars.contains(&s.addr) {
                liars.push(s.addr);
            }
        }
        for addr in liars {
            self.strike(addr, index);
        }
    }

    /// `addr` sent bad data for piece `index`.
    pub(super) fn strike(&mut self, addr: SocketAddr, index: u32) {
        let totals = self.history.entry(addr).or_default();
        totals.strikes += 1;
        let (strikes, good) = (totals.strikes, totals.pieces);
        log::warn!("{addr} sent bad data for piece {index}");
        if strikes < MAX_STRIKES || good >= strikes {
            return;
        }
        let trusted = |a: &SocketAddr, t: Option<&PeerTotals>| {
            *a != addr && a.ip() == addr.ip() && t.is_none_or(|t| t.pieces > 0 || t.strikes == 0)
        };
        let mut spared: Vec<SocketAddr> = self
            .history
            .iter()
            .filter(|(a, t)| t.pieces > 0 && trusted(a, Some(t)))
            .map(|(a, _)| *a)
            .collect();
        spared.extend(
            self.peers
                .values()
                .filter(|p| trusted(&p.addr, self.history.get(&p.addr)))
                .map(|p| p.addr),
        );
        spared.sort_unstable();
        spared.dedup();
        self.actions.push(Action::Ban(Ban {
            addr,
            spared: spared.clone(),
        }));
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr.ip() == addr.ip() && !spared.contains(&p.addr))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.close(k, CloseReason::BadData(strikes));
        }
    }
}
