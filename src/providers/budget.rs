//! The upstream call budget: a sliding-window log per provider, enforced when a call is
//! sent — never more than `limit` calls inside any window of [`WINDOW`] as the cloud sees
//! them. Not a token bucket, whose burst could double the rate across a window boundary.
//! Retries and pool refills take permits like everything else.
//!
//! Why completion times: the cloud sees a call arrive at some moment between our send
//! and its completion, and those moments are unknown. So a call occupies the window from
//! its send until [`WINDOW`] after it completes: a new send is admitted only while fewer
//! than `limit` calls are in flight or completed within the last window. If the cloud
//! ever saw `limit + 1` arrivals inside one window `[a, a+W)`, the last of them to be sent
//! (at `s ≤ a+W`) would have found every other one in flight or completed after
//! `a > s-W` — `limit` of them — and waited. So the bound holds whatever the latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Log {
    in_flight: usize,
    /// Completion times, oldest first.
    done: VecDeque<Instant>,
}

/// A sliding-window log of calls.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    log: Mutex<Log>,
    freed: Notify,
}

/// One admitted call; dropping it records the call's completion.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut log = self.budget.log.lock().expect("budget lock");
        log.in_flight -= 1;
        log.done.push_back(Instant::now());
        drop(log);
        self.budget.freed.notify_waiters();
    }
}

/// When room may open: at an instant, or when an in-flight call completes.
enum Wait {
    Until(Instant),
    Completion,
}

impl Budget {
    /// A budget of `limit` calls per window.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Budget {
            limit: limit.max(1) as usize,
            log: Mutex::new(Log::default()),
            freed: Notify::new(),
        })
    }

    fn try_at(self: &Arc<Self>, now: Instant) -> Result<Permit, Wait> {
        let mut log = self.log.lock().expect("budget lock");
        while log
            .done
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            log.done.pop_front();
        }
        if log.in_flight + log.done.len() < self.limit {
            log.in_flight += 1;
            return Ok(Permit {
                budget: Arc::clone(self),
            });
        }
        match log.done.front() {
            Some(oldest) => Err(Wait::Until(*oldest + WINDOW)),
            None => Err(Wait::Completion),
        }
    }

    /// A permit if one is available now, without waiting (pool refills use this, so
    /// they only ever spend spare budget).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.try_at(Instant::now()).ok()
    }

    /// Waits for a permit until `deadline`. `Err(retry_after)` when the deadline comes
    /// first.
    pub async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(Permit, Duration), Duration> {
        let start = Instant::now();
        loop {
            // Register for completions before checking, so none is missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = Instant::now();
            let wait = match self.try_at(now) {
                Ok(p) => return Ok((p, now - start)),
                Err(w) => w,
            };
            let until = match wait {
                Wait::Until(t) if t > deadline => {
                    return Err(t.saturating_duration_since(now).max(Duration::from_secs(1)))
                }
                Wait::Until(t) => t,
                Wait::Completion => deadline,
            };
            tokio::select! {
                _ = &mut freed => {}
                _ = tokio::time::sleep_until(until) => {
                    if matches!(wait, Wait::Completion) {
                        return Err(WINDOW);
                    }
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
        let b = Budget::new(5);
        let far = Instant::now() + Duration::from_secs(60);
        let mut spans = Vec::new();
        for i in 0..23u64 {
            let (p, _) = b.acquire(far).await.unwrap();
            let sent = Instant::now();
            // Calls of varying latency.
            tokio::time::sleep(Duration::from_millis(37 * (i % 4))).await;
            drop(p);
            spans.push((sent, Instant::now()));
        }
        // Any arrival time within [sent, done] must respect the bound; take the worst
        // case: every call arrives at its completion.
        for (i, (_, done_i)) in spans.iter().enumerate() {
            let inside = spans[i..]
                .iter()
                .filter(|(_, d)| d.duration_since(*done_i) < WINDOW)
                .count();
            assert!(inside <= 5, "{inside} completions inside one window");
        }
        assert!(spans[22].0.duration_since(spans[0].0) >= WINDOW * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_calls_hold_their_place() {
        let b = Budget::new(2);
        let far = Instant::now() + Duration::from_secs(60);
        let (p1, _) = b.acquire(far).await.unwrap();
        let (p2, _) = b.acquire(far).await.unwrap();
        assert!(b.try_acquire().is_none());
        // Still nothing two windows later while both are in flight.
        tokio::time::sleep(WINDOW * 2).await;
        assert!(b.try_acquire().is_none());
        drop(p1);
        // A completion frees the place only one window later.
        assert!(b.try_acquire().is_none());
        tokio::time::sleep(WINDOW).await;
        assert!(b.try_acquire().is_some());
        drop(p2);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_before_room_gives_retry_after() {
        let b = Budget::new(1);
        let soon = Instant::now() + Duration::from_millis(100);
        let (p, _) = b.acquire(soon).await.unwrap();
        drop(p);
        let err = b.acquire(soon).await.unwrap_err();
        assert!(err >= Duration::from_secs(1));
        assert!(b.try_acquire().is_none());
    }
}
