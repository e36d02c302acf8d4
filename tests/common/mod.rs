//! Helpers shared by the integration tests: run `bt` (or any program) with a time limit under a
//! guard that kills it when the test ends, make deterministic test data, find real tools.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `bt` binary under test.
pub const BT: &str = env!("CARGO_BIN_EXE_bt");

/// How long one short command (`bt info`, `mktorrent` on a few MB) may take.
pub const SHORT: Duration = Duration::from_secs(60);

/// A child process that is killed and reaped when dropped, so that a failing test leaves no
/// process behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished program left behind.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything it wrote to stderr (lossy UTF-8).
    pub stderr: String,
    /// The command line, for messages.
    pub what: String,
}

impl Output {
    /// Panic with everything the program said unless it exited 0.
    #[track_caller]
    pub fn success(self) -> Output {
        assert!(
            self.status.success(),
            "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Run `cmd` to completion with stdin closed, waiting at most `limit`; panic (after killing
/// it) when it takes longer.
#[track_caller]
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}")),
    );
    let stdout = drain(child.0.stdout.take());
    let stderr = drain(child.0.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for a child") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        what,
    }
}

/// Run `bt ARGS` in folder `cwd` (so that no `peers.toml` of the repository is picked up).
#[track_caller]
pub fn bt<I, S>(cwd: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(
        Command::new(BT)
            .args(args)
            .current_dir(cwd)
            .env_remove("RUST_LOG"),
        SHORT,
    )
}

/// A long-running program watched line by line: what it prints on stdout and stderr arrives on
/// one channel as it is printed, and its stdin is a pipe to [`Proc::send`] lines to. Killed and
/// reaped when dropped (its guard), also when a test fails.
pub struct Proc {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    what: String,
}

impl Proc {
    /// Start `cmd` with its stdin, stdout and stderr piped.
    #[track_caller]
    pub fn start(cmd: &mut Command) -> Proc {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {what}: {e}")),
        );
        let (tx, lines) = mpsc::channel();
        let out = child
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        let err = child
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        for pipe in [out, err].into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            stdin: child.0.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            what,
        }
    }

    /// Start `bt ARGS` in folder `cwd`.
    #[track_caller]
    pub fn bt<I, S>(cwd: &Path, args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Proc::start(
            Command::new(BT)
                .args(args)
                .current_dir(cwd)
                .env_remove("RUST_LOG"),
        )
    }

    /// Write `bytes` to its stdin as they are (add the line end yourself).
    #[track_caller]
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(bytes.as_ref())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot write to {}: {e}", self.what));
    }

    /// Close its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line for which `want` holds, or `None` if none came within `timeout`.
    pub fn try_wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if want(&line) {
                return Some(line);
            }
        }
    }

    /// Wait for the next line for which `want` holds (described by `what`); returns it.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> String {
        match self.try_wait_for(timeout, want) {
            Some(line) => line,
            None => panic!(
                "{}: no line {what} within {timeout:?}; saw:\n{}",
                self.what,
                self.seen.join("\n")
            ),
        }
    }

    /// Wait for a line containing `needle`; returns it.
    #[track_caller]
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for(&format!("with {needle:?}"), timeout, |l| l.contains(needle))
    }

    /// The port of its first "listening on ADDR:PORT" line (`bt peer`, `bt tracker`) or
    /// "listening for peers on ADDR:PORT" (`bt shell`).
    #[track_caller]
    pub fn port(&mut self) -> u16 {
        let l = self.wait_line("listening ", SHORT);
        let addr = l
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ',']).next())
            .unwrap_or_else(|| panic!("no address in {l:?}"));
        addr.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {l:?}"))
    }

    /// Its exit status if it exits within `timeout`; the lines it printed are in `seen`.
    pub fn try_wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(status) = self.child.0.try_wait().expect("wait for a child") {
                // The readers end with the pipes; take what they still hold.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for it to exit; the lines it printed until then are in `seen`.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait_exit(timeout) {
            Some(status) => status,
            None => panic!(
                "{} did not exit within {timeout:?}; saw:\n{}",
                self.what,
                self.seen.join("\n")
            ),
        }
    }
}

/// `bt info TORRENT --json --pieces`, parsed.
#[track_caller]
pub fn bt_info(torrent: &Path) -> serde_json::Value {
    let dir = torrent.parent().expect("torrent in a folder");
    let args = [
        OsStr::new("info"),
        torrent.as_os_str(),
        OsStr::new("--json"),
        OsStr::new("--pieces"),
    ];
    let out = bt(dir, args).success();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bt info --json printed no JSON ({e}):\n{}", out.stdout))
}

/// Deterministic pseudo-random bytes (xorshift64*); each seed gives a different stream.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One file of test data: its path below the root (`/`-separated) and its length.
pub type Spec = (&'static str, usize);

/// Write `files` under `root` with pseudo-random contents (seeded by position), creating
/// folders as needed. Returns each file's bytes, in the order given.
pub fn write_files(root: &Path, files: &[Spec]) -> Vec<Vec<u8>> {
    files
        .iter()
        .enumerate()
        .map(|(i, (path, len))| {
            let bytes = pseudo_random(i as u64 + 1, *len);
            let disk = root.join(path);
            std::fs::create_dir_all(disk.parent().expect("a parent folder")).expect("mkdir");
            std::fs::write(&disk, &bytes).expect("write test data");
            bytes
        })
        .collect()
}

/// A loopback TCP port that nothing listens on (bound, then released), for tracker URLs that
/// must lead nowhere.
pub fn unused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// The path of `program` on PATH; panics naming the Debian package to install otherwise.
#[track_caller]
pub fn require_tool(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed: install the Debian package `{package}` \
                 (scripts/test.sh does)"
            )
        })
}
