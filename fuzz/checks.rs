//! The properties the fuzz targets check, one function per target. Shared word for word by the
//! libFuzzer targets (`fuzz/fuzz_targets/*.rs`) and by the regression tests
//! (`tests/fuzz_regressions.rs`), so a saved crash input is re-checked by plain `cargo test`.
//!
//! Each function takes the raw fuzz input and panics when a property fails; inputs that the code
//! under test refuses are fine, as long as it refuses them without panicking.
#![allow(dead_code)] // each fuzz target uses one function

use std::net::SocketAddr;
use std::path::Component;

use bt::proto::bitfield::{Bitfield, BitfieldError};
use bt::proto::extension::{
    ExtHandshake, MAX_CLIENT_LEN, MAX_EXTENSIONS, MAX_METADATA_SIZE, MAX_REQQ,
};
use bt::proto::magnet::{Magnet, MAX_MAGNET_LEN, MAX_PEERS, MAX_TRACKERS};
use bt::proto::metadata::{self, MetadataAssembler, MetadataMsg};
use bt::proto::metainfo::{check_component, Metainfo};
use bt::proto::pex::{Pex, MAX_PEX_KEEP, MAX_PEX_SEND};
use bt::proto::tracker::{
    AnnounceRequest, AnnounceResponse, PeerEntry, ScrapeRequest, ScrapeResponse,
};
use bt::proto::wire::{self, FrameLimits, Handshake, Message, WireError, HANDSHAKE_LEN};
use sha1::{Digest, Sha1};

/// `Metainfo::from_bytes`: when it accepts, every path is safe, the info-hash is the SHA-1 of
/// the raw info bytes, and `to_bytes` re-parses to an equal value (a fixed point from then on).
pub fn metainfo(data: &[u8]) {
    let Ok(m) = Metainfo::from_bytes(data) else {
        return;
    };
    assert_eq!(
        m.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(m.info_bytes()))
    );
    assert_eq!(check_component(&m.info.name), Ok(()), "{:?}", m.info.name);
    assert!(!m.info.files.is_empty());
    for (i, f) in m.info.files.iter().enumerate() {
        assert!(!f.path.is_empty(), "file {i} has an empty path");
        for c in &f.path {
            assert_eq!(check_component(c), Ok(()), "{c:?} in {:?}", f.path);
        }
        let rel = m.relative_path(i);
        assert!(
            rel.components().all(|c| matches!(c, Component::Normal(_))),
            "{rel:?} escapes the download folder"
        );
    }
    let layout = m.layout();
    assert_eq!(layout.total_length(), m.total_length());
    assert_eq!(layout.piece_count(), m.info.pieces.len());

    let bytes = m.to_bytes();
    let again = Metainfo::from_bytes(&bytes).expect("to_bytes output re-parses");
    assert_eq!(again, m);
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(again.to_bytes(), bytes, "to_bytes is a fixed point");

    let mut edited = m.clone();
    edited.set_trackers(&["http://t.example/announce".into(), "udp://u:1".into()]);
    let edited = Metainfo::from_bytes(&edited.to_bytes()).expect("edited torrent re-parses");
    assert_eq!(edited.info_hash, m.info_hash);
    assert_eq!(edited.info, m.info);
}

/// The frame decoder fed a byte stream in chunks. Input: one byte that picks the piece count
/// behind the [`FrameLimits`], one byte `k`, then `k % 8` chunk sizes, then the stream (which may open
/// with a handshake). Chunked
/// decoding must give exactly what decoding the whole stream at once gives; every message
/// re-encodes to the bytes it came from; the decoder only waits for frames within the limit.
pub fn wire_stream(data: &[u8]) {
    let [sel, k, rest @ ..] = data else {
        return;
    };
    let pieces = pieces_for(*sel);
    let limits = FrameLimits::for_pieces(pieces);
    let n = usize::from(k % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(n);

    // A stream that opens with a handshake goes on with frames, as on a real connection.
    let stream = match stream.first_chunk::<HANDSHAKE_LEN>().map(Handshake::decode) {
        Some(Ok(parsed)) => {
            assert_eq!(parsed.encode(), stream[..HANDSHAKE_LEN]);
            &stream[HANDSHAKE_LEN..]
        }
        _ => stream,
    };

    let whole = decode_all(stream, limits, pieces, &[]);
    let chunked = decode_all(stream, limits, pieces, sizes);
    assert_eq!(whole, chunked, "chunking changed what was decoded");
}

/// What the decoder made of a stream: each frame's bytes, then an error if it stopped on one.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    frames: Vec<Vec<u8>>,
    error: Option<WireError>,
}

/// Decode `stream`, arriving in chunks of `1 + s * s` bytes for each `s` of `sizes` (cycled: 1
/// to 65,026 bytes, small ones more often; none = all at once).
fn decode_all(stream: &[u8], limits: FrameLimits, pieces: usize, sizes: &[u8]) -> Decoded {
    let mut out = Decoded {
        frames: Vec::new(),
        error: None,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut sizes = sizes.iter().cycle();
    while fed < stream.len() {
        let step = sizes
            .next()
            .map_or(stream.len(), |&s| 1 + usize::from(s) * usize::from(s));
        let end = (fed + step).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            match wire::decode(&buf, limits) {
                Ok(Some((msg, used))) => {
                    check_message(&msg, &buf[..used], limits, pieces);
                    out.frames.push(buf[..used].to_vec());
                    buf.drain(..used);
                }
                Ok(None) => {
                    // Waiting is only allowed for a frame within the limit.
                    if let Some(prefix) = buf.first_chunk::<4>() {
                        let len = u32::from_be_bytes(*prefix);
                        assert!(len <= limits.max_frame, "waits for {len} bytes");
                        assert!(buf.len() < 4 + len as usize);
                    }
                    break;
                }
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

/// One decoded message against the bytes it was decoded from.
fn check_message(msg: &Message<'_>, raw: &[u8], limits: FrameLimits, pieces: usize) {
    assert!(raw.len() >= 4 && raw.len() <= 4 + limits.max_frame as usize);
    match msg {
        Message::Unknown(id) => {
            let known = *id <= wire::id::CANCEL
                || (wire::id::SUGGEST..=wire::id::ALLOWED_FAST).contains(id)
                || *id == wire::id::EXTENDED;
            assert!(!known && raw[4] == *id);
        }
        _ => {
            let mut again = Vec::new();
            wire::encode(msg, &mut again);
            assert_eq!(again, raw, "{msg:?} re-encodes differently");
        }
    }
    match msg {
        Message::Request(b) | Message::Cancel(b) => assert!(b.len <= bt::proto::layout::BLOCK),
        Message::Piece { data, .. } => assert!(data.len() <= bt::proto::layout::BLOCK as usize),
        Message::Reject(b) => assert!(b.len <= bt::proto::layout::BLOCK),
        Message::Extended { payload, .. } => assert!(payload.len() <= wire::MAX_EXTENDED_PAYLOAD),
        Message::Bitfield(bits) => {
            if let Ok(b) = Bitfield::from_bytes(bits, pieces) {
                assert_eq!(b.as_bytes(), *bits);
            }
        }
        _ => {}
    }
}

/// The piece count behind the limits: small, around real torrents, or absurd.
fn pieces_for(sel: u8) -> usize {
    let v = usize::from(sel >> 2);
    match sel & 3 {
        0 => v,
        1 => v << 10,
        2 => v << 16,
        _ => usize::MAX - v,
    }
}

/// Announce and scrape query parsing on arbitrary text: when a query is accepted, `to_query`
/// writes only unreserved characters and escapes, and parses back to an equal request.
pub fn tracker_query(data: &[u8]) {
    let q = String::from_utf8_lossy(data);
    if let Ok(r) = AnnounceRequest::parse_query(&q) {
        let text = r.to_query();
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-_~%=&".contains(&c)),
            "{text}"
        );
        assert_eq!(AnnounceRequest::parse_query(&text), Ok(r), "{text}");
    }
    if let Ok(s) = ScrapeRequest::parse_query(&q) {
        let text = s.to_query();
        assert_eq!(ScrapeRequest::parse_query(&text), Ok(s), "{text}");
    }
}

/// Tracker answers as a client parses them: when accepted, encoding in either form and parsing
/// again gives the same answer, up to the documented losses (compact peers carry no peer id and
/// list IPv4 before IPv6; IPv4-mapped IPv6 addresses come back as IPv4).
pub fn tracker_response(data: &[u8]) {
    if let Ok(r) = AnnounceResponse::parse(data) {
        let canon = |p: &PeerEntry| PeerEntry {
            addr: SocketAddr::new(p.addr.ip().to_canonical(), p.addr.port()),
            ..*p
        };
        let dict_peers: Vec<PeerEntry> = r.peers.iter().map(canon).collect();
        let want = AnnounceResponse {
            peers: dict_peers.clone(),
            ..r.clone()
        };
        let body = r.encode(false, false);
        assert_eq!(AnnounceResponse::parse(&body).as_ref(), Ok(&want));
        assert_eq!(want.encode(false, false), body);

        let no_ids: Vec<PeerEntry> = dict_peers
            .iter()
            .map(|p| PeerEntry {
                peer_id: None,
                ..*p
            })
            .collect();
        let want = AnnounceResponse {
            peers: no_ids.clone(),
            ..r.clone()
        };
        assert_eq!(AnnounceResponse::parse(&r.encode(false, true)), Ok(want));

        let (v4, v6): (Vec<PeerEntry>, Vec<PeerEntry>) =
            no_ids.into_iter().partition(|p| p.addr.is_ipv4());
        let want = AnnounceResponse {
            peers: [v4, v6].concat(),
            ..r.clone()
        };
        let body = r.encode(true, false);
        assert_eq!(AnnounceResponse::parse(&body).as_ref(), Ok(&want));
        assert_eq!(want.encode(true, false), body);
    }
    if let Ok(s) = ScrapeResponse::parse(data) {
        let body = s.encode();
        assert_eq!(ScrapeResponse::parse(&body).as_ref(), Ok(&s));
        for (hash, stats) in &s.files {
            assert_eq!(s.get(hash), Some(*stats));
        }
    }
}

/// `Bitfield::from_bytes` with an arbitrary piece count. Input: a mode byte, then (for a mode
/// with the top bit set) a little-endian `u32` count, then the bitfield bytes; other modes pick
/// a count within a byte of the data's length so that sizes match often.
pub fn bitfield(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (len, bytes) = match (mode & 0x80 != 0, rest) {
        (true, [a, b, c, d, bytes @ ..]) => {
            let raw = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
            (if mode & 1 != 0 { usize::MAX - raw } else { raw }, bytes)
        }
        (true, _) => return,
        (false, _) => (
            (rest.len() * 8 + 7).saturating_sub(usize::from(mode % 16)),
            rest,
        ),
    };
    match Bitfield::from_bytes(bytes, len) {
        Err(BitfieldError::WrongSize {
            got,
            expected,
            pieces,
        }) => {
            assert_eq!((got, expected, pieces), (bytes.len(), len.div_ceil(8), len));
            assert_ne!(got, expected);
        }
        Err(BitfieldError::SpareBits(n)) => {
            assert_eq!(n, len);
            assert_eq!(bytes.len(), len.div_ceil(8));
            // The low `8 - len % 8` bits of the last byte are past the last piece.
            assert_ne!(len % 8, 0);
            assert_ne!(bytes[bytes.len() - 1] & (0xff >> (len % 8)), 0);
        }
        Ok(mut b) => {
            assert_eq!(b.as_bytes(), bytes);
            assert_eq!((b.len(), b.is_empty()), (len, len == 0));
            let ones: Vec<usize> = b.ones().collect();
            let popcount: usize = bytes.iter().map(|x| x.count_ones() as usize).sum();
            assert_eq!((ones.len(), b.count()), (popcount, popcount));
            assert!(ones.windows(2).all(|w| w[0] < w[1]));
            assert!(ones.iter().all(|&i| i < len && b.get(i)));
            for i in 0..len {
                let bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
                assert_eq!(b.get(i), bit, "bit {i}");
            }
            assert!(!b.get(len));
            assert_eq!(b.is_full(), popcount == len);
            for i in 0..len {
                b.set(i);
            }
            assert!(b.is_full() && b.count() == len);
            assert_eq!(b, Bitfield::full(len));
            assert_eq!(Bitfield::from_bytes(b.as_bytes(), len).as_ref(), Ok(&b));
        }
    }
}

/// BEP 15 datagrams: requests as the tracker parses them and answers as a client parses them
/// (both address families) round-trip when accepted; and the UDP tracker's answer to any
/// datagram is at most 4 times its size. The first byte is a parameter: bit 0 puts a valid
/// connection id into the datagram (so announces and scrapes get past the id check).
pub fn udp_packet(data: &[u8]) {
    use bt::modes::tracker::udp::{answer, ConnectionIds, AMPLIFICATION};
    use bt::proto::tracker::udp::{Request, Response};
    use std::cell::RefCell;
    use std::time::Instant;

    let Some((&mode, datagram)) = data.split_first() else {
        return;
    };
    if let Ok(r) = Request::parse(datagram) {
        let mut out = Vec::new();
        r.encode(&mut out);
        assert!(out.len() <= datagram.len());
        assert_eq!(Request::parse(&out).as_ref(), Ok(&r));
    }
    for ipv6 in [false, true] {
        if let Ok(r) = Response::parse(datagram, ipv6) {
            let mut out = Vec::new();
            r.encode(&mut out);
            assert_eq!(Response::parse(&out, ipv6).as_ref(), Ok(&r));
        }
    }
    thread_local! {
        static TRACKER: RefCell<(bt::modes::tracker::table::Table, ConnectionIds)> =
            RefCell::new((
                bt::modes::tracker::table::Table::new(
                    bt::modes::tracker::table::TableLimits::from(
                        &bt::config::TrackerConfig::default(),
                    ),
                    None,
                    Instant::now(),
                ),
                ConnectionIds::new(),
            ));
    }
    let from: SocketAddr = match mode & 2 {
        0 => "127.0.0.1:6881".parse().unwrap(),
        _ => "[::1]:6881".parse().unwrap(),
    };
    TRACKER.with(|t| {
        let (table, ids) = &mut *t.borrow_mut();
        let mut datagram = datagram.to_vec();
        if mode & 1 == 1 && datagram.len() >= 8 {
            datagram[..8].copy_from_slice(&ids.issue(from, 0).to_be_bytes());
        }
        if let Some(out) = answer(table, ids, &datagram, from, 0, Instant::now()) {
            assert!(out.len() <= AMPLIFICATION * datagram.len());
            assert!(Response::parse(&out, from.is_ipv6()).is_ok());
        }
    });
}

/// The extension decoders on one input: the extension handshake, `ut_pex` and `ut_metadata`
/// payloads, and the magnet parser on the input as text. The first byte picks the metadata size
/// the `ut_metadata` decoder holds to (none, tiny, a few pieces, the maximum). Whatever is
/// accepted stays within its documented bounds and survives its own encoder.
pub fn extension(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };

    if let Ok(h) = ExtHandshake::decode(payload) {
        assert!(h.m.len() <= MAX_EXTENSIONS);
        assert!(h
            .metadata_size
            .is_none_or(|s| (1..=MAX_METADATA_SIZE).contains(&s)));
        assert!(h.v.as_ref().is_none_or(|v| v.len() <= MAX_CLIENT_LEN));
        assert!(h.reqq.is_none_or(|r| (1..=MAX_REQQ).contains(&r)));
        assert!(h.p != Some(0));
        assert_eq!(ExtHandshake::decode(&h.encode()).as_ref(), Ok(&h), "{h:?}");
    }

    if let Ok(p) = Pex::decode(payload) {
        assert!(p.added.len() <= 2 * MAX_PEX_KEEP && p.dropped.len() <= 2 * MAX_PEX_KEEP);
        assert!(p.added.iter().all(|a| a.addr.port() != 0));
        assert!(p.dropped.iter().all(|a| a.port() != 0));
        let again = Pex::decode(&p.encode()).expect("our own PEX message decodes");
        assert!(again.added.len() <= 2 * MAX_PEX_SEND && again.dropped.len() <= 2 * MAX_PEX_SEND);
    }

    let size = match sel % 4 {
        0 => None,
        1 => Some(u64::from(sel)),
        2 => Some(u64::from(sel) * 1000),
        _ => Some(MAX_METADATA_SIZE),
    };
    if let Ok(msg) = metadata::decode(payload, size) {
        let count = metadata::piece_count(size.unwrap_or(MAX_METADATA_SIZE));
        match msg {
            MetadataMsg::Request { piece } | MetadataMsg::Reject { piece } => {
                assert!(piece < count)
            }
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => {
                assert!(size.is_none_or(|s| s == total_size));
                assert!((1..=MAX_METADATA_SIZE).contains(&total_size));
                assert!(piece < metadata::piece_count(total_size));
                assert_eq!(data.len(), metadata::piece_len(total_size, piece));
                // The piece fits an assembler for that size, once.
                let mut a = MetadataAssembler::new(total_size).expect("size in range");
                assert!(a.add(piece, data, ()).is_ok());
                assert_eq!(a.add(piece, data, ()), Ok(metadata::Added::Duplicate));
            }
            MetadataMsg::Unknown(t) => assert!(!(0..=2).contains(&t)),
        }
        if !matches!(msg, MetadataMsg::Unknown(_)) {
            let mut out = Vec::new();
            metadata::encode(&msg, &mut out);
            assert_eq!(metadata::decode(&out, size), Ok(msg));
        }
    }

    let text = String::from_utf8_lossy(payload);
    if let Ok(m) = Magnet::parse(&text) {
        assert!(m.trackers.len() <= MAX_TRACKERS && m.peers.len() <= MAX_PEERS);
        let link = m.to_string();
        if link.len() <= MAX_MAGNET_LEN {
            assert_eq!(Magnet::parse(&link).as_ref(), Ok(&m), "{link}");
        }
    }
}

/// `lsd::parse` (BEP 14 datagrams from anyone on the LAN): when it accepts, the port is not 0,
/// there are 1 to `MAX_HASHES` distinct info-hashes and the cookie is bounded; re-encoding the
/// first hash with the port parses back to them.
pub fn lsd(data: &[u8]) {
    use bt::proto::lsd::{encode, parse, MAX_COOKIE, MAX_HASHES};
    let Ok(a) = parse(data) else {
        return;
    };
    assert_ne!(a.port, 0);
    assert!(!a.info_hashes.is_empty() && a.info_hashes.len() <= MAX_HASHES);
    let mut distinct = a.info_hashes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), a.info_hashes.len());
    // Lossy UTF-8 may turn each cut byte into a 3-byte replacement character.
    assert!(a.cookie.as_ref().map_or(0, |c| c.len()) <= 3 * MAX_COOKIE);
    let again = parse(&encode(a.port, &a.info_hashes[0], "c")).expect("our own encoding parses");
    assert_eq!(
        (again.port, again.info_hashes[0]),
        (a.port, a.info_hashes[0])
    );
}
