//! HTTP/1.1 under the tracker. This module owns each connection: it reads and parses request
//! heads itself (with `httparse`, bounded), hands each request to the tide app (the router and
//! handlers), and writes the answers back in order. Driving async-h1 instead dropped pipelined
//! requests, closed HTTP/1.0 connections without an answer and accepted ambiguous framing.
//!
//! What a connection gets:
//! - pipelined requests are answered one after the other, in order; HTTP/1.0 is answered and
//!   then closed unless it asked for keep-alive;
//! - a head that does not parse, has non-UTF-8 bytes in its request line, or frames its body
//!   ambiguously (two different `Content-Length`s, `Transfer-Encoding` with `Content-Length`) is
//!   answered with a 4xx and the connection closed;
//! - limits against clients that hold connections or memory: a cap on open connections,
//!   overall and per address (on connections open at once: any number of requests may follow
//!   each other on one connection, and at the cap an idle kept-alive connection of the same
//!   address is closed to make room); [`IDLE_TIMEOUT`] without anything sent closes a connection;
//!   at most [`MAX_HEAD`] + [`MAX_BODY`] bytes are buffered for a request, and one answer at a
//!   time is held (a client that pipelines and never reads stalls its own connection only);
//! - `TCP_NODELAY`, and small answers written in one segment.
//!
//! Cheap where it counts: `/announce` and `/scrape` are answered by a plain function (no URL
//! parsing, no `http_types` request, no router); the idle timeout is kept by one sweeper task
//! that shuts down overdue sockets once a second, not by a timer per read or write (each timer
//! wakes the reactor thread); and a connection whose client asked to close, with nothing
//! more sent, is closed at once after its answer.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rt::io::{ReadExt, WriteExt};
use crate::rt::{Shutdown, TcpListener, TcpStream};
use log::{debug, warn};
use tide::http::{Method, Request, Response, Url, Version};

/// Most connections served at once; more are closed at once. Announces are short-lived, so this
/// bounds memory and file descriptors without hurting real swarms.
pub const MAX_CONNECTIONS: usize = 8192;

/// Most connections open at once from one address (an IPv6 /64 counts as one address). Without
/// it, one host holding [`MAX_CONNECTIONS`] slow connections would lock everyone else out. It
/// counts connections, not requests: a peer with many torrents announcing them all over a few
/// keep-alive connections is never refused. At the cap, a kept-alive connection waiting for its
/// next request is closed to make room for a new one; only connections in the middle of a
/// request (or new ones that have not sent one yet) make a new one be refused. An announce
/// holds a connection for milliseconds, so even a large NAT rarely has more than a few open.
pub const MAX_PER_ADDRESS: usize = 256;

/// A connection that is sent nothing for this long is closed: it covers a request head that
/// never ends (slowloris: a byte now and then does not extend it), an idle keep-alive
/// connection, and a client that stops reading its answer. Tracker clients announce every few
/// minutes, so they never notice.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers). Tracker requests are a few hundred bytes;
/// the table refuses queries over 6 KiB anyway, with a clear failure reason.
pub const MAX_HEAD: usize = 16 * 1024;

/// Largest request body accepted (read and ignored: tracker requests have none).
pub const MAX_BODY: usize = 4 * 1024;

/// Most header lines in a request head.
const MAX_HEADERS: usize = 64;

/// Answers up to this size go out in one write (one TCP segment on loopback); larger ones are
/// written in pieces of this size, each of which restarts the idle clock.
const WRITE_CHUNK: usize = 64 * 1024;

/// After the last answer of a connection, how long and how much we read and discard before
/// closing, so that the client's unread bytes do not make the kernel reset the connection
/// before it has read our answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Answers without the app: given the path, the raw query and the client's IP, the
/// `text/plain` body for a path it serves, else `None`.
pub type Direct = Arc<dyn Fn(&str, &str, IpAddr) -> Option<Vec<u8>> + Send + Sync>;

/// How often the sweeper looks for connections past their deadline.
const SWEEP: Duration = Duration::from_secs(1);

/// Serve every connection `listener` accepts, forever: what `direct` answers it answers, the
/// rest goes to `app`.
///
/// Connections are accepted by a thread of their own with blocking `accept` on the same
/// socket, which answers a first request that is there already at once ([`at_once`]); only
/// the others become async connections. A connection per announce thus costs no readiness
/// registration, no task and no wake-up of another thread (on loopback these were most of
/// the tracker's CPU per announce). Without that thread, the same runs on the executor.
pub async fn serve<State>(listener: TcpListener, app: tide::Server<State>, direct: Direct)
where
    State: Clone + Send + Sync + 'static,
{
    let slots = Slots::default();
    let sweeper = slots.clone();
    crate::rt::spawn(async move {
        loop {
            crate::rt::sleep(SWEEP).await;
            sweeper.close_overdue();
        }
    })
    .detach();
    match blocking_twin(&listener) {
        Ok(twin) => {
            drop(listener); // the twin holds the socket; nothing is left registered for it
            let (done, ended) = crate::rt::channel::bounded::<()>(1);
            let run = move || {
                accept_loop(&twin, &app, &direct, &slots);
                let _ = done.try_send(());
            };
            match std::thread::Builder::new()
                .name("tracker-accept".into())
                .spawn(run)
            {
                Ok(_) => {
                    let _ = ended.recv().await;
                }
                Err(e) => warn!("cannot start the accept thread: {e}"),
            }
        }
        Err(e) => {
            warn!("accepting on the executor ({e})");
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!("cannot accept a connection: {e}");
                        crate::rt::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                start(stream, peer, None, &app, &direct, &slots);
            }
        }
    }
}

/// A blocking `std` listener on the socket of `listener`.
fn blocking_twin(listener: &TcpListener) -> io::Result<std::net::TcpListener> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `listener`, which outlives this borrow; the clone is
    // a new descriptor (`dup`) that the twin owns.
    let fd = unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) };
    let twin = std::net::TcpListener::from(fd.try_clone_to_owned()?);
    twin.set_nonblocking(false)?;
    // Hand over connections once their first bytes are in (or after about a second without),
    // so that `at_once` finds the request there already.
    crate::sys::set_tcp_option(&twin, libc::TCP_DEFER_ACCEPT, 1);
    Ok(twin)
}

/// Accept forever on the accept thread.
fn accept_loop<State>(
    listener: &std::net::TcpListener,
    app: &tide::Server<State>,
    direct: &Direct,
    slots: &Slots,
) where
    State: Clone + Send + Sync + 'static,
{
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: say so and let connections drain.
                warn!("cannot accept a connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let mut first = First::default();
        if at_once(&stream, peer, direct, &mut first) {
            continue; // answered and closed on drop
        }
        start(
            TcpStream::from(stream),
            peer,
            Some(first),
            app,
            direct,
            slots,
        );
    }
}

/// Serve `stream` in a task of its own, from where [`at_once`] left it, if the caps allow.
fn start<State>(
    stream: TcpStream,
    peer: SocketAddr,
    first: Option<First>,
    app: &tide::Server<State>,
    direct: &Direct,
    slots: &Slots,
) where
    State: Clone + Send + Sync + 'static,
{
    let Some(slot) = slots.take(peer.ip(), Some(stream.clone())) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let first = first.unwrap_or_default();
    let mut conn = Connection {
        stream,
        peer,
        buf: first.buf,
        unsent: first.unsent,
    };
    let (app, direct) = (app.clone(), direct.clone());
    crate::rt::spawn(async move {
        if let Err(e) = conn.serve(&app, &direct, &slot, first.answered).await {
            // A client that hangs up mid-request, a bad head, a stalled one: routine.
            debug!("connection from {peer} ended: {e}");
        }
        drop(slot);
    })
    .detach();
}

/// What [`at_once`] leaves for the connection's task.
#[derive(Default)]
struct First {
    /// Bytes read and not answered.
    buf: Vec<u8>,
    /// An answer not (wholly) written, and whether the connection closes after it.
    unsent: Option<(Vec<u8>, bool)>,
    /// Whether a request was answered.
    answered: bool,
}

/// Serve a new connection's first request without waiting, right where it was accepted, when
/// the request is there already, is one of the [`Direct`] paths and asks to close, and its
/// answer can be written at once: the common case of a client connecting for one announce.
/// True when the connection is done with; else `first` says what is left.
fn at_once(
    stream: &std::net::TcpStream,
    peer: SocketAddr,
    direct: &Direct,
    first: &mut First,
) -> bool {
    use std::io::{Read, Write};
    let mut chunk = [0u8; 4096];
    match (&*stream).read(&mut chunk) {
        Ok(0) => return true,
        Ok(n) => first.buf.extend_from_slice(&chunk[..n]),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
        Err(_) => return true,
    }
    let Ok(Some((head, used))) = parse_request(&first.buf) else {
        return false;
    };
    if head.method != "GET" || used != first.buf.len() {
        return false; // anything else, and pipelined requests, go the long way
    }
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    let Some(body) = direct(path, query, peer.ip()) else {
        return false;
    };
    first.buf.clear();
    first.answered = true;
    let out = direct_answer(&body, &head);
    let close = !head.keep_alive;
    match (&*stream).write(&out) {
        Ok(n) if n == out.len() && close => return true,
        Ok(n) => first.unsent = Some((out[n..].to_vec(), close)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => first.unsent = Some((out, close)),
        Err(_) => return true,
    }
    false
}

/// Why a request is refused before it reaches the app: the status and a one-line reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status sent.
    pub status: u16,
    /// Sent as the body.
    pub why: &'static str,
}

const fn refuse(status: u16, why: &'static str) -> Refusal {
    Refusal { status, why }
}

/// A request head as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent (origin form `/path?query`, or absolute form).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// Header lines whose values are text (others are dropped).
    pub headers: Vec<(String, String)>,
    /// Bytes of body after the head.
    pub body_len: usize,
}

/// Parse the request at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// head and how many bytes of `buf` the request takes (head and body).
pub fn parse_request(buf: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return Err(head_too_large()),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(head_too_large()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(431, "too many header lines"));
        }
        Err(httparse::Error::Version) => return Err(refuse(505, "only HTTP/1.0 and 1.1")),
        Err(_) => return Err(refuse(400, "malformed request head")),
    };
    let minor = req.version.unwrap_or(1);
    let (mut length, mut chunked, mut connection) = (None::<u64>, false, None::<bool>);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok();
        if h.name.eq_ignore_ascii_case("content-length") {
            // Several lengths, or a list, are fine only when they all agree (RFC 9112 6.3).
            for part in value.unwrap_or("x").split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refuse(400, "malformed Content-Length"));
                }
                let n = part.parse::<u64>().unwrap_or(u64::MAX);
                if length.is_some_and(|l| l != n) {
                    return Err(refuse(400, "conflicting Content-Length headers"));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.unwrap_or("").split(',') {
                match token.trim() {
                    t if t.eq_ignore_ascii_case("close") => connection = Some(false),
                    t if t.eq_ignore_ascii_case("keep-alive") => {
                        connection = Some(connection.unwrap_or(true))
                    }
                    _ => {}
                }
            }
        }
    }
    if chunked && length.is_some() {
        // The classic request-smuggling shape: refuse rather than pick one.
        return Err(refuse(
            400,
            "Transfer-Encoding together with Content-Length",
        ));
    }
    if chunked {
        return Err(refuse(411, "request bodies must have a Content-Length"));
    }
    let body_len = match length {
        Some(n) if n > MAX_BODY as u64 => return Err(refuse(413, "request body too large")),
        Some(n) => n as usize,
        None => 0,
    };
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    let head = Head {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        minor,
        keep_alive: connection.unwrap_or(minor >= 1),
        headers: req
            .headers
            .iter()
            .filter_map(|h| {
                Some((
                    h.name.to_string(),
                    std::str::from_utf8(h.value).ok()?.into(),
                ))
            })
            .collect(),
        body_len,
    };
    Ok(Some((head, head_len + body_len)))
}

fn head_too_large() -> Refusal {
    refuse(431, "request head over 16 KiB")
}

impl Head {
    /// The `http_types` request for the app; `local` names the server in the URL.
    fn to_request(&self, local: Option<SocketAddr>, peer: SocketAddr) -> Result<Request, Refusal> {
        let method =
            Method::from_str(&self.method).map_err(|_| refuse(501, "method not implemented"))?;
        let url = match self.target.starts_with('/') {
            true => {
                let host = local.map_or_else(|| "localhost".to_string(), |a| a.to_string());
                Url::parse(&format!("http://{host}{}", self.target))
            }
            false => Url::parse(&self.target),
        }
        .map_err(|_| refuse(400, "malformed request target"))?;
        let mut req = Request::new(method, url);
        req.set_version(Some(match self.minor {
            0 => Version::Http1_0,
            _ => Version::Http1_1,
        }));
        req.set_peer_addr(Some(peer));
        req.set_local_addr(local);
        for (name, value) in &self.headers {
            // Names and values that http_types cannot hold are of no use to the handlers.
            if let (Ok(name), Ok(value)) = (
                tide::http::headers::HeaderName::from_str(name),
                tide::http::headers::HeaderValue::from_str(value),
            ) {
                req.append_header(name, value);
            }
        }
        Ok(req)
    }
}

/// A connection: the socket and the bytes read but not used yet.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    /// The rest of an answer [`at_once`] could not write at once, and whether the connection
    /// closes after it.
    unsent: Option<(Vec<u8>, bool)>,
}

/// How a connection ended early.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("nothing sent for {} s: closed", IDLE_TIMEOUT.as_secs())]
    Idle,
    #[error("closed in the middle of a request")]
    Truncated,
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Connection {
    /// Answer requests until the client closes, asks to close, or breaks a rule.
    async fn serve<State>(
        &mut self,
        app: &tide::Server<State>,
        direct: &Direct,
        slot: &Slot,
        mut answered: bool,
    ) -> Result<(), Ended>
    where
        State: Clone + Send + Sync + 'static,
    {
        if let Some((unsent, close)) = self.unsent.take() {
            self.send(&unsent, slot).await?;
            if close {
                return self.close(slot).await;
            }
        }
        loop {
            let parsed = match parse_request(&self.buf) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    // Waiting for the next request of a kept-alive connection, with nothing
                    // buffered: it may be closed to make room for a newer one. A new
                    // connection is not, however long its client takes to send a request.
                    slot.set_idle(answered && self.buf.is_empty());
                    let read = self.read_more(slot).await;
                    slot.set_idle(false);
                    if read? == 0 {
                        return match self.buf.is_empty() {
                            true => Ok(()),
                            false => Err(Ended::Truncated),
                        };
                    }
                    continue;
                }
                Err(refusal) => return self.refuse(refusal, slot).await,
            };
            let (head, used) = parsed;
            self.buf.drain(..used);
            if head.method == "GET" {
                let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
                if let Some(body) = direct(path, query, self.peer.ip()) {
                    self.answer_direct(&body, &head, slot).await?;
                    answered = true;
                    if !head.keep_alive {
                        return self.close(slot).await;
                    }
                    continue;
                }
            }
            let req = match head.to_request(self.stream.local_addr().ok(), self.peer) {
                Ok(req) => req,
                Err(refusal) => return self.refuse(refusal, slot).await,
            };
            let res: Response = match app.respond(req).await {
                Ok(res) => res,
                Err(e) => {
                    warn!("the tracker failed to answer {}: {e}", self.peer);
                    Response::new(500)
                }
            };
            self.answer(res, &head, slot).await?;
            answered = true;
            if !head.keep_alive {
                return self.close(slot).await;
            }
        }
    }

    /// Read more of the request into the buffer (never past [`MAX_HEAD`] + [`MAX_BODY`]);
    /// returns 0 at the end of the stream, and when the sweeper shut the socket down.
    async fn read_more(&mut self, slot: &Slot) -> Result<usize, Ended> {
        let room = (MAX_HEAD + MAX_BODY).saturating_sub(self.buf.len());
        if room == 0 {
            // parse_request refuses a head this long; a body this long is refused before.
            return Err(Ended::Refused("request over the size limit"));
        }
        let mut chunk = [0u8; 4096];
        let want = room.min(chunk.len());
        let n = self.stream.read(&mut chunk[..want]).await;
        slot.check_deadline()?;
        let n = n?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Write `bytes`, each piece restarting the idle clock; a client that reads nothing for
    /// [`IDLE_TIMEOUT`] is shut down by the sweeper, which ends the write.
    async fn send(&mut self, mut bytes: &[u8], slot: &Slot) -> Result<(), Ended> {
        while !bytes.is_empty() {
            let piece = &bytes[..bytes.len().min(WRITE_CHUNK)];
            let n = self.stream.write(piece).await;
            slot.check_deadline()?;
            let n = n?;
            if n == 0 {
                return Err(Ended::Io(io::ErrorKind::WriteZero.into()));
            }
            bytes = &bytes[n..];
            slot.extend(IDLE_TIMEOUT);
        }
        Ok(())
    }

    /// Answer `head` with `body` from a [`Direct`] handler, in one write.
    async fn answer_direct(&mut self, body: &[u8], head: &Head, slot: &Slot) -> Result<(), Ended> {
        self.send(&direct_answer(body, head), slot).await
    }

    /// Write the app's answer to `head`: status line, headers, our own framing, the body.
    async fn answer(&mut self, mut res: Response, head: &Head, slot: &Slot) -> Result<(), Ended> {
        let status = res.status();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status as u16,
            status.canonical_reason()
        );
        for (name, values) in res.iter() {
            let name = name.as_str();
            if ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                continue; // framing is ours
            }
            for value in values.iter() {
                out += &format!("{name}: {value}\r\n");
            }
        }
        // Our handlers answer with bodies built in memory, bounded by their own limits (a
        // `/peers` page); into_bytes only hands that buffer over.
        let body = res.take_body().into_bytes().await.unwrap_or_default();
        out += &format!("content-length: {}\r\n", body.len());
        out += connection_header(head);
        out += "\r\n";
        let mut bytes = out.into_bytes();
        let body = match head.method.eq_ignore_ascii_case("HEAD") {
            true => &[][..],
            false => &body[..],
        };
        if bytes.len() + body.len() <= WRITE_CHUNK {
            bytes.extend_from_slice(body);
            self.send(&bytes, slot).await
        } else {
            self.send(&bytes, slot).await?;
            self.send(body, slot).await
        }
    }

    /// Answer `refusal` and close the connection.
    async fn refuse(&mut self, refusal: Refusal, slot: &Slot) -> Result<(), Ended> {
        let status = tide::http::StatusCode::try_from(refusal.status)
            .map(|s| s.canonical_reason())
            .unwrap_or("Bad Request");
        let answer = format!(
            "HTTP/1.1 {} {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{}\n",
            refusal.status,
            refusal.why.len() + 1,
            refusal.why
        );
        self.send(answer.as_bytes(), slot).await?;
        self.linger(slot).await;
        Err(Ended::Refused(refusal.why))
    }

    /// End our side of the connection after the last answer, then read and discard what the
    /// client still sends for a moment: closing with unread bytes would reset the connection,
    /// and a reset can discard our answer before the client reads it.
    async fn linger(&mut self, slot: &Slot) {
        let _ = self.stream.shutdown(Shutdown::Write);
        slot.extend(LINGER);
        let mut drained = 0;
        let mut sink = [0u8; 4096];
        while drained < LINGER_BYTES {
            match self.stream.read(&mut sink).await {
                Ok(n) if n > 0 && slot.check_deadline().is_ok() => drained += n,
                _ => break,
            }
        }
    }

    /// End the connection after the answer to a request that asked to close. With nothing
    /// more received, the client sent its last request (RFC 9112 9.6): close at once, as
    /// there are no unread bytes to make the kernel reset the connection. Else linger.
    async fn close(&mut self, slot: &Slot) -> Result<(), Ended> {
        if !self.buf.is_empty() {
            self.linger(slot).await;
        }
        Ok(())
    }
}

/// The whole answer to `head` with a [`Direct`] handler's `body`.
fn direct_answer(body: &[u8], head: &Head) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: no-store\r\n",
    );
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(connection_header(head).as_bytes());
    out.extend_from_slice(b"\r\n");
    if !head.method.eq_ignore_ascii_case("HEAD") {
        out.extend_from_slice(body);
    }
    out
}

/// The `connection` header line an answer to `head` needs (none for HTTP/1.1 keep-alive).
fn connection_header(head: &Head) -> &'static str {
    match (head.keep_alive, head.minor) {
        (false, _) => "connection: close\r\n",
        (true, 0) => "connection: keep-alive\r\n",
        (true, _) => "",
    }
}

/// Open connections, overall and per address.
#[derive(Default, Clone)]
struct Slots(Arc<Mutex<SlotCounts>>);

#[derive(Default)]
struct SlotCounts {
    total: usize,
    next_id: u64,
    per_address: HashMap<IpAddr, Vec<Arc<Member>>>,
}

/// One open connection as the slot table sees it.
struct Member {
    id: u64,
    /// Set while the connection waits for its next request with nothing buffered.
    idle: AtomicBool,
    /// A handle to close it with when it is evicted or overdue (none in unit tests).
    stream: Option<TcpStream>,
    /// When the sweeper shuts it down, in milliseconds since [`clock_zero`]; set to
    /// [`IDLE_TIMEOUT`] from the start and from every write that moves bytes.
    deadline: AtomicU64,
}

/// Milliseconds since the first call: the clock of connection deadlines.
fn clock_ms() -> u64 {
    static ZERO: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ZERO.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// One open connection, given back on drop.
struct Slot {
    slots: Slots,
    address: IpAddr,
    member: Arc<Member>,
}

impl Slots {
    /// A slot for a connection from `ip`, or `None` when a cap is reached. At the per-address
    /// cap, an idle keep-alive connection from the same address (one waiting between requests)
    /// is closed to make room: a client that keeps a connection per torrent is then served,
    /// while connections in the middle of a request (a slowloris) are never evicted.
    fn take(&self, ip: IpAddr, stream: Option<TcpStream>) -> Option<Slot> {
        let address = address_key(ip);
        let mut c = lock(&self.0);
        if c.total >= MAX_CONNECTIONS {
            debug!("{MAX_CONNECTIONS} connections open: refusing one more");
            return None;
        }
        c.next_id += 1;
        let member = Arc::new(Member {
            id: c.next_id,
            idle: AtomicBool::new(false),
            stream,
            deadline: AtomicU64::new(clock_ms() + IDLE_TIMEOUT.as_millis() as u64),
        });
        let mine = c.per_address.entry(address).or_default();
        if mine.len() >= MAX_PER_ADDRESS {
            let Some(idle) = mine.iter().position(|m| m.idle.load(Ordering::Acquire)) else {
                debug!("{MAX_PER_ADDRESS} busy connections open from {address}: refusing one more");
                return None;
            };
            // The oldest idle one (the list is in order of arrival).
            let evicted = mine.remove(idle);
            if let Some(stream) = &evicted.stream {
                // Its task reads the end of the stream and ends quietly.
                let _ = stream.shutdown(Shutdown::Both);
            }
            c.total -= 1;
            debug!("{MAX_PER_ADDRESS} connections open from {address}: closed an idle one");
        }
        let mine = c.per_address.entry(address).or_default();
        mine.push(Arc::clone(&member));
        c.total += 1;
        Some(Slot {
            slots: self.clone(),
            address,
            member,
        })
    }
}

impl Slots {
    /// Shut down every connection past its deadline: its pending read or write ends, and its
    /// task sees [`Slot::check_deadline`] fail.
    fn close_overdue(&self) {
        let now = clock_ms();
        let c = lock(&self.0);
        for member in c.per_address.values().flatten() {
            if member.deadline.load(Ordering::Relaxed) <= now {
                if let Some(stream) = &member.stream {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

impl Slot {
    /// Move the deadline to `by` from now.
    fn extend(&self, by: Duration) {
        let at = clock_ms() + by.as_millis() as u64;
        self.member.deadline.store(at, Ordering::Relaxed);
    }

    /// `Err(Ended::Idle)` once the deadline has passed (the sweeper shuts such sockets down).
    fn check_deadline(&self) -> Result<(), Ended> {
        match self.member.deadline.load(Ordering::Relaxed) <= clock_ms() {
            true => Err(Ended::Idle),
            false => Ok(()),
        }
    }

    /// Mark the connection as waiting for a request with nothing buffered (evictable), or not.
    fn set_idle(&self, idle: bool) {
        self.member.idle.store(idle, Ordering::Release);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.slots.0);
        let Some(mine) = c.per_address.get_mut(&self.address) else {
            return;
        };
        // An evicted connection was already taken out (and its count given back).
        let Some(at) = mine.iter().position(|m| m.id == self.member.id) else {
            return;
        };
        mine.remove(at); // keeps the order of arrival (at most MAX_PER_ADDRESS entries)
        if mine.is_empty() {
            c.per_address.remove(&self.address);
        }
        c.total -= 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
        parse_request(text)
    }

    fn status(text: &[u8]) -> u16 {
        parse(text).expect_err("a refusal").status
    }

    #[test]
    fn requests_parse_one_at_a_time_with_their_keep_alive() {
        let two = b"GET /a?x=%FF HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.0\r\n\r\n";
        let (first, used) = parse(two).unwrap().unwrap();
        assert_eq!(
            (first.method.as_str(), first.target.as_str()),
            ("GET", "/a?x=%FF")
        );
        assert!(first.keep_alive && first.minor == 1);
        let (second, rest) = parse(&two[used..]).unwrap().unwrap();
        assert_eq!((second.target.as_str(), second.minor), ("/b", 0));
        assert!(!second.keep_alive);
        assert_eq!(used + rest, two.len());
        let asked = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(asked.unwrap().unwrap().0.keep_alive);
        let closing = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!closing.unwrap().unwrap().0.keep_alive);
        // Not all there yet: wait for more, also for a body.
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost:"), Ok(None));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"),
            Ok(None)
        );
        let with_body = parse(b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabcGET");
        assert_eq!(with_body.unwrap().unwrap().1, 44);
    }

    #[test]
    fn ambiguous_framing_and_bad_heads_are_refused() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"),
            413
        );
        assert_eq!(status(b"GET /\xff\xfe HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"GET  HTTP/1.1\r\n\r\n"), 400);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(200));
        assert_eq!(status(many.as_bytes()), 431);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(status(long.as_bytes()), 431);
    }

    #[test]
    fn targets_become_urls_with_the_raw_query_kept() {
        let peer: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        let local = Some("127.0.0.1:6969".parse().unwrap());
        let (head, _) = parse(b"GET /announce?info_hash=%00%FF&x=1 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let req = head.to_request(local, peer).unwrap();
        assert_eq!(req.url().query(), Some("info_hash=%00%FF&x=1"));
        assert_eq!(req.peer_addr(), Some("127.0.0.9:5000"));
        let (odd, _) = parse(b"FROB / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(odd.to_request(local, peer).unwrap_err().status, 501);
        let (star, _) = parse(b"OPTIONS * HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(star.to_request(local, peer).unwrap_err().status, 400);
    }

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
    fn slots_are_capped_per_address_idle_ones_evicted_and_given_back() {
        let slots = Slots::default();
        let one = IpAddr::from([10, 0, 0, 1]);
        let mut held: Vec<Slot> = (0..MAX_PER_ADDRESS)
            .map(|_| slots.take(one, None).unwrap())
            .collect();
        assert!(slots.take(one, None).is_none());
        assert!(slots.take(IpAddr::from([10, 0, 0, 2]), None).is_some());
        held.pop();
        held.push(slots.take(one, None).unwrap());
        // At the cap, an idle connection makes room for a new one (once).
        held[7].set_idle(true);
        let newer = slots.take(one, None).unwrap();
        assert!(slots.take(one, None).is_none());
        assert_eq!(lock(&slots.0).total, MAX_PER_ADDRESS);
        drop(held.remove(7)); // the evicted one ends later: nothing to give back twice
        assert_eq!(lock(&slots.0).total, MAX_PER_ADDRESS);
        assert!(slots.take(one, None).is_none());
        drop(newer);
        drop(held);
        assert_eq!(lock(&slots.0).per_address.len(), 0);
        assert_eq!(lock(&slots.0).total, 0);
    }
}
