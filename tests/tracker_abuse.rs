//! `bt tracker` under abuse, all on 127.0.0.0/8: a flood of new torrents past the cap, a
//! thousand slow connections (slowloris) from one address, a request head without end, and
//! garbage. Each time the tracker must keep its memory bounded and go on answering honest
//! announces.

mod common;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bt::proto::tracker::{AnnounceRequest, AnnounceResponse, Event, TrackerError};
use support::{announce, Tracker};

/// The tracker's caps on connections (`src/modes/tracker/http.rs`).
const MAX_PER_ADDRESS: usize = 256;
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
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        KeepAlive(s)
    }

    fn get(&mut self, target: &str) -> Vec<u8> {
        write!(self.0, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.0.read_exact(&mut byte).expect("an answer head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .unwrap_or_else(|| panic!("no content-length: {head}"))
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).unwrap();
        body
    }
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
    let snap: bt::modes::tracker::status::Snapshot = serde_json::from_slice(&body).unwrap();
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
    let settled = support::wait_until(Duration::from_secs(5), || open(&slow) <= MAX_PER_ADDRESS);
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
