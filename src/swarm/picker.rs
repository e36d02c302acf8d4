//! Which block to ask for next: rarest-first over the peers' bitfields, pieces finished before
//! new ones are started, and an endgame that asks a second peer for the last blocks.
//!
//! Pure bookkeeping (no I/O): the torrent calls it under its lock. Peers are named by a small
//! integer key; times are passed in so tests can drive the clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::budget::{DownloadBudget, Share};
use crate::proto::bitfield::Bitfield;
use crate::proto::layout::{Layout, BLOCK};
use crate::proto::wire::BlockRef;

pub use super::state::PeerKey;

/// Most peers that may hold a request for the same block (in endgame).
const MAX_HOLDERS: usize = 2;
/// Piece buffers (started plus waiting for their hash check) may hold at most this much; no
/// new piece is started past it. This bounds a download's memory whatever the peers' speed;
/// all torrents together are bounded by the process's [`DownloadBudget`].
const MAX_BUFFERED: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Free,
    Requested { by: Vec<PeerKey>, at: Instant },
    Received,
}

/// A piece being downloaded: block states, the bytes so far, and who sent them.
#[derive(Debug)]
struct Partial {
    /// The peer that started it, which gets its free blocks first; `None` once that peer has
    /// left. Another peer takes blocks of it only when it has nothing else to do, so that two
    /// seeders do not each read the whole piece from disk to send half of it.
    owner: Option<PeerKey>,
    blocks: Vec<Block>,
    received: u32,
    buf: Vec<u8>,
    /// Who sent each block (0 until it arrives).
    senders: Vec<PeerKey>,
    /// This piece failed its check before: it must come whole from one peer this time, so
    /// that the result tells who sent what (see `TorrentState`'s blame).
    single_source: bool,
}

/// What happened to a received block.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Stored; the piece still lacks blocks. Other peers that also had it requested (endgame)
    /// should get a `cancel`.
    Stored {
        /// Peers to cancel the same block at.
        cancel: Vec<PeerKey>,
    },
    /// Stored and the piece is complete: hash it. The buffer is handed over.
    Complete {
        /// Peers to cancel the same block at.
        cancel: Vec<PeerKey>,
        /// The whole piece.
        data: Vec<u8>,
        /// Who sent each block, in block order (for the credit, and the blame if the hash
        /// check fails).
        senders: Vec<PeerKey>,
    },
    /// Not something we asked this peer for (or already have): ignored.
    Unrequested,
}

/// The download state of a torrent's pieces.
#[derive(Debug)]
pub struct Picker {
    layout: Layout,
    have: Bitfield,
    /// Complete pieces waiting for their hash check.
    verifying: Bitfield,
    availability: Vec<u32>,
    partial: HashMap<u32, Partial>,
    /// The keys of `partial`, as bits: the rarest-first scan tests every piece.
    started: Bitfield,
    /// Peers that sent data for a piece that failed: asked for it again only if somebody else
    /// may have it.
    avoid: HashMap<u32, Vec<PeerKey>>,
    /// Pieces that failed their check: the next copy comes whole from one peer.
    single_source: Bitfield,
    /// Pieces we had and then could not read back from disk.
    lost: Bitfield,
    /// The pieces to download (the chosen files'); `None`: all of them.
    wanted: Option<Bitfield>,
    /// Wanted pieces not verified yet (kept so that "complete" costs nothing).
    wanted_missing: usize,
    /// This torrent's part of the process's piece-buffer budget.
    budget: Share,
    /// Requests in flight per peer (the count of its keys in the blocks' `Requested` lists).
    inflight: HashMap<PeerKey, usize>,
}

impl Picker {
    /// A picker for a torrent of `layout`, with `have` already verified.
    pub fn new(layout: Layout, have: Bitfield) -> Picker {
        Picker::with_budget(layout, have, DownloadBudget::global())
    }

    /// A picker whose piece buffers count against `budget`.
    pub fn with_budget(layout: Layout, have: Bitfield, budget: Arc<DownloadBudget>) -> Picker {
        let n = layout.piece_count();
        Picker {
            layout,
            verifying: Bitfield::new(n),
            availability: vec![0; n],
            partial: HashMap::new(),
            started: Bitfield::new(n),
            avoid: HashMap::new(),
            single_source: Bitfield::new(n),
            lost: Bitfield::new(n),
            wanted: None,
            wanted_missing: n - have.count(),
            have,
            budget: Share::new(budget),
            inflight: HashMap::new(),
        }
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Download only the pieces set in `wanted` (same length as the torrent's; call before
    /// any piece is picked). The others are neither requested nor a reason to be interested.
    pub fn set_wanted(&mut self, wanted: Bitfield) {
        if wanted.len() != self.have.len() {
            return;
        }
        self.wanted_missing = wanted.ones().filter(|&i| !self.have.get(i)).count();
        self.wanted = Some(wanted);
    }

    /// Whether piece `i` is among those to download.
    pub fn is_wanted(&self, i: usize) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.get(i))
    }

    /// True when every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.wanted_missing == 0
    }

    /// Bytes of the wanted pieces, and of those verified.
    pub fn bytes_wanted(&self) -> (u64, u64) {
        let size = |i: usize| self.layout.piece_size(i) as u64;
        match &self.wanted {
            None => (self.layout.total_length(), self.bytes_have()),
            Some(w) => w.ones().fold((0, 0), |(all, have), i| {
                let s = size(i);
                (all + s, have + if self.have.get(i) { s } else { 0 })
            }),
        }
    }

    /// The wanted pieces: (how many, how many verified).
    pub fn pieces_wanted(&self) -> (usize, usize) {
        let all = self
            .wanted
            .as_ref()
            .map_or(self.have.len(), Bitfield::count);
        (all, all - self.wanted_missing)
    }

    /// Bytes verified.
    pub fn bytes_have(&self) -> u64 {
        self.have
            .ones()
            .map(|i| self.layout.piece_size(i) as u64)
            .sum()
    }

    /// Whether we lack piece `i` and want it (not verified, not being verified).
    pub fn wants(&self, i: usize) -> bool {
        i < self.have.len() && !self.have.get(i) && !self.verifying.get(i) && self.is_wanted(i)
    }

    /// Whether a peer with `bits` has any piece we lack.
    pub fn interesting(&self, bits: &Bitfield) -> bool {
        !self.is_complete() && bits.ones().any(|i| self.wants(i))
    }

    /// Count a peer's pieces in the availability (on bitfield).
    pub fn add_peer_pieces(&mut self, bits: &Bitfield) {
        for i in bits.ones() {
            self.availability[i] += 1;
        }
    }

    /// Remove a departed peer's pieces from the availability.
    pub fn remove_peer_pieces(&mut self, bits: &Bitfield) {
        for i in bits.ones() {
            self.availability[i] = self.availability[i].saturating_sub(1);
        }
    }

    /// How many connected peers have piece `i`.
    pub fn availability(&self, i: usize) -> u32 {
        self.availability.get(i).copied().unwrap_or(0)
    }

    /// Count one `have`.
    pub fn add_have(&mut self, i: usize) {
        if let Some(a) = self.availability.get_mut(i) {
            *a += 1;
        }
    }

    /// Choose up to `max` blocks to request from `peer`, which has `bits`.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        bits: &Bitfield,
        max: usize,
        now: Instant,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if max == 0 || self.is_complete() {
            return out;
        }
        // 1. Blocks of pieces this peer started (or whose peer left), most complete first:
        // finish before starting.
        self.take_started(peer, bits, max, now, &mut out, |owner| {
            owner.is_none_or(|o| o == peer)
        });
        // 2. New pieces, rarest first, while the buffers (this torrent's and the process's
        // budget) allow.
        while out.len() < max && self.buffered_pieces() < self.max_buffered_pieces() {
            let Some(i) = self.rarest_new_piece(peer, bits) else {
                break;
            };
            let Some(buf) = self
                .budget
                .take(self.layout.piece_size(i as usize) as usize)
            else {
                break;
            };
            self.start(i, peer, buf);
            self.take_free(i, peer, max, now, &mut out);
        }
        // 3. Free blocks of pieces other peers started.
        if out.len() < max {
            self.take_started(peer, bits, max, now, &mut out, |owner| {
                owner.is_some_and(|o| o != peer)
            });
        }
        // 4. Endgame: every missing piece is started, nothing is free; double up on blocks held
        // by a single other peer. Not when only the buffer bound stopped step 2: doubling up
        // then would fetch every block twice while whole pieces wait to be started.
        if out.is_empty() && self.unstarted() == 0 {
            self.take_endgame(peer, bits, max, now, &mut out);
        }
        out
    }

    /// Missing wanted pieces nobody has started: not verified, not being verified, not
    /// partial (only wanted pieces are ever started).
    fn unstarted(&self) -> usize {
        self.wanted_missing
            .saturating_sub(self.verifying.count() + self.partial.len())
    }

    /// Whether piece `i` is started (blocks requested or received) or being checked.
    pub fn in_flight(&self, i: usize) -> bool {
        self.started.get(i) || self.verifying.get(i)
    }

    /// Blocks the piece buffers hold at most (see [`MAX_BUFFERED`]).
    pub fn buffer_blocks(&self) -> usize {
        self.max_buffered_pieces() * self.layout.piece_length().div_ceil(BLOCK as u64) as usize
    }

    fn buffered_pieces(&self) -> usize {
        self.partial.len() + self.verifying.count()
    }

    fn max_buffered_pieces(&self) -> usize {
        ((MAX_BUFFERED / self.layout.piece_length()) as usize).max(2)
    }

    fn avoided(&self, i: u32, peer: PeerKey) -> bool {
        if self.avoid.is_empty() {
            return false;
        }
        let Some(list) = self.avoid.get(&i) else {
            return false;
        };
        // Only avoid while someone else may serve it: when every peer that has the piece is
        // listed, waiting for another would stall the download.
        list.contains(&peer) && self.availability[i as usize] as usize > list.len()
    }

    /// Free blocks of started pieces whose owner passes `whose`, most complete pieces first.
    fn take_started(
        &mut self,
        peer: PeerKey,
        bits: &Bitfield,
        max: usize,
        now: Instant,
        out: &mut Vec<BlockRef>,
        whose: impl Fn(Option<PeerKey>) -> bool,
    ) {
        let mut started: Vec<(u32, u32)> = self
            .partial
            .iter()
            .filter(|(i, p)| {
                whose(p.owner)
                    && !(p.single_source && p.owner.is_some_and(|o| o != peer))
                    && bits.get(**i as usize)
                    && !self.avoided(**i, peer)
            })
            .map(|(i, p)| (*i, p.received))
            .collect();
        started.sort_by_key(|&(i, received)| (std::cmp::Reverse(received), i));
        for (i, _) in started {
            if out.len() >= max {
                return;
            }
            self.take_free(i, peer, max, now, out);
        }
    }

    fn start(&mut self, i: u32, owner: PeerKey, buf: Vec<u8>) {
        let count = self.layout.block_count(i as usize) as usize;
        let blocks = vec![Block::Free; count];
        self.started.set(i as usize);
        self.partial.insert(
            i,
            Partial {
                owner: Some(owner),
                blocks,
                received: 0,
                buf,
                senders: vec![0; count],
                single_source: self.single_source.get(i as usize),
            },
        );
    }

    fn block_ref(&self, i: u32, b: usize) -> BlockRef {
        BlockRef {
            index: i,
            begin: b as u32 * BLOCK,
            len: self.layout.block_size(i as usize, b as u32),
        }
    }

    fn take_free(
        &mut self,
        i: u32,
        peer: PeerKey,
        max: usize,
        now: Instant,
        out: &mut Vec<BlockRef>,
    ) {
        let Some(p) = self.partial.get_mut(&i) else {
            return;
        };
        p.owner.get_or_insert(peer); // an orphan is adopted
        let mut picked = Vec::new();
        for (b, state) in p.blocks.iter_mut().enumerate() {
            if out.len() + picked.len() >= max {
                break;
            }
            if *state == Block::Free {
                *state = Block::Requested {
                    by: vec![peer],
                    at: now,
                };
                picked.push(b);
            }
        }
        *self.inflight.entry(peer).or_default() += picked.len();
        for b in picked {
            out.push(self.block_ref(i, b));
        }
    }

    fn rarest_new_piece(&self, peer: PeerKey, bits: &Bitfield) -> Option<u32> {
        let n = self.have.len();
        if n == 0 {
            return None;
        }
        // Scan from a random start so that equally rare pieces are spread among peers; stop
        // early at the lowest availability of all (nothing can be rarer): on a LAN where every
        // seeder has everything, that is the first candidate, so large torrents stay cheap.
        let floor = self.availability.iter().copied().min().unwrap_or(0).max(1);
        let start = rand::thread_rng().gen_range(0..n);
        let mut best: Option<(u32, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !bits.get(i) || !self.wants(i) || self.started.get(i) {
                continue;
            }
            if self.avoided(i as u32, peer) {
                continue;
            }
            let a = self.availability[i];
            if best.is_none_or(|(ba, _)| a < ba) {
                best = Some((a, i));
                if a <= floor {
                    break;
                }
            }
        }
        best.map(|(_, i)| i as u32)
    }

    fn take_endgame(
        &mut self,
        peer: PeerKey,
        bits: &Bitfield,
        max: usize,
        now: Instant,
        out: &mut Vec<BlockRef>,
    ) {
        let mut picks = Vec::new();
        for (&i, p) in self.partial.iter_mut() {
            if !bits.get(i as usize) || p.single_source {
                continue;
            }
            for (b, state) in p.blocks.iter_mut().enumerate() {
                if picks.len() >= max {
                    break;
                }
                if let Block::Requested { by, at } = state {
                    if !by.contains(&peer) && by.len() < MAX_HOLDERS {
                        by.push(peer);
                        *at = now;
                        picks.push((i, b));
                    }
                }
            }
        }
        *self.inflight.entry(peer).or_default() += picks.len();
        for (i, b) in picks {
            out.push(self.block_ref(i, b));
        }
    }

    /// A block arrived from `peer`. Copies it into the piece buffer.
    pub fn on_block(&mut self, peer: PeerKey, index: u32, begin: u32, data: &[u8]) -> BlockOutcome {
        let Some(p) = self.partial.get_mut(&index) else {
            return BlockOutcome::Unrequested;
        };
        if !begin.is_multiple_of(BLOCK) {
            return BlockOutcome::Unrequested;
        }
        let b = (begin / BLOCK) as usize;
        let expected = self.layout.block_size(index as usize, b as u32) as usize;
        let cancel: Vec<PeerKey> = match p.blocks.get(b) {
            Some(Block::Requested { by, .. }) if by.contains(&peer) && data.len() == expected => {
                by.clone()
            }
            _ => return BlockOutcome::Unrequested,
        };
        p.buf[begin as usize..begin as usize + expected].copy_from_slice(data);
        p.blocks[b] = Block::Received;
        p.received += 1;
        p.senders[b] = peer;
        let complete = p.received as usize == p.blocks.len();
        for k in &cancel {
            self.uncount(*k, 1);
        }
        let cancel: Vec<PeerKey> = cancel.into_iter().filter(|&k| k != peer).collect();
        if complete {
            let p = self.partial.remove(&index).expect("present");
            self.started.clear(index as usize);
            self.verifying.set(index as usize);
            BlockOutcome::Complete {
                cancel,
                data: p.buf,
                senders: p.senders,
            }
        } else {
            BlockOutcome::Stored { cancel }
        }
    }

    fn uncount(&mut self, peer: PeerKey, n: usize) {
        if let Some(c) = self.inflight.get_mut(&peer) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.inflight.remove(&peer);
            }
        }
    }

    /// Requests in flight to `peer`.
    pub fn inflight(&self, peer: PeerKey) -> usize {
        self.inflight.get(&peer).copied().unwrap_or(0)
    }

    /// The hash check of piece `i` passed. `buf` may be given back for reuse.
    pub fn on_verified(&mut self, i: usize, buf: Option<Vec<u8>>) {
        self.verifying.clear(i);
        if self.have.set(i) && self.is_wanted(i) {
            self.wanted_missing -= 1;
        }
        self.avoid.remove(&(i as u32));
        self.single_source.clear(i);
        self.recycle(i, buf);
    }

    /// Verified piece `i` was lost from disk: it is missing again. False if we did not have it.
    pub fn lose(&mut self, i: usize) -> bool {
        if i >= self.have.len() || !self.have.get(i) {
            return false;
        }
        self.have.clear(i);
        self.lost.set(i);
        if self.is_wanted(i) {
            self.wanted_missing += 1;
        }
        true
    }

    /// Whether piece `i` was verified once and then lost from disk.
    pub fn lost(&self, i: usize) -> bool {
        i < self.lost.len() && self.lost.get(i)
    }

    /// The hash check of piece `i` failed: fetch it again, whole from one peer, avoiding
    /// `culprits` when possible.
    pub fn on_failed(&mut self, i: usize, culprits: &[PeerKey], buf: Option<Vec<u8>>) {
        self.verifying.clear(i);
        self.single_source.set(i);
        let list = self.avoid.entry(i as u32).or_default();
        for c in culprits {
            if !list.contains(c) {
                list.push(*c);
            }
        }
        self.recycle(i, buf);
    }

    /// Piece `i` is out of the buffers: its bytes go back to the budget, its buffer (if given)
    /// to the spare pool (allocating a buffer for every piece makes the allocator hold on to
    /// ever more memory).
    fn recycle(&mut self, i: usize, buf: Option<Vec<u8>>) {
        self.budget
            .give_back(self.layout.piece_size(i) as usize, buf);
    }

    /// Give back every request held by `peer` (it choked us or left).
    pub fn release_peer(&mut self, peer: PeerKey) {
        if self.inflight.remove(&peer).is_none() && !self.owns_any(peer) {
            return;
        }
        for p in self.partial.values_mut() {
            if p.owner == Some(peer) {
                p.owner = None;
                if p.single_source && p.received > 0 {
                    // Its blocks cannot be mixed with another peer's: start the piece over.
                    p.received = 0;
                    p.senders.iter_mut().for_each(|s| *s = 0);
                    p.blocks.iter_mut().for_each(|b| *b = Block::Free);
                }
            }
            for state in p.blocks.iter_mut() {
                if let Block::Requested { by, .. } = state {
                    by.retain(|&k| k != peer);
                    if by.is_empty() {
                        *state = Block::Free;
                    }
                }
            }
        }
    }

    /// `peer` will not send block `b` (a fast extension reject): it is free again at once, and
    /// `peer` is asked for that piece again only when nobody else has it. A piece `peer` owned
    /// becomes an orphan, so the next peer finishes it (unless it must come from one peer). False if `b` was not asked of `peer`
    /// (a reject may answer our own cancel).
    pub fn reject(&mut self, peer: PeerKey, b: BlockRef) -> bool {
        let Some(p) = self.partial.get_mut(&b.index) else {
            return false;
        };
        if !b.begin.is_multiple_of(BLOCK) {
            return false;
        }
        let Some(state) = p.blocks.get_mut((b.begin / BLOCK) as usize) else {
            return false;
        };
        let Block::Requested { by, .. } = state else {
            return false;
        };
        let Some(pos) = by.iter().position(|&k| k == peer) else {
            return false;
        };
        by.remove(pos);
        if by.is_empty() {
            *state = Block::Free;
        }
        // A piece that must come whole from its owner stays with it: moving it would mix two
        // peers' blocks.
        let movable = !p.single_source;
        if movable && p.owner == Some(peer) {
            p.owner = None;
        }
        self.uncount(peer, 1);
        if movable {
            let list = self.avoid.entry(b.index).or_default();
            if !list.contains(&peer) {
                list.push(peer);
            }
        }
        true
    }

    /// Requests older than `timeout`: released, returned as (peer, block) so the caller can
    /// cancel them and slow that peer down.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<(PeerKey, BlockRef)> {
        let mut out = Vec::new();
        for (&i, p) in self.partial.iter_mut() {
            for (b, state) in p.blocks.iter_mut().enumerate() {
                if let Block::Requested { by, at } = state {
                    if now.saturating_duration_since(*at) > timeout {
                        for &k in by.iter() {
                            out.push((k, (i, b)));
                        }
                        *state = Block::Free;
                    }
                }
            }
        }
        for (k, _) in &out {
            self.uncount(*k, 1);
        }
        out.into_iter()
            .map(|(k, (i, b))| (k, self.block_ref(i, b)))
            .collect()
    }

    fn owns_any(&self, peer: PeerKey) -> bool {
        self.partial.values().any(|p| p.owner == Some(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        // 4 pieces of 2 blocks, the last piece one short block
        Layout::new(2 * BLOCK as u64, [3 * 2 * BLOCK as u64 + 100]).unwrap()
    }

    fn fill(p: &mut Picker, peer: PeerKey, blocks: &[BlockRef]) -> Vec<BlockOutcome> {
        blocks
            .iter()
            .map(|b| p.on_block(peer, b.index, b.begin, &vec![7u8; b.len as usize]))
            .collect()
    }

    #[test]
    fn rarest_first_and_finish_before_start() {
        let l = Layout::new(2 * BLOCK as u64, [8 * BLOCK as u64]).unwrap();
        let mut p = Picker::new(l, Bitfield::new(4));
        let all = Bitfield::full(4);
        let mut some = Bitfield::new(4);
        some.set(2);
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&some);
        // piece 3 is held by two peers... make piece 1 the rarest: remove one holder's bits
        let mut only1 = Bitfield::new(4);
        only1.set(0);
        only1.set(2);
        only1.set(3);
        p.remove_peer_pieces(&only1);
        // availability: 0:1, 1:2, 2:2, 3:1 -> first pick is 0 or 3
        let now = Instant::now();
        let got = p.pick(1, &all, 2, now);
        assert_eq!(got.len(), 2);
        assert!(got[0].index == 0 || got[0].index == 3, "{got:?}");
        assert_eq!(got[0].index, got[1].index, "both blocks of one piece first");
        // A second peer continues nothing (blocks taken) and starts the other rare piece.
        let got2 = p.pick(2, &all, 1, now);
        assert!(got2[0].index == 0 || got2[0].index == 3);
        assert_ne!(got2[0].index, got[0].index);
    }

    #[test]
    fn complete_piece_goes_to_verification_and_failures_are_refetched_elsewhere() {
        let mut p = Picker::new(layout(), Bitfield::new(4));
        let all = Bitfield::full(4);
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&all);
        let now = Instant::now();
        let reqs = p.pick(1, &all, 100, now);
        assert_eq!(reqs.len(), 7, "2+2+2+1 blocks");
        let outcomes = fill(&mut p, 1, &reqs);
        let complete: Vec<_> = outcomes
            .into_iter()
            .filter_map(|o| match o {
                BlockOutcome::Complete { data, senders, .. } => Some((data.len(), senders)),
                _ => None,
            })
            .collect();
        assert_eq!(complete.len(), 4);
        assert!(complete
            .iter()
            .all(|(_, c)| c.iter().all(|&k| k == 1) && !c.is_empty()));
        assert!(p.pick(1, &all, 10, now).is_empty(), "all pieces verifying");
        for i in 0..3 {
            p.on_verified(i, None);
        }
        p.on_failed(3, &[1], None);
        assert!(!p.is_complete());
        // peer 1 is avoided for piece 3 while peer 2 can serve it
        assert!(p.pick(1, &all, 10, now).is_empty());
        let again = p.pick(2, &all, 10, now);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].len, 100);
        fill(&mut p, 2, &again);
        p.on_verified(3, None);
        assert!(p.is_complete());
        assert_eq!(p.bytes_have(), 3 * 2 * BLOCK as u64 + 100);
    }

    #[test]
    fn unrequested_and_wrong_sized_blocks_are_ignored() {
        let mut p = Picker::new(layout(), Bitfield::new(4));
        let all = Bitfield::full(4);
        p.add_peer_pieces(&all);
        let now = Instant::now();
        let r = p.pick(1, &all, 1, now)[0];
        assert_eq!(
            p.on_block(2, r.index, r.begin, &vec![0; r.len as usize]),
            BlockOutcome::Unrequested
        );
        assert_eq!(
            p.on_block(1, r.index, r.begin, &[0; 5]),
            BlockOutcome::Unrequested
        );
        assert_eq!(
            p.on_block(1, r.index, r.begin + 1, &[0; 5]),
            BlockOutcome::Unrequested
        );
        assert_eq!(p.on_block(1, 99, 0, &[0; 5]), BlockOutcome::Unrequested);
        // The requested block is taken (it may complete a one-block piece).
        assert!(matches!(
            p.on_block(1, r.index, r.begin, &vec![0; r.len as usize]),
            BlockOutcome::Stored { .. } | BlockOutcome::Complete { .. }
        ));
    }

    #[test]
    fn endgame_doubles_up_and_release_frees_blocks() {
        let mut p = Picker::new(
            Layout::new(BLOCK as u64, [BLOCK as u64]).unwrap(),
            Bitfield::new(1),
        );
        let all = Bitfield::full(1);
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&all);
        let now = Instant::now();
        let a = p.pick(1, &all, 5, now);
        assert_eq!(a.len(), 1);
        let b = p.pick(2, &all, 5, now);
        assert_eq!(b, a, "endgame: the same block from a second peer");
        assert!(p.pick(3, &all, 5, now).is_empty(), "at most two holders");
        assert_eq!((p.inflight(1), p.inflight(2)), (1, 1));
        match p.on_block(2, b[0].index, 0, &vec![1; BLOCK as usize]) {
            BlockOutcome::Complete { cancel, .. } => assert_eq!(cancel, vec![1]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            (p.inflight(1), p.inflight(2)),
            (0, 0),
            "both requests settled"
        );
        // release and expiry
        let mut p = Picker::new(
            Layout::new(BLOCK as u64, [BLOCK as u64]).unwrap(),
            Bitfield::new(1),
        );
        p.add_peer_pieces(&all);
        let a = p.pick(1, &all, 5, now);
        assert_eq!(p.inflight(1), 1);
        p.release_peer(1);
        assert_eq!(p.inflight(1), 0);
        assert_eq!(p.pick(2, &all, 5, now), a);
        let expired = p.expire(now + Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(expired, vec![(2, a[0])]);
        assert_eq!(
            p.inflight(2),
            0,
            "an expired request is no longer in flight"
        );
        assert_eq!(p.pick(3, &all, 5, now), a);
    }

    #[test]
    fn a_full_buffer_is_not_endgame() {
        // 64 pieces of 1 MiB: the 8 MiB bound lets 8 start; the rest must wait, not be doubled.
        let l = Layout::new(1 << 20, [64u64 << 20]).unwrap();
        let mut p = Picker::new(l, Bitfield::new(64));
        let all = Bitfield::full(64);
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&all);
        let now = Instant::now();
        let a = p.pick(1, &all, 1000, now);
        assert_eq!(a.len(), 8 * 64, "eight pieces of 64 blocks");
        assert!(
            p.pick(2, &all, 1000, now).is_empty(),
            "pieces are still unstarted: no duplicate requests"
        );
    }

    #[test]
    fn each_peer_keeps_to_its_own_pieces_until_it_runs_out() {
        // 16 pieces of 4 blocks (64 KiB): the 8 MiB bound is far away.
        let l = Layout::new(4 * BLOCK as u64, [16 * 4 * BLOCK as u64]).unwrap();
        let mut p = Picker::new(l.clone(), Bitfield::new(16));
        let all = Bitfield::full(16);
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&all);
        let now = Instant::now();
        let a = p.pick(1, &all, 2, now); // half of one piece
        let b = p.pick(2, &all, 2, now);
        assert_ne!(a[0].index, b[0].index, "peer 2 starts its own piece");
        let a2 = p.pick(1, &all, 2, now);
        assert!(
            a2.iter().all(|x| x.index == a[0].index),
            "peer 1 finishes its piece first"
        );
        // Peer 1 leaves: its piece is an orphan and the next peer to ask finishes it.
        let mut p = Picker::new(l, Bitfield::new(16));
        p.add_peer_pieces(&all);
        p.add_peer_pieces(&all);
        let a = p.pick(1, &all, 2, now);
        p.release_peer(1);
        let b = p.pick(2, &all, 2, now);
        assert_eq!(b, a, "the orphan's blocks come first");
    }

    #[test]
    fn two_torrents_on_one_budget_both_progress() {
        // 32 pieces of 4 blocks (64 KiB) each; a budget of four pieces for both torrents.
        let big = || Layout::new(4 * BLOCK as u64, [32 * 4 * BLOCK as u64]).unwrap();
        let budget = DownloadBudget::new(4 * 4 * BLOCK as u64);
        let mut a = Picker::with_budget(big(), Bitfield::new(32), Arc::clone(&budget));
        let mut b = Picker::with_budget(big(), Bitfield::new(32), Arc::clone(&budget));
        let all = Bitfield::full(32);
        a.add_peer_pieces(&all);
        b.add_peer_pieces(&all);
        let now = Instant::now();
        // A asks first and for much: it gets the whole budget (it is alone), no more.
        let first = a.pick(1, &all, 1000, now);
        assert_eq!(first.len(), 16, "four pieces of four blocks");
        assert!(b.pick(1, &all, 1000, now).is_empty(), "budget full");
        // A finishes its pieces; while B waits, A may only restart within half the budget.
        let mut verified = 0;
        for o in fill(&mut a, 1, &first) {
            if let BlockOutcome::Complete { data, .. } = o {
                let i = (0..32).find(|&i| a.verifying.get(i)).unwrap();
                a.on_verified(i, Some(data));
                verified += 1;
            }
        }
        assert_eq!(verified, 4);
        assert_eq!(budget.used(), 0);
        let again = a.pick(1, &all, 1000, now);
        assert_eq!(again.len(), 8, "two pieces: half the budget");
        let theirs = b.pick(1, &all, 1000, now);
        assert_eq!(theirs.len(), 8, "the other half");
        // Both complete pieces.
        for (p, blocks) in [(&mut a, again), (&mut b, theirs)] {
            let done = fill(p, 1, &blocks)
                .into_iter()
                .filter(|o| matches!(o, BlockOutcome::Complete { .. }))
                .count();
            assert_eq!(done, 2);
        }
    }
}
