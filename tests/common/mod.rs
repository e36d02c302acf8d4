//! Helpers shared by the integration tests: run `bt` (or any program) with a time limit under a
//! guard that stops it (SIGTERM, then SIGKILL) when the test ends, watch long-running processes
//! line by line ([`Proc`]), make deterministic test data, find real tools.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

pub mod live;
pub mod netns;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
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
        self.kill()
    }

    /// End it at once: SIGKILL (to its whole group); reaped. Returns how it ended (at once if
    /// it already had).
    pub fn kill(&mut self) -> ExitStatus {
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

/// Which pipe a line came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pipe {
    Stdout,
    Stderr,
}

/// A long-running program under a [`ChildGuard`], watched line by line: every line it prints on
/// stdout or stderr is kept ([`Proc::log`], [`Proc::lines`]) and arrives, as it is printed, for
/// the `wait_*` methods; its stdin is a pipe to [`Proc::send`] to. Ended and reaped when dropped,
/// also when a test fails.
pub struct Proc {
    /// Labels it in messages.
    name: String,
    guard: ChildGuard,
    /// Dropping it is SIGKILL at once (a crash), not [`ChildGuard::stop`].
    kill_on_drop: bool,
    stdin: Option<ChildStdin>,
    /// The lines no wait has looked at yet.
    lines: mpsc::Receiver<String>,
    /// Every line read so far from its pipes, looked at or not.
    log: Arc<Mutex<Vec<(Pipe, String)>>>,
    /// The threads reading its stdout and stderr.
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Start `bt ARGS` in folder `dir` (so that no `peers.toml` of the repository is picked up;
    /// `RUST_LOG` unset). Dropping it kills it (SIGKILL): a crash, with no goodbye.
    #[track_caller]
    pub fn start(args: &[&str], dir: &Path) -> Proc {
        let name = format!("bt {}", args.first().copied().unwrap_or_default());
        let mut cmd = Command::new(BT);
        cmd.args(args).current_dir(dir).env_remove("RUST_LOG");
        let mut p = Proc::launch(&name, &mut cmd, false);
        p.kill_on_drop = true;
        p
    }

    /// Start `cmd`; `name` labels it in messages. Dropping it stops it ([`ChildGuard::stop`]).
    #[track_caller]
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        Proc::launch(name, cmd, false)
    }

    /// Start `cmd` (stdin closed) as the leader of a new process group, so that stopping it
    /// also stops what it started (a client script's daemon, a browser's helpers).
    #[track_caller]
    pub fn spawn_group(name: &str, cmd: &mut Command) -> Proc {
        let mut p = Proc::launch(name, cmd, true);
        p.close_stdin();
        p
    }

    #[track_caller]
    fn launch(name: &str, cmd: &mut Command, group: bool) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn(cmd, group)
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let log: Arc<Mutex<Vec<(Pipe, String)>>> = Arc::default();
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(guard.child().stdout.take().expect("piped"));
        let err: Box<dyn Read + Send> = Box::new(guard.child().stderr.take().expect("piped"));
        let readers = [(Pipe::Stdout, out), (Pipe::Stderr, err)]
            .into_iter()
            .map(|(pipe, reader)| {
                let (tx, log) = (tx.clone(), Arc::clone(&log));
                std::thread::spawn(move || {
                    for line in BufReader::new(reader).lines().map_while(Result::ok) {
                        log.lock().unwrap().push((pipe, line.clone()));
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Proc {
            name: name.to_string(),
            stdin: guard.child().stdin.take(),
            guard,
            kill_on_drop: false,
            lines,
            log,
            readers,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.child.id()
    }

    /// Write `bytes` to its stdin as they are (add the line end yourself).
    #[track_caller]
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(bytes.as_ref())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot write to {}: {e}", self.name));
    }

    /// Close its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Every line it printed so far, stdout and stderr in the order they were read.
    pub fn lines(&self) -> Vec<String> {
        self.printed(|_| true)
    }

    /// The lines so far from the pipes for which `from` holds.
    fn printed(&self, from: impl Fn(Pipe) -> bool) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(pipe, _)| from(*pipe))
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Everything it printed so far, under a header with its name.
    pub fn log(&self) -> String {
        format!("--- {} ---\n{}\n", self.name, self.lines().join("\n"))
    }

    /// The next line for which `want` holds, or `None` if none came within `timeout` (or it
    /// ended first).
    pub fn try_wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
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
                "{}: no line {what} within {timeout:?}\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// Wait for a line containing `needle`; returns it.
    #[track_caller]
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for(&format!("with {needle:?}"), timeout, |l| l.contains(needle))
    }

    /// The address of its first "listening on ADDR" line (`bt peer`, `bt client`,
    /// `bt tracker`) or "listening for peers on ADDR" (`bt shell`).
    #[track_caller]
    pub fn addr(&mut self) -> SocketAddr {
        let l = self.wait_line("listening ", SHORT);
        l.split(" on ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ',']).next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{}: no address in {l:?}", self.name))
    }

    /// The port of [`Proc::addr`].
    #[track_caller]
    pub fn port(&mut self) -> u16 {
        self.addr().port()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.guard.try_status().is_none()
    }

    /// Its exit status if it exits within `timeout`.
    pub fn try_wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.guard.try_status() {
                self.read_to_end();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for it to exit; panic with its log when it does not within `timeout`.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait_exit(timeout) {
            Some(status) => status,
            None => panic!(
                "{} did not exit within {timeout:?}\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// Wait for it to exit; returns its exit code (-1: killed by a signal) and every line it
    /// printed on stdout.
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> (i32, Vec<String>) {
        let status = self.wait_exit(timeout);
        (
            status.code().unwrap_or(-1),
            self.printed(|pipe| pipe == Pipe::Stdout),
        )
    }

    /// End it (SIGTERM, then SIGKILL after [`GRACE`]) and return how it ended.
    pub fn stop(&mut self) -> ExitStatus {
        let status = self.guard.stop(GRACE);
        self.read_to_end();
        status
    }

    /// Once it has exited: give the readers a moment to take the rest of its output, so that
    /// the log is complete (a process it left behind may hold the pipes open).
    fn read_to_end(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.kill_on_drop {
            self.guard.kill();
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

/// Poll `ready` every 20 ms until it gives a value, for at most `limit`: the one polling loop
/// of the tests (never a fixed sleep).
pub fn poll<T>(limit: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`poll`] for a condition: whether it held within `limit`.
pub fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll(limit, || cond().then_some(())).is_some()
}

/// [`poll`] for a value; panic after `limit`, naming `what` and adding `context()` (say, the
/// logs of the processes involved).
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    ready: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    match poll(limit, ready) {
        Some(v) => v,
        None => panic!("{what}: not within {limit:?}\n{}", context()),
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
