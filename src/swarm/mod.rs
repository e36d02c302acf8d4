//! The engine shared by `bt peer` and `bt client`: storage, hashing, piece picking, peer
//! connections and the session that ties them together.
//!
//! A client is a peer whose folder starts empty; both run this same code.

pub mod announce;
pub mod cache;
pub mod connection;
pub mod dialer;
pub mod files;
pub mod hashing;
pub mod outbox;
pub mod peer;
pub mod picker;
pub mod ratelimit;
pub mod session;
pub mod storage;
pub mod torrent;
pub mod verifier;

use std::time::Duration;

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
