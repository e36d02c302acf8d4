//! Finding peers without a tracker: local service discovery (BEP 14) and the Mainline DHT
//! (BEP 5), each on a LAN of network namespaces that the test builds (`common::netns`), with
//! no tracker anywhere. Multicast is routed only inside those namespaces and every DHT node
//! is given its bootstrap explicitly (a `bt dht` inside the LAN): nothing is sent in the root
//! namespace. Needs root and iproute2, so every test is `#[ignore]`d; `scripts/test.sh` runs
//! them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::netns::Lan;
use common::{bt, log_text, pseudo_random, run, spawn_logged, wait_for, ChildGuard, PYTHON};

/// The size of the shared file: with the upload limit below, the download takes a few
/// seconds, long enough for both peers to send part of it.
const SIZE: usize = 2 * 1024 * 1024;
/// Upload limit of each seeding peer, KiB/s.
const UPLOAD_LIMIT: &str = "256";
/// Peer-wire port of every bt on the LAN (each has a machine of its own).
const PORT: u16 = 6881;

/// A test's machines, their folders and logs.
struct World {
    lan: Lan,
    dir: tempfile::TempDir,
    torrent: PathBuf,
    data: Vec<u8>,
}

impl World {
    /// The LAN, a file of [`SIZE`] bytes and its trackerless torrent; `peers` get a copy of
    /// both in their folder, the others the torrent only.
    fn new(tag: &str, roles: &[&str], octet: u8, peers: &[&str]) -> World {
        let lan = Lan::new(tag, roles, octet);
        let dir = tempfile::tempdir().expect("a temporary folder");
        let data = pseudo_random(15, SIZE);
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("blob.bin"), &data).unwrap();
        let out = bt(
            &src,
            ["create", "blob.bin", "--no-tracker", "-o", "blob.torrent"],
        )
        .success();
        assert!(out.stdout.contains("info-hash"), "{}", out.stdout);
        let torrent = src.join("blob.torrent");
        let w = World {
            lan,
            dir,
            torrent,
            data,
        };
        for role in roles {
            let folder = w.folder(role);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::copy(&w.torrent, folder.join("blob.torrent")).unwrap();
            if peers.contains(role) {
                std::fs::write(folder.join("blob.bin"), &w.data).unwrap();
            }
        }
        w
    }

    /// A role's machine folder (its current folder) ...
    fn machine(&self, role: &str) -> PathBuf {
        self.dir.path().join(role)
    }

    /// ... and the library inside it.
    fn folder(&self, role: &str) -> PathBuf {
        self.machine(role).join("lib")
    }

    fn log(&self, role: &str) -> PathBuf {
        self.dir.path().join(format!("{role}.log"))
    }

    /// Every role's log, for failure messages.
    fn logs(&self, roles: &[&str]) -> String {
        roles
            .iter()
            .map(|r| format!("--- {r} ---\n{}", log_text(&self.log(r))))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `bt ARGS` on a role's machine with its library folder and [`PORT`], logging at info.
    fn bt(&self, role: &str, args: &[&str]) -> Command {
        let mut cmd = self.lan.bt(role, &self.machine(role));
        cmd.args(args)
            .arg("--folder")
            .arg(self.folder(role))
            .args(["--port", &PORT.to_string()])
            .env("RUST_LOG", "bt=info");
        cmd
    }

    /// A bare `bt dht` node on the role `dht`, once it listens; and its address, the bootstrap
    /// of everyone else.
    fn dht_node(&self, roles: &[&str]) -> (ChildGuard, String) {
        let node = self.spawn(
            "dht",
            self.lan
                .bt("dht", &self.machine("dht"))
                .args(["dht", "--port", "6881"]),
        );
        self.wait_log("dht", "dht node listening on 0.0.0.0:6881", roles);
        (node, format!("{}:6881", self.lan.addr("dht")))
    }

    /// Start a long-running role, logged.
    fn spawn(&self, role: &str, cmd: &mut Command) -> ChildGuard {
        spawn_logged(cmd, &self.log(role))
    }

    /// Wait until a role's log holds `needle`.
    #[track_caller]
    fn wait_log(&self, role: &str, needle: &str, roles: &[&str]) {
        wait_for(
            &format!("{role} printing {needle:?}"),
            Duration::from_secs(60),
            || log_text(&self.log(role)).contains(needle).then_some(()),
            || self.logs(roles),
        )
    }

    /// Run the client to completion; check the bytes and that every one of `from` sent part
    /// of them, its summary line naming one of `sources`. Returns the client's output.
    #[track_caller]
    fn download(&self, args: &[&str], from: &[&str], sources: &[&str], roles: &[&str]) -> String {
        let mut cmd = self.bt("client", args);
        cmd.args(["--exit-when-done", "--stall-timeout", "60"])
            .arg(self.folder("client").join("blob.torrent"));
        let out = run(&mut cmd, Duration::from_secs(120));
        let said = format!("{out:?}\n{}", self.logs(roles));
        assert!(out.status.success(), "the client failed:\n{said}");
        let got = std::fs::read(self.folder("client").join("blob.bin")).expect("downloaded");
        assert!(got == self.data, "the downloaded file differs");
        for role in from {
            let line = out
                .stdout
                .lines()
                .find(|l| {
                    l.trim_start()
                        .starts_with(&format!("from {}:", self.lan.addr(role)))
                })
                .unwrap_or_else(|| panic!("no data from {role}:\n{said}"));
            assert!(
                sources.iter().any(|s| line.contains(&format!("via {s})"))),
                "{role} should be one of {sources:?}: {line}\n{said}"
            );
        }
        format!("{}{}", out.stdout, out.stderr)
    }
}

/// Send `count` hostile LSD datagrams from a machine: junk, announces for torrents nobody
/// has, oversized ones, and announces for `info_hash` naming ports where nothing listens.
fn lsd_flood(lan: &Lan, role: &str, dir: &Path, info_hash: &str, count: u32) -> ChildGuard {
    let script = r#"
import os, socket, sys
ours, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
head = "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n"
for i in range(count):
    k = i % 4
    if k == 0:
        msg = os.urandom(i % 1600)
    elif k == 1:
        msg = (head + "Port: %d\r\nInfohash: %s\r\ncookie: x\r\n\r\n\r\n" % (1 + i % 60000, os.urandom(20).hex())).encode()
    elif k == 2:
        msg = (head + "Port: %d\r\nInfohash: %s\r\n\r\n\r\n" % (20000 + i % 20000, ours)).encode()
    else:
        msg = (head + "Port: 1\r\n" + ("Infohash: %s\r\n" % os.urandom(20).hex()) * 200).encode()
    try:
        s.sendto(msg, ("239.192.152.143", 6771))
    except OSError:
        pass
print("flood sent", count)
"#;
    let mut cmd = lan.exec(role, dir, PYTHON);
    cmd.args(["-c", script, info_hash, &count.to_string()]);
    spawn_logged(&mut cmd, &dir.join("flood.log"))
}

fn info_hash(torrent: &Path) -> String {
    common::bt_info(torrent)["info_hash"]
        .as_str()
        .expect("an info_hash")
        .to_string()
}

#[test]
#[ignore = "needs root and iproute2 (ip netns)"]
fn lsd_finds_two_peers_on_a_lan_without_a_tracker() {
    const ROLES: [&str; 4] = ["peer1", "peer2", "client", "flood"];
    let w = World::new("lsd", &ROLES, 214, &["peer1", "peer2"]);
    w.lan.route_multicast();
    // peer1 turns LSD on in its profile (`lsd = true`), peer2 and the client with --lsd.
    std::fs::write(
        w.machine("peer1").join("peers.toml"),
        format!("[profiles.peer1]\nfolder = \"lib\"\nport = {PORT}\nlsd = true\n"),
    )
    .unwrap();
    let mut p1 = w.lan.bt("peer1", &w.machine("peer1"));
    p1.args(["peer", "--profile", "peer1", "--upload-limit", UPLOAD_LIMIT])
        .env("RUST_LOG", "bt=info");
    let mut peer1 = w.spawn("peer1", &mut p1);
    let mut peer2 = w.spawn(
        "peer2",
        &mut w.bt(
            "peer2",
            &[
                "peer",
                "--profile",
                "peer2",
                "--lsd",
                "--upload-limit",
                UPLOAD_LIMIT,
            ],
        ),
    );
    for role in ["peer1", "peer2"] {
        w.wait_log(role, "lsd: announcing to 239.192.152.143:6771", &ROLES);
    }

    // A hostile machine floods the group while the client starts.
    let hash = info_hash(&w.torrent);
    let mut flood = lsd_flood(&w.lan, "flood", &w.machine("flood"), &hash, 20_000);
    // The peers call the client when they hear its announce, and answer it with their own:
    // each connection is either the client's call (lsd) or the peer's (incoming).
    let out = w.download(
        &["client", "--lsd"],
        &["peer1", "peer2"],
        &["lsd", "incoming"],
        &ROLES,
    );
    for peer in ["peer1", "peer2"] {
        let found = format!("lsd: peer {}:{PORT} for blob.bin", w.lan.addr(peer));
        assert!(
            out.contains(&found),
            "the client never heard {peer}:\n{out}"
        );
    }
    assert!(
        common::until(Duration::from_secs(60), || flood.try_status().is_some()),
        "the flood does not end"
    );
    assert!(log_text(&w.machine("flood").join("flood.log")).contains("flood sent 20000"));

    // Both peers learned of each other through LSD too, and survived the flood.
    for (role, other) in [("peer1", "peer2"), ("peer2", "peer1")] {
        let at = format!("lsd: peer {}:{PORT}", w.lan.addr(other));
        w.wait_log(role, &at, &ROLES);
    }
    assert!(peer1.try_status().is_none(), "{}", w.logs(&ROLES));
    assert!(peer2.try_status().is_none(), "{}", w.logs(&ROLES));
    // The flood's bogus announces reached the peers but were bounded: the rate limit dropped
    // most of them, and no announce for an unknown torrent produced a peer.
    let p2 = log_text(&w.log("peer2"));
    let flood_ip = w.lan.addr("flood");
    let from_flood = p2
        .lines()
        .filter(|l| l.contains(&format!("lsd: peer {flood_ip}:")))
        .count();
    assert!(from_flood <= 100, "{from_flood} peers taken from the flood");
}

#[test]
#[ignore = "needs root and iproute2 (ip netns)"]
fn dht_finds_two_peers_through_a_bt_dht_node() {
    const ROLES: [&str; 4] = ["dht", "peer1", "peer2", "client"];
    let w = World::new("dht", &ROLES, 216, &["peer1", "peer2"]);
    let (_node, boot) = w.dht_node(&ROLES);
    let mut peers = Vec::new();
    for role in ["peer1", "peer2"] {
        peers.push(w.spawn(
            role,
            &mut w.bt(
                role,
                &[
                    "peer",
                    "--profile",
                    role,
                    "--bootstrap",
                    &boot,
                    "--upload-limit",
                    UPLOAD_LIMIT,
                ],
            ),
        ));
    }
    for role in ["peer1", "peer2"] {
        w.wait_log(role, "dht: announced blob.bin", &ROLES);
    }
    w.download(
        &["client", "--bootstrap", &boot],
        &["peer1", "peer2"],
        &["dht"],
        &ROLES,
    );

    // The routing table is kept in the profile folder: it names the bootstrap node.
    let nodes = w.folder("peer1").join(".bt-dht-nodes");
    wait_for(
        "peer1 saving its routing table",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&nodes)
                .ok()
                .filter(|t| t.contains(&w.lan.addr("dht")))
        },
        || w.logs(&ROLES),
    );
    // Restarted with a bootstrap that leads nowhere, peer1 still joins through the saved
    // table and finds peer2 (which holds the torrent) through the DHT.
    drop(peers.remove(0));
    std::fs::remove_file(w.log("peer1")).unwrap();
    std::fs::remove_file(w.folder("peer1").join("blob.bin")).unwrap();
    let nowhere = format!("{}:6881", w.lan.addr("client"));
    let _again = w.spawn(
        "peer1",
        &mut w.bt(
            "peer1",
            &["peer", "--profile", "peer1", "--bootstrap", &nowhere],
        ),
    );
    w.wait_log("peer1", "blob.bin: 100%", &ROLES);
    let log = log_text(&w.log("peer1"));
    assert!(log.contains("(via 1 dht)"), "{log}");
}

#[test]
#[ignore = "needs root and iproute2 (ip netns)"]
fn a_magnet_link_without_a_tracker_is_fetched_through_the_dht_or_lsd() {
    const ROLES: [&str; 4] = ["dht", "peer1", "viadht", "vialsd"];
    let w = World::new("mag", &ROLES, 218, &["peer1"]);
    w.lan.route_multicast();
    let (_node, boot) = w.dht_node(&ROLES);
    let _peer = w.spawn(
        "peer1",
        &mut w.bt(
            "peer1",
            &["peer", "--profile", "peer1", "--bootstrap", &boot, "--lsd"],
        ),
    );
    w.wait_log("peer1", "dht: announced blob.bin", &ROLES);
    // The link names neither a tracker nor a peer: only the DHT or LSD can find peer1.
    let link = format!("magnet:?xt=urn:btih:{}&dn=blob.bin", info_hash(&w.torrent));
    for (role, how) in [
        ("viadht", ["--bootstrap", boot.as_str()]),
        ("vialsd", ["--lsd", ""]),
    ] {
        std::fs::remove_file(w.folder(role).join("blob.torrent")).unwrap();
        let mut args = vec!["client", "--exit-when-done", "--stall-timeout", "60"];
        args.extend(how.iter().filter(|a| !a.is_empty()));
        args.push(&link);
        let out = run(&mut w.bt(role, &args), Duration::from_secs(120));
        let said = format!("{out:?}\n{}", w.logs(&ROLES));
        assert!(out.status.success(), "{role} failed:\n{said}");
        assert!(
            std::fs::read(w.folder(role).join("blob.bin")).ok() == Some(w.data.clone()),
            "{role}: the downloaded file differs\n{said}"
        );
        assert!(
            w.folder(role).join("blob.bin.torrent").exists()
                || std::fs::read_dir(w.folder(role))
                    .unwrap()
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "torrent")),
            "{role}: the metadata was not saved in the library\n{said}"
        );
        let source = if role == "viadht" { "dht" } else { "lsd" };
        let log = format!("{}{}", out.stdout, out.stderr);
        assert!(
            log.contains(&format!(
                "{source}: peer {}:{PORT} for the magnet link",
                w.lan.addr("peer1")
            )) || log.contains(&format!("via {source})")),
            "{role} did not find peer1 by {source}:\n{said}"
        );
    }
}

/// `tests/clients/lt_lan.py MODE ...` on a role's machine.
fn libtorrent(w: &World, role: &str, mode: &str, dir: &Path, port: u16, extra: &[&str]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/lt_lan.py");
    let mut cmd = w.lan.exec(role, &w.machine(role), PYTHON);
    cmd.arg(script)
        .arg(mode)
        .arg(w.folder(role).join("blob.torrent"))
        .arg(dir)
        .args([w.lan.addr(role), port.to_string()])
        .args(extra);
    cmd
}

// libtorrent cannot use a bt node as its DHT bootstrap: the `mainline` crate (8.0.1, and 6.x
// and 7.x alike) parses only 4-byte KRPC transaction ids, and libtorrent 2.0.8 sends 2-byte
// ones, so the crate drops every query libtorrent sends it (bt's own queries to libtorrent
// nodes are answered: the reply echoes our id). The LAN's DHT therefore starts from a
// libtorrent node here; bt and libtorrent meet on it.
#[test]
#[ignore = "needs root, iproute2 and python3-libtorrent"]
fn libtorrent_and_bt_find_each_other_by_dht_and_lsd() {
    common::require_libtorrent();
    const ROLES: [&str; 4] = ["dht", "bt", "lt", "client"];
    let w = World::new("ltd", &ROLES, 217, &["bt"]);
    w.lan.route_multicast();
    let node_log = w.machine("dht").join("lt-node.log");
    let mut node_cmd = w.lan.exec("dht", &w.machine("dht"), PYTHON);
    node_cmd
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/lt_lan.py"))
        .args(["node", "-", "-", &w.lan.addr("dht"), "6881"]);
    let _node = spawn_logged(&mut node_cmd, &node_log);
    wait_for(
        "the libtorrent DHT node listening",
        Duration::from_secs(30),
        || {
            log_text(&node_log)
                .contains("listen_succeeded")
                .then_some(())
        },
        || log_text(&node_log),
    );
    let boot = format!("{}:6881", w.lan.addr("dht"));
    let mut seed = w.spawn(
        "bt",
        &mut w.bt(
            "bt",
            &["peer", "--profile", "bt", "--bootstrap", &boot, "--lsd"],
        ),
    );
    w.wait_log("bt", "dht: announced blob.bin", &ROLES);
    let (lt_ip, bt_ip) = (w.lan.addr("lt"), w.lan.addr("bt"));

    // libtorrent, its DHT bootstrapped from the LAN's node only, finds the bt seeder.
    let by_dht = w.machine("lt").join("by-dht");
    let got = run(
        &mut libtorrent(&w, "lt", "get", &by_dht, PORT, &["--dht", &boot]),
        Duration::from_secs(150),
    );
    let said = format!("{got:?}\n{}", w.logs(&ROLES));
    assert!(got.status.success(), "libtorrent did not finish:\n{said}");
    assert!(std::fs::read(by_dht.join("blob.bin")).unwrap() == w.data);

    // bt's LSD finds libtorrent: bt hears libtorrent's announce and calls it; the download
    // runs with LSD as libtorrent's only way to peers.
    let by_lsd = w.machine("lt").join("by-lsd");
    let got = run(
        &mut libtorrent(&w, "lt", "get", &by_lsd, PORT, &["--lsd"]),
        Duration::from_secs(150),
    );
    let said = format!("{got:?}\n{}", w.logs(&ROLES));
    assert!(
        got.status.success(),
        "libtorrent did not finish by LSD:\n{said}"
    );
    assert!(std::fs::read(by_lsd.join("blob.bin")).unwrap() == w.data);
    w.wait_log("bt", &format!("lsd: peer {lt_ip}:{PORT}"), &ROLES);

    // libtorrent's LSD finds bt: a libtorrent seeder on another port is new to bt, which
    // answers its announce with its own; libtorrent reports bt as an LSD peer.
    let lt_port = PORT + 1;
    let lt_seed = w.machine("lt").join("lt-seed.log");
    let _lt = spawn_logged(
        &mut libtorrent(
            &w,
            "lt",
            "seed",
            &by_dht,
            lt_port,
            &["--dht", &boot, "--lsd", "--timeout", "300"],
        ),
        &lt_seed,
    );
    // bt answers at once, or once a minute has passed since its last answer (BEP 14's pace).
    wait_for(
        "libtorrent hearing bt's LSD announce",
        Duration::from_secs(100),
        || {
            log_text(&lt_seed)
                .lines()
                .any(|l| l.contains("lsd_peer") && l.contains(&bt_ip))
                .then_some(())
        },
        || format!("{}\n{}", log_text(&lt_seed), w.logs(&ROLES)),
    );

    // bt finds a libtorrent seeder through the DHT (the bt seeder is gone), once libtorrent
    // has announced it to the LAN's node.
    seed.stop(Duration::from_secs(10));
    let announced = format!("p: {lt_port} nodes: ");
    wait_for(
        "libtorrent announcing its seed to the DHT",
        Duration::from_secs(60),
        || {
            log_text(&lt_seed)
                .lines()
                .any(|l| {
                    l.contains("sending announce_peer")
                        && l.contains(&announced)
                        && !l.contains(&format!("{announced}0 "))
                })
                .then_some(())
        },
        || log_text(&lt_seed),
    );
    // libtorrent, which looks the torrent up too, may call the client before the client
    // calls it: the connection is then incoming, but the client found it through the DHT.
    let out = w.download(
        &["client", "--bootstrap", &boot],
        &["lt"],
        &["dht", "incoming"],
        &ROLES,
    );
    let found = format!("dht: peer {lt_ip}:{lt_port} for blob.bin");
    assert!(
        out.contains(&found),
        "the client never found libtorrent:\n{out}"
    );
}
