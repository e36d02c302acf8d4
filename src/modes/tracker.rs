//! `bt tracker`: the HTTP tracker, and the UDP one (BEP 15, [`udp`]) on the same port number. A tide server that only moves bytes: it hands each raw query
//! and the connection's source address to the swarm [`table`], and sends back the bencoded
//! answer (a `failure reason` with HTTP 200 for anything it refuses). It also serves `/peers`
//! (JSON) and a status page at `/`, and drops silent peers on a timer.
//!
//! The runtime calls of this mode (listen, spawn, sleep, block_on) are in this file and in
//! [`http`], which accepts the connections.

mod http;
mod peer_list;
pub mod status;
pub mod table;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use log::{debug, info, log_enabled, Level};

use crate::cli::TrackerArgs;
use crate::config::Config;
use crate::proto::ids::PeerId;
use crate::proto::metainfo::InfoHash;
use crate::proto::tracker::{self, AnnounceRequest, AnnounceResponse, Event, ScrapeRequest};
use status::{Listing, Page};
use table::{parse_access_list, Table, TableLimits};

/// Run `bt tracker` until the process is killed.
pub fn run(args: TrackerArgs) -> Result<()> {
    let (config, base) = Config::load(args.config.as_deref())?;
    let tc = &config.tracker;
    let bind = args.bind.unwrap_or(tc.bind);
    let access = match &tc.access_list {
        Some(file) => Some(load_access_list(&base.join(file))?),
        None => None,
    };
    let table = Table::new(TableLimits::from(tc), access, Instant::now());
    crate::rt::block_on(async {
        let (listener, udp) = bind_both(bind).await?;
        let local = listener
            .local_addr()
            .context("cannot read the listen address")?;
        print_urls(local);
        serve_with_udp(listener, Some(udp), table).await
    })
}

/// A TCP listener on `bind` and a UDP socket on the same address and port number. With port 0,
/// a port free for both is looked for (a few tries: the TCP port's UDP twin may be taken).
async fn bind_both(bind: SocketAddr) -> Result<(crate::rt::TcpListener, crate::rt::UdpSocket)> {
    let tries = if bind.port() == 0 { 20 } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let listener = crate::rt::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let local = listener
            .local_addr()
            .context("cannot read the listen address")?;
        match crate::rt::UdpSocket::bind(local).await {
            Ok(udp) => return Ok((listener, udp)),
            Err(_) if attempt < tries => continue,
            Err(e) => return Err(anyhow!("cannot listen for UDP on {local}: {e}")),
        }
    }
}

fn load_access_list(path: &Path) -> Result<std::collections::HashSet<[u8; 20]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read access list {}", path.display()))?;
    let set = parse_access_list(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    println!(
        "access list {}: {} torrents allowed",
        path.display(),
        set.len()
    );
    Ok(set)
}

/// The state every request handler shares.
#[derive(Clone)]
struct Shared(Arc<Mutex<Table>>);

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere never leaves the table half-updated in a way that matters more than
        // stopping the tracker would.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer an announce: the bencoded body, a failure reason for anything refused.
    fn announce(&self, raw_query: &str, source: Option<IpAddr>) -> Vec<u8> {
        let req = match AnnounceRequest::parse_query(raw_query) {
            Ok(req) => req,
            Err(e) => return refuse(source, &e),
        };
        let Some(source) = source else {
            return refuse(source, &"no source address");
        };
        let result = self.table().announce(&req, source, Instant::now());
        match result {
            Ok(answer) => {
                log_event(&req, source, &answer);
                answer.encode(req.compact, req.no_peer_id)
            }
            Err(e) => refuse(Some(source), &e),
        }
    }

    /// Answer a scrape.
    fn scrape(&self, raw_query: &str) -> Vec<u8> {
        match ScrapeRequest::parse_query(raw_query) {
            Ok(req) => self.table().scrape(&req.info_hashes).encode(),
            Err(e) => tracker::failure(&e.to_string()),
        }
    }

    /// The page of the listing that `raw_query` asks for (`offset`, `limit`).
    fn snapshot(&self, raw_query: &str) -> Listing {
        Listing::page(&self.table(), Instant::now(), Page::from_query(raw_query))
    }
}

fn refuse(source: Option<IpAddr>, why: &dyn std::fmt::Display) -> Vec<u8> {
    debug!("refused an announce from {source:?}: {why}");
    tracker::failure(&why.to_string())
}

/// One line per `started`, `completed` and `stopped`; regular announces only at debug level.
fn log_event(req: &AnnounceRequest, source: IpAddr, answer: &AnnounceResponse) {
    let level = match req.event {
        Event::None => Level::Debug,
        _ => Level::Info,
    };
    if !log_enabled!(level) {
        return; // formatting hex for nobody costs more than the whole table update
    }
    let line = format!(
        "{:<9} {} {} {} left {} -> {} seeders, {} leechers",
        req.event.as_str(),
        InfoHash(req.info_hash),
        SocketAddr::new(source, req.port),
        PeerId(req.peer_id),
        req.left,
        answer.complete,
        answer.incomplete
    );
    match req.event {
        Event::None => debug!("announce  {}", line.trim_start()),
        _ => info!("{line}"),
    }
}

/// Serve HTTP on `listener` until the process ends (`bt demo` runs this beside its peers).
pub async fn serve(listener: crate::rt::TcpListener, table: Table) -> Result<()> {
    serve_with_udp(listener, None, table).await
}

/// Serve HTTP on `listener` and, when given, BEP 15 on `udp`, over one table.
pub async fn serve_with_udp(
    listener: crate::rt::TcpListener,
    udp: Option<crate::rt::UdpSocket>,
    table: Table,
) -> Result<()> {
    let sweep_every = Duration::from_secs(u64::from(table.limits().interval / 2).max(1));
    let shared = Shared(Arc::new(Mutex::new(table)));

    let sweeper = shared.clone();
    crate::rt::spawn(async move {
        loop {
            crate::rt::sleep(sweep_every).await;
            let gone = sweeper.table().expire(Instant::now());
            if gone > 0 {
                debug!("{gone} silent peers dropped");
            }
        }
    })
    .detach();
    if let Some(udp) = udp {
        crate::rt::spawn(udp::serve(udp, shared.clone())).detach();
    }

    // The two paths every client hits, answered without the router (see `http`); the app
    // keeps them too, for the absolute-form targets `direct` does not see.
    let fast = shared.clone();
    let direct: http::Direct = Arc::new(move |path, query, ip| match path {
        "/announce" => Some(fast.announce(query, Some(ip))),
        "/scrape" => Some(fast.scrape(query)),
        _ => None,
    });
    let mut app = tide::with_state(shared);
    app.at("/announce")
        .get(|req: tide::Request<Shared>| async move {
            let body = req.state().announce(raw_query(&req), source_ip(&req));
            Ok(reply(body, "text/plain"))
        });
    app.at("/scrape")
        .get(|req: tide::Request<Shared>| async move {
            Ok(reply(req.state().scrape(raw_query(&req)), "text/plain"))
        });
    app.at("/peers")
        .get(|req: tide::Request<Shared>| async move {
            // Compact: a page of the largest swarm stays small (see `status::MAX_PAGE_PEERS`).
            let page = || serde_json::to_vec(&req.state().snapshot(raw_query(&req)));
            let json = status::in_turn(page).await?;
            Ok(reply(json, "application/json"))
        });
    app.at("/").get(|req: tide::Request<Shared>| async move {
        let html = status::in_turn(|| req.state().snapshot(raw_query(&req)).html()).await;
        Ok(reply(html.into_bytes(), "text/html; charset=utf-8"))
    });
    http::serve(listener, app, direct).await;
    Ok(())
}

/// The query exactly as sent, still percent-encoded (tide's own query parsing would mangle the
/// binary `info_hash`).
fn raw_query(req: &tide::Request<Shared>) -> &str {
    req.url().query().unwrap_or("")
}

/// The connection's source address (never a header: those can be forged).
fn source_ip(req: &tide::Request<Shared>) -> Option<IpAddr> {
    req.peer_addr()?.parse::<SocketAddr>().ok().map(|a| a.ip())
}

fn reply(body: Vec<u8>, mime: &str) -> tide::Response {
    let mut res = tide::Response::new(200);
    res.set_body(body);
    res.insert_header("Content-Type", mime);
    res.insert_header("Cache-Control", "no-store");
    res
}

/// Say where the tracker listens, with every URL a user needs.
fn print_urls(local: SocketAddr) {
    let shown = match local.ip().is_unspecified() {
        true => SocketAddr::new([127, 0, 0, 1].into(), local.port()),
        false => local,
    };
    println!("bt tracker listening on {local}");
    println!("  announce  http://{shown}/announce");
    println!("  announce  udp://{shown}/announce  (BEP 15)");
    println!("  scrape    http://{shown}/scrape");
    println!("  peers     http://{shown}/peers  (JSON; `bt peers` prints it as a table)");
    println!("  status    http://{shown}/");
    if local.ip().is_unspecified() {
        println!("  (and the same on every other address of this machine)");
    }
}
