//! One torrent being served and/or downloaded: the thin shell around its [`TorrentState`].
//!
//! The shell owns what the rules must not: each connection's writer channel, the piece cache,
//! the hashing and writing jobs, the dialer, the watchers. Connection tasks call in with what
//! they received; the shell passes it to the state machine with the time, then carries out the
//! actions it returns, in order, under the same lock (queueing on a channel never blocks), so
//! that two connections' messages cannot be reordered between decision and send.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::cache::{Buffer, PieceBuf, PieceCache};
use super::dialer::{Dialer, Source};
use super::error::{CloseReason, PeerError};
use super::hashing::sha1;
use super::ratelimit::RateLimiter;
use super::selection::Selection;
use super::state::{Action, Limits, Outgoing, PeerKey, PieceOutcome, TorrentState};
use super::storage::Storage;
use super::{verifier, EngineConfig, Shared, TorrentOptions};
use crate::proto::bitfield::Bitfield;
use crate::proto::ids::{InfoHash, PeerId};
use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;
use crate::proto::wire::{self, BlockRef, Message};
use crate::rt::channel::Sender;

pub use super::state::PeerTotals;

/// What a connection's writer task is told to do.
#[derive(Debug)]
pub enum Out {
    /// Send these already-encoded messages.
    Raw(Vec<u8>),
    /// Read this block and send it (if still requested then).
    Serve(BlockRef),
    /// Close the connection.
    Close(CloseReason),
}

/// A point-in-time view of one connection.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// Remote address.
    pub addr: SocketAddr,
    /// Peer id as text.
    pub client: String,
    /// Pieces it has.
    pub pieces: usize,
    /// Bytes it sent us that went into a piece.
    pub downloaded: u64,
    /// Bytes we sent it.
    pub uploaded: u64,
    /// It chokes us.
    pub choking_us: bool,
    /// We are interested in it.
    pub interested: bool,
    /// Requests in flight to it.
    pub inflight: usize,
    /// Where we learned of it.
    pub source: Source,
}

/// A point-in-time view of the torrent, for the display and tests. The byte and piece counts
/// are those of the wanted pieces: with a selection of files, the pieces that hold them.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Verified bytes (of wanted pieces).
    pub have_bytes: u64,
    /// Bytes of the wanted pieces (the whole torrent without a selection).
    pub total_bytes: u64,
    /// Verified wanted pieces.
    pub have_pieces: usize,
    /// Wanted pieces (all of them without a selection).
    pub pieces: usize,
    /// Payload bytes received that went into a piece (this run).
    pub downloaded: u64,
    /// Payload bytes sent (this run).
    pub uploaded: u64,
    /// Payload bytes received and thrown away (duplicates, unrequested, failed pieces).
    pub wasted: u64,
    /// Pieces verified in this run.
    pub verified: u32,
    /// Live connections.
    pub peers: Vec<PeerView>,
    /// Totals of every peer ever connected, by address, most downloaded from first.
    pub history: Vec<(SocketAddr, PeerTotals)>,
    /// Where each peer of `history` was learned.
    pub sources: HashMap<SocketAddr, Source>,
    /// Pieces that failed their check.
    pub bad_pieces: u32,
    /// When the first block of this run arrived.
    pub first_block_at: Option<Instant>,
    /// When the last piece was verified (this run).
    pub completed_at: Option<Instant>,
    /// A fatal error (disk), if any.
    pub failure: Option<String>,
}

/// One piece's state, for a piece map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    /// Nobody is sending it yet.
    Missing,
    /// Blocks of it are requested or received, or it is being checked.
    InFlight,
    /// Verified; the index into [`PieceMap::origins`] of the peer that sent most of it, `None`
    /// when it was on disk at the start (or its sender is not recorded).
    Verified(Option<u16>),
}

/// Every piece's state, and the peers the verified ones came from.
#[derive(Debug, Clone)]
pub struct PieceMap {
    /// One entry a piece.
    pub pieces: Vec<PieceState>,
    /// The senders, in the order of their first verified piece.
    pub origins: Vec<SocketAddr>,
}

impl Snapshot {
    /// Every wanted piece is verified.
    pub fn complete(&self) -> bool {
        self.have_pieces == self.pieces
    }

    /// Where the peer at `addr` was learned ([`Source::Incoming`] if it called us).
    pub fn source(&self, addr: SocketAddr) -> Source {
        self.sources.get(&addr).copied().unwrap_or(Source::Incoming)
    }

    /// "1 lsd, 2 dht": how many live connections came from each source, in [`Source`] order.
    pub fn sources_text(&self) -> String {
        let mut counts = std::collections::BTreeMap::new();
        for p in &self.peers {
            *counts.entry(p.source).or_insert(0usize) += 1;
        }
        counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The few numbers a status line shows (see [`Torrent::brief`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    /// Bytes still missing.
    pub left: u64,
    /// Live connections.
    pub peers: usize,
    /// Payload bytes received that went into a piece (this run).
    pub downloaded: u64,
    /// Payload bytes sent (this run).
    pub uploaded: u64,
    /// A fatal error was recorded.
    pub failed: bool,
}

struct Inner {
    state: TorrentState,
    /// Each live connection's writer.
    links: HashMap<PeerKey, Sender<Out>>,
    /// Told when the torrent completes or fails.
    watchers: Vec<Sender<()>>,
    /// Reused to carry out actions without allocating.
    scratch: Vec<Action>,
}

/// One torrent being served and/or downloaded.
pub struct Torrent {
    /// The torrent file.
    pub meta: Arc<Metainfo>,
    /// Piece geometry.
    pub layout: Layout,
    /// Its files.
    pub storage: Arc<Storage>,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Tunables.
    pub config: EngineConfig,
    /// Peers we may call.
    pub dialer: Mutex<Dialer>,
    /// What all torrents of the process share (upload limit, budgets, connection cap).
    pub shared: Arc<Shared>,
    /// The download rate limit this torrent obeys, if any (shared with others given it).
    pub download_limit: Option<Arc<RateLimiter>>,
    /// The files chosen for download (`None`: all).
    pub files: Option<Selection>,
    /// The extension protocol on its connections (metadata, peer exchange).
    pub extensions: super::ext::Extensions,
    inner: Mutex<Inner>,
    cache: PieceCache,
    started: Instant,
    /// Paused by the user: no connections, no dialing, no announces until resumed.
    paused: AtomicBool,
    /// Taken out of its session: the ticker drops it.
    removed: AtomicBool,
    /// Its deadline in the process's [`Ticker`](super::schedule::Ticker).
    tick_slot: super::schedule::Slot,
}

impl Torrent {
    /// A torrent whose verified pieces are `have` (from the start-up check).
    pub fn new(
        meta: Arc<Metainfo>,
        storage: Arc<Storage>,
        have: Bitfield,
        peer_id: PeerId,
        config: EngineConfig,
        shared: Arc<Shared>,
        opts: TorrentOptions,
    ) -> Arc<Torrent> {
        let layout = meta.layout();
        let now = Instant::now();
        let limits = Limits {
            max_peers: config.max_peers,
            upload_slots: config.upload_slots,
            request_timeout: config.request_timeout,
            super_seed: true,
        };
        let mut state = TorrentState::new(layout.clone(), have, limits, now);
        if let Some(f) = opts.files.as_ref().filter(|f| !f.is_all()) {
            state.set_wanted(f.wanted_pieces(&layout));
        }
        Arc::new(Torrent {
            download_limit: opts.download_limit,
            files: opts.files,
            inner: Mutex::new(Inner {
                state: state.with_info_hash(meta.info_hash.0).with_peer_id(peer_id),
                links: HashMap::new(),
                watchers: Vec::new(),
                scratch: Vec::new(),
            }),
            dialer: Mutex::new(Dialer::default()),
            extensions: super::ext::Extensions::default(),
            cache: PieceCache::new(Arc::clone(&shared.upload)),
            shared,
            meta,
            layout,
            storage,
            peer_id,
            config,
            started: now,
            paused: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            tick_slot: Default::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take every connection down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.meta.info_hash
    }

    /// Every wanted piece (every piece without a selection) is verified.
    pub fn is_complete(&self) -> bool {
        self.lock().state.is_complete()
    }

    /// Bytes of wanted pieces still missing.
    pub fn left(&self) -> u64 {
        self.lock().state.left()
    }

    /// (downloaded, uploaded) payload bytes, for the tracker.
    pub fn transferred(&self) -> (u64, u64) {
        let t = self.lock().state.totals();
        (t.downloaded, t.uploaded)
    }

    /// When this torrent was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Pause (close every connection; no new ones) or resume the torrent. The ticker drops a
    /// paused torrent and puts it back on resume; announcing is the caller's (see
    /// [`Announcer::pause`](super::announce::Announcer::pause)).
    pub fn set_paused(self: &Arc<Self>, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        if paused {
            self.close_all(CloseReason::Shutdown);
        } else {
            // Back in the ticker: its peers are called again.
            self.wake_up();
        }
    }

    /// Paused by the user.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Mark the torrent removed from its session (and paused): the ticker drops it.
    pub fn set_removed(self: &Arc<Self>) {
        self.removed.store(true, Ordering::SeqCst);
        self.set_paused(true);
    }

    /// Removed from its session.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Add a connection that completed its handshake; `tx` reaches its writer; `fast` if both
    /// sides announced the fast extension; `outgoing` if we called. Our bitfield is queued
    /// for it.
    pub fn register(
        self: &Arc<Self>,
        addr: SocketAddr,
        peer_id: PeerId,
        fast: bool,
        outgoing: bool,
        tx: Sender<Out>,
    ) -> Result<PeerKey, PeerError> {
        if peer_id == self.peer_id {
            return Err(PeerError::Ourselves);
        }
        if self.is_paused() {
            return Err(CloseReason::Shutdown.into());
        }
        if self
            .dialer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_addr_banned(addr)
        {
            return Err(PeerError::Banned);
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if !self.shared.connections.try_take() {
            // Full across torrents: make room here if a connection of ours is useless.
            if !inner.state.evict(now) {
                return Err(PeerError::PeerLimit(self.shared.connections.limit()));
            }
            self.carry_out(&mut inner, None);
            if !self.shared.connections.try_take() {
                return Err(PeerError::PeerLimit(self.shared.connections.limit()));
            }
        }
        let key = match inner
            .state
            .peer_connected(addr, peer_id, fast, outgoing, now)
        {
            Ok(k) => k,
            Err(e) => {
                self.shared.connections.give_back();
                return Err(e);
            }
        };
        inner.links.insert(key, tx);
        self.carry_out(&mut inner, None);
        drop(inner);
        // Connected peers need the periodic tick.
        self.shared
            .ticker
            .schedule(self, now + super::schedule::TICK);
        Ok(key)
    }

    /// A connection ended (its writer may still be finishing: see [`Torrent::writer_done`]).
    pub fn unregister(self: &Arc<Self>, key: PeerKey) {
        let mut inner = self.lock();
        if inner.links.remove(&key).is_some() {
            self.shared.connections.give_back();
        }
        inner.state.peer_gone(key, Instant::now());
        self.carry_out(&mut inner, None);
    }

    /// An unregistered connection's writer has finished. It held blocks of cached pieces until
    /// now (those its socket had not taken), and a piece buffer it let go went to the spare
    /// buffers: so only now, when no connection is left, are the upload cache and the spare
    /// buffers let go.
    pub fn writer_done(&self) {
        let inner = self.lock();
        if inner.links.is_empty() && self.cache.holds_memory() {
            self.cache.clear();
            crate::sys::release_free_memory();
        }
    }

    /// Messages that arrived together from `key`, in order; then its requests are topped up.
    /// An `Err` means the connection is being closed, and why.
    pub fn receive(self: &Arc<Self>, key: PeerKey, msgs: &[Message<'_>]) -> Result<(), PeerError> {
        let now = Instant::now();
        let mut inner = self.lock();
        for msg in msgs {
            inner.state.on_message(key, *msg, now);
        }
        inner.state.fill(key, now);
        match self.carry_out(&mut inner, Some(key)) {
            Some(why) => Err(PeerError::Closed(why)),
            // Forgotten at once only when evicted for a newcomer.
            None if inner.state.peer(key).is_none() => Err(CloseReason::Evicted.into()),
            None if inner.state.peer(key).is_some_and(|p| p.closing) => {
                Err(CloseReason::Shutdown.into())
            }
            None => Ok(()),
        }
    }

    /// Carry out the state machine's actions. Returns the reason if `me` is being closed.
    fn carry_out(self: &Arc<Self>, inner: &mut Inner, me: Option<PeerKey>) -> Option<CloseReason> {
        let mut closed = None;
        let mut actions = std::mem::take(&mut inner.scratch);
        loop {
            actions.extend(inner.state.drain());
            if actions.is_empty() {
                break;
            }
            for action in actions.drain(..) {
                match action {
                    Action::Send(k, msg) => {
                        if let Some(tx) = inner.links.get(&k) {
                            let _ = tx.try_send(Out::Raw(encode(&msg)));
                        }
                    }
                    Action::Serve(k, b) => {
                        if let Some(tx) = inner.links.get(&k) {
                            let _ = tx.try_send(Out::Serve(b));
                        }
                    }
                    Action::Close(k, why) => {
                        if Some(k) == me {
                            closed = Some(why.clone());
                        }
                        // An evicted or replaced peer is forgotten now (its slot goes to the
                        // newcomer).
                        let link = if matches!(why, CloseReason::Evicted | CloseReason::Duplicate) {
                            let link = inner.links.remove(&k);
                            if link.is_some() {
                                self.shared.connections.give_back();
                            }
                            link
                        } else {
                            inner.links.get(&k).cloned()
                        };
                        if let Some(tx) = link {
                            let _ = tx.try_send(Out::Close(why));
                        }
                    }
                    Action::Verify { index, data } => self.verify(index, data),
                    Action::Ban(ban) => self
                        .dialer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .ban(ban),
                    Action::Completed => {
                        // No fsync: it would hold the exit for seconds, and a crash is covered
                        // by the start-up check, which hashes what is on disk.
                        if let Err(e) = self.storage.finish_files() {
                            inner.state.fail(format!("cannot finish the files: {e}"));
                        }
                        wake(&mut inner.watchers);
                    }
                    Action::Failed => wake(&mut inner.watchers),
                }
            }
        }
        inner.scratch = actions;
        closed
    }

    /// Hash piece `index` on the hashing pool and, if it matches, write it on the writer
    /// thread; then report the outcome to the state machine.
    fn verify(self: &Arc<Self>, index: u32, data: Vec<u8>) {
        let t = Arc::clone(self);
        verifier::submit(move || {
            if sha1(&data) != t.meta.info.pieces[index as usize] {
                return t.piece_checked(index, PieceOutcome::HashMismatch, data);
            }
            verifier::write(move || {
                let offset = t.layout.piece_offset(index as usize);
                let outcome = match t.storage.write(offset, &data) {
                    Ok(()) => PieceOutcome::Verified,
                    Err(e) => PieceOutcome::WriteFailed(e),
                };
                t.piece_checked(index, outcome, data);
            });
        });
    }

    fn piece_checked(self: &Arc<Self>, index: u32, outcome: PieceOutcome, data: Vec<u8>) {
        let mut inner = self.lock();
        inner
            .state
            .piece_checked(index, outcome, data, Instant::now());
        self.carry_out(&mut inner, None);
    }

    /// Whether block `b` is still wanted by `key` (and take it off its queue).
    pub fn take_request(&self, key: PeerKey, b: BlockRef) -> bool {
        self.lock().state.take_request(key, b)
    }

    /// Count `n` payload bytes sent to `key`.
    pub fn count_upload(&self, key: PeerKey, n: u64) {
        self.lock().state.on_uploaded(key, n);
    }

    /// The bytes of block `b` of a verified piece, and where it lies in them: the whole piece
    /// from the cache or the disk while the upload budget allows, else the block alone.
    pub async fn block_for_upload(
        &self,
        b: BlockRef,
    ) -> std::io::Result<(Arc<PieceBuf>, Range<usize>)> {
        let in_piece = b.begin as usize..(b.begin + b.len) as usize;
        if let Some(data) = self.cache.get(b.index) {
            return Ok((data, in_piece));
        }
        let storage = Arc::clone(&self.storage);
        let offset = self.layout.piece_offset(b.index as usize);
        match self
            .cache
            .buffer(self.layout.piece_size(b.index as usize) as usize)
        {
            Buffer::Piece(mut buf) => {
                let data =
                    verifier::read(move || storage.read(offset, &mut buf).map(|()| Arc::new(buf)))
                        .await?;
                self.cache.insert(b.index, Arc::clone(&data));
                Ok((data, in_piece))
            }
            Buffer::BlockOnly => {
                let at = offset + b.begin as u64;
                let mut block = vec![0u8; b.len as usize];
                let data = verifier::read(move || {
                    storage
                        .read(at, &mut block)
                        .map(|()| Arc::new(PieceBuf::uncounted(block)))
                })
                .await?;
                Ok((data, 0..b.len as usize))
            }
        }
    }

    /// Piece `index` could not be read back from disk (a file deleted, truncated or
    /// unreadable): it is missing now, no longer offered, and fetched again if peers have it.
    pub fn piece_lost(self: &Arc<Self>, index: u32, error: &std::io::Error) {
        let mut inner = self.lock();
        if inner.state.piece_lost(index, Instant::now()) {
            log::warn!(
                "{}: cannot read piece {index} back ({error}); it is missing now",
                self.meta.info.name
            );
        }
        self.carry_out(&mut inner, None);
    }

    /// Periodic work (about once a second): see [`TorrentState::tick`].
    pub fn tick(self: &Arc<Self>) {
        let mut inner = self.lock();
        inner.state.tick(Instant::now());
        self.carry_out(&mut inner, None);
    }

    /// When this torrent next needs [`Torrent::tick`] and a look at its dialer: in a second
    /// while peers are connected, when the next call is due, or never (`None`) while idle.
    pub fn next_work(&self, now: Instant) -> Option<Instant> {
        if !self.lock().links.is_empty() {
            return Some(now + super::schedule::TICK);
        }
        self.dialer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_call()
    }

    /// Schedule the next [`Torrent::tick`] by [`Torrent::next_work`] (after peers were
    /// learned, or a call ended).
    pub fn wake_up(self: &Arc<Self>) {
        let now = Instant::now();
        if let Some(at) = self.next_work(now) {
            self.shared.ticker.schedule(self, at);
        }
    }

    pub(crate) fn tick_slot(&self) -> &super::schedule::Slot {
        &self.tick_slot
    }

    /// The peer on connection `key` only uploads (its extension handshake said so).
    pub fn peer_upload_only(self: &Arc<Self>, key: PeerKey) {
        let mut inner = self.lock();
        inner.state.peer_upload_only(key);
        self.carry_out(&mut inner, None);
    }

    /// Close every connection.
    pub fn close_all(self: &Arc<Self>, why: CloseReason) {
        let mut inner = self.lock();
        inner.state.close_all(why);
        self.carry_out(&mut inner, None);
    }

    /// Record a fatal error (the mode reports it and exits).
    pub fn fail(self: &Arc<Self>, why: String) {
        let mut inner = self.lock();
        inner.state.fail(why);
        self.carry_out(&mut inner, None);
    }

    /// Send `()` on `tx` whenever the torrent completes or fails, so that a loop waiting for
    /// that reacts at once rather than at its next poll. Any number of watchers may listen.
    pub fn watch(&self, tx: Sender<()>) {
        self.lock().watchers.push(tx);
    }

    /// What a status line shows, without allocating: compare it with the last one to know
    /// whether a [`Torrent::snapshot`] is worth taking (10,000 snapshots every 2 s cost an idle
    /// peer more CPU than everything else).
    pub fn brief(&self) -> Brief {
        let inner = self.lock();
        let st = &inner.state;
        let totals = st.totals();
        Brief {
            left: st.left(),
            peers: st.peers().count(),
            downloaded: totals.downloaded,
            uploaded: totals.uploaded,
            failed: st.failure().is_some(),
        }
    }

    /// A view for display and tests.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let st = &inner.state;
        let dialer = self.dialer.lock().unwrap_or_else(|e| e.into_inner());
        let mut history: Vec<(SocketAddr, PeerTotals)> =
            st.history().iter().map(|(a, t)| (*a, t.clone())).collect();
        history.sort_by(|a, b| b.1.downloaded.cmp(&a.1.downloaded).then(a.0.cmp(&b.0)));
        let mut peers: Vec<PeerView> = st
            .peers()
            .map(|(k, p)| PeerView {
                addr: p.addr,
                client: p.peer_id.text(),
                pieces: p.bits.count(),
                downloaded: p.downloaded,
                uploaded: p.uploaded,
                choking_us: p.peer_choking,
                interested: p.am_interested,
                inflight: st.inflight(k),
                source: dialer.source(p.addr),
            })
            .collect();
        let sources = history
            .iter()
            .map(|(a, _)| (*a, dialer.source(*a)))
            .collect();
        drop(dialer);
        peers.sort_by_key(|p| p.addr);
        let totals = st.totals();
        let (total_bytes, have_bytes) = st.wanted_bytes();
        let (pieces, have_pieces) = st.wanted_pieces();
        Snapshot {
            have_bytes,
            total_bytes,
            have_pieces,
            pieces,
            downloaded: totals.downloaded,
            uploaded: totals.uploaded,
            wasted: totals.wasted,
            verified: totals.verified,
            peers,
            history,
            sources,
            bad_pieces: totals.bad_pieces,
            first_block_at: st.first_block_at(),
            completed_at: st.completed_at(),
            failure: st.failure().map(str::to_string),
        }
    }

    /// Each piece's state and the peers the verified ones came from, for a piece map.
    pub fn piece_map(&self) -> PieceMap {
        let inner = self.lock();
        let st = &inner.state;
        let origins = st.origins();
        let pieces = (0..self.layout.piece_count())
            .map(|i| {
                if st.have().get(i) {
                    PieceState::Verified(origins.of(i).map(|o| o as u16))
                } else if st.in_flight(i) {
                    PieceState::InFlight
                } else {
                    PieceState::Missing
                }
            })
            .collect();
        PieceMap {
            pieces,
            origins: origins.addrs().to_vec(),
        }
    }

    /// Whether an incoming connection from `addr` is refused (see [`Dialer::is_banned`]).
    pub fn refuses(&self, addr: SocketAddr) -> bool {
        self.dialer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_banned(addr)
    }

    /// Whether the peer with this address has every piece (for the dialer, once we are a seed).
    pub fn peer_is_seed(&self, addr: SocketAddr) -> bool {
        self.lock()
            .state
            .peers()
            .any(|(_, p)| p.addr == addr && p.bits.is_full())
    }
}

/// Wake every watcher; forget those that hung up.
fn wake(watchers: &mut Vec<Sender<()>>) {
    // A full channel has a wake-up pending already.
    watchers.retain(|tx| !matches!(tx.try_send(()), Err(e) if e.is_closed()));
}

/// The wire bytes of a message the state machine sends.
fn encode(msg: &Outgoing) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    let one = |m: Message<'_>, buf: &mut Vec<u8>| wire::encode(&m, buf);
    match msg {
        Outgoing::KeepAlive => one(Message::KeepAlive, &mut buf),
        Outgoing::Choke => one(Message::Choke, &mut buf),
        Outgoing::Unchoke => one(Message::Unchoke, &mut buf),
        Outgoing::Interested => one(Message::Interested, &mut buf),
        Outgoing::NotInterested => one(Message::NotInterested, &mut buf),
        Outgoing::Have(i) => one(Message::Have(*i), &mut buf),
        Outgoing::Bitfield(bits) => one(Message::Bitfield(bits), &mut buf),
        Outgoing::Cancel(b) => one(Message::Cancel(*b), &mut buf),
        Outgoing::HaveAll => one(Message::HaveAll, &mut buf),
        Outgoing::HaveNone => one(Message::HaveNone, &mut buf),
        Outgoing::Reject(b) => one(Message::Reject(*b), &mut buf),
        Outgoing::AllowedFast(i) => one(Message::AllowedFast(*i), &mut buf),
        Outgoing::Requests(blocks) => {
            buf.reserve(blocks.len() * 17);
            for b in blocks {
                one(Message::Request(*b), &mut buf);
            }
        }
    }
    buf
}

/// A one-piece torrent under `dir` that takes itself for complete (nothing is read), sharing
/// `shared`: for unit tests of the parts around a torrent.
#[cfg(test)]
pub(crate) fn one_piece_for_tests(dir: &std::path::Path, shared: Arc<Shared>) -> Arc<Torrent> {
    use super::storage::{Access, Storage};
    use crate::proto::bitfield::Bitfield;
    let mut raw = b"d4:infod6:lengthi4e4:name1:a12:piece lengthi16384e6:pieces20:".to_vec();
    raw.extend_from_slice(&[7u8; 20]);
    raw.extend_from_slice(b"ee");
    let meta = Metainfo::from_bytes(&raw).expect("a valid torrent");
    let storage = Arc::new(Storage::new(dir, &meta, Access::ReadWrite));
    Torrent::new(
        Arc::new(meta),
        storage,
        Bitfield::full(1),
        crate::proto::ids::PeerId(*b"-BT0001-testtesttest"),
        EngineConfig::default(),
        shared,
        super::TorrentOptions::default(),
    )
}
