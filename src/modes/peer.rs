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
            upload_limit: args
                .upload_limit
                .or(profile.settings.upload_limit)
                .map(|k| k * 1024),
            ..EngineConfig::default()
        },
        download_limit: engine::download_limit(args.download_limit, &profile),
        lsd,
        dht,
        ..Options::default()
    };
    let direct = engine::parse_peers(&opts.peers)?;
    let web = super::web::for_profile(args.web, &profile)?;
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
        let control =
            super::web::serve_running(web.as_ref(), &running, &profile, &opts, false).await?;
        let mut last = HashMap::new();
        let mut briefs = HashMap::new();
        loop {
            if crate::rt::timeout(WATCH_EVERY, stop.recv()).await.is_ok() {
                break;
            }
            add_new(&mut running, &mut library, &profile, &opts, &direct).await;
            if let Some(c) = &control {
                let live = running.torrents.iter().zip(&running.announcers);
                for (t, a) in live.filter(|(t, _)| !t.is_removed()) {
                    c.adopt(t, a);
                }
            }
            for t in &running.torrents {
                if t.is_removed() {
                    continue;
                }
                // Most torrents of a large library are idle: nothing to print.
                let brief = t.brief();
                if briefs.insert(t.meta.info_hash, brief) == Some(brief) {
                    continue;
                }
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
        if let Some(c) = control {
            c.shutdown().await;
        }
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
        if running.session.find(&meta.info_hash).is_some() {
            continue; // added through the web API, which put its file in the folder
        }
        let trackers = opts.trackers_for(&meta);
        engine::warn_if_alone(&meta, &trackers, direct, opts.discovers());
        let name = ui::escape(&meta.info.name).into_owned();
        let hash = meta.info_hash;
        let added = match opts.for_torrent(&profile.folder, &meta) {
            Ok(topts) => {
                engine::add(
                    &running.session,
                    &profile.folder,
                    meta,
                    trackers,
                    direct,
                    topts,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match added {
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

/// The folder is listed again after this long even if its own time says nothing changed (a
/// file rewritten in place does not change the folder's time, and a file added within the
/// timestamp granularity of the last listing might not either).
const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// What the peer knows of its folder, to find the torrents that are new.
#[derive(Default)]
struct Library {
    /// Info-hashes already in the session.
    hashes: HashSet<InfoHash>,
    /// Each `.torrent` file looked at, with its size and time when it was (a file still being
    /// written that failed to parse is read again once it changes).
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
    /// Files that failed to parse (perhaps still being written): the folder is listed again
    /// at each look while there are any.
    unreadable: HashSet<PathBuf>,
    /// The folder's modification time at the last listing, and when that was: listing a
    /// folder of 10,000 torrents (a `stat` each) every 2 s cost an idle peer 1-2% of a core.
    listed: Option<(SystemTime, std::time::Instant)>,
}

impl Library {
    /// The readable torrents of the folder not in the session yet (unreadable ones are warned
    /// about once per version of the file).
    fn new_torrents(&mut self, profile: &Profile) -> Result<Vec<Metainfo>> {
        let mut out = Vec::new();
        let stamp = std::fs::metadata(&profile.folder)
            .and_then(|m| m.modified())
            .ok();
        let unchanged = match (self.listed, stamp) {
            (Some((then, at)), Some(now)) => then == now && at.elapsed() < RESCAN_EVERY,
            _ => false,
        };
        if unchanged && self.unreadable.is_empty() {
            return Ok(out);
        }
        if let Some(now) = stamp {
            self.listed = Some((now, std::time::Instant::now()));
        }
        let mut unreadable = HashSet::new();
        for entry in torrent_files(&profile.folder)? {
            let stamp = std::fs::metadata(&entry)
                .map(|m| (m.len(), m.modified().ok()))
                .unwrap_or((0, None));
            if self.seen.get(&entry) == Some(&stamp) {
                if self.unreadable.contains(&entry) {
                    unreadable.insert(entry);
                }
                continue;
            }
            self.seen.insert(entry.clone(), stamp);
            match library::read_torrent(&entry) {
                Ok(m) if self.hashes.insert(m.info_hash) => out.push(m),
                Ok(_) => {} // the same torrent under another file name
                Err(e) => {
                    unreadable.insert(entry);
                    eprintln!("bt: warning: skipping {e:#}");
                }
            }
        }
        self.unreadable = unreadable;
        Ok(out)
    }
}
