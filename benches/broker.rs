//! stsgate's benchmark: `cargo bench --bench broker` (add `-- --quick` for a short run).
//!
//! Prints figures and ratios; asserts nothing about time (speed is measured here, never in
//! tests). What it measures:
//! 1. Signing cost per call of the pure signers (TC3 for LKE, Qiniu upload token, SigV4 via
//!    aws-sigv4), in µs per operation.
//! 2. `GET /upload/sts/info` for `type=1` through the real server (SQLite ledger, real HTTP)
//!    against the fake LKE answering after a simulated cloud round trip: latency with the
//!    credential pool off (every request waits for LKE) and on (served from the pool), and
//!    the ratio between the two.
//! 3. Throughput with 32 concurrent clients, pool off and a fast fake, where the ledger
//!    and the HTTP stack are the limit.

use stsgate_fakes::tencent;

use std::sync::Arc;
use std::time::{Duration, Instant};

use stsgate::config::Config;
use stsgate::metrics::Metrics;
use stsgate::secret::Secret;

const JWT: &str = "bench-jwt-secret-0123456789abcdef0123456789";
const SID: &str = "AKIDbenchSECRETID0123456789abcdef";
const SKEY: &str = "benchSECRETKEY0123456789abcdefgh";

fn per_op<F: FnMut()>(iters: u32, mut f: F) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(endpoint: &str, pool_size: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.database.url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    c.auth.hs256_secret = Secret::new(JWT);
    let t = &mut c.providers.tencent;
    t.secret_id = Secret::new(SID);
    t.secret_key = Secret::new(SKEY);
    t.bot_biz_id = "1771061216515457024".into();
    t.endpoint = endpoint.into();
    t.region = "ap-jakarta".into();
    t.pool_size = pool_size;
    t.rate_limit_per_sec = 10_000;
    let state = stsgate::app::build_with(
        c,
        None,
        Arc::new(stsgate::clock::SystemClock),
        Metrics::new(),
    )
    .await
    .expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(stsgate::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Running {
        base,
        stop,
        _dir: dir,
    }
}

fn token(sub: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    stsgate::auth::jwt::mint_hs256(JWT, sub, now, 3600, "", "", &serde_json::Map::new()).unwrap()
}

async fn one(http: &reqwest::Client, base: &str, tok: &str) -> f64 {
    let t = Instant::now();
    let res = http
        .get(format!(
            "{base}/upload/sts/info?type=1&extension=png&isNeedCallback=0&uploadModule=resource_image&platform=web"
        ))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    t.elapsed().as_secs_f64() * 1e3
}

/// Sequential latency (ms), with a pause between requests so the pool can refill.
async fn latency(base: &str, n: usize, pause: Duration) -> Vec<f64> {
    let http = reqwest::Client::new();
    let tok = token("bench");
    for _ in 0..5 {
        one(&http, base, &tok).await;
        tokio::time::sleep(pause).await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(one(&http, base, &tok).await);
        tokio::time::sleep(pause).await;
    }
    out.sort_by(f64::total_cmp);
    out
}

async fn throughput(base: &str, clients: usize, per_client: usize) -> (f64, Vec<f64>) {
    let http = reqwest::Client::new();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let base = base.to_string();
        let tok = token(&format!("user{c}"));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                lat.push(one(&http, &base, &tok).await);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = t.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    ((clients * per_client) as f64 / secs, all)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    println!(
        "stsgate benchmark ({} run)",
        if quick { "quick" } else { "full" }
    );

    // 1. Signers.
    let body = br#"{"BotBizId":"1771061216515457024","FileType":"png","IsPublic":false,"TypeKey":"realtime"}"#;
    let tc3 = per_op(20_000 * scale, || {
        std::hint::black_box(
            stsgate::providers::tencent::sign::sign_post_json_for_service(
                SID,
                SKEY,
                "lke.intl.tencentcloudapi.com",
                "lke",
                "application/json; charset=utf-8",
                body,
                1_700_000_000,
            ),
        );
    });
    let policy = r#"{"scope":"bucket:test/resource/image/2026/11/30/1/f8899246.png","deadline":1764500000,"insertOnly":1}"#;
    let qiniu = per_op(20_000 * scale, || {
        std::hint::black_box(stsgate::providers::qiniu::sign::upload_token(
            SID, SKEY, policy,
        ));
    });
    let time = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let form = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fuploader&RoleSessionName=bench";
    let sigv4 = per_op(5_000 * scale, || {
        use stsgate::providers::aws::sign::FORM_CONTENT_TYPE;
        use stsgate::providers::sigv4::{sign_request, SigV4Key, SigV4Request};
        std::hint::black_box(
            sign_request(
                SigV4Key {
                    access_key_id: SID,
                    secret_access_key: SKEY,
                    session_token: None,
                },
                &SigV4Request {
                    method: "POST",
                    url: "https://sts.us-east-1.amazonaws.com/",
                    signed_headers: &[("content-type", FORM_CONTENT_TYPE)],
                    body: form.as_bytes(),
                    region: "us-east-1",
                    service: "sts",
                    time,
                },
            )
            .unwrap(),
        );
    });
    println!("\n1. signing, µs per call");
    println!("   TC3-HMAC-SHA256 (LKE request)     {tc3:8.2}");
    println!("   Qiniu upload token                {qiniu:8.2}");
    println!("   SigV4 via aws-sigv4 (STS request) {sigv4:8.2}");
    println!("   ratio SigV4 / TC3                 {:8.2}x", sigv4 / tc3);

    // 2. Pool off vs on, with a 25 ms simulated cloud round trip.
    let rtt = 25;
    let fake = tencent::FakeLke::new(SID, SKEY, "ap-jakarta");
    let fake_url = fake.start().await;
    fake.set_mode(stsgate_fakes::Mode::Delay(rtt));
    let n = 40 * scale as usize;
    let off = start(&fake_url, 0).await;
    let miss = latency(&off.base, n, Duration::from_millis(5)).await;
    let _ = off.stop.send(());
    let on = start(&fake_url, 2).await;
    // The pause lets the background refill (one LKE round trip) land before the next request.
    let hit = latency(&on.base, n, Duration::from_millis(rtt + 20)).await;
    let _ = on.stop.send(());
    println!("\n2. GET /upload/sts/info type=1, fake LKE answering after {rtt} ms, {n} sequential requests, ms");
    println!(
        "   pool off (LKE on the path)  p50 {:7.2}  p90 {:7.2}  p99 {:7.2}",
        percentile(&miss, 0.5),
        percentile(&miss, 0.9),
        percentile(&miss, 0.99)
    );
    println!(
        "   pool on  (served from pool) p50 {:7.2}  p90 {:7.2}  p99 {:7.2}",
        percentile(&hit, 0.5),
        percentile(&hit, 0.9),
        percentile(&hit, 0.99)
    );
    println!(
        "   ratio p50 off / on          {:7.1}x",
        percentile(&miss, 0.5) / percentile(&hit, 0.5)
    );

    // 3. Throughput, fast fake, pool off: every request = ledger insert + LKE call + update.
    fake.set_mode(stsgate_fakes::Mode::Ok);
    let srv = start(&fake_url, 0).await;
    let (clients, per) = (32, 20 * scale as usize);
    let (rps, lat) = throughput(&srv.base, clients, per).await;
    let _ = srv.stop.send(());
    println!("\n3. throughput, {clients} clients x {per} requests, pool off, SQLite ledger");
    println!(
        "   {rps:8.0} requests/s   p50 {:6.2} ms   p99 {:6.2} ms   fake LKE calls {}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        fake.calls()
    );
}
