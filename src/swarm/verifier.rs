//! Work off the socket tasks: complete pieces are hashed on plain threads, one per core, and
//! verified pieces are written by one writer thread, so that SHA-1 and disk writes never stall a
//! socket task.
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
