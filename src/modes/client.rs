//! `bt client`: download torrents into a profile's folder with a live display, then seed (or
//! exit with `--exit-when-done`). Without `--profile` it is the `client` profile; `-o DIR`
//! downloads into a plain folder.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::engine::{self, Options};
use super::status::{self, Display, Mode, Timing};
use crate::cli::{ClientArgs, Interrupted};
use crate::library;
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
    for t in &args.torrents {
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
    if metas.is_empty() {
        bail!("nothing to download: give a .torrent file, e.g. `bt client data/album.torrent`");
    }
    for t in &args.tracker {
        crate::swarm::announce::check_tracker_url(t)?;
    }
    let (lsd, dht) = engine::discovery(&profile, args.lsd, args.dht, &args.bootstrap);
    let opts = Options {
        trackers: args.tracker.clone(),
        peers: args.peer.clone(),
        engine: EngineConfig {
            upload_slots: args.upload_slots,
            upload_limit: args.upload_limit.map(|k| k * 1024),
            ..EngineConfig::default()
        },
        lsd,
        dht,
    };
    let stop = engine::stop_signal()?;
    let stall = Duration::from_secs(args.stall_timeout);
    let mode = Mode::pick(args.json, args.quiet);
    crate::rt::block_on(async move {
        let running = engine::start(&profile, metas, &opts).await?;
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
        let totals: Vec<u64> = running
            .torrents
            .iter()
            .map(|t| t.layout.total_length())
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
                break if args.exit_when_done && !done {
                    Err(anyhow::Error::new(Interrupted))
                } else {
                    Ok(())
                };
            }
            let mut all_done = true;
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
                        display.completed(i, &text, s, &timing);
                    }
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
            if all_done && args.exit_when_done {
                break Ok(());
            }
        };
        let snaps: Vec<_> = running.torrents.iter().map(|t| t.snapshot()).collect();
        display.finish(&snaps);
        if result.is_ok() && !args.exit_when_done {
            display.println("stopping");
        }
        running.shutdown().await;
        result
    })
}
