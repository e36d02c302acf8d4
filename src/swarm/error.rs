//! How a peer connection ends, as types: the caller decides on the variant, never on the
//! wording (the dialer bans an address that turned out to be ourselves, the summary counts bans).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::bitfield::BitfieldError;
use crate::proto::wire::{BlockRef, WireError};

/// Why a connection ended (or never started).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The handshake came back with our own peer id.
    #[error("connected to ourselves")]
    Ourselves,
    /// We already have a connection to this address.
    #[error("already connected to {0}")]
    Duplicate(SocketAddr),
    /// The torrent has as many connections as it allows.
    #[error("peer limit ({0}) reached")]
    PeerLimit(usize),
    /// This address is banned (it sent bad data).
    #[error("banned")]
    Banned,
    /// The peer answered our handshake for another torrent.
    #[error("the peer answered for another torrent")]
    WrongTorrent,
    /// An incoming handshake named a torrent we do not serve.
    #[error("handshake for a torrent we do not serve")]
    UnknownTorrent,
    /// The peer broke the wire format.
    #[error("protocol error: {0}")]
    Protocol(#[from] WireError),
    /// We closed the connection, for this reason.
    #[error("{0}")]
    Closed(#[from] CloseReason),
    /// A socket or disk operation failed.
    #[error("{doing}: {source}")]
    Io {
        /// What was being done ("connect", "read", "write", "read piece 7").
        doing: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Something took too long.
    #[error("{doing}: timed out after {} s", after.as_secs())]
    Timeout {
        /// What was being waited for ("connect", "handshake").
        doing: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The peer closed the connection.
    #[error("closed by the peer")]
    ClosedByPeer,
}

impl PeerError {
    /// An I/O error while doing `doing`.
    pub fn io(doing: impl Into<String>, source: io::Error) -> PeerError {
        PeerError::Io {
            doing: doing.into(),
            source,
        }
    }
}

/// Why the torrent's state machine closes a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// Both sides have every piece: nothing to trade.
    #[error("both sides are seeds")]
    BothSeeds,
    /// Nothing heard for this long (not even a keep-alive).
    #[error("silent for {} s", .0.as_secs())]
    Silent(Duration),
    /// The peer broke a rule of the protocol.
    #[error("{0}")]
    Violation(#[from] Violation),
    /// It sent data that failed the hash check this many times.
    #[error("sent bad data for {0} pieces")]
    BadData(u32),
    /// Closed to make room for a more useful connection.
    #[error("replaced by a more useful connection")]
    Evicted,
    /// A second connection to the same peer (same IP, same peer id) is the one that stays.
    #[error("replaced by another connection to the same peer")]
    Duplicate,
    /// The torrent or the process is stopping.
    #[error("shutting down")]
    Shutdown,
}

/// A rule of the peer protocol that a peer broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// `have` for a piece the torrent does not have.
    #[error("have for piece {index} of {pieces}")]
    HaveOutOfRange {
        /// The index sent.
        index: u32,
        /// Pieces in the torrent.
        pieces: usize,
    },
    /// A bitfield of the wrong size or with spare bits set.
    #[error("bad bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    /// A request outside the torrent's pieces.
    #[error("request outside the torrent: {0:?}")]
    RequestOutside(BlockRef),
    /// A request for a piece we do not have (and never announced).
    #[error("request for piece {0}, which we do not have")]
    RequestMissing(u32),
    /// More requests queued than we allow.
    #[error("more than {0} requests queued")]
    RequestFlood(usize),
    /// A stream of blocks we never asked for.
    #[error("{0} blocks we never asked for")]
    Unrequested(u32),
    /// A fast extension message (BEP 6, named here) from a peer that did not announce the
    /// extension in its handshake.
    #[error("{0} without the fast extension")]
    FastNotNegotiated(&'static str),
}
