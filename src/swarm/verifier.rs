//! The hashing pool: complete pieces are checked and written on plain threads, one per core,
//! so that SHA-1 and disk writes never stall a socket task.

use std::sync::OnceLock;

use async_std::channel::{unbounded, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

fn pool() -> &'static Sender<Job> {
    static POOL: OnceLock<Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = unbounded::<Job>();
        for n in 0..super::hashing::workers() {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("bt-hash-{n}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv_blocking() {
                        job();
                    }
                })
                .expect("spawn hashing thread");
        }
        tx
    })
}

/// Run `job` on the hashing pool.
pub fn submit(job: impl FnOnce() + Send + 'static) {
    // The pool lives as long as the process; a send can only fail if every worker died.
    if pool().try_send(Box::new(job)).is_err() {
        log::error!("hashing pool is gone");
    }
}
