//! One torrent's live state: its pieces (through the [`Picker`]), its connections, the peers it
//! may dial, and its byte counts. Connection tasks call in with what they received; the torrent
//! answers by queueing messages on their writers. The lock is never held across an `.await`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::rt::channel::Sender;

use super::cache::PieceCache;
use super::hashing::sha1;
use super::peer::{Out, PeerSlot, MAX_PEER_REQUESTS, MAX_QUEUE};
use super::picker::{BlockOutcome, PeerKey, Picker};
use super::ratelimit::RateLimiter;
use super::storage::Storage;
use super::{dialer::Dialer, verifier, EngineConfig};
use crate::proto::bitfield::Bitfield;
use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;
use crate::proto::wire::{BlockRef, Message};

/// Bad pieces a peer may send before it is dropped and never called again.
const MAX_STRIKES: u32 = 2;
/// Requests in flight a serving peer may always have, however many peers share the buffers.
const MIN_SHARE: usize = 16;

/// Byte counts of one peer, kept after it leaves (for the summary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTotals {
    /// Peer id as text.
    pub client: String,
    /// Bytes it sent us.
    pub downloaded: u64,
    /// Bytes we sent it.
    pub uploaded: u64,
    /// Pieces it sent that failed their hash check.
    pub strikes: u32,
    /// Verified pieces it sent (all or part of).
    pub pieces: u32,
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
    /// Bytes it sent us.
    pub downloaded: u64,
    /// Bytes we sent it.
    pub uploaded: u64,
    /// It chokes us.
    pub choking_us: bool,
    /// We are interested in it.
    pub interested: bool,
    /// Requests in flight to it.
    pub inflight: usize,
}

/// A point-in-time view of the torrent, for the display and tests.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Verified bytes.
    pub have_bytes: u64,
    /// Total bytes.
    pub total_bytes: u64,
    /// Verified pieces.
    pub have_pieces: usize,
    /// All pieces.
    pub pieces: usize,
    /// Payload bytes received (all peers, all time).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Bytes thrown away (failed hash checks).
    pub wasted: u64,
    /// Live connections.
    pub peers: Vec<PeerView>,
    /// Totals of every peer ever connected, by address.
    pub history: Vec<(SocketAddr, PeerTotals)>,
    /// Pieces that failed their check.
    pub bad_pieces: u32,
    /// When the last piece was verified (this run).
    pub completed_at: Option<Instant>,
    /// A fatal error (disk), if any.
    pub failure: Option<String>,
}

impl Snapshot {
    /// Every piece is verified.
    pub fn complete(&self) -> bool {
        self.have_pieces == self.pieces
    }
}

struct State {
    picker: Picker,
    peers: HashMap<PeerKey, PeerSlot>,
    next_key: PeerKey,
    history: HashMap<SocketAddr, PeerTotals>,
    bad_pieces: u32,
    completed_at: Option<Instant>,
    failure: Option<String>,
    last_rechoke: Instant,
    optimistic: Option<PeerKey>,
    last_optimistic: Instant,
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
    pub peer_id: [u8; 20],
    /// Tunables.
    pub config: EngineConfig,
    /// Peers we may call.
    pub dialer: Mutex<Dialer>,
    /// The process-wide upload limit, if any.
    pub limiter: Option<Arc<RateLimiter>>,
    state: Mutex<State>,
    cache: PieceCache,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
    wasted: AtomicU64,
    started: Instant,
    /// Told when the torrent completes or fails (see [`Torrent::watch`]).
    watcher: Mutex<Option<Sender<()>>>,
}

impl Torrent {
    /// A torrent whose verified pieces are `have` (from the start-up check).
    pub fn new(
        meta: Arc<Metainfo>,
        storage: Arc<Storage>,
        have: Bitfield,
        peer_id: [u8; 20],
        config: EngineConfig,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Arc<Torrent> {
        let layout = meta.layout();
        let now = Instant::now();
        Arc::new(Torrent {
            state: Mutex::new(State {
                picker: Picker::new(layout.clone(), have),
                peers: HashMap::new(),
                next_key: 1,
                history: HashMap::new(),
                bad_pieces: 0,
                completed_at: None,
                failure: None,
                last_rechoke: now,
                optimistic: None,
                last_optimistic: now,
            }),
            dialer: Mutex::new(Dialer::default()),
            limiter,
            meta,
            layout,
            storage,
            peer_id,
            config,
            cache: PieceCache::default(),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            wasted: AtomicU64::new(0),
            started: now,
            watcher: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every connection down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The info-hash.
    pub fn info_hash(&self) -> [u8; 20] {
        self.meta.info_hash.0
    }

    /// Every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.lock().picker.is_complete()
    }

    /// Bytes still missing.
    pub fn left(&self) -> u64 {
        self.layout.total_length() - self.lock().picker.bytes_have()
    }

    /// (downloaded, uploaded) payload bytes.
    pub fn transferred(&self) -> (u64, u64) {
        (
            self.downloaded.load(Ordering::Relaxed),
            self.uploaded.load(Ordering::Relaxed),
        )
    }

    /// When this torrent was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Add a connection that completed its handshake. Sends our bitfield. Refuses a second
    /// connection to the same peer id, and connections past the limit.
    pub fn register(
        &self,
        addr: SocketAddr,
        peer_id: [u8; 20],
        incoming: bool,
        tx: Sender<Out>,
    ) -> Result<PeerKey, String> {
        if peer_id == self.peer_id {
            return Err("connected to ourselves".into());
        }
        let mut st = self.lock();
        if st.peers.values().any(|p| p.peer_id == peer_id) {
            return Err("already connected to this peer".into());
        }
        if st.peers.len() >= self.config.max_peers {
            return Err(format!("peer limit ({}) reached", self.config.max_peers));
        }
        let key = st.next_key;
        st.next_key += 1;
        let slot = PeerSlot::new(addr, peer_id, incoming, self.layout.piece_count(), tx);
        if st.picker.have().count() > 0 {
            slot.send(&Message::Bitfield(st.picker.have().as_bytes()));
        }
        st.history.entry(addr).or_default().client = slot.client_name();
        st.peers.insert(key, slot);
        Ok(key)
    }

    /// A connection ended: give its requests to others and forget its pieces.
    pub fn unregister(&self, key: PeerKey) {
        let mut st = self.lock();
        if let Some(p) = st.peers.remove(&key) {
            st.picker.remove_peer_pieces(&p.bits);
            st.picker.release_peer(key);
            drop(st);
            // Its blocks are free again: let the others pick them up now, not at the next tick.
            self.fill_all();
        }
    }

    /// Handle one message (anything but `piece`, which goes through [`Torrent::on_block`]).
    /// An `Err` is the reason to drop the peer.
    pub fn handle(&self, key: PeerKey, msg: Message<'_>) -> Result<(), String> {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(p) = st.peers.get_mut(&key) else {
            return Err("connection closed".into());
        };
        p.last_heard = Instant::now();
        match msg {
            Message::KeepAlive | Message::Unknown(_) => {}
            Message::Choke => {
                p.peer_choking = true;
                // Without the fast extension a choke discards our pending requests.
                p.inflight.clear();
                st.picker.release_peer(key);
            }
            Message::Unchoke => p.peer_choking = false,
            Message::Interested => {
                p.peer_interested = true;
                if self.config.upload_slots == 0 && p.am_choking {
                    p.am_choking = false;
                    p.send(&Message::Unchoke);
                }
            }
            Message::NotInterested => p.peer_interested = false,
            Message::Have(i) => {
                let i = i as usize;
                if i >= self.layout.piece_count() {
                    return Err(format!(
                        "have for piece {i} of {}",
                        self.layout.piece_count()
                    ));
                }
                if p.bits.set(i) {
                    st.picker.add_have(i);
                }
                if !p.am_interested && st.picker.wants(i) {
                    p.am_interested = true;
                    p.send(&Message::Interested);
                }
            }
            Message::Bitfield(bytes) => {
                let bits = Bitfield::from_bytes(bytes, self.layout.piece_count())
                    .map_err(|e| e.to_string())?;
                st.picker.remove_peer_pieces(&p.bits);
                st.picker.add_peer_pieces(&bits);
                p.bits = bits;
                if p.bits.is_full() && st.picker.is_complete() {
                    return Err("both sides are seeds".into());
                }
                if !p.am_interested && st.picker.interesting(&p.bits) {
                    p.am_interested = true;
                    p.send(&Message::Interested);
                }
            }
            Message::Request(b) => {
                if p.am_choking {
                    return Ok(()); // BEP 3: requests while choked are ignored
                }
                if !self.layout.contains(b.index as usize, b.begin, b.len) {
                    return Err(format!("request outside the torrent: {b:?}"));
                }
                if !st.picker.have().get(b.index as usize) {
                    return Err(format!("request for piece {} we do not have", b.index));
                }
                if p.their_requests.len() >= MAX_PEER_REQUESTS {
                    return Err(format!("more than {MAX_PEER_REQUESTS} requests queued"));
                }
                p.their_requests.push_back(b);
                p.queue(Out::Serve(b));
            }
            Message::Cancel(b) => {
                if let Some(pos) = p.their_requests.iter().position(|r| *r == b) {
                    p.their_requests.remove(pos);
                }
            }
            Message::Piece { .. } => return Err("piece must go through on_block".into()),
        }
        Ok(())
    }

    /// A block arrived. Copies it into its piece; a complete piece goes to the hashing pool.
    pub fn on_block(
        self: &Arc<Self>,
        key: PeerKey,
        index: u32,
        begin: u32,
        data: &[u8],
    ) -> Result<(), String> {
        let block = BlockRef {
            index,
            begin,
            len: data.len() as u32,
        };
        let mut st = self.lock();
        let st = &mut *st;
        let Some(p) = st.peers.get_mut(&key) else {
            return Err("connection closed".into());
        };
        p.last_heard = Instant::now();
        if !p.inflight.remove(&block) {
            // Cancelled or timed-out requests may still arrive; a stream of blocks nobody
            // asked for is an attack on our bandwidth.
            p.unrequested += 1;
            if p.unrequested > 64 && p.unrequested > p.blocks_received {
                return Err(format!("{} blocks we never asked for", p.unrequested));
            }
            return Ok(());
        }
        p.downloaded += data.len() as u64;
        p.blocks_received += 1;
        p.queue_target = (p.queue_target + 1).min(MAX_QUEUE);
        self.downloaded
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let addr = p.addr;
        st.history.entry(addr).or_default().downloaded += data.len() as u64;
        let (cancel, complete) = match st.picker.on_block(key, index, begin, data) {
            BlockOutcome::Unrequested => (Vec::new(), None),
            BlockOutcome::Stored { cancel } => (cancel, None),
            BlockOutcome::Complete {
                cancel,
                data,
                contributors,
            } => (cancel, Some((data, contributors))),
        };
        for other in cancel {
            if let Some(o) = st.peers.get_mut(&other) {
                if o.inflight.remove(&block) {
                    o.send(&Message::Cancel(block));
                }
            }
        }
        if let Some((data, contributors)) = complete {
            self.verify(index as usize, data, contributors);
        }
        Ok(())
    }

    fn verify(self: &Arc<Self>, index: usize, data: Vec<u8>, contributors: Vec<PeerKey>) {
        let t = Arc::clone(self);
        verifier::submit(move || {
            if sha1(&data) != t.meta.info.pieces[index] {
                t.piece_checked(index, false, Ok(()), data, contributors);
                t.fill_all();
                return;
            }
            verifier::write(move || {
                let written = t.storage.write(t.layout.piece_offset(index), &data);
                t.piece_checked(index, true, written, data, contributors);
                // A verified piece frees a buffer: peers held back by the buffer bound may
                // ask for more now, not at the next tick.
                t.fill_all();
            });
        });
    }

    fn piece_checked(
        &self,
        index: usize,
        ok: bool,
        written: std::io::Result<()>,
        data: Vec<u8>,
        contributors: Vec<PeerKey>,
    ) {
        let mut st = self.lock();
        let st = &mut *st;
        if let Err(e) = written {
            st.picker.on_failed(index, &[], Some(data));
            st.failure = Some(format!("cannot write piece {index}: {e}"));
            self.wake_watcher();
            return;
        }
        if !ok {
            st.bad_pieces += 1;
            self.wasted.fetch_add(data.len() as u64, Ordering::Relaxed);
            st.picker.on_failed(index, &contributors, Some(data));
            for k in &contributors {
                let Some(p) = st.peers.get(k) else { continue };
                let totals = st.history.entry(p.addr).or_default();
                totals.strikes += 1;
                log::warn!("piece {index} from {} failed its hash check", p.addr);
                if totals.strikes >= MAX_STRIKES {
                    self.dialer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .ban(p.addr);
                    p.close(format!(
                        "sent {} pieces that failed their hash check",
                        totals.strikes
                    ));
                }
            }
            return;
        }
        st.picker.on_verified(index, Some(data));
        for k in &contributors {
            if let Some(p) = st.peers.get(k) {
                st.history.entry(p.addr).or_default().pieces += 1;
            }
        }
        for p in st.peers.values() {
            p.send(&Message::Have(index as u32));
        }
        if st.picker.is_complete() {
            st.completed_at = Some(Instant::now());
            // No fsync: it would hold the exit for seconds, and a crash is covered by the
            // start-up check, which hashes what is on disk.
            if let Err(e) = self.storage.finish_files() {
                st.failure = Some(format!("cannot finish the files: {e}"));
            }
            self.wake_watcher();
            for p in st.peers.values_mut() {
                if p.am_interested {
                    p.am_interested = false;
                    p.send(&Message::NotInterested);
                }
                if p.bits.is_full() {
                    p.close("both sides are seeds".into());
                }
            }
        }
    }

    /// Top up the requests in flight to `key`.
    pub fn fill(&self, key: PeerKey) {
        let mut st = self.lock();
        let st = &mut *st;
        if !st
            .peers
            .get(&key)
            .is_some_and(|p| !p.peer_choking && p.am_interested)
        {
            return;
        }
        // The piece buffers are shared fairly among the peers serving us: with the first peer
        // to ask holding requests for all of them, a second seeder would wait on the first
        // one's pace (two upload-capped seeders gave 1.14x one).
        let serving = st
            .peers
            .values()
            .filter(|q| !q.peer_choking && q.am_interested)
            .count();
        let share = (st.picker.buffer_blocks() / serving).max(MIN_SHARE);
        let p = st.peers.get_mut(&key).expect("checked above");
        let want = p.queue_target.min(share).saturating_sub(p.inflight.len());
        // Ask in batches: one pick and one write per several blocks.
        if want < 4.min(p.queue_target) {
            return;
        }
        let picks = st.picker.pick(key, &p.bits, want, Instant::now());
        if picks.is_empty() {
            if p.inflight.is_empty() && !st.picker.interesting(&p.bits) {
                p.am_interested = false;
                p.send(&Message::NotInterested);
            }
            return;
        }
        let mut buf = Vec::with_capacity(picks.len() * 17);
        for b in &picks {
            crate::proto::wire::encode(&Message::Request(*b), &mut buf);
            p.inflight.insert(*b);
        }
        p.send_raw(buf);
    }

    /// Top up every peer.
    pub fn fill_all(&self) {
        let keys: Vec<PeerKey> = self.lock().peers.keys().copied().collect();
        for k in keys {
            self.fill(k);
        }
    }

    /// Whether block `b` is still wanted by `key` (and take it off its queue).
    pub fn take_request(&self, key: PeerKey, b: BlockRef) -> bool {
        let mut st = self.lock();
        let Some(p) = st.peers.get_mut(&key) else {
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

    /// Count `n` payload bytes sent to `key`.
    pub fn count_upload(&self, key: PeerKey, n: u64) {
        self.uploaded.fetch_add(n, Ordering::Relaxed);
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(p) = st.peers.get_mut(&key) {
            p.uploaded += n;
            st.history.entry(p.addr).or_default().uploaded += n;
        }
    }

    /// The bytes of verified piece `index`, from the cache or the disk.
    pub async fn piece_for_upload(&self, index: u32) -> std::io::Result<Arc<Vec<u8>>> {
        if let Some(data) = self.cache.get(index) {
            return Ok(data);
        }
        let storage = Arc::clone(&self.storage);
        let mut buf = self.cache.buffer();
        let data = crate::rt::spawn_blocking(move || {
            storage
                .read_piece(index as usize, &mut buf)
                .map(|()| Arc::new(buf))
        })
        .await?;
        self.cache.insert(index, Arc::clone(&data));
        Ok(data)
    }

    /// Periodic work (about once a second): expire slow requests, top up every peer, choke
    /// and unchoke.
    pub fn tick(&self) {
        let now = Instant::now();
        let keys: Vec<PeerKey> = {
            let mut st = self.lock();
            let st = &mut *st;
            for (k, b) in st.picker.expire(now, self.config.request_timeout) {
                if let Some(p) = st.peers.get_mut(&k) {
                    if p.inflight.remove(&b) {
                        p.send(&Message::Cancel(b));
                        p.queue_target = (p.queue_target / 2).max(4);
                    }
                }
            }
            self.rechoke(st, now);
            for p in st.peers.values() {
                p.check_idle(now);
            }
            st.peers.keys().copied().collect()
        };
        for k in keys {
            self.fill(k);
        }
    }

    /// With limited upload slots: every 10 s unchoke the fastest interested peers, plus one
    /// optimistic unchoke rotated every 30 s. With unlimited slots interested peers are unchoked
    /// as soon as they ask (see `handle`).
    fn rechoke(&self, st: &mut State, now: Instant) {
        let slots = self.config.upload_slots;
        if slots == 0 || now.duration_since(st.last_rechoke) < Duration::from_secs(10) {
            return;
        }
        st.last_rechoke = now;
        let seeding = st.picker.is_complete();
        let mut ranked: Vec<(u64, PeerKey)> = st
            .peers
            .iter()
            .filter(|(_, p)| p.peer_interested)
            .map(|(k, p)| {
                let rate = if seeding {
                    p.uploaded - p.uploaded_mark
                } else {
                    p.downloaded - p.downloaded_mark
                };
                (rate, *k)
            })
            .collect();
        ranked.sort_by(|a, b| b.cmp(a));
        let mut unchoke: Vec<PeerKey> = ranked.iter().take(slots).map(|(_, k)| *k).collect();
        let rest: Vec<PeerKey> = ranked.iter().skip(slots).map(|(_, k)| *k).collect();
        if now.duration_since(st.last_optimistic) >= Duration::from_secs(30)
            || st.optimistic.is_none_or(|k| !rest.contains(&k))
        {
            use rand::seq::SliceRandom;
            st.optimistic = rest.choose(&mut rand::thread_rng()).copied();
            st.last_optimistic = now;
        }
        unchoke.extend(st.optimistic);
        for (k, p) in st.peers.iter_mut() {
            p.downloaded_mark = p.downloaded;
            p.uploaded_mark = p.uploaded;
            let should_choke = !unchoke.contains(k);
            if should_choke != p.am_choking {
                p.am_choking = should_choke;
                if should_choke {
                    p.their_requests.clear();
                    p.send(&Message::Choke);
                } else {
                    p.send(&Message::Unchoke);
                }
            }
        }
    }

    /// Close every connection.
    pub fn close_all(&self, why: &str) {
        for p in self.lock().peers.values() {
            p.close(why.to_string());
        }
    }

    /// Record a fatal error (the mode reports it and exits).
    pub fn fail(&self, why: String) {
        self.lock().failure.get_or_insert(why);
        self.wake_watcher();
    }

    /// Send `()` on `tx` whenever the torrent completes or fails, so that a loop waiting for
    /// that reacts at once rather than at its next poll (a 1 GiB download on loopback takes
    /// about a second; a 250 ms poll added an eighth to it on average).
    pub fn watch(&self, tx: Sender<()>) {
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    fn wake_watcher(&self) {
        if let Some(tx) = &*self.watcher.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.try_send(()); // a full channel has a wake-up pending already
        }
    }

    /// A view for display and tests.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let mut history: Vec<(SocketAddr, PeerTotals)> =
            st.history.iter().map(|(a, t)| (*a, t.clone())).collect();
        history.sort_by(|a, b| b.1.downloaded.cmp(&a.1.downloaded).then(a.0.cmp(&b.0)));
        let mut peers: Vec<PeerView> = st
            .peers
            .values()
            .map(|p| PeerView {
                addr: p.addr,
                client: p.client_name(),
                pieces: p.bits.count(),
                downloaded: p.downloaded,
                uploaded: p.uploaded,
                choking_us: p.peer_choking,
                interested: p.am_interested,
                inflight: p.inflight.len(),
            })
            .collect();
        peers.sort_by_key(|p| p.addr);
        Snapshot {
            have_bytes: st.picker.bytes_have(),
            total_bytes: self.layout.total_length(),
            have_pieces: st.picker.have().count(),
            pieces: self.layout.piece_count(),
            downloaded: self.downloaded.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            wasted: self.wasted.load(Ordering::Relaxed),
            peers,
            history,
            bad_pieces: st.bad_pieces,
            completed_at: st.completed_at,
            failure: st.failure.clone(),
        }
    }

    /// Whether the peer with this address has every piece (for the dialer, once we are a seed).
    pub fn peer_is_seed(&self, addr: SocketAddr) -> bool {
        self.lock()
            .peers
            .values()
            .any(|p| p.addr == addr && p.bits.is_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::{Content, NewTorrent};
    use crate::swarm::storage::Access;

    /// A torrent of 64 pieces of 1 MiB that we lack, stored under `dir`.
    fn torrent(dir: &std::path::Path) -> Arc<Torrent> {
        let meta = NewTorrent {
            name: "t.bin".into(),
            piece_length: 1 << 20,
            pieces: vec![[0; 20]; 64],
            content: Content::Single(64 << 20),
            private: false,
            trackers: vec![],
            comment: None,
            created_by: None,
            creation_date: None,
        }
        .build()
        .unwrap();
        let storage = Arc::new(Storage::new(dir, &meta, Access::ReadWrite));
        Torrent::new(
            Arc::new(meta),
            storage,
            Bitfield::new(64),
            [9; 20],
            EngineConfig::default(),
            None,
        )
    }

    /// A seeder that unchoked us and has a deep request queue.
    fn seeder(t: &Torrent, n: u8) -> (PeerKey, crate::rt::channel::Receiver<Out>) {
        let (tx, rx) = crate::rt::channel::unbounded();
        let addr = SocketAddr::from(([127, 0, 0, 1], 6880 + n as u16));
        let key = t.register(addr, [n; 20], false, tx).unwrap();
        let mut st = t.lock();
        st.picker.add_peer_pieces(&Bitfield::full(64));
        let p = st.peers.get_mut(&key).unwrap();
        p.bits = Bitfield::full(64);
        p.am_interested = true;
        p.peer_choking = false;
        p.queue_target = MAX_QUEUE;
        (key, rx)
    }

    #[test]
    fn serving_peers_share_the_piece_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let t = torrent(dir.path());
        let (a, _ra) = seeder(&t, 1);
        let (b, _rb) = seeder(&t, 2);
        t.fill(a); // the first to ask must not take every buffered block
        t.fill(b);
        let st = t.lock();
        let (na, nb) = (st.peers[&a].inflight.len(), st.peers[&b].inflight.len());
        let all = st.picker.buffer_blocks();
        assert_eq!(na + nb, all, "the buffers are in use");
        assert_eq!(na, all / 2, "peer a: {na} of {all}");
        assert_eq!(nb, all / 2, "peer b: {nb} of {all}");
    }
}
