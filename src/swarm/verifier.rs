//! Work off the socket tasks: complete pieces are hashed on plain threads, one per core,
//! verified pieces are written by one writer thread, and pieces for upload are read by a few
//! reader threads, so that SHA-1 and disk I/O never stall a socket task.
//!
//! One writer, not a write per hashing thread: buffered writes to a file serialise on its inode
//! lock, and the kernel spins on that lock while the holder copies, so two threads writing the
//! same file burn a core between them (17% of the client's CPU in a profile). With one writer
//! the hashing threads keep hashing while it copies.

use std::sync::OnceLock;

use crate::rt::channel::{unbounded, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of `threads` named `name-N` running jobs from one queue.
fn pool(name: &str, threads: usize) -> Sender<Job> {
    let (tx, rx) = unbounded::<Job>();
    for n in 0..threads {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                while let Ok(job) = rx.recv_blocking() {
                    job();
                }
            })
            .expect("spawn a worker thread");
    }
    tx
}

fn send(pool: &Sender<Job>, job: Job) {
    // The pools live as long as the process; a send can only fail if every worker died.
    if pool.try_send(job).is_err() {
        log::error!("a worker pool is gone");
    }
}

/// Run `job` on the hashing pool (one thread per core).
pub fn submit(job: impl FnOnce() + Send + 'static) {
    static HASH: OnceLock<Sender<Job>> = OnceLock::new();
    send(
        HASH.get_or_init(|| pool("bt-hash", super::hashing::workers())),
        Box::new(job),
    );
}

/// Run `job` on the writer thread. Jobs run one at a time, in the order given.
pub fn write(job: impl FnOnce() + Send + 'static) {
    static WRITE: OnceLock<Sender<Job>> = OnceLock::new();
    send(WRITE.get_or_init(|| pool("bt-write", 1)), Box::new(job));
}

/// Reader threads: disk reads for upload. A fixed few, not a thread per waiting read: hundreds
/// of slow peers each asking for blocks spun up hundreds of blocking-pool threads, whose stacks
/// and allocator arenas took a seeder's memory past its upload budget.
const READERS: usize = 4;

/// Run `job` on a reader thread and wait for its result.
pub async fn read<T: Send + 'static>(
    job: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    static READ: OnceLock<Sender<Job>> = OnceLock::new();
    let (tx, rx) = crate::rt::channel::bounded(1);
    send(
        READ.get_or_init(|| pool("bt-read", READERS)),
        Box::new(move || {
            let _ = tx.try_send(job());
        }),
    );
    // An error only if the pool is gone (see `send`).
    rx.recv()
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the reader threads are gone")))
}
