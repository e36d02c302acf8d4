//! The options people expect of a BitTorrent client, with real `bt` processes on loopback:
//! choosing files (`--only`, `--files`, kept for the next run), a download rate limit, and
//! seeding goals (`--seed-ratio`, `--seed-time`) that end the client with exit code 0.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::live::{fixture, peer_folder, same_tree, start_peer};
use common::{bt, write_files, Proc, SHORT};

/// How long a download of a few MB over loopback may take.
const DOWNLOAD: Duration = Duration::from_secs(60);

/// Piece length of the album below: every file but the last is a whole number of pieces, so
/// no piece is shared between a chosen file and one left out.
const PIECE: usize = 32 * 1024;

/// A seed folder `seed/album` of four files (numbered by `bt info --files` in this order) and
/// its torrent `album.torrent`; returns the files' bytes.
fn album(d: &Path) -> Vec<Vec<u8>> {
    let bytes = write_files(
        &d.join("seed/album"),
        &[
            ("1.bin", 4 * PIECE),
            ("2.flac", 3 * PIECE),
            ("3.txt", 2 * PIECE),
            ("sub/4.flac", 100_000),
        ],
    );
    let out = bt(
        d,
        [
            "create",
            "seed/album",
            "--tracker",
            "http://127.0.0.1:9/announce",
            "--piece-length",
            "32k",
            "-o",
            "album.torrent",
        ],
    );
    out.success();
    bytes
}

/// A peer seeding `seed/album` from folder `peer`.
fn album_peer(d: &Path) -> (Proc, String) {
    let f = d.join("peer");
    std::fs::create_dir_all(&f).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(d.join("seed/album"))
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(d.join("album.torrent"), f.join("album.torrent")).unwrap();
    let (p, port) = start_peer(d, &f, &[]);
    (p, format!("127.0.0.1:{port}"))
}

fn client(d: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "client",
        "--port",
        "0",
        "-o",
        "out",
        "--stall-timeout",
        "30",
    ];
    args.extend_from_slice(extra);
    Proc::start(&args, d)
}

#[test]
fn chosen_files_alone_are_written_and_a_restart_keeps_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = album(d);
    // `bt info --files` numbers the files from 1, in torrent order, with their sizes.
    let info = bt(d, ["info", "album.torrent", "--files"]).success().stdout;
    for (n, name) in [(1, "1.bin"), (2, "2.flac"), (3, "3.txt"), (4, "sub/4.flac")] {
        assert!(
            info.lines()
                .any(|l| l.trim_start().starts_with(&format!("{n} ")) && l.ends_with(name)),
            "{info}"
        );
    }
    let (_peer, from) = album_peer(d);

    let mut c = client(
        d,
        &[
            "--exit-when-done",
            "--peer",
            &from,
            "--only",
            "*.flac",
            "album.torrent",
        ],
    );
    let status = c.wait_exit(DOWNLOAD);
    assert!(status.success(), "{}", c.log());
    assert!(c.log().contains("(2 of 4 files)"), "{}", c.log());
    let out = d.join("out/album");
    assert_eq!(std::fs::read(out.join("2.flac")).unwrap(), data[1]);
    assert_eq!(std::fs::read(out.join("sub/4.flac")).unwrap(), data[3]);
    assert!(!out.join("1.bin").exists(), "a file left out was written");
    assert!(!out.join("3.txt").exists(), "a file left out was written");

    // `bt show` says which files were chosen, and that their pieces are verified.
    let show = bt(d, ["show", "--profile", "client", "--folder", "out"])
        .success()
        .stdout;
    assert!(show.contains("2 of 4 files chosen (2,4)"), "{show}");
    let of_pieces = (3 * PIECE).div_ceil(PIECE) + 100_000usize.div_ceil(PIECE);
    assert!(
        show.contains(&format!("{of_pieces} of their {of_pieces} pieces verified")),
        "{show}"
    );

    // A restart of the same download, with no choice given, keeps the saved one: it is
    // complete as it stands and fetches nothing more.
    let mut again = client(d, &["--exit-when-done", "--peer", &from, "album.torrent"]);
    let status = again.wait_exit(DOWNLOAD);
    assert!(status.success(), "{}", again.log());
    assert!(
        again.log().contains("already complete on disk"),
        "{}",
        again.log()
    );
    assert!(!out.join("1.bin").exists() && !out.join("3.txt").exists());

    // A new choice replaces it: file 1 (by number) and the rest of the torrent stays out.
    let mut third = client(
        d,
        &[
            "--exit-when-done",
            "--peer",
            &from,
            "--files",
            "1-2",
            "album.torrent",
        ],
    );
    let status = third.wait_exit(DOWNLOAD);
    assert!(status.success(), "{}", third.log());
    assert_eq!(std::fs::read(out.join("1.bin")).unwrap(), data[0]);
    assert!(!out.join("3.txt").exists());

    // Every file again: the whole torrent, identical to the source.
    let mut all = client(
        d,
        &[
            "--exit-when-done",
            "--peer",
            &from,
            "--files",
            "1-4",
            "album.torrent",
        ],
    );
    let status = all.wait_exit(DOWNLOAD);
    assert!(status.success(), "{}", all.log());
    same_tree(&d.join("seed/album"), &out);
    assert!(!d.join("out").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("selection")));
}

#[test]
fn a_file_number_out_of_range_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    album(d);
    for (files, says) in [
        ("9", "there is no file 9: the torrent has 4 files"),
        ("3-1", "backwards"),
        ("two", "`two` is not a file number"),
    ] {
        let mut c = client(d, &["--files", files, "album.torrent"]);
        let status = c.wait_exit(SHORT);
        assert_eq!(status.code(), Some(1), "{}", c.log());
        assert!(c.log().contains(says), "{files}: {}", c.log());
        assert!(c.log().contains("album"), "{}", c.log());
    }
    let mut c = client(d, &["--only", "*.mp3", "album.torrent"]);
    assert_eq!(c.wait_exit(SHORT).code(), Some(1));
    assert!(
        c.log().contains("matches none of the 4 files of album"),
        "{}",
        c.log()
    );
}

#[test]
fn a_download_limit_holds_the_rate_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // About 3.6 MB: over 3 s at 1 MiB/s, a blink without the limit.
    let torrent = fixture(d, 2);
    let total = common::live::total_len(&torrent) as f64;
    let folder = peer_folder(d, "peer", &torrent);
    let (_peer, port) = start_peer(d, &folder, &[]);
    let from = format!("127.0.0.1:{port}");
    let limit_kib = 1024.0;
    let started = Instant::now();
    let mut c = client(
        d,
        &[
            "--exit-when-done",
            "--peer",
            &from,
            "--download-limit",
            "1024",
            "set.torrent",
        ],
    );
    let status = c.wait_exit(DOWNLOAD);
    // The whole run, start-up included: only ever slower than the transfer itself.
    let elapsed = started.elapsed().as_secs_f64();
    assert!(status.success(), "{}", c.log());
    same_tree(&d.join("seed/set"), &d.join("out/set"));
    let rate = total / elapsed;
    eprintln!(
        "{total} bytes in {elapsed:.2} s: {:.0} KiB/s with a limit of {limit_kib} KiB/s",
        rate / 1024.0
    );
    assert!(
        rate < 2.0 * limit_kib * 1024.0,
        "{:.0} KiB/s is not held to {limit_kib} KiB/s",
        rate / 1024.0
    );
}

#[test]
fn seed_goals_end_the_client_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let folder = peer_folder(d, "peer", &torrent);
    let (_peer, port) = start_peer(d, &folder, &[]);
    let from = format!("127.0.0.1:{port}");

    // --seed-time: seeds for that long once complete, then exits 0.
    let mut timed = client(d, &["--peer", &from, "--seed-time", "2s", "set.torrent"]);
    let status = timed.wait_exit(DOWNLOAD);
    assert!(status.success(), "{}", timed.log());
    let lines = timed.lines();
    let complete = lines.iter().position(|l| l.starts_with("set: complete: "));
    let met = lines.iter().position(|l| l.contains("seed goal met"));
    assert!(
        matches!((complete, met), (Some(c), Some(m)) if c < m),
        "{}",
        lines.join("\n")
    );
    same_tree(&d.join("seed/set"), &d.join("out/set"));

    // --seed-ratio 1: it seeds until it has sent as much as it downloaded. Here a second
    // client takes the whole torrent from it (and from nobody else), which is exactly that.
    let mut ratio = Proc::start(
        &[
            "client",
            "--port",
            "0",
            "-o",
            "first",
            "--peer",
            &from,
            "--seed-ratio",
            "1",
            "set.torrent",
        ],
        d,
    );
    let first = format!("127.0.0.1:{}", ratio.port());
    ratio.wait_line("set: complete: ", DOWNLOAD);
    assert!(
        ratio.running(),
        "the goal is not met before anyone downloads"
    );
    let mut second = Proc::start(
        &[
            "client",
            "--port",
            "0",
            "-o",
            "second",
            "--exit-when-done",
            "--peer",
            &first,
            "set.torrent",
        ],
        d,
    );
    assert!(second.wait_exit(DOWNLOAD).success(), "{}", second.log());
    let status = ratio.wait_exit(DOWNLOAD);
    assert!(status.success(), "{}", ratio.log());
    assert!(ratio.log().contains("seed goal met"), "{}", ratio.log());
    same_tree(&d.join("seed/set"), &d.join("second/set"));
}
