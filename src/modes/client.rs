//! `bt client`: download torrents into a profile's folder with a live display, then seed (or
//! exit with `--exit-when-done`).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::engine::{self, Options};
use super::status::{self, Display};
use crate::cli::ClientArgs;
use crate::library;
use crate::swarm::EngineConfig;

/// How often the display refreshes.
const REFRESH: Duration = Duration::from_millis(250);

/// Run `bt client`.
pub fn run(args: ClientArgs) -> Result<()> {
    let profile = args.profile()?;
    let mut given = Vec::new();
    for t in &args.torrents {
        let (meta, _) = library::import(t, &profile.folder)?;
        given.push(meta);
    }
    let wanted: Vec<_> = given.iter().map(|m| m.info_hash).collect();
    // Everything in the library, given torrents first. A torrent given on the command line
    // wins over an older library copy of the same info-hash (its trackers may be newer).
    let mut metas = library::load_all(&profile.folder)?;
    for m in metas.iter_mut() {
        if let Some(g) = given.iter().find(|g| g.info_hash == m.info_hash) {
            *m = g.clone();
        }
    }
    metas.sort_by_key(|m| {
        wanted
            .iter()
            .position(|h| *h == m.info_hash)
            .unwrap_or(usize::MAX)
    });
    if metas.is_empty() {
        bail!("nothing to download: give a .torrent file, e.g. `bt client --profile {} data/album.torrent`", profile.name);
    }
    for t in &args.tracker {
        crate::swarm::announce::check_tracker_url(t)?;
    }
    let opts = Options {
        trackers: args.tracker.clone(),
        peers: args.peer.clone(),
        engine: EngineConfig {
            upload_slots: args.upload_slots,
            upload_limit: args.upload_limit.map(|k| k * 1024),
            ..EngineConfig::default()
        },
    };
    let stop = engine::stop_signal()?;
    let stall = Duration::from_secs(args.stall_timeout);
    crate::rt::block_on(async move {
        let running = engine::start(&profile, metas, &opts).await?;
        println!(
            "client {} listening on {}, downloading into {}",
            profile.name,
            running.session.listen,
            profile.folder.display()
        );
        let names: Vec<String> = running
            .torrents
            .iter()
            .map(|t| t.meta.info.name.clone())
            .collect();
        let totals: Vec<u64> = running
            .torrents
            .iter()
            .map(|t| t.layout.total_length())
            .collect();
        let mut display = Display::new(names, &totals);
        let mut reported = vec![false; running.torrents.len()];
        let mut progress_at = vec![(Instant::now(), 0u64); running.torrents.len()];
        // Woken at every refresh, and at once when a torrent completes or fails.
        let (wake, woken) = crate::rt::channel::bounded(1);
        for t in &running.torrents {
            t.watch(wake.clone());
        }
        let result = loop {
            let stopped = async { stop.recv().await.map(|()| true) };
            let news = async { woken.recv().await.map(|()| false) };
            if let Ok(Ok(true)) = crate::rt::timeout(REFRESH, crate::rt::race(stopped, news)).await
            {
                break Ok(());
            }
            let mut all_done = true;
            let mut failed = None;
            let snaps: Vec<_> = running.torrents.iter().map(|t| t.snapshot()).collect();
            display.refresh(&snaps);
            for (i, (t, s)) in running.torrents.iter().zip(&snaps).enumerate() {
                if let Some(f) = &s.failure {
                    failed = Some(format!("{}: {f}", t.meta.info.name));
                }
                if s.complete() {
                    if !reported[i] {
                        reported[i] = true;
                        let elapsed = s
                            .completed_at
                            .unwrap_or_else(Instant::now)
                            .duration_since(t.started());
                        let path = profile.folder.join(&t.meta.info.name);
                        let mut text = if s.downloaded == 0 {
                            format!(
                                "{}: already complete on disk ({} pieces verified)\n",
                                t.meta.info.name, s.pieces
                            )
                        } else {
                            status::summary(&t.meta.info.name, s, elapsed)
                        };
                        text.push_str(&format!("  files: {}", path.display()));
                        display.println(&text);
                    }
                    continue;
                }
                all_done = false;
                let (at, bytes) = progress_at[i];
                if s.have_bytes > bytes || !s.peers.is_empty() {
                    progress_at[i] = (Instant::now(), s.have_bytes);
                } else if at.elapsed() >= stall {
                    failed = Some(format!(
                        "{}: no peer and no progress for {} s (tracker: {}); is a peer with the files running?",
                        t.meta.info.name,
                        stall.as_secs(),
                        running.announcers[i].status()
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
        display.finish();
        if result.is_ok() && !args.exit_when_done {
            println!("stopping");
        }
        running.shutdown().await;
        result
    })
}
