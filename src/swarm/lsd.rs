//! Local service discovery (BEP 14) for a session: multicast a `BT-SEARCH` announce for each
//! torrent at start and every [`ANNOUNCE_EVERY`], and hand the peers that others announce for
//! our torrents to those torrents' dialers as [`Source::Lsd`].
//!
//! The socket is bound to the group's port with `SO_REUSEADDR`, so several bt processes (and
//! other clients) on one host share it; multicast loops back, so each process tags its
//! announces with a random cookie and ignores its own. Inbound announces are rate-limited
//! before they are parsed: anyone on the LAN can send them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::dialer::Source;
use super::session::{dial_due, Session};
use crate::proto::ids::InfoHash;
use crate::proto::lsd::{self, GROUP_V4, MAX_MESSAGE};
use crate::rt::UdpSocket;

/// Each torrent is announced this often (BEP 14 allows once a minute at most).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5 * 60);
/// How often the session is looked at for torrents not announced yet (added while running).
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// Inbound announces handled per second from one address, on average ...
const PER_IP_RATE: f64 = 5.0;
/// ... and at once (a host running several clients, each announcing its torrents).
const PER_IP_BURST: f64 = 50.0;
/// Inbound announces handled per second from all addresses together, on average ...
const INBOUND_RATE: f64 = 100.0;
/// ... and at once after a quiet spell (a LAN of peers all starting together).
const INBOUND_BURST: f64 = 500.0;
/// Addresses with a budget of their own; past this, the oldest budgets are forgotten.
const MAX_SENDERS: usize = 1024;
/// A torrent is announced again, out of turn, when a peer new to us announces it (so that a
/// newcomer learns of us at once rather than at our next round), at most this often. A reply
/// is multicast, so one answers every newcomer heard before it; the gap only bounds how often
/// a stream of new addresses (a flood, bounded first by the inbound budgets) makes us send.
/// (It was a minute: a flooder's announce for our torrent then used up the reply, and a
/// newcomer heard a moment later learned nothing of us for up to a minute.)
const REPLY_GAP: Duration = Duration::from_secs(2);

/// A token bucket for inbound datagrams: pure (the caller passes the time), so a flood can be
/// tested without a network.
#[derive(Debug, Clone)]
pub struct Budget {
    tokens: f64,
    at: Option<Instant>,
    rate: f64,
    burst: f64,
}

impl Budget {
    /// `rate` datagrams a second, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> Budget {
        Budget {
            tokens: burst,
            at: None,
            rate,
            burst,
        }
    }

    /// Whether one more datagram may be handled at `now` (and count it).
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The rules for one inbound datagram, apart from the socket: the budgets (one per sender,
/// so that one flooding host cannot starve the others, and one for all), our cookie, and
/// which info-hashes are ours.
#[derive(Debug, Clone)]
pub struct Inbound {
    all: Budget,
    senders: HashMap<IpAddr, (Budget, Instant)>,
    cookie: String,
    /// Datagrams dropped by the budgets (for the logs).
    pub dropped: u64,
}

impl Inbound {
    /// Rules for a process whose announces carry `cookie`.
    pub fn new(cookie: String) -> Inbound {
        Inbound {
            all: Budget::new(INBOUND_RATE, INBOUND_BURST),
            senders: HashMap::new(),
            cookie,
            dropped: 0,
        }
    }

    /// Whether a datagram from `ip` at `now` is within both budgets.
    fn allowed(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.senders.len() >= MAX_SENDERS && !self.senders.contains_key(&ip) {
            // Forget the half least recently heard from (bounded work, amortised).
            let mut at: Vec<Instant> = self.senders.values().map(|(_, t)| *t).collect();
            at.sort();
            let cut = at[at.len() / 2];
            self.senders.retain(|_, (_, t)| *t > cut);
        }
        let (own, seen) = self
            .senders
            .entry(ip)
            .or_insert_with(|| (Budget::new(PER_IP_RATE, PER_IP_BURST), now));
        *seen = now;
        own.take(now) && self.all.take(now)
    }

    /// The peer address a datagram from `from` names and the info-hashes of it that `ours`
    /// knows; `None` when over budget, malformed, our own, or for no torrent of ours.
    pub fn accept(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        now: Instant,
        ours: impl Fn(&InfoHash) -> bool,
    ) -> Option<(SocketAddr, Vec<InfoHash>)> {
        if !self.allowed(from.ip(), now) {
            self.dropped += 1;
            return None;
        }
        let a = lsd::parse(data).ok()?;
        if a.cookie.as_deref() == Some(self.cookie.as_str()) {
            return None;
        }
        let hashes: Vec<InfoHash> = a.info_hashes.into_iter().filter(|h| ours(h)).collect();
        if hashes.is_empty() {
            return None;
        }
        Some((SocketAddr::new(from.ip(), a.port), hashes))
    }
}

/// A random cookie for this process's announces.
fn new_cookie() -> String {
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// The multicast socket: bound to the group's port on every address, member of the group on
/// `iface` (or the interface the routing table picks), sending through `iface` if given.
fn socket(iface: Ipv4Addr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, GROUP_V4.port())).into())?;
    s.join_multicast_v4(GROUP_V4.ip(), &iface)?;
    if !iface.is_unspecified() {
        s.set_multicast_if_v4(&iface)?;
    }
    // Only the local link; and back to this host, where other bt processes may listen.
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Start LSD for `session`: join the group and run the announce and listen loops until the
/// process ends. `iface` is the profile's address (unspecified: let the routes choose).
pub fn start(session: Arc<Session>, iface: IpAddr) -> std::io::Result<()> {
    let iface = match iface {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let sock = socket(iface).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot join the LSD multicast group {GROUP_V4} ({e}); \
                 is there a route for 224.0.0.0/4?"
            ),
        )
    })?;
    let sock = Arc::new(UdpSocket::from(sock));
    let cookie = new_cookie();
    let replies: Replies = Arc::default();
    log::info!(
        "lsd: announcing every {} s to {GROUP_V4} (cookie {cookie})",
        ANNOUNCE_EVERY.as_secs()
    );
    crate::rt::spawn(announce_loop(
        Arc::clone(&session),
        Arc::clone(&sock),
        cookie.clone(),
        Arc::clone(&replies),
    ))
    .detach();
    crate::rt::spawn(listen_loop(session, sock, Inbound::new(cookie), replies)).detach();
    Ok(())
}

/// When to announce one torrent out of turn: a newcomer announced it. Pure (the caller passes
/// the time).
#[derive(Debug, Default)]
struct ReplyPacer {
    /// A reply is owed.
    due: bool,
    /// When the last reply went.
    last: Option<Instant>,
}

impl ReplyPacer {
    /// A peer new to this torrent announced it.
    fn newcomer(&mut self) {
        self.due = true;
    }

    /// Whether to send a reply at `now` (then it counts as sent).
    fn take(&mut self, now: Instant) -> bool {
        let spaced = self
            .last
            .is_none_or(|a| now.saturating_duration_since(a) >= REPLY_GAP);
        if self.due && spaced {
            self.due = false;
            self.last = Some(now);
            return true;
        }
        false
    }
}

/// Torrents to announce out of turn (newcomers announced them).
type Replies = Arc<std::sync::Mutex<HashMap<InfoHash, ReplyPacer>>>;

/// Announce every torrent when first seen and every [`ANNOUNCE_EVERY`] after, and those a
/// newcomer announced out of turn (see [`ReplyPacer`]).
async fn announce_loop(
    session: Arc<Session>,
    sock: Arc<UdpSocket>,
    cookie: String,
    replies: Replies,
) {
    let port = session.listen.port();
    let mut last: HashMap<InfoHash, Instant> = HashMap::new();
    loop {
        let now = Instant::now();
        // Torrents and magnet links still fetching their metadata (a peer that has it answers).
        let hashes = session
            .torrents()
            .iter()
            .map(|t| t.info_hash())
            .chain(session.fetching().iter().map(|f| f.info_hash()))
            .collect::<Vec<_>>();
        for h in hashes {
            let reply = {
                let mut r = replies.lock().unwrap_or_else(|e| e.into_inner());
                r.get_mut(&h).is_some_and(|p| p.take(now))
            };
            if !reply && last.get(&h).is_some_and(|at| now - *at < ANNOUNCE_EVERY) {
                continue;
            }
            last.insert(h, now);
            let msg = lsd::encode(port, &h, &cookie);
            match sock.send_to(&msg, GROUP_V4).await {
                Ok(_) => log::debug!("lsd: announced {h} on port {port}"),
                Err(e) => log::warn!("lsd: cannot announce to {GROUP_V4}: {e}"),
            }
        }
        crate::rt::sleep(LOOK_EVERY).await;
    }
}

/// A peer new to us announced `h`: an out-of-turn announce of `h` is owed (see
/// [`ReplyPacer`]).
fn want_reply(replies: &Replies, h: InfoHash) {
    let mut r = replies.lock().unwrap_or_else(|e| e.into_inner());
    r.entry(h).or_default().newcomer();
}

/// Take the announces of others and feed the dialers of the torrents they name.
async fn listen_loop(
    session: Arc<Session>,
    sock: Arc<UdpSocket>,
    mut rules: Inbound,
    replies: Replies,
) {
    // One byte more than the largest accepted message, so that a longer one is seen as such.
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut reported = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                log::debug!("lsd: receive failed: {e}");
                crate::rt::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let now = Instant::now();
        let ours = |h: &InfoHash| session.find(h).is_some() || session.fetch_of(h).is_some();
        let found = rules.accept(&buf[..n], from, now, ours);
        if rules.dropped >= reported + 1000 {
            reported = rules.dropped;
            log::warn!("lsd: {reported} announces dropped so far (over the rate limit)");
        }
        let Some((addr, hashes)) = found else {
            continue;
        };
        for h in hashes {
            if addr.port() == session.listen.port() && is_local(addr.ip()) {
                continue;
            }
            let Some(t) = session.find(&h) else {
                // A magnet link fetching its metadata: the peer may have it.
                if let Some(f) = session.fetch_of(&h) {
                    log::info!("lsd: peer {addr} for the magnet link {h} (source lsd)");
                    f.add_peers(&[addr], Source::Lsd);
                    want_reply(&replies, h);
                }
                continue;
            };
            let (new, known_from) = {
                let mut d = t.dialer.lock().unwrap_or_else(|e| e.into_inner());
                let new = d.add(addr, Source::Lsd, now);
                (new, d.source(addr))
            };
            if !new && known_from != Source::Lsd {
                let from = known_from;
                // Heard by LSD too, though another source named it first (often PEX).
                log::info!(
                    "lsd: peer {addr} for {} (known already, from {from})",
                    t.meta.info.name
                );
            }
            if new {
                log::info!("lsd: peer {addr} for {} (source lsd)", t.meta.info.name);
                dial_due(&t);
                t.wake_up();
                want_reply(&replies, h);
            }
        }
    }
}

/// Whether `ip` is this host's loopback address (another of our own addresses is caught by
/// the cookie, or at the handshake by our own peer id).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    #[test]
    fn a_flood_of_newcomers_does_not_silence_us_to_the_next_one() {
        let t0 = Instant::now();
        let mut p = ReplyPacer::default();
        assert!(!p.take(t0), "nothing owed yet");
        // a flood of new addresses: one reply
        for _ in 0..1000 {
            p.newcomer();
        }
        assert!(p.take(t0));
        assert!(!p.take(t0 + Duration::from_secs(1)), "spaced");
        // an honest newcomer a second later is answered once the gap is out, not a minute on
        p.newcomer();
        assert!(!p.take(t0 + Duration::from_millis(1500)));
        assert!(p.take(t0 + REPLY_GAP));
        // and nothing more is sent while nobody new shows up
        assert!(!p.take(t0 + 10 * REPLY_GAP));
    }

    #[test]
    fn budget_refills_with_time_and_caps_bursts() {
        let t0 = Instant::now();
        let mut b = Budget::new(10.0, 5.0);
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 5);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            (0..100).filter(|_| b.take(t1)).count(),
            5,
            "capped at the burst"
        );
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 2);
    }

    #[test]
    fn own_cookie_unknown_torrents_and_junk_are_ignored() {
        let t0 = Instant::now();
        let from: SocketAddr = "10.0.0.7:6771".parse().unwrap();
        let mut rules = Inbound::new("me".into());
        let ours = |h: &InfoHash| *h == hash(1);
        assert_eq!(
            rules.accept(&lsd::encode(7000, &hash(1), "other"), from, t0, ours),
            Some(("10.0.0.7:7000".parse().unwrap(), vec![hash(1)]))
        );
        assert_eq!(
            rules.accept(&lsd::encode(7000, &hash(1), "me"), from, t0, ours),
            None
        );
        assert_eq!(
            rules.accept(&lsd::encode(7000, &hash(2), "x"), from, t0, ours),
            None
        );
        assert_eq!(rules.accept(b"\xff\x00junk", from, t0, ours), None);
    }

    #[test]
    fn a_flood_is_bounded() {
        // 100,000 announces for one of our torrents within one second: only the burst and a
        // second's worth of the rate get through.
        let t0 = Instant::now();
        let mut rules = Inbound::new("me".into());
        let mut accepted = 0;
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            let from = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6771));
            let msg = lsd::encode(1 + (i % 60_000) as u16, &hash(1), "them");
            if rules.accept(&msg, from, now, |h| *h == hash(1)).is_some() {
                accepted += 1;
            }
        }
        assert!(
            accepted <= (INBOUND_BURST + INBOUND_RATE) as usize + 1,
            "{accepted}"
        );
        assert!(accepted >= INBOUND_BURST as usize, "{accepted}");
        assert_eq!(rules.dropped, 100_000 - accepted as u64);
        assert!(rules.senders.len() <= MAX_SENDERS);
    }

    #[test]
    fn one_flooding_host_does_not_starve_the_others() {
        let t0 = Instant::now();
        let mut rules = Inbound::new("me".into());
        let flood: SocketAddr = "10.0.0.66:6771".parse().unwrap();
        let honest: SocketAddr = "10.0.0.2:6771".parse().unwrap();
        let msg = lsd::encode(7000, &hash(1), "them");
        let ours = |h: &InfoHash| *h == hash(1);
        let from_flood = (0..10_000)
            .filter(|_| rules.accept(&msg, flood, t0, ours).is_some())
            .count();
        assert_eq!(from_flood, PER_IP_BURST as usize);
        assert!(rules.accept(&msg, honest, t0, ours).is_some());
    }
}
