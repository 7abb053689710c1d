//! Cloud type 7 (KSyun KS3) end to end against the fake KSyun STS.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::assert_form_answer_fields;
use stsgate_fakes::ksyun::{self, FakeKsyunSts};
use stsgate_fakes::Mode;

/// KSyun long-term keys the fake expects.
const AK: &str = "AKLTitKSYUNaccessKEY0001";
const SK: &str = "itKSYUNsecret/key+0001=abcdefgh";
const ROLE: &str = "krn:ksc:iam::2000000001:role/stsgate-upload";
const REGION: &str = "cn-beijing-6";
const BUCKET: &str = "stsgate-demo";

const Q_PNG: &str = "type=7&extension=png&isNeedCallback=1&uploadModule=resource_image";

async fn fake_sts() -> (Arc<FakeKsyunSts>, String) {
    let fake = FakeKsyunSts::new(AK, SK, REGION, ROLE);
    let url = fake.start().await;
    (fake, url)
}

fn enable_ksyun(c: &mut stsgate::config::Config, sts_endpoint: &str) {
    let k = &mut c.providers.ksyun;
    k.access_key_id = stsgate::secret::Secret::new(AK);
    k.secret_access_key = stsgate::secret::Secret::new(SK);
    k.role_krn = ROLE.into();
    k.sts_endpoint = sts_endpoint.into();
    k.region = REGION.into();
    k.bucket = BUCKET.into();
    k.timeout_ms = 300;
    k.connect_timeout_ms = 200;
}

async fn ksyun_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut stsgate::config::Config),
) -> (Server, Arc<FakeKsyunSts>) {
    let (fake, url) = fake_sts().await;
    let mut c = base_config(&db);
    enable_ksyun(&mut c, &url);
    tweak(&mut c);
    (Server::start(db, c).await, fake)
}

/// The test's own KS3 V2 POST check: `b64(HMAC-SHA1(SK, Policy))`.
fn ks3_post_signature(secret: &str, policy_b64: &str) -> String {
    use base64::Engine as _;
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(policy_b64.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

fn b64_json(text: &str) -> Value {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

on_both_databases!(
    success_shape_then_callback,
    success_shape_then_callback_body
);
async fn success_shape_then_callback_body(db: Arc<Db>) {
    let (s, fake) = ksyun_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["code"].as_i64(), a.body["message"].as_str()),
        (Some(0), Some(""))
    );
    let d = &a.body["data"];
    // docs/contract.md §1.3 fields; KSyun gives no startTime.
    assert_form_answer_fields(d, false, true, false);

    // The credentials are exactly what STS issued, expiration included.
    let issued = fake.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(d["accessKeyId"], issued[0].access_key_id.as_str());
    assert_eq!(d["secretAccessKey"], issued[0].secret_access_key.as_str());
    assert_eq!(d["securityToken"], issued[0].security_token.as_str());
    assert_eq!(d["expiration"], issued[0].expiration.as_str());
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["endpoint"], "https://ks3-cn-beijing.ksyuncs.com");
    assert_eq!(d["region"], REGION);
    let id = d["objectId"].as_i64().unwrap();
    let key = d["relativePath"].as_str().unwrap();
    assert!(
        key.starts_with("test/resource/image/")
            && key.ends_with(".png")
            && key.contains(&format!("/{id}/")),
        "{key}"
    );

    // One signed form POST reached STS, with a least-privilege session policy.
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.signed_headers,
        "content-type;host;x-amz-content-sha256;x-amz-date"
    );
    assert_eq!(call.params["Action"], "AssumeRole");
    assert_eq!(call.params["Version"], "2015-11-01");
    assert_eq!(call.params["RoleKrn"], ROLE);
    assert_eq!(call.params["RoleSessionName"], format!("stsgate-{id}"));
    assert_eq!(call.params["DurationSeconds"], "3600");
    let policy_text = &call.params["Policy"];
    assert!(policy_text.len() <= 1024, "{}", policy_text.len());
    let policy: Value = serde_json::from_str(policy_text).unwrap();
    assert_eq!(
        policy,
        serde_json::json!({"Version": "2015-11-01", "Statement": [{
            "Effect": "Allow",
            "Action": ["ks3:PutObject", "ks3:AbortMultipartUpload", "ks3:ListMultipartUploadParts"],
            "Resource": [format!("krn:ksc:ks3:::{BUCKET}/{key}")]
        }]})
    );

    // The browser form: the bucket host, fields in order, signed with the long-term key.
    let form = &d["form"];
    assert_eq!(
        form["url"],
        format!("https://{BUCKET}.ks3-cn-beijing.ksyuncs.com")
    );
    let fields = form["fields"].as_object().unwrap();
    // Field order as sent (serde_json's map sorts keys, so read it from the raw text).
    let raw_fields = &a.text[a.text.find("\"fields\":").unwrap()..];
    let at = |name: &str| raw_fields.find(&format!("\"{name}\":")).unwrap();
    assert!(at("key") < at("KSSAccessKeyId"));
    assert!(at("KSSAccessKeyId") < at("Policy") && at("Policy") < at("Signature"));
    assert_eq!(fields.len(), 5);
    assert_eq!(fields["Content-Type"], "image/png");
    assert_eq!(fields["key"], key);
    assert_eq!(fields["KSSAccessKeyId"], AK);
    assert_eq!(d["policy"], fields["Policy"]);
    assert_eq!(d["signature"], fields["Signature"]);
    let post_policy = fields["Policy"].as_str().unwrap();
    assert_eq!(
        fields["Signature"].as_str().unwrap(),
        ks3_post_signature(SK, post_policy)
    );
    let decoded = b64_json(post_policy);
    let expiration = issued[0].expiration.trim_end_matches('Z');
    assert_eq!(decoded["expiration"], format!("{expiration}.000Z"));
    assert_eq!(
        decoded["conditions"],
        serde_json::json!([
            ["eq", "$bucket", BUCKET],
            ["eq", "$key", key],
            ["content-length-range", 0, 20_971_520],
            ["eq", "$Content-Type", "image/png"]
        ])
    );
    for secret in [SK, "secret/key"] {
        assert!(!a.text.contains(secret), "long-term secret in the answer");
    }

    // callbackInfo is the literal body for the client's JWT callback.
    let cb = &d["callbackInfo"];
    assert_eq!(cb["callbackUrl"], "http://127.0.0.1:8080/upload/callback");
    assert_eq!(cb["callbackBody"], format!("objectId={id}&resourceType=2"));
    assert!(cb.get("callback").is_none() && cb.get("callbackVar").is_none());

    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.object_key.as_deref(), Some(key));
    assert_eq!(row.bucket.as_deref(), Some(BUCKET));
    let alice = s.token("alice");
    let body = format!("objectId={id}&resourceType=2&size=99&mimeType=image%2Fpng&etag=e");
    assert_eq!(s.callback_form(None, &body).await.code(), 40101);
    let r = s.callback_form(Some(&alice), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "uploaded");
    let o = s.get(&format!("/upload/objects/{id}"), Some(&alice)).await;
    assert_eq!(
        (
            o.body["data"]["status"].as_str(),
            o.body["data"]["type"].as_i64()
        ),
        (Some("uploaded"), Some(7))
    );
    s.stop().await;
}

on_both_databases!(folder_upload_covers_the_prefix, folder_body);
async fn folder_body(db: Arc<Db>) {
    let (s, fake) = ksyun_server(db, |c| c.providers.ksyun.duration_secs = Some(7200)).await;
    let a = s
        .sts(
            "alice",
            "type=7&extension=mp4&isNeedCallback=0&uploadModule=resource_video&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let prefix = d["relativePath"].as_str().unwrap();
    assert!(prefix.ends_with('/'), "{prefix}");
    assert!(d.get("callbackInfo").is_none());
    let call = &fake.calls()[0];
    assert_eq!(call.params["DurationSeconds"], "7200");
    let policy: Value = serde_json::from_str(&call.params["Policy"]).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        serde_json::json!([format!("krn:ksc:ks3:::{BUCKET}/{prefix}*")])
    );
    let post = b64_json(d["policy"].as_str().unwrap());
    assert_eq!(
        post["conditions"][1],
        serde_json::json!(["starts-with", "$key", prefix])
    );
    assert_eq!(post["conditions"][2][2], 2_147_483_648u64);
    assert_eq!(
        d["form"]["fields"]["key"],
        format!("{prefix}${{filename}}"),
        "KS3 expands ${{filename}} before matching starts-with"
    );
    s.stop().await;
}

/// Each issuance makes its own call: no credential is cached or handed out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_call_per_issuance() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = ksyun_server(db, |_| {}).await;
    let mut aks = HashSet::new();
    let mut policies = HashSet::new();
    for _ in 0..3 {
        let a = s.sts("alice", Q_PNG).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert!(aks.insert(a.body["data"]["accessKeyId"].as_str().unwrap().to_string()));
    }
    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    for c in &calls {
        assert!(
            policies.insert(c.params["Policy"].clone()),
            "one policy per object"
        );
    }
    assert_eq!(fake.rejected(), 0);
    s.stop().await;
}

/// Each failure mode answers its documented code, and the ledger row is `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_modes_map_to_documented_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = ksyun_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let err = |code: &str, status: u16| Mode::Error(status, code.into());
    let cases: Vec<(Mode, u16, i64, Option<&str>)> = vec![
        (
            err("SignatureDoesNotMatch", 403),
            502,
            50201,
            Some("SignatureDoesNotMatch"),
        ),
        (
            err("InvalidParameterValue", 400),
            502,
            50201,
            Some("InvalidParameterValue"),
        ),
        (
            err("MalformedPolicyDocument", 400),
            502,
            50201,
            Some("MalformedPolicyDocument"),
        ),
        (err("NoSuchEntity", 404), 502, 50201, Some("NoSuchEntity")),
        (err("Throttling", 400), 503, 50301, None),
        (err("InternalError", 500), 503, 50301, None),
        (Mode::Http500, 503, 50301, None),
        (Mode::Malformed, 502, 50201, Some("HTTP 200")),
        (Mode::Hang, 504, 50401, None),
        (
            Mode::ShortLived(100),
            502,
            50201,
            Some("min_remaining_secs"),
        ),
    ];
    let n = cases.len();
    for (mode, status, code, en) in cases {
        fake.set_mode(mode.clone());
        let a = s.sts("alice", Q_PNG).await;
        assert_eq!((a.status, a.code()), (status, code), "{mode:?}: {}", a.text);
        assert!(a.body["data"].is_null());
        if let Some(en) = en {
            assert!(
                a.body["enMsg"].as_str().unwrap().contains(en),
                "{mode:?}: {}",
                a.text
            );
        }
        if status == 503 {
            assert!(a.headers.contains_key("retry-after"), "{mode:?}");
        }
        assert!(!a.text.contains(SK));
    }
    for id in 1..=n as i64 {
        let row = s.state.store.get_object(id).await.unwrap().unwrap();
        assert_eq!(row.status, "failed", "object {id}");
    }
    // One transient error is retried inside the deadline and succeeds.
    fake.set_mode(Mode::ErrorTimes(500, "InternalError".into(), 1));
    let before = fake.calls().len();
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(fake.calls().len(), before + 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_by_the_fake() {
    let db = Arc::new(sqlite().await);
    let (s, fake) = ksyun_server(db, |c| {
        c.providers.ksyun.secret_access_key = stsgate::secret::Secret::new("not-the-right-key");
    })
    .await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .contains("SignatureDoesNotMatch"));
    assert_eq!(fake.rejected(), 1);
    assert!(fake.calls().is_empty());
    assert!(!a.text.contains("not-the-right-key"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sts_is_503() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    let dead = format!("http://{}", free_addr());
    enable_ksyun(&mut c, &dead);
    c.server.request_timeout_ms = 800;
    let s = Server::start(db, c).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (503, 50301), "{}", a.text);
    assert!(a.headers.contains_key("retry-after"));
    s.stop().await;
}

fn lower_headers(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The fake's own SigV4 reproduces every stage of every `ksyun.json` vector, and
/// refuses a request whose signature was altered by one byte.
#[tokio::test]
async fn fake_verifier_matches_vectors_and_rejects_one_altered_byte() {
    let file: Value =
        serde_json::from_str(include_str!("../vectors/ksyun/ksyun_sts.json")).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    let mut checked = 0;
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let i = &v["input"];
        let e = &v["expected"];
        let s = |x: &Value, k: &str| x[k].as_str().unwrap().to_string();
        let (method, query, body, headers, signed) = if i["method"] == "GET" {
            // ks3sdk: content-type and accept are sent but not signed.
            let mut h = lower_headers(&i["headers"]);
            h.insert("host".into(), s(i, "host"));
            h.insert("x-amz-date".into(), s(e, "x_amz_date"));
            (
                s(i, "method"),
                s(i, "query"),
                s(i, "body"),
                h,
                "host;x-amz-date".to_string(),
            )
        } else {
            let h = lower_headers(&e["headers"]);
            (
                s(e, "method"),
                String::new(),
                s(e, "body"),
                h,
                s(e, "signed_headers"),
            )
        };
        let canonical =
            ksyun::canonical_request(&method, "/", &query, &headers, &signed, body.as_bytes())
                .unwrap();
        assert_eq!(
            canonical,
            s(e, "canonical_request"),
            "{name}: canonical request"
        );
        let amz_date = &headers["x-amz-date"];
        let sts = ksyun::string_to_sign(amz_date, &s(e, "credential_scope"), &canonical);
        assert_eq!(sts, s(e, "string_to_sign"), "{name}: string to sign");
        let key = ksyun::signing_key(&s(i, "secret_key"), &amz_date[..8], &s(i, "region"), "sts");
        assert_eq!(
            hex::encode(&key),
            s(e, "signing_key_hex"),
            "{name}: signing key"
        );
        assert_eq!(
            ksyun::signature(&key, &sts),
            s(e, "signature"),
            "{name}: signature"
        );
        checked += 1;
    }
    assert_eq!(checked, vectors.len());
    assert_eq!(checked, 7);

    // A request signed by hand (the fake's own functions), then the same with one byte changed.
    let (fake, url) = fake_sts().await;
    let host = url.trim_start_matches("http://").to_string();
    let body = format!(
        "Action=AssumeRole&Version=2015-11-01&RoleKrn={}&RoleSessionName=tamper-test&DurationSeconds=900",
        ROLE.replace(':', "%3A").replace('/', "%2F")
    );
    let now = time::OffsetDateTime::now_utc();
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes()));
    let ct = "application/x-www-form-urlencoded";
    let signed = "content-type;host;x-amz-content-sha256;x-amz-date";
    let headers: BTreeMap<String, String> = [
        ("content-type", ct),
        ("host", host.as_str()),
        ("x-amz-content-sha256", hash.as_str()),
        ("x-amz-date", amz_date.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let canonical =
        ksyun::canonical_request("POST", "/", "", &headers, signed, body.as_bytes()).unwrap();
    let scope = format!("{}/{REGION}/sts/aws4_request", &amz_date[..8]);
    let good = ksyun::signature(
        &ksyun::signing_key(SK, &amz_date[..8], REGION, "sts"),
        &ksyun::string_to_sign(&amz_date, &scope, &canonical),
    );
    let send = |sig: String| {
        reqwest::Client::new()
            .post(format!("{url}/"))
            .header("content-type", ct)
            .header("x-amz-content-sha256", &hash)
            .header("x-amz-date", &amz_date)
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={signed}, Signature={sig}"),
            )
            .body(body.clone())
            .send()
    };
    let ok = send(good.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert!(
        ok["AssumeRoleResult"]["Credentials"]["SecurityToken"].is_string(),
        "{ok}"
    );
    let mut bad = good.into_bytes();
    bad[20] = if bad[20] == b'0' { b'1' } else { b'0' };
    let refused = send(String::from_utf8(bad).unwrap()).await.unwrap();
    assert_eq!(refused.status(), 403);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["Error"]["Code"], "SignatureDoesNotMatch");
    assert_eq!(fake.rejected(), 1);
    assert_eq!(fake.issued().len(), 1);
}

/// No KSyun key, temporary secret, token or SigV4 `Authorization` reaches a log line at
/// `trace` level, through a success and every failure mode (aws-sigv4 itself traces the
/// signing identity; the shared signer runs it with no subscriber).
#[test]
fn no_ksyun_secret_in_trace_logs() {
    let wrong = "wrong-ksyun-secret-for-leak-test";
    let mut secrets: Vec<String> = vec![SK.into(), AK.into(), wrong.into()];
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let (s, fake) = ksyun_server(db.clone(), |c| c.server.request_timeout_ms = 1200).await;
        let ok = s.sts("alice", Q_PNG).await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        for mode in [
            Mode::Error(403, "SignatureDoesNotMatch".into()),
            Mode::Error(400, "Throttling".into()),
            Mode::Http500,
            Mode::Malformed,
            Mode::Hang,
            Mode::ShortLived(10),
        ] {
            fake.set_mode(mode);
            assert!(s.sts("alice", Q_PNG).await.status >= 500);
        }
        s.stop().await;
        let mut c = base_config(&db);
        enable_ksyun(&mut c, &fake.start().await);
        c.providers.ksyun.secret_access_key = stsgate::secret::Secret::new(wrong);
        let s2 = Server::start(db, c).await;
        assert_eq!(s2.sts("alice", Q_PNG).await.code(), 50201);
        s2.stop().await;
        for cred in fake.issued() {
            secrets.push(cred.secret_access_key);
            secrets.push(cred.security_token);
        }
    });
    assert!(secrets.len() >= 5);
    let markers = [
        "Signature=",
        "AWS4-HMAC-SHA256",
        "authorization: ",
        "Bearer ",
    ];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}
