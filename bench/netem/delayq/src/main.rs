//! delayq: hold every packet of one NFQUEUE for a fixed time, then let it through.
//!
//!     delayq QUEUE_NUM DELAY_US
//!
//! The netem benchmark's link delay (this kernel has no `sch_netem`): an `iptables ... -j NFQUEUE
//! --queue-num N` rule sends each packet arriving at a host here. Only metadata crosses to user
//! space; the delay is the same for every packet, so they leave in arrival order and one batch
//! verdict ("accept every id up to N") releases all that are due. Speaks netfilter's netlink
//! protocol directly (no libnetfilter_queue). Runs until killed.

use std::collections::VecDeque;
use std::io;
use std::mem::size_of;
use std::time::{Duration, Instant};

// <linux/netfilter/nfnetlink_queue.h> and <linux/netfilter/nfnetlink.h>
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;

/// Packets the kernel may hold for us before it lets new ones through unheld (fail-open).
const KERNEL_QUEUE_LEN: u32 = 1 << 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (queue, delay) = match (args.get(1), args.get(2)) {
        (Some(q), Some(d)) => match (q.parse::<u16>(), d.parse::<u64>()) {
            (Ok(q), Ok(d)) => (q, Duration::from_micros(d)),
            _ => usage(),
        },
        _ => usage(),
    };
    if let Err(e) = run(queue, delay) {
        eprintln!("delayq: queue {queue}: {e}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("usage: delayq QUEUE_NUM DELAY_US");
    std::process::exit(2);
}

fn run(queue: u16, delay: Duration) -> io::Result<()> {
    let sock = Netlink::open()?;
    // bind the queue, metadata only, a long kernel queue, and fail open rather than drop
    let mut cfg = Msg::new(NFQNL_MSG_CONFIG, queue, true);
    cfg.attr(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
    cfg.attr(NFQA_CFG_PARAMS, &[0, 0, 0, 0, NFQNL_COPY_META]);
    cfg.attr(NFQA_CFG_QUEUE_MAXLEN, &KERNEL_QUEUE_LEN.to_be_bytes());
    cfg.attr(NFQA_CFG_MASK, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
    cfg.attr(NFQA_CFG_FLAGS, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
    sock.send(&cfg.finish())?;

    let mut held: VecDeque<(u32, Instant)> = VecDeque::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let now = Instant::now();
        let mut last_due = None;
        while let Some(&(id, due)) = held.front() {
            if due > now {
                break;
            }
            last_due = Some(id);
            held.pop_front();
        }
        if let Some(id) = last_due {
            let mut v = Msg::new(NFQNL_MSG_VERDICT_BATCH, queue, false);
            let mut hdr = [0u8; 8];
            hdr[..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
            hdr[4..].copy_from_slice(&id.to_be_bytes());
            v.attr(NFQA_VERDICT_HDR, &hdr);
            sock.send(&v.finish())?;
        }
        let wait = held
            .front()
            .map(|&(_, due)| due.saturating_duration_since(now));
        if !sock.wait_readable(wait)? {
            continue;
        }
        // everything the kernel has queued for us now
        while let Some(n) = sock.recv(&mut buf)? {
            let arrived = Instant::now();
            for (kind, body) in messages(&buf[..n]) {
                if kind == NLMSG_ERROR {
                    let errno = body
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                } else if kind == (NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET) {
                    // skip the 4-byte nfgenmsg, then find the packet header attribute
                    if let Some(hdr) = attrs(body.get(4..).unwrap_or(&[]))
                        .find(|&(t, _)| t == NFQA_PACKET_HDR)
                        .and_then(|(_, v)| v.get(..4))
                    {
                        held.push_back((
                            u32::from_be_bytes(hdr.try_into().unwrap()),
                            arrived + delay,
                        ));
                    }
                }
            }
        }
    }
}

/// One netlink message being built: header, nfgenmsg, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, queue: u16, ack: bool) -> Msg {
        let mut b = Vec::with_capacity(64);
        let flags: u16 = libc::NLM_F_REQUEST as u16 | if ack { libc::NLM_F_ACK as u16 } else { 0 };
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        b.extend_from_slice(&(NFNL_SUBSYS_QUEUE << 8 | kind).to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // sequence
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]); // nfgenmsg: family, version 0
        b.extend_from_slice(&queue.to_be_bytes());
        Msg(b)
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len() + (align4(len) - len), 0);
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The (type, payload) of each netlink message in one datagram.
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().unwrap());
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let body = &buf[NLMSG_HDRLEN..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((kind, body))
    })
}

/// The (type, value) of each attribute in a message body.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes(buf[..2].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buf[2..4].try_into().unwrap()) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((kind, value))
    })
}

/// A netfilter netlink socket.
struct Netlink(libc::c_int);

impl Netlink {
    fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket calls on a descriptor this struct owns; every pointer passed is to
        // a live local of the size given.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let sock = Netlink(fd);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            if libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_nl>() as u32,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            // a deep receive buffer, and no ENOBUFS errors: a lost notice only means its packet
            // leaves with the next batch verdict, which accepts every id up to its own
            let big: libc::c_int = 16 << 20;
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &big as *const _ as *const libc::c_void,
                4,
            );
            libc::setsockopt(
                fd,
                libc::SOL_NETLINK,
                libc::NETLINK_NO_ENOBUFS,
                &one as *const _ as *const libc::c_void,
                4,
            );
            Ok(sock)
        }
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msg and to outlive the call.
        let n = unsafe {
            libc::sendto(
                self.0,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &to as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram, or None when nothing is waiting.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: buf is writable for its length.
        let n = unsafe {
            libc::recv(
                self.0,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Wait until a datagram arrives (true) or `timeout` passes (false); no timeout waits for ever.
    fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let tp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: pfd and the timespec live across the call.
        let n = unsafe { libc::ppoll(&mut pfd, 1, tp, std::ptr::null()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(n > 0)
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}
