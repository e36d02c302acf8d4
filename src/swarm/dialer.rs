//! The peers a torrent may call: addresses from the tracker (or the command line), each with
//! its state and a backoff so that a dead peer is retried less and less often.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// First retry delay after a failed or ended connection; doubles per failure.
const BACKOFF: Duration = Duration::from_secs(5);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most addresses remembered per torrent (a tracker cannot flood us).
pub const MAX_KNOWN: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Busy,
    Banned,
}

#[derive(Debug, Clone)]
struct Known {
    state: State,
    fails: u32,
    next_try: Instant,
    source: Source,
}

/// Where bt learned of a peer: shown in the client's summary, the shell's `status` and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A tracker's announce answer.
    Tracker,
    /// Given by the user (`--peer`, a magnet link's `x.pe`).
    Manual,
    /// Peer exchange (BEP 11) from a connected peer.
    Pex,
    /// The Mainline DHT (BEP 5).
    Dht,
    /// Local service discovery on the LAN (BEP 14).
    Lsd,
    /// It called us.
    Incoming,
}

impl Source {
    /// A short lower-case name for displays and logs.
    pub fn name(self) -> &'static str {
        match self {
            Source::Tracker => "tracker",
            Source::Manual => "manual",
            Source::Pex => "pex",
            Source::Dht => "dht",
            Source::Lsd => "lsd",
            Source::Incoming => "incoming",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Most banned IP addresses remembered per torrent.
const MAX_BANNED_IPS: usize = 10_000;

/// Who a ban covers: every port of `addr`'s IP address except the `spared` addresses, peers at
/// the same IP known to be honest (a NAT, or the loopback demo where every peer is 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The address that sent bad data.
    pub addr: SocketAddr,
    /// Addresses at the same IP that stay allowed.
    pub spared: Vec<SocketAddr>,
}

/// Addresses to call, with backoff, and the bans that also refuse incoming connections.
#[derive(Debug, Default)]
pub struct Dialer {
    known: HashMap<SocketAddr, Known>,
    /// Banned IP addresses, each with the addresses it spares.
    banned_ips: HashMap<IpAddr, HashSet<SocketAddr>>,
}

impl Dialer {
    /// Remember an address learned from `source` (no-op if known or over the limit; the first
    /// source to name an address is the one remembered). Returns whether it is new.
    pub fn add(&mut self, addr: SocketAddr, source: Source, now: Instant) -> bool {
        if self.known.len() >= MAX_KNOWN || addr.port() == 0 || self.known.contains_key(&addr) {
            return false;
        }
        self.known.insert(
            addr,
            Known {
                state: State::Idle,
                fails: 0,
                next_try: now,
                source,
            },
        );
        true
    }

    /// A peer that called us listens at `addr` (its extension handshake said so): it is not
    /// called there while that connection lasts, which would only open a second connection
    /// to the same peer. True if `addr` is now held busy for it; the caller then ends the
    /// hold with [`Dialer::finished`].
    pub fn called_us(&mut self, addr: SocketAddr, now: Instant) -> bool {
        if let Some(k) = self.known.get_mut(&addr) {
            if k.state != State::Idle {
                return false; // being called now (the twin rule settles it), or banned
            }
            k.state = State::Busy;
            return true;
        }
        if !self.add(addr, Source::Incoming, now) {
            return false;
        }
        self.known.get_mut(&addr).expect("added").state = State::Busy;
        true
    }

    /// Addresses remembered (at most [`MAX_KNOWN`]).
    pub fn known(&self) -> usize {
        self.known.len()
    }

    /// Where this address was learned; [`Source::Incoming`] for one we never called.
    pub fn source(&self, addr: SocketAddr) -> Source {
        self.known.get(&addr).map_or(Source::Incoming, |k| k.source)
    }

    /// Never call this address again, nor accept it (it is ourselves).
    pub fn ban_addr(&mut self, addr: SocketAddr) {
        let k = self.known.entry(addr).or_insert(Known {
            state: State::Banned,
            fails: 0,
            next_try: Instant::now(),
            source: Source::Incoming,
        });
        k.state = State::Banned;
    }

    /// Never call or accept the ban's IP again, except the addresses it spares.
    pub fn ban(&mut self, ban: Ban) {
        self.ban_addr(ban.addr);
        if self.banned_ips.len() < MAX_BANNED_IPS {
            let spared = self.banned_ips.entry(ban.addr.ip()).or_default();
            spared.extend(ban.spared.into_iter().filter(|a| *a != ban.addr));
        }
    }

    /// Whether this exact address is banned (we neither call it nor take its handshake).
    pub fn is_addr_banned(&self, addr: SocketAddr) -> bool {
        self.known
            .get(&addr)
            .is_some_and(|k| k.state == State::Banned)
    }

    /// Whether an incoming connection from `addr` is refused: the address itself is banned, or
    /// its IP is and the address is not spared. (Addresses at a banned IP that a tracker lists
    /// are still called: an honest peer behind the liar's NAT, or the other demo peers on
    /// 127.0.0.1, may not have been connected when the ban fell.)
    pub fn is_banned(&self, addr: SocketAddr) -> bool {
        let by_ip = self
            .banned_ips
            .get(&addr.ip())
            .is_some_and(|spared| !spared.contains(&addr));
        by_ip
            || self
                .known
                .get(&addr)
                .is_some_and(|k| k.state == State::Banned)
    }

    /// Addresses due for a call, at most `limit`; they are marked busy until [`Dialer::finished`].
    pub fn due(&mut self, now: Instant, limit: usize) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(_, k)| k.state == State::Idle && k.next_try <= now)
            .map(|(a, _)| *a)
            .collect();
        out.sort();
        out.truncate(limit);
        for a in &out {
            if let Some(k) = self.known.get_mut(a) {
                k.state = State::Busy;
            }
        }
        out
    }

    /// Every address that is not banned, with where it was learned (a magnet's metadata phase
    /// hands its addresses to the torrent it becomes).
    pub fn addresses(&self) -> Vec<(SocketAddr, Source)> {
        let mut out: Vec<(SocketAddr, Source)> = self
            .known
            .iter()
            .filter(|(_, k)| k.state != State::Banned)
            .map(|(a, k)| (*a, k.source))
            .collect();
        out.sort();
        out
    }

    /// When the next call is due (`None`: nobody to call, and no call under way whose end
    /// would make one due). A call under way counts as due now: the scheduler looks again.
    pub fn next_call(&self) -> Option<Instant> {
        self.known
            .values()
            .filter_map(|k| match k.state {
                State::Idle => Some(k.next_try),
                _ => None,
            })
            .min()
    }

    /// Number of calls under way or connected.
    pub fn busy(&self) -> usize {
        self.known
            .values()
            .filter(|k| k.state == State::Busy)
            .count()
    }

    /// A call ended. `useful` is true when the connection got past the handshake and lasted;
    /// then the peer is called again soon, else later and later. `retry` false parks it (e.g.
    /// both sides are seeds) until a new tracker answer lists it again.
    pub fn finished(&mut self, addr: SocketAddr, useful: bool, now: Instant) {
        let Some(k) = self.known.get_mut(&addr) else {
            return;
        };
        if k.state == State::Banned {
            return;
        }
        k.state = State::Idle;
        k.fails = if useful { 0 } else { k.fails + 1 };
        let delay = BACKOFF.saturating_mul(1 << k.fails.min(6)).min(MAX_BACKOFF);
        k.next_try = now + delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_called_us_is_not_called_back_while_connected() {
        let t0 = Instant::now();
        let known: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let learned_later: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let mut d = Dialer::default();
        d.add(known, Source::Tracker, t0);
        // Both called us; their extension handshakes named these listening addresses.
        assert!(d.called_us(known, t0));
        assert!(d.called_us(learned_later, t0));
        assert_eq!(d.source(learned_later), Source::Incoming);
        // Peer exchange names the second one now: nothing new, nothing to call.
        assert!(!d.add(learned_later, Source::Pex, t0));
        assert!(d.due(t0 + Duration::from_secs(60), 5).is_empty());
        // The connection ends: the address may be called again, after the usual wait.
        d.finished(known, true, t0);
        assert!(d.due(t0, 5).is_empty());
        assert_eq!(d.due(t0 + Duration::from_secs(11), 5), vec![known]);
        // An address being called, or banned, is not taken over.
        assert!(!d.called_us(known, t0), "a call is under way");
        d.ban_addr(learned_later);
        assert!(!d.called_us(learned_later, t0));
        assert!(d.is_banned(learned_later));
    }

    #[test]
    fn backoff_grows_and_bans_stick() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let t0 = Instant::now();
        let mut d = Dialer::default();
        d.add(a, Source::Tracker, t0);
        d.add(b, Source::Pex, t0);
        assert_eq!(d.source(b), Source::Pex);
        assert_eq!(d.source("127.0.0.9:1".parse().unwrap()), Source::Incoming);
        assert_eq!(d.due(t0, 1), vec![a]);
        assert_eq!(d.due(t0, 5), vec![b]);
        assert_eq!(d.busy(), 2);
        d.finished(a, false, t0);
        assert!(d.due(t0 + Duration::from_secs(9), 5).is_empty());
        assert_eq!(d.due(t0 + Duration::from_secs(11), 5), vec![a]);
        d.finished(a, false, t0);
        assert!(
            d.due(t0 + Duration::from_secs(11), 5).is_empty(),
            "20 s after two failures"
        );
        d.ban(Ban {
            addr: b,
            spared: vec![a],
        });
        d.finished(b, true, t0);
        assert!(d.is_banned(b));
        assert!(!d.is_banned(a), "a spared address at the same IP");
        assert!(
            d.is_banned("127.0.0.1:2000".parse().unwrap()),
            "any other port of the IP"
        );
        assert!(
            !d.is_banned("127.0.0.2:2000".parse().unwrap()),
            "another IP"
        );
        assert!(d
            .due(t0 + Duration::from_secs(1000), 5)
            .iter()
            .all(|x| *x != b));
    }
}
