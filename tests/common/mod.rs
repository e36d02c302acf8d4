//! Helpers shared by the integration tests: run `bt` (or any program) with a time limit under a
//! guard that stops it (SIGTERM, then SIGKILL) when the test ends, keep long-running processes
//! and their output ([`Daemon`]), make deterministic test data, find real tools.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

pub mod live;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `bt` binary under test.
pub const BT: &str = env!("CARGO_BIN_EXE_bt");

/// How long one short command (`bt info`, `mktorrent` on a few MB) may take.
pub const SHORT: Duration = Duration::from_secs(60);

/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// A child process that is stopped ([`ChildGuard::stop`]: SIGTERM, then SIGKILL) and reaped
/// when dropped, so that a failing test leaves no process behind.
pub struct ChildGuard {
    child: Child,
    /// It leads its own process group (SIGKILL then goes to the whole group).
    group: bool,
    /// How it ended, once reaped.
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Start `cmd`; with `group`, as the leader of a new process group, so that stopping it
    /// also stops whatever it started (a script's daemon).
    pub fn spawn(cmd: &mut Command, group: bool) -> std::io::Result<ChildGuard> {
        if group {
            cmd.process_group(0);
        }
        Ok(ChildGuard {
            child: cmd.spawn()?,
            group,
            status: None,
        })
    }

    /// The process (to take its pipes).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Send `sig` to it, or with `group` to the process group it leads; only while it is not
    /// reaped, so that its pid is still ours.
    fn signal(&self, sig: libc::c_int, group: bool) {
        if self.status.is_some() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        let target = if group && self.group { -pid } else { pid };
        // SAFETY: plain syscall; `pid` is our unreaped child (and the id of the group it leads).
        unsafe { libc::kill(target, sig) };
    }

    /// How it ended, if it has: reaps it, first killing whatever is left of its group.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() && has_exited(&self.child) {
            if self.group {
                self.signal(libc::SIGKILL, true);
            }
            self.status = Some(self.child.wait().expect("reap a child"));
        }
        self.status
    }

    /// End it: SIGTERM, up to `grace` to exit, then SIGKILL (to its whole group); reaped.
    /// Returns how it ended (at once if it already had).
    ///
    /// SIGTERM goes to the process itself only: a script passes it on to what it started, and
    /// transmission-daemon 3.00 aborts (SIGABRT, "malloc(): unsorted double linked list
    /// corrupted") when a second SIGTERM reaches it during its shutdown.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        if self.try_status().is_none() {
            self.signal(libc::SIGTERM, false);
            let deadline = Instant::now() + grace;
            while self.try_status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(status) = self.try_status() {
            return status;
        }
        self.signal(libc::SIGKILL, true);
        let status = self.child.wait().expect("reap a killed child");
        *self.status.insert(status)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(GRACE);
    }
}

/// Whether `child` has exited, without reaping it (so its pid and group id stay ours).
fn has_exited(child: &Child) -> bool {
    // SAFETY: an all-zero siginfo_t is valid; waitid with WNOWAIT only reads the child's state.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    let r = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
    // An error (the child was reaped elsewhere) counts as exited: the wait that follows says so.
    r != 0 || unsafe { info.si_pid() } != 0
}

/// A long-running process under a [`ChildGuard`] (its own process group, stdin closed), whose
/// output is kept: every stdout and stderr line in [`Daemon::log`], and stdout lines for
/// [`Daemon::wait_line`].
pub struct Daemon {
    name: String,
    guard: ChildGuard,
    stdout: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Start `cmd`; `name` labels it in messages.
    #[track_caller]
    pub fn start(name: &str, cmd: &mut Command) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn(cmd, true)
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, stdout) = mpsc::channel();
        let out = guard.child().stdout.take().expect("piped stdout");
        let err = guard.child().stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            name: name.to_string(),
            guard,
            stdout,
            log,
        }
    }

    /// Everything it printed so far, under a header with its name.
    pub fn log(&self) -> String {
        format!(
            "--- {} ---\n{}\n",
            self.name,
            self.log.lock().unwrap().join("\n")
        )
    }

    /// Wait for a stdout line containing `needle` and return it; panic with the log when none
    /// comes within `limit` or the process ends first.
    #[track_caller]
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "{} printed no line with {needle:?} within {limit:?}\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.guard.try_status().is_none()
    }

    /// Wait for it to exit by itself; `None` when it still runs after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.guard.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// End it (SIGTERM, then SIGKILL after [`GRACE`]) and return how it ended.
    pub fn stop(&mut self) -> ExitStatus {
        self.guard.stop(GRACE)
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
    let mut child =
        ChildGuard::spawn(cmd, false).unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = drain(child.child().stdout.take());
    let stderr = drain(child.child().stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_status() {
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
        let mut child =
            ChildGuard::spawn(cmd, false).unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        let out = child
            .child()
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>);
        let err = child
            .child()
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
            stdin: child.child().stdin.take(),
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
            if let Some(status) = self.child.try_status() {
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

/// Panic, saying why `what` needs it, unless this process runs as root (effective uid 0).
#[track_caller]
pub fn require_root(what: &str) {
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                .and_then(|id| id.parse::<u32>().ok())
        });
    assert!(
        euid == Some(0),
        "{what} needs root (this process runs with effective uid {euid:?}); \
         run it as root, e.g. `sudo -E cargo test --release -- --include-ignored`"
    );
}

/// Start `cmd` with stdin closed and stdout and stderr both appended to `log`, under a guard
/// that kills it; for long-running roles whose output is read with [`log_text`].
#[track_caller]
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> ChildGuard {
    let what = format!("{cmd:?}");
    let out = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = out.try_clone().expect("clone a log file handle");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    ChildGuard::spawn(cmd, false).unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// What a [`spawn_logged`] process has written so far ("" before it wrote anything).
pub fn log_text(log: &Path) -> String {
    std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Poll `ready` every 50 ms until it gives a value; panic after `limit`, naming `what` and
/// adding `context()` (say, the logs of the processes involved).
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Debian's python, the one python3-libtorrent is installed for.
pub const PYTHON: &str = "/usr/bin/python3";

/// Panic naming the Debian package unless [`PYTHON`] can import libtorrent.
#[track_caller]
pub fn require_libtorrent() {
    let hint = "install the Debian package `python3-libtorrent` (scripts/test.sh does)";
    assert!(Path::new(PYTHON).is_file(), "{PYTHON} is missing: {hint}");
    let out = run(
        Command::new(PYTHON).args(["-c", "import libtorrent"]),
        SHORT,
    );
    assert!(
        out.status.success(),
        "{PYTHON} cannot import libtorrent: {hint}\n{}",
        out.stderr
    );
}
