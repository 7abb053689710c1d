//! Cloud type 4 (Baidu BOS) end to end against the fake STS and its BOS bucket (same port,
//! the bucket addressed as `stsgate-demo.bos.localhost` through `[providers] resolve`).

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use stsgate::config::ModuleConfig;
use stsgate::secret::Secret;

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::*;
use stsgate_fakes::baidu::{self, FakeSts};
use stsgate_fakes::Mode;

const BD_AK: &str = "bdfake0000example0001ak";
const BD_SK: &str = "bdFAKE/0000+EXAMPLE+secret/key=0001";
const BUCKET: &str = "stsgate-demo";
const Q_MP4: &str = "type=4&extension=mp4&isNeedCallback=1&uploadModule=resource_video";

/// The bucket's virtual host, resolved to the fake.
const BUCKET_HOST: &str = "stsgate-demo.bos.localhost";

/// The fake's address.
fn fake_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

async fn baidu_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut stsgate::config::Config),
) -> (Server, Arc<FakeSts>) {
    let fake = FakeSts::new(BD_AK, BD_SK);
    let url = fake.start().await;
    let addr = fake_addr(&url);
    let mut c = base_config(&db);
    c.providers.resolve.insert(BUCKET_HOST.into(), addr);
    let b = &mut c.providers.baidu;
    b.access_key_id = Secret::new(BD_AK);
    b.secret_access_key = Secret::new(BD_SK);
    b.sts_endpoint = url;
    b.region = "bj".into();
    b.bucket = BUCKET.into();
    b.bos_endpoint = format!("http://bos.localhost:{}", addr.port());
    b.timeout_ms = 300;
    b.connect_timeout_ms = 200;
    tweak(&mut c);
    (Server::start(db, c).await, fake)
}

/// The uploader's own client: it reaches the bucket host at the fake, as DNS would.
fn bucket_client(s: &Server) -> reqwest::Client {
    let port: u16 = s
        .state
        .config
        .providers
        .baidu
        .bos_endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let addr = *s.state.config.providers.resolve.get(BUCKET_HOST).unwrap();
    assert_eq!(addr.port(), port);
    reqwest::Client::builder()
        .resolve(BUCKET_HOST, addr)
        .build()
        .unwrap()
}

on_both_databases!(success_with_form_and_callback, success_body);
async fn success_body(db: Arc<Db>) {
    // The client's word is taken here (no object is uploaded); HEADs are tested below.
    let (s, fake) = baidu_server(db, |c| c.providers.baidu.verify_uploads = false).await;
    let a = s.sts("alice", Q_MP4).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert_form_answer_fields(d, true, true, true);
    let issued = fake.script.issued();
    assert_eq!(issued.len(), 1, "one STS call per issuance");
    let tok = &issued[0];
    assert_eq!(d["accessKeyId"], tok.access_key_id.as_str());
    assert_eq!(d["secretAccessKey"], tok.secret_access_key.as_str());
    assert_eq!(d["securityToken"], tok.session_token.as_str());
    assert_eq!(
        d["expiration"],
        tok.expiration.as_str(),
        "STS's own expiration"
    );
    assert_eq!(d["startTime"], tok.create_time.as_str());
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["region"], "bj");
    let endpoint = s.state.config.providers.baidu.bos_endpoint.clone();
    assert_eq!(d["endpoint"], endpoint.as_str());
    let key = d["relativePath"].as_str().unwrap();
    let id = d["objectId"].as_i64().unwrap();
    assert!(
        key.starts_with("test/resource/video/") && key.ends_with(".mp4"),
        "{key}"
    );

    // Least privilege: WRITE on exactly this key, for upload.duration_secs.
    assert_eq!(tok.duration_seconds, 3600);
    assert_eq!(
        tok.acl,
        json!({"accessControlList": [{"service": "bce:bos", "region": "bj", "effect": "Allow",
            "resource": [format!("{BUCKET}/{key}")], "permission": ["WRITE"]}]})
    );

    assert_eq!(
        d["form"]["url"],
        endpoint.replace("//bos.", "//stsgate-demo.bos.")
    );
    let fields = form_fields(d);
    assert_field_order(
        &a.text,
        &[
            "key",
            "accessKey",
            "x-bce-security-token",
            "Content-Type",
            "policy",
            "signature",
        ],
    );
    assert_eq!(fields.len(), 6);
    assert_eq!(
        fields.iter().find(|(k, _)| k == "Content-Type").unwrap().1,
        "video/mp4"
    );
    assert_eq!(fields.iter().find(|(k, _)| k == "key").unwrap().1, key);
    assert_eq!(fake.check_form(BUCKET, &fields, 1000), Ok(()));
    assert!(
        fake.check_form(BUCKET, &fields, 2 * 1024 * 1024 * 1024 + 1)
            .is_err(),
        "max_bytes"
    );
    let other_key = with_field(&fields, "key", &format!("{key}x"));
    assert!(fake.check_form(BUCKET, &other_key, 1000).is_err());
    let forged = with_field(&fields, "signature", &"0".repeat(64));
    assert_eq!(
        fake.check_form(BUCKET, &forged, 1000),
        Err("SignatureDoesNotMatch".into())
    );

    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.object_key.as_deref(), Some(key));
    assert_eq!(row.cloud_type, 4);
    // BOS callbacks are not used: the client calls back with its JWT.
    jwt_callback_round_trip(&s, "alice", d, 1).await;
    // No credential cache: the next issuance makes its own call and gets its own keys.
    let b = s.sts("alice", Q_MP4).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_ne!(b.body["data"]["accessKeyId"], d["accessKeyId"]);
    assert_eq!(fake.script.issued().len(), 2);
    assert_eq!(fake.script.rejected(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_dir_covers_the_prefix_only() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = baidu_server(db, |c| c.providers.baidu.duration_secs = Some(1800)).await;
    let a = s
        .sts(
            "alice",
            "type=4&extension=ts&isNeedCallback=0&uploadModule=resource_video&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert_form_answer_fields(d, true, false, false);
    let prefix = d["relativePath"].as_str().unwrap();
    assert!(prefix.ends_with('/'), "{prefix}");
    let tok = &fake.script.issued()[0];
    assert_eq!(tok.duration_seconds, 1800, "the section's duration_secs");
    assert_eq!(
        tok.acl["accessControlList"][0]["resource"],
        json!([format!("{BUCKET}/{prefix}*")])
    );
    let fields = form_fields(d);
    let inside = with_field(&fields, "key", &format!("{prefix}seg-0001.ts"));
    assert_eq!(fake.check_form(BUCKET, &inside, 10), Ok(()));
    let outside = with_field(&fields, "key", "test/resource/video/seg.ts");
    assert!(fake.check_form(BUCKET, &outside, 10).is_err());
    s.stop().await;
}

/// Each failure mode answers its documented code, and the ledger row is `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_modes_map_to_documented_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = baidu_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let mut cases: Vec<Case> = vec![
        (
            Mode::Error(400, "SignatureDoesNotMatch".into()),
            502,
            50201,
            Some("SignatureDoesNotMatch"),
        ),
        (
            Mode::Error(403, "AccessDenied".into()),
            502,
            50201,
            Some("AccessDenied"),
        ),
        (
            Mode::Error(400, "InappropriateJSON".into()),
            502,
            50201,
            Some("InappropriateJSON"),
        ),
        (Mode::Error(500, "InternalError".into()), 503, 50301, None),
        (
            Mode::Error(429, "RequestRateLimitExceeded".into()),
            503,
            50301,
            None,
        ),
    ];
    cases.extend(transport_cases());
    assert_failure_cases(&s, Q_MP4, 1, |m| fake.script.set_mode(m), cases).await;
    // One retryable answer is retried and then succeeds.
    assert_retried_once(
        &s,
        Q_MP4,
        &fake.script,
        Mode::ErrorTimes(500, "InternalError".into(), 1),
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_by_the_fake() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = baidu_server(db, |c| {
        c.providers.baidu.secret_access_key = Secret::new("not-the-right-secret");
    })
    .await;
    let a = s.sts("alice", Q_MP4).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .contains("SignatureDoesNotMatch"));
    assert!(!a.text.contains("not-the-right-secret"));
    assert_eq!(fake.script.rejected(), 1, "an auth failure is not retried");
    s.stop().await;
}

/// The fake's own bce-auth-v1 verifier agrees with every official SDK vector (honouring
/// the listed signedHeaders, so the Python SDK's quirk vector is refused in its Python form),
/// and refuses a request whose signature is altered by one byte.
#[tokio::test]
async fn fake_verifier_matches_vectors_and_rejects_one_altered_byte() {
    let file: Value =
        serde_json::from_str(include_str!("../vectors/baidu/baidu_bce_auth_v1.json")).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let (input, exp) = (&v["input"], &v["expected"]);
        let headers: Vec<(String, String)> = input["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let query = input["params"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| match v.as_str() {
                        Some(v) => format!("{k}={}", stsgate_fakes::common::rfc3986(v.as_bytes())),
                        None => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default();
        let prefix = exp["auth_string_prefix"].as_str().unwrap();
        for (form, auth) in [
            ("python", &exp["authorization"]),
            ("js", &exp["js_sdk_authorization"]),
        ] {
            let auth = auth.as_str().unwrap();
            let rest = auth.strip_prefix(&format!("{prefix}/")).unwrap();
            let (signed, signature) = rest.split_once('/').unwrap();
            let got = baidu::expected_signature(
                input["secret_key"].as_str().unwrap(),
                prefix,
                input["method"].as_str().unwrap(),
                input["raw_path"].as_str().unwrap(),
                &query,
                &headers,
                signed,
            );
            let quirk = v["python_sdk_quirk"] == true && form == "python";
            assert_eq!(got == signature, !quirk, "{} ({form})", v["name"]);
        }
        checked += 1;
    }
    assert_eq!(checked, 8);

    let fake = FakeSts::new(BD_AK, BD_SK);
    let url = fake.start().await;
    let host = url.trim_start_matches("http://").to_string();
    let body = br#"{"accessControlList":[{"service":"bce:bos","region":"bj","effect":"Allow","resource":["b/k"],"permission":["WRITE"]}]}"#;
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap();
    let prefix = format!("bce-auth-v1/{BD_AK}/{date}/1800");
    let len = body.len().to_string();
    let headers: Vec<(String, String)> = [
        ("content-length", len.as_str()),
        ("content-type", "application/json"),
        ("host", host.as_str()),
        ("x-bce-date", date.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signed = "content-length;content-type;host;x-bce-date";
    let good = baidu::expected_signature(
        BD_SK,
        &prefix,
        "POST",
        baidu::PATH,
        "durationSeconds=900",
        &headers,
        signed,
    );
    let send = |signature: String| {
        reqwest::Client::new()
            .post(format!("{url}{}?durationSeconds=900", baidu::PATH))
            .header("content-type", "application/json")
            .header("x-bce-date", &date)
            .header("authorization", format!("{prefix}/{signed}/{signature}"))
            .body(body.to_vec())
            .send()
    };
    let ok: Value = send(good.clone()).await.unwrap().json().await.unwrap();
    assert!(ok["sessionToken"].is_string(), "{ok}");
    let mut bad = good.into_bytes();
    bad[3] = if bad[3] == b'a' { b'b' } else { b'a' };
    let refused = send(String::from_utf8(bad).unwrap()).await.unwrap();
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "SignatureDoesNotMatch");
    assert_eq!(fake.script.rejected(), 1);
}

/// No Baidu key, temporary secret, session token, JWT or bce-auth-v1 `Authorization` reaches
/// a log line at `trace` level, through a success with its callback and every failure mode.
#[test]
fn no_baidu_secret_in_trace_logs() {
    let wrong = "wrong-baidu-secret-for-leak-test";
    let mut secrets: Vec<String> =
        vec![BD_SK.into(), BD_AK.into(), wrong.into(), JWT_SECRET.into()];
    let (mut issued, mut calls) = (0, 0);
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let (s, fake) = baidu_server(db.clone(), |c| {
            c.server.request_timeout_ms = 1200;
            c.providers.baidu.verify_uploads = false;
        })
        .await;
        let modes = vec![
            Mode::Error(400, "SignatureDoesNotMatch".into()),
            Mode::Error(403, "AccessDenied".into()),
            Mode::Error(429, "RequestRateLimitExceeded".into()),
            Mode::Error(500, "InternalError".into()),
            Mode::AltError(503, "ServiceUnavailable".into()),
            Mode::Http500,
            Mode::Malformed,
            Mode::Hang,
            Mode::ShortLived(10),
        ];
        let retried = Mode::ErrorTimes(500, "InternalError".into(), 1);
        let jwt = drive_through_every_mode(&s, Q_MP4, 1, &fake.script, modes, retried).await;
        s.stop().await;
        // A wrong configured secret: the fake refuses the signature.
        let (s2, fake2) = baidu_server(db.clone(), |c| {
            c.providers.baidu.secret_access_key = Secret::new(wrong);
        })
        .await;
        let a = s2
            .get(&format!("/upload/sts/info?{Q_MP4}"), Some(&jwt))
            .await;
        assert_eq!(a.code(), 50201, "{}", a.text);
        s2.stop().await;
        secrets.push(jwt);
        for tok in fake.script.issued() {
            issued += 1;
            secrets.push(tok.secret_access_key);
            secrets.push(tok.session_token);
        }
        // A presigned PUT and its HEAD-confirmed callback.
        let (s3, fake3) = baidu_server(db, |_| {}).await;
        let up = issue_mp4(&s3).await;
        let (status, text) = put_upload(&s3, &up, b"mp4-bytes").await;
        assert_eq!(status, 200, "{text}");
        let r = claim(&s3, up.id, &up.key, 9, "video/mp4").await;
        assert_eq!(r.status, 200, "{}", r.text);
        s3.stop().await;
        secrets.push(up.url.clone());
        let bucket_auths = fake3.bucket_authorizations();
        assert_eq!(bucket_auths.len(), 2, "the PUT and the HEAD");
        for auth in bucket_auths {
            secrets.push(auth.rsplit('/').next().unwrap().to_string());
            secrets.push(auth);
        }
        for tok in fake3.script.issued() {
            secrets.push(tok.secret_access_key);
            secrets.push(tok.session_token);
        }
        let (auths, n) = signed_calls(&[&fake.script, &fake2.script]);
        calls = n;
        for auth in auths {
            let signature = auth.rsplit('/').next().unwrap();
            assert_eq!(signature.len(), 64, "{auth}");
            secrets.push(signature.to_string());
            secrets.push(auth);
        }
    });
    assert_eq!(
        issued, 3,
        "the success, the retried call, the short-lived one"
    );
    assert!(
        calls >= 13,
        "a call per mode, two retried, the success, the wrong secret"
    );
    let markers = ["bce-auth-v1", "authorization: ", "Bearer "];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}

// ---- uploadUrl, the BOS form, and the HEAD that confirms a callback ----

/// One issued mp4 upload.
struct Upload {
    id: i64,
    key: String,
    url: String,
    headers: Vec<(String, String)>,
    form_url: String,
    fields: Vec<(String, String)>,
}

async fn issue_mp4(s: &Server) -> Upload {
    let a = s.sts("alice", Q_MP4).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    Upload {
        id: d["objectId"].as_i64().unwrap(),
        key: d["relativePath"].as_str().unwrap().to_string(),
        url: d["uploadUrl"].as_str().unwrap().to_string(),
        headers: d["uploadHeaders"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
        form_url: d["form"]["url"].as_str().unwrap().to_string(),
        fields: form_fields(d),
    }
}

/// PUTs `data` to `url` with `headers`; answers (status, body).
async fn put_to(s: &Server, url: &str, headers: &[(String, String)], data: &[u8]) -> (u16, String) {
    let mut req = bucket_client(s).put(url).body(data.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn put_upload(s: &Server, up: &Upload, data: &[u8]) -> (u16, String) {
    put_to(s, &up.url, &up.headers, data).await
}

/// POSTs the form with `data` as the file; answers (status, body).
async fn post_form(
    s: &Server,
    url: &str,
    fields: &[(String, String)],
    data: &[u8],
) -> (u16, String) {
    let (ct, body) =
        stsgate_fakes::multipart::multipart_body(fields, "clip.mp4", "video/mp4", data);
    let res = bucket_client(s)
        .post(url)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The client's callback for `id` claiming `size` bytes of `mime`.
async fn claim(s: &Server, id: i64, key: &str, size: usize, mime: &str) -> Answer {
    let body = format!(
        "objectId={id}&resourceType=1&bucket={BUCKET}&object={}&size={size}&mimeType={}",
        key.replace('/', "%2F"),
        mime.replace('/', "%2F")
    );
    s.callback_form(Some(&s.token("alice")), &body).await
}

fn calls(fake: &FakeSts, method: &str) -> usize {
    fake.buckets
        .calls()
        .iter()
        .filter(|(m, _)| m == method)
        .count()
}

fn bos_code(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    assert!(
        v["requestId"].is_string() && v["message"].is_string(),
        "BOS JSON: {text}"
    );
    v["code"].as_str().unwrap_or("").to_string()
}

/// Asserts the row and `/upload/objects/{id}` show the bucket's facts, `verifiedBy: head`.
async fn assert_head_verified(s: &Server, id: i64, data: &[u8], mime: &str) {
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(data.len() as i64));
    assert_eq!(row.mime.as_deref(), Some(mime));
    let etag = stsgate_fakes::bucket::etag(data);
    assert_eq!(row.etag.as_deref(), Some(etag.trim_matches('"')));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    let o = s
        .get(&format!("/upload/objects/{id}"), Some(&s.token("alice")))
        .await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["data"]["verifiedBy"], "head", "{}", o.text);
    assert_eq!(o.body["data"]["size"], data.len());
}

on_both_databases!(
    upload_url_put_then_callback_is_head_verified,
    upload_url_body
);
async fn upload_url_body(db: Arc<Db>) {
    let (s, fake) = baidu_server(db, |_| {}).await;
    let up = issue_mp4(&s).await;
    let token = fake.script.issued()[0].clone();
    // Exactly the key, at the bucket's virtual host, the token in the query.
    let port = fake_addr(&s.state.config.providers.baidu.sts_endpoint).port();
    let prefix = format!("http://{BUCKET_HOST}:{port}/{}?authorization=", up.key);
    assert!(up.url.starts_with(&prefix), "{}", up.url);
    assert!(up.url.contains(&format!(
        "&x-bce-security-token={}",
        stsgate_fakes::common::rfc3986(token.session_token.as_bytes())
    )));
    assert_eq!(
        up.headers,
        [("Content-Type".to_string(), "video/mp4".to_string())]
    );
    // Valid as long as the credentials: timestamp + lifetime = the token's expiration.
    let auth = fake_query_auth(&up.url);
    let parts: Vec<&str> = auth.split('/').collect();
    assert_eq!(parts[1], token.access_key_id);
    assert_eq!(parts[4], "content-type;host", "Content-Type is signed");
    let start =
        time::OffsetDateTime::parse(parts[2], &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp();
    let end = time::OffsetDateTime::parse(
        &token.expiration,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert_eq!(start + parts[3].parse::<i64>().unwrap(), end);

    let data = b"\x00\x00\x00\x18ftypmp42stsgate-bos";
    // The fake refuses what the URL does not allow.
    let (status, text) = put_to(&s, &up.url, &[], data).await;
    assert_eq!(
        (status, bos_code(&text).as_str()),
        (400, "SignatureDoesNotMatch"),
        "no Content-Type"
    );
    let wrong_type = [("Content-Type".to_string(), "text/html".to_string())];
    let (status, _) = put_to(&s, &up.url, &wrong_type, data).await;
    assert_eq!(status, 400, "another Content-Type");
    let other_key = up
        .url
        .replacen(&format!("/{}?", up.key), &format!("/{}x?", up.key), 1);
    let (status, _) = put_to(&s, &other_key, &up.headers, data).await;
    assert_eq!(status, 400, "another key");
    let mut forged = up.url.clone().into_bytes();
    let at = prefix.len() + 10;
    forged[at] = if forged[at] == b'a' { b'b' } else { b'a' };
    let (status, _) = put_to(&s, &String::from_utf8(forged).unwrap(), &up.headers, data).await;
    assert!(status == 400 || status == 403, "one byte changed: {status}");
    let last = up.url.find("&x-bce-security-token").unwrap() - 1;
    let mut forged = up.url.clone().into_bytes();
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let (status, text) = put_to(&s, &String::from_utf8(forged).unwrap(), &up.headers, data).await;
    assert_eq!(
        (status, bos_code(&text).as_str()),
        (400, "SignatureDoesNotMatch"),
        "signature byte"
    );
    assert!(fake.buckets.objects().is_empty(), "nothing stored so far");

    let (status, text) = put_upload(&s, &up, data).await;
    assert_eq!(status, 200, "{text}");
    let stored = fake.buckets.get(BUCKET, &up.key).unwrap();
    assert_eq!(stored.content_type.as_deref(), Some("video/mp4"));
    // The client claims another size and type; the record takes the bucket's.
    let r = claim(&s, up.id, &up.key, 999_999, "text/plain").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(calls(&fake, "HEAD"), 1);
    assert_head_verified(&s, up.id, data, "video/mp4").await;
    // A repeat changes nothing and asks nothing.
    let r = claim(&s, up.id, &up.key, 1, "video/mp4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        calls(&fake, "HEAD"),
        1,
        "a settled row is not asked about again"
    );
    // The HEAD carried the long-term key, listing what it signed.
    let head_auth = fake.bucket_authorizations().last().unwrap().clone();
    assert!(
        head_auth.starts_with(&format!("bce-auth-v1/{BD_AK}/"))
            && head_auth.contains("/1800/content-length;host;x-bce-date/"),
        "{head_auth}"
    );
    s.stop().await;
}

fn fake_query_auth(url: &str) -> String {
    let q = url.split_once('?').unwrap().1;
    let v = q
        .split('&')
        .find_map(|p| p.strip_prefix("authorization="))
        .unwrap();
    String::from_utf8(stsgate_fakes::common::unescape(v)).unwrap()
}

on_both_databases!(form_post_then_callback_is_head_verified, form_post_body);
async fn form_post_body(db: Arc<Db>) {
    let (s, fake) = baidu_server(db, |_| {}).await;
    let up = issue_mp4(&s).await;
    let data = b"\x00\x00\x00\x18ftypmp42form-upload";
    // A one-byte change of the signature is refused with BOS's JSON error.
    let mut bad = up.fields.clone();
    let sig = bad.iter_mut().find(|(k, _)| k == "signature").unwrap();
    let mut b = std::mem::take(&mut sig.1).into_bytes();
    b[0] = if b[0] == b'a' { b'b' } else { b'a' };
    sig.1 = String::from_utf8(b).unwrap();
    let (status, text) = post_form(&s, &up.form_url, &bad, data).await;
    assert_eq!(
        (status, bos_code(&text).as_str()),
        (400, "SignatureDoesNotMatch")
    );
    let other = with_field(&up.fields, "key", &format!("{}x", up.key));
    let (status, text) = post_form(&s, &up.form_url, &other, data).await;
    assert_eq!((status, bos_code(&text).as_str()), (403, "AccessDenied"));
    assert!(fake.buckets.objects().is_empty());

    let (status, text) = post_form(&s, &up.form_url, &up.fields, data).await;
    assert_eq!(status, 200, "{text}");
    let r = claim(&s, up.id, &up.key, 5, "video/mp4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(calls(&fake, "HEAD"), 1);
    assert_head_verified(&s, up.id, data, "video/mp4").await;
    assert_eq!(
        fake.bos_refusals(),
        ["SignatureDoesNotMatch", "AccessDenied"]
    );
    s.stop().await;
}

on_both_databases!(
    a_callback_for_an_object_never_uploaded_is_40903,
    never_uploaded_body
);
async fn never_uploaded_body(db: Arc<Db>) {
    let (s, fake) = baidu_server(db, |_| {}).await;
    let up = issue_mp4(&s).await;
    let r = claim(&s, up.id, &up.key, 10, "video/mp4").await;
    assert_eq!((r.status, r.code()), (409, 40903), "{}", r.text);
    assert_eq!(calls(&fake, "HEAD"), 1);
    assert_eq!(fake.bos_refusals(), ["NoSuchKey"]);
    let row = s.state.store.get_object(up.id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!((row.size, row.verified_by), (None, None));
    // Once the object is there, the same callback records it.
    let (status, text) = put_upload(&s, &up, b"late").await;
    assert_eq!(status, 200, "{text}");
    let r = claim(&s, up.id, &up.key, 10, "video/mp4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_head_verified(&s, up.id, b"late", "video/mp4").await;
    s.stop().await;
}

on_both_databases!(
    an_object_over_max_bytes_is_deleted_and_rejected,
    over_max_body
);
async fn over_max_body(db: Arc<Db>) {
    let (s, fake) = baidu_server(db, |c| {
        c.upload.modules.insert(
            "resource_video".into(),
            ModuleConfig {
                extensions: Some(vec!["mp4".into()]),
                max_bytes: Some(16),
            },
        );
    })
    .await;
    // Too large: put straight into the bucket, bypassing the URL and the form.
    let up = issue_mp4(&s).await;
    fake.buckets
        .put(BUCKET, &up.key, Some("video/mp4"), &[7u8; 17]);
    let r = claim(&s, up.id, &up.key, 10, "video/mp4").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert_eq!(calls(&fake, "DELETE"), 1);
    assert!(fake.buckets.get(BUCKET, &up.key).is_none(), "deleted");
    let row = s.state.store.get_object(up.id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.size, Some(17));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    // The form's content-length-range refuses the same bytes at the door.
    let up2 = issue_mp4(&s).await;
    let (status, text) = post_form(&s, &up2.form_url, &up2.fields, &[7u8; 17]).await;
    assert_eq!((status, bos_code(&text).as_str()), (403, "AccessDenied"));
    // A content type the module does not allow is rejected too.
    let up3 = issue_mp4(&s).await;
    fake.buckets
        .put(BUCKET, &up3.key, Some("text/html"), b"<html>");
    let r = claim(&s, up3.id, &up3.key, 6, "video/mp4").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(fake.buckets.get(BUCKET, &up3.key).is_none(), "deleted");
    // Within the rules: uploaded.
    let up4 = issue_mp4(&s).await;
    let (status, text) = put_upload(&s, &up4, &[7u8; 16]).await;
    assert_eq!(status, 200, "{text}");
    let r = claim(&s, up4.id, &up4.key, 16, "video/mp4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A delete BOS refuses is logged, not fatal: the row is still rejected.
    let up5 = issue_mp4(&s).await;
    fake.buckets
        .put(BUCKET, &up5.key, Some("video/mp4"), &[7u8; 40]);
    fake.buckets
        .set_delete_mode(Mode::Error(403, "AccessDenied".into()));
    let r = claim(&s, up5.id, &up5.key, 10, "video/mp4").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(fake.buckets.get(BUCKET, &up5.key).is_some(), "still there");
    let row = s.state.store.get_object(up5.id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    s.stop().await;
}

/// `verify_uploads = false`: the client's claim, `verifiedBy: client`, no HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verify_uploads_the_client_s_word_is_recorded() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = baidu_server(db, |c| c.providers.baidu.verify_uploads = false).await;
    let up = issue_mp4(&s).await;
    let r = claim(&s, up.id, &up.key, 1234, "video/mp4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(fake.buckets.calls().is_empty());
    let row = s.state.store.get_object(up.id).await.unwrap().unwrap();
    assert_eq!(row.size, Some(1234));
    assert_eq!(row.verified_by.as_deref(), Some("client"));
    s.stop().await;
}

/// A failing HEAD maps like any upstream call, and the row stays `issued`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_failures_map_to_the_upstream_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = baidu_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let up = issue_mp4(&s).await;
    let (status, text) = put_upload(&s, &up, b"mp4").await;
    assert_eq!(status, 200, "{text}");
    let cases: Vec<(Mode, u16, i64)> = vec![
        (Mode::Http500, 503, 50301),
        (Mode::Error(503, "ServiceUnavailable".into()), 503, 50301),
        (Mode::Error(403, "AccessDenied".into()), 502, 50201),
        (Mode::Hang, 504, 50401),
    ];
    for (mode, status, code) in cases {
        fake.buckets.set_head_mode(mode.clone());
        let before = calls(&fake, "HEAD");
        let r = claim(&s, up.id, &up.key, 3, "video/mp4").await;
        assert_eq!((r.status, r.code()), (status, code), "{mode:?}: {}", r.text);
        if status == 503 {
            assert!(calls(&fake, "HEAD") - before >= 2, "{mode:?} was retried");
            assert!(r.headers.contains_key("retry-after"), "{mode:?}");
        }
        if status == 502 {
            assert_eq!(calls(&fake, "HEAD") - before, 1, "{mode:?} is final");
        }
        let row = s.state.store.get_object(up.id).await.unwrap().unwrap();
        assert_eq!(row.status, "issued", "{mode:?}");
    }
    // One transient failure is retried and the callback succeeds.
    fake.buckets
        .set_head_mode(Mode::ErrorTimes(500, "InternalError".into(), 1));
    let r = claim(&s, up.id, &up.key, 3, "video/mp4").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_head_verified(&s, up.id, b"mp4", "video/mp4").await;
    s.stop().await;
}

/// The fake's HEAD verifier (its own bce-auth-v1 code) accepts stsgate's signature and
/// refuses one altered byte, a wrong secret, another access key and a stale date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_head_refuses_an_altered_signature() {
    use stsgate::providers::baidu::sign;
    let fake = FakeSts::new(BD_AK, BD_SK);
    let url = fake.start().await;
    let addr = fake_addr(&url);
    fake.buckets
        .put(BUCKET, "k/a b+c.mp4", Some("video/mp4"), b"12345");
    let target = sign::object_target(
        &format!("http://{BUCKET_HOST}:{}", addr.port()),
        "k/a b+c.mp4",
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .resolve(BUCKET_HOST, addr)
        .build()
        .unwrap();
    let head = |ak: &'static str, sk: &'static str, alter: bool, unix: i64| {
        let (client, target) = (client.clone(), target.clone());
        async move {
            let ts = stsgate::clock::rfc3339(unix);
            let signed = sign::sign_object_request(ak, sk, "HEAD", &target, &ts);
            let mut req = client.head(&signed.url);
            for (n, v) in signed.headers {
                let v = if alter && n == "authorization" {
                    let mut b = v.into_bytes();
                    let last = b.len() - 1;
                    b[last] = if b[last] == b'0' { b'1' } else { b'0' };
                    String::from_utf8(b).unwrap()
                } else {
                    v
                };
                req = req.header(n, v);
            }
            let res = req.send().await.unwrap();
            (
                res.status().as_u16(),
                res.headers()
                    .get("content-length")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(
        head(BD_AK, BD_SK, false, now).await,
        (200, Some("5".into()))
    );
    assert_eq!(head(BD_AK, BD_SK, true, now).await.0, 400);
    assert_eq!(head(BD_AK, "wrong-secret", false, now).await.0, 400);
    assert_eq!(head("otherak", BD_SK, false, now).await.0, 403);
    assert_eq!(head(BD_AK, BD_SK, false, now - 3600).await.0, 400);
    assert_eq!(
        fake.bos_refusals(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "RequestExpired"
        ]
    );
}
