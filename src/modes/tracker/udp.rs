//! The UDP tracker (BEP 15), on the same port number as the HTTP one and over the same swarm
//! table, limits and access list.
//!
//! Stateless: a connection id is a keyed hash (SipHash-1-3 with a per-process random key, from
//! std's `RandomState`) of the source IP address and of the current minute; it is valid
//! for that minute and the next, and nothing is stored per connection. A spoofed source thus
//! never gets an announce answered (it cannot see the connect answer that carries its id).
//!
//! Amplification bound: no answer is larger than [`AMPLIFICATION`] times its request. Connect
//! and scrape answers are never larger than their requests; announce answers are held to it by
//! capping `numwant` ([`MAX_PEERS_V4`], [`MAX_PEERS_V6`]); an error is only sent when it is no
//! larger than the datagram it answers, and datagrams too short to carry a transaction id get
//! no answer at all.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::debug;

use super::table::{Table, DEFAULT_NUMWANT};
use super::Shared;
use crate::proto::tracker::udp::{self, Request, Response, UdpError, ANNOUNCE_LEN, MAX_DATAGRAM};

/// Seconds of one connection-id window: an id works in the window it was issued in and the
/// next one, i.e. 1 to 2 minutes (BEP 15: clients reuse one for up to a minute).
pub const ID_WINDOW_SECS: u64 = 60;
/// Most peers in an announce answer over IPv4: 20 + 50 × 6 = 320 bytes, 3.3× the 98-byte request.
pub const MAX_PEERS_V4: usize = 50;
/// Most peers in an announce answer over IPv6: 20 + 20 × 18 = 380 bytes, 3.9× the request.
pub const MAX_PEERS_V6: usize = 20;
/// No answer is larger than this many times its request.
pub const AMPLIFICATION: usize = 4;
/// Receiving threads (or tasks) sharing the socket (one per core of the machine this was
/// tuned on: one thread alone stalls whenever the scheduler takes its core away).
const RECEIVERS: usize = 2;

/// Issues and checks connection ids without remembering any.
pub struct ConnectionIds {
    key: std::collections::hash_map::RandomState,
}

impl Default for ConnectionIds {
    fn default() -> Self {
        ConnectionIds::new()
    }
}

impl ConnectionIds {
    /// A fresh random key: ids from another process (or an earlier run) are not valid here.
    pub fn new() -> ConnectionIds {
        ConnectionIds {
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    fn id(&self, from: SocketAddr, window: u64) -> u64 {
        // The IP alone, not the port: a client may send from a new socket each time (and a
        // NAT may change the port), and the id only has to prove the address can receive.
        self.key.hash_one((from.ip().to_canonical(), window))
    }

    /// The id to give `from` at `secs` (seconds on any clock that only moves forward).
    pub fn issue(&self, from: SocketAddr, secs: u64) -> u64 {
        self.id(from, secs / ID_WINDOW_SECS)
    }

    /// True if `id` was issued to `from` in this window or the one before.
    pub fn check(&self, id: u64, from: SocketAddr, secs: u64) -> bool {
        let window = secs / ID_WINDOW_SECS;
        id == self.id(from, window) || (window > 0 && id == self.id(from, window - 1))
    }
}

/// The answer to one datagram from `from`, or `None` to stay silent. `secs` is the clock
/// for connection ids; `now` the table's.
pub fn answer(
    table: &mut Table,
    ids: &ConnectionIds,
    datagram: &[u8],
    from: SocketAddr,
    secs: u64,
    now: Instant,
) -> Option<Vec<u8>> {
    let request = match Request::parse(datagram) {
        Ok(r) => r,
        // A connect without the protocol id is not a BEP 15 client: say nothing.
        Err(UdpError::NotBep15) => return None,
        Err(e) => return refuse(datagram, &e),
    };
    let mut out = Vec::with_capacity(64);
    match request {
        Request::Connect { transaction_id } => Response::Connect {
            transaction_id,
            connection_id: ids.issue(from, secs),
        }
        .encode(&mut out),
        Request::Announce(mut a) => {
            if !ids.check(a.connection_id, from, secs) {
                return refuse(datagram, &"bad or expired connection id");
            }
            let ipv6 = from.ip().to_canonical().is_ipv6();
            let cap = if ipv6 { MAX_PEERS_V6 } else { MAX_PEERS_V4 };
            let want = a.request.numwant.map_or(DEFAULT_NUMWANT, |n| n as usize);
            a.request.numwant = Some(want.min(cap) as u32);
            let source = from.ip().to_canonical();
            let resp = match table.announce(&a.request, source, now) {
                Ok(r) => r,
                Err(e) => return refuse(datagram, &e),
            };
            super::log_event(&a.request, source, &resp);
            // Only the family the request came in: BEP 15 has one record size per answer.
            let peers = resp
                .peers
                .iter()
                .map(|p| SocketAddr::new(p.addr.ip().to_canonical(), p.addr.port()))
                .filter(|p| p.is_ipv6() == ipv6)
                .take(cap)
                .collect();
            Response::Announce {
                transaction_id: a.transaction_id,
                interval: resp.interval,
                leechers: resp.incomplete,
                seeders: resp.complete,
                peers,
            }
            .encode(&mut out)
        }
        Request::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        } => {
            if !ids.check(connection_id, from, secs) {
                return refuse(datagram, &"bad or expired connection id");
            }
            let files = table.scrape(&info_hashes).files;
            Response::Scrape {
                transaction_id,
                stats: files.into_iter().map(|(_, s)| s).collect(),
            }
            .encode(&mut out)
        }
    }
    Some(out)
}

/// An error answer to `datagram`, if it carries a transaction id and the answer is no larger
/// than it (a spoofed datagram must not buy a bigger one aimed at its victim).
fn refuse(datagram: &[u8], why: &dyn std::fmt::Display) -> Option<Vec<u8>> {
    let (_, transaction_id) = udp::request_header(datagram)?;
    let text = why.to_string();
    let mut out = Vec::with_capacity(8 + text.len());
    udp::put_error(&mut out, transaction_id, &text);
    (out.len() <= datagram.len()).then_some(out)
}

/// Serve BEP 15 on `socket` until the process ends: on a thread of its own, with blocking
/// `recv_from` on the same socket (like opentracker's one loop: no readiness registration,
/// no task wake-ups between threads), or on the executor when that thread cannot be had.
pub(super) async fn serve(socket: crate::rt::UdpSocket, shared: Shared) {
    let server = Server {
        shared,
        ids: ConnectionIds::new(),
        started: Instant::now(),
    };
    if let Ok(twin) = blocking_twin(&socket) {
        drop(socket); // the twin holds the socket (now blocking: not for the executor)
        let server = Arc::new(server);
        let mut started = 0;
        for n in 0..RECEIVERS {
            let (server, twin) = (Arc::clone(&server), twin.try_clone());
            let Ok(twin) = twin else { continue };
            let run = move || {
                let mut buf = vec![0u8; MAX_DATAGRAM + 1];
                loop {
                    match twin.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if let Some(reply) = server.reply(&buf, n, from) {
                                if let Err(e) = twin.send_to(&reply, from) {
                                    debug!("udp send to {from}: {e}");
                                }
                            }
                        }
                        // ICMP "port unreachable" from an earlier answer and the like.
                        Err(e) => debug!("udp receive: {e}"),
                    }
                }
            };
            let thread = std::thread::Builder::new().name(format!("tracker-udp{n}"));
            match thread.spawn(run) {
                Ok(_) => started += 1,
                Err(e) => log::warn!("cannot start a UDP thread: {e}"),
            }
        }
        if started == 0 {
            log::warn!("no UDP thread could start: UDP is not served");
            return;
        }
        return std::future::pending::<()>().await;
    }
    let (socket, server) = (Arc::new(socket), Arc::new(server));
    let mut tasks = Vec::new();
    for _ in 0..RECEIVERS {
        let (socket, server) = (Arc::clone(&socket), Arc::clone(&server));
        tasks.push(crate::rt::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        if let Some(reply) = server.reply(&buf, n, from) {
                            if let Err(e) = socket.send_to(&reply, from).await {
                                debug!("udp send to {from}: {e}");
                            }
                        }
                    }
                    Err(e) => debug!("udp receive: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await;
    }
}

/// What every datagram is answered with: the table, the connection ids and their clock.
struct Server {
    shared: Shared,
    ids: ConnectionIds,
    started: Instant,
}

impl Server {
    /// The answer to the `n` bytes received in `buf` (read one byte longer than the largest
    /// datagram, so that a longer one shows as too long) from `from`.
    fn reply(&self, buf: &[u8], n: usize, from: SocketAddr) -> Option<Vec<u8>> {
        if n > MAX_DATAGRAM {
            return None;
        }
        let now = Instant::now();
        let secs = now.duration_since(self.started).as_secs();
        let reply = answer(
            &mut self.shared.table(),
            &self.ids,
            &buf[..n],
            from,
            secs,
            now,
        )?;
        debug_assert!(reply.len() <= AMPLIFICATION * n.max(ANNOUNCE_LEN));
        Some(reply)
    }
}

/// A blocking `std` socket on the socket of `socket`.
fn blocking_twin(socket: &crate::rt::UdpSocket) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `socket`, which outlives this borrow; the clone is a
    // new descriptor (`dup`) that the twin owns.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let twin = std::net::UdpSocket::from(fd.try_clone_to_owned()?);
    twin.set_nonblocking(false)?;
    Ok(twin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrackerConfig;
    use crate::proto::tracker::udp::{Announce, MAX_SCRAPE_HASHES};
    use crate::proto::tracker::{AnnounceRequest, Event};

    use super::super::table::TableLimits;

    fn table() -> Table {
        Table::new(
            TableLimits::from(&TrackerConfig::default()),
            None,
            Instant::now(),
        )
    }

    fn encode(r: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
    }

    fn connect(t: &mut Table, ids: &ConnectionIds, from: SocketAddr, secs: u64) -> u64 {
        let out = answer(
            t,
            ids,
            &encode(&Request::Connect { transaction_id: 77 }),
            from,
            secs,
            Instant::now(),
        )
        .unwrap();
        match Response::parse(&out, false).unwrap() {
            Response::Connect {
                transaction_id: 77,
                connection_id,
            } => connection_id,
            other => panic!("{other:?}"),
        }
    }

    fn announce(id: u64, port: u16, left: u64, numwant: Option<u32>) -> Vec<u8> {
        encode(&Request::Announce(Announce {
            connection_id: id,
            transaction_id: u32::from(port),
            request: AnnounceRequest {
                left,
                numwant,
                event: Event::Started,
                ..AnnounceRequest::new([1; 20], [port as u8; 20], port)
            },
        }))
    }

    #[test]
    fn ids_are_keyed_by_address_and_expire_after_two_windows() {
        let ids = ConnectionIds::new();
        let a: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:5000".parse().unwrap();
        let id = ids.issue(a, 100);
        assert!(ids.check(id, a, 100));
        assert!(ids.check(id, a, 179), "valid in the next window");
        assert!(!ids.check(id, a, 180), "expired two windows on");
        assert!(!ids.check(id, b, 100), "another address");
        assert!(
            ids.check(id, "127.0.0.2:5001".parse().unwrap(), 100),
            "any port"
        );
        assert!(!ConnectionIds::new().check(id, a, 100), "another key");
        // A mapped IPv4 address is the same address.
        let mapped: SocketAddr = "[::ffff:127.0.0.2]:5000".parse().unwrap();
        assert!(ids.check(id, mapped, 100));
    }

    #[test]
    fn announce_needs_a_valid_id_and_answers_in_the_request_family() {
        let mut t = table();
        let ids = ConnectionIds::new();
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let id = connect(&mut t, &ids, a, 5);
        let first = answer(
            &mut t,
            &ids,
            &announce(id, 6881, 0, None),
            a,
            5,
            Instant::now(),
        );
        let Response::Announce { seeders, peers, .. } =
            Response::parse(&first.unwrap(), false).unwrap()
        else {
            panic!("not an announce answer")
        };
        assert_eq!((seeders, peers.len()), (1, 0));
        let second = answer(
            &mut t,
            &ids,
            &announce(id, 6882, 5, None),
            a,
            5,
            Instant::now(),
        );
        let Response::Announce {
            seeders,
            leechers,
            peers,
            transaction_id,
            ..
        } = Response::parse(&second.unwrap(), false).unwrap()
        else {
            panic!("not an announce answer")
        };
        assert_eq!((seeders, leechers, transaction_id), (1, 1, 6882));
        assert_eq!(peers, ["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
        // A wrong id gets a short error, and changes nothing.
        let bad = answer(
            &mut t,
            &ids,
            &announce(id ^ 1, 6883, 5, None),
            a,
            5,
            Instant::now(),
        )
        .unwrap();
        assert!(matches!(
            Response::parse(&bad, false),
            Ok(Response::Error { transaction_id: 6883, ref message }) if message.contains("connection id")
        ));
        assert_eq!(t.counts(), (1, 2));
        // An expired one too.
        let late = answer(
            &mut t,
            &ids,
            &announce(id, 6883, 5, None),
            a,
            200,
            Instant::now(),
        );
        assert!(matches!(
            Response::parse(&late.unwrap(), false),
            Ok(Response::Error { .. })
        ));
        assert_eq!(t.counts(), (1, 2));
        // An IPv6 asker gets the IPv6 peers only, as 18-byte records.
        let v6: SocketAddr = "[::1]:40000".parse().unwrap();
        let id6 = connect(&mut t, &ids, v6, 5);
        answer(
            &mut t,
            &ids,
            &announce(id6, 7000, 0, None),
            v6,
            5,
            Instant::now(),
        )
        .unwrap();
        let out = answer(
            &mut t,
            &ids,
            &announce(id6, 7001, 9, None),
            v6,
            5,
            Instant::now(),
        );
        let Response::Announce { peers, .. } = Response::parse(&out.unwrap(), true).unwrap() else {
            panic!("not an announce answer")
        };
        assert_eq!(peers, ["[::1]:7000".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn no_answer_is_larger_than_the_bound() {
        let mut t = table();
        let ids = ConnectionIds::new();
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let id = connect(&mut t, &ids, a, 0);
        for port in 1..=300 {
            answer(
                &mut t,
                &ids,
                &announce(id, port, 0, Some(0)),
                a,
                0,
                Instant::now(),
            );
        }
        let req = announce(id, 9999, 5, Some(1_000_000));
        let out = answer(&mut t, &ids, &req, a, 0, Instant::now()).unwrap();
        assert_eq!(out.len(), 20 + MAX_PEERS_V4 * 6);
        assert!(out.len() <= AMPLIFICATION * req.len());
        // numwant -1 ("default") is the default, under the cap.
        let out = answer(
            &mut t,
            &ids,
            &announce(id, 9998, 5, None),
            a,
            0,
            Instant::now(),
        );
        assert_eq!(
            out.unwrap().len(),
            20 + DEFAULT_NUMWANT.min(MAX_PEERS_V4) * 6
        );
        // Errors no larger than what they answer; too short for a transaction id: silence.
        let scrape = encode(&Request::Scrape {
            connection_id: id ^ 5,
            transaction_id: 1,
            info_hashes: vec![[1; 20]],
        });
        let err = answer(&mut t, &ids, &scrape, a, 0, Instant::now()).unwrap();
        assert!(err.len() <= scrape.len());
        for len in 0..16 {
            assert_eq!(
                answer(&mut t, &ids, &vec![0xff; len], a, 0, Instant::now()),
                None
            );
        }
        // A connect without the protocol id is not ours: silence.
        let mut not_ours = encode(&Request::Connect { transaction_id: 1 });
        not_ours[0] = 0xff;
        assert_eq!(answer(&mut t, &ids, &not_ours, a, 0, Instant::now()), None);
    }

    #[test]
    fn scrape_answers_each_hash_in_order_and_refuses_too_many() {
        let mut t = table();
        let ids = ConnectionIds::new();
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let id = connect(&mut t, &ids, a, 0);
        answer(
            &mut t,
            &ids,
            &announce(id, 1, 0, None),
            a,
            0,
            Instant::now(),
        )
        .unwrap();
        let req = encode(&Request::Scrape {
            connection_id: id,
            transaction_id: 3,
            info_hashes: vec![[9; 20], [1; 20]],
        });
        let out = answer(&mut t, &ids, &req, a, 0, Instant::now()).unwrap();
        let Response::Scrape { stats, .. } = Response::parse(&out, false).unwrap() else {
            panic!("not a scrape answer")
        };
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].complete, stats[1].complete), (0, 1));
        let mut many = encode(&Request::Scrape {
            connection_id: id,
            transaction_id: 4,
            info_hashes: vec![[1; 20]; MAX_SCRAPE_HASHES],
        });
        many.extend_from_slice(&[1; 20]);
        let out = answer(&mut t, &ids, &many, a, 0, Instant::now()).unwrap();
        assert!(matches!(
            Response::parse(&out, false),
            Ok(Response::Error {
                transaction_id: 4,
                ..
            })
        ));
    }
}
