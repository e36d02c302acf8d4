//! Magnet links and the extension protocol end to end: `bt client MAGNET` fetches the metadata
//! from a bt seeder and downloads; a bt seeder serves its metadata (and rejects pieces that do
//! not exist); fake peers speaking raw bytes send metadata out of order, of the wrong size,
//! with a lying `total_size`, that does not hash to the info-hash, odd extension handshakes,
//! and peer exchange messages with 10,000 addresses or naming bt itself.
//!
//! The tests against real clients (libtorrent, aria2) are `#[ignore]`d: `scripts/test.sh` runs
//! them. Everything stays on 127.0.0.1; real clients run with DHT, LSD, UPnP and NAT-PMP off.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bt::proto::extension::{self, ExtHandshake};
use bt::proto::metadata::{self, MetadataMsg};
use bt::proto::metainfo::Metainfo;
use bt::proto::pex::{Pex, PexPeer};
use bt::proto::wire::{self, FrameLimits, Handshake, Message, HANDSHAKE_LEN};
use common::{bt, live, poll, require_libtorrent, require_tool, unused_port, Proc, BT, SHORT};
use support::{client_script, Tracker};

/// A torrent "set" (two files, 32 KiB pieces) with its data in `DIR/seed/set`; returns the
/// torrent's path (`DIR/seed/set.torrent`, so that `DIR/seed` is a seeder's folder).
fn seed_fixture(dir: &Path, tracker: &str, size: usize) -> PathBuf {
    let root = dir.join("seed/set");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("one.bin"), live::bytes(1, size)).unwrap();
    std::fs::write(root.join("two.txt"), live::bytes(2, 12_345)).unwrap();
    let torrent = dir.join("seed/set.torrent");
    bt(
        dir,
        [
            "create",
            root.to_str().unwrap(),
            "--tracker",
            tracker,
            "--piece-length",
            "32k",
            "-o",
            torrent.to_str().unwrap(),
        ],
    )
    .success();
    torrent
}

fn meta(torrent: &Path) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap()
}

fn magnet_with_peer(m: &Metainfo, peer: SocketAddr) -> String {
    format!("magnet:?xt=urn:btih:{}&dn=set&x.pe={peer}", m.info_hash)
}

/// `bt client` into `folder` with `args` after the usual ones (exit when done, port 0).
fn client(dir: &Path, folder: &Path, stall: &str, args: &[&str], log: bool) -> Proc {
    let mut cmd = Command::new(BT);
    cmd.args(["client", "--profile", "c", "--folder"])
        .arg(folder)
        .args(["--port", "0", "--exit-when-done", "--stall-timeout", stall])
        .args(args)
        .current_dir(dir);
    if log {
        cmd.env("RUST_LOG", "bt=debug");
    } else {
        cmd.env_remove("RUST_LOG");
    }
    Proc::spawn("bt client", &mut cmd)
}

#[test]
fn client_downloads_from_a_bt_seeder_given_only_a_magnet() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 1_500_001);
    let (_seed, port) = live::start_peer(dir.path(), &dir.path().join("seed"), &[]);
    let link = magnet_with_peer(&meta(&torrent), SocketAddr::from(([127, 0, 0, 1], port)));
    let folder = dir.path().join("c");
    let mut c = client(dir.path(), &folder, "30", &[&link], false);
    // (A "fetching metadata" status line shows only if the fetch outlasts a display tick.)
    c.wait_line("metadata received and checked, saved in the library", SHORT);
    let (code, _) = c.finish(SHORT);
    assert_eq!(code, 0, "the client failed");
    live::same_tree(&dir.path().join("seed/set"), &folder.join("set"));
    // The fetched torrent is in the library, byte for byte the info dictionary of the original.
    let saved = meta(&folder.join("set.torrent"));
    assert_eq!(saved.info_hash, meta(&torrent).info_hash);
    assert_eq!(saved.info_bytes(), meta(&torrent).info_bytes());
    let show = bt(
        dir.path(),
        [
            "show",
            "--profile",
            "client",
            "--folder",
            folder.to_str().unwrap(),
        ],
    )
    .success();
    assert!(show.stdout.contains("set"), "bt show: {}", show.stdout);
    // A restart without the link resumes from the library.
    let again = client(dir.path(), &folder, "30", &[], false);
    let (code, lines) = again.finish(SHORT);
    assert_eq!(code, 0);
    assert!(
        lines.iter().any(|l| l.contains("already complete")),
        "{lines:?}"
    );
}

#[test]
fn info_prints_the_magnet_link_and_create_too() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 40_000);
    let m = meta(&torrent);
    let out = bt(dir.path(), ["info", "--magnet", torrent.to_str().unwrap()]).success();
    let link = out.stdout.trim();
    let parsed = bt::proto::magnet::Magnet::parse(link).unwrap();
    assert_eq!(parsed.info_hash, m.info_hash);
    assert_eq!(parsed.name.as_deref(), Some("set"));
    assert_eq!(parsed.trackers, ["http://127.0.0.1:9/announce"]);
    let out = bt(
        dir.path(),
        [
            "create",
            dir.path().join("seed/set").to_str().unwrap(),
            "--tracker",
            "http://127.0.0.1:9/announce",
            "--piece-length",
            "32k",
            "-o",
            dir.path().join("again.torrent").to_str().unwrap(),
        ],
    )
    .success();
    assert!(
        out.stdout.contains(&format!("magnet: {link}")),
        "{}",
        out.stdout
    );
}

// ----- a fake peer speaking raw bytes -----

fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let limits = FrameLimits::for_pieces(100_000);
    loop {
        if let Ok(Some((_, used))) = wire::decode(buf, limits) {
            let frame = buf[..used].to_vec();
            buf.drain(..used);
            return Some(frame);
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn decode(frame: &[u8]) -> Message<'_> {
    wire::decode(frame, FrameLimits::for_pieces(100_000))
        .unwrap()
        .unwrap()
        .0
}

fn ext_frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(&Message::Extended { id, payload }, &mut out);
    out
}

fn handshake_bytes(info_hash: [u8; 20], id: u8) -> [u8; HANDSHAKE_LEN] {
    let mut h = Handshake::new(info_hash, [id; 20]);
    extension::set_extensions(&mut h.reserved);
    h.encode()
}

/// How a fake metadata peer misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lie {
    /// Honest, but answers the requests last first.
    Reversed,
    /// Piece 0 one byte short.
    WrongSize,
    /// `total_size` one more than announced.
    TotalSize,
    /// One byte flipped: the whole does not hash to the info-hash.
    HashMismatch,
}

/// A peer at `listener` that has `info` (the metadata of `info_hash`) and no data: answers
/// one connection's handshake, its extension handshake, and its metadata requests the `lie`
/// way. Returns whether bt closed the connection after the answers.
fn fake_metadata_peer(listener: TcpListener, info_hash: [u8; 20], info: Vec<u8>, lie: Lie) -> bool {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut hs = [0u8; HANDSHAKE_LEN];
    s.read_exact(&mut hs).unwrap();
    let theirs = Handshake::decode(&hs).unwrap();
    assert!(
        extension::supports_extensions(&theirs.reserved),
        "bt set no extension bit"
    );
    s.write_all(&handshake_bytes(info_hash, b'f')).unwrap();
    let mut ours = ExtHandshake {
        metadata_size: Some(info.len() as u64),
        ..Default::default()
    };
    ours.m.insert("ut_metadata".into(), 7);
    s.write_all(&ext_frame(0, &ours.encode())).unwrap();
    let mut buf = Vec::new();
    let mut their_id = None;
    let mut wanted = Vec::new();
    let count = metadata::piece_count(info.len() as u64);
    while wanted.len() < count as usize {
        let Some(f) = read_frame(&mut s, &mut buf) else {
            return true;
        };
        let Message::Extended { id, payload } = decode(&f) else {
            continue;
        };
        if id == 0 {
            let h = ExtHandshake::decode(payload).unwrap();
            their_id = h.id("ut_metadata");
            assert!(h.metadata_size.is_none(), "a magnet client has no metadata");
        } else if id == 7 {
            if let MetadataMsg::Request { piece } =
                metadata::decode(payload, Some(info.len() as u64)).unwrap()
            {
                wanted.push(piece);
            }
        }
    }
    let their_id = their_id.expect("bt sent its extension handshake before requesting");
    wanted.sort();
    wanted.dedup();
    assert_eq!(
        wanted,
        (0..count).collect::<Vec<_>>(),
        "bt asked for every piece"
    );
    for &piece in wanted.iter().rev() {
        let start = piece as usize * metadata::METADATA_PIECE;
        let len = metadata::piece_len(info.len() as u64, piece);
        let mut data = info[start..start + len].to_vec();
        let mut total = info.len() as u64;
        match lie {
            Lie::Reversed => {}
            Lie::WrongSize if piece == 0 => {
                data.pop();
            }
            Lie::TotalSize => total += 1,
            Lie::HashMismatch if piece == 0 => data[10] ^= 0xff,
            _ => {}
        }
        let mut payload = Vec::new();
        metadata::encode(
            &MetadataMsg::Data {
                piece,
                total_size: total,
                data: &data,
            },
            &mut payload,
        );
        if s.write_all(&ext_frame(their_id, &payload)).is_err() {
            return true;
        }
    }
    // bt closes the connection of a liar (and of an honest peer once the metadata is in).
    loop {
        if read_frame(&mut s, &mut buf).is_none() {
            return true;
        }
    }
}

/// A torrent whose info dictionary takes several metadata pieces (2,000 piece hashes).
fn big_metadata_fixture(dir: &Path) -> PathBuf {
    let root = dir.join("seed/set");
    std::fs::create_dir_all(&root).unwrap();
    let f = std::fs::File::create(root.join("one.bin")).unwrap();
    f.set_len(2000 * 16384).unwrap();
    let torrent = dir.join("seed/set.torrent");
    bt(
        dir,
        [
            "create",
            root.to_str().unwrap(),
            "--tracker",
            "http://127.0.0.1:9/announce",
            "--piece-length",
            "16k",
            "-o",
            torrent.to_str().unwrap(),
        ],
    )
    .success();
    torrent
}

fn against_fake(lie: Lie) {
    let dir = tempfile::tempdir().unwrap();
    let torrent = big_metadata_fixture(dir.path());
    let m = meta(&torrent);
    assert!(metadata::piece_count(m.info_bytes().len() as u64) >= 3);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (hash, info) = (m.info_hash.0, m.info_bytes().to_vec());
    let fake = std::thread::spawn(move || fake_metadata_peer(listener, hash, info, lie));
    let folder = dir.path().join("c");
    let link = magnet_with_peer(&m, addr);
    let mut c = client(dir.path(), &folder, "5", &[&link], true);
    let code = c.wait_exit(SHORT).code();
    let lines = c.lines();
    assert!(fake.join().unwrap(), "bt kept the connection");
    let saved = folder.join("set.torrent");
    if lie == Lie::Reversed {
        // The metadata is in (the download then stalls: the fake has no data).
        assert_eq!(meta(&saved).info_hash, m.info_hash, "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("metadata received and checked")),
            "{lines:?}"
        );
    } else {
        assert_ne!(code, Some(0));
        assert!(!saved.exists(), "bt saved bad metadata");
        assert!(
            lines.iter().any(|l| l.contains("no metadata after 5 s")),
            "{lines:?}"
        );
        // While it waited, the display said for what.
        assert!(
            lines.iter().any(|l| l.contains("fetching metadata")),
            "{lines:?}"
        );
    }
}

#[test]
fn metadata_pieces_out_of_order_are_assembled() {
    against_fake(Lie::Reversed);
}

#[test]
fn a_metadata_piece_of_the_wrong_size_drops_the_peer() {
    against_fake(Lie::WrongSize);
}

#[test]
fn a_lying_total_size_drops_the_peer() {
    against_fake(Lie::TotalSize);
}

#[test]
fn metadata_that_does_not_hash_to_the_info_hash_is_thrown_away() {
    against_fake(Lie::HashMismatch);
}

/// Connect to a bt peer serving `info_hash` as a fake peer; returns the stream after both
/// handshakes and bt's extension handshake (decoded), with the bytes read past it.
fn connect_fake(addr: SocketAddr, info_hash: [u8; 20]) -> (TcpStream, ExtHandshake, Vec<u8>) {
    // A peer id of its own each time, as separate peers would have.
    static NEXT_ID: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(b'a');
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&handshake_bytes(info_hash, id)).unwrap();
    let mut hs = [0u8; HANDSHAKE_LEN];
    s.read_exact(&mut hs).unwrap();
    assert!(extension::supports_extensions(
        &Handshake::decode(&hs).unwrap().reserved
    ));
    let mut buf = Vec::new();
    loop {
        let f = read_frame(&mut s, &mut buf).expect("bt closed before its extension handshake");
        if let Message::Extended { id: 0, payload } = decode(&f) {
            let h = ExtHandshake::decode(payload).unwrap();
            return (s, h, buf);
        }
    }
}

#[test]
fn a_seeder_serves_its_metadata_and_rejects_pieces_that_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = big_metadata_fixture(dir.path());
    let m = meta(&torrent);
    let (_seed, port) = live::start_peer(dir.path(), &dir.path().join("seed"), &[]);
    let (mut s, theirs, mut buf) = connect_fake(([127, 0, 0, 1], port).into(), m.info_hash.0);
    let size = m.info_bytes().len() as u64;
    assert_eq!(theirs.metadata_size, Some(size));
    assert_eq!(theirs.p, Some(port));
    let id = theirs.id("ut_metadata").expect("bt offers ut_metadata");
    assert!(theirs.id("ut_pex").is_some());
    assert!(theirs.v.as_deref().is_some_and(|v| v.starts_with("bt ")));
    let mut ours = ExtHandshake::default();
    ours.m.insert("ut_metadata".into(), 9);
    s.write_all(&ext_frame(0, &ours.encode())).unwrap();
    for piece in [1u32, 400, 0] {
        let mut p = Vec::new();
        metadata::encode(&MetadataMsg::Request { piece }, &mut p);
        s.write_all(&ext_frame(id, &p)).unwrap();
    }
    // A message under an id bt did not announce is ignored, not an error.
    s.write_all(&ext_frame(77, b"whatever")).unwrap();
    let mut answers = Vec::new();
    while answers.len() < 3 {
        let f = read_frame(&mut s, &mut buf).expect("bt closed the connection");
        if let Message::Extended { id: 9, payload } = decode(&f) {
            answers.push(match metadata::decode(payload, None).unwrap() {
                MetadataMsg::Data { piece, data, .. } => (piece, Some(data.to_vec())),
                MetadataMsg::Reject { piece } => (piece, None),
                other => panic!("{other:?}"),
            });
        }
    }
    let chunk = |p: usize| {
        let end = ((p + 1) * metadata::METADATA_PIECE).min(size as usize);
        Some(m.info_bytes()[p * metadata::METADATA_PIECE..end].to_vec())
    };
    assert_eq!(answers, vec![(1, chunk(1)), (400, None), (0, chunk(0))]);
}

#[test]
fn odd_extension_handshakes_and_pex_floods_leave_a_seeder_serving() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 300_000);
    let m = meta(&torrent);
    let (mut seed, port) = live::start_peer(dir.path(), &dir.path().join("seed"), &[]);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Odd and huge handshakes: values out of range, wrong types, 100 extensions, not a dict.
    let mut many = String::from("d1:md");
    for i in 0..100 {
        many.push_str(&format!("{}:ext{i:03}i{}e", 6, i % 250 + 1));
    }
    many.push_str("ee");
    let odd: Vec<Vec<u8>> = vec![
        b"d13:metadata_sizei99999999999999e1:md11:ut_metadatai3eee".to_vec(),
        b"d1:md11:ut_metadatai300eee".to_vec(),
        b"d1:pi-1e4:reqqi99999999999e6:youripi3ee".to_vec(),
        b"d1:mli1ei2eee".to_vec(),
        b"i42e".to_vec(),
        vec![b'l'; 30_000],
        many.into_bytes(),
    ];
    for payload in &odd {
        let (mut s, _, _) = connect_fake(addr, m.info_hash.0);
        s.write_all(&ext_frame(0, payload)).unwrap();
        // then a metadata request: answered or not, nothing may break
        let mut p = Vec::new();
        metadata::encode(&MetadataMsg::Request { piece: 0 }, &mut p);
        let _ = s.write_all(&ext_frame(1, &p));
    }
    // A peer exchange message with 10,000 addresses (60,000 bytes: over the extended message
    // bound, the connection is dropped), and one with 10,000 in a too-short frame claim.
    let (mut s, theirs, mut buf) = connect_fake(addr, m.info_hash.0);
    let mut ours = ExtHandshake::default();
    ours.m.insert("ut_pex".into(), 5);
    s.write_all(&ext_frame(0, &ours.encode())).unwrap();
    let pex = Pex {
        added: (0..10_000u32)
            .map(|i| PexPeer {
                addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881)),
                flags: 0,
            })
            .collect(),
        dropped: Vec::new(),
    };
    // `encode` sends at most 50: build the flood by hand.
    let mut added = Vec::new();
    for p in &pex.added {
        if let SocketAddr::V4(a) = p.addr {
            added.extend_from_slice(&a.ip().octets());
            added.extend_from_slice(&a.port().to_be_bytes());
        }
    }
    let mut flood = format!("d5:added{}:", added.len()).into_bytes();
    flood.extend_from_slice(&added);
    flood.push(b'e');
    let pex_id = theirs.id("ut_pex").unwrap();
    let _ = s.write_all(&ext_frame(pex_id, &flood));
    assert!(
        poll(SHORT, || read_frame(&mut s, &mut buf)
            .is_none()
            .then_some(()))
        .is_some(),
        "bt kept a connection that sent a 60 KB extended message"
    );
    assert!(seed.running(), "the seeder died:\n{}", seed.log());
    // It still serves: a magnet download works.
    let folder = dir.path().join("c");
    let c = client(
        dir.path(),
        &folder,
        "30",
        &[&magnet_with_peer(&m, addr)],
        false,
    );
    let (code, lines) = c.finish(SHORT);
    assert_eq!(code, 0, "{lines:?}");
    live::same_tree(&dir.path().join("seed/set"), &folder.join("set"));
}

#[test]
fn pex_addresses_are_called_but_never_ourselves() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 100_000);
    let m = meta(&torrent);
    let mut cmd = Command::new(BT);
    cmd.args(["peer", "--profile", "x", "--folder"])
        .arg(dir.path().join("seed"))
        .args(["--port", "0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "bt=debug");
    let mut seed = Proc::spawn("bt peer", &mut cmd);
    let port = seed.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let (mut s, theirs, _) = connect_fake(addr, m.info_hash.0);
    let mut ours = ExtHandshake::default();
    ours.m.insert("ut_pex".into(), 5);
    s.write_all(&ext_frame(0, &ours.encode())).unwrap();
    let pex = Pex {
        added: vec![
            PexPeer { addr, flags: 0 },
            PexPeer {
                addr: SocketAddr::from(([0, 0, 0, 0], port)),
                flags: 0,
            },
            PexPeer {
                addr: other_addr,
                flags: 0,
            },
        ],
        dropped: Vec::new(),
    };
    s.write_all(&ext_frame(theirs.id("ut_pex").unwrap(), &pex.encode()))
        .unwrap();
    // The other address is called (a PEX address is dialled like a tracker's) ...
    other.set_nonblocking(true).unwrap();
    let called = poll(SHORT, || other.accept().ok());
    assert!(called.is_some(), "bt never called the address PEX named");
    // ... by then, ourselves came first in the message: never called.
    drop(s);
    let log = seed.log();
    assert!(
        !log.contains("connected to ourselves"),
        "bt called itself from PEX:\n{log}"
    );
}

// ----- real clients -----

fn wait_complete(c: Proc, what: &str) {
    let (code, lines) = c.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{what} failed: {lines:?}");
}

#[test]
#[ignore = "needs python3-libtorrent"]
fn bt_downloads_from_libtorrent_given_only_a_magnet() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 2_000_003);
    let port = unused_port();
    let mut cmd = Command::new(client_script("lt.py"));
    cmd.arg("seed")
        .arg(&torrent)
        .arg(dir.path().join("seed"))
        .arg(port.to_string());
    let mut lt = Proc::spawn("lt seed", &mut cmd);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        common::until(SHORT, || TcpStream::connect(addr).is_ok()),
        "libtorrent did not listen:\n{}",
        lt.log()
    );
    let folder = dir.path().join("c");
    let c = client(
        dir.path(),
        &folder,
        "60",
        &[&magnet_with_peer(&meta(&torrent), addr)],
        false,
    );
    wait_complete(c, "bt client");
    live::same_tree(&dir.path().join("seed/set"), &folder.join("set"));
    assert_eq!(
        meta(&folder.join("set.torrent")).info_hash,
        meta(&torrent).info_hash
    );
    lt.stop();
}

#[test]
#[ignore = "needs python3-libtorrent"]
fn libtorrent_downloads_from_bt_given_only_a_magnet() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 2_000_003);
    let (_seed, port) = live::start_peer(dir.path(), &dir.path().join("seed"), &[]);
    let link = magnet_with_peer(&meta(&torrent), ([127, 0, 0, 1], port).into());
    let out = dir.path().join("lt");
    std::fs::create_dir_all(&out).unwrap();
    let mut cmd = Command::new(client_script("lt.py"));
    cmd.arg("get")
        .arg(&link)
        .arg(&out)
        .arg(unused_port().to_string())
        .args(["--timeout", "90"]);
    let lt = Proc::spawn("lt get", &mut cmd);
    wait_complete(lt, "libtorrent");
    live::same_tree(&dir.path().join("seed/set"), &out.join("set"));
}

#[test]
#[ignore = "needs aria2"]
fn aria2_downloads_from_bt_given_only_a_magnet() {
    require_tool("aria2c", "aria2");
    let tracker = Tracker::start("[tracker]\ninterval = 10\nmin_interval = 0\n", &[]);
    let dir = tempfile::tempdir().unwrap();
    let announce = format!("{}/announce", tracker.url());
    let torrent = seed_fixture(dir.path(), &announce, 2_000_003);
    let m = meta(&torrent);
    let link = bt(dir.path(), ["info", "--magnet", torrent.to_str().unwrap()])
        .success()
        .stdout
        .trim()
        .to_string();
    assert!(link.contains(&m.info_hash.to_string()));
    let out = dir.path().join("aria2");
    std::fs::create_dir_all(&out).unwrap();
    let port = unused_port();
    let mut cmd = Command::new(client_script("aria2.sh"));
    cmd.arg("get")
        .arg(&link)
        .arg(&out)
        .arg(port.to_string())
        .current_dir(dir.path());
    let aria = Proc::spawn_group("aria2 get", &mut cmd);
    // aria2 announces a magnet with left=0, so the tracker takes it for a seeder and lists it
    // to no seeder (nor lists seeders to it): the bt seeder calls it instead.
    let aria_addr = format!("127.0.0.1:{port}");
    let (_seed, _) = live::start_peer(
        dir.path(),
        &dir.path().join("seed"),
        &["--peer", &aria_addr],
    );
    wait_complete(aria, "aria2");
    live::same_tree(&dir.path().join("seed/set"), &out.join("set"));
}

// ----- peer exchange -----

/// A peer folder holding a copy of the seed data, or (`data` false) only the torrent.
fn folder_for(dir: &Path, name: &str, torrent: &Path, data: bool) -> PathBuf {
    if data {
        return live::peer_folder(dir, name, torrent);
    }
    let f = dir.join(name);
    std::fs::create_dir_all(&f).unwrap();
    std::fs::copy(torrent, f.join("set.torrent")).unwrap();
    f
}

/// Two upload-limited bt seeders, and a first peer (started by `first` with their addresses)
/// that downloads from them; a bt client given only the first peer (its torrent's tracker is
/// dead) must learn the seeders by PEX and get data from all three.
fn client_learns_two_seeders_by_pex(first: impl FnOnce(&Path, &Path, [String; 2]) -> (Proc, u16)) {
    let dir = tempfile::tempdir().unwrap();
    // Larger than a seeder's super-seeding window (8 MiB on offer at a time): a seeder cannot
    // offer the first peer every piece, so it has pieces for the client nobody else has.
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 20_000_037);
    let mut seeds = Vec::new();
    let mut addrs = Vec::new();
    for name in ["p2", "p3"] {
        let f = folder_for(dir.path(), name, &torrent, true);
        // Slow seeders keep the first peer downloading (and so connected to them) for a while.
        let (p, port) = live::start_peer(dir.path(), &f, &["--upload-limit", "600"]);
        seeds.push(p);
        addrs.push(format!("127.0.0.1:{port}"));
    }
    let (mut p1, p1_port) = first(dir.path(), &torrent, [addrs[0].clone(), addrs[1].clone()]);
    // The first peer has some pieces to give before the client comes.
    let p1_addr = format!("127.0.0.1:{p1_port}");
    let folder = dir.path().join("c");
    let c = client(
        dir.path(),
        &folder,
        "60",
        &["--peer", &p1_addr, torrent.to_str().unwrap()],
        false,
    );
    let (code, lines) = c.finish(Duration::from_secs(180));
    assert_eq!(code, 0, "{lines:?}\n{}", p1.log());
    live::same_tree(&dir.path().join("seed/set"), &folder.join("set"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("from {p1_addr} "))),
        "no data from the first peer: {lines:?}"
    );
    // All three sent data: three peer ids in the summary. The tracker is dead and the client
    // was given only the first peer, so it met the seeders through PEX, whichever side called
    // (a seeder told of the client by the first peer may call it first: `via incoming`).
    let senders: std::collections::HashSet<&str> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("from "))
        .filter_map(|l| l.split('(').nth(1)?.split(',').next())
        .collect();
    assert_eq!(senders.len(), 3, "{senders:?}: {lines:?}");
    p1.stop();
}

#[test]
fn a_client_learns_peers_by_pex_from_bt() {
    client_learns_two_seeders_by_pex(|dir, torrent, seeds| {
        let f = folder_for(dir, "p1", torrent, false);
        let (mut p, port) = live::start_peer(dir, &f, &["--peer", &seeds[0], "--peer", &seeds[1]]);
        // Its progress line counts both seeders.
        p.wait_line("2 peers", SHORT);
        (p, port)
    });
}

#[test]
#[ignore = "needs python3-libtorrent"]
fn a_client_learns_peers_by_pex_from_libtorrent() {
    require_libtorrent();
    client_learns_two_seeders_by_pex(|dir, torrent, seeds| {
        let out = dir.join("lt");
        std::fs::create_dir_all(&out).unwrap();
        let link = format!(
            "magnet:?xt=urn:btih:{}&x.pe={}&x.pe={}",
            meta(torrent).info_hash,
            seeds[0],
            seeds[1]
        );
        let port = unused_port();
        let mut cmd = Command::new(client_script("lt.py"));
        cmd.arg("get")
            .arg(&link)
            .arg(&out)
            .arg(port.to_string())
            .args(["--timeout", "170"]);
        let mut p = Proc::spawn("lt get", &mut cmd);
        // Its metadata is in, so it is downloading from the seeders.
        p.wait_line("metadata_received", SHORT);
        (p, port)
    });
}

#[test]
fn the_shell_starts_a_magnet_link() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = seed_fixture(dir.path(), "http://127.0.0.1:9/announce", 600_001);
    let (_seed, port) = live::start_peer(dir.path(), &dir.path().join("seed"), &[]);
    let link = magnet_with_peer(&meta(&torrent), ([127, 0, 0, 1], port).into());
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
        dir.path(),
    );
    sh.wait_line("bt shell: profile client", SHORT);
    sh.send(format!("start {link}\nwait --timeout 60\nquit\n"));
    sh.wait_line("fetching its metadata", SHORT);
    let status = sh.wait_exit(SHORT);
    assert!(status.success(), "{}", sh.log());
    live::same_tree(&dir.path().join("seed/set"), &dir.path().join("client/set"));
    assert_eq!(
        meta(&dir.path().join("client/set.torrent")).info_hash,
        meta(&torrent).info_hash
    );
}
