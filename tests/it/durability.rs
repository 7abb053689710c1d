//! What a committed objectId survives: the `stsgate` binary is killed with SIGKILL under
//! concurrent issuance load and restarted on the same database. Every objectId that was
//! answered with 200 must be in the ledger with the key it was answered with, no objectId may
//! be handed out twice (before or after the restart), and no row may be half-written.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::helpers::*;
use crate::on_both_databases;

/// Answers to collect before the kill.
const BEFORE_KILL: usize = 300;
/// Concurrent clients.
const CLIENTS: usize = 16;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(dir: &Path, db_url: &str, addr: &str) -> Proc {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stsgate"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("STSGATE_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.arg("serve")
        .env("STSGATE_SERVER__LISTEN", addr)
        .env("STSGATE_SERVER__PUBLIC_BASE_URL", format!("http://{addr}"))
        .env("STSGATE_DATABASE__URL", db_url)
        .env("STSGATE_STORAGE__MODE", "off")
        .env("STSGATE_AUTH__HS256_SECRET", JWT_SECRET)
        .env(
            "STSGATE_PROVIDERS__QINIU__ACCESS_KEY",
            "kill-test-access-key",
        )
        .env(
            "STSGATE_PROVIDERS__QINIU__SECRET_KEY",
            "kill-test-secret-key",
        )
        .env("STSGATE_PROVIDERS__QINIU__BUCKET", "kill-test-bucket")
        .env("STSGATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc(c.spawn().expect("stsgate binary"))
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let up = async {
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("server came up");
}

const QUERY: &str =
    "type=0&extension=png&isNeedCallback=0&uploadModule=resource_image&platform=web";

/// (objectId, relativePath) of every 200.
type Answered = Arc<Mutex<Vec<(i64, String)>>>;

/// `CLIENTS` loops issuing until `stop`; each 200 is recorded, and `enough` fires once
/// `target` answers are in.
fn load(
    client: &reqwest::Client,
    base: &str,
    answered: &Answered,
    stop: &Arc<AtomicBool>,
    target: usize,
    enough: &Arc<tokio::sync::Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|i| {
            let (client, answered, stop, enough) = (
                client.clone(),
                answered.clone(),
                stop.clone(),
                enough.clone(),
            );
            let url = format!("{base}/upload/sts/info?{QUERY}");
            let token = mint_jwt(JWT_SECRET, &format!("kill-{i}"), now_unix());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(res) = client.get(&url).bearer_auth(&token).send().await else {
                        continue;
                    };
                    if res.status() != 200 {
                        continue;
                    }
                    let Ok(body) = res.json::<Value>().await else {
                        continue;
                    };
                    let d = &body["data"];
                    let id = d["objectId"].as_i64().expect("objectId");
                    let key = d["relativePath"]
                        .as_str()
                        .expect("relativePath")
                        .to_string();
                    let mut a = answered.lock().unwrap();
                    a.push((id, key));
                    if a.len() >= target {
                        enough.notify_one();
                    }
                }
            })
        })
        .collect()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Row id -> (status, bucket, key, expires_at, failure).
type Ledger = HashMap<
    i64,
    (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    ),
>;

async fn ledger(db: &Db) -> Ledger {
    const Q: &str = "SELECT id, status, bucket, object_key, expires_at, failure FROM objects";
    macro_rules! read {
        ($pool:expr) => {{
            let pool = $pool;
            let rows = sqlx::query(Q).fetch_all(&pool).await.unwrap();
            let out = rows
                .iter()
                .map(|r| {
                    (
                        r.get::<i64, _>("id"),
                        (
                            r.get("status"),
                            r.get("bucket"),
                            r.get("object_key"),
                            r.get("expires_at"),
                            r.get("failure"),
                        ),
                    )
                })
                .collect();
            pool.close().await;
            out
        }};
    }
    if db.kind == "sqlite" {
        read!(sqlx::SqlitePool::connect(&db.url).await.unwrap())
    } else {
        read!(sqlx::PgPool::connect(&db.url).await.unwrap())
    }
}

async fn killed_under_load_then_restarted(db: Arc<Db>) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let answered: Answered = Arc::default();

    // First life: killed with SIGKILL once BEFORE_KILL answers are in, requests in flight.
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut first = server(dir.path(), &db.url, &addr);
    wait_healthy(&client, &base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let enough = Arc::new(tokio::sync::Notify::new());
    let tasks = load(&client, &base, &answered, &stop, BEFORE_KILL, &enough);
    tokio::time::timeout(Duration::from_secs(120), enough.notified())
        .await
        .expect("answers before the kill");
    first.0.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    first.0.wait().unwrap();
    let at_kill = answered.lock().unwrap().len();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let before = answered.lock().unwrap().len();
    assert!(before >= at_kill);

    // Second life on the same database: new objectIds only.
    let addr = free_addr();
    let base = format!("http://{addr}");
    let second = server(dir.path(), &db.url, &addr);
    wait_healthy(&client, &base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let enough = Arc::new(tokio::sync::Notify::new());
    let tasks = load(&client, &base, &answered, &stop, before + 100, &enough);
    tokio::time::timeout(Duration::from_secs(60), enough.notified())
        .await
        .expect("answers after the restart");
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    drop(second);

    let answered = answered.lock().unwrap().clone();
    let ledger = ledger(&db).await;
    let distinct: HashSet<i64> = answered.iter().map(|(id, _)| *id).collect();
    let duplicates = answered.len() - distinct.len();
    let found = answered
        .iter()
        .filter(|(id, key)| {
            matches!(ledger.get(id), Some((status, Some(_), Some(k), Some(_), None))
                if status == "issued" && k == key)
        })
        .count();
    // A complete row: issued with its bucket, key and expiry, or failed with a reason.
    let half_written: Vec<_> = ledger
        .iter()
        .filter(|(_, (status, bucket, key, exp, failure))| {
            let issued = status == "issued"
                && bucket.is_some()
                && key.is_some()
                && exp.is_some()
                && failure.is_none();
            let failed = status == "failed" && failure.is_some();
            !(issued || failed)
        })
        .collect();
    let in_ledger: HashSet<i64> = ledger.keys().copied().collect();
    let unanswered = ledger.len() - distinct.intersection(&in_ledger).count();
    println!(
        "kill -9 on {}: answered {} ({} before the kill, {} after the restart), ids found {found}, \
         duplicates {duplicates}, ledger rows {}, rows never answered (in flight at the kill) \
         {unanswered}, half-written rows {}",
        db.kind,
        answered.len(),
        before,
        answered.len() - before,
        ledger.len(),
        half_written.len()
    );
    assert_eq!(duplicates, 0, "an objectId was handed out twice");
    assert_eq!(
        found,
        answered.len(),
        "an answered objectId is missing or differs"
    );
    assert!(
        half_written.is_empty(),
        "half-written rows: {half_written:?}"
    );
}

on_both_databases!(
    sigkill_under_load_loses_no_answered_object_id,
    killed_under_load_then_restarted
);
