//! What the torrent knows about one live connection: the peer's pieces, both choke and
//! interest states, the requests it has waiting at our side, and byte counts. (Our requests
//! to it live in the picker, the one record of blocks in flight.)

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::bitfield::Bitfield;
use crate::proto::ids::PeerId;
use crate::proto::wire::BlockRef;

/// Most blocks we keep requested from one peer (real clients keep 128 to 500).
pub const MAX_QUEUE: usize = 500;
/// Requests in flight to a new peer, before it shows its speed (slow start).
pub const INITIAL_QUEUE: usize = 4;
/// Most requests a peer may have waiting at our side; more is a flood and ends the connection.
pub const MAX_PEER_REQUESTS: usize = 2048;
/// A peer silent this long (not even a keep-alive) is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
/// We send a keep-alive after this long without sending anything (BEP 3 suggests 2 minutes).
pub const KEEPALIVE: Duration = Duration::from_secs(60);
/// Pieces in the allowed-fast set we give a peer (BEP 6 suggests 10).
pub const ALLOWED_FAST: usize = 10;
/// Requests for blocks we cannot serve (outside the torrent, never announced) a fast peer may
/// send before it is a violation; each earlier one just gets a reject.
pub const MAX_BAD_REQUESTS: u32 = 64;
/// A connection this old that has exchanged no payload either way may be closed to make room
/// for a new one when the torrent is full.
pub const EVICT_AFTER: Duration = Duration::from_secs(10);

/// One live connection, as the torrent's rules see it.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// Remote address.
    pub addr: SocketAddr,
    /// Remote peer id.
    pub peer_id: PeerId,
    /// Their pieces.
    pub bits: Bitfield,
    /// We refuse to serve them.
    pub am_choking: bool,
    /// We want something of theirs.
    pub am_interested: bool,
    /// They refuse to serve us.
    pub peer_choking: bool,
    /// They want something of ours.
    pub peer_interested: bool,
    /// How many requests we keep in flight to them.
    pub queue_target: usize,
    /// Blocks they asked us for, in order.
    pub their_requests: VecDeque<BlockRef>,
    /// Payload bytes received from them that went into a piece.
    pub downloaded: u64,
    /// Payload bytes sent to them.
    pub uploaded: u64,
    /// Blocks they sent that we never asked for.
    pub unrequested: u32,
    /// Blocks received that we asked for.
    pub blocks_received: u32,
    /// `downloaded` at the last choke round, for the rate.
    pub downloaded_mark: u64,
    /// `uploaded` at the last choke round.
    pub uploaded_mark: u64,
    /// When the connection was set up.
    pub since: Instant,
    /// When a message from them last arrived (see [`IDLE_TIMEOUT`]).
    pub last_heard: Instant,
    /// When we last queued something for them (see [`KEEPALIVE`]).
    pub last_sent: Instant,
    /// A close was asked for; nothing more is sent or requested.
    pub closing: bool,
    /// Both sides announced the fast extension (BEP 6) in their handshakes.
    pub fast: bool,
    /// We called them (else they called us).
    pub outgoing: bool,
    /// Pieces they allow us to request while they choke us (their allowed-fast messages).
    pub allowed_in: Bitfield,
    /// Pieces we allow them to request while we choke them (sent once, see [`ALLOWED_FAST`]).
    pub allowed_out: Vec<u32>,
    /// Requests we rejected as impossible (see [`MAX_BAD_REQUESTS`]).
    pub bad_requests: u32,
    /// We are a seed and show them only the pieces we offer (super-seeding, `state::offer`).
    pub super_seeded: bool,
    /// Pieces offered to them that they do not have yet.
    pub offered: Vec<u32>,
    /// They said they only upload (BEP 21): a seed, not a leecher to offer pieces to.
    pub upload_only: bool,
}

impl PeerState {
    /// Whether this connection may be closed to make room: old enough to have shown what it
    /// is worth, and nothing exchanged (no payload either way, no interest in anything we have).
    pub fn evictable(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= EVICT_AFTER
            && self.downloaded == 0
            && self.uploaded == 0
            && !self.peer_interested
    }

    /// A new connection: everyone choked and not interested, as BEP 3 starts.
    pub fn new(addr: SocketAddr, peer_id: PeerId, pieces: usize, now: Instant) -> PeerState {
        PeerState {
            addr,
            peer_id,
            bits: Bitfield::new(pieces),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            queue_target: INITIAL_QUEUE,
            their_requests: VecDeque::new(),
            downloaded: 0,
            uploaded: 0,
            unrequested: 0,
            blocks_received: 0,
            downloaded_mark: 0,
            uploaded_mark: 0,
            since: now,
            last_heard: now,
            last_sent: now,
            closing: false,
            fast: false,
            outgoing: false,
            allowed_in: Bitfield::new(pieces),
            allowed_out: Vec::new(),
            bad_requests: 0,
            super_seeded: false,
            offered: Vec::new(),
            upload_only: false,
        }
    }
}
