//! HTTP plumbing under the tracker: accept connections and serve each with tide's HTTP/1 engine
//! (async-h1), with three things `tide::Server::listen` does not do:
//!
//! - `TCP_NODELAY`, so a keep-alive client does not wait ~40 ms for each answer (Nagle's
//!   algorithm holding a segment until the client's delayed ACK);
//! - one segment per answer: async-h1 writes the head and the body separately and flushes once,
//!   so writes are held until that flush ([`Coalesced`]);
//! - a cap on open connections.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use futures::io::{AsyncRead, AsyncWrite};
use log::{debug, warn};

/// Most connections served at once; more are closed at once. Announces are short-lived, so this
/// bounds memory and file descriptors without hurting real swarms.
pub const MAX_CONNECTIONS: usize = 8192;

/// Most bytes held before they are written anyway (a large `/peers` answer streams through).
const MAX_HELD: usize = 64 * 1024;

/// Serve `app` on every connection `listener` accepts, forever.
pub async fn serve<State>(listener: TcpListener, app: tide::Server<State>)
where
    State: Clone + Send + Sync + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: say so and let connections drain.
                warn!("cannot accept a connection: {e}");
                async_std::task::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            debug!("{MAX_CONNECTIONS} connections open: refusing one more");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (app, open) = (app.clone(), open.clone());
        open.fetch_add(1, Ordering::Relaxed);
        async_std::task::spawn(async move {
            let local = stream.local_addr().ok();
            let peer = stream.peer_addr().ok();
            let served = async_h1::accept(Coalesced::new(stream), |mut req| {
                req.set_local_addr(local);
                req.set_peer_addr(peer);
                let app = app.clone();
                async move { app.respond(req).await }
            })
            .await;
            if let Err(e) = served {
                // A client that hangs up mid-request, or a head over 8 KiB: routine.
                debug!("connection from {peer:?} ended: {e}");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A TCP stream whose writes wait for `flush` (or [`MAX_HELD`] bytes). Clones share the stream
/// and the held bytes, as async-h1 reads and writes through two clones.
#[derive(Clone)]
struct Coalesced {
    stream: TcpStream,
    held: Arc<Mutex<Vec<u8>>>,
}

impl Coalesced {
    fn new(stream: TcpStream) -> Coalesced {
        Coalesced {
            stream,
            held: Arc::new(Mutex::new(Vec::new())),
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
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
