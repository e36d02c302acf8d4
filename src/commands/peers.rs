//! `bt peers`: ask a running tracker for its `/peers` JSON and print it as a table. The tracker
//! serves its listing in pages (`?offset=`, each at most `status::MAX_PAGE_PEERS` peers);
//! `bt peers` follows them up to [`MAX_PAGES`] and says so when it stops short. Everything the
//! tracker sends is printed through [`crate::ui::escape`].

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::AsyncReadExt;

use crate::cli::PeersArgs;
use crate::config::Config;
use crate::modes::tracker::status::{Listing, PeerStatus};

/// How long to wait for the tracker.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest page read (a bt tracker's pages are under ~200 KiB; older ones sent everything in
/// one answer, up to ~50 MB, which this cuts to a clear error instead of a stall).
const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Most pages followed: 50 pages of up to 1,000 peers each is already more than a terminal
/// shows usefully. Past it, the table ends with a line saying how many torrents are left.
pub const MAX_PAGES: usize = 50;

/// Run `bt peers`.
pub fn run(args: PeersArgs) -> Result<()> {
    let tracker = match args.tracker {
        Some(t) => t,
        None => Config::load(args.config.as_deref())?.0.tracker.announce,
    };
    let url = peers_url(&tracker);
    let snapshot = crate::rt::block_on(fetch_pages(&url))?;
    print!("{}", table(&url, &snapshot));
    Ok(())
}

/// The tracker's listing, page after page while it says there is a `next` one (at most
/// [`MAX_PAGES`]): one snapshot holding every torrent fetched, whose `next` is where it
/// stopped short (if it did).
async fn fetch_pages(url: &str) -> Result<Listing> {
    let mut all: Option<Listing> = None;
    let mut offset = 0;
    for _ in 0..MAX_PAGES {
        let page_url = format!("{url}?offset={offset}");
        let body = fetch(&page_url).await?;
        let page: Listing = serde_json::from_slice(&body)
            .with_context(|| format!("{url} did not answer with a bt tracker's peer list"))?;
        // Guard against a tracker that sends us round in circles.
        let next = page.next.filter(|&n| n > offset);
        all = Some(match all {
            None => page,
            Some(mut all) => {
                all.torrents.extend(page.torrents);
                all
            }
        });
        if let Some(all) = all.as_mut() {
            all.next = next;
        }
        match next {
            Some(n) => offset = n,
            None => break,
        }
    }
    all.ok_or_else(|| anyhow!("no page was fetched from {url}"))
}

/// The `/peers` URL of a tracker given by its announce URL, its `/peers` URL or its base URL.
pub fn peers_url(tracker: &str) -> String {
    let t = tracker
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    if t.ends_with("/peers") {
        return t.to_string();
    }
    match t.rsplit_once('/') {
        Some((base, last)) if last.starts_with("announce") && !base.ends_with('/') => {
            format!("{base}/peers")
        }
        _ => format!("{t}/peers"),
    }
}

/// Connect to the tracker's address first, so that a tracker that is down is one plain
/// sentence (`connection refused`) rather than the HTTP client's wrapped error text.
async fn probe(url: &str) -> Result<()> {
    let Ok(parsed) = surf::Url::parse(url) else {
        bail!("{url} is not a URL like http://HOST:PORT/announce");
    };
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        bail!("{url} names no host and port");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match crate::rt::timeout(TIMEOUT, crate::rt::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        // An OS error reads best as its kind ("connection refused"); a lookup failure is a
        // message of its own.
        Ok(Err(e)) if e.raw_os_error().is_some() => {
            bail!("cannot reach the tracker at {url}: {}", e.kind())
        }
        Ok(Err(e)) => bail!("cannot reach the tracker at {url}: {e}"),
        Err(_) => bail!(
            "cannot reach the tracker at {url}: no answer within {} s",
            TIMEOUT.as_secs()
        ),
    }
}

async fn fetch(url: &str) -> Result<Vec<u8>> {
    probe(url).await?;
    let client: surf::Client = surf::Config::new()
        .set_timeout(Some(TIMEOUT))
        .try_into()
        .map_err(|e| anyhow!("cannot set up an HTTP client: {e}"))?;
    let mut res = client
        .get(url)
        .await
        .map_err(|e| anyhow!("cannot reach the tracker at {url}: {e}"))?;
    if !res.status().is_success() {
        bail!("{url} answered HTTP {}", res.status());
    }
    let mut body = Vec::new();
    res.take_body()
        .into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    if body.len() as u64 > MAX_BODY {
        bail!("{url} answered with over {} MiB", MAX_BODY >> 20);
    }
    Ok(body)
}

/// The snapshot as text: a header line, then each torrent with a table of its peers.
pub fn table(url: &str, s: &Listing) -> String {
    use crate::ui::escape;
    let mut out = format!(
        "{}: {}, {}\n",
        escape(url),
        crate::ui::plural(s.torrent_count, "torrent", "torrents"),
        crate::ui::plural(s.peer_count, "peer", "peers")
    );
    for t in &s.torrents {
        out += &format!(
            "\n{}  seeders {}  leechers {}  completed {}\n",
            escape(&t.info_hash),
            t.seeders,
            t.leechers,
            t.completed
        );
        out += &format!("  {:<46} {:<8}  {}\n", "ADDRESS", "STATE", "LAST SEEN");
        for p in &t.peers {
            let state = match p.seeding {
                true => "seeding",
                false => "leeching",
            };
            out += &format!(
                "  {:<46} {state:<8}  {} s ago\n",
                escape(&address(p)),
                p.last_seen_secs
            );
        }
        let listed = t.peers.len();
        let total = (t.seeders + t.leechers) as usize;
        if listed < total {
            out += &format!("  ... and {} more\n", total - listed);
        }
    }
    if let Some(next) = s.next {
        out += &format!(
            "\n... and {} more torrents (listing cut after {MAX_PAGES} pages; the rest from \
             {}?offset={next})\n",
            s.torrent_count.saturating_sub(s.torrents.len()),
            escape(url)
        );
    } else if s.torrents.len() < s.torrent_count {
        out += &format!(
            "\n... and {} more torrents\n",
            s.torrent_count - s.torrents.len()
        );
    }
    out
}

fn address(p: &PeerStatus) -> String {
    match p.address.contains(':') {
        true => format!("[{}]:{}", p.address, p.port),
        false => format!("{}:{}", p.address, p.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::tracker::status::TorrentStatus;

    #[test]
    fn peers_url_from_any_tracker_url() {
        let cases = [
            (
                "http://127.0.0.1:6969/announce",
                "http://127.0.0.1:6969/peers",
            ),
            ("http://h:1/announce.php?pk=x", "http://h:1/peers"),
            ("http://h:1", "http://h:1/peers"),
            ("http://h:1/", "http://h:1/peers"),
            ("http://h:1/peers", "http://h:1/peers"),
            ("http://h:1/t/announce", "http://h:1/t/peers"),
        ];
        for (input, want) in cases {
            assert_eq!(peers_url(input), want, "{input}");
        }
    }

    #[test]
    fn table_shows_every_peer() {
        let s = Listing {
            torrent_count: 2,
            peer_count: 3,
            interval: 30,
            offset: 0,
            next: None,
            torrents: vec![TorrentStatus {
                info_hash: "ab".repeat(20),
                seeders: 1,
                leechers: 2,
                completed: 4,
                peers: vec![
                    PeerStatus {
                        address: "127.0.0.1".into(),
                        port: 6881,
                        seeding: true,
                        last_seen_secs: 3,
                    },
                    PeerStatus {
                        address: "::1".into(),
                        port: 6882,
                        seeding: false,
                        last_seen_secs: 12,
                    },
                ],
            }],
        };
        let text = table("http://t/peers", &s);
        assert!(
            text.starts_with("http://t/peers: 2 torrents, 3 peers\n"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "{}  seeders 1  leechers 2  completed 4",
            "ab".repeat(20)
        )));
        assert!(text.contains("127.0.0.1:6881") && text.contains("leeching"));
        assert!(text.contains("[::1]:6882") && text.contains("12 s ago"));
        assert!(text.contains("seeding") && text.contains("... and 1 more\n"));
        assert!(text.contains("... and 1 more torrents"));
    }

    #[test]
    fn text_from_the_tracker_cannot_reach_the_terminal_raw() {
        let evil = "\x1b]0;owned\x07\x1b[2J";
        let s = Listing {
            torrent_count: 5,
            peer_count: 1,
            interval: 30,
            offset: 0,
            next: Some(1),
            torrents: vec![TorrentStatus {
                info_hash: format!("{evil}ab"),
                seeders: 1,
                leechers: 0,
                completed: 0,
                peers: vec![PeerStatus {
                    address: format!("10.0.0.1{evil}"),
                    port: 1,
                    seeding: true,
                    last_seen_secs: 1,
                }],
            }],
        };
        let text = table(&format!("http://t{evil}/peers"), &s);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("10.0.0.1"), "{text}");
        assert!(
            text.contains("... and 4 more torrents (listing cut after"),
            "{text}"
        );
    }
}
