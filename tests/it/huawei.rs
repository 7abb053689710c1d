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

async fn huawei_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut stsgate::config::Config),
) -> (Server, Arc<FakeIam>) {
    let fake = FakeIam::new(HW_AK, HW_SK, DOMAIN_ID);
    let url = fake.start().await;
    let mut c = base_config(&db);
    let h = &mut c.providers.huawei;
    h.access_key_id = Secret::new(HW_AK);
    h.secret_access_key = Secret::new(HW_SK);
    h.domain_id = DOMAIN_ID.into();
    h.iam_endpoint = url;
    h.region = "cn-north-4".into();
    h.bucket = BUCKET.into();
    h.timeout_ms = 300;
    h.connect_timeout_ms = 200;
    tweak(&mut c);
    (Server::start(db, c).await, fake)
}

on_both_databases!(success_with_form_and_callback, success_body);
async fn success_body(db: Arc<Db>) {
    let (s, fake) = huawei_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert_form_answer_fields(d, false, true, false);
    let issued = fake.script.issued();
    assert_eq!(issued.len(), 1, "one IAM call per issuance");
    let cred = &issued[0];
    assert_eq!(d["accessKeyId"], cred.access.as_str());
    assert_eq!(d["secretAccessKey"], cred.secret.as_str());
    assert_eq!(d["securityToken"], cred.token.as_str());
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["region"], "cn-north-4");
    assert_eq!(d["endpoint"], "https://obs.cn-north-4.myhuaweicloud.com");
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
        "https://stsgate-demo.obs.cn-north-4.myhuaweicloud.com"
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
    // OBS's native callback is not verified: the client calls back with its JWT.
    jwt_callback_round_trip(&s, "alice", d, 2).await;
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
        let (s, fake) = huawei_server(db.clone(), |c| c.server.request_timeout_ms = 1200).await;
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
        let (s2, fake2) = huawei_server(db, |c| {
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
        "SDK-HMAC-SHA256",
        "authorization: ",
        "Bearer ",
    ];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}
