//! The per-user request limit (`server.per_user_rps`, 0 = off): a GCRA limiter (governor)
//! keyed by the JWT `sub`, checked right after authentication, so every authenticated
//! request counts — issuing, reading an object, a user's callback. Over the limit is
//! 429/42901 with `Retry-After`. The burst equals the rate: a user may send `per_user_rps`
//! requests at once, then one every `1/per_user_rps` seconds.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Forget users idle for a full period after this many checks (bounds memory).
const PRUNE_EVERY: u64 = 4096;

/// Requests per second per user.
pub struct UserLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl std::fmt::Debug for UserLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserLimiter({} users)", self.limiter.len())
    }
}

impl UserLimiter {
    /// `None` when `rps` is 0 (no limit).
    pub fn new(rps: u32) -> Option<Self> {
        let rps = NonZeroU32::new(rps)?;
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rps)),
            checks: AtomicU64::new(0),
        })
    }

    /// Counts one request of `sub`; over the limit is 42901 with the wait until the next
    /// request would pass (whole seconds, at least 1).
    pub fn check(&self, sub: &str) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&sub.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                ApiError::TooManyRequests {
                    retry_after: Duration::from_secs(wait.as_secs() + 1),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off() {
        assert!(UserLimiter::new(0).is_none());
    }

    #[test]
    fn each_user_has_its_own_burst() {
        let l = UserLimiter::new(1).unwrap();
        // A burst of 1 passes; the next cannot (its slot is a second away, far longer than
        // these calls take).
        assert!(l.check("alice").is_ok());
        let e = l.check("alice").unwrap_err();
        assert_eq!(e.status_and_code().1, 42901);
        match e {
            ApiError::TooManyRequests { retry_after } => assert_eq!(retry_after.as_secs(), 1),
            other => panic!("{other:?}"),
        }
        assert!(l.check("bob").is_ok(), "bob is not limited by alice");
    }
}
