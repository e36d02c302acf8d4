//! What the torrent knows about one live connection: the peer's pieces, both choke/interest
//! states, the requests each side has outstanding, and byte counts.

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rt::channel::Sender;

use crate::proto::bitfield::Bitfield;
use crate::proto::wire::{self, BlockRef, Message};

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

/// What a connection's writer task is told to send.
#[derive(Debug)]
pub enum Out {
    /// Already-encoded messages.
    Raw(Vec<u8>),
    /// Read this block from disk and send it (if still requested).
    Serve(BlockRef),
    /// Close the connection.
    Close(String),
}

/// One live connection, as the torrent sees it.
#[derive(Debug)]
pub struct PeerSlot {
    /// Remote address.
    pub addr: SocketAddr,
    /// Remote peer id.
    pub peer_id: [u8; 20],
    /// Whether they connected to us.
    pub incoming: bool,
    /// Their pieces.
    pub bits: Bitfield,
    /// Channel to the writer task.
    pub tx: Sender<Out>,
    /// We refuse to serve them.
    pub am_choking: bool,
    /// We want something of theirs.
    pub am_interested: bool,
    /// They refuse to serve us.
    pub peer_choking: bool,
    /// They want something of ours.
    pub peer_interested: bool,
    /// Blocks we asked them for, not yet received.
    pub inflight: HashSet<BlockRef>,
    /// How many requests we keep in flight to them.
    pub queue_target: usize,
    /// Blocks they asked us for, in order.
    pub their_requests: VecDeque<BlockRef>,
    /// Payload bytes received from them (verified or not).
    pub downloaded: u64,
    /// Payload bytes sent to them.
    pub uploaded: u64,
    /// Blocks they sent that we never asked for.
    pub unrequested: u32,
    /// Blocks received.
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
    last_queued: Cell<Instant>,
}

impl PeerSlot {
    /// A new connection: everyone choked and not interested, as BEP 3 starts.
    pub fn new(
        addr: SocketAddr,
        peer_id: [u8; 20],
        incoming: bool,
        pieces: usize,
        tx: Sender<Out>,
    ) -> PeerSlot {
        PeerSlot {
            addr,
            peer_id,
            incoming,
            bits: Bitfield::new(pieces),
            tx,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: HashSet::new(),
            queue_target: INITIAL_QUEUE,
            their_requests: VecDeque::new(),
            downloaded: 0,
            uploaded: 0,
            unrequested: 0,
            blocks_received: 0,
            downloaded_mark: 0,
            uploaded_mark: 0,
            since: Instant::now(),
            last_heard: Instant::now(),
            last_queued: Cell::new(Instant::now()),
        }
    }

    /// Queue one message to the writer.
    pub fn send(&self, msg: &Message<'_>) {
        let mut buf = Vec::with_capacity(32);
        wire::encode(msg, &mut buf);
        self.send_raw(buf);
    }

    /// Queue encoded bytes to the writer (dropped silently if the connection is closing).
    pub fn send_raw(&self, buf: Vec<u8>) {
        self.queue(Out::Raw(buf));
    }

    /// Queue anything to the writer (dropped silently if the connection is closing).
    pub fn queue(&self, out: Out) {
        self.last_queued.set(Instant::now());
        let _ = self.tx.try_send(out);
    }

    /// Periodic check (from the torrent's tick): close a connection silent for
    /// [`IDLE_TIMEOUT`], send a keep-alive after [`KEEPALIVE`] with nothing to say. Done here
    /// rather than as a timer around every read and wait: a timer per read cost a seeder a
    /// third of its system calls (timerfd, epoll and eventfd for each).
    pub fn check_idle(&self, now: Instant) {
        if now.saturating_duration_since(self.last_heard) > IDLE_TIMEOUT {
            self.close(format!("silent for {} s", IDLE_TIMEOUT.as_secs()));
        } else if now.saturating_duration_since(self.last_queued.get()) > KEEPALIVE {
            self.send(&Message::KeepAlive);
        }
    }

    /// Tell the writer to close the connection.
    pub fn close(&self, why: String) {
        let _ = self.tx.try_send(Out::Close(why));
    }

    /// The peer id as text when it is printable (Azureus style `-TR3000-...`), else hex.
    pub fn client_name(&self) -> String {
        peer_id_text(&self.peer_id)
    }
}

/// A peer id as text when printable, else hex.
pub fn peer_id_text(id: &[u8; 20]) -> String {
    if id.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(id).into_owned()
    } else if id[0] == b'-' && id[7] == b'-' && id[1..7].iter().all(|b| b.is_ascii_alphanumeric()) {
        format!(
            "{}{}",
            String::from_utf8_lossy(&id[..8]),
            hex::encode(&id[8..])
        )
    } else {
        hex::encode(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> (PeerSlot, crate::rt::channel::Receiver<Out>) {
        let (tx, rx) = crate::rt::channel::unbounded();
        let addr = "127.0.0.1:6881".parse().unwrap();
        (PeerSlot::new(addr, [1; 20], false, 8, tx), rx)
    }

    #[test]
    fn silent_peers_are_closed_and_quiet_ones_get_keep_alives() {
        let now = Instant::now();
        let (p, rx) = slot();
        p.check_idle(now);
        assert!(rx.try_recv().is_err(), "a fresh connection is left alone");

        let later = now + KEEPALIVE + Duration::from_secs(1);
        p.check_idle(later);
        match rx.try_recv() {
            Ok(Out::Raw(b)) => assert_eq!(b, [0, 0, 0, 0], "a keep-alive"),
            other => panic!("{other:?}"),
        }

        let (mut p, rx) = slot();
        p.last_heard = now;
        p.check_idle(now + IDLE_TIMEOUT + Duration::from_secs(1));
        assert!(matches!(rx.try_recv(), Ok(Out::Close(why)) if why.contains("silent")));
    }
}
