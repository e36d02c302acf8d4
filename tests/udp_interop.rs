//! UDP trackers (BEP 15) with real clients, everything on 127.0.0.1: libtorrent and
//! Transmission announce to `bt tracker` over `udp://` and find each other; aria2 (whose UDP
//! tracker client only runs with its DHT on, which these tests keep off: it says `udp is not
//! supported yet`) falls through to the HTTP tier of the same tracker and finds libtorrent,
//! which came over UDP; `bt peer` and `bt client` announce to opentracker over `udp://` and
//! find each other.
//!
//! Ignored by default (they need python3-libtorrent, aria2, transmission-daemon and
//! opentracker); `scripts/test.sh` runs them with `--include-ignored`.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bt::modes::tracker::status::Listing;
use common::{bt, require_tool, unused_port, write_files, Proc, Spec, BT};
use support::{client_script, Tracker};

const NAME: &str = "set";
static FILES: [Spec; 2] = [("a.bin", 1_234_567), ("b/c.bin", 2_000_003)];
const TRACKER_CONFIG: &str = "[tracker]\ninterval = 10\nmin_interval = 0\n";
const BT_CONFIG: &str = "[profiles.seeder]\nfolder = \"seeder\"\nport = 1\nip = \"127.0.0.1\"\n\n\
                         [profiles.leecher]\nfolder = \"leecher\"\nport = 2\nip = \"127.0.0.1\"\n";
const LIMIT: Duration = Duration::from_secs(120);

/// A folder with the data in `seeder/`, its torrent announcing to `announce`, and an empty
/// `leecher/`.
struct World {
    dir: tempfile::TempDir,
    torrent: PathBuf,
    contents: Vec<Vec<u8>>,
}

impl World {
    /// `announce`: one URL per tier.
    fn new(announce: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("peers.toml"), BT_CONFIG).unwrap();
        for sub in ["leecher", "state"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let data = d.join("seeder").join(NAME);
        let contents = write_files(&data, &FILES);
        let torrent = d.join("seeder").join(format!("{NAME}.torrent"));
        let mut args: Vec<std::ffi::OsString> = vec!["create".into(), data.clone().into()];
        for url in announce {
            args.push("--tracker".into());
            args.push(url.into());
        }
        args.push("-o".into());
        args.push(torrent.clone().into());
        bt(d, args).success();
        World {
            dir,
            torrent,
            contents,
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A real client's script in `mode` on a free port, with `dir` as its data folder.
    fn real(&self, script: &str, mode: &str, dir: &Path) -> (Proc, u16) {
        let port = unused_port();
        let mut cmd = Command::new(client_script(script));
        cmd.arg(mode)
            .arg(&self.torrent)
            .arg(dir)
            .arg(port.to_string());
        if script == "transmission.sh" {
            cmd.arg(unused_port().to_string()).arg(self.path("state"));
        }
        (
            Proc::spawn_group(&format!("{script} {mode}"), &mut cmd),
            port,
        )
    }

    #[track_caller]
    fn verify(&self, out: &Path, logs: &dyn Fn() -> String) {
        for ((path, _), want) in FILES.iter().zip(&self.contents) {
            let file = out.join(NAME).join(path);
            let got = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), logs()));
            assert!(got == *want, "{} differs\n{}", file.display(), logs());
        }
    }
}

/// `bt tracker` lists a seeder on 127.0.0.1:`port`.
fn listed_as_seeder(t: &Tracker, port: u16) -> bool {
    let (status, body) = t.get("/peers");
    let Ok(snap) = serde_json::from_slice::<Listing>(&body) else {
        return false;
    };
    status == 200
        && snap.torrents.iter().any(|t| {
            t.peers
                .iter()
                .any(|p| p.address == "127.0.0.1" && p.port == port && p.seeding)
        })
}

/// `seeder` seeds, `getter` downloads, both announcing to bt's tracker: the torrent's first
/// tier is its `udp://` URL; with `http_too`, a second tier is its `http://` one.
fn through_bt_udp(seeder: &str, getter: &str, http_too: bool) {
    let t = Tracker::start(TRACKER_CONFIG, &[]);
    let udp = format!("udp://{}/announce", t.addr);
    let http = format!("{}/announce", t.url());
    let tiers: Vec<&str> = match http_too {
        true => vec![&udp, &http],
        false => vec![&udp],
    };
    let w = World::new(&tiers);
    let (seed, seed_port) = w.real(seeder, "seed", &w.path("seeder"));
    assert!(
        common::until(Duration::from_secs(60), || listed_as_seeder(&t, seed_port)),
        "no UDP announce from the seeder\n{}{}",
        t.log_text(),
        seed.log()
    );
    let out = w.path("leecher");
    let (mut get, _) = w.real(getter, "get", &out);
    let status = get.try_wait_exit(LIMIT);
    let logs = || format!("{}{}{}", t.log_text(), seed.log(), get.log());
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        logs()
    );
    w.verify(&out, &logs);
}

#[test]
#[ignore = "needs python3-libtorrent"]
fn libtorrent_seeds_to_libtorrent_through_bt_udp_tracker() {
    // The torrent names only the udp:// URL: the two find each other over BEP 15 alone.
    through_bt_udp("lt.py", "lt.py", false);
}

#[test]
#[ignore = "needs python3-libtorrent and aria2"]
fn libtorrent_over_udp_seeds_to_aria2_over_http_in_one_swarm() {
    through_bt_udp("lt.py", "aria2.sh", true);
}

#[test]
#[ignore = "needs python3-libtorrent and aria2"]
fn aria2_over_http_seeds_to_libtorrent_over_udp_in_one_swarm() {
    through_bt_udp("aria2.sh", "lt.py", true);
}

#[test]
#[ignore = "needs transmission-daemon and python3-libtorrent"]
fn transmission_seeds_to_libtorrent_through_bt_udp_tracker() {
    // Transmission never dials a 127.x peer, so it seeds and libtorrent dials it.
    require_tool("transmission-daemon", "transmission-daemon");
    through_bt_udp("transmission.sh", "lt.py", false);
}

/// opentracker on a port free for TCP and UDP, serving only `hash` (Debian's build is
/// whitelist-only); stopped when dropped.
fn opentracker(hash: &str, dir: &Path) -> (Proc, u16) {
    require_tool("opentracker", "opentracker");
    let root = dir.join("ot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("whitelist.txt"), format!("{hash}\n")).unwrap();
    let port = loop {
        let p = unused_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let mut cmd = Command::new("opentracker");
    cmd.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-P",
        &port.to_string(),
    ])
    .arg("-d")
    .arg(&root)
    .args(["-w", "/whitelist.txt"]);
    let p = Proc::spawn_group("opentracker", &mut cmd);
    assert!(common::until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    (p, port)
}

#[test]
#[ignore = "needs opentracker"]
fn bt_peer_and_client_find_each_other_through_opentracker_over_udp() {
    // The torrent names an HTTP URL that leads nowhere; `--tracker` gives the UDP one.
    let nowhere = format!("http://127.0.0.1:{}/announce", unused_port());
    let w = World::new(&[&nowhere]);
    let info = common::bt_info(&w.torrent);
    let hash = info["info_hash"].as_str().unwrap().to_string();
    let (ot, port) = opentracker(&hash, w.dir.path());
    let udp = format!("udp://127.0.0.1:{port}/announce");
    let start = |mode: &str, profile: &str, extra: &[&str]| {
        let mut p = Proc::spawn(
            &format!("bt {mode}"),
            Command::new(BT)
                .arg(mode)
                .arg("--config")
                .arg(w.path("peers.toml"))
                .args(["--profile", profile, "--folder"])
                .arg(w.path(profile))
                .args(["--port", "0", "--tracker", &udp])
                .args(extra)
                .current_dir(w.dir.path())
                .env("RUST_LOG", "bt=info"),
        );
        let port = p.port();
        (p, port)
    };
    let (peer, peer_port) = start("peer", "seeder", &[]);
    let torrent = w.torrent.to_str().unwrap().to_string();
    let (mut client, _) = start(
        "client",
        "leecher",
        &["--exit-when-done", "--stall-timeout", "100", &torrent],
    );
    let status = client.try_wait_exit(LIMIT);
    let logs = || format!("{}{}{}", ot.log(), peer.log(), client.log());
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        logs()
    );
    w.verify(&w.path("leecher"), &logs);
    let from = format!("from 127.0.0.1:{peer_port} ");
    assert!(client.log().contains(&from), "{}", logs());
}
