//! `bt client` and `bt peer` as a new user meets them: no `--profile` and no `peers.toml`
//! (built-in defaults, said so), `-o DIR`, `--json` and plain progress lines, Ctrl-C on an
//! unfinished `--exit-when-done` download (exit 130), and a `.torrent` dropped into a running
//! peer's folder.

mod common;

use std::time::Duration;

use common::live::{fixture, same_tree};
use common::{unused_port, Proc, SHORT};

/// How long a download of a few MB over loopback may take.
const DOWNLOAD: Duration = Duration::from_secs(60);

#[test]
fn a_peer_picks_up_a_dropped_torrent_and_a_default_client_downloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    std::fs::create_dir(d.join("lib")).unwrap();
    let mut peer = Proc::start(
        &["peer", "--profile", "x", "--folder", "lib", "--port", "0"],
        d,
    );
    peer.wait_line("holds no .torrent files yet", SHORT);
    let port = peer.port();
    // The data first, then the torrent (as `cp -r` and a drop would leave them).
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(d.join("seed/set"))
        .arg(d.join("lib"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(&torrent, d.join("lib/set.torrent")).unwrap();
    let added = peer.wait_line("added set (", SHORT);
    assert!(added.contains("seeding"), "{added}");

    // No --profile, no peers.toml here: the client profile with the built-in defaults.
    let from = format!("127.0.0.1:{port}");
    let base = [
        "client",
        "--port",
        "0",
        "--exit-when-done",
        "--peer",
        &from,
        "set.torrent",
    ];
    let mut json = Proc::start(&[&base[..], &["-o", "json", "--json"]].concat(), d);
    let status = json.wait_exit(DOWNLOAD);
    let lines = json.lines();
    assert!(status.success(), "{}", lines.join("\n"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no peers.toml in this folder; using the built-in defaults")),
        "{}",
        lines.join("\n")
    );
    same_tree(&d.join("seed/set"), &d.join("json/set"));
    let (_, stdout) = json.finish(SHORT);
    let objects: Vec<serde_json::Value> = stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = objects.last().expect("JSON lines");
    assert_eq!(last["event"], "complete", "{last}");
    assert_eq!(last["name"], "set");
    assert!(last["received"].as_u64().unwrap() > 1_000_000, "{last}");
    assert_eq!(last["from"][0]["addr"], from.as_str());

    // Plain lines (not a terminal): printed on change, never the same line twice in a row.
    let mut plain = Proc::start(&[&base[..], &["-o", "plain"]].concat(), d);
    let status = plain.wait_exit(DOWNLOAD);
    let lines = plain.lines();
    assert!(status.success(), "{}", lines.join("\n"));
    // (Status lines only: a tracker that keeps failing may warn twice with nothing between.)
    let status_lines: Vec<&String> = lines.iter().filter(|l| l.starts_with("set: ")).collect();
    assert!(
        status_lines.windows(2).all(|w| w[0] != w[1]),
        "{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.starts_with("set: complete: ")),
        "{}",
        lines.join("\n")
    );
    same_tree(&d.join("seed/set"), &d.join("plain/set"));
    drop(peer);
}

#[test]
fn ctrl_c_on_an_unfinished_exit_when_done_download_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d, 1);
    let nobody = format!("127.0.0.1:{}", unused_port());
    let mut c = Proc::start(
        &[
            "client",
            "--port",
            "0",
            "-o",
            "out",
            "--exit-when-done",
            "--peer",
            &nobody,
            "set.torrent",
        ],
        d,
    );
    c.wait_line("listening on", SHORT);
    // SAFETY: plain syscall on our own unreaped child.
    unsafe { libc::kill(c.pid() as libc::pid_t, libc::SIGINT) };
    let status = c.wait_exit(SHORT);
    assert_eq!(status.code(), Some(130), "{}", c.log());
    assert!(c.log().contains("bt: interrupted"), "{}", c.log());
}
