//! The JSON the web API answers with, built from the engine's views: a torrent's summary, its
//! detail (files, peers, piece map), and the compact piece map encoding. No I/O here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::proto::ids::InfoHash;
use crate::swarm::torrent::{PieceMap, PieceState, Snapshot, Torrent};

/// Most torrents in one page of the list.
pub const MAX_PAGE: usize = 200;
/// Torrents in a page of the list when the query names no `limit`.
pub const DEFAULT_PAGE: usize = 50;
/// Most cells in a piece map: a larger torrent gets several pieces a cell.
pub const MAX_CELLS: usize = 16_384;
/// Most peers, files and origins listed in one torrent's detail (the counts cover all).
pub const MAX_LISTED: usize = 500;
/// Piece-map characters of the first senders; later ones share [`OTHER_ORIGIN`].
pub const ORIGIN_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Piece-map character of a piece from a sender past [`ORIGIN_CHARS`].
pub const OTHER_ORIGIN: u8 = b'*';
/// A missing piece.
pub const MISSING: u8 = b'.';
/// A piece under way (or a cell of several pieces, some but not all verified).
pub const IN_FLIGHT: u8 = b'-';
/// A verified piece whose sender is not known (it was on disk at the start).
pub const LOCAL: u8 = b'#';

/// One torrent in the list.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// 40 hex digits.
    pub info_hash: String,
    /// The torrent's name (as given by the torrent: shown as text, never as markup).
    pub name: String,
    /// `downloading`, `seeding`, `paused` or `error`.
    pub state: &'static str,
    /// Why it failed, when `state` is `error`.
    pub error: Option<String>,
    /// Total size in bytes.
    pub total_bytes: u64,
    /// Verified bytes.
    pub have_bytes: u64,
    /// Verified share, 0 to 100.
    pub percent: f64,
    /// Pieces in the torrent.
    pub pieces: usize,
    /// Verified pieces.
    pub have_pieces: usize,
    /// Bytes per second received (payload).
    pub down_rate: u64,
    /// Bytes per second sent (payload).
    pub up_rate: u64,
    /// Seconds left at the current rate; `null` when complete or not moving.
    pub eta_secs: Option<u64>,
    /// Connected peers.
    pub peers: usize,
    /// Payload bytes received this run.
    pub downloaded: u64,
    /// Payload bytes sent this run.
    pub uploaded: u64,
}

/// One page of the list, with counts over all torrents.
#[derive(Debug, Serialize)]
pub struct List {
    /// Torrents in the session.
    pub count: usize,
    /// Offset of this page.
    pub offset: usize,
    /// Offset of the next page, `null` on the last.
    pub next: Option<usize>,
    /// Sum of every torrent's receive rate.
    pub down_rate: u64,
    /// Sum of every torrent's send rate.
    pub up_rate: u64,
    /// This page's torrents, in info-hash order.
    pub torrents: Vec<Summary>,
}

/// A connected peer.
#[derive(Debug, Serialize)]
pub struct Peer {
    /// Address and port.
    pub addr: String,
    /// Its peer id, as text.
    pub peer_id: String,
    /// The client the peer id names, e.g. `bt 0.0.0.1`; `unknown` when it names none.
    pub client: String,
    /// Where we learned of it: `tracker`, `manual`, `pex`, `dht`, `lsd`, `incoming`.
    pub source: &'static str,
    /// Its receive rate (bytes per second it sends us).
    pub down_rate: u64,
    /// Bytes per second we send it.
    pub up_rate: u64,
    /// Payload bytes it sent us that went into a piece.
    pub downloaded: u64,
    /// Payload bytes we sent it.
    pub uploaded: u64,
    /// Pieces it has.
    pub pieces: usize,
    /// It chokes us.
    pub choking_us: bool,
    /// We are interested in it.
    pub interested: bool,
    /// Our requests in flight to it.
    pub inflight: usize,
}

/// A file of the torrent.
#[derive(Debug, Serialize)]
pub struct File {
    /// Its path inside the torrent, `/`-separated.
    pub path: String,
    /// Its length in bytes.
    pub length: u64,
}

/// A sender in the piece map's legend.
#[derive(Debug, Serialize)]
pub struct Origin {
    /// The character its pieces have in the map.
    pub key: String,
    /// Its address.
    pub addr: String,
    /// Its peer id as text, when it was seen.
    pub peer_id: String,
    /// Verified pieces it sent most of.
    pub pieces: u32,
}

/// The piece map, encoded (see [`encode_map`]).
#[derive(Debug, Serialize)]
pub struct MapJson {
    /// Cells in the map.
    pub cells: usize,
    /// Pieces per cell (1 up to [`MAX_CELLS`] pieces).
    pub per_cell: usize,
    /// Run-length encoded cells: `N` then a cell character repeats it N times.
    pub map: String,
    /// The senders, in the order their characters are given.
    pub origins: Vec<Origin>,
    /// Senders past the legend (their pieces show as `*`).
    pub more_origins: usize,
}

/// One torrent in full.
#[derive(Debug, Serialize)]
pub struct Detail {
    /// What the list shows.
    #[serde(flatten)]
    pub summary: Summary,
    /// Files (the first [`MAX_LISTED`]).
    pub files: Vec<File>,
    /// Files in the torrent.
    pub file_count: usize,
    /// Connected peers (the first [`MAX_LISTED`], by address).
    pub peer_list: Vec<Peer>,
    /// The piece map.
    pub piece_map: MapJson,
}

/// Rates from byte counters sampled now and then, by key, over the last few samples (blocks
/// of 16 KiB arrive in steps: one second alone would swing between 0 and twice the rate);
/// entries not seen for a minute go.
#[derive(Debug)]
pub struct Rates<K> {
    samples: HashMap<K, Window>,
}

/// The recent samples of one key (at most [`WINDOW`]), and the rate they give.
#[derive(Debug, Clone)]
struct Window {
    /// (when, down, up), oldest first.
    points: std::collections::VecDeque<(Instant, u64, u64)>,
    rate: (u64, u64),
    seen: Instant,
}

/// Samples closer together than this keep the last rate (a fast poller sees steady numbers).
const MIN_SPAN: Duration = Duration::from_millis(500);
/// Samples a rate is taken over.
const WINDOW: usize = 5;

impl<K: std::hash::Hash + Eq> Default for Rates<K> {
    fn default() -> Self {
        Rates {
            samples: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> Rates<K> {
    /// The (down, up) rate of `key` whose counters read `down` and `up` at `now`.
    pub fn update(&mut self, key: K, down: u64, up: u64, now: Instant) -> (u64, u64) {
        let w = self.samples.entry(key).or_insert_with(|| Window {
            points: std::collections::VecDeque::from([(now, down, up)]),
            rate: (0, 0),
            seen: now,
        });
        w.seen = now;
        let last = w.points.back().map_or(now, |p| p.0);
        if now.saturating_duration_since(last) >= MIN_SPAN {
            if w.points.len() == WINDOW {
                w.points.pop_front();
            }
            w.points.push_back((now, down, up));
            let (t0, d0, u0) = w.points[0];
            let span = now.saturating_duration_since(t0).as_secs_f64();
            let per_sec = |a: u64, b: u64| (a.saturating_sub(b) as f64 / span) as u64;
            w.rate = (per_sec(down, d0), per_sec(up, u0));
        }
        w.rate
    }

    /// The last rate of `key` (zero when never sampled).
    pub fn get(&self, key: &K) -> (u64, u64) {
        self.samples.get(key).map_or((0, 0), |s| s.rate)
    }

    /// Forget keys not updated for a minute.
    pub fn prune(&mut self, now: Instant) {
        self.samples
            .retain(|_, s| now.saturating_duration_since(s.seen) < Duration::from_secs(60));
    }
}

/// The summary of `t`, whose snapshot is `s` and rates `rate`.
pub fn summary(t: &Torrent, s: &Snapshot, rate: (u64, u64)) -> Summary {
    let state = if s.failure.is_some() {
        "error"
    } else if t.is_paused() {
        "paused"
    } else if s.complete() {
        "seeding"
    } else {
        "downloading"
    };
    let left = s.total_bytes - s.have_bytes.min(s.total_bytes);
    Summary {
        info_hash: t.info_hash().hex(),
        name: t.meta.info.name.clone(),
        state,
        error: s.failure.clone(),
        total_bytes: s.total_bytes,
        have_bytes: s.have_bytes,
        percent: crate::ui::percent(s.have_bytes, s.total_bytes),
        pieces: s.pieces,
        have_pieces: s.have_pieces,
        down_rate: rate.0,
        up_rate: rate.1,
        eta_secs: (left > 0 && rate.0 > 0 && state == "downloading").then(|| left.div_ceil(rate.0)),
        peers: s.peers.len(),
        downloaded: s.downloaded,
        uploaded: s.uploaded,
    }
}

/// The detail of `t`; `rates` gives each peer's rates.
pub fn detail(
    t: &Torrent,
    s: &Snapshot,
    rate: (u64, u64),
    peer_rates: &mut Rates<(InfoHash, SocketAddr)>,
    now: Instant,
) -> Detail {
    let info = &t.meta.info;
    let files = (0..info.files.len().min(MAX_LISTED))
        .map(|i| File {
            path: t
                .meta
                .relative_path(i)
                .iter()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            length: info.files[i].length,
        })
        .collect();
    let ih = t.info_hash();
    let peer_list = s
        .peers
        .iter()
        .take(MAX_LISTED)
        .map(|p| {
            let (down_rate, up_rate) =
                peer_rates.update((ih, p.addr), p.downloaded, p.uploaded, now);
            Peer {
                addr: p.addr.to_string(),
                peer_id: p.client.clone(),
                client: client_name(&p.client),
                source: p.source.name(),
                down_rate,
                up_rate,
                downloaded: p.downloaded,
                uploaded: p.uploaded,
                pieces: p.pieces,
                choking_us: p.choking_us,
                interested: p.interested,
                inflight: p.inflight,
            }
        })
        .collect();
    let map = t.piece_map();
    let totals: HashMap<SocketAddr, (&str, u32)> = s
        .history
        .iter()
        .map(|(a, h)| (*a, (h.client.as_str(), h.pieces)))
        .collect();
    Detail {
        summary: summary(t, s, rate),
        files,
        file_count: info.files.len(),
        peer_list,
        piece_map: map_json(&map, &totals),
    }
}

/// The piece map as JSON: cells, legend.
fn map_json(map: &PieceMap, totals: &HashMap<SocketAddr, (&str, u32)>) -> MapJson {
    let (cells, per_cell, map_text) = encode_map(&map.pieces);
    let origins = map
        .origins
        .iter()
        .zip(ORIGIN_CHARS)
        .map(|(a, &c)| {
            let (peer_id, pieces) = totals.get(a).copied().unwrap_or(("", 0));
            Origin {
                key: (c as char).to_string(),
                addr: a.to_string(),
                peer_id: peer_id.to_string(),
                pieces,
            }
        })
        .collect();
    MapJson {
        cells,
        per_cell,
        map: map_text,
        origins,
        more_origins: map.origins.len().saturating_sub(ORIGIN_CHARS.len()),
    }
}

/// The character of one piece.
fn piece_char(p: PieceState) -> u8 {
    match p {
        PieceState::Missing => MISSING,
        PieceState::InFlight => IN_FLIGHT,
        PieceState::Verified(None) => LOCAL,
        PieceState::Verified(Some(i)) => ORIGIN_CHARS
            .get(i as usize)
            .copied()
            .unwrap_or(OTHER_ORIGIN),
    }
}

/// The map in at most [`MAX_CELLS`] cells, run-length encoded: returns (cells, pieces per
/// cell, text). A cell of several pieces is its first piece's character when all are
/// verified, [`MISSING`] when none is verified or under way, else [`IN_FLIGHT`]. A run of
/// N > 2 equal cells is written `N` followed by the character; shorter runs as they are.
pub fn encode_map(pieces: &[PieceState]) -> (usize, usize, String) {
    let per_cell = pieces.len().div_ceil(MAX_CELLS).max(1);
    let cells = pieces.chunks(per_cell).map(|chunk| {
        let chars: Vec<u8> = chunk.iter().map(|p| piece_char(*p)).collect();
        let verified = |c: &u8| *c != MISSING && *c != IN_FLIGHT;
        if chars.iter().all(verified) {
            chars[0]
        } else if chars.iter().all(|c| *c == MISSING) {
            MISSING
        } else {
            IN_FLIGHT
        }
    });
    let mut out = String::new();
    let mut count = 0;
    let mut run: Option<(u8, usize)> = None;
    let flush = |out: &mut String, (c, n): (u8, usize)| {
        if n > 2 {
            out.push_str(&n.to_string());
            out.push(c as char);
        } else {
            (0..n).for_each(|_| out.push(c as char));
        }
    };
    for c in cells {
        count += 1;
        run = match run {
            Some((r, n)) if r == c => Some((r, n + 1)),
            Some(prev) => {
                flush(&mut out, prev);
                Some((c, 1))
            }
            None => Some((c, 1)),
        };
    }
    if let Some(prev) = run {
        flush(&mut out, prev);
    }
    (count, per_cell, out)
}

/// The client a peer id names, from its Azureus-style prefix (`-TR3000-` is Transmission
/// 3.00); `unknown` otherwise.
pub fn client_name(peer_id: &str) -> String {
    let b = peer_id.as_bytes();
    if b.len() < 8 || b[0] != b'-' || b[7] != b'-' || !b[1..7].iter().all(u8::is_ascii_alphanumeric)
    {
        return "unknown".into();
    }
    let code = &peer_id[1..3];
    let version = &peer_id[3..7];
    let name = match code {
        "BT" => "bt",
        "TR" => "Transmission",
        "LT" | "lt" => "libtorrent",
        "qB" => "qBittorrent",
        "DE" => "Deluge",
        "UT" => "µTorrent",
        "AZ" => "Vuze",
        "rq" => "rqbit",
        "AR" => "aria2",
        _ => return format!("unknown ({code} {version})"),
    };
    let dotted: Vec<String> = version.chars().map(String::from).collect();
    format!("{name} {}", dotted.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut n = 0usize;
        for c in text.bytes() {
            if c.is_ascii_digit() {
                n = n * 10 + (c - b'0') as usize;
            } else {
                out.extend(std::iter::repeat_n(c, n.max(1)));
                n = 0;
            }
        }
        out
    }

    #[test]
    fn the_map_round_trips_and_stays_bounded() {
        use PieceState::*;
        let pieces = [
            Missing,
            Missing,
            Missing,
            InFlight,
            Verified(None),
            Verified(Some(0)),
            Verified(Some(1)),
            Verified(Some(1)),
            Verified(Some(70)),
        ];
        let (cells, per, text) = encode_map(&pieces);
        assert_eq!((cells, per), (9, 1));
        assert_eq!(text, "3.-#abb*");
        assert_eq!(decode(&text), b"...-#abb*");
        // The worst case for run-length: 16,000 pieces from two peers in turn.
        let alternating: Vec<PieceState> = (0..16_000).map(|i| Verified(Some(i % 2))).collect();
        let (_, _, text) = encode_map(&alternating);
        assert_eq!(text.len(), 16_000);
        // A million pieces still make at most MAX_CELLS cells.
        let huge: Vec<PieceState> = (0..1_000_000)
            .map(|i| Verified(Some((i / 3 % 2) as u16)))
            .collect();
        let (cells, per, text) = encode_map(&huge);
        assert!(cells <= MAX_CELLS && per == 62, "{cells} {per}");
        assert!(text.len() <= MAX_CELLS, "{}", text.len());
        let mixed = [Verified(Some(0)), Missing, Missing, Missing];
        assert_eq!(encode_map(&mixed).2, "a3.");
    }

    #[test]
    fn client_names_come_from_the_prefix() {
        assert_eq!(client_name("-BT0001-abcdefghijkl"), "bt 0.0.0.1");
        assert_eq!(client_name("-TR3000-abcdefghijkl"), "Transmission 3.0.0.0");
        assert_eq!(client_name("-ZZ0001-abcdefghijkl"), "unknown (ZZ 0001)");
        assert_eq!(client_name("<script>x"), "unknown");
        assert_eq!(client_name("ab"), "unknown");
    }

    #[test]
    fn rates_need_half_a_second_between_samples() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        assert_eq!(r.update(1, 0, 0, t0), (0, 0));
        assert_eq!(
            r.update(1, 1000, 0, t0 + Duration::from_millis(100)),
            (0, 0)
        );
        assert_eq!(
            r.update(1, 2000, 500, t0 + Duration::from_secs(2)),
            (1000, 250)
        );
        assert_eq!(r.get(&1), (1000, 250));
        // A second with nothing new: the rate is over the whole window, not zero.
        assert_eq!(
            r.update(1, 2000, 500, t0 + Duration::from_secs(4)),
            (500, 125)
        );
        // The window holds the last five samples: once none of them saw progress, zero.
        assert_eq!(
            r.update(1, 2000, 500, t0 + Duration::from_secs(5)),
            (400, 100)
        );
        for s in 6..9 {
            r.update(1, 2000, 500, t0 + Duration::from_secs(s));
        }
        assert_eq!(r.get(&1), (0, 0));
        r.prune(t0 + Duration::from_secs(120));
        assert_eq!(r.get(&1), (0, 0));
    }
}
