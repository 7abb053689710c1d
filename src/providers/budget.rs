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
//!
//! **Cluster-wide** (when `[redis] url` is set, see [`crate::cluster`]): the same log, kept
//! in Redis as one sorted set per provider, `{key_prefix}:budget:{provider}`, so the bound
//! holds across all replicas. A member is one call: `i:<id>` while in flight, scored
//! `send + call timeout + WINDOW + slack` (so a crashed replica's call lapses on its own),
//! then `d:<id>` scored `completion + WINDOW`. Admission is one Lua script that reads the
//! clock with Redis's `TIME` (replicas' clocks do not matter), drops members whose score has
//! passed, and adds one when fewer than `limit` remain. A waiting request asks again every
//! [`POLL`] or so, until its deadline. Completion is recorded by a spawned best-effort
//! script.
//!
//! **When Redis fails** (error, timeout, or skipped after a recent failure) a send falls back
//! to this replica's local log with `limit / replicas` ([`crate::cluster::fallback_share`];
//! `replicas` as last counted by the heartbeats). Calls admitted through Redis are recorded
//! in the local log too, so the fallback starts from what this replica really sent. The
//! bound is exact while Redis is up and while it is down; in the one window around a
//! switch, calls admitted under the other regime are not all seen, and the cloud may see
//! more than `limit`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rand::Rng as _;
use redis::Script;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cluster::{fallback_share, Cluster};

/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Longest pause between two admission attempts of a request waiting for cluster budget
/// (each pause is jittered between half and all of it).
pub const POLL: Duration = Duration::from_millis(40);
/// Added to an in-flight call's hold in Redis: covers the time between the script reading
/// the clock and the call's send.
const HOLD_SLACK: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Log {
    in_flight: usize,
    /// Completion times, oldest first.
    done: VecDeque<Instant>,
}

impl Log {
    fn prune(&mut self, now: Instant) {
        while self
            .done
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.done.pop_front();
        }
    }
}

/// The Redis side of a cluster-wide budget.
struct RedisLog {
    cluster: Cluster,
    key: String,
    /// How long an in-flight call counts if its completion is never recorded, in ms.
    hold_ms: u64,
    next_id: AtomicU64,
}

/// A sliding-window log of calls; local, or cluster-wide with a local fallback.
pub struct Budget {
    limit: usize,
    log: Mutex<Log>,
    freed: Notify,
    redis: Option<RedisLog>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit)
            .field("cluster", &self.redis.as_ref().map(|c| &c.key))
            .finish_non_exhaustive()
    }
}

/// One admitted call; dropping it records the call's completion.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
    /// The Redis member id of a call admitted cluster-wide.
    member: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut log = self.budget.log.lock().expect("budget lock");
        log.in_flight -= 1;
        log.done.push_back(Instant::now());
        drop(log);
        self.budget.freed.notify_waiters();
        if let (Some(id), Some(redis)) = (self.member.take(), &self.budget.redis) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let cluster = redis.cluster.clone();
                let key = redis.key.clone();
                rt.spawn(async move {
                    let window = WINDOW.as_millis() as u64;
                    // Best effort: if it fails, the member lapses at its in-flight score.
                    let _ = cluster
                        .run("budget", |mut c| async move {
                            RELEASE
                                .key(key)
                                .arg(id)
                                .arg(window)
                                .invoke_async::<i64>(&mut c)
                                .await
                        })
                        .await;
                });
            }
        }
    }
}

/// Admission. KEYS[1] the provider's set, KEYS[2] the replicas' set; ARGV[1] limit, ARGV[2]
/// call id, ARGV[3] hold of an in-flight call (ms). Returns `{1, 0, 0, replicas}` when
/// admitted, else `{0, ms until the earliest member lapses, 1 if that member is a completed
/// call (so the time is exact), replicas}`. Completed calls always lapse before in-flight
/// ones, so the earliest member is a completed one whenever there is any. `replicas` (the
/// live replicas) keeps the fallback share current between heartbeats.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = tonumber(ARGV[3])
local replicas = redis.call('ZCOUNT', KEYS[2], now, '+inf')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + hold, 'i:' .. ARGV[2])
  if redis.call('PTTL', KEYS[1]) < hold then
    redis.call('PEXPIRE', KEYS[1], hold)
  end
  return {1, 0, 0, replicas}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local done = 0
if string.sub(first[1], 1, 2) == 'd:' then done = 1 end
return {0, tonumber(first[2]) - now, done, replicas}
",
    )
});

/// Completion. KEYS[1] the provider's set; ARGV[1] call id; ARGV[2] the window (ms). An
/// in-flight member becomes a completed one lapsing one window from now; a member that
/// already lapsed stays gone.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZREM', KEYS[1], 'i:' .. ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), 'd:' .. ARGV[1])
end
return 1
",
    )
});

/// The answer of one admission attempt in Redis.
enum Verdict {
    Admitted(String),
    Full { wait: Duration, exact: bool },
}

/// When room may open: at an instant, or when an in-flight call completes.
enum Wait {
    Until(Instant),
    Completion,
}

impl Budget {
    /// A per-replica budget of `limit` calls per window.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Budget {
            limit: limit.max(1) as usize,
            log: Mutex::new(Log::default()),
            freed: Notify::new(),
            redis: None,
        })
    }

    /// A cluster-wide budget of `limit` calls per window for `provider`, shared through
    /// Redis; `call_timeout` bounds one call (an in-flight call whose completion is never
    /// recorded lapses after it, plus the window).
    pub fn clustered(
        limit: u32,
        cluster: Cluster,
        provider: &str,
        call_timeout: Duration,
    ) -> Arc<Self> {
        let hold = call_timeout + WINDOW + HOLD_SLACK;
        Arc::new(Budget {
            limit: limit.max(1) as usize,
            log: Mutex::new(Log::default()),
            freed: Notify::new(),
            redis: Some(RedisLog {
                key: cluster.key(&["budget", provider]),
                hold_ms: hold.as_millis() as u64,
                next_id: AtomicU64::new(0),
                cluster,
            }),
        })
    }

    /// The limit the local log enforces: the whole limit, or this replica's share of it
    /// while Redis is away.
    fn local_limit(&self) -> usize {
        match &self.redis {
            None => self.limit,
            Some(c) => fallback_share(self.limit, c.cluster.replicas()),
        }
    }

    fn try_at(self: &Arc<Self>, now: Instant, limit: usize) -> Result<Permit, Wait> {
        let mut log = self.log.lock().expect("budget lock");
        log.prune(now);
        if log.in_flight + log.done.len() < limit {
            log.in_flight += 1;
            return Ok(Permit {
                budget: Arc::clone(self),
                member: None,
            });
        }
        match log.done.front() {
            Some(oldest) => Err(Wait::Until(*oldest + WINDOW)),
            None => Err(Wait::Completion),
        }
    }

    /// Records a call admitted in Redis in the local log too.
    fn admitted(self: &Arc<Self>, member: String) -> Permit {
        let mut log = self.log.lock().expect("budget lock");
        log.prune(Instant::now());
        log.in_flight += 1;
        Permit {
            budget: Arc::clone(self),
            member: Some(member),
        }
    }

    /// One admission attempt in Redis.
    async fn try_cluster(&self, c: &RedisLog) -> Result<Verdict, crate::cluster::RedisError> {
        let id = format!(
            "{}:{}",
            c.cluster.replica_id(),
            c.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (key, limit, hold, member) = (c.key.clone(), self.limit, c.hold_ms, id.clone());
        let replicas_key = c.cluster.key(&["replicas"]);
        let (ok, wait_ms, exact, replicas): (i64, i64, i64, i64) = c
            .cluster
            .run("budget", |mut conn| async move {
                ACQUIRE
                    .key(key)
                    .key(replicas_key)
                    .arg(limit)
                    .arg(member)
                    .arg(hold)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        c.cluster.note_replicas(replicas);
        Ok(if ok == 1 {
            Verdict::Admitted(id)
        } else {
            Verdict::Full {
                wait: Duration::from_millis(wait_ms.max(1) as u64),
                exact: exact == 1,
            }
        })
    }

    /// A permit if one is available now, without waiting (pool refills use this, so
    /// they only ever spend spare budget).
    pub async fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        if let Some(c) = &self.redis {
            match self.try_cluster(c).await {
                Ok(Verdict::Admitted(id)) => return Some(self.admitted(id)),
                Ok(Verdict::Full { .. }) => return None,
                Err(_) => {}
            }
        }
        self.try_at(Instant::now(), self.local_limit()).ok()
    }

    /// Waits for a permit until `deadline`. `Err(retry_after)` when the deadline comes
    /// first.
    pub async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(Permit, Duration), Duration> {
        let start = Instant::now();
        if let Some(c) = &self.redis {
            loop {
                let (wait, exact) = match self.try_cluster(c).await {
                    Ok(Verdict::Admitted(id)) => return Ok((self.admitted(id), start.elapsed())),
                    Ok(Verdict::Full { wait, exact }) => (wait, exact),
                    // Redis is away: this replica's share, locally, for this request.
                    Err(_) => break,
                };
                let now = Instant::now();
                if exact && now + wait > deadline {
                    return Err(wait.max(Duration::from_secs(1)));
                }
                // Other replicas may free room earlier than `wait` (an in-flight call's
                // score is its worst case), so ask again soon.
                let cap = wait.min(POLL).max(Duration::from_millis(2));
                let ms = cap.as_millis() as u64;
                let pause = Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms));
                if now + pause >= deadline {
                    return Err(if exact { wait.max(WINDOW) } else { WINDOW });
                }
                tokio::time::sleep(pause).await;
            }
        }
        self.acquire_local(deadline, start).await
    }

    async fn acquire_local(
        self: &Arc<Self>,
        deadline: Instant,
        start: Instant,
    ) -> Result<(Permit, Duration), Duration> {
        loop {
            // Register for completions before checking, so none is missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = Instant::now();
            let wait = match self.try_at(now, self.local_limit()) {
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

    /// The configured limit (cluster-wide when clustered).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the budget is kept in Redis.
    pub fn is_clustered(&self) -> bool {
        self.redis.is_some()
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
        assert!(b.try_acquire().await.is_none());
        // Still nothing two windows later while both are in flight.
        tokio::time::sleep(WINDOW * 2).await;
        assert!(b.try_acquire().await.is_none());
        drop(p1);
        // A completion frees the place only one window later.
        assert!(b.try_acquire().await.is_none());
        tokio::time::sleep(WINDOW).await;
        assert!(b.try_acquire().await.is_some());
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
        assert!(b.try_acquire().await.is_none());
    }
}
