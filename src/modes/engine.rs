//! What `bt peer` and `bt client` share: bind the session, add the torrents, feed the dialer
//! with direct peers, and wait for Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use async_std::channel::{bounded, Receiver};

use crate::config::Profile;
use crate::proto::metainfo::Metainfo;
use crate::swarm::announce::Announcer;
use crate::swarm::session::Session;
use crate::swarm::torrent::Torrent;
use crate::swarm::EngineConfig;

/// How a mode wants the engine run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Announce URLs that replace the torrents' own (empty: use theirs).
    pub trackers: Vec<String>,
    /// Peers to call directly, as given on the command line.
    pub peers: Vec<String>,
    /// Engine tunables.
    pub engine: EngineConfig,
}

/// A running engine.
pub struct Running {
    /// The session.
    pub session: Arc<Session>,
    /// Its torrents, in the order given.
    pub torrents: Vec<Arc<Torrent>>,
    /// The tracker side of each torrent (same order).
    pub announcers: Vec<Arc<Announcer>>,
}

impl Running {
    /// Close every connection and tell the trackers we leave (all at once, bounded).
    pub async fn shutdown(&self) {
        for t in &self.torrents {
            t.close_all("shutting down");
        }
        let stops: Vec<_> = self
            .announcers
            .iter()
            .map(|a| {
                let a = Arc::clone(a);
                async_std::task::spawn(async move { a.stopped().await })
            })
            .collect();
        for s in stops {
            s.await;
        }
    }
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

/// Bind, add every torrent (checking its data), and start calling the direct peers.
pub async fn start(profile: &Profile, metas: Vec<Metainfo>, opts: &Options) -> Result<Running> {
    let direct = parse_peers(&opts.peers)?;
    let listen = SocketAddr::new(profile.ip, profile.port);
    let (session, listener) = Session::bind(listen, opts.engine.clone())
        .await
        .with_context(|| {
            format!(
                "profile {}: is another bt already using port {}?",
                profile.name, profile.port
            )
        })?;
    async_std::task::spawn(Arc::clone(&session).accept_loop(listener));
    let mut torrents = Vec::new();
    let mut announcers = Vec::new();
    for meta in metas {
        let trackers = if opts.trackers.is_empty() {
            meta.trackers()
        } else {
            opts.trackers.clone()
        };
        if trackers.is_empty() && direct.is_empty() {
            eprintln!(
                "bt: warning: {} names no tracker; give --tracker URL or --peer ADDR",
                meta.info.name
            );
        }
        let t = session.add(meta, &profile.folder).await?;
        let a = Announcer::new(Arc::clone(&t), trackers, session.listen.port());
        async_std::task::spawn(Arc::clone(&a).run());
        announcers.push(a);
        {
            let mut d = t.dialer.lock().unwrap_or_else(|e| e.into_inner());
            for a in &direct {
                d.add(*a, Instant::now());
            }
        }
        torrents.push(t);
    }
    Ok(Running {
        session,
        torrents,
        announcers,
    })
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
