//! Signed webhooks with an outbox, on SQLite and PostgreSQL: a receiver in the test that
//! fails, goes down across a restart and comes back; signatures checked with the test's own
//! HMAC code; dead events; two replicas on one database; a failed transaction writes
//! neither the change nor its event; the secret never reaches the logs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use stsgate::clock::Clock as _;
use stsgate::config::Config;
use stsgate::metrics::Metrics;
use stsgate::providers::embedded::config::StorageMode;
use stsgate::secret::Secret;
use stsgate::store::{FactSource, MarkOutcome, UploadFacts};
use tokio::sync::oneshot;

use crate::helpers::*;
use crate::on_both_databases;

const HOOK_SECRET: &str = "whsec-it-0123456789abcdef-never-logged";
const IMAGE: &str = "type=2&extension=png&isNeedCallback=0&uploadModule=resource_image";
/// The receiver's timestamp tolerance.
const TOLERANCE_SECS: i64 = 300;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    event_id: String,
    signature: String,
    content_type: String,
    body: String,
    /// What the receiver answered.
    status: u16,
    /// The (manual) clock when it arrived.
    received_at: i64,
}

struct Inner {
    log: Mutex<Vec<Delivery>>,
    /// 500s still to answer before answering 200.
    fail_first: AtomicUsize,
    always_fail: bool,
    /// What a failure answers: 500, or a redirect (302 to `/elsewhere`).
    fail_status: u16,
    /// Requests to any other path (a followed redirect).
    other: AtomicUsize,
    /// Requests that reached the hook (a request cut off by the sender's timeout is in this
    /// count but not in `log`).
    arrivals: AtomicUsize,
    clock: Arc<ManualClock>,
    in_flight: Mutex<HashSet<String>>,
    /// Requests that arrived while another one for the same event was being answered.
    overlaps: AtomicUsize,
    hold: Duration,
}

/// A webhook receiver: answers 500 to its first `fail_first` requests, then 200 (or 500
/// for ever), closing every connection after its answer.
struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, [(&'static str, &'static str); 2]) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let event_id = h("stsgate-event-id");
    inner.arrivals.fetch_add(1, Ordering::SeqCst);
    if !inner.in_flight.lock().unwrap().insert(event_id.clone()) {
        inner.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    if !inner.hold.is_zero() {
        // Keeps the request open, so a second delivery of the event would overlap.
        tokio::time::sleep(inner.hold).await;
    }
    let fail = inner.always_fail
        || inner
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if fail { inner.fail_status } else { 200 };
    inner.log.lock().unwrap().push(Delivery {
        event_id: event_id.clone(),
        signature: h("stsgate-signature"),
        content_type: h("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        received_at: inner.clock.now_unix(),
    });
    inner.in_flight.lock().unwrap().remove(&event_id);
    (
        StatusCode::from_u16(status).unwrap(),
        [("connection", "close"), ("location", "/elsewhere")],
    )
}

async fn elsewhere(State(inner): State<Arc<Inner>>) -> StatusCode {
    inner.other.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

impl Receiver {
    async fn start(
        addr: Option<SocketAddr>,
        fail_status: u16,
        fail_first: usize,
        always_fail: bool,
        hold: Duration,
        clock: Arc<ManualClock>,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
            .await
            .expect("receiver binds");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            log: Mutex::default(),
            fail_first: AtomicUsize::new(fail_first),
            always_fail,
            fail_status,
            other: AtomicUsize::new(0),
            arrivals: AtomicUsize::new(0),
            clock,
            in_flight: Mutex::default(),
            overlaps: AtomicUsize::new(0),
            hold,
        });
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .fallback(elsewhere)
            .with_state(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            addr,
            inner,
            stop: Some(tx),
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn log(&self) -> Vec<Delivery> {
        self.inner.log.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.inner.log.lock().unwrap().len()
    }

    /// Closes the port.
    async fn stop(mut self) -> Vec<Delivery> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("receiver stops")
            .unwrap();
        self.log()
    }
}

/// The receiver side's check, written here independently of stsgate's code: the HMAC of
/// `"<t>.<body>"` matches `v1` (constant-time compare) and `t` is within the tolerance.
fn verify(secret: &str, d: &Delivery) -> Result<(), String> {
    let mut t = None;
    let mut v1 = None;
    for part in d.signature.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (t, v1) = t.zip(v1).ok_or("malformed signature header")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(d.body.as_bytes());
    mac.verify_slice(&v1).map_err(|_| "bad signature")?;
    if (d.received_at - t).abs() > TOLERANCE_SECS {
        return Err(format!("timestamp {t} off by {}", d.received_at - t));
    }
    Ok(())
}

/// Checks every delivery: signature, timestamp, headers, envelope.
fn check_all(log: &[Delivery]) {
    for d in log {
        verify(HOOK_SECRET, d).unwrap_or_else(|e| panic!("{e}: {d:?}"));
        assert!(
            verify("another-secret", d).is_err(),
            "a wrong secret does not verify"
        );
        assert_eq!(d.content_type, "application/json");
        let body: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["id"], d.event_id.as_str(), "{}", d.body);
        let t = body["type"].as_str().unwrap();
        let status = t.strip_prefix("object.").unwrap();
        assert_eq!(body["data"]["status"], status, "{}", d.body);
        assert!(body["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(body["data"]["objectId"].as_i64().unwrap() > 0);
    }
}

/// (event type, objectId) of each distinct event (deduped by `Stsgate-Event-Id`), and how
/// many 2xx answers each event got.
fn dedupe(log: &[Delivery]) -> (BTreeMap<String, (String, i64)>, BTreeMap<String, usize>) {
    let mut events = BTreeMap::new();
    let mut ok = BTreeMap::new();
    for d in log {
        let body: Value = serde_json::from_str(&d.body).unwrap();
        let what = (
            body["type"].as_str().unwrap().to_string(),
            body["data"]["objectId"].as_i64().unwrap(),
        );
        if let Some(prev) = events.insert(d.event_id.clone(), what.clone()) {
            assert_eq!(prev, what, "one event id, one event");
        }
        if d.status == 200 {
            *ok.entry(d.event_id.clone()).or_insert(0) += 1;
        }
    }
    (events, ok)
}

fn config(db: &Db, hook_url: &str, dir: &std::path::Path) -> Config {
    let mut c = base_config(db);
    let listen = free_addr();
    c.storage.mode = StorageMode::On;
    c.storage.public_url = format!("http://{listen}");
    c.storage.listen = listen;
    c.storage.dir = dir.display().to_string();
    c.storage.secret = Secret::new("webhook-test-store-key-0123456789abcdef");
    c.notify.url = hook_url.into();
    c.notify.secret = Secret::new(HOOK_SECRET);
    c.notify.timeout_ms = 1000;
    c
}

/// The same configuration with its own embedded-store port (for a second server).
fn with_new_store_port(c: &Config) -> Config {
    let mut c = c.clone();
    let listen = free_addr();
    c.storage.public_url = format!("http://{listen}");
    c.storage.listen = listen;
    c
}

async fn start(db: &Arc<Db>, c: Config, clock: &Arc<ManualClock>) -> Server {
    let state = stsgate::app::build_with(c, None, clock.clone(), Metrics::new())
        .await
        .expect("app builds");
    Server::start_state(db.clone(), state).await
}

async fn issue(s: &Server, sub: &str) -> i64 {
    let a = s.sts(sub, IMAGE).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["data"]["objectId"].as_i64().unwrap()
}

async fn upload(s: &Server, id: i64) {
    let facts = UploadFacts {
        size: Some(10),
        mime: Some("image/png".into()),
        etag: Some("\"e\"".into()),
        source: FactSource::Store,
    };
    let now = s.state.clock.now_unix();
    let m = s.state.store.mark_uploaded(id, &facts, now).await.unwrap();
    assert_eq!(m, MarkOutcome::Marked);
}

fn service_token(s: &Server) -> String {
    let mut extra = serde_json::Map::new();
    extra.insert("scope".into(), json!("stsgate:service"));
    s.token_with("backend", extra)
}

async fn consume(s: &Server, id: i64) {
    let a = s
        .send(
            s.http
                .post(format!("{}/upload/objects/{id}/consume", s.base))
                .bearer_auth(service_token(s))
                .json(&json!({"ref": "post-7"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

async fn counter(s: &Server, name: &str) -> f64 {
    metric(&s.metrics().await, name)
}

/// Waits (up to 15 s of real time) until the counter `name` of `s` reaches `n`.
async fn wait_counter(s: &Server, name: &str, n: f64) {
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = counter(s, name).await;
        if v >= n {
            assert_eq!(v, n, "{name} overshot");
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{name} stayed at {v}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A timeout and a redirect (not followed) are failed attempts like a 500.
async fn webhook_timeouts_and_redirects_are_failures(db: Arc<Db>) {
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    for (fail_status, hold, error) in [
        (500, Duration::from_millis(1500), "timeout"),
        (302, Duration::ZERO, "HTTP 302"),
    ] {
        let r = Receiver::start(None, fail_status, 0, true, hold, clock.clone()).await;
        let mut c = config(&db, &r.url(), dir.path());
        c.notify.timeout_ms = 300;
        let s = start(&db, c, &clock).await;
        let id = issue(&s, "alice").await;
        upload(&s, id).await;
        wait_counter(&s, "stsgate_webhook_retried_total", 1.0).await;
        assert_eq!(counter(&s, "stsgate_webhook_delivered_total").await, 0.0);
        let last = sql_text(
            &db,
            &format!("SELECT last_error FROM outbox WHERE object_id = {id}"),
        )
        .await;
        assert_eq!(last.as_deref(), Some(error));
        s.stop().await;
        let other = r.inner.other.load(Ordering::SeqCst);
        let arrivals = r.inner.arrivals.load(Ordering::SeqCst);
        let log = r.stop().await;
        assert_eq!(other, 0, "the redirect was not followed");
        assert_eq!(arrivals, 1, "{error}: one attempt");
        check_all(&log);
    }
}
on_both_databases!(
    webhook_timeouts_and_redirects_are_failures_both,
    webhook_timeouts_and_redirects_are_failures
);

/// Waits (up to 15 s of real time) until `s` reports `n` pending events (the gauge is set
/// after each delivery pass, so its line is present once the task has run).
async fn wait_pending(s: &Server, n: i64) {
    let line = format!("stsgate_webhook_events_pending {n}");
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = s.metrics().await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(tokio::time::Instant::now() < end, "no {line:?} in {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails its first 3 deliveries with 500, then is down across a stsgate restart on the same
/// database, then up: every event arrives, exactly once after dedupe, each signature valid.
async fn webhook_outage_and_restart(db: Arc<Db>) {
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let r1 = Receiver::start(None, 500, 3, false, Duration::ZERO, clock.clone()).await;
    let addr = r1.addr;
    let c = config(&db, &r1.url(), dir.path());
    let s1 = start(&db, c.clone(), &clock).await;

    let a = issue(&s1, "alice").await;
    let b = issue(&s1, "bob").await;
    let expiring = issue(&s1, "carol").await;
    upload(&s1, a).await;
    upload(&s1, b).await;
    consume(&s1, b).await;
    // Three events, each attempted once and answered 500; their retries wait for the clock.
    wait_counter(&s1, "stsgate_webhook_retried_total", 3.0).await;
    assert_eq!(r1.count(), 3);
    assert!(r1.log().iter().all(|d| d.status == 500));
    assert_eq!(counter(&s1, "stsgate_webhook_delivered_total").await, 0.0);

    // The receiver goes down; the retries find the port closed.
    let mut log = r1.stop().await;
    clock.advance(2);
    wait_counter(&s1, "stsgate_webhook_retried_total", 6.0).await;
    // The credentials of the third object lapse: the sweeper's change is an event too.
    let expires = s1
        .state
        .store
        .get_object(expiring)
        .await
        .unwrap()
        .unwrap()
        .expires_at
        .unwrap();
    clock.advance(expires - clock.now_unix() + 1);
    stsgate::sweep(&s1.state).await;
    wait_counter(&s1, "stsgate_webhook_retried_total", 10.0).await;
    wait_pending(&s1, 4).await;
    let first_retried = counter(&s1, "stsgate_webhook_retried_total").await;
    s1.stop().await;

    // A new process on the same database, the receiver still down.
    let s2 = start(&db, with_new_store_port(&c), &clock).await;
    clock.advance(3601);
    wait_counter(&s2, "stsgate_webhook_retried_total", 4.0).await;
    assert_eq!(counter(&s2, "stsgate_webhook_delivered_total").await, 0.0);

    // The receiver is back on its address.
    let r2 = Receiver::start(Some(addr), 500, 0, false, Duration::ZERO, clock.clone()).await;
    clock.advance(3601);
    wait_counter(&s2, "stsgate_webhook_delivered_total", 4.0).await;
    assert!(
        eventually(Duration::from_secs(5), || r2.count() == 4).await,
        "{}",
        r2.count()
    );
    wait_pending(&s2, 0).await;
    let second_retried = counter(&s2, "stsgate_webhook_retried_total").await;
    s2.stop().await;
    log.extend(r2.stop().await);

    check_all(&log);
    let (events, ok) = dedupe(&log);
    let got: BTreeSet<(String, i64)> = events.values().cloned().collect();
    let want: BTreeSet<(String, i64)> = [
        ("object.uploaded".to_string(), a),
        ("object.uploaded".to_string(), b),
        ("object.consumed".to_string(), b),
        ("object.expired".to_string(), expiring),
    ]
    .into();
    assert_eq!(got, want);
    assert_eq!(events.len(), 4, "one event id per change");
    assert!(
        ok.values().all(|n| *n == 1) && ok.len() == 4,
        "each event answered 2xx exactly once: {ok:?}"
    );
    let attempted = first_retried + second_retried + 4.0;
    eprintln!(
        "webhook outage ({}): deliveries attempted {attempted} (refused while down {}), \
         requests received {}, events after dedupe {}, duplicates after dedupe {}",
        db.kind,
        attempted - log.len() as f64,
        log.len(),
        events.len(),
        ok.values().map(|n| n - 1).sum::<usize>()
    );
    assert_eq!(attempted, 18.0);
    assert_eq!(log.len(), 7);
}
on_both_databases!(webhook_outage_and_restart_both, webhook_outage_and_restart);

/// An event not delivered within `max_age_secs` is dead: counted, no longer pending.
async fn webhook_dead_after_max_age(db: Arc<Db>) {
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(None, 500, 0, true, Duration::ZERO, clock.clone()).await;
    let mut c = config(&db, &r.url(), dir.path());
    c.notify.max_age_secs = 30;
    let s = start(&db, c, &clock).await;
    let id = issue(&s, "alice").await;
    upload(&s, id).await;
    wait_counter(&s, "stsgate_webhook_retried_total", 1.0).await;
    wait_pending(&s, 1).await;
    // The last retry is scheduled at the end of the window at the latest; the attempt past
    // it fails and the event is dead.
    clock.advance(31);
    wait_counter(&s, "stsgate_webhook_dead_total", 1.0).await;
    assert_eq!(counter(&s, "stsgate_webhook_retried_total").await, 1.0);
    assert_eq!(r.count(), 2);
    wait_pending(&s, 0).await;
    assert_eq!(counter(&s, "stsgate_webhook_delivered_total").await, 0.0);
    s.stop().await;
    check_all(&r.stop().await);
}
on_both_databases!(webhook_dead_after_max_age_both, webhook_dead_after_max_age);

/// Two servers on one database: each event is delivered once, never by both at a time, and
/// its `data` is the record `GET /upload/objects/{id}` shows.
async fn webhook_two_replicas(db: Arc<Db>) {
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(
        None,
        500,
        0,
        false,
        Duration::from_millis(40),
        clock.clone(),
    )
    .await;
    let c = config(&db, &r.url(), dir.path());
    let s1 = start(&db, c.clone(), &clock).await;
    let s2 = start(&db, with_new_store_port(&c), &clock).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let s = if i % 2 == 0 { &s1 } else { &s2 };
        ids.push(issue(s, "alice").await);
    }
    for id in &ids {
        upload(&s1, *id).await;
    }
    assert!(
        eventually(Duration::from_secs(15), || r.count() >= 12).await,
        "{}",
        r.count()
    );
    // Both servers have recorded what they sent.
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    let (d1, d2) = loop {
        let d = (
            counter(&s1, "stsgate_webhook_delivered_total").await,
            counter(&s2, "stsgate_webhook_delivered_total").await,
        );
        if d.0 + d.1 >= 12.0 || tokio::time::Instant::now() > end {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = r.log();
    check_all(&log);
    let (events, ok) = dedupe(&log);
    assert_eq!(log.len(), 12, "no event delivered twice");
    assert_eq!(events.len(), 12);
    assert!(ok.values().all(|n| *n == 1));
    assert_eq!(r.inner.overlaps.load(Ordering::SeqCst), 0);
    eprintln!(
        "two replicas ({}): server 1 delivered {d1}, server 2 {d2}, received {}",
        db.kind,
        log.len()
    );
    assert_eq!(d1 + d2, 12.0);
    // `data` is what the API shows for the record.
    let token = service_token(&s1);
    for d in &log {
        let body: Value = serde_json::from_str(&d.body).unwrap();
        let id = body["data"]["objectId"].as_i64().unwrap();
        let a = s1.get(&format!("/upload/objects/{id}"), Some(&token)).await;
        assert_eq!(body["data"], a.body["data"], "object {id}");
    }
    s1.stop().await;
    s2.stop().await;
    r.stop().await;
}
on_both_databases!(webhook_two_replicas_both, webhook_two_replicas);

/// Runs `q` on the test database directly; the first column of the first row as an integer
/// (0 when there is none).
async fn sql_i64(db: &Db, q: &str) -> i64 {
    if db.kind == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let v: Option<i64> = sqlx::query_scalar(q).fetch_optional(&pool).await.unwrap();
        pool.close().await;
        v.unwrap_or(0)
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let v: Option<i64> = sqlx::query_scalar(q).fetch_optional(&pool).await.unwrap();
        pool.close().await;
        v.unwrap_or(0)
    }
}

/// Runs `q` on the test database directly; the first column of the first row as text.
async fn sql_text(db: &Db, q: &str) -> Option<String> {
    if db.kind == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let v: Option<String> = sqlx::query_scalar(q).fetch_optional(&pool).await.unwrap();
        pool.close().await;
        v
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let v: Option<String> = sqlx::query_scalar(q).fetch_optional(&pool).await.unwrap();
        pool.close().await;
        v
    }
}

/// An app on `db` with the outbox on or off and no server (so no delivery task runs).
async fn app(db: &Db, notify: bool, clock: &Arc<ManualClock>) -> stsgate::AppState {
    let mut c = base_config(db);
    if notify {
        c.notify.url = "http://127.0.0.1:9/hook".into();
        c.notify.secret = Secret::new(HOOK_SECRET);
    }
    stsgate::app::build_with(c, None, clock.clone(), Metrics::new())
        .await
        .expect("app builds")
}

/// An `issued` row with its key, straight through the store.
async fn issued_row(state: &stsgate::AppState, expires_at: i64) -> i64 {
    let id = state
        .store
        .insert_object(&stsgate::store::NewObject {
            owner: "alice".into(),
            cloud_type: 2,
            module: "resource_image".into(),
            platform: "web".into(),
            project_id: None,
            extension: "png".into(),
            is_dir: false,
            created_at: state.clock.now_unix(),
        })
        .await
        .unwrap();
    state
        .store
        .complete_object(id, "local", &format!("k/{id}.png"), expires_at)
        .await
        .unwrap();
    id
}

fn facts() -> UploadFacts {
    UploadFacts {
        size: Some(3),
        mime: Some("image/png".into()),
        etag: None,
        source: FactSource::Store,
    }
}

/// The event is written with its change or not at all; none when webhooks are off; its
/// body's `data` is the API's record.
async fn webhook_outbox_is_transactional(db: Arc<Db>) {
    let clock = ManualClock::new();
    let now = clock.now_unix();
    // Off: the change, no event.
    let off = app(&db, false, &clock).await;
    let id = issued_row(&off, now + 60).await;
    assert_eq!(
        off.store.mark_uploaded(id, &facts(), now).await.unwrap(),
        MarkOutcome::Marked
    );
    assert_eq!(sql_i64(&db, "SELECT COUNT(*) FROM outbox").await, 0);
    drop(off);

    let on = app(&db, true, &clock).await;
    // A transaction whose event cannot be written leaves the row as it was.
    let second = issued_row(&on, now + 60).await;
    sql_i64(&db, "ALTER TABLE outbox RENAME TO outbox_away").await;
    assert!(on.store.mark_uploaded(second, &facts(), now).await.is_err());
    assert!(on.store.expire_lapsed(now + 3600).await.is_err());
    sql_i64(&db, "ALTER TABLE outbox_away RENAME TO outbox").await;
    let row = on.store.get_object(second).await.unwrap().unwrap();
    assert_eq!(row.status, "issued", "neither the change nor the event");
    assert_eq!(sql_i64(&db, "SELECT COUNT(*) FROM outbox").await, 0);

    // Now it commits, with its event; an unchanged row writes none.
    assert_eq!(
        on.store.mark_uploaded(second, &facts(), now).await.unwrap(),
        MarkOutcome::Marked
    );
    assert_eq!(
        on.store.mark_uploaded(second, &facts(), now).await.unwrap(),
        MarkOutcome::AlreadyUploaded
    );
    assert_eq!(sql_i64(&db, "SELECT COUNT(*) FROM outbox").await, 1);
    let body = sql_text(&db, "SELECT body FROM outbox").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    let record = on.store.get_object(second).await.unwrap().unwrap();
    assert_eq!(
        body["data"],
        serde_json::to_value(stsgate::store::ObjectDto::from(record)).unwrap()
    );
    assert_eq!(body["type"], "object.uploaded");
    let event_id = sql_text(&db, "SELECT event_id FROM outbox").await.unwrap();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(event_id.len(), 36, "a UUID");

    // One event per row the sweeper expires, one per consume; a refused consume writes none.
    let (x, y) = (
        issued_row(&on, now + 10).await,
        issued_row(&on, now + 10).await,
    );
    assert_eq!(on.store.expire_lapsed(now + 11).await.unwrap(), 2);
    on.store.consume(second, Some("r"), now).await.unwrap();
    on.store.consume(second, Some("r"), now).await.unwrap();
    let n = |t: &'static str| {
        let db = db.clone();
        async move {
            sql_i64(
                &db,
                &format!("SELECT COUNT(*) FROM outbox WHERE event_type = '{t}'"),
            )
            .await
        }
    };
    assert_eq!(n("object.expired").await, 2);
    assert_eq!(n("object.consumed").await, 1);
    assert_eq!(
        sql_i64(
            &db,
            &format!("SELECT COUNT(*) FROM outbox WHERE object_id IN ({x}, {y})")
        )
        .await,
        2
    );
    assert_eq!(on.store.outbox_pending().await.unwrap(), 4);
}
on_both_databases!(
    webhook_outbox_is_transactional_both,
    webhook_outbox_is_transactional
);

/// Claims from two stores on one database, eight at a time: every event goes to exactly one
/// claimer while its lease holds, and to a claimer again once it lapses.
async fn webhook_concurrent_claims_are_disjoint(db: Arc<Db>) {
    let clock = ManualClock::new();
    let now = clock.now_unix();
    let a = app(&db, true, &clock).await;
    let b = app(&db, true, &clock).await;
    for _ in 0..60 {
        let id = issued_row(&a, now + 60).await;
        a.store.mark_uploaded(id, &facts(), now).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            a.store.clone()
        } else {
            b.store.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_events(now, now + 60, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }));
    }
    let mut all = Vec::new();
    let mut per_claimer = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        per_claimer.push(mine.len());
        all.extend(mine);
    }
    let ids: BTreeSet<String> = all.iter().map(|e| e.event_id.clone()).collect();
    eprintln!(
        "concurrent claims ({}): {} claimed by 8 claimers {per_claimer:?}, {} distinct",
        db.kind,
        all.len(),
        ids.len()
    );
    assert_eq!(all.len(), 60, "each event claimed once");
    assert_eq!(ids.len(), 60);
    assert!(all.iter().all(|e| e.attempts == 1));
    // Leased: nobody gets them now; once the lease lapses, they are due again.
    assert!(b
        .store
        .claim_events(now + 59, now + 120, 100)
        .await
        .unwrap()
        .is_empty());
    let again = b
        .store
        .claim_events(now + 60, now + 120, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 60);
    assert!(again.iter().all(|e| e.attempts == 2));
    // Delivered and dead events are never claimed again.
    a.store
        .event_delivered(&again[0].event_id, now + 61)
        .await
        .unwrap();
    a.store
        .event_failed(&again[1].event_id, None, now + 61, "HTTP 500")
        .await
        .unwrap();
    a.store
        .event_failed(&again[2].event_id, Some(now + 500), now + 61, "timeout")
        .await
        .unwrap();
    assert_eq!(a.store.outbox_pending().await.unwrap(), 58);
    let later = a
        .store
        .claim_events(now + 200, now + 260, 100)
        .await
        .unwrap();
    assert_eq!(
        later.len(),
        57,
        "not the delivered, the dead nor the one retried later"
    );
    assert!(later.iter().all(|e| e.event_id != again[2].event_id));
    // At its time it is due again, with the 57 whose leases lapsed.
    let last = a
        .store
        .claim_events(now + 500, now + 560, 100)
        .await
        .unwrap();
    assert_eq!(last.len(), 58);
    assert!(last.iter().any(|e| e.event_id == again[2].event_id));
}
on_both_databases!(
    webhook_concurrent_claims_are_disjoint_both,
    webhook_concurrent_claims_are_disjoint
);

/// The webhook secret never reaches a log line, through retries and a dead event.
#[test]
fn webhook_secret_not_in_trace_logs() {
    let text = capture_trace_logs(async {
        let clock = ManualClock::new();
        let db = Arc::new(sqlite().await);
        let dir = tempfile::tempdir().unwrap();
        let r = Receiver::start(None, 500, 0, true, Duration::ZERO, clock.clone()).await;
        let mut c = config(&db, &r.url(), dir.path());
        c.notify.max_age_secs = 10;
        let s = start(&db, c, &clock).await;
        let id = issue(&s, "alice").await;
        upload(&s, id).await;
        wait_counter(&s, "stsgate_webhook_retried_total", 1.0).await;
        clock.advance(11);
        wait_counter(&s, "stsgate_webhook_dead_total", 1.0).await;
        s.stop().await;
        r.stop().await;
    });
    assert!(text.contains("webhook delivery failed; retrying"), "{text}");
    assert!(text.contains("webhook event dead"), "{text}");
    assert_no_secret_in_logs(&text, &[HOOK_SECRET.to_string()], &["v1="]);
}

on_both_databases!(
    a_rejection_writes_its_event_in_its_transaction,
    rejection_event_body
);
/// `reject_object` (a HEAD-verified upload that broke the module's rules): the row becomes
/// `rejected` with the cloud's facts and its `object.rejected` event in one transaction.
async fn rejection_event_body(db: Arc<Db>) {
    let clock = ManualClock::new();
    let now = clock.now_unix();
    let on = app(&db, true, &clock).await;
    let head = UploadFacts {
        size: Some(99),
        mime: Some("text/html".into()),
        etag: Some("abc".into()),
        source: FactSource::Head,
    };
    let id = issued_row(&on, now + 60).await;
    sql_i64(&db, "ALTER TABLE outbox RENAME TO outbox_away").await;
    assert!(on.store.reject_object(id, &head, now).await.is_err());
    sql_i64(&db, "ALTER TABLE outbox_away RENAME TO outbox").await;
    assert_eq!(
        on.store.get_object(id).await.unwrap().unwrap().status,
        "issued"
    );
    assert_eq!(
        on.store.reject_object(id, &head, now).await.unwrap(),
        MarkOutcome::Marked
    );
    assert_eq!(
        on.store.reject_object(id, &head, now).await.unwrap(),
        MarkOutcome::AlreadyUploaded
    );
    let row = on.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(
        (row.size, row.verified_by.as_deref()),
        (Some(99), Some("head"))
    );
    assert_eq!(sql_i64(&db, "SELECT COUNT(*) FROM outbox").await, 1);
    let t = sql_text(&db, "SELECT event_type FROM outbox").await;
    assert_eq!(t.as_deref(), Some("object.rejected"));
    // A HEAD's facts replace a client's claim (`head` outranks `client`), never the reverse.
    let second = issued_row(&on, now + 60).await;
    let client = UploadFacts {
        size: Some(1),
        mime: None,
        etag: None,
        source: FactSource::Client,
    };
    assert_eq!(
        on.store.mark_uploaded(second, &client, now).await.unwrap(),
        MarkOutcome::Marked
    );
    let cloud = UploadFacts {
        size: Some(5),
        mime: Some("image/png".into()),
        etag: None,
        source: FactSource::Head,
    };
    assert_eq!(
        on.store.mark_uploaded(second, &cloud, now).await.unwrap(),
        MarkOutcome::Marked
    );
    assert_eq!(
        on.store.mark_uploaded(second, &client, now).await.unwrap(),
        MarkOutcome::AlreadyUploaded
    );
    let row = on.store.get_object(second).await.unwrap().unwrap();
    assert_eq!(
        (row.size, row.verified_by.as_deref()),
        (Some(5), Some("head"))
    );
}
