//! A hostile peer against a real `bt peer` on 127.0.0.1: absurd lengths, bad bitfields, bad
//! requests, floods, unasked-for data, stalled handshakes and hundreds of idle connections.
//! Each offender must be disconnected, and the peer must stay up and keep serving honest
//! clients with bounded memory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bt::proto::metainfo::Metainfo;
use bt::proto::wire::{self, BlockRef, FrameLimits, Handshake, Message};
use common::live::*;

struct Seeder {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    torrent: std::path::PathBuf,
    meta: Metainfo,
    proc: Proc,
    port: u16,
}

fn seeder() -> Seeder {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let torrent = fixture(&dir, 1);
    let folder = peer_folder(&dir, "p1", &torrent);
    let (proc, port) = start_peer(&dir, &folder, &[]);
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    Seeder {
        _dir: tmp,
        dir,
        torrent,
        meta,
        proc,
        port,
    }
}

impl Seeder {
    /// Connect and handshake; returns the stream with the seeder's bitfield consumed.
    fn connect(&self) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&Handshake::new(self.meta.info_hash.0, *b"-XX0001-abuseabuseab").encode())
            .unwrap();
        let mut hs = [0u8; 68];
        s.read_exact(&mut hs).unwrap();
        assert_eq!(
            Handshake::decode(&hs).unwrap().info_hash,
            self.meta.info_hash.0
        );
        s
    }

    /// Connect, say interested, and wait for the unchoke.
    fn unchoked(&self) -> TcpStream {
        let mut s = self.connect();
        send(&mut s, &Message::Interested);
        let limits = FrameLimits::for_pieces(self.meta.info.pieces.len());
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "never unchoked");
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before unchoke");
            buf.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while let Some((m, used)) = wire::decode(&buf[at..], limits).unwrap() {
                if m == Message::Unchoke {
                    return s;
                }
                at += used;
            }
            buf.drain(..at);
        }
    }

    /// The honest test: a real client still downloads everything from this seeder.
    fn still_serves(&self) {
        let out = self.dir.join(format!("honest-{}", rand_suffix()));
        let peers = vec![format!("127.0.0.1:{}", self.port)];
        let c = Proc::start(
            &client_args(
                out.to_str().unwrap(),
                self.torrent.to_str().unwrap(),
                &peers,
            ),
            &self.dir,
        );
        let (code, lines) = c.finish(Duration::from_secs(60));
        assert_eq!(code, 0, "{}", lines.join("\n"));
        same_tree(&self.dir.join("seed/set"), &out.join("set"));
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn send(s: &mut TcpStream, m: &Message<'_>) {
    let mut buf = Vec::new();
    wire::encode(m, &mut buf);
    s.write_all(&buf).unwrap();
}

/// The peer must close the connection (EOF or reset) within `limit`, whatever it sends first.
fn assert_dropped(mut s: TcpStream, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return, // reset
        }
        assert!(
            Instant::now() < deadline,
            "{what}: connection still open after {limit:?}"
        );
    }
}

#[test]
fn hostile_messages_end_the_connection_and_nothing_else() {
    let sd = seeder();
    let n = sd.meta.info.pieces.len() as u32;

    let mut s = sd.connect();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 7]).unwrap();
    assert_dropped(s, Duration::from_secs(5), "4 GiB length prefix");

    let mut s = sd.connect();
    send(&mut s, &Message::Bitfield(&[0xff; 3]));
    assert_dropped(s, Duration::from_secs(5), "bitfield of the wrong size");

    let mut s = sd.unchoked();
    send(
        &mut s,
        &Message::Request(BlockRef {
            index: n + 5,
            begin: 0,
            len: 16384,
        }),
    );
    assert_dropped(s, Duration::from_secs(5), "request past the last piece");

    let mut s = sd.unchoked();
    send(
        &mut s,
        &Message::Request(BlockRef {
            index: 0,
            begin: 0,
            len: 64 * 1024,
        }),
    );
    assert_dropped(s, Duration::from_secs(5), "request over 16 KiB");

    let mut s = sd.unchoked();
    send(
        &mut s,
        &Message::Request(BlockRef {
            index: 0,
            begin: 32 * 1024 - 10,
            len: 16384,
        }),
    );
    assert_dropped(s, Duration::from_secs(5), "request crossing the piece end");

    let mut s = sd.connect();
    let junk = vec![0u8; 16384];
    for i in 0..200 {
        let mut buf = Vec::new();
        wire::encode(
            &Message::Piece {
                index: i % n,
                begin: 0,
                data: &junk,
            },
            &mut buf,
        );
        if s.write_all(&buf).is_err() {
            break; // already dropped
        }
    }
    assert_dropped(s, Duration::from_secs(5), "piece data nobody asked for");

    let mut s = sd.connect();
    send(&mut s, &Message::Have(n));
    assert_dropped(s, Duration::from_secs(5), "have for a piece past the end");

    sd.still_serves();
}

#[test]
fn request_floods_are_cut_off() {
    let sd = seeder();
    let mut s = sd.unchoked();
    // Thousands of valid requests, never reading the answers: the queue must not grow without
    // bound; past the limit the peer hangs up.
    let mut buf = Vec::new();
    for k in 0..20_000u32 {
        let index = k % sd.meta.info.pieces.len() as u32;
        let b = BlockRef {
            index,
            begin: 0,
            len: 16384,
        };
        wire::encode(&Message::Request(b), &mut buf);
    }
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&buf);
    assert_dropped(s, Duration::from_secs(20), "request flood");
    assert!(
        sd.rss_kib() < 100 * 1024,
        "RSS {} KiB after a flood",
        sd.rss_kib()
    );
    sd.still_serves();
}

#[test]
fn stalled_and_idle_connections_do_not_block_honest_peers() {
    let sd = seeder();
    // Hundreds of connections that never finish their handshake.
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", sd.port)).ok())
        .collect();
    assert!(idle.len() > 200);
    let mut half = TcpStream::connect(("127.0.0.1", sd.port)).unwrap();
    half.write_all(&[19, b'B', b'i', b't']).unwrap();
    // The honest client is served meanwhile.
    sd.still_serves();
    // The stalled handshake is given up after the handshake timeout.
    assert_dropped(half, Duration::from_secs(20), "handshake stalled half way");
    assert!(
        sd.rss_kib() < 100 * 1024,
        "RSS {} KiB with {} idle connections",
        sd.rss_kib(),
        idle.len()
    );
    drop(idle);
}
