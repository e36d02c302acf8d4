//! One torrent's rules as a pure state machine: no channels, threads, files or clock of its own
//! (the caller passes `now`), so every rule can be tested on plain values.
//!
//! **Events** (methods):
//! - [`TorrentState::peer_connected`] / [`TorrentState::peer_gone`]: a handshake completed, a
//!   connection ended;
//! - [`TorrentState::on_message`]: a message from peer `k` (anything but `piece`);
//! - [`TorrentState::on_block`]: a `piece` message (a block) from peer `k`;
//! - [`TorrentState::fill`]: top up the requests in flight to `k` (after its messages);
//! - [`TorrentState::take_request`] / [`TorrentState::on_uploaded`]: the writer is about to
//!   send a block it was asked for, and sent it;
//! - [`TorrentState::piece_checked`]: a verify-and-write job finished, with its
//!   [`PieceOutcome`];
//! - [`TorrentState::tick`]: about once a second (request timeouts, choking, idle peers);
//! - [`TorrentState::fail`] / [`TorrentState::close_all`]: a fatal error, shutting down.
//!
//! **Actions** ([`Action`], taken with [`TorrentState::drain`]): send a message to `k`, serve a
//! block to `k`, close `k` with a [`CloseReason`], verify (and then write) a piece, ban an
//! address, the download completed, the torrent failed. The shell (`swarm::torrent`) carries
//! them out and owns the sockets, threads and files.
//!
//! The [`Picker`] is the one record of which blocks are in flight, and from whom.

mod blame;
mod choke;
mod offer;
pub mod origin;
mod peer;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use peer::{
    PeerState, ALLOWED_FAST, IDLE_TIMEOUT, INITIAL_QUEUE, KEEPALIVE, MAX_BAD_REQUESTS,
    MAX_PEER_REQUESTS, MAX_QUEUE,
};

use super::dialer::Ban;
use super::error::{CloseReason, PeerError, Violation};
use super::picker::{BlockOutcome, Picker};
use crate::proto::bitfield::Bitfield;
use crate::proto::fast::allowed_fast_set;
use crate::proto::ids::PeerId;
use crate::proto::layout::Layout;
use crate::proto::wire::{BlockRef, Message};

/// A connection's key inside one torrent (never reused while the torrent lives).
pub type PeerKey = u64;

/// Requests in flight a serving peer may always have, however many peers share the buffers.
const MIN_SHARE: usize = 16;
/// Two connections to the same peer (same IP and peer id) made this close together are the two
/// sides calling each other at once: one of them is dropped (see
/// [`TorrentState::peer_connected`]).
pub const TWIN_WINDOW: Duration = Duration::from_secs(5);
/// Unrequested blocks tolerated (late answers to cancelled requests) before it is a flood.
const MAX_UNREQUESTED: u32 = 64;

/// The rules' tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most connections.
    pub max_peers: usize,
    /// Peers we upload to at once (plus one optimistic unchoke); 0 unchokes every interested
    /// peer, which is what a LAN wants.
    pub upload_slots: usize,
    /// A request unanswered this long is given to another peer.
    pub request_timeout: Duration,
    /// While we are a seed, offer each peer a few pieces at a time (BEP 16 super-seeding, see
    /// `offer`) instead of announcing every piece.
    pub super_seed: bool,
}

/// A message for one peer (the shell encodes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Keep the connection open.
    KeepAlive,
    /// We stop serving you.
    Choke,
    /// We serve you.
    Unchoke,
    /// You have something we want.
    Interested,
    /// You have nothing we want.
    NotInterested,
    /// We have this piece now.
    Have(u32),
    /// Every piece we have (sent once, right after the handshake).
    Bitfield(Vec<u8>),
    /// We have every piece (fast extension; instead of the bitfield).
    HaveAll,
    /// We have no piece (fast extension; instead of the bitfield).
    HaveNone,
    /// We will not serve this request (fast extension).
    Reject(BlockRef),
    /// You may request this piece while we choke you (fast extension).
    AllowedFast(u32),
    /// Please send these blocks (one write for the batch).
    Requests(Vec<BlockRef>),
    /// Never mind this request.
    Cancel(BlockRef),
}

/// What a verify-and-write job found.
#[derive(Debug)]
pub enum PieceOutcome {
    /// The SHA-1 matched and the piece is on disk.
    Verified,
    /// The SHA-1 did not match; nothing was written.
    HashMismatch,
    /// The SHA-1 matched but the write failed.
    WriteFailed(std::io::Error),
}

/// Something the shell must do.
#[derive(Debug)]
pub enum Action {
    /// Send a message to a peer.
    Send(PeerKey, Outgoing),
    /// Read this block and send it to the peer (if it is still wanted then, see
    /// [`TorrentState::take_request`]).
    Serve(PeerKey, BlockRef),
    /// Close a connection.
    Close(PeerKey, CloseReason),
    /// Check a complete piece's SHA-1 and, if it matches, write it; then report with
    /// [`TorrentState::piece_checked`].
    Verify {
        /// The piece.
        index: u32,
        /// Its bytes (given back with the outcome, for reuse).
        data: Vec<u8>,
    },
    /// Never call or accept this address (and its IP, with exceptions) again.
    Ban(Ban),
    /// Every piece is verified: make the files whole, tell the tracker, wake the watchers.
    Completed,
    /// The torrent cannot go on (see [`TorrentState::failure`]): wake the watchers.
    Failed,
}

/// Byte counts of one peer address, kept after it leaves (for the summary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTotals {
    /// Peer id as text.
    pub client: String,
    /// Payload bytes it sent that went into a piece (duplicates and unrequested blocks are not
    /// counted: see `wasted` in the torrent's totals).
    pub downloaded: u64,
    /// Payload bytes we sent it.
    pub uploaded: u64,
    /// Pieces it sent bad data for.
    pub strikes: u32,
    /// Verified pieces credited to it: each piece to the one peer that sent most of its bytes,
    /// so the counts of all peers add up to the pieces downloaded.
    pub pieces: u32,
}

/// Whole-torrent byte counts, each counted once, here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Payload bytes received that went into a piece.
    pub downloaded: u64,
    /// Payload bytes received and thrown away: duplicates (endgame), blocks nobody asked for,
    /// and pieces that failed their check.
    pub wasted: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Pieces that failed their check.
    pub bad_pieces: u32,
    /// Pieces verified in this run.
    pub verified: u32,
}

/// One torrent's rules and state (see the module doc).
#[derive(Debug)]
pub struct TorrentState {
    layout: Layout,
    limits: Limits,
    picker: Picker,
    peers: HashMap<PeerKey, PeerState>,
    next_key: PeerKey,
    history: HashMap<SocketAddr, PeerTotals>,
    totals: Totals,
    blame: blame::Blame,
    origins: origin::Origins,
    first_block_at: Option<Instant>,
    completed_at: Option<Instant>,
    failure: Option<String>,
    choke: choke::Choker,
    offers: offer::Offers,
    /// The info-hash, for the fast extension's allowed-fast sets.
    info_hash: [u8; 20],
    /// Our own peer id: of two connections between the same two peers, the one the smaller id
    /// called stays (see [`TorrentState::peer_connected`]).
    our_id: PeerId,
    actions: Vec<Action>,
}

impl TorrentState {
    /// A torrent of `layout` whose verified pieces are `have`.
    pub fn new(layout: Layout, have: Bitfield, limits: Limits, now: Instant) -> TorrentState {
        TorrentState {
            picker: Picker::new(layout.clone(), have),
            layout,
            limits,
            peers: HashMap::new(),
            next_key: 1,
            history: HashMap::new(),
            totals: Totals::default(),
            blame: blame::Blame::default(),
            origins: origin::Origins::default(),
            first_block_at: None,
            completed_at: None,
            failure: None,
            choke: choke::Choker::new(now),
            offers: offer::Offers::default(),
            info_hash: [0; 20],
            our_id: PeerId([0; 20]),
            actions: Vec::new(),
        }
    }

    /// The same, knowing the torrent's info-hash (the fast extension's allowed-fast sets
    /// depend on it; without it they are those of an all-zero hash).
    pub fn with_info_hash(mut self, info_hash: [u8; 20]) -> TorrentState {
        self.info_hash = info_hash;
        self
    }

    /// The same, knowing our own peer id (which of two connections to one peer stays depends
    /// on it; without it, it is all zeros).
    pub fn with_peer_id(mut self, our_id: PeerId) -> TorrentState {
        self.our_id = our_id;
        self
    }

    /// The actions produced since the last call, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    fn send(&mut self, k: PeerKey, msg: Outgoing, now: Instant) {
        if let Some(p) = self.peers.get_mut(&k) {
            p.last_sent = now;
        }
        self.actions.push(Action::Send(k, msg));
    }

    fn close(&mut self, k: PeerKey, why: CloseReason) {
        if let Some(p) = self.peers.get_mut(&k) {
            if !p.closing {
                p.closing = true;
                self.actions.push(Action::Close(k, why));
            }
        }
    }

    // ----- queries -----

    /// Verified pieces (wanted or not).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// Download only the pieces set in `wanted` (those of the chosen files); call before the
    /// first peer connects. "Complete" then means every wanted piece is verified.
    pub fn set_wanted(&mut self, wanted: Bitfield) {
        self.picker.set_wanted(wanted);
    }

    /// Every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    /// Bytes of wanted pieces still missing (what the tracker is told is `left`).
    pub fn left(&self) -> u64 {
        let (all, have) = self.picker.bytes_wanted();
        all - have
    }

    /// Bytes of the wanted pieces: (all, verified).
    pub fn wanted_bytes(&self) -> (u64, u64) {
        self.picker.bytes_wanted()
    }

    /// The wanted pieces: (how many, how many verified).
    pub fn wanted_pieces(&self) -> (usize, usize) {
        self.picker.pieces_wanted()
    }

    /// Byte and piece counts.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// A live connection.
    pub fn peer(&self, k: PeerKey) -> Option<&PeerState> {
        self.peers.get(&k)
    }

    /// Every live connection.
    pub fn peers(&self) -> impl Iterator<Item = (PeerKey, &PeerState)> {
        self.peers.iter().map(|(k, p)| (*k, p))
    }

    /// Requests in flight to `k`.
    pub fn inflight(&self, k: PeerKey) -> usize {
        self.picker.inflight(k)
    }

    /// Which peer each verified piece came from (see [`origin`]).
    pub fn origins(&self) -> &origin::Origins {
        &self.origins
    }

    /// Whether piece `i` is under way: some of its blocks requested or received, or being
    /// checked.
    pub fn in_flight(&self, i: usize) -> bool {
        self.picker.in_flight(i)
    }

    /// Totals of every peer address ever connected.
    pub fn history(&self) -> &HashMap<SocketAddr, PeerTotals> {
        &self.history
    }

    /// When the first block of this run arrived.
    pub fn first_block_at(&self) -> Option<Instant> {
        self.first_block_at
    }

    /// When the last piece was verified (this run).
    pub fn completed_at(&self) -> Option<Instant> {
        self.completed_at
    }

    /// The fatal error, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    // ----- events -----

    /// A connection completed its handshake with `peer_id` at `addr`; `fast` if both
    /// handshakes announced the fast extension (BEP 6); `outgoing` if we called. Refuses
    /// ourselves (the caller compares ids), a second connection to the same address, and
    /// connections past the limit. On success our bitfield is queued for it (or, with `fast`,
    /// have all / have none when that says the same in 5 bytes).
    ///
    /// Two peers that learn of each other at once (from the tracker, or by peer exchange) call
    /// each other: two connections between the same pair, each sharing the links and, on a
    /// super-seed, each getting its own offers. Of a connection from the same IP with the same
    /// peer id as a live one, one stays: the one the peer with the smaller id called, so both
    /// sides keep the same one whichever handshake each finished first. The other is refused,
    /// or, if it is the older one, closed and forgotten at once. A peer id is only a claim, so
    /// the older one counts as a twin only while young (see [`TWIN_WINDOW`]) and once it has
    /// said something after its handshake: an impostor that copied an id and sits silent does
    /// not keep the real peer out, and a long-lived connection is never closed for a newcomer.
    /// Two calls the same way are no simultaneous open (a peer calling again while its old
    /// connection is dying): both are let in, and the dead one ends on its own.
    pub fn peer_connected(
        &mut self,
        addr: SocketAddr,
        peer_id: PeerId,
        fast: bool,
        outgoing: bool,
        now: Instant,
    ) -> Result<PeerKey, PeerError> {
        // Peers are told apart by address: a peer id is the peer's own claim, and anyone who
        // saw a seeder's handshake can present its id (so an id only counts from the same IP).
        if self.peers.values().any(|p| p.addr == addr) {
            return Err(PeerError::Duplicate(addr));
        }
        if let Some(old) = self.twin_of(addr, peer_id, outgoing, now) {
            if outgoing != self.keep_outgoing(peer_id) {
                return Err(PeerError::Duplicate(addr));
            }
            self.close(old, CloseReason::Duplicate);
            self.peer_gone(old, now);
        }
        if self.peers.len() >= self.limits.max_peers && !self.evict(now) {
            return Err(PeerError::PeerLimit(self.limits.max_peers));
        }
        let key = self.next_key;
        self.next_key += 1;
        let pieces = self.layout.piece_count();
        let mut p = PeerState::new(addr, peer_id, pieces, now);
        p.fast = fast;
        p.outgoing = outgoing;
        p.super_seeded = self.limits.super_seed && self.picker.is_complete();
        let super_seeded = p.super_seeded;
        self.peers.insert(key, p);
        self.history.entry(addr).or_default().client = peer_id.text();
        let have = self.picker.have();
        let some = have.count() > 0;
        if super_seeded {
            if fast {
                self.send(key, Outgoing::HaveNone, now);
            }
            self.offer_more(key, now);
        } else if fast && have.is_full() {
            self.send(key, Outgoing::HaveAll, now);
        } else if fast && have.count() == 0 {
            self.send(key, Outgoing::HaveNone, now);
        } else if have.count() > 0 {
            let bits = have.as_bytes().to_vec();
            self.send(key, Outgoing::Bitfield(bits), now);
        }
        if some && self.limits.upload_slots == 0 {
            // Every peer may be served: say so now rather than a round trip after it says
            // `interested` (a peer that wants nothing never asks).
            self.set_choke(key, false, now);
        }
        Ok(key)
    }

    /// A young connection that has spoken since its handshake, from `addr`'s IP with
    /// `peer_id`, the other way round from a connection `outgoing` (see
    /// [`TorrentState::peer_connected`]).
    fn twin_of(
        &self,
        addr: SocketAddr,
        peer_id: PeerId,
        outgoing: bool,
        now: Instant,
    ) -> Option<PeerKey> {
        self.peers
            .iter()
            .find(|(_, p)| {
                !p.closing
                    && p.outgoing != outgoing
                    && p.peer_id == peer_id
                    && p.addr.ip() == addr.ip()
                    && p.last_heard > p.since
                    && now.saturating_duration_since(p.since) < TWIN_WINDOW
            })
            .map(|(k, _)| *k)
    }

    /// Of two connections with `peer_id`, the one that stays is the one we called if our id
    /// is the smaller: both sides pick the same one.
    fn keep_outgoing(&self, peer_id: PeerId) -> bool {
        self.our_id.0 < peer_id.0
    }

    /// `k` spoke for the first time since its handshake. Two peers that call each other at
    /// the same moment both finish their handshakes before either connection says anything,
    /// so neither was a twin when it was let in: the pair is settled now, by the same rule.
    /// True if `k` is the one closed.
    fn settle_twins(&mut self, k: PeerKey, now: Instant) -> bool {
        let p = &self.peers[&k];
        let (addr, peer_id, outgoing) = (p.addr, p.peer_id, p.outgoing);
        if now.saturating_duration_since(p.since) >= TWIN_WINDOW {
            return false;
        }
        let Some(other) = self.twin_of(addr, peer_id, outgoing, now) else {
            return false;
        };
        let loser = if outgoing == self.keep_outgoing(peer_id) {
            other
        } else {
            k
        };
        self.close(loser, CloseReason::Duplicate);
        self.peer_gone(loser, now);
        loser == k
    }

    /// Make room for a new connection: close the least useful one (the oldest that exchanged
    /// nothing, see [`PeerState::evictable`]) and forget it at once. False if none qualifies.
    pub fn evict(&mut self, now: Instant) -> bool {
        let victim = self
            .peers
            .iter()
            .filter(|(_, p)| p.evictable(now))
            .min_by_key(|(k, p)| (p.since, **k))
            .map(|(k, _)| *k);
        let Some(k) = victim else {
            return false;
        };
        self.close(k, CloseReason::Evicted);
        self.peer_gone(k, now);
        true
    }

    /// `k` says it only uploads (BEP 21 `upload_only`). Two seeds have nothing to trade and
    /// hang up (a seed that super-seeds shows no bitfield, so this is how seeds know each
    /// other); a leecher keeps the connection and is simply not counted among the leechers.
    pub fn peer_upload_only(&mut self, k: PeerKey) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        p.upload_only = true;
        if self.picker.is_complete() {
            self.close(k, CloseReason::BothSeeds);
        }
    }

    /// A connection ended: its requests go to the others, its pieces leave the availability.
    pub fn peer_gone(&mut self, k: PeerKey, now: Instant) {
        let Some(p) = self.peers.remove(&k) else {
            return;
        };
        self.picker.remove_peer_pieces(&p.bits);
        self.picker.release_peer(k);
        self.offers_forget(&p.offered);
        if self.choke.forget(k) || !p.am_choking {
            self.unchoke_free_slots(now);
        }
        // Its blocks are free again: let the others pick them up now, not at the next tick.
        self.fill_all(now);
    }

    /// A message from `k` (anything but `piece`: see [`TorrentState::on_block`]).
    pub fn on_message(&mut self, k: PeerKey, msg: Message<'_>, now: Instant) {
        let pieces = self.layout.piece_count();
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        let first = p.last_heard == p.since;
        p.last_heard = now;
        if first && self.settle_twins(k, now) {
            return;
        }
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if !p.fast {
            if let Some(name) = fast_only(&msg) {
                return self.close(k, Violation::FastNotNegotiated(name).into());
            }
        }
        match msg {
            Message::KeepAlive | Message::Unknown(_) => {}
            // extensions are not negotiated yet: ignored
            Message::Extended { .. } => {}
            // A hint only: rarest-first already spreads the pieces.
            Message::Suggest(_) => {}
            Message::HaveAll => {
                let bits = Bitfield::full(pieces);
                self.set_peer_pieces(k, bits, now);
            }
            Message::HaveNone => {
                let bits = Bitfield::new(pieces);
                self.set_peer_pieces(k, bits, now);
            }
            Message::Reject(b) => {
                // Asked elsewhere at once (and of this peer only if nobody else has it).
                if self.picker.reject(k, b) {
                    self.fill_all(now);
                }
            }
            Message::AllowedFast(i) => {
                // Pieces out of range are ignored, as BEP 6 allows; the set is a bitfield, so
                // any number of these costs nothing.
                if (i as usize) < pieces && p.allowed_in.set(i as usize) {
                    self.fill(k, now);
                }
            }
            Message::Choke => {
                p.peer_choking = true;
                if !p.fast {
                    // Without the fast extension a choke discards our pending requests; with
                    // it the peer rejects each one it will not serve (and serves the
                    // allowed-fast ones).
                    self.picker.release_peer(k);
                }
            }
            Message::Unchoke => {
                p.peer_choking = false;
                self.fill(k, now);
            }
            Message::Interested => {
                p.peer_interested = true;
                self.unchoke_free_slots(now);
            }
            Message::NotInterested => {
                p.peer_interested = false;
                if !p.am_choking && self.limits.upload_slots > 0 {
                    // Its slot goes to a peer that wants it.
                    p.am_choking = true;
                    self.send(k, Outgoing::Choke, now);
                    self.drop_their_requests(k, now);
                    self.unchoke_free_slots(now);
                }
            }
            Message::Have(i) => {
                if i as usize >= pieces {
                    let v = Violation::HaveOutOfRange { index: i, pieces };
                    return self.close(k, v.into());
                }
                if p.bits.set(i as usize) {
                    self.picker.add_have(i as usize);
                }
                if p.bits.is_full() && self.picker.is_complete() {
                    return self.close(k, CloseReason::BothSeeds);
                }
                let super_seeded = p.super_seeded;
                if !p.am_interested && self.picker.wants(i as usize) {
                    p.am_interested = true;
                    self.send(k, Outgoing::Interested, now);
                }
                if super_seeded {
                    self.offer_settled(k, i, true);
                    self.offer_more(k, now);
                }
                self.fill(k, now);
            }
            Message::Bitfield(bytes) => {
                let bits = match Bitfield::from_bytes(bytes, pieces) {
                    Ok(b) => b,
                    Err(e) => return self.close(k, Violation::from(e).into()),
                };
                self.set_peer_pieces(k, bits, now);
            }
            Message::Request(b) => self.on_request(k, b, now),
            Message::Cancel(b) => {
                if let Some(pos) = p.their_requests.iter().position(|r| *r == b) {
                    p.their_requests.remove(pos);
                    if p.fast {
                        // BEP 6: a cancel is answered with the block or a reject.
                        self.send(k, Outgoing::Reject(b), now);
                    }
                }
            }
            Message::Piece { index, begin, data } => self.on_block(k, index, begin, data, now),
        }
    }

    /// `k` told us all its pieces (bitfield, have all, have none).
    fn set_peer_pieces(&mut self, k: PeerKey, bits: Bitfield, now: Instant) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        self.picker.remove_peer_pieces(&p.bits);
        self.picker.add_peer_pieces(&bits);
        p.bits = bits;
        if p.bits.is_full() && self.picker.is_complete() {
            return self.close(k, CloseReason::BothSeeds);
        }
        if p.super_seeded {
            let had: Vec<u32> = p
                .offered
                .iter()
                .copied()
                .filter(|&i| p.bits.get(i as usize))
                .collect();
            for i in had {
                self.offer_settled(k, i, false);
            }
            self.offer_more(k, now);
        }
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if !p.am_interested && self.picker.interesting(&p.bits) {
            p.am_interested = true;
            self.send(k, Outgoing::Interested, now);
        }
        self.offer_allowed_fast(k, now);
        self.fill(k, now);
    }

    /// Give a fast peer with almost nothing its allowed-fast set (BEP 6), once: the pieces of
    /// the set we have and it lacks, which it may request while we choke it.
    fn offer_allowed_fast(&mut self, k: PeerKey, now: Instant) {
        let Some(p) = self.peers.get(&k) else { return };
        if !p.fast || !p.allowed_out.is_empty() || p.bits.count() >= ALLOWED_FAST {
            return;
        }
        let pieces = self.layout.piece_count().min(u32::MAX as usize) as u32;
        let set: Vec<u32> = allowed_fast_set(p.addr.ip(), &self.info_hash, pieces, ALLOWED_FAST)
            .into_iter()
            .filter(|&i| self.picker.have().get(i as usize) && !p.bits.get(i as usize))
            .collect();
        for &i in &set {
            self.send(k, Outgoing::AllowedFast(i), now);
        }
        self.peers.get_mut(&k).expect("checked").allowed_out = set;
    }

    /// A request from `k`. A fast peer hears a reject for each request we will not serve; a
    /// peer without the extension hears nothing (BEP 3), or is closed for an impossible one.
    fn on_request(&mut self, k: PeerKey, b: BlockRef, now: Instant) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        let i = b.index as usize;
        let impossible = if !self.layout.contains(i, b.begin, b.len) {
            Some(Violation::RequestOutside(b))
        } else if !self.picker.have().get(i) && !self.picker.lost(i) {
            Some(Violation::RequestMissing(b.index))
        } else {
            None
        };
        let choked = p.am_choking && !(p.fast && p.allowed_out.contains(&b.index));
        if !p.fast {
            if choked {
                return; // BEP 3: requests while choked are ignored
            }
            if let Some(v) = impossible {
                return self.close(k, v.into());
            }
            if !self.picker.have().get(i) {
                return; // we offered it, then lost it from disk: not their fault
            }
        } else if let Some(v) = impossible {
            p.bad_requests += 1;
            if p.bad_requests > MAX_BAD_REQUESTS {
                return self.close(k, v.into());
            }
            return self.send(k, Outgoing::Reject(b), now);
        } else if choked || !self.picker.have().get(i) {
            return self.send(k, Outgoing::Reject(b), now);
        }
        if p.their_requests.len() >= MAX_PEER_REQUESTS {
            return self.close(k, Violation::RequestFlood(MAX_PEER_REQUESTS).into());
        }
        p.their_requests.push_back(b);
        p.last_sent = now;
        self.actions.push(Action::Serve(k, b));
    }

    /// We stop serving `k`'s queued requests (we choke it): a fast peer hears a reject for
    /// each, except those of its allowed-fast pieces, which are still served.
    fn drop_their_requests(&mut self, k: PeerKey, now: Instant) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if !p.fast {
            p.their_requests.clear();
            return;
        }
        let mut rejected = Vec::new();
        let allowed = &p.allowed_out;
        p.their_requests.retain(|r| {
            let keep = allowed.contains(&r.index);
            if !keep {
                rejected.push(*r);
            }
            keep
        });
        for b in rejected {
            self.send(k, Outgoing::Reject(b), now);
        }
    }

    /// A block arrived from `k`: copied into its piece; a complete piece is sent to be verified.
    pub fn on_block(&mut self, k: PeerKey, index: u32, begin: u32, data: &[u8], now: Instant) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        p.last_heard = now;
        let len = data.len() as u64;
        let block = BlockRef {
            index,
            begin,
            len: data.len() as u32,
        };
        let (cancel, complete) = match self.picker.on_block(k, index, begin, data) {
            BlockOutcome::Unrequested => {
                // Cancelled, timed-out or endgame-duplicate requests may still arrive; a stream
                // of blocks nobody asked for is an attack on our bandwidth.
                self.totals.wasted += len;
                p.unrequested += 1;
                if p.unrequested > MAX_UNREQUESTED && p.unrequested > p.blocks_received {
                    let n = p.unrequested;
                    self.close(k, Violation::Unrequested(n).into());
                }
                return;
            }
            BlockOutcome::Stored { cancel } => (cancel, None),
            BlockOutcome::Complete {
                cancel,
                data,
                senders,
            } => (cancel, Some((data, senders))),
        };
        p.downloaded += len;
        p.blocks_received += 1;
        p.queue_target = (p.queue_target + 1).min(MAX_QUEUE);
        let addr = p.addr;
        self.totals.downloaded += len;
        self.first_block_at.get_or_insert(now);
        self.history.entry(addr).or_default().downloaded += len;
        for other in cancel {
            self.send(other, Outgoing::Cancel(block), now);
        }
        if let Some((data, senders)) = complete {
            self.note_senders(index, &senders);
            self.actions.push(Action::Verify { index, data });
        }
    }

    /// A verify-and-write job for piece `index` finished. `data` is its buffer, given back.
    pub fn piece_checked(
        &mut self,
        index: u32,
        outcome: PieceOutcome,
        data: Vec<u8>,
        now: Instant,
    ) {
        match outcome {
            PieceOutcome::WriteFailed(e) => {
                self.blame_failed(index, &[]);
                self.picker.on_failed(index as usize, &[], Some(data));
                self.fail(format!("cannot write piece {index}: {e}"));
            }
            PieceOutcome::HashMismatch => {
                self.totals.bad_pieces += 1;
                self.totals.wasted += data.len() as u64;
                self.totals.downloaded -= (data.len() as u64).min(self.totals.downloaded);
                let senders = self.blame_failed(index, &data);
                self.picker.on_failed(index as usize, &senders, Some(data));
                // The piece is wanted again: peers we lost interest in may have it.
                self.refresh_interest(now);
                self.fill_all(now);
            }
            PieceOutcome::Verified => {
                self.blame_verified(index, &data);
                self.picker.on_verified(index as usize, Some(data));
                self.totals.verified += 1;
                for k in self.peers.keys().copied().collect::<Vec<_>>() {
                    self.send(k, Outgoing::Have(index), now);
                }
                if self.picker.is_complete() {
                    self.on_complete(now);
                } else {
                    // A verified piece frees a buffer: peers held back by the buffer bound may
                    // ask for more now, not at the next tick.
                    self.fill_all(now);
                }
            }
        }
    }

    /// Say `interested` to every peer that has a piece we want and has not heard it.
    fn refresh_interest(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.am_interested && !p.closing && self.picker.interesting(&p.bits))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.peers.get_mut(&k).expect("listed").am_interested = true;
            self.send(k, Outgoing::Interested, now);
        }
    }

    fn on_complete(&mut self, now: Instant) {
        self.completed_at = Some(now);
        self.actions.push(Action::Completed);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let p = &self.peers[&k];
            let (interested, seed) = (p.am_interested, p.bits.is_full());
            if seed {
                self.close(k, CloseReason::BothSeeds);
            } else if interested {
                self.peers.get_mut(&k).expect("listed").am_interested = false;
                self.send(k, Outgoing::NotInterested, now);
            }
        }
    }

    /// Top up the requests in flight to `k`.
    pub fn fill(&mut self, k: PeerKey, now: Instant) {
        let Some(p) = self.peers.get(&k) else { return };
        if !p.am_interested || p.closing {
            return;
        }
        // Choked, a fast peer still serves the pieces it allowed us.
        let choked_mask;
        let ask = if !p.peer_choking {
            &p.bits
        } else if p.fast && p.allowed_in.count() > 0 {
            let mut m = Bitfield::new(p.bits.len());
            for i in p.allowed_in.ones().filter(|&i| p.bits.get(i)) {
                m.set(i);
            }
            choked_mask = m;
            &choked_mask
        } else {
            return;
        };
        // The piece buffers are shared fairly among the peers serving us: with the first peer
        // to ask holding requests for all of them, a second seeder would wait on the first
        // one's pace (two upload-capped seeders gave 1.14x one).
        let serving = self
            .peers
            .values()
            .filter(|q| !q.peer_choking && q.am_interested)
            .count();
        let share = (self.picker.buffer_blocks() / serving.max(1)).max(MIN_SHARE);
        let inflight = self.picker.inflight(k);
        let want = p.queue_target.min(share).saturating_sub(inflight);
        // Ask in batches: one pick and one write per several blocks.
        if want < 4.min(p.queue_target) {
            return;
        }
        let picks = self.picker.pick(k, ask, want, now);
        if picks.is_empty() {
            if inflight == 0 && !self.picker.interesting(&p.bits) {
                self.peers.get_mut(&k).expect("checked").am_interested = false;
                self.send(k, Outgoing::NotInterested, now);
            }
            return;
        }
        self.send(k, Outgoing::Requests(picks), now);
    }

    /// Top up every peer.
    pub fn fill_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill(k, now);
        }
    }

    /// The writer is about to send block `b` to `k`: whether it is still wanted (not cancelled,
    /// not dropped by a choke). Takes it off `k`'s queue.
    pub fn take_request(&mut self, k: PeerKey, b: BlockRef) -> bool {
        let Some(p) = self.peers.get_mut(&k) else {
            return false;
        };
        match p.their_requests.iter().position(|r| *r == b) {
            Some(pos) => {
                p.their_requests.remove(pos);
                true
            }
            None => false,
        }
    }

    /// `n` payload bytes were sent to `k`.
    pub fn on_uploaded(&mut self, k: PeerKey, n: u64) {
        self.totals.uploaded += n;
        if let Some(p) = self.peers.get_mut(&k) {
            p.uploaded += n;
            self.history.entry(p.addr).or_default().uploaded += n;
        }
    }

    /// Periodic work (about once a second): expire slow requests, choke and unchoke, close
    /// silent peers and keep quiet ones alive, renew stuck offers, top up every peer.
    pub fn tick(&mut self, now: Instant) {
        for (k, b) in self.picker.expire(now, self.limits.request_timeout) {
            if let Some(p) = self.peers.get_mut(&k) {
                p.queue_target = (p.queue_target / 2).max(INITIAL_QUEUE);
                self.send(k, Outgoing::Cancel(b), now);
            }
        }
        self.rechoke(now);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let p = &self.peers[&k];
            if now.saturating_duration_since(p.last_heard) > IDLE_TIMEOUT {
                self.close(k, CloseReason::Silent(IDLE_TIMEOUT));
            } else if now.saturating_duration_since(p.last_sent) > KEEPALIVE {
                self.send(k, Outgoing::KeepAlive, now);
            }
            if self.peers[&k].super_seeded {
                // Offers held up by a stuck taker may go to someone else by now.
                self.offer_more(k, now);
            }
        }
        self.fill_all(now);
    }

    /// Piece `index` could not be read back from disk: it is missing now. Requests for it are
    /// dropped (BEP 3 has no way to take a `have` back); we fetch it again if peers have it.
    /// True the first time (for the log).
    pub fn piece_lost(&mut self, index: u32, now: Instant) -> bool {
        if !self.picker.lose(index as usize) {
            return false;
        }
        self.completed_at = None;
        let mut rejects = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            let fast = p.fast;
            p.their_requests.retain(|r| {
                let drop = r.index == index;
                if drop && fast {
                    rejects.push((*k, *r));
                }
                !drop
            });
        }
        for (k, b) in rejects {
            self.send(k, Outgoing::Reject(b), now);
        }
        self.refresh_interest(now);
        self.fill_all(now);
        true
    }

    /// Record a fatal error (the mode reports it and exits). The first one is kept.
    pub fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
            self.actions.push(Action::Failed);
        }
    }

    /// Close every connection.
    pub fn close_all(&mut self, why: CloseReason) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.close(k, why.clone());
        }
    }
}

/// The name of a message only the fast extension (BEP 6) allows, or `None`.
fn fast_only(msg: &Message<'_>) -> Option<&'static str> {
    Some(match msg {
        Message::Suggest(_) => "suggest piece",
        Message::HaveAll => "have all",
        Message::HaveNone => "have none",
        Message::Reject(_) => "reject request",
        Message::AllowedFast(_) => "allowed fast",
        _ => return None,
    })
}
