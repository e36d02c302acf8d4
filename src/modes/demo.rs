//! `bt demo`: the classic exercise in one process. A tracker, two peers that have the files and
//! a client that starts empty, all on 127.0.0.1 in a scratch folder; the client downloads from
//! both peers while one line per role shows what happens, then a summary.
//!
//! Each run gets a scratch folder of its own (`bt-demo-XXXXXXXX` in the system temp folder), so
//! that two demos can run at once; the random data of `--size` is removed when the demo ends,
//! whatever the outcome. Ctrl-C stops it the same way (exit 130).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::RngCore;

use super::engine::{self, Options, Running};
use super::tracker::table::{Table, TableLimits};
use crate::cli::DemoArgs;
use crate::config::{Config, Profile};
use crate::library;
use crate::proto::metainfo::Metainfo;
use crate::ui;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Run `bt demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    let (config, base) = Config::load(args.config.as_deref())?;
    let work = match &args.dir {
        Some(dir) => {
            prepare_dir(dir)?;
            dir.clone()
        }
        None => fresh_dir()?,
    };
    let folders = [work.join("peer1"), work.join("peer2"), work.join("client")];
    // Large random data must not outlive the demo, failed or not (Ctrl-C included).
    let scratch = args.size.is_some().then(|| Scratch {
        folders: folders.to_vec(),
        // A folder of our own goes entirely; a --dir stays, emptied of what we made.
        work: args.dir.is_none().then(|| work.clone()),
    });
    let stop = super::engine::stop_signal()?;
    let result = run_in(&args, &config, &base, &work, &folders, stop);
    if let Some(s) = scratch {
        s.remove();
    }
    result
}

/// Folders removed when the demo ends (the random data of `--size`).
struct Scratch {
    /// peer1, peer2 and client.
    folders: Vec<PathBuf>,
    /// The whole scratch folder, when this run made it.
    work: Option<PathBuf>,
}

impl Scratch {
    fn remove(self) {
        let gone = match &self.work {
            Some(w) => vec![w.clone()],
            None => self.folders.clone(),
        };
        for f in &gone {
            if let Err(e) = std::fs::remove_dir_all(f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("bt: warning: cannot remove {}: {e}", f.display());
                }
            }
        }
        if let Some(parent) = self.folders.first().and_then(|f| f.parent()) {
            println!(
                "removed the random data and its copies ({})",
                parent.display()
            );
        }
    }
}

/// Set up the folders in `work` and run the demo; `stop` fires on Ctrl-C.
fn run_in(
    args: &DemoArgs,
    config: &Config,
    base: &Path,
    work: &Path,
    folders: &[PathBuf; 3],
    stop: crate::rt::channel::Receiver<()>,
) -> Result<()> {
    let [p1, p2, client] = folders;
    match &args.size {
        Some(size) => random_sample(size, p1, p2, &config.tracker.announce)?,
        None => {
            for (name, dest) in [("peer1", &p1), ("peer2", &p2)] {
                let p = config
                    .profiles
                    .get(name)
                    .ok_or_else(|| anyhow!("the config has no [profiles.{name}] to copy"))?;
                copy_tree(&base.join(&p.folder), dest)?;
            }
        }
    }
    std::fs::create_dir_all(client)?;
    let metas: Vec<Metainfo> = library::list(p1)?
        .into_iter()
        .filter_map(|e| e.meta.ok())
        .collect();
    if metas.is_empty() {
        bail!(
            "{} holds no torrents to share; run scripts/make-samples.sh",
            p1.display()
        );
    }
    for e in library::list(p1)? {
        library::import(&e.path, client)?;
    }
    println!(
        "bt demo in {} (tracker, peer1, peer2 and client on 127.0.0.1)",
        work.display()
    );
    crate::rt::block_on(demo(
        config,
        metas,
        folders.clone(),
        Duration::from_secs(args.timeout),
        stop,
        args.size.is_some(),
        args.web,
    ))
}

/// A new, empty scratch folder in the system temp folder, unique to this run.
fn fresh_dir() -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    for _ in 0..100 {
        let dir = tmp.join(format!("bt-demo-{:08x}", rand::random::<u32>()));
        // create_dir (not _all) fails if another run took the name: then try another.
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!(
        "cannot find a free bt-demo-XXXXXXXX name in {}",
        tmp.display()
    )
}

fn profile(name: &str, folder: &Path, config: &Config) -> Profile {
    Profile {
        name: name.into(),
        folder: folder.to_path_buf(),
        port: 0,
        ip: LOOPBACK,
        settings: Default::default(),
        web: None,
        web_token: None,
        // The demo runs on loopback with its own tracker: no discovery.
        lsd: false,
        config: config.clone(),
    }
}

async fn demo(
    config: &Config,
    metas: Vec<Metainfo>,
    folders: [PathBuf; 3],
    timeout: Duration,
    stop: crate::rt::channel::Receiver<()>,
    random: bool,
    web: bool,
) -> Result<()> {
    // The tracker, on a free port.
    let listener = crate::rt::TcpListener::bind(SocketAddr::new(LOOPBACK, 0)).await?;
    let tracker_addr = listener.local_addr()?;
    let table = Table::new(TableLimits::from(&config.tracker), None, Instant::now());
    crate::rt::spawn(super::tracker::serve(listener, table)).detach();
    let opts = Options {
        trackers: vec![format!("http://{tracker_addr}/announce")],
        ..Options::default()
    };
    // With the page, the peers send slowly enough (about WATCH_TIME for the whole) that the
    // pieces can be watched arriving.
    let total: u64 = metas.iter().map(Metainfo::total_length).sum();
    let mut peer_opts = opts.clone();
    if web {
        let rate = (total / WATCH_TIME.as_secs() / 2).max(MIN_WATCH_RATE);
        peer_opts.engine.upload_limit = Some(rate);
    }
    let peer1 = engine::start(
        &profile("peer1", &folders[0], config),
        metas.clone(),
        &peer_opts,
    )
    .await?;
    let peer2 = engine::start(
        &profile("peer2", &folders[1], config),
        metas.clone(),
        &peer_opts,
    )
    .await?;
    let client_profile = profile("client", &folders[2], config);
    let client = engine::start(&client_profile, metas, &opts).await?;
    if web {
        let control =
            super::control::Control::new(&client, client_profile.folder.clone(), opts.clone());
        let web_opts = super::web::WebOptions::new(SocketAddr::new(LOOPBACK, 0), None)?;
        let at = super::web::start(&web_opts, control).await?;
        println!("web page of the client: http://{at}/");
    }
    let roles = [("peer1", &peer1), ("peer2", &peer2)];
    let names: Vec<(String, &str)> = roles
        .iter()
        .map(|(n, r)| (r.session.peer_id.text(), *n))
        .collect();

    let view = View::new();
    view.line(
        0,
        format!("tracker  http://{tracker_addr}/announce  (status page http://{tracker_addr}/)"),
    );
    // Woken at once when a client torrent completes or fails (its `completed_at` then gives
    // the exact end); the loop only samples the display.
    let (wake, woken) = crate::rt::channel::bounded(1);
    for t in &client.torrents {
        t.watch(wake.clone());
    }
    let started = Instant::now();
    // When the first byte was seen: the transfer time counts from there, not from the start
    // (the tracker and the connections come first). Sampled every FIRST_BYTE_POLL until then.
    let mut first_byte: Option<Instant> = None;
    let result = loop {
        let snaps: Vec<_> = client.torrents.iter().map(|t| t.snapshot()).collect();
        for (i, (name, r)) in roles.iter().enumerate() {
            let sent: u64 = r.torrents.iter().map(|t| t.snapshot().uploaded).sum();
            let conns: usize = r.torrents.iter().map(|t| t.snapshot().peers.len()).sum();
            view.line(
                i + 1,
                format!(
                    "{name:<8} {:<21} sent {:>10}  connections {conns}",
                    r.session.listen.to_string(),
                    HumanBytes(sent).to_string()
                ),
            );
        }
        let (have, total): (u64, u64) = snaps
            .iter()
            .fold((0, 0), |a, s| (a.0 + s.have_bytes, a.1 + s.total_bytes));
        let got: u64 = snaps.iter().map(|s| s.downloaded).sum();
        if got > 0 && first_byte.is_none() {
            first_byte = Some(Instant::now());
        }
        let since = first_byte.map_or(Duration::ZERO, |t| t.elapsed());
        view.line(
            3,
            format!(
                "client   {:<21} {:>5.1}%  {} of {}  {}",
                client.session.listen.to_string(),
                ui::percent(have, total),
                HumanBytes(have),
                HumanBytes(total),
                // Since the first byte seen; nothing under a millisecond (noise, not a rate).
                ui::rate_text(got, since).unwrap_or_else(|| "-".into())
            ),
        );
        if let Some(f) = snaps.iter().find_map(|s| s.failure.clone()) {
            break Err(anyhow!(f));
        }
        if snaps.iter().all(|s| s.complete()) {
            break Ok(());
        }
        if started.elapsed() > timeout {
            break Err(anyhow!(
                "the client did not finish within {} s",
                timeout.as_secs()
            ));
        }
        let poll = match first_byte {
            None => FIRST_BYTE_POLL,
            Some(_) => REFRESH,
        };
        let stopped = async { stop.recv().await.map(|()| true) };
        let news = async { woken.recv().await.map(|()| false) };
        if let Ok(Ok(true)) = crate::rt::timeout(poll, crate::rt::race(stopped, news)).await {
            break Err(anyhow!(crate::cli::Interrupted));
        }
    };
    view.done();
    if result.is_ok() {
        let snaps: Vec<_> = client.torrents.iter().map(|t| t.snapshot()).collect();
        let end = snaps.iter().filter_map(|s| s.completed_at).max();
        let clock = Clock {
            started: client
                .torrents
                .iter()
                .map(|t| t.started())
                .min()
                .unwrap_or(started),
            first_byte,
            end: end.unwrap_or_else(Instant::now),
        };
        // The random data of --size is removed at the end: no path to show for it.
        let keep = (!random).then_some(folders[2].as_path());
        print_summary(&client, &names, keep, &clock);
    }
    if web && result.is_ok() {
        println!("the page stays up; Ctrl-C ends the demo");
        let _ = stop.recv().await;
    }
    for r in [&client, &peer1, &peer2] {
        r.shutdown().await;
    }
    result
}

/// About how long the download takes with `--web` (the peers' upload is limited to it).
const WATCH_TIME: Duration = Duration::from_secs(20);
/// The slowest the peers send with `--web`, bytes per second each.
const MIN_WATCH_RATE: u64 = 4 * 1024;

/// How often the loop looks for the first byte (the start of the timed transfer).
const FIRST_BYTE_POLL: Duration = Duration::from_millis(5);
/// How often the lines are refreshed once bytes flow.
const REFRESH: Duration = Duration::from_millis(100);

/// The moments the summary's times are measured between.
struct Clock {
    /// The client started (tracker, connections and transfer all after it).
    started: Instant,
    /// The first byte was seen (within [`FIRST_BYTE_POLL`]).
    first_byte: Option<Instant>,
    /// The last piece was verified (the engine's `completed_at`).
    end: Instant,
}

/// The summary; `folder` is where the files stay, if they do.
fn print_summary(client: &Running, names: &[(String, &str)], folder: Option<&Path>, clock: &Clock) {
    let snaps: Vec<_> = client.torrents.iter().map(|t| t.snapshot()).collect();
    let bytes: u64 = snaps.iter().map(|s| s.total_bytes).sum();
    let received: u64 = snaps.iter().map(|s| s.downloaded).sum();
    let pieces: usize = snaps.iter().map(|s| s.pieces).sum();
    let bad: u32 = snaps.iter().map(|s| s.bad_pieces).sum();
    let total = clock.end.saturating_duration_since(clock.started);
    println!(
        "\ndone: all {pieces} pieces ({}) verified by SHA-1{}",
        HumanBytes(bytes),
        if bad > 0 {
            format!(" ({bad} bad pieces fetched again)")
        } else {
            String::new()
        }
    );
    println!(
        "  {} from the client's start to the last piece verified (tracker and connections included)",
        ui::duration(total)
    );
    // The transfer alone, when the first byte was seen before the end; on loopback the
    // samples often move between two looks, and then only the whole time is known.
    let window = clock
        .first_byte
        .filter(|f| *f < clock.end)
        .map(|f| clock.end.duration_since(f));
    match window.and_then(|w| Some((w, ui::rate_text(received, w)?))) {
        Some((w, rate)) => println!(
            "  transfer: {} received in {} = {rate} (first byte seen to last piece verified)",
            HumanBytes(received),
            ui::duration(w)
        ),
        None => println!(
            "  transfer: {} received{} (too quick to time apart from the start)",
            HumanBytes(received),
            ui::rate_text(received, total)
                .map(|r| format!(", {r} over the whole time"))
                .unwrap_or_default()
        ),
    }
    for (id, role) in names {
        let (mut got, mut n) = (0u64, 0u32);
        for s in &snaps {
            for (_, t) in s.history.iter().filter(|(_, t)| &t.client == id) {
                got += t.downloaded;
                n += t.pieces;
            }
        }
        println!(
            "  from {role}: {n} pieces, {} ({:.0}%)",
            HumanBytes(got),
            ui::percent(got, received.max(1))
        );
    }
    println!("  (per peer: the bytes it sent us, and the verified pieces it sent all or part");
    println!("  of: a piece both peers sent a part of counts for each)");
    for t in &client.torrents {
        if let Some(folder) = folder {
            println!("  downloaded: {}", folder.join(&t.meta.info.name).display());
        }
    }
}

/// One line per role: live lines on a terminal, a plain block each second otherwise.
struct View {
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    /// Plain mode: the current lines, when a block was last printed, and that block.
    lines: std::sync::Mutex<(Vec<String>, Instant, String)>,
}

impl View {
    fn new() -> View {
        let bars = std::io::stdout().is_terminal().then(|| {
            let m = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template("{msg}").expect("valid template");
            let bars = (0..4)
                .map(|_| m.add(ProgressBar::new(1).with_style(style.clone())))
                .collect();
            (m, bars)
        });
        View {
            bars,
            lines: std::sync::Mutex::new((vec![String::new(); 4], Instant::now(), String::new())),
        }
    }

    fn line(&self, i: usize, text: String) {
        match &self.bars {
            Some((_, bars)) => bars[i].set_message(text),
            None => self.lines.lock().unwrap_or_else(|e| e.into_inner()).0[i] = text,
        }
        if i == 3 && self.bars.is_none() {
            let mut st = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            if st.1.elapsed() >= Duration::from_secs(1) {
                st.1 = Instant::now();
                st.2 = st.0.join("\n");
                println!("{}", st.2);
            }
        }
    }

    fn done(&self) {
        match &self.bars {
            Some((_, bars)) => bars.iter().for_each(|b| b.finish()),
            None => {
                let st = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                // The last state, unless it has just gone out (a quick demo printed none yet).
                let block = st.0.join("\n");
                if block != st.2 {
                    println!("{block}");
                }
            }
        }
    }
}

/// Wipe and recreate the scratch folder, refusing anything that looks like it holds other data.
fn prepare_dir(work: &Path) -> Result<()> {
    if work.exists() {
        let ours = ["peer1", "peer2", "client"];
        for e in
            std::fs::read_dir(work).with_context(|| format!("cannot list {}", work.display()))?
        {
            let name = e?.file_name();
            if !ours.iter().any(|o| name == *o) {
                bail!(
                    "{} holds {:?}, which bt demo did not make; choose another --dir",
                    work.display(),
                    name
                );
            }
        }
        std::fs::remove_dir_all(work)
            .with_context(|| format!("cannot clear {}", work.display()))?;
    }
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)
                .with_context(|| format!("cannot copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// One random file of `size` in peer1 (hard-linked into peer2), with its torrent in both.
fn random_sample(size: &str, p1: &Path, p2: &Path, announce: &str) -> Result<()> {
    let bytes = crate::commands::create::parse_size(size)?;
    if bytes == 0 {
        bail!("--size must be more than 0");
    }
    std::fs::create_dir_all(p1)?;
    std::fs::create_dir_all(p2)?;
    let name = format!("random-{}.bin", size.to_ascii_lowercase());
    let path = p1.join(&name);
    println!(
        "writing {} of random data to {}",
        HumanBytes(bytes),
        path.display()
    );
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut rng = rand::thread_rng();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.flush()?;
    }
    std::fs::hard_link(&path, p2.join(&name))
        .or_else(|_| std::fs::copy(&path, p2.join(&name)).map(|_| ()))?;
    let source = crate::commands::create::Source::scan(&path)?;
    let meta = crate::commands::create::build(&source, None, &[announce.to_string()], false, None)?;
    for p in [p1, p2] {
        std::fs::write(p.join(format!("{name}.torrent")), meta.to_bytes())?;
    }
    Ok(())
}
