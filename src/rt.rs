//! The async runtime, behind one seam: every spawn, sleep, timeout, `block_on`, blocking-pool
//! call, channel and socket type the rest of bt uses comes from here, so that moving off
//! async-std (deprecated upstream in favour of smol) touches this file alone.
//!
//! Task handles follow smol's rule rather than async-std's: a [`Task`] must be awaited or
//! explicitly [`Task::detach`]ed. Dropping one without either is a compile-time warning
//! (`#[must_use]`), so a fire-and-forget task says so where it is spawned.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use async_std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};

/// Async read and write extension traits (`read`, `read_exact`, `write_all`, ...).
pub mod io {
    pub use async_std::io::{ReadExt, WriteExt};
}

/// Channels between tasks and threads (multi-producer, multi-consumer).
pub mod channel {
    pub use async_std::channel::{
        bounded, unbounded, Receiver, RecvError, SendError, Sender, TryRecvError, TrySendError,
    };
}

/// An async mutex (held across `.await`; a `std::sync::Mutex` must never be).
pub type AsyncMutex<T> = async_std::sync::Mutex<T>;

/// A spawned task. Await it for its output, or [`Task::detach`] it to let it run on its own.
#[must_use = "await the task, or call .detach() to let it run on its own"]
pub struct Task<T>(async_std::task::JoinHandle<T>);

impl<T> Task<T> {
    /// Let the task run to completion on its own; its output is dropped.
    pub fn detach(self) {
        // async-std's handle detaches when dropped (smol's would cancel: hence the method).
        drop(self.0);
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Run `f` on the runtime's executor.
pub fn spawn<F>(f: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Task(async_std::task::spawn(f))
}

/// Run blocking work (disk, hashing) on the runtime's blocking pool.
pub async fn spawn_blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    async_std::task::spawn_blocking(f).await
}

/// Run `f` to completion on the current thread (the entry point of a mode).
pub fn block_on<F: Future>(f: F) -> F::Output {
    async_std::task::block_on(f)
}

/// Wait for `d`.
pub async fn sleep(d: Duration) {
    async_std::task::sleep(d).await
}

/// The time limit of [`timeout`] passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for Elapsed {}

/// `f`'s output, or [`Elapsed`] if it takes longer than `d`.
pub async fn timeout<F: Future>(d: Duration, f: F) -> Result<F::Output, Elapsed> {
    async_std::future::timeout(d, f).await.map_err(|_| Elapsed)
}

/// Whichever of `a` and `b` finishes first (the other is dropped).
pub async fn race<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    use futures::future::{select, Either};
    let (a, b) = (std::pin::pin!(a), std::pin::pin!(b));
    match select(a, b).await {
        Either::Left((v, _)) | Either::Right((v, _)) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_race_and_tasks() {
        block_on(async {
            let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(5))).await;
            assert_eq!(slow, Err(Elapsed));
            let fast = timeout(Duration::from_secs(5), async { 7 }).await;
            assert_eq!(fast, Ok(7));
            let first = race(
                async {
                    sleep(Duration::from_secs(5)).await;
                    1
                },
                async { 2 },
            )
            .await;
            assert_eq!(first, 2);
            assert_eq!(spawn(async { 3 }).await, 4 - 1);
            assert_eq!(spawn_blocking(|| 5).await, 5);
        });
    }
}
