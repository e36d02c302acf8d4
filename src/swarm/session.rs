//! A running engine: one listening socket and the torrents it serves. One
//! [`Ticker`](super::schedule::Ticker) ticks the torrents that have peers and calls the peers
//! they know.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rt::{TcpListener, TcpStream};
use anyhow::{Context, Result};
use rand::Rng;

use super::connection;
use super::error::PeerError;
use super::hashing::verify;
use super::magnet::MetadataFetch;
use super::storage::{Access, Storage};
use super::torrent::Torrent;
use super::{EngineConfig, Shared, TorrentOptions};
use crate::proto::bitfield::Bitfield;
use crate::proto::ids::{InfoHash, PeerId};
use crate::proto::metainfo::Metainfo;
use crate::ui::Progress;

/// Client prefix of our peer ids (Azureus style).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-BT0001-";
/// Handshakes we wait on at once; more incoming connections are refused until some finish.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// A fresh peer id: `-BT0001-` and 12 random printable bytes.
pub fn new_peer_id() -> PeerId {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(PEER_ID_PREFIX);
    let mut rng = rand::thread_rng();
    for b in &mut id[8..] {
        *b = CHARS[rng.gen_range(0..CHARS.len())];
    }
    PeerId(id)
}

/// Torrents at least this large are checked one at a time, with a progress bar.
const LARGE_CHECK: u64 = 256 * 1024 * 1024;

/// Hash what is on disk for `meta` under `folder`: the pieces already there and correct.
/// Missing or short files count as missing pieces; any other I/O error (permissions, a failing
/// disk) is an error naming the file, not a silent count of missing pieces.
pub fn check_existing(meta: &Metainfo, folder: &Path) -> std::io::Result<Bitfield> {
    let storage = Storage::new(folder, meta, Access::ReadOnly);
    // Skip the work entirely when no file exists yet (a fresh download).
    let any = (0..meta.info.files.len()).any(|i| folder.join(meta.relative_path(i)).exists());
    if !any {
        return Ok(Bitfield::new(meta.info.pieces.len()));
    }
    // Torrents are added several at once; a large check uses every core anyway, so large ones
    // take turns, each with its progress bar, and small ones run side by side without one.
    static LARGE: Mutex<()> = Mutex::new(());
    if meta.total_length() < LARGE_CHECK {
        return Ok(verify(&storage, &meta.info.pieces, |_| {})?.have);
    }
    let _turn = LARGE.lock().unwrap_or_else(|e| e.into_inner());
    let progress = Progress::bytes(meta.total_length(), &format!("checking {}", meta.info.name));
    let found = verify(&storage, &meta.info.pieces, |i| {
        progress.inc(storage.layout().piece_size(i) as u64)
    });
    progress.finish();
    Ok(found?.have)
}

/// The engine: a listener and the torrents behind it.
pub struct Session {
    /// Our peer id (one per process).
    pub peer_id: PeerId,
    /// The address we listen on.
    pub listen: SocketAddr,
    /// Tunables.
    pub config: EngineConfig,
    torrents: Mutex<HashMap<InfoHash, Arc<Torrent>>>,
    /// Magnet links still fetching their metadata.
    fetches: Mutex<HashMap<InfoHash, Arc<MetadataFetch>>>,
    pending: AtomicUsize,
    shared: Arc<Shared>,
}

impl Session {
    /// Bind the listening socket.
    pub async fn bind(
        addr: SocketAddr,
        config: EngineConfig,
    ) -> Result<(Arc<Session>, TcpListener)> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let listen = listener.local_addr()?;
        let shared = Shared::new(&config);
        crate::rt::spawn(super::schedule::run(Arc::clone(&shared.ticker))).detach();
        crate::rt::spawn(super::announce_queue::run(Arc::clone(&shared.announces))).detach();
        let session = Arc::new(Session {
            peer_id: new_peer_id(),
            listen,
            torrents: Mutex::new(HashMap::new()),
            fetches: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            shared,
            config,
        });
        Ok((session, listener))
    }

    /// Check `meta`'s data under `folder` and add it (the ticker serves it once it has peers).
    /// Files missing from disk are missing pieces, not errors (a selection leaves files out).
    pub async fn add(
        self: &Arc<Self>,
        meta: Metainfo,
        folder: &Path,
        opts: TorrentOptions,
    ) -> Result<Arc<Torrent>> {
        let meta = Arc::new(meta);
        let folder = folder.to_path_buf();
        let (m, f) = (Arc::clone(&meta), folder.clone());
        let have = crate::rt::spawn_blocking(move || check_existing(&m, &f))
            .await
            .with_context(|| format!("cannot check the data of {}", meta.info.name))?;
        let access = if have.is_full() {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let chosen = opts.files.as_ref().map(|f| f.flags().to_vec());
        let storage = Arc::new(Storage::new(&folder, &meta, access).choose(chosen));
        // A folder we may not write to fails the start, not the first piece.
        let s = Arc::clone(&storage);
        crate::rt::spawn_blocking(move || s.prepare())
            .await
            .with_context(|| format!("cannot download {}", meta.info.name))?;
        let torrent = Torrent::new(
            meta,
            storage,
            have,
            self.peer_id,
            self.config.clone(),
            Arc::clone(&self.shared),
            opts,
        );
        torrent.extensions.set_listen(self.listen);
        self.torrents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(torrent.info_hash(), Arc::clone(&torrent));
        Ok(torrent)
    }

    /// Start the metadata phase of a magnet link for `info_hash` (or join the one under way).
    /// Feed it addresses with [`MetadataFetch::add_peers`]; end it with [`Session::end_fetch`].
    pub fn begin_fetch(&self, info_hash: InfoHash) -> Arc<MetadataFetch> {
        let mut f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        let port = self.listen.port();
        Arc::clone(
            f.entry(info_hash)
                .or_insert_with(|| MetadataFetch::new(info_hash, self.peer_id, port)),
        )
    }

    /// The magnet links whose metadata is being fetched: a peer source (DHT, LSD) looks up
    /// their info-hashes and feeds what it finds to [`MetadataFetch::add_peers`].
    pub fn fetching(&self) -> Vec<Arc<MetadataFetch>> {
        let f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        f.values().cloned().collect()
    }

    /// The metadata phase of `info_hash`, if one is under way.
    pub fn fetch_of(&self, info_hash: &InfoHash) -> Option<Arc<MetadataFetch>> {
        let f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        f.get(info_hash).cloned()
    }

    /// The metadata phase of `info_hash` is over (the torrent is added, or it was given up).
    pub fn end_fetch(&self, info_hash: &InfoHash) {
        let mut f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(info_hash);
    }

    /// Every torrent.
    pub fn torrents(&self) -> Vec<Arc<Torrent>> {
        self.torrents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Take a torrent out of the session: incoming connections for it are refused, its loop
    /// ends and its connections close. Its files are left as they are.
    pub fn remove(&self, info_hash: &InfoHash) -> Option<Arc<Torrent>> {
        let t = self
            .torrents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(info_hash)?;
        t.set_removed();
        Some(t)
    }

    /// The torrent with this info-hash, if the session has it.
    pub fn find(&self, info_hash: &InfoHash) -> Option<Arc<Torrent>> {
        self.torrents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(info_hash)
            .cloned()
    }

    /// Accept connections until the process ends.
    pub async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    log::warn!("accept: {e}");
                    crate::rt::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if self.pending.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_HANDSHAKES {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                log::debug!("{addr}: refused, too many handshakes under way");
                continue;
            }
            let session = Arc::clone(&self);
            crate::rt::spawn(async move {
                let r = session.serve_incoming(stream, addr).await;
                if let Err(e) = r {
                    log::debug!("{addr}: {e}");
                }
            })
            .detach();
        }
    }

    async fn serve_incoming(
        self: Arc<Self>,
        mut stream: TcpStream,
        addr: SocketAddr,
    ) -> Result<(), PeerError> {
        let hs = connection::read_handshake(&mut stream).await;
        self.pending.fetch_sub(1, Ordering::SeqCst);
        let hs = hs?;
        let torrent = self
            .find(&InfoHash(hs.info_hash))
            .ok_or(PeerError::UnknownTorrent)?;
        if torrent.refuses(addr) {
            return Err(PeerError::Banned);
        }
        connection::incoming(torrent, stream, addr, hs)
            .await
            .map(|_| ())
    }
}

/// Call every known peer that is due, up to the connection limit (none while the torrent is
/// paused). Run by the [`Ticker`](super::schedule::Ticker) and right after a tracker answer, so
/// that new peers are called at once rather than at the next tick.
pub fn dial_due(torrent: &Arc<Torrent>) {
    if torrent.is_paused() {
        return;
    }
    let due = {
        let mut d = torrent.dialer.lock().unwrap_or_else(|e| e.into_inner());
        let room = torrent.config.max_peers.saturating_sub(d.busy());
        d.due(Instant::now(), room)
    };
    for addr in due {
        let t = Arc::clone(torrent);
        crate::rt::spawn(async move {
            let result = connection::outgoing(Arc::clone(&t), addr).await;
            let seed_pair = t.is_complete() && t.peer_is_seed(addr);
            let useful = matches!(result, Ok(d) if d > Duration::from_secs(10)) && !seed_pair;
            if let Err(e) = &result {
                let source = t
                    .dialer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .source(addr);
                log::debug!("{addr} (from {source}): {e}");
                if matches!(e, PeerError::Ourselves) {
                    t.dialer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .ban_addr(addr);
                }
            }
            t.dialer.lock().unwrap_or_else(|e| e.into_inner()).finished(
                addr,
                useful,
                Instant::now(),
            );
            // Called again later: the ticker wakes the torrent then.
            t.wake_up();
        })
        .detach();
    }
}
