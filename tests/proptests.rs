//! Property tests of the pure formats in `bt::proto`: every encoder against its decoder on
//! arbitrary values, and the small data structures against plain models.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use bt::proto::bitfield::Bitfield;
use bt::proto::extension::{ExtHandshake, MAX_CLIENT_LEN, MAX_METADATA_SIZE, MAX_REQQ};
use bt::proto::ids::InfoHash;
use bt::proto::layout::{Layout, BLOCK};
use bt::proto::magnet::{Magnet, MagnetPeer};
use bt::proto::metadata::{self, MetadataAssembler, MetadataMsg, METADATA_PIECE};
use bt::proto::metainfo::{Content, FileEntry, Metainfo, NewTorrent};
use bt::proto::pex::{Pex, PexPeer, MAX_PEX_SEND};
use bt::proto::tracker::{
    AnnounceRequest, AnnounceResponse, Event, PeerEntry, ScrapeRequest, ScrapeResponse,
    ScrapeStats, MAX_SCRAPE_HASHES,
};
use bt::proto::wire::{
    self, BlockRef, FrameLimits, Handshake, Message, WireError, MAX_EXTENDED_PAYLOAD,
};
use proptest::prelude::*;

// The fuzz targets' properties, run here on generated input as well (see `extension_fuzz_check`).
#[path = "../fuzz/checks.rs"]
mod checks;

// ---------------------------------------------------------------------------------------------
// Peer wire

/// A message we may send, with its payload owned (`Message` borrows).
#[derive(Debug, Clone)]
enum Owned {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Vec<u8>),
    Request(BlockRef),
    Piece(u32, u32, Vec<u8>),
    Cancel(BlockRef),
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject(BlockRef),
    AllowedFast(u32),
    Extended(u8, Vec<u8>),
}

impl Owned {
    fn message(&self) -> Message<'_> {
        match self {
            Owned::KeepAlive => Message::KeepAlive,
            Owned::Choke => Message::Choke,
            Owned::Unchoke => Message::Unchoke,
            Owned::Interested => Message::Interested,
            Owned::NotInterested => Message::NotInterested,
            Owned::Have(i) => Message::Have(*i),
            Owned::Bitfield(b) => Message::Bitfield(b),
            Owned::Request(b) => Message::Request(*b),
            Owned::Piece(index, begin, data) => Message::Piece {
                index: *index,
                begin: *begin,
                data,
            },
            Owned::Cancel(b) => Message::Cancel(*b),
            Owned::Suggest(i) => Message::Suggest(*i),
            Owned::HaveAll => Message::HaveAll,
            Owned::HaveNone => Message::HaveNone,
            Owned::Reject(b) => Message::Reject(*b),
            Owned::AllowedFast(i) => Message::AllowedFast(*i),
            Owned::Extended(id, payload) => Message::Extended { id: *id, payload },
        }
    }
}

/// Pieces of the torrent the limits are made for; bitfields stay within them.
const PIECES: usize = 4000;

fn block_ref() -> impl Strategy<Value = BlockRef> {
    (any::<u32>(), any::<u32>(), 0..=BLOCK).prop_map(|(index, begin, len)| BlockRef {
        index,
        begin,
        len,
    })
}

fn message() -> impl Strategy<Value = Owned> {
    let data = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), BLOCK as usize..=BLOCK as usize),
    ];
    prop_oneof![
        Just(Owned::KeepAlive),
        Just(Owned::Choke),
        Just(Owned::Unchoke),
        Just(Owned::Interested),
        Just(Owned::NotInterested),
        any::<u32>().prop_map(Owned::Have),
        prop::collection::vec(any::<u8>(), 0..=PIECES / 8).prop_map(Owned::Bitfield),
        block_ref().prop_map(Owned::Request),
        (any::<u32>(), any::<u32>(), data).prop_map(|(i, b, d)| Owned::Piece(i, b, d)),
        block_ref().prop_map(Owned::Cancel),
        any::<u32>().prop_map(Owned::Suggest),
        Just(Owned::HaveAll),
        Just(Owned::HaveNone),
        block_ref().prop_map(Owned::Reject),
        any::<u32>().prop_map(Owned::AllowedFast),
        (
            any::<u8>(),
            prop_oneof![
                4 => prop::collection::vec(any::<u8>(), 0..64),
                1 => prop::collection::vec(any::<u8>(), MAX_EXTENDED_PAYLOAD..=MAX_EXTENDED_PAYLOAD),
            ]
        )
            .prop_map(|(id, p)| Owned::Extended(id, p)),
    ]
}

proptest! {
    /// A stream of messages, cut at arbitrary points and fed to the decoder piece by piece,
    /// decodes to the same messages, each taking exactly the bytes it was encoded to.
    #[test]
    fn wire_messages_round_trip_at_any_split(
        msgs in prop::collection::vec(message(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let limits = FrameLimits::for_pieces(PIECES);
        let mut stream = Vec::new();
        let mut sizes = Vec::new();
        for m in &msgs {
            let before = stream.len();
            wire::encode(&m.message(), &mut stream);
            sizes.push(stream.len() - before);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();

        let mut buf = Vec::new();
        let mut fed = 0;
        let mut got = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[fed..cut]);
            fed = cut;
            while let Some((m, used)) = wire::decode(&buf, limits).expect("legal messages") {
                prop_assert_eq!(m, msgs[got].message());
                prop_assert_eq!(used, sizes[got]);
                buf.drain(..used);
                got += 1;
            }
        }
        prop_assert_eq!(got, msgs.len());
        prop_assert!(buf.is_empty());
    }

    /// A request, cancel or reject for more than a block is refused, whatever else it says.
    #[test]
    fn oversized_requests_are_refused(b in block_ref(), over in 1..=u32::MAX - BLOCK, kind in 0..3u8) {
        let b = BlockRef { len: BLOCK + over, ..b };
        let mut out = Vec::new();
        let msg = match kind {
            0 => Message::Cancel(b),
            1 => Message::Request(b),
            _ => Message::Reject(b),
        };
        wire::encode(&msg, &mut out);
        prop_assert_eq!(
            wire::decode(&out, FrameLimits::for_pieces(1)),
            Err(WireError::BlockTooLarge(b.len))
        );
    }

    /// Handshakes round-trip with any reserved bits, info-hash and peer id.
    #[test]
    fn handshake_round_trip(reserved: [u8; 8], info_hash: [u8; 20], peer_id: [u8; 20]) {
        let h = Handshake { reserved, info_hash, peer_id };
        prop_assert_eq!(Handshake::decode(&h.encode()), Ok(h));
    }
}

// ---------------------------------------------------------------------------------------------
// Metainfo

/// A safe path component: printable, no separators, never `.` or `..`.
fn component() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _()~-][a-zA-Z0-9 ._()~-]{0,11}"
}

/// File paths that cannot clash: file names carry a unique `.N` suffix, folder names have no dot.
fn files() -> impl Strategy<Value = Vec<FileEntry>> {
    let file = (
        prop::collection::vec("[a-z][a-z0-9_-]{0,7}", 0..3),
        component(),
        prop_oneof![Just(0u64), 0u64..200_000],
    );
    prop::collection::vec(file, 1..6).prop_map(|files| {
        files
            .into_iter()
            .enumerate()
            .map(|(i, (dirs, name, length))| {
                let mut path = dirs;
                path.push(format!("{name}.{i}"));
                FileEntry { path, length }
            })
            .collect()
    })
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        (0u64..500_000).prop_map(Content::Single),
        files().prop_map(Content::Multi),
    ]
}

fn piece_length() -> impl Strategy<Value = u64> {
    prop_oneof![(10u32..=24).prop_map(|k| 1u64 << k), 1_000u64..100_000]
}

fn url() -> impl Strategy<Value = String> {
    "(http|https|udp)://[a-z0-9.]{1,12}(:[0-9]{1,5})?/[a-z?=&%0-9]{0,12}"
}

fn new_torrent() -> impl Strategy<Value = NewTorrent> {
    (
        component(),
        piece_length(),
        content(),
        any::<u8>(),
        (
            any::<bool>(),
            prop::collection::vec(url(), 0..4),
            prop::option::of(any::<String>()),
            prop::option::of("[ -~]{0,20}"),
            prop::option::of(any::<i64>()),
        ),
    )
        .prop_map(
            |(name, piece_length, content, salt, (private, trackers, comment, by, date))| {
                let total = match &content {
                    Content::Single(n) => *n,
                    Content::Multi(files) => files.iter().map(|f| f.length).sum(),
                };
                let pieces = (0..total.div_ceil(piece_length))
                    .map(|i| [salt ^ i as u8; 20])
                    .collect();
                NewTorrent {
                    name,
                    piece_length,
                    pieces,
                    content,
                    private,
                    trackers,
                    comment,
                    created_by: by,
                    creation_date: date,
                }
            },
        )
}

/// The URLs in order, each once.
fn dedup(urls: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in urls {
        if !out.contains(u) {
            out.push(u.clone());
        }
    }
    out
}

proptest! {
    /// A built torrent says what it was built from, and `to_bytes` parses back to it.
    #[test]
    fn new_torrents_round_trip(t in new_torrent()) {
        let m = t.build().expect("safe names and matching piece counts build");
        prop_assert_eq!(&m.info.name, &t.name);
        prop_assert_eq!(m.info.piece_length, t.piece_length);
        prop_assert_eq!(&m.info.pieces, &t.pieces);
        prop_assert_eq!(m.info.private, t.private);
        match &t.content {
            Content::Single(n) => {
                prop_assert!(!m.info.multi_file);
                prop_assert_eq!(&m.info.files, &vec![FileEntry { path: vec![t.name.clone()], length: *n }]);
            }
            Content::Multi(files) => {
                prop_assert!(m.info.multi_file);
                prop_assert_eq!(&m.info.files, files);
            }
        }
        prop_assert_eq!(m.trackers(), dedup(&t.trackers));
        prop_assert_eq!((&m.comment, &m.created_by, m.creation_date), (&t.comment, &t.created_by, t.creation_date));

        let again = Metainfo::from_bytes(&m.to_bytes()).expect("to_bytes re-parses");
        prop_assert_eq!(&again, &m);
        prop_assert_eq!(again.info_hash, m.info_hash);
    }

    /// Replacing the trackers never touches the info dictionary or its hash.
    #[test]
    fn set_trackers_keeps_the_info_hash(t in new_torrent(), urls in prop::collection::vec(url(), 0..5)) {
        let m = t.build().expect("builds");
        let mut edited = m.clone();
        edited.set_trackers(&urls);
        let again = Metainfo::from_bytes(&edited.to_bytes()).expect("edited torrent re-parses");
        prop_assert_eq!(again.info_hash, m.info_hash);
        prop_assert_eq!(again.info_bytes(), m.info_bytes());
        prop_assert_eq!(&again.info, &m.info);
        prop_assert_eq!(again.trackers(), dedup(&urls));
    }
}

// ---------------------------------------------------------------------------------------------
// Tracker codec

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::None),
        Just(Event::Started),
        Just(Event::Completed),
        Just(Event::Stopped),
    ]
}

/// Free text of at most 255 bytes, as `key` and `ip` allow.
fn short_text() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    })
}

fn announce_request() -> impl Strategy<Value = AnnounceRequest> {
    let count = 0u64..=1 << 53;
    (
        (any::<[u8; 20]>(), any::<[u8; 20]>(), 1u16..=u16::MAX),
        (count.clone(), count.clone(), count),
        (event(), any::<bool>(), any::<bool>(), any::<Option<u32>>()),
        (
            prop::option::of(short_text()),
            prop::option::of(short_text()),
        ),
    )
        .prop_map(
            |(
                (info_hash, peer_id, port),
                (uploaded, downloaded, left),
                (event, compact, no_peer_id, numwant),
                (key, ip),
            )| AnnounceRequest {
                info_hash,
                peer_id,
                port,
                uploaded,
                downloaded,
                left,
                event,
                compact,
                no_peer_id,
                numwant,
                key,
                ip,
            },
        )
}

fn peer() -> impl Strategy<Value = PeerEntry> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        // IPv4-mapped IPv6, what a dual-stack socket reports
        any::<[u8; 4]>().prop_map(|v4| IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped())),
    ];
    (ip, 1u16..=u16::MAX, any::<Option<[u8; 20]>>()).prop_map(|(ip, port, peer_id)| PeerEntry {
        addr: SocketAddr::new(ip, port),
        peer_id,
    })
}

fn announce_response() -> impl Strategy<Value = AnnounceResponse> {
    (
        (
            any::<u32>(),
            any::<Option<u32>>(),
            any::<u32>(),
            any::<u32>(),
        ),
        prop::collection::vec(peer(), 0..12),
        prop::option::of(any::<String>()),
    )
        .prop_map(
            |((interval, min_interval, complete, incomplete), peers, warning)| AnnounceResponse {
                interval,
                min_interval,
                complete,
                incomplete,
                peers,
                warning,
            },
        )
}

/// What parsing gives back: IPv4-mapped addresses as IPv4 (the documented loss of both forms).
fn canonical(p: &PeerEntry) -> PeerEntry {
    PeerEntry {
        addr: SocketAddr::new(p.addr.ip().to_canonical(), p.addr.port()),
        ..*p
    }
}

proptest! {
    /// Any announce we can send parses back to itself.
    #[test]
    fn announce_queries_round_trip(r in announce_request()) {
        let q = r.to_query();
        prop_assert!(q.bytes().all(|c| c.is_ascii_alphanumeric() || b".-_~%=&".contains(&c)), "{}", q);
        prop_assert_eq!(AnnounceRequest::parse_query(&q), Ok(r.clone()));
        let url = r.url("http://t.example/announce?pk=1");
        prop_assert_eq!(url.split_once("?pk=1&").map(|(_, q)| q), Some(q.as_str()));
    }

    /// Any scrape of up to the limit of hashes parses back to itself.
    #[test]
    fn scrape_queries_round_trip(hashes in prop::collection::vec(any::<[u8; 20]>(), 0..=MAX_SCRAPE_HASHES)) {
        let r = ScrapeRequest { info_hashes: hashes };
        prop_assert_eq!(ScrapeRequest::parse_query(&r.to_query()), Ok(r));
    }

    /// Both peer forms parse back to the answer, up to their documented losses: compact peers
    /// have no id and come IPv4 first, IPv6 (`peers6`) after; `no_peer_id` drops the ids.
    #[test]
    fn announce_responses_round_trip(r in announce_response()) {
        let dict = AnnounceResponse { peers: r.peers.iter().map(canonical).collect(), ..r.clone() };
        prop_assert_eq!(AnnounceResponse::parse(&r.encode(false, false)), Ok(dict.clone()));

        let anonymous: Vec<PeerEntry> =
            dict.peers.iter().map(|p| PeerEntry { peer_id: None, ..*p }).collect();
        let no_ids = AnnounceResponse { peers: anonymous.clone(), ..r.clone() };
        prop_assert_eq!(AnnounceResponse::parse(&r.encode(false, true)), Ok(no_ids));

        let (v4, v6): (Vec<_>, Vec<_>) = anonymous.into_iter().partition(|p| p.addr.is_ipv4());
        let compact = AnnounceResponse { peers: [v4, v6].concat(), ..r.clone() };
        prop_assert_eq!(AnnounceResponse::parse(&r.encode(true, false)), Ok(compact));
    }

    /// Scrape answers round-trip; encoding orders them by info-hash.
    #[test]
    fn scrape_responses_round_trip(files in prop::collection::btree_map(any::<[u8; 20]>(), any::<(u32, u32, u32)>(), 0..10)) {
        let files: Vec<([u8; 20], ScrapeStats)> = files
            .into_iter()
            .map(|(h, (complete, incomplete, downloaded))| (h, ScrapeStats { complete, incomplete, downloaded }))
            .collect();
        let mut shuffled = files.clone();
        shuffled.reverse();
        let r = ScrapeResponse { files: shuffled };
        prop_assert_eq!(ScrapeResponse::parse(&r.encode()), Ok(ScrapeResponse { files }));
    }
}

// ---------------------------------------------------------------------------------------------
// Bitfield and layout

proptest! {
    /// Set and clear (in range or not) agree with a `Vec<bool>` at every step, and the wire
    /// bytes always parse back to the same set.
    #[test]
    fn bitfield_matches_a_vec_of_bools(
        len in 0usize..100,
        ops in prop::collection::vec((any::<bool>(), 0usize..110), 0..60),
    ) {
        let mut b = Bitfield::new(len);
        let mut model = vec![false; len];
        for (set, i) in ops {
            if set {
                let fresh = i < len && !model[i];
                prop_assert_eq!(b.set(i), fresh);
            } else {
                b.clear(i);
            }
            if let Some(bit) = model.get_mut(i) {
                *bit = set;
            }
            for (j, &bit) in model.iter().enumerate() {
                prop_assert_eq!(b.get(j), bit, "piece {}", j);
            }
            prop_assert!(!b.get(len));
            let ones: Vec<usize> = (0..len).filter(|&j| model[j]).collect();
            prop_assert_eq!(b.count(), ones.len());
            prop_assert_eq!(b.ones().collect::<Vec<_>>(), ones);
            prop_assert_eq!(b.is_full(), model.iter().all(|&x| x));
            prop_assert_eq!(b.as_bytes().len(), len.div_ceil(8));
            prop_assert_eq!(Bitfield::from_bytes(b.as_bytes(), len), Ok(b.clone()));
        }
    }

    /// The spans of all pieces, in order, cover every byte of every file exactly once; each
    /// piece's blocks add up to the piece; `pieces_of_file` names exactly the pieces whose spans
    /// touch the file.
    #[test]
    fn layout_spans_cover_every_byte_once(
        lengths in prop::collection::vec(prop_oneof![Just(0u64), 0u64..300], 0..8),
        piece_length in 1u64..100,
    ) {
        let layout = Layout::new(piece_length, lengths.iter().copied()).expect("small layout");
        let total: u64 = lengths.iter().sum();
        prop_assert_eq!(layout.total_length(), total);
        prop_assert_eq!(layout.piece_count() as u64, total.div_ceil(piece_length));

        // Walk the files byte by byte alongside the spans.
        let mut cursor = (0usize, 0u64); // (file, offset)
        let mut touched: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for piece in 0..layout.piece_count() {
            let spans = layout.piece_spans(piece);
            let size: u64 = spans.iter().map(|s| s.len).sum();
            prop_assert_eq!(size, u64::from(layout.piece_size(piece)));
            let blocks: u64 = (0..layout.block_count(piece))
                .map(|k| u64::from(layout.block_size(piece, k)))
                .sum();
            prop_assert_eq!(blocks, size);
            for s in spans {
                while cursor.0 < lengths.len() && cursor.1 == lengths[cursor.0] {
                    cursor = (cursor.0 + 1, 0);
                }
                prop_assert!(s.len > 0);
                prop_assert_eq!((s.file, s.offset), cursor);
                prop_assert!(s.offset + s.len <= lengths[s.file]);
                cursor.1 += s.len;
                touched.entry(s.file).or_default().push(piece);
            }
        }
        while cursor.0 < lengths.len() && cursor.1 == lengths[cursor.0] {
            cursor = (cursor.0 + 1, 0);
        }
        prop_assert_eq!(cursor.0, lengths.len(), "bytes left uncovered");
        for (file, &len) in lengths.iter().enumerate() {
            let mut pieces = touched.remove(&file).unwrap_or_default();
            pieces.dedup();
            let want: Vec<usize> = layout.pieces_of_file(file).collect();
            prop_assert_eq!(pieces, want, "file {} of {} bytes", file, len);
        }
    }

    /// Any byte range maps to spans that add up to the part of it inside the torrent.
    #[test]
    fn spans_of_any_range_add_up(
        lengths in prop::collection::vec(0u64..300, 0..8),
        offset in 0u64..2500,
        len in 0u64..2500,
    ) {
        let layout = Layout::new(16, lengths.iter().copied()).expect("small layout");
        let total = layout.total_length();
        let spans = layout.spans(offset, len);
        let sum: u64 = spans.iter().map(|s| s.len).sum();
        prop_assert_eq!(sum, (offset + len).min(total).saturating_sub(offset.min(total)));
        prop_assert!(spans.iter().all(|s| s.len > 0 && s.offset + s.len <= lengths[s.file]));
    }
}

// ---------------------------------------------------------------------------------------------
// Extensions: magnet links, extension handshake, ut_metadata, ut_pex

fn magnet_peer() -> impl Strategy<Value = MagnetPeer> {
    prop_oneof![
        (any::<IpAddr>(), 1..=u16::MAX)
            .prop_map(|(ip, port)| MagnetPeer::Addr(SocketAddr::new(ip, port))),
        (
            "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,6}){0,3}",
            1..=u16::MAX
        )
            .prop_map(|(name, port)| MagnetPeer::Host { name, port }),
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (any::<IpAddr>(), 1..=u16::MAX).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

proptest! {
    /// Any link we build parses back to what it was built from (names and tracker URLs of any
    /// text, each URL once, non-empty).
    #[test]
    fn magnet_round_trip(
        hash: [u8; 20],
        name in prop::option::of(any::<String>()),
        trackers in prop::collection::vec(".{1,40}", 0..5),
        peers in prop::collection::vec(magnet_peer(), 0..5),
    ) {
        let mut m = Magnet::new(InfoHash(hash), name, dedup(&trackers));
        m.peers = peers.iter().fold(Vec::new(), |mut v, p| {
            if !v.contains(p) { v.push(p.clone()); }
            v
        });
        prop_assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
    }

    /// The magnet parser refuses or accepts any text without panicking.
    #[test]
    fn magnet_parse_never_panics(tail in ".{0,200}") {
        let _ = Magnet::parse(&format!("magnet:?{tail}"));
    }

    /// Extension handshakes within the bounds round-trip.
    #[test]
    fn extension_handshake_round_trip(
        m in prop::collection::btree_map("[a-z_]{1,20}", any::<u8>(), 0..10),
        metadata_size in prop::option::of(1..=MAX_METADATA_SIZE),
        v in prop::option::of(prop::collection::vec(any::<char>(), 0..30)),
        p in prop::option::of(1..=u16::MAX),
        reqq in prop::option::of(1..=MAX_REQQ),
        yourip in prop::option::of(any::<IpAddr>()),
        upload_only in any::<bool>(),
    ) {
        let v = v.map(|c| c.into_iter().collect::<String>()).filter(|v| v.len() <= MAX_CLIENT_LEN);
        let h = ExtHandshake { m: m.into_iter().collect::<BTreeMap<_, _>>(), metadata_size, v, p, reqq, yourip, upload_only };
        prop_assert_eq!(ExtHandshake::decode(&h.encode()), Ok(h));
    }

    /// Any payload: the extension decoders refuse or accept without panicking.
    #[test]
    fn extension_decoders_never_panic(payload in prop::collection::vec(any::<u8>(), 0..300), size in prop::option::of(0u64..100_000)) {
        let _ = ExtHandshake::decode(&payload);
        let _ = Pex::decode(&payload);
        let _ = metadata::decode(&payload, size);
    }

    /// ut_metadata messages round-trip; any piece of any metadata reassembles to the original.
    #[test]
    fn metadata_pieces_round_trip_and_assemble(
        size in 1usize..5 * METADATA_PIECE,
        order_seed: u64,
    ) {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let count = metadata::piece_count(size as u64);
        let mut order: Vec<u32> = (0..count).collect();
        // A cheap deterministic shuffle from the seed.
        let mut x = order_seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut a = MetadataAssembler::new(size as u64).unwrap();
        let hash = {
            use sha1::{Digest, Sha1};
            InfoHash(Sha1::digest(&bytes).into())
        };
        for piece in order {
            let start = piece as usize * METADATA_PIECE;
            let data = &bytes[start..(start + METADATA_PIECE).min(size)];
            let msg = MetadataMsg::Data { piece, total_size: size as u64, data };
            let mut out = Vec::new();
            metadata::encode(&msg, &mut out);
            let back = metadata::decode(&out, Some(size as u64)).unwrap();
            prop_assert_eq!(back, msg);
            prop_assert!(a.add(piece, data, ()).is_ok());
        }
        prop_assert_eq!(a.finish(&hash), Ok(Some(bytes)));
    }

    /// PEX messages within the send cap round-trip (IPv4 peers first); longer lists are cut.
    #[test]
    fn pex_round_trip(
        added in prop::collection::vec((socket_addr(), any::<u8>()), 0..70),
        dropped in prop::collection::vec(socket_addr(), 0..70),
    ) {
        let added: Vec<PexPeer> = added.into_iter().map(|(addr, flags)| PexPeer { addr, flags }).collect();
        let pex = Pex { added: added.clone(), dropped: dropped.clone() };
        let back = Pex::decode(&pex.encode()).unwrap();
        let cut = |v6: bool| -> Vec<PexPeer> {
            added.iter().filter(|p| p.addr.is_ipv6() == v6).take(MAX_PEX_SEND).copied().collect()
        };
        let cutd = |v6: bool| -> Vec<SocketAddr> {
            dropped.iter().filter(|a| a.is_ipv6() == v6).take(MAX_PEX_SEND).copied().collect()
        };
        prop_assert_eq!(back.added, [cut(false), cut(true)].concat());
        prop_assert_eq!(back.dropped, [cutd(false), cutd(true)].concat());
    }
}

proptest! {
    /// The `extension` fuzz check on generated input shaped like each of its decoders' input.
    #[test]
    fn extension_fuzz_check(
        sel: u8,
        prefix in prop_oneof![
            Just(b"d".to_vec()),
            Just(b"d1:md11:ut_metadatai".to_vec()),
            Just(b"d8:msg_typei1e5:piecei0e10:total_sizei".to_vec()),
            Just(b"d5:added".to_vec()),
            Just(b"magnet:?xt=urn:btih:".to_vec()),
        ],
        tail in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        checks::extension(&[vec![sel], prefix, tail].concat());
    }
}
