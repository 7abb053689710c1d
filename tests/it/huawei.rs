//! Cloud type 6 (Huawei OBS) end to end against the fake IAM.

use std::sync::Arc;

use serde_json::{json, Value};
use stsgate::secret::Secret;

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::*;
use stsgate_fakes::huawei::{self, FakeIam};
use stsgate_fakes::Mode;

const HW_AK: &str = "HWFAKEAK0000EXAMPLE01";
const HW_SK: &str = "hwFAKE/0000+EXAMPLE+secret/key=0001";
const DOMAIN_ID: &str = "0123456789abcdef0123456789abcdef";
const BUCKET: &str = "stsgate-demo";
const Q_PNG: &str = "type=6&extension=png&isNeedCallback=1&uploadModule=resource_image";

/// The OBS endpoint host the tests use: `{bucket}.obs.fake.test` resolves to the fake
/// (`[providers] resolve`), which reads the bucket from `Host`.
const OBS_HOST: &str = "obs.fake.test";

async fn huawei_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut stsgate::config::Config),
) -> (Server, Arc<FakeIam>) {
    let fake = FakeIam::with_bucket(HW_AK, HW_SK, DOMAIN_ID, BUCKET);
    let url = fake.start().await;
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let mut c = base_config(&db);
    let h = &mut c.providers.huawei;
    h.access_key_id = Secret::new(HW_AK);
    h.secret_access_key = Secret::new(HW_SK);
    h.domain_id = DOMAIN_ID.into();
    h.iam_endpoint = url;
    h.region = "cn-north-4".into();
    h.bucket = BUCKET.into();
    h.obs_endpoint = format!("http://{OBS_HOST}:{}", addr.port());
    h.timeout_ms = 300;
    h.connect_timeout_ms = 200;
    c.providers
        .resolve
        .insert(format!("{BUCKET}.{OBS_HOST}"), addr);
    tweak(&mut c);
    (Server::start(db, c).await, fake)
}

/// The port of an answer's form URL (`http://{bucket}.obs.fake.test:{port}`).
fn obs_port(d: &Value) -> u16 {
    let url = reqwest::Url::parse(d["form"]["url"].as_str().unwrap()).unwrap();
    url.port().unwrap()
}

/// A client (as a browser or `curl --resolve` would be) reaching the fake bucket's host.
fn obs_client(d: &Value) -> reqwest::Client {
    reqwest::Client::builder()
        .resolve(
            &format!("{BUCKET}.{OBS_HOST}"),
            std::net::SocketAddr::from(([127, 0, 0, 1], obs_port(d))),
        )
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

on_both_databases!(success_with_form_and_callback, success_body);
async fn success_body(db: Arc<Db>) {
    let (s, fake) = huawei_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert_form_answer_fields(d, false, true, true);
    let issued = fake.script.issued();
    assert_eq!(issued.len(), 1, "one IAM call per issuance");
    let cred = &issued[0];
    assert_eq!(d["accessKeyId"], cred.access.as_str());
    assert_eq!(d["secretAccessKey"], cred.secret.as_str());
    assert_eq!(d["securityToken"], cred.token.as_str());
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["region"], "cn-north-4");
    let port = obs_port(d);
    assert_eq!(d["endpoint"], format!("http://{OBS_HOST}:{port}"));
    // expiration is IAM's expires_at, its fraction truncated.
    assert_eq!(
        d["expiration"].as_str().unwrap(),
        cred.expires_at.replace(".123000Z", "Z")
    );
    let key = d["relativePath"].as_str().unwrap();
    let id = d["objectId"].as_i64().unwrap();
    assert!(
        key.starts_with("test/resource/image/") && key.ends_with(".png"),
        "{key}"
    );
    assert!(key.contains(&format!("/{id}/")), "{key}");

    // Least privilege: upload and multipart actions on exactly this key, for upload.duration_secs.
    assert_eq!(cred.duration_seconds, 3600);
    assert_eq!(
        cred.policy,
        json!({"Version": "1.1", "Statement": [{"Effect": "Allow",
            "Action": ["obs:object:PutObject", "obs:object:AbortMultipartUpload",
                "obs:object:ListMultipartUploadParts"],
            "Resource": [format!("OBS:*:*:object:{BUCKET}/{key}")]}]})
    );

    // The browser form: OBS's own field names, in order, accepted by the fake's OBS check.
    assert_eq!(
        d["form"]["url"],
        format!("http://{BUCKET}.{OBS_HOST}:{port}")
    );
    let fields = form_fields(d);
    assert_field_order(
        &a.text,
        &[
            "key",
            "AccessKeyId",
            "x-obs-security-token",
            "Content-Type",
            "policy",
            "signature",
        ],
    );
    assert_eq!(fields.len(), 6);
    assert_eq!(
        fields.iter().find(|(k, _)| k == "Content-Type").unwrap().1,
        "image/png"
    );
    assert_eq!(fields.iter().find(|(k, _)| k == "key").unwrap().1, key);
    assert_eq!(fake.check_form(BUCKET, &fields, 1000), Ok(()));
    assert!(
        fake.check_form(BUCKET, &fields, 20 * 1024 * 1024 + 1)
            .is_err(),
        "max_bytes"
    );
    let other_key = with_field(&fields, "key", &format!("{key}.exe"));
    assert!(fake.check_form(BUCKET, &other_key, 1000).is_err());
    let forged = with_field(&fields, "signature", "X/z/Z6qUIA7a3Z/2cqCYWLSZ6h8=");
    assert_eq!(
        fake.check_form(BUCKET, &forged, 1000),
        Err("SignatureDoesNotMatch".into())
    );
    assert!(fake.check_form("other-bucket", &fields, 1000).is_err());

    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.bucket.as_deref(), Some(BUCKET));
    assert_eq!(row.object_key.as_deref(), Some(key));
    assert_eq!(row.cloud_type, 6);
    // OBS's native callback is not verified: the client calls back with its JWT, and the
    // bucket's HEAD confirms the object (put here directly: 1000 bytes).
    fake.buckets
        .put(BUCKET, key, Some("image/png"), &[7u8; 1000]);
    jwt_callback_round_trip(&s, "alice", d, 2).await;
    assert_eq!(heads(&fake, "HEAD"), 1);
    // No credential cache: the next issuance makes its own call and gets its own keys.
    let b = s.sts("alice", Q_PNG).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_ne!(b.body["data"]["accessKeyId"], d["accessKeyId"]);
    assert_eq!(fake.script.issued().len(), 2);
    assert_eq!(fake.script.rejected(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_dir_covers_the_prefix_only() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = huawei_server(db, |c| c.providers.huawei.duration_secs = Some(900)).await;
    let a = s
        .sts(
            "alice",
            "type=6&extension=png&isNeedCallback=0&uploadModule=resource_image&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert_form_answer_fields(d, false, false, false);
    let prefix = d["relativePath"].as_str().unwrap();
    assert!(prefix.starts_with("test/resource/image/") && prefix.ends_with('/'));
    let cred = &fake.script.issued()[0];
    assert_eq!(cred.duration_seconds, 900, "the section's duration_secs");
    assert_eq!(
        cred.policy["Statement"][0]["Resource"],
        json!([format!("OBS:*:*:object:{BUCKET}/{prefix}*")])
    );
    let fields = form_fields(d);
    let inside = with_field(&fields, "key", &format!("{prefix}frame-0001.png"));
    assert_eq!(fake.check_form(BUCKET, &inside, 10), Ok(()));
    let outside = with_field(&fields, "key", "test/resource/image/other.png");
    assert!(fake.check_form(BUCKET, &outside, 10).is_err());
    s.stop().await;
}

/// Each failure mode answers its documented code, and the ledger row is `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_modes_map_to_documented_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = huawei_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let mut cases: Vec<Case> = vec![
        (
            Mode::Error(401, "APIGW.0301".into()),
            502,
            50201,
            Some("APIGW.0301"),
        ),
        (
            Mode::Error(400, "IAM.0011".into()),
            502,
            50201,
            Some("IAM.0011"),
        ),
        (
            Mode::AltError(403, "Forbidden".into()),
            502,
            50201,
            Some("403 Forbidden"),
        ),
        (Mode::Error(429, "APIGW.0308".into()), 503, 50301, None),
        (Mode::Error(500, "IAM.0006".into()), 503, 50301, None),
        (
            Mode::AltError(503, "Service Unavailable".into()),
            503,
            50301,
            None,
        ),
    ];
    cases.extend(transport_cases());
    assert_failure_cases(&s, Q_PNG, 1, |m| fake.script.set_mode(m), cases).await;
    // One retryable answer is retried and then succeeds.
    assert_retried_once(
        &s,
        Q_PNG,
        &fake.script,
        Mode::ErrorTimes(429, "APIGW.0308".into(), 1),
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_or_domain_is_refused_by_the_fake() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = huawei_server(db.clone(), |c| {
        c.providers.huawei.secret_access_key = Secret::new("not-the-right-secret");
    })
    .await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert!(a.body["enMsg"].as_str().unwrap().contains("APIGW.0301"));
    assert!(!a.text.contains("not-the-right-secret"));
    assert_eq!(fake.script.rejected(), 1, "an auth failure is not retried");
    s.stop().await;

    let (s, fake) = huawei_server(db, |c| c.providers.huawei.domain_id = String::new()).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert_eq!(fake.script.rejected(), 1);
    s.stop().await;
}

/// The fake's own SDK-HMAC-SHA256 verifier agrees with every official SDK vector, and
/// refuses a request whose signature is altered by one byte.
#[tokio::test]
async fn fake_verifier_matches_vectors_and_rejects_one_altered_byte() {
    let file: Value = serde_json::from_str(include_str!(
        "../vectors/huawei/huawei_sdk_hmac_sha256.json"
    ))
    .unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let exp = &v["expected"];
        let sent = exp.get("final_headers").unwrap_or(&exp["headers"]);
        let headers: Vec<(String, String)> = sent
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let auth = exp["authorization"].as_str().unwrap();
        let (_, signed, signature) = huawei::parse_authorization(auth).unwrap();
        let method = v["input"]["method"]
            .as_str()
            .or(exp["method"].as_str())
            .unwrap();
        let uri = exp["request_uri"].as_str().or(exp["uri"].as_str()).unwrap();
        let body = v["input"]["body"]
            .as_str()
            .or(exp["body"].as_str())
            .unwrap_or("");
        let sk = v["input"]["secret_key"].as_str().unwrap();
        let got = huawei::expected_signature(sk, method, uri, &headers, signed, body.as_bytes());
        assert_eq!(got, signature, "{}", v["name"]);
        checked += 1;
    }
    assert_eq!(checked, 10);

    let fake = FakeIam::new(HW_AK, HW_SK, DOMAIN_ID);
    let url = fake.start().await;
    let host = url.trim_start_matches("http://").to_string();
    let body = br#"{"auth":{"identity":{"methods":["token"],"token":{"duration_seconds":900},"policy":{"Version":"1.1","Statement":[{"Effect":"Allow","Action":["obs:object:PutObject"],"Resource":["OBS:*:*:object:b/k"]}]}}}}"#;
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let headers: Vec<(String, String)> = [
        ("content-type", "application/json;charset=UTF-8"),
        ("host", host.as_str()),
        ("x-domain-id", DOMAIN_ID),
        ("x-sdk-date", date.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signed = "content-type;host;x-domain-id;x-sdk-date";
    let good = huawei::expected_signature(HW_SK, "POST", huawei::PATH, &headers, signed, body);
    let send = |signature: String| {
        let mut r = reqwest::Client::new()
            .post(format!("{url}{}", huawei::PATH))
            .body(body.to_vec())
            .header(
                "authorization",
                format!(
                    "SDK-HMAC-SHA256 Access={HW_AK}, SignedHeaders={signed}, Signature={signature}"
                ),
            );
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            r = r.header(k, v);
        }
        r.send()
    };
    let ok = send(good.clone()).await.unwrap();
    assert_eq!(ok.status(), 201);
    let ok: Value = ok.json().await.unwrap();
    assert!(ok["credential"]["securitytoken"].is_string(), "{ok}");
    let mut bad = good.into_bytes();
    bad[7] = if bad[7] == b'0' { b'1' } else { b'0' };
    let refused = send(String::from_utf8(bad).unwrap()).await.unwrap();
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error_code"], "APIGW.0301");
    assert_eq!(fake.script.rejected(), 1);
}

/// No Huawei key, temporary secret, token, JWT or SDK-HMAC-SHA256 `Authorization` reaches a
/// log line at `trace` level, through a success with its callback and every failure mode.
#[test]
fn no_huawei_secret_in_trace_logs() {
    let wrong = "wrong-huawei-secret-for-leak-test";
    let mut secrets: Vec<String> =
        vec![HW_SK.into(), HW_AK.into(), wrong.into(), JWT_SECRET.into()];
    let (mut issued, mut calls) = (0, 0);
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let (s, fake) = huawei_server(db.clone(), |c| {
            c.server.request_timeout_ms = 1200;
            c.providers.huawei.verify_uploads = false;
        })
        .await;
        let modes = vec![
            Mode::Error(401, "APIGW.0301".into()),
            Mode::Error(400, "IAM.0011".into()),
            Mode::Error(429, "APIGW.0308".into()),
            Mode::AltError(403, "Forbidden".into()),
            Mode::AltError(503, "Service Unavailable".into()),
            Mode::Http500,
            Mode::Malformed,
            Mode::Hang,
            Mode::ShortLived(10),
        ];
        let retried = Mode::ErrorTimes(429, "APIGW.0308".into(), 1);
        let jwt = drive_through_every_mode(&s, Q_PNG, 2, &fake.script, modes, retried).await;
        s.stop().await;
        // A wrong configured secret: the fake refuses the signature.
        let (s2, fake2) = huawei_server(db.clone(), |c| {
            c.providers.huawei.secret_access_key = Secret::new(wrong);
        })
        .await;
        let a = s2
            .get(&format!("/upload/sts/info?{Q_PNG}"), Some(&jwt))
            .await;
        assert_eq!(a.code(), 50201, "{}", a.text);
        s2.stop().await;
        secrets.push(jwt);
        for cred in fake.script.issued() {
            issued += 1;
            secrets.push(cred.secret);
            secrets.push(cred.token);
        }
        // A presigned PUT and its callback (the long-term-key HEAD), then a rejected
        // upload's DELETE.
        let (s3, fake3) = huawei_server(db, |_| {}).await;
        let d = issue_png(&s3).await;
        let (status, text) = put_upload(&d, txt(&d, "uploadUrl"), b"\x89PNG").await;
        assert_eq!(status, 200, "{text}");
        let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
        assert_eq!(claim(&s3, id, key, 4, "image/png").await.status, 200);
        let d2 = issue_png(&s3).await;
        let key2 = txt(&d2, "relativePath");
        fake3
            .buckets
            .put(BUCKET, key2, Some("text/html"), b"<html>");
        let id2 = d2["objectId"].as_i64().unwrap();
        assert_eq!(claim(&s3, id2, key2, 6, "image/png").await.code(), 40904);
        assert_eq!((heads(&fake3, "HEAD"), heads(&fake3, "DELETE")), (2, 1));
        s3.stop().await;
        for d in [&d, &d2] {
            secrets.push(txt(d, "uploadUrl").to_string());
        }
        for cred in fake3.script.issued() {
            secrets.push(cred.secret);
            secrets.push(cred.token);
        }
        let (auths, n) = signed_calls(&[&fake.script, &fake2.script]);
        calls = n;
        for auth in auths {
            let (_, _, signature) = huawei::parse_authorization(&auth).expect("SDK-HMAC-SHA256");
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
    let markers = [
        "Signature=",
        "x-obs-security-token=",
        "OBS HWFAKE",
        "SDK-HMAC-SHA256",
        "authorization: ",
        "Bearer ",
    ];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}

// ---- uploadUrl, the browser form and the cloud's word on an upload (docs/contract.md §6) ----

/// A string field of an answer's `data`.
fn txt<'a>(d: &'a Value, name: &str) -> &'a str {
    d[name].as_str().unwrap_or_else(|| panic!("no {name}"))
}

/// Issues one PNG upload for alice; answers `data`.
async fn issue_png(s: &Server) -> Value {
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["data"].clone()
}

/// PUTs `data` to `url` with the answer's `uploadHeaders`, as `curl -T` would; (status, body).
async fn put_upload(d: &Value, url: &str, data: &[u8]) -> (u16, String) {
    let mut req = obs_client(d).put(url).body(data.to_vec());
    for (k, v) in d["uploadHeaders"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// POSTs the answer's browser form (fields in order, then the file); (status, body).
async fn browser_post(d: &Value, fields: &[(String, String)], data: &[u8]) -> (u16, String) {
    let (ct, body) = stsgate_fakes::multipart::multipart_body(fields, "cat.png", "image/png", data);
    let res = obs_client(d)
        .post(txt(&d["form"], "url"))
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
        "objectId={id}&resourceType=2&bucket={BUCKET}&object={}&size={size}&mimeType={}",
        key.replace('/', "%2F"),
        mime.replace('/', "%2F")
    );
    s.callback_form(Some(&s.token("alice")), &body).await
}

fn heads(fake: &FakeIam, method: &str) -> usize {
    fake.object_calls()
        .iter()
        .filter(|(m, _)| m == method)
        .count()
}

/// The object's row and `GET /upload/objects/{id}` show the bucket's facts, from a HEAD.
async fn assert_verified(s: &Server, id: i64, data: &[u8]) {
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(data.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("image/png"));
    let etag = stsgate_fakes::bucket::etag(data);
    assert_eq!(row.etag.as_deref(), Some(etag.trim_matches('"')));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    let o = s
        .get(&format!("/upload/objects/{id}"), Some(&s.token("alice")))
        .await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["data"]["verifiedBy"], "head", "{}", o.text);
    assert_eq!(o.body["data"]["size"], data.len());
    assert_eq!(o.body["data"]["status"], "uploaded");
}

on_both_databases!(
    upload_url_put_reaches_the_bucket_and_is_confirmed_by_head,
    upload_url_body
);
async fn upload_url_body(db: Arc<Db>) {
    let (s, fake) = huawei_server(db, |_| {}).await;
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    let cred = fake.script.issued()[0].clone();
    // The URL: exactly the key, the token as x-obs-security-token, Expires = the
    // credentials' expiration, the temporary AK; Content-Type signed and required.
    let url = txt(&d, "uploadUrl");
    assert_eq!(d["uploadHeaders"], json!({"Content-Type": "image/png"}));
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(base, format!("{}/{key}", txt(&d["form"], "url")));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "x-obs-security-token",
            "Expires",
            "AccessKeyId",
            "Signature"
        ]
    );
    assert_eq!(params[0].1, cred.token);
    let expiration = time::OffsetDateTime::parse(
        txt(&d, "expiration"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert_eq!(
        params[1].1,
        expiration.to_string(),
        "expires with the credentials"
    );
    assert_eq!(params[2].1, cred.access);

    // One byte changed anywhere is refused by the fake bucket's own OBS signature check.
    let png = b"\x89PNG\r\n\x1a\nstsgate-put-url";
    let sig_at = url.find("&Signature=").unwrap() + 11;
    let mut altered = url.as_bytes().to_vec();
    altered[sig_at] = if altered[sig_at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let (status, text) = put_upload(&d, &altered, png).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{text}"
    );
    let other_key = url.replacen(".png?", "x.png?", 1);
    let (status, _) = put_upload(&d, &other_key, png).await;
    assert_eq!(status, 403);
    let later = url.replacen(
        &format!("Expires={expiration}"),
        &format!("Expires={}", expiration - 1),
        1,
    );
    assert_eq!(put_upload(&d, &later, png).await.0, 403);
    let wrong_type = obs_client(&d)
        .put(url)
        .header("content-type", "text/html")
        .body(png.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 403, "the Content-Type is signed");
    assert_eq!(
        fake.obs_refusals(),
        ["SignatureDoesNotMatch"; 4],
        "every altered request"
    );
    assert!(fake.buckets.objects().is_empty());

    // The real upload.
    let (status, text) = put_upload(&d, url, png).await;
    assert_eq!(status, 200, "{text}");
    let stored = fake.buckets.get(BUCKET, key).unwrap();
    assert_eq!(stored.data, png);
    assert_eq!(stored.content_type.as_deref(), Some("image/png"));

    // The client claims another size and type; the record takes the bucket's (one HEAD).
    let r = claim(&s, id, key, 999_999, "text/plain").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(heads(&fake, "HEAD"), 1);
    assert_verified(&s, id, png).await;
    // A repeat is 200 and asks nothing.
    assert_eq!(claim(&s, id, key, 1, "image/png").await.status, 200);
    assert_eq!(
        heads(&fake, "HEAD"),
        1,
        "a settled row is not asked about again"
    );
    assert_eq!(fake.obs_refusals().len(), 4, "stsgate's HEAD was accepted");
    s.stop().await;
}

on_both_databases!(
    form_post_reaches_the_bucket_and_is_confirmed_by_head,
    form_post_body
);
async fn form_post_body(db: Arc<Db>) {
    let (s, fake) = huawei_server(db, |c| {
        c.upload.modules.insert(
            "resource_image".into(),
            stsgate::config::ModuleConfig {
                extensions: Some(vec!["png".into()]),
                max_bytes: Some(64),
            },
        );
    })
    .await;
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    let fields = form_fields(&d);
    let png = b"\x89PNG\r\n\x1a\nstsgate-form";
    // Refused: a forged signature, another key, a file over content-length-range.
    let forged = with_field(&fields, "signature", "X/z/Z6qUIA7a3Z/2cqCYWLSZ6h8=");
    let (status, text) = browser_post(&d, &forged, png).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{text}"
    );
    let other = with_field(&fields, "key", &format!("{key}.exe"));
    assert_eq!(browser_post(&d, &other, png).await.0, 403);
    let (status, text) = browser_post(&d, &fields, &[0u8; 65]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>EntityTooLarge</Code>"), "{text}");
    assert!(fake.buckets.objects().is_empty());
    // The browser's upload.
    let (status, text) = browser_post(&d, &fields, png).await;
    assert_eq!(status, 204, "{text}");
    let stored = fake.buckets.get(BUCKET, key).unwrap();
    assert_eq!(stored.data, png);
    assert_eq!(stored.content_type.as_deref(), Some("image/png"));
    let r = claim(&s, id, key, 5, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_verified(&s, id, png).await;
    s.stop().await;
}

on_both_databases!(
    a_callback_for_an_object_never_uploaded_is_40903,
    never_uploaded_body
);
async fn never_uploaded_body(db: Arc<Db>) {
    let (s, fake) = huawei_server(db, |_| {}).await;
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    let r = claim(&s, id, key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40903), "{}", r.text);
    assert_eq!(heads(&fake, "HEAD"), 1);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.size, None);
    assert_eq!(row.verified_by, None);
    // Once the object is there, the same callback records it.
    let (status, text) = put_upload(&d, txt(&d, "uploadUrl"), b"\x89PNGok").await;
    assert_eq!(status, 200, "{text}");
    let r = claim(&s, id, key, 10, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_verified(&s, id, b"\x89PNGok").await;
    s.stop().await;
}

on_both_databases!(
    an_object_over_max_bytes_is_deleted_and_rejected,
    over_max_body
);
async fn over_max_body(db: Arc<Db>) {
    let (s, fake) = huawei_server(db, |c| {
        c.upload.modules.insert(
            "resource_image".into(),
            stsgate::config::ModuleConfig {
                extensions: Some(vec!["png".into()]),
                max_bytes: Some(16),
            },
        );
    })
    .await;
    // Too large: put straight into the bucket, bypassing every signature.
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    fake.buckets.put(BUCKET, key, Some("image/png"), &[7u8; 17]);
    let r = claim(&s, id, key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert_eq!(heads(&fake, "DELETE"), 1);
    assert!(fake.buckets.get(BUCKET, key).is_none(), "deleted");
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.size, Some(17));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    // A content type the module does not allow is rejected too.
    let d2 = issue_png(&s).await;
    let (id2, key2) = (d2["objectId"].as_i64().unwrap(), txt(&d2, "relativePath"));
    fake.buckets.put(BUCKET, key2, Some("text/html"), b"<html>");
    let r = claim(&s, id2, key2, 6, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(fake.buckets.get(BUCKET, key2).is_none(), "deleted");
    assert_eq!(
        s.state.store.get_object(id2).await.unwrap().unwrap().status,
        "rejected"
    );
    // A delete OBS refuses is logged, not fatal: the row is still rejected.
    let d3 = issue_png(&s).await;
    let (id3, key3) = (d3["objectId"].as_i64().unwrap(), txt(&d3, "relativePath"));
    fake.buckets
        .put(BUCKET, key3, Some("image/png"), &[7u8; 40]);
    fake.buckets
        .set_delete_mode(Mode::Error(403, "AccessDenied".into()));
    let r = claim(&s, id3, key3, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(fake.buckets.get(BUCKET, key3).is_some(), "still there");
    assert_eq!(
        s.state.store.get_object(id3).await.unwrap().unwrap().status,
        "rejected"
    );
    assert_eq!(fake.obs_refusals(), ["AccessDenied"]);
    s.stop().await;
}

/// `verify_uploads = false`: the client's claim, `verifiedBy: client`, no HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verify_uploads_the_client_s_word_is_recorded() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = huawei_server(db, |c| c.providers.huawei.verify_uploads = false).await;
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    let r = claim(&s, id, key, 1234, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(fake.object_calls().is_empty());
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.size, Some(1234));
    assert_eq!(row.verified_by.as_deref(), Some("client"));
    let o = s
        .get(&format!("/upload/objects/{id}"), Some(&s.token("alice")))
        .await;
    assert_eq!(o.body["data"]["verifiedBy"], "client", "{}", o.text);
    s.stop().await;
}

/// A failing HEAD maps like any upstream call, and the row stays `issued`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_failures_map_to_the_upstream_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = huawei_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    let (status, text) = put_upload(&d, txt(&d, "uploadUrl"), b"\x89PNGx").await;
    assert_eq!(status, 200, "{text}");
    let cases: Vec<(Mode, u16, i64)> = vec![
        (Mode::Http500, 503, 50301),
        (Mode::Error(503, "ServiceUnavailable".into()), 503, 50301),
        (Mode::Error(403, "AccessDenied".into()), 502, 50201),
        (Mode::Hang, 504, 50401),
    ];
    for (mode, status, code) in cases {
        fake.buckets.set_head_mode(mode.clone());
        let before = heads(&fake, "HEAD");
        let r = claim(&s, id, key, 5, "image/png").await;
        assert_eq!((r.status, r.code()), (status, code), "{mode:?}: {}", r.text);
        if status == 503 {
            assert!(heads(&fake, "HEAD") - before >= 2, "{mode:?} was retried");
            assert!(r.headers.contains_key("retry-after"), "{mode:?}");
        }
        if status == 502 {
            assert_eq!(heads(&fake, "HEAD") - before, 1, "{mode:?} is final");
        }
        let row = s.state.store.get_object(id).await.unwrap().unwrap();
        assert_eq!(row.status, "issued", "{mode:?}");
    }
    // One transient failure is retried and the callback succeeds.
    fake.buckets
        .set_head_mode(Mode::ErrorTimes(500, "InternalError".into(), 1));
    let r = claim(&s, id, key, 5, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_verified(&s, id, b"\x89PNGx").await;
    s.stop().await;
}

/// The fake's HEAD/DELETE verifier (its own OBS signature code) accepts stsgate's
/// long-term-key signature and refuses one altered byte, a wrong secret, another AK, and a
/// stale Date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_head_refuses_an_altered_signature() {
    use stsgate::providers::huawei::sign;
    let fake = FakeIam::with_bucket(HW_AK, HW_SK, DOMAIN_ID, BUCKET);
    let url = fake.start().await;
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let client = reqwest::Client::builder()
        .resolve(&format!("{BUCKET}.{OBS_HOST}"), addr)
        .build()
        .unwrap();
    let key = "k/图 a+b.png";
    fake.buckets.put(BUCKET, key, Some("image/png"), b"12345");
    let base = format!("http://{BUCKET}.{OBS_HOST}:{}", addr.port());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let send = |method: &'static str, ak: &'static str, sk: &'static str, at: i64, alter: bool| {
        let signed = sign::sign_object_request(ak, sk, method, &base, BUCKET, key, at);
        let client = client.clone();
        async move {
            let mut req = client.request(method.parse().unwrap(), &signed.url);
            for (n, v) in signed.headers {
                let v = if alter && n == "Authorization" {
                    let mut b = v.into_bytes();
                    let at = b.len() - 2;
                    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
                    String::from_utf8(b).unwrap()
                } else {
                    v
                };
                req = req.header(n, v);
            }
            let res = req.send().await.unwrap();
            let len = res
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap().to_string());
            (res.status().as_u16(), len)
        }
    };
    assert_eq!(
        send("HEAD", HW_AK, HW_SK, now, false).await,
        (200, Some("5".into()))
    );
    assert_eq!(send("HEAD", HW_AK, HW_SK, now, true).await.0, 403);
    assert_eq!(send("HEAD", HW_AK, "wrongSecret", now, false).await.0, 403);
    assert_eq!(send("HEAD", "HWOTHERAK", HW_SK, now, false).await.0, 403);
    assert_eq!(send("HEAD", HW_AK, HW_SK, now - 3600, false).await.0, 403);
    assert_eq!(send("DELETE", HW_AK, HW_SK, now, true).await.0, 403);
    assert!(fake.buckets.get(BUCKET, key).is_some());
    assert_eq!(send("DELETE", HW_AK, HW_SK, now, false).await.0, 204);
    assert!(fake.buckets.get(BUCKET, key).is_none());
    assert_eq!(send("HEAD", HW_AK, HW_SK, now, false).await.0, 404);
    assert_eq!(
        fake.obs_refusals(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "RequestTimeTooSkewed",
            "SignatureDoesNotMatch",
            "NoSuchKey"
        ]
    );
    assert_eq!(
        fake.object_calls()[0],
        ("HEAD".to_string(), key.to_string()),
        "the fake decoded the key"
    );
}

/// An IP-address OBS endpoint (as `examples/fake_clouds.rs` configures it) is addressed path
/// style: the presigned PUT and the HEAD reach the fake as `/{bucket}/{key}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_style_endpoint_reaches_the_fake_too() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = huawei_server(db, |c| {
        c.providers.huawei.obs_endpoint = c.providers.huawei.iam_endpoint.clone();
        c.providers.resolve.clear();
    })
    .await;
    let d = issue_png(&s).await;
    let (id, key) = (d["objectId"].as_i64().unwrap(), txt(&d, "relativePath"));
    let form_url = txt(&d["form"], "url");
    assert!(form_url.starts_with("http://127.0.0.1:") && form_url.ends_with("/stsgate-demo"));
    let url = txt(&d, "uploadUrl");
    assert!(url.starts_with(&format!("{form_url}/{key}?")), "{url}");
    let res = reqwest::Client::new()
        .put(url)
        .header("content-type", "image/png")
        .body(b"\x89PNGpath".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let r = claim(&s, id, key, 1, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_verified(&s, id, b"\x89PNGpath").await;
    assert_eq!(fake.object_calls(), [("HEAD".to_string(), key.to_string())]);
    s.stop().await;
}
