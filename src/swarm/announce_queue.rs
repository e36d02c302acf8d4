//! The announces of every torrent of the process, from one task: a heap of deadlines (see
//! [`Deadlines`]), at most [`IN_FLIGHT`] announces under way at once, and each torrent's next
//! announce after its tracker's interval with jitter (see [`Announcer::turn`]), so that torrents
//! started together spread over the interval instead of storming the tracker together.
//!
//! On the way out, [`stop_all`] sends every torrent's `stopped` (after a `completed` still
//! owed), [`IN_FLIGHT`] at a time, all within [`STOP_TIME`].

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::announce::Announcer;
use super::schedule::{Deadlines, Scheduled, Slot};
use crate::rt::channel::{bounded, Receiver, Sender};

/// Most announces under way at once, across all torrents and trackers.
pub const IN_FLIGHT: usize = 32;
/// The longest [`stop_all`] waits for every `stopped` together.
pub const STOP_TIME: Duration = Duration::from_secs(10);

impl Scheduled for Announcer {
    fn slot(&self) -> &Slot {
        &self.slot
    }
}

/// The announce schedule of all torrents.
pub struct AnnounceQueue {
    deadlines: Deadlines<Announcer>,
    /// Announcers whose download is incomplete and owes a `completed`: looked at when a
    /// torrent completes (each such torrent wakes the queue's task), to announce it at once.
    owing: Mutex<Vec<Weak<Announcer>>>,
    /// [`IN_FLIGHT`] tokens: an announce takes one for its duration.
    tokens: (Sender<()>, Receiver<()>),
}

impl Default for AnnounceQueue {
    fn default() -> Self {
        let tokens = bounded(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            let _ = tokens.0.try_send(());
        }
        AnnounceQueue {
            deadlines: Deadlines::default(),
            owing: Mutex::new(Vec::new()),
            tokens,
        }
    }
}

impl AnnounceQueue {
    /// Start announcing `a` (its `started` goes out as soon as a slot is free).
    pub fn add(&self, a: &Arc<Announcer>) {
        if let Some(t) = a.torrent().filter(|t| !t.is_complete()) {
            t.watch(self.deadlines.waker());
            self.owing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::downgrade(a));
        }
        self.deadlines.schedule(a, Instant::now());
    }

    /// Announcers now due a `completed`, announced at once (those gone are forgotten).
    fn completions(&self, now: Instant) {
        let mut owing = self.owing.lock().unwrap_or_else(|e| e.into_inner());
        owing.retain(|w| {
            let Some(a) = w.upgrade() else {
                return false;
            };
            if a.owes_completed() {
                // Under way: its turn ends by announcing again at once (see `turn`).
                self.deadlines.schedule(&a, now);
                return false;
            }
            true
        });
    }

    /// Announces waiting for their time, for tests and the bench.
    pub fn scheduled(&self) -> usize {
        self.deadlines.scheduled()
    }
}

/// Serve `queue` until the process ends.
pub async fn run(queue: Arc<AnnounceQueue>) {
    loop {
        let now = Instant::now();
        queue.completions(now);
        let (due, next) = queue.deadlines.take_due(now);
        for a in due {
            // Wait for a free slot: at most IN_FLIGHT announces under way.
            if queue.tokens.1.recv().await.is_err() {
                return;
            }
            let q = Arc::clone(&queue);
            crate::rt::spawn(async move {
                let wait = a.turn().await;
                let _ = q.tokens.0.try_send(());
                if let Some(wait) = wait {
                    q.deadlines.schedule(&a, Instant::now() + wait);
                }
            })
            .detach();
        }
        // Due times passed while waiting for slots are served at once.
        let next = match next {
            Some(n) if n <= Instant::now() => Some(Instant::now()),
            n => n,
        };
        queue.deadlines.wait(next).await;
    }
}

/// Tell the trackers every torrent of `announcers` leaves: nothing else is announced after
/// this; at most [`IN_FLIGHT`] `stopped` under way at once, all within [`STOP_TIME`].
pub async fn stop_all(announcers: &[Arc<Announcer>]) {
    for a in announcers {
        a.stop_announcing();
    }
    let all = futures::stream::iter(announcers).for_each_concurrent(IN_FLIGHT, |a| a.stopped());
    let _ = crate::rt::timeout(STOP_TIME, all).await;
}
