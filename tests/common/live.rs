//! Swarms of live `bt` processes for end-to-end tests: a multi-file fixture, peers seeding
//! copies of it, client command lines, and checks on what a download left. The processes are
//! [`Proc`]s started with [`Proc::start`]: dropping one kills it (SIGKILL).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bt::proto::metainfo::Metainfo;

pub use super::Proc;
use super::BT;

/// Deterministic bytes (see [`super::pseudo_random`]).
pub use super::pseudo_random as bytes;

/// A seed folder with a multi-file torrent "set": nested folders, odd sizes, an empty file.
/// Returns (work dir, torrent path).
pub fn fixture(dir: &Path, scale: usize) -> PathBuf {
    let root = dir.join("seed/set");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("one.bin"), bytes(1, 1_000_003 * scale)).unwrap();
    std::fs::write(root.join("a/two.bin"), bytes(2, 777_777 * scale)).unwrap();
    std::fs::write(root.join("a/b/three.txt"), bytes(3, 12_345)).unwrap();
    std::fs::write(root.join("a/empty"), b"").unwrap();
    let torrent = dir.join("set.torrent");
    let st = Command::new(BT)
        .args([
            "create",
            root.to_str().unwrap(),
            "--tracker",
            "http://127.0.0.1:9/announce",
            "--piece-length",
            "32k",
            "-o",
        ])
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    torrent
}

/// A folder holding a copy of the seed data and the torrent: a peer's profile folder.
pub fn peer_folder(dir: &Path, name: &str, torrent: &Path) -> PathBuf {
    let f = dir.join(name);
    std::fs::create_dir_all(&f).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(dir.join("seed/set"))
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(torrent, f.join("set.torrent")).unwrap();
    f
}

pub fn start_peer(dir: &Path, folder: &Path, extra: &[&str]) -> (Proc, u16) {
    let mut args = vec![
        "peer",
        "--profile",
        "x",
        "--folder",
        folder.to_str().unwrap(),
        "--port",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::start(&args, dir);
    let port = p.port();
    (p, port)
}

pub fn client_args<'a>(folder: &'a str, torrent: &'a str, peers: &'a [String]) -> Vec<&'a str> {
    let mut a = vec![
        "client",
        "--profile",
        "c",
        "--folder",
        folder,
        "--port",
        "0",
        "--exit-when-done",
        "--stall-timeout",
        "30",
    ];
    for p in peers {
        a.push("--peer");
        a.push(p);
    }
    a.push(torrent);
    a
}

pub fn same_tree(a: &Path, b: &Path) {
    let st = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "downloaded data differs: {}",
        String::from_utf8_lossy(&st.stdout)
    );
}

/// "  from ADDR (...): SIZE (NN%)" lines of the client summary: (addr, percent).
pub fn shares(lines: &[String]) -> Vec<(String, f64)> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("from "))
        .map(|l| {
            let addr = l.split(' ').next().unwrap().to_string();
            let pct = l
                .rsplit('(')
                .next()
                .unwrap()
                .split('%')
                .next()
                .unwrap()
                .parse()
                .unwrap_or(0.0);
            (addr, pct)
        })
        .collect()
}

pub fn allocated(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            allocated(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    n
}

pub fn total_len(torrent: &Path) -> u64 {
    Metainfo::from_bytes(&std::fs::read(torrent).unwrap())
        .unwrap()
        .total_length()
}

/// The bytes a client's completion summary says it received ("..., 1.95 MiB received in ...").
pub fn received_bytes(summary: &str) -> f64 {
    let head = summary.split(" received").next().unwrap();
    let mut words = head.rsplit(' ');
    let unit = words.next().unwrap();
    let value: f64 = words.next().unwrap().parse().unwrap();
    value
        * match unit {
            "GiB" => 1073741824.0,
            "MiB" => 1048576.0,
            "KiB" => 1024.0,
            _ => 1.0,
        }
}
