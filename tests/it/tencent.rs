//! Cloud type 1 end to end against the fake LKE.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::{assert_failure_cases, post_form, put_upload, Case};
use stsgate_fakes::tencent;
use stsgate_fakes::Mode;

const Q_PDF: &str = "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp";

async fn tencent_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut stsgate::config::Config),
) -> (Server, Arc<tencent::FakeLke>) {
    let (fake, url) = fake_lke().await;
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    tweak(&mut c);
    (Server::start(db, c).await, fake)
}

on_both_databases!(
    success_shape_then_callback,
    success_shape_then_callback_body
);
async fn success_shape_then_callback_body(db: Arc<Db>) {
    let (s, fake) = tencent_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PDF).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["code"], 0);
    assert_eq!(a.body["message"], "");
    let d = &a.body["data"];
    let keys: HashSet<&str> = d.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let want: HashSet<&str> = [
        "accessKeyId",
        "secretAccessKey",
        "securityToken",
        "bucket",
        "endpoint",
        "region",
        "relativePath",
        "expiration",
        "startTime",
        "serverTime",
        "objectId",
        "callbackInfo",
        "policy",
        "signature",
        "form",
        "uploadUrl",
        "uploadHeaders",
    ]
    .into_iter()
    .collect();
    assert_eq!(
        keys, want,
        "exactly the docs/contract.md §1.3 fields, with the COS POST form and presigned PUT"
    );
    let issued = fake.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(d["accessKeyId"], issued[0].tmp_secret_id.as_str());
    assert_eq!(d["secretAccessKey"], issued[0].tmp_secret_key.as_str());
    assert_eq!(d["securityToken"], issued[0].token.as_str());
    assert_eq!(
        d["relativePath"],
        issued[0].upload_path.trim_start_matches('/')
    );
    assert_eq!(d["bucket"], "lke-offline-1250000000");
    assert_eq!(d["region"], "ap-guangzhou");
    // The COS POST form: for exactly the granted key, signed with the temporary key (checked
    // by the fake's own COS signature code), refused after a one-byte change.
    let form = &d["form"];
    assert_eq!(
        form["url"],
        "https://lke-offline-1250000000.cos.ap-guangzhou.myqcloud.com/"
    );
    let fields = &form["fields"];
    assert_eq!(fields["key"], d["relativePath"]);
    assert_eq!(fields["q-ak"], issued[0].tmp_secret_id.as_str());
    assert_eq!(fields["x-cos-security-token"], issued[0].token.as_str());
    // The stored object gets the extension's type, pinned by the policy.
    assert_eq!(fields["Content-Type"], "application/pdf");
    let policy: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            fields["policy"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(policy["conditions"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"Content-Type": "application/pdf"})));
    assert_eq!(d["signature"], fields["q-signature"]);
    tencent::verify_cos_post(&issued[0].tmp_secret_key, fields).unwrap();
    let mut altered = fields.clone();
    altered["key"] = serde_json::json!(format!("{}x", fields["key"].as_str().unwrap()));
    assert!(tencent::verify_cos_post(&issued[0].tmp_secret_key, &altered).is_err());
    // The presigned PUT: for exactly the key, with the token as a signed parameter and the
    // Content-Type as a signed header (the fake's own COS signature code).
    let put = d["uploadUrl"].as_str().unwrap();
    assert_eq!(
        d["uploadHeaders"],
        serde_json::json!({"Content-Type": "application/pdf"})
    );
    assert!(put.starts_with(&format!(
        "https://lke-offline-1250000000.cos.ap-guangzhou.myqcloud.com/{}?",
        d["relativePath"].as_str().unwrap()
    )));
    assert!(
        put.contains(&format!("x-cos-security-token={}", issued[0].token)),
        "{put}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ct = [("Content-Type", "application/pdf")];
    tencent::verify_cos_presigned(&issued[0].tmp_secret_key, "PUT", put, &ct, now).unwrap();
    let other_key = put.replacen(".pdf?", "x.pdf?", 1);
    assert!(
        tencent::verify_cos_presigned(&issued[0].tmp_secret_key, "PUT", &other_key, &ct, now)
            .is_err()
    );
    assert!(tencent::verify_cos_presigned(
        &issued[0].tmp_secret_key,
        "PUT",
        put,
        &[("Content-Type", "image/gif")],
        now
    )
    .is_err());
    assert!(
        tencent::verify_cos_presigned(&issued[0].tmp_secret_key, "GET", put, &ct, now).is_err()
    );
    assert_eq!(d["endpoint"], "https://cos.ap-guangzhou.myqcloud.com");
    for t in ["expiration", "startTime", "serverTime"] {
        let v = d[t].as_str().unwrap();
        assert!(v.ends_with('Z') && v.len() == 20, "{t}={v}");
    }
    let id = d["objectId"].as_i64().unwrap();
    assert!(id > 0);
    let cb = &d["callbackInfo"];
    assert_eq!(cb["callbackBodyType"], "application/x-www-form-urlencoded");
    assert_eq!(cb["callbackUrl"], "http://127.0.0.1:8080/upload/callback");
    assert_eq!(cb["customInfo"]["objectId"], id);
    assert_eq!(cb["customInfo"]["resourceType"], 6);
    assert_eq!(cb["callbackBody"], format!("objectId={id}&resourceType=6"));

    // The ledger row was committed before the answer.
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.owner, "alice");
    assert_eq!(row.object_key.as_deref(), d["relativePath"].as_str());
    assert_eq!(row.bucket.as_deref(), Some("lke-offline-1250000000"));

    let alice = s.token("alice");
    let o = s.get(&format!("/upload/objects/{id}"), Some(&alice)).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.body["data"]["status"], "issued");
    assert_eq!(o.body["data"]["type"], 1);

    // Callbacks: unsigned 401, someone else's 403, unknown 404, the owner's 200, repeat 200.
    let body =
        format!("objectId={id}&resourceType=6&size=1234&mimeType=application%2Fpdf&etag=%22e1%22");
    assert_eq!(s.callback_form(None, &body).await.code(), 40101);
    let bob = s.token("bob");
    let r = s.callback_form(Some(&bob), &body).await;
    assert_eq!((r.status, r.code()), (403, 40301));
    let r = s
        .callback_form(Some(&alice), "objectId=999999&resourceType=6")
        .await;
    assert_eq!((r.status, r.code()), (404, 40401));
    let r = s.callback_form(Some(&alice), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "uploaded");
    let first = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(first.status, "uploaded");
    assert_eq!(first.size, Some(1234));
    assert_eq!(first.mime.as_deref(), Some("application/pdf"));
    assert_eq!(first.etag.as_deref(), Some("e1"));
    let again = s
        .callback_form(
            Some(&alice),
            &format!("objectId={id}&resourceType=6&size=1"),
        )
        .await;
    assert_eq!(again.status, 200);
    let second = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(first, second, "a repeat changes nothing");
    // JSON callbacks work too, and a mismatching resourceType is refused.
    let r = s
        .send(
            s.http
                .post(format!("{}/upload/callback", s.base))
                .bearer_auth(&alice)
                .json(&serde_json::json!({"objectId": id, "resourceType": 1})),
        )
        .await;
    assert_eq!(r.code(), 40001);
    let o = s.get(&format!("/upload/objects/{id}"), Some(&bob)).await;
    assert_eq!((o.status, o.code()), (403, 40301));
    s.stop().await;
}

on_both_databases!(
    uploads_reach_the_lke_bucket_through_put_and_form,
    uploads_reach_the_bucket_body
);
/// `uploadUrl` (a `curl -T`-style PUT) and `form` (a multipart POST) both upload to the fake
/// COS bucket, which checks the signatures with its own code; the callback then records the
/// client's word (`verifiedBy: client`): stsgate has no key that reads LKE's bucket.
async fn uploads_reach_the_bucket_body(db: Arc<Db>) {
    let (s, fake) = tencent_server(db, |_| {}).await;
    let cos = fake.start_cos().await;
    let pdf = b"%PDF-1.7 stsgate presigned put";
    // PUT: a one-byte change of the signature is refused, the real URL stores the bytes.
    let a = s.sts("alice", Q_PDF).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = a.body["data"].clone();
    let key = d["relativePath"].as_str().unwrap().to_string();
    let url = d["uploadUrl"].as_str().unwrap();
    let at = url.find("q-signature=").unwrap() + "q-signature=".len();
    let mut bad = d.clone();
    let mut forged = url.to_string();
    forged.replace_range(at..at + 1, if &url[at..at + 1] == "0" { "1" } else { "0" });
    bad["uploadUrl"] = forged.into();
    let (status, text) = put_upload(&bad, pdf, Some(&cos)).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(fake.buckets.objects().is_empty());
    let (status, text) = put_upload(&d, pdf, Some(&cos)).await;
    assert_eq!(status, 200, "{text}");
    let o = fake.buckets.get(&fake.bucket, &key).expect("stored");
    assert_eq!(o.data, pdf);
    assert_eq!(o.content_type.as_deref(), Some("application/pdf"));
    // The single-use key cannot write another object.
    let mut other = d.clone();
    other["uploadUrl"] = url.replacen(".pdf?", "x.pdf?", 1).into();
    let (status, _) = put_upload(&other, pdf, Some(&cos)).await;
    assert_eq!(status, 403);
    let id = d["objectId"].as_i64().unwrap();
    let alice = s.token("alice");
    let r = s
        .callback_form(
            Some(&alice),
            &format!("objectId={id}&resourceType=6&size={}", pdf.len()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.verified_by.as_deref(), Some("client"));
    let o = s.get(&format!("/upload/objects/{id}"), Some(&alice)).await;
    assert_eq!(o.body["data"]["verifiedBy"], "client", "{}", o.text);

    // The POST Object form: refused over the size range or with another Content-Type,
    // stored as it is.
    let a = s.sts("alice", Q_PDF).await;
    let d = a.body["data"].clone();
    let key = d["relativePath"].as_str().unwrap().to_string();
    let fields: Vec<(String, String)> = d["form"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let form_url = d["form"]["url"].as_str().unwrap();
    let mut wrong_type = fields.clone();
    for f in wrong_type.iter_mut().filter(|(k, _)| k == "Content-Type") {
        f.1 = "text/html".into();
    }
    let (status, text) = post_form(
        form_url,
        &wrong_type,
        "a.pdf",
        "application/pdf",
        pdf,
        Some(&cos),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    let (status, text) = post_form(
        form_url,
        &fields,
        "a.pdf",
        "application/pdf",
        pdf,
        Some(&cos),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let o = fake
        .buckets
        .get(&fake.bucket, &key)
        .expect("stored by the form");
    assert_eq!(o.size, pdf.len());
    assert_eq!(o.content_type.as_deref(), Some("application/pdf"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_single_use() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = tencent_server(db, |c| c.providers.tencent.pool_size = 2).await;
    let mut ids = HashSet::new();
    let mut paths = HashSet::new();
    let mut objects = HashSet::new();
    for _ in 0..6 {
        let a = s.sts("alice", Q_PDF).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let d = &a.body["data"];
        assert!(
            ids.insert(d["accessKeyId"].as_str().unwrap().to_string()),
            "credential handed out twice"
        );
        assert!(paths.insert(d["relativePath"].as_str().unwrap().to_string()));
        assert!(objects.insert(d["objectId"].as_i64().unwrap()));
    }
    // Every credential handed out was issued by LKE exactly once.
    let issued: HashSet<String> = fake.issued().into_iter().map(|c| c.tmp_secret_id).collect();
    assert!(ids.is_subset(&issued));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_key_is_served_from_the_pool() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = tencent_server(db, |c| c.providers.tencent.pool_size = 2).await;
    let a = s.sts("alice", Q_PDF).await;
    assert_eq!(a.status, 200);
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, "stsgate_pool_misses_total{provider=\"tencent\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "stsgate_pool_hits_total{provider=\"tencent\"}"),
        0.0
    );
    // The refill fetches two more ahead of demand.
    assert!(
        eventually(Duration::from_secs(5), || fake.calls() >= 3).await,
        "pool refilled"
    );
    let calls_before = fake.calls();
    let b = s.sts("alice", Q_PDF).await;
    assert_eq!(b.status, 200);
    let served = b.body["data"]["accessKeyId"].as_str().unwrap().to_string();
    let pooled: Vec<String> = fake.issued()[..calls_before]
        .iter()
        .map(|c| c.tmp_secret_id.clone())
        .collect();
    assert!(
        pooled[1..].contains(&served),
        "served a credential fetched before the request"
    );
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, "stsgate_pool_hits_total{provider=\"tencent\"}"),
        1.0
    );
    assert!(metric(&m, "stsgate_pool_refills_total{provider=\"tencent\"}") >= 2.0);
    // A different key (extension) is a different pool: a miss.
    let c = s
        .sts(
            "alice",
            "type=1&extension=docx&isNeedCallback=0&uploadModule=directorytemp",
        )
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(
        metric(
            &s.metrics().await,
            "stsgate_pool_misses_total{provider=\"tencent\"}"
        ),
        2.0
    );
    s.stop().await;
}

on_both_databases!(burst_of_200_respects_the_budget, burst_body);
async fn burst_body(db: Arc<Db>) {
    let limit = 100;
    let (s, fake) = tencent_server(db, |c| {
        c.providers.tencent.rate_limit_per_sec = limit;
        c.providers.tencent.pool_size = 2;
        c.server.request_timeout_ms = 10_000;
    })
    .await;
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.sts(&format!("user{}", i % 7), Q_PDF).await
        }));
    }
    let mut ids = HashSet::new();
    let mut paths = HashSet::new();
    let mut keys = HashSet::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.text);
        let d = &a.body["data"];
        assert!(ids.insert(d["objectId"].as_i64().unwrap()));
        assert!(paths.insert(d["relativePath"].as_str().unwrap().to_string()));
        assert!(keys.insert(d["accessKeyId"].as_str().unwrap().to_string()));
    }
    assert_eq!(ids.len(), 200);
    let most = fake.max_calls_in_window(Duration::from_secs(1));
    assert!(
        most <= limit as usize,
        "fake saw {most} calls inside one second (limit {limit})"
    );
    assert!(fake.calls() >= 200);
    assert_eq!(fake.rejected(), 0);
}

/// Each failure mode answers its documented code, and the ledger row is `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_modes_map_to_documented_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = tencent_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let cases: Vec<Case<Mode>> = vec![
        (
            Mode::Error(200, "AuthFailure.SignatureFailure".into()),
            502,
            50201,
            Some("AuthFailure.SignatureFailure"),
        ),
        (
            Mode::Error(200, "InvalidParameter".into()),
            502,
            50201,
            Some("InvalidParameter"),
        ),
        (
            Mode::Error(200, "FailedOperation".into()),
            502,
            50201,
            Some("FailedOperation"),
        ),
        (
            Mode::Error(200, "ResourceNotFound".into()),
            502,
            50201,
            Some("ResourceNotFound"),
        ),
        (
            Mode::Error(200, "RequestLimitExceeded".into()),
            503,
            50301,
            None,
        ),
        (Mode::Error(200, "InternalError".into()), 503, 50301, None),
        (Mode::Http500, 503, 50301, None),
        (Mode::Malformed, 502, 50201, Some("HTTP 200")),
        (Mode::Hang, 504, 50401, None),
        (
            Mode::ShortLived(100),
            502,
            50201,
            Some("min_remaining_secs"),
        ),
        (Mode::NoUploadPath, 502, 50201, Some("UploadPath")),
    ];
    // Every request allocates a row that ends `failed`.
    assert_failure_cases(&s, Q_PDF, 1, |m| fake.set_mode(m), cases).await;
    // One transient InternalError is retried and succeeds.
    fake.set_mode(Mode::ErrorTimes(200, "InternalError".into(), 1));
    let a = s.sts("alice", Q_PDF).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cloud_is_503() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    // A port nothing listens on.
    let dead = format!("http://{}", free_addr());
    enable_tencent(&mut c, &dead);
    c.server.request_timeout_ms = 800;
    let s = Server::start(db, c).await;
    let a = s.sts("alice", Q_PDF).await;
    assert_eq!((a.status, a.code()), (503, 50301), "{}", a.text);
    assert!(a.headers.contains_key("retry-after"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_budget_is_503_with_retry_after() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = tencent_server(db, |c| {
        c.providers.tencent.rate_limit_per_sec = 1;
        c.server.request_timeout_ms = 600;
    })
    .await;
    let s = Arc::new(s);
    let (a, b) = tokio::join!(s.sts("alice", Q_PDF), s.sts("bob", Q_PDF));
    let mut statuses = vec![(a.status, a.code()), (b.status, b.code())];
    statuses.sort();
    assert_eq!(statuses, vec![(200, 0), (503, 50301)]);
    let refused = if a.status == 503 { &a } else { &b };
    assert!(
        refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(fake.calls(), 1, "the budget held the second call back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_by_the_fake() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = tencent_server(db, |c| {
        c.providers.tencent.secret_key = stsgate::secret::Secret::new("not-the-right-key");
    })
    .await;
    let a = s.sts("alice", Q_PDF).await;
    assert_eq!((a.status, a.code()), (502, 50201));
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .contains("AuthFailure.SignatureFailure"));
    assert_eq!(fake.rejected(), 1);
    assert!(!a.text.contains("not-the-right-key"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isdir_is_refused_for_tencent() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = tencent_server(db, |_| {}).await;
    let a = s
        .sts(
            "alice",
            "type=1&extension=pdf&isNeedCallback=0&uploadModule=directorytemp&isDir=1",
        )
        .await;
    assert_eq!((a.status, a.code()), (400, 40001));
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid parameter: isDir"));
    assert_eq!(fake.calls(), 0);
    s.stop().await;
}

/// The fake's own TC3 verifier agrees with the official SDK vectors, and refuses a
/// signature altered by one byte.
#[tokio::test]
async fn fake_verifier_matches_vectors_and_rejects_one_altered_byte() {
    let file: Value =
        serde_json::from_str(include_str!("../vectors/tencent/tencent_tc3.json")).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let i = &v["input"];
        let signed_default = v["expected"]["signed_headers"] == "content-type;host";
        if i["method"] != "POST" || i["unsigned_payload"] == true || !signed_default {
            continue;
        }
        let sig = tencent::expected_signature(
            i["secret_key"].as_str().unwrap(),
            i["host"].as_str().unwrap(),
            i["content_type"].as_str().unwrap(),
            i["body"].as_str().unwrap().as_bytes(),
            i["timestamp"].as_i64().unwrap(),
            i["service"].as_str().unwrap(),
        );
        assert_eq!(
            sig,
            v["expected"]["signature"].as_str().unwrap(),
            "{}",
            v["id"]
        );
        checked += 1;
    }
    assert_eq!(checked, 11, "POST vectors with the default signed headers");

    let (fake, url) = fake_lke().await;
    let host = url.trim_start_matches("http://").to_string();
    let body = br#"{"BotBizId":"1","FileType":"pdf","IsPublic":false,"TypeKey":"offline"}"#;
    let send = |signature: String| {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let date = time::OffsetDateTime::from_unix_timestamp(ts)
            .unwrap()
            .date();
        let auth = format!(
            "TC3-HMAC-SHA256 Credential={TC_SECRET_ID}/{}/lke/tc3_request, SignedHeaders=content-type;host, Signature={signature}",
            date
        );
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-tc-action", "DescribeStorageCredential")
            .header("x-tc-version", "2023-11-30")
            .header("x-tc-region", "ap-jakarta")
            .header("x-tc-timestamp", ts.to_string())
            .header("authorization", auth)
            .body(body.to_vec())
            .send()
    };
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let good =
        tencent::expected_signature(TC_SECRET_KEY, &host, "application/json", body, ts, "lke");
    let ok: Value = send(good.clone()).await.unwrap().json().await.unwrap();
    assert!(ok["Response"]["Credentials"].is_object(), "{ok}");
    let mut bad = good.into_bytes();
    bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
    let refused: Value = send(String::from_utf8(bad).unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        refused["Response"]["Error"]["Code"],
        "AuthFailure.SignatureFailure"
    );
    assert_eq!(fake.rejected(), 1);
}
