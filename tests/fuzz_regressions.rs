//! Replays every input the fuzzers found a bug with (`tests/fuzz-regressions/<target>/`) and
//! every seed (`fuzz/seeds/<target>/`) through the same checks the fuzz targets run
//! (`fuzz/checks.rs`), so plain `cargo test` keeps the fixes fixed without libFuzzer.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Run `check` on every file of the target's regression and seed folders; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in [
        root.join("tests/fuzz-regressions").join(target),
        root.join("fuzz/seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("directory entry").path())
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn metainfo() {
    assert!(replay("metainfo", checks::metainfo) >= 7);
}

#[test]
fn wire_stream() {
    assert!(replay("wire_stream", checks::wire_stream) >= 4);
}

#[test]
fn tracker_query() {
    assert!(replay("tracker_query", checks::tracker_query) >= 7);
}

#[test]
fn tracker_response() {
    assert!(replay("tracker_response", checks::tracker_response) >= 5);
}

#[test]
fn udp_packet() {
    assert!(replay("udp_packet", checks::udp_packet) >= 8);
}

#[test]
fn extension() {
    assert!(replay("extension", checks::extension) >= 7);
}

#[test]
fn bitfield() {
    assert!(replay("bitfield", checks::bitfield) >= 4);
}

#[test]
fn lsd() {
    assert!(replay("lsd", checks::lsd) >= 3);
}

/// The seeds are real: each torrent seed parses, so the metainfo target starts from valid files.
#[test]
fn torrent_seeds_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/metainfo");
    for entry in std::fs::read_dir(dir).expect("seed folder") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("seed");
        if let Err(e) = bt::proto::metainfo::Metainfo::from_bytes(&data) {
            panic!("{}: {e}", path.display());
        }
    }
}
