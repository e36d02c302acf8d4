//! End-to-end: real `bt peer` and `bt client` processes on 127.0.0.1, with direct `--peer`
//! addresses (the tracker has its own tests). Ports are picked by the OS (`--port 0`) and read
//! back from each process's first line; every process is killed by its guard, even on failure.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bt::proto::metainfo::Metainfo;
use bt::proto::wire::{self, FrameLimits, Handshake, Message};
use common::live::*;

#[test]
fn two_peers_both_serve_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 2);
    let (f1, f2) = (
        peer_folder(d, "p1", &torrent),
        peer_folder(d, "p2", &torrent),
    );
    // Rate limits make the transfer last long enough for both peers to take part.
    let (_p1, port1) = start_peer(d, &f1, &["--upload-limit", "2000"]);
    let (_p2, port2) = start_peer(d, &f2, &["--upload-limit", "2000"]);
    let peers = vec![format!("127.0.0.1:{port1}"), format!("127.0.0.1:{port2}")];
    let out = d.join("client");
    let c = Proc::start(
        &client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers),
        d,
    );
    let (code, lines) = c.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
    let s = shares(&lines);
    assert_eq!(s.len(), 2, "{}", lines.join("\n"));
    for (addr, pct) in &s {
        assert!(
            *pct >= 15.0,
            "{addr} sent only {pct}%:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn a_killed_peer_is_replaced_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 2);
    let total = total_len(&torrent);
    let (f1, f2) = (
        peer_folder(d, "p1", &torrent),
        peer_folder(d, "p2", &torrent),
    );
    let (p1, port1) = start_peer(d, &f1, &["--upload-limit", "1000"]);
    let (_p2, port2) = start_peer(d, &f2, &["--upload-limit", "1000"]);
    let peers = vec![format!("127.0.0.1:{port1}"), format!("127.0.0.1:{port2}")];
    let out = d.join("client");
    let c = Proc::start(
        &client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers),
        d,
    );
    // Kill peer 1 (SIGKILL, no goodbye) once a fifth of the data is on disk.
    let limit = Duration::from_secs(30);
    let fifth = || (allocated(&out.join("set")) >= total / 5).then_some(());
    common::wait_for("a fifth of the data", limit, fifth, String::new);
    assert!(
        allocated(&out.join("set")) < total,
        "finished before the kill; slow the peers down"
    );
    drop(p1);
    let (code, lines) = c.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f2.join("set"), &out.join("set"));
    let s = shares(&lines);
    assert!(
        s.iter()
            .any(|(a, p)| a.ends_with(&format!(":{port2}")) && *p > 20.0),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn a_restarted_client_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 2);
    let total = total_len(&torrent);
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &["--upload-limit", "1500"]);
    let peers = vec![format!("127.0.0.1:{port1}")];
    let out = d.join("client");
    let args = client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers);
    let c = Proc::start(&args, d);
    let limit = Duration::from_secs(30);
    let half = || (allocated(&out.join("set")) >= total / 2).then_some(());
    common::wait_for("half of the data", limit, half, String::new);
    drop(c); // SIGKILL mid-transfer
    let c = Proc::start(&args, d);
    let (code, lines) = c.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
    // The second run fetched only what was missing: its summary counts what it received.
    let summary = lines
        .iter()
        .find(|l| l.contains("complete:"))
        .expect("summary");
    // The second run received the rest from a peer, and the summary says which.
    let first = shares(&lines);
    let got = first.first().expect("a per-peer line in the summary").1;
    assert!(got > 0.0, "{}", lines.join("\n"));
    let bytes = received_bytes(summary);
    assert!(bytes < total as f64 * 0.7, "refetched too much: {summary}");
}

/// A seeder that answers every request with garbage. Counts its connections.
fn corrupt_seeder(torrent: &Path) -> (u16, Arc<AtomicUsize>) {
    let meta = Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let c2 = Arc::clone(&conns);
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            c2.fetch_add(1, Ordering::SeqCst);
            let meta = meta.clone();
            std::thread::spawn(move || serve_garbage(s, &meta));
        }
    });
    (port, conns)
}

fn serve_garbage(mut s: TcpStream, meta: &Metainfo) {
    let mut hs = [0u8; 68];
    if s.read_exact(&mut hs).is_err() {
        return;
    }
    let mut out = Handshake::new(meta.info_hash.0, *b"-XX0001-evilevilevil")
        .encode()
        .to_vec();
    let n = meta.info.pieces.len();
    let full = bt::proto::bitfield::Bitfield::full(n);
    wire::encode(&Message::Bitfield(full.as_bytes()), &mut out);
    wire::encode(&Message::Unchoke, &mut out);
    if s.write_all(&out).is_err() {
        return;
    }
    let limits = FrameLimits::for_pieces(n);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let k = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => k,
        };
        buf.extend_from_slice(&chunk[..k]);
        let mut used_total = 0;
        let mut reply = Vec::new();
        while let Ok(Some((msg, used))) = wire::decode(&buf[used_total..], limits) {
            if let Message::Request(b) = msg {
                let junk = vec![0xA5u8; b.len as usize];
                wire::encode(
                    &Message::Piece {
                        index: b.index,
                        begin: b.begin,
                        data: &junk,
                    },
                    &mut reply,
                );
            }
            used_total += used;
        }
        buf.drain(..used_total);
        if s.write_all(&reply).is_err() {
            return;
        }
    }
}

#[test]
fn corrupt_blocks_are_refetched_and_the_liar_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let torrent = fixture(d, 1);
    let f1 = peer_folder(d, "p1", &torrent);
    let (_p1, port1) = start_peer(d, &f1, &["--upload-limit", "1500"]);
    let (evil, conns) = corrupt_seeder(&torrent);
    let peers = vec![format!("127.0.0.1:{evil}"), format!("127.0.0.1:{port1}")];
    let out = d.join("client");
    let c = Proc::start(
        &client_args(out.to_str().unwrap(), torrent.to_str().unwrap(), &peers),
        d,
    );
    let (code, lines) = c.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lines.join("\n"));
    same_tree(&f1.join("set"), &out.join("set"));
    let text = lines.join("\n");
    assert!(text.contains("bad pieces thrown away"), "{text}");
    // Dropped and never called again.
    assert_eq!(conns.load(Ordering::SeqCst), 1, "{text}");
}
