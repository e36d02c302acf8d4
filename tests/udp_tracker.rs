//! `bt tracker` over UDP (BEP 15), as a real process on 127.0.0.1: the exchanges, the shared
//! table with HTTP, and hostile datagrams (short, long, garbage, wrong connection ids, too many
//! scrape hashes, floods from many 127.x source addresses). Every answer received is checked
//! against the amplification bound.

mod common;
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bt::proto::tracker::udp::{Announce, Request, Response, MAX_SCRAPE_HASHES};
use bt::proto::tracker::{AnnounceRequest, AnnounceResponse, Event};
use support::{announce, Tracker};

/// No answer may be larger than this many times its request.
const AMPLIFICATION: usize = 4;

/// A UDP client bound to `from` (any 127.x address), talking to the tracker.
struct Client {
    socket: UdpSocket,
    tracker: SocketAddr,
}

impl Client {
    fn new(from: [u8; 4], tracker: SocketAddr) -> Client {
        let socket = UdpSocket::bind(SocketAddr::from((from, 0))).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Client { socket, tracker }
    }

    fn send_raw(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.tracker).unwrap();
    }

    /// The next datagram, checked against the bound for a request of `sent` bytes.
    fn recv(&self, sent: usize) -> Option<Vec<u8>> {
        let mut buf = [0u8; 65536];
        let (n, from) = self.socket.recv_from(&mut buf).ok()?;
        assert_eq!(from, self.tracker);
        assert!(
            n <= AMPLIFICATION * sent,
            "{n}-byte answer to a {sent}-byte request"
        );
        Some(buf[..n].to_vec())
    }

    /// Send `req` and wait for the answer carrying its transaction id (retrying: UDP).
    fn exchange(&self, req: &Request) -> Response {
        let mut out = Vec::new();
        req.encode(&mut out);
        let tid = u32::from_be_bytes(out[12..16].try_into().unwrap());
        for _ in 0..5 {
            self.send_raw(&out);
            while let Some(answer) = self.recv(out.len()) {
                let r = Response::parse(&answer, false).unwrap();
                if r.transaction_id() == tid {
                    return r;
                }
            }
        }
        panic!("no answer to {req:?}");
    }

    fn connect(&self) -> u64 {
        match self.exchange(&Request::Connect {
            transaction_id: rand_u32(),
        }) {
            Response::Connect { connection_id, .. } => connection_id,
            other => panic!("{other:?}"),
        }
    }

    fn announce(&self, id: u64, request: AnnounceRequest) -> Response {
        self.exchange(&Request::Announce(Announce {
            connection_id: id,
            transaction_id: rand_u32(),
            request,
        }))
    }

    /// True if the tracker still answers a connect from here, and said nothing else before.
    fn only_answers_connects(&self) -> bool {
        for _ in 0..2 {
            let tid = rand_u32();
            let mut out = Vec::new();
            Request::Connect {
                transaction_id: tid,
            }
            .encode(&mut out);
            self.send_raw(&out);
            loop {
                let Some(answer) = self.recv(out.len()) else {
                    return false;
                };
                match Response::parse(&answer, false) {
                    Ok(Response::Connect { transaction_id, .. }) if transaction_id == tid => break,
                    Ok(Response::Connect { .. }) => continue,
                    _ => return false,
                }
            }
        }
        true
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) as u32
}

fn tracker() -> Tracker {
    Tracker::start("[tracker]\n", &[])
}

#[test]
fn udp_and_http_peers_share_one_swarm() {
    let t = tracker();
    let c = Client::new([127, 0, 0, 1], t.addr);
    let id = c.connect();
    let seeder = announce(1, 7001, 0, Event::Started);
    match c.announce(id, seeder) {
        Response::Announce {
            seeders, leechers, ..
        } => assert_eq!((seeders, leechers), (1, 0)),
        other => panic!("{other:?}"),
    }
    // An HTTP leecher sees the UDP seeder...
    let (code, body) = t.get(&format!(
        "/announce?{}",
        announce(1, 7002, 5, Event::Started).to_query()
    ));
    assert_eq!(code, 200);
    let http = AnnounceResponse::parse(&body).unwrap();
    assert_eq!(http.peers.len(), 1);
    assert_eq!(http.peers[0].addr.to_string(), "127.0.0.1:7001");
    // ... and a UDP leecher sees both (the same connection id, reused).
    match c.announce(id, announce(1, 7003, 5, Event::Started)) {
        Response::Announce {
            seeders,
            leechers,
            mut peers,
            ..
        } => {
            peers.sort();
            assert_eq!((seeders, leechers), (1, 2));
            let p: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            assert_eq!(p, ["127.0.0.1:7001", "127.0.0.1:7002"]);
        }
        other => panic!("{other:?}"),
    }
    // Scrape: one entry per hash, in order.
    match c.exchange(&Request::Scrape {
        connection_id: id,
        transaction_id: 9,
        info_hashes: vec![[2; 20], [1; 20]],
    }) {
        Response::Scrape { stats, .. } => {
            assert_eq!(stats.len(), 2);
            assert_eq!((stats[0].complete, stats[0].incomplete), (0, 0));
            assert_eq!((stats[1].complete, stats[1].incomplete), (1, 2));
        }
        other => panic!("{other:?}"),
    }
    // `stopped` over UDP removes the peer for HTTP too.
    c.announce(id, announce(1, 7001, 0, Event::Stopped));
    let (_, body) = t.get(&format!(
        "/announce?{}",
        announce(1, 7002, 5, Event::None).to_query()
    ));
    let http = AnnounceResponse::parse(&body).unwrap();
    assert_eq!((http.complete, http.incomplete), (0, 2));
}

#[test]
fn short_long_and_garbage_datagrams_get_nothing_bigger_than_themselves() {
    let mut t = tracker();
    let c = Client::new([127, 0, 0, 1], t.addr);
    // Too short to carry a transaction id: no answer.
    for len in 0..16 {
        c.send_raw(&vec![0xa5; len]);
    }
    assert!(c.only_answers_connects());
    // Longer than any request: dropped unread.
    c.send_raw(&vec![0; 3000]);
    c.send_raw(&vec![0xff; 65_000]);
    assert!(c.only_answers_connects());
    // Garbage of every length up to 200 bytes: whatever comes back obeys the bound (checked in
    // `recv`), and the tracker keeps serving.
    let mut x: u64 = 0x0123_4567_89ab_cdef;
    for len in 16..200 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        c.send_raw(&junk);
        while let Ok(Some(answer)) = c
            .socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map(|_| c.recv(len))
        {
            assert!(answer.len() <= len);
        }
    }
    c.socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(c.only_answers_connects());
    assert!(t.alive());
    assert_eq!(
        t.get("/peers").0,
        200,
        "HTTP still answers after the garbage"
    );
}

#[test]
fn wrong_and_borrowed_connection_ids_are_refused_and_change_nothing() {
    let t = tracker();
    let honest = Client::new([127, 0, 0, 1], t.addr);
    let other = Client::new([127, 0, 0, 2], t.addr);
    let id = honest.connect();
    // Made up.
    let made_up = other.announce(12345, announce(1, 7001, 0, Event::Started));
    assert!(
        matches!(made_up, Response::Error { ref message, .. } if message.contains("connection id")),
        "{made_up:?}"
    );
    // Another address's id (what a spoofer would need): refused too.
    let borrowed = other.announce(id, announce(1, 7001, 0, Event::Started));
    assert!(matches!(borrowed, Response::Error { .. }), "{borrowed:?}");
    // The protocol id itself is not a connection id.
    let magic = other.announce(0x41727101980, announce(1, 7001, 0, Event::Started));
    assert!(matches!(magic, Response::Error { .. }), "{magic:?}");
    // Nothing was added.
    match honest.exchange(&Request::Scrape {
        connection_id: id,
        transaction_id: 1,
        info_hashes: vec![[1; 20]],
    }) {
        Response::Scrape { stats, .. } => assert_eq!(stats[0].complete, 0),
        other => panic!("{other:?}"),
    }
    // Ids from one address work from any of its ports (a client may open a new socket).
    let again = Client::new([127, 0, 0, 1], t.addr);
    assert!(matches!(
        again.announce(id, announce(1, 7001, 0, Event::Started)),
        Response::Announce { seeders: 1, .. }
    ));
}

#[test]
fn a_scrape_of_too_many_hashes_is_refused() {
    let t = tracker();
    let c = Client::new([127, 0, 0, 1], t.addr);
    let id = c.connect();
    let ok = c.exchange(&Request::Scrape {
        connection_id: id,
        transaction_id: 1,
        info_hashes: vec![[7; 20]; MAX_SCRAPE_HASHES],
    });
    assert!(matches!(ok, Response::Scrape { ref stats, .. } if stats.len() == MAX_SCRAPE_HASHES));
    let mut many = Vec::new();
    Request::Scrape {
        connection_id: id,
        transaction_id: 2,
        info_hashes: vec![[7; 20]; MAX_SCRAPE_HASHES],
    }
    .encode(&mut many);
    many.extend_from_slice(&[7; 20]);
    c.send_raw(&many);
    let answer = c.recv(many.len()).expect("an error answer");
    assert!(matches!(
        Response::parse(&answer, false),
        Ok(Response::Error { transaction_id: 2, ref message }) if message.contains("too many")
    ));
}

#[test]
fn a_flood_from_many_loopback_addresses_is_capped_per_address() {
    const ADDRESSES: u8 = 100;
    const PER_ADDRESS: u16 = 30;
    const CAP: usize = 10;
    let t = Tracker::start(&format!("[tracker]\nmax_peers_per_ip = {CAP}\n"), &[]);
    let addr = t.addr;
    let threads: Vec<_> = (0..ADDRESSES)
        .map(|k| {
            std::thread::spawn(move || {
                let c = Client::new([127, 0, 1, 1 + k], addr);
                let id = c.connect();
                let (mut ok, mut refused) = (0usize, 0usize);
                for port in 1..=PER_ADDRESS {
                    let req = announce(1 + (port % 3) as u8, 1000 + port, 5, Event::Started);
                    match c.announce(id, req) {
                        Response::Announce { .. } => ok += 1,
                        Response::Error { message, .. } => {
                            assert!(message.contains("too many peers from your address"));
                            refused += 1;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    for th in threads {
        assert_eq!(th.join().unwrap(), (CAP, PER_ADDRESS as usize - CAP));
    }
    // The table holds exactly the capped peers, and an honest client is still served.
    let honest = Client::new([127, 0, 0, 1], t.addr);
    let id = honest.connect();
    match honest.exchange(&Request::Scrape {
        connection_id: id,
        transaction_id: 1,
        info_hashes: vec![[1; 20], [2; 20], [3; 20]],
    }) {
        Response::Scrape { stats, .. } => {
            let total: u32 = stats.iter().map(|s| s.incomplete).sum();
            assert_eq!(total as usize, ADDRESSES as usize * CAP);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        honest.announce(id, announce(1, 6881, 0, Event::Started)),
        Response::Announce { .. }
    ));
}
