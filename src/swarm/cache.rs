//! Verified pieces kept in memory for upload. A peer asks for a piece block by block (16 or 64
//! blocks), so keeping the last few pieces makes each piece one disk read; and their buffers
//! are reused, so that a read neither allocates nor zeroes (which cost a seeder more CPU than
//! sending: fresh 256 KiB buffers are fresh pages, faulted in and cleared).

use std::sync::{Arc, Mutex, MutexGuard};

/// Pieces kept (and spare buffers at most).
const PIECES: usize = 8;

/// A small least-recently-used cache of pieces, with spare buffers.
#[derive(Default)]
pub struct PieceCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Least recently used first.
    entries: Vec<(u32, Arc<Vec<u8>>)>,
    /// Buffers of evicted pieces that nobody was still sending from.
    spare: Vec<Vec<u8>>,
}

impl PieceCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Piece `index` if cached (it becomes the most recently used).
    pub fn get(&self, index: u32) -> Option<Arc<Vec<u8>>> {
        let mut c = self.lock();
        let pos = c.entries.iter().position(|(i, _)| *i == index)?;
        let entry = c.entries.remove(pos);
        let data = Arc::clone(&entry.1);
        c.entries.push(entry);
        Some(data)
    }

    /// A buffer to read a piece into: a spare one (its old bytes are all overwritten by the
    /// read) or a new, empty one.
    pub fn buffer(&self) -> Vec<u8> {
        self.lock().spare.pop().unwrap_or_default()
    }

    /// Keep piece `index`. The least recently used piece leaves; its buffer is kept for reuse
    /// unless a connection is still sending from it.
    pub fn insert(&self, index: u32, data: Arc<Vec<u8>>) {
        let mut c = self.lock();
        if c.entries.iter().any(|(i, _)| *i == index) {
            return; // read twice at once by two connections
        }
        if c.entries.len() >= PIECES {
            let (_, old) = c.entries.remove(0);
            if let Ok(buf) = Arc::try_unwrap(old) {
                if c.spare.len() < PIECES {
                    c.spare.push(buf);
                }
            }
        }
        c.entries.push((index, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_recent_pieces_and_recycles_evicted_buffers() {
        let c = PieceCache::default();
        for i in 0..PIECES as u32 {
            c.insert(i, Arc::new(vec![i as u8; 4]));
        }
        assert!(c.get(0).is_some(), "0 is now the most recent");
        let held = c.get(1).unwrap(); // a connection still sends from piece 1
        c.insert(100, Arc::new(vec![9; 4])); // evicts 2 (least recent)
        assert!(c.get(2).is_none());
        assert_eq!(c.buffer(), vec![2u8; 4], "the evicted buffer comes back");
        assert!(c.buffer().is_empty(), "no more spare buffers");
        for i in 200..200 + PIECES as u32 {
            c.insert(i, Arc::new(vec![1; 4]));
        }
        assert_eq!(held.as_slice(), &[1u8; 4], "a held piece is never reused");
        assert!(c.get(1).is_none());
    }
}
