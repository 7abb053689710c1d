//! Cloud type 7 (KSyun KS3) end to end against the fake KSyun STS.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::assert_form_answer_fields;
use stsgate_fakes::ksyun::ks3::{self, FakeKs3};
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
    // No bucket behind these: the callbacks record the client's claim (the KS3 tests below
    // run the fake bucket and the HEAD).
    c.providers.ksyun.verify_uploads = false;
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
    // docs/contract.md §1.3 fields; KSyun gives no startTime; one object has uploadUrl.
    assert_form_answer_fields(d, false, true, true);

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

    // The presigned PUT: the object's URL on the bucket host, KS3 V2 query signature with the
    // temporary secret, expiring with the credentials; the token and the Content-Type are
    // signed headers the client sends.
    let upload_url = d["uploadUrl"].as_str().unwrap();
    let (base, query) = upload_url.split_once('?').unwrap();
    assert_eq!(
        base,
        format!("https://{BUCKET}.ks3-cn-beijing.ksyuncs.com/{key}")
    );
    let q: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        q.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Expires", "KSSAccessKeyId", "Signature"]
    );
    assert_eq!(q["KSSAccessKeyId"], issued[0].access_key_id);
    assert_eq!(q["Expires"], issued[0].expiration_unix.to_string());
    let headers = d["uploadHeaders"].as_object().unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers["Content-Type"], "image/png");
    assert_eq!(
        headers["x-kss-security-token"],
        issued[0].security_token.as_str()
    );
    let string_to_sign = format!(
        "PUT\n\nimage/png\n{}\nx-kss-security-token:{}\n/{BUCKET}/{key}",
        q["Expires"], issued[0].security_token
    );
    assert_eq!(
        q["Signature"],
        ks3_post_signature(&issued[0].secret_access_key, &string_to_sign)
    );

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
    assert!(
        d.get("uploadUrl").is_none() && d.get("uploadHeaders").is_none(),
        "no presigned PUT for a folder"
    );
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

// ---- KS3: uploads reaching the fake bucket, and the cloud's word on them (stsgate's HEAD) ----

/// The fake STS and KS3 with stsgate pointed at them: `ks3_endpoint` is
/// `http://localhost:{port}` and `[providers] resolve` sends `{BUCKET}.localhost` to the fake.
struct Ks3Env {
    s: Server,
    sts: Arc<FakeKsyunSts>,
    ks3: Arc<FakeKs3>,
    addr: SocketAddr,
}

impl Ks3Env {
    async fn start(db: Arc<Db>, tweak: impl FnOnce(&mut stsgate::config::Config)) -> Ks3Env {
        let (sts, url) = fake_sts().await;
        let ks3 = FakeKs3::new(&sts, BUCKET);
        let addr: SocketAddr = ks3
            .start()
            .await
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let mut c = base_config(&db);
        enable_ksyun(&mut c, &url);
        c.providers.ksyun.ks3_endpoint = format!("http://localhost:{}", addr.port());
        c.providers
            .resolve
            .insert(format!("{BUCKET}.localhost"), addr);
        tweak(&mut c);
        Ks3Env {
            s: Server::start(db, c).await,
            sts,
            ks3,
            addr,
        }
    }

    /// A client that reaches the bucket host as a browser would (its name resolved to the fake).
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve(&format!("{BUCKET}.localhost"), self.addr)
            .build()
            .unwrap()
    }

    fn count(&self, method: &str) -> usize {
        self.ks3
            .buckets
            .calls()
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }
}

/// One PNG upload issued for alice: (objectId, relativePath, data).
async fn issue_png(s: &Server) -> (i64, String, Value) {
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = a.body["data"].clone();
    (
        d["objectId"].as_i64().unwrap(),
        d["relativePath"].as_str().unwrap().to_string(),
        d,
    )
}

/// PUTs `data` to the answer's `uploadUrl` with its `uploadHeaders`; returns (status, body).
async fn put_upload(client: &reqwest::Client, d: &Value, data: &[u8]) -> (u16, String) {
    let mut req = client.put(d["uploadUrl"].as_str().unwrap());
    for (k, v) in d["uploadHeaders"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    let res = req.body(data.to_vec()).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// `form.fields` in the answer's order (read from the raw field list, which a parsed map sorts).
fn ordered_fields(d: &Value) -> Vec<(String, String)> {
    const ORDER: [&str; 5] = [
        "key",
        "KSSAccessKeyId",
        "Policy",
        "Signature",
        "Content-Type",
    ];
    let fields = d["form"]["fields"].as_object().unwrap();
    ORDER
        .iter()
        .filter_map(|n| {
            fields
                .get(*n)
                .map(|v| (n.to_string(), v.as_str().unwrap().to_string()))
        })
        .collect()
}

/// POSTs the answer's browser form with `data` as the file; returns (status, body).
async fn form_upload(
    client: &reqwest::Client,
    d: &Value,
    fields: &[(String, String)],
    data: &[u8],
) -> (u16, String) {
    let (ct, body) = stsgate_fakes::multipart::multipart_body(fields, "cat.png", "image/png", data);
    let res = client
        .post(d["form"]["url"].as_str().unwrap())
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

fn etag_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(data)[..16])
}

/// After the callback: the row and `GET /upload/objects/{id}` carry the bucket's facts.
async fn assert_verified(e: &Ks3Env, id: i64, data: &[u8]) {
    let row = e.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(data.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("image/png"));
    assert_eq!(row.etag.as_deref(), Some(etag_of(data).as_str()));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    let o =
        e.s.get(&format!("/upload/objects/{id}"), Some(&e.s.token("alice")))
            .await;
    assert_eq!(o.body["data"]["verifiedBy"], "head", "{}", o.text);
    assert_eq!(o.body["data"]["size"], data.len());
    assert_eq!(o.body["data"]["status"], "uploaded");
}

on_both_databases!(
    a_presigned_put_reaches_ks3_and_the_callback_records_ks3_s_facts,
    put_then_head_body
);
async fn put_then_head_body(db: Arc<Db>) {
    let e = Ks3Env::start(db, |_| {}).await;
    let (id, key, d) = issue_png(&e.s).await;
    assert!(
        d["uploadUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{BUCKET}.localhost:{}/", e.addr.port())),
        "{}",
        d["uploadUrl"]
    );
    let png = b"\x89PNG\r\n\x1a\nks3-presigned-put";
    let (status, text) = put_upload(&e.client(), &d, png).await;
    assert_eq!(status, 200, "{text}");
    let stored = e
        .ks3
        .buckets
        .get(BUCKET, &key)
        .expect("stored under relativePath");
    assert_eq!(stored.data, png);
    assert_eq!(stored.content_type.as_deref(), Some("image/png"));
    // The client claims another size and type; the record takes the bucket's.
    let r = claim(&e.s, id, &key, 999_999, "text/plain").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(e.count("HEAD"), 1);
    assert_verified(&e, id, png).await;
    // A repeat changes nothing and asks nothing.
    let r = claim(&e.s, id, &key, 1, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(e.count("HEAD"), 1, "a settled row is not asked about again");
    assert_eq!(e.ks3.refusals(), Vec::<String>::new());
    e.s.stop().await;
}

on_both_databases!(
    a_browser_form_reaches_ks3_and_the_callback_records_ks3_s_facts,
    form_then_head_body
);
async fn form_then_head_body(db: Arc<Db>) {
    let e = Ks3Env::start(db, |_| {}).await;
    let (id, key, d) = issue_png(&e.s).await;
    assert_eq!(
        d["form"]["url"],
        format!("http://{BUCKET}.localhost:{}", e.addr.port())
    );
    let png = b"\x89PNG\r\n\x1a\nks3-browser-form";
    let (status, text) = form_upload(&e.client(), &d, &ordered_fields(&d), png).await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(e.ks3.buckets.get(BUCKET, &key).unwrap().data, png);
    let r = claim(&e.s, id, &key, 3, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(e.count("HEAD"), 1);
    assert_verified(&e, id, png).await;
    e.s.stop().await;
}

on_both_databases!(
    a_ks3_callback_for_an_object_never_uploaded_is_40903,
    never_uploaded_body
);
async fn never_uploaded_body(db: Arc<Db>) {
    let e = Ks3Env::start(db, |_| {}).await;
    let (id, key, d) = issue_png(&e.s).await;
    let r = claim(&e.s, id, &key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40903), "{}", r.text);
    assert_eq!(e.count("HEAD"), 1);
    let row = e.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!((row.size, row.verified_by), (None, None));
    // Once the object is there, the same callback records it.
    let (status, text) = put_upload(&e.client(), &d, b"\x89PNGok").await;
    assert_eq!(status, 200, "{text}");
    let r = claim(&e.s, id, &key, 10, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = e.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.size), ("uploaded", Some(6)));
    e.s.stop().await;
}

on_both_databases!(
    a_ks3_object_over_max_bytes_is_deleted_and_rejected,
    over_max_body
);
async fn over_max_body(db: Arc<Db>) {
    let e = Ks3Env::start(db, |c| {
        c.upload.modules.insert(
            "resource_image".into(),
            stsgate::config::ModuleConfig {
                extensions: Some(vec!["png".into()]),
                max_bytes: Some(16),
            },
        );
    })
    .await;
    // The form's policy refuses a file over the limit...
    let (id, key, d) = issue_png(&e.s).await;
    let (status, text) = form_upload(&e.client(), &d, &ordered_fields(&d), &[7u8; 17]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>EntityTooLarge</Code>"), "{text}");
    // ...so it is put straight into the bucket, as an upload that broke the rules elsewhere.
    e.ks3
        .buckets
        .put(BUCKET, &key, Some("image/png"), &[7u8; 17]);
    let r = claim(&e.s, id, &key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert_eq!(e.count("DELETE"), 1);
    assert!(e.ks3.buckets.get(BUCKET, &key).is_none(), "deleted");
    let row = e.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.size, Some(17));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    // A content type the module does not allow is rejected (and deleted) too.
    let (id2, key2, _) = issue_png(&e.s).await;
    e.ks3
        .buckets
        .put(BUCKET, &key2, Some("text/html"), b"<html>");
    let r = claim(&e.s, id2, &key2, 6, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(e.ks3.buckets.get(BUCKET, &key2).is_none(), "deleted");
    assert_eq!(
        e.s.state
            .store
            .get_object(id2)
            .await
            .unwrap()
            .unwrap()
            .status,
        "rejected"
    );
    // Within the rules: uploaded.
    let (id3, key3, d3) = issue_png(&e.s).await;
    let (status, text) = put_upload(&e.client(), &d3, &[7u8; 16]).await;
    assert_eq!(status, 200, "{text}");
    let r = claim(&e.s, id3, &key3, 16, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(e.count("DELETE"), 2);
    e.s.stop().await;
}

/// `verify_uploads = false`: the client's claim is recorded (`verifiedBy: client`), no HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verify_uploads_the_client_s_word_is_recorded() {
    let db = Arc::new(sqlite().await);
    let e = Ks3Env::start(db, |c| c.providers.ksyun.verify_uploads = false).await;
    let (id, key, _) = issue_png(&e.s).await;
    let r = claim(&e.s, id, &key, 1234, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(e.ks3.buckets.calls().is_empty());
    let row = e.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.size, Some(1234));
    assert_eq!(row.verified_by.as_deref(), Some("client"));
    let o =
        e.s.get(&format!("/upload/objects/{id}"), Some(&e.s.token("alice")))
            .await;
    assert_eq!(o.body["data"]["verifiedBy"], "client", "{}", o.text);
    e.s.stop().await;
}

/// A failing HEAD maps like any upstream call (5xx retried, 403 final, a hang a timeout), and
/// the row stays `issued`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ks3_head_failures_map_to_the_upstream_codes() {
    let db = Arc::new(sqlite().await);
    let e = Ks3Env::start(db, |c| c.server.request_timeout_ms = 1500).await;
    let (id, key, d) = issue_png(&e.s).await;
    let (status, text) = put_upload(&e.client(), &d, b"\x89PNGx").await;
    assert_eq!(status, 200, "{text}");
    let cases: Vec<(Mode, u16, i64)> = vec![
        (Mode::Http500, 503, 50301),
        (Mode::Error(503, "ServiceUnavailable".into()), 503, 50301),
        (Mode::Error(403, "AccessDenied".into()), 502, 50201),
        (Mode::Hang, 504, 50401),
    ];
    for (mode, status, code) in cases {
        e.ks3.buckets.set_head_mode(mode.clone());
        let before = e.count("HEAD");
        let r = claim(&e.s, id, &key, 5, "image/png").await;
        assert_eq!((r.status, r.code()), (status, code), "{mode:?}: {}", r.text);
        if status == 503 {
            assert!(e.count("HEAD") - before >= 2, "{mode:?} was retried");
            assert!(r.headers.contains_key("retry-after"), "{mode:?}");
        }
        if status == 502 {
            assert_eq!(e.count("HEAD") - before, 1, "{mode:?} is final");
        }
        let row = e.s.state.store.get_object(id).await.unwrap().unwrap();
        assert_eq!(row.status, "issued", "{mode:?}");
    }
    // One transient failure is retried and the callback succeeds.
    e.ks3
        .buckets
        .set_head_mode(Mode::ErrorTimes(500, "InternalError".into(), 1));
    let r = claim(&e.s, id, &key, 5, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.s.stop().await;
}

/// The fake's own KS3 V2 reproduces every `ksyun_object.json` vector's string to sign and
/// signature.
#[test]
fn fake_ks3_matches_the_sdk_vectors() {
    let file: Value =
        serde_json::from_str(include_str!("../vectors/ksyun/ksyun_object.json")).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let (i, x) = (&v["input"], &v["expected"]);
        let st = |o: &Value, k: &str| o[k].as_str().unwrap().to_string();
        let mut headers = reqwest::header::HeaderMap::new();
        let (method, content_type, when) = if v["kind"] == "presigned_put" {
            headers.insert(ks3::TOKEN_HEADER, st(i, "security_token").parse().unwrap());
            (
                "PUT".to_string(),
                i["content_type"].as_str().unwrap_or("").to_string(),
                x["expires"].to_string(),
            )
        } else {
            (st(i, "method"), String::new(), st(x, "date"))
        };
        let text = ks3::string_to_sign(
            &method,
            "",
            &content_type,
            &when,
            &headers,
            &ks3::resource(&st(i, "bucket"), &st(i, "key")),
        );
        assert_eq!(text, st(x, "string_to_sign"), "{name}");
        assert_eq!(
            ks3::sign(&st(i, "secret_access_key"), &text),
            st(x, "signature"),
            "{name}"
        );
    }
    assert_eq!(vectors.len(), file["count"].as_u64().unwrap() as usize);
    assert_eq!(vectors.len(), 8);
}

/// The fake refuses one changed byte: of the presigned URL's signature, of the key in its
/// path, of the form's signature, of stsgate's HEAD signature; and the wrong long-term key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_ks3_refuses_one_altered_byte() {
    let db = Arc::new(sqlite().await);
    let e = Ks3Env::start(db, |_| {}).await;
    let client = e.client();
    let (_, key, d) = issue_png(&e.s).await;
    let flip = |s: &str, at: usize| {
        let mut b = s.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    // Presigned PUT: the signature's first character, then the key's last, changed.
    let url = d["uploadUrl"].as_str().unwrap().to_string();
    let sig_at = url.find("Signature=").unwrap() + "Signature=".len();
    let key_at = url.find('?').unwrap() - 1;
    for (bad, code) in [
        (flip(&url, sig_at), "SignatureDoesNotMatch"),
        (flip(&url, key_at), "SignatureDoesNotMatch"),
    ] {
        let mut altered = d.clone();
        altered["uploadUrl"] = Value::String(bad);
        let (status, text) = put_upload(&client, &altered, b"x").await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains(&format!("<Code>{code}</Code>")), "{text}");
    }
    // Without the token header, or with another Content-Type than signed.
    let mut no_token = d.clone();
    no_token["uploadHeaders"]
        .as_object_mut()
        .unwrap()
        .remove("x-kss-security-token");
    assert_eq!(put_upload(&client, &no_token, b"x").await.0, 403);
    let mut other_type = d.clone();
    other_type["uploadHeaders"]["Content-Type"] = Value::String("text/html".into());
    assert_eq!(put_upload(&client, &other_type, b"x").await.0, 403);
    // The form: one byte of the signature; another key than the policy's.
    let fields = ordered_fields(&d);
    let sig = fields
        .iter()
        .find(|(k, _)| k == "Signature")
        .unwrap()
        .1
        .clone();
    let bad_sig: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            if k == "Signature" {
                (k.clone(), flip(&sig, 0))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let (status, text) = form_upload(&client, &d, &bad_sig, b"x").await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{text}"
    );
    let other_key: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            if k == "key" {
                (k.clone(), format!("{v}.html"))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let (status, text) = form_upload(&client, &d, &other_key, b"x").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    assert!(e.ks3.buckets.objects().is_empty(), "nothing was stored");
    // stsgate's HEAD, signed by stsgate's signer, then with one byte changed / a wrong key.
    e.ks3.buckets.put(BUCKET, &key, Some("image/png"), b"12345");
    let bucket_url = format!("http://{BUCKET}.localhost:{}", e.addr.port());
    let head = |secret: &'static str, alter: bool| {
        let (client, bucket_url, key) = (client.clone(), bucket_url.clone(), key.clone());
        async move {
            let signed = stsgate::providers::ksyun::sign::sign_object_request(
                AK,
                secret,
                "HEAD",
                &bucket_url,
                BUCKET,
                &key,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            );
            let mut req = client.head(&signed.url);
            for (n, v) in signed.headers {
                let v = if alter && n == "Authorization" {
                    let last = v.len() - 2;
                    flip(&v, last)
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
    assert_eq!(head(SK, false).await, (200, Some("5".into())));
    assert_eq!(head(SK, true).await.0, 403);
    assert_eq!(head("not-the-secret", false).await.0, 403);
    assert_eq!(e.sts.rejected(), 0);
    e.s.stop().await;
}

/// No key, temporary secret, token, presigned signature or `KSS` Authorization reaches a
/// trace log through a presigned PUT, a form upload, the HEAD, a refused HEAD and a DELETE.
#[test]
fn no_ks3_secret_in_trace_logs() {
    let mut secrets: Vec<String> = vec![SK.into(), AK.into()];
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let e = Ks3Env::start(db, |c| {
            c.upload.modules.insert(
                "resource_image".into(),
                stsgate::config::ModuleConfig {
                    extensions: Some(vec!["png".into()]),
                    max_bytes: Some(64),
                },
            );
        })
        .await;
        let (id, key, d) = issue_png(&e.s).await;
        assert_eq!(put_upload(&e.client(), &d, b"\x89PNG").await.0, 200);
        assert_eq!(claim(&e.s, id, &key, 4, "image/png").await.status, 200);
        let (id2, key2, d2) = issue_png(&e.s).await;
        let (status, _) = form_upload(&e.client(), &d2, &ordered_fields(&d2), b"\x89PNG").await;
        assert_eq!(status, 204);
        e.ks3
            .buckets
            .set_head_mode(Mode::Error(403, "AccessDenied".into()));
        assert_eq!(claim(&e.s, id2, &key2, 4, "image/png").await.status, 502);
        e.ks3.buckets.set_head_mode(Mode::Ok);
        let (id3, key3, _) = issue_png(&e.s).await;
        e.ks3
            .buckets
            .put(BUCKET, &key3, Some("image/png"), &[1u8; 65]);
        assert_eq!(claim(&e.s, id3, &key3, 4, "image/png").await.code(), 40904);
        for a in [&d, &d2] {
            let url = a["uploadUrl"].as_str().unwrap();
            let q: BTreeMap<String, String> =
                form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                    .into_owned()
                    .collect();
            secrets.push(q["Signature"].clone());
        }
        e.s.stop().await;
        for cred in e.sts.issued() {
            secrets.push(cred.secret_access_key);
            secrets.push(cred.security_token);
        }
    });
    assert!(secrets.len() >= 8);
    assert_no_secret_in_logs(
        &text,
        &secrets,
        &["Signature=", "KSS AKLT", "authorization: "],
    );
}
