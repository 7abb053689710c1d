//! The backend's side of an objectId (service scope, list, consume once), on SQLite and
//! PostgreSQL.

use std::sync::Arc;

use serde_json::{json, Value};
use stsgate::providers::embedded::config::StorageMode;
use stsgate::secret::Secret;
use stsgate::store::{FactSource, UploadFacts};

use crate::helpers::*;
use crate::on_both_databases;

const IMAGE: &str = "type=2&extension=png&isNeedCallback=0&uploadModule=resource_image";

async fn start(db: Arc<Db>) -> (Server, tempfile::TempDir) {
    let mut c = base_config(&db);
    let listen = free_addr();
    c.storage.mode = StorageMode::On;
    c.storage.public_url = format!("http://{listen}");
    c.storage.listen = listen;
    let dir = tempfile::tempdir().unwrap();
    c.storage.dir = dir.path().display().to_string();
    c.storage.secret = Secret::new("backend-test-store-key-0123456789abcdef");
    (Server::start(db, c).await, dir)
}

fn service_token(s: &Server, sub: &str) -> String {
    let mut extra = serde_json::Map::new();
    extra.insert("scope".into(), json!("openid stsgate:service"));
    s.token_with(sub, extra)
}

/// Issues an object for `sub`; `uploaded` marks it uploaded as the store would.
async fn object(s: &Server, sub: &str, uploaded: bool) -> i64 {
    let a = s.sts(sub, IMAGE).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["data"]["objectId"].as_i64().unwrap();
    if uploaded {
        let facts = UploadFacts {
            size: Some(10),
            mime: Some("image/png".into()),
            etag: Some("\"e\"".into()),
            source: FactSource::Store,
        };
        s.state.store.mark_uploaded(id, &facts, 1).await.unwrap();
    }
    id
}

async fn post(s: &Server, path: &str, token: &str, body: Option<Value>) -> Answer {
    let mut r = s.http.post(format!("{}{path}", s.base)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    s.send(r).await
}

/// user / service × own / other × every endpoint.
async fn service_scope_matrix(db: Arc<Db>) {
    let (s, _dir) = start(db).await;
    let alice = s.token("alice");
    let backend = service_token(&s, "backend");
    let mine = object(&s, "alice", true).await;
    let theirs = object(&s, "bob", true).await;

    // Reading one record: the owner yes, another user 40301, the service any.
    assert_eq!(
        s.get(&format!("/upload/objects/{mine}"), Some(&alice))
            .await
            .status,
        200
    );
    assert_eq!(
        s.get(&format!("/upload/objects/{theirs}"), Some(&alice))
            .await
            .code(),
        40301
    );
    for id in [mine, theirs] {
        let a = s
            .get(&format!("/upload/objects/{id}"), Some(&backend))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["data"]["objectId"], id);
    }
    // Listing and consuming: a user token, own object or not, is 40302.
    let a = s.get("/upload/objects", Some(&alice)).await;
    assert_eq!((a.status, a.code()), (403, 40302), "{}", a.text);
    for id in [mine, theirs] {
        let a = post(&s, &format!("/upload/objects/{id}/consume"), &alice, None).await;
        assert_eq!((a.status, a.code()), (403, 40302), "{}", a.text);
    }
    // A scope that merely contains the word is not the scope.
    let mut extra = serde_json::Map::new();
    extra.insert("scope".into(), json!("stsgate:service-admin"));
    let lookalike = s.token_with("mallory", extra);
    assert_eq!(
        s.get("/upload/objects", Some(&lookalike)).await.code(),
        40302
    );
    assert_eq!(s.get("/upload/objects", None).await.code(), 40101);
    // The service lists everyone's, filters by owner and status.
    let a = s.get("/upload/objects", Some(&backend)).await;
    let ids: Vec<i64> = a.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["objectId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![mine, theirs]);
    let a = s.get("/upload/objects?owner=bob", Some(&backend)).await;
    assert_eq!(a.body["data"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["data"]["items"][0]["owner"], "bob");
    // The service consumes anyone's uploaded object, once.
    let a = post(
        &s,
        &format!("/upload/objects/{theirs}/consume"),
        &backend,
        Some(json!({"ref": "resource-42"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["data"]["status"], "consumed");
    assert_eq!(a.body["data"]["consumedRef"], "resource-42");
    assert!(a.body["data"]["consumedAt"].is_string());
    let again = post(
        &s,
        &format!("/upload/objects/{theirs}/consume"),
        &backend,
        None,
    )
    .await;
    assert_eq!((again.status, again.code()), (409, 40904), "{}", again.text);
    let a = s
        .get("/upload/objects?status=consumed", Some(&backend))
        .await;
    assert_eq!(a.body["data"]["items"].as_array().unwrap().len(), 1);
    // The owner sees the consumed state too.
    let a = s
        .get(&format!("/upload/objects/{theirs}"), Some(&s.token("bob")))
        .await;
    assert_eq!(a.body["data"]["status"], "consumed");
    s.stop().await;
}
on_both_databases!(service_scope_covers_every_endpoint, service_scope_matrix);

async fn consume_rules(db: Arc<Db>) {
    let (s, _dir) = start(db).await;
    let backend = service_token(&s, "backend");
    let issued = object(&s, "alice", false).await;
    let a = post(
        &s,
        &format!("/upload/objects/{issued}/consume"),
        &backend,
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (409, 40904),
        "before the upload: {}",
        a.text
    );
    assert!(
        a.body["enMsg"].as_str().unwrap().contains("issued"),
        "{}",
        a.text
    );
    let a = post(&s, "/upload/objects/999999/consume", &backend, None).await;
    assert_eq!(a.code(), 40401);
    let up = object(&s, "alice", true).await;
    for bad in [
        json!({"ref": ""}),
        json!({"ref": "a\u{0}b"}),
        json!({"ref": "x".repeat(129)}),
        json!({"other": 1}),
        json!([1]),
    ] {
        let a = post(
            &s,
            &format!("/upload/objects/{up}/consume"),
            &backend,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(a.code(), 40001, "{bad}: {}", a.text);
    }
    // Nothing of a refused consume was written.
    let rec = s
        .get(&format!("/upload/objects/{up}"), Some(&backend))
        .await;
    assert_eq!(rec.body["data"]["status"], "uploaded");
    assert!(rec.body["data"].get("consumedRef").is_none());

    // Sixteen concurrent consumes of one object: exactly one 200, the rest 40904.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (http, base, token) = (s.http.clone(), s.base.clone(), backend.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/upload/objects/{up}/consume"))
                .bearer_auth(token)
                .json(&json!({"ref": format!("race-{i}")}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["code"].as_i64().unwrap())
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == (200, 0)).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == (409, 40904)).count(),
        15,
        "{outcomes:?}"
    );
    s.stop().await;
}
on_both_databases!(
    consume_happens_once_and_only_after_the_upload,
    consume_rules
);

async fn paging(db: Arc<Db>) {
    let (s, _dir) = start(db).await;
    let backend = service_token(&s, "backend");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(object(&s, if i % 2 == 0 { "alice" } else { "bob" }, i < 5).await);
    }
    // Pages of 3 by keyset; a row inserted between pages appears at the end, none twice.
    let mut seen = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let a = s
            .get(
                &format!("/upload/objects?limit=3&after={after}"),
                Some(&backend),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let items = a.body["data"]["items"].as_array().unwrap().clone();
        seen.extend(items.iter().map(|r| r["objectId"].as_i64().unwrap()));
        pages += 1;
        if pages == 1 {
            ids.push(object(&s, "carol", false).await);
        }
        match a.body["data"]["nextAfter"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let a = s
        .get(
            "/upload/objects?status=uploaded&owner=alice",
            Some(&backend),
        )
        .await;
    let n = a.body["data"]["items"].as_array().unwrap().len();
    assert_eq!(n, 3, "{}", a.text);
    for bad in [
        "limit=0",
        "limit=1001",
        "after=-1",
        "status=lost",
        "owner=x&owner=y",
        "sort=id",
    ] {
        assert_eq!(
            s.get(&format!("/upload/objects?{bad}"), Some(&backend))
                .await
                .code(),
            40001,
            "{bad}"
        );
    }
    s.stop().await;
}
on_both_databases!(listing_pages_by_keyset, paging);
