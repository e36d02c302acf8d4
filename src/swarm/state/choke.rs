//! Whom we upload to. With unlimited slots (a LAN), every interested peer is unchoked as soon
//! as it asks. With N slots: an interested peer is unchoked at once while a slot is free; every
//! 10 s the N fastest interested peers keep the slots, plus one optimistic unchoke rotated every
//! 30 s so that a new peer gets a chance to show its speed.

use std::time::{Duration, Instant};

use super::{Outgoing, PeerKey, TorrentState};

/// How often the slots are given to the fastest peers.
pub const RECHOKE_EVERY: Duration = Duration::from_secs(10);
/// How long the optimistic unchoke stays with one peer.
pub const OPTIMISTIC_EVERY: Duration = Duration::from_secs(30);

/// The choking rounds' own state.
#[derive(Debug)]
pub(super) struct Choker {
    last_rechoke: Instant,
    optimistic: Option<PeerKey>,
    last_optimistic: Instant,
}

impl Choker {
    pub(super) fn new(now: Instant) -> Choker {
        Choker {
            last_rechoke: now,
            optimistic: None,
            last_optimistic: now,
        }
    }

    /// A peer left; true if it held the optimistic unchoke.
    pub(super) fn forget(&mut self, k: PeerKey) -> bool {
        if self.optimistic == Some(k) {
            self.optimistic = None;
            return true;
        }
        false
    }

    /// The peer holding the optimistic unchoke.
    pub(super) fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }
}

impl TorrentState {
    /// Unchoke interested peers while slots are free (every one with unlimited slots).
    pub(super) fn unchoke_free_slots(&mut self, now: Instant) {
        let slots = self.limits.upload_slots;
        let optimistic = self.choke.optimistic();
        let mut free = if slots == 0 {
            usize::MAX
        } else {
            let used = self
                .peers
                .iter()
                .filter(|(k, p)| !p.am_choking && Some(**k) != optimistic)
                .count();
            slots.saturating_sub(used)
        };
        let mut waiting: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.am_choking && p.peer_interested && !p.closing)
            .map(|(k, _)| *k)
            .collect();
        waiting.sort_unstable(); // first come, first served
        for k in waiting {
            if free == 0 {
                break;
            }
            free -= 1;
            self.set_choke(k, false, now);
        }
    }

    pub(super) fn set_choke(&mut self, k: PeerKey, choke: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if p.am_choking == choke {
            return;
        }
        p.am_choking = choke;
        if choke {
            // Their queued requests are dropped (with a reject each under the fast extension).
            self.send(k, Outgoing::Choke, now);
            self.drop_their_requests(k, now);
        } else {
            self.send(k, Outgoing::Unchoke, now);
        }
    }

    /// With limited slots, every [`RECHOKE_EVERY`]: the fastest interested peers keep the
    /// slots (by what they sent us while we download, by what we sent them while we seed),
    /// plus the optimistic unchoke.
    pub(super) fn rechoke(&mut self, now: Instant) {
        let slots = self.limits.upload_slots;
        if slots == 0 || now.saturating_duration_since(self.choke.last_rechoke) < RECHOKE_EVERY {
            return;
        }
        self.choke.last_rechoke = now;
        let seeding = self.picker.is_complete();
        let mut ranked: Vec<(u64, PeerKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.peer_interested && !p.closing)
            .map(|(k, p)| {
                let rate = if seeding {
                    p.uploaded - p.uploaded_mark
                } else {
                    p.downloaded - p.downloaded_mark
                };
                (rate, *k)
            })
            .collect();
        // Fastest first; among equals the longest-connected.
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut unchoke: Vec<PeerKey> = ranked.iter().take(slots).map(|(_, k)| *k).collect();
        let rest: Vec<PeerKey> = ranked.iter().skip(slots).map(|(_, k)| *k).collect();
        let c = &mut self.choke;
        if now.saturating_duration_since(c.last_optimistic) >= OPTIMISTIC_EVERY
            || c.optimistic.is_none_or(|k| !rest.contains(&k))
        {
            use rand::seq::SliceRandom;
            c.optimistic = rest.choose(&mut rand::thread_rng()).copied();
            c.last_optimistic = now;
        }
        unchoke.extend(c.optimistic);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let p = self.peers.get_mut(&k).expect("listed");
            p.downloaded_mark = p.downloaded;
            p.uploaded_mark = p.uploaded;
            self.set_choke(k, !unchoke.contains(&k), now);
        }
    }
}
