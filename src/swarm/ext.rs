//! The extension protocol (BEP 10) on a torrent's live connections: each peer's extension
//! handshake, the metadata we serve (BEP 9, so that magnet links to our torrents work), and peer
//! exchange (BEP 11) both ways.
//!
//! Kept beside the state machine rather than in it: none of this touches pieces, choking or
//! requests. Connection tasks call [`Extensions::handle`] with every extended message; the
//! torrent's maintenance loop calls [`Extensions::pex_round`] once a second.
//!
//! Bounds: the frame decoder caps an extended payload at 32 KiB (`wire::MAX_EXTENDED_PAYLOAD`);
//! the handshake decoder bounds every field; a peer gets at most [`MAX_METADATA_REQUESTS`]
//! metadata answers per connection; a torrent takes at most [`MAX_PEX_LEARNED`] addresses from
//! PEX, at most [`pex::MAX_PEX_KEEP`] per message.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::dialer::Source;
use super::state::PeerKey;
use super::torrent::{Out, Torrent};
use crate::proto::extension::{ExtHandshake, HANDSHAKE_ID, UT_METADATA, UT_PEX};
use crate::proto::metadata::{self, MetadataMsg};
use crate::proto::pex::{self, Pex, PexPeer};
use crate::proto::wire::{self, Message};
use crate::rt::channel::Sender;

/// The id we receive `ut_metadata` messages under (our `m`).
pub const OUR_METADATA_ID: u8 = 1;
/// The id we receive `ut_pex` messages under (our `m`).
pub const OUR_PEX_ID: u8 = 2;
/// Client name and version sent as `v`.
pub const CLIENT: &str = concat!("bt ", env!("CARGO_PKG_VERSION"));
/// Outstanding requests we tell peers we accept (`reqq`): well under the flood limit
/// (`state::MAX_PEER_REQUESTS`), so that a peer keeping to it is never dropped.
pub const REQQ: u32 = 500;
/// BEP 11: at most one peer exchange message a minute to each peer.
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Most addresses one torrent takes from peer exchange, all peers together (a swarm of liars
/// cannot fill the dialer with them).
pub const MAX_PEX_LEARNED: usize = 500;
/// Most metadata pieces served on one connection, answers and rejects together: the whole
/// metadata a few times over (8 MiB is 512 pieces), then requests go unanswered.
pub const MAX_METADATA_REQUESTS: u32 = 2048;

/// The frame of an extended message.
pub fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    wire::encode(&Message::Extended { id, payload }, &mut out);
    out
}

/// The frame of our extension handshake: the extensions we take, the size of the metadata we
/// can serve (none during a magnet's metadata phase), our port, the peer's IP as we see it, and
/// whether we only upload (complete: a seed that super-seeds shows no bitfield, so this is how
/// another seed knows to hang up).
pub fn our_handshake(
    metadata_size: Option<u64>,
    port: Option<u16>,
    yourip: IpAddr,
    upload_only: bool,
) -> Vec<u8> {
    let mut h = ExtHandshake {
        metadata_size,
        upload_only,
        v: Some(CLIENT.into()),
        p: port.filter(|&p| p != 0),
        reqq: Some(REQQ),
        yourip: Some(yourip),
        ..ExtHandshake::default()
    };
    h.m.insert(UT_METADATA.into(), OUR_METADATA_ID);
    h.m.insert(UT_PEX.into(), OUR_PEX_ID);
    frame(HANDSHAKE_ID, &h.encode())
}

/// Whether `addr` is us: our listening port at our listening IP, at the IP a peer reached us
/// on, at the IP a peer says it sees us as, or (listening on every interface) at a loopback
/// address. (One we miss is called once: its handshake shows our own id and it is banned.)
fn is_us(addr: SocketAddr, listen: Option<SocketAddr>, own_ips: &HashSet<IpAddr>) -> bool {
    let Some(listen) = listen else { return false };
    // Listening on every interface, a loopback address with our port is us too.
    let loopback = addr.ip().is_loopback() && listen.ip().is_unspecified();
    addr.port() == listen.port()
        && (addr.ip() == listen.ip()
            || own_ips.contains(&addr.ip())
            || addr.ip().is_unspecified()
            || loopback)
}

/// One connection that announced the extension protocol.
struct PeerExt {
    tx: Sender<Out>,
    /// The address others can call it at: where we called it, or its IP with the port its
    /// handshake names (`p`) when it called us.
    callable: Option<SocketAddr>,
    /// We called it (so it accepts connections: PEX flag `REACHABLE`).
    outgoing: bool,
    /// Its ids, from its extension handshake.
    metadata_id: Option<u8>,
    pex_id: Option<u8>,
    /// It called us and `callable` is held busy in the dialer meanwhile (see
    /// [`super::dialer::Dialer::called_us`]).
    holds_dial: bool,
    /// Metadata requests answered so far.
    metadata_answers: u32,
    /// The addresses our peer exchange messages have told it of (and not dropped since).
    told: HashSet<SocketAddr>,
    /// When it may get the next peer exchange message.
    next_pex: Instant,
}

/// The extension side of one torrent: every connection's extension state.
#[derive(Default)]
pub struct Extensions {
    /// Our listening address (set once the session adds the torrent).
    listen: OnceLock<SocketAddr>,
    peers: Mutex<HashMap<PeerKey, PeerExt>>,
    /// Our own IP addresses as local sockets and peers (`yourip`) showed them.
    own_ips: Mutex<HashSet<IpAddr>>,
    /// Addresses taken from peer exchange so far (see [`MAX_PEX_LEARNED`]).
    pex_learned: AtomicUsize,
}

/// Most of our own IP addresses remembered.
const MAX_OWN_IPS: usize = 16;

impl Extensions {
    /// Our listening address, for `p` and to recognise ourselves in peer exchange.
    pub fn set_listen(&self, addr: SocketAddr) {
        let _ = self.listen.set(addr);
    }

    /// Our listening port, if known.
    pub fn port(&self) -> Option<u16> {
        self.listen.get().map(|a| a.port())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerKey, PeerExt>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note_own_ip(&self, ip: IpAddr) {
        let mut own = self.own_ips.lock().unwrap_or_else(|e| e.into_inner());
        if own.len() < MAX_OWN_IPS {
            own.insert(ip);
        }
    }

    /// A connection `key` to `remote` that announced the extension protocol; `local` is our
    /// end of it. Queues our extension handshake (after the bitfield, already queued).
    pub fn connected(
        &self,
        torrent: &Torrent,
        key: PeerKey,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        outgoing: bool,
        tx: Sender<Out>,
    ) {
        if let Some(l) = local {
            self.note_own_ip(l.ip());
        }
        let size = torrent.meta.info_bytes().len() as u64;
        let _ = tx.try_send(Out::Raw(our_handshake(
            Some(size),
            self.port(),
            remote.ip(),
            torrent.is_complete(),
        )));
        self.lock().insert(
            key,
            PeerExt {
                tx,
                callable: outgoing.then_some(remote),
                outgoing,
                metadata_id: None,
                pex_id: None,
                holds_dial: false,
                metadata_answers: 0,
                told: HashSet::new(),
                next_pex: Instant::now(),
            },
        );
    }

    /// Connection `key` ended: the address it held in `torrent`'s dialer may be called again.
    pub fn gone(&self, torrent: &Torrent, key: PeerKey) {
        let Some(p) = self.lock().remove(&key) else {
            return;
        };
        if let (true, Some(a)) = (p.holds_dial, p.callable) {
            let mut d = torrent.dialer.lock().unwrap_or_else(|e| e.into_inner());
            d.finished(a, true, Instant::now());
        }
    }

    /// An extended message from `key` (sub-id `id`). Messages under ids we did not announce are
    /// ignored, as are ones that do not decode (logged): none of this is worth a connection.
    pub fn handle(
        &self,
        torrent: &Arc<Torrent>,
        key: PeerKey,
        remote: SocketAddr,
        id: u8,
        payload: &[u8],
    ) {
        // A peer that did not announce the extension protocol gets no say in it.
        if !self.lock().contains_key(&key) {
            return;
        }
        match id {
            HANDSHAKE_ID => match ExtHandshake::decode(payload) {
                Ok(h) => {
                    if let Some(ip) = h.yourip {
                        self.note_own_ip(ip);
                    }
                    {
                        let mut peers = self.lock();
                        if let Some(p) = peers.get_mut(&key) {
                            p.metadata_id = h.id(UT_METADATA);
                            p.pex_id = h.id(UT_PEX);
                            if !p.outgoing && p.callable.is_none() {
                                p.callable = h.p.map(|port| SocketAddr::new(remote.ip(), port));
                                if let Some(a) = p.callable {
                                    // Lock order: the extension map, then the dialer (`gone`
                                    // takes them one after the other, never nested the other way).
                                    let mut d =
                                        torrent.dialer.lock().unwrap_or_else(|e| e.into_inner());
                                    p.holds_dial = d.called_us(a, Instant::now());
                                }
                            }
                        }
                    }
                    if h.upload_only {
                        torrent.peer_upload_only(key);
                    }
                }
                Err(e) => log::debug!("{remote}: {e}"),
            },
            OUR_METADATA_ID => self.serve_metadata(torrent, key, remote, payload),
            OUR_PEX_ID => match Pex::decode(payload) {
                Ok(pex) => self.learn(torrent, &pex),
                Err(e) => log::debug!("{remote}: {e}"),
            },
            _ => {}
        }
    }

    /// Answer a metadata request with the piece of our info dictionary, or a reject for a
    /// piece that does not exist.
    fn serve_metadata(&self, torrent: &Torrent, key: PeerKey, remote: SocketAddr, payload: &[u8]) {
        let info = torrent.meta.info_bytes();
        let size = info.len() as u64;
        let piece = match metadata::decode(payload, Some(size)) {
            Ok(MetadataMsg::Request { piece }) => piece,
            // We have the metadata: data and rejects sent to us are of no use.
            Ok(_) => return,
            Err(metadata::MetadataError::NoSuchPiece { piece, .. }) => {
                u32::try_from(piece).unwrap_or(u32::MAX)
            }
            Err(e) => return log::debug!("{remote}: {e}"),
        };
        let mut peers = self.lock();
        let Some(p) = peers.get_mut(&key) else { return };
        let Some(their_id) = p.metadata_id else {
            return; // no id to answer under
        };
        if p.metadata_answers >= MAX_METADATA_REQUESTS {
            return;
        }
        p.metadata_answers += 1;
        let len = metadata::piece_len(size, piece);
        let msg = if len == 0 {
            MetadataMsg::Reject { piece }
        } else {
            let start = piece as usize * metadata::METADATA_PIECE;
            MetadataMsg::Data {
                piece,
                total_size: size,
                data: &info[start..start + len],
            }
        };
        let mut out = Vec::with_capacity(len + 64);
        metadata::encode(&msg, &mut out);
        let _ = p.tx.try_send(Out::Raw(frame(their_id, &out)));
    }

    /// Hand the peers a peer exchange message names to the dialer, skipping ourselves, up to
    /// [`MAX_PEX_LEARNED`] for the torrent.
    fn learn(&self, torrent: &Arc<Torrent>, pex: &Pex) {
        let listen = self.listen.get().copied();
        let own = self
            .own_ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = Instant::now();
        let mut added = 0;
        {
            let mut d = torrent.dialer.lock().unwrap_or_else(|e| e.into_inner());
            for p in &pex.added {
                if is_us(p.addr, listen, &own) {
                    continue;
                }
                let taken = self.pex_learned.fetch_add(1, Ordering::Relaxed);
                if taken >= MAX_PEX_LEARNED {
                    self.pex_learned.store(MAX_PEX_LEARNED, Ordering::Relaxed);
                    break;
                }
                d.add(p.addr, Source::Pex, now);
                added += 1;
            }
        }
        if added > 0 {
            super::session::dial_due(torrent);
        }
    }

    /// Addresses taken from peer exchange so far.
    pub fn pex_learned(&self) -> usize {
        self.pex_learned.load(Ordering::Relaxed)
    }

    /// Send each peer that takes peer exchange and is due one the peers we are connected to
    /// that it has not heard of (`added`, at most 50) and those gone since (`dropped`). A peer
    /// is told at most once per [`PEX_INTERVAL`]; nothing new, nothing sent.
    pub fn pex_round(&self, torrent: &Torrent, now: Instant) {
        let mut peers = self.lock();
        if !peers
            .values()
            .any(|p| p.pex_id.is_some() && now >= p.next_pex)
        {
            return;
        }
        let current: HashMap<SocketAddr, u8> = peers
            .values()
            .filter_map(|p| {
                let a = p.callable?;
                let mut flags = 0;
                if p.outgoing {
                    flags |= pex::flags::REACHABLE;
                }
                if torrent.peer_is_seed(a) {
                    flags |= pex::flags::SEED;
                }
                Some((a, flags))
            })
            .collect();
        for p in peers.values_mut() {
            let Some(id) = p.pex_id else { continue };
            if now < p.next_pex {
                continue;
            }
            let mut msg = Pex::default();
            for (a, f) in &current {
                if Some(*a) != p.callable && !p.told.contains(a) {
                    msg.added.push(PexPeer {
                        addr: *a,
                        flags: *f,
                    });
                }
            }
            msg.added.sort_by_key(|x| x.addr);
            // One message per family holds MAX_PEX_SEND: what does not fit waits a minute.
            let mut v4 = 0;
            let mut v6 = 0;
            msg.added.retain(|x| {
                let n = if x.addr.is_ipv6() { &mut v6 } else { &mut v4 };
                *n += 1;
                *n <= pex::MAX_PEX_SEND
            });
            msg.dropped = p
                .told
                .iter()
                .filter(|a| !current.contains_key(a))
                .copied()
                .collect();
            msg.dropped.sort();
            let (mut d4, mut d6) = (0, 0);
            msg.dropped.retain(|a| {
                let n = if a.is_ipv6() { &mut d6 } else { &mut d4 };
                *n += 1;
                *n <= pex::MAX_PEX_SEND
            });
            if msg.added.is_empty() && msg.dropped.is_empty() {
                continue;
            }
            for x in &msg.added {
                p.told.insert(x.addr);
            }
            for a in &msg.dropped {
                p.told.remove(a);
            }
            p.next_pex = now + PEX_INTERVAL;
            let _ = p.tx.try_send(Out::Raw(frame(id, &msg.encode())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_handshake_decodes_to_what_we_announce() {
        let f = our_handshake(Some(1234), Some(6881), "10.0.0.2".parse().unwrap(), true);
        let (msg, used) = wire::decode(&f, wire::FrameLimits::for_pieces(1))
            .unwrap()
            .unwrap();
        assert_eq!(used, f.len());
        let Message::Extended { id: 0, payload } = msg else {
            panic!("not an extension handshake: {msg:?}");
        };
        let h = ExtHandshake::decode(payload).unwrap();
        assert_eq!(h.id(UT_METADATA), Some(OUR_METADATA_ID));
        assert_eq!(h.id(UT_PEX), Some(OUR_PEX_ID));
        assert_eq!(h.metadata_size, Some(1234));
        assert_eq!(h.p, Some(6881));
        assert_eq!(h.reqq, Some(REQQ));
        assert_eq!(h.v.as_deref(), Some(CLIENT));
        assert_eq!(h.yourip, Some("10.0.0.2".parse().unwrap()));
        assert!(h.upload_only);
    }

    fn torrent(dir: &std::path::Path) -> Arc<Torrent> {
        let config = crate::swarm::EngineConfig::default();
        crate::swarm::torrent::one_piece_for_tests(dir, crate::swarm::Shared::new(&config))
    }

    /// The PEX messages queued on `rx` since the last look.
    fn pex_sent(rx: &crate::rt::channel::Receiver<Out>) -> Vec<Pex> {
        let mut out = Vec::new();
        while let Ok(item) = rx.try_recv() {
            let Out::Raw(bytes) = item else { continue };
            let limits = wire::FrameLimits::for_pieces(1);
            if let Ok(Some((Message::Extended { id: 9, payload }, _))) =
                wire::decode(&bytes, limits)
            {
                out.push(Pex::decode(payload).unwrap());
            }
        }
        out
    }

    #[test]
    fn pex_tells_each_peer_of_the_others_at_most_50_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let t = torrent(dir.path());
        let ext = &t.extensions;
        ext.set_listen("127.0.0.1:7000".parse().unwrap());
        let mut theirs = ExtHandshake::default();
        theirs.m.insert(UT_PEX.into(), 9);
        let hs = theirs.encode();
        let mut rxs = Vec::new();
        for k in 0..60u64 {
            let (tx, rx) = crate::rt::channel::unbounded();
            let addr: SocketAddr = format!("10.0.0.{}:6881", k + 1).parse().unwrap();
            ext.connected(&t, k, addr, None, true, tx);
            ext.handle(&t, k, addr, HANDSHAKE_ID, &hs);
            rxs.push(rx);
        }
        let t0 = Instant::now();
        ext.pex_round(&t, t0);
        let first = pex_sent(&rxs[0]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].added.len(), 50, "at most 50 added per message");
        assert!(first[0]
            .added
            .iter()
            .all(|p| p.addr.ip() != "10.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(first[0]
            .added
            .iter()
            .all(|p| p.flags & pex::flags::REACHABLE != 0));
        // Within the minute nothing more, though 9 peers are still untold.
        ext.pex_round(&t, t0 + Duration::from_secs(30));
        assert!(pex_sent(&rxs[0]).is_empty());
        // Peer 1 (told of) leaves; after the minute the other 9 are added and it is dropped.
        ext.gone(&t, 1);
        ext.pex_round(&t, t0 + PEX_INTERVAL);
        let second = pex_sent(&rxs[0]);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].added.len(), 9);
        let gone: SocketAddr = "10.0.0.2:6881".parse().unwrap();
        assert_eq!(second[0].dropped, vec![gone]);
        let told: HashSet<SocketAddr> = first[0]
            .added
            .iter()
            .chain(&second[0].added)
            .map(|p| p.addr)
            .collect();
        assert_eq!(told.len(), 59, "every other peer, once");
    }

    #[test]
    fn a_peer_that_called_us_is_not_called_back_while_it_stays() {
        let dir = tempfile::tempdir().unwrap();
        let t = torrent(dir.path());
        let ext = &t.extensions;
        let listens: SocketAddr = "10.0.0.5:6881".parse().unwrap();
        let remote: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        let (tx, _rx) = crate::rt::channel::unbounded();
        ext.connected(&t, 1, remote, None, false, tx);
        let theirs = ExtHandshake {
            p: Some(listens.port()),
            ..ExtHandshake::default()
        };
        ext.handle(&t, 1, remote, HANDSHAKE_ID, &theirs.encode());
        let later = Instant::now() + Duration::from_secs(3600);
        {
            let mut d = t.dialer.lock().unwrap();
            // Peer exchange (or the tracker) names it now: nothing to call.
            assert!(!d.add(listens, Source::Pex, Instant::now()));
            assert!(d.due(later, 10).is_empty());
        }
        ext.gone(&t, 1);
        assert_eq!(t.dialer.lock().unwrap().due(later, 10), vec![listens]);
    }

    #[test]
    fn learned_addresses_are_bounded_and_never_ourselves() {
        let dir = tempfile::tempdir().unwrap();
        let t = torrent(dir.path());
        let ext = &t.extensions;
        ext.set_listen("0.0.0.0:7000".parse().unwrap());
        let (tx, _rx) = crate::rt::channel::unbounded();
        let remote: SocketAddr = "10.1.0.1:6881".parse().unwrap();
        ext.connected(
            &t,
            1,
            remote,
            Some("192.168.5.5:40000".parse().unwrap()),
            true,
            tx,
        );
        let mut first = Pex::default();
        for ip in ["192.168.5.5", "0.0.0.0", "127.0.0.1"] {
            first.added.push(PexPeer {
                addr: SocketAddr::new(ip.parse().unwrap(), 7000),
                flags: 0,
            });
        }
        // 3 of ourselves, then 12 x 50 others (each message holds 50): 600 offered.
        let others: Vec<PexPeer> = (0..600u32)
            .map(|i| PexPeer {
                addr: SocketAddr::new(IpAddr::from([10, 2, (i >> 8) as u8, i as u8]), 6881),
                flags: 0,
            })
            .collect();
        first.added.extend_from_slice(&others[..47]);
        ext.handle(&t, 1, remote, OUR_PEX_ID, &first.encode());
        for chunk in others[47..].chunks(50) {
            let msg = Pex {
                added: chunk.to_vec(),
                dropped: Vec::new(),
            };
            ext.handle(&t, 1, remote, OUR_PEX_ID, &msg.encode());
        }
        let known = t.dialer.lock().unwrap().addresses();
        assert!(known.iter().all(|(a, _)| a.port() != 7000), "{known:?}");
        assert!(known.iter().all(|(_, s)| *s == Source::Pex));
        assert_eq!(known.len(), MAX_PEX_LEARNED);
        assert_eq!(ext.pex_learned(), MAX_PEX_LEARNED);
    }

    #[test]
    fn we_are_recognised_at_any_of_our_addresses() {
        let listen: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        let own: HashSet<IpAddr> = ["192.168.1.5".parse().unwrap()].into();
        assert!(is_us(
            "192.168.1.5:7000".parse().unwrap(),
            Some(listen),
            &own
        ));
        assert!(is_us("0.0.0.0:7000".parse().unwrap(), Some(listen), &own));
        assert!(!is_us(
            "192.168.1.5:7001".parse().unwrap(),
            Some(listen),
            &own
        ));
        assert!(!is_us(
            "192.168.1.6:7000".parse().unwrap(),
            Some(listen),
            &own
        ));
        assert!(!is_us("192.168.1.5:7000".parse().unwrap(), None, &own));
    }
}
