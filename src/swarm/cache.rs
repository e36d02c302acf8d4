//! Verified pieces kept in memory for upload, within a byte budget for the whole process.
//!
//! A peer asks for a piece block by block (16 or 64 blocks), so keeping the last few pieces
//! makes each piece one disk read; and their buffers are reused, so that a read neither
//! allocates nor zeroes (which cost a seeder more CPU than sending: fresh 256 KiB buffers are
//! fresh pages, faulted in and cleared).
//!
//! Every piece buffer counts against an [`UploadBudget`] from its allocation until it is freed,
//! including while a slow connection still holds it in its send queue. Once the budget is
//! spent, a request is served by reading just its 16 KiB block, uncached: peers that ask for
//! blocks of many pieces and never read cannot pin more than the budget (30 such readers
//! of a 4 MiB-piece torrent took a seeder to 500 MiB before).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Pieces kept, whatever the budget.
const PIECES: usize = 8;

/// Piece-buffer bytes the whole process may hold for upload (cached, spare or being sent).
pub const UPLOAD_BUDGET: u64 = 64 * 1024 * 1024;

/// Spare buffers kept for reuse, process-wide.
const SPARE: usize = 16;

/// The bytes of piece buffers alive in the process, against a limit, and the spare buffers
/// (still counted) that a freed piece buffer goes back to: a buffer freed and allocated again
/// costs its page faults and zeroing again (more CPU than sending it, for a seeder).
#[derive(Debug)]
pub struct UploadBudget {
    limit: u64,
    used: AtomicU64,
    spare: Mutex<Vec<Vec<u8>>>,
}

impl UploadBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<UploadBudget> {
        Arc::new(UploadBudget {
            limit,
            used: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
        })
    }

    fn spare(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A piece buffer of `size` bytes: a spare one, or a new one if the budget allows (after
    /// freeing spare buffers of other sizes if need be).
    fn piece(self: &Arc<Self>, size: usize) -> Option<PieceBuf> {
        let mut spare = self.spare();
        if let Some(pos) = spare.iter().position(|b| b.capacity() >= size) {
            let mut data = spare.swap_remove(pos);
            // Its old bytes are all overwritten by the read.
            data.resize(size, 0);
            let charged = data.capacity() as u64;
            return Some(PieceBuf {
                data,
                budget: Some((Arc::clone(self), charged)),
            });
        }
        loop {
            if self.try_take(size as u64) {
                let data = vec![0; size];
                let charged = data.capacity() as u64;
                // `vec!` may round the capacity up: charge what it holds.
                self.used.fetch_add(charged - size as u64, Ordering::AcqRel);
                return Some(PieceBuf {
                    data,
                    budget: Some((Arc::clone(self), charged)),
                });
            }
            let old = spare.pop()?;
            self.give_back(old.capacity() as u64);
        }
    }

    /// Free every spare buffer.
    fn drop_spare(&self) {
        let freed: u64 = self.spare().drain(..).map(|b| b.capacity() as u64).sum();
        self.give_back(freed);
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.limit).then_some(u + n)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes to send from: a piece buffer (counted against its budget until dropped) or a lone
/// block read past the budget.
pub struct PieceBuf {
    data: Vec<u8>,
    /// The budget charged with `charged` bytes, if any.
    budget: Option<(Arc<UploadBudget>, u64)>,
}

impl PieceBuf {
    /// Bytes not counted against any budget (a lone block, or a test's data).
    pub fn uncounted(data: Vec<u8>) -> PieceBuf {
        PieceBuf { data, budget: None }
    }
}

impl Deref for PieceBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl DerefMut for PieceBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl Drop for PieceBuf {
    fn drop(&mut self) {
        let Some((b, n)) = self.budget.take() else {
            return;
        };
        let mut spare = b.spare();
        if spare.len() < SPARE {
            spare.push(std::mem::take(&mut self.data)); // still counted
        } else {
            drop(spare);
            b.give_back(n);
        }
    }
}

/// A small least-recently-used cache of pieces, with spare buffers, charged to a budget.
pub struct PieceCache {
    inner: Mutex<Inner>,
    budget: Arc<UploadBudget>,
}

#[derive(Default)]
struct Inner {
    /// Least recently used first.
    entries: Vec<(u32, Arc<PieceBuf>)>,
}

/// Where to read a piece into, from [`PieceCache::buffer`].
pub enum Buffer {
    /// A buffer for the whole piece (charged to the budget).
    Piece(PieceBuf),
    /// The budget is spent: read only the block asked for.
    BlockOnly,
}

impl PieceCache {
    /// An empty cache charging `budget`.
    pub fn new(budget: Arc<UploadBudget>) -> PieceCache {
        PieceCache {
            inner: Mutex::new(Inner::default()),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Piece `index` if cached (it becomes the most recently used).
    pub fn get(&self, index: u32) -> Option<Arc<PieceBuf>> {
        let mut c = self.lock();
        let pos = c.entries.iter().position(|(i, _)| *i == index)?;
        let entry = c.entries.remove(pos);
        let data = Arc::clone(&entry.1);
        c.entries.push(entry);
        Some(data)
    }

    /// A buffer to read a piece of `size` bytes into: a spare one, a new one if the budget
    /// allows (after letting go of cached pieces if need be), or none.
    pub fn buffer(&self, size: usize) -> Buffer {
        loop {
            if let Some(buf) = self.budget.piece(size) {
                return Buffer::Piece(buf);
            }
            // Make room: the least recently used piece leaves (its buffer becomes spare when
            // the last connection sending from it lets go).
            let mut c = self.lock();
            if c.entries.is_empty() {
                return Buffer::BlockOnly;
            }
            c.entries.remove(0);
        }
    }

    /// Keep piece `index`. The least recently used piece leaves; its buffer is kept for reuse
    /// unless a connection is still sending from it.
    pub fn insert(&self, index: u32, data: Arc<PieceBuf>) {
        let mut c = self.lock();
        if c.entries.iter().any(|(i, _)| *i == index) {
            return; // read twice at once by two connections
        }
        if c.entries.len() >= PIECES {
            c.entries.remove(0); // its buffer goes back to the spares once nobody sends from it
        }
        c.entries.push((index, data));
    }

    /// Forget every piece and spare buffer (nobody is connected): their bytes go back to the
    /// budget, and to the system.
    pub fn clear(&self) {
        self.lock().entries.clear();
        self.budget.drop_spare();
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// Whether pieces are cached or spare buffers kept: what [`PieceCache::clear`] frees.
    pub fn holds_memory(&self) -> bool {
        !self.is_empty() || !self.budget.spare().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(c: &PieceCache, size: usize, byte: u8) -> Arc<PieceBuf> {
        match c.buffer(size) {
            Buffer::Piece(mut b) => {
                b.data.iter_mut().for_each(|x| *x = byte);
                Arc::new(b)
            }
            Buffer::BlockOnly => panic!("over budget"),
        }
    }

    #[test]
    fn keeps_recent_pieces_and_recycles_evicted_buffers() {
        let c = PieceCache::new(UploadBudget::new(1 << 20));
        for i in 0..PIECES as u32 {
            c.insert(i, piece(&c, 4, i as u8));
        }
        assert!(c.get(0).is_some(), "0 is now the most recent");
        let held = c.get(1).unwrap(); // a connection still sends from piece 1
        c.insert(100, piece(&c, 4, 9)); // evicts 2 (least recent)
        assert!(c.get(2).is_none());
        match c.buffer(4) {
            Buffer::Piece(b) => assert_eq!(&b[..], &[2u8; 4], "the evicted buffer comes back"),
            Buffer::BlockOnly => panic!(),
        }
        for i in 200..200 + PIECES as u32 {
            c.insert(i, piece(&c, 4, 1));
        }
        assert_eq!(&held[..], &[1u8; 4], "a held piece is never reused");
        assert!(c.get(1).is_none());
    }

    #[test]
    fn the_budget_bounds_what_slow_readers_pin() {
        let budget = UploadBudget::new(4 << 20);
        let c = PieceCache::new(Arc::clone(&budget));
        // Slow readers hold pieces in their send queues: the cache lets them go, the budget
        // still counts them.
        let mut pinned = Vec::new();
        for i in 0..4 {
            let p = piece(&c, 1 << 20, 1);
            c.insert(i, Arc::clone(&p));
            pinned.push(p);
        }
        assert_eq!(budget.used(), 4 << 20);
        assert!(
            matches!(c.buffer(1 << 20), Buffer::BlockOnly),
            "spent: blocks only"
        );
        assert!(c.is_empty(), "the cache gave up what it could");
        drop(pinned); // the readers leave: their buffers become spares, still counted
        assert_eq!(budget.used(), 4 << 20);
        assert!(
            matches!(c.buffer(1 << 20), Buffer::Piece(_)),
            "a spare is reused"
        );
        assert_eq!(budget.used(), 4 << 20, "without a new allocation");
        c.clear();
        assert_eq!(budget.used(), 0, "every byte is given back");
    }

    #[test]
    fn clearing_gives_the_bytes_back() {
        let budget = UploadBudget::new(8 << 20);
        let c = PieceCache::new(Arc::clone(&budget));
        for i in 0..3 {
            c.insert(i, piece(&c, 1 << 20, 1));
        }
        assert_eq!(budget.used(), 3 << 20);
        c.clear();
        assert_eq!(budget.used(), 0);
    }
}
