//! What `bt peer`, `bt client` and `bt shell` share: bind the session, add the torrents, feed
//! the dialer with direct peers, and wait for Ctrl-C.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::rt::channel::{bounded, Receiver};
use anyhow::{anyhow, Context, Result};

use crate::config::Profile;
use crate::library;
use crate::proto::ids::InfoHash;
use crate::proto::metainfo::Metainfo;
use crate::swarm::announce::Announcer;
use crate::swarm::dht::DhtSettings;
use crate::swarm::ratelimit::RateLimiter;
use crate::swarm::selection::Selection;
use crate::swarm::session::Session;
use crate::swarm::torrent::Torrent;
use crate::swarm::{EngineConfig, TorrentOptions};
use mainline::async_dht::AsyncDht;

/// How a mode wants the engine run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Announce URLs that replace the torrents' own (empty: use theirs).
    pub trackers: Vec<String>,
    /// Peers to call directly, as given on the command line.
    pub peers: Vec<String>,
    /// Engine tunables.
    pub engine: EngineConfig,
    /// Files chosen on the command line, by torrent (saved in the library, see
    /// [`library::save_selection`]); a torrent not listed keeps the choice saved earlier.
    pub files: HashMap<InfoHash, Selection>,
    /// One download limit for every torrent started with these options.
    pub download_limit: Option<Arc<RateLimiter>>,
    /// Local service discovery (BEP 14) is on.
    pub lsd: bool,
    /// The DHT node to run, if the DHT is on.
    pub dht: Option<DhtSettings>,
}

/// Where the profile and the command line turn peer discovery on: LSD (`lsd = true` or
/// `--lsd`) and the DHT (`[dht] enabled` or `--dht` or `--bootstrap`; `--bootstrap` replaces
/// the section's list). The public routers are used only when the DHT is on and no bootstrap
/// is given anywhere.
pub fn discovery(
    profile: &Profile,
    lsd: bool,
    dht: bool,
    bootstrap: &[String],
) -> (bool, Option<DhtSettings>) {
    let section = &profile.config.dht;
    let on = dht || section.enabled || !bootstrap.is_empty();
    let settings = on.then(|| DhtSettings {
        port: section.port.unwrap_or(profile.port),
        bind: match profile.ip {
            std::net::IpAddr::V4(v4) => v4,
            std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        },
        bootstrap: if bootstrap.is_empty() {
            section.bootstrap.clone()
        } else {
            bootstrap.to_vec()
        },
        first: false,
        server: false,
        nodes_file: Some(profile.folder.join(crate::swarm::dht::NODES_FILE)),
    });
    (lsd || profile.lsd, settings)
}

/// A running engine.
pub struct Running {
    /// The session.
    pub session: Arc<Session>,
    /// Its torrents, in the order given.
    pub torrents: Vec<Arc<Torrent>>,
    /// The tracker side of each torrent (same order).
    pub announcers: Vec<Arc<Announcer>>,
    /// The DHT node, if the DHT is on.
    pub dht: Option<AsyncDht>,
}

impl Running {
    /// Close every connection and tell the trackers we leave (a bounded number at once,
    /// within a bounded time: see [`stop_all`](crate::swarm::announce_queue::stop_all)).
    pub async fn shutdown(&self) {
        for t in &self.torrents {
            t.close_all(crate::swarm::error::CloseReason::Shutdown);
        }
        // A paused or removed torrent told its trackers `stopped` already.
        let leaving: Vec<Arc<Announcer>> = self
            .announcers
            .iter()
            .filter(|a| !a.torrent().is_some_and(|t| t.is_paused()))
            .cloned()
            .collect();
        crate::swarm::announce_queue::stop_all(&leaving).await;
    }
}

/// When a complete torrent has seeded enough: `--seed-ratio` and `--seed-time` (either one
/// met is enough).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SeedGoal {
    /// Bytes sent, as a multiple of the bytes downloaded (the wanted pieces' size).
    pub ratio: Option<f64>,
    /// Time spent seeding since the download completed (or since the start, when it was
    /// complete on disk already).
    pub time: Option<std::time::Duration>,
}

impl SeedGoal {
    /// Whether a goal is given at all.
    pub fn is_set(&self) -> bool {
        self.ratio.is_some() || self.time.is_some()
    }

    /// Whether a torrent of `size` bytes, complete since `since`, that has sent `uploaded`
    /// bytes, has met the goal by `now`. False when no goal is set.
    pub fn met(&self, uploaded: u64, size: u64, since: Instant, now: Instant) -> bool {
        let by_ratio = self
            .ratio
            .is_some_and(|r| uploaded as f64 >= r * size as f64);
        let by_time = self
            .time
            .is_some_and(|t| now.saturating_duration_since(since) >= t);
        by_ratio || by_time
    }
}

/// The files chosen for each torrent of `metas` by `--files` and `--only` (none given: an
/// empty map); errors name the torrent.
pub fn choose_files(
    metas: &[Metainfo],
    numbers: Option<&str>,
    patterns: &[String],
) -> Result<HashMap<InfoHash, Selection>> {
    let mut out = HashMap::new();
    for m in metas {
        match Selection::from_args(m, numbers, patterns) {
            Ok(Some(sel)) => {
                out.insert(m.info_hash, sel);
            }
            Ok(None) => {}
            Err(e) => anyhow::bail!("{}: {e}", m.info.name),
        }
    }
    Ok(out)
}

/// The download limit a mode runs with: its option, else the profile's `download_limit`
/// (KiB/s); one limiter for every torrent started with it.
pub fn download_limit(kib: Option<u64>, profile: &Profile) -> Option<Arc<RateLimiter>> {
    kib.or(profile.settings.download_limit)
        .map(|k| Arc::new(RateLimiter::new(k * 1024)))
}

/// Resolve `ADDR:PORT` strings (host names allowed).
pub fn parse_peers(list: &[String]) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for p in list {
        let addrs = p
            .to_socket_addrs()
            .with_context(|| format!("peer address `{p}` should look like 127.0.0.1:6881"))?;
        out.push(
            addrs
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("peer address `{p}` resolves to nothing"))?,
        );
    }
    Ok(out)
}

impl Options {
    /// Whether LSD or the DHT looks for peers besides trackers.
    pub fn discovers(&self) -> bool {
        self.lsd || self.dht.is_some()
    }

    /// The announce URLs for `meta`: the override if any, else the torrent's own.
    pub fn trackers_for(&self, meta: &Metainfo) -> Vec<String> {
        if self.trackers.is_empty() {
            meta.trackers()
        } else {
            self.trackers.clone()
        }
    }
}

impl Options {
    /// What the engine is told about `meta`: the files chosen on the command line (saved
    /// for the next run) or else those saved in `folder` earlier, and the download limit.
    pub fn for_torrent(&self, folder: &Path, meta: &Metainfo) -> Result<TorrentOptions> {
        let files = match self.files.get(&meta.info_hash) {
            Some(sel) => {
                library::save_selection(folder, meta, sel)?;
                Some(sel.clone())
            }
            None => library::load_selection(folder, meta)?,
        };
        Ok(TorrentOptions {
            files: files.filter(|f| !f.is_all()),
            download_limit: self.download_limit.clone(),
        })
    }
}

/// Bind the profile's port and start accepting peers; torrents are added with [`add`].
pub async fn bind(profile: &Profile, config: EngineConfig) -> Result<Arc<Session>> {
    let listen = SocketAddr::new(profile.ip, profile.port);
    let (session, listener) = Session::bind(listen, config).await.with_context(|| {
        format!(
            "profile {}: is another bt already using port {}?",
            profile.name, profile.port
        )
    })?;
    crate::rt::spawn(Arc::clone(&session).accept_loop(listener)).detach();
    Ok(session)
}

/// Add one torrent to a running session (checking its data under `folder`), start announcing
/// it to `trackers`, and hand the `direct` peers to its dialer; `opts` chooses its files and
/// download limit (see [`Options::for_torrent`]).
pub async fn add(
    session: &Arc<Session>,
    folder: &Path,
    meta: Metainfo,
    trackers: Vec<String>,
    direct: &[SocketAddr],
    opts: TorrentOptions,
) -> Result<(Arc<Torrent>, Arc<Announcer>)> {
    let t = session.add(meta, folder, opts).await?;
    let a = Announcer::new(Arc::clone(&t), trackers, session.listen.port());
    t.shared.announces.add(&a);
    {
        let mut d = t.dialer.lock().unwrap_or_else(|e| e.into_inner());
        for addr in direct {
            d.add(*addr, crate::swarm::dialer::Source::Manual, Instant::now());
        }
    }
    t.wake_up();
    Ok((t, a))
}

/// Say so when a torrent has neither a tracker nor a direct peer to find others through, and
/// neither LSD nor the DHT is on (`discovering`).
pub fn warn_if_alone(
    meta: &Metainfo,
    trackers: &[String],
    direct: &[SocketAddr],
    discovering: bool,
) {
    if trackers.is_empty() && direct.is_empty() && !discovering {
        eprintln!(
            "bt: warning: {} names no tracker; give --tracker URL or --peer ADDR, or turn on \
             --lsd or --dht",
            meta.info.name
        );
    }
}

/// Torrents added (checked and prepared) at once at start.
const ADD_AT_ONCE: usize = 16;

/// Bind, add every torrent (checking its data), and start calling the direct peers.
pub async fn start(profile: &Profile, metas: Vec<Metainfo>, opts: &Options) -> Result<Running> {
    let direct = parse_peers(&opts.peers)?;
    let session = bind(profile, opts.engine.clone()).await?;
    // Several torrents are checked and prepared at once (each is two trips to the blocking
    // pool): one at a time, 2,000 torrents took 6-7 s to start.
    use futures::stream::{self, StreamExt, TryStreamExt};
    let (session_ref, direct_ref) = (&session, &direct);
    let added: Vec<(Arc<Torrent>, Arc<Announcer>)> = stream::iter(metas)
        .map(|meta| async move {
            let trackers = opts.trackers_for(&meta);
            warn_if_alone(&meta, &trackers, direct_ref, opts.discovers());
            let topts = opts.for_torrent(&profile.folder, &meta)?;
            add(
                session_ref,
                &profile.folder,
                meta,
                trackers,
                direct_ref,
                topts,
            )
            .await
        })
        .buffered(ADD_AT_ONCE)
        .try_collect()
        .await?;
    let (torrents, announcers) = added.into_iter().unzip();
    let dht = start_discovery(&session, profile, opts)?;
    Ok(Running {
        session,
        torrents,
        announcers,
        dht,
    })
}

/// Start LSD and the DHT as `opts` asks; says on stdout what runs.
pub fn start_discovery(
    session: &Arc<Session>,
    profile: &Profile,
    opts: &Options,
) -> Result<Option<AsyncDht>> {
    if opts.lsd {
        crate::swarm::lsd::start(Arc::clone(session), profile.ip)?;
        println!(
            "lsd: announcing to {} every {} s",
            crate::proto::lsd::GROUP_V4,
            crate::swarm::lsd::ANNOUNCE_EVERY.as_secs()
        );
    }
    let Some(settings) = &opts.dht else {
        return Ok(None);
    };
    let dht = crate::swarm::dht::start(Arc::clone(session), settings.clone())
        .with_context(|| format!("cannot start the DHT node on UDP port {}", settings.port))?;
    let via = if settings.bootstrap.is_empty() {
        "the public routers".to_string()
    } else {
        settings.bootstrap.join(", ")
    };
    println!(
        "dht: node on UDP port {}, joining through {via}",
        settings.port
    );
    Ok(Some(dht))
}

/// A channel that receives once on Ctrl-C or SIGTERM.
pub fn stop_signal() -> Result<Receiver<()>> {
    let (tx, rx) = bounded(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_seed_goal_is_met_by_either_part() {
        let t = Instant::now();
        let later = t + Duration::from_secs(60);
        let none = SeedGoal::default();
        assert!(!none.is_set() && !none.met(1 << 30, 1, t, later));
        let ratio = SeedGoal {
            ratio: Some(1.5),
            time: None,
        };
        assert!(!ratio.met(149, 100, t, later));
        assert!(ratio.met(150, 100, t, t));
        let both = SeedGoal {
            ratio: Some(2.0),
            time: Some(Duration::from_secs(30)),
        };
        assert!(!both.met(0, 100, t, t + Duration::from_secs(29)));
        assert!(both.met(0, 100, t, t + Duration::from_secs(30)));
        assert!(both.met(200, 100, t, t));
    }
}
