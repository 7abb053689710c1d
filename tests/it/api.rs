//! The HTTP contract of docs/contract.md §1.3–§1.5: envelopes, check order, parameters, auth,
//! idempotency, operations endpoints.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_databases;
use stsgate_fakes::tencent::FakeLke;

async fn server() -> (Server, Arc<FakeLke>) {
    let db = Arc::new(sqlite().await);
    let (fake, url) = fake_lke().await;
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    (Server::start(db, c).await, fake)
}

fn envelope(a: &Answer, status: u16, code: i64) {
    assert_eq!((a.status, a.code()), (status, code), "{}", a.text);
    let o = a.body.as_object().expect("JSON envelope");
    let keys: HashSet<&str> = o.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        HashSet::from(["code", "enMsg", "msg", "data"]),
        "{}",
        a.text
    );
    assert!(a.body["data"].is_null());
    assert!(!a.body["enMsg"].as_str().unwrap().is_empty());
    assert!(!a.body["msg"].as_str().unwrap().is_empty());
    assert!(a.headers.contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_an_envelope() {
    let (s, _) = server().await;
    let t = s.token("alice");
    envelope(&s.get("/nope", Some(&t)).await, 404, 40401);
    envelope(&s.get("/nope", None).await, 404, 40401);
    let del = s
        .send(
            s.http
                .delete(format!("{}/upload/sts/info", s.base))
                .bearer_auth(&t),
        )
        .await;
    envelope(&del, 405, 40501);
    let put = s
        .send(s.http.put(format!("{}/upload/callback", s.base)))
        .await;
    envelope(&put, 405, 40501);
    // Authentication
    let a = s.get("/upload/sts/info?type=1", None).await;
    envelope(&a, 401, 40101);
    assert_eq!(a.headers["www-authenticate"], "Bearer");
    let basic = s
        .send(
            s.http
                .get(format!("{}/upload/sts/info", s.base))
                .header("authorization", "Basic YTpi"),
        )
        .await;
    envelope(&basic, 401, 40101);
    envelope(
        &s.get("/upload/sts/info", Some("not.a.jwt")).await,
        401,
        40102,
    );
    let bare = s
        .send(
            s.http
                .get(format!("{}/upload/sts/info?type=9", s.base))
                .header("authorization", t.clone()),
        )
        .await;
    envelope(&bare, 400, 40001);
    let expired = mint_jwt(JWT_SECRET, "alice", 1_000_000);
    envelope(&s.get("/upload/sts/info", Some(&expired)).await, 401, 40102);
    let foreign = mint_jwt(
        "another-secret-entirely-0000000000",
        "alice",
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    envelope(&s.get("/upload/sts/info", Some(&foreign)).await, 401, 40102);
    envelope(&s.get("/upload/objects/abc", Some(&t)).await, 400, 40001);
    envelope(&s.get("/upload/objects/99", Some(&t)).await, 404, 40401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_in_the_documented_order() {
    let (s, fake) = server().await;
    let mut extra = serde_json::Map::new();
    extra.insert("projects".into(), json!([1, 2]));
    let t = s.token_with("alice", extra);
    let big = "x".repeat(20_000);
    // 401 before 413: no token and a huge body.
    let r = s
        .send(
            s.http
                .post(format!("{}/upload/sts/info", s.base))
                .body(big.clone()),
        )
        .await;
    envelope(&r, 401, 40101);
    // 413 before 40001.
    let r = s
        .send(
            s.http
                .post(format!("{}/upload/sts/info", s.base))
                .bearer_auth(&t)
                .body(big),
        )
        .await;
    envelope(&r, 413, 41301);
    // 40001 before 40002: type 2 is not enabled, but the module is missing.
    let r = s
        .get(
            "/upload/sts/info?type=2&extension=png&isNeedCallback=0",
            Some(&t),
        )
        .await;
    envelope(&r, 400, 40001);
    assert!(r.body["enMsg"].as_str().unwrap().contains("uploadModule"));
    // 40002 before 40003.
    let r = s
        .get(
            "/upload/sts/info?type=2&extension=exe&isNeedCallback=0&uploadModule=directorytemp",
            Some(&t),
        )
        .await;
    envelope(&r, 400, 40002);
    // 40003 before 40301.
    let r = s.get("/upload/sts/info?type=1&extension=mp4&isNeedCallback=0&uploadModule=resource_image&projectId=3", Some(&t)).await;
    envelope(&r, 400, 40003);
    let r = s
        .get(
            "/upload/sts/info?type=1&extension=exe&isNeedCallback=0&uploadModule=directorytemp",
            Some(&t),
        )
        .await;
    envelope(&r, 400, 40003);
    // 40301: projectId outside the token's projects.
    let r = s.get("/upload/sts/info?type=1&extension=json&isNeedCallback=0&uploadModule=bs_project&projectId=3", Some(&t)).await;
    envelope(&r, 403, 40301);
    assert_eq!(fake.calls(), 0, "nothing refused reached the cloud");
    // ... and inside it passes.
    let r = s.get("/upload/sts/info?type=1&extension=json&isNeedCallback=0&uploadModule=bs_project&projectId=2", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["data"].get("callbackInfo").is_none(),
        "isNeedCallback=0 has no callbackInfo"
    );
    // Malformed JSON is 40001.
    let r = s
        .send(
            s.http
                .post(format!("{}/upload/sts/info", s.base))
                .bearer_auth(&t)
                .body("{\"type\":"),
        )
        .await;
    envelope(&r, 400, 40001);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_from_query_get_body_and_post_body() {
    let (s, _) = server().await;
    let t = s.token("alice");
    // The seed's shape: GET with a JSON body and no Content-Type.
    let body = json!({"type": 1, "extension": "json", "isNeedCallback": 1, "uploadModule": "material_template", "uuid": "tpl-01", "platform": "web", "isDir": 0});
    let r = s
        .send(
            s.http
                .get(format!("{}/upload/sts/info", s.base))
                .bearer_auth(&t)
                .body(body.to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["data"]["objectId"].as_i64().unwrap();
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.platform.as_str(),
            row.upload_module.as_str(),
            row.extension.as_str()
        ),
        ("web", "material_template", "json")
    );
    assert_eq!(
        r.body["data"]["callbackInfo"]["customInfo"]["resourceType"],
        5
    );
    // POST with JSON; the body overrides the query field by field; "" is absent.
    let r = s
        .send(
            s.http
                .post(format!("{}/upload/sts/info?type=1&extension=zip&isNeedCallback=0&uploadModule=resource_image", s.base))
                .bearer_auth(&t)
                .header("content-type", "text/plain")
                .body(json!({"uploadModule": "directorytemp", "extension": "", "platform": ""}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s
        .state
        .store
        .get_object(r.body["data"]["objectId"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            row.upload_module.as_str(),
            row.extension.as_str(),
            row.platform.as_str()
        ),
        ("directorytemp", "zip", "app")
    );
    s.stop().await;
}

on_both_databases!(idempotency_key_semantics, idempotency_body);
async fn idempotency_body(db: Arc<Db>) {
    let (fake, url) = fake_lke().await;
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    let s = Arc::new(Server::start(db.clone(), c.clone()).await);
    let t = s.token("alice");
    let q = "/upload/sts/info?type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp";
    let with_key = |key: &'static str, path: &str| {
        s.http
            .get(format!("{}{path}", s.base))
            .bearer_auth(&t)
            .header("idempotency-key", key)
    };
    let a = s.send(with_key("order-1", q)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let b = s.send(with_key("order-1", q)).await;
    assert_eq!(b.status, 200);
    for f in [
        "objectId",
        "relativePath",
        "accessKeyId",
        "secretAccessKey",
        "securityToken",
        "expiration",
    ] {
        assert_eq!(a.body["data"][f], b.body["data"][f], "{f}");
    }
    assert_eq!(fake.calls(), 1, "a replay makes no upstream call");
    // Other parameters with the same key: 40901.
    let c409 = s
        .send(with_key(
            "order-1",
            "/upload/sts/info?type=1&extension=docx&isNeedCallback=1&uploadModule=directorytemp",
        ))
        .await;
    assert_eq!((c409.status, c409.code()), (409, 40901));
    // The same key for another user is another key.
    let other = s
        .send(
            s.http
                .get(format!("{}{q}", s.base))
                .bearer_auth(s.token("bob"))
                .header("idempotency-key", "order-1"),
        )
        .await;
    assert_eq!(other.status, 200);
    assert_ne!(other.body["data"]["objectId"], a.body["data"]["objectId"]);
    // Concurrent duplicates wait for the first: one allocation, one upstream call.
    let calls_before = fake.calls();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            s.send(s.http.get(format!("{}/upload/sts/info?type=1&extension=png&isNeedCallback=0&uploadModule=resource_image", s.base)).bearer_auth(&t).header("idempotency-key", "burst")).await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        ids.insert(r.body["data"]["objectId"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(fake.calls(), calls_before + 1);
    // Invalid key: 40001.
    let bad = s.send(with_key("has space", q)).await;
    assert_eq!((bad.status, bad.code()), (400, 40001));
    // After a restart the answer is gone: 40902, never a second allocation.
    let s = Arc::try_unwrap(s).ok().expect("no other holders");
    s.stop().await;
    let s2 = Server::start(db, c).await;
    let gone = s2
        .send(
            s2.http
                .get(format!("{}{q}", s2.base))
                .bearer_auth(&t)
                .header("idempotency-key", "order-1"),
        )
        .await;
    assert_eq!((gone.status, gone.code()), (409, 40902));
    let mismatch = s2.send(s2.http.get(format!("{}/upload/sts/info?type=1&extension=zip&isNeedCallback=0&uploadModule=directorytemp", s2.base)).bearer_auth(&t).header("idempotency-key", "order-1")).await;
    assert_eq!((mismatch.status, mismatch.code()), (409, 40901));
    s2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_issuance_frees_the_idempotency_key() {
    let (s, fake) = server().await;
    let t = s.token("alice");
    let q = format!(
        "{}/upload/sts/info?type=1&extension=pdf&isNeedCallback=0&uploadModule=directorytemp",
        s.base
    );
    fake.set_mode(stsgate_fakes::Mode::Error(200, "InvalidParameter".into()));
    let a = s
        .send(
            s.http
                .get(&q)
                .bearer_auth(&t)
                .header("idempotency-key", "k1"),
        )
        .await;
    assert_eq!(a.code(), 50201);
    fake.set_mode(stsgate_fakes::Mode::Ok);
    let b = s
        .send(
            s.http
                .get(&q)
                .bearer_auth(&t)
                .header("idempotency-key", "k1"),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints() {
    let (s, _) = server().await;
    let h = s.get("/healthz", None).await;
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    let r = s.get("/readyz", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ready")));
    s.sts(
        "alice",
        "type=1&extension=pdf&isNeedCallback=0&uploadModule=directorytemp",
    )
    .await;
    let m = s.metrics().await;
    for name in stsgate::metrics::DESCRIPTIONS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| {
            !n.contains("callbacks")
                && !n.contains("budget")
                && !n.contains("refills")
                && !n.contains("hits")
                && !n.contains("redis")
                // Webhooks are off here; tests/it/webhook.rs reads them.
                && !n.contains("webhook")
        })
    {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
    assert!(m.contains("stsgate_http_requests_total{route=\"/upload/sts/info\",method=\"GET\",status=\"200\"} 1"), "{m}");
    assert!(m.contains("stsgate_upstream_calls_total{provider=\"tencent\",outcome=\"ok\"}"));
    assert!(!m.contains("alice"), "no user in labels");
    let o = s.get("/openapi.yaml", None).await;
    assert_eq!(o.status, 200);
    assert_eq!(
        o.text,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap()
    );
    // x-request-id is generated, or propagated when given.
    let given = s
        .send(
            s.http
                .get(format!("{}/healthz", s.base))
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(given.headers["x-request-id"], "abc-123");
    assert!(!h.headers["x-request-id"].is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_stops_the_start_with_a_clear_message() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.database.url = format!("postgres://nobody:pw-secret@{}/none", free_addr());
    let err = stsgate::app::build(c, None).await.unwrap_err().to_string();
    assert!(err.starts_with("database:"), "{err}");
    assert!(!err.contains("pw-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_endpoint_shows_the_owner_their_record() {
    let (s, _) = server().await;
    let a = s
        .sts(
            "carol",
            "type=1&extension=png&isNeedCallback=1&uploadModule=resource_image",
        )
        .await;
    let id = a.body["data"]["objectId"].as_i64().unwrap();
    let t = s.token("carol");
    let o = s.get(&format!("/upload/objects/{id}"), Some(&t)).await;
    assert_eq!(o.status, 200);
    let d: &Value = &o.body["data"];
    assert_eq!(d["objectId"], id);
    assert_eq!(d["owner"], "carol");
    assert_eq!(d["uploadModule"], "resource_image");
    assert_eq!(d["relativePath"], a.body["data"]["relativePath"]);
    assert_eq!(d["expiresAt"], a.body["data"]["expiration"]);
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'));
    s.stop().await;
}
