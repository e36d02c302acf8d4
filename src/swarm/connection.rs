//! One peer connection: the handshake, then a reader loop (decode frames, hand them to the
//! torrent) and a writer task (control messages, and blocks read from the piece cache).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rt::channel::{unbounded, Receiver, TryRecvError};
use crate::rt::io::{ReadExt, WriteExt};
use crate::rt::{Shutdown, TcpStream};

use super::outbox::Outbox;
use super::peer::Out;
use super::picker::PeerKey;
use super::ratelimit::QUANTUM;
use super::torrent::Torrent;
use crate::proto::layout::BLOCK;
use crate::proto::wire::{self, Handshake, Limits, Message, HANDSHAKE_LEN};

/// Time allowed to connect and to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer: room for many blocks per read.
const READ_BUF: usize = 256 * 1024;
/// Bytes queued before they are written even if more are waiting.
const WRITE_BUF: usize = 128 * 1024;

async fn timed<T>(
    d: Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    match crate::rt::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out after {} s", d.as_secs())),
    }
}

/// Read a handshake from `stream`.
pub async fn read_handshake(stream: &mut TcpStream) -> Result<Handshake, String> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    timed(HANDSHAKE_TIMEOUT, "handshake", stream.read_exact(&mut buf)).await?;
    Handshake::decode(&buf).map_err(|e| e.to_string())
}

/// Call `addr` for `torrent`. Returns how long the connection lived once set up.
pub async fn outgoing(torrent: Arc<Torrent>, addr: SocketAddr) -> Result<Duration, String> {
    let mut stream = timed(HANDSHAKE_TIMEOUT, "connect", TcpStream::connect(addr)).await?;
    send_handshake(&torrent, &mut stream).await?;
    let theirs = read_handshake(&mut stream).await?;
    if theirs.info_hash != torrent.info_hash() {
        return Err("peer answered for another torrent".into());
    }
    run(torrent, stream, addr, theirs.peer_id, false).await
}

/// Serve a connection that sent us `theirs` for `torrent`: answer the handshake and run.
pub async fn incoming(
    torrent: Arc<Torrent>,
    mut stream: TcpStream,
    addr: SocketAddr,
    theirs: Handshake,
) -> Result<Duration, String> {
    send_handshake(&torrent, &mut stream).await?;
    run(torrent, stream, addr, theirs.peer_id, true).await
}

async fn send_handshake(torrent: &Torrent, stream: &mut TcpStream) -> Result<(), String> {
    let ours = Handshake::new(torrent.info_hash(), torrent.peer_id);
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
    peer_id: [u8; 20],
    incoming: bool,
) -> Result<Duration, String> {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = unbounded();
    let key = torrent.register(addr, peer_id, incoming, tx)?;
    let started = Instant::now();
    log::info!(
        "{addr}: connected ({})",
        super::peer::peer_id_text(&peer_id)
    );
    let writer = crate::rt::spawn(write_loop(Arc::clone(&torrent), stream.clone(), rx, key));
    let result = read_loop(&torrent, stream.clone(), key).await;
    torrent.unregister(key);
    let _ = stream.shutdown(Shutdown::Both);
    let write_result = writer.await;
    let why = result
        .err()
        .or(write_result.err())
        .unwrap_or_else(|| "closed".into());
    log::info!("{addr}: disconnected: {why}");
    Ok(started.elapsed())
}

async fn read_loop(
    torrent: &Arc<Torrent>,
    mut stream: TcpStream,
    key: PeerKey,
) -> Result<(), String> {
    let limits = Limits::for_pieces(torrent.layout.piece_count());
    let mut buf = vec![0u8; READ_BUF.max(limits.max_frame as usize + 4)];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        let mut got_data = false;
        while let Some((msg, used)) =
            wire::decode(&buf[start..end], limits).map_err(|e| e.to_string())?
        {
            match msg {
                Message::Piece { index, begin, data } => {
                    torrent.on_block(key, index, begin, data)?;
                    got_data = true;
                }
                other => {
                    let refill = matches!(
                        other,
                        Message::Unchoke | Message::Have(_) | Message::Bitfield(_)
                    );
                    torrent.handle(key, other)?;
                    got_data |= refill;
                }
            }
            start += used;
        }
        if got_data {
            torrent.fill(key);
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
            Ok(0) => return Err("peer closed the connection".into()),
            Ok(n) => n,
            Err(e) => return Err(format!("read: {e}")),
        };
        end += n;
    }
}

async fn write_loop(
    torrent: Arc<Torrent>,
    stream: TcpStream,
    rx: Receiver<Out>,
    key: PeerKey,
) -> Result<(), String> {
    let mut out = Outbox::default();
    let mut sock = stream.clone();
    let result = async {
        loop {
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Closed) => return Ok(()),
                Err(TryRecvError::Empty) => {
                    out.flush(&mut sock).await.map_err(write_error)?;
                    // Keep-alives come from the torrent's tick (`PeerSlot::check_idle`).
                    match rx.recv().await {
                        Ok(item) => item,
                        Err(_) => return Ok(()),
                    }
                }
            };
            match item {
                Out::Raw(bytes) => out.push_small(&bytes),
                Out::Serve(b) => {
                    if !torrent.take_request(key, b) {
                        continue; // cancelled, or we choked them meanwhile
                    }
                    let piece = torrent
                        .piece_for_upload(b.index)
                        .await
                        .map_err(|e| format!("cannot read piece {}: {e}", b.index))?;
                    let range = b.begin as usize..(b.begin + b.len) as usize;
                    if piece.get(range.clone()).is_none() {
                        return Err("request outside the piece".into());
                    }
                    if let Some(l) = &torrent.limiter {
                        let wait = l.take(range.len() as u64);
                        // Sleep only once the debt is worth a quantum: a sleep per block sent
                        // the blocks one by one, and the receiver paid a wake-up for each.
                        if wait >= QUANTUM {
                            out.flush(&mut sock).await.map_err(write_error)?;
                            crate::rt::sleep(wait).await;
                        }
                    }
                    out.push_small(&wire::piece_header(b.index, b.begin, range.len()));
                    torrent.count_upload(key, range.len() as u64);
                    out.push_block(piece, range);
                }
                Out::Close(why) => {
                    let _ = out.flush(&mut sock).await;
                    return Err(why);
                }
            }
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

fn write_error(e: std::io::Error) -> String {
    format!("write: {e}")
}
