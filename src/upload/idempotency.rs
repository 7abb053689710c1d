//! `Idempotency-Key` (PRODUCT §1.3): (sub, key, parameters hash, objectId) is recorded in
//! the database; the answer is kept in memory (moka) until it has less than
//! `min_remaining_secs` left. A retry with the same parameters gets the same answer; a
//! concurrent duplicate waits for the first (moka coalesces the initialisation); other
//! parameters are 40901; an answer no longer held (expired, restarted, other replica) is
//! 40902 — never a second allocation.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use moka::future::Cache;
use moka::Expiry;

use crate::error::ApiError;
use crate::upload::answer::StsAnswer;

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// Parameters hash it was issued for.
    pub params_hash: String,
    /// The answer.
    pub answer: StsAnswer,
    /// Unix seconds after which it must not be replayed.
    pub replay_until: i64,
}

struct UntilReplayEnds;

impl Expiry<(String, String), Arc<Remembered>> for UntilReplayEnds {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        value: &Arc<Remembered>,
        _created_at: StdInstant,
    ) -> Option<Duration> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Some(Duration::from_secs(
            value.replay_until.saturating_sub(now).max(0) as u64,
        ))
    }
}

/// The in-memory answers.
#[derive(Clone)]
pub struct IdemCache {
    cache: Cache<(String, String), Arc<Remembered>>,
}

impl std::fmt::Debug for IdemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdemCache({} entries)", self.cache.entry_count())
    }
}

impl Default for IdemCache {
    fn default() -> Self {
        Self::new()
    }
}

impl IdemCache {
    /// An empty cache.
    pub fn new() -> Self {
        IdemCache {
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(UntilReplayEnds)
                .build(),
        }
    }

    /// Returns the remembered answer for (sub, key), running `first` when this process
    /// holds none; concurrent callers for the same (sub, key) wait for one `first`.
    pub async fn get_or_run<F>(
        &self,
        sub: &str,
        key: &str,
        first: F,
    ) -> Result<Arc<Remembered>, ApiError>
    where
        F: std::future::Future<Output = Result<Remembered, ApiError>>,
    {
        let k = (sub.to_string(), key.to_string());
        self.cache
            .try_get_with(k, async move { first.await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())
    }

    /// Forgets (sub, key).
    pub async fn forget(&self, sub: &str, key: &str) {
        self.cache
            .invalidate(&(sub.to_string(), key.to_string()))
            .await;
    }
}

/// Checks an `Idempotency-Key` header value: 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_rule() {
        assert!(valid_key("abc-1.2_3"));
        assert!(!valid_key(""));
        assert!(!valid_key("a b"));
        assert!(!valid_key(&"a".repeat(65)));
    }

    proptest! {
        #[test]
        fn valid_keys_match_the_pattern(k in "[A-Za-z0-9_.-]{1,64}") {
            prop_assert!(valid_key(&k));
        }
        #[test]
        fn keys_with_other_bytes_fail(k in "[A-Za-z0-9]{0,10}[^A-Za-z0-9_.-][A-Za-z0-9]{0,10}") {
            prop_assert!(!valid_key(&k));
        }
    }
}
