//! The web page and JSON API (`--web`) with real processes: add, pause, resume and remove
//! torrents end to end (the tracker sees the `stopped` and `started`), errors as JSON with a
//! 4xx status, the token, names with markup kept as data, the size of each update with 1,001
//! torrents and a 16,000-piece one, and (ignored: needs chromium) the page in a headless
//! browser during and after the demo's download from two peers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{bt, poll, pseudo_random, Proc, SHORT};
use serde_json::Value;

/// How long a download of a few hundred KiB on loopback may take.
const LONG: Duration = Duration::from_secs(60);

/// One HTTP/1.1 request (connection closed after it): (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(SHORT)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read up to the end of the answer's body (a server may keep reading a body it refused).
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let (split, length) = loop {
        let n = s.read(&mut buf).unwrap_or(0);
        out.extend_from_slice(&buf[..n]);
        if let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if n == 0 || length.is_some_and(|len| out.len() >= split + 4 + len) {
                break (split, length);
            }
        }
        assert!(n > 0, "the connection closed before a whole head");
    };
    out.truncate(length.map_or(out.len(), |len| split + 4 + len));
    let status_line = String::from_utf8_lossy(&out[..split]).to_string();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, out[split + 4..].to_vec())
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http(addr, "GET", path, &[], b"");
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body))),
    )
}

fn send_json(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let (status, body) = http(addr, method, path, &[], body);
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body))),
    )
}

/// An error answer: a 4xx status and `{"error": "..."}` whose text contains `says`.
#[track_caller]
fn assert_error((status, body): (u16, Value), code: u16, says: &str) {
    assert_eq!(status, code, "{body}");
    let why = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text: {body}"));
    assert!(why.contains(says), "{why:?} should say {says:?}");
}

/// The address of a `bt` process's web server, from its "web page and API on" line.
#[track_caller]
fn web_addr(p: &mut Proc) -> SocketAddr {
    let line = p.wait_line("web page and API on http://", SHORT);
    let at = line.split("http://").nth(1).unwrap().trim_end_matches('/');
    at.parse().unwrap()
}

/// A single-file torrent written by hand: `pieces` piece hashes (never matched: there is no
/// data), pieces of `piece_length` bytes, no tracker.
fn bare_torrent(name: &str, piece_length: u64, pieces: usize) -> Vec<u8> {
    let hashes = pseudo_random(pieces as u64 + name.len() as u64, pieces * 20);
    let mut t = format!(
        "d4:infod6:lengthi{}e4:name{}:{name}12:piece lengthi{piece_length}e6:pieces{}:",
        piece_length * pieces as u64,
        name.len(),
        hashes.len()
    )
    .into_bytes();
    t.extend_from_slice(&hashes);
    t.extend_from_slice(b"ee");
    t
}

/// A tracker, a seeding peer of `song.bin` (300 KB) and the torrent file.
fn swarm(dir: &Path) -> (Proc, Proc, u16, PathBuf, Vec<u8>) {
    let mut tracker = Proc::start(&["tracker", "--bind", "127.0.0.1:0"], dir);
    let announce = format!("http://{}/announce", tracker.addr());
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    let data = pseudo_random(19, 300_000);
    std::fs::write(seed.join("song.bin"), &data).unwrap();
    let torrent = dir.join("song.torrent");
    bt(
        dir,
        [
            "create",
            seed.join("song.bin").to_str().unwrap(),
            "--tracker",
            &announce,
            "-o",
            torrent.to_str().unwrap(),
            "--piece-length",
            "16k",
        ],
    )
    .success();
    std::fs::copy(&torrent, seed.join("song.torrent")).unwrap();
    let (seeder, seed_port) = common::live::start_peer(dir, &seed, &[]);
    (tracker, seeder, seed_port, torrent, data)
}

/// Lines of the tracker with `event` for the peer listening on `port`.
fn tracker_events(tracker: &Proc, event: &str, port: u16) -> usize {
    tracker
        .log()
        .lines()
        .filter(|l| l.contains(&format!(" {event} ")) && l.contains(&format!(":{port} ")))
        .count()
}

#[test]
fn the_api_adds_pauses_resumes_and_removes_a_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (tracker, _seeder, seed_port, torrent, data) = swarm(dir);
    let mine = dir.join("mine");
    let (mut peer, port) = common::live::start_peer(dir, &mine, &["--web", "127.0.0.1:0"]);
    let web = web_addr(&mut peer);

    let (status, list) = get_json(web, "/api/torrents");
    assert_eq!((status, list["count"].as_u64()), (200, Some(0)), "{list}");

    // Add: the .torrent file as the body.
    let bytes = std::fs::read(&torrent).unwrap();
    let (status, added) = send_json(web, "POST", "/api/torrents", &bytes);
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["name"], "song.bin");
    let hash = added["info_hash"].as_str().unwrap().to_string();
    assert!(
        mine.join("song.bin.torrent").is_file(),
        "imported into the library"
    );
    assert_error(
        send_json(web, "POST", "/api/torrents", &bytes),
        409,
        "here already",
    );

    // It downloads from the seeder the tracker names; the map says every piece came from it.
    let path = format!("/api/torrents/{hash}");
    let done = poll(LONG, || {
        let (_, d) = get_json(web, &path);
        (d["state"] == "seeding").then_some(d)
    })
    .unwrap_or_else(|| panic!("no download\n{}", peer.log()));
    assert_eq!(std::fs::read(mine.join("song.bin")).unwrap(), data);
    let map = &done["piece_map"];
    assert_eq!(map["cells"].as_u64(), done["pieces"].as_u64());
    assert_eq!(map["map"].as_str().unwrap(), format!("{}a", done["pieces"]));
    let origin = &map["origins"][0];
    assert_eq!(origin["key"], "a");
    assert!(
        origin["addr"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{seed_port}")),
        "{origin}"
    );
    assert_eq!(origin["pieces"], done["pieces"]);
    assert_eq!(done["files"][0]["path"], "song.bin");
    assert_eq!(done["file_count"], 1);
    assert!(
        tracker_events(&tracker, "started", port) >= 1,
        "{}",
        tracker.log()
    );

    // Pause: the tracker hears `stopped`, the connections close.
    let (status, paused) = send_json(web, "POST", &format!("{path}/pause"), b"");
    assert_eq!(
        (status, paused["state"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    assert!(
        common::until(SHORT, || tracker_events(&tracker, "stopped", port) == 1),
        "no stopped announce\n{}",
        tracker.log()
    );
    assert!(common::until(SHORT, || get_json(web, &path).1["peers"] == 0));
    // Resume: `started` again.
    let (status, resumed) = send_json(web, "POST", &format!("{path}/resume"), b"");
    assert_eq!(
        (status, resumed["state"].as_str()),
        (200, Some("seeding")),
        "{resumed}"
    );
    assert!(
        common::until(SHORT, || tracker_events(&tracker, "started", port) == 2),
        "no second started announce\n{}",
        tracker.log()
    );

    // Remove: gone from the API, `stopped` again, the data stays.
    let (status, removed) = send_json(web, "DELETE", &path, b"");
    assert_eq!(status, 200, "{removed}");
    assert_error(get_json(web, &path), 404, "no torrent");
    assert_eq!(get_json(web, "/api/torrents").1["count"], 0);
    assert!(common::until(SHORT, || tracker_events(
        &tracker, "stopped", port
    ) == 2));
    assert_eq!(
        std::fs::read(mine.join("song.bin")).unwrap(),
        data,
        "data kept"
    );
    assert_error(send_json(web, "DELETE", &path, b""), 404, "no torrent");
    assert_error(
        send_json(web, "POST", &format!("{path}/pause"), b""),
        404,
        "no torrent",
    );
    assert!(peer.running());
}

#[test]
fn the_api_adds_a_magnet_link_and_the_torrent_follows_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_tracker, _seeder, seed_port, torrent, data) = swarm(dir);
    let mine = dir.join("mine");
    let (mut peer, _) = common::live::start_peer(dir, &mine, &["--web", "127.0.0.1:0"]);
    let web = web_addr(&mut peer);
    let hash = common::bt_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_string();
    // No tracker in the link: only its x.pe peer has the metadata.
    let link = format!("magnet:?xt=urn:btih:{hash}&dn=song.bin&x.pe=127.0.0.1:{seed_port}\n");
    let (status, accepted) = send_json(web, "POST", "/api/torrents", link.as_bytes());
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["info_hash"], hash.as_str());
    assert_eq!(accepted["state"], "fetching metadata");
    assert_error(
        send_json(web, "POST", "/api/torrents", link.as_bytes()),
        409,
        "here already",
    );
    let path = format!("/api/torrents/{hash}");
    poll(LONG, || {
        let (_, d) = get_json(web, &path);
        (d["state"] == "seeding").then_some(())
    })
    .unwrap_or_else(|| panic!("the magnet link never completed\n{}", peer.log()));
    assert_eq!(std::fs::read(mine.join("song.bin")).unwrap(), data);
    assert!(
        mine.join("song.bin.torrent").is_file(),
        "its metadata is saved in the library"
    );
    // Now a torrent like any other: pause works on it.
    let (status, paused) = send_json(web, "POST", &format!("{path}/pause"), b"");
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")));
    assert!(peer.running());
}

#[test]
fn the_api_refuses_bad_requests_with_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (mut peer, _) = common::live::start_peer(dir, &dir.join("f"), &["--web", "127.0.0.1:0"]);
    let web = web_addr(&mut peer);
    assert_error(
        send_json(web, "POST", "/api/torrents", b"not bencode"),
        400,
        "not a valid torrent",
    );
    assert_error(
        send_json(web, "POST", "/api/torrents", b""),
        400,
        ".torrent",
    );
    assert_error(
        send_json(web, "POST", "/api/torrents", b"magnet:?xt=urn:btih:nothex"),
        400,
        "not a valid magnet link",
    );
    assert_error(
        get_json(
            web,
            "/api/torrents/0123456789abcdef0123456789abcdef01234567",
        ),
        404,
        "no torrent",
    );
    assert_error(get_json(web, "/api/torrents/<script>"), 404, "no torrent");
    assert_error(get_json(web, "/api/torrents?offset=-1"), 400, "offset");
    assert_error(get_json(web, "/api/nothing"), 404, "no such API path");
    // A body declared larger than a torrent may be is refused before it is read.
    let (status, body) = http(
        web,
        "POST",
        "/api/torrents",
        &[("Content-Length", "1000000000")],
        b"",
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // Another site's page may not drive it.
    let (status, _) = http(
        web,
        "POST",
        "/api/torrents",
        &[("Origin", "http://example.invalid")],
        b"x",
    );
    assert_eq!(status, 403);
    assert!(peer.running());
}

#[test]
fn a_token_guards_the_api_and_a_lan_address_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Off loopback without a token: refused before anything listens.
    let out = bt(
        dir,
        [
            "peer",
            "--profile",
            "x",
            "--folder",
            "f",
            "--port",
            "0",
            "--web",
            "0.0.0.0:0",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("web_token"), "{}", out.stderr);

    std::fs::write(
        dir.join("p.toml"),
        "[profiles.x]\nfolder = \"f\"\nport = 0\nweb = \"127.0.0.1:0\"\nweb_token = \"s3cret\"\n",
    )
    .unwrap();
    let mut peer = Proc::start(&["peer", "--config", "p.toml", "--profile", "x"], dir);
    let web = web_addr(&mut peer);
    assert_error(get_json(web, "/api/torrents"), 401, "token");
    assert_error(get_json(web, "/api/torrents?token=wrong"), 401, "token");
    assert_eq!(get_json(web, "/api/torrents?token=s3cret").0, 200);
    let (status, _) = http(
        web,
        "GET",
        "/api/torrents",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _) = http(web, "GET", "/", &[], b"");
    assert_eq!(status, 401, "the page too");
}

/// The name of a torrent that would run a script if a page put it in as markup.
const EVIL: &str = "<img src=x onerror=\"document.body.dataset.pwned=1\"><script>alert(1)";

#[test]
fn names_with_markup_are_data_and_the_page_sets_only_text() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (mut peer, _) = common::live::start_peer(dir, &dir.join("f"), &["--web", "127.0.0.1:0"]);
    let web = web_addr(&mut peer);
    let (status, added) = send_json(web, "POST", "/api/torrents", &bare_torrent(EVIL, 16384, 3));
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        added["name"], EVIL,
        "the API gives the name as it is, not escaped twice"
    );
    let (_, list) = get_json(web, "/api/torrents");
    assert_eq!(list["torrents"][0]["name"], EVIL);
    // The page's script never hands data to the HTML parser.
    let (status, script) = http(web, "GET", "/page.js", &[], b"");
    assert_eq!(status, 200);
    let script = String::from_utf8(script).unwrap();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(sink), "page.js uses {sink}");
    }
    assert!(script.contains("textContent"));
    let (_, page) = http(web, "GET", "/", &[], b"");
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<script src=\"/page.js\"></script>"));
    assert_eq!(
        page.matches("<script").count(),
        1,
        "no inline script: the policy forbids them"
    );
}

#[test]
fn updates_stay_small_with_a_thousand_torrents_and_sixteen_thousand_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let folder = dir.join("many");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..1000 {
        std::fs::write(
            folder.join(format!("t{i:04}.torrent")),
            bare_torrent(&format!("t{i:04}"), 16384, 2),
        )
        .unwrap();
    }
    std::fs::write(
        folder.join("big.torrent"),
        bare_torrent("big", 16384, 16_000),
    )
    .unwrap();
    let (mut peer, _) = common::live::start_peer(dir, &folder, &["--web", "127.0.0.1:0"]);
    let web = web_addr(&mut peer);
    let (status, body) = http(web, "GET", "/api/torrents", &[], b"");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["count"], 1001);
    assert_eq!(list["torrents"].as_array().unwrap().len(), 50);
    assert_eq!(list["next"], 50);
    let (_, largest_page) = http(web, "GET", "/api/torrents?limit=100000", &[], b"");
    let largest: Value = serde_json::from_slice(&largest_page).unwrap();
    assert_eq!(
        largest["torrents"].as_array().unwrap().len(),
        200,
        "a page holds at most 200"
    );
    let big = largest["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .chain(list["torrents"].as_array().unwrap())
        .find(|t| t["name"] == "big")
        .cloned();
    let big = match big {
        Some(b) => b,
        None => {
            // Not on the first pages (the list is in info-hash order): walk them.
            let mut offset = 0;
            loop {
                let (_, page) = get_json(web, &format!("/api/torrents?offset={offset}&limit=200"));
                if let Some(b) = page["torrents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["name"] == "big")
                {
                    break b.clone();
                }
                offset = page["next"].as_u64().expect("big is listed") as usize;
            }
        }
    };
    let hash = big["info_hash"].as_str().unwrap();
    let (status, detail) = http(web, "GET", &format!("/api/torrents/{hash}"), &[], b"");
    assert_eq!(status, 200);
    let d: Value = serde_json::from_slice(&detail).unwrap();
    assert_eq!(d["pieces"], 16_000);
    assert_eq!(
        (
            d["piece_map"]["cells"].as_u64(),
            d["piece_map"]["per_cell"].as_u64()
        ),
        (Some(16_000), Some(1))
    );
    assert_eq!(d["piece_map"]["map"], "16000.");
    eprintln!(
        "payloads: list page of 50 of 1,001 torrents {} bytes, of 200 {} bytes, the 16,000-piece torrent's detail {} bytes",
        body.len(),
        largest_page.len(),
        detail.len()
    );
    // One page update is a list page and one detail; the map is at most one byte a cell
    // (16,384 cells at most, see the unit test of `encode_map` for the worst case).
    assert!(body.len() < 50 * 1024, "{}", body.len());
    assert!(largest_page.len() < 200 * 1024, "{}", largest_page.len());
    assert!(detail.len() < 16 * 1024, "{}", detail.len());
}

// ----- the page in a headless Chromium -----

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium, headless, with a profile folder of its own, on `url` with `what` (`--dump-dom`,
/// `--screenshot=PATH`): what it printed on stdout.
fn chromium(scratch: &Path, url: &str, what: &[&str]) -> String {
    let profile = tempfile::tempdir_in(scratch).unwrap();
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-default-browser-check",
        "--dns-prefetch-disable",
        "--window-size=1100,1000",
        // Time for the first fetches and the one-second refresh to run before the capture.
        "--virtual-time-budget=2500",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(what)
    .arg(url)
    .current_dir(scratch);
    let out = common::run(&mut cmd, SHORT);
    assert!(out.status.success(), "chromium failed: {}", out.stderr);
    out.stdout
}

/// The piece-map cells of a dumped page, as their characters.
fn map_cells(dom: &str) -> Vec<char> {
    let map = &dom[dom.find("id=\"map\"").expect("a map")..];
    let map = &map[..map.find("</div>").unwrap()];
    map.split("data-c=\"")
        .skip(1)
        .filter_map(|s| s.chars().next())
        .collect()
}

#[test]
#[ignore = "needs chromium"]
fn the_page_shows_pieces_arriving_from_two_peers_in_two_colours() {
    common::require_tool("chromium", "chromium");
    let scratch = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screens");
    std::fs::create_dir_all(&shots).unwrap();
    let mut demo = Proc::spawn(
        "bt demo --web",
        Command::new(common::BT)
            .args(["demo", "--web", "--timeout", "120", "--dir"])
            .arg(scratch.path().join("demo"))
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    let line = demo.wait_line("web page of the client: http://", SHORT);
    let web: SocketAddr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let torrents = || {
        get_json(web, "/api/torrents").1["torrents"]
            .as_array()
            .unwrap()
            .clone()
    };
    // During: some pieces verified, not all.
    let during = poll(LONG, || {
        torrents()
            .into_iter()
            .find(|t| t["have_pieces"].as_u64() > Some(0) && t["state"] == "downloading")
    })
    .unwrap_or_else(|| panic!("no partial download seen\n{}", demo.log()));
    let url = format!("http://{web}/#{}", during["info_hash"].as_str().unwrap());
    let png = shots.join("during.png");
    chromium(
        scratch.path(),
        &url,
        &[&format!("--screenshot={}", png.display())],
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let dom = chromium(scratch.path(), &url, &["--dump-dom"]);
    let cells = map_cells(&dom);
    assert!(
        cells.iter().any(|c| c.is_ascii_alphabetic()),
        "verified pieces show: {cells:?}"
    );

    // After: the torrent whose pieces came from both peers, every cell in a peer's colour.
    demo.wait_line("the page stays up", LONG);
    let both = torrents()
        .into_iter()
        .find(|t| {
            let d = get_json(
                web,
                &format!("/api/torrents/{}", t["info_hash"].as_str().unwrap()),
            )
            .1;
            d["piece_map"]["origins"].as_array().unwrap().len() == 2
        })
        .expect("a torrent with pieces from both peers");
    let url = format!("http://{web}/#{}", both["info_hash"].as_str().unwrap());
    let png = shots.join("after.png");
    chromium(
        scratch.path(),
        &url,
        &[&format!("--screenshot={}", png.display())],
    );
    let dom = chromium(scratch.path(), &url, &["--dump-dom"]);
    let cells = map_cells(&dom);
    assert_eq!(
        cells.len() as u64,
        both["pieces"].as_u64().unwrap(),
        "{dom}"
    );
    assert!(cells.iter().all(|c| *c == 'a' || *c == 'b'), "{cells:?}");
    assert!(cells.contains(&'a') && cells.contains(&'b'), "{cells:?}");
    // One colour per peer: each cell's character and background.
    let mut colours = std::collections::BTreeMap::new();
    for cell in dom.split("data-c=\"").skip(1) {
        let c = cell.chars().next().unwrap();
        if let Some(bg) = cell
            .split("background: ")
            .nth(1)
            .and_then(|b| b.split(';').next())
        {
            colours
                .entry(c)
                .or_insert_with(std::collections::BTreeSet::new)
                .insert(bg.to_string());
        }
    }
    let (a, b) = (&colours[&'a'], &colours[&'b']);
    assert!(a.len() == 1 && b.len() == 1 && a != b, "{colours:?}");
    let peers_row = dom.matches("-BT0001-").count();
    assert!(peers_row >= 2, "the legend names both peers");
    eprintln!("screenshots in {}", shots.display());

    // A torrent named with markup shows as text: no element made of it, no script run.
    let (status, _) = send_json(web, "POST", "/api/torrents", &bare_torrent(EVIL, 16384, 3));
    assert_eq!(status, 201);
    let dom = chromium(scratch.path(), &format!("http://{web}/"), &["--dump-dom"]);
    assert!(
        dom.contains(
            "&lt;img src=x onerror=\"document.body.dataset.pwned=1\"&gt;&lt;script&gt;alert(1)"
        ),
        "{dom}"
    );
    assert!(!dom.contains("data-pwned"), "the name's script ran");
    assert!(!dom.contains("<img"), "an element was made of the name");
    demo.stop();
}
