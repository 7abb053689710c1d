//! Cloud type 4 (Baidu BOS) end to end against the fake STS.

use std::sync::Arc;

use serde_json::{json, Value};
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

async fn baidu_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut stsgate::config::Config),
) -> (Server, Arc<FakeSts>) {
    let fake = FakeSts::new(BD_AK, BD_SK);
    let url = fake.start().await;
    let mut c = base_config(&db);
    let b = &mut c.providers.baidu;
    b.access_key_id = Secret::new(BD_AK);
    b.secret_access_key = Secret::new(BD_SK);
    b.sts_endpoint = url;
    b.region = "bj".into();
    b.bucket = BUCKET.into();
    b.timeout_ms = 300;
    b.connect_timeout_ms = 200;
    tweak(&mut c);
    (Server::start(db, c).await, fake)
}

on_both_databases!(success_with_form_and_callback, success_body);
async fn success_body(db: Arc<Db>) {
    let (s, fake) = baidu_server(db, |_| {}).await;
    let a = s.sts("alice", Q_MP4).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    assert_form_answer_fields(d, true, true, false);
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
    assert_eq!(d["endpoint"], "https://bj.bcebos.com");
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

    assert_eq!(d["form"]["url"], "https://stsgate-demo.bj.bcebos.com");
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
        let (s, fake) = baidu_server(db.clone(), |c| c.server.request_timeout_ms = 1200).await;
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
        let (s2, fake2) = baidu_server(db, |c| {
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
