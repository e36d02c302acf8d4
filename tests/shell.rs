//! `bt shell` end to end, driven through piped stdin (and once through a pseudo-terminal under
//! `script`): help, mistakes, the file commands, and background downloads from a real `bt peer`
//! found directly or through a real `bt tracker`. Ports are picked by the OS and read back from
//! what each process prints; every process is killed by its own guard, even when a test fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bt_info, require_tool, unused_port, write_files, Proc, Spec, BT, SHORT};

/// The shared folder: files in nested folders, one empty.
const ALBUM: &[Spec] = &[
    ("album/a.bin", 700_001),
    ("album/sub/b.bin", 123_457),
    ("album/sub/empty", 0),
];

/// How long a download of a few hundred KiB over loopback may take.
const DOWNLOAD: Duration = Duration::from_secs(60);

/// `bt shell --profile client --folder client --port 0` in `dir`, once it is ready.
fn shell(dir: &Path) -> Proc {
    let mut sh = Proc::start(
        &[
            "shell",
            "--profile",
            "client",
            "--folder",
            "client",
            "--port",
            "0",
        ],
        dir,
    );
    sh.wait_line("bt shell: profile client", SHORT);
    sh
}

/// Type `line` at the shell.
fn say(sh: &mut Proc, line: &str) {
    sh.send(format!("{line}\n"));
}

/// Type `status` every few hundred milliseconds until a line for which `want` holds comes (or
/// has come already).
fn poll_status(sh: &mut Proc, what: &str, want: impl Fn(&str) -> bool) -> String {
    if let Some(line) = sh.lines().iter().find(|l| want(l)) {
        return line.clone();
    }
    let deadline = Instant::now() + DOWNLOAD;
    while Instant::now() < deadline {
        say(sh, "status");
        if let Some(line) = sh.try_wait_for(Duration::from_millis(300), &want) {
            return line;
        }
    }
    panic!(
        "status never showed {what} within {DOWNLOAD:?}; saw:\n{}",
        sh.log()
    );
}

/// `quit`, then the shell exits 0 after stopping its downloads.
fn quit(mut sh: Proc) -> Vec<String> {
    say(&mut sh, "quit");
    let status = sh.wait_exit(SHORT);
    assert!(
        status.success(),
        "bt shell exited with {status}; saw:\n{}",
        sh.log()
    );
    sh.lines()
}

/// `create` the album torrent at the shell, announcing to `tracker`; returns its info-hash.
fn create_album(sh: &mut Proc, tracker: &str) -> String {
    say(
        sh,
        &format!("create seed/album -o seed/album.torrent --tracker {tracker}"),
    );
    let line = sh.wait_line("created seed/album.torrent", SHORT);
    line.rsplit("info-hash ").next().unwrap().trim().to_string()
}

/// `bt peer` serving the folder `seed` of `dir`; returns it and its port.
fn seeder(dir: &Path) -> (Proc, u16) {
    let mut peer = Proc::start(
        &[
            "peer",
            "--profile",
            "seed",
            "--folder",
            "seed",
            "--port",
            "0",
        ],
        dir,
    );
    let port = peer.port();
    peer.wait_line("album: ", SHORT);
    (peer, port)
}

/// Every file of the album arrived byte for byte.
fn same_album(dir: &Path, data: &[Vec<u8>]) {
    for ((path, _), bytes) in ALBUM.iter().zip(data) {
        let got = std::fs::read(dir.join("client").join(path))
            .unwrap_or_else(|e| panic!("client/{path}: {e}"));
        assert!(got == *bytes, "client/{path} differs from the seed's");
    }
}

#[test]
fn help_mistakes_and_the_file_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(&d.join("seed"), ALBUM);
    let mut sh = shell(d);

    say(&mut sh, "help");
    sh.wait_line("  help ", SHORT);
    for name in [
        "create", "edit", "show", "info", "peers", "start", "status", "wait", "quit",
    ] {
        let entry = format!("  {name:<8} ");
        assert!(
            sh.lines().iter().any(|l| l.starts_with(&entry)),
            "`help` does not list {name}:\n{}",
            sh.log()
        );
    }
    say(&mut sh, "help create");
    sh.wait_for("with create's usage", SHORT, |l| {
        l.starts_with("Usage: create ") && l.contains("<path>")
    });
    sh.wait_line("Examples:", SHORT);
    sh.wait_for("with an example", SHORT, |l| l.starts_with("  create "));

    // Mistakes: one line each, and the shell goes on.
    say(&mut sh, "frobnicate --now");
    sh.wait_line("error: unknown command `frobnicate`", SHORT);
    say(&mut sh, "create");
    let e = sh.wait_line("error: ", SHORT);
    assert!(e.contains("path"), "{e}");
    say(&mut sh, "info missing.torrent --pieces");
    sh.wait_line("error: cannot open missing.torrent", SHORT);
    say(&mut sh, "info 'unclosed");
    sh.wait_line("error: cannot read that line", SHORT);
    sh.send(b"info \xff.torrent\n");
    sh.wait_line("error: that line is not UTF-8 text", SHORT);

    let tracker = format!("http://127.0.0.1:{}/announce", unused_port());
    let hash = create_album(&mut sh, &tracker);
    assert_eq!(hash, bt_info(&d.join("seed/album.torrent"))["info_hash"]);
    say(&mut sh, "info seed/album.torrent --files");
    sh.wait_line(&format!("info-hash:     {hash}"), SHORT);
    sh.wait_line("album/sub/b.bin", SHORT);
    say(
        &mut sh,
        "edit seed/album.torrent --tracker http://127.0.0.1:1/announce",
    );
    sh.wait_line(&format!("info-hash {hash} (unchanged)"), SHORT);
    say(&mut sh, "show");
    sh.wait_line("profile client: folder client", SHORT);
    sh.wait_line("(no torrents", SHORT);
    say(&mut sh, "status");
    sh.wait_line("nothing started", SHORT);
    quit(sh);
}

#[test]
fn start_downloads_in_the_background_from_a_direct_peer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = write_files(&d.join("seed"), ALBUM);
    let mut sh = shell(d);
    // The tracker leads nowhere: the peer is given directly.
    let nowhere = format!("http://127.0.0.1:{}/announce", unused_port());
    let hash = create_album(&mut sh, &nowhere);
    let (_peer, port) = seeder(d);

    say(
        &mut sh,
        &format!("start seed/album.torrent --peer 127.0.0.1:{port}"),
    );
    sh.wait_line("imported album", SHORT);
    sh.wait_line(&format!("started album ({hash}) in the background"), SHORT);
    // The prompt is free while it downloads.
    say(&mut sh, "show");
    sh.wait_line("album.torrent", SHORT);
    let done = poll_status(&mut sh, "album complete", |l| {
        l.starts_with("album: complete, seeding, 100%")
    });
    assert!(done.contains("KiB of"), "{done}");
    let from = sh.wait_line(&format!("  peer 127.0.0.1:{port} "), SHORT);
    assert!(from.contains("received 804.16 KiB"), "{from}");
    sh.wait_line("  tracker: ", SHORT);
    // The watcher's note comes before the next command's output.
    let note = poll_status(&mut sh, "the completion note", |l| {
        l.starts_with("album: complete: ")
    });
    assert!(note.ends_with("; seeding"), "{note}");
    // Starting it again is a mistake, not a second download.
    say(&mut sh, "start seed/album.torrent");
    sh.wait_line("error: album is already started", SHORT);

    let seen = quit(sh);
    assert!(seen.iter().any(|l| l == "stopping 1 torrent"), "{seen:?}");
    same_album(d, &data);
}

#[test]
fn start_finds_the_seeder_through_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = write_files(&d.join("seed"), ALBUM);
    let mut tracker = Proc::start(&["tracker", "--bind", "127.0.0.1:0"], d);
    let announce = format!("http://127.0.0.1:{}/announce", tracker.port());
    let mut sh = shell(d);
    let hash = create_album(&mut sh, &announce);
    let (_peer, seed_port) = seeder(d);
    tracker.wait_line(&format!("started   {hash} 127.0.0.1:{seed_port}"), SHORT);

    say(&mut sh, "start seed/album.torrent");
    let port = sh.port();
    poll_status(&mut sh, "album complete", |l| {
        l.starts_with("album: complete, seeding")
    });
    sh.wait_line(&format!("  peer 127.0.0.1:{seed_port} "), SHORT);
    tracker.wait_line(&format!("completed {hash} 127.0.0.1:{port}"), SHORT);

    say(&mut sh, &format!("peers --tracker {announce}"));
    sh.wait_line(&format!("{hash}  seeders 2"), SHORT);
    sh.wait_line(&format!("127.0.0.1:{seed_port}"), SHORT);

    quit(sh);
    // `quit` told the tracker.
    tracker.wait_line(&format!("stopped   {hash} 127.0.0.1:{port}"), SHORT);
    same_album(d, &data);
}

#[test]
fn on_a_terminal_it_prompts_edits_and_keeps_a_history() {
    let script = require_tool("script", "bsdutils");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("lib")).unwrap();
    // `script` gives the shell a pseudo-terminal and relays our pipe to it.
    let mut sh = Proc::spawn(
        "bt shell under script",
        Command::new(script)
            .args(["-qfec"])
            .arg(format!("'{BT}' shell --profile t --folder lib --port 0"))
            .arg("/dev/null")
            .current_dir(d)
            .env("TERM", "xterm")
            .env_remove("RUST_LOG"),
    );
    sh.wait_line("bt shell: profile t", SHORT);
    sh.send("help\r");
    // The prompt line is complete once the typed line is echoed after it.
    sh.wait_for("with the prompt and `help`", SHORT, |l| {
        l.contains("bt:t> ") && l.contains("help")
    });
    sh.wait_line("  quit ", SHORT);
    // Typing errors are edited away before the line is taken.
    sh.send("statsu\x08\x08us\r");
    sh.wait_line("nothing started", SHORT);
    // Ctrl-D at an empty prompt leaves, like `quit`. Typed before the prompt is back (the
    // terminal still in cooked mode) it is only a NUL to the line editor: type it again.
    let mut status = None;
    for _ in 0..20 {
        sh.send("\x04");
        status = sh.try_wait_exit(Duration::from_millis(500));
        if status.is_some() {
            break;
        }
    }
    let status = status.unwrap_or_else(|| panic!("Ctrl-D did not end it:\n{}", sh.log()));
    assert!(status.success(), "{status}; saw:\n{}", sh.log());
    let history = std::fs::read_to_string(d.join("lib/.bt-shell-history")).unwrap();
    assert!(
        history.contains("help") && history.contains("status") && !history.contains("statsu"),
        "{history}"
    );
}

#[test]
fn a_script_waits_for_its_download_and_a_timed_out_wait_fails_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = write_files(&d.join("seed"), ALBUM);
    let nowhere = format!("http://127.0.0.1:{}/announce", unused_port());
    let mut sh = shell(d);
    create_album(&mut sh, &nowhere);
    quit(sh);
    let (_peer, port) = seeder(d);

    // The README's script: input ends right after `wait`, yet the download is done by then.
    let mut sh = shell(d);
    sh.send(format!(
        "start seed/album.torrent --peer 127.0.0.1:{port}\nwait --timeout 60\nwait seed/album.torrent\n"
    ));
    sh.close_stdin();
    let status = sh.wait_exit(DOWNLOAD);
    let lines = sh.lines();
    assert!(status.success(), "{status}; saw:\n{}", lines.join("\n"));
    let complete: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("album: complete, seeding, 100%"))
        .collect();
    assert_eq!(
        complete.len(),
        2,
        "each wait shows the result:\n{}",
        lines.join("\n")
    );
    same_album(d, &data);

    // Nobody to download from: the wait gives up, says why, and the script exits 1.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut sh = Proc::start(
        &[
            "shell",
            "--profile",
            "client",
            "--folder",
            "empty",
            "--port",
            "0",
        ],
        d,
    );
    let lonely = format!("127.0.0.1:{}", unused_port());
    sh.send(format!(
        "wait\nstart seed/album.torrent --peer {lonely}\nwait nosuch\nwait album --timeout 1\nstatus\n"
    ));
    sh.close_stdin();
    let status = sh.wait_exit(SHORT);
    let text = sh.lines().join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("error: wait: nothing started"), "{text}");
    assert!(
        text.contains("error: wait: no started torrent is named nosuch"),
        "{text}"
    );
    assert!(
        text.contains("error: wait: not complete after 1.0 s: album has 0% (0 of "),
        "{text}"
    );
    assert!(
        text.contains("bt: error: 3 of the script's `wait` commands"),
        "{text}"
    );
    // The lines after a failed wait still ran.
    assert!(text.contains("album: downloading, 0%"), "{text}");
}

#[test]
fn start_chooses_files_and_stops_seeding_at_its_goal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = write_files(&d.join("seed"), ALBUM);
    let mut sh = shell(d);
    let nowhere = format!("http://127.0.0.1:{}/announce", unused_port());
    create_album(&mut sh, &nowhere);
    let (_peer, port) = seeder(d);

    // File 2 of 3 (sub/b.bin), then seed one second and stop.
    say(
        &mut sh,
        &format!("start seed/album.torrent --peer 127.0.0.1:{port} --files 2 --seed-time 1s"),
    );
    sh.wait_line("started album (", SHORT);
    say(&mut sh, "wait --timeout 60");
    let note = poll_status(&mut sh, "the seed goal", |l| {
        l.starts_with("album: seed goal met")
    });
    assert!(note.ends_with("stopped seeding"), "{note}");
    poll_status(&mut sh, "a stopped torrent", |l| {
        l.starts_with("album: complete, seed goal met, stopped")
    });
    // A bad number is one error line, and the prompt goes on.
    say(&mut sh, "start seed/album.torrent --files 4");
    sh.wait_line("error: album: there is no file 4", SHORT);
    quit(sh);

    let got = std::fs::read(d.join("client/album/sub/b.bin")).unwrap();
    assert!(got == data[1], "the chosen file differs from the seed's");
    // a.bin shares the first piece of b.bin: only that piece's part of it may be written.
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(d.join("client/album/a.bin")) {
        assert!(
            m.blocks() * 512 <= 64 * 1024,
            "{} bytes of a.bin",
            m.blocks() * 512
        );
    }
    assert!(!d.join("client/album/sub/empty").exists());
}
