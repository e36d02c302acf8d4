//! `bt peer`: serve every torrent in a profile's library and fetch whatever is missing, until
//! Ctrl-C.

use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::HumanBytes;

use super::engine::{self, Options};
use crate::cli::PeerArgs;
use crate::library;
use crate::swarm::EngineConfig;

/// Run `bt peer`.
pub fn run(args: PeerArgs) -> Result<()> {
    let profile = args.profile()?;
    let metas = library::load_all(&profile.folder)?;
    if metas.is_empty() {
        bail!(
            "{} holds no .torrent files; add one with `bt import FILE.torrent --profile {}`",
            profile.folder.display(),
            profile.name
        );
    }
    for t in &args.tracker {
        crate::swarm::announce::check_tracker_url(t)?;
    }
    let opts = Options {
        trackers: args.tracker,
        peers: args.peer,
        engine: EngineConfig {
            upload_slots: args.upload_slots,
            upload_limit: args.upload_limit.map(|k| k * 1024),
            ..EngineConfig::default()
        },
    };
    let stop = engine::stop_signal()?;
    crate::rt::block_on(async move {
        let running = engine::start(&profile, metas, &opts).await?;
        println!(
            "peer {} listening on {} (folder {})",
            profile.name,
            running.session.listen,
            profile.folder.display()
        );
        for t in &running.torrents {
            let s = t.snapshot();
            println!(
                "  {}: {} of {} on disk verified ({}/{} pieces){}",
                t.meta.info.name,
                HumanBytes(s.have_bytes),
                HumanBytes(s.total_bytes),
                s.have_pieces,
                s.pieces,
                if s.complete() {
                    ", seeding"
                } else {
                    ", downloading the rest"
                }
            );
        }
        let mut last = Vec::new();
        loop {
            if crate::rt::timeout(Duration::from_secs(2), stop.recv())
                .await
                .is_ok()
            {
                break;
            }
            for t in &running.torrents {
                let s = t.snapshot();
                if let Some(f) = &s.failure {
                    bail!("{}: {f}", t.meta.info.name);
                }
                let line = format!(
                    "{}: {:.0}%, {} peers, sent {}, received {}",
                    t.meta.info.name,
                    crate::ui::percent(s.have_bytes, s.total_bytes),
                    s.peers.len(),
                    HumanBytes(s.uploaded),
                    HumanBytes(s.downloaded)
                );
                if !last.contains(&line) {
                    println!("{line}");
                }
                last.retain(|l: &String| !l.starts_with(&format!("{}:", t.meta.info.name)));
                last.push(line);
            }
        }
        println!("stopping");
        running.shutdown().await;
        Ok(())
    })
}
