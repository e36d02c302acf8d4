//! A real `bt client` or `bt peer` among liars, damaged seeders, idle connections and impostors
//! on 127.0.0.1. What must hold: blame lands on whoever sent the bad bytes, a banned liar stays
//! out, idle connections and impostors do not lock honest peers out, a failed last piece is
//! fetched again at once, and a seeder that loses its data says so and stops offering it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bt::proto::bitfield::Bitfield;
use bt::proto::metainfo::Metainfo;
use bt::proto::wire::{self, BlockRef, FrameLimits, Handshake, Message};
use common::live::*;

/// How a fake seeder answers requests.
#[derive(Clone, Copy)]
enum Lie {
    /// Garbage for every block.
    Everything,
    /// The right bytes, except the first block of every piece.
    FirstBlocks,
    /// Garbage for the first request of this piece only, the right bytes after.
    OnceFor(u32),
}

/// The torrent's bytes, end to end, from the fixture's seed folder.
fn content(dir: &Path, meta: &Metainfo) -> Arc<Vec<u8>> {
    let mut all = Vec::new();
    for i in 0..meta.info.files.len() {
        all.extend(std::fs::read(dir.join("seed").join(meta.relative_path(i))).unwrap());
    }
    Arc::new(all)
}

fn meta(torrent: &Path) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap()
}

/// A fake seeder on 127.0.0.1 that lies as told. Returns its port and how many connections it
/// had that got past the handshake to a request.
fn liar(dir: &Path, torrent: &Path, lie: Lie) -> (u16, Arc<AtomicUsize>) {
    let meta = meta(torrent);
    let data = content(dir, &meta);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let once = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let (meta, data, counter, once) = (
                meta.clone(),
                Arc::clone(&data),
                Arc::clone(&counter),
                Arc::clone(&once),
            );
            std::thread::spawn(move || serve(s, &meta, &data, lie, &counter, &once));
        }
    });
    (port, served)
}

fn serve(
    mut s: TcpStream,
    meta: &Metainfo,
    data: &[u8],
    lie: Lie,
    counter: &AtomicUsize,
    once: &AtomicUsize,
) {
    let mut hs = [0u8; 68];
    if s.read_exact(&mut hs).is_err() {
        return;
    }
    let mut out = Handshake::new(meta.info_hash.0, *b"-XX0001-liarliarliar")
        .encode()
        .to_vec();
    let n = meta.info.pieces.len();
    wire::encode(&Message::Bitfield(Bitfield::full(n).as_bytes()), &mut out);
    wire::encode(&Message::Unchoke, &mut out);
    if s.write_all(&out).is_err() {
        return;
    }
    let limits = FrameLimits::for_pieces(n);
    let plen = meta.info.piece_length as usize;
    let (mut buf, mut chunk, mut counted) = (Vec::new(), vec![0u8; 65536], false);
    loop {
        let k = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => k,
        };
        buf.extend_from_slice(&chunk[..k]);
        let bad = |b: BlockRef| match lie {
            Lie::Everything => true,
            Lie::FirstBlocks => b.begin == 0,
            Lie::OnceFor(i) => {
                b.index == i && b.begin == 0 && once.fetch_add(1, Ordering::SeqCst) == 0
            }
        };
        let (reply, asked) = answer(&mut buf, limits, plen, data, bad);
        if asked && !counted {
            counted = true;
            counter.fetch_add(1, Ordering::SeqCst);
        }
        if s.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Wait for `p` to exit; its exit code and every line it printed (stdout and stderr, where the
/// warnings go).
fn finish(mut p: Proc, limit: Duration) -> (i32, Vec<String>) {
    let code = p.wait_exit(limit).code().unwrap_or(-1);
    (code, p.lines())
}

/// Run a client that downloads `torrent` from `peers` into `DIR/client`; assert it exits 0 with
/// the same files as `seed`. Returns everything it printed.
fn download(d: &Path, torrent: &Path, peers: &[String], seed: &Path) -> Vec<String> {
    let out = d.join("client");
    let c = Proc::start(
        &client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), peers),
        d,
    );
    let (code, lines) = finish(c, Duration::from_secs(90));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&seed.join("set"), &out.join("set"));
    lines
}

fn port_of(addr: &str) -> String {
    format!("127.0.0.1:{addr}")
}

/// Lines of the client's output that blame `port`.
fn blamed(lines: &[String], port: u16) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(&format!("127.0.0.1:{port} sent bad data")))
        .cloned()
        .collect()
}

#[test]
fn an_honest_seeder_is_never_blamed_for_a_liars_blocks() {
    for lie in [Lie::Everything, Lie::FirstBlocks] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let torrent = fixture(d, 1);
        let f1 = peer_folder(d, "p1", &torrent);
        // The honest seeder is slow, so the liar's blocks and its own share pieces.
        let (_honest, port1) = start_peer(d, &f1, &["--upload-limit", "2000"]);
        let (evil, conns) = liar(d, &torrent, lie);
        let peers = vec![port_of(&port1.to_string()), port_of(&evil.to_string())];
        let lines = download(d, &torrent, &peers, &f1);
        let text = lines.join("\n");
        assert!(
            blamed(&lines, port1).is_empty(),
            "honest seeder blamed:\n{text}"
        );
        assert!(
            !blamed(&lines, evil).is_empty(),
            "the liar went unnoticed:\n{text}"
        );
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "the liar was called again:\n{text}"
        );
    }
}

#[test]
fn a_seeder_whose_file_is_damaged_on_disk_gets_nobody_else_banned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let good = peer_folder(d, "p1", &torrent);
    let damaged = peer_folder(d, "p2", &torrent);
    let (_p1, port1) = start_peer(d, &good, &["--upload-limit", "3000"]);
    let (mut p2, port2) = start_peer(d, &damaged, &[]);
    p2.wait_line("seeding", Duration::from_secs(20));
    // Damaged after its start-up check: it now sends bad bytes for these pieces.
    let f = damaged.join("set/one.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    for b in &mut bytes[100_000..400_000] {
        *b ^= 0xFF;
    }
    std::fs::write(&f, bytes).unwrap();
    let peers = vec![port_of(&port1.to_string()), port_of(&port2.to_string())];
    let lines = download(d, &torrent, &peers, &good);
    let text = lines.join("\n");
    assert!(
        blamed(&lines, port1).is_empty(),
        "the good seeder blamed:\n{text}"
    );
}

/// Answer every complete request in `buf` (which is consumed) with the right bytes, or with
/// garbage where `bad` says so. Returns the encoded answers and whether there was a request.
fn answer(
    buf: &mut Vec<u8>,
    limits: FrameLimits,
    plen: usize,
    data: &[u8],
    mut bad: impl FnMut(BlockRef) -> bool,
) -> (Vec<u8>, bool) {
    let (mut used_total, mut reply, mut asked) = (0, Vec::new(), false);
    while let Ok(Some((msg, used))) = wire::decode(&buf[used_total..], limits) {
        if let Message::Request(b) = msg {
            asked = true;
            let at = b.index as usize * plen + b.begin as usize;
            let mut block = data[at..at + b.len as usize].to_vec();
            if bad(b) {
                block.iter_mut().for_each(|x| *x ^= 0x5A);
            }
            let (index, begin) = (b.index, b.begin);
            wire::encode(
                &Message::Piece {
                    index,
                    begin,
                    data: &block,
                },
                &mut reply,
            );
        }
        used_total += used;
    }
    buf.drain(..used_total);
    (reply, asked)
}

/// Connect to `port` from `from` (a loopback address), handshake for `meta` as `id`, offer
/// every piece and unchoke, and answer requests with garbage for a while. True if the other
/// side asked us for a block.
fn offer(port: u16, from: [u8; 4], meta: &Metainfo, id: [u8; 20], data: &[u8]) -> bool {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    if sock
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .is_err()
    {
        return false;
    }
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Handshake::new(meta.info_hash.0, id).encode().to_vec();
    let n = meta.info.pieces.len();
    wire::encode(&Message::Bitfield(Bitfield::full(n).as_bytes()), &mut out);
    wire::encode(&Message::Unchoke, &mut out);
    if s.write_all(&out).is_err() {
        return false;
    }
    let limits = FrameLimits::for_pieces(n);
    let plen = meta.info.piece_length as usize;
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 65536]);
    let mut handshake_seen = false;
    let mut asked = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let k = match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        buf.extend_from_slice(&chunk[..k]);
        if !handshake_seen {
            if buf.len() < 68 {
                continue;
            }
            buf.drain(..68);
            handshake_seen = true;
        }
        let (reply, asked_now) = answer(&mut buf, limits, plen, data, |_| true);
        let _ = s.write_all(&reply);
        if asked_now && !asked {
            // Keep answering (with garbage) a little, so that whole pieces fail.
            asked = true;
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        }
    }
    asked
}

#[test]
fn a_banned_liar_cannot_come_back_from_new_ports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let m = meta(&torrent);
    let data = content(d, &m);
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &["--upload-limit", "300"]);
    let out = d.join("client");
    let peers = vec![port_of(&port1.to_string())];
    let mut c = Proc::start(
        &client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers),
        d,
    );
    let cport = c.port();
    // The liar connects in from 127.0.0.2, again and again, from new ports.
    let mut served = 0;
    for _ in 0..20 {
        if offer(cport, [127, 0, 0, 2], &m, *b"-XX0001-liarliarliar", &data) {
            served += 1;
        }
    }
    assert!(served >= 1, "the liar was never asked for anything");
    assert!(served <= 3, "the liar was let back in {served} times");
    let (code, lines) = finish(c, Duration::from_secs(90));
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    same_tree(&f1.join("set"), &out.join("set"));
}

#[test]
fn a_failed_last_piece_is_fetched_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let m = meta(&torrent);
    let last = m.info.pieces.len() as u32 - 1;
    let (flaky, _) = liar(d, &torrent, Lie::OnceFor(last));
    let out = d.join("client");
    let peers = vec![port_of(&flaky.to_string())];
    let started = Instant::now();
    let c = Proc::start(
        &client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers),
        d,
    );
    let (code, lines) = finish(c, Duration::from_secs(60));
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?} (it used to idle until the 150 s timeout):\n{text}",
        started.elapsed()
    );
    assert!(text.contains("bad data for piece"), "{text}");
}

/// Handshake with `port` for `meta` as `id`; the stream is left open and idle.
fn idle_connection(port: u16, meta: &Metainfo, id: [u8; 20]) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(&Handshake::new(meta.info_hash.0, id).encode())
        .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).ok()?;
    Some(s)
}

#[test]
fn idle_connections_do_not_lock_honest_peers_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let m = meta(&torrent);
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &[]);
    // Fill every slot of the torrent (50) and more with connections that never do anything
    // but keep-alives.
    let mut idle = Vec::new();
    for i in 0..80u16 {
        let mut id = *b"-XX0001-idle00000000";
        id[16..18].copy_from_slice(&i.to_be_bytes());
        if let Some(s) = idle_connection(port1, &m, id) {
            idle.push(s);
        }
    }
    assert!(
        idle.len() >= 50,
        "only {} idle connections got in",
        idle.len()
    );
    std::thread::sleep(bt_evict_after());
    for s in &mut idle {
        let _ = s.write_all(&[0, 0, 0, 0]); // keep-alive
    }
    // An honest client still gets in and completes.
    download(d, &torrent, &[port_of(&port1.to_string())], &f1);
}

/// How long a connection that exchanges nothing is safe from eviction, plus a margin.
fn bt_evict_after() -> Duration {
    Duration::from_secs(11)
}

#[test]
fn an_impostor_with_the_seeders_id_does_not_shut_the_seeder_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let m = meta(&torrent);
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &[]);
    // Learn the seeder's peer id from its own handshake.
    let seeder_id = {
        let mut s = TcpStream::connect(("127.0.0.1", port1)).unwrap();
        s.write_all(&Handshake::new(m.info_hash.0, *b"-XX0001-probe2probe2").encode())
            .unwrap();
        let mut hs = [0u8; 68];
        s.read_exact(&mut hs).unwrap();
        Handshake::decode(&hs).unwrap().peer_id
    };
    // The client listens; the impostor gets in first with the seeder's id, then the client
    // is told about the real seeder.
    let out = d.join("client");
    let mut c = Proc::start(
        &[
            "client",
            "--profile",
            "c",
            "--folder",
            out.to_str().unwrap(),
            "--port",
            "0",
            "--exit-when-done",
            "--stall-timeout",
            "30",
            "--peer",
            &port_of(&port1.to_string()),
            torrent.to_str().unwrap(),
        ],
        d,
    );
    let cport = c.port();
    let _impostor = idle_connection(cport, &m, seeder_id);
    let (code, lines) = finish(c, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
}

#[test]
fn a_seeder_that_loses_its_files_says_so_and_the_client_finishes_elsewhere() {
    for damage in ["truncate", "delete"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let torrent = fixture(d, 1);
        let good = peer_folder(d, "p1", &torrent);
        let losing = peer_folder(d, "p2", &torrent);
        let (_p1, port1) = start_peer(d, &good, &["--upload-limit", "3000"]);
        let (mut p2, port2) = start_peer(d, &losing, &[]);
        p2.wait_line("seeding", Duration::from_secs(20));
        let f = losing.join("set/one.bin");
        match damage {
            "truncate" => std::fs::File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_len(1000)
                .unwrap(),
            _ => std::fs::remove_file(&f).unwrap(),
        }
        let peers = vec![port_of(&port2.to_string()), port_of(&port1.to_string())];
        download(d, &torrent, &peers, &good);
        let said = p2.wait_line("missing now", Duration::from_secs(10));
        assert!(said.contains("cannot read piece"), "{damage}: {said}");
    }
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn slow_readers_cannot_pin_a_seeders_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("p1");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("big.bin"), bytes(7, 64 << 20)).unwrap();
    let torrent = folder.join("big.bin.torrent");
    common::bt(
        d,
        [
            "create",
            folder.join("big.bin").to_str().unwrap(),
            "--piece-length",
            "4m",
            "--tracker",
            "http://127.0.0.1:9/announce",
            "-o",
            torrent.to_str().unwrap(),
        ],
    )
    .success();
    let m = meta(&torrent);
    let (mut p1, port) = start_peer(d, &folder, &[]);
    p1.wait_line("seeding", Duration::from_secs(30));
    let before = rss(p1.pid());
    // 30 readers each ask one block of 16 different pieces and never read.
    let mut readers = Vec::new();
    for r in 0..30u16 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let mut s: TcpStream = sock.into();
        let mut id = *b"-XX0001-slow00000000";
        id[16..18].copy_from_slice(&r.to_be_bytes());
        let mut out = Handshake::new(m.info_hash.0, id).encode().to_vec();
        wire::encode(&Message::Interested, &mut out);
        for i in 0..16u32 {
            let index = (i + r as u32) % 16;
            let block = BlockRef {
                index,
                begin: 0,
                len: 16384,
            };
            wire::encode(&Message::Request(block), &mut out);
        }
        s.write_all(&out).unwrap();
        readers.push(s);
    }
    // Give the seeder time to read what they asked for and get stuck sending it.
    std::thread::sleep(Duration::from_secs(3));
    let during = rss(p1.pid());
    eprintln!(
        "seeder RSS: {} MiB idle, {} MiB with 30 slow readers",
        before >> 20,
        during >> 20
    );
    // The upload budget is 64 MiB; 16 KiB block reads and allocator overhead come on top. It
    // was 400-500 MiB before the budget.
    assert!(
        during < before + 96 * (1 << 20),
        "RSS grew from {} MiB to {} MiB",
        before >> 20,
        during >> 20
    );
    drop(readers);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss(p1.pid());
    while after > before + 16 * (1 << 20) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = rss(p1.pid());
    }
    assert!(
        after <= before + 16 * (1 << 20),
        "still {} MiB after the readers left (started at {} MiB, {} MiB with them)",
        after >> 20,
        before >> 20,
        during >> 20
    );
}

#[test]
fn a_peer_that_never_sends_does_not_hold_off_the_stall_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let m = meta(&torrent);
    // A peer that offers every piece and then never unchokes, but answers keep-alives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let info_hash = m.info_hash.0;
    let n = m.info.pieces.len();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in listener.incoming().flatten() {
            let mut hs = [0u8; 68];
            if s.read_exact(&mut hs).is_err() {
                continue;
            }
            let mut out = Handshake::new(info_hash, *b"-XX0001-mutemutemute")
                .encode()
                .to_vec();
            wire::encode(&Message::Bitfield(Bitfield::full(n).as_bytes()), &mut out);
            let _ = s.write_all(&out);
            held.push(s);
        }
    });
    let out = d.join("client");
    let started = Instant::now();
    let c = Proc::start(
        &[
            "client",
            "--profile",
            "c",
            "--folder",
            out.to_str().unwrap(),
            "--port",
            "0",
            "--exit-when-done",
            "--stall-timeout",
            "3",
            "--peer",
            &format!("127.0.0.1:{port}"),
            torrent.to_str().unwrap(),
        ],
        d,
    );
    let (code, lines) = finish(c, Duration::from_secs(60));
    let text = lines.join("\n");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("no progress for 3 s (1 peer connected, none sending"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{text}");
}
