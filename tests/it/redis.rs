//! Shared state in Redis (`[redis] url`): the cluster-wide upstream budget, idempotent
//! answers and the Tencent pool across two replicas, and the per-replica fallback when
//! Redis is away. Reads `REDIS_URL`; without it the suite is skipped with a note, unless
//! `STSGATE_REQUIRE_REDIS=1`, which makes a missing Redis a failure. Every test uses its
//! own key prefix and deletes its keys.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stsgate::config::Config;

use crate::helpers::*;
use crate::on_both_databases;
use stsgate_fakes::Mode;

const Q_PDF: &str = "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp";

/// Redis for one test: its URL and a key prefix of its own, whose keys are deleted on drop.
struct TestRedis {
    url: String,
    prefix: String,
}

/// `REDIS_URL` with a fresh prefix; `None` (skip) when it is unset, unless
/// `STSGATE_REQUIRE_REDIS=1`.
fn test_redis() -> Option<TestRedis> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(TestRedis {
            url,
            prefix: format!("stsgate-it-{}", uuid::Uuid::new_v4().simple()),
        }),
        _ => {
            if std::env::var("STSGATE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("STSGATE_REQUIRE_REDIS=1 but REDIS_URL is not set");
            }
            eprintln!("Redis suite skipped: REDIS_URL is not set");
            None
        }
    }
}

impl TestRedis {
    /// Points `c` at this Redis and prefix. The command timeout is generous: the whole
    /// suite shares two cores, and a command timing out would switch a replica to its
    /// fallback (tested on its own below).
    fn configure(&self, c: &mut Config) {
        c.redis.url = self.url.clone();
        c.redis.key_prefix = self.prefix.clone();
        c.redis.command_timeout_ms = 1000;
    }

    fn conn(&self) -> ::redis::Connection {
        ::redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .expect("REDIS_URL reachable")
    }

    /// Keys under this test's prefix.
    fn keys(&self, pattern: &str) -> Vec<String> {
        ::redis::cmd("KEYS")
            .arg(format!("{}:{pattern}", self.prefix))
            .query(&mut self.conn())
            .unwrap()
    }

    fn llen(&self, key: &str) -> usize {
        ::redis::cmd("LLEN")
            .arg(key)
            .query(&mut self.conn())
            .unwrap()
    }

    fn ttl(&self, key: &str) -> i64 {
        ::redis::cmd("TTL")
            .arg(key)
            .query(&mut self.conn())
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = ::redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = ::redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// Two replicas on one ledger and one Redis, both calling `fake`.
async fn two_replicas(
    db: Arc<Db>,
    redis: &TestRedis,
    fake_url: &str,
    tweak: impl Fn(&mut Config),
) -> (Arc<Server>, Arc<Server>) {
    let mut c = base_config(&db);
    enable_tencent(&mut c, fake_url);
    redis.configure(&mut c);
    tweak(&mut c);
    let a = Server::start(db.clone(), c.clone()).await;
    let b = Server::start(db, c).await;
    (Arc::new(a), Arc::new(b))
}

fn unavailable(m: &str) -> f64 {
    ["budget", "pool", "idempotency", "heartbeat", "ping"]
        .iter()
        .map(|op| {
            metric(
                m,
                &format!("stsgate_redis_unavailable_total{{op=\"{op}\"}}"),
            )
        })
        .sum()
}

on_both_databases!(
    burst_across_two_replicas_respects_the_cluster_budget,
    burst_body
);
async fn burst_body(db: Arc<Db>) {
    let Some(redis) = test_redis() else { return };
    let (fake, url) = fake_lke().await;
    let limit = 60;
    let (a, b) = two_replicas(db, &redis, &url, |c| {
        c.providers.tencent.rate_limit_per_sec = limit;
        c.providers.tencent.pool_size = 2;
        c.server.request_timeout_ms = 10_000;
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.sts(&format!("user{}", i % 7), Q_PDF).await
        }));
    }
    let mut ids = HashSet::new();
    let mut paths = HashSet::new();
    let mut keys = HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        let d = &r.body["data"];
        assert!(ids.insert(d["objectId"].as_i64().unwrap()));
        assert!(paths.insert(d["relativePath"].as_str().unwrap().to_string()));
        assert!(
            keys.insert(d["accessKeyId"].as_str().unwrap().to_string()),
            "a credential went to two requests"
        );
    }
    assert_eq!(ids.len(), 200);
    for s in [&a, &b] {
        assert_eq!(
            unavailable(&s.metrics().await),
            0.0,
            "Redis answered throughout (this test is about the shared log, not the fallback)"
        );
    }
    // Each replica alone allows `limit` a second: only the shared log keeps the sum there.
    let most = fake.max_calls_in_window(Duration::from_secs(1));
    assert!(
        most <= limit as usize,
        "the fake saw {most} calls inside one second (cluster limit {limit})"
    );
    assert!(fake.calls() >= 200);
    assert_eq!(fake.rejected(), 0);
    // The log lives in Redis under the configured prefix.
    assert_eq!(
        redis.keys("budget:*"),
        vec![format!("{}:budget:tencent", redis.prefix)]
    );
}

fn idem_get(s: &Server, token: &str, key: &str, query: &str) -> reqwest::RequestBuilder {
    s.http
        .get(format!("{}/upload/sts/info?{query}", s.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
}

/// The fields a replay must repeat (all but `serverTime`).
fn replayed(d: &Value) -> Value {
    let mut d = d.clone();
    d.as_object_mut().unwrap().remove("serverTime");
    d
}

on_both_databases!(
    idempotent_retry_on_the_other_replica_gets_the_same_answer,
    idempotency_body
);
async fn idempotency_body(db: Arc<Db>) {
    let Some(redis) = test_redis() else { return };
    let (fake, url) = fake_lke().await;
    let (a, b) = two_replicas(db, &redis, &url, |_| {}).await;
    let t = a.token("alice");
    let first = a.send(idem_get(&a, &t, "order-1", Q_PDF)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let retry = b.send(idem_get(&b, &t, "order-1", Q_PDF)).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    let d = &first.body["data"];
    assert_eq!(replayed(d), replayed(&retry.body["data"]));
    for f in [
        "objectId",
        "accessKeyId",
        "secretAccessKey",
        "securityToken",
    ] {
        assert!(!d[f].is_null(), "{f}");
    }
    assert_eq!(fake.calls(), 1, "the retry made no upstream call");
    // Other parameters with the same key, on either replica: 40901.
    for s in [&a, &b] {
        let r = s
            .send(idem_get(
                s,
                &t,
                "order-1",
                "type=1&extension=docx&isNeedCallback=1&uploadModule=directorytemp",
            ))
            .await;
        assert_eq!((r.status, r.code()), (409, 40901), "{}", r.text);
    }
    // The stored answer lapses when it has min_remaining_secs left.
    let stored = redis.keys("idem:*");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let expiration = stsgate::clock::parse_utc(d["expiration"].as_str().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ttl = redis.ttl(&stored[0]);
    assert!(
        ttl > 0 && ttl <= expiration - 300 - now + 1,
        "ttl {ttl}, expiration in {}",
        expiration - now
    );
    assert!(
        !stored[0].contains("alice"),
        "the user id is hashed in the key"
    );

    // Concurrent duplicates on both replicas: the second waits for the first's answer.
    fake.set_mode(Mode::Delay(150));
    let calls = fake.calls();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            s.send(idem_get(&s, &t, "dup", Q_PDF)).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        answers.push(replayed(&r.body["data"]));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "one answer");
    assert_eq!(fake.calls(), calls + 1, "one allocation, one upstream call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_refilled_by_one_replica_serves_the_other() {
    let Some(redis) = test_redis() else { return };
    let db = Arc::new(sqlite().await);
    let (fake, url) = fake_lke().await;
    let (a, b) = two_replicas(db, &redis, &url, |c| c.providers.tencent.pool_size = 2).await;
    let list = format!(
        "{}:pool:tencent:1771061216515457024:pdf:0:offline",
        redis.prefix
    );
    let first = a.sts("alice", Q_PDF).await;
    assert_eq!(first.status, 200, "{}", first.text);
    // A's refill fills the shared list ahead of demand.
    assert!(
        eventually(Duration::from_secs(5), || redis.llen(&list) == 2).await,
        "A refilled the shared pool"
    );
    assert_eq!(fake.calls(), 3);
    let refilled: Vec<String> = fake.issued()[1..3]
        .iter()
        .map(|c| c.tmp_secret_id.clone())
        .collect();
    let second = b.sts("bob", Q_PDF).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let served = second.body["data"]["accessKeyId"].as_str().unwrap();
    assert!(
        refilled.iter().any(|c| c == served),
        "B served a credential A fetched"
    );
    assert_eq!(
        metric(
            &b.metrics().await,
            "stsgate_pool_hits_total{provider=\"tencent\"}"
        ),
        1.0
    );
    // A burst split across both: no credential is ever handed out twice.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.sts("carol", Q_PDF).await }));
    }
    let mut handed: HashMap<String, usize> = HashMap::new();
    handed.insert(
        first.body["data"]["accessKeyId"].as_str().unwrap().into(),
        1,
    );
    handed.insert(served.to_string(), 1);
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        *handed
            .entry(r.body["data"]["accessKeyId"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert!(handed.values().all(|n| *n == 1), "a credential went twice");
    let issued: HashSet<String> = fake.issued().into_iter().map(|c| c.tmp_secret_id).collect();
    assert!(handed.keys().all(|k| issued.contains(k)));
    let mut hits = 0.0;
    for s in [&a, &b] {
        hits += metric(
            &s.metrics().await,
            "stsgate_pool_hits_total{provider=\"tencent\"}",
        );
    }
    assert!(
        hits >= 2.0,
        "the shared pool served the burst too ({hits} hits)"
    );
}

/// A replica whose Redis is a closed port: requests neither hang nor fail; the budget,
/// pool and idempotent answers fall back to this replica; one warning is logged; /readyz
/// stays ready and says Redis is unavailable.
#[test]
fn dead_redis_falls_back_per_replica() {
    let password = "redis-pass-must-not-leak";
    let logs = capture_json_logs(tracing::Level::DEBUG, async {
        let db = Arc::new(sqlite().await);
        let (fake, url) = fake_lke().await;
        let mut c = base_config(&db);
        enable_tencent(&mut c, &url);
        c.redis.url = format!("redis://:{password}@{}", free_addr());
        c.providers.tencent.rate_limit_per_sec = 5;
        c.providers.tencent.pool_size = 1;
        c.server.request_timeout_ms = 4000;
        let s = Arc::new(Server::start(db, c).await);
        // The local pool serves a warm key.
        assert_eq!(s.sts("alice", Q_PDF).await.status, 200);
        assert!(
            eventually(Duration::from_secs(5), || fake.calls() >= 2).await,
            "the local pool was refilled"
        );
        assert_eq!(s.sts("alice", Q_PDF).await.status, 200);
        assert_eq!(
            metric(
                &s.metrics().await,
                "stsgate_pool_hits_total{provider=\"tencent\"}"
            ),
            1.0
        );
        // Ten requests at once against a limit of 5: the local budget spaces them.
        let mut tasks = Vec::new();
        for i in 0..10 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.sts(
                    &format!("u{i}"),
                    "type=1&extension=zip&isNeedCallback=0&uploadModule=directorytemp",
                )
                .await
            }));
        }
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert!(
            fake.max_calls_in_window(Duration::from_secs(1)) <= 5,
            "the local fallback budget held"
        );
        // Idempotent replays work on the replica that answered.
        let t = s.token("alice");
        let x = s.send(idem_get(&s, &t, "k-dead", Q_PDF)).await;
        let y = s.send(idem_get(&s, &t, "k-dead", Q_PDF)).await;
        assert_eq!((x.status, y.status), (200, 200), "{} {}", x.text, y.text);
        assert_eq!(replayed(&x.body["data"]), replayed(&y.body["data"]));
        let r = s.get("/readyz", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "ready");
        assert_eq!(r.body["redis"], "unavailable");
        assert!(unavailable(&s.metrics().await) >= 1.0);
        Arc::try_unwrap(s).ok().unwrap().stop().await;
    });
    let text = logs.text();
    assert!(
        !text.contains(password),
        "the Redis password reached the logs"
    );
    let warnings = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .or(l["message"].as_str())
                    .is_some_and(|m| m.starts_with("Redis unavailable"))
        })
        .count();
    assert_eq!(warnings, 1, "one warning per minute at most:\n{text}");
}

/// Redis going away while replicas run: each falls back to its share of the limit (limit
/// divided by the replicas it counted), and returns to the shared log when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_halves_each_replicas_budget_then_comes_back() {
    if test_redis().is_none() {
        return;
    }
    // A Redis of our own, to stop and start.
    let port = free_addr().rsplit(':').next().unwrap().to_string();
    let start_redis = || {
        tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs")
    };
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("STSGATE_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("STSGATE_REQUIRE_REDIS=1 but redis-server is not installed");
        }
        eprintln!("Redis outage test skipped: no redis-server to start and stop");
        return;
    }
    let mut own = start_redis();
    let redis = TestRedis {
        url: format!("redis://127.0.0.1:{port}"),
        prefix: format!("stsgate-it-{}", uuid::Uuid::new_v4().simple()),
    };
    assert!(
        eventually(Duration::from_secs(5), || ::redis::Client::open(
            redis.url.as_str()
        )
        .unwrap()
        .get_connection()
        .is_ok())
        .await,
        "redis-server started"
    );
    let db = Arc::new(sqlite().await);
    let (fake, url) = fake_lke().await;
    let limit = 10;
    let (a, b) = two_replicas(db, &redis, &url, |c| {
        c.providers.tencent.rate_limit_per_sec = limit;
        c.server.request_timeout_ms = 5000;
    })
    .await;
    // B started second: its heartbeat counted both replicas; A learns it from its first
    // budget admission.
    assert_eq!(b.state.cluster.as_ref().unwrap().replicas(), 2);
    assert_eq!(a.state.cluster.as_ref().unwrap().replicas(), 1);
    assert_eq!(a.sts("alice", Q_PDF).await.status, 200);
    assert_eq!(a.state.cluster.as_ref().unwrap().replicas(), 2);
    own.kill().await.unwrap();
    own.wait().await.unwrap();

    let calls_before = fake.calls();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let b = b.clone();
        tasks.push(tokio::spawn(
            async move { b.sts(&format!("u{i}"), Q_PDF).await },
        ));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let times: Vec<_> = fake.call_times()[calls_before..].to_vec();
    let most = (0..times.len())
        .map(|i| {
            times
                .iter()
                .filter(|t| **t >= times[i] && t.duration_since(times[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= (limit / 2) as usize,
        "without Redis, B kept to its share: {most} calls in one second"
    );
    assert!(unavailable(&b.metrics().await) >= 1.0);

    // Redis is back: after the skip window, sends go through the shared log again.
    let _own = start_redis();
    let budget_key = format!("{}:budget:tencent", redis.prefix);
    let back = {
        let mut back = false;
        for _ in 0..50 {
            assert_eq!(b.sts("alice", Q_PDF).await.status, 200);
            let conn = ::redis::Client::open(redis.url.as_str())
                .unwrap()
                .get_connection();
            if let Ok(mut conn) = conn {
                let n: usize = ::redis::cmd("ZCARD")
                    .arg(&budget_key)
                    .query(&mut conn)
                    .unwrap_or(0);
                if n > 0 {
                    back = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        back
    };
    assert!(back, "B used the shared log again once Redis answered");
    let r = b.get("/readyz", None).await;
    assert_eq!(r.body["redis"], "ok", "{}", r.text);
}

/// With Redis on, trace-level logs (human and JSON) of two replicas sharing a pool and an
/// idempotent answer, and of a replica whose Redis is down, hold no secret.
#[test]
fn no_secret_in_trace_logs_with_redis() {
    let Some(redis) = test_redis() else { return };
    let password = "redis-password-not-for-logs";
    let mut secrets: Vec<String> = vec![JWT_SECRET.into(), TC_SECRET_KEY.into(), password.into()];
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let (fake, url) = fake_lke().await;
        let (a, b) = two_replicas(db.clone(), &redis, &url, |c| {
            c.providers.tencent.pool_size = 1;
        })
        .await;
        let t = a.token("alice");
        secrets.push(t.clone());
        let first = a.send(idem_get(&a, &t, "leak-1", Q_PDF)).await;
        assert_eq!(first.status, 200, "{}", first.text);
        let again = b.send(idem_get(&b, &t, "leak-1", Q_PDF)).await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert!(
            eventually(Duration::from_secs(5), || fake.calls() >= 2).await,
            "pool refilled"
        );
        assert_eq!(b.sts("bob", Q_PDF).await.status, 200);
        // A replica whose Redis (with a password) is down.
        let mut c = base_config(&db);
        enable_tencent(&mut c, &url);
        c.redis.url = format!("redis://:{password}@{}", free_addr());
        let dead = Server::start(db, c).await;
        assert_eq!(dead.sts("carol", Q_PDF).await.status, 200);
        dead.stop().await;
        for s in [a, b] {
            Arc::try_unwrap(s).ok().unwrap().stop().await;
        }
        for cred in fake.issued() {
            secrets.push(cred.tmp_secret_key);
            secrets.push(cred.token);
        }
    });
    assert!(text.contains("Redis connected"), "the Redis path ran");
    assert!(text.contains("Redis unavailable"), "the fallback path ran");
    assert_no_secret_in_logs(
        &text,
        &secrets,
        &["Signature=", "TC3-HMAC-SHA256", "Bearer "],
    );
}
