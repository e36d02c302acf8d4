//! The download piece buffers of the whole process, within one byte budget.
//!
//! A piece being downloaded lives in a buffer of its size until it is hashed and written. Each
//! torrent's picker already bounds its own buffers (8 MiB, at least two pieces), but 1,000
//! torrents downloading at once could then hold 8 GB. Every piece buffer is charged here from
//! the piece's start to the end of its hash check, against [`DOWNLOAD_BUDGET`] for all
//! torrents together, with a fair share: a torrent that holds buffers may start one more piece
//! only within `budget / torrents buffering or waiting`, so one fast torrent cannot take the
//! whole budget while others wait. A torrent that holds none may always start one piece while
//! the budget has room for it, even when its pieces are larger than its share: it progresses one
//! piece at a time (and a piece larger than the whole budget starts when nothing else is
//! buffered).
//!
//! Buffers are reused (a fresh one is fresh pages, faulted in and zeroed): spare ones wait in a
//! pool of at most [`SPARE_BYTES`], not charged to anyone.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Bytes of partially downloaded (or being checked) pieces the whole process may hold.
pub const DOWNLOAD_BUDGET: u64 = 256 * 1024 * 1024;
/// Bytes of spare piece buffers kept for reuse, process-wide.
pub const SPARE_BYTES: u64 = 32 * 1024 * 1024;

/// The budget: bytes charged, the torrents that count for the fair share, the spare buffers.
#[derive(Debug)]
pub struct DownloadBudget {
    limit: u64,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    used: u64,
    /// Shares that hold buffers or were refused one (and hold none since).
    active: usize,
    spare: Vec<Vec<u8>>,
    spare_bytes: u64,
}

impl DownloadBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<DownloadBudget> {
        Arc::new(DownloadBudget {
            limit,
            counts: Mutex::default(),
        })
    }

    /// The process's budget of [`DOWNLOAD_BUDGET`] bytes.
    pub fn global() -> Arc<DownloadBudget> {
        static GLOBAL: OnceLock<Arc<DownloadBudget>> = OnceLock::new();
        Arc::clone(GLOBAL.get_or_init(|| DownloadBudget::new(DOWNLOAD_BUDGET)))
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.counts().used
    }
}

/// One torrent's part of a [`DownloadBudget`]; what it holds is given back when dropped.
#[derive(Debug)]
pub struct Share {
    budget: Arc<DownloadBudget>,
    held: u64,
    active: bool,
}

impl Share {
    /// A share of `budget`, holding nothing.
    pub fn new(budget: Arc<DownloadBudget>) -> Share {
        Share {
            budget,
            held: 0,
            active: false,
        }
    }

    /// A buffer of `size` bytes for a new piece, charged to this share; `None` when the budget
    /// or this torrent's fair share has no room (the torrent then counts for the fair share,
    /// so that the others make room).
    pub fn take(&mut self, size: usize) -> Option<Vec<u8>> {
        let size64 = size as u64;
        let limit = self.budget.limit;
        let mut c = self.budget.counts();
        if !self.active {
            self.active = true;
            c.active += 1;
        }
        let share = limit / c.active.max(1) as u64;
        let room = c.used + size64 <= limit;
        let ok = match self.held {
            // One piece at a time whatever the share; a huge one only alone.
            0 => room || c.used == 0,
            held => room && held + size64 <= share,
        };
        if !ok {
            return None;
        }
        c.used += size64;
        self.held += size64;
        let mut buf = match c.spare.iter().position(|b| b.capacity() >= size) {
            Some(at) => {
                let b = c.spare.swap_remove(at);
                c.spare_bytes -= b.capacity() as u64;
                b
            }
            None => Vec::new(),
        };
        drop(c);
        // A reused buffer keeps its old bytes: each is overwritten by a block before the piece
        // is hashed.
        buf.resize(size, 0);
        Some(buf)
    }

    /// A piece of `size` bytes is done with (verified, failed or dropped); its buffer, if
    /// given, is kept for reuse while the spare pool has room.
    pub fn give_back(&mut self, size: usize, buf: Option<Vec<u8>>) {
        let size = (size as u64).min(self.held);
        let mut c = self.budget.counts();
        c.used -= size.min(c.used);
        self.held -= size;
        if self.held == 0 && self.active {
            self.active = false;
            c.active -= 1;
        }
        if let Some(b) = buf {
            if c.spare_bytes + b.capacity() as u64 <= SPARE_BYTES {
                c.spare_bytes += b.capacity() as u64;
                c.spare.push(b);
            }
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let held = self.held as usize;
        self.give_back(held, None);
        if self.active {
            self.active = false;
            let mut c = self.budget.counts();
            c.active = c.active.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_budget_is_never_exceeded_and_bytes_come_back() {
        let budget = DownloadBudget::new(8 * MIB as u64);
        let mut a = Share::new(Arc::clone(&budget));
        let mut taken = Vec::new();
        while let Some(b) = a.take(MIB) {
            taken.push(b);
        }
        // Alone, a torrent may use the whole budget.
        assert_eq!(taken.len(), 8);
        assert_eq!(budget.used(), 8 * MIB as u64);
        for b in taken {
            a.give_back(MIB, Some(b));
        }
        assert_eq!(budget.used(), 0);
        // Dropped with pieces held: given back.
        let _held = a.take(MIB).unwrap();
        assert_eq!(budget.used(), MIB as u64);
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_fast_torrent_leaves_room_for_a_waiting_one() {
        let budget = DownloadBudget::new(8 * MIB as u64);
        let (mut fast, mut slow) = (
            Share::new(Arc::clone(&budget)),
            Share::new(Arc::clone(&budget)),
        );
        let mut held = Vec::new();
        while let Some(b) = fast.take(MIB) {
            held.push(b);
        }
        assert_eq!(held.len(), 8);
        // The budget is full: the slow torrent is refused, and now counts for the share.
        assert!(slow.take(MIB).is_none());
        // As the fast torrent's pieces finish, it may not start more past half the budget...
        for _ in 0..4 {
            fast.give_back(MIB, held.pop());
            assert!(fast.take(MIB).is_none(), "over its half");
        }
        // ...so the slow one gets its pieces.
        let mine: Vec<_> = (0..4).map_while(|_| slow.take(MIB)).collect();
        assert_eq!(mine.len(), 4);
        assert_eq!(budget.used(), 8 * MIB as u64);
    }

    #[test]
    fn pieces_larger_than_the_share_still_go_one_at_a_time() {
        let budget = DownloadBudget::new(8 * MIB as u64);
        let shares: Vec<Share> = (0..3).map(|_| Share::new(Arc::clone(&budget))).collect();
        let mut shares = shares;
        // 3 torrents: a share is 2.67 MiB; 4 MiB pieces still start, one per torrent, while
        // the budget holds them (two of them).
        let first = shares[0].take(4 * MIB);
        let second = shares[1].take(4 * MIB);
        assert!(first.is_some() && second.is_some());
        assert!(shares[2].take(4 * MIB).is_none(), "budget full");
        assert!(shares[0].take(4 * MIB).is_none(), "one at a time");
        shares[1].give_back(4 * MIB, second);
        assert!(shares[2].take(4 * MIB).is_some());
        // A piece larger than the whole budget starts when nothing else is buffered.
        drop(shares);
        let mut alone = Share::new(Arc::clone(&budget));
        assert_eq!(budget.used(), 0);
        assert!(alone.take(16 * MIB).is_some());
        assert!(alone.take(MIB).is_none());
    }
}
