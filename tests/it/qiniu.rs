//! Cloud type 0 (Qiniu) end to end. No upstream call: the answer's upload token is checked
//! with this file's own HMAC-SHA1 and base64 code, and every callback Qiniu would send is
//! signed here, independently of the crate's `sign.rs`/`callback.rs`, in both the `QBox`
//! and the `Qiniu` form.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::assert_form_answer_fields;

const QN_AK: &str = "AKqiniuITaccess0123456789";
const QN_SK: &str = "SKqiniuITsecret/+=0123456789abcdef";
const BUCKET: &str = "stsgate-it";
const FORM: &str = "application/x-www-form-urlencoded";
const Q_PNG: &str = "type=0&extension=png&isNeedCallback=1&uploadModule=resource_image";

// ---- an independent Qiniu signer, written from the protocol notes ----

/// `b64url(HMAC-SHA1(sk, data))`, URL-safe alphabet with padding.
fn qn_sign(sk: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(sk.as_bytes()).unwrap();
    mac.update(data);
    base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes())
}

/// `QBox AK:sign` over `path "\n" body` (the body only for form-encoded callbacks).
fn qbox(ak: &str, sk: &str, path: &str, content_type: &str, body: &str) -> String {
    let mut data = format!("{path}\n");
    if content_type == FORM {
        data.push_str(body);
    }
    format!("QBox {ak}:{}", qn_sign(sk, data.as_bytes()))
}

/// `Qiniu AK:sign` over method, path, Host, Content-Type, sorted `X-Qiniu-*` headers, body.
fn qiniu_v2(
    ak: &str,
    sk: &str,
    path: &str,
    host: &str,
    x_qiniu: &[(&str, &str)],
    body: &str,
) -> String {
    let mut data = format!("POST {path}\nHost: {host}\nContent-Type: {FORM}");
    let mut headers = x_qiniu.to_vec();
    headers.sort();
    for (name, value) in headers {
        data.push_str(&format!("\n{name}: {value}"));
    }
    data.push_str("\n\n");
    data.push_str(body);
    format!("Qiniu {ak}:{}", qn_sign(sk, data.as_bytes()))
}

/// The put policy inside an upload token, after checking the token's signature.
fn checked_policy(token: &str) -> Value {
    let parts: Vec<&str> = token.splitn(3, ':').collect();
    assert_eq!(parts.len(), 3, "AK:sign:policy");
    assert_eq!(parts[0], QN_AK);
    assert_eq!(
        parts[1],
        qn_sign(QN_SK, parts[2].as_bytes()),
        "token signature"
    );
    let json = base64::engine::general_purpose::URL_SAFE
        .decode(parts[2])
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// The form body Qiniu posts after expanding `callbackBody` (values URL-encoded).
fn expanded(id: i64, resource_type: u8, bucket: &str, key: &str, size: u64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("objectId", &id.to_string())
        .append_pair("resourceType", &resource_type.to_string())
        .append_pair("bucket", bucket)
        .append_pair("object", key)
        .append_pair("size", &size.to_string())
        .append_pair("mimeType", "image/png")
        .append_pair("etag", "FmDZwqadA4-ib_15hYfQpb7UXUYR");
    s.finish()
}

fn rfc3339(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

fn enable_qiniu(c: &mut stsgate::config::Config) {
    let q = &mut c.providers.qiniu;
    q.access_key = stsgate::secret::Secret::new(QN_AK);
    q.secret_key = stsgate::secret::Secret::new(QN_SK);
    q.bucket = BUCKET.into();
}

async fn qiniu_server(db: Arc<Db>, tweak: impl FnOnce(&mut stsgate::config::Config)) -> Server {
    let mut c = base_config(&db);
    enable_qiniu(&mut c);
    tweak(&mut c);
    Server::start(db, c).await
}

/// POSTs a cloud-signed callback.
async fn qiniu_callback(
    s: &Server,
    authorization: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut r = s
        .http
        .post(format!("{}/upload/callback", s.base))
        .header("authorization", authorization)
        .header("content-type", content_type)
        .body(body.to_string());
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    s.send(r).await
}

/// Issues a token for `query` and returns (objectId, relativePath, put policy).
async fn issue(s: &Server, query: &str) -> (i64, String, Value) {
    let a = s.sts("alice", query).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let policy = checked_policy(d["securityToken"].as_str().unwrap());
    (
        d["objectId"].as_i64().unwrap(),
        d["relativePath"].as_str().unwrap().to_string(),
        policy,
    )
}

on_both_databases!(
    token_then_signed_callbacks,
    token_then_signed_callbacks_body
);
async fn token_then_signed_callbacks_body(db: Arc<Db>) {
    let s = qiniu_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    // no startTime: an upload token has none.
    assert_form_answer_fields(d, false, true, false);
    assert!(!a.text.contains(QN_SK), "the secret key never leaves");
    assert_eq!(d["accessKeyId"], QN_AK);
    assert_eq!(d["secretAccessKey"], "");
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["endpoint"], "https://upload.qiniup.com");
    assert_eq!(d["region"], "z0");
    let id = d["objectId"].as_i64().unwrap();
    let key = d["relativePath"].as_str().unwrap();
    assert!(
        key.starts_with("test/resource/image/") && key.ends_with(".png"),
        "{key}"
    );
    assert!(key.contains(&format!("/{id}/")), "{key}");

    // The put policy pins exactly this object until `expiration`.
    let token = d["securityToken"].as_str().unwrap();
    let policy = checked_policy(token);
    let expiration = rfc3339(d["expiration"].as_str().unwrap());
    let server_time = rfc3339(d["serverTime"].as_str().unwrap());
    assert!((3599..=3601).contains(&(expiration - server_time)));
    let callback_body = format!(
        "objectId={id}&resourceType=2&bucket=$(bucket)&object=$(key)&size=$(fsize)\
         &mimeType=$(mimeType)&etag=$(etag)"
    );
    assert_eq!(
        policy,
        json!({
            "scope": format!("{BUCKET}:{key}"),
            "deadline": expiration,
            "insertOnly": 1,
            "fsizeLimit": 20_971_520,
            "mimeLimit": "image/*",
            "callbackUrl": "http://127.0.0.1:8080/upload/callback",
            "callbackBody": callback_body,
            "callbackBodyType": FORM,
        })
    );
    let cb = &d["callbackInfo"];
    assert_eq!(cb["callbackUrl"], "http://127.0.0.1:8080/upload/callback");
    assert_eq!(cb["callbackBodyType"], FORM);
    assert_eq!(cb["callbackBody"], callback_body.as_str());
    assert_eq!(cb["customInfo"], json!({"objectId": id, "resourceType": 2}));
    assert!(cb.get("callback").is_none() && cb.get("callbackVar").is_none());
    assert_eq!(
        d["form"],
        json!({"url": "https://upload.qiniup.com", "fields": {"key": key, "token": token}})
    );
    let (_, sign, encoded) = {
        let p: Vec<&str> = token.splitn(3, ':').collect();
        (p[0], p[1], p[2])
    };
    assert_eq!(
        (d["signature"].as_str(), d["policy"].as_str()),
        (Some(sign), Some(encoded))
    );
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.bucket.as_deref(), Some(BUCKET));
    assert_eq!(row.object_key.as_deref(), Some(key));
    assert_eq!(row.expires_at, Some(expiration));

    // Callbacks as Qiniu sends them (QBox legacy form).
    let path = "/upload/callback";
    let body = expanded(id, 2, BUCKET, key, 2048);
    let good = qbox(QN_AK, QN_SK, path, FORM, &body);
    let mut refused = 0;
    // A body changed in one byte, with the original signature.
    let tampered = body.replace("size=2048", "size=2049");
    let r = qiniu_callback(&s, &good, FORM, &[], &tampered).await;
    assert_eq!((r.status, r.code()), (401, 40102), "{}", r.text);
    refused += 1;
    // The signature changed in one byte.
    let mut altered = good.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let r = qiniu_callback(&s, &altered, FORM, &[], &body).await;
    assert_eq!((r.status, r.code()), (401, 40102));
    refused += 1;
    // Another key pair, and our access key with another secret.
    for auth in [
        qbox("AKother", QN_SK, path, FORM, &body),
        qbox(QN_AK, "another-secret", path, FORM, &body),
    ] {
        let r = qiniu_callback(&s, &auth, FORM, &[], &body).await;
        assert_eq!((r.status, r.code()), (401, 40102));
        refused += 1;
    }
    // QBox does not sign a JSON body: a validly signed JSON callback is still refused.
    let json_body = json!({"objectId": id, "resourceType": 2, "bucket": BUCKET, "object": key,
                           "size": 99_999_999})
    .to_string();
    let r = qiniu_callback(
        &s,
        &qbox(QN_AK, QN_SK, path, "application/json", &json_body),
        "application/json",
        &[],
        &json_body,
    )
    .await;
    assert_eq!((r.status, r.code()), (401, 40102));
    refused += 1;
    assert_eq!(
        s.state.store.get_object(id).await.unwrap().unwrap().status,
        "issued",
        "no refused callback changed the ledger"
    );

    let r = qiniu_callback(&s, &good, FORM, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        json!({"objectId": id, "status": "uploaded"})
    );
    let first = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(first.status, "uploaded");
    assert_eq!(first.size, Some(2048));
    assert_eq!(first.mime.as_deref(), Some("image/png"));
    assert_eq!(first.etag.as_deref(), Some("FmDZwqadA4-ib_15hYfQpb7UXUYR"));
    // Qiniu retries callbacks: a repeat answers 200 and changes nothing.
    let r = qiniu_callback(&s, &good, FORM, &[], &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(first, s.state.store.get_object(id).await.unwrap().unwrap());

    let alice = s.token("alice");
    let o = s.get(&format!("/upload/objects/{id}"), Some(&alice)).await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["data"]["status"], "uploaded");
    assert_eq!(o.body["data"]["type"], 0);

    let m = s.metrics().await;
    let metric_of = |outcome: &str| {
        metric(
            &m,
            &format!("stsgate_callbacks_total{{origin=\"qiniu\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(metric_of("bad_signature"), f64::from(refused));
    assert_eq!(metric_of("marked"), 1.0);
    assert_eq!(metric_of("repeat"), 1.0);
    s.stop().await;
}

on_both_databases!(
    v2_signature_and_ledger_match,
    v2_signature_and_ledger_match_body
);
async fn v2_signature_and_ledger_match_body(db: Arc<Db>) {
    let s = qiniu_server(db, |_| {}).await;
    let (id, key, _) = issue(&s, Q_PNG).await;
    let (path, host) = ("/upload/callback", "127.0.0.1:8080");
    let x_qiniu = [("X-Qiniu-Date", "20250101T000005Z")];
    let send = |body: String| {
        let auth = qiniu_v2(QN_AK, QN_SK, path, host, &x_qiniu, &body);
        let s = &s;
        async move {
            qiniu_callback(
                s,
                &auth,
                FORM,
                &[("host", host), ("x-qiniu-date", "20250101T000005Z")],
                &body,
            )
            .await
        }
    };
    // Validly signed, but reporting another object or bucket than the ledger's: 403.
    let r = send(expanded(id, 2, BUCKET, &format!("{key}.other"), 1)).await;
    assert_eq!((r.status, r.code()), (403, 40301), "{}", r.text);
    let r = send(expanded(id, 2, "other-bucket", &key, 1)).await;
    assert_eq!((r.status, r.code()), (403, 40301));
    // Unknown objectId: 404.
    let r = send(expanded(id + 1000, 2, BUCKET, &key, 1)).await;
    assert_eq!((r.status, r.code()), (404, 40401));
    // A signed X-Qiniu-* header changed in transit: 401.
    let body = expanded(id, 2, BUCKET, &key, 77);
    let auth = qiniu_v2(QN_AK, QN_SK, path, host, &x_qiniu, &body);
    let r = qiniu_callback(
        &s,
        &auth,
        FORM,
        &[("host", host), ("x-qiniu-date", "20250101T000006Z")],
        &body,
    )
    .await;
    assert_eq!((r.status, r.code()), (401, 40102));
    assert_eq!(
        s.state.store.get_object(id).await.unwrap().unwrap().status,
        "issued"
    );
    let r = send(body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.size), ("uploaded", Some(77)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_upload_is_a_prefix_scope() {
    let db = Arc::new(sqlite().await);
    let s = qiniu_server(db, |_| {}).await;
    let a = s
        .sts(
            "alice",
            "type=0&extension=mp4&isNeedCallback=1&uploadModule=resource_video&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let id = d["objectId"].as_i64().unwrap();
    let prefix = d["relativePath"].as_str().unwrap();
    assert!(prefix.ends_with(&format!("/{id}/")), "{prefix}");
    let policy = checked_policy(d["securityToken"].as_str().unwrap());
    assert_eq!(policy["scope"], format!("{BUCKET}:{prefix}"));
    assert_eq!(policy["isPrefixalScope"], 1);
    assert_eq!(policy["insertOnly"], 1);
    assert_eq!(policy["fsizeLimit"], 2_147_483_648u64);
    assert_eq!(policy["mimeLimit"], "video/*");
    assert_eq!(d["form"]["fields"]["key"], prefix);
    // The callback of a file under the prefix is accepted; the bare prefix is not an object.
    let path = "/upload/callback";
    let bare = expanded(id, 1, BUCKET, prefix, 1);
    let r = qiniu_callback(&s, &qbox(QN_AK, QN_SK, path, FORM, &bare), FORM, &[], &bare).await;
    assert_eq!((r.status, r.code()), (403, 40301));
    let body = expanded(id, 1, BUCKET, &format!("{prefix}seg-001.mp4"), 9);
    let r = qiniu_callback(&s, &qbox(QN_AK, QN_SK, path, FORM, &body), FORM, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_callback_means_no_callback_in_the_policy() {
    let db = Arc::new(sqlite().await);
    let s = qiniu_server(db, |_| {}).await;
    let a = s
        .sts(
            "alice",
            "type=0&extension=zip&isNeedCallback=0&uploadModule=directorytemp",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert!(d.get("callbackInfo").is_none());
    let policy = checked_policy(d["securityToken"].as_str().unwrap());
    let fields: HashSet<&str> = policy
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        fields,
        ["scope", "deadline", "insertOnly", "fsizeLimit"]
            .into_iter()
            .collect(),
        "no mimeLimit for zip, no callback"
    );
    assert_eq!(policy["fsizeLimit"], 104_857_600);
    s.stop().await;
}

// Behind a reverse proxy that rewrites path and Host, Qiniu signs the public callback URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_signed_for_the_public_url_behind_a_proxy() {
    let db = Arc::new(sqlite().await);
    let s = qiniu_server(db, |c| {
        c.server.public_base_url = "https://api.example.com/gw".into();
    })
    .await;
    let (id, key, policy) = issue(&s, Q_PNG).await;
    assert_eq!(
        policy["callbackUrl"],
        "https://api.example.com/gw/upload/callback"
    );
    let body = expanded(id, 2, BUCKET, &key, 5);
    let wrong = qiniu_v2(
        QN_AK,
        QN_SK,
        "/elsewhere/upload/callback",
        "api.example.com",
        &[],
        &body,
    );
    let r = qiniu_callback(&s, &wrong, FORM, &[], &body).await;
    assert_eq!((r.status, r.code()), (401, 40102));
    let auth = qiniu_v2(
        QN_AK,
        QN_SK,
        "/gw/upload/callback",
        "api.example.com",
        &[],
        &body,
    );
    let r = qiniu_callback(&s, &auth, FORM, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_qiniu_refuses_tokens_and_callbacks() {
    let db = Arc::new(sqlite().await);
    let s = Server::start(db.clone(), base_config(&db)).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (400, 40002));
    let body = "objectId=1&resourceType=2";
    let auth = qbox(QN_AK, QN_SK, "/upload/callback", FORM, body);
    let r = qiniu_callback(&s, &auth, FORM, &[], body).await;
    assert_eq!((r.status, r.code()), (401, 40102));
    s.stop().await;
}

#[test]
fn partial_section_and_short_lifetime_stop_the_start() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = sqlite().await;
        let mut c = base_config(&db);
        c.providers.qiniu.access_key = stsgate::secret::Secret::new(QN_AK);
        let err = stsgate::app::build(c.clone(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.qiniu.secret_key"), "{err}");
        enable_qiniu(&mut c);
        c.providers.qiniu.duration_secs = Some(120);
        let err = stsgate::app::build(c, None).await.unwrap_err().to_string();
        assert!(err.contains("providers.qiniu.duration_secs"), "{err}");
        assert!(!err.contains(QN_SK) && !err.contains(QN_AK), "{err}");
    });
}

// The secret key, the upload tokens, the JWT and the callback signatures never reach a log
// line, at trace level, through success, refusal and mismatch.
#[test]
fn no_secret_in_trace_logs() {
    let mut secrets: Vec<String> = vec![QN_SK.into(), JWT_SECRET.into()];
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let s = qiniu_server(db, |_| {}).await;
        secrets.push(s.token("alice"));
        let a = s.sts("alice", Q_PNG).await;
        assert_eq!(a.status, 200);
        let d = &a.body["data"];
        let token = d["securityToken"].as_str().unwrap().to_string();
        secrets.push(token.split(':').nth(1).unwrap().to_string());
        secrets.push(token);
        let id = d["objectId"].as_i64().unwrap();
        let key = d["relativePath"].as_str().unwrap().to_string();
        let path = "/upload/callback";
        for (bucket, secret) in [(BUCKET, "wrong-secret"), ("other", QN_SK), (BUCKET, QN_SK)] {
            let body = expanded(id, 2, bucket, &key, 3);
            let auth = qbox(QN_AK, secret, path, FORM, &body);
            secrets.push(auth.split(':').nth(1).unwrap().to_string());
            qiniu_callback(&s, &auth, FORM, &[], &body).await;
        }
        s.stop().await;
    });
    assert!(
        text.contains("upload recorded"),
        "the capture saw the server's logs"
    );
    assert!(text.contains("callback"), "refusals were logged");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret reached the logs");
    }
}

on_both_databases!(
    cloud_facts_replace_a_client_claim_never_the_reverse,
    cloud_facts_replace_a_client_claim_never_the_reverse_body
);
/// The owner's JWT callback claims size 1; the genuine Qiniu-signed callback then reports
/// 4096 and wins; a later client claim changes nothing.
async fn cloud_facts_replace_a_client_claim_never_the_reverse_body(db: Arc<Db>) {
    let s = qiniu_server(db, |_| {}).await;
    let (id, key, _) = issue(&s, Q_PNG).await;
    let alice = s.token("alice");
    let r = s
        .callback_form(
            Some(&alice),
            &format!("objectId={id}&resourceType=2&size=1&mimeType=image%2Fpng"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(
        (row.size, row.verified_by.as_deref()),
        (Some(1), Some("client"))
    );
    let body = expanded(id, 2, BUCKET, &key, 4096);
    let auth = qbox(QN_AK, QN_SK, "/upload/callback", FORM, &body);
    let r = qiniu_callback(&s, &auth, FORM, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.size, row.verified_by.as_deref()),
        ("uploaded", Some(4096), Some("cloud-callback"))
    );
    let r = s
        .callback_form(
            Some(&alice),
            &format!("objectId={id}&resourceType=2&size=7"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.state.store.get_object(id).await.unwrap().unwrap(), row);
    // A cloud-signed callback for a key that is not the row's is refused.
    let other = expanded(id, 2, BUCKET, &format!("{key}.other"), 4096);
    let auth = qbox(QN_AK, QN_SK, "/upload/callback", FORM, &other);
    let r = qiniu_callback(&s, &auth, FORM, &[], &other).await;
    assert_eq!((r.status, r.code()), (403, 40301), "{}", r.text);
}

// ---- end to end through the fake Qiniu upload host ----

/// A 1×1 PNG.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
/// `max_bytes` of `resource_image` in the end-to-end test: the put policy's `fsizeLimit`.
const E2E_MAX_BYTES: u64 = 4096;

/// Forwards every connection to `listener` to `target` (`http://127.0.0.1:port`): the public
/// address Qiniu calls back. The server's `public_base_url` is fixed before the server (and
/// its port) exists, so the test binds the public port first and forwards it, as a load
/// balancer in front of stsgate would (Host and path arrive unchanged).
fn forward(listener: tokio::net::TcpListener, target: &str) {
    let target = target.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

/// POSTs the answer's `form` as a browser does: its fields (the token replaced when
/// `token` is given), then the file. Answers (status, JSON body).
async fn post_form(
    http: &reqwest::Client,
    form: &Value,
    token: Option<&str>,
    data: &[u8],
) -> (u16, Value) {
    let fields: Vec<(String, String)> = form["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match (k.as_str(), token) {
                ("token", Some(t)) => t.to_string(),
                _ => v.as_str().unwrap().to_string(),
            };
            (k.clone(), v)
        })
        .collect();
    let (ct, body) = stsgate_fakes::multipart::multipart_body(&fields, "a.png", "image/png", data);
    let res = http
        .post(form["url"].as_str().unwrap())
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("the fake upload host answers");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The fake upload host, and stsgate using it as `upload_host` with the fake's key pair,
/// called back at a forwarded public port; `resource_image` limited to [`E2E_MAX_BYTES`].
/// Answers (fake, server, public base URL, upload host).
async fn e2e_server(db: Arc<Db>) -> (Arc<stsgate_fakes::qiniu::FakeQiniu>, Server, String, String) {
    let fake = stsgate_fakes::qiniu::FakeQiniu::new(QN_AK, QN_SK, BUCKET);
    let upload_host = fake.start().await;
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", front.local_addr().unwrap());
    let s = qiniu_server(db, |c| {
        c.server.public_base_url = public.clone();
        c.providers.qiniu.upload_host = upload_host.clone();
        c.upload.modules.insert(
            "resource_image".into(),
            stsgate::config::ModuleConfig {
                max_bytes: Some(E2E_MAX_BYTES),
                ..Default::default()
            },
        );
    })
    .await;
    forward(front, &s.base);
    (fake, s, public, upload_host)
}

on_both_databases!(
    form_upload_to_the_fake_qiniu_calls_back,
    form_upload_to_the_fake_qiniu_calls_back_body
);
/// Type 0 with a callback, end to end: the browser POSTs the answer's `form` to the fake
/// upload host, which checks the token and put policy with its own code, stores the file
/// and calls stsgate back (QBox-signed) at `public_base_url`; the uploader gets stsgate's
/// answer relayed. Before that, a forged token (401) and a file over the module's
/// `max_bytes` (413, `fsizeLimit`) are refused by the fake, store nothing and leave the
/// row `issued`; after it, the `insertOnly` token cannot overwrite (614).
async fn form_upload_to_the_fake_qiniu_calls_back_body(db: Arc<Db>) {
    let (fake, s, public, upload_host) = e2e_server(db).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let id = d["objectId"].as_i64().unwrap();
    let key = d["relativePath"].as_str().unwrap().to_string();
    let form = d["form"].clone();
    assert_eq!(form["url"], upload_host.as_str());
    let token = form["fields"]["token"].as_str().unwrap().to_string();
    let policy = checked_policy(&token);
    assert_eq!(policy["fsizeLimit"], E2E_MAX_BYTES);
    let callback_url = format!("{public}/upload/callback");
    assert_eq!(policy["callbackUrl"], callback_url.as_str());
    let row_status = || async { s.state.store.get_object(id).await.unwrap().unwrap().status };
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_1X1)
        .unwrap();

    // A token changed in one byte of its signature: 401 from the fake, nothing stored.
    let mut forged = token.clone().into_bytes();
    let at = QN_AK.len() + 3;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (status, answer) = post_form(&s.http, &form, Some(&forged), &png).await;
    assert_eq!((status, answer), (401, json!({"error": "bad token"})));
    // A PNG one byte over the module's max_bytes: 413 (fsizeLimit), nothing stored.
    let mut big = png.clone();
    big.resize(E2E_MAX_BYTES as usize + 1, 0);
    let (status, answer) = post_form(&s.http, &form, None, &big).await;
    assert_eq!(
        (status, answer),
        (413, json!({"error": "exceed FsizeLimit"}))
    );
    assert!(fake.buckets.objects().is_empty(), "nothing stored");
    assert!(
        fake.callbacks().is_empty(),
        "no callback for a refused upload"
    );
    assert_eq!(row_status().await, "issued");

    // The genuine upload: stored, called back, stsgate's answer relayed to the uploader.
    let (status, answer) = post_form(&s.http, &form, None, &png).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["code"], 0, "{answer}");
    assert_eq!(
        answer["data"],
        json!({"objectId": id, "status": "uploaded"})
    );
    let stored = fake.buckets.get(BUCKET, &key).expect("the fake stored it");
    assert_eq!(stored.data, png);
    assert_eq!(stored.content_type.as_deref(), Some("image/png"));
    let sent = fake.callbacks();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].url.as_str(), sent[0].status),
        (callback_url.as_str(), 200)
    );
    assert!(sent[0].authorization.starts_with(&format!("QBox {QN_AK}:")));
    assert_eq!(sent[0].content_type, FORM);
    let etag = stsgate_fakes::qiniu::qetag(&png);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(png.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("image/png"));
    assert_eq!(row.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(row.verified_by.as_deref(), Some("cloud-callback"));

    // insertOnly: the same token cannot overwrite; the row does not change.
    let (status, answer) = post_form(&s.http, &form, None, &big[..100]).await;
    assert_eq!((status, answer), (614, json!({"error": "file exists"})));
    assert_eq!(fake.buckets.get(BUCKET, &key).unwrap().data, png);
    assert_eq!(row, s.state.store.get_object(id).await.unwrap().unwrap());
    assert_eq!(fake.uploads(), 1);
    s.stop().await;
}

/// `isDir` through the fake: the token's prefix scope lets the uploader name any key under
/// the prefix (the fake stores it and stsgate accepts the callback); a key outside the prefix
/// is refused by the fake (403); the bare prefix is stored by the fake but refused by
/// stsgate's callback (403), which the fake reports as Qiniu does (579).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_form_upload_to_the_fake_qiniu() {
    let (fake, s, _, _) = e2e_server(Arc::new(sqlite().await)).await;
    let a = s
        .sts(
            "alice",
            "type=0&extension=mp4&isNeedCallback=1&uploadModule=resource_video&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let id = d["objectId"].as_i64().unwrap();
    let prefix = d["relativePath"].as_str().unwrap().to_string();
    let mut form = d["form"].clone();
    // An MP4 header: the fake sniffs video/mp4, inside the policy's `video/*`.
    let mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isomfake-video-bytes".to_vec();

    form["fields"]["key"] = json!("elsewhere/seg-001.mp4");
    let (status, answer) = post_form(&s.http, &form, None, &mp4).await;
    assert_eq!(
        (status, answer),
        (403, json!({"error": "key doesn't match with scope"}))
    );
    assert!(fake.buckets.objects().is_empty());

    form["fields"]["key"] = json!(prefix.clone());
    let (status, answer) = post_form(&s.http, &form, None, &mp4).await;
    assert_eq!(status, 579, "{answer}");
    assert_eq!(answer["error"], "callback failed: HTTP 403");
    assert_eq!(fake.callbacks()[0].status, 403);
    assert_eq!(
        s.state.store.get_object(id).await.unwrap().unwrap().status,
        "issued"
    );

    let key = format!("{prefix}seg-001.mp4");
    form["fields"]["key"] = json!(key.clone());
    let (status, answer) = post_form(&s.http, &form, None, &mp4).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["data"],
        json!({"objectId": id, "status": "uploaded"})
    );
    assert_eq!(fake.buckets.get(BUCKET, &key).unwrap().data, mp4);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(mp4.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("video/mp4"));
    assert_eq!(row.verified_by.as_deref(), Some("cloud-callback"));
    s.stop().await;
}
