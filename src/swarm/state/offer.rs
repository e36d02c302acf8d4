//! Seeding to a crowd: super-seeding (BEP 16), on whenever we are a seed. A peer is not told
//! that we have every piece; it is offered a few pieces at a time (a `have` each), the pieces
//! offered least so far first, so the seeder hands out pieces nobody has before it sends any
//! twice, and the leechers get the rest from each other: a piece is offered again only when no
//! connected peer has it and its taker left, or has not finished it after [`REOFFER_AFTER`]. When the peer announces a piece we
//! offered it, it is offered another.
//!
//! A peer has at most [`AHEAD`] bytes on offer, shared among the leechers connected at the time
//! (at least [`MIN_WINDOW`] pieces): enough to keep a lone leecher's pipe full over a long round
//! trip (offer, request, block, check, `have`), few enough that a crowd's leechers do not sit on
//! pieces the others need. A first leecher that got a large share keeps it until it has taken
//! its pieces; it is offered more only once it holds fewer than the share of the moment. BEP 16 moves on only once *another* peer announces the piece; we move
//! on when the peer itself has it, which also serves a lone leecher at full speed.

use std::time::{Duration, Instant};

use super::{Outgoing, PeerKey, TorrentState};

/// Bytes on offer to all leechers together, at most (at least [`MIN_WINDOW`] pieces each).
pub const AHEAD: u64 = 8 * 1024 * 1024;
/// Pieces a peer may always have on offer.
pub const MIN_WINDOW: usize = 4;
/// A piece offered and still had by no connected peer this long after is offered again (its
/// taker is stuck); sooner, the seeder would send it twice while the taker is still fetching it.
pub const REOFFER_AFTER: Duration = Duration::from_secs(5);
/// A piece offered before and had by some peer is offered again this long after all the
/// same: whoever has it may not be passing it on, and a swarm must never wait on that.
pub const RESEND_AFTER: Duration = Duration::from_secs(30);
/// Pieces looked at per offer once every piece has been offered (bounds the cost of an offer
/// on a torrent of many pieces).
const MAX_SCAN: usize = 4096;

/// How often each piece was offered, and where the next search starts.
#[derive(Debug, Default)]
pub(super) struct Offers {
    pub(super) count: Vec<u32>,
    /// When each piece was last offered.
    at: Vec<Option<Instant>>,
    cursor: usize,
}

impl TorrentState {
    /// Offer `k` more pieces if it has fewer on offer than its window allows.
    pub(super) fn offer_more(&mut self, k: PeerKey, now: Instant) {
        let n = self.layout.piece_count();
        if self.offers.count.len() != n {
            self.offers.count = vec![0; n];
            self.offers.at = vec![None; n];
        }
        let leechers = self
            .peers
            .values()
            .filter(|p| !p.closing && !p.upload_only && !p.bits.is_full())
            .count()
            .max(1);
        let cap = ((AHEAD / self.layout.piece_length().max(1)) as usize / leechers).max(MIN_WINDOW);
        loop {
            let Some(p) = self.peers.get(&k) else { return };
            if !p.super_seeded || p.closing || p.upload_only || p.offered.len() >= cap {
                return;
            }
            // The least offered piece it lacks, among equals the one fewest peers have.
            let mut best: Option<((u32, u32), usize)> = None;
            for step in 0..n.min(MAX_SCAN) {
                let i = (self.offers.cursor + step) % n;
                if !self.picker.have().get(i) || p.bits.get(i) || p.offered.contains(&(i as u32)) {
                    continue;
                }
                let (count, have) = (self.offers.count[i], self.picker.availability(i));
                let since = self.offers.at[i].map(|t| now.saturating_duration_since(t));
                if count > 0 && have > 0 && since.is_some_and(|d| d < RESEND_AFTER) {
                    // Sent before, and a peer can pass it on. Not forever: a peer that has it
                    // may never pass it on (another super-seeding seed, a peer choking all).
                    continue;
                }
                let recent = since.is_some_and(|d| d < REOFFER_AFTER);
                if count > 0 && recent {
                    continue; // on its way to the peer it was offered to
                }
                let key = (count, have);
                if best.is_none_or(|(b, _)| key < b) {
                    best = Some((key, i));
                    if key == (0, 0) {
                        break;
                    }
                }
            }
            let Some((_, i)) = best else {
                // Nothing here: the next search looks at the next stretch of a large torrent.
                self.offers.cursor = (self.offers.cursor + MAX_SCAN) % n;
                return;
            };
            self.offers.count[i] += 1;
            self.offers.at[i] = Some(now);
            self.offers.cursor = (i + 1) % n;
            self.peers
                .get_mut(&k)
                .expect("checked")
                .offered
                .push(i as u32);
            self.send(k, Outgoing::Have(i as u32), now);
        }
    }

    /// `k` has piece `i` now: an offer of it is settled. `announced`: it got the piece (a
    /// `have`); else it had it before (its bitfield), and we never sent it.
    pub(super) fn offer_settled(&mut self, k: PeerKey, i: u32, announced: bool) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if let Some(pos) = p.offered.iter().position(|&o| o == i) {
            p.offered.swap_remove(pos);
            if announced {
                return;
            }
            if let Some(c) = self.offers.count.get_mut(i as usize) {
                // It had the piece already: we never sent it.
                *c = c.saturating_sub(1);
            }
        }
    }

    /// A peer left with these offers outstanding: they were not sent (not whole, at least).
    pub(super) fn offers_forget(&mut self, offered: &[u32]) {
        for &i in offered {
            if let Some(c) = self.offers.count.get_mut(i as usize) {
                *c = c.saturating_sub(1);
            }
        }
    }
}
