//! `bt create`, `info`, `edit`, `import` and `show` from the outside, with no other tool: hostile
//! `.torrent` files are refused with one clear line and nothing written; good ones are described
//! exactly (info-hash and piece hashes recomputed here from bytes the test writes itself).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{bt, bt_info, pseudo_random, write_files, Output, Spec};
use sha1::{Digest, Sha1};

// ---- a bencode writer for hand-made torrents -------------------------------------------------

/// A bencode value, written by [`B::encode`]; dictionaries come out with sorted keys.
#[derive(Clone)]
enum B {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<B>),
    Dict(BTreeMap<Vec<u8>, B>),
    /// Bytes spliced in as they are (for values no encoder would write).
    Raw(Vec<u8>),
}

impl B {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            B::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            B::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            B::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.write(out));
                out.push(b'e');
            }
            B::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    B::Bytes(k.clone()).write(out);
                    v.write(out);
                }
                out.push(b'e');
            }
            B::Raw(r) => out.extend_from_slice(r),
        }
    }

    /// Set `key` of a dictionary (`None` removes it).
    fn with(mut self, key: &str, value: Option<B>) -> B {
        let B::Dict(d) = &mut self else {
            panic!("not a dictionary")
        };
        match value {
            Some(v) => d.insert(key.as_bytes().to_vec(), v),
            None => d.remove(key.as_bytes()),
        };
        self
    }
}

fn s(text: &str) -> B {
    B::Bytes(text.as_bytes().to_vec())
}

fn dict(pairs: Vec<(&str, B)>) -> B {
    B::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

fn path(components: &[&str]) -> B {
    B::List(components.iter().map(|c| s(c)).collect())
}

/// `count` made-up piece hashes.
fn fake_pieces(count: usize) -> B {
    B::Bytes(pseudo_random(99, 20 * count))
}

const PL: i64 = 16384;

/// A valid single-file info dictionary: 40,000 bytes in 3 pieces of 16 KiB.
fn single_info() -> B {
    dict(vec![
        ("length", B::Int(40_000)),
        ("name", s("a.bin")),
        ("piece length", B::Int(PL)),
        ("pieces", fake_pieces(3)),
    ])
}

/// A valid multi-file info dictionary over these (path, length) files, with the right number
/// of piece hashes.
fn multi_info(files: &[(&[&str], i64)]) -> B {
    let total: i64 = files.iter().map(|f| f.1).sum();
    let list = files
        .iter()
        .map(|(p, len)| file_entry(B::Int(*len), path(p)))
        .collect();
    dict(vec![
        ("files", B::List(list)),
        ("name", s("top")),
        ("piece length", B::Int(PL)),
        (
            "pieces",
            fake_pieces((total as u64).div_ceil(PL as u64) as usize),
        ),
    ])
}

/// A whole torrent file around `info`.
fn torrent(info: B) -> Vec<u8> {
    dict(vec![
        ("announce", s("http://127.0.0.1:1/announce")),
        ("info", info),
    ])
    .encode()
}

/// A whole torrent whose `files` list is `entries`, as they are.
fn torrent_with_files(entries: Vec<B>) -> Vec<u8> {
    torrent(multi_info(&[(&["a"], 1)]).with("files", Some(B::List(entries))))
}

/// One entry of a `files` list.
fn file_entry(length: B, path: B) -> B {
    dict(vec![("length", length), ("path", path)])
}

/// `depth` nested lists.
fn deep_lists(depth: usize) -> B {
    B::Raw([vec![b'l'; depth], vec![b'e'; depth]].concat())
}

// ---- hostile torrents ------------------------------------------------------------------------

/// A hostile `.torrent`: its file name, its bytes (or `None` for the sparse oversized file),
/// and a word the error must contain.
struct Hostile {
    name: &'static str,
    bytes: Option<Vec<u8>>,
    says: &'static str,
}

fn hostile(name: &'static str, bytes: Vec<u8>, says: &'static str) -> Hostile {
    Hostile {
        name,
        bytes: Some(bytes),
        says,
    }
}

fn hostile_torrents() -> Vec<Hostile> {
    let good = torrent(multi_info(&[(&["a"], 1), (&["sub", "b"], 40_000)]));
    let n = good.len();
    vec![
        hostile("truncated-1", good[..1].to_vec(), "not valid bencode"),
        hostile(
            "truncated-half",
            good[..n / 2].to_vec(),
            "not valid bencode",
        ),
        hostile(
            "truncated-last",
            good[..n - 1].to_vec(),
            "not valid bencode",
        ),
        hostile("empty", Vec::new(), "empty"),
        hostile("garbage", pseudo_random(7, 4096), "not"),
        hostile("top-level-list", b"li1ee".to_vec(), "not a dictionary"),
        hostile("no-info", dict(vec![("announce", s("x"))]).encode(), "info"),
        hostile("info-is-int", torrent(B::Int(3)), "info"),
        hostile("trailing-bytes", [&good[..], b"i1e"].concat(), "stray"),
        hostile(
            "piece-length-string",
            torrent(single_info().with("piece length", Some(s("16384")))),
            "piece length",
        ),
        hostile(
            "piece-length-zero",
            torrent(single_info().with("piece length", Some(B::Int(0)))),
            "piece length",
        ),
        hostile(
            "files-int",
            torrent(
                single_info()
                    .with("length", None)
                    .with("files", Some(B::Int(3))),
            ),
            "files",
        ),
        hostile(
            "length-and-files",
            torrent(multi_info(&[(&["a"], 1)]).with("length", Some(B::Int(1)))),
            "exactly one of",
        ),
        hostile(
            "negative-length",
            torrent(single_info().with("length", Some(B::Int(-1)))),
            "length",
        ),
        hostile(
            "path-not-list",
            torrent_with_files(vec![file_entry(B::Int(1), s("a"))]),
            "path",
        ),
        hostile(
            "piece-count-mismatch",
            torrent(single_info().with("pieces", Some(fake_pieces(2)))),
            "piece hashes",
        ),
        hostile(
            "pieces-not-multiple-of-20",
            torrent(single_info().with("pieces", Some(B::Bytes(vec![0; 59])))),
            "multiple of 20",
        ),
        hostile(
            "dotdot-path",
            torrent(multi_info(&[(&["..", "..", "etc", "passwd"], 5)])),
            "unsafe path",
        ),
        hostile(
            "dotdot-slash-in-component",
            torrent(multi_info(&[(&["../../x"], 5)])),
            "unsafe path",
        ),
        hostile(
            "absolute-component",
            torrent(multi_info(&[(&["/etc/passwd"], 5)])),
            "unsafe path",
        ),
        hostile(
            "empty-component",
            torrent(multi_info(&[(&["a", "", "b"], 5)])),
            "unsafe path",
        ),
        hostile(
            "empty-path",
            torrent(multi_info(&[(&[], 5)])),
            "unsafe path",
        ),
        hostile(
            "name-dotdot",
            torrent(single_info().with("name", Some(s("..")))),
            "unsafe path",
        ),
        hostile(
            "name-absolute",
            torrent(single_info().with("name", Some(s("/etc/passwd")))),
            "unsafe path",
        ),
        hostile(
            "huge-length",
            torrent(single_info().with("length", Some(B::Int(1 << 60)))),
            "piece hashes",
        ),
        hostile(
            "lengths-overflow",
            torrent_with_files(
                ["a", "b", "c"]
                    .iter()
                    .map(|p| file_entry(B::Int(i64::MAX), path(&[p])))
                    .collect(),
            ),
            "2^64",
        ),
        hostile(
            "duplicate-paths",
            torrent(multi_info(&[(&["d", "x"], 5), (&["d", "x"], 5)])),
            "listed twice",
        ),
        hostile(
            "file-and-folder",
            torrent(multi_info(&[(&["a"], 5), (&["a", "b"], 5)])),
            "listed twice, or as both a file and a folder",
        ),
        hostile(
            "deep-lists-top-level",
            dict(vec![("info", single_info()), ("zz", deep_lists(100_000))]).encode(),
            "not valid bencode",
        ),
        hostile(
            "deep-lists-in-info",
            torrent(single_info().with("zz", Some(deep_lists(100_000)))),
            "not valid bencode",
        ),
        hostile(
            "deep-lists-in-path",
            torrent_with_files(vec![file_entry(B::Int(1), deep_lists(10_000))]),
            "not valid bencode",
        ),
        Hostile {
            name: "over-64-mib",
            bytes: None,
            says: "larger than 64 MiB",
        },
    ]
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.insert(path, (meta.len(), meta.modified().expect("mtime")));
        }
    }
    out
}

/// Why `out` is not a clean refusal naming `file` and saying `says`, if it is not one.
fn refusal_problem(out: &Output, file: &Path, says: &str) -> Option<String> {
    let lines: Vec<&str> = out.stderr.lines().collect();
    let problem = if out.status.success() {
        "exit code 0".to_string()
    } else if lines.len() != 1 || !lines[0].starts_with("bt: error: ") {
        "stderr is not exactly one `bt: error:` line".to_string()
    } else if !lines[0].contains(file.to_str().expect("UTF-8 path")) {
        "the error does not name the file".to_string()
    } else if !lines[0].contains(says) {
        format!("the error does not say `{says}`")
    } else if let Some(part) = repeated_tail(lines[0]) {
        format!("the error says {part:?} twice")
    } else {
        return None;
    };
    Some(format!(
        "{}: {problem}\n  status {}\n  stderr: {:?}",
        out.what, out.status, out.stderr
    ))
}

/// The part of an error line that ends it twice over (`...: X: X`), a context chain that
/// repeats its own cause.
fn repeated_tail(line: &str) -> Option<&str> {
    line.match_indices(": ").find_map(|(i, _)| {
        let (head, tail) = (&line[..i], &line[i + 2..]);
        (!tail.is_empty() && head.ends_with(tail)).then_some(tail)
    })
}

#[test]
fn hostile_torrents_are_refused_with_one_line_and_nothing_written() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let lib = root.join("lib");
    std::fs::create_dir(&lib).expect("mkdir");
    let mut problems = Vec::new();
    for case in hostile_torrents() {
        let file = root.join(format!("{}.torrent", case.name));
        match &case.bytes {
            Some(b) => std::fs::write(&file, b).expect("write"),
            // Sparse: takes no disk space, yet is one byte over the read cap.
            None => std::fs::File::create(&file)
                .and_then(|f| f.set_len(bt::library::MAX_TORRENT_FILE + 1))
                .expect("sparse file"),
        }
        let before = snapshot(root);
        let f = file.to_str().expect("UTF-8 temp path");
        let runs = [
            vec!["info", f],
            vec!["info", f, "--json"],
            vec![
                "import",
                f,
                "--profile",
                "t",
                "--port",
                "1",
                "--folder",
                "lib",
            ],
            vec!["edit", f, "--tracker", TRACKER, "-o", "edited.torrent"],
            vec!["edit", f, "--tracker", TRACKER],
        ];
        for args in runs {
            let out = bt(root, &args);
            problems.extend(refusal_problem(&out, &file, case.says));
            if snapshot(root) != before {
                problems.push(format!("{}: wrote or changed a file", out.what));
            }
        }
        std::fs::remove_file(&file).expect("remove");
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        std::fs::read_dir(&lib).expect("list").next().is_none(),
        "the library folder stays empty"
    );
}

// ---- good torrents ---------------------------------------------------------------------------

/// A folder with nested folders, a zero-length file and sizes that are not multiples of 16 KiB,
/// in the order `bt create` must list them (sorted by path components).
const ALBUM: [Spec; 6] = [
    ("a.bin", 1),
    ("b/c/deep.bin", 16385),
    ("b/c/empty", 0),
    ("b/mid.bin", 16383),
    ("b2.bin", 40_000),
    ("z.bin", 100_003),
];
const TRACKER: &str = "http://127.0.0.1:1/announce";

/// Write ALBUM under `dir/album` and `bt create` it with 16 KiB pieces into `dir/album.torrent`,
/// passing `extra` arguments too. Returns the torrent path and the data, end to end.
fn create_album(dir: &Path, extra: &[&str]) -> (PathBuf, Vec<u8>) {
    let data = write_files(&dir.join("album"), &ALBUM).concat();
    let mut args = vec!["create", "album", "--piece-length", "16k"];
    args.extend(["--tracker", TRACKER, "-o", "album.torrent"]);
    args.extend(extra);
    let out = bt(dir, &args).success();
    assert!(out.stdout.starts_with("created album.torrent"), "{out:?}");
    (dir.join("album.torrent"), data)
}

/// The info dictionary `bt create` must write for `album`, built here from the data.
fn expected_album_info(data: &[u8], private: bool) -> B {
    let files = ALBUM
        .iter()
        .map(|(p, len)| {
            let parts: Vec<&str> = p.split('/').collect();
            dict(vec![
                ("length", B::Int(*len as i64)),
                ("path", path(&parts)),
            ])
        })
        .collect();
    let pieces = data
        .chunks(PL as usize)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    let info = dict(vec![
        ("files", B::List(files)),
        ("name", s("album")),
        ("piece length", B::Int(PL)),
        ("pieces", B::Bytes(pieces)),
    ]);
    info.with("private", private.then_some(B::Int(1)))
}

fn hex_sha1(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

#[test]
fn create_then_info_json_describes_the_folder_exactly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (torrent, data) = create_album(tmp.path(), &["--comment", "hello"]);
    let info = bt_info(&torrent);

    let expected = expected_album_info(&data, false).encode();
    assert_eq!(info["info_hash"], hex_sha1(&expected), "info-hash");
    // The info dictionary stands in the file byte for byte as built here.
    let bytes = std::fs::read(&torrent).expect("read");
    assert!(
        bytes.windows(expected.len()).any(|w| w == expected),
        "the info dictionary is not the canonical one"
    );
    assert_eq!(info["name"], "album");
    assert_eq!(info["length"], data.len() as u64);
    assert_eq!(info["piece_length"], PL);
    let pieces = data.len().div_ceil(PL as usize);
    assert_eq!(info["pieces"], pieces);
    assert_eq!(info["private"], false);
    assert_eq!(info["multi_file"], true);
    assert_eq!(info["trackers"], serde_json::json!([TRACKER]));
    assert_eq!(info["comment"], "hello");
    let files: Vec<(Vec<String>, u64)> = ALBUM
        .iter()
        .map(|(p, len)| (p.split('/').map(String::from).collect(), *len as u64))
        .collect();
    let got: Vec<(Vec<String>, u64)> = info["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let path = serde_json::from_value(f["path"].clone()).expect("path list");
            (path, f["length"].as_u64().expect("length"))
        })
        .collect();
    assert_eq!(got, files);
    let hashes: Vec<String> = data.chunks(PL as usize).map(hex_sha1).collect();
    assert_eq!(info["piece_hashes"], serde_json::json!(hashes));
}

#[test]
fn create_private_and_single_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (torrent, data) = create_album(tmp.path(), &["--private"]);
    let info = bt_info(&torrent);
    assert_eq!(info["private"], true);
    let expected = expected_album_info(&data, true).encode();
    assert_eq!(info["info_hash"], hex_sha1(&expected), "private info-hash");

    let file = tmp.path().join("odd.bin");
    let bytes = pseudo_random(5, 16385);
    std::fs::write(&file, &bytes).expect("write");
    bt(tmp.path(), ["create", "odd.bin", "--tracker", TRACKER]).success();
    let info = bt_info(&tmp.path().join("odd.bin.torrent"));
    assert_eq!(info["name"], "odd.bin");
    assert_eq!(info["multi_file"], false);
    assert_eq!(info["length"], 16385);
    // 16 KiB automatic pieces: a full one and a 1-byte one.
    assert_eq!(info["piece_length"], 16384);
    assert_eq!(info["pieces"], 2);
    assert_eq!(
        info["files"],
        serde_json::json!([{"path": ["odd.bin"], "length": 16385}])
    );
    let expected = dict(vec![
        ("length", B::Int(16385)),
        ("name", s("odd.bin")),
        ("piece length", B::Int(16384)),
        (
            "pieces",
            B::Bytes(
                bytes
                    .chunks(16384)
                    .flat_map(|c| Sha1::digest(c).to_vec())
                    .collect(),
            ),
        ),
    ]);
    assert_eq!(info["info_hash"], hex_sha1(&expected.encode()));
}

#[test]
fn info_pieces_prints_one_hash_per_piece() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (torrent, data) = create_album(tmp.path(), &[]);
    let out = bt(
        tmp.path(),
        [
            OsStr::new("info"),
            torrent.as_os_str(),
            OsStr::new("--pieces"),
        ],
    )
    .success();
    let listed: Vec<String> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "piece hashes:")
        .skip(1)
        .map(|l| {
            let (index, hash) = l.trim().split_once("  ").expect("INDEX  HASH");
            assert_eq!(hash.len(), 40, "{l}");
            index.trim().parse::<usize>().expect("index");
            hash.to_string()
        })
        .collect();
    let want: Vec<String> = data.chunks(PL as usize).map(hex_sha1).collect();
    assert_eq!(listed, want);
    assert_eq!(listed.len(), 11);
}

#[test]
fn create_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (torrent, _) = create_album(tmp.path(), &[]);
    std::fs::write(&torrent, b"precious").expect("write");
    let args = [
        "create",
        "album",
        "--tracker",
        TRACKER,
        "-o",
        "album.torrent",
    ];
    let out = bt(tmp.path(), args);
    assert!(!out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].starts_with("bt: error: album.torrent already exists"),
        "{out:?}"
    );
    assert!(lines[0].contains("--force"), "{out:?}");
    assert_eq!(std::fs::read(&torrent).expect("read"), b"precious");

    bt(tmp.path(), [&args[..], &["--force"]].concat()).success();
    assert_eq!(bt_info(&torrent)["name"], "album");
}

#[test]
fn create_refuses_a_piece_length_that_is_not_a_power_of_two() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("f.bin"), b"data").expect("write");
    for bad in ["10000", "0", "3k", "128m"] {
        let args = [
            "create",
            "f.bin",
            "--tracker",
            TRACKER,
            "--piece-length",
            bad,
        ];
        let out = bt(tmp.path(), args);
        assert!(!out.status.success(), "{out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{out:?}");
        assert!(lines[0].starts_with("bt: error: "), "{out:?}");
        assert!(lines[0].contains(bad), "the error names the value: {out:?}");
        assert!(
            !tmp.path().join("f.bin.torrent").exists(),
            "{bad}: wrote a torrent"
        );
    }
}

#[test]
fn edit_with_two_trackers_writes_an_announce_list_and_keeps_the_info_hash() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (torrent, _) = create_album(tmp.path(), &[]);
    let before = bt_info(&torrent);
    let (one, two) = ("http://10.0.0.1:6969/announce", "udp://10.0.0.2:6969");
    let args = ["edit", "album.torrent", "--tracker", one, "--tracker", two];
    bt(tmp.path(), args).success();
    let after = bt_info(&torrent);
    assert_eq!(after["info_hash"], before["info_hash"]);
    assert_eq!(after["trackers"], serde_json::json!([one, two]));
    let bytes = std::fs::read(&torrent).expect("read");
    let want = dict(vec![
        ("announce", s(one)),
        (
            "announce-list",
            B::List(vec![B::List(vec![s(one)]), B::List(vec![s(two)])]),
        ),
    ]);
    // `announce` and `announce-list` come first in the sorted top-level dictionary.
    let prefix = want.encode();
    assert!(
        bytes.starts_with(&prefix[..prefix.len() - 1]),
        "{:?}",
        String::from_utf8_lossy(&bytes[..80])
    );
    assert_eq!(after["piece_hashes"], before["piece_hashes"]);

    let out = bt(tmp.path(), ["edit", "album.torrent"]);
    assert!(!out.status.success() && out.stderr.starts_with("bt: error: nothing to change"));
}

/// `bt import|show ... --profile t --folder lib --port 1`, run in `dir`.
fn library(dir: &Path, command: &str, torrent: Option<&Path>) -> Output {
    let mut args: Vec<&OsStr> = vec![OsStr::new(command)];
    args.extend(torrent.map(Path::as_os_str));
    args.extend(["--profile", "t", "--folder", "lib", "--port", "1"].map(OsStr::new));
    bt(dir, args).success()
}

/// Create the album in `dir` and import it into `dir/lib`; returns the torrent, its info-hash
/// and what `bt import` said.
fn import_album(dir: &Path) -> (PathBuf, String, Output) {
    let (torrent, _) = create_album(dir, &[]);
    let hash = bt_info(&torrent)["info_hash"].as_str().map(String::from);
    let out = library(dir, "import", Some(&torrent));
    (torrent, hash.expect("info_hash"), out)
}

#[test]
fn import_twice_says_already_there() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (torrent, hash, first) = import_album(tmp.path());
    assert!(first.stdout.starts_with("imported album"), "{first:?}");
    assert!(first.stdout.contains(&hash), "{first:?}");
    let copied = tmp.path().join("lib/album.torrent");
    assert_eq!(bt_info(&copied)["info_hash"], hash.as_str());

    // The same torrent under another name is still the same torrent.
    let renamed = tmp.path().join("other-name.torrent");
    std::fs::copy(&torrent, &renamed).expect("copy");
    for t in [&torrent, &renamed] {
        let again = library(tmp.path(), "import", Some(t));
        assert!(
            again.stdout.contains("is already in t's library"),
            "{again:?}"
        );
    }
    let files: Vec<_> = std::fs::read_dir(tmp.path().join("lib"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files, ["album.torrent"]);
}

/// The `ON DISK` column of `bt show` for the torrent named `name`.
fn on_disk(show: &Output, name: &str) -> String {
    let row = show
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{}", show.stdout));
    let cell = row.split_whitespace().find(|w| w.ends_with('%'));
    cell.unwrap_or_else(|| panic!("no percentage in {row:?}"))
        .to_string()
}

#[test]
fn show_lists_the_torrent_with_the_data_on_disk() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_, hash, _) = import_album(tmp.path());
    let show = library(tmp.path(), "show", None);
    assert!(show.stdout.contains(&hash), "{show:?}");
    assert_eq!(on_disk(&show, "album"), "0%");

    std::fs::rename(tmp.path().join("album"), tmp.path().join("lib/album")).expect("move");
    let show = library(tmp.path(), "show", None);
    assert_eq!(on_disk(&show, "album"), "100%");
    assert!(
        show.stdout.contains("hashed now as `bt check` does"),
        "{show:?}"
    );

    // Every byte is on disk, but one is wrong: that piece is not verified.
    let first = tmp.path().join("lib/album").join(ALBUM[5].0);
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[0] ^= 0xff;
    std::fs::write(&first, bytes).expect("write");
    let show = library(tmp.path(), "show", None);
    assert_ne!(on_disk(&show, "album"), "100%");
    let json = bt(
        tmp.path(),
        [
            "show",
            "--profile",
            "t",
            "--folder",
            "lib",
            "--port",
            "1",
            "--json",
        ],
    )
    .success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let t = &v["torrents"][0];
    assert_eq!(t["name"], "album");
    assert_eq!(t["info_hash"], hash.as_str());
    assert_eq!(
        t["verified_pieces"].as_u64().unwrap() + 1,
        t["pieces"].as_u64().unwrap(),
        "{t}"
    );
    assert!(v["verified_by"].as_str().unwrap().contains("sha1"), "{v}");
}

#[test]
fn shipped_samples_parse_with_their_known_info_hashes() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let samples = [
        (
            "album.torrent",
            "1222918fe428a77526192b80273b6ed5099f9b05",
            201_357,
            6,
        ),
        (
            "book.txt.torrent",
            "2ac1dd29f9593206ff2b37612b746fc09e42e254",
            123_457,
            1,
        ),
    ];
    for (file, hash, length, files) in samples {
        let info = bt_info(&data.join(file));
        assert_eq!(info["info_hash"], hash, "{file}");
        assert_eq!(info["name"], file.trim_end_matches(".torrent"), "{file}");
        assert_eq!(info["length"], length, "{file}");
        assert_eq!(
            info["files"].as_array().map(Vec::len),
            Some(files),
            "{file}"
        );
    }

    // The sample data sits beside its torrents, like a profile's library.
    let args = ["show", "--profile", "samples", "--port", "1", "--folder"];
    let show = bt(&data, args.iter().map(OsStr::new).chain([data.as_os_str()])).success();
    assert_eq!(on_disk(&show, "album"), "100%");
    assert_eq!(on_disk(&show, "book.txt"), "100%");
}

#[test]
fn the_command_line_follows_the_usual_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let version = bt(d, ["--version"]).success();
    assert_eq!(
        version.stdout.trim(),
        format!("bt {}", env!("CARGO_PKG_VERSION"))
    );
    let help = bt(d, ["-h"]).success();
    assert!(help.stdout.starts_with("Usage: bt "), "{}", help.stdout);
    // The example in the top-level help names a file of the repository.
    let example = help
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("bt create "))
        .unwrap_or_else(|| panic!("no `bt create` example:\n{}", help.stdout));
    let named = example.split_whitespace().nth(2).unwrap();
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(named).exists(),
        "{example}"
    );
    let sub = bt(d, ["info", "-h"]).success();
    assert!(sub.stdout.starts_with("Usage: bt info "), "{}", sub.stdout);

    // A mistake: one line naming the subcommand's help, exit 2.
    for (args, want) in [
        (
            vec!["client", "--bogus"],
            "bt: error: unrecognized argument: --bogus; `bt client --help` shows the usage",
        ),
        (
            vec!["info"],
            "bt: error: required positional arguments not provided: torrent; `bt info --help` shows the usage",
        ),
        (
            vec!["frobnicate"],
            "bt: error: unrecognized argument: frobnicate; `bt --help` shows the usage",
        ),
    ] {
        let out = bt(d, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim_end(), want, "{args:?}");
    }

    // A text file is not a torrent, said plainly.
    std::fs::write(d.join("notes.txt"), "# shopping\nmilk\n").unwrap();
    let out = bt(d, ["info", "notes.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.stderr.trim_end(),
        "bt: error: notes.txt is not a bencoded torrent (a .torrent file is a bencoded \
         dictionary); is it the file you meant?"
    );
}
