//! Starting from a magnet link, for `bt client` and `bt shell`: fetch the metadata through the
//! session (announcing to the link's trackers, calling its `x.pe` peers), store it in the
//! profile's library as `NAME.torrent`, then add the torrent like any other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::engine;
use crate::library::{Imported, Library};
use crate::proto::magnet::{Magnet, MagnetPeer};
use crate::proto::metainfo::Metainfo;
use crate::swarm::announce::Announcer;
use crate::swarm::dialer::Source;
use crate::swarm::magnet::{FetchStatus, MetadataFetch};
use crate::swarm::session::Session;
use crate::swarm::torrent::Torrent;
use crate::swarm::TorrentOptions;
use crate::ui;

/// Whether a command-line argument is a magnet link rather than a file.
pub fn is_magnet(arg: &str) -> bool {
    arg.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
}

/// A name to show for a magnet link before its metadata is in: its `dn`, else its info-hash.
pub fn label(m: &Magnet) -> String {
    match &m.name {
        Some(n) => ui::escape(n).into_owned(),
        None => m.info_hash.to_string(),
    }
}

/// One line on what the metadata phase waits for.
pub fn describe(s: &FetchStatus) -> String {
    let peers = ui::plural(s.serving, "peer", "peers");
    if s.pieces > 0 {
        format!(
            "fetching metadata from {peers} ({}/{} pieces; {} connected, {} known)",
            s.have_pieces, s.pieces, s.connected, s.known
        )
    } else {
        format!(
            "fetching metadata from {peers} (waiting for a peer that has it; {} connected, {} known)",
            s.connected, s.known
        )
    }
}

/// The link's `x.pe` peers as addresses (host names resolved; ones that do not resolve are
/// skipped with a warning).
fn magnet_peers(m: &Magnet) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for p in &m.peers {
        match p {
            MagnetPeer::Addr(a) => out.push(*a),
            MagnetPeer::Host { .. } => match engine::parse_peers(&[p.to_string()]) {
                Ok(a) => out.extend(a),
                Err(e) => log::warn!("magnet peer {}: {e:#}", ui::escape(&p.to_string())),
            },
        }
    }
    out
}

/// The trackers to use for `m`: the override if any, else the link's own.
pub fn trackers_for(m: &Magnet, overrides: &[String]) -> Vec<String> {
    if overrides.is_empty() {
        m.trackers.clone()
    } else {
        overrides.to_vec()
    }
}

/// Fetch the metadata of `m` through `session`: announce to `trackers`, call the link's peers
/// and the `direct` ones, and whatever else feeds the session's fetch (see
/// [`Session::fetching`]). `report` is called about once a second with the state. Gives up
/// when nothing moved for `stall`. Returns the torrent (with `trackers`) and the fetch, whose
/// addresses the torrent inherits.
pub async fn fetch(
    session: &Arc<Session>,
    m: &Magnet,
    trackers: &[String],
    direct: &[SocketAddr],
    stall: Duration,
    mut report: impl FnMut(&FetchStatus),
) -> Result<(Metainfo, Arc<MetadataFetch>)> {
    let f = session.begin_fetch(m.info_hash);
    let announcer = (!trackers.is_empty()).then(|| {
        let a = Announcer::for_target(
            Box::new(Arc::clone(&f)),
            trackers.to_vec(),
            session.listen.port(),
        );
        crate::rt::spawn(Arc::clone(&a).run()).detach();
        a
    });
    f.add_peers(&magnet_peers(m), Source::Manual);
    f.add_peers(direct, Source::Manual);
    let mut last = (Instant::now(), FetchStatus::default());
    let result = loop {
        if let Some(info) = f.metadata() {
            break Ok(info);
        }
        let s = f.status();
        if s != last.1 {
            report(&s);
            last = (Instant::now(), s);
        } else if last.0.elapsed() >= stall {
            let tracker = announcer
                .as_ref()
                .map_or("none".to_string(), |a| ui::escape(&a.status()).into_owned());
            break Err(anyhow!(
                "{}: no metadata after {} s ({}; tracker: {tracker}); is a peer with the torrent running?",
                label(m),
                stall.as_secs(),
                describe(&s)
            ));
        }
        // Runs the calls too (`MetadataFetch::run` does the same).
        crate::rt::timeout(Duration::from_secs(1), f.run())
            .await
            .ok();
    };
    session.end_fetch(&m.info_hash);
    if let Some(a) = announcer {
        a.stopped().await;
    }
    let info = result?;
    let meta = Metainfo::from_info(&info, &m.trackers)
        .with_context(|| format!("the metadata of {} is not a valid torrent", label(m)))?;
    Ok((meta, f))
}

/// Store a fetched torrent in the library (as `NAME.torrent`), saying where.
pub fn save(lib: &mut Library, meta: Metainfo) -> Result<Metainfo> {
    let (meta, what) = lib.import_meta(meta)?;
    let name = ui::escape(&meta.info.name);
    match what {
        Imported::Added(p) => log::info!("saved {name} as {}", p.display()),
        Imported::AlreadyThere(p) => {
            log::info!("{name} is in the library already: {}", p.display())
        }
    }
    Ok(meta)
}

/// Add a fetched torrent to the session; its dialer inherits every address the fetch knew,
/// with where each came from.
pub async fn add(
    session: &Arc<Session>,
    folder: &Path,
    meta: Metainfo,
    trackers: Vec<String>,
    fetch: &MetadataFetch,
    opts: TorrentOptions,
) -> Result<(Arc<Torrent>, Arc<Announcer>)> {
    let (t, a) = engine::add(session, folder, meta, trackers, &[], opts).await?;
    {
        let now = Instant::now();
        let mut d = t.dialer.lock().unwrap_or_else(|e| e.into_inner());
        for (addr, source) in fetch.addresses() {
            d.add(addr, source, now);
        }
    }
    crate::swarm::session::dial_due(&t);
    t.wake_up();
    Ok((t, a))
}
