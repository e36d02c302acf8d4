//! Faults around a download: a client killed (SIGKILL) again and again at random points, a
//! disk that fills up, and a folder that becomes (or is) read-only. Each time the verified
//! pieces must survive and a restart must finish with the right bytes.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::live::*;

fn wait_allocated(dir: &Path, at_least: u64, limit: Duration) {
    let what = format!("{at_least} bytes in {}", dir.display());
    let enough = || (allocated(dir) >= at_least).then_some(());
    common::wait_for(&what, limit, enough, String::new);
}

#[test]
fn a_client_killed_again_and_again_still_ends_with_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 3);
    let total = total_len(&torrent);
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &["--upload-limit", "3000"]);
    let peers = vec![format!("127.0.0.1:{port1}")];
    let out = d.join("client");
    let args = client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers);
    // Kill at pseudo-random amounts of data on disk, each further along than the last.
    let mut seed = 0x2545_f491_u64;
    let mut mark = 0u64;
    for _ in 0..6 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        mark += total / 12 + (seed >> 33) % (total / 12);
        if mark >= total * 9 / 10 {
            break;
        }
        let c = Proc::start(&args, d);
        wait_allocated(&out.join("set"), mark, Duration::from_secs(60));
        drop(c); // SIGKILL
    }
    let c = Proc::start(&args, d);
    let (code, lines) = c.finish(Duration::from_secs(90));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
}

/// A tmpfs mount that is unmounted on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_full_disk_stops_the_download_cleanly_and_resume_works_after() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout
            .starts_with(b"0"),
        "this test mounts a tmpfs: run it as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 2); // ~3.6 MB
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &[]);
    let peers = vec![format!("127.0.0.1:{port1}")];
    let out = d.join("small");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    let _mount = Mount(out.clone());
    let args = client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers);
    let (code, lines) = Proc::start(&args, d).finish(Duration::from_secs(60));
    let text = lines.join("\n");
    assert_eq!(code, 1, "a full disk must fail the download:\n{text}");
    let kept = allocated(&out.join("set"));
    assert!(kept > 0, "verified pieces were lost");
    // Free space, start again: it resumes and finishes.
    let st = Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, lines) = Proc::start(&args, d).finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
    // The pieces verified before the disk filled were not fetched again.
    let summary = lines.iter().find(|l| l.contains("complete:")).unwrap();
    let total = total_len(&torrent) as f64;
    assert!(
        received_bytes(summary) <= total - kept as f64 * 0.5,
        "{summary}"
    );
}

/// Who runs the client in the read-only tests. Root ignores permission bits, so as root the
/// client runs as `nobody` (uid/gid 65534) from a copy of the binary any user may run; as
/// anyone else it runs as that user.
struct Runner {
    /// The uid and gid to switch to (when root).
    as_nobody: bool,
    bt: PathBuf,
}

const NOBODY: u32 = 65534;

impl Runner {
    /// `dir` must be reachable by the client's user: as root it is opened to everyone.
    fn new(dir: &Path) -> Runner {
        // SAFETY: geteuid has no preconditions.
        let as_nobody = unsafe { libc::geteuid() } == 0;
        if !as_nobody {
            return Runner {
                as_nobody,
                bt: common::BT.into(),
            };
        }
        chmod(dir, "0755");
        let bt = dir.join("bt");
        std::fs::copy(common::BT, &bt).unwrap();
        chmod(&bt, "0755");
        Runner { as_nobody, bt }
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(cwd).env_remove("RUST_LOG");
        if self.as_nobody {
            // std drops the supplementary groups too when root changes uid.
            c.uid(NOBODY).gid(NOBODY);
        }
        c
    }

    /// A folder the client's user owns.
    fn folder(&self, path: &Path) {
        std::fs::create_dir_all(path).unwrap();
        if self.as_nobody {
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }

    /// Whether the client's user can create a file in `folder` (the probe is removed).
    fn can_create_in(&self, folder: &Path) -> bool {
        let probe = folder.join(".probe");
        let ok = self
            .command("touch", folder)
            .arg(&probe)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        let _ = std::fs::remove_file(&probe);
        ok
    }

    /// Start `bt ARGS` as the client's user.
    fn start(&self, args: &[&str], cwd: &Path) -> common::Proc {
        common::Proc::spawn("bt client", self.command(&self.bt, cwd).args(args))
    }
}

fn chmod(path: &Path, mode: &str) {
    let st = Command::new("chmod").arg(mode).arg(path).status().unwrap();
    assert!(st.success(), "chmod {mode} {}", path.display());
}

fn chmod_tree(path: &Path, mode: &str) {
    let st = Command::new("chmod")
        .arg("-R")
        .arg(mode)
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "chmod -R {mode} {}", path.display());
}

/// A torrent "set" of `n` files of ~100 kB (32 KiB pieces) under `dir/seed/set`, so that a
/// download opens new files all along.
fn many_files(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("seed/set");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..n {
        let name = root.join(format!("f{i:02}.bin"));
        std::fs::write(name, bytes(100 + i as u64, 90_001 + 1_000 * i)).unwrap();
    }
    let torrent = dir.join("set.torrent");
    // Relative to `dir`; the tracker is a port nobody listens on.
    let create =
        "create seed/set --tracker http://127.0.0.1:9/announce --piece-length 32k -o set.torrent";
    common::bt(dir, create.split(' ')).success();
    torrent
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn a_folder_made_read_only_mid_download_stops_cleanly_and_resume_works_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runner = Runner::new(d);
    const FILES: usize = 30;
    let torrent = many_files(d, FILES);
    let total = total_len(&torrent);
    let f1 = peer_folder(d, "p1", &torrent);
    // Slow enough (~10 s) that the folder changes while files remain to be created.
    let (_p1, port1) = start_peer(d, &f1, &["--upload-limit", "300"]);
    let peers = vec![format!("127.0.0.1:{port1}")];
    let out = d.join("client");
    runner.folder(&out);
    assert!(runner.can_create_in(&out), "the client must own {out:?}");
    let args = client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers);

    let mut c = runner.start(&args, d);
    wait_allocated(&out.join("set"), total / 6, Duration::from_secs(60));
    chmod_tree(&out, "a-w");
    let created = files_in(&out.join("set"));
    assert!(
        created < FILES,
        "all {FILES} files existed before the folder became read-only: nothing left to fail"
    );
    assert!(
        !runner.can_create_in(&out.join("set")),
        "the client's user can still write to the read-only folder"
    );
    let status = c.wait_exit(Duration::from_secs(60));
    let lines = c.lines();
    let text = lines.join("\n");
    assert_eq!(
        status.code(),
        Some(1),
        "a read-only folder must fail:\n{text}"
    );
    let error = lines
        .iter()
        .find(|l| l.contains("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{text}"));
    assert!(
        error.contains("Permission denied") && error.contains(out.join("set/f").to_str().unwrap()),
        "the error must name the file and the problem: {error}"
    );
    let kept = allocated(&out.join("set"));
    assert!(kept > 0, "verified pieces were lost");
    assert!(
        kept < total,
        "the whole torrent was written after the folder became read-only"
    );

    // Write access back, start again: it resumes and finishes.
    chmod_tree(&out, "u+w");
    let mut c = runner.start(&args, d);
    let status = c.wait_exit(Duration::from_secs(90));
    let lines = c.lines();
    assert!(status.success(), "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
    // The pieces verified before the folder became read-only were not fetched again.
    let summary = lines.iter().find(|l| l.contains("complete:")).unwrap();
    assert!(
        received_bytes(summary) <= total as f64 - kept as f64 * 0.5,
        "{summary} (kept {kept} of {total} bytes)"
    );
}

#[test]
fn a_read_only_folder_fails_at_once_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runner = Runner::new(d);
    let torrent = fixture(d, 1);
    // No peer anywhere: without a check at the start, the client would wait for one until its
    // stall timeout (30 s) and then blame the network.
    let peers = vec![format!("127.0.0.1:{}", common::unused_port())];

    // A fresh folder, and one whose library already holds the torrent (a later start).
    let fresh = d.join("fresh");
    let known = d.join("known");
    for (folder, names) in [(&fresh, vec![]), (&known, vec!["set.torrent"])] {
        runner.folder(folder);
        for n in &names {
            std::fs::copy(&torrent, folder.join(n)).unwrap();
        }
        chmod(folder, "0555");
        assert!(
            !runner.can_create_in(folder),
            "the client's user can write to the read-only {folder:?}"
        );
        let args = client_args(folder.to_str().unwrap(), torrent.to_str().unwrap(), &peers);
        let mut c = runner.start(&args, d);
        let status = c.try_wait_exit(Duration::from_secs(10));
        let text = c.lines().join("\n");
        let status = status.unwrap_or_else(|| panic!("no error at once for {folder:?}:\n{text}"));
        assert_eq!(status.code(), Some(1), "{text}");
        assert!(
            text.contains("Permission denied") && text.contains(folder.to_str().unwrap()),
            "the error must name the folder and the problem:\n{text}"
        );
        let mut left: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, names, "nothing may be written to {folder:?}");
    }
}
