//! The load benchmark: `bench/load.sh` (builds this example and the server in release, then
//! runs it). Not a test: it asserts nothing and `cargo test` only compiles it.
//!
//! For each database variant it starts the real `stsgate` binary (type 0, Qiniu: the upload
//! token is signed locally with dummy keys, so no upstream call is made; HS256 JWTs) and a
//! bare axum endpoint answering a JSON body of the same size as stsgate's answer, both as
//! child processes. One load generator (N keep-alive HTTP/1.1 connections, each sending the
//! next request when the previous answer has arrived) drives them in turn — bare, stsgate
//! `/healthz`, stsgate `/upload/sts/info` — for several rounds, and prints requests/s, p50
//! and p99 of each, the ratios to the bare endpoint, the errors (any answer but 200, any I/O
//! failure), stsgate's peak RSS (`VmHWM` in `/proc/<pid>/status`) and how many ledger rows
//! the run left (which must equal the 200s it counted).
//!
//! ```text
//! loadbench [--stsgate PATH] [--conns 64] [--secs 3] [--rounds 3]
//!           [--variants sqlite,sqlite-full,postgres]
//! loadbench bare ADDR BODY_BYTES        (the bare endpoint; started by the benchmark)
//! loadbench drive ADDR PATH SECS CONNS   (load on a running server, e.g. one under
//!                                         valgrind --tool=callgrind; JWTs for the HS256
//!                                         secret in $LOADBENCH_JWT_SECRET)
//! ```
//! `postgres` uses `DATABASE_URL` (a fresh schema, dropped afterwards) and is skipped when it
//! is unset.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const JWT_SECRET: &str = "loadbench-jwt-secret-0123456789abcdef0123";
const STS_PATH: &str =
    "/upload/sts/info?type=0&extension=png&isNeedCallback=0&uploadModule=resource_image&platform=web";

struct Opts {
    stsgate: PathBuf,
    conns: usize,
    secs: f64,
    rounds: usize,
    variants: Vec<String>,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        stsgate: PathBuf::from("target/release/stsgate"),
        conns: 64,
        secs: 3.0,
        rounds: 3,
        variants: vec!["sqlite".into(), "sqlite-full".into(), "postgres".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--stsgate" => o.stsgate = PathBuf::from(val()),
            "--conns" => o.conns = val().parse().expect("--conns N"),
            "--secs" => o.secs = val().parse().expect("--secs S"),
            "--rounds" => o.rounds = val().parse().expect("--rounds N"),
            "--variants" => o.variants = val().split(',').map(str::to_string).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    // The servers run in a temporary directory: a relative path would be resolved there.
    o.stsgate =
        std::fs::canonicalize(&o.stsgate).expect("stsgate binary (build it: bench/load.sh)");
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("bare") {
        let addr: SocketAddr = args[2].parse().expect("bare ADDR BYTES");
        let bytes: usize = args[3].parse().expect("bare ADDR BYTES");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(bare(addr, bytes));
        return;
    }
    if args.get(1).map(String::as_str) == Some("drive") {
        let addr: SocketAddr = args[2].parse().expect("drive ADDR PATH SECS CONNS");
        let secs: f64 = args[4].parse().expect("SECS");
        let conns: usize = args[5].parse().expect("CONNS");
        let secret = std::env::var("LOADBENCH_JWT_SECRET").unwrap_or(JWT_SECRET.into());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut t = rt.block_on(drive(addr, &args[3], &tokens(&secret, conns), secs));
        println!(
            "{:.0} req/s  p50 {:.2} ms  p99 {:.2} ms  ok {}  errors {}",
            t.rps(),
            t.pct(0.5),
            t.pct(0.99),
            t.ok,
            t.errors
        );
        return;
    }
    let opts = parse_opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(opts));
}

/// A bare axum endpoint: any GET answers the same JSON body of `bytes` bytes.
async fn bare(addr: SocketAddr, bytes: usize) {
    let head = r#"{"code":0,"message":"","data":{"pad":""#;
    let tail = r#""}}"#;
    let pad = bytes.saturating_sub(head.len() + tail.len());
    let body: &'static str = Box::leak(format!("{head}{}{tail}", "x".repeat(pad)).into_boxed_str());
    let app = axum::Router::new().fallback(move || async move {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One request over a keep-alive connection; returns the status and the body length.
async fn exchange(
    s: &mut TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, usize)> {
    s.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let head_end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let len: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| bad("no content-length"))?;
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed in body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, len))
}

fn request(addr: SocketAddr, path: &str, token: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    /// Latencies of every answer, µs.
    lat_us: Vec<u32>,
    elapsed: f64,
}

impl Tally {
    fn rps(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.elapsed
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        self.lat_us.sort_unstable();
        let i = ((self.lat_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.lat_us[i]) / 1000.0
    }
    fn add(&mut self, o: &Tally) {
        self.ok += o.ok;
        self.errors += o.errors;
        self.lat_us.extend_from_slice(&o.lat_us);
        self.elapsed += o.elapsed;
    }
}

/// `conns` connections for `secs`, each with its own user's token.
async fn drive(addr: SocketAddr, path: &str, tokens: &[String], secs: f64) -> Tally {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for token in tokens {
        let req = request(addr, path, token);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut buf = Vec::with_capacity(16 * 1024);
            let mut conn: Option<TcpStream> = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    match TcpStream::connect(addr).await {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            conn = Some(s)
                        }
                        Err(_) => {
                            t.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let s = conn.as_mut().unwrap();
                let at = Instant::now();
                match exchange(s, &req, &mut buf).await {
                    Ok((200, _)) => t.ok += 1,
                    Ok(_) => t.errors += 1,
                    Err(_) => {
                        t.errors += 1;
                        conn = None;
                    }
                }
                t.lat_us
                    .push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            t
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for t in tasks {
        all.add(&t.await.unwrap());
    }
    all.elapsed = start.elapsed().as_secs_f64();
    all
}

async fn wait_up(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("server exited during start: {st}");
        }
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let mut buf = Vec::new();
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            if let Ok((200, _)) = exchange(&mut s, req.as_bytes(), &mut buf).await {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {addr} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Db {
    url: String,
    pg_cleanup: Option<(String, String)>,
}

async fn database(variant: &str, dir: &std::path::Path) -> Option<Db> {
    match variant {
        "sqlite" | "sqlite-full" => Some(Db {
            url: format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
            pg_cleanup: None,
        }),
        "postgres" => {
            let Ok(base) = std::env::var("DATABASE_URL") else {
                println!("postgres: skipped (DATABASE_URL is not set)\n");
                return None;
            };
            let schema = format!("stsgate_bench_{}", uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&base).await.expect("DATABASE_URL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&pool)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            Some(Db {
                url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                pg_cleanup: Some((base, schema)),
            })
        }
        other => panic!("unknown variant {other}"),
    }
}

async fn ledger_rows(url: &str) -> i64 {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM objects")
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM objects")
            .fetch_one(&pool)
            .await
            .unwrap()
    }
}

/// One token per connection (one user each), valid for an hour.
fn tokens(secret: &str, n: usize) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (0..n)
        .map(|i| {
            stsgate::auth::jwt::mint_hs256(
                secret,
                &format!("bench-user-{i}"),
                now,
                3600,
                "",
                "",
                &serde_json::Map::new(),
            )
            .unwrap()
        })
        .collect()
}

async fn run(opts: Opts) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "loadbench: {} connections, {} rounds of {} s per target, {cores} cores, load average at start: {}",
        opts.conns,
        opts.rounds,
        opts.secs,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("generator and servers share this machine; compare ratios within one run.\n");
    let tokens = tokens(JWT_SECRET, opts.conns);
    let mut summary = Vec::new();
    for variant in &opts.variants {
        let dir = tempfile::tempdir().unwrap();
        let Some(db) = database(variant, dir.path()).await else {
            continue;
        };
        let sts_addr = free_addr();
        let mut cmd = Command::new(&opts.stsgate);
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STSGATE_SERVER__LISTEN", sts_addr.to_string())
            .env(
                "STSGATE_SERVER__PUBLIC_BASE_URL",
                format!("http://{sts_addr}"),
            )
            .env("STSGATE_DATABASE__URL", &db.url)
            .env("STSGATE_STORAGE__MODE", "off")
            .env("STSGATE_AUTH__HS256_SECRET", JWT_SECRET)
            .env(
                "STSGATE_PROVIDERS__QINIU__ACCESS_KEY",
                "bench-dummy-access-key",
            )
            .env(
                "STSGATE_PROVIDERS__QINIU__SECRET_KEY",
                "bench-dummy-secret-key",
            )
            .env("STSGATE_PROVIDERS__QINIU__BUCKET", "bench-bucket")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if variant == "sqlite-full" {
            cmd.env("STSGATE_DATABASE__SQLITE_SYNCHRONOUS", "full");
        }
        let mut sts = Proc(
            cmd.spawn()
                .expect("stsgate binary (build it: bench/load.sh)"),
        );
        wait_up(sts_addr, &mut sts.0).await;
        // The size of stsgate's answer, for the bare endpoint.
        let mut s = TcpStream::connect(sts_addr).await.unwrap();
        let mut buf = Vec::new();
        let (status, body_len) =
            exchange(&mut s, &request(sts_addr, STS_PATH, &tokens[0]), &mut buf)
                .await
                .expect("first issuance");
        assert_eq!(
            status,
            200,
            "first issuance: {}",
            String::from_utf8_lossy(&buf)
        );
        drop(s);
        let bare_addr = free_addr();
        let mut bare = Proc(
            Command::new(std::env::current_exe().unwrap())
                .args(["bare", &bare_addr.to_string(), &body_len.to_string()])
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_up(bare_addr, &mut bare.0).await;

        println!(
            "== {variant} ({} answer: {body_len} bytes) ==",
            STS_PATH.split('?').next().unwrap()
        );
        // Warm-up: connections, caches, the database file.
        drive(bare_addr, STS_PATH, &tokens, 1.0).await;
        let warm = drive(sts_addr, STS_PATH, &tokens, 1.0).await;
        // Every 200 from /upload/sts/info: the first issuance, the warm-up, the rounds.
        let mut answered = 1 + warm.ok;
        let targets = [
            ("bare axum", bare_addr, STS_PATH),
            ("stsgate /healthz", sts_addr, "/healthz"),
            ("stsgate type 0", sts_addr, STS_PATH),
        ];
        let mut totals: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
        for round in 1..=opts.rounds {
            for (i, (name, addr, path)) in targets.iter().enumerate() {
                let mut t = drive(*addr, path, &tokens, opts.secs).await;
                println!(
                    "round {round}  {name:<17} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
                    t.rps(),
                    t.pct(0.5),
                    t.pct(0.99),
                    t.errors
                );
                totals[i].add(&t);
            }
        }
        let bare_rps = totals[0].rps();
        println!("-- {variant}: all rounds --");
        let mut line = format!("{variant}:");
        for (i, (name, _, _)) in targets.iter().enumerate() {
            let t = &mut totals[i];
            let ratio = t.rps() / bare_rps;
            println!(
                "{name:<17} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {:<4} ratio {ratio:.2}",
                t.rps(),
                t.pct(0.5),
                t.pct(0.99),
                t.errors
            );
            if *name == "stsgate type 0" {
                answered += t.ok;
                line += &format!(
                    " type 0 {ratio:.2}x bare, p99 {:.2} ms, errors {}",
                    t.pct(0.99),
                    t.errors
                );
            }
            if *name == "stsgate /healthz" {
                line += &format!(" /healthz {ratio:.2}x,");
            }
        }
        let rss = peak_rss_kib(sts.0.id());
        drop(sts);
        drop(bare);
        let rows = ledger_rows(&db.url).await;
        println!(
            "stsgate peak RSS {:.1} MiB; ledger rows {rows}, issuances answered 200: {answered}{}\n",
            rss as f64 / 1024.0,
            if rows as u64 == answered { " (equal)" } else { " (DIFFERENT)" }
        );
        line += &format!(", peak RSS {:.1} MiB", rss as f64 / 1024.0);
        summary.push(line);
        if let Some((base, schema)) = db.pg_cleanup {
            let pool = sqlx::PgPool::connect(&base).await.unwrap();
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await;
        }
    }
    println!("== summary ==");
    for l in summary {
        println!("{l}");
    }
}
