//! The torrent's rules on plain values: events in, actions out, no sockets.

use super::peer::EVICT_AFTER;
use super::*;
use crate::proto::layout::BLOCK;

fn layout(pieces: u64, piece_len: u64) -> Layout {
    Layout::new(piece_len, [pieces * piece_len]).unwrap()
}

fn limits(slots: usize) -> Limits {
    Limits {
        max_peers: 50,
        upload_slots: slots,
        request_timeout: Duration::from_secs(20),
        super_seed: false,
    }
}

/// A downloader of `pieces` pieces of two blocks.
fn leecher(pieces: u64, t0: Instant) -> TorrentState {
    let l = layout(pieces, 2 * BLOCK as u64);
    TorrentState::new(l, Bitfield::new(pieces as usize), limits(0), t0)
}

/// A seeder of 4 pieces of two blocks, with `slots` upload slots.
fn seeding(slots: usize, t0: Instant) -> TorrentState {
    TorrentState::new(
        layout(4, 2 * BLOCK as u64),
        Bitfield::full(4),
        limits(slots),
        t0,
    )
}

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6880 + n))
}

fn id(n: u16) -> PeerId {
    let mut id = *b"-XX0000-000000000000";
    id[18..].copy_from_slice(&n.to_be_bytes());
    PeerId(id)
}

fn connect(st: &mut TorrentState, n: u16, t: Instant) -> PeerKey {
    let k = st.peer_connected(addr(n), id(n), false, false, t).unwrap();
    st.drain().for_each(drop);
    k
}

/// A peer with every piece that has unchoked us; returns its key and the blocks we asked of it.
fn seeder(st: &mut TorrentState, n: u16, t: Instant) -> (PeerKey, Vec<BlockRef>) {
    let k = connect(st, n, t);
    let full = Bitfield::full(st.layout.piece_count());
    st.on_message(k, Message::Bitfield(full.as_bytes()), t);
    st.on_message(k, Message::Unchoke, t);
    let asked = requests(&take(st), k);
    (k, asked)
}

fn take(st: &mut TorrentState) -> Vec<Action> {
    st.drain().collect()
}

fn requests(actions: &[Action], to: PeerKey) -> Vec<BlockRef> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(k, Outgoing::Requests(r)) if *k == to => Some(r.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn sent(actions: &[Action], to: PeerKey, msg: &Outgoing) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Send(k, m) if *k == to && m == msg))
}

fn closed(actions: &[Action], who: PeerKey) -> Option<CloseReason> {
    actions.iter().find_map(|a| match a {
        Action::Close(k, why) if *k == who => Some(why.clone()),
        _ => None,
    })
}

fn deliver(st: &mut TorrentState, k: PeerKey, b: BlockRef, byte: u8, t: Instant) {
    st.on_block(k, b.index, b.begin, &vec![byte; b.len as usize], t);
}

fn verify_of(actions: &mut Vec<Action>) -> Option<(u32, Vec<u8>)> {
    let pos = actions
        .iter()
        .position(|a| matches!(a, Action::Verify { .. }))?;
    match actions.remove(pos) {
        Action::Verify { index, data } => Some((index, data)),
        _ => unreachable!(),
    }
}

#[test]
fn a_choke_discards_our_requests_and_another_peer_gets_them() {
    let t = Instant::now();
    let mut st = leecher(2, t);
    let (a, asked) = seeder(&mut st, 1, t);
    assert_eq!(asked.len(), INITIAL_QUEUE, "slow start");
    assert_eq!(st.inflight(a), asked.len());
    st.on_message(a, Message::Choke, t);
    assert_eq!(st.inflight(a), 0, "a choke drops what we asked");
    let (_, again) = seeder(&mut st, 2, t);
    assert_eq!(
        again.len(),
        asked.len(),
        "the released blocks go to the next peer"
    );
}

#[test]
fn requests_while_choked_are_ignored_and_a_free_slot_unchokes_at_once() {
    let t = Instant::now();
    let mut st = seeding(4, t);
    let block = BlockRef {
        index: 0,
        begin: 0,
        len: BLOCK,
    };
    let k = connect(&mut st, 1, t);
    st.on_message(k, Message::Request(block), t);
    assert!(take(&mut st).is_empty(), "choked: the request is ignored");
    // No rechoke interval to wait for: the slot is free now.
    st.on_message(k, Message::Interested, t);
    assert!(sent(&take(&mut st), k, &Outgoing::Unchoke));
    st.on_message(k, Message::Request(block), t);
    let acts = take(&mut st);
    assert!(matches!(acts[..], [Action::Serve(p, b)] if p == k && b == block));
    assert!(st.take_request(k, block), "the writer may send it");
    assert!(!st.take_request(k, block), "but only once");
}

#[test]
fn slots_fill_at_once_then_peers_wait() {
    // The 100 Mbit/s finding: with 4 slots, six leechers got nothing for the first 10 s.
    let t = Instant::now();
    let mut st = seeding(4, t);
    let keys: Vec<PeerKey> = (1..=6).map(|n| connect(&mut st, n, t)).collect();
    for &k in &keys {
        st.on_message(k, Message::Interested, t);
    }
    let acts = take(&mut st);
    let unchoked: Vec<PeerKey> = keys
        .iter()
        .copied()
        .filter(|&k| sent(&acts, k, &Outgoing::Unchoke))
        .collect();
    assert_eq!(unchoked, keys[..4], "four slots, first come first served");
    // A slot frees when its peer leaves: the next one waiting gets it, at once.
    st.peer_gone(keys[0], t);
    assert!(sent(&take(&mut st), keys[4], &Outgoing::Unchoke));
}

#[test]
fn rechoke_keeps_the_fastest_and_one_optimistic() {
    let t = Instant::now();
    let mut st = seeding(1, t);
    let keys: Vec<PeerKey> = (1..=4).map(|n| connect(&mut st, n, t)).collect();
    for &k in &keys {
        st.on_message(k, Message::Interested, t);
    }
    take(&mut st);
    assert!(
        !st.peer(keys[0]).unwrap().am_choking,
        "the first took the free slot"
    );
    // keys[2] is the fastest over the round.
    st.on_uploaded(keys[2], 10 << 20);
    st.on_uploaded(keys[0], 1 << 20);
    st.tick(t + Duration::from_secs(5));
    assert!(
        st.peer(keys[2]).unwrap().am_choking,
        "no rechoke before 10 s"
    );
    st.tick(t + choke::RECHOKE_EVERY);
    let unchoked: Vec<PeerKey> = keys
        .iter()
        .copied()
        .filter(|k| !st.peer(*k).unwrap().am_choking)
        .collect();
    assert_eq!(
        unchoked.len(),
        2,
        "one slot plus one optimistic: {unchoked:?}"
    );
    assert!(unchoked.contains(&keys[2]), "the fastest keeps the slot");
    let optimistic = *unchoked.iter().find(|k| **k != keys[2]).unwrap();
    // The optimistic unchoke stays for 30 s, then may move; it is never the slot holder.
    st.tick(t + choke::RECHOKE_EVERY * 2);
    assert!(!st.peer(optimistic).unwrap().am_choking);
}

#[test]
fn out_of_range_have_and_bad_bitfield_close() {
    let t = Instant::now();
    let mut st = leecher(10, t);
    let k = connect(&mut st, 1, t);
    st.on_message(k, Message::Have(10), t);
    assert!(matches!(
        closed(&take(&mut st), k),
        Some(CloseReason::Violation(Violation::HaveOutOfRange {
            index: 10,
            ..
        }))
    ));
    let k = connect(&mut st, 2, t);
    st.on_message(k, Message::Bitfield(&[0xff, 0xff]), t); // 16 bits for 10 pieces: spare bits
    assert!(matches!(
        closed(&take(&mut st), k),
        Some(CloseReason::Violation(Violation::Bitfield(_)))
    ));
    let k = connect(&mut st, 3, t);
    st.on_message(k, Message::Bitfield(&[0xff]), t); // too short
    assert!(closed(&take(&mut st), k).is_some());
}

#[test]
fn two_seeds_part() {
    let t = Instant::now();
    let mut st = seeding(0, t);
    let k = connect(&mut st, 1, t);
    st.on_message(k, Message::Bitfield(Bitfield::full(4).as_bytes()), t);
    assert_eq!(closed(&take(&mut st), k), Some(CloseReason::BothSeeds));
    let k = connect(&mut st, 2, t);
    for i in 0..4 {
        st.on_message(k, Message::Have(i), t);
    }
    assert_eq!(closed(&take(&mut st), k), Some(CloseReason::BothSeeds));
}

#[test]
fn request_flood_and_requests_outside_close() {
    let t = Instant::now();
    let mut st = seeding(0, t);
    let k = connect(&mut st, 1, t);
    st.on_message(k, Message::Interested, t);
    let block = BlockRef {
        index: 1,
        begin: 0,
        len: BLOCK,
    };
    for _ in 0..MAX_PEER_REQUESTS {
        st.on_message(k, Message::Request(block), t);
    }
    assert!(
        closed(&take(&mut st), k).is_none(),
        "up to the limit is fine"
    );
    st.on_message(k, Message::Request(block), t);
    assert_eq!(
        closed(&take(&mut st), k),
        Some(Violation::RequestFlood(MAX_PEER_REQUESTS).into())
    );
    let k = connect(&mut st, 2, t);
    st.on_message(k, Message::Interested, t);
    let outside = BlockRef { index: 4, ..block };
    st.on_message(k, Message::Request(outside), t);
    assert_eq!(
        closed(&take(&mut st), k),
        Some(Violation::RequestOutside(outside).into())
    );
}

#[test]
fn endgame_asks_twice_and_cancels_the_loser() {
    let t = Instant::now();
    let mut st = leecher(1, t);
    let (a, asked_a) = seeder(&mut st, 1, t);
    assert_eq!(asked_a.len(), 2, "both blocks of the only piece");
    let (b, asked_b) = seeder(&mut st, 2, t);
    assert_eq!(
        asked_b, asked_a,
        "endgame: the same blocks from a second peer"
    );
    deliver(&mut st, a, asked_a[0], 1, t);
    let acts = take(&mut st);
    assert!(sent(&acts, b, &Outgoing::Cancel(asked_a[0])));
    assert!(!sent(&acts, a, &Outgoing::Cancel(asked_a[0])));
    assert_eq!((st.inflight(a), st.inflight(b)), (1, 1));
    // The loser's late copy is not counted as downloaded.
    deliver(&mut st, b, asked_a[0], 1, t);
    assert_eq!(st.totals().downloaded, BLOCK as u64);
    assert_eq!(st.totals().wasted, BLOCK as u64);
}

#[test]
fn the_piece_buffers_bound_and_are_shared() {
    let t = Instant::now();
    // 64 pieces of 1 MiB: the 8 MiB bound holds 8 pieces, 512 blocks.
    let l = layout(64, 1 << 20);
    let mut st = TorrentState::new(l, Bitfield::new(64), limits(0), t);
    let (a, _) = seeder(&mut st, 1, t);
    let (b, _) = seeder(&mut st, 2, t);
    for k in [a, b] {
        st.peers.get_mut(&k).unwrap().queue_target = MAX_QUEUE;
    }
    st.fill(a, t); // the first to ask must not take every buffered block
    st.fill(b, t);
    take(&mut st);
    let all = st.picker.buffer_blocks();
    assert_eq!(all, 512);
    assert_eq!(
        st.inflight(a) + st.inflight(b),
        all,
        "the buffers are in use"
    );
    assert_eq!(st.inflight(a), all / 2);
    assert_eq!(st.inflight(b), all / 2);
}

#[test]
fn slow_start_grows_the_queue_per_block() {
    let t = Instant::now();
    let mut st = leecher(8, t);
    let (a, asked) = seeder(&mut st, 1, t);
    for b in &asked {
        deliver(&mut st, a, *b, 1, t);
    }
    st.fill(a, t);
    let more = requests(&take(&mut st), a);
    assert_eq!(
        more.len(),
        INITIAL_QUEUE + asked.len(),
        "one more per block received"
    );
}

/// Drive piece `index` (two blocks) to completion with block 0 from `first` and block 1 from
/// `second`, returning the verify action's data.
fn mixed_piece(
    st: &mut TorrentState,
    (first, first_byte): (PeerKey, u8),
    (second, second_byte): (PeerKey, u8),
    t: Instant,
) -> (u32, Vec<u8>) {
    // `first` is asked for the piece, sends block 0, then chokes: block 1 goes to `second`.
    st.on_message(first, Message::Unchoke, t);
    let asked = requests(&take(st), first);
    let b0 = asked[0];
    deliver(st, first, b0, first_byte, t);
    st.on_message(first, Message::Choke, t);
    take(st);
    st.on_message(second, Message::Unchoke, t);
    let asked2 = requests(&take(st), second);
    let b1 = *asked2
        .iter()
        .find(|b| b.index == b0.index && b.begin != b0.begin)
        .expect("the other block");
    deliver(st, second, b1, second_byte, t);
    let mut acts = take(st);
    st.on_message(second, Message::Choke, t);
    take(st);
    verify_of(&mut acts).expect("the piece is complete")
}

#[test]
fn the_honest_half_of_a_mixed_bad_piece_is_not_blamed() {
    let t = Instant::now();
    let mut st = leecher(1, t);
    let honest = connect(&mut st, 1, t);
    let liar = connect(&mut st, 2, t);
    for k in [honest, liar] {
        st.on_message(k, Message::Bitfield(Bitfield::full(1).as_bytes()), t);
    }
    take(&mut st);
    let (index, data) = mixed_piece(&mut st, (honest, 1), (liar, 2), t);
    st.piece_checked(index, PieceOutcome::HashMismatch, data, t);
    take(&mut st);
    assert_eq!(
        st.history()[&addr(1)].strikes,
        0,
        "nobody blamed for a mixed piece"
    );
    assert_eq!(st.history()[&addr(2)].strikes, 0);
    // Fetched again, whole from one peer: the honest one.
    st.on_message(honest, Message::Unchoke, t);
    let asked = requests(&take(&mut st), honest);
    assert_eq!(asked.len(), 2, "the whole piece from one peer");
    st.on_message(liar, Message::Unchoke, t);
    assert!(
        requests(&take(&mut st), liar).is_empty(),
        "a single-source piece is not shared, not even in endgame"
    );
    for b in asked {
        deliver(&mut st, honest, b, 1, t);
    }
    let (index, data) = verify_of(&mut take(&mut st)).unwrap();
    st.piece_checked(index, PieceOutcome::Verified, data, t);
    take(&mut st);
    assert_eq!(
        st.history()[&addr(1)].strikes,
        0,
        "the honest sender is cleared"
    );
    assert_eq!(
        st.history()[&addr(2)].strikes,
        1,
        "the block that differs is the liar's"
    );
    assert!(st.is_complete());
}

#[test]
fn a_liar_is_banned_by_ip_sparing_honest_peers_there() {
    let t = Instant::now();
    let mut st = leecher(2, t);
    let honest = connect(&mut st, 1, t);
    let liar = connect(&mut st, 2, t);
    let bystander = connect(&mut st, 3, t); // a leecher at the same IP, no strike
    for k in [honest, liar] {
        st.on_message(k, Message::Bitfield(Bitfield::full(2).as_bytes()), t);
    }
    take(&mut st);
    // Two pieces, each sent whole by the liar: each fails and blames it directly.
    let mut bans = Vec::new();
    for _ in 0..2 {
        st.on_message(liar, Message::Unchoke, t);
        let asked = requests(&take(&mut st), liar);
        let piece: Vec<BlockRef> = asked
            .iter()
            .copied()
            .filter(|b| b.index == asked[0].index)
            .collect();
        for b in piece {
            deliver(&mut st, liar, b, 9, t);
        }
        let mut acts = take(&mut st);
        let (index, data) = verify_of(&mut acts).unwrap();
        st.on_message(liar, Message::Choke, t);
        st.piece_checked(index, PieceOutcome::HashMismatch, data, t);
        let acts = take(&mut st);
        bans.extend(acts.iter().filter_map(|a| match a {
            Action::Ban(b) => Some(b.clone()),
            _ => None,
        }));
        if let Some(why) = closed(&acts, liar) {
            assert_eq!(why, CloseReason::BadData(2));
        }
    }
    assert_eq!(st.history()[&addr(2)].strikes, 2);
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].addr, addr(2));
    assert!(bans[0].spared.contains(&addr(1)) && bans[0].spared.contains(&addr(3)));
    assert!(!st.peer(honest).unwrap().closing && !st.peer(bystander).unwrap().closing);
    assert!(st.peer(liar).unwrap().closing);
}

#[test]
fn a_damaged_seeder_with_more_good_pieces_than_bad_is_kept() {
    let t = Instant::now();
    let mut st = leecher(8, t);
    let (s, _) = seeder(&mut st, 1, t);
    st.history.get_mut(&addr(1)).unwrap().pieces = 5;
    st.strike(addr(1), 0);
    st.strike(addr(1), 1);
    assert!(!take(&mut st).iter().any(|a| matches!(a, Action::Ban(_))));
    assert!(!st.peer(s).unwrap().closing);
}

#[test]
fn a_failed_last_piece_is_asked_for_again_at_once() {
    let t = Instant::now();
    let mut st = leecher(1, t);
    let (a, asked) = seeder(&mut st, 1, t);
    for b in &asked {
        deliver(&mut st, a, *b, 1, t);
    }
    st.fill(a, t);
    let mut acts = take(&mut st);
    let (index, data) = verify_of(&mut acts).unwrap();
    assert!(
        sent(&acts, a, &Outgoing::NotInterested),
        "nothing left to ask for"
    );
    st.piece_checked(index, PieceOutcome::HashMismatch, data, t);
    let acts = take(&mut st);
    assert!(
        sent(&acts, a, &Outgoing::Interested),
        "wanted again: {acts:?}"
    );
    assert_eq!(
        requests(&acts, a).len(),
        2,
        "and requested again, without a tick"
    );
}

#[test]
fn counts_add_up() {
    let t = Instant::now();
    let mut st = leecher(4, t);
    let (a, asked_a) = seeder(&mut st, 1, t);
    let (b, asked_b) = seeder(&mut st, 2, t);
    let mut pending: Vec<(PeerKey, BlockRef)> = asked_a.iter().map(|x| (a, *x)).collect();
    pending.extend(asked_b.iter().map(|x| (b, *x)));
    // Run to completion: deliver what was asked, verify what completes.
    for _ in 0..100 {
        for (k, blk) in std::mem::take(&mut pending) {
            deliver(&mut st, k, blk, 1, t);
        }
        st.fill_all(t);
        let mut acts = take(&mut st);
        while let Some((index, data)) = verify_of(&mut acts) {
            st.piece_checked(index, PieceOutcome::Verified, data, t);
            acts.extend(take(&mut st));
        }
        for act in acts {
            if let Action::Send(k, Outgoing::Requests(blocks)) = act {
                pending.extend(blocks.into_iter().map(|blk| (k, blk)));
            }
        }
        if st.is_complete() {
            break;
        }
    }
    assert!(st.is_complete());
    let h = st.history();
    let (pa, pb) = (h[&addr(1)].pieces, h[&addr(2)].pieces);
    assert_eq!(pa + pb, 4, "each piece credited to one peer");
    assert_eq!(
        h[&addr(1)].downloaded + h[&addr(2)].downloaded,
        st.totals().downloaded
    );
    assert_eq!(st.totals().downloaded, st.layout.total_length());
    assert_eq!(st.totals().verified, 4);
    // Each piece's recorded origin is the peer it was credited to.
    let o = st.origins();
    let from = |n| {
        (0..4)
            .filter(|&i| o.of(i).map(|j| o.addrs()[j]) == Some(addr(n)))
            .count() as u32
    };
    assert_eq!((from(1), from(2)), (pa, pb));
    assert!((0..4).all(|i| !st.in_flight(i)));
}

#[test]
fn silent_peers_are_closed_and_quiet_ones_get_keep_alives() {
    let t = Instant::now();
    let mut st = seeding(0, t);
    let k = connect(&mut st, 1, t);
    st.tick(t + Duration::from_secs(1));
    assert!(take(&mut st).is_empty(), "a fresh connection is left alone");
    st.on_message(k, Message::KeepAlive, t + KEEPALIVE);
    st.tick(t + KEEPALIVE + Duration::from_secs(1));
    assert!(sent(&take(&mut st), k, &Outgoing::KeepAlive));
    st.tick(t + KEEPALIVE + IDLE_TIMEOUT + Duration::from_secs(2));
    assert_eq!(
        closed(&take(&mut st), k),
        Some(CloseReason::Silent(IDLE_TIMEOUT))
    );
}

#[test]
fn peers_are_told_apart_by_address_not_id() {
    let t = Instant::now();
    let mut st = seeding(0, t);
    st.peer_connected(addr(1), id(1), false, false, t).unwrap();
    assert!(matches!(
        st.peer_connected(addr(1), id(2), false, false, t),
        Err(PeerError::Duplicate(_))
    ));
    // Someone presenting the same peer id from another address is another connection.
    assert!(st.peer_connected(addr(2), id(1), false, false, t).is_ok());
}

/// A peer that called us from `port` of 127.0.0.1 and said `interested` 1 ms later.
fn incoming_twin(st: &mut TorrentState, port: u16, who: PeerId, t: Instant) -> PeerKey {
    let from = SocketAddr::from(([127, 0, 0, 1], port));
    let k = st.peer_connected(from, who, false, false, t).unwrap();
    st.on_message(k, Message::Interested, t + Duration::from_millis(1));
    st.drain().for_each(drop);
    k
}

#[test]
fn two_peers_calling_each_other_keep_the_connection_the_smaller_id_called() {
    let t = Instant::now();
    let later = t + Duration::from_millis(30);
    // Our id is the smaller: the connection we called stays, the one it called goes.
    let mut st = seeding(0, t).with_peer_id(id(1));
    let theirs = incoming_twin(&mut st, 40001, id(9), t);
    let ours = st
        .peer_connected(addr(9), id(9), false, true, later)
        .unwrap();
    assert_eq!(closed(&take(&mut st), theirs), Some(CloseReason::Duplicate));
    assert!(st.peer(theirs).is_none(), "forgotten at once");
    assert!(st.peer(ours).is_some());
    // Our id is the larger: the connection it called stays, ours is refused.
    let mut st = seeding(0, t).with_peer_id(id(20));
    let theirs = incoming_twin(&mut st, 40001, id(9), t);
    assert!(matches!(
        st.peer_connected(addr(9), id(9), false, true, later),
        Err(PeerError::Duplicate(_))
    ));
    assert!(st.peer(theirs).is_some());
    // Two calls the same way (a peer calling again while its first connection dies) are no
    // simultaneous open: both are let in.
    let mut st = seeding(0, t).with_peer_id(id(20));
    let first = incoming_twin(&mut st, 40001, id(9), t);
    let second = SocketAddr::from(([127, 0, 0, 1], 40002));
    assert!(st
        .peer_connected(second, id(9), false, false, later)
        .is_ok());
    assert!(st.peer(first).is_some());
}

#[test]
fn two_peers_whose_calls_cross_keep_one_connection_once_both_speak() {
    let t = Instant::now();
    let ms = |n| t + Duration::from_millis(n);
    for (ours, theirs_id, stays_outgoing) in [(1, 9, true), (20, 9, false)] {
        let mut st = seeding(0, t).with_peer_id(id(ours));
        // Both handshakes finish before either connection says anything: both are let in.
        let from = SocketAddr::from(([127, 0, 0, 1], 40001));
        let incoming = st
            .peer_connected(from, id(theirs_id), false, false, t)
            .unwrap();
        let outgoing = st
            .peer_connected(addr(9), id(theirs_id), false, true, ms(1))
            .unwrap();
        st.drain().for_each(drop);
        st.on_message(incoming, Message::Interested, ms(20));
        assert!(take(&mut st)
            .iter()
            .all(|a| !matches!(a, Action::Close(..))));
        // The second one speaks: the pair is settled by the same rule as at the handshake.
        st.on_message(outgoing, Message::Interested, ms(21));
        let (stays, goes) = if stays_outgoing {
            (outgoing, incoming)
        } else {
            (incoming, outgoing)
        };
        assert_eq!(closed(&take(&mut st), goes), Some(CloseReason::Duplicate));
        assert!(st.peer(goes).is_none(), "forgotten at once");
        assert!(st.peer(stays).is_some());
    }
    // Past the window two connections with one id are left alone.
    let mut st = seeding(0, t).with_peer_id(id(1));
    let from = SocketAddr::from(([127, 0, 0, 1], 40001));
    let incoming = st.peer_connected(from, id(9), false, false, t).unwrap();
    let outgoing = st.peer_connected(addr(9), id(9), false, true, t).unwrap();
    let late = t + TWIN_WINDOW + Duration::from_secs(1);
    st.on_message(incoming, Message::Interested, late);
    st.on_message(outgoing, Message::Interested, late);
    assert!(take(&mut st)
        .iter()
        .all(|a| !matches!(a, Action::Close(..))));
}

#[test]
fn a_peer_id_alone_closes_nothing() {
    let t = Instant::now();
    let later = t + Duration::from_millis(30);
    // An impostor that copied the id and says nothing does not keep the real peer out.
    let mut st = seeding(0, t).with_peer_id(id(20));
    let from = SocketAddr::from(([127, 0, 0, 1], 40001));
    let silent = st.peer_connected(from, id(9), false, false, t).unwrap();
    assert!(st
        .peer_connected(addr(9), id(9), false, true, later)
        .is_ok());
    assert!(st.peer(silent).is_some());
    // The same id from another IP is another peer.
    let mut st = seeding(0, t).with_peer_id(id(20));
    incoming_twin(&mut st, 40001, id(9), t);
    let elsewhere = SocketAddr::from(([127, 0, 0, 2], 6889));
    assert!(st
        .peer_connected(elsewhere, id(9), false, true, later)
        .is_ok());
    // A connection older than the window is not closed for a newcomer, nor refused for it.
    let mut st = seeding(0, t).with_peer_id(id(1));
    let old = incoming_twin(&mut st, 40001, id(9), t);
    let much_later = t + TWIN_WINDOW + Duration::from_secs(1);
    assert!(st
        .peer_connected(addr(9), id(9), false, true, much_later)
        .is_ok());
    assert_eq!(closed(&take(&mut st), old), None);
}

#[test]
fn a_full_torrent_evicts_an_idle_connection_for_a_newcomer() {
    let t = Instant::now();
    let mut st = TorrentState::new(
        layout(4, 2 * BLOCK as u64),
        Bitfield::full(4),
        Limits {
            max_peers: 3,
            ..limits(0)
        },
        t,
    );
    let useful = connect(&mut st, 1, t);
    st.on_message(useful, Message::Interested, t);
    take(&mut st);
    st.on_uploaded(useful, 1000);
    let idle: Vec<PeerKey> = (2..=3).map(|n| connect(&mut st, n, t)).collect();
    // Full, and nobody is old enough to judge yet: the newcomer is refused.
    assert!(matches!(
        st.peer_connected(addr(4), id(4), false, false, t + Duration::from_secs(1)),
        Err(PeerError::PeerLimit(3))
    ));
    // Later the oldest idle connection makes room; the useful one stays.
    let later = t + EVICT_AFTER;
    let k = st
        .peer_connected(addr(4), id(4), false, false, later)
        .expect("room made");
    let acts = take(&mut st);
    assert_eq!(closed(&acts, idle[0]), Some(CloseReason::Evicted));
    assert!(st.peer(idle[0]).is_none(), "forgotten at once");
    assert!(st.peer(useful).is_some() && st.peer(k).is_some());
    assert_eq!(st.peers().count(), 3);
}

#[test]
fn only_wanted_pieces_are_asked_for_and_they_make_it_complete() {
    let t = Instant::now();
    let mut st = leecher(6, t);
    let mut wanted = Bitfield::new(6);
    wanted.set(1);
    wanted.set(4);
    st.set_wanted(wanted);
    assert_eq!(
        st.left(),
        2 * 2 * BLOCK as u64,
        "left counts wanted pieces only"
    );
    assert_eq!(st.wanted_pieces(), (2, 0));
    // A peer with only unwanted pieces is of no interest.
    let k = connect(&mut st, 3, t);
    let mut other = Bitfield::new(6);
    other.set(0);
    other.set(5);
    st.on_message(k, Message::Bitfield(other.as_bytes()), t);
    assert!(!sent(&take(&mut st), k, &Outgoing::Interested));
    // A seeder is asked for the wanted pieces' blocks and nothing else.
    let (s, asked) = seeder(&mut st, 1, t);
    let mut pieces: Vec<u32> = asked.iter().map(|b| b.index).collect();
    // In whatever order the picker chose (ties between equally rare pieces are random).
    pieces.sort_unstable();
    pieces.dedup();
    assert_eq!(pieces, [1, 4], "{asked:?}");
    for b in &asked {
        deliver(&mut st, s, *b, 1, t);
    }
    let mut acts = take(&mut st);
    while let Some((index, data)) = verify_of(&mut acts) {
        st.piece_checked(index, PieceOutcome::Verified, data, t);
        acts.extend(take(&mut st));
    }
    assert!(st.is_complete(), "complete once the wanted pieces are");
    assert!(acts.iter().any(|a| matches!(a, Action::Completed)));
    assert_eq!(st.left(), 0);
    assert_eq!(st.have().count(), 2, "the other pieces were never fetched");
    st.fill_all(t);
    assert!(requests(&take(&mut st), s).is_empty());
    // A wanted piece lost from disk makes it incomplete again; an unwanted one would not.
    assert!(st.piece_lost(4, t));
    assert!(!st.is_complete());
    assert_eq!(st.wanted_pieces(), (2, 1));
}

// ----- the fast extension (BEP 6) -----

fn connect_fast(st: &mut TorrentState, n: u16, t: Instant) -> (PeerKey, Vec<Action>) {
    let k = st.peer_connected(addr(n), id(n), true, false, t).unwrap();
    (k, take(st))
}

/// A seeder of 64 pieces of two blocks, with `slots` upload slots.
fn big_seed(slots: usize, t: Instant) -> TorrentState {
    let full = Bitfield::full(64);
    TorrentState::new(layout(64, 2 * BLOCK as u64), full, limits(slots), t)
}

/// Tell `st` that `k` has pieces 32 to 63: too many for an allowed-fast set.
fn has_upper_half(st: &mut TorrentState, k: PeerKey, t: Instant) {
    let mut half = Bitfield::new(64);
    for i in 32..64 {
        half.set(i);
    }
    st.on_message(k, Message::Bitfield(half.as_bytes()), t);
}

fn block(index: u32) -> BlockRef {
    BlockRef {
        index,
        begin: 0,
        len: BLOCK,
    }
}

#[test]
fn a_fast_peer_hears_have_all_or_have_none_instead_of_a_bitfield() {
    let t = Instant::now();
    let mut st = seeding(4, t);
    let (k, acts) = connect_fast(&mut st, 1, t);
    assert!(matches!(acts[..], [Action::Send(p, Outgoing::HaveAll)] if p == k));
    let slow = st.peer_connected(addr(2), id(2), false, false, t).unwrap();
    let acts = take(&mut st);
    assert!(matches!(&acts[..], [Action::Send(p, Outgoing::Bitfield(_))] if *p == slow));

    let mut st = leecher(4, t);
    let (k, acts) = connect_fast(&mut st, 1, t);
    assert!(matches!(acts[..], [Action::Send(p, Outgoing::HaveNone)] if p == k));
    st.peer_connected(addr(2), id(2), false, false, t).unwrap();
    assert!(
        take(&mut st).is_empty(),
        "nothing to say without the extension"
    );
}

#[test]
fn fast_messages_without_the_extension_are_a_violation() {
    let t = Instant::now();
    let msgs = [
        (Message::HaveAll, "have all"),
        (Message::HaveNone, "have none"),
        (Message::Suggest(0), "suggest piece"),
        (Message::Reject(block(0)), "reject request"),
        (Message::AllowedFast(0), "allowed fast"),
    ];
    for (n, (msg, name)) in msgs.into_iter().enumerate() {
        let mut st = leecher(4, t);
        let k = connect(&mut st, n as u16, t);
        st.on_message(k, msg, t);
        assert_eq!(
            closed(&take(&mut st), k),
            Some(Violation::FastNotNegotiated(name).into())
        );
    }
}

#[test]
fn have_all_and_have_none_set_the_peers_pieces() {
    let t = Instant::now();
    let mut st = leecher(4, t);
    let (k, _) = connect_fast(&mut st, 1, t);
    st.on_message(k, Message::HaveAll, t);
    assert!(st.peer(k).unwrap().bits.is_full());
    assert!(sent(&take(&mut st), k, &Outgoing::Interested));
    st.on_message(k, Message::Unchoke, t);
    assert_eq!(requests(&take(&mut st), k).len(), INITIAL_QUEUE);
    // A suggestion is only a hint: nothing changes.
    st.on_message(k, Message::Suggest(3), t);
    assert!(take(&mut st).is_empty());
    let (k2, _) = connect_fast(&mut st, 2, t);
    st.on_message(k2, Message::HaveNone, t);
    assert_eq!(st.peer(k2).unwrap().bits.count(), 0);
    assert!(!sent(&take(&mut st), k2, &Outgoing::Interested));
}

#[test]
fn a_fast_peer_hears_a_reject_for_requests_we_will_not_serve() {
    let t = Instant::now();
    let mut st = big_seed(4, t);
    let (k, _) = connect_fast(&mut st, 1, t);
    has_upper_half(&mut st, k, t); // not few pieces: no allowed-fast set
    take(&mut st);
    // Choked: a reject, not silence.
    st.on_message(k, Message::Request(block(1)), t);
    let acts = take(&mut st);
    assert!(sent(&acts, k, &Outgoing::Reject(block(1))));
    assert!(!acts.iter().any(|a| matches!(a, Action::Serve(..))));
    // Unchoked, an impossible request gets a reject too (a peer without the extension is
    // closed for it, see request_flood_and_requests_outside_close).
    st.on_message(k, Message::Interested, t);
    take(&mut st);
    let outside = block(64);
    st.on_message(k, Message::Request(outside), t);
    assert!(sent(&take(&mut st), k, &Outgoing::Reject(outside)));
    // ...up to a point.
    for _ in 1..MAX_BAD_REQUESTS {
        st.on_message(k, Message::Request(outside), t);
    }
    assert!(closed(&take(&mut st), k).is_none());
    st.on_message(k, Message::Request(outside), t);
    assert_eq!(
        closed(&take(&mut st), k),
        Some(Violation::RequestOutside(outside).into())
    );
}

#[test]
fn a_cancel_from_a_fast_peer_is_answered_with_a_reject() {
    let t = Instant::now();
    let mut st = seeding(0, t);
    let (k, _) = connect_fast(&mut st, 1, t);
    st.on_message(k, Message::Interested, t);
    st.on_message(k, Message::Request(block(2)), t);
    take(&mut st);
    st.on_message(k, Message::Cancel(block(2)), t);
    assert!(sent(&take(&mut st), k, &Outgoing::Reject(block(2))));
    assert!(!st.take_request(k, block(2)), "the writer skips it");
    // A cancel for a block already sent needs no answer.
    st.on_message(k, Message::Cancel(block(2)), t);
    assert!(take(&mut st).is_empty());
}

#[test]
fn choking_a_fast_peer_rejects_its_queued_requests() {
    let t = Instant::now();
    let mut st = big_seed(1, t);
    let (k, _) = connect_fast(&mut st, 1, t);
    has_upper_half(&mut st, k, t);
    st.on_message(k, Message::Interested, t);
    st.on_message(k, Message::Request(block(0)), t);
    st.on_message(k, Message::Request(block(3)), t);
    take(&mut st);
    // It loses interest (its slot goes to others): the queued requests are rejected.
    st.on_message(k, Message::NotInterested, t);
    let acts = take(&mut st);
    assert!(sent(&acts, k, &Outgoing::Choke));
    assert!(sent(&acts, k, &Outgoing::Reject(block(0))));
    assert!(sent(&acts, k, &Outgoing::Reject(block(3))));
    assert!(!st.take_request(k, block(0)));
}

#[test]
fn a_reject_frees_the_block_for_another_peer_at_once() {
    let t = Instant::now();
    let mut st = leecher(8, t);
    let (a, _) = connect_fast(&mut st, 1, t);
    st.on_message(a, Message::HaveAll, t);
    st.on_message(a, Message::Unchoke, t);
    let asked = requests(&take(&mut st), a);
    assert_eq!(asked.len(), INITIAL_QUEUE);
    // A second fast peer with every piece, unchoking us, holds requests of its own.
    let (b, _) = connect_fast(&mut st, 2, t);
    st.on_message(b, Message::HaveAll, t);
    st.on_message(b, Message::Unchoke, t);
    let own = requests(&take(&mut st), b);
    // The first one chokes us: our requests stay until it rejects them (BEP 6).
    st.on_message(a, Message::Choke, t);
    assert_eq!(st.inflight(a), asked.len());
    take(&mut st);
    // Its rejects hand the blocks over, without waiting for a timeout; the second peer asks
    // for them once it has room (here: after its own blocks arrive).
    for b in &asked {
        st.on_message(a, Message::Reject(*b), t);
    }
    assert_eq!(st.inflight(a), 0);
    for blk in &own {
        deliver(&mut st, b, *blk, 1, t);
    }
    st.fill(b, t);
    let again = requests(&take(&mut st), b);
    for r in &asked {
        assert!(
            again.contains(r),
            "{r:?} asked of the other peer: {again:?}"
        );
    }
    // A reject for something we did not ask (it crossed our cancel) changes nothing.
    st.on_message(a, Message::Reject(block(7)), t);
    assert!(closed(&take(&mut st), a).is_none());
}

#[test]
fn a_newcomer_gets_an_allowed_fast_set_and_is_served_from_it_while_choked() {
    let t = Instant::now();
    let pieces = 64;
    let mut st = big_seed(1, t).with_info_hash([7; 20]);
    let (k, _) = connect_fast(&mut st, 1, t);
    st.on_message(k, Message::HaveNone, t);
    let offered: Vec<u32> = take(&mut st)
        .iter()
        .filter_map(|a| match a {
            Action::Send(p, Outgoing::AllowedFast(i)) if *p == k => Some(*i),
            _ => None,
        })
        .collect();
    let expected = allowed_fast_set(addr(1).ip(), &[7; 20], pieces as u32, ALLOWED_FAST);
    assert_eq!(
        offered, expected,
        "BEP 6's set, all of it (we have every piece)"
    );
    // Choked (it never said interested): a request in the set is served, others rejected.
    let inside = block(offered[0]);
    let outside = block((0..pieces as u32).find(|i| !offered.contains(i)).unwrap());
    st.on_message(k, Message::Request(inside), t);
    st.on_message(k, Message::Request(outside), t);
    let acts = take(&mut st);
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Serve(p, b) if *p == k && *b == inside)));
    assert!(sent(&acts, k, &Outgoing::Reject(outside)));
    // A choke keeps the allowed-fast request queued.
    st.on_message(k, Message::Interested, t);
    st.on_message(k, Message::NotInterested, t);
    take(&mut st);
    assert!(st.take_request(k, inside));
    // A peer that already has many pieces gets no set; a peer without the extension neither.
    let (rich, _) = connect_fast(&mut st, 2, t);
    has_upper_half(&mut st, rich, t);
    let slow = connect(&mut st, 3, t);
    st.on_message(slow, Message::Bitfield(Bitfield::new(64).as_bytes()), t);
    let acts = take(&mut st);
    assert!(!acts
        .iter()
        .any(|a| matches!(a, Action::Send(_, Outgoing::AllowedFast(_)))));
}

#[test]
fn we_ask_for_allowed_fast_pieces_while_choked() {
    let t = Instant::now();
    let mut st = leecher(8, t);
    let (k, _) = connect_fast(&mut st, 1, t);
    st.on_message(k, Message::HaveAll, t);
    assert!(requests(&take(&mut st), k).is_empty(), "choked");
    st.on_message(k, Message::AllowedFast(5), t);
    st.on_message(k, Message::AllowedFast(99), t); // out of range: ignored
    let asked = requests(&take(&mut st), k);
    assert_eq!(asked.len(), 2, "both blocks of piece 5: {asked:?}");
    assert!(asked.iter().all(|b| b.index == 5));
    assert!(closed(&take(&mut st), k).is_none());
}

// ----- seeding to a crowd -----

#[test]
fn with_unlimited_slots_a_new_peer_is_unchoked_at_once() {
    let t = Instant::now();
    let mut st = seeding(0, t);
    let k = st.peer_connected(addr(1), id(1), false, false, t).unwrap();
    let acts = take(&mut st);
    assert!(
        sent(&acts, k, &Outgoing::Unchoke),
        "no round trip for `interested`"
    );
    // With slots, it waits for `interested`; with nothing to offer, nobody is unchoked.
    let mut st = seeding(4, t);
    let k = st.peer_connected(addr(1), id(1), false, false, t).unwrap();
    assert!(!sent(&take(&mut st), k, &Outgoing::Unchoke));
    let mut st = leecher(4, t);
    let k = st.peer_connected(addr(1), id(1), false, false, t).unwrap();
    assert!(!sent(&take(&mut st), k, &Outgoing::Unchoke));
}

/// A seeder of `pieces` pieces of 1 MiB that super-seeds, with unlimited slots: a lone leecher
/// has 8 pieces on offer (8 MiB), each of two leechers 4.
fn super_seeder(pieces: u64, t: Instant) -> TorrentState {
    let mut l = limits(0);
    l.super_seed = true;
    let full = Bitfield::full(pieces as usize);
    TorrentState::new(layout(pieces, 1 << 20), full, l, t)
}

fn offered(actions: &[Action], to: PeerKey) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(k, Outgoing::Have(i)) if *k == to => Some(*i),
            _ => None,
        })
        .collect()
}

#[test]
fn a_super_seeder_offers_each_piece_once_before_any_twice() {
    let t = Instant::now();
    let mut st = super_seeder(64, t);
    let (a, acts) = connect_fast(&mut st, 1, t);
    assert!(sent(&acts, a, &Outgoing::HaveNone), "not have all");
    let mut to_a = offered(&acts, a);
    assert_eq!(to_a.len(), 8, "a lone leecher gets 8 MiB on offer");
    let b = st.peer_connected(addr(2), id(2), false, false, t).unwrap();
    let acts = take(&mut st);
    assert!(!acts
        .iter()
        .any(|x| matches!(x, Action::Send(k, Outgoing::Bitfield(_)) if *k == b)));
    let to_b = offered(&acts, b);
    assert_eq!(to_b.len(), 4, "two leechers share the 8 MiB");
    assert!(to_b.iter().all(|i| !to_a.contains(i)), "{to_a:?} {to_b:?}");
    // `a` holds 8 offers, more than its share now: it gets another only below 4.
    for _ in 0..4 {
        st.on_message(a, Message::Have(to_a.remove(0)), t);
        assert!(offered(&take(&mut st), a).is_empty());
    }
    st.on_message(a, Message::Have(to_a.remove(0)), t);
    let more = offered(&take(&mut st), a);
    assert_eq!(more.len(), 1);
    assert!(!to_b.contains(&more[0]), "never one offered to b: {more:?}");
    // A piece offered to `b` and not yet had by anyone is not offered again soon...
    let mut all = Bitfield::new(64);
    (0..64)
        .filter(|i| !to_b.contains(&(*i as u32)))
        .for_each(|i| {
            all.set(i);
        });
    let (c, _) = connect_fast(&mut st, 3, t);
    st.on_message(c, Message::Bitfield(all.as_bytes()), t);
    assert!(offered(&take(&mut st), c).is_empty(), "on its way to b");
    // ...but is once `b` has been sitting on it for a while.
    st.tick(t + offer::REOFFER_AFTER + Duration::from_secs(1));
    let again = offered(&take(&mut st), c);
    assert!(!again.is_empty() && again.iter().all(|i| to_b.contains(i)));
}

#[test]
fn a_lone_leechers_offers_are_topped_up_and_given_back_when_it_leaves() {
    let t = Instant::now();
    let mut st = super_seeder(64, t);
    let (a, acts) = connect_fast(&mut st, 1, t);
    let mut window = offered(&acts, a);
    let mut seen = window.clone();
    for _ in 0..40 {
        let i = window.remove(0);
        st.on_message(a, Message::Have(i), t);
        let more = offered(&take(&mut st), a);
        assert_eq!(more.len(), 1, "one for one");
        assert!(!seen.contains(&more[0]), "offered once each");
        seen.extend(&more);
        window.extend(more);
    }
    assert_eq!(window.len(), 8);
    // A piece it turns out to have already (its bitfield) is not counted as sent.
    let mut has = Bitfield::new(64);
    for &i in seen.iter().take(40).chain(&window[..1]) {
        has.set(i as usize);
    }
    st.on_message(a, Message::Bitfield(has.as_bytes()), t);
    let more = offered(&take(&mut st), a);
    assert_eq!(more.len(), 1, "{more:?}");
    // A leecher that leaves gives its offers back: they count as never sent.
    let pending: Vec<u32> = st.peer(a).unwrap().offered.clone();
    assert!(pending.iter().all(|&i| st.offers.count[i as usize] == 1));
    st.peer_gone(a, t);
    assert!(pending.iter().all(|&i| st.offers.count[i as usize] == 0));
}

#[test]
fn a_seed_that_says_upload_only_is_no_leecher_and_two_seeds_hang_up() {
    let t = Instant::now();
    // Another super-seeding seed shows no bitfield: only its `upload_only` tells.
    let mut st = super_seeder(64, t);
    let (other, acts) = connect_fast(&mut st, 1, t);
    assert!(
        !offered(&acts, other).is_empty(),
        "taken for a leecher at first"
    );
    st.peer_upload_only(other);
    assert_eq!(closed(&take(&mut st), other), Some(CloseReason::BothSeeds));
    st.peer_gone(other, t);
    // Its offers were given back: a real leecher gets a lone leecher's window, from the start.
    let (a, acts) = connect_fast(&mut st, 2, t);
    assert_eq!(offered(&acts, a).len(), 8);
    // A leecher keeps an upload-only peer (a seed to download from).
    let mut st = leecher(4, t);
    let k = connect(&mut st, 3, t);
    st.peer_upload_only(k);
    assert!(closed(&take(&mut st), k).is_none());
}

#[test]
fn a_piece_held_by_a_peer_that_never_passes_it_on_is_offered_again_in_time() {
    let t = Instant::now();
    let mut st = super_seeder(8, t);
    let (a, acts) = connect_fast(&mut st, 1, t);
    let to_a = offered(&acts, a);
    assert_eq!(to_a.len(), 8, "every piece offered to the first leecher");
    // `a` gets them all but keeps choking everyone; `b` comes later.
    for &i in &to_a {
        st.on_message(a, Message::Have(i), t);
    }
    take(&mut st);
    st.on_message(a, Message::Bitfield(Bitfield::full(8).as_bytes()), t);
    let (b, acts) = connect_fast(&mut st, 2, t);
    assert!(offered(&acts, b).is_empty(), "a can pass them on");
    st.tick(t + offer::REOFFER_AFTER + Duration::from_secs(1));
    assert!(
        offered(&take(&mut st), b).is_empty(),
        "still a's to pass on"
    );
    st.tick(t + offer::RESEND_AFTER + Duration::from_secs(1));
    let again = offered(&take(&mut st), b);
    assert!(
        !again.is_empty(),
        "offered again once a had them long enough"
    );
}
