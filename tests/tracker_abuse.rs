//! `bt tracker` under abuse, all on 127.0.0.0/8: a flood of new torrents past the cap, a
//! thousand slow connections (slowloris) from one address, a request head without end, and
//! garbage; HTTP/1.1 as clients really speak it (pipelining, HTTP/1.0, ambiguous framing);
//! many torrents from one address over keep-alive connections; readers that never read a big
//! listing; and a hostile `/peers` answer printed by `bt peers`. Each time the tracker must
//! keep its memory bounded and go on answering honest announces.

mod common;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bt::proto::tracker::{AnnounceRequest, AnnounceResponse, Event, TrackerError};
use support::{announce, Tracker};

/// The tracker's caps on connections (`src/modes/tracker/http.rs`).
const MAX_PER_ADDRESS: usize = 256;
/// Most peers in one page of `/peers` (`src/modes/tracker/status.rs`).
const MAX_PAGE_PEERS: usize = 1000;
/// Most peers listed per torrent in a page.
const MAX_PEERS_SHOWN: usize = 500;
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an honest announce may take while the tracker is under attack (liveness, not speed).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// The pid of the `bt tracker` started by `t` (its command line names its config file).
fn tracker_pid(t: &Tracker) -> u32 {
    let config = t.dir.path().join("tracker.toml");
    let config = config.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == config.as_bytes()))
        })
        .expect("the tracker's process")
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Raise this process's soft limit on open files to `need` (children inherit it); panic when
/// the hard limit does not allow it.
fn raise_fd_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < need {
            assert!(
                lim.rlim_max >= need,
                "this test needs {need} open files; the hard limit is {}",
                lim.rlim_max
            );
            lim.rlim_cur = need;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// A TCP connection to `to` from loopback address `from` (any port).
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::new(IpAddr::from(from), 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Whether the other side has closed `s` (EOF or reset), without waiting.
fn closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let r = (&*s).read(&mut b);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(0) => true,
        Ok(_) => false, // an answer (none is expected): still open
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// One keep-alive HTTP/1.1 connection: GET, then read one answer by its Content-Length.
struct KeepAlive(TcpStream);

impl KeepAlive {
    fn open(addr: SocketAddr) -> KeepAlive {
        KeepAlive::wrap(TcpStream::connect(addr).unwrap())
    }

    /// A keep-alive connection from loopback address `from`.
    fn open_from(from: [u8; 4], addr: SocketAddr) -> KeepAlive {
        KeepAlive::wrap(connect_from(from, addr).unwrap())
    }

    fn wrap(s: TcpStream) -> KeepAlive {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        KeepAlive(s)
    }

    fn get(&mut self, target: &str) -> Vec<u8> {
        write!(self.0, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let (head, body) = read_answer(&mut self.0);
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        body
    }
}

/// Read one answer framed by its Content-Length: the head (lower case) and the body.
fn read_answer(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("an answer head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap_or_else(|| panic!("no content-length: {head}"))
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

/// Send `raw` on a new connection and read until the tracker closes it (at most 10 s).
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IDLE_TIMEOUT)).unwrap();
    s.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

/// How many answers of `status` (e.g. `b"HTTP/1.1 200 "`) `raw` holds.
fn count(raw: &[u8], status: &[u8]) -> usize {
    raw.windows(status.len()).filter(|w| w == &status).count()
}

/// An honest announce; panics unless it is answered (HTTP 200, no failure) within
/// [`ANSWER_WITHIN`].
fn honest(t: &Tracker, req: &AnnounceRequest) -> AnnounceResponse {
    let start = Instant::now();
    let (status, body) = support::http_get(t.addr, &format!("/announce?{}", req.to_query()))
        .unwrap_or_else(|e| panic!("an honest announce was not answered: {e}"));
    assert!(
        start.elapsed() < ANSWER_WITHIN,
        "an honest announce took {:?}",
        start.elapsed()
    );
    assert_eq!(status, 200);
    AnnounceResponse::parse(&body).unwrap()
}

fn ports(r: &AnnounceResponse) -> Vec<u16> {
    let mut p: Vec<u16> = r.peers.iter().map(|p| p.addr.port()).collect();
    p.sort();
    p
}

#[test]
fn a_flood_of_new_torrents_past_the_cap_is_refused_with_bounded_memory() {
    const CAP: usize = 1000;
    const FLOOD: u32 = 20_000;
    const THREADS: u32 = 4;
    let t = Tracker::start(&format!("[tracker]\nmax_torrents = {CAP}\n"), &[]);
    let pid = tracker_pid(&t);
    honest(&t, &announce(1, 6881, 0, Event::Started));
    honest(&t, &announce(1, 6882, 500, Event::Started));
    let before = rss_kib(pid);

    let addr = t.addr;
    let counts: Vec<(usize, usize)> = (0..THREADS)
        .map(|k| {
            std::thread::spawn(move || {
                let mut conn = KeepAlive::open(addr);
                let (mut accepted, mut refused) = (0, 0);
                for i in (k..FLOOD).step_by(THREADS as usize) {
                    let mut hash = [0xee; 20];
                    hash[..4].copy_from_slice(&i.to_be_bytes());
                    let req = AnnounceRequest {
                        left: 5,
                        event: Event::Started,
                        ..AnnounceRequest::new(hash, *b"-FL0001-flood-flood-", 7000)
                    };
                    let body = conn.get(&format!("/announce?{}", req.to_query()));
                    match AnnounceResponse::parse(&body) {
                        Ok(_) => accepted += 1,
                        Err(TrackerError::Failure(why)) => {
                            assert_eq!(
                                why,
                                format!("tracker full: it tracks {CAP} torrents already")
                            );
                            refused += 1;
                        }
                        Err(e) => panic!("announce {i}: {e}"),
                    }
                }
                (accepted, refused)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let accepted: usize = counts.iter().map(|c| c.0).sum();
    let refused: usize = counts.iter().map(|c| c.1).sum();
    // The swarm made before the flood is one of the CAP torrents.
    assert_eq!((accepted, refused), (CAP - 1, FLOOD as usize - (CAP - 1)));

    let after = rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    let (_, body) = t.get("/peers");
    let snap: bt::modes::tracker::status::Listing = serde_json::from_slice(&body).unwrap();
    assert_eq!(snap.torrent_count, CAP);
    // The swarm that was there still works.
    let r = honest(&t, &announce(1, 6883, 500, Event::Started));
    assert_eq!(ports(&r), [6881, 6882]);
}

#[test]
fn slow_connections_are_capped_per_address_and_closed_when_they_stall() {
    const ATTACK: usize = 1200;
    const ATTACKER: [u8; 4] = [127, 0, 0, 2];
    raise_fd_limit(ATTACK as u64 + 1000);
    let t = Tracker::start("[tracker]\n", &[]);
    honest(&t, &announce(1, 6881, 0, Event::Started));

    // Slowloris: many connections from one address, each with the start of a request.
    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..ATTACK)
        .map(|i| {
            let mut s = connect_from(ATTACKER, t.addr)
                .unwrap_or_else(|e| panic!("attacker connection {i}: {e}"));
            let _ = s.write_all(b"GET /announce?info_hash=");
            s
        })
        .collect();
    // Past the per-address cap, connections are closed at once.
    let open = |slow: &[TcpStream]| slow.iter().filter(|s| !closed(s)).count();
    let settled = common::until(Duration::from_secs(5), || open(&slow) <= MAX_PER_ADDRESS);
    let held = open(&slow);
    assert!(
        settled,
        "{held} connections from one address are held (cap {MAX_PER_ADDRESS})"
    );
    assert!(
        held == MAX_PER_ADDRESS,
        "the tracker holds {held} of the slow connections, expected {MAX_PER_ADDRESS}"
    );

    // While they trickle a byte every 2 s, honest announces are answered, and the slow
    // connections are closed once they have been open for the idle timeout.
    let mut n = 0;
    while open(&slow) > 0 {
        assert!(
            opened.elapsed() < IDLE_TIMEOUT + Duration::from_secs(8),
            "{} slow connections still open after {:?}",
            open(&slow),
            opened.elapsed()
        );
        for s in &mut slow {
            let _ = s.write_all(b"a");
        }
        n += 1;
        let r = honest(&t, &announce(1, 7000 + n, 100, Event::Started));
        assert!(ports(&r).contains(&6881), "{r:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        opened.elapsed() >= IDLE_TIMEOUT - Duration::from_secs(1),
        "slow connections were closed after {:?}, before the idle timeout",
        opened.elapsed()
    );

    // Their slots are free again: the same address is served.
    let mut s = connect_from(ATTACKER, t.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let q = announce(1, 6999, 100, Event::Started).to_query();
    write!(
        s,
        "GET /announce?{q} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{answer:?}");
}

#[test]
fn endless_heads_and_garbage_are_cut_off_and_the_tracker_keeps_answering() {
    let mut t = Tracker::start("[tracker]\n", &[]);
    let pid = tracker_pid(&t);
    honest(&t, &announce(1, 6881, 0, Event::Started));
    let before = rss_kib(pid);

    // A request line that never ends: cut off long before 256 MiB are sent.
    const ENDLESS: usize = 256 << 20;
    let mut s = TcpStream::connect(t.addr).unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    let _ = s.write_all(b"GET /announce?");
    while sent < ENDLESS && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(
        sent < ENDLESS / 4,
        "the tracker read {sent} bytes of one head"
    );
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 16 * 1024, "memory grew by {grown} KiB");

    // Garbage heads are answered with a 4xx at once (no waiting for the idle timeout).
    let garbage: Vec<Vec<u8>> = vec![
        (0..=255u8).chain(*b"\r\n\r\n").collect(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), // a TLS hello
        format!("GET /announce HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(200)).into_bytes(),
        b"GET /announce?\xff\xfe\x80 HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for g in &garbage {
        let mut s = TcpStream::connect(t.addr).unwrap();
        s.set_read_timeout(Some(IDLE_TIMEOUT)).unwrap();
        let start = Instant::now();
        s.write_all(g).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            start.elapsed() < ANSWER_WITHIN,
            "{:?}: held for {:?}",
            String::from_utf8_lossy(g),
            start.elapsed()
        );
        assert!(
            answer.starts_with(b"HTTP/1.1 4"),
            "{:?} was answered {:?}",
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(&answer)
        );
    }

    let r = honest(&t, &announce(1, 6882, 100, Event::Started));
    assert_eq!(ports(&r), [6881]);
    assert!(t.alive());
    let log = t.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// Announce peer `port` of torrent number `n` (`n` spread over the first 4 bytes of the hash).
fn announce_n(n: u32, port: u16, left: u64) -> AnnounceRequest {
    let mut hash = [0xab; 20];
    hash[..4].copy_from_slice(&n.to_be_bytes());
    AnnounceRequest {
        left,
        event: Event::Started,
        numwant: Some(5),
        ..AnnounceRequest::new(hash, *b"-TT0001-keepalive-00", port)
    }
}

#[test]
fn pipelined_and_http_1_0_requests_are_all_answered_in_order() {
    let t = Tracker::start("[tracker]\n", &[]);
    // 60 torrents, so that `/peers?offset=i&limit=1` names request i in its answer.
    let mut conn = KeepAlive::open(t.addr);
    for n in 0..60 {
        let body = conn.get(&format!("/announce?{}", announce_n(n, 6881, 1).to_query()));
        AnnounceResponse::parse(&body).unwrap();
    }

    for depth in [2, 10, 50] {
        let mut s = TcpStream::connect(t.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut batch = String::new();
        for i in 0..depth {
            // Every other request an announce, to mix the kinds of answer.
            match i % 2 {
                0 => batch += &format!("GET /peers?offset={i}&limit=1 HTTP/1.1\r\nHost: t\r\n\r\n"),
                _ => {
                    let q = announce_n(i, 7000, 0).to_query();
                    batch += &format!("GET /announce?{q} HTTP/1.1\r\nHost: t\r\n\r\n");
                }
            }
        }
        s.write_all(batch.as_bytes()).unwrap(); // one write
        for i in 0..depth {
            let (head, body) = read_answer(&mut s);
            assert!(
                head.starts_with("http/1.1 200 "),
                "depth {depth}, answer {i}: {head}"
            );
            match i % 2 {
                0 => {
                    let page: bt::modes::tracker::status::Listing =
                        serde_json::from_slice(&body).unwrap();
                    assert_eq!(
                        page.offset, i as usize,
                        "depth {depth}: answers out of order"
                    );
                    assert_eq!(page.torrents.len(), 1);
                }
                _ => assert!(AnnounceResponse::parse(&body).is_ok(), "answer {i}"),
            }
        }
        // The connection is still open and usable after the batch.
        let mut again = KeepAlive(s);
        again.get("/peers?limit=1");
    }

    // A pipeline whose last request asks to close: every answer, then the end of the stream.
    let q = announce_n(0, 7001, 0).to_query();
    let mut batch = format!("GET /announce?{q} HTTP/1.1\r\n\r\n").repeat(3);
    batch += "GET /scrape HTTP/1.1\r\nConnection: close\r\n\r\nGET /announce HTTP/1.1\r\n\r\n";
    let answer = exchange(t.addr, batch.as_bytes());
    assert_eq!(
        count(&answer, b"HTTP/1.1 200 "),
        4,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // HTTP/1.0: answered, then closed (read_to_end returns) unless keep-alive was asked.
    let q = announce_n(1, 7002, 0).to_query();
    let answer = exchange(
        t.addr,
        format!("GET /announce?{q} HTTP/1.0\r\n\r\n").as_bytes(),
    );
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{answer:?}");
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.contains("connection: close"), "{text}");
    let mut s = TcpStream::connect(t.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for port in [7003, 7004] {
        let q = announce_n(1, port, 0).to_query();
        write!(
            s,
            "GET /announce?{q} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )
        .unwrap();
        let (head, body) = read_answer(&mut s);
        assert!(head.starts_with("http/1.1 200 ") && head.contains("connection: keep-alive"));
        AnnounceResponse::parse(&body).unwrap();
    }
    // A HEAD gets the head alone, with the length the GET would have.
    write!(s, "HEAD /peers?limit=1 HTTP/1.0\r\n\r\n").unwrap();
    let mut head = Vec::new();
    s.read_to_end(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200 ") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
}

#[test]
fn ambiguous_framing_and_bad_request_lines_get_a_400_and_nothing_behind_them_runs() {
    let t = Tracker::start("[tracker]\n", &[]);
    let smuggled = format!(
        "GET /announce?{} HTTP/1.1\r\n\r\n",
        announce_n(9, 6881, 0).to_query()
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"GET /scrape HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n".to_vec(),
            "400 bad request",
        ),
        (
            b"GET /scrape HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n".to_vec(),
            "400 bad request",
        ),
        (
            b"GET /scrape HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                .to_vec(),
            "400 bad request",
        ),
        (
            b"GET /scrape\xff\xfe HTTP/1.1\r\n\r\n".to_vec(),
            "400 bad request",
        ),
        (
            b"GET /scrape?\xc3\x28 HTTP/1.1\r\n\r\n".to_vec(),
            "400 bad request",
        ),
        (b"NONSENSE\r\n\r\n".to_vec(), "400 bad request"),
        (
            b"GET /scrape HTTP/1.1 extra\r\n\r\n".to_vec(),
            "400 bad request",
        ),
        (
            b"GET /scrape HTTP/1.1\r\nbad header\r\n\r\n".to_vec(),
            "400 bad request",
        ),
    ];
    for (raw, want) in &cases {
        // Each with a request behind it that must not be served.
        let mut raw = raw.clone();
        raw.extend_from_slice(smuggled.as_bytes());
        let start = Instant::now();
        let answer = exchange(t.addr, &raw);
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(
            text.starts_with(&format!("http/1.1 {want}")),
            "{:?}: {text:?}",
            String::from_utf8_lossy(&raw)
        );
        assert_eq!(count(&answer, b"HTTP/1.1 "), 1, "{text}");
        assert!(
            start.elapsed() < ANSWER_WITHIN,
            "held for {:?}",
            start.elapsed()
        );
    }
    // The smuggled announce never reached the table.
    let (_, body) = t.get("/peers");
    let snap: bt::modes::tracker::status::Listing = serde_json::from_slice(&body).unwrap();
    assert_eq!(snap.torrent_count, 0);
    honest(&t, &announce(1, 6881, 0, Event::Started));
}

#[test]
fn many_torrents_from_one_address_over_keep_alive_are_never_refused() {
    const FROM: [u8; 4] = [127, 0, 0, 3];
    const TORRENTS: u32 = 1000;
    let t = Tracker::start("[tracker]\n", &[]);

    // One connection, a thousand torrents, each announced twice: none refused.
    let mut one = KeepAlive::open_from(FROM, t.addr);
    for round in 0..2 {
        for n in 0..TORRENTS {
            let body = one.get(&format!(
                "/announce?{}",
                announce_n(n, 6881, round).to_query()
            ));
            let r = AnnounceResponse::parse(&body)
                .unwrap_or_else(|e| panic!("torrent {n}, round {round}: {e}"));
            assert!(r.peers.is_empty(), "the peer is not sent itself");
        }
    }

    // MAX_PER_ADDRESS connections open at once (the first among them), each announcing.
    let mut conns: Vec<KeepAlive> = std::iter::once(one)
        .chain((1..MAX_PER_ADDRESS).map(|_| KeepAlive::open_from(FROM, t.addr)))
        .collect();
    for round in 0..4u32 {
        for (i, c) in conns.iter_mut().enumerate() {
            let n = (round * MAX_PER_ADDRESS as u32 + i as u32) % TORRENTS;
            let body = c.get(&format!("/announce?{}", announce_n(n, 6882, 5).to_query()));
            AnnounceResponse::parse(&body).unwrap_or_else(|e| panic!("torrent {n}: {e}"));
        }
    }
    // The cap is on connections open at once: one more from the address makes the tracker
    // close one of the idle ones (all are, between requests) and is served...
    let mut extra = KeepAlive::open_from(FROM, t.addr);
    extra.get("/scrape");
    let gone = |conns: &[KeepAlive]| conns.iter().filter(|c| closed(&c.0)).count();
    assert!(
        common::until(Duration::from_secs(5), || gone(&conns) == 1),
        "{} connections closed for one new one",
        gone(&conns)
    );
    // ...while the others go on being served.
    conns.retain(|c| !closed(&c.0));
    for c in &mut conns {
        c.get("/scrape");
    }
    let fresh = extra;
    drop(conns);
    drop(fresh);
    // Once the tracker has seen them close, their slots are free.
    assert!(common::until(Duration::from_secs(5), || {
        let Ok(mut s) = connect_from(FROM, t.addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /scrape HTTP/1.1\r\nConnection: close\r\n\r\n");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        !answer.is_empty()
    }));

    // Closed one after the other, far more connections than the cap are all served.
    for n in 0..(MAX_PER_ADDRESS as u32 + 50) {
        let mut s = connect_from(FROM, t.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let q = announce_n(n, 6883, 5).to_query();
        write!(s, "GET /announce?{q} HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 200 "),
            "connection {n}: {answer:?}"
        );
    }
    let (_, body) = t.get("/peers?limit=1");
    let snap: bt::modes::tracker::status::Listing = serde_json::from_slice(&body).unwrap();
    assert_eq!(snap.torrent_count, TORRENTS as usize);
}

#[test]
fn idle_keep_alive_connections_make_room_for_new_ones_from_their_address() {
    const FROM: [u8; 4] = [127, 0, 0, 4];
    const MORE: usize = 60;
    let t = Tracker::start("[tracker]\n", &[]);
    // A client that keeps one connection per torrent: more than the cap, each idle after its
    // announce. Every announce is answered; the oldest idle connections are the ones closed.
    let mut conns: Vec<KeepAlive> = Vec::new();
    for n in 0..(MAX_PER_ADDRESS + MORE) as u32 {
        let mut c = KeepAlive::open_from(FROM, t.addr);
        let body = c.get(&format!("/announce?{}", announce_n(n, 6881, 5).to_query()));
        AnnounceResponse::parse(&body).unwrap_or_else(|e| panic!("torrent {n}: {e}"));
        conns.push(c);
    }
    let open = || conns.iter().filter(|c| !closed(&c.0)).count();
    assert!(
        common::until(Duration::from_secs(5), || open() == MAX_PER_ADDRESS),
        "{} of {} connections open, cap {MAX_PER_ADDRESS}",
        open(),
        conns.len()
    );
    // The ones closed are the oldest.
    assert!(conns[..MORE].iter().all(|c| closed(&c.0)));
    // The newest is among the open ones and still served.
    conns.last_mut().unwrap().get("/scrape");
    // A connection in the middle of a request is not evicted: fill the address with
    // half-sent requests, then a new connection is refused.
    let mut half: Vec<TcpStream> = Vec::new();
    for _ in 0..MAX_PER_ADDRESS {
        let mut s = connect_from(FROM, t.addr).unwrap();
        s.write_all(b"GET /announce?info").unwrap();
        half.push(s);
    }
    assert!(common::until(Duration::from_secs(5), || {
        conns.iter().all(|c| closed(&c.0))
    }));
    let late = connect_from(FROM, t.addr).unwrap();
    assert!(common::until(Duration::from_secs(5), || closed(&late)));
    assert_eq!(half.iter().filter(|s| !closed(s)).count(), MAX_PER_ADDRESS);
}

/// Fill a tracker with `torrents` swarms of `per_torrent` peers each, announced by 40 threads
/// from 40 loopback addresses over keep-alive connections.
fn fill(t: &Tracker, torrents: u32, per_torrent: u16) {
    const SOURCES: u16 = 40;
    let addr = t.addr;
    let threads: Vec<_> = (0..SOURCES)
        .map(|k| {
            std::thread::spawn(move || {
                let mut conn = KeepAlive::open_from([127, 0, 1, k as u8 + 1], addr);
                for n in 0..torrents {
                    for port in (10_000 + k..10_000 + per_torrent).step_by(SOURCES as usize) {
                        let req = AnnounceRequest {
                            numwant: Some(0),
                            ..announce_n(n, port, u64::from(port % 3))
                        };
                        let body = conn.get(&format!("/announce?{}", req.to_query()));
                        AnnounceResponse::parse(&body).unwrap();
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
}

#[test]
fn readers_that_never_read_a_big_listing_cost_bounded_memory_and_bt_peers_pages_through_it() {
    const TORRENTS: u32 = 20;
    const PER_TORRENT: u16 = 1000;
    const READERS: usize = 40;
    const PIPELINED: usize = 20;
    /// Budget for the tracker's growth: per stalled connection one page (under ~200 KiB of
    /// JSON, ~300 KiB of HTML) and its request buffer, with room for the allocator.
    const BUDGET_KIB: u64 = READERS as u64 * 512;
    let t = Tracker::start("[tracker]\n", &[]);
    let pid = tracker_pid(&t);
    let filled = Instant::now();
    fill(&t, TORRENTS, PER_TORRENT);
    eprintln!(
        "{} peers announced in {:?}",
        TORRENTS * u32::from(PER_TORRENT),
        filled.elapsed()
    );
    let before = rss_kib(pid);

    // Readers that ask for the listing (JSON and HTML pages, pipelined) and never read.
    let mut batch = String::new();
    for i in 0..PIPELINED {
        match i % 2 {
            0 => batch += &format!("GET /peers?offset={i} HTTP/1.1\r\nHost: t\r\n\r\n"),
            _ => batch += &format!("GET /?offset={i} HTTP/1.1\r\nHost: t\r\n\r\n"),
        }
    }
    let readers: Vec<TcpStream> = (0..READERS)
        .map(|_| {
            let mut s = TcpStream::connect(t.addr).unwrap();
            s.write_all(batch.as_bytes()).unwrap();
            s
        })
        .collect();

    // Meanwhile honest announces keep being answered, and memory stays in its budget.
    let watch = Instant::now();
    let (mut peak, mut slowest, mut n) = (before, Duration::ZERO, 0u16);
    while watch.elapsed() < IDLE_TIMEOUT / 2 {
        let start = Instant::now();
        let r = honest(&t, &announce(7, 6000 + n, 5, Event::Started));
        slowest = slowest.max(start.elapsed());
        assert_eq!(r.peers.len(), usize::from(n.min(50)));
        n += 1;
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50)); // pacing the probe, not synchronising
    }
    eprintln!(
        "RSS {before} KiB before, peak {peak} KiB with {READERS} stalled readers; \
         {n} announces, slowest {slowest:?}"
    );
    assert!(
        peak < before + BUDGET_KIB,
        "memory grew from {before} KiB to {peak} KiB (budget {BUDGET_KIB} KiB)"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "an announce took {slowest:?}"
    );

    // The stalled readers are closed after the idle timeout, and their memory is given back.
    assert!(
        common::until(IDLE_TIMEOUT + Duration::from_secs(5), || {
            readers.iter().all(|s| {
                // Read what is waiting so that the end of the stream can be seen.
                s.set_nonblocking(true).unwrap();
                let mut sink = vec![0u8; 1 << 20];
                let end = loop {
                    match (&*s).read(&mut sink) {
                        Ok(0) => break true,
                        Ok(_) => continue,
                        Err(e) => break e.kind() != ErrorKind::WouldBlock,
                    }
                };
                s.set_nonblocking(false).unwrap();
                end
            })
        }),
        "stalled readers were kept open past the idle timeout"
    );

    // Every link of the status page, page after page, is served.
    let mut todo = vec!["/".to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(target) = todo.pop() {
        if !seen.insert(target.clone()) {
            continue;
        }
        assert!(seen.len() < 100, "the status page links on without end");
        let (status, body) = t.get(&target);
        assert_eq!(status, 200, "{target}");
        let page = String::from_utf8(body).unwrap();
        for link in page.split("href=\"").skip(1) {
            let link = &link[..link.find('"').unwrap()];
            assert!(link.starts_with('/'), "{target} links away: {link}");
            todo.push(link.replace("&amp;", "&"));
        }
    }
    // 20 torrents of 1,000 peers: two per page (500 listed each), ten HTML pages and their JSON.
    assert!(seen.len() >= 20, "{seen:?}");

    // `bt peers` follows the pages to the end.
    let out = std::process::Command::new(support::BT)
        .args(["peers", "--tracker", &t.url()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = TORRENTS as usize * usize::from(PER_TORRENT) + usize::from(n);
    assert!(
        text.starts_with(&format!(
            "http://{}/peers: {} torrents, {total} peers",
            t.addr,
            TORRENTS + 1
        )),
        "{}",
        text.chars().take(300).collect::<String>()
    );
    let torrents = text.matches("  seeders ").count();
    assert_eq!(torrents, TORRENTS as usize + 1);
    let listed = text.lines().filter(|l| l.ends_with(" s ago")).count();
    assert_eq!(listed, TORRENTS as usize * MAX_PEERS_SHOWN + usize::from(n));
    assert!(
        !text.contains("more torrents"),
        "{}",
        &text[text.len() - 300..]
    );
    assert_eq!(
        text.matches(&format!(
            "  ... and {} more\n",
            usize::from(PER_TORRENT) - MAX_PEERS_SHOWN
        ))
        .count(),
        TORRENTS as usize
    );
    let _ = MAX_PAGE_PEERS;
}

#[test]
fn bt_peers_prints_what_a_hostile_tracker_sends_escaped() {
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m";
    let listing = serde_json::json!({
        "torrent_count": 1,
        "peer_count": 2,
        "interval": 30,
        "torrents": [{
            "info_hash": format!("{evil}{}", "ab".repeat(20)),
            "seeders": 1, "leechers": 1, "completed": 0,
            "peers": [
                {"address": "127.0.0.1", "port": 1, "peer_id": format!("-EV0001-{evil}"),
                 "left": 0, "last_seen_secs": 1},
                {"address": format!("10.0.0.1{evil}"), "port": 2, "peer_id": "\r\u{8}\u{8}ok",
                 "left": 5, "last_seen_secs": 1},
            ],
        }],
    })
    .to_string();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { return };
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{listing}",
                listing.len()
            );
        }
    });
    let out = std::process::Command::new(support::BT)
        .args(["peers", "--tracker", &format!("http://{addr}/announce")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached the terminal: {text:?}"
    );
    assert!(
        text.contains(&"ab".repeat(20)) && text.contains("10.0.0.1"),
        "{text}"
    );
    assert!(text.contains("pwned"), "{text}");
}
