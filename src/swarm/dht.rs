//! The Mainline DHT (BEP 5) for a session, through the `mainline` crate: look up peers
//! (`get_peers`) for each torrent still downloading, announce (`announce_peer`) each torrent
//! we have or fetch, and keep the routing table in the profile folder across restarts.
//!
//! The crate runs its node on a thread of its own and answers over flume channels, whose
//! async side needs no particular runtime: its futures and streams are awaited on ours
//! directly, with no blocking call and no thread per query.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mainline::async_dht::AsyncDht;
use mainline::{Dht, Id};

use super::dialer::Source;
use super::magnet::MetadataFetch;
use super::session::{dial_due, Session};
use super::torrent::Torrent;
use crate::proto::ids::InfoHash;

/// Announces are repeated this often. The crate's own nodes keep announced peers until their
/// store is full, but other implementations drop them after 30 minutes (libtorrent, BEP 5's
/// reference client), and the crate refreshes its routing table every 15.
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);
/// A torrent still downloading looks for peers this often.
const LOOKUP_EVERY: Duration = Duration::from_secs(30);
/// A lookup that found nobody is tried again this soon (the node may still be bootstrapping).
const RETRY_EMPTY: Duration = Duration::from_secs(5);
/// How often the session is looked at for torrents added while running.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// How often the routing table is saved.
const SAVE_EVERY: Duration = Duration::from_secs(60);
/// Most peers taken from one lookup (the dialer bounds what it remembers anyway).
pub const MAX_PER_LOOKUP: usize = 500;
/// Most nodes read back from the saved routing table.
const MAX_SAVED_NODES: usize = 500;
/// The saved routing table's file name in the profile folder.
pub const NODES_FILE: &str = ".bt-dht-nodes";

/// How to run the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtSettings {
    /// UDP port of the node (0: any free one).
    pub port: u16,
    /// Address to bind (unspecified: every interface).
    pub bind: Ipv4Addr,
    /// Nodes to join the network through, `HOST:PORT`. Empty: the public routers, unless
    /// `first` is set.
    pub bootstrap: Vec<String>,
    /// With no bootstrap, start a new network instead of joining the public one (`bt dht`).
    pub first: bool,
    /// Answer queries and store announces from the start (`bt dht`), rather than only once
    /// the crate finds the node reachable from outside.
    pub server: bool,
    /// Where the routing table is kept across restarts (none: not kept).
    pub nodes_file: Option<PathBuf>,
}

/// Start a node with `settings` (plus the nodes saved in its file, if any).
pub fn build(settings: &DhtSettings) -> std::io::Result<AsyncDht> {
    let mut b = Dht::builder();
    b.port(settings.port);
    if !settings.bind.is_unspecified() {
        b.bind_address(settings.bind);
    }
    if settings.server {
        b.server_mode();
    }
    if !settings.bootstrap.is_empty() {
        b.bootstrap(&settings.bootstrap);
    } else if settings.first {
        b.no_bootstrap();
    }
    // Saved nodes join whichever bootstrap applies (with `bootstrap` given they come on top
    // of it; without, on top of the public routers).
    let saved = settings
        .nodes_file
        .as_ref()
        .map(|f| load_nodes(&std::fs::read_to_string(f).unwrap_or_default()))
        .unwrap_or_default();
    if !saved.is_empty() {
        b.extra_bootstrap(&saved);
    }
    Ok(b.build()?.as_async())
}

/// The node addresses of a saved routing table: one `IP:PORT` a line, at most
/// [`MAX_SAVED_NODES`]; anything else is skipped.
pub fn load_nodes(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().parse::<SocketAddr>().ok())
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified())
        .take(MAX_SAVED_NODES)
        .collect()
}

/// The peers of a lookup worth calling: no port 0, no unspecified, broadcast or multicast
/// address, none of `ours`, each once, at most `limit`.
pub fn usable_peers(
    found: impl IntoIterator<Item = SocketAddrV4>,
    ours: &[SocketAddr],
    limit: usize,
) -> Vec<SocketAddr> {
    let mut seen = HashSet::new();
    found
        .into_iter()
        .filter(|a| {
            let ip = a.ip();
            a.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
        })
        .map(SocketAddr::V4)
        .filter(|a| !ours.contains(a))
        .filter(|a| seen.insert(*a))
        .take(limit)
        .collect()
}

/// Hand `found` to `torrent`'s dialer as DHT peers; returns how many were new.
pub fn feed(torrent: &Torrent, found: &[SocketAddr], now: Instant) -> usize {
    let mut d = torrent.dialer.lock().unwrap_or_else(|e| e.into_inner());
    found
        .iter()
        .filter(|a| d.add(**a, Source::Dht, now))
        .inspect(|a| log::info!("dht: peer {a} for {} (source dht)", torrent.meta.info.name))
        .count()
}

/// Start the DHT for `session`: its node, a loop per torrent, and the saving of the routing
/// table. Runs until the process ends.
pub fn start(session: Arc<Session>, settings: DhtSettings) -> std::io::Result<AsyncDht> {
    let dht = build(&settings)?;
    crate::rt::spawn(watch(Arc::clone(&session), dht.clone())).detach();
    if let Some(file) = settings.nodes_file {
        crate::rt::spawn(keep_table(dht.clone(), file)).detach();
    }
    Ok(dht)
}

/// The DHT node's address and routing-table size, for the modes to print.
pub async fn describe(dht: &AsyncDht) -> (SocketAddrV4, usize) {
    let info = dht.info().await;
    (info.local_addr(), dht.to_bootstrap().await.len())
}

/// Start a loop for each torrent of the session, including those added later, and for each
/// magnet link fetching its metadata.
async fn watch(session: Arc<Session>, dht: AsyncDht) {
    let mut started = HashSet::new();
    let mut fetching = HashSet::new();
    loop {
        for t in session.torrents() {
            if started.insert(t.info_hash()) {
                let ours = our_addresses(&session, &dht).await;
                crate::rt::spawn(per_torrent(t, dht.clone(), ours)).detach();
            }
        }
        let fetches = session.fetching();
        // A fetch given up and started again gets a loop again.
        fetching.retain(|h| fetches.iter().any(|f| f.info_hash() == *h));
        for f in fetches {
            if fetching.insert(f.info_hash()) {
                let ours = our_addresses(&session, &dht).await;
                let s = Arc::clone(&session);
                crate::rt::spawn(per_fetch(s, f, dht.clone(), ours)).detach();
            }
        }
        crate::rt::sleep(LOOK_EVERY).await;
    }
}

/// Look up peers for a magnet link's metadata phase until it ends (the torrent it becomes
/// then gets a [`per_torrent`] loop of its own). A magnet link with no tracker and no `x.pe`
/// finds its first peers here.
async fn per_fetch(
    session: Arc<Session>,
    f: Arc<MetadataFetch>,
    dht: AsyncDht,
    ours: Vec<SocketAddr>,
) {
    let hash = f.info_hash();
    let id = id_of(&hash);
    let under_way = || session.fetch_of(&hash).is_some_and(|g| Arc::ptr_eq(&g, &f));
    while under_way() {
        let mut found = Vec::new();
        let mut stream = dht.get_peers(id);
        while let Some(batch) = stream.next().await {
            let usable = usable_peers(batch, &ours, MAX_PER_LOOKUP - found.len());
            f.add_peers(&usable, Source::Dht);
            found.extend(usable);
            if found.len() >= MAX_PER_LOOKUP || !under_way() {
                break;
            }
        }
        log::info!(
            "dht: {} peers found for the magnet link {hash}",
            found.len()
        );
        let pause = if found.is_empty() {
            RETRY_EMPTY
        } else {
            LOOKUP_EVERY
        };
        crate::rt::sleep(pause).await;
    }
}

/// Addresses that are this process: the listening address, and the public address the
/// network told the node, with our port.
async fn our_addresses(session: &Session, dht: &AsyncDht) -> Vec<SocketAddr> {
    let port = session.listen.port();
    let mut ours = vec![session.listen];
    if let Some(public) = dht.info().await.public_address() {
        ours.push(SocketAddr::new(IpAddr::V4(*public.ip()), port));
    }
    ours.push(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    ours
}

/// Look up peers while the torrent downloads; announce it every [`REANNOUNCE_EVERY`].
async fn per_torrent(t: Arc<Torrent>, dht: AsyncDht, ours: Vec<SocketAddr>) {
    let id = id_of(&t.info_hash());
    let name = t.meta.info.name.clone();
    let port = ours[0].port();
    let mut next_announce = Instant::now();
    loop {
        let mut pause = LOOKUP_EVERY;
        if !t.is_complete() {
            let mut found = Vec::new();
            let mut stream = dht.get_peers(id);
            while let Some(batch) = stream.next().await {
                let usable = usable_peers(batch, &ours, MAX_PER_LOOKUP - found.len());
                let new = feed(&t, &usable, Instant::now());
                found.extend(usable);
                if new > 0 {
                    dial_due(&t);
                    // Those not called yet are called when the ticker wakes the torrent.
                    t.wake_up();
                }
                if found.len() >= MAX_PER_LOOKUP {
                    break;
                }
            }
            if found.is_empty() {
                pause = RETRY_EMPTY;
            }
            log::info!("dht: {} peers found for {name}", found.len());
        }
        if Instant::now() >= next_announce {
            match dht.announce_peer(id, Some(port)).await {
                Ok(_) => {
                    log::info!("dht: announced {name} on port {port}");
                    next_announce = Instant::now() + REANNOUNCE_EVERY;
                }
                Err(e) => {
                    log::info!("dht: cannot announce {name} yet: {e}");
                    next_announce = Instant::now() + RETRY_EMPTY;
                }
            }
        }
        if t.is_complete() {
            pause = next_announce.saturating_duration_since(Instant::now());
        }
        crate::rt::sleep(pause.max(Duration::from_secs(1))).await;
    }
}

/// The crate's id for an info-hash.
fn id_of(h: &InfoHash) -> Id {
    Id::from_bytes(h.0).expect("an info-hash is 20 bytes, as an id")
}

/// Save the routing table to `file` now and then, when it changed.
async fn keep_table(dht: AsyncDht, file: PathBuf) {
    let mut last = String::new();
    loop {
        crate::rt::sleep(Duration::from_secs(10)).await;
        let nodes = dht.to_bootstrap().await;
        let text: String = nodes.iter().map(|n| format!("{n}\n")).collect();
        if !nodes.is_empty() && text != last {
            let tmp = file.with_extension("tmp");
            let saved = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &file));
            match saved {
                Ok(()) => log::debug!("dht: saved {} nodes to {}", nodes.len(), file.display()),
                Err(e) => log::warn!(
                    "dht: cannot save the routing table to {}: {e}",
                    file.display()
                ),
            }
            last = text;
        }
        crate::rt::sleep(SAVE_EVERY - Duration::from_secs(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bogus_and_own_peers_are_dropped_and_the_rest_bounded() {
        let me: SocketAddr = "10.0.0.5:6881".parse().unwrap();
        let found: Vec<SocketAddrV4> = [
            "10.0.0.5:6881", // ourselves
            "10.0.0.6:0",    // no port
            "0.0.0.0:6881",  // unspecified
            "255.255.255.255:1",
            "239.192.152.143:6771",
            "10.0.0.7:7000",
            "10.0.0.7:7000", // twice
            "10.0.0.8:7000",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            usable_peers(found, &[me], 100),
            vec![
                "10.0.0.7:7000".parse::<SocketAddr>().unwrap(),
                "10.0.0.8:7000".parse().unwrap()
            ]
        );
        let many = (0..100_000u32).map(|i| SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 1));
        assert_eq!(
            usable_peers(many, &[me], MAX_PER_LOOKUP).len(),
            MAX_PER_LOOKUP
        );
    }

    #[test]
    fn thousands_of_dht_peers_fill_the_dialer_only_to_its_bound() {
        use crate::swarm::dialer::{Dialer, MAX_KNOWN};
        let me: SocketAddr = "10.0.0.5:6881".parse().unwrap();
        let now = Instant::now();
        let mut d = Dialer::default();
        // 20 lookups of 10,000 answers each, ourselves among them every time.
        for round in 0..20u32 {
            let answers = (0..10_000u32)
                .map(|i| SocketAddrV4::new(Ipv4Addr::from(0x0b00_0000 + round * 10_000 + i), 7))
                .chain(std::iter::once(SocketAddrV4::new(
                    Ipv4Addr::new(10, 0, 0, 5),
                    6881,
                )));
            for a in usable_peers(answers, &[me], MAX_PER_LOOKUP) {
                d.add(a, Source::Dht, now);
            }
        }
        assert_eq!(d.known(), MAX_KNOWN);
        assert_eq!(d.source(me), Source::Incoming, "never ourselves");
    }

    #[test]
    fn saved_nodes_are_bounded_and_junk_skipped() {
        let mut text = String::from("junk\n0.0.0.0:1\n10.0.0.1:0\n\u{0}\u{ff}\n");
        for i in 0..2000 {
            text.push_str(&format!("10.1.{}.{}:6881\n", i / 250, i % 250 + 1));
        }
        let nodes = load_nodes(&text);
        assert_eq!(nodes.len(), MAX_SAVED_NODES);
        assert_eq!(nodes[0], "10.1.0.1:6881".parse().unwrap());
    }
}
