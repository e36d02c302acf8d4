//! The swarm table: every torrent the tracker knows, with its seeders and leechers. Announce in,
//! answer out; no sockets and no clock (the caller passes the source address and the time), so
//! every rule here is tested on plain values.
//!
//! Rules: a peer is its (info-hash, IP, port); its address is the connection's source IP unless
//! the config allows the `ip` parameter; nobody is sent back to itself; `stopped` removes at once;
//! `completed` (or a known leecher reporting `left=0`) counts one download, once per peer and
//! torrent however often it cycles; peers silent for two intervals expire; torrents, peers per
//! torrent and peers per address (an IPv4 address or an IPv6 /64, over all torrents) are
//! capped; an access list, when given, refuses every other torrent.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use super::peer_list::{stamp, unstamp, Peer, PeerAddr, PeerList, V4List, V6List};
use crate::config::TrackerConfig;
use crate::proto::metainfo::InfoHash;
use crate::proto::tracker::{
    AnnounceRequest, AnnounceResponse, Event, PeerEntry, ScrapeResponse, ScrapeStats,
};

/// Peers sent when the announce does not say `numwant`.
pub const DEFAULT_NUMWANT: usize = 50;
/// Most peers sent in one answer, whatever `numwant` says.
pub const MAX_NUMWANT: usize = 200;
/// Most torrents in an answer to a scrape that names none ("all").
pub const MAX_SCRAPE_ALL: usize = 1000;

/// The table's settings, taken from `[tracker]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLimits {
    /// Seconds between regular announces.
    pub interval: u32,
    /// Seconds at least between announces, if sent.
    pub min_interval: Option<u32>,
    /// Seconds of silence after which a peer is dropped.
    pub peer_timeout: u32,
    /// Most torrents.
    pub max_torrents: usize,
    /// Most peers per torrent.
    pub max_peers_per_torrent: usize,
    /// Most peers per address (IPv4 address or IPv6 /64) over all torrents.
    pub max_peers_per_ip: usize,
    /// Whether the `ip` parameter sets the peer's address.
    pub allow_ip_param: bool,
}

impl From<&TrackerConfig> for TableLimits {
    fn from(c: &TrackerConfig) -> TableLimits {
        let interval = u32::try_from(c.interval.max(1)).unwrap_or(u32::MAX);
        TableLimits {
            interval,
            min_interval: u32::try_from(c.min_interval).ok().filter(|&m| m > 0),
            peer_timeout: interval.saturating_mul(2),
            max_torrents: c.max_torrents,
            max_peers_per_torrent: c.max_peers_per_torrent,
            max_peers_per_ip: c.max_peers_per_ip,
            allow_ip_param: c.allow_ip_param,
        }
    }
}

/// Why an announce was refused; the text is the `failure reason`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// The access list does not name the torrent.
    #[error("torrent not allowed on this tracker")]
    NotAllowed,
    /// The table holds `max_torrents` already.
    #[error("tracker full: it tracks {0} torrents already")]
    TooManyTorrents(usize),
    /// The torrent holds `max_peers_per_torrent` already.
    #[error("torrent full: it has {0} peers already")]
    TooManyPeers(usize),
    /// The address holds `max_peers_per_ip` peers already.
    #[error("too many peers from your address: it has {0} already")]
    TooManyFromAddress(usize),
    /// `ip` is allowed but is not an IP address.
    #[error("ip is not an IP address")]
    BadIp,
}

/// One torrent's swarm: seeders and leechers, IPv4 and IPv6 apart (an IPv4 record is 10
/// bytes, an IPv6 one 22).
#[derive(Debug, Default)]
pub struct Swarm {
    seeders4: V4List,
    leechers4: V4List,
    seeders6: V6List,
    leechers6: V6List,
    /// `completed` events seen, once per peer.
    pub downloaded: u32,
    /// Peers whose download counted and that left since (a peer in the lists carries the flag
    /// in its record). At most `max_peers_per_torrent` are remembered; beyond that a download
    /// still counts but is not remembered.
    departed: HashSet<PeerAddr>,
}

impl Swarm {
    /// How many seeders.
    pub fn seeders(&self) -> usize {
        self.seeders4.len() + self.seeders6.len()
    }

    /// How many leechers.
    pub fn leechers(&self) -> usize {
        self.leechers4.len() + self.leechers6.len()
    }

    /// True when it has no peers.
    pub fn is_empty(&self) -> bool {
        self.seeders4.is_empty()
            && self.leechers4.is_empty()
            && self.seeders6.is_empty()
            && self.leechers6.is_empty()
    }

    /// Its seeders (`true`) or leechers, decoded, in no particular order.
    pub fn peers(&self, seeders: bool) -> impl Iterator<Item = Peer> + '_ {
        let (v4, v6) = match seeders {
            true => (&self.seeders4, &self.seeders6),
            false => (&self.leechers4, &self.leechers6),
        };
        let v4 = v4.records().iter().map(V4List::peer);
        v4.chain(v6.records().iter().map(V6List::peer))
    }

    /// Seeders, leechers and downloads.
    pub fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.seeders() as u32,
            incomplete: self.leechers() as u32,
            downloaded: self.downloaded,
        }
    }

    /// Whether the peer with `key` is a seeder, and its stamp, if present.
    fn lookup(&self, key: &[u8], v4: bool) -> Option<(bool, u32)> {
        let (seeders, leechers) = match v4 {
            true => (self.seeders4.get(key), self.leechers4.get(key)),
            false => (self.seeders6.get(key), self.leechers6.get(key)),
        };
        seeders.map(|s| (true, s)).or(leechers.map(|s| (false, s)))
    }

    fn remove(&mut self, key: &[u8], v4: bool, seeder: bool) {
        match (v4, seeder) {
            (true, true) => self.seeders4.remove(key),
            (true, false) => self.leechers4.remove(key),
            (false, true) => self.seeders6.remove(key),
            (false, false) => self.leechers6.remove(key),
        };
    }

    fn insert(&mut self, key: &[u8], v4: bool, seeder: bool, stamp: u32) {
        match (v4, seeder) {
            (true, true) => self.seeders4.insert(key, stamp),
            (true, false) => self.leechers4.insert(key, stamp),
            (false, true) => self.seeders6.insert(key, stamp),
            (false, false) => self.leechers6.insert(key, stamp),
        }
    }
}

/// Remember that `peer`, whose download counted, left (up to `cap` such peers).
fn remember(departed: &mut HashSet<PeerAddr>, peer: PeerAddr, cap: usize) {
    if departed.len() < cap {
        departed.insert(peer);
    }
}

/// Every torrent's swarm.
#[derive(Debug)]
pub struct Table {
    torrents: HashMap<[u8; 20], Swarm>,
    limits: TableLimits,
    access: Option<HashSet<[u8; 20]>>,
    epoch: Instant,
    rng: u64,
    /// Peers per address, over all torrents.
    per_ip: PerAddress,
}

impl Table {
    /// An empty table. `now` is its epoch; `access`, when given, lists the only torrents served.
    pub fn new(limits: TableLimits, access: Option<HashSet<[u8; 20]>>, now: Instant) -> Table {
        Table {
            torrents: HashMap::new(),
            limits,
            access,
            epoch: now,
            rng: 0x9e37_79b9_7f4a_7c15,
            per_ip: PerAddress::default(),
        }
    }

    /// Record an announce from a connection whose source address is `source`, and answer it.
    pub fn announce(
        &mut self,
        req: &AnnounceRequest,
        source: IpAddr,
        now: Instant,
    ) -> Result<AnnounceResponse, Refusal> {
        let ip = match (&req.ip, self.limits.allow_ip_param) {
            (Some(claimed), true) => claimed.parse().map_err(|_| Refusal::BadIp)?,
            _ => source,
        };
        let me = PeerAddr::new(ip, req.port);
        if !self.allowed(&req.info_hash) {
            return Err(Refusal::NotAllowed);
        }
        let count = self.torrents.len();
        let torrent = match self.torrents.entry(req.info_hash) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if req.event == Event::Stopped => return Ok(self.answer(None)),
            Entry::Vacant(_) if count >= self.limits.max_torrents => {
                return Err(Refusal::TooManyTorrents(count))
            }
            Entry::Vacant(e) => e.insert(Swarm::default()),
        };
        let (key, len) = me.key();
        let (key, v4) = (&key[..len], me.ip.is_ipv4());
        let known = torrent.lookup(key, v4);
        let was_seeder = known.map(|(seeder, _)| seeder);
        // A download finished: `completed`, or a known leecher now reporting nothing left
        // (aria2 sends no `completed` when it stops right after the last piece).
        let finished = match (was_seeder, req.event) {
            (Some(true), _) => false,
            (_, Event::Completed) => true,
            (Some(false), _) => req.left == 0,
            (None, _) => false,
        };
        let mut counted = match known {
            Some((_, stamp)) => unstamp(stamp).1,
            None => torrent.departed.contains(&me),
        };
        if finished && !counted {
            torrent.downloaded = torrent.downloaded.saturating_add(1);
            counted = true;
        }
        let cap = self.limits.max_peers_per_torrent;
        if req.event == Event::Stopped {
            if let Some(seeder) = was_seeder {
                torrent.remove(key, v4, seeder);
                self.per_ip.forget(me.ip);
            }
            if counted {
                remember(&mut torrent.departed, me, cap);
            }
            let stats = torrent.stats();
            return Ok(self.answer(Some(stats)));
        }
        if was_seeder.is_none() {
            let peers = torrent.seeders() + torrent.leechers();
            let held = self.per_ip.held(me.ip);
            let refusal = match () {
                _ if peers >= cap => Some(Refusal::TooManyPeers(peers)),
                _ if *held as usize >= self.limits.max_peers_per_ip => {
                    Some(Refusal::TooManyFromAddress(*held as usize))
                }
                _ => None,
            };
            if let Some(refusal) = refusal {
                if counted {
                    remember(&mut torrent.departed, me, cap);
                }
                if torrent.is_empty() && torrent.downloaded == 0 {
                    self.torrents.remove(&req.info_hash);
                }
                return Err(refusal);
            }
            *held += 1;
            if counted {
                // The flag moves into the peer's record.
                torrent.departed.remove(&me);
            }
        }
        let seeder = req.left == 0;
        if let Some(was) = was_seeder.filter(|&was| was != seeder) {
            torrent.remove(key, v4, was);
        }
        let stamp = stamp(seconds_since(self.epoch, now), counted);
        torrent.insert(key, v4, seeder, stamp);
        let want = req
            .numwant
            .map_or(DEFAULT_NUMWANT, |n| (n as usize).min(MAX_NUMWANT));
        self.rng = xorshift(self.rng);
        let torrent = &self.torrents[&req.info_hash];
        let mut answer = self.answer(Some(torrent.stats()));
        answer.peers = pick(torrent, seeder, me, want, self.rng);
        Ok(answer)
    }

    /// The counts of the torrents named, or of every torrent (at most [`MAX_SCRAPE_ALL`]) when
    /// none is named. Unknown torrents count zero.
    pub fn scrape(&self, info_hashes: &[[u8; 20]]) -> ScrapeResponse {
        let files = if info_hashes.is_empty() {
            self.torrents
                .iter()
                .take(MAX_SCRAPE_ALL)
                .map(|(h, t)| (*h, t.stats()))
                .collect()
        } else {
            info_hashes
                .iter()
                .map(|h| {
                    (
                        *h,
                        self.torrents.get(h).map(Swarm::stats).unwrap_or_default(),
                    )
                })
                .collect()
        };
        ScrapeResponse { files }
    }

    /// Drop peers silent for longer than the peer timeout, and torrents left without peers.
    /// Returns how many peers went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let now = seconds_since(self.epoch, now);
        let timeout = self.limits.peer_timeout;
        let cap = self.limits.max_peers_per_torrent;
        let per_ip = &mut self.per_ip;
        let mut removed = 0;
        self.torrents.retain(|_, t| {
            let departed = &mut t.departed;
            let mut sweep = Sweep {
                now,
                timeout,
                cap,
                per_ip: &mut *per_ip,
                departed,
            };
            removed += sweep.list(&mut t.seeders4)
                + sweep.list(&mut t.leechers4)
                + sweep.list(&mut t.seeders6)
                + sweep.list(&mut t.leechers6);
            !t.is_empty()
        });
        if self.torrents.capacity() > 4 * self.torrents.len().max(64) {
            self.torrents.shrink_to_fit();
        }
        self.per_ip.shrink();
        removed
    }

    /// Every torrent, in no particular order.
    pub fn torrents(&self) -> impl Iterator<Item = (InfoHash, &Swarm)> {
        self.torrents.iter().map(|(h, t)| (InfoHash(*h), t))
    }

    /// How many torrents and peers the table holds.
    pub fn counts(&self) -> (usize, usize) {
        let peers = self
            .torrents
            .values()
            .map(|t| t.seeders() + t.leechers())
            .sum();
        (self.torrents.len(), peers)
    }

    /// Seconds since `last_seen` (a [`Peer`] field), as of `now`.
    pub fn age(&self, last_seen: u32, now: Instant) -> u32 {
        seconds_since(self.epoch, now).saturating_sub(last_seen)
    }

    /// The settings.
    pub fn limits(&self) -> &TableLimits {
        &self.limits
    }

    fn allowed(&self, info_hash: &[u8; 20]) -> bool {
        self.access.as_ref().is_none_or(|a| a.contains(info_hash))
    }

    fn answer(&self, stats: Option<ScrapeStats>) -> AnnounceResponse {
        let stats = stats.unwrap_or_default();
        AnnounceResponse {
            interval: self.limits.interval,
            min_interval: self.limits.min_interval,
            complete: stats.complete,
            incomplete: stats.incomplete,
            peers: Vec::new(),
            warning: None,
        }
    }
}

/// Peers per address over all torrents, for `max_peers_per_ip`: per IPv4 address, and per
/// IPv6 /64 (one host usually holds a whole /64).
#[derive(Debug, Default)]
struct PerAddress {
    v4: HashMap<u32, u32>,
    v6: HashMap<u64, u32>,
}

impl PerAddress {
    /// The count of `ip`'s address (0 and kept until [`PerAddress::forget`] or a shrink).
    fn held(&mut self, ip: IpAddr) -> &mut u32 {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.entry(v4.into()).or_insert(0),
            IpAddr::V6(v6) => self.v6.entry(prefix64(v6)).or_insert(0),
        }
    }

    /// One peer at `ip` left the table.
    fn forget(&mut self, ip: IpAddr) {
        fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
            if let Entry::Occupied(mut e) = map.entry(key) {
                *e.get_mut() = e.get().saturating_sub(1);
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        match ip.to_canonical() {
            IpAddr::V4(v4) => down(&mut self.v4, u32::from(v4)),
            IpAddr::V6(v6) => down(&mut self.v6, prefix64(v6)),
        }
    }

    /// Drop zero counts left by refused announces, and give back memory.
    fn shrink(&mut self) {
        self.v4.retain(|_, n| *n > 0);
        self.v6.retain(|_, n| *n > 0);
        if self.v4.capacity() > 4 * self.v4.len().max(64) {
            self.v4.shrink_to_fit();
        }
        if self.v6.capacity() > 4 * self.v6.len().max(64) {
            self.v6.shrink_to_fit();
        }
    }
}

/// The /64 an IPv6 address is in.
fn prefix64(v6: std::net::Ipv6Addr) -> u64 {
    (u128::from(v6) >> 64) as u64
}

/// Expiry of one torrent's lists.
struct Sweep<'a> {
    now: u32,
    timeout: u32,
    cap: usize,
    per_ip: &'a mut PerAddress,
    departed: &'a mut HashSet<PeerAddr>,
}

impl Sweep<'_> {
    /// Drop the silent peers of `list`; returns how many went.
    fn list<const N: usize>(&mut self, list: &mut PeerList<N>) -> usize {
        list.retain(|record| {
            let (seen, counted) = unstamp(PeerList::<N>::stamp_of(record));
            let keep = self.now.saturating_sub(seen) <= self.timeout;
            if !keep {
                let peer = PeerList::<N>::peer(record).key;
                self.per_ip.forget(peer.ip);
                if counted {
                    remember(self.departed, peer, self.cap);
                }
            }
            keep
        })
    }
}

/// Up to `want` peers for `me`: a seeder gets leechers only (seeders have nothing to trade),
/// a leecher gets both. A window at a random start keeps answers varied at O(want) cost.
fn pick(t: &Swarm, seeder: bool, me: PeerAddr, want: usize, random: u64) -> Vec<PeerEntry> {
    let (none4, none6): (&[[u8; 10]], &[[u8; 22]]) = (&[], &[]);
    let (a4, b4, a6, b6) = match seeder {
        true => (t.leechers4.records(), none4, t.leechers6.records(), none6),
        false => (
            t.seeders4.records(),
            t.leechers4.records(),
            t.seeders6.records(),
            t.leechers6.records(),
        ),
    };
    let n4 = a4.len() + b4.len();
    let n6 = a6.len() + b6.len();
    let total = n4 + n6;
    let addr_at = |i: usize| match i {
        i if i < a4.len() => V4List::addr(&a4[i]),
        i if i < n4 => V4List::addr(&b4[i - a4.len()]),
        i if i < n4 + a6.len() => V6List::addr(&a6[i - n4]),
        i => V6List::addr(&b6[i - n4 - a6.len()]),
    };
    let mut out = Vec::with_capacity(want.min(total));
    let start = if total > want + 1 {
        (random % total as u64) as usize
    } else {
        0
    };
    let me = me.addr();
    for i in 0..total {
        if out.len() == want {
            break;
        }
        let addr = addr_at((start + i) % total);
        if addr != me {
            out.push(PeerEntry {
                addr,
                peer_id: None,
            });
        }
    }
    out
}

/// Whole seconds from `epoch` to `now` (0 if `now` is earlier), saturating at `u32::MAX`
/// (136 years).
fn seconds_since(epoch: Instant, now: Instant) -> u32 {
    u32::try_from(now.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
}

/// A step of xorshift64: cheap, good enough to vary which peers an answer shows.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Parse an access list: one info-hash in hex a line; blank lines and `#` comments ignored.
/// The error names the line.
pub fn parse_access_list(text: &str) -> Result<HashSet<[u8; 20]>, String> {
    let mut set = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let hash = InfoHash::from_hex(line)
            .ok_or_else(|| format!("line {}: {line:?} is not a 40-digit hex info-hash", n + 1))?;
        set.insert(hash.0);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const IP: [u8; 4] = [127, 0, 0, 1];

    fn limits() -> TableLimits {
        TableLimits::from(&TrackerConfig::default())
    }

    fn req(hash: u8, port: u16, left: u64, event: Event) -> AnnounceRequest {
        AnnounceRequest {
            left,
            event,
            ..AnnounceRequest::new([hash; 20], [port as u8; 20], port)
        }
    }

    fn ports(r: &AnnounceResponse) -> Vec<u16> {
        let mut p: Vec<u16> = r.peers.iter().map(|p| p.addr.port()).collect();
        p.sort();
        p
    }

    #[test]
    fn peers_on_one_ip_see_each_other_but_not_themselves() {
        let now = Instant::now();
        let mut t = Table::new(limits(), None, now);
        let a = t
            .announce(&req(1, 6881, 0, Event::Started), IP.into(), now)
            .unwrap();
        assert_eq!((a.complete, a.incomplete, a.peers.len()), (1, 0, 0));
        let b = t
            .announce(&req(1, 6882, 10, Event::Started), IP.into(), now)
            .unwrap();
        assert_eq!((b.complete, b.incomplete), (1, 1));
        assert_eq!(ports(&b), [6881]);
        assert_eq!(b.peers[0].addr.ip(), IpAddr::from(IP));
        assert_eq!(b.peers[0].peer_id, None, "no peer ids are kept");
        let c = t
            .announce(&req(1, 6883, 10, Event::None), IP.into(), now)
            .unwrap();
        assert_eq!(ports(&c), [6881, 6882]);
        // The seeder gets leechers only.
        let a = t
            .announce(&req(1, 6881, 0, Event::None), IP.into(), now)
            .unwrap();
        assert_eq!(ports(&a), [6882, 6883]);
        // Another torrent is another swarm.
        let other = t
            .announce(&req(2, 6881, 5, Event::None), IP.into(), now)
            .unwrap();
        assert_eq!(
            (other.complete, other.incomplete, other.peers.len()),
            (0, 1, 0)
        );
        assert_eq!(t.counts(), (2, 4));
    }

    #[test]
    fn stopped_removes_and_completed_counts_once() {
        let now = Instant::now();
        let mut t = Table::new(limits(), None, now);
        t.announce(&req(1, 1, 10, Event::Started), IP.into(), now)
            .unwrap();
        t.announce(&req(1, 2, 10, Event::Started), IP.into(), now)
            .unwrap();
        let r = t
            .announce(&req(1, 1, 0, Event::Completed), IP.into(), now)
            .unwrap();
        assert_eq!((r.complete, r.incomplete), (1, 1));
        // A repeated `completed` from a peer already seeding is not another download.
        t.announce(&req(1, 1, 0, Event::Completed), IP.into(), now)
            .unwrap();
        assert_eq!(
            t.scrape(&[[1; 20]]).get(&[1; 20]).unwrap(),
            ScrapeStats {
                complete: 1,
                incomplete: 1,
                downloaded: 1
            }
        );
        let r = t
            .announce(&req(1, 2, 10, Event::Stopped), IP.into(), now)
            .unwrap();
        assert_eq!((r.complete, r.incomplete, r.peers.len()), (1, 0, 0));
        // A leecher that stops with nothing left finished too (aria2 skips `completed`); a
        // peer that starts as a seeder did not download.
        t.announce(&req(1, 3, 10, Event::Started), IP.into(), now)
            .unwrap();
        t.announce(&req(1, 3, 0, Event::Stopped), IP.into(), now)
            .unwrap();
        t.announce(&req(1, 4, 0, Event::Started), IP.into(), now)
            .unwrap();
        t.announce(&req(1, 4, 0, Event::Stopped), IP.into(), now)
            .unwrap();
        assert_eq!(t.scrape(&[[1; 20]]).get(&[1; 20]).unwrap().downloaded, 2);
        // Stopping an unknown torrent creates nothing.
        let r = t
            .announce(&req(9, 2, 10, Event::Stopped), IP.into(), now)
            .unwrap();
        assert_eq!((r.complete, r.incomplete), (0, 0));
        assert_eq!(t.counts(), (1, 1));
        // Scrape of everything, and of an unknown torrent.
        let all = t.scrape(&[]);
        assert_eq!(
            all.files,
            vec![(
                [1; 20],
                ScrapeStats {
                    complete: 1,
                    incomplete: 0,
                    downloaded: 2
                }
            )]
        );
        assert_eq!(
            t.scrape(&[[7; 20]]).get(&[7; 20]),
            Some(ScrapeStats::default())
        );
    }

    #[test]
    fn numwant_defaults_caps_and_varies() {
        let now = Instant::now();
        let mut t = Table::new(limits(), None, now);
        for port in 1..=300 {
            t.announce(&req(1, port, 0, Event::None), IP.into(), now)
                .unwrap();
        }
        let mut asker = req(1, 1000, 5, Event::None);
        assert_eq!(
            t.announce(&asker, IP.into(), now).unwrap().peers.len(),
            DEFAULT_NUMWANT
        );
        asker.numwant = Some(1_000_000);
        let first = t.announce(&asker, IP.into(), now).unwrap();
        assert_eq!(first.peers.len(), MAX_NUMWANT);
        let second = t.announce(&asker, IP.into(), now).unwrap();
        assert_ne!(ports(&first), ports(&second), "answers should vary");
        asker.numwant = Some(0);
        assert!(t.announce(&asker, IP.into(), now).unwrap().peers.is_empty());
        // All 300 when asking for all but yourself: nobody twice, never yourself.
        let mut me = req(1, 150, 0, Event::None);
        me.left = 3;
        me.numwant = Some(200);
        let mut t2 = Table::new(limits(), None, now);
        for port in 1..=201 {
            t2.announce(&req(1, port, 0, Event::None), IP.into(), now)
                .unwrap();
        }
        let r = t2.announce(&me, IP.into(), now).unwrap();
        let p = ports(&r);
        assert_eq!(p.len(), 200);
        assert!(!p.contains(&150));
        assert!(p.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn peers_expire_after_two_intervals() {
        let start = Instant::now();
        let mut t = Table::new(limits(), None, start);
        let interval = u64::from(limits().interval);
        t.announce(&req(1, 1, 0, Event::None), IP.into(), start)
            .unwrap();
        let later = start + Duration::from_secs(interval);
        t.announce(&req(1, 2, 0, Event::None), IP.into(), later)
            .unwrap();
        assert_eq!(t.expire(start + Duration::from_secs(2 * interval)), 0);
        assert_eq!(t.expire(start + Duration::from_secs(2 * interval + 1)), 1);
        assert_eq!(t.counts(), (1, 1));
        assert_eq!(t.expire(start + Duration::from_secs(3 * interval + 1)), 1);
        assert_eq!(t.counts(), (0, 0));
        // An announce keeps a peer alive.
        let mut t = Table::new(limits(), None, start);
        for step in 0..10 {
            let at = start + Duration::from_secs(step * interval);
            t.announce(&req(1, 1, 0, Event::None), IP.into(), at)
                .unwrap();
            assert_eq!(t.expire(at), 0);
        }
    }

    #[test]
    fn caps_refuse_with_clear_reasons() {
        let now = Instant::now();
        let l = TableLimits {
            max_torrents: 2,
            max_peers_per_torrent: 3,
            ..limits()
        };
        let mut t = Table::new(l, None, now);
        for hash in 1..=2 {
            t.announce(&req(hash, 1, 0, Event::None), IP.into(), now)
                .unwrap();
        }
        let e = t
            .announce(&req(3, 1, 0, Event::None), IP.into(), now)
            .unwrap_err();
        assert_eq!(e.to_string(), "tracker full: it tracks 2 torrents already");
        for port in 2..=3 {
            t.announce(&req(1, port, 5, Event::None), IP.into(), now)
                .unwrap();
        }
        let e = t
            .announce(&req(1, 4, 0, Event::None), IP.into(), now)
            .unwrap_err();
        assert_eq!(e, Refusal::TooManyPeers(3));
        assert_eq!(e.to_string(), "torrent full: it has 3 peers already");
        // Known peers still announce, and may change state.
        let r = t
            .announce(&req(1, 3, 0, Event::Completed), IP.into(), now)
            .unwrap();
        assert_eq!((r.complete, r.incomplete), (2, 1));
        assert_eq!(t.counts(), (2, 4));
    }

    #[test]
    fn access_list_and_ip_parameter() {
        let now = Instant::now();
        let list =
            parse_access_list(&format!("# ok\n\n{}  # one\n", hex::encode([1u8; 20]))).unwrap();
        let mut t = Table::new(limits(), Some(list), now);
        t.announce(&req(1, 1, 0, Event::None), IP.into(), now)
            .unwrap();
        let e = t
            .announce(&req(2, 1, 0, Event::None), IP.into(), now)
            .unwrap_err();
        assert_eq!(e.to_string(), "torrent not allowed on this tracker");
        let e = parse_access_list("0123\n").unwrap_err();
        assert_eq!(e, "line 1: \"0123\" is not a 40-digit hex info-hash");

        // `ip` is ignored by default...
        let mut claim = req(1, 2, 5, Event::None);
        claim.ip = Some("10.9.8.7".into());
        let r = t.announce(&claim, IP.into(), now).unwrap();
        assert_eq!(r.peers[0].addr.to_string(), "127.0.0.1:1");
        let mut t = Table::new(limits(), None, now);
        t.announce(&claim, IP.into(), now).unwrap();
        let r = t
            .announce(&req(1, 3, 5, Event::None), IP.into(), now)
            .unwrap();
        assert_eq!(r.peers[0].addr.to_string(), "127.0.0.1:2");
        // ... and used when allowed.
        let mut t = Table::new(
            TableLimits {
                allow_ip_param: true,
                ..limits()
            },
            None,
            now,
        );
        t.announce(&claim, IP.into(), now).unwrap();
        let r = t
            .announce(&req(1, 3, 5, Event::None), IP.into(), now)
            .unwrap();
        assert_eq!(r.peers[0].addr.to_string(), "10.9.8.7:2");
        claim.ip = Some("example.com".into());
        assert_eq!(t.announce(&claim, IP.into(), now), Err(Refusal::BadIp));
    }

    #[test]
    fn ipv6_peers_are_kept_apart_from_ipv4_ones() {
        let now = Instant::now();
        let mut t = Table::new(limits(), None, now);
        let v6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        t.announce(&req(1, 7000, 0, Event::None), v6, now).unwrap();
        t.announce(&req(1, 7000, 0, Event::None), IP.into(), now)
            .unwrap();
        // The same IPv4 peer seen over a dual-stack socket is the same peer.
        t.announce(&req(1, 7000, 0, Event::None), mapped, now)
            .unwrap();
        assert_eq!(t.counts(), (1, 2));
        let r = t
            .announce(&req(1, 7001, 3, Event::None), IP.into(), now)
            .unwrap();
        let mut addrs: Vec<String> = r.peers.iter().map(|p| p.addr.to_string()).collect();
        addrs.sort();
        assert_eq!(addrs, ["127.0.0.1:7000", "[::1]:7000"]);
        let body = r.encode(true, false);
        let back = AnnounceResponse::parse(&body).unwrap();
        assert_eq!(back.peers.len(), 2);
    }

    #[test]
    fn completed_counts_once_per_peer_however_it_cycles() {
        let now = Instant::now();
        let mut t = Table::new(limits(), None, now);
        for _ in 0..50 {
            t.announce(&req(1, 1, 0, Event::Completed), IP.into(), now)
                .unwrap();
            t.announce(&req(1, 1, 10, Event::None), IP.into(), now)
                .unwrap();
            // Leaving and coming back does not make it count again either.
            t.announce(&req(1, 1, 10, Event::Stopped), IP.into(), now)
                .unwrap();
            t.announce(&req(1, 1, 10, Event::Started), IP.into(), now)
                .unwrap();
        }
        assert_eq!(t.scrape(&[[1; 20]]).get(&[1; 20]).unwrap().downloaded, 1);
        // Another peer finishing is another download; the same port on another torrent too.
        t.announce(&req(1, 2, 0, Event::Completed), IP.into(), now)
            .unwrap();
        t.announce(&req(2, 1, 0, Event::Completed), IP.into(), now)
            .unwrap();
        assert_eq!(t.scrape(&[[1; 20]]).get(&[1; 20]).unwrap().downloaded, 2);
        assert_eq!(t.scrape(&[[2; 20]]).get(&[2; 20]).unwrap().downloaded, 1);
    }

    #[test]
    fn one_address_cannot_fill_the_table() {
        let now = Instant::now();
        let l = TableLimits {
            max_peers_per_ip: 100,
            ..limits()
        };
        let mut t = Table::new(l, None, now);
        let (mut ok, mut refused) = (0, 0);
        // 400 peers over 4 torrents from one address: 100 get in.
        for i in 0..400u16 {
            match t.announce(
                &req((i % 4) as u8, 1 + i, 5, Event::Started),
                IP.into(),
                now,
            ) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_eq!(e, Refusal::TooManyFromAddress(100));
                    refused += 1;
                }
            }
        }
        assert_eq!((ok, refused), (100, 300));
        assert_eq!(t.counts().1, 100);
        assert_eq!(
            Refusal::TooManyFromAddress(100).to_string(),
            "too many peers from your address: it has 100 already"
        );
        // Known peers still announce; other addresses are not affected.
        t.announce(&req(1, 2, 0, Event::None), IP.into(), now)
            .unwrap();
        t.announce(&req(1, 2, 0, Event::None), [127, 0, 0, 2].into(), now)
            .unwrap();
        // A peer that stops frees its place.
        t.announce(&req(1, 2, 0, Event::Stopped), IP.into(), now)
            .unwrap();
        t.announce(&req(3, 9999, 5, Event::Started), IP.into(), now)
            .unwrap();
        assert!(t
            .announce(&req(3, 9998, 5, Event::Started), IP.into(), now)
            .is_err());
        // So does one that expires.
        let later = now + Duration::from_secs(3 * u64::from(limits().interval));
        t.announce(
            &req(3, 9998, 5, Event::Started),
            [127, 0, 0, 3].into(),
            later,
        )
        .unwrap();
        t.expire(later);
        assert_eq!(*t.per_ip.held(IP.into()), 0);
        t.announce(&req(3, 9998, 5, Event::Started), IP.into(), later)
            .unwrap();
        // IPv6 counts per /64: another interface id in the same /64 is the same address.
        let mut t = Table::new(
            TableLimits {
                max_peers_per_ip: 1,
                ..limits()
            },
            None,
            now,
        );
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.announce(&req(1, 1, 5, Event::None), a, now).unwrap();
        assert!(t.announce(&req(1, 1, 5, Event::None), b, now).is_err());
        t.announce(&req(1, 1, 5, Event::None), c, now).unwrap();
        // A refused first peer of a torrent leaves no empty torrent behind.
        assert_eq!(t.counts(), (1, 2));
        assert!(t.announce(&req(7, 1, 5, Event::None), b, now).is_err());
        assert_eq!(t.counts(), (1, 2));
    }
}
