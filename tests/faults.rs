//! Faults around a download: a client killed (SIGKILL) again and again at random points, and a
//! disk that fills up. Each time the verified pieces must survive and a restart must finish
//! with the right bytes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::live::*;

fn wait_allocated(dir: &Path, at_least: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while allocated(dir) < at_least {
        assert!(
            Instant::now() < deadline,
            "no progress in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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
