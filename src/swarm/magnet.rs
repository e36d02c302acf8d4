//! A magnet link's metadata phase (BEP 9): before a torrent exists, call peers, ask those that
//! offer `ut_metadata` for the info dictionary in 16 KiB pieces, and keep it once its SHA-1 is
//! the info-hash.
//!
//! Addresses come from any source through [`MetadataFetch::add_peers`]: the link's `x.pe`, its
//! trackers (a [`MetadataFetch`] is an [`AnnounceTarget`]), peer exchange from the peers
//! called, and whatever else is plugged in (DHT, LSD). Each address is called once at a time,
//! with the dialer's backoff.
//!
//! Rules: the first size a peer announces (`metadata_size`, at most
//! [`MAX_METADATA_SIZE`], 8 MiB) is the one assembled; a peer announcing another is dropped
//! (and the size is forgotten when no peer that announced it is left and no piece has come).
//! A piece of the wrong size, a `total_size` that differs, a piece that does not exist: that
//! peer is dropped and never called again. Metadata that does not hash to the info-hash is
//! thrown away, and every peer that sent a piece of it is dropped and never called again.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::announce::AnnounceTarget;
use super::connection::{read_handshake, write_handshake, HANDSHAKE_TIMEOUT};
use super::dialer::{Dialer, Source};
use super::error::PeerError;
use super::ext::{frame, our_handshake, MAX_PEX_LEARNED, OUR_METADATA_ID, OUR_PEX_ID};
use crate::proto::extension::{self, ExtHandshake, HANDSHAKE_ID, MAX_METADATA_SIZE, UT_METADATA};
use crate::proto::ids::{InfoHash, PeerId};
use crate::proto::metadata::{self, Added, MetadataAssembler, MetadataError, MetadataMsg};
use crate::proto::pex::Pex;
use crate::proto::wire::{self, FrameLimits, Message};
use crate::rt::io::{ReadExt, WriteExt};
use crate::rt::{Shutdown, TcpStream};

/// Connections at once during the metadata phase.
pub const MAX_FETCH_CONNECTIONS: usize = 20;
/// Metadata pieces asked of one peer at a time.
const IN_FLIGHT: usize = 4;
/// A peer holding our requests this long without answering is dropped.
const PIECE_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer that sends nothing at all this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a connection looks whether it should stop (metadata complete, peer dropped).
const POLL: Duration = Duration::from_millis(500);
/// What we tell trackers we have left: unknown, certainly not nothing (a tracker that took us
/// for a seed would leave the seeds out of its answer). Fits BEP 15's signed 64 bits.
pub const LEFT_UNKNOWN: u64 = i64::MAX as u64;

/// Why a metadata connection ended.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connecting, the handshake, a read or write.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The peer does not speak the extension protocol: it cannot send metadata.
    #[error("the peer does not support the extension protocol")]
    NoExtensions,
    /// Its extension handshake offers no `ut_metadata` (or no size).
    #[error("the peer offers no metadata")]
    NoMetadata,
    /// Its extension handshake did not decode.
    #[error(transparent)]
    Handshake(#[from] extension::ExtensionError),
    /// It announced another size than the one being assembled.
    #[error("the peer announces {got} bytes of metadata, others {expected}")]
    SizeDiffers {
        /// What it announced.
        got: u64,
        /// The size being assembled.
        expected: u64,
    },
    /// It sent a bad piece, or pieces that together do not hash to the info-hash.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// It rejected a request (it has no metadata to give).
    #[error("the peer rejected metadata piece {0}")]
    Rejected(u32),
    /// It held requests, or sent nothing, too long.
    #[error("no answer for {} s", .0.as_secs())]
    Silent(Duration),
}

/// What the metadata phase is at, for the display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStatus {
    /// Addresses known.
    pub known: usize,
    /// Connections past the handshake.
    pub connected: usize,
    /// Connected peers that offer the metadata.
    pub serving: usize,
    /// Metadata pieces received.
    pub have_pieces: u32,
    /// Metadata pieces in all (0 until a peer announced the size).
    pub pieces: u32,
    /// Times the assembled metadata did not hash to the info-hash.
    pub mismatches: u32,
}

#[derive(Default)]
struct Inner {
    dialer: Dialer,
    assembler: Option<MetadataAssembler<SocketAddr>>,
    /// Piece -> the peers it is asked of.
    asked: HashMap<u32, HashSet<SocketAddr>>,
    connected: HashSet<SocketAddr>,
    /// Connected peers that announced the size being assembled.
    serving: HashSet<SocketAddr>,
    /// Peers whose connection must end (they sent bad metadata).
    dropped: HashSet<SocketAddr>,
    result: Option<Vec<u8>>,
    mismatches: u32,
}

/// One magnet link's metadata phase.
pub struct MetadataFetch {
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    inner: Mutex<Inner>,
    pex_learned: AtomicUsize,
}

impl MetadataFetch {
    /// The phase for `info_hash`, as `peer_id` listening on `port` (for our handshakes).
    pub fn new(info_hash: InfoHash, peer_id: PeerId, port: u16) -> Arc<MetadataFetch> {
        Arc::new(MetadataFetch {
            info_hash,
            peer_id,
            port,
            inner: Mutex::new(Inner::default()),
            pex_learned: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The info-hash whose metadata is fetched.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Candidate peers from `source` (tracker, `x.pe`, PEX, DHT, LSD...): remembered and called
    /// at once if there is room. Any number of calls, from any task; the dialer bounds how many
    /// are kept.
    pub fn add_peers(self: &Arc<Self>, addrs: &[SocketAddr], source: Source) {
        {
            let mut inner = self.lock();
            if inner.result.is_some() {
                return;
            }
            let now = Instant::now();
            for a in addrs {
                inner.dialer.add(*a, source, now);
            }
        }
        self.dial_due();
    }

    /// Where things stand.
    pub fn status(&self) -> FetchStatus {
        let inner = self.lock();
        let (have, pieces) = match &inner.assembler {
            Some(a) => {
                let pieces = metadata::piece_count(a.size());
                (pieces - a.missing().count() as u32, pieces)
            }
            None => (0, 0),
        };
        FetchStatus {
            known: inner.dialer.addresses().len(),
            connected: inner.connected.len(),
            serving: inner.serving.len(),
            have_pieces: have,
            pieces,
            mismatches: inner.mismatches,
        }
    }

    /// Every address known and not dropped, with its source (handed to the torrent's dialer
    /// once the metadata is in).
    pub fn addresses(&self) -> Vec<(SocketAddr, Source)> {
        self.lock().dialer.addresses()
    }

    /// The verified info dictionary, once fetched.
    pub fn metadata(&self) -> Option<Vec<u8>> {
        self.lock().result.clone()
    }

    /// Call peers until the metadata is in; returns it (verified against the info-hash). The
    /// caller bounds the wait.
    pub async fn run(self: &Arc<Self>) -> Vec<u8> {
        loop {
            if let Some(m) = self.metadata() {
                return m;
            }
            self.dial_due();
            crate::rt::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Call the addresses that are due, up to [`MAX_FETCH_CONNECTIONS`].
    fn dial_due(self: &Arc<Self>) {
        let due = {
            let mut inner = self.lock();
            if inner.result.is_some() {
                return;
            }
            let room = MAX_FETCH_CONNECTIONS.saturating_sub(inner.dialer.busy());
            inner.dialer.due(Instant::now(), room)
        };
        for addr in due {
            let f = Arc::clone(self);
            crate::rt::spawn(async move {
                let result = fetch_from(&f, addr).await;
                if let Err(e) = &result {
                    log::debug!("{addr}: metadata: {e}");
                }
                let mut inner = f.lock();
                inner.peer_gone(addr);
                match result {
                    Err(FetchError::Metadata(_)) | Err(FetchError::Peer(PeerError::Ourselves)) => {
                        inner.dialer.ban_addr(addr)
                    }
                    _ => inner.dialer.finished(addr, false, Instant::now()),
                }
            })
            .detach();
        }
    }

    fn should_stop(&self, addr: SocketAddr) -> bool {
        let inner = self.lock();
        inner.result.is_some() || inner.dropped.contains(&addr)
    }

    /// `addr` completed the handshake (`serving`: with ut_metadata and this size).
    fn peer_ready(&self, addr: SocketAddr, size: u64) -> Result<Vec<u32>, FetchError> {
        let mut inner = self.lock();
        if inner.assembler.is_none() {
            inner.assembler = Some(MetadataAssembler::new(size)?);
        }
        let expected = inner.assembler.as_ref().map_or(size, |a| a.size());
        if expected != size {
            return Err(FetchError::SizeDiffers {
                got: size,
                expected,
            });
        }
        inner.serving.insert(addr);
        Ok(inner.next_requests(addr))
    }

    /// Piece `piece` arrived from `addr`: stored; when it was the last, the whole is checked.
    /// Returns the pieces to ask `addr` for next.
    fn on_piece(&self, addr: SocketAddr, piece: u32, data: &[u8]) -> Result<Vec<u32>, FetchError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(s) = inner.asked.get_mut(&piece) {
            s.remove(&addr);
        }
        let Some(a) = inner.assembler.as_mut() else {
            return Ok(Vec::new()); // thrown away after a mismatch: wait for the next size
        };
        if a.add(piece, data, addr)? == Added::Complete {
            let sources = a.sources();
            match a.finish(&self.info_hash) {
                Ok(Some(bytes)) => {
                    inner.result = Some(bytes);
                    return Ok(Vec::new());
                }
                Ok(None) => {}
                Err(e) => {
                    log::warn!(
                        "metadata from {} peer(s) does not match the info-hash {}; dropping them",
                        sources.len(),
                        self.info_hash
                    );
                    inner.mismatches += 1;
                    inner.assembler = None;
                    inner.asked.clear();
                    for s in sources {
                        inner.dialer.ban_addr(s);
                        inner.dropped.insert(s);
                        inner.serving.remove(&s);
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(inner.next_requests(addr))
    }
}

impl Inner {
    /// Missing pieces to ask `addr` for, up to [`IN_FLIGHT`] in flight: first those asked of
    /// nobody, then (near the end) those asked of others but not of it.
    fn next_requests(&mut self, addr: SocketAddr) -> Vec<u32> {
        let Some(a) = &self.assembler else {
            return Vec::new();
        };
        let mine = self.asked.values().filter(|s| s.contains(&addr)).count();
        let room = IN_FLIGHT.saturating_sub(mine);
        let missing: Vec<u32> = a.missing().collect();
        let free = missing
            .iter()
            .filter(|p| self.asked.get(p).is_none_or(|s| s.is_empty()));
        let shared = missing.iter().filter(|p| {
            self.asked
                .get(p)
                .is_some_and(|s| !s.is_empty() && !s.contains(&addr))
        });
        let picks: Vec<u32> = free.chain(shared).copied().take(room).collect();
        for p in &picks {
            self.asked.entry(*p).or_default().insert(addr);
        }
        picks
    }

    fn peer_gone(&mut self, addr: SocketAddr) {
        self.connected.remove(&addr);
        self.serving.remove(&addr);
        self.dropped.remove(&addr);
        for s in self.asked.values_mut() {
            s.remove(&addr);
        }
        // A size nobody present vouches for, with nothing received: the next peer decides.
        let untouched = self
            .assembler
            .as_ref()
            .is_some_and(|a| a.missing().count() as u32 == metadata::piece_count(a.size()));
        if self.serving.is_empty() && untouched {
            self.assembler = None;
        }
    }
}

impl AnnounceTarget for Arc<MetadataFetch> {
    fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    fn peer_id(&self) -> PeerId {
        self.peer_id
    }
    fn transferred(&self) -> (u64, u64) {
        (0, 0)
    }
    fn left(&self) -> u64 {
        LEFT_UNKNOWN
    }
    fn is_complete(&self) -> bool {
        false
    }
    fn lonely(&self) -> bool {
        self.lock().serving.is_empty()
    }
    fn add_peers(&self, peers: &[SocketAddr]) {
        MetadataFetch::add_peers(self, peers, Source::Tracker);
    }
}

/// Frames up to a bitfield of the largest torrent our metadata bound allows (an info dictionary
/// holds 20 bytes per piece), a 16 KiB block, or an extended message.
fn limits() -> FrameLimits {
    FrameLimits::for_pieces((MAX_METADATA_SIZE / 20) as usize)
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), PeerError> {
    match crate::rt::timeout(HANDSHAKE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PeerError::io("write", e)),
        Err(_) => Err(PeerError::Timeout {
            doing: "write",
            after: HANDSHAKE_TIMEOUT,
        }),
    }
}

fn request_frame(their_id: u8, pieces: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    for &piece in pieces {
        let mut payload = Vec::new();
        metadata::encode(&MetadataMsg::Request { piece }, &mut payload);
        out.extend_from_slice(&frame(their_id, &payload));
    }
    out
}

/// Call `addr` and fetch what metadata it gives, until the whole is in or it is dropped.
async fn fetch_from(f: &Arc<MetadataFetch>, addr: SocketAddr) -> Result<(), FetchError> {
    let mut stream = match crate::rt::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(PeerError::io("connect", e).into()),
        Err(_) => {
            return Err(PeerError::Timeout {
                doing: "connect",
                after: HANDSHAKE_TIMEOUT,
            }
            .into())
        }
    };
    let r = converse(f, addr, &mut stream).await;
    let _ = stream.shutdown(Shutdown::Both);
    r
}

async fn converse(
    f: &Arc<MetadataFetch>,
    addr: SocketAddr,
    stream: &mut TcpStream,
) -> Result<(), FetchError> {
    write_handshake(stream, f.info_hash.0, f.peer_id.0).await?;
    let theirs = read_handshake(stream).await?;
    if theirs.info_hash != f.info_hash.0 {
        return Err(PeerError::WrongTorrent.into());
    }
    if theirs.peer_id == f.peer_id.0 {
        return Err(PeerError::Ourselves.into());
    }
    if !extension::supports_extensions(&theirs.reserved) {
        return Err(FetchError::NoExtensions);
    }
    f.lock().connected.insert(addr);
    let _ = stream.set_nodelay(true);
    send(stream, &our_handshake(None, Some(f.port), addr.ip(), false)).await?;
    let limits = limits();
    let mut buf = vec![0u8; limits.max_frame as usize + 4 + 64 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut their_id: Option<u8> = None;
    let mut size: Option<u64> = None;
    let mut last_heard = Instant::now();
    let mut waiting_since: Option<Instant> = None;
    loop {
        let mut out = Vec::new();
        while let Some((msg, used)) = wire::decode(&buf[start..end], limits)
            .map_err(|e| FetchError::Peer(PeerError::Protocol(e)))?
        {
            start += used;
            let Message::Extended { id, payload } = msg else {
                continue;
            };
            match id {
                HANDSHAKE_ID => {
                    let h = ExtHandshake::decode(payload)?;
                    let (Some(id), Some(s)) = (h.id(UT_METADATA), h.metadata_size) else {
                        return Err(FetchError::NoMetadata);
                    };
                    if size.is_none() {
                        their_id = Some(id);
                        size = Some(s);
                        let picks = f.peer_ready(addr, s)?;
                        if !picks.is_empty() {
                            waiting_since.get_or_insert(Instant::now());
                        }
                        out.extend_from_slice(&request_frame(id, &picks));
                    }
                }
                OUR_METADATA_ID => match metadata::decode(payload, size)? {
                    MetadataMsg::Data { piece, data, .. } => {
                        if size.is_none() {
                            continue; // data before its handshake: no size to check it by
                        }
                        let picks = f.on_piece(addr, piece, data)?;
                        waiting_since = (!picks.is_empty()).then(Instant::now);
                        if let Some(id) = their_id {
                            out.extend_from_slice(&request_frame(id, &picks));
                        }
                    }
                    MetadataMsg::Reject { piece } => return Err(FetchError::Rejected(piece)),
                    MetadataMsg::Request { piece } => {
                        // We have no metadata to give yet.
                        if let Some(id) = their_id {
                            let mut p = Vec::new();
                            metadata::encode(&MetadataMsg::Reject { piece }, &mut p);
                            out.extend_from_slice(&frame(id, &p));
                        }
                    }
                    MetadataMsg::Unknown(_) => {}
                },
                OUR_PEX_ID => {
                    if let Ok(pex) = Pex::decode(payload) {
                        let room =
                            MAX_PEX_LEARNED.saturating_sub(f.pex_learned.load(Ordering::Relaxed));
                        let addrs: Vec<SocketAddr> =
                            pex.added.iter().map(|p| p.addr).take(room).collect();
                        f.pex_learned.fetch_add(addrs.len(), Ordering::Relaxed);
                        f.add_peers(&addrs, Source::Pex);
                    }
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            send(stream, &out).await?;
        }
        if start == end {
            (start, end) = (0, 0);
        } else if buf.len() - end < limits.max_frame as usize + 4 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if f.should_stop(addr) {
            return Ok(());
        }
        let now = Instant::now();
        if now.saturating_duration_since(last_heard) > IDLE_TIMEOUT {
            return Err(FetchError::Silent(IDLE_TIMEOUT));
        }
        if waiting_since.is_some_and(|t| now.saturating_duration_since(t) > PIECE_TIMEOUT) {
            return Err(FetchError::Silent(PIECE_TIMEOUT));
        }
        match crate::rt::timeout(POLL, stream.read(&mut buf[end..])).await {
            Err(_) => {}
            Ok(Ok(0)) => return Err(PeerError::ClosedByPeer.into()),
            Ok(Ok(n)) => {
                end += n;
                last_heard = Instant::now();
            }
            Ok(Err(e)) => return Err(PeerError::io("read", e).into()),
        }
    }
}
