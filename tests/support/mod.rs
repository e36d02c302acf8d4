//! Helpers shared by the tracker tests: run `bt tracker` on a free loopback port (stopped on drop,
//! also when a test fails), plain HTTP/1.1 over a std socket, and waiting on conditions.
//! Builds on `common` (a test crate using this module declares `mod common;` too).
#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bt::proto::tracker::{AnnounceRequest, Event};

use super::common::Proc;
/// The built binary.
pub use super::common::BT;

/// A running `bt tracker`.
pub struct Tracker {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its config folder (holds the access list, if any).
    pub dir: tempfile::TempDir,
    /// The process (stopped when dropped); its log holds the event lines.
    pub process: Proc,
}

impl Tracker {
    /// Start `bt tracker --bind 127.0.0.1:0` with `config` as its config file; `files` are
    /// written beside the config first. Returns once it has printed its address.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Tracker {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tracker.toml");
        std::fs::write(&config_path, config).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut process = Proc::spawn(
            "bt tracker",
            Command::new(BT)
                .args(["tracker", "--bind", "127.0.0.1:0", "--config"])
                .arg(&config_path)
                .env_remove("RUST_LOG"),
        );
        let addr = process.addr();
        Tracker { addr, dir, process }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GET `target` (path and query) and return status and body.
    pub fn get(&self, target: &str) -> (u16, Vec<u8>) {
        http_get(self.addr, target).unwrap_or_else(|e| panic!("GET {target}: {e}"))
    }

    /// The event log so far.
    pub fn log_text(&self) -> String {
        self.process.log()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.process.running()
    }
}

/// One HTTP/1.1 GET with `Connection: close`; returns the status code and body.
pub fn http_get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok((status, dechunk(&body)));
    }
    Ok((status, body))
}

/// Undo chunked transfer encoding (tide streams some bodies).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
    out
}

/// An announce for peer `port` of torrent `[hash; 20]`.
pub fn announce(hash: u8, port: u16, left: u64, event: Event) -> AnnounceRequest {
    let mut peer_id = *b"-TT0001-000000000000";
    peer_id[8..].copy_from_slice(format!("{port:012}").as_bytes());
    AnnounceRequest {
        left,
        event,
        ..AnnounceRequest::new([hash; 20], peer_id, port)
    }
}

/// `tests/clients/NAME` in this repository.
pub fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}
