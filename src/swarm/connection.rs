//! One peer connection: the handshake, then a reader loop (decode frames, hand them to the
//! torrent) and a writer task (control messages, and blocks read from the piece cache).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rt::channel::{unbounded, Receiver, TryRecvError};
use crate::rt::io::{ReadExt, WriteExt};
use crate::rt::{Shutdown, TcpStream};

use super::error::PeerError;
use super::outbox::Outbox;
use super::ratelimit::QUANTUM;
use super::state::PeerKey;
use super::torrent::{Out, Torrent};
use crate::proto::extension;
use crate::proto::ids::PeerId;
use crate::proto::layout::BLOCK;
use crate::proto::wire::{self, BlockRef, FrameLimits, Handshake, Message, HANDSHAKE_LEN};

/// Time allowed to connect and to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer: room for many blocks per read.
const READ_BUF: usize = 256 * 1024;
/// Bytes queued before they are written even if more are waiting.
const WRITE_BUF: usize = 128 * 1024;
/// Most bytes a connection leaves unsent in the kernel (see [`crate::sys::limit_unsent`]).
/// Without a limit the kernel took a peer's whole request queue at once (its send buffer
/// grows to megabytes), so in a crowd our `have`s and requests waited behind hundreds of KiB
/// of blocks there, out of reach of the writer's own ordering. 1 seeder -> 6 leechers at
/// 100 Mbit/s (`bench/netem`): 1.16-1.19x the bound with 32, 64 or 128 KiB against 1.18-1.20x
/// without. Not much smaller: at 100 Mbit/s 64 KiB is 5 ms for the writer to come back.
const UNSENT_LIMIT: u32 = 64 * 1024;

async fn timed<T>(
    d: Duration,
    doing: &'static str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, PeerError> {
    match crate::rt::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PeerError::io(doing, e)),
        Err(_) => Err(PeerError::Timeout { doing, after: d }),
    }
}

/// Read a handshake from `stream`.
pub async fn read_handshake(stream: &mut TcpStream) -> Result<Handshake, PeerError> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    timed(HANDSHAKE_TIMEOUT, "handshake", stream.read_exact(&mut buf)).await?;
    Ok(Handshake::decode(&buf)?)
}

/// Call `addr` for `torrent`. Returns how long the connection lived once set up.
pub async fn outgoing(torrent: Arc<Torrent>, addr: SocketAddr) -> Result<Duration, PeerError> {
    let mut stream = timed(HANDSHAKE_TIMEOUT, "connect", TcpStream::connect(addr)).await?;
    send_handshake(&torrent, &mut stream).await?;
    let theirs = read_handshake(&mut stream).await?;
    if theirs.info_hash != torrent.info_hash().0 {
        return Err(PeerError::WrongTorrent);
    }
    run(torrent, stream, addr, theirs, true).await
}

/// Serve a connection that sent us `theirs` for `torrent`: answer the handshake and run.
pub async fn incoming(
    torrent: Arc<Torrent>,
    mut stream: TcpStream,
    addr: SocketAddr,
    theirs: Handshake,
) -> Result<Duration, PeerError> {
    send_handshake(&torrent, &mut stream).await?;
    run(torrent, stream, addr, theirs, false).await
}

async fn send_handshake(torrent: &Torrent, stream: &mut TcpStream) -> Result<(), PeerError> {
    write_handshake(stream, torrent.info_hash().0, torrent.peer_id.0).await
}

/// Send our handshake for `info_hash`, announcing the extension protocol (BEP 10) and the
/// fast extension (BEP 6).
pub async fn write_handshake(
    stream: &mut TcpStream,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
) -> Result<(), PeerError> {
    let mut ours = Handshake::new(info_hash, peer_id);
    extension::set_extensions(&mut ours.reserved);
    extension::set_fast(&mut ours.reserved);
    timed(
        HANDSHAKE_TIMEOUT,
        "handshake",
        stream.write_all(&ours.encode()),
    )
    .await
}

async fn run(
    torrent: Arc<Torrent>,
    stream: TcpStream,
    addr: SocketAddr,
    theirs: Handshake,
    outgoing: bool,
) -> Result<Duration, PeerError> {
    let _ = stream.set_nodelay(true);
    crate::sys::limit_unsent(&stream, UNSENT_LIMIT);
    let peer_id = PeerId(theirs.peer_id);
    let (tx, rx) = unbounded();
    let fast = extension::supports_fast(&theirs.reserved);
    let key = torrent.register(addr, peer_id, fast, outgoing, tx.clone())?;
    if extension::supports_extensions(&theirs.reserved) {
        let local = stream.local_addr().ok();
        torrent
            .extensions
            .connected(&torrent, key, addr, local, outgoing, tx);
    } else {
        drop(tx);
    }
    let started = Instant::now();
    let source = torrent
        .dialer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .source(addr);
    log::info!("{addr}: connected ({peer_id}, from {source})");
    let writer = crate::rt::spawn(write_loop(Arc::clone(&torrent), stream.clone(), rx, key));
    let result = read_loop(&torrent, stream.clone(), key, addr).await;
    torrent.extensions.gone(&torrent, key);
    torrent.unregister(key);
    let _ = stream.shutdown(Shutdown::Both);
    let write_result = writer.await;
    torrent.writer_done();
    match result.err().or(write_result.err()) {
        Some(why) => log::info!("{addr}: disconnected: {why}"),
        None => log::info!("{addr}: disconnected"),
    }
    Ok(started.elapsed())
}

async fn read_loop(
    torrent: &Arc<Torrent>,
    mut stream: TcpStream,
    key: PeerKey,
    addr: SocketAddr,
) -> Result<(), PeerError> {
    let limits = FrameLimits::for_pieces(torrent.layout.piece_count());
    let mut buf = vec![0u8; READ_BUF.max(limits.max_frame as usize + 4)];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        // Everything one read brought is handed over at once: one lock per read, not per
        // message.
        let mut msgs: Vec<Message<'_>> = Vec::new();
        let mut bad = None;
        loop {
            match wire::decode(&buf[start..end], limits) {
                Ok(Some((msg, used))) => {
                    msgs.push(msg);
                    start += used;
                }
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if !msgs.is_empty() {
            torrent.receive(key, &msgs)?;
            for m in &msgs {
                if let Message::Extended { id, payload } = m {
                    torrent.extensions.handle(torrent, key, addr, *id, payload);
                }
            }
        }
        drop(msgs);
        if let Some(e) = bad {
            return Err(e.into());
        }
        // Keep room for a whole frame after `end`.
        if start == end {
            start = 0;
            end = 0;
        } else if buf.len() - end < BLOCK as usize + 13 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        // No timer here: the torrent's tick closes a silent connection (`PeerSlot::check_idle`).
        let n = match stream.read(&mut buf[end..]).await {
            Ok(0) => return Err(PeerError::ClosedByPeer),
            Ok(n) => n,
            Err(e) => return Err(PeerError::io("read", e)),
        };
        end += n;
        // A download limit holds the next read back: the socket's buffer fills and TCP slows
        // the sender down. Sleeps only once the debt is worth a quantum, as the writer does.
        if let Some(l) = &torrent.download_limit {
            let wait = l.take(n as u64);
            if wait >= QUANTUM {
                crate::rt::sleep(wait).await;
            }
        }
    }
}

async fn write_loop(
    torrent: Arc<Torrent>,
    stream: TcpStream,
    rx: Receiver<Out>,
    key: PeerKey,
) -> Result<(), PeerError> {
    let mut out = Outbox::default();
    let mut sock = stream.clone();
    // Blocks the peer asked for, not read yet. Control messages (our requests, `have`s,
    // offers, chokes) go out ahead of them: in a crowd every connection carries blocks both
    // ways, and a `have` or a request queued behind a peer's whole request queue (hundreds of
    // KiB) reached it a good part of a second late, so pieces were passed on late.
    let mut serves: VecDeque<BlockRef> = VecDeque::new();
    let result = async {
        loop {
            // Everything waiting now; when nothing is, and no block is due, wait for more.
            let item = match rx.try_recv() {
                Ok(item) => Some(item),
                Err(TryRecvError::Closed) => return Ok(()),
                Err(TryRecvError::Empty) if serves.is_empty() => {
                    out.flush(&mut sock).await.map_err(write_error)?;
                    // Keep-alives come from the torrent's tick (`PeerSlot::check_idle`).
                    match rx.recv().await {
                        Ok(item) => Some(item),
                        Err(_) => return Ok(()),
                    }
                }
                Err(TryRecvError::Empty) => None,
            };
            match item {
                Some(Out::Raw(bytes)) => {
                    out.push_small(&bytes);
                    continue;
                }
                Some(Out::Serve(b)) => {
                    serves.push_back(b);
                    continue;
                }
                Some(Out::Close(why)) => {
                    let _ = out.flush(&mut sock).await;
                    return Err(PeerError::Closed(why));
                }
                None => {}
            }
            let Some(b) = serves.pop_front() else {
                continue;
            };
            if !torrent.take_request(key, b) {
                continue; // cancelled, or we choked them meanwhile
            }
            // Our disk failing is no fault of the peer's: the piece is marked missing and the
            // connection goes on.
            let (piece, range) = match torrent.block_for_upload(b).await {
                Ok(x) => x,
                Err(e) => {
                    torrent.piece_lost(b.index, &e);
                    continue;
                }
            };
            if let Some(l) = &torrent.shared.limiter {
                let wait = l.take(range.len() as u64);
                // Sleep only once the debt is worth a quantum: a sleep per block sent the
                // blocks one by one, and the receiver paid a wake-up for each.
                if wait >= QUANTUM {
                    out.flush(&mut sock).await.map_err(write_error)?;
                    crate::rt::sleep(wait).await;
                }
            }
            out.push_small(&wire::piece_header(b.index, b.begin, range.len()));
            torrent.count_upload(key, range.len() as u64);
            out.push_block(piece, range);
            if out.len() >= WRITE_BUF {
                out.flush(&mut sock).await.map_err(write_error)?;
            }
        }
    }
    .await;
    // Wake the reader so the connection ends as a whole.
    let _ = stream.shutdown(Shutdown::Both);
    result
}

fn write_error(e: std::io::Error) -> PeerError {
    PeerError::io("write", e)
}
