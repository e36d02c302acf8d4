//! SHA-1 of many pieces on every core: used to make torrents and to check data on disk.
//!
//! Each worker claims the next piece index from a shared counter, reads it with positional
//! reads into its own buffer and hashes it, so memory stays at one piece per core.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha1::{Digest, Sha1};

use super::storage::Storage;

/// SHA-1 of a byte slice.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// Number of hashing threads: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Hash every piece of `storage` on `workers()` threads, calling `done(index, result)` for each
/// (from the worker threads, in no particular order). Stops early when `done` returns false.
pub fn hash_pieces<F>(storage: &Storage, done: F)
where
    F: Fn(usize, io::Result<[u8; 20]>) -> bool + Sync,
{
    let count = storage.layout().piece_count();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..workers().min(count.max(1)) {
            scope.spawn(|| {
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let result = storage.read_piece(index, &mut buf).map(|()| sha1(&buf));
                    if !done(index, result) {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::layout::Layout;
    use crate::swarm::storage::Access;
    use std::sync::Mutex;

    #[test]
    fn hashes_match_sequential_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("f"), &data).unwrap();
        let s = Storage::from_paths(
            vec![dir.path().join("f")],
            Layout::new(16384, [data.len() as u64]).unwrap(),
            Access::ReadOnly,
        );
        let out = Mutex::new(vec![[0u8; 20]; 7]);
        hash_pieces(&s, |i, r| {
            out.lock().unwrap()[i] = r.unwrap();
            true
        });
        let want: Vec<[u8; 20]> = data.chunks(16384).map(sha1).collect();
        assert_eq!(*out.lock().unwrap(), want);
    }
}
