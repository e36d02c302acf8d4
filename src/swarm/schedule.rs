//! One timer for every torrent of the process: a min-heap of deadlines and one task that sleeps
//! until the earliest. A torrent is in the heap only while it has work: connected peers (ticked
//! every second: choking, keep-alives, request timeouts) or peers to call later (woken when the
//! first is due). An idle torrent, seeding with nobody connected, is not in the heap and costs
//! nothing; a new connection or a tracker answer puts it back.
//!
//! Before, each torrent ran its own task waking every second, so that 10,000 idle torrents kept
//! most of a core busy.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::rt::channel::{bounded, Receiver, Sender};

use super::torrent::Torrent;

/// How often a torrent with connected peers is ticked.
pub const TICK: Duration = Duration::from_secs(1);
/// Longest sleep of the timer task (it also wakes when an earlier deadline is added).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// A [`Slot`]'s value while its item is not in the heap.
const UNSCHEDULED: u64 = u64::MAX;

/// An item's place in a [`Deadlines`] heap: its next deadline (in ms since the heap's start),
/// or [`UNSCHEDULED`]. Heap entries whose deadline differs are stale and skipped.
#[derive(Debug)]
pub struct Slot(AtomicU64);

impl Default for Slot {
    fn default() -> Self {
        Slot(AtomicU64::new(UNSCHEDULED))
    }
}

/// Something kept in a [`Deadlines`] heap: it holds its own [`Slot`].
pub trait Scheduled {
    /// Its deadline in the heap.
    fn slot(&self) -> &Slot;
}

struct Entry<T> {
    at: u64,
    item: Weak<T>,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// A min-heap of deadlines, each item in it at most once in force (its earliest deadline),
/// and the wake-up of the one task that serves it. Items are held weakly: one dropped
/// elsewhere simply falls out.
pub struct Deadlines<T> {
    start: Instant,
    heap: Mutex<BinaryHeap<Reverse<Entry<T>>>>,
    wake: Sender<()>,
    woken: Receiver<()>,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        let (wake, woken) = bounded(1);
        Deadlines {
            start: Instant::now(),
            heap: Mutex::new(BinaryHeap::new()),
            wake,
            woken,
        }
    }
}

impl<T: Scheduled> Deadlines<T> {
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_millis() as u64
    }

    fn heap(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<Entry<T>>>> {
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve `item` at `at` at the latest (an earlier deadline already set is kept).
    pub fn schedule(&self, item: &Arc<T>, at: Instant) {
        let at = self.ms(at);
        let slot = &item.slot().0;
        if slot.fetch_min(at, Ordering::AcqRel) <= at {
            return;
        }
        let mut heap = self.heap();
        let earliest = heap.peek().is_none_or(|Reverse(e)| at < e.at);
        heap.push(Reverse(Entry {
            at,
            item: Arc::downgrade(item),
        }));
        drop(heap);
        if earliest {
            self.wake();
        }
    }

    /// Wake the serving task (a full channel has a wake-up pending already).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// A sender that wakes the serving task (for [`Torrent::watch`]).
    pub fn waker(&self) -> Sender<()> {
        self.wake.clone()
    }

    /// Items in the heap (stale entries left out), for tests and the bench.
    pub fn scheduled(&self) -> usize {
        self.heap()
            .iter()
            .filter(|Reverse(e)| {
                e.item
                    .upgrade()
                    .is_some_and(|t| t.slot().0.load(Ordering::Acquire) == e.at)
            })
            .count()
    }

    /// The items due at `now`, taken off the heap; and when the next one is due.
    pub fn take_due(&self, now: Instant) -> (Vec<Arc<T>>, Option<Instant>) {
        let now_ms = self.ms(now);
        let mut heap = self.heap();
        let mut due = Vec::new();
        while let Some(Reverse(e)) = heap.peek() {
            if e.at > now_ms {
                break;
            }
            let Some(Reverse(e)) = heap.pop() else { break };
            let Some(t) = e.item.upgrade() else {
                continue;
            };
            // Only the entry of the deadline in force; others are stale.
            if t.slot()
                .0
                .compare_exchange(e.at, UNSCHEDULED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                due.push(t);
            }
        }
        let next = heap
            .peek()
            .map(|Reverse(e)| self.start + Duration::from_millis(e.at));
        (due, next)
    }

    /// Sleep until `next` (at most [`MAX_SLEEP`]) or a wake-up.
    pub async fn wait(&self, next: Option<Instant>) {
        let sleep = next.map_or(MAX_SLEEP, |n| n.saturating_duration_since(Instant::now()));
        let _ = crate::rt::timeout(sleep.min(MAX_SLEEP), self.woken.recv()).await;
    }
}

impl Scheduled for Torrent {
    fn slot(&self) -> &Slot {
        self.tick_slot()
    }
}

/// The deadlines of the torrents with work.
pub type Ticker = Deadlines<Torrent>;

/// Serve `ticker` until the process ends: tick each torrent that is due, call its peers that
/// are due, and put it back in the heap if it still has work.
pub async fn run(ticker: Arc<Ticker>) {
    loop {
        let now = Instant::now();
        let (due, next) = ticker.take_due(now);
        for t in due {
            // A paused torrent leaves the heap (resuming puts it back); a removed one for good.
            if t.is_paused() || t.is_removed() {
                continue;
            }
            t.tick();
            t.extensions.pex_round(&t, now);
            super::session::dial_due(&t);
            if let Some(at) = t.next_work(now) {
                ticker.schedule(&t, at.max(now + TICK));
            }
        }
        ticker.wait(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::{EngineConfig, Shared};

    fn torrent(dir: &std::path::Path, shared: &Arc<Shared>) -> Arc<Torrent> {
        crate::swarm::torrent::one_piece_for_tests(dir, Arc::clone(shared))
    }

    #[test]
    fn only_torrents_with_work_are_scheduled_and_the_earliest_deadline_wins() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new(&EngineConfig::default());
        let ticker = &shared.ticker;
        let (a, b) = (torrent(dir.path(), &shared), torrent(dir.path(), &shared));
        let now = Instant::now();
        // Idle: nothing connected, nobody to call.
        assert_eq!(a.next_work(now), None);
        assert_eq!(ticker.scheduled(), 0);
        ticker.schedule(&a, now + Duration::from_secs(5));
        ticker.schedule(&a, now + Duration::from_secs(2)); // earlier: replaces
        ticker.schedule(&a, now + Duration::from_secs(9)); // later: ignored
        ticker.schedule(&b, now + Duration::from_secs(3));
        assert_eq!(ticker.scheduled(), 2);
        let (due, next) = ticker.take_due(now + Duration::from_millis(2500));
        assert_eq!(due.len(), 1);
        assert!(Arc::ptr_eq(&due[0], &a), "a is due first, once");
        assert!(next.is_some());
        let (due, next) = ticker.take_due(now + Duration::from_secs(10));
        assert_eq!(due.len(), 1);
        assert!(Arc::ptr_eq(&due[0], &b));
        assert_eq!(next, None, "a's stale entries are gone");
        // A peer to call makes it have work at the peer's time.
        let addr = "127.0.0.1:9".parse().unwrap();
        b.dialer
            .lock()
            .unwrap()
            .add(addr, crate::swarm::dialer::Source::Manual, now);
        assert_eq!(b.next_work(now), Some(now));
        // A dropped torrent's entry is skipped.
        ticker.schedule(&b, now);
        drop(due);
        drop(b);
        assert_eq!(ticker.take_due(now + Duration::from_secs(1)).0.len(), 0);
    }
}
