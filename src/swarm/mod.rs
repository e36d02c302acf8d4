//! The engine shared by `bt peer` and `bt client`: storage, hashing, piece picking, peer
//! connections and the session that ties them together.
//!
//! A client is a peer whose folder starts empty; both run this same code.

pub mod announce;
pub mod announce_queue;
pub mod budget;
pub mod cache;
pub mod connection;
pub mod dht;
pub mod dialer;
pub mod error;
pub mod ext;
pub mod files;
pub mod hashing;
pub mod lsd;
pub mod magnet;
pub(crate) mod outbox;
pub(crate) mod picker;
pub mod ratelimit;
pub mod schedule;
pub mod selection;
pub mod session;
pub mod state;
pub mod storage;
pub mod torrent;
pub(crate) mod verifier;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache::UploadBudget;
use ratelimit::RateLimiter;

/// Engine tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most connections per torrent.
    pub max_peers: usize,
    /// Peers we upload to at once (plus one optimistic unchoke); 0 unchokes every interested
    /// peer, which is what a LAN wants.
    pub upload_slots: usize,
    /// A request unanswered this long is given to another peer.
    pub request_timeout: Duration,
    /// Upload limit in bytes per second for the whole process (`None`: unlimited).
    pub upload_limit: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_peers: 50,
            upload_slots: 0,
            request_timeout: Duration::from_secs(20),
            upload_limit: None,
        }
    }
}

/// What one torrent is asked to do beyond the session's [`EngineConfig`].
#[derive(Debug, Clone, Default)]
pub struct TorrentOptions {
    /// The files to download (`None`: every file).
    pub files: Option<selection::Selection>,
    /// A download rate limit, shared by every torrent given the same one (`None`: unlimited).
    pub download_limit: Option<Arc<RateLimiter>>,
}

/// What every torrent of one process shares: the upload rate limit, the upload memory budget,
/// the cap on connections, and the one timer and announce queue of all torrents.
pub struct Shared {
    /// The process-wide upload limit, if any.
    pub limiter: Option<RateLimiter>,
    /// Piece buffers for upload (see [`cache::UPLOAD_BUDGET`]).
    pub upload: Arc<UploadBudget>,
    /// Peer connections of all torrents together.
    pub connections: ConnectionCap,
    /// The one timer of all torrents (its task is started by the session).
    pub ticker: Arc<schedule::Ticker>,
    /// The announces of all torrents (its task is started by the session).
    pub announces: Arc<announce_queue::AnnounceQueue>,
}

impl Shared {
    /// The shared limits for `config`, the connection cap from the open-file limit.
    pub fn new(config: &EngineConfig) -> Arc<Shared> {
        Arc::new(Shared {
            limiter: config.upload_limit.map(RateLimiter::new),
            upload: UploadBudget::new(cache::UPLOAD_BUDGET),
            connections: ConnectionCap::from_fd_limit(files::open_file_limit()),
            ticker: Arc::default(),
            announces: Arc::default(),
        })
    }
}

/// A cap on live peer connections across all torrents, so that sockets never exhaust the
/// open-file limit (which then failed `accept` and every file open alike).
#[derive(Debug)]
pub struct ConnectionCap {
    limit: usize,
    live: AtomicUsize,
}

/// Descriptors kept back from peer connections: files being read or written, the listening
/// socket, tracker connections, handshakes under way.
const FD_RESERVE: u64 = 128;
/// Most peer connections a process holds, however high the open-file limit.
pub const MAX_CONNECTIONS: usize = 10_000;

impl ConnectionCap {
    /// Half of what the open-file limit leaves after [`FD_RESERVE`] (the file pool takes a
    /// quarter, see [`files::size_for_limit`]), between 8 and [`MAX_CONNECTIONS`].
    pub fn from_fd_limit(nofile: u64) -> ConnectionCap {
        let n = (nofile.saturating_sub(FD_RESERVE) / 2).clamp(8, MAX_CONNECTIONS as u64);
        ConnectionCap::new(n as usize)
    }

    /// A cap of `limit` connections.
    pub fn new(limit: usize) -> ConnectionCap {
        ConnectionCap {
            limit,
            live: AtomicUsize::new(0),
        }
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Take a slot; false when all are taken.
    pub fn try_take(&self) -> bool {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Give a slot back.
    pub fn give_back(&self) {
        let _ = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}
