//! The upstream call budget: a sliding-window log per provider, enforced when a call is
//! sent. At most `limit` sends in any window of [`WINDOW`] — not a token bucket, whose
//! burst could double the rate across a window boundary. Retries and pool refills count.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The window: one second plus a guard for network jitter between our send and the
/// cloud's arrival clock, so the cloud never sees `limit + 1` inside its own second.
pub const WINDOW: Duration = Duration::from_millis(1050);

/// A sliding-window log of send times.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    log: Mutex<VecDeque<Instant>>,
}

impl Budget {
    /// A budget of `limit` calls per window.
    pub fn new(limit: u32) -> Self {
        Budget {
            limit: limit.max(1) as usize,
            log: Mutex::new(VecDeque::with_capacity(limit as usize)),
        }
    }

    /// Records a send now if the window has room; otherwise the instant room opens.
    fn try_at(&self, now: Instant) -> Result<(), Instant> {
        let mut log = self.log.lock().expect("budget lock");
        while let Some(front) = log.front() {
            if now.duration_since(*front) >= WINDOW {
                log.pop_front();
            } else {
                break;
            }
        }
        if log.len() < self.limit {
            log.push_back(now);
            Ok(())
        } else {
            Err(*log.front().expect("full log") + WINDOW)
        }
    }

    /// Takes one send if available now, without waiting (pool refills use this, so they
    /// only ever spend spare budget).
    pub fn try_acquire(&self) -> bool {
        self.try_at(Instant::now()).is_ok()
    }

    /// Waits for one send until `deadline`. `Err(retry_after)` when the deadline comes first.
    pub async fn acquire(&self, deadline: Instant) -> Result<Duration, Duration> {
        let start = Instant::now();
        loop {
            let now = Instant::now();
            match self.try_at(now) {
                Ok(()) => return Ok(now - start),
                Err(open_at) => {
                    if open_at > deadline {
                        let retry = open_at
                            .saturating_duration_since(now)
                            .max(Duration::from_secs(1));
                        return Err(retry);
                    }
                    tokio::time::sleep_until(open_at).await;
                }
            }
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_in_any_window() {
        let b = std::sync::Arc::new(Budget::new(5));
        let far = Instant::now() + Duration::from_secs(60);
        let mut sends = Vec::new();
        for _ in 0..23 {
            b.acquire(far).await.unwrap();
            sends.push(Instant::now());
        }
        for (i, t) in sends.iter().enumerate() {
            let inside = sends[i..]
                .iter()
                .filter(|s| s.duration_since(*t) < WINDOW)
                .count();
            assert!(inside <= 5, "{inside} sends inside one window");
        }
        // 23 sends at 5 per window need at least 4 full windows.
        assert!(sends[22].duration_since(sends[0]) >= WINDOW * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_before_room_gives_retry_after() {
        let b = Budget::new(1);
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(b.acquire(soon).await.is_ok());
        let err = b.acquire(soon).await.unwrap_err();
        assert!(err >= Duration::from_secs(1));
        assert!(!b.try_acquire());
    }
}
