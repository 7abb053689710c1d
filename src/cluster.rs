//! State shared by replicas, in Redis, when `[redis] url` is set (docs/contract.md §4): the
//! cluster-wide upstream budget ([`crate::providers::budget`]), idempotent answers
//! ([`crate::upload::idempotency`]) and the Tencent credential pool
//! ([`crate::providers::tencent`]). Each feature keeps its own keys and scripts next to its
//! logic; this module owns the connection and what happens when Redis fails.
//!
//! Redis is never on the critical path: every command is bounded by
//! `redis.command_timeout_ms`; a failure makes this replica skip Redis for
//! [`SKIP_AFTER_FAILURE`] (callers use their per-replica fallback at once instead of each
//! paying the timeout), counts `stsgate_redis_unavailable_total{op}`, and logs one warning
//! per [`WARN_EVERY`] at most. Keys are `{key_prefix}:{feature}:...`.
//!
//! Each replica also writes a heartbeat (`{key_prefix}:replicas`, every
//! [`HEARTBEAT_EVERY`]) so replicas know how many share the budget (read back by every
//! heartbeat and every budget admission); the fallback budget while Redis is away is the
//! limit divided by that count.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::config::RedisConfig;
use crate::metrics::Metrics;

/// How long a replica uses its fallbacks after a Redis failure before trying Redis again.
pub const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// At most one warning about Redis failures per this interval (the rest are debug).
pub const WARN_EVERY: Duration = Duration::from_secs(60);
/// How often a replica announces itself.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A replica not heard from for this long no longer counts.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// Why a Redis operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// Skipped: Redis failed less than [`SKIP_AFTER_FAILURE`] ago.
    #[error("Redis skipped after a recent failure")]
    Skipped,
    /// No answer within `redis.command_timeout_ms`.
    #[error("Redis did not answer within {0} ms")]
    Timeout(u64),
    /// Redis (or the connection) answered with an error.
    #[error("Redis error: {0}")]
    Redis(String),
}

/// The Redis connection shared by the features; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    replica_id: String,
    epoch: Instant,
    /// Milliseconds since `epoch` until which Redis is skipped.
    skip_until_ms: AtomicU64,
    /// Milliseconds since `epoch` of the last warning; `u64::MAX` = never.
    last_warn_ms: AtomicU64,
    failing: AtomicBool,
    replicas: AtomicU32,
    metrics: Metrics,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("prefix", &self.inner.prefix)
            .field("replica_id", &self.inner.replica_id)
            .finish_non_exhaustive()
    }
}

/// Announces a replica and answers how many are alive. Scores are expiry times (ms, Redis
/// clock). KEYS[1] the set; ARGV[1] replica id; ARGV[2] TTL in ms.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
",
    )
});

impl Cluster {
    /// Sets up the connection when `cfg.url` is set (`None` otherwise). Never fails because
    /// Redis is down: the connection is made lazily and retried; a Redis that does not
    /// answer at start is logged and the fallbacks apply until it does.
    pub async fn connect(cfg: &RedisConfig, metrics: Metrics) -> Result<Option<Cluster>, String> {
        if !cfg.enabled() {
            return Ok(None);
        }
        // The URL may hold a password: never echo it or the parser's message.
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|_| "redis.url is not a valid Redis URL".to_string())?;
        let timeout = Duration::from_millis(cfg.command_timeout_ms);
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
            .set_response_timeout(Some(timeout))
            // One attempt per (re)connection; the skip window paces the next one.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| format!("redis: {:?}", e.kind()))?;
        let cluster = Cluster {
            inner: Arc::new(Inner {
                conn,
                prefix: cfg.key_prefix.clone(),
                timeout,
                replica_id: uuid::Uuid::new_v4().simple().to_string(),
                epoch: Instant::now(),
                skip_until_ms: AtomicU64::new(0),
                last_warn_ms: AtomicU64::new(u64::MAX),
                failing: AtomicBool::new(false),
                replicas: AtomicU32::new(1),
                metrics,
            }),
        };
        match cluster.heartbeat().await {
            Ok(n) => tracing::info!(
                replicas = n,
                "Redis connected: budget, pool and idempotent answers are shared"
            ),
            // `run` has logged the warning.
            Err(_) => tracing::info!(
                "Redis unavailable at start: per-replica fallbacks apply until it answers"
            ),
        }
        tokio::spawn(heartbeats(Arc::downgrade(&cluster.inner)));
        Ok(Some(cluster))
    }

    /// `{key_prefix}:{parts joined by ':'}`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.inner.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// This replica's random id (unique per process start).
    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }

    /// Replicas alive at the last successful heartbeat (at least 1).
    pub fn replicas(&self) -> u32 {
        self.inner.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Records a count of live replicas read from Redis (ignored when below 1).
    pub fn note_replicas(&self, n: i64) {
        if n >= 1 {
            self.inner
                .replicas
                .store(n.min(u32::MAX as i64) as u32, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Runs one Redis operation for feature `op` (a metrics label): skipped while Redis
    /// recently failed, bounded by the command timeout; a failure is counted, logged (at
    /// most one warning per [`WARN_EVERY`]) and starts the skip window.
    pub async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.now_ms() < self.inner.skip_until_ms.load(Ordering::Relaxed) {
            self.inner.metrics.redis_unavailable(op);
            return Err(RedisError::Skipped);
        }
        self.attempt(op, f).await
    }

    async fn attempt<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let outcome =
            match tokio::time::timeout(self.inner.timeout, f(self.inner.conn.clone())).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(RedisError::Redis(describe(&e))),
                Err(_) => Err(RedisError::Timeout(self.inner.timeout.as_millis() as u64)),
            };
        match outcome {
            Ok(v) => {
                if self.inner.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(op, "Redis answers again: shared state in use");
                }
                Ok(v)
            }
            Err(e) => {
                self.failed(op, &e);
                Err(e)
            }
        }
    }

    fn failed(&self, op: &'static str, e: &RedisError) {
        let inner = &self.inner;
        let now = self.now_ms();
        inner.skip_until_ms.store(
            now + SKIP_AFTER_FAILURE.as_millis() as u64,
            Ordering::Relaxed,
        );
        inner.failing.store(true, Ordering::Relaxed);
        inner.metrics.redis_unavailable(op);
        let last = inner.last_warn_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && inner
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(op, error = %e, "Redis unavailable: using per-replica fallbacks (budget limit / replicas, local pool, local idempotent answers); this warning repeats at most once a minute");
        } else {
            tracing::debug!(op, error = %e, "Redis unavailable");
        }
    }

    /// `PING`, ignoring the skip window (for `/readyz`, which reports the truth).
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.attempt("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    /// Announces this replica; returns (and remembers) how many are alive.
    async fn heartbeat(&self) -> Result<u32, RedisError> {
        let key = self.key(&["replicas"]);
        let id = self.inner.replica_id.clone();
        let ttl = HEARTBEAT_TTL.as_millis() as u64;
        let n: u32 = self
            .run("heartbeat", |mut c| async move {
                HEARTBEAT
                    .key(key)
                    .arg(id)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        self.note_replicas(i64::from(n));
        Ok(n)
    }
}

/// Heartbeats until the `Cluster` is dropped.
async fn heartbeats(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let _ = Cluster { inner }.heartbeat().await;
    }
}

/// A Redis error as text for logs: its kind and Redis's own message (which names no
/// password or URL).
fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else {
        e.to_string()
    }
}

/// The per-replica share of a cluster-wide `limit` while Redis is away: `limit / replicas`,
/// at least 1.
pub fn fallback_share(limit: usize, replicas: u32) -> usize {
    (limit / replicas.max(1) as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shares() {
        assert_eq!(fallback_share(90, 1), 90);
        assert_eq!(fallback_share(90, 2), 45);
        assert_eq!(fallback_share(90, 4), 22);
        assert_eq!(fallback_share(1, 3), 1);
        assert_eq!(fallback_share(5, 0), 5);
    }

    proptest! {
        #[test]
        fn shares_never_add_up_to_more_than_the_limit(limit in 1usize..10_000, n in 1u32..64) {
            let share = fallback_share(limit, n);
            prop_assert!(share >= 1);
            if limit >= n as usize {
                prop_assert!(share * n as usize <= limit);
            }
        }
    }

    #[tokio::test]
    async fn no_url_is_no_redis_and_a_dead_one_does_not_stop_the_start() {
        let cfg = RedisConfig::default();
        assert!(Cluster::connect(&cfg, Metrics::new())
            .await
            .unwrap()
            .is_none());
        // A port nothing listens on: connect succeeds (lazily), operations fail fast and
        // are then skipped.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = RedisConfig {
            url: format!("redis://:pw@127.0.0.1:{port}"),
            ..RedisConfig::default()
        };
        let metrics = Metrics::new();
        let s = Cluster::connect(&cfg, metrics.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.replicas(), 1);
        assert!(s.key(&["budget", "tencent"]).starts_with("stsgate:budget:"));
        let e = s
            .run("test", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .unwrap_err();
        assert_eq!(e, RedisError::Skipped, "the start's heartbeat failed first");
        assert!(s.ping().await.is_err());
        assert!(metrics
            .render()
            .contains("stsgate_redis_unavailable_total{op=\"heartbeat\"} 1"));
    }
}
