//! Hostile clients at the connection and body level: stalled and idle connections, a
//! declared body larger than allowed, a body that stops arriving, and `HEAD` on the
//! issuing endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `within` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + within;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_connections_are_closed_while_normal_clients_are_served() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.server.header_read_timeout_ms = 600;
    let s = Server::start(db, c).await;
    let addr = host_port(&s.base);

    // 250 connections stall inside a request head, 150 send nothing at all.
    let mut stalled = Vec::new();
    for i in 0..400 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        if i < 250 {
            stream
                .write_all(b"GET /upload/sts/info?type=0&exten")
                .await
                .unwrap();
        }
        stalled.push(stream);
    }
    let opened = stalled.len();

    // Normal clients are answered while the stalled connections are held.
    let mut served = 0;
    for _ in 0..20 {
        let a = s.get("/healthz", None).await;
        if a.status == 200 {
            served += 1;
        }
    }

    // Every stalled connection is closed by the server within the timeout (plus slack).
    let started = Instant::now();
    let mut closed = 0;
    for stream in &mut stalled {
        if read_until_closed(stream, Duration::from_secs(3))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    println!(
        "stalled-connection test: opened {opened}, closed by the server {closed} (within {} ms of the last check), normal answers {served}/20",
        started.elapsed().as_millis()
    );
    assert_eq!(served, 20, "normal clients must be served");
    assert_eq!(closed, opened, "every stalled connection must be closed");

    // An idle keep-alive connection is closed too, after a complete request.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let got = read_until_closed(&mut stream, Duration::from_secs(3))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_idle_connections() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.server.header_read_timeout_ms = 60_000;
    c.server.shutdown_grace_ms = 5_000;
    let s = Server::start(db, c).await;
    let addr = host_port(&s.base);
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        idle.push(stream);
    }
    let t0 = Instant::now();
    s.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for idle connections",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_and_are_served_later() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.server.max_connections = 8;
    c.server.header_read_timeout_ms = 500;
    let s = Server::start(db, c).await;
    let addr = host_port(&s.base);
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The ninth client waits for a slot, and gets one once the stalled ones time out.
    let t0 = Instant::now();
    let a = s.get("/healthz", None).await;
    assert_eq!(a.status, 200);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "the cap did not hold: answered after {:?}",
        t0.elapsed()
    );
    drop(held);
    s.stop().await;
}

async fn raw(addr: &str, head: &str, body: &[u8], within: Duration) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before a huge head is all written: a write error
    // then is expected, the answer is still there to read.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let t0 = Instant::now();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(within, stream.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    (
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        t0.elapsed(),
    )
}

fn status_and_code(answer: &str) -> (u16, i64) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_i64())
        .unwrap_or(-1);
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_is_refused_before_reading() {
    let db = Arc::new(sqlite().await);
    let c = base_config(&db);
    let s = Server::start(db, c).await;
    let addr = host_port(&s.base);
    let token = s.token("alice");
    for path in ["/upload/sts/info", "/upload/callback"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000000\r\n\r\n"
        );
        let (answer, took) = raw(&addr, &head, b"", Duration::from_secs(1)).await;
        assert_eq!(status_and_code(&answer), (413, 41301), "{path}: {answer}");
        assert!(took < Duration::from_millis(500), "{path}: {took:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_40001_never_504() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.server.body_read_timeout_ms = 300;
    let s = Server::start(db, c).await;
    let addr = host_port(&s.base);
    let token = s.token("alice");
    for path in ["/upload/sts/info", "/upload/callback"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
        );
        let (answer, took) = raw(&addr, &head, b"type=1&ext", Duration::from_secs(2)).await;
        assert_eq!(status_and_code(&answer), (400, 40001), "{path}: {answer}");
        assert!(took < Duration::from_millis(1500), "{path}: {took:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_the_issuing_endpoint_allocates_nothing() {
    let (fake, url) = fake_lke().await;
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    let s = Server::start(db, c).await;
    let token = s.token("alice");
    let a = s
        .send(
            s.http
                .head(format!(
                    "{}/upload/sts/info?type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp",
                    s.base
                ))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(fake.calls(), 0, "HEAD reached the cloud");
    for id in 1..=64 {
        assert!(
            s.state.store.get_object(id).await.unwrap().is_none(),
            "HEAD wrote row {id}"
        );
    }
    // The GET still issues.
    let a = s
        .sts(
            "alice",
            "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.stop().await;
}

async fn unfinished_rows_older_than_a_deadline_are_failed(db: Arc<Db>) {
    let c = base_config(&db);
    let s = Server::start(db, c).await;
    let now = s.state.clock.now_unix();
    let row = |created_at| stsgate::store::NewObject {
        owner: "alice".into(),
        cloud_type: 1,
        module: "directorytemp".into(),
        platform: "web".into(),
        project_id: None,
        extension: "pdf".into(),
        is_dir: false,
        created_at,
    };
    let store = &s.state.store;
    // A crash between insert and completion left this one behind a minute ago.
    let stale = store.insert_object(&row(now - 60)).await.unwrap();
    // This one may still be completed by a request in flight.
    let fresh = store.insert_object(&row(now)).await.unwrap();
    stsgate::sweep(&s.state).await;
    let stale_row = store.get_object(stale).await.unwrap().unwrap();
    let fresh_row = store.get_object(fresh).await.unwrap().unwrap();
    assert_eq!(stale_row.status, "failed");
    assert_eq!(fresh_row.status, "issued");
    // A second pass changes nothing more.
    stsgate::sweep(&s.state).await;
    assert_eq!(
        store.get_object(fresh).await.unwrap().unwrap().status,
        "issued"
    );
    s.stop().await;
}
crate::on_both_databases!(
    sweeper_fails_unfinished_rows,
    unfinished_rows_older_than_a_deadline_are_failed
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_ledger_is_503_50302_not_ready_and_leaves_no_orphan_row() {
    let Some(db) = postgres().await else { return };
    let db = Arc::new(db);
    let (_fake, url) = fake_lke().await;
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    let s = Server::start(db.clone(), c).await;
    let q = "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp";
    assert_eq!(
        s.sts("alice", q).await.status,
        200,
        "issues before the lock"
    );
    let ready = s.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);

    // Another session holds the table in ACCESS EXCLUSIVE mode.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE objects IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let t0 = Instant::now();
    let a = s.sts("alice", q).await;
    assert_eq!((a.status, a.code()), (503, 50302), "{}", a.text);
    assert!(a.headers.get("retry-after").is_some(), "no Retry-After");
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t0.elapsed()
    );
    let ready = s.get("/readyz", None).await;
    assert_eq!(
        ready.status, 503,
        "ready while the ledger cannot be written"
    );
    lock.rollback().await.unwrap();

    // After the lock: ready again, and the refused issuance left no row behind.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get("/readyz", None).await.status, 200);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM objects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "only the issuance before the lock is in the ledger"
    );
    assert_eq!(
        s.sts("alice", q).await.status,
        200,
        "recovers without restart"
    );
    pool.close().await;
    s.stop().await;
}

/// The few answers the HTTP parser writes before a request exists are exactly the ones
/// `docs/contract.md` §1.3 lists: bare status, empty body, `connection: close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parsers_own_answers_are_the_documented_bare_ones() {
    let db = Arc::new(sqlite().await);
    let c = base_config(&db);
    let s = Server::start(db, c).await;
    let addr = host_port(&s.base);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    // Too many header fields (a huge head works too, but the server then closes with input
    // unread, and the reset can destroy the answer in flight).
    let many: String = (0..200).map(|i| format!("X-{i}: a\r\n")).collect();
    let big_head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let cases: [(&str, String); 4] = [
        (
            "HTTP/1.1 400 ",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                .into(),
        ),
        (
            "HTTP/1.1 400 ",
            "GET /he\0lthz HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        ),
        ("HTTP/1.1 414 ", long_target),
        ("HTTP/1.1 431 ", big_head),
    ];
    for (want, request) in cases {
        let (answer, _) = raw(&addr, &request, b"", Duration::from_secs(3)).await;
        assert!(answer.starts_with(want), "{want}: {answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("content-length: 0"), "{answer}");
        assert!(lower.contains("connection: close"), "{answer}");
    }
    // Past the head, every refusal is the envelope.
    let (answer, _) = raw(
        &addr,
        "GET /upload/sts/info HTTP/1.1\r\nHost: x\r\n\r\n",
        b"",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_and_code(&answer), (401, 40101), "{answer}");
    s.stop().await;
}
