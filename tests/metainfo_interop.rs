//! bt's `.torrent` handling judged by real tools: torrents made by `mktorrent` and
//! `transmission-create` read the same in `bt info` as in `transmission-show`; torrents made by
//! `bt create` read the same in `transmission-show` and libtorrent, and libtorrent accepts their
//! piece hashes against the data; `bt edit` keeps the info-hash real tools compute.
//!
//! Ignored by default (they need the Debian packages mktorrent, transmission-cli and
//! python3-libtorrent); `scripts/test.sh` installs those and runs them with `--include-ignored`.
//! A missing tool fails the test with the package to install, never skips it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    bt, bt_info, require_libtorrent, require_tool, run, unused_port, write_files, Spec, PYTHON,
    SHORT,
};
use serde_json::Value;

const LT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/lt.py");

/// Piece lengths every tool can make: mktorrent's smallest is 32 KiB.
const PIECE_LENGTHS: [u64; 3] = [32 << 10, 256 << 10, 1 << 20];

/// One piece of test content: a single file, or a folder of files.
#[derive(Clone, Copy)]
struct DataSet {
    /// File name, or folder name of a multi-file torrent.
    name: &'static str,
    /// For a single file, one entry whose path is `name`; else paths below the folder.
    files: &'static [Spec],
    single: bool,
}

/// Single files: one smaller than a block, and sizes that are not multiples of any piece
/// length.
static SINGLE_FILES: [Spec; 4] = [
    ("one-byte.bin", 1),
    ("odd-16383.bin", 16383),
    ("odd-16385.bin", 16385),
    ("big-1000003.bin", 1_000_003),
];

/// A folder: nested folders, a zero-length file, odd sizes, names with a space and non-ASCII
/// letters.
static ALBUM: [Spec; 6] = [
    ("cover.bin", 1),
    ("disc 1/track01.bin", 16383),
    ("disc 1/track02.bin", 16385),
    ("disc 2/deep/empty.txt", 0),
    ("disc 2/deep/tråck ünï.bin", 1_000_003),
    ("notes.txt", 50_000),
];

/// Every data set: each single file, then the album (last).
fn data_sets() -> Vec<DataSet> {
    let singles = SINGLE_FILES.iter().map(|f| DataSet {
        name: f.0,
        files: std::slice::from_ref(f),
        single: true,
    });
    let album = DataSet {
        name: "album",
        files: &ALBUM,
        single: false,
    };
    singles.chain([album]).collect()
}

impl DataSet {
    /// Write the data under `dir`; returns the path a tool is pointed at.
    fn write(&self, dir: &Path) -> PathBuf {
        if self.single {
            write_files(dir, self.files);
        } else {
            write_files(&dir.join(self.name), self.files);
        }
        dir.join(self.name)
    }

    fn total(&self) -> u64 {
        self.files.iter().map(|f| f.1 as u64).sum()
    }

    /// Every file as (path from the save folder, joined with `/`, length), sorted by path;
    /// zero-length files only when `with_empty`.
    fn expected_files(&self, with_empty: bool) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .files
            .iter()
            .filter(|f| with_empty || f.1 > 0)
            .map(|(p, len)| match self.single {
                true => (p.to_string(), *len as u64),
                false => (format!("{}/{p}", self.name), *len as u64),
            })
            .collect();
        v.sort();
        v
    }
}

fn require_tools() {
    require_tool("mktorrent", "mktorrent");
    require_tool("transmission-show", "transmission-cli");
    require_tool("transmission-create", "transmission-cli");
    require_libtorrent();
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A tracker URL on loopback that nothing answers.
fn dead_tracker() -> String {
    format!("http://127.0.0.1:{}/announce", unused_port())
}

/// What `transmission-show -u` prints about a torrent.
#[derive(Debug, Default)]
struct Shown {
    name: String,
    hash: String,
    piece_count: u64,
    piece_size: String,
    total_size: String,
    private: bool,
    trackers: Vec<String>,
    /// (path from the save folder, size text), in torrent order.
    files: Vec<(String, String)>,
}

fn transmission_show(torrent: &Path) -> Shown {
    let out = run(
        Command::new("transmission-show").args(["-u", arg(torrent)]),
        SHORT,
    )
    .success();
    let mut shown = Shown::default();
    let mut section = "";
    for line in out.stdout.lines() {
        if matches!(line, "GENERAL" | "TRACKERS" | "FILES") {
            section = line;
            continue;
        }
        let item = line.trim();
        if item.is_empty() {
            continue;
        }
        match section {
            "GENERAL" => {
                let (k, v) = item.split_once(": ").unwrap_or((item, ""));
                match k {
                    "Name" => shown.name = v.into(),
                    "Hash" => shown.hash = v.into(),
                    "Piece Count" => shown.piece_count = v.parse().expect("piece count"),
                    "Piece Size" => shown.piece_size = v.into(),
                    "Total Size" => shown.total_size = v.into(),
                    "Privacy" => shown.private = v.starts_with("Private"),
                    _ => {}
                }
            }
            "TRACKERS" if !item.starts_with("Tier #") => shown.trackers.push(item.into()),
            "FILES" => {
                let (path, size) = item
                    .rsplit_once(" (")
                    .unwrap_or_else(|| panic!("file line without a size: {line:?}"));
                shown
                    .files
                    .push((path.into(), size.trim_end_matches(')').into()));
            }
            _ => {}
        }
    }
    assert_eq!(shown.hash.len(), 40, "no Hash line in:\n{}", out.stdout);
    shown
}

/// Whether a size as Transmission prints it ("16.39 kB", "1.00 MB", "32.00 KiB") stands for
/// `bytes`, within the rounding of the digits shown.
fn size_matches(text: &str, bytes: u64) -> bool {
    let Some((number, unit)) = text.split_once(' ') else {
        return false;
    };
    let scale: f64 = match unit {
        "B" | "bytes" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return false,
    };
    let Ok(value) = number.parse::<f64>() else {
        return false;
    };
    let decimals = number.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let tolerance = 0.5 * 10f64.powi(-decimals) * scale + 0.5;
    (value * scale - bytes as f64).abs() <= tolerance
}

/// The files of `bt info --json` as (path from the save folder, length), in torrent order.
fn bt_files(info: &Value) -> Vec<(String, u64)> {
    let name = info["name"].as_str().expect("name");
    let multi = info["multi_file"].as_bool().expect("multi_file");
    info["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let parts: Vec<&str> = f["path"]
                .as_array()
                .expect("path list")
                .iter()
                .map(|c| c.as_str().expect("path component"))
                .collect();
            let path = parts.join("/");
            let path = if multi {
                format!("{name}/{path}")
            } else {
                path
            };
            (path, f["length"].as_u64().expect("file length"))
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// `bt info` and `transmission-show` agree on `torrent`, and both describe `data` as cut into
/// pieces of `piece_length` (`with_empty`: whether the maker kept zero-length files).
fn assert_bt_and_transmission_agree(
    torrent: &Path,
    data: &DataSet,
    piece_length: u64,
    with_empty: bool,
) {
    let what = torrent.display();
    let info = bt_info(torrent);
    let shown = transmission_show(torrent);
    let total = data.total();
    let pieces = total.div_ceil(piece_length);

    assert_eq!(info["info_hash"], shown.hash.as_str(), "{what}: info-hash");
    assert_eq!(info["name"], data.name, "{what}: name (bt)");
    assert_eq!(shown.name, data.name, "{what}: name (transmission)");
    assert_eq!(info["length"], total, "{what}: total size (bt)");
    assert!(
        size_matches(&shown.total_size, total),
        "{what}: transmission shows {} for {total} bytes",
        shown.total_size
    );
    assert_eq!(info["piece_length"], piece_length, "{what}: piece length");
    assert!(
        size_matches(&shown.piece_size, piece_length),
        "{what}: transmission shows pieces of {}",
        shown.piece_size
    );
    assert_eq!(info["pieces"], pieces, "{what}: piece count (bt)");
    assert_eq!(
        shown.piece_count, pieces,
        "{what}: piece count (transmission)"
    );
    let hashes = info["piece_hashes"].as_array().expect("piece_hashes");
    assert_eq!(hashes.len() as u64, pieces, "{what}: piece hashes listed");
    assert_eq!(info["private"], shown.private, "{what}: private flag");
    assert_eq!(
        info["trackers"],
        serde_json::json!(shown.trackers),
        "{what}"
    );

    let ours = bt_files(&info);
    assert_eq!(
        sorted(ours.clone()),
        data.expected_files(with_empty),
        "{what}: bt's file list"
    );
    let theirs: Vec<&str> = shown.files.iter().map(|f| f.0.as_str()).collect();
    let ours_paths: Vec<&str> = ours.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(ours_paths, theirs, "{what}: file order bt vs transmission");
    for ((path, len), (_, text)) in ours.iter().zip(&shown.files) {
        assert!(
            size_matches(text, *len),
            "{what}: {path} is {len} bytes, transmission shows {text}"
        );
    }
}

/// Torrents of every data set at every piece length, made by
/// `PROGRAM OPTIONS(piece_length) -o OUT SOURCE`.
fn check_torrents_made_by(program: &str, with_empty: bool, options: impl Fn(u64) -> Vec<String>) {
    require_tools();
    let tmp = tempfile::tempdir().expect("temp dir");
    for (k, data) in data_sets().iter().enumerate() {
        let dir = tmp.path().join(format!("set{k}"));
        let source = data.write(&dir);
        for piece_length in PIECE_LENGTHS {
            let out = tmp
                .path()
                .join(format!("{program}-{k}-{piece_length}.torrent"));
            let mut cmd = Command::new(program);
            cmd.args(options(piece_length));
            cmd.args(["-o", arg(&out), arg(&source)]);
            run(&mut cmd, SHORT).success();
            assert_bt_and_transmission_agree(&out, data, piece_length, with_empty);
        }
    }
}

#[test]
#[ignore = "needs mktorrent, transmission-cli, python3-libtorrent"]
fn mktorrent_torrents_read_the_same_in_bt_and_transmission() {
    let tracker = dead_tracker();
    check_torrents_made_by("mktorrent", true, |piece_length| {
        let log2 = piece_length.trailing_zeros().to_string();
        vec!["-l".into(), log2, "-a".into(), tracker.clone()]
    });
}

#[test]
#[ignore = "needs mktorrent, transmission-cli, python3-libtorrent"]
fn transmission_create_torrents_read_the_same_in_bt_and_transmission() {
    let tracker = dead_tracker();
    // transmission-create leaves zero-length files out of the torrent.
    check_torrents_made_by("transmission-create", false, |piece_length| {
        let kib = (piece_length >> 10).to_string();
        vec!["-s".into(), kib, "-t".into(), tracker.clone()]
    });
}

/// `bt create SOURCE` with this piece length and tracker, into `out`.
fn bt_create(source: &Path, piece_length: u64, tracker: &str, out: &Path) {
    let pl = piece_length.to_string();
    let args = [
        "create",
        arg(source),
        "--piece-length",
        &pl,
        "--tracker",
        tracker,
        "-o",
        arg(out),
    ];
    bt(source.parent().expect("parent"), args).success();
}

/// Run `tests/clients/lt.py info|check ...`; one JSON object per output line.
fn lt_check(args: &[&str], limit: Duration) -> Vec<Value> {
    let out = run(Command::new(PYTHON).arg(LT).args(args), limit).success();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Ask libtorrent to hash-check each (torrent, save folder); one status object each.
fn lt_verify(jobs: &[(PathBuf, PathBuf)]) -> Vec<Value> {
    let mut args = vec!["check", "--timeout", "60"];
    for (torrent, dir) in jobs {
        args.extend(["--job", arg(torrent), arg(dir)]);
    }
    lt_check(&args, Duration::from_secs(90))
}

/// A torrent that `bt create` made.
struct Made {
    torrent: PathBuf,
    /// The folder that holds its data (libtorrent's save_path).
    save_path: PathBuf,
    data: DataSet,
    piece_length: u64,
}

/// `bt create` every data set, written under `dir/setK`, at each piece length.
fn bt_create_all(dir: &Path, piece_lengths: &[u64]) -> Vec<Made> {
    let tracker = dead_tracker();
    let mut made = Vec::new();
    for (k, data) in data_sets().into_iter().enumerate() {
        let save_path = dir.join(format!("set{k}"));
        let source = data.write(&save_path);
        for &piece_length in piece_lengths {
            let torrent = dir.join(format!("bt-{k}-{piece_length}.torrent"));
            bt_create(&source, piece_length, &tracker, &torrent);
            made.push(Made {
                torrent,
                save_path: save_path.clone(),
                data,
                piece_length,
            });
        }
    }
    made
}

#[test]
#[ignore = "needs mktorrent, transmission-cli, python3-libtorrent"]
fn bt_create_torrents_read_the_same_in_transmission_and_libtorrent() {
    require_tools();
    let tmp = tempfile::tempdir().expect("temp dir");
    // 16 KiB too: bt and libtorrent go below mktorrent's smallest piece.
    let made = bt_create_all(tmp.path(), &[16 << 10, 32 << 10, 256 << 10, 1 << 20]);
    for m in &made {
        assert_bt_and_transmission_agree(&m.torrent, &m.data, m.piece_length, true);
    }
    let mut args = vec!["info"];
    args.extend(made.iter().map(|m| arg(&m.torrent)));
    let lt_rows = lt_check(&args, SHORT);
    assert_eq!(
        lt_rows.len(),
        made.len(),
        "one libtorrent answer per torrent"
    );
    for (m, lt) in made.iter().zip(&lt_rows) {
        let what = m.torrent.display();
        let info = bt_info(&m.torrent);
        assert_eq!(lt["info_hash"], info["info_hash"], "{what}: info-hash");
        assert_eq!(lt["name"], m.data.name, "{what}: name");
        assert_eq!(lt["total_size"], m.data.total(), "{what}: total size");
        assert_eq!(lt["piece_length"], m.piece_length, "{what}");
        assert_eq!(lt["num_pieces"], info["pieces"], "{what}: piece count");
        let lt_files: Vec<(String, u64)> = lt["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                let path = f["path"].as_str().expect("path");
                (path.to_string(), f["size"].as_u64().expect("size"))
            })
            .collect();
        assert_eq!(lt_files, bt_files(&info), "{what}: files in torrent order");
    }
}

#[test]
#[ignore = "needs mktorrent, transmission-cli, python3-libtorrent"]
fn libtorrent_accepts_bt_piece_hashes_against_the_data() {
    require_tools();
    let tmp = tempfile::tempdir().expect("temp dir");
    let made = bt_create_all(tmp.path(), &[16 << 10, 1 << 20]);
    let jobs: Vec<(PathBuf, PathBuf)> = made
        .iter()
        .map(|m| (m.torrent.clone(), m.save_path.clone()))
        .collect();
    let rows = lt_verify(&jobs);
    assert_eq!(rows.len(), jobs.len(), "one libtorrent status per torrent");
    for row in &rows {
        assert!(
            row["checked"] == true && row.get("error").is_none(),
            "libtorrent did not finish checking: {row}"
        );
        assert!(
            row["is_seeding"] == true && row["progress"] == 1.0,
            "libtorrent does not seed after checking bt's hashes: {row}"
        );
        assert_eq!(row["pieces_have"], row["num_pieces"], "{row}");
    }

    // The control: one flipped byte in the middle of the largest file costs exactly its piece,
    // so the check above could have failed.
    let album = made
        .iter()
        .find(|m| !m.data.single && m.piece_length == 16 << 10)
        .expect("the album in 16 KiB pieces");
    let bad = tmp.path().join("bad");
    album.data.write(&bad);
    let big = bad.join("album/disc 2/deep/tråck ünï.bin");
    let mut bytes = std::fs::read(&big).expect("read");
    bytes[500_000] ^= 0xff;
    std::fs::write(&big, bytes).expect("write");
    let rows = lt_verify(&[(album.torrent.clone(), bad)]);
    let row = &rows[0];
    assert!(row["checked"] == true, "{row}");
    assert_eq!(row["is_seeding"], false, "{row}");
    let want = row["num_pieces"].as_u64().expect("num_pieces") - 1;
    assert_eq!(row["pieces_have"], want, "one piece should fail: {row}");
}

#[test]
#[ignore = "needs mktorrent, transmission-cli, python3-libtorrent"]
fn bt_edit_keeps_the_info_hash_of_a_mktorrent_torrent() {
    require_tools();
    let tmp = tempfile::tempdir().expect("temp dir");
    let sets = data_sets();
    let data = sets.last().expect("the album");
    let source = data.write(&tmp.path().join("set"));
    let torrent = tmp.path().join("m.torrent");
    let old = dead_tracker();
    // Private, with a `source` key inside info that bt does not interpret: both are part of
    // the info-hash and must survive the edit.
    run(
        Command::new("mktorrent").args([
            "-p",
            "-s",
            "bt-interop",
            "-l",
            "15",
            "-a",
            &old,
            "-o",
            arg(&torrent),
            arg(&source),
        ]),
        SHORT,
    )
    .success();
    let before = transmission_show(&torrent);
    assert!(before.private, "mktorrent -p makes a private torrent");
    assert_eq!(before.trackers, std::slice::from_ref(&old));

    // In place, one tracker.
    let new = format!("http://127.0.0.1:{}/announce", unused_port());
    bt(tmp.path(), ["edit", arg(&torrent), "--tracker", &new]).success();
    let after = transmission_show(&torrent);
    assert_eq!(after.hash, before.hash, "bt edit changed the info-hash");
    assert_eq!(
        after.trackers,
        std::slice::from_ref(&new),
        "transmission sees the new tracker"
    );
    assert!(after.private);
    assert_eq!(bt_info(&torrent)["info_hash"], before.hash.as_str());

    // To another file, two trackers: an announce-list of two tiers.
    let copy = tmp.path().join("two.torrent");
    let args = [
        "edit",
        arg(&torrent),
        "--tracker",
        &old,
        "--tracker",
        &new,
        "-o",
        arg(&copy),
    ];
    bt(tmp.path(), args).success();
    let two = transmission_show(&copy);
    assert_eq!(two.hash, before.hash, "bt edit -o changed the info-hash");
    assert_eq!(two.trackers, [old, new]);
    let lt = &lt_check(&["info", arg(&copy)], SHORT)[0];
    assert_eq!(
        lt["info_hash"],
        before.hash.as_str(),
        "libtorrent's info-hash"
    );
}

#[test]
fn transmission_sizes_are_read_within_their_rounding() {
    assert!(size_matches("16.39 kB", 16385));
    assert!(size_matches("0.00 kB", 1));
    assert!(size_matches("1.00 MB", 1_000_003));
    assert!(size_matches("201.4 kB", 201_357));
    assert!(size_matches("32.00 KiB", 32768));
    assert!(!size_matches("16.39 kB", 16400));
    assert!(!size_matches("1.00 MB", 1_010_000));
    assert!(!size_matches("32.00 KiB", 32000));
    assert!(!size_matches("12 parsecs", 12));
}
