//! Verified tokens, remembered so a client reusing its JWT is not verified again on every
//! request.
//!
//! Keyed by the SHA-256 of the token (the token itself is never stored), bounded in entries
//! and in age, and holding only tokens that verified. An entry is used only while
//! - `now <= exp + leeway` (never longer than the token itself would verify), and
//! - the key that verified it is still in use: fixed keys (a secret, a PEM file) cannot
//!   change while the process runs; a JWKS key is stamped with the generation of its key set,
//!   and every refetch (or lapse) of the set makes a new one, so a rotation that removed the
//!   key also ends the entries it verified (they are verified again, and refused).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::jwt::Claims;

/// Entries kept at most.
pub const CAPACITY: u64 = 10_000;

/// Longest an entry is kept, however far its `exp` is.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// Which key verified a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStamp {
    /// Index of the issuer.
    pub issuer: usize,
    /// The JWKS key-set generation; `None` for a fixed key.
    pub generation: Option<u64>,
}

#[derive(Clone)]
struct Entry {
    claims: Claims,
    /// `exp + leeway`: the last second the token verifies.
    valid_until: i64,
    stamp: KeyStamp,
}

/// The cache.
pub struct TokenCache {
    entries: moka::sync::Cache<[u8; 32], Entry>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache({} entries)", self.entries.entry_count())
    }
}

/// The cache key of `token`.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    /// A cache of at most `capacity` entries, each kept at most `max_age`.
    pub fn new(capacity: u64, max_age: Duration) -> TokenCache {
        TokenCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_age)
                .build(),
        }
    }

    /// The claims of a token verified earlier, with the stamp of its key, when it still
    /// verifies at `now` by time; the caller checks the stamp is current.
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<(Claims, KeyStamp)> {
        let e = self.entries.get(hash)?;
        if now > e.valid_until {
            self.entries.invalidate(hash);
            return None;
        }
        Some((e.claims, e.stamp))
    }

    /// Remembers a token that verified at `now`, until `exp + leeway`.
    pub fn insert(&self, hash: [u8; 32], claims: &Claims, leeway: u64, stamp: KeyStamp) {
        let valid_until = claims.exp.saturating_add(leeway as i64);
        self.entries.insert(
            hash,
            Entry {
                claims: claims.clone(),
                valid_until,
                stamp,
            },
        );
    }

    /// Forgets one token.
    pub fn remove(&self, hash: &[u8; 32]) {
        self.entries.invalidate(hash);
    }

    /// Entries held (after pending evictions).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, exp: i64) -> Claims {
        Claims {
            sub: sub.into(),
            exp,
            projects: None,
            scope: None,
        }
    }

    const FIXED: KeyStamp = KeyStamp {
        issuer: 0,
        generation: None,
    };

    #[test]
    fn an_entry_lives_until_exp_plus_leeway_and_not_a_second_longer() {
        let c = TokenCache::new(10, MAX_AGE);
        let h = token_hash("a.b.c");
        c.insert(h, &claims("alice", 1_000), 30, FIXED);
        assert_eq!(c.get(&h, 1_030).unwrap().0.sub, "alice");
        assert!(c.get(&h, 1_031).is_none());
        // ... and it is gone, not just hidden.
        assert!(c.get(&h, 1_000).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = TokenCache::new(50, MAX_AGE);
        for i in 0..500 {
            c.insert(
                token_hash(&format!("token-{i}")),
                &claims("u", i64::MAX / 2),
                0,
                FIXED,
            );
        }
        assert!(c.len() <= 50, "{} entries", c.len());
    }

    #[test]
    fn entries_are_keyed_by_the_whole_token() {
        let c = TokenCache::new(10, MAX_AGE);
        c.insert(token_hash("h.p.sig1"), &claims("alice", 2_000), 0, FIXED);
        assert!(c.get(&token_hash("h.p.sig2"), 1_000).is_none());
        assert!(c.get(&token_hash("h.p.sig1"), 1_000).is_some());
        assert_ne!(token_hash("x"), token_hash("y"));
    }
}
