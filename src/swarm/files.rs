//! A bounded pool of open files, shared by the whole process.
//!
//! A torrent may hold far more files than the process may keep open (100,000 files under the
//! common `ulimit -n 1024`), and the sockets need descriptors too. Every [`Storage`] opens its
//! files through one pool that keeps at most [`FilePool::capacity`] of them open and closes the
//! least recently used when it is full, like libtorrent's file pool. Its size comes from the
//! open-file limit (`RLIMIT_NOFILE`): a quarter of it, between [`MIN_FILES`] and
//! [`MAX_FILES`]; the other three quarters are left for sockets, the listener, the standard
//! streams and the tracker connections.
//!
//! Handles are lent out as `Arc<File>`: the I/O runs outside the pool's lock, and a file evicted
//! while in use is closed when its last user is done (so for a moment a few more files than the
//! capacity may be open, at most one per thread doing I/O). If opening still fails for lack of
//! descriptors (sockets took them), the pool closes half of its files and tries once more.
//!
//! [`Storage`]: super::storage::Storage

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Fewest files the pool keeps open, whatever the limit says.
pub const MIN_FILES: usize = 16;
/// Most files the pool keeps open: more brings nothing (libtorrent's default is 40).
pub const MAX_FILES: usize = 512;

/// Which file: the owner (one per [`Storage`](super::storage::Storage)) and its file index.
type Key = (u64, usize);

/// Open files, least recently used closed first.
pub struct FilePool {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Open files with the tick of their last use.
    open: HashMap<Key, (Arc<File>, u64)>,
    /// Last-use tick -> file, oldest first.
    order: BTreeMap<u64, Key>,
    clock: u64,
}

impl Inner {
    fn touch(&mut self, key: Key) -> Option<Arc<File>> {
        self.clock += 1;
        let clock = self.clock;
        let (file, tick) = self.open.get_mut(&key)?;
        self.order.remove(tick);
        *tick = clock;
        self.order.insert(clock, key);
        Some(Arc::clone(file))
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.open.remove(&key);
        }
    }
}

impl std::fmt::Debug for FilePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePool")
            .field("capacity", &self.capacity)
            .field("open", &self.len())
            .finish()
    }
}

impl FilePool {
    /// A pool that keeps at most `capacity` files open (at least 1).
    pub fn new(capacity: usize) -> FilePool {
        FilePool {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The process's pool, sized from the open-file limit on first use.
    pub fn global() -> &'static FilePool {
        static POOL: OnceLock<FilePool> = OnceLock::new();
        POOL.get_or_init(|| FilePool::new(size_for_limit(open_file_limit())))
    }

    /// A fresh owner id, for the keys of one storage.
    pub fn new_owner() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Most files kept open.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files open now.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// True when no file is open.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock guards plain maps: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// File `index` of `owner`, opened with `open` if it is not open yet.
    pub fn get(
        &self,
        owner: u64,
        index: usize,
        open: impl Fn() -> io::Result<File>,
    ) -> io::Result<Arc<File>> {
        let key = (owner, index);
        if let Some(f) = self.lock().touch(key) {
            return Ok(f);
        }
        // Opened outside the lock: an open may be slow (a network disk) and others must not
        // wait. Two threads may open the same file at once; the second keeps the first's.
        let file = match open() {
            Err(e) if out_of_descriptors(&e) => {
                self.shrink(self.capacity / 2);
                open()?
            }
            r => r?,
        };
        let mut inner = self.lock();
        if let Some(f) = inner.touch(key) {
            return Ok(f);
        }
        while inner.open.len() >= self.capacity {
            inner.evict_oldest();
        }
        inner.clock += 1;
        let clock = inner.clock;
        let file = Arc::new(file);
        inner.open.insert(key, (Arc::clone(&file), clock));
        inner.order.insert(clock, key);
        Ok(file)
    }

    /// Close the least recently used files until at most `keep` are open.
    pub fn shrink(&self, keep: usize) {
        let mut inner = self.lock();
        while inner.open.len() > keep {
            inner.evict_oldest();
        }
    }

    /// Close every file of `owner` (its storage is gone).
    pub fn forget(&self, owner: u64) {
        let mut inner = self.lock();
        let Inner { open, order, .. } = &mut *inner;
        open.retain(|key, (_, tick)| {
            let keep = key.0 != owner;
            if !keep {
                order.remove(tick);
            }
            keep
        });
    }
}

/// True for "too many open files" (the process's limit or the system's).
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The soft limit on open files of this process (`RLIMIT_NOFILE`); 1024 if it cannot be read.
pub fn open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return 1024;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
        let cur = lim.rlim_cur as u64;
        cur
    }
}

/// Pool size for an open-file limit: a quarter of it, within [`MIN_FILES`]..=[`MAX_FILES`].
pub fn size_for_limit(limit: u64) -> usize {
    (limit / 4).clamp(MIN_FILES as u64, MAX_FILES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(3);
        let owner = FilePool::new_owner();
        let opens = std::cell::Cell::new(0);
        let open = |i: usize| {
            let p = dir.path().join(i.to_string());
            let opens = &opens;
            move || {
                opens.set(opens.get() + 1);
                File::options().create(true).append(true).open(&p)
            }
        };
        for i in 0..3 {
            pool.get(owner, i, open(i)).unwrap();
        }
        assert_eq!(opens.get(), 3);
        pool.get(owner, 0, open(0)).unwrap(); // 0 is now the most recent; 1 the oldest
        assert_eq!(opens.get(), 3);
        pool.get(owner, 3, open(3)).unwrap(); // evicts 1
        assert_eq!(pool.len(), 3);
        pool.get(owner, 0, open(0)).unwrap();
        pool.get(owner, 2, open(2)).unwrap();
        assert_eq!(opens.get(), 4);
        pool.get(owner, 1, open(1)).unwrap(); // reopened
        assert_eq!(opens.get(), 5);
        assert_eq!(pool.len(), 3);
        pool.forget(owner);
        assert!(pool.is_empty());
    }

    #[test]
    fn sizes_follow_the_limit() {
        assert_eq!(size_for_limit(1024), 256);
        assert_eq!(size_for_limit(256), 64);
        assert_eq!(size_for_limit(20), MIN_FILES);
        assert_eq!(size_for_limit(u64::MAX), MAX_FILES);
    }

    #[test]
    fn an_open_error_is_returned_unchanged() {
        let pool = FilePool::new(2);
        let e = pool
            .get(FilePool::new_owner(), 0, || {
                File::open("/nonexistent/bt-pool")
            })
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(pool.is_empty());
    }
}
