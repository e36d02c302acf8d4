//! Talking to the tracker: `started`, then an announce every interval, `completed` when the
//! last piece is verified, `stopped` on the way out. Trackers are tried in order (BEP 12
//! tiers, flattened) and the first that answers is kept; one that fails or stalls is skipped
//! for the next.
//!
//! Two transports. `http://`: one `GET` per announce, over a kept-alive connection to the
//! same tracker when one is idle (else a new one), read with a byte-level client (`httparse`; `Content-Length`, chunked or to the end of the stream), the
//! whole exchange (connect, head *and* body) under one timeout. `udp://` (BEP 15): a connect
//! exchange for a connection id, kept for its minute and reused, then the announce;
//! each datagram is sent again after 1 s, 2 s, 4 s... (BEP 15's doubling, from 1 s instead of
//! 15 s) and the whole exchange has the same timeout, so a dead tracker costs seconds, not
//! BEP 15's minutes. `https://` is refused by [`check_tracker_url`] when the URL is given (this
//! build has no TLS), not at announce time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rt::io::ReadExt;

use super::torrent::Torrent;
use crate::proto::ids::{InfoHash, PeerId};
use crate::proto::tracker::udp::{self as bep15, UdpError};
use crate::proto::tracker::{AnnounceRequest, AnnounceResponse, Event, PeerEntry, TrackerError};

/// Time allowed for one announce to one tracker: the whole exchange, whatever the transport.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a BEP 15 connection id is reused (BEP 15: one minute).
const UDP_ID_LIFE: Duration = Duration::from_secs(60);
/// First wait before a BEP 15 datagram is sent again; doubled each time.
const UDP_RETRANSMIT: Duration = Duration::from_secs(1);
/// Largest tracker answer we read (a 200-peer dictionary list is ~15 KiB).
const MAX_BODY: u64 = 1024 * 1024;
/// Peers asked for per announce.
const NUMWANT: u32 = 80;
/// Announce interval while a download has no peer at all.
const LONELY_INTERVAL: Duration = Duration::from_secs(10);
/// Retry delays after every tracker failed: 2 s, 4 s, ... up to a minute.
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The next regular announce comes after this share of the interval, at random, up to the
/// whole interval: torrents started together spread out instead of announcing together forever.
const JITTER_FROM: f64 = 0.75;

/// What an [`Announcer`] announces for: a torrent, or a magnet link still fetching its metadata
/// (`swarm::magnet`), which knows its info-hash but not its size.
pub trait AnnounceTarget: Send + Sync {
    /// The torrent's info-hash.
    fn info_hash(&self) -> InfoHash;
    /// Our peer id.
    fn peer_id(&self) -> PeerId;
    /// (downloaded, uploaded) payload bytes.
    fn transferred(&self) -> (u64, u64);
    /// Bytes still missing.
    fn left(&self) -> u64;
    /// Every piece is verified.
    fn is_complete(&self) -> bool;
    /// Still downloading with nobody to talk to: the tracker is asked again sooner.
    fn lonely(&self) -> bool;
    /// Peers the tracker listed: remember them and call them.
    fn add_peers(&self, peers: &[SocketAddr]);
    /// The torrent, when the target is one (not a magnet link's metadata phase).
    fn as_torrent(&self) -> Option<&Arc<Torrent>> {
        None
    }
}

impl AnnounceTarget for Arc<Torrent> {
    fn info_hash(&self) -> InfoHash {
        Torrent::info_hash(self)
    }
    fn peer_id(&self) -> PeerId {
        self.peer_id
    }
    fn transferred(&self) -> (u64, u64) {
        Torrent::transferred(self)
    }
    fn left(&self) -> u64 {
        Torrent::left(self)
    }
    fn is_complete(&self) -> bool {
        Torrent::is_complete(self)
    }
    fn lonely(&self) -> bool {
        !Torrent::is_complete(self) && self.snapshot().peers.is_empty()
    }
    fn add_peers(&self, peers: &[SocketAddr]) {
        let now = Instant::now();
        let mut d = self.dialer.lock().unwrap_or_else(|e| e.into_inner());
        for p in peers {
            d.add(*p, super::dialer::Source::Tracker, now);
        }
        drop(d);
        super::session::dial_due(self);
        self.wake_up();
    }
    fn as_torrent(&self) -> Option<&Arc<Torrent>> {
        Some(self)
    }
}

/// The tracker side of one torrent.
pub struct Announcer {
    torrent: Box<dyn AnnounceTarget>,
    trackers: Vec<String>,
    port: u16,
    key: String,
    /// Index of the tracker that answered last.
    current: Mutex<usize>,
    /// What the last announce said, for the display.
    status: Mutex<String>,
    /// Held while an announce is under way: one at a time, so that `stopped` never overtakes
    /// a `completed` still on its way (the tracker would list us again after we left).
    one_at_a_time: crate::rt::AsyncMutex<()>,
    /// Set by [`Announcer::stopped`]: nothing else is announced after it.
    stopping: AtomicBool,
    /// The download was incomplete at start and no `completed` has been sent yet.
    owes_completed: AtomicBool,
    /// BEP 15 connection ids by tracker address, with when each was issued.
    udp_ids: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
    /// Time allowed for one tracker ([`TIMEOUT`]; tests shorten it).
    timeout: Duration,
    /// A `started` was answered: later announces carry no event (or `completed`).
    announced: AtomicBool,
    /// The wait before the next try after every tracker failed.
    retry: Mutex<Duration>,
    /// Its deadline in the [`AnnounceQueue`](super::announce_queue::AnnounceQueue).
    pub(crate) slot: super::schedule::Slot,
}

/// Why an announce failed. Callers decide on the variant, never on the text.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The torrent (and the command line) name no tracker.
    #[error("the torrent names no tracker")]
    NoTracker,
    /// [`Announcer::stopped`] ran: nothing is announced after it.
    #[error("stopped already")]
    Stopped,
    /// A scheme bt does not announce to.
    #[error("tracker URL `{0}` is not supported: bt announces to http://HOST:PORT/... and udp://HOST:PORT")]
    UnsupportedScheme(String),
    /// An `https://` tracker: this build has no TLS client.
    #[error("tracker URL `{0}`: https:// trackers are not supported (this build has no TLS); use an http:// or udp:// tracker")]
    Https(String),
    /// The URL has no usable host and port.
    #[error("tracker URL `{0}` should look like http://HOST:PORT/announce or udp://HOST:PORT")]
    BadUrl(String),
    /// A socket operation failed; `what` says which.
    #[error("{what}: {source}")]
    Io {
        /// What was being done ("connect to 127.0.0.1:6969", ...).
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The whole exchange took longer than the announce timeout.
    #[error("no complete answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
    /// An HTTP status other than 2xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// The HTTP answer's framing is unusable.
    #[error("bad HTTP answer: {0}")]
    Http(String),
    /// More than [`MAX_BODY`] bytes.
    #[error("answer larger than 1 MiB")]
    TooLarge,
    /// The tracker refused, or its bencoded answer is unusable.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// A BEP 15 answer that cannot be read.
    #[error("bad UDP answer: {0}")]
    Udp(#[from] UdpError),
    /// The BEP 15 tracker answered with an error.
    #[error("tracker refused: {0}")]
    UdpRefused(String),
    /// One tracker's failure, with its URL.
    #[error("{url}: {source}")]
    At {
        /// The announce URL.
        url: String,
        /// What went wrong there.
        source: Box<AnnounceError>,
    },
    /// Every tracker failed; one entry each, in the order tried.
    #[error("{}", join(.0))]
    All(Vec<AnnounceError>),
}

fn join(errors: &[AnnounceError]) -> String {
    let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    texts.join("; ")
}

/// The transport for `url`, or why bt cannot announce there. Call this where a tracker URL is
/// given (`bt create`, `bt edit`, `--tracker`) so an unusable one is refused at once.
pub fn check_tracker_url(url: &str) -> Result<(), AnnounceError> {
    transport(url).map(|_| ())
}

/// How to reach a tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Transport {
    /// HTTP: `host:port` (port 80 when absent).
    Http { host: String },
    /// BEP 15: `host:port`.
    Udp { host: String },
}

fn transport(url: &str) -> Result<Transport, AnnounceError> {
    let bad = || AnnounceError::BadUrl(url.to_string());
    if url.starts_with("https://") {
        return Err(AnnounceError::Https(url.to_string()));
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        let host = with_port(host, 80).ok_or_else(bad)?;
        return Ok(Transport::Http { host });
    }
    if let Some(rest) = url.strip_prefix("udp://") {
        let host = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        // BEP 15 has no default port.
        let (_, port) = host.rsplit_once(':').ok_or_else(bad)?;
        if port.parse::<u16>().map_or(true, |p| p == 0) || host.starts_with(':') {
            return Err(bad());
        }
        return Ok(Transport::Udp {
            host: host.to_string(),
        });
    }
    Err(AnnounceError::UnsupportedScheme(url.to_string()))
}

/// `host` with `:port` added when it has none; `None` for an empty host or a bad port.
fn with_port(host: &str, default: u16) -> Option<String> {
    if host.is_empty() || host.starts_with(':') || host.contains(['@', ' ']) {
        return None;
    }
    let has_port = match host.rfind(':') {
        // `[::1]` alone has colons but no port.
        Some(i) => !host[i..].contains(']'),
        None => false,
    };
    if has_port {
        let port = &host[host.rfind(':')? + 1..];
        return port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .map(|_| host.into());
    }
    Some(format!("{host}:{default}"))
}

impl Announcer {
    /// An announcer for `torrent`, listening on `port`, using `trackers` in order.
    pub fn new(torrent: Arc<Torrent>, trackers: Vec<String>, port: u16) -> Arc<Announcer> {
        Announcer::for_target(Box::new(torrent), trackers, port)
    }

    /// An announcer for any [`AnnounceTarget`] (a magnet link's metadata phase).
    pub fn for_target(
        torrent: Box<dyn AnnounceTarget>,
        trackers: Vec<String>,
        port: u16,
    ) -> Arc<Announcer> {
        let key = format!("{:08x}", rand::random::<u32>());
        // Said once here; each announce then skips it at once (no stall).
        for url in &trackers {
            if let Err(e) = check_tracker_url(url) {
                log::warn!("{}", crate::ui::escape(&e.to_string()));
            }
        }
        Arc::new(Announcer {
            owes_completed: AtomicBool::new(!torrent.is_complete()),
            torrent,
            trackers,
            port,
            key,
            current: Mutex::new(0),
            status: Mutex::new("not announced yet".into()),
            one_at_a_time: crate::rt::AsyncMutex::new(()),
            stopping: AtomicBool::new(false),
            udp_ids: Mutex::new(HashMap::new()),
            timeout: TIMEOUT,
            announced: AtomicBool::new(false),
            retry: Mutex::new(RETRY_FIRST),
            slot: Default::default(),
        })
    }

    /// The torrent this announces (`None` for a magnet link's metadata phase).
    pub fn torrent(&self) -> Option<&Arc<Torrent>> {
        self.torrent.as_torrent()
    }

    /// Announce nothing more but `stopped` (see [`Announcer::stopped`]).
    pub fn stop_announcing(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The last announce's outcome, one line.
    pub fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_status(&self, s: String) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    fn request(&self, event: Event) -> AnnounceRequest {
        let (downloaded, uploaded) = self.torrent.transferred();
        AnnounceRequest {
            info_hash: self.torrent.info_hash().0,
            peer_id: self.torrent.peer_id().0,
            port: self.port,
            uploaded,
            downloaded,
            left: self.torrent.left(),
            event,
            compact: true,
            no_peer_id: true,
            numwant: Some(if event == Event::Stopped { 0 } else { NUMWANT }),
            key: Some(self.key.clone()),
            ip: None,
        }
    }

    /// Announce `event` (after any announce under way; none after [`Announcer::stopped`]).
    pub async fn announce(&self, event: Event) -> Result<AnnounceResponse, AnnounceError> {
        let _turn = self.one_at_a_time.lock().await;
        if self.stopping.load(Ordering::SeqCst) {
            return Err(AnnounceError::Stopped);
        }
        self.announce_now(event).await
    }

    /// Announce `event`, trying each tracker from the current one on; feeds the dialer.
    async fn announce_now(&self, event: Event) -> Result<AnnounceResponse, AnnounceError> {
        if self.trackers.is_empty() {
            return Err(AnnounceError::NoTracker);
        }
        let first = *self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut errors = Vec::new();
        for k in 0..self.trackers.len() {
            let i = (first + k) % self.trackers.len();
            let url = &self.trackers[i];
            let req = self.request(event);
            let attempt = crate::rt::timeout(self.timeout, self.announce_to(url, &req)).await;
            match attempt.unwrap_or(Err(AnnounceError::Timeout(self.timeout))) {
                Ok(resp) => {
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = i;
                    if event == Event::Completed {
                        self.owes_completed.store(false, Ordering::SeqCst);
                    }
                    let peers: Vec<SocketAddr> = resp.peers.iter().map(|p| p.addr).collect();
                    self.torrent.add_peers(&peers);
                    self.set_status(format!(
                        "{}: {} seeders, {} leechers",
                        crate::ui::escape(url),
                        resp.complete,
                        resp.incomplete
                    ));
                    if let Some(w) = &resp.warning {
                        log::warn!("{}: {}", crate::ui::escape(url), crate::ui::escape(w));
                    }
                    return Ok(resp);
                }
                Err(e) => errors.push(AnnounceError::At {
                    url: url.clone(),
                    source: Box::new(e),
                }),
            }
        }
        let e = AnnounceError::All(errors);
        self.set_status(crate::ui::escape(&e.to_string()).into_owned());
        Err(e)
    }

    /// Whether the download completed and the tracker has not been told yet.
    pub fn owes_completed(&self) -> bool {
        self.owes_completed.load(Ordering::SeqCst) && self.torrent.is_complete()
    }

    /// One announce of the [`AnnounceQueue`](super::announce_queue::AnnounceQueue): `started`
    /// until one is answered, `completed` once the download completes (if it was incomplete at
    /// start), otherwise none. Returns the wait before the next (`None` after
    /// [`Announcer::stopped`]): the tracker's interval with jitter, sooner while a download has
    /// nobody to talk to, at once while a `completed` is owed, and growing retry delays while
    /// every tracker fails.
    pub async fn turn(&self) -> Option<Duration> {
        if self.stopping.load(Ordering::SeqCst) {
            return None; // paused, or the torrent or the process stopped
        }
        let event = if !self.announced.load(Ordering::SeqCst) {
            Event::Started
        } else if self.owes_completed() {
            Event::Completed
        } else {
            Event::None
        };
        let retry = || self.retry.lock().unwrap_or_else(|e| e.into_inner());
        match self.announce(event).await {
            Ok(resp) => {
                self.announced.store(true, Ordering::SeqCst);
                *retry() = RETRY_FIRST;
                if self.owes_completed() {
                    return Some(Duration::ZERO);
                }
                let floor = Duration::from_secs(resp.min_interval.unwrap_or(5).max(5) as u64);
                let interval = Duration::from_secs(resp.interval.clamp(5, 3600) as u64);
                let jittered = interval
                    .mul_f64(rand::Rng::gen_range(
                        &mut rand::thread_rng(),
                        JITTER_FROM..=1.0,
                    ))
                    .max(floor);
                // A download with nobody to talk to asks again sooner (respecting the
                // tracker's minimum), so a late-starting seeder is found quickly.
                let lonely = self.torrent.lonely();
                Some(match lonely {
                    true => jittered.min(LONELY_INTERVAL.max(floor)),
                    false => jittered,
                })
            }
            Err(_) if self.stopping.load(Ordering::SeqCst) => None,
            // A trackerless torrent: its peers come from the DHT, LSD or --peer.
            Err(AnnounceError::NoTracker) => None,
            Err(e) => {
                log::warn!("announce failed: {}", crate::ui::escape(&e.to_string()));
                let mut r = retry();
                let wait = *r;
                *r = (wait * 2).min(RETRY_MAX);
                Some(wait)
            }
        }
    }

    /// Stop announcing for a while (the torrent is paused): the queue drops it and the
    /// tracker is told `stopped`. [`Announcer::resume`] starts again.
    pub async fn pause(&self) {
        self.stopped().await;
    }

    /// Start announcing again after [`Announcer::pause`], with `started`, in the process's
    /// announce queue.
    pub fn resume(self: &Arc<Self>) {
        self.stopping.store(false, Ordering::SeqCst);
        self.announced.store(false, Ordering::SeqCst);
        if let Some(t) = self.torrent() {
            t.shared.announces.add(self);
        }
    }

    /// Announce on a loop of its own until [`Announcer::stopped`]: for a magnet link's
    /// metadata phase, which is not in the process's announce queue.
    pub async fn run(self: Arc<Self>) {
        while let Some(wait) = self.turn().await {
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                crate::rt::sleep(Duration::from_millis(250).min(wait)).await;
            }
        }
    }

    /// Tell the tracker we leave (bounded wait: a dead tracker must not hold up the exit),
    /// after the announce under way if any, and after a `completed` not sent yet: the
    /// tracker then counts the download and does not list us again.
    pub async fn stopped(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = crate::rt::timeout(Duration::from_secs(3), async {
            let _turn = self.one_at_a_time.lock().await;
            if self.torrent.is_complete() && self.owes_completed.load(Ordering::SeqCst) {
                let _ = self.announce_now(Event::Completed).await;
            }
            self.announce_now(Event::Stopped).await
        })
        .await;
    }
}

/// Our User-Agent header.
const USER_AGENT: &str = concat!("bt/", env!("CARGO_PKG_VERSION"));

impl Announcer {
    /// One announce to one tracker (the caller bounds the time).
    async fn announce_to(
        &self,
        url: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, AnnounceError> {
        match transport(url)? {
            Transport::Http { host } => {
                let full = req.url(url);
                // What follows `http://host:port`: the path and the query.
                let rest = &full["http://".len() + host_len(url)..];
                let path_and_query = match rest.starts_with('/') {
                    true => rest.to_string(),
                    false => format!("/{rest}"),
                };
                let body = http_get(&host, &path_and_query).await?;
                Ok(AnnounceResponse::parse(&body)?)
            }
            Transport::Udp { host } => self.udp_announce(&host, req).await,
        }
    }

    /// A BEP 15 announce to `host` (`name:port`).
    async fn udp_announce(
        &self,
        host: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, AnnounceError> {
        let addr = resolve(host).await?;
        let local = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let io = |what: String| move |source| AnnounceError::Io { what, source };
        let socket = crate::rt::UdpSocket::bind(local)
            .await
            .map_err(io(format!("bind a UDP socket for {addr}")))?;
        socket
            .connect(addr)
            .await
            .map_err(io(format!("connect to {addr}")))?;
        let cached = {
            let ids = self.udp_ids.lock().unwrap_or_else(|e| e.into_inner());
            ids.get(&addr)
                .filter(|(_, at)| at.elapsed() < UDP_ID_LIFE)
                .map(|(id, _)| *id)
        };
        // With a cached id, one more try with a fresh one if the tracker refuses it (its
        // minute may be over on the tracker's clock).
        for fresh in [cached.is_none(), true] {
            let connection_id = match (fresh, cached) {
                (false, Some(id)) => id,
                _ => {
                    let id = udp_connect(&socket, addr).await?;
                    self.udp_ids
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(addr, (id, Instant::now()));
                    id
                }
            };
            let request = bep15::Request::Announce(bep15::Announce {
                connection_id,
                transaction_id: rand::random(),
                request: req.clone(),
            });
            match udp_exchange(&socket, addr, &request).await? {
                bep15::Response::Announce {
                    interval,
                    leechers,
                    seeders,
                    peers,
                    ..
                } => {
                    return Ok(AnnounceResponse {
                        interval,
                        min_interval: None,
                        complete: seeders,
                        incomplete: leechers,
                        peers: peers
                            .into_iter()
                            .map(|addr| PeerEntry {
                                addr,
                                peer_id: None,
                            })
                            .collect(),
                        warning: None,
                    })
                }
                bep15::Response::Error { message, .. } if !fresh => {
                    log::debug!("{addr}: {}; connecting again", crate::ui::escape(&message));
                    self.udp_ids
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&addr);
                }
                bep15::Response::Error { message, .. } => {
                    return Err(AnnounceError::UdpRefused(message))
                }
                _ => return Err(UdpError::UnknownAction(u32::MAX).into()),
            }
        }
        Err(AnnounceError::UdpRefused(
            "connection id refused twice".into(),
        ))
    }
}

/// Length of the `host[:port]` part of an `http://` URL.
fn host_len(url: &str) -> usize {
    let rest = &url["http://".len().min(url.len())..];
    rest.find(['/', '?']).unwrap_or(rest.len())
}

/// The first address of `host` (`name:port`), looked up on the blocking pool.
async fn resolve(host: &str) -> Result<SocketAddr, AnnounceError> {
    let name = host.to_string();
    let found = crate::rt::spawn_blocking(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&name).map(|mut a| a.next())
    })
    .await;
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(AnnounceError::Io {
            what: format!("look up {host}"),
            source: std::io::ErrorKind::NotFound.into(),
        }),
        Err(source) => Err(AnnounceError::Io {
            what: format!("look up {host}"),
            source,
        }),
    }
}

/// A BEP 15 connect exchange: the connection id.
async fn udp_connect(
    socket: &crate::rt::UdpSocket,
    addr: SocketAddr,
) -> Result<u64, AnnounceError> {
    let request = bep15::Request::Connect {
        transaction_id: rand::random(),
    };
    match udp_exchange(socket, addr, &request).await? {
        bep15::Response::Connect { connection_id, .. } => Ok(connection_id),
        bep15::Response::Error { message, .. } => Err(AnnounceError::UdpRefused(message)),
        _ => Err(UdpError::UnknownAction(u32::MAX).into()),
    }
}

/// Send `request` until an answer with its transaction id arrives: again after 1 s, 2 s, 4 s,
/// ... (the caller's timeout ends it). Datagrams with another transaction id are ignored.
async fn udp_exchange(
    socket: &crate::rt::UdpSocket,
    addr: SocketAddr,
    request: &bep15::Request,
) -> Result<bep15::Response, AnnounceError> {
    let mut datagram = Vec::with_capacity(bep15::ANNOUNCE_LEN);
    request.encode(&mut datagram);
    let tid = bep15::request_header(&datagram).map_or(0, |(_, t)| t);
    let io = |what: &str, source| AnnounceError::Io {
        what: format!("{what} {addr}"),
        source,
    };
    let mut wait = UDP_RETRANSMIT;
    let mut buf = vec![0u8; bep15::MAX_DATAGRAM];
    loop {
        socket.send(&datagram).await.map_err(|e| io("send to", e))?;
        let answer = crate::rt::timeout(wait, async {
            loop {
                let n = socket
                    .recv(&mut buf)
                    .await
                    .map_err(|e| io("receive from", e))?;
                let got = bep15::Response::parse(&buf[..n], addr.is_ipv6());
                match got {
                    Ok(r) if r.transaction_id() == tid => return Ok(r),
                    Ok(_) => continue,
                    // A stray or damaged datagram: wait for the real answer.
                    Err(e) => log::debug!("{addr}: {e}"),
                }
            }
        })
        .await;
        match answer {
            Ok(result) => return result,
            Err(_) => wait = wait.saturating_mul(2),
        }
    }
}

/// Most kept-alive tracker connections held idle, all trackers together.
const MAX_IDLE: usize = 2 * super::announce_queue::IN_FLIGHT;
/// An idle tracker connection older than this is not reused (bt's tracker closes them after
/// 10 s; a connection closed meanwhile costs a second try on a new one).
const IDLE_REUSE: Duration = Duration::from_secs(5);

/// Kept-alive connections to HTTP trackers, by `host:port`, with when each was last used:
/// announces of many torrents to one tracker reuse a few connections instead of opening one
/// each (a tracker may cap connections per address).
static IDLE: Mutex<Vec<(String, crate::rt::TcpStream, Instant)>> = Mutex::new(Vec::new());

fn idle() -> std::sync::MutexGuard<'static, Vec<(String, crate::rt::TcpStream, Instant)>> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A kept-alive connection to `host` young enough to reuse (older ones are dropped).
fn take_idle(host: &str) -> Option<crate::rt::TcpStream> {
    let mut idle = idle();
    idle.retain(|(_, _, at)| at.elapsed() < IDLE_REUSE);
    let at = idle.iter().rposition(|(h, _, _)| h == host)?;
    Some(idle.swap_remove(at).1)
}

fn put_idle(host: &str, stream: crate::rt::TcpStream) {
    let mut idle = idle();
    if idle.len() >= MAX_IDLE {
        idle.remove(0);
    }
    idle.push((host.to_string(), stream, Instant::now()));
}

/// A `GET` of `path` on `host` (`name:port`) over HTTP/1.1, on a kept-alive connection to it
/// when one is idle (else a new one); the body is read by `Content-Length`, chunked, or to the
/// end of the stream, at most [`MAX_BODY`]. The caller bounds the time of the whole exchange.
async fn http_get(host: &str, path: &str) -> Result<Vec<u8>, AnnounceError> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept-Encoding: identity\r\n\r\n"
    );
    if let Some(stream) = take_idle(host) {
        // Closed by the tracker before it answered anything: try once on a new connection.
        if let Some(answer) = exchange(stream, host, &head).await? {
            return Ok(answer);
        }
    }
    let stream = crate::rt::TcpStream::connect(host)
        .await
        .map_err(|source| AnnounceError::Io {
            what: format!("connect to {host}"),
            source,
        })?;
    exchange(stream, host, &head)
        .await?
        .ok_or_else(|| AnnounceError::Io {
            what: format!("talk to {host}"),
            source: std::io::ErrorKind::UnexpectedEof.into(),
        })
}

/// Send `head` on `stream` and read the answer's body; `None` when the connection failed or
/// ended before any byte of an answer. The connection is kept for reuse when the answer allows.
async fn exchange(
    mut stream: crate::rt::TcpStream,
    host: &str,
    head: &str,
) -> Result<Option<Vec<u8>>, AnnounceError> {
    use crate::rt::io::WriteExt;
    if stream.write_all(head.as_bytes()).await.is_err() {
        return Ok(None);
    }
    let io = |source| AnnounceError::Io {
        what: format!("talk to {host}"),
        source,
    };
    let limit = MAX_BODY as usize + 64 * 1024;
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) if raw.is_empty() => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if n == 0 && raw.is_empty() {
            return Ok(None);
        }
        raw.extend_from_slice(&chunk[..n]);
        if n == 0 || raw.len() > limit {
            return body_of(&raw, true).map(Some);
        }
        // Done as soon as the framing says so (a server may keep the connection open).
        if let Ok(body) = body_of(&raw, false) {
            if reusable(&raw) {
                put_idle(host, stream);
            }
            return Ok(Some(body));
        }
    }
}

/// Whether the connection of the complete answer `raw` may carry another request: HTTP/1.1
/// without `Connection: close`, framed by `Content-Length`, with nothing after the body.
fn reusable(raw: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(at)) = resp.parse(raw) else {
        return false;
    };
    let value = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let closes = value("connection").is_some_and(|v| v.contains("close"));
    let length = value("content-length").and_then(|v| v.parse::<usize>().ok());
    resp.version == Some(1)
        && !closes
        && value("transfer-encoding").is_none()
        && length.is_some_and(|len| raw.len() == at + len)
}

/// The body of a complete HTTP answer in `raw`, or an error (with `ended` false, an error may
/// only mean "not all here yet").
fn body_of(raw: &[u8], ended: bool) -> Result<Vec<u8>, AnnounceError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let at = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(AnnounceError::Http("truncated head".into())),
        Err(e) => return Err(AnnounceError::Http(e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    if !(200..=299).contains(&code) {
        return Err(AnnounceError::Status(code));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let rest = &raw[at..];
    let chunked = header("transfer-encoding")
        .iter()
        .any(|v| v.contains("chunked"));
    let lengths = header("content-length");
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = lengths.first() {
        if lengths.iter().any(|l| l != len) {
            return Err(AnnounceError::Http("conflicting Content-Length".into()));
        }
        let len: usize = len
            .parse()
            .map_err(|_| AnnounceError::Http("bad Content-Length".into()))?;
        if len as u64 > MAX_BODY {
            return Err(AnnounceError::TooLarge);
        }
        if rest.len() < len {
            return Err(AnnounceError::Http("truncated body".into()));
        }
        rest[..len].to_vec()
    } else if ended {
        rest.to_vec()
    } else {
        return Err(AnnounceError::Http("body not ended yet".into()));
    };
    if body.len() as u64 > MAX_BODY {
        return Err(AnnounceError::TooLarge);
    }
    Ok(body)
}

/// Decode a chunked body that is complete in `raw`.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, AnnounceError> {
    let bad = |why: &str| AnnounceError::Http(format!("chunked body: {why}"));
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated"))?;
        let size_text = std::str::from_utf8(&raw[..line_end]).map_err(|_| bad("bad size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad size"))?;
        if size as u64 > MAX_BODY || out.len() + size > MAX_BODY as usize {
            return Err(AnnounceError::TooLarge);
        }
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err(bad("truncated"));
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::EngineConfig;
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;

    /// What the fake tracker saw: each request's `event` ("" for none), and the most
    /// requests it had under way at once.
    #[derive(Default)]
    struct Seen {
        events: Mutex<Vec<String>>,
        now: AtomicUsize,
        most: AtomicUsize,
    }

    /// A tracker on 127.0.0.1 that takes `slow` to answer each announce.
    fn fake_tracker(slow: Duration) -> (String, Arc<Seen>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let s = Arc::clone(&seen);
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let n = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                    s.most.fetch_max(n, Ordering::SeqCst);
                    let line = String::from_utf8_lossy(&head).into_owned();
                    let event = line
                        .split(['?', '&', ' '])
                        .find_map(|kv| kv.strip_prefix("event="))
                        .unwrap_or("")
                        .to_string();
                    s.events.lock().unwrap().push(event);
                    std::thread::sleep(slow);
                    // Done before answering, so the next request cannot find it still counted.
                    s.now.fetch_sub(1, Ordering::SeqCst);
                    let body = b"d8:intervali30e5:peers0:e";
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(body);
                });
            }
        });
        (url, seen)
    }

    /// A one-piece torrent, complete (as far as it knows: nothing is read).
    fn torrent(dir: &std::path::Path) -> Arc<Torrent> {
        crate::swarm::torrent::one_piece_for_tests(
            dir,
            crate::swarm::Shared::new(&EngineConfig::default()),
        )
    }

    #[test]
    fn stopped_waits_for_an_announce_under_way_and_ends_them() {
        let dir = tempfile::tempdir().unwrap();
        let (url, seen) = fake_tracker(Duration::from_millis(300));
        let a = Announcer::new(torrent(dir.path()), vec![url], 6881);
        // As if the download had been incomplete at start.
        a.owes_completed.store(true, Ordering::SeqCst);
        crate::rt::block_on(async {
            let a2 = Arc::clone(&a);
            let completed = crate::rt::spawn(async move { a2.announce(Event::Completed).await });
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.events.lock().unwrap().is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "the fake tracker saw no announce"
                );
                crate::rt::sleep(Duration::from_millis(5)).await;
            }
            // `completed` is at the tracker, unanswered: `stopped` must wait its turn.
            a.stopped().await;
            assert!(completed.await.is_ok());
            assert_eq!(seen.most.load(Ordering::SeqCst), 1, "two announces at once");
            // Nothing is announced after `stopped` (the announce loop ends on this).
            assert!(a.announce(Event::None).await.is_err());
        });
        // `completed` went once: `stopped` owed none after it.
        assert_eq!(*seen.events.lock().unwrap(), ["completed", "stopped"]);
    }

    #[test]
    fn stopped_sends_the_completed_still_owed_first() {
        let dir = tempfile::tempdir().unwrap();
        let (url, seen) = fake_tracker(Duration::ZERO);
        let a = Announcer::new(torrent(dir.path()), vec![url.clone()], 6881);
        a.owes_completed.store(true, Ordering::SeqCst);
        crate::rt::block_on(a.stopped());
        assert_eq!(*seen.events.lock().unwrap(), ["completed", "stopped"]);
        // Complete from the start: nothing owed.
        let b = Announcer::new(torrent(dir.path()), vec![url], 6881);
        crate::rt::block_on(b.stopped());
        assert_eq!(
            *seen.events.lock().unwrap(),
            ["completed", "stopped", "stopped"]
        );
    }

    /// A tracker on 127.0.0.1 that keeps connections alive (HTTP/1.1, `Content-Length`):
    /// counts the connections it accepted and the requests it answered.
    fn keep_alive_tracker() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        let (conns, reqs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, r) = (Arc::clone(&conns), Arc::clone(&reqs));
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                std::thread::spawn(move || loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if conn.read(&mut byte).unwrap_or(0) != 1 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let body = b"d8:intervali30e5:peers0:e";
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(body);
                });
            }
        });
        (url, conns, reqs)
    }

    #[test]
    fn announces_of_many_torrents_reuse_a_kept_alive_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conns, reqs) = keep_alive_tracker();
        let all: Vec<_> = (0..20)
            .map(|_| Announcer::new(torrent(dir.path()), vec![url.clone()], 6881))
            .collect();
        crate::rt::block_on(async {
            for a in &all {
                a.announce(Event::Started).await.unwrap();
            }
            // One after the other: all over one connection.
            assert_eq!(conns.load(Ordering::SeqCst), 1);
            // `stopped` for all, 32 at a time at most, over the kept connections.
            crate::swarm::announce_queue::stop_all(&all).await;
        });
        assert_eq!(reqs.load(Ordering::SeqCst), 40);
        // Then at most one more per `stopped` under way at once.
        let opened = conns.load(Ordering::SeqCst);
        assert!(opened <= 20, "{opened} connections for 40 announces");
        assert!(all.iter().all(|a| a.stopping.load(Ordering::SeqCst)));
    }

    /// A tracker on 127.0.0.1 that sends an answer's head, then `body` one byte every `gap`
    /// (a long gap: it stalls after the head).
    fn trickling_tracker(body: &'static [u8], gap: Duration) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut byte = [0u8; 1];
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    for b in body {
                        std::thread::sleep(gap);
                        if conn.write_all(&[*b]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    #[test]
    fn a_stalled_or_trickling_body_times_out_and_the_next_tracker_answers() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"d8:intervali30e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
        let stalled = trickling_tracker(body, Duration::from_secs(3600));
        let trickle = trickling_tracker(body, Duration::from_millis(200));
        let (good, seen) = fake_tracker(Duration::ZERO);
        let mut a = Announcer::new(
            torrent(dir.path()),
            vec![stalled.clone(), trickle.clone(), good.clone()],
            6881,
        );
        Arc::get_mut(&mut a).unwrap().timeout = Duration::from_millis(800);
        let started = Instant::now();
        let got = crate::rt::block_on(a.announce(Event::Started));
        let took = started.elapsed();
        assert!(got.is_ok(), "{got:?}");
        assert_eq!(seen.events.lock().unwrap().len(), 1);
        // Two timeouts of 0.8 s, not a stall.
        assert!(took >= Duration::from_millis(1600), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(a.status().starts_with(&good), "{}", a.status());
        // Alone, the stalled tracker is a timeout error that names it.
        let mut b = Announcer::new(torrent(dir.path()), vec![stalled.clone()], 6881);
        Arc::get_mut(&mut b).unwrap().timeout = Duration::from_millis(300);
        let e = crate::rt::block_on(b.announce(Event::None)).unwrap_err();
        let AnnounceError::All(each) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(
            &each[..],
            [AnnounceError::At { url, source }] if *url == stalled && matches!(**source, AnnounceError::Timeout(_))
        ));
    }

    #[test]
    fn http_answers_are_read_by_their_framing() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        assert_eq!(body_of(ok, false).unwrap(), b"abc");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked, false).unwrap(), b"abcde");
        let old = b"HTTP/1.0 200 OK\r\n\r\nbody to the end";
        assert!(body_of(old, false).is_err(), "not ended yet");
        assert_eq!(body_of(old, true).unwrap(), b"body to the end");
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
        assert!(matches!(body_of(two, true), Err(AnnounceError::Http(_))));
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
        assert!(matches!(body_of(huge, true), Err(AnnounceError::TooLarge)));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(body_of(short, true).is_err());
        let status = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            body_of(status, true),
            Err(AnnounceError::Status(404))
        ));
        assert!(matches!(
            body_of(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                true
            ),
            Err(AnnounceError::Http(_))
        ));
    }

    #[test]
    fn tracker_urls_are_checked_when_given() {
        for ok in [
            "http://127.0.0.1:6969/announce",
            "http://tracker.example/announce",
            "http://[::1]:6969/announce",
            "http://t:80",
            "udp://127.0.0.1:6969",
            "udp://tracker.example:1337/announce",
        ] {
            assert!(check_tracker_url(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            check_tracker_url("https://t/announce"),
            Err(AnnounceError::Https(_))
        ));
        for scheme in ["wss://t/announce", "ftp://t", "t:6969/announce", ""] {
            assert!(matches!(
                check_tracker_url(scheme),
                Err(AnnounceError::UnsupportedScheme(_))
            ));
        }
        for bad in [
            "http://",
            "http://:80/a",
            "http://t:0/a",
            "http://t:x/a",
            "udp://t",
            "udp://t:0",
            "udp://:6969",
        ] {
            assert!(
                matches!(check_tracker_url(bad), Err(AnnounceError::BadUrl(_))),
                "{bad}"
            );
        }
        let e = check_tracker_url("https://t/announce")
            .unwrap_err()
            .to_string();
        assert!(e.contains("https:// trackers are not supported"), "{e}");
    }

    /// A BEP 15 tracker on 127.0.0.1 over bt's own table; it counts connects and announces,
    /// and stays silent for the first `drop_first` datagrams (to force retransmits).
    fn fake_udp_tracker(drop_first: usize) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        use crate::modes::tracker::table::{Table, TableLimits};
        use crate::modes::tracker::udp::{answer, ConnectionIds};
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let url = format!("udp://{}/announce", socket.local_addr().unwrap());
        let (connects, announces) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, n) = (Arc::clone(&connects), Arc::clone(&announces));
        std::thread::spawn(move || {
            let mut table = Table::new(
                TableLimits::from(&crate::config::TrackerConfig::default()),
                None,
                Instant::now(),
            );
            let ids = ConnectionIds::new();
            let mut buf = [0u8; 2048];
            let mut seen = 0;
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                seen += 1;
                if seen <= drop_first {
                    continue;
                }
                match bep15::request_header(&buf[..len]) {
                    Some((0, _)) => c.fetch_add(1, Ordering::SeqCst),
                    _ => n.fetch_add(1, Ordering::SeqCst),
                };
                let now = Instant::now();
                // A leecher in the announced torrent, so our seeder gets a peer back.
                if let Some(hash) = buf.get(16..36).filter(|_| len >= 98) {
                    let leecher = AnnounceRequest {
                        left: 5,
                        ..AnnounceRequest::new(hash.try_into().unwrap(), [1; 20], 7000)
                    };
                    let _ = table.announce(&leecher, "127.0.0.9".parse().unwrap(), now);
                }
                if let Some(out) = answer(&mut table, &ids, &buf[..len], from, 0, now) {
                    let _ = socket.send_to(&out, from);
                }
            }
        });
        (url, connects, announces)
    }

    #[test]
    fn udp_announce_reuses_its_connection_id_and_retransmits() {
        let dir = tempfile::tempdir().unwrap();
        let (url, connects, announces) = fake_udp_tracker(1);
        let a = Announcer::new(torrent(dir.path()), vec![url.clone()], 6881);
        let started = Instant::now();
        let first = crate::rt::block_on(a.announce(Event::Started)).unwrap();
        // The first connect was dropped: sent again after a second.
        assert!(
            started.elapsed() >= UDP_RETRANSMIT,
            "{:?}",
            started.elapsed()
        );
        assert_eq!((first.complete, first.incomplete), (1, 1));
        assert_eq!(first.peers.len(), 1);
        assert_eq!(first.peers[0].addr.to_string(), "127.0.0.9:7000");
        crate::rt::block_on(a.announce(Event::None)).unwrap();
        assert_eq!(
            connects.load(Ordering::SeqCst),
            1,
            "connection id not reused"
        );
        assert_eq!(announces.load(Ordering::SeqCst), 2);
        // An id older than its minute is not used again.
        for (_, at) in a.udp_ids.lock().unwrap().values_mut() {
            *at = Instant::now() - UDP_ID_LIFE;
        }
        crate::rt::block_on(a.announce(Event::None)).unwrap();
        assert_eq!(connects.load(Ordering::SeqCst), 2);
        assert!(a.status().contains("1 seeders"), "{}", a.status());
    }

    #[test]
    fn a_silent_udp_tracker_falls_through_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        // Bound but never answering.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dead = format!("udp://{}", silent.local_addr().unwrap());
        let (good, _, announces) = fake_udp_tracker(0);
        let mut a = Announcer::new(torrent(dir.path()), vec![dead.clone(), good], 6881);
        Arc::get_mut(&mut a).unwrap().timeout = Duration::from_millis(1500);
        let started = Instant::now();
        assert!(crate::rt::block_on(a.announce(Event::Started)).is_ok());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(announces.load(Ordering::SeqCst), 1);
        drop(silent);
    }
}
