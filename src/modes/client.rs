//! `bt client`: download torrents into a profile's folder with a live display, then seed (or
//! exit with `--exit-when-done`). Without `--profile` it is the `client` profile; `-o DIR`
//! downloads into a plain folder.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::engine::{self, Options, Running, SeedGoal};
use super::magnet;
use super::status::{self, Display, Mode, Timing};
use crate::cli::{ClientArgs, Interrupted};
use crate::library;
use crate::proto::magnet::Magnet;
use crate::swarm::EngineConfig;
use crate::ui;

/// How often the display refreshes once bytes flow.
const REFRESH: Duration = Duration::from_millis(250);
/// How often the loop looks for a torrent's first byte (the start of its timed transfer)
/// until it has seen one: the transfer time is then known to this much.
const FIRST_BYTE_POLL: Duration = Duration::from_millis(10);

/// Run `bt client`.
pub fn run(args: ClientArgs) -> Result<()> {
    let profile = args.profile()?;
    crate::config::note_if_built_in(args.config.as_deref(), &profile);
    // The folder is read once, however many torrents are given (import stays linear).
    let mut lib = library::Library::open(&profile.folder)?;
    let mut given = Vec::new();
    let mut magnets = Vec::new();
    for t in &args.torrents {
        if let Some(link) = t.to_str().filter(|s| magnet::is_magnet(s)) {
            let m = Magnet::parse(link).with_context(|| format!("cannot read {link}"))?;
            magnets.push(m);
            continue;
        }
        let (meta, _) = lib.import(t)?;
        given.push(meta);
    }
    // Info-hash -> position on the command line (first one wins), for the order below.
    let mut wanted = std::collections::HashMap::new();
    for (i, m) in given.iter().enumerate() {
        wanted.entry(m.info_hash).or_insert(i);
    }
    // Everything in the library, given torrents first. A torrent given on the command line
    // wins over an older library copy of the same info-hash (its trackers may be newer).
    let mut metas = lib.metas();
    for m in metas.iter_mut() {
        if let Some(&i) = wanted.get(&m.info_hash) {
            *m = given[i].clone();
        }
    }
    metas.sort_by_key(|m| wanted.get(&m.info_hash).copied().unwrap_or(usize::MAX));
    // A magnet link of a torrent the library has already is that torrent.
    magnets.retain(|m| !metas.iter().any(|t| t.info_hash == m.info_hash));
    if metas.is_empty() && magnets.is_empty() {
        bail!("nothing to download: give a .torrent file, e.g. `bt client data/album.torrent`");
    }
    for t in &args.tracker {
        crate::swarm::announce::check_tracker_url(t)?;
    }
    if given.is_empty() && (args.files.is_some() || !args.only.is_empty()) {
        bail!("--files and --only choose files of the torrents given: name one, e.g. `bt client data/album.torrent --files 1`");
    }
    let (lsd, dht) = engine::discovery(&profile, args.lsd, args.dht, &args.bootstrap);
    let opts = Options {
        trackers: args.tracker.clone(),
        peers: args.peer.clone(),
        engine: EngineConfig {
            upload_slots: args.upload_slots,
            upload_limit: args
                .upload_limit
                .or(profile.settings.upload_limit)
                .map(|k| k * 1024),
            ..EngineConfig::default()
        },
        files: engine::choose_files(&given, args.files.as_deref(), &args.only)?,
        download_limit: engine::download_limit(args.download_limit, &profile),
        lsd,
        dht,
    };
    let goal = SeedGoal {
        ratio: args.seed_ratio.or(profile.settings.seed_ratio),
        time: args.seed_time.or(profile.settings.seed_time),
    };
    // Exit once done: at completion, or once the seed goal is met after it.
    let exit_when_done = args.exit_when_done || goal.is_set();
    let web = super::web::for_profile(args.web, &profile)?;
    let stop = engine::stop_signal()?;
    let stall = Duration::from_secs(args.stall_timeout);
    let mode = Mode::pick(args.json, args.quiet);
    crate::rt::block_on(async move {
        let mut running = engine::start(&profile, metas, &opts).await?;
        let json = matches!(mode, Mode::Json);
        let control =
            super::web::serve_running(web.as_ref(), &running, &profile, &opts, json).await?;
        // In JSON mode stdout carries JSON only: the rest goes to stderr.
        let about = format!(
            "client {} listening on {}, downloading into {}",
            profile.name,
            running.session.listen,
            profile.folder.display()
        );
        match mode {
            Mode::Json => eprintln!("{about}"),
            _ => println!("{about}"),
        }
        let before = running.torrents.len();
        from_magnets(&mut running, &mut lib, &magnets, &opts, mode, stall).await?;
        if let Some(c) = &control {
            // The web page's pause and resume reach the torrents of magnet links too.
            for (t, a) in running
                .torrents
                .iter()
                .zip(&running.announcers)
                .skip(before)
            {
                c.adopt(t, a);
            }
        }
        let names: Vec<String> = running
            .torrents
            .iter()
            .map(|t| ui::escape(&t.meta.info.name).into_owned())
            .collect();
        let hashes = running
            .torrents
            .iter()
            .map(|t| t.meta.info_hash.to_string())
            .collect();
        // The bytes to download: with a selection, those of the pieces holding the chosen files.
        let totals: Vec<u64> = running
            .torrents
            .iter()
            .map(|t| t.snapshot().total_bytes)
            .collect();
        let mut display = Display::new(mode, names.clone(), hashes, &totals);
        let mut reported = vec![false; running.torrents.len()];
        let mut first_byte: Vec<Option<Instant>> = vec![None; running.torrents.len()];
        let mut progress_at = vec![(Instant::now(), 0u64); running.torrents.len()];
        // Woken at every refresh, and at once when a torrent completes or fails.
        let (wake, woken) = crate::rt::channel::bounded(1);
        for t in &running.torrents {
            t.watch(wake.clone());
        }
        let mut poll = FIRST_BYTE_POLL;
        let result = loop {
            let stopped = async { stop.recv().await.map(|()| true) };
            let news = async { woken.recv().await.map(|()| false) };
            if let Ok(Ok(true)) = crate::rt::timeout(poll, crate::rt::race(stopped, news)).await {
                let done = running.torrents.iter().all(|t| t.snapshot().complete());
                break if exit_when_done && !done {
                    Err(anyhow::Error::new(Interrupted))
                } else {
                    Ok(())
                };
            }
            let mut all_done = true;
            let mut goals_met = true;
            let mut failed = None;
            let snaps: Vec<_> = running.torrents.iter().map(|t| t.snapshot()).collect();
            let now = Instant::now();
            for (fb, s) in first_byte.iter_mut().zip(&snaps) {
                if fb.is_none() && s.downloaded > 0 {
                    *fb = Some(now);
                }
            }
            // Fast looks only while some download still waits for its first byte.
            poll = if snaps
                .iter()
                .zip(&first_byte)
                .any(|(s, fb)| fb.is_none() && !s.complete())
            {
                FIRST_BYTE_POLL
            } else {
                REFRESH
            };
            display.refresh(&snaps);
            for (i, (t, s)) in running.torrents.iter().zip(&snaps).enumerate() {
                if let Some(f) = &s.failure {
                    failed = Some(format!("{}: {}", names[i], ui::escape(f)));
                }
                if t.is_removed() {
                    continue; // removed through the web API: no longer ours to wait for
                }
                if t.is_paused() {
                    // Paused through the web API: not stalled, and not done either.
                    progress_at[i] = (Instant::now(), s.have_bytes + s.downloaded);
                    all_done = false;
                    continue;
                }
                if s.complete() {
                    if !reported[i] {
                        reported[i] = true;
                        let timing =
                            Timing::new(t.started(), first_byte[i], s.completed_at.unwrap_or(now));
                        let path = profile.folder.join(&t.meta.info.name);
                        let mut text = if s.downloaded == 0 {
                            format!(
                                "{}: already complete on disk ({} verified)\n",
                                names[i],
                                ui::plural(s.pieces, "piece", "pieces")
                            )
                        } else {
                            status::summary(&names[i], s, &timing)
                        };
                        text.push_str(&format!(
                            "  files: {}",
                            ui::escape(&path.display().to_string())
                        ));
                        if let Some(f) = &t.files {
                            text.push_str(&format!(" ({} of {} files)", f.count(), f.len()));
                        }
                        display.completed(i, &text, s, &timing);
                    }
                    let since = s.completed_at.unwrap_or(t.started());
                    goals_met &= !goal.is_set() || goal.met(s.uploaded, s.total_bytes, since, now);
                    continue;
                }
                all_done = false;
                // Progress is bytes that went into pieces, whoever is connected: a peer that
                // holds a connection and sends nothing must not keep a stalled download alive.
                let (at, bytes) = progress_at[i];
                let moved = s.have_bytes + s.downloaded;
                if moved > bytes {
                    progress_at[i] = (Instant::now(), moved);
                } else if at.elapsed() >= stall {
                    let peers = match s.peers.len() {
                        0 => "no peer connected".to_string(),
                        n => format!("{} connected, none sending", ui::plural(n, "peer", "peers")),
                    };
                    failed = Some(format!(
                        "{}: no progress for {} s ({peers}; tracker: {}); is a peer with the files running?",
                        names[i],
                        stall.as_secs(),
                        ui::escape(&running.announcers[i].status())
                    ));
                }
            }
            if let Some(f) = failed {
                break Err(anyhow::anyhow!(f));
            }
            if all_done && exit_when_done && goals_met {
                if goal.is_set() {
                    display.println("seed goal met");
                }
                break Ok(());
            }
        };
        let snaps: Vec<_> = running.torrents.iter().map(|t| t.snapshot()).collect();
        display.finish(&snaps);
        if result.is_ok() && !exit_when_done {
            display.println("stopping");
        }
        running.shutdown().await;
        if let Some(c) = control {
            c.shutdown().await;
        }
        result
    })
}

/// Fetch the metadata of every magnet link at once (saying what each waits for), store each
/// torrent in the library and add it to the running engine.
async fn from_magnets(
    running: &mut Running,
    lib: &mut library::Library,
    magnets: &[Magnet],
    opts: &Options,
    mode: Mode,
    stall: Duration,
) -> Result<()> {
    let direct = engine::parse_peers(&opts.peers)?;
    let session = &running.session;
    let fetches = magnets.iter().map(|m| {
        let trackers = magnet::trackers_for(m, &opts.trackers);
        let direct = &direct;
        async move {
            let name = magnet::label(m);
            let r = magnet::fetch(session, m, &trackers, direct, stall, |s| {
                let line = format!("{name}: {}", magnet::describe(s));
                match mode {
                    Mode::Quiet => {}
                    Mode::Json => eprintln!("{line}"),
                    _ => println!("{line}"),
                }
            })
            .await;
            r.map(|(meta, f)| (meta, f, trackers))
        }
    });
    let fetched = futures::future::join_all(fetches).await;
    for r in fetched {
        let (meta, f, trackers) = r?;
        let meta = magnet::save(lib, meta)?;
        let line = format!(
            "{}: metadata received and checked, saved in the library",
            ui::escape(&meta.info.name)
        );
        match mode {
            Mode::Quiet => {}
            Mode::Json => eprintln!("{line}"),
            _ => println!("{line}"),
        }
        let topts = opts.for_torrent(lib.folder(), &meta)?;
        let (t, a) = magnet::add(session, lib.folder(), meta, trackers, &f, topts).await?;
        running.torrents.push(t);
        running.announcers.push(a);
    }
    Ok(())
}
