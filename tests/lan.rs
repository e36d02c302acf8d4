//! The four-terminal demo across a LAN, following the README's "Across a LAN" steps: each role
//! runs on its own "machine", a Linux network namespace with its own folder, and the four are
//! joined by a bridge on a private test subnet that exists only inside the namespaces (the
//! bridge sits in a fifth namespace; nothing is added to the root namespace). Needs root and
//! iproute2, so it is `#[ignore]`d; `scripts/test.sh` runs it. Every process is killed by its
//! guard and every namespace deleted by the [`Lan`] guard, also when the test fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bt::config::Config;
use bt::proto::metainfo::Metainfo;
use common::netns::Lan;
use common::{bt, log_text, run, spawn_logged, wait_for, SHORT};

/// The roles, one machine (namespace) each; the n-th gets host address n + 1 on the subnet.
const ROLES: [&str; 4] = ["tracker", "peer1", "peer2", "client"];

/// The repository's `peers.toml` with one change, as the README says: `announce` names the
/// tracker machine.
fn lan_config(repo: &Path, announce: &str) -> String {
    let shipped = std::fs::read_to_string(repo.join("peers.toml")).expect("read peers.toml");
    let mut changed = 0;
    let lines: Vec<String> = shipped
        .lines()
        .map(|l| match l.split_once('=') {
            Some((key, _)) if key.trim() == "announce" => {
                changed += 1;
                format!("announce = \"{announce}\"")
            }
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(
        changed, 1,
        "peers.toml should set `announce` once:\n{shipped}"
    );
    lines.join("\n") + "\n"
}

/// Copy `from` (a file or a folder) into the folder `to`.
#[track_caller]
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    run(Command::new("cp").arg("-a").arg(from).arg(to), SHORT).success();
}

/// Every file below `root` (relative path -> bytes).
fn files_below(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for e in entries {
            let path = e.expect("a folder entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("below root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read a file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The block of `bt peers` output about one torrent (from its info-hash line to the next
/// blank line).
fn torrent_block<'a>(table: &'a str, info_hash: &str) -> Option<&'a str> {
    table
        .split("\n\n")
        .find(|block| block.trim_start().starts_with(info_hash))
}

/// The percentage in the client summary line "  from ADDR:PORT (PEER ID): SIZE (NN%)" of the
/// peer at `ip`.
fn share_of(summary: &str, ip: &str) -> Option<f64> {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("from {ip}:")))?;
    line.rsplit_once('(')?.1.strip_suffix("%)")?.parse().ok()
}

#[test]
#[ignore = "needs root and iproute2 (ip netns)"]
fn the_four_terminal_demo_across_a_lan() {
    let began = Instant::now();
    // Declared first, so dropped last: the processes are killed before their namespaces go.
    let lan = Lan::new("lan", &ROLES, 213);
    let built = began.elapsed();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tracker_ip = lan.addr("tracker");
    let announce = format!("http://{tracker_ip}:6969/announce");
    let config = lan_config(repo, &announce);
    let profiles = Config::parse(&config, Path::new("peers.toml"))
        .expect("the LAN peers.toml parses")
        .profiles;
    let port = |role: &str| profiles[role].port;

    // One folder per machine ("this repository on each"): its peers.toml, and what it uses.
    // peer2's machine also pins its profile to its LAN address (the `ip` key); the others
    // listen on every interface, as shipped.
    let machine = |role: &str, config: &str| {
        let m = dir.path().join(role);
        std::fs::create_dir_all(&m).expect("mkdir");
        std::fs::write(m.join("peers.toml"), config).expect("write peers.toml");
        m
    };
    let pinned = format!("[profiles.peer2]\nip = \"{}\"\n", lan.addr("peer2"));
    let peer2_config = config.replacen("[profiles.peer2]\n", &pinned, 1);
    assert_ne!(peer2_config, config, "peers.toml has no [profiles.peer2]");
    let tracker_m = machine("tracker", &config);
    let peer1_m = machine("peer1", &config);
    copy(&repo.join("peer1"), &peer1_m);
    let peer2_m = machine("peer2", &peer2_config);
    copy(&repo.join("peer2"), &peer2_m);
    let client_m = machine("client", &config);
    copy(&repo.join("data/album.torrent"), &client_m.join("data"));
    std::fs::create_dir_all(client_m.join("client")).expect("mkdir client");

    // Make the torrents announce to the tracker machine, both ways the README gives: peer1's
    // and the client's are rewritten once with `bt edit` (the info-hash stays), peer2 passes
    // `--tracker URL` on every run.
    let album_hash = Metainfo::from_bytes(&std::fs::read(repo.join("data/album.torrent")).unwrap())
        .expect("data/album.torrent parses")
        .info_hash
        .to_string();
    let rewrite = |machine: &Path, torrent: &str| {
        let out = bt(machine, ["edit", torrent, "--tracker", &announce]).success();
        assert!(out.stdout.contains("(unchanged)"), "{}", out.stdout);
    };
    // `for t in peer1/*.torrent; do bt edit "$t" --tracker URL; done`
    let mut peer1_torrents = 0;
    for entry in std::fs::read_dir(peer1_m.join("peer1")).expect("list peer1/") {
        let name = entry.expect("a folder entry").file_name();
        let name = name.to_str().expect("a UTF-8 name");
        if name.ends_with(".torrent") {
            rewrite(&peer1_m, &format!("peer1/{name}"));
            peer1_torrents += 1;
        }
    }
    assert!(
        peer1_torrents >= 2,
        "peer1/ should hold the sample torrents"
    );
    rewrite(&client_m, "data/album.torrent");

    let logs_dir = dir.path().join("logs");
    std::fs::create_dir_all(&logs_dir).expect("mkdir logs");
    let log = |role: &str| logs_dir.join(format!("{role}.log"));
    let all_logs = || {
        ["tracker", "peer1", "peer2"]
            .iter()
            .map(|r| format!("--- {r} ---\n{}", log_text(&log(r))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let wait_log = |role: &str, needle: &str| {
        wait_for(
            &format!("{role} printing {needle:?}"),
            Duration::from_secs(30),
            || log_text(&log(role)).contains(needle).then_some(()),
            all_logs,
        )
    };

    // Terminal 1: `bt tracker`, on every interface of its machine (`bind` as shipped).
    let _tracker = spawn_logged(
        lan.bt("tracker", &tracker_m).arg("tracker"),
        &log("tracker"),
    );
    wait_log("tracker", "listening on 0.0.0.0:6969");

    // Terminals 2 and 3. The upload limit only stretches the 197 KiB download over about a
    // second and a half, so that both peers take part in it.
    let _peer1 = spawn_logged(
        lan.bt("peer1", &peer1_m)
            .args("peer --profile peer1 --upload-limit 64".split(' ')),
        &log("peer1"),
    );
    let _peer2 = spawn_logged(
        lan.bt("peer2", &peer2_m)
            .args("peer --profile peer2 --upload-limit 64 --tracker".split(' '))
            .arg(&announce),
        &log("peer2"),
    );
    wait_log("peer1", &format!("listening on 0.0.0.0:{}", port("peer1")));
    let peer2_at = format!("{}:{}", lan.addr("peer2"), port("peer2"));
    wait_log("peer2", &format!("listening on {peer2_at}"));

    // `bt peers` on the client's machine reads the tracker from its peers.toml; wait until the
    // tracker knows both peers, by their machines' addresses.
    let peer1_at = format!("{}:{}", lan.addr("peer1"), port("peer1"));
    let peers_table = || run(lan.bt("client", &client_m).arg("peers"), SHORT);
    wait_for(
        "the tracker listing both peers",
        Duration::from_secs(30),
        || {
            let out = peers_table();
            let block = torrent_block(&out.stdout, &album_hash)?;
            (block.contains(&peer1_at) && block.contains(&peer2_at)).then_some(())
        },
        || format!("{:?}\n{}", peers_table(), all_logs()),
    );

    // Terminal 4: the README's command, exiting once every piece is verified.
    let client = run(
        lan.bt("client", &client_m)
            .args("client --profile client --exit-when-done data/album.torrent".split(' ')),
        Duration::from_secs(90),
    );
    let said = format!("{client:?}\n{}", all_logs());
    assert!(client.status.success(), "the client failed:\n{said}");

    // Byte for byte what the peers hold, no file missing or extra (the empty one included).
    let want = files_below(&repo.join("data/album"));
    let got = files_below(&client_m.join("client/album"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the client's album holds other files"
    );
    for (path, bytes) in &want {
        assert!(got[path] == *bytes, "{} differs", path.display());
    }

    // Both peers sent data, each from its own machine's address, and nobody else did.
    let from_lines = client
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("from "))
        .count();
    assert_eq!(from_lines, 2, "two peers should have sent data:\n{said}");
    for role in ["peer1", "peer2"] {
        let share = share_of(&client.stdout, &lan.addr(role))
            .unwrap_or_else(|| panic!("no data from {role} at {}:\n{said}", lan.addr(role)));
        assert!(share >= 10.0, "{role} sent only {share}%:\n{said}");
    }

    // The tracker saw the client by its address: `started`, `completed`, and `stopped` last
    // (the client has exited, so its announces are all in), ...
    let client_at = format!("{}:{}", lan.addr("client"), port("client"));
    // The tracker may write its `stopped` line just after it answered: wait for it.
    wait_for(
        "the tracker's stopped line for the client",
        Duration::from_secs(30),
        || {
            log_text(&log("tracker"))
                .lines()
                .any(|l| l.contains("stopped") && l.contains(&client_at))
                .then_some(())
        },
        all_logs,
    );
    let tracker_log = log_text(&log("tracker"));
    let events: Vec<&str> = tracker_log
        .lines()
        .filter(|l| l.contains(&album_hash) && l.contains(&client_at))
        .filter_map(|l| l.split_once("] ")?.1.split_whitespace().next())
        .collect();
    assert_eq!(
        events,
        ["started", "completed", "stopped"],
        "the tracker's events from the client at {client_at}:\n{said}"
    );
    // ... so it lists both peers and no longer the client, with the download counted.
    let table = peers_table().success().stdout;
    let block = torrent_block(&table, &album_hash)
        .unwrap_or_else(|| panic!("`bt peers` lists no album:\n{table}"));
    assert!(
        block.contains(&peer1_at)
            && block.contains(&peer2_at)
            && !block.contains(&client_at)
            && block.contains("seeders 2")
            && block.contains("completed 1"),
        "{table}"
    );
    // Every torrent was pointed at the tracker machine: no peer failed to announce.
    for role in ["peer1", "peer2"] {
        assert!(
            !log_text(&log(role)).contains("announce failed"),
            "{role} could not announce:\n{}",
            all_logs()
        );
    }
    eprintln!(
        "LAN of {} namespaces built in {built:?}; test done in {:?}",
        lan.namespaces(),
        began.elapsed()
    );
}
