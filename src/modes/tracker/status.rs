//! What the tracker shows of itself: the `/peers` JSON (also read back by `bt peers`) and the
//! self-refreshing HTML page at `/`. Both serve the table in pages (`?offset=&limit=`, at most
//! [`MAX_PAGE_PEERS`] peers each), each a [`Listing`] that says where the next page starts, so
//! an answer stays small however large the swarm; the HTML page links only to the tracker's
//! own pages.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::peer_list::Peer;
use super::table::{Swarm, Table};
use crate::proto::metainfo::InfoHash;

/// Most peers listed in one page of `/peers` or of the status page; a torrent with no peer
/// listed counts as one. A peer is at most ~150 bytes of JSON, so a page stays under ~200 KiB
/// however large the swarm: that bounds what the tracker builds and holds per connection.
pub const MAX_PAGE_PEERS: usize = 1000;
/// Most peers listed per torrent (the counts still cover all of them).
pub const MAX_PEERS_SHOWN: usize = 500;

/// Which part of the listing a request asks for: `?offset=N&limit=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Torrents to skip (the listing is busiest torrent first).
    pub offset: usize,
    /// Most peers in the page, 1..=[`MAX_PAGE_PEERS`].
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            offset: 0,
            limit: MAX_PAGE_PEERS,
        }
    }
}

impl Page {
    /// The page a raw query asks for; missing or unreadable values take their defaults, and
    /// `limit` is clamped to 1..=[`MAX_PAGE_PEERS`].
    pub fn from_query(query: &str) -> Page {
        let mut page = Page::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Ok(n) = value.parse::<usize>() else {
                continue;
            };
            match key {
                "offset" => page.offset = n,
                "limit" => page.limit = n.clamp(1, MAX_PAGE_PEERS),
                _ => {}
            }
        }
        page
    }
}

/// Run `build` (a page of the listing, built and encoded) when no other page is being built.
/// Pages cost milliseconds each and a client can ask for many at once (pipelined, from many
/// connections, never reading); built one at a time they keep at most one executor thread
/// busy, and announces are answered on the others meanwhile.
pub async fn in_turn<T>(build: impl FnOnce() -> T) -> T {
    static TURN: OnceLock<crate::rt::AsyncMutex<()>> = OnceLock::new();
    let _turn = TURN.get_or_init(Default::default).lock().await;
    build()
}

/// The whole table as `/peers` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Torrents tracked.
    pub torrent_count: usize,
    /// Peers tracked, over all torrents.
    pub peer_count: usize,
    /// Seconds between announces asked of peers.
    pub interval: u32,
    /// Index of this page's first torrent in the whole listing (busiest first).
    #[serde(default)]
    pub offset: usize,
    /// The `offset` of the next page, if the listing goes on.
    #[serde(default)]
    pub next: Option<usize>,
    /// This page's torrents, busiest first (a page lists at most [`MAX_PAGE_PEERS`] peers).
    pub torrents: Vec<TorrentStatus>,
}

/// One torrent in a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorrentStatus {
    /// Info-hash, 40 hex digits.
    pub info_hash: String,
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// Peers still downloading.
    pub leechers: u32,
    /// Downloads finished (`completed` events).
    pub completed: u32,
    /// Its peers, seeders first, then by address (at most [`MAX_PEERS_SHOWN`]).
    pub peers: Vec<PeerStatus>,
}

/// One peer in a [`TorrentStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// IP address.
    pub address: String,
    /// Listen port.
    pub port: u16,
    /// Whether it has the whole torrent. (The tracker keeps no peer ids and no byte counts:
    /// 10 bytes per IPv4 peer, see `peer_list`.)
    #[serde(default)]
    pub seeding: bool,
    /// Seconds since its last announce.
    pub last_seen_secs: u32,
}

impl Listing {
    /// The first page of `table` as of `now`.
    pub fn of(table: &Table, now: Instant) -> Listing {
        Listing::page(table, now, Page::default())
    }

    /// One page of `table` as of `now`: the torrents from `page.offset` on, busiest first,
    /// while their listed peers fit in `page.limit`.
    pub fn page(table: &Table, now: Instant, page: Page) -> Listing {
        let (torrent_count, peer_count) = table.counts();
        let mut torrents: Vec<_> = table.torrents().collect();
        let size = |t: &Swarm| t.seeders() + t.leechers();
        let busiest_first = |a: &(InfoHash, &Swarm), b: &(InfoHash, &Swarm)| {
            size(b.1).cmp(&size(a.1)).then(a.0.cmp(&b.0))
        };
        // This runs under the table's lock: sort only what this page can reach.
        let offset = page.offset.min(torrents.len());
        smallest(&mut torrents, offset + page.limit, busiest_first);
        let per_torrent = MAX_PEERS_SHOWN.min(page.limit);
        let mut used = 0;
        let mut shown = Vec::new();
        for &(hash, t) in &torrents[offset..] {
            let cost = size(t).min(per_torrent).max(1);
            if used + cost > page.limit {
                break;
            }
            used += cost;
            shown.push(TorrentStatus::of(table, hash, t, per_torrent, now));
        }
        let end = offset + shown.len();
        Listing {
            torrent_count,
            peer_count,
            interval: table.limits().interval,
            offset,
            next: (end < torrent_count).then_some(end),
            torrents: shown,
        }
    }

    /// The status page: torrents, their counts and peers; reloads itself every few seconds.
    pub fn html(&self) -> String {
        let mut h = String::with_capacity(4096);
        h.push_str(concat!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta http-equiv=\"refresh\" content=\"5\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>bt tracker</title><style>",
            "body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}",
            "h1{font-size:1.4em}h2{font-size:1.05em;margin:1.6em 0 .3em;font-family:monospace}",
            "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2em .8em .2em 0}",
            "th{border-bottom:1px solid #aaa;font-weight:600}td.n{font-variant-numeric:tabular-nums}",
            "code{font-size:.9em}.seed{color:#070}.muted{color:#777}",
            "</style></head><body>\n<h1>bt tracker</h1>\n"
        ));
        let _ = writeln!(
            h,
            "<p>{} torrent{}, {} peer{}; peers announce every {} s. This page reloads every 5 s. \
             The same as JSON: <a href=\"/peers?offset={}\">/peers</a>.</p>",
            self.torrent_count,
            plural(self.torrent_count),
            self.peer_count,
            plural(self.peer_count),
            self.interval,
            self.offset
        );
        if self.offset > 0 {
            let _ = writeln!(
                h,
                "<p>Torrents {} to {}, busiest first. <a href=\"/\">First page</a></p>",
                self.offset + 1,
                self.offset + self.torrents.len()
            );
        }
        if self.torrents.is_empty() {
            h.push_str("<p class=\"muted\">No torrents yet: nobody has announced.</p>\n");
        }
        for t in &self.torrents {
            let _ = writeln!(
                h,
                "<h2>{}</h2>\n<p>{} seeder{}, {} leecher{}, {} completed</p>",
                t.info_hash,
                t.seeders,
                plural(t.seeders as usize),
                t.leechers,
                plural(t.leechers as usize),
                t.completed
            );
            h.push_str("<table><tr><th>address</th><th>state</th><th>last seen</th></tr>\n");
            for p in &t.peers {
                let addr = match p.address.contains(':') {
                    true => format!("[{}]:{}", p.address, p.port),
                    false => format!("{}:{}", p.address, p.port),
                };
                let state = match p.seeding {
                    true => "<span class=\"seed\">seeding</span>",
                    false => "leeching",
                };
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{state}</td><td class=\"n\">{} s ago</td></tr>",
                    escape(&addr),
                    p.last_seen_secs
                );
            }
            h.push_str("</table>\n");
            let unlisted = ((t.seeders + t.leechers) as usize).saturating_sub(t.peers.len());
            if unlisted > 0 {
                let _ = writeln!(h, "<p class=\"muted\">and {unlisted} more peers</p>");
            }
        }
        if let Some(next) = self.next {
            let _ = writeln!(
                h,
                "<p><a href=\"/?offset={next}\">Next page</a> ({} more torrents)</p>",
                self.torrent_count.saturating_sub(next)
            );
        }
        h.push_str("</body></html>\n");
        h
    }
}

impl TorrentStatus {
    /// `t` with its first `max_peers` peers: seeders first, then by address.
    fn of(table: &Table, hash: InfoHash, t: &Swarm, max_peers: usize, now: Instant) -> Self {
        let mut peers: Vec<(Peer, bool)> = t.peers(true).map(|p| (p, true)).collect();
        smallest(&mut peers, max_peers, |a, b| a.0.key.cmp(&b.0.key));
        if peers.len() < max_peers {
            let mut leechers: Vec<(Peer, bool)> = t.peers(false).map(|p| (p, false)).collect();
            smallest(&mut leechers, max_peers - peers.len(), |a, b| {
                a.0.key.cmp(&b.0.key)
            });
            peers.extend(leechers);
        }
        let stats = t.stats();
        TorrentStatus {
            info_hash: hash.hex(),
            seeders: stats.complete,
            leechers: stats.incomplete,
            completed: stats.downloaded,
            peers: peers
                .into_iter()
                .map(|(p, seeding)| PeerStatus {
                    address: p.key.ip.to_string(),
                    port: p.key.port,
                    seeding,
                    last_seen_secs: table.age(p.last_seen, now),
                })
                .collect(),
        }
    }
}

/// Keep the `n` smallest of `v` by `order`, sorted (a selection first: `v` may be large).
fn smallest<T>(v: &mut Vec<T>, n: usize, mut order: impl FnMut(&T, &T) -> std::cmp::Ordering) {
    if v.len() > n {
        v.select_nth_unstable_by(n, &mut order);
        v.truncate(n);
    }
    v.sort_unstable_by(order);
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Escape text for HTML.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrackerConfig;
    use crate::modes::tracker::table::TableLimits;
    use crate::proto::tracker::{AnnounceRequest, Event};
    use std::time::Duration;

    fn announce(t: &mut Table, hash: [u8; 20], port: u16, left: u64, id: &[u8; 20], now: Instant) {
        let req = AnnounceRequest {
            left,
            event: Event::Started,
            ..AnnounceRequest::new(hash, *id, port)
        };
        t.announce(&req, [127, 0, 0, 1].into(), now).unwrap();
    }

    #[test]
    fn snapshot_lists_torrents_and_peers_readably() {
        let start = Instant::now();
        let mut t = Table::new(TableLimits::from(&TrackerConfig::default()), None, start);
        announce(&mut t, [1; 20], 6882, 100, b"-BT0001-<script>&'\"x", start);
        announce(
            &mut t,
            [1; 20],
            6881,
            0,
            &[0xff; 20],
            start + Duration::from_secs(3),
        );
        announce(&mut t, [2; 20], 6883, 5, b"-LT2080-abcdefghijkl", start);
        let s = Listing::of(&t, start + Duration::from_secs(10));
        assert_eq!((s.torrent_count, s.peer_count, s.interval), (2, 3, 30));
        let first = &s.torrents[0];
        assert_eq!(first.info_hash, "01".repeat(20));
        assert_eq!((first.seeders, first.leechers, first.completed), (1, 1, 0));
        assert_eq!(
            (
                first.peers[0].port,
                first.peers[0].seeding,
                first.peers[0].last_seen_secs
            ),
            (6881, true, 7)
        );
        assert_eq!(first.peers[1].port, 6882);
        assert!(!first.peers[1].seeding);
        assert_eq!(first.peers[1].last_seen_secs, 10);

        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Listing>(&json).unwrap(), s);

        let html = s.html();
        assert!(html.contains(&"01".repeat(20)) && html.contains(&"02".repeat(20)));
        assert!(html.contains("127.0.0.1:6881") && html.contains("127.0.0.1:6883"));
        assert!(html.contains("1 seeder, 1 leecher, 0 completed"));
        assert!(html.contains("seeding") && html.contains("leeching"));
        assert!(!html.contains("<script>") && !html.contains("-BT0001-"));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(!html.contains("src="), "no external assets");
        assert_eq!(links(&html), ["/peers?offset=0"]);
    }

    /// Every `href` of a page.
    pub(crate) fn links(html: &str) -> Vec<String> {
        html.split("href=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_string())
            .collect()
    }

    #[test]
    fn pages_list_the_busiest_torrents_first_and_chain_to_the_end() {
        let now = Instant::now();
        let mut t = Table::new(TableLimits::from(&TrackerConfig::default()), None, now);
        let n = MAX_PAGE_PEERS + 20;
        for i in 0..n {
            let mut hash = [0u8; 20];
            hash[18..].copy_from_slice(&(i as u16).to_be_bytes());
            announce(&mut t, hash, 1, 0, &[b'a'; 20], now);
            if i % 100 == 7 {
                announce(&mut t, hash, 2, 0, &[b'a'; 20], now); // the busiest: two peers
            }
        }
        let s = Listing::of(&t, now);
        // 11 torrents of two peers, then one peer each, up to MAX_PAGE_PEERS peers.
        assert_eq!((s.torrent_count, s.offset), (n, 0));
        assert_eq!(s.torrents.len(), MAX_PAGE_PEERS - 11);
        assert_eq!(s.next, Some(MAX_PAGE_PEERS - 11));
        let sizes: Vec<usize> = s.torrents.iter().map(|t| t.peers.len()).collect();
        assert!(sizes[..11].iter().all(|&p| p == 2) && sizes[11..].iter().all(|&p| p == 1));
        assert!(s.torrents[11..]
            .windows(2)
            .all(|w| w[0].info_hash < w[1].info_hash));
        // Following `next` lists every torrent once, and the last page says it is the last.
        let mut seen: Vec<String> = s.torrents.iter().map(|t| t.info_hash.clone()).collect();
        let mut next = s.next;
        while let Some(offset) = next {
            let p = Listing::page(&t, now, Page { offset, limit: 100 });
            assert!(p.torrents.len() <= 100 && p.offset == offset);
            seen.extend(p.torrents.iter().map(|t| t.info_hash.clone()));
            next = p.next;
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n);
        // Past the end: an empty last page.
        let past = Listing::page(
            &t,
            now,
            Page {
                offset: n + 5,
                limit: 10,
            },
        );
        assert!(past.torrents.is_empty() && past.next.is_none() && past.offset == n);
    }

    #[test]
    fn a_big_swarm_is_cut_to_the_page_and_the_page_links_on() {
        let now = Instant::now();
        // 2,100 peers from 127.0.0.1: past the default per-address cap of 2,000.
        let limits = TableLimits {
            max_peers_per_ip: 10_000,
            ..TableLimits::from(&TrackerConfig::default())
        };
        let mut t = Table::new(limits, None, now);
        for torrent in 0..3u8 {
            for port in 1..=700u16 {
                let left = u64::from(port % 2);
                announce(&mut t, [torrent; 20], port, left, &[b'a'; 20], now);
            }
        }
        let s = Listing::page(&t, now, Page::from_query("limit=999999&offset=0"));
        // Each torrent lists MAX_PEERS_SHOWN peers, seeders first; two fit in a page.
        assert_eq!(s.torrents.len(), 2);
        assert_eq!(s.next, Some(2));
        let first = &s.torrents[0];
        assert_eq!(first.peers.len(), MAX_PEERS_SHOWN);
        assert!(first.peers[..350].iter().all(|p| p.seeding));
        assert!(first.peers[350..].iter().all(|p| !p.seeding));
        let html = s.html();
        assert!(html.contains("and 200 more peers"));
        assert_eq!(links(&html), ["/peers?offset=0", "/?offset=2"]);
        let last = Listing::page(&t, now, Page::from_query("offset=2&limit=10&x"));
        assert_eq!((last.torrents.len(), last.torrents[0].peers.len()), (1, 10));
        assert_eq!(last.next, None);
        assert_eq!(links(&last.html()), ["/peers?offset=2", "/"]);
        assert_eq!(
            Page::from_query("limit=0&offset=x"),
            Page {
                offset: 0,
                limit: 1
            }
        );
    }

    #[test]
    fn empty_table_page() {
        let t = Table::new(
            TableLimits::from(&TrackerConfig::default()),
            None,
            Instant::now(),
        );
        let html = Listing::of(&t, Instant::now()).html();
        assert!(html.contains("0 torrents, 0 peers") && html.contains("nobody has announced"));
    }
}
