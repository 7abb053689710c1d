//! Test harness: real databases (a fresh SQLite file, or a fresh PostgreSQL schema when
//! `DATABASE_URL` is set), a real server on 127.0.0.1:0, and an HTTP client.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use stsgate::app::AppState;
use stsgate::config::Config;
use stsgate::metrics::Metrics;
use stsgate::secret::Secret;
use tokio::sync::oneshot;

use stsgate_fakes::tencent::FakeLke;

/// The JWT secret every test server uses.
pub const JWT_SECRET: &str = "it-jwt-secret-0123456789abcdef0123456789";
/// Tencent long-term keys the fake LKE expects.
pub const TC_SECRET_ID: &str = "AKIDitSECRETIDabcdefghijklmnop0123";
/// Tencent long-term secret.
pub const TC_SECRET_KEY: &str = "itSECRETKEYabcdefghijklmnop012345";

/// A database for one test.
pub struct Db {
    /// Connection URL.
    pub url: String,
    /// `sqlite` or `postgres`.
    pub kind: &'static str,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite database file.
pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("it.db").display());
    Db {
        url,
        kind: "sqlite",
        _dir: Some(dir),
    }
}

/// A fresh schema in `DATABASE_URL`; `None` (skip) when it is unset, unless
/// `STSGATE_REQUIRE_PG=1`, which makes a missing PostgreSQL a failure.
pub async fn postgres() -> Option<Db> {
    let base = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("STSGATE_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("STSGATE_REQUIRE_PG=1 but DATABASE_URL is not set");
            }
            eprintln!("PostgreSQL suite skipped: DATABASE_URL is not set");
            return None;
        }
    };
    let schema = format!("stsgate_it_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("DATABASE_URL reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(Db {
        url,
        kind: "postgres",
        _dir: None,
    })
}

/// A config for tests: fast timeouts, a known JWT secret, no provider enabled.
pub fn base_config(db: &Db) -> Config {
    let mut c = Config::default();
    c.database.url = db.url.clone();
    c.auth.hs256_secret = Secret::new(JWT_SECRET);
    c.server.request_timeout_ms = 2000;
    c.server.shutdown_grace_ms = 1000;
    // The embedded store binds a port of its own: tests that want it turn it on.
    c.storage.mode = stsgate::providers::embedded::config::StorageMode::Off;
    c
}

/// Enables the Tencent provider against `endpoint`.
pub fn enable_tencent(c: &mut Config, endpoint: &str) {
    let t = &mut c.providers.tencent;
    t.secret_id = Secret::new(TC_SECRET_ID);
    t.secret_key = Secret::new(TC_SECRET_KEY);
    t.bot_biz_id = "1771061216515457024".into();
    t.endpoint = endpoint.into();
    t.region = "ap-jakarta".into();
    t.timeout_ms = 300;
    t.connect_timeout_ms = 200;
    t.pool_size = 0;
}

/// A fake LKE expecting the test keys.
pub async fn fake_lke() -> (Arc<FakeLke>, String) {
    let fake = FakeLke::new(TC_SECRET_ID, TC_SECRET_KEY, "ap-jakarta");
    let url = fake.start().await;
    (fake, url)
}

/// A running stsgate.
pub struct Server {
    /// `http://127.0.0.1:port`
    pub base: String,
    /// The app state (store, metrics, ...).
    pub state: AppState,
    /// A client with a generous timeout (a hang fails the test instead of blocking it).
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Keeps the database (and its temporary directory) alive as long as the server.
    _db: Arc<Db>,
}

/// An answer: status, headers, JSON body (`Value::Null` if not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// `body.code` as a number.
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or(-1)
    }
}

impl Server {
    /// Starts a server with `config`.
    pub async fn start(db: Arc<Db>, config: Config) -> Server {
        let state = stsgate::app::build_with(
            config,
            None,
            Arc::new(stsgate::clock::SystemClock),
            Metrics::new(),
        )
        .await
        .expect("app builds");
        Self::start_state(db, state).await
    }

    /// Starts a server on an already-built state.
    pub async fn start_state(db: Arc<Db>, state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(stsgate::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let timeout =
            Duration::from_millis(state.config.server.request_timeout_ms) + Duration::from_secs(3);
        Server {
            base,
            state,
            http: reqwest::Client::builder().timeout(timeout).build().unwrap(),
            stop: Some(tx),
            task: Some(task),
            _db: db,
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.token_with(sub, serde_json::Map::new())
    }

    /// A valid token with extra claims.
    pub fn token_with(&self, sub: &str, extra: serde_json::Map<String, Value>) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        stsgate::auth::jwt::mint_hs256(JWT_SECRET, sub, now, 600, "", "", &extra).unwrap()
    }

    /// Sends a request.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("server answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// GET `path` with a bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    /// `GET /upload/sts/info?{query}` as `sub`.
    pub async fn sts(&self, sub: &str, query: &str) -> Answer {
        let t = self.token(sub);
        self.get(&format!("/upload/sts/info?{query}"), Some(&t))
            .await
    }

    /// POST a form callback with the user's JWT.
    pub async fn callback_form(&self, token: Option<&str>, body: &str) -> Answer {
        let mut r = self
            .http
            .post(format!("{}/upload/callback", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    /// The Prometheus text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text
    }
}

/// An address on 127.0.0.1 that nothing listens on (a port the OS just handed out and
/// took back), as `127.0.0.1:port`.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// An HS256 token for `sub` signed with `secret`, issued at `iat` (unix seconds) and living
/// 60 s, with no issuer, audience or extra claims.
pub fn mint_jwt(secret: &str, sub: &str, iat: i64) -> String {
    stsgate::auth::jwt::mint_hs256(secret, sub, iat, 60, "", "", &Default::default()).unwrap()
}

/// The value of a metric line `name{labels} value` (0 when absent).
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `cond` every 10 ms for up to `within`; returns whether it became true.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Runs a test body on SQLite and, when available, PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(std::sync::Arc::new($crate::helpers::sqlite().await)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::helpers::postgres().await {
                    super::$body(std::sync::Arc::new(db)).await
                }
            }
        }
    };
}

/// Log output written by a subscriber, shared with the test.
#[derive(Clone, Default)]
pub struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    /// Everything captured, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }

    /// Every line, parsed as JSON (panics on a line that is not).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// Runs `fut` on one thread with `subscriber` as the thread's default, so every task
/// (server, fakes, client) logs to it; the runtime is dropped before the subscriber.
fn run_with_subscriber<S, F>(subscriber: S, fut: F)
where
    S: tracing::Subscriber + Send + Sync + 'static,
    F: std::future::Future<Output = ()>,
{
    // One capture at a time: registering or dropping a dispatcher recomputes tracing's
    // global level hint from a snapshot of the live dispatchers, so two captures starting and
    // ending on parallel test threads can leave the hint at OFF while one of them runs (its
    // events are then filtered out before any subscriber sees them).
    static CAPTURE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(fut);
    drop(rt);
}

/// Runs `fut` on one thread with everything captured at `trace` level (`log` records
/// included), as human lines without ANSI and as JSON lines; returns the text.
pub fn capture_trace_logs<F: std::future::Future<Output = ()>>(fut: F) -> String {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(logs.clone()),
        );
    let _ = tracing_log::LogTracer::init();
    run_with_subscriber(subscriber, fut);
    logs.text()
}

/// Asserts what the [`capture_trace_logs`] text of a run that issued credentials must
/// show: the capture worked, TRACE level was on, and none of `secrets` nor `markers` is in it.
pub fn assert_no_secret_in_logs(text: &str, secrets: &[String], markers: &[&str]) {
    assert!(
        text.contains("issued upload credentials"),
        "logs were captured"
    );
    assert!(text.contains("TRACE"), "trace level was on");
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "a secret reached the logs: {}…",
            &s[..6]
        );
    }
    for marker in markers {
        assert!(!text.contains(marker), "{marker} reached the logs");
    }
}

/// Runs `fut` on one thread with JSON logs as production writes them
/// (`STSGATE_LOG_FORMAT=json`: flattened events with the current span) at `level`.
pub fn capture_json_logs<F: std::future::Future<Output = ()>>(
    level: tracing::Level,
    fut: F,
) -> Capture {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(level))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_writer(logs.clone()),
        );
    run_with_subscriber(subscriber, fut);
    logs
}

/// A clock that moves only when told.
pub struct ManualClock(std::sync::Mutex<time::OffsetDateTime>);

impl ManualClock {
    /// Now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new(time::OffsetDateTime::now_utc())))
    }
    /// Moves the clock on by `secs`.
    pub fn advance(&self, secs: i64) {
        *self.0.lock().unwrap() += time::Duration::seconds(secs);
    }
}

impl stsgate::clock::Clock for ManualClock {
    fn now(&self) -> time::OffsetDateTime {
        *self.0.lock().unwrap()
    }
}
