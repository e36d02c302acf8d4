//! Talking to the tracker: `started`, then an announce every interval, `completed` when the
//! last piece is verified, `stopped` on the way out. Trackers are tried in order (BEP 12
//! tiers, flattened) and the first that answers is kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rt::io::ReadExt;

use super::torrent::Torrent;
use crate::proto::tracker::{AnnounceRequest, AnnounceResponse, Event};

/// Time allowed for one announce.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest tracker answer we read (a 200-peer dictionary list is ~15 KiB).
const MAX_BODY: u64 = 1024 * 1024;
/// Peers asked for per announce.
const NUMWANT: u32 = 80;
/// Announce interval while a download has no peer at all.
const LONELY_INTERVAL: Duration = Duration::from_secs(10);
/// Retry delays after every tracker failed: 2 s, 4 s, ... up to a minute.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The tracker side of one torrent.
pub struct Announcer {
    torrent: Arc<Torrent>,
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
}

/// Why an announce failed.
pub type AnnounceError = String;

impl Announcer {
    /// An announcer for `torrent`, listening on `port`, using `trackers` in order.
    pub fn new(torrent: Arc<Torrent>, trackers: Vec<String>, port: u16) -> Arc<Announcer> {
        let key = format!("{:08x}", rand::random::<u32>());
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
        })
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
            peer_id: self.torrent.peer_id.0,
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
            return Err("stopped already".into());
        }
        self.announce_now(event).await
    }

    /// Announce `event`, trying each tracker from the current one on; feeds the dialer.
    async fn announce_now(&self, event: Event) -> Result<AnnounceResponse, AnnounceError> {
        if self.trackers.is_empty() {
            return Err("the torrent names no tracker".into());
        }
        let first = *self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut errors = Vec::new();
        for k in 0..self.trackers.len() {
            let i = (first + k) % self.trackers.len();
            let url = &self.trackers[i];
            match announce_to(url, &self.request(event)).await {
                Ok(resp) => {
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = i;
                    if event == Event::Completed {
                        self.owes_completed.store(false, Ordering::SeqCst);
                    }
                    let now = Instant::now();
                    let mut d = self
                        .torrent
                        .dialer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    for p in &resp.peers {
                        d.add(p.addr, now);
                    }
                    drop(d);
                    super::session::dial_due(&self.torrent);
                    self.set_status(format!(
                        "{url}: {} seeders, {} leechers",
                        resp.complete, resp.incomplete
                    ));
                    if let Some(w) = &resp.warning {
                        log::warn!("{url}: {w}");
                    }
                    return Ok(resp);
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        let e = errors.join("; ");
        self.set_status(e.clone());
        Err(e)
    }

    /// Announce until the process ends: `started`, then every interval; `completed` as soon
    /// as the download completes (if it was incomplete at start).
    pub async fn run(self: Arc<Self>) {
        let mut event = Event::Started;
        let mut was_complete = self.torrent.is_complete();
        let mut retry = Duration::from_secs(2);
        loop {
            let wait = match self.announce(event).await {
                Ok(resp) => {
                    event = Event::None;
                    retry = Duration::from_secs(2);
                    let interval = Duration::from_secs(resp.interval.clamp(5, 3600) as u64);
                    // A download with nobody to talk to asks again sooner (respecting the
                    // tracker's minimum), so a late-starting seeder is found quickly.
                    let lonely =
                        !self.torrent.is_complete() && self.torrent.snapshot().peers.is_empty();
                    let floor = Duration::from_secs(resp.min_interval.unwrap_or(5).max(5) as u64);
                    if lonely {
                        interval.min(LONELY_INTERVAL.max(floor))
                    } else {
                        interval
                    }
                }
                Err(_) if self.stopping.load(Ordering::SeqCst) => return,
                Err(e) => {
                    log::warn!("announce failed: {e}");
                    retry = (retry * 2).min(RETRY_MAX);
                    retry
                }
            };
            let until = Instant::now() + wait;
            while Instant::now() < until {
                crate::rt::sleep(Duration::from_millis(250)).await;
                let complete = self.torrent.is_complete();
                if complete && !was_complete {
                    was_complete = true;
                    if event == Event::None {
                        event = Event::Completed;
                    }
                    break;
                }
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

/// A bare `GET` over HTTP/1.0 (`Connection: close`; the body runs to the end of the stream),
/// with the answer's head parsed by `httparse`.
async fn http10_get(url: &str) -> Result<Vec<u8>, String> {
    use crate::rt::io::WriteExt;
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = crate::rt::TcpStream::connect(&addr)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_BODY + 64 * 1024)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let body_at = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("truncated HTTP answer".into()),
        Err(e) => return Err(format!("bad HTTP answer: {e}")),
    };
    match resp.code {
        Some(200..=299) => Ok(raw[body_at..].to_vec()),
        code => Err(format!("HTTP {}", code.unwrap_or(0))),
    }
}

fn client() -> &'static surf::Client {
    static CLIENT: std::sync::OnceLock<surf::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        surf::Config::new()
            .set_timeout(Some(TIMEOUT))
            // One connection per announce: trackers often close theirs after answering, and
            // a pooled connection the tracker closed would fail the next announce.
            .set_http_keep_alive(false)
            .try_into()
            .unwrap_or_default()
    })
}

/// One announce to one tracker.
async fn announce_to(url: &str, req: &AnnounceRequest) -> Result<AnnounceResponse, String> {
    if !url.starts_with("http://") {
        return Err("only http:// trackers are supported".into());
    }
    let full = req.url(url);
    let mut resp = match client().get(&full).header("User-Agent", USER_AGENT).await {
        Ok(r) => r,
        // surf's HTTP/1.1-only backend refuses HTTP/1.0 answers, which opentracker and many
        // small trackers send: ask those again with a plain HTTP/1.0 request.
        Err(e) if e.to_string().contains("Unsupported HTTP version") => {
            let body = crate::rt::timeout(TIMEOUT, http10_get(&full))
                .await
                .map_err(|_| "timed out".to_string())??;
            return AnnounceResponse::parse(&body).map_err(|e| e.to_string());
        }
        // surf wraps the cause in "An error occured while ...: <cause>"; the cause is what
        // a person needs.
        Err(e) => {
            let text = e.to_string();
            return Err(text.rsplit(": ").next().unwrap_or(&text).to_string());
        }
    };
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    resp.take_body()
        .into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    if body.len() as u64 > MAX_BODY {
        return Err("answer larger than 1 MiB".into());
    }
    AnnounceResponse::parse(&body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bitfield::Bitfield;
    use crate::proto::metainfo::Metainfo;
    use crate::swarm::storage::{Access, Storage};
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
        let mut raw = b"d4:infod6:lengthi4e4:name1:a12:piece lengthi16384e6:pieces20:".to_vec();
        raw.extend_from_slice(&[7u8; 20]);
        raw.extend_from_slice(b"ee");
        let meta = Metainfo::from_bytes(&raw).unwrap();
        let storage = Arc::new(Storage::new(dir, &meta, Access::ReadWrite));
        Torrent::new(
            Arc::new(meta),
            storage,
            Bitfield::full(1),
            crate::proto::ids::PeerId(*b"-BT0001-testtesttest"),
            EngineConfig::default(),
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
            while seen.events.lock().unwrap().is_empty() {
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
}
