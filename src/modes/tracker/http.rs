//! HTTP plumbing under the tracker: accept connections and serve each with tide's HTTP/1 engine
//! (async-h1), with what `tide::Server::listen` does not do:
//!
//! - `TCP_NODELAY`, so a keep-alive client does not wait ~40 ms for each answer (Nagle's
//!   algorithm holding a segment until the client's delayed ACK);
//! - one segment per answer: async-h1 writes the head and the body separately and flushes once,
//!   so writes are held until that flush ([`Coalesced`]);
//! - limits against clients that hold connections or memory: a cap on open connections, overall
//!   and per address; [`IDLE_TIMEOUT`] without sending anything closes a connection; at most
//!   [`MAX_UNANSWERED`] bytes are read before an answer.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use crate::rt::{TcpListener, TcpStream};
use futures::io::{AsyncRead, AsyncWrite};
use log::{debug, warn};

/// Most connections served at once; more are closed at once. Announces are short-lived, so this
/// bounds memory and file descriptors without hurting real swarms.
pub const MAX_CONNECTIONS: usize = 8192;

/// Most connections served at once from one address (an IPv6 /64 counts as one address). Without
/// it, one host holding [`MAX_CONNECTIONS`] slow connections would lock everyone else out. A
/// per-address cap is the simplest defence that keeps honest load whole: an announce holds a
/// connection for milliseconds, so even a large NAT rarely has more than a few open at once,
/// and a benchmark's 64 keep-alive connections fit easily.
pub const MAX_PER_ADDRESS: usize = 256;

/// A connection that sends us nothing to write for this long is closed: it covers a request
/// head that never ends (slowloris: a byte now and then does not extend it), an idle keep-alive
/// connection, and a client that stops reading its answer. Tracker clients announce every few
/// minutes and open a new connection each time, so they never notice.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes read from a connection before we answer it. async-h1 refuses a head over 8 KiB,
/// but only once it has read a whole line: a request line without end would be buffered until
/// the memory runs out. Tracker requests carry no body, so twice the head limit is plenty.
pub const MAX_UNANSWERED: usize = 16 * 1024;

/// Most bytes held before they are written anyway (a large `/peers` answer streams through).
const MAX_HELD: usize = 64 * 1024;

/// Serve `app` on every connection `listener` accepts, forever.
pub async fn serve<State>(listener: TcpListener, app: tide::Server<State>)
where
    State: Clone + Send + Sync + 'static,
{
    let slots = Slots::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: say so and let connections drain.
                warn!("cannot accept a connection: {e}");
                crate::rt::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = slots.take(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        crate::rt::spawn(async move {
            let local = stream.local_addr().ok();
            let peer = Some(peer);
            let conn = Coalesced::new(stream);
            let state = Arc::clone(&conn.state);
            let served = pin!(async_h1::accept(conn, |mut req| {
                req.set_local_addr(local);
                req.set_peer_addr(peer);
                let app = app.clone();
                async move { app.respond(req).await }
            }));
            let ended = match futures::future::select(served, pin!(idle(&state))).await {
                futures::future::Either::Left((served, _)) => served.err().map(|e| e.to_string()),
                futures::future::Either::Right(_) => Some(format!(
                    "nothing to send for {} s: closed",
                    IDLE_TIMEOUT.as_secs()
                )),
            };
            if let Some(e) = ended {
                // A client that hangs up mid-request, a head over 8 KiB, a stalled one: routine.
                debug!("connection from {peer:?} ended: {e}");
            }
            drop(slot);
        })
        .detach();
    }
}

/// Returns once the connection has sent nothing for [`IDLE_TIMEOUT`].
async fn idle(state: &Mutex<Progress>) {
    loop {
        let quiet = lock(state).last_sent.elapsed();
        if quiet >= IDLE_TIMEOUT {
            return;
        }
        crate::rt::sleep(IDLE_TIMEOUT - quiet).await;
    }
}

/// Open connections, overall and per address.
#[derive(Default, Clone)]
struct Slots(Arc<Mutex<SlotCounts>>);

#[derive(Default)]
struct SlotCounts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One open connection, given back on drop.
struct Slot {
    slots: Slots,
    address: IpAddr,
}

impl Slots {
    /// A slot for a connection from `ip`, or `None` when a cap is reached.
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let address = address_key(ip);
        let mut c = lock(&self.0);
        if c.total >= MAX_CONNECTIONS {
            debug!("{MAX_CONNECTIONS} connections open: refusing one more");
            return None;
        }
        let mine = c.per_address.entry(address).or_default();
        if *mine >= MAX_PER_ADDRESS {
            debug!("{MAX_PER_ADDRESS} connections open from {address}: refusing one more");
            return None;
        }
        *mine += 1;
        c.total += 1;
        Some(Slot {
            slots: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.slots.0);
        c.total -= 1;
        if let Some(n) = c.per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.address);
            }
        }
    }
}

/// What counts as one address for [`MAX_PER_ADDRESS`]: an IPv4 address, or an IPv6 /64 (one
/// host is usually given a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// Lock a mutex, also after a panic elsewhere (the counters stay meaningful).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's traffic since it last sent something.
struct Progress {
    /// When bytes last went out (or the connection opened).
    last_sent: Instant,
    /// Bytes read since then.
    unanswered: usize,
}

/// A TCP stream whose writes wait for `flush` (or [`MAX_HELD`] bytes), and that refuses to read
/// more than [`MAX_UNANSWERED`] bytes between two writes. Clones share the stream, the held
/// bytes and the progress, as async-h1 reads and writes through two clones.
#[derive(Clone)]
struct Coalesced {
    stream: TcpStream,
    held: Arc<Mutex<Vec<u8>>>,
    state: Arc<Mutex<Progress>>,
}

impl Coalesced {
    fn new(stream: TcpStream) -> Coalesced {
        Coalesced {
            stream,
            held: Arc::new(Mutex::new(Vec::new())),
            state: Arc::new(Mutex::new(Progress {
                last_sent: Instant::now(),
                unanswered: 0,
            })),
        }
    }

    /// Write out everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while !held.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            held.drain(..n);
            *lock(&self.state) = Progress {
                last_sent: Instant::now(),
                unanswered: 0,
            };
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Coalesced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        let mut state = lock(&self.state);
        state.unanswered += n;
        if state.unanswered > MAX_UNANSWERED {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("over {MAX_UNANSWERED} bytes sent without an answer"),
            )));
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Coalesced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let full = self.held.lock().map(|h| h.len()).unwrap_or(0) >= MAX_HELD;
        if full {
            ready!(self.poll_drain(cx))?;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_slash_64_is_one_address_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn slots_are_capped_per_address_and_given_back() {
        let slots = Slots::default();
        let one = IpAddr::from([10, 0, 0, 1]);
        let mut held: Vec<Slot> = (0..MAX_PER_ADDRESS)
            .map(|_| slots.take(one).unwrap())
            .collect();
        assert!(slots.take(one).is_none());
        assert!(slots.take(IpAddr::from([10, 0, 0, 2])).is_some());
        held.pop();
        assert!(slots.take(one).is_some());
        drop(held);
        assert_eq!(lock(&slots.0).per_address.len(), 0);
        assert_eq!(lock(&slots.0).total, 0);
    }
}
