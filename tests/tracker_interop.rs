//! `bt tracker` as the only tracker between real clients (libtorrent, aria2), and its status
//! page in a real browser (headless Chromium). Everything stays on 127.0.0.1.
//!
//! Ignored by default (they need the Debian packages that `scripts/test.sh` installs):
//! `cargo test --release -- --include-ignored`.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bt::proto::metainfo::Metainfo;
use bt::proto::tracker::{Event, ScrapeRequest, ScrapeResponse, ScrapeStats};
use common::Proc;
use support::{announce, client_script, Tracker};

/// Size of the shared file: many pieces, seconds to move on loopback.
const PAYLOAD: usize = 6 * 1024 * 1024 + 12_345;

/// The payload file: deterministic pseudo-random bytes.
fn payload(path: &Path) -> Vec<u8> {
    let bytes = common::pseudo_random(7, PAYLOAD);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Seed folder with the payload, a torrent made by mktorrent announcing to `tracker`, its
/// info-hash, and an empty download folder.
struct Swarm {
    dir: tempfile::TempDir,
    torrent: PathBuf,
    info_hash: [u8; 20],
    data: Vec<u8>,
}

impl Swarm {
    fn new(tracker: &Tracker) -> Swarm {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        let data = payload(&seed.join("payload.bin"));
        let torrent = dir.path().join("payload.torrent");
        let status = Command::new("mktorrent")
            .args([
                "-l",
                "16",
                "-a",
                &format!("{}/announce", tracker.url()),
                "-o",
            ])
            .arg(&torrent)
            .arg(seed.join("payload.bin"))
            .stdout(Stdio::null())
            .status()
            .expect("mktorrent is needed (apt install mktorrent)");
        assert!(status.success());
        let meta = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
        Swarm {
            info_hash: meta.info_hash.0,
            torrent,
            data,
            dir,
        }
    }

    fn seed_dir(&self) -> PathBuf {
        self.dir.path().join("seed")
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

fn scrape(t: &Tracker, hash: [u8; 20]) -> ScrapeStats {
    let q = ScrapeRequest {
        info_hashes: vec![hash],
    };
    let (_, body) = t.get(&format!("/scrape?{}", q.to_query()));
    ScrapeResponse::parse(&body).unwrap().get(&hash).unwrap()
}

fn stats(complete: u32, incomplete: u32, downloaded: u32) -> ScrapeStats {
    ScrapeStats {
        complete,
        incomplete,
        downloaded,
    }
}

/// Wait until a scrape of `hash` says `want`, at most `secs`; else fail with `context()`.
fn await_scrape(
    t: &Tracker,
    hash: [u8; 20],
    want: ScrapeStats,
    secs: u64,
    context: impl Fn() -> String,
) {
    if !common::until(Duration::from_secs(secs), || scrape(t, hash) == want) {
        panic!(
            "scrape says {:?}, want {want:?}:\n{}",
            scrape(t, hash),
            context()
        );
    }
}

/// Start a client script: `SCRIPT MODE ARGS... PORT`.
fn start(script: &str, mode: &str, args: &[&Path], port: u16) -> Proc {
    let mut cmd = Command::new(client_script(script));
    cmd.arg(mode).args(args).arg(port.to_string());
    Proc::spawn_group(&format!("{script} {mode}"), &mut cmd)
}

/// Wait for a downloader to exit 0, at most `timeout`.
#[track_caller]
fn finish(mut get: Proc, timeout: Duration) {
    let status = get.wait_exit(timeout);
    assert!(
        status.success(),
        "downloader failed ({status}):\n{}",
        get.log()
    );
}

/// One seeder, one downloader, bt tracker in between; checks the bytes and the counts.
fn transfer(seeder: &str, downloader: &str) {
    let t = Tracker::start("[tracker]\ninterval = 30\n", &[]);
    let swarm = Swarm::new(&t);
    let seed = start(
        seeder,
        "seed",
        &[&swarm.torrent, &swarm.seed_dir()],
        common::unused_port(),
    );
    await_scrape(&t, swarm.info_hash, stats(1, 0, 0), 60, || seed.log());

    let get = start(
        downloader,
        "get",
        &[&swarm.torrent, &swarm.out_dir()],
        common::unused_port(),
    );
    finish(get, Duration::from_secs(180));
    let got = std::fs::read(swarm.out_dir().join("payload.bin")).unwrap();
    assert!(got == swarm.data, "downloaded bytes differ from the seed");

    // The downloader finished (libtorrent says `completed`; aria2 stops right away with nothing
    // left, which counts too), then `stopped` on exit: one seeder left, one download.
    await_scrape(&t, swarm.info_hash, stats(1, 0, 1), 20, || t.log_text());
    // The event lines reach the log through a reader thread: wait for the `stopped` line.
    common::until(Duration::from_secs(10), || {
        t.log_text().matches("stopped ").count() >= 1
    });
    let log = t.log_text();
    assert_eq!(log.matches("started ").count(), 2, "{log}");
    assert_eq!(log.matches("stopped ").count(), 1, "{log}");
}

#[test]
#[ignore = "needs python3-libtorrent, aria2 and mktorrent"]
fn libtorrent_seeds_to_aria2_through_bt_tracker() {
    transfer("lt.py", "aria2.sh");
}

#[test]
#[ignore = "needs python3-libtorrent, aria2 and mktorrent"]
fn aria2_seeds_to_libtorrent_through_bt_tracker() {
    transfer("aria2.sh", "lt.py");
}

#[test]
#[ignore = "needs chromium"]
fn status_page_renders_in_headless_chromium() {
    let t = Tracker::start("[tracker]\n", &[]);
    for (port, left) in [(6881, 0), (6882, 1 << 20), (6883, 7)] {
        let (status, _) = t.get(&format!(
            "/announce?{}",
            announce(0xab, port, left, Event::Started).to_query()
        ));
        assert_eq!(status, 200);
    }
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("{}/", t.url()));
    let browser = Proc::spawn_group("chromium", &mut cmd);
    let dom = browser.finish(Duration::from_secs(90)).1.join("\n");
    assert!(dom.contains("<h1>bt tracker</h1>"), "{dom}");
    assert!(dom.contains(&"ab".repeat(20)), "{dom}");
    assert!(dom.contains("1 seeder, 2 leechers, 0 completed"), "{dom}");
    for peer in ["127.0.0.1:6881", "127.0.0.1:6882", "127.0.0.1:6883"] {
        assert!(dom.contains(peer), "{peer} missing: {dom}");
    }
    // The tracker keeps no peer ids or byte counts (10-byte records): a state per peer.
    assert!(
        dom.contains(r#"<span class="seed">seeding</span>"#)
            && dom.matches("leeching").count() == 2,
        "{dom}"
    );
}
