//! A rate limit shared by the connections it is given to (the upload limit: every connection
//! of a process; a download limit: the torrents it was set for): a token bucket that makes
//! senders, or readers, wait for their share.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sender may run ahead of its limit by this much before it sleeps off the whole debt, so
/// that it sends in bursts of `rate x QUANTUM` bytes rather than one block per sleep.
pub const QUANTUM: Duration = Duration::from_millis(10);

/// A token bucket of `rate` bytes per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limit of `rate` bytes per second (at least 1).
    pub fn new(rate: u64) -> RateLimiter {
        RateLimiter {
            rate: rate.max(1),
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    /// Take `n` bytes from the bucket; returns how long the caller must wait first.
    pub fn take(&self, n: u64) -> Duration {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, at) = *st;
        // Allow a burst of a quarter second.
        let cap = self.rate as f64 / 4.0;
        let tokens =
            (tokens + now.duration_since(at).as_secs_f64() * self.rate as f64).min(cap) - n as f64;
        *st = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_with_debt() {
        let l = RateLimiter::new(1000);
        assert!(l.take(1000) >= Duration::from_millis(700));
        assert!(l.take(1000) >= Duration::from_millis(1700));
    }
}
