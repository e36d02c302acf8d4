//! bt's peer engine against real BitTorrent clients, both ways: `bt peer` seeds to libtorrent,
//! aria2 and Transmission, and `bt client` downloads from each of them. Every swarm is found
//! through a `bt tracker`; the downloaded files must equal the originals byte for byte.
//!
//! Everything stays on 127.0.0.1: the tracker and bt bind there, and the real clients run
//! through the scripts in `tests/clients/` with DHT, PEX, LPD, UPnP/NAT-PMP and uTP off and
//! their sockets bound to loopback. Ports are free ones picked at run time. Every process is
//! stopped by its guard (SIGTERM, then SIGKILL) when its test ends, failed or not.
//!
//! Ignored by default (they need the Debian packages aria2, python3-libtorrent,
//! transmission-daemon and transmission-cli); `scripts/test.sh` installs those and runs them
//! with `--include-ignored`. A missing tool fails the test with the package to install.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bt::modes::tracker::status::Listing;
use common::{bt, require_libtorrent, require_tool, unused_port, write_files, Proc, Spec, BT};
use support::{client_script, Tracker};

/// The torrent: nested folders, an empty file, sizes that are no multiple of any piece length
/// (6,000,013 bytes: the last piece, and its last block, are short).
const NAME: &str = "set";
static FILES: [Spec; 4] = [
    ("a/b/three.txt", 777_777),
    ("a/empty", 0),
    ("a/two.bin", 2_222_229),
    ("one.bin", 3_000_007),
];

/// Tracker settings: a short interval, so that `bt peer` learns of a new leecher within
/// seconds (that is how Transmission gets served); silent peers expire after two intervals.
const TRACKER_CONFIG: &str = "[tracker]\ninterval = 10\nmin_interval = 0\n";

/// bt's profiles, both bound to 127.0.0.1 (the ports are overridden with `--port 0`).
const BT_CONFIG: &str = "[profiles.seeder]\nfolder = \"seeder\"\nport = 1\nip = \"127.0.0.1\"\n\n\
                         [profiles.leecher]\nfolder = \"leecher\"\nport = 2\nip = \"127.0.0.1\"\n";

/// How long a seeder may take to show up at the tracker as complete.
const READY: Duration = Duration::from_secs(60);

/// The real clients.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Real {
    Libtorrent,
    Aria2,
    Transmission,
}

impl Real {
    /// Fail (naming the Debian package) unless the client is installed.
    #[track_caller]
    fn require(self) {
        match self {
            Real::Libtorrent => require_libtorrent(),
            Real::Aria2 => {
                require_tool("aria2c", "aria2");
            }
            Real::Transmission => {
                require_tool("transmission-daemon", "transmission-daemon");
                require_tool("transmission-remote", "transmission-cli");
            }
        }
    }

    /// The command that runs it: `seed` (the data is in `dir`) or `get` (into `dir`), on
    /// 127.0.0.1:`port`; `state` is a scratch folder.
    /// Every script takes `MODE TORRENT DIR PORT`; Transmission's also an RPC port and `state`.
    fn command(self, mode: &str, torrent: &Path, dir: &Path, port: u16, state: &Path) -> Command {
        let script = match self {
            Real::Libtorrent => "lt.py",
            Real::Aria2 => "aria2.sh",
            Real::Transmission => "transmission.sh",
        };
        let mut cmd = Command::new(client_script(script));
        cmd.arg(mode).arg(torrent).arg(dir).arg(port.to_string());
        if self == Real::Transmission {
            cmd.arg(unused_port().to_string()).arg(state);
        }
        cmd.current_dir(state);
        cmd
    }

    /// Whether it creates the zero-length files of a torrent it downloads. Transmission 3.00
    /// does not (transmission/transmission#417, fixed in 4.1).
    fn creates_empty_files(self) -> bool {
        self != Real::Transmission
    }

    /// Time allowed for the whole transfer. Transmission acts on a new peer only at its 10 s
    /// rechoke tick (as a seeder it unchokes it then; as a leecher it starts asking then), and
    /// as a leecher it waits until our seeder finds it at the seeder's next announce.
    fn transfer_limit(self) -> Duration {
        match self {
            Real::Transmission => Duration::from_secs(120),
            _ => Duration::from_secs(60),
        }
    }
}

/// One test's world: a `bt tracker`, the original data and its torrent in `seeder/` (a bt
/// library: `seeder/set.torrent` beside `seeder/set/`), and an empty `leecher/`.
struct Swarm {
    dir: tempfile::TempDir,
    tracker: Tracker,
    torrent: PathBuf,
    contents: Vec<Vec<u8>>,
}

impl Swarm {
    /// Start the tracker; write the data and `bt create` its torrent with this piece length.
    fn new(piece_length: &str) -> Swarm {
        let tracker = Tracker::start(TRACKER_CONFIG, &[]);
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::write(d.join("peers.toml"), BT_CONFIG).expect("write peers.toml");
        for sub in ["leecher", "state"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        let data = d.join("seeder").join(NAME);
        let contents = write_files(&data, &FILES);
        let torrent = d.join("seeder").join(format!("{NAME}.torrent"));
        let announce = format!("{}/announce", tracker.url());
        bt(
            d,
            [
                "create".as_ref(),
                data.as_os_str(),
                "--tracker".as_ref(),
                announce.as_ref(),
                "--piece-length".as_ref(),
                piece_length.as_ref(),
                "-o".as_ref(),
                torrent.as_os_str(),
            ],
        )
        .success();
        Swarm {
            dir,
            tracker,
            torrent,
            contents,
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Start `bt peer` or `bt client` (`args` after the profile options) on a free port of
    /// 127.0.0.1; returns it and its port.
    fn start_bt(&self, mode: &str, profile: &str, args: &[&str]) -> (Proc, u16) {
        let mut p = Proc::spawn(
            &format!("bt {mode}"),
            Command::new(BT)
                .arg(mode)
                .arg("--config")
                .arg(self.path("peers.toml"))
                .args(["--profile", profile, "--folder"])
                .arg(self.path(profile))
                .args(["--port", "0"])
                .args(args)
                .current_dir(self.dir.path())
                .env("RUST_LOG", "bt=info"),
        );
        let port = p.port();
        (p, port)
    }

    /// Start a real client in `mode` on a free port; `dir` is its data folder.
    fn start_real(&self, real: Real, mode: &str, dir: &Path) -> (Proc, u16) {
        let port = unused_port();
        let mut cmd = real.command(mode, &self.torrent, dir, port, &self.path("state"));
        (
            Proc::spawn_group(&format!("{real:?} {mode}"), &mut cmd),
            port,
        )
    }

    /// Wait until the tracker lists the peer on 127.0.0.1:`port` as a seeder.
    #[track_caller]
    fn wait_seeder(&self, port: u16, procs: &[&Proc]) {
        let listed = common::until(READY, || {
            let (status, body) = self.tracker.get("/peers");
            let Ok(snap) = serde_json::from_slice::<Listing>(&body) else {
                return false;
            };
            status == 200
                && snap.torrents.iter().any(|t| {
                    t.peers
                        .iter()
                        .any(|p| p.address == "127.0.0.1" && p.port == port && p.seeding)
                })
        });
        assert!(
            listed,
            "the tracker does not list a seeder on 127.0.0.1:{port} after {READY:?}\n{}",
            self.logs(procs)
        );
    }

    /// Every process's output, the tracker's first, for failure messages.
    fn logs(&self, procs: &[&Proc]) -> String {
        let mut text = self.tracker.log_text();
        for p in procs {
            text.push_str(&p.log());
        }
        text
    }

    /// Compare the download in `out` with the originals, byte for byte. Zero-length files may
    /// be missing when `empty_files` is false.
    #[track_caller]
    fn verify(&self, out: &Path, empty_files: bool, procs: &[&Proc]) {
        for ((path, _), want) in FILES.iter().zip(&self.contents) {
            let file = out.join(NAME).join(path);
            let got = match std::fs::read(&file) {
                Ok(got) => got,
                Err(_) if want.is_empty() && !empty_files => continue,
                Err(e) => panic!("{}: {e}\n{}", file.display(), self.logs(procs)),
            };
            assert!(
                got.len() == want.len(),
                "{}: {} bytes, want {}\n{}",
                file.display(),
                got.len(),
                want.len(),
                self.logs(procs)
            );
            if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
                panic!(
                    "{}: differs from the original at byte {at}\n{}",
                    file.display(),
                    self.logs(procs)
                );
            }
        }
    }
}

/// Wait for a downloader to exit by itself and check that it exited 0.
#[track_caller]
fn expect_done(swarm: &Swarm, get: &mut Proc, limit: Duration, procs: &[&Proc]) {
    let status = get.try_wait_exit(limit);
    assert!(
        status.is_some_and(|s| s.success()),
        "the download ended with {status:?} (None: still running after {limit:?})\n{}{}",
        swarm.logs(procs),
        get.log()
    );
}

/// Stop a seeder (SIGTERM) and check how it ended: still running until then, and exit 0.
#[track_caller]
fn expect_clean_stop(swarm: &Swarm, seed: &mut Proc, procs: &[&Proc]) {
    assert!(
        seed.running(),
        "the seeder ended before it was told to\n{}{}",
        swarm.logs(procs),
        seed.log()
    );
    let status = seed.stop();
    assert!(
        status.success(),
        "the seeder ended with {status} on SIGTERM\n{}{}",
        swarm.logs(procs),
        seed.log()
    );
}

/// `bt peer` seeds; `real` downloads it through the tracker.
fn bt_seeds_to(real: Real, piece_length: &str) {
    real.require();
    let swarm = Swarm::new(piece_length);
    let (mut peer, seed_port) = swarm.start_bt("peer", "seeder", &[]);
    swarm.wait_seeder(seed_port, &[&peer]);
    let out = swarm.path("leecher");
    let (mut get, get_port) = swarm.start_real(real, "get", &out);
    expect_done(&swarm, &mut get, real.transfer_limit(), &[&peer]);
    swarm.verify(&out, real.creates_empty_files(), &[&peer, &get]);
    if real == Real::Transmission {
        // Transmission never calls a 127.x peer it learns from a tracker: bt peer called it.
        let dialed = format!("127.0.0.1:{get_port}: connected");
        assert!(
            peer.log().contains(&dialed),
            "bt peer never called Transmission\n{}",
            swarm.logs(&[&peer, &get])
        );
    }
    expect_clean_stop(&swarm, &mut peer, &[&get]);
}

/// `real` seeds; `bt client` finds it through the tracker and downloads everything.
fn bt_downloads_from(real: Real, piece_length: &str) {
    real.require();
    let swarm = Swarm::new(piece_length);
    let (mut seed, seed_port) = swarm.start_real(real, "seed", &swarm.path("seeder"));
    swarm.wait_seeder(seed_port, &[&seed]);
    let stall = real.transfer_limit().as_secs().to_string();
    let torrent = swarm.torrent.to_str().expect("UTF-8 temp path");
    let (mut client, _) = swarm.start_bt(
        "client",
        "leecher",
        &["--exit-when-done", "--stall-timeout", &stall, torrent],
    );
    expect_done(&swarm, &mut client, real.transfer_limit(), &[&seed]);
    swarm.verify(&swarm.path("leecher"), true, &[&seed, &client]);
    let from = format!("from 127.0.0.1:{seed_port} ");
    assert!(
        client.log().contains(&from),
        "bt client names no data from the seeder\n{}",
        swarm.logs(&[&seed, &client])
    );
    expect_clean_stop(&swarm, &mut seed, &[&client]);
}

/// One `#[ignore]`d test per line: its name, the direction (`bt_seeds_to` or
/// `bt_downloads_from`), the real client and the piece length.
macro_rules! interop_tests {
    ($($name:ident: $direction:ident($real:ident, $piece_length:literal);)*) => {$(
        #[test]
        #[ignore = "needs aria2, python3-libtorrent, transmission-daemon"]
        fn $name() {
            $direction(Real::$real, $piece_length);
        }
    )*};
}

interop_tests! {
    bt_peer_seeds_libtorrent: bt_seeds_to(Libtorrent, "32k");
    bt_peer_seeds_aria2: bt_seeds_to(Aria2, "256k");
    bt_peer_seeds_transmission: bt_seeds_to(Transmission, "256k");
    bt_client_downloads_from_libtorrent: bt_downloads_from(Libtorrent, "256k");
    bt_client_downloads_from_aria2: bt_downloads_from(Aria2, "32k");
    bt_client_downloads_from_transmission: bt_downloads_from(Transmission, "32k");
}
