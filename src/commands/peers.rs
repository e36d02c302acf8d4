//! `bt peers`: ask a running tracker for its `/peers` JSON and print it as a table.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::AsyncReadExt;
use indicatif::HumanBytes;

use crate::cli::PeersArgs;
use crate::config::Config;
use crate::modes::tracker::status::{PeerStatus, Snapshot};

/// How long to wait for the tracker.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read (the tracker bounds its snapshot far below this).
const MAX_BODY: u64 = 32 * 1024 * 1024;

/// Run `bt peers`.
pub fn run(args: PeersArgs) -> Result<()> {
    let tracker = match args.tracker {
        Some(t) => t,
        None => Config::load(args.config.as_deref())?.0.tracker.announce,
    };
    let url = peers_url(&tracker);
    let body = crate::rt::block_on(fetch(&url))?;
    let snapshot: Snapshot = serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not answer with a bt tracker's peer list"))?;
    print!("{}", table(&url, &snapshot));
    Ok(())
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
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    Ok(body)
}

/// The snapshot as text: a header line, then each torrent with a table of its peers.
pub fn table(url: &str, s: &Snapshot) -> String {
    let mut out = format!(
        "{url}: {}, {}\n",
        crate::ui::plural(s.torrent_count, "torrent", "torrents"),
        crate::ui::plural(s.peer_count, "peer", "peers")
    );
    for t in &s.torrents {
        out += &format!(
            "\n{}  seeders {}  leechers {}  completed {}\n",
            t.info_hash, t.seeders, t.leechers, t.completed
        );
        out += &format!(
            "  {:<22} {:<40} {:>10}  {}\n",
            "ADDRESS", "PEER ID", "LEFT", "LAST SEEN"
        );
        for p in &t.peers {
            out += &format!(
                "  {:<22} {:<40} {:>10}  {} s ago\n",
                address(p),
                p.peer_id,
                left(p.left),
                p.last_seen_secs
            );
        }
        let listed = t.peers.len();
        let total = (t.seeders + t.leechers) as usize;
        if listed < total {
            out += &format!("  ... and {} more\n", total - listed);
        }
    }
    if s.torrents.len() < s.torrent_count {
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

fn left(n: u64) -> String {
    match n {
        0 => "seeding".into(),
        n => HumanBytes(n).to_string(),
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
        let s = Snapshot {
            torrent_count: 2,
            peer_count: 3,
            interval: 30,
            torrents: vec![TorrentStatus {
                info_hash: "ab".repeat(20),
                seeders: 1,
                leechers: 2,
                completed: 4,
                peers: vec![
                    PeerStatus {
                        address: "127.0.0.1".into(),
                        port: 6881,
                        peer_id: "-BT0001-abcdefghijkl".into(),
                        left: 0,
                        last_seen_secs: 3,
                    },
                    PeerStatus {
                        address: "::1".into(),
                        port: 6882,
                        peer_id: "ff".repeat(20),
                        left: 2048,
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
        assert!(text.contains("127.0.0.1:6881") && text.contains("-BT0001-abcdefghijkl"));
        assert!(
            text.contains("[::1]:6882") && text.contains("2.00 KiB") && text.contains("12 s ago")
        );
        assert!(text.contains("seeding") && text.contains("... and 1 more\n"));
        assert!(text.contains("... and 1 more torrents"));
    }
}
