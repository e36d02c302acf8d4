//! `bt peer`: serve every torrent in a profile's library and fetch whatever is missing, until
//! Ctrl-C. The library is watched: a `.torrent` dropped into the folder while it runs joins the
//! running session within [`WATCH_EVERY`], no restart needed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use indicatif::HumanBytes;

use super::engine::{self, Options, Running};
use crate::cli::PeerArgs;
use crate::config::Profile;
use crate::library;
use crate::proto::metainfo::{InfoHash, Metainfo};
use crate::swarm::torrent::Torrent;
use crate::swarm::EngineConfig;
use crate::ui;

/// How often the folder is looked at for new torrents (and the status lines refreshed).
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Run `bt peer`.
pub fn run(args: PeerArgs) -> Result<()> {
    let profile = args.profile()?;
    crate::config::note_if_built_in(args.config.as_deref(), &profile);
    let mut library = Library::default();
    let metas = library.new_torrents(&profile)?;
    if metas.is_empty() {
        println!(
            "{} holds no .torrent files yet; drop one there (or `bt import FILE.torrent --profile {}`) \
             and it is picked up within {} s",
            profile.folder.display(),
            profile.name,
            WATCH_EVERY.as_secs()
        );
    }
    for t in &args.tracker {
        crate::swarm::announce::check_tracker_url(t)?;
    }
    let (lsd, dht) = engine::discovery(&profile, args.lsd, args.dht, &args.bootstrap);
    let opts = Options {
        trackers: args.tracker,
        peers: args.peer,
        engine: EngineConfig {
            upload_slots: args.upload_slots,
            upload_limit: args.upload_limit.map(|k| k * 1024),
            ..EngineConfig::default()
        },
        lsd,
        dht,
    };
    let direct = engine::parse_peers(&opts.peers)?;
    let stop = engine::stop_signal()?;
    crate::rt::block_on(async move {
        let mut running = engine::start(&profile, metas, &opts).await?;
        println!(
            "peer {} listening on {} (folder {})",
            profile.name,
            running.session.listen,
            profile.folder.display()
        );
        for t in &running.torrents {
            println!("  {}", on_disk(t));
        }
        let mut last = HashMap::new();
        loop {
            if crate::rt::timeout(WATCH_EVERY, stop.recv()).await.is_ok() {
                break;
            }
            add_new(&mut running, &mut library, &profile, &opts, &direct).await;
            for t in &running.torrents {
                let s = t.snapshot();
                let name = ui::escape(&t.meta.info.name).into_owned();
                if let Some(f) = &s.failure {
                    bail!("{name}: {}", ui::escape(f));
                }
                let via = match s.sources_text() {
                    t if t.is_empty() => t,
                    t => format!(" (via {t})"),
                };
                let line = format!(
                    "{name}: {:.0}%, {}{via}, sent {}, received {}",
                    ui::percent(s.have_bytes, s.total_bytes),
                    ui::plural(s.peers.len(), "peer", "peers"),
                    HumanBytes(s.uploaded),
                    HumanBytes(s.downloaded)
                );
                // One line whenever what a torrent shows changes.
                if last.get(&t.meta.info_hash) != Some(&line) {
                    println!("{line}");
                    last.insert(t.meta.info_hash, line);
                }
            }
        }
        println!("stopping");
        running.shutdown().await;
        Ok(())
    })
}

/// "album: 196.64 KiB of 196.64 KiB on disk verified (13/13 pieces), seeding".
fn on_disk(t: &Torrent) -> String {
    let s = t.snapshot();
    format!(
        "{}: {} of {} on disk verified ({}/{} pieces){}",
        ui::escape(&t.meta.info.name),
        HumanBytes(s.have_bytes),
        HumanBytes(s.total_bytes),
        s.have_pieces,
        s.pieces,
        if s.complete() {
            ", seeding"
        } else {
            ", downloading the rest"
        }
    )
}

/// Add the torrents that appeared in the folder to the running session.
async fn add_new(
    running: &mut Running,
    library: &mut Library,
    profile: &Profile,
    opts: &Options,
    direct: &[std::net::SocketAddr],
) {
    let metas = match library.new_torrents(profile) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bt: warning: {e:#}");
            return;
        }
    };
    for meta in metas {
        let trackers = opts.trackers_for(&meta);
        engine::warn_if_alone(&meta, &trackers, direct, opts.discovers());
        let name = ui::escape(&meta.info.name).into_owned();
        let hash = meta.info_hash;
        match engine::add(&running.session, &profile.folder, meta, trackers, direct).await {
            Ok((t, a)) => {
                println!("added {name} ({hash}), new in the folder: {}", on_disk(&t));
                running.torrents.push(t);
                running.announcers.push(Arc::clone(&a));
            }
            Err(e) => eprintln!("bt: warning: cannot add {name}: {e:#}"),
        }
    }
}

/// The `.torrent` files at the top of `folder`, sorted (a missing folder has none). Only the
/// names: [`Library`] reads a file again only when it changed.
fn torrent_files(folder: &std::path::Path) -> Result<Vec<PathBuf>> {
    let dir = match std::fs::read_dir(folder) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => bail!("cannot list {}: {e}", folder.display()),
    };
    let mut paths: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "torrent") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

/// What the peer knows of its folder, to find the torrents that are new.
#[derive(Default)]
struct Library {
    /// Info-hashes already in the session.
    hashes: HashSet<InfoHash>,
    /// Each `.torrent` file looked at, with its size and time when it was (a file still being
    /// written that failed to parse is read again once it changes).
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl Library {
    /// The readable torrents of the folder not in the session yet (unreadable ones are warned
    /// about once per version of the file).
    fn new_torrents(&mut self, profile: &Profile) -> Result<Vec<Metainfo>> {
        let mut out = Vec::new();
        for entry in torrent_files(&profile.folder)? {
            let stamp = std::fs::metadata(&entry)
                .map(|m| (m.len(), m.modified().ok()))
                .unwrap_or((0, None));
            if self.seen.get(&entry) == Some(&stamp) {
                continue;
            }
            self.seen.insert(entry.clone(), stamp);
            match library::read_torrent(&entry) {
                Ok(m) if self.hashes.insert(m.info_hash) => out.push(m),
                Ok(_) => {} // the same torrent under another file name
                Err(e) => eprintln!("bt: warning: skipping {e:#}"),
            }
        }
        Ok(out)
    }
}
