//! A BEP 15 load generator for bench/tracker/run.py: std only, built with a bare
//! `rustc -O` (no Cargo project of its own).
//!
//!     udp_load ADDR HASHES_FILE random SECONDS THREADS WINDOW
//!     udp_load ADDR HASHES_FILE fill PEERS THREADS WINDOW
//!
//! Each thread has one socket, bound to its own loopback address (127.0.2.T, so a tracker's
//! per-address limits see a few hosts, as they would in the field), gets a connection id,
//! then keeps WINDOW announces in flight: each answer is timed and replaced by the next
//! request. `random`: announces of random torrents of HASHES_FILE (40 hex digits a line),
//! random ports, peer ids and `left`, for SECONDS. `fill`: exactly PEERS distinct peers, spread
//! evenly over the torrents, each announced once. Requests unanswered after 200 ms count as
//! lost and are replaced. Prints one line of JSON: answered, lost, errors (error answers),
//! seconds, p50_us, p99_us.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROTOCOL_ID: u64 = 0x0417_2710_1980;
const SLOTS: usize = 1 << 16;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn hex20(line: &str) -> [u8; 20] {
    let mut h = [0u8; 20];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).expect("hex info-hash");
    }
    h
}

fn connect(sock: &UdpSocket) -> u64 {
    let mut buf = [0u8; 64];
    for _ in 0..50 {
        let mut req = Vec::with_capacity(16);
        req.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
        req.extend_from_slice(&0u32.to_be_bytes());
        req.extend_from_slice(&0xc0ffeeu32.to_be_bytes());
        sock.send(&req).expect("send connect");
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 16 && buf[0..4] == [0, 0, 0, 0] {
                return u64::from_be_bytes(buf[8..16].try_into().unwrap());
            }
        }
    }
    panic!("no connect answer");
}

struct Job {
    hashes: Vec<[u8; 20]>,
    /// `fill`: the next peer number to announce, shared by the threads; `random`: unused.
    next_peer: AtomicU64,
    peers: u64,
    fill: bool,
    until: Instant,
}

/// The announce for `n` (fill) or a random one.
fn announce(job: &Job, id: u64, tid: u32, rng: &mut Rng, n: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&tid.to_be_bytes());
    let (hash, port, left, peer) = if job.fill {
        let h = job.hashes.len() as u64;
        (n % h, 1 + n / h, (n % 2) << 20, n)
    } else {
        let r = rng.next();
        (r % job.hashes.len() as u64, 1 + (r >> 20) % 65000, (r >> 40) % 2 << 20, r)
    };
    out.extend_from_slice(&job.hashes[hash as usize]);
    let mut pid = *b"-BENCH0-000000000000";
    pid[8..16].copy_from_slice(&peer.to_be_bytes());
    out.extend_from_slice(&pid);
    out.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    out.extend_from_slice(&left.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    out.extend_from_slice(&0u32.to_be_bytes()); // event
    out.extend_from_slice(&0u32.to_be_bytes()); // ip
    out.extend_from_slice(&0u32.to_be_bytes()); // key
    out.extend_from_slice(&50i32.to_be_bytes()); // numwant
    out.extend_from_slice(&(port as u16).to_be_bytes());
}

/// One thread: (answered, lost, errors, latencies in µs).
fn run(addr: String, index: usize, job: Arc<Job>, window: usize) -> (u64, u64, u64, Vec<u32>) {
    let sock = UdpSocket::bind(("127.0.2.".to_string() + &(1 + index).to_string(), 0))
        .or_else(|_| UdpSocket::bind("127.0.0.1:0"))
        .expect("bind");
    sock.connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let id = connect(&sock);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1) * 0x1234_5678);
    let mut sent_at: Vec<Option<Instant>> = vec![None; SLOTS];
    let mut tid: u32 = 0;
    let mut lat = Vec::with_capacity(1 << 20);
    let (mut answered, mut lost, mut errors, mut in_flight) = (0u64, 0u64, 0u64, 0usize);
    let mut out = Vec::with_capacity(98);
    let mut buf = [0u8; 2048];
    let mut done_sending = false;
    let mut send_one = |sent_at: &mut Vec<Option<Instant>>, tid: &mut u32, rng: &mut Rng| -> bool {
        let n = if job.fill {
            let n = job.next_peer.fetch_add(1, Ordering::Relaxed);
            if n >= job.peers {
                return false;
            }
            n
        } else {
            if Instant::now() >= job.until {
                return false;
            }
            0
        };
        *tid = tid.wrapping_add(1);
        announce(&job, id, *tid, rng, n, &mut out);
        sent_at[*tid as usize % SLOTS] = Some(Instant::now());
        sock.send(&out).is_ok()
    };
    for _ in 0..window {
        if send_one(&mut sent_at, &mut tid, &mut rng) {
            in_flight += 1;
        }
    }
    while in_flight > 0 {
        match sock.recv(&mut buf) {
            Ok(n) if n >= 8 => {
                let t = u32::from_be_bytes(buf[4..8].try_into().unwrap());
                let Some(at) = sent_at[t as usize % SLOTS].take() else {
                    continue;
                };
                in_flight -= 1;
                answered += 1;
                if buf[3] == 3 {
                    errors += 1;
                }
                lat.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok(_) => {}
            Err(_) => {
                // Everything in flight is lost: forget it and refill the window.
                lost += in_flight as u64;
                in_flight = 0;
                sent_at.iter_mut().for_each(|s| *s = None);
            }
        }
        while !done_sending && in_flight < window {
            if send_one(&mut sent_at, &mut tid, &mut rng) {
                in_flight += 1;
            } else {
                done_sending = true;
            }
        }
    }
    (answered, lost, errors, lat)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 7 {
        eprintln!("usage: udp_load ADDR HASHES_FILE random|fill SECONDS|PEERS THREADS WINDOW");
        std::process::exit(2);
    }
    let hashes: Vec<[u8; 20]> = std::fs::read_to_string(&a[2])
        .expect("hashes file")
        .lines()
        .filter(|l| l.len() >= 40)
        .map(hex20)
        .collect();
    let fill = a[3] == "fill";
    let amount: u64 = a[4].parse().expect("a number");
    let threads: usize = a[5].parse().expect("threads");
    let window: usize = a[6].parse().expect("window");
    let start = Instant::now();
    let job = Arc::new(Job {
        hashes,
        next_peer: AtomicU64::new(0),
        peers: if fill { amount } else { 0 },
        fill,
        until: start + Duration::from_secs(if fill { 3600 } else { amount }),
    });
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (addr, job) = (a[1].clone(), Arc::clone(&job));
            std::thread::spawn(move || run(addr, i, job, window))
        })
        .collect();
    let (mut answered, mut lost, mut errors, mut lat) = (0, 0, 0, Vec::new());
    for h in handles {
        let (an, lo, er, la) = h.join().unwrap();
        answered += an;
        lost += lo;
        errors += er;
        lat.extend(la);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"answered\": {answered}, \"lost\": {lost}, \"errors\": {errors}, \"seconds\": {secs:.3}, \"p50_us\": {}, \"p99_us\": {}}}",
        pct(0.50),
        pct(0.99)
    );
}
