//! SHA-1 of many pieces on every core: used to make torrents and to check data on disk.
//!
//! Each worker claims the next piece index from a shared counter, reads it with positional
//! reads into its own buffer and hashes it, so memory stays at one piece per core.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha1::{Digest, Sha1};

use super::storage::Storage;
use crate::proto::bitfield::Bitfield;

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

/// What [`verify`] found on disk.
#[derive(Debug)]
pub struct Verified {
    /// Pieces whose SHA-1 matches.
    pub have: Bitfield,
    /// Pieces that could be read but hash wrong.
    pub bad: usize,
    /// Pieces that could not be read because a file is missing or shorter than it should be.
    pub missing: usize,
}

/// True for the errors that mean "the data is not there (yet)": a missing or short file. Any
/// other error (no permission, a disk error, no descriptors left) is a failure of the check.
pub fn is_missing_data(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof
    )
}

/// Hash every piece of `storage` and compare with `expected` (one hash per piece), calling
/// `progress(index)` after each. A missing or short file makes its pieces missing; any other
/// I/O error stops the check and is returned, so that a check never mistakes a failing disk for
/// bad data.
pub fn verify<P>(storage: &Storage, expected: &[[u8; 20]], progress: P) -> io::Result<Verified>
where
    P: Fn(usize) + Sync,
{
    let count = storage.layout().piece_count().min(expected.len());
    let found = Mutex::new(Verified {
        have: Bitfield::new(count),
        bad: 0,
        missing: 0,
    });
    let failure = Mutex::new(None);
    hash_pieces(storage, |i, r| {
        let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(h) if h == expected[i] => {
                f.have.set(i);
            }
            Ok(_) => f.bad += 1,
            Err(e) if is_missing_data(&e) => f.missing += 1,
            Err(e) => {
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                return false;
            }
        }
        drop(f);
        progress(i);
        true
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(found.into_inner().unwrap_or_else(|e| e.into_inner()))
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

    #[test]
    fn verify_counts_missing_and_bad_and_fails_on_other_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<u8> = (0..64u8).collect();
        std::fs::write(dir.path().join("a"), &a).unwrap();
        std::fs::write(dir.path().join("b"), [9u8; 16]).unwrap(); // should be 32 bytes
        let layout = Layout::new(16, [64, 32, 16]).unwrap();
        let mut expected: Vec<[u8; 20]> = a.chunks(16).map(sha1).collect();
        expected[1] = [0; 20]; // bad
        expected.extend([sha1(&[9u8; 16]), sha1(&[9u8; 16]), sha1(&[0u8; 16])]);
        let paths = ["a", "b", "c"].map(|n| dir.path().join(n)).to_vec();
        let s = Storage::from_paths(paths.clone(), layout.clone(), Access::ReadOnly);
        let v = verify(&s, &expected, |_| {}).unwrap();
        assert_eq!(v.have.ones().collect::<Vec<_>>(), [0, 2, 3, 4]);
        assert_eq!((v.bad, v.missing), (1, 2));

        // A folder where a file should be is a failure, not a missing piece.
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("b"), [9u8; 32]).unwrap();
        let s = Storage::from_paths(paths, layout, Access::ReadOnly);
        let e = verify(&s, &expected, |_| {}).unwrap_err();
        assert!(e.to_string().contains("/c"), "{e}");
    }
}
