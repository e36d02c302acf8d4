//! `bt tracker` end to end: the built binary on a free loopback port, spoken to with raw HTTP.

mod common;
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use bt::modes::tracker::status::Listing;
use bt::proto::tracker::{
    AnnounceResponse, Event, ScrapeRequest, ScrapeResponse, ScrapeStats, TrackerError,
};
use support::{announce, Tracker, BT};

const CONFIG: &str = "[tracker]\ninterval = 60\nmin_interval = 20\n";

/// How long the tracker's event lines may take to reach the test's log.
const LOG_WAIT: Duration = Duration::from_secs(10);

fn announce_to(t: &Tracker, req: &bt::proto::tracker::AnnounceRequest) -> AnnounceResponse {
    let (status, body) = t.get(&format!("/announce?{}", req.to_query()));
    assert_eq!(status, 200);
    AnnounceResponse::parse(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
}

fn failure_of(t: &Tracker, target: &str) -> String {
    let (status, body) = t.get(target);
    assert_eq!(status, 200, "{target}");
    match AnnounceResponse::parse(&body) {
        Err(TrackerError::Failure(reason)) => reason,
        other => panic!("{target}: expected a failure, got {other:?}"),
    }
}

fn ports(r: &AnnounceResponse) -> Vec<u16> {
    let mut p: Vec<u16> = r.peers.iter().map(|p| p.addr.port()).collect();
    p.sort();
    p
}

#[test]
fn peers_on_loopback_find_each_other_compact_and_not() {
    let t = Tracker::start(CONFIG, &[]);
    let a = announce_to(&t, &announce(1, 6881, 0, Event::Started));
    assert_eq!(
        (a.interval, a.min_interval, a.complete, a.incomplete),
        (60, Some(20), 1, 0)
    );
    assert!(a.peers.is_empty(), "a peer is never sent to itself");

    let b = announce_to(&t, &announce(1, 6882, 1000, Event::Started));
    assert_eq!((b.complete, b.incomplete), (1, 1));
    assert_eq!(ports(&b), [6881]);
    assert_eq!(b.peers[0].addr.to_string(), "127.0.0.1:6881");
    assert_eq!(b.peers[0].peer_id, None, "compact peers carry no id");

    // A dictionary list: addresses and ports, and no peer ids, asked for or not (the tracker
    // keeps none: clients connect by address and learn the id in the handshake).
    let mut c = announce(1, 6883, 1000, Event::Started);
    c.compact = false;
    let r = announce_to(&t, &c);
    assert_eq!(ports(&r), [6881, 6882]);
    assert!(r.peers.iter().all(|p| p.peer_id.is_none()));
    for no_peer_id in [false, true] {
        c.no_peer_id = no_peer_id;
        c.event = Event::None;
        let (_, body) = t.get(&format!("/announce?{}", c.to_query()));
        assert!(
            body.starts_with(b"d8:completei1e10:incompletei2e")
                && body.windows(6).any(|w| w == b"peersl")
                && body.windows(12).any(|w| w == b"2:ip9:127.0.")
        );
        assert!(!body.windows(7).any(|w| w == b"peer id"));
    }

    // The seeder is sent both leechers; numwant bounds the answer.
    let mut a = announce(1, 6881, 0, Event::None);
    assert_eq!(ports(&announce_to(&t, &a)), [6882, 6883]);
    a.numwant = Some(1);
    assert_eq!(announce_to(&t, &a).peers.len(), 1);

    // Another torrent is another swarm.
    let other = announce_to(&t, &announce(2, 6881, 5, Event::Started));
    assert_eq!(
        (other.complete, other.incomplete, other.peers.len()),
        (0, 1, 0)
    );

    // The tracker prints its event lines after it answers, and they reach us through a reader
    // thread: wait for them rather than read the log at once.
    let hex1 = "01".repeat(20);
    let line = format!("{hex1} 127.0.0.1:6882 -TT0001-000000006882 left 1000");
    let logged = common::until(LOG_WAIT, || {
        let log = t.log_text();
        log.matches("started").count() >= 4 && log.contains(&line)
    });
    let log = t.log_text();
    assert!(logged, "no 4 started lines with {line:?}:\n{log}");
    assert_eq!(log.matches("started").count(), 4, "{log}");
}

#[test]
fn scrape_counts_seeders_leechers_and_downloads() {
    let t = Tracker::start(CONFIG, &[]);
    announce_to(&t, &announce(1, 7001, 0, Event::Started));
    announce_to(&t, &announce(1, 7002, 50, Event::Started));
    announce_to(&t, &announce(1, 7003, 50, Event::Started));
    announce_to(&t, &announce(2, 7001, 50, Event::Started));
    let done = announce_to(&t, &announce(1, 7002, 0, Event::Completed));
    assert_eq!((done.complete, done.incomplete), (2, 1));
    let gone = announce_to(&t, &announce(1, 7003, 50, Event::Stopped));
    assert_eq!(
        (gone.complete, gone.incomplete, gone.peers.len()),
        (2, 0, 0)
    );

    let scrape = |q: &ScrapeRequest| {
        let (status, body) = t.get(&format!("/scrape?{}", q.to_query()));
        assert_eq!(status, 200);
        ScrapeResponse::parse(&body).unwrap()
    };
    let one = scrape(&ScrapeRequest {
        info_hashes: vec![[1; 20], [9; 20]],
    });
    let stats = |c, i, d| ScrapeStats {
        complete: c,
        incomplete: i,
        downloaded: d,
    };
    assert_eq!(one.get(&[1; 20]), Some(stats(2, 0, 1)));
    assert_eq!(
        one.get(&[9; 20]),
        Some(stats(0, 0, 0)),
        "unknown torrents count zero"
    );
    assert_eq!(one.get(&[2; 20]), None, "only what was asked");
    let all = scrape(&ScrapeRequest::default());
    assert_eq!(all.files.len(), 2);
    assert_eq!(all.get(&[2; 20]), Some(stats(0, 1, 0)));

    let logged = common::until(LOG_WAIT, || {
        let log = t.log_text();
        log.contains("completed ") && log.contains("stopped ")
    });
    let log = t.log_text();
    assert!(logged, "no completed and stopped lines:\n{log}");
    assert_eq!(log.matches("completed ").count(), 1, "{log}");
    assert_eq!(log.matches("stopped ").count(), 1, "{log}");
}

#[test]
fn bad_requests_get_a_failure_reason_with_http_200() {
    let mut t = Tracker::start(CONFIG, &[]);
    let good = announce(1, 6881, 0, Event::None).to_query();
    let cases = [
        ("/announce".to_string(), "missing port"),
        (
            "/announce?info_hash=abc&peer_id=x&port=1&uploaded=0&downloaded=0&left=0".into(),
            "info_hash must be 20 bytes, got 3",
        ),
        (
            format!("/announce?{}", good.replace("port=6881", "port=0")),
            "port must not be 0",
        ),
        (
            format!("/announce?{}", good.replace("port=6881", "port=70000")),
            "port out of range (at most 65535)",
        ),
        (
            format!("/announce?{}", good.replace("left=0", "left=-5")),
            "left is not a number",
        ),
        (
            format!(
                "/announce?{}",
                good.replace("left=0", "left=123456789012345678901234567890")
            ),
            "left out of range",
        ),
        (
            format!("/announce?{}&event=bogus", good),
            "unknown event \"bogus\"",
        ),
        (
            format!(
                "/announce?{}",
                good.replacen("info_hash=", "info_hash=%G1", 1)
            ),
            "info_hash has a bad percent-escape",
        ),
        (
            format!("/announce?{}", good.replace("peer_id=", "x=")),
            "missing peer_id",
        ),
        (
            format!("/announce?{}&pad={}", good, "a".repeat(7000)),
            "query too long",
        ),
        (
            "/scrape?info_hash=%00%01".into(),
            "info_hash must be 20 bytes, got 2",
        ),
    ];
    for (target, want) in &cases {
        let reason = failure_of(&t, target);
        assert!(reason.starts_with(want), "{target}: {reason}");
    }
    // Binary garbage that the URL parser lets through still gets a clean answer.
    let (status, _) = t.get("/announce?%FF%FE=%00&&==&info_hash=%%%");
    assert_eq!(status, 200);

    // A head far over the HTTP limit is cut off without harming the server.
    let mut s = TcpStream::connect(t.addr).unwrap();
    let huge = format!(
        "GET /announce?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(huge.as_bytes());
    drop(s);
    // Unknown paths are plain 404s; the tracker keeps serving.
    assert_eq!(t.get("/nope").0, 404);
    let r = announce_to(&t, &announce(1, 6881, 0, Event::None));
    assert_eq!(r.complete, 1);
    assert!(t.alive());
    let log = t.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn caps_and_access_list_come_from_the_config() {
    let allowed = "01".repeat(20);
    let config =
        "[tracker]\nmax_torrents = 2\nmax_peers_per_torrent = 2\naccess_list = \"allow.txt\"\n";
    let list = format!(
        "# torrents served here\n{allowed}\n{}\n{}\n",
        "02".repeat(20),
        "03".repeat(20)
    );
    let t = Tracker::start(config, &[("allow.txt", &list)]);
    let hit = |hash, port| {
        format!(
            "/announce?{}",
            announce(hash, port, 5, Event::Started).to_query()
        )
    };
    assert_eq!(
        failure_of(&t, &hit(9, 1)),
        "torrent not allowed on this tracker"
    );
    announce_to(&t, &announce(1, 1, 5, Event::Started));
    announce_to(&t, &announce(1, 2, 5, Event::Started));
    assert_eq!(
        failure_of(&t, &hit(1, 3)),
        "torrent full: it has 2 peers already"
    );
    announce_to(&t, &announce(2, 1, 5, Event::Started));
    assert_eq!(
        failure_of(&t, &hit(3, 1)),
        "tracker full: it tracks 2 torrents already"
    );
}

#[test]
fn a_bad_access_list_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[tracker]\naccess_list = \"a.txt\"\n").unwrap();
    std::fs::write(
        dir.path().join("a.txt"),
        "0123456789012345678901234567890123456789\nnot-a-hash\n",
    )
    .unwrap();
    let out = Command::new(BT)
        .args(["tracker", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.txt: line 2: \"not-a-hash\""), "{err}");
}

#[test]
fn peers_json_status_page_and_bt_peers() {
    let t = Tracker::start(CONFIG, &[]);
    announce_to(&t, &announce(1, 6881, 0, Event::Started));
    announce_to(&t, &announce(1, 6882, 4096, Event::Started));
    let mut odd = announce(1, 6883, 1, Event::Started);
    odd.peer_id = [0xfe; 20];
    announce_to(&t, &odd);

    let (status, body) = t.get("/peers");
    assert_eq!(status, 200);
    let s: Listing = serde_json::from_slice(&body).unwrap();
    assert_eq!((s.torrent_count, s.peer_count, s.interval), (1, 3, 60));
    let tor = &s.torrents[0];
    assert_eq!(
        (tor.info_hash.as_str(), tor.seeders, tor.leechers),
        ("01".repeat(20).as_str(), 1, 2)
    );
    let ports: Vec<(u16, bool)> = tor.peers.iter().map(|p| (p.port, p.seeding)).collect();
    assert_eq!(ports, [(6881, true), (6882, false), (6883, false)]);
    assert!(tor
        .peers
        .iter()
        .all(|p| p.address == "127.0.0.1" && p.last_seen_secs < 30));

    let (status, page) = t.get("/");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<title>bt tracker</title>") && page.contains("http-equiv=\"refresh\""));
    assert!(page.contains(&"01".repeat(20)) && page.contains("127.0.0.1:6882"));
    assert!(page.contains("1 seeder, 2 leechers"));

    let out = Command::new(BT)
        .args(["peers", "--tracker", &format!("{}/announce", t.url())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 torrent, 3 peers"), "{text}");
    assert!(
        text.contains("seeders 1  leechers 2  completed 0"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:6881") && text.contains("127.0.0.1:6883"),
        "{text}"
    );
    assert!(
        text.contains("leeching") && text.contains("seeding"),
        "{text}"
    );
}

#[test]
fn bt_peers_reports_unreachable_and_non_tracker_addresses() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(BT)
        .args(["peers", "--tracker", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim_end()
            == format!(
                "bt: error: cannot reach the tracker at {url}/peers?offset=0: connection refused"
            ),
        "{err}"
    );

    // A server that answers 404 to everything.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in server.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let out = Command::new(BT)
        .args(["peers", "--tracker", &format!("http://{addr}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answered HTTP 404"), "{err}");
}
