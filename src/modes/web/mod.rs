//! `--web ADDR:PORT`: a page and a JSON API for a running peer or client, served with tide.
//!
//! - `GET /` the page ([`PAGE`]: one static file, no build step), which polls the API each
//!   second and shows every torrent, and for the one picked its piece map and peers;
//! - `GET /api/torrents?offset=N&limit=N` a page of the torrents ([`api::List`]);
//! - `GET /api/torrents/HASH` one torrent with its files, peers and piece map ([`api::Detail`]);
//! - `POST /api/torrents` add a torrent: the body is the `.torrent` file;
//! - `POST /api/torrents/HASH/pause`, `.../resume`, `DELETE /api/torrents/HASH`.
//!
//! Errors are `{"error": "..."}` with a 4xx status. The server listens on loopback unless told
//! otherwise; any other address needs a token (`web_token`), asked of every request as
//! `Authorization: Bearer TOKEN` or `?token=TOKEN`. Request bodies are bounded.

pub mod api;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tide::{Request, Response, StatusCode};

use super::control::{Control, ControlError};
use super::engine::{Options, Running};
use crate::config::Profile;
use crate::proto::ids::InfoHash;
use api::Rates;

/// The page, embedded.
pub const PAGE: &str = include_str!("page.html");
/// Its script, served apart so that the page may forbid inline scripts.
pub const SCRIPT: &str = include_str!("page.js");

/// Largest request body: a `.torrent` file as large as the library accepts.
pub const MAX_BODY: u64 = crate::library::MAX_TORRENT_FILE;

/// How the web server is set up.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The token every request must carry (required off loopback).
    pub token: Option<String>,
}

impl WebOptions {
    /// Check the options: a non-loopback address needs a token.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Result<WebOptions> {
        let token = token.filter(|t| !t.is_empty());
        if !addr.ip().is_loopback() && token.is_none() {
            bail!(
                "--web {addr} is not a loopback address: anyone who reaches it could add and \
                 remove torrents; set web_token in the profile (or --web-token) to require a token"
            );
        }
        Ok(WebOptions { addr, token })
    }
}

/// The web options of a profile, `--web` winning over its `web` key: `None` when neither
/// asks for the page. Fails on a non-loopback address without a token, before anything starts.
pub fn for_profile(flag: Option<SocketAddr>, profile: &Profile) -> Result<Option<WebOptions>> {
    flag.or(profile.web)
        .map(|addr| WebOptions::new(addr, profile.web_token.clone()))
        .transpose()
}

/// Serve the page and API for `running` when `web` says so, printing the address (on stderr
/// when `quiet_stdout`: `--json` keeps stdout for JSON). Returns the control, for shutdown.
pub async fn serve_running(
    web: Option<&WebOptions>,
    running: &Running,
    profile: &Profile,
    opts: &Options,
    quiet_stdout: bool,
) -> Result<Option<Arc<Control>>> {
    let Some(web) = web else {
        return Ok(None);
    };
    let control = Control::new(running, profile.folder.clone(), opts.clone());
    let at = start(web, Arc::clone(&control)).await?;
    let line = format!("web page and API on http://{at}/");
    if quiet_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(Some(control))
}

/// What the handlers share.
#[derive(Clone)]
struct State {
    control: Arc<Control>,
    token: Option<Arc<str>>,
    rates: Arc<Mutex<Rates<InfoHash>>>,
    peer_rates: Arc<Mutex<Rates<(InfoHash, SocketAddr)>>>,
}

/// Bind `opts.addr` and serve the page and API for `control` in the background. Returns the
/// address bound (port 0 picks a free one).
pub async fn start(opts: &WebOptions, control: Arc<Control>) -> Result<SocketAddr> {
    let listener = crate::rt::TcpListener::bind(opts.addr)
        .await
        .with_context(|| format!("cannot listen for the web page on {}", opts.addr))?;
    let local = listener.local_addr()?;
    let state = State {
        control,
        token: opts.token.as_deref().map(Arc::from),
        rates: Arc::default(),
        peer_rates: Arc::default(),
    };
    crate::rt::spawn(sample_rates(state.clone())).detach();
    let app = app(state);
    crate::rt::spawn(async move {
        if let Err(e) = app.listen(listener).await {
            log::warn!("web server stopped: {e}");
        }
    })
    .detach();
    Ok(local)
}

/// Each second, the byte counters of every torrent, for the rates.
async fn sample_rates(state: State) {
    loop {
        let now = Instant::now();
        {
            let torrents = state.control.torrents();
            let mut rates = lock(&state.rates);
            let mut peer_rates = lock(&state.peer_rates);
            for t in &torrents {
                let (down, up) = t.transferred();
                let ih = t.info_hash();
                // The peers of torrents that move only: a thousand idle ones cost no snapshot.
                if rates.update(ih, down, up, now) != (0, 0) {
                    for p in t.snapshot().peers {
                        peer_rates.update((ih, p.addr), p.downloaded, p.uploaded, now);
                    }
                }
            }
            rates.prune(now);
            peer_rates.prune(now);
        }
        crate::rt::sleep(Duration::from_secs(1)).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn app(state: State) -> tide::Server<State> {
    let mut app = tide::with_state(state);
    app.with(guard);
    app.at("/").get(|_req: Request<State>| async move {
        let mut res = Response::new(StatusCode::Ok);
        res.set_body(PAGE);
        res.set_content_type("text/html; charset=utf-8");
        Ok(res)
    });
    app.at("/page.js").get(|_req: Request<State>| async move {
        let mut res = Response::new(StatusCode::Ok);
        res.set_body(SCRIPT);
        res.set_content_type("text/javascript; charset=utf-8");
        Ok(res)
    });
    app.at("/api/torrents").get(list).post(add);
    app.at("/api/torrents/:hash").get(one).delete(remove);
    app.at("/api/torrents/:hash/pause")
        .post(|req: Request<State>| act(req, Act::Pause));
    app.at("/api/torrents/:hash/resume")
        .post(|req: Request<State>| act(req, Act::Resume));
    app.at("/api/*").all(|_req: Request<State>| async move {
        Ok(error(
            StatusCode::NotFound,
            "no such API path; see the README",
        ))
    });
    app
}

/// Every request: the token when one is set; no cross-site writes; security headers.
fn guard<'a>(
    req: Request<State>,
    next: tide::Next<'a, State>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        if let Some(token) = req.state().token.clone() {
            if !carries_token(&req, &token) {
                return Ok(error(
                    StatusCode::Unauthorized,
                    "this server needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN",
                ));
            }
        }
        // A page of another site may send a form to 127.0.0.1: writes from another origin
        // are refused.
        let method = req.method();
        if method != tide::http::Method::Get && method != tide::http::Method::Head {
            let origin = req.header("Origin").map(|v| v.as_str().to_string());
            let host = req.header("Host").map(|v| v.as_str().to_string());
            if let (Some(origin), Some(host)) = (origin, host) {
                if origin != format!("http://{host}") {
                    return Ok(error(StatusCode::Forbidden, "cross-origin request refused"));
                }
            }
        }
        let mut res = next.run(req).await;
        res.insert_header("Cache-Control", "no-store");
        res.insert_header("X-Content-Type-Options", "nosniff");
        res.insert_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'",
        );
        Ok(res)
    })
}

fn carries_token(req: &Request<State>, token: &str) -> bool {
    let bearer = req
        .header("Authorization")
        .and_then(|v| v.as_str().strip_prefix("Bearer ").map(str::to_string));
    let query = req
        .url()
        .query_pairs()
        .find_map(|(k, v)| (k == "token").then(|| v.into_owned()));
    [bearer, query]
        .into_iter()
        .flatten()
        .any(|t| same(t.as_bytes(), token.as_bytes()))
}

/// Compare without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON answer.
fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let mut res = Response::new(status);
    match serde_json::to_vec(body) {
        Ok(bytes) => res.set_body(bytes),
        Err(e) => return error(StatusCode::InternalServerError, &e.to_string()),
    }
    res.set_content_type("application/json");
    res
}

/// `{"error": why}` with `status`.
fn error(status: StatusCode, why: &str) -> Response {
    #[derive(Serialize)]
    struct Error<'a> {
        error: &'a str,
    }
    let mut res = Response::new(status);
    res.set_body(serde_json::to_vec(&Error { error: why }).unwrap_or_default());
    res.set_content_type("application/json");
    res
}

fn control_error(e: &ControlError) -> Response {
    let status = match e {
        ControlError::NotFound(_) => StatusCode::NotFound,
        ControlError::Refused(_) => StatusCode::BadRequest,
        ControlError::Exists(_) => StatusCode::Conflict,
        ControlError::Failed(_) => StatusCode::UnprocessableEntity,
    };
    error(status, &crate::ui::escape(&e.to_string()))
}

/// A number from the query, or the default; `Err` says what is wrong with it.
fn query_number(req: &Request<State>, key: &str, default: usize) -> Result<usize, String> {
    match req.url().query_pairs().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => v.parse().map_err(|_| {
            format!(
                "{key} must be a whole number, got `{}`",
                crate::ui::escape(&v)
            )
        }),
    }
}

async fn list(req: Request<State>) -> tide::Result {
    let numbers = query_number(&req, "offset", 0)
        .and_then(|o| Ok((o, query_number(&req, "limit", api::DEFAULT_PAGE)?)));
    let (offset, limit) = match numbers {
        Ok((o, l)) => (o, l.clamp(1, api::MAX_PAGE)),
        Err(why) => return Ok(error(StatusCode::BadRequest, &why)),
    };
    let state = req.state();
    let torrents = state.control.torrents();
    let rates = lock(&state.rates);
    let (mut down, mut up) = (0, 0);
    for t in &torrents {
        let (d, u) = rates.get(&t.info_hash());
        down += d;
        up += u;
    }
    let page: Vec<api::Summary> = torrents
        .iter()
        .skip(offset)
        .take(limit)
        .map(|t| api::summary(t, &t.snapshot(), rates.get(&t.info_hash())))
        .collect();
    let end = offset.saturating_add(page.len());
    Ok(json(
        StatusCode::Ok,
        &api::List {
            count: torrents.len(),
            offset,
            next: (end < torrents.len()).then_some(end),
            down_rate: down,
            up_rate: up,
            torrents: page,
        },
    ))
}

async fn one(req: Request<State>) -> tide::Result {
    let state = req.state();
    let t = match state.control.find(req.param("hash").unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return Ok(control_error(&e)),
    };
    let rate = lock(&state.rates).get(&t.info_hash());
    let snap = t.snapshot();
    let detail = api::detail(
        &t,
        &snap,
        rate,
        &mut lock(&state.peer_rates),
        Instant::now(),
    );
    Ok(json(StatusCode::Ok, &detail))
}

async fn add(mut req: Request<State>) -> tide::Result {
    use crate::rt::io::ReadExt;
    let declared = req.len().map(|n| n as u64);
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Ok(error(StatusCode::PayloadTooLarge, &too_large()));
    }
    let mut body = Vec::new();
    let read = req
        .take_body()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .await;
    if let Err(e) = read {
        return Ok(error(
            StatusCode::BadRequest,
            &format!("cannot read the body: {e}"),
        ));
    }
    if body.len() as u64 > MAX_BODY {
        return Ok(error(StatusCode::PayloadTooLarge, &too_large()));
    }
    if body.is_empty() {
        return Ok(error(
            StatusCode::BadRequest,
            "the body must be a .torrent file (POST it as application/x-bittorrent) or a magnet link",
        ));
    }
    let text = body.trim_ascii();
    if text.len() >= 7 && text[..7].eq_ignore_ascii_case(b"magnet:") {
        let Ok(link) = std::str::from_utf8(text) else {
            return Ok(error(
                StatusCode::BadRequest,
                "a magnet link is text (UTF-8)",
            ));
        };
        return match req.state().control.add_magnet(link) {
            // Accepted: the torrent is listed once its metadata is in.
            Ok((hash, name)) => Ok(json(
                StatusCode::Accepted,
                &serde_json::json!({
                    "info_hash": hash.hex(),
                    "name": name,
                    "state": "fetching metadata",
                }),
            )),
            Err(e) => Ok(control_error(&e)),
        };
    }
    match req.state().control.add_torrent(&body).await {
        Ok(t) => {
            let rate = (0, 0);
            let s = api::summary(&t, &t.snapshot(), rate);
            Ok(json(StatusCode::Created, &s))
        }
        Err(e) => Ok(control_error(&e)),
    }
}

fn too_large() -> String {
    format!("the body is larger than {} MiB", MAX_BODY >> 20)
}

#[derive(Clone, Copy)]
enum Act {
    Pause,
    Resume,
}

async fn act(req: Request<State>, what: Act) -> tide::Result {
    let hash = req.param("hash").unwrap_or("").to_string();
    let control = Arc::clone(&req.state().control);
    let done = match what {
        Act::Pause => control.pause(&hash).await,
        Act::Resume => control.resume(&hash).await,
    };
    match done {
        Ok(t) => {
            let rate = lock(&req.state().rates).get(&t.info_hash());
            Ok(json(StatusCode::Ok, &api::summary(&t, &t.snapshot(), rate)))
        }
        Err(e) => Ok(control_error(&e)),
    }
}

async fn remove(req: Request<State>) -> tide::Result {
    let hash = req.param("hash").unwrap_or("").to_string();
    match req.state().control.remove(&hash).await {
        Ok(()) => Ok(json(
            StatusCode::Ok,
            &serde_json::json!({ "removed": hash, "data": "kept" }),
        )),
        Err(e) => Ok(control_error(&e)),
    }
}
