//! Cloud type 3 end to end against the fake Aliyun STS and a local callback key server.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::{assert_failure_cases, assert_form_answer_fields, Case};
use stsgate_fakes::aliyun::oss::FakeOss;
use stsgate_fakes::aliyun::{self, FakeAliyunSts, KeyMode, KeyServer};
use stsgate_fakes::Mode;

/// Long-term keys the fake STS expects.
pub const AK_ID: &str = "LTAI5tITstsgateKeyId0000";
/// Long-term secret.
pub const AK_SECRET: &str = "itAliyunAccessKeySecret0123456789";
/// The role stsgate assumes.
pub const ROLE_ARN: &str = "acs:ram::1234567890123456:role/stsgate-uploader";
const BUCKET: &str = "bseditor";
const Q_VIDEO: &str = "type=3&extension=mp4&isNeedCallback=1&uploadModule=resource_video";
const CALLBACK_PATH: &str = "/upload/callback";

fn b64(s: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

/// Enables the Aliyun provider against the fakes: STS at `sts_url`, OSS at
/// `http://localhost:{port}` whose bucket host `bseditor.localhost` connects to `oss`.
fn enable_aliyun(
    c: &mut stsgate::config::Config,
    sts_url: &str,
    key_base: &str,
    oss: std::net::SocketAddr,
) {
    c.providers
        .resolve
        .insert(format!("{BUCKET}.localhost"), oss);
    let a = &mut c.providers.aliyun;
    a.access_key_id = stsgate::secret::Secret::new(AK_ID);
    a.access_key_secret = stsgate::secret::Secret::new(AK_SECRET);
    a.role_arn = ROLE_ARN.into();
    a.bucket = BUCKET.into();
    a.sts_endpoint = sts_url.into();
    a.oss_endpoint = format!("http://localhost:{}", oss.port());
    a.callback_key_url_prefixes = vec![format!("{key_base}/")];
    a.timeout_ms = 300;
    a.connect_timeout_ms = 200;
}

struct Env {
    s: Server,
    fake: Arc<FakeAliyunSts>,
    oss: Arc<FakeOss>,
    oss_addr: std::net::SocketAddr,
    keys: Arc<KeyServer>,
    key_base: String,
}

async fn aliyun_server(db: Arc<Db>, tweak: impl FnOnce(&mut stsgate::config::Config)) -> Env {
    let fake = FakeAliyunSts::new(AK_ID, AK_SECRET, ROLE_ARN);
    let sts_url = fake.start().await;
    let keys = KeyServer::new(aliyun::TEST_CALLBACK_PUBLIC_KEY_PEM);
    let key_base = keys.start().await;
    let oss = FakeOss::new(fake.clone(), AK_ID, AK_SECRET, BUCKET);
    let oss_addr = oss.start().await;
    let mut c = base_config(&db);
    enable_aliyun(&mut c, &sts_url, &key_base, oss_addr);
    tweak(&mut c);
    Env {
        s: Server::start(db, c).await,
        fake,
        oss,
        oss_addr,
        keys,
        key_base,
    }
}

impl Env {
    /// A client that reaches the fake OSS at `bseditor.localhost` (as a browser would reach
    /// the bucket's host).
    fn bucket_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve(&format!("{BUCKET}.localhost"), self.oss_addr)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// `http://localhost:{port}`, the configured OSS endpoint.
    fn endpoint(&self) -> String {
        format!("http://localhost:{}", self.oss_addr.port())
    }

    /// `http://bseditor.localhost:{port}`, the form's URL.
    fn bucket_url(&self) -> String {
        format!("http://{BUCKET}.localhost:{}", self.oss_addr.port())
    }

    /// Puts an object straight into the fake bucket (a stand-in for an upload made some
    /// other way).
    fn put(&self, key: &str, content_type: &str, data: &[u8]) {
        self.oss.buckets.put(BUCKET, key, Some(content_type), data);
    }

    /// PUTs `data` to a presigned `uploadUrl` with `headers`; answers (status, body).
    async fn put_url(&self, url: &str, headers: &[(String, String)], data: &[u8]) -> (u16, String) {
        let mut req = self.bucket_client().put(url).body(data.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// POSTs the answer's browser form with `data` as the file; answers (status, body).
    async fn post_form(&self, d: &Value, filename: &str, mime: &str, data: &[u8]) -> (u16, String) {
        let fields: Vec<(String, String)> = d["form"]["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        self.post_fields(
            d["form"]["url"].as_str().unwrap(),
            &fields,
            filename,
            mime,
            data,
        )
        .await
    }

    async fn post_fields(
        &self,
        url: &str,
        fields: &[(String, String)],
        filename: &str,
        mime: &str,
        data: &[u8],
    ) -> (u16, String) {
        let (ct, body) = stsgate_fakes::multipart::multipart_body(fields, filename, mime, data);
        let res = self
            .bucket_client()
            .post(url)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// `HEAD`s and `DELETE`s the fake bucket received.
    fn object_calls(&self, method: &str) -> usize {
        self.oss
            .object_calls()
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    fn key_url(&self) -> String {
        format!("{}{}", self.key_base, aliyun::KEY_PATH)
    }

    /// POSTs a callback as OSS would: `authorization` signs `signed_path` (decoded path +
    /// `?query`) and `signed_body`; the request carries `path_and_query` and `body`.
    async fn oss_callback(
        &self,
        key_url: &str,
        path_and_query: &str,
        signed_path: &str,
        signed_body: &str,
        body: &str,
    ) -> Answer {
        let sig = aliyun::sign_callback(
            aliyun::TEST_CALLBACK_PRIVATE_KEY_PEM,
            signed_path,
            signed_body.as_bytes(),
        );
        self.s
            .send(
                self.s
                    .http
                    .post(format!("{}{path_and_query}", self.s.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", sig)
                    .header("x-oss-pub-key-url", aliyun::key_url_header(key_url))
                    .body(body.to_string()),
            )
            .await
    }

    /// A correctly signed callback with `body` to `/upload/callback`.
    async fn signed(&self, body: &str) -> Answer {
        self.oss_callback(&self.key_url(), CALLBACK_PATH, CALLBACK_PATH, body, body)
            .await
    }
}

/// The body OSS builds from stsgate's template (values URL-encoded).
fn oss_body(id: i64, rt: u8, bucket: &str, object: &str, size: u64, mime: &str) -> String {
    format!(
        "objectId={id}&resourceType={rt}&bucket={}&object={}&size={size}&mimeType={}&etag=%22D41D8CD98F00B204E9800998ECF8427E%22",
        aliyun::pct(bucket),
        aliyun::pct(object),
        aliyun::pct(mime)
    )
}

/// The keys of the JSON object at the start of `text`, in text order.
fn keys_in_text_order(text: &str) -> Vec<String> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, IgnoredAny)) = m.next_entry::<String, IgnoredAny>()? {
                out.push(k);
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(text)
        .deserialize_map(V)
        .unwrap()
}

fn hmac_sha1_b64(key: &str, msg: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    b64(mac.finalize().into_bytes())
}

on_both_databases!(success_shape_form_and_signed_callbacks, success_shape_body);
async fn success_shape_body(db: Arc<Db>) {
    let env = aliyun_server(db, |_| {}).await;
    let s = &env.s;
    let a = s.sts("alice", Q_VIDEO).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    // docs/contract.md §1.3 fields; STS gives no startTime; one object: an uploadUrl.
    assert_form_answer_fields(d, false, true, true);

    // One STS call, and the answer is what it returned (expiration included, verbatim).
    let issued = env.fake.issued();
    assert_eq!(issued.len(), 1);
    let cred = &issued[0];
    assert_eq!(d["accessKeyId"], cred.access_key_id.as_str());
    assert_eq!(d["secretAccessKey"], cred.access_key_secret.as_str());
    assert_eq!(d["securityToken"], cred.security_token.as_str());
    assert_eq!(d["expiration"], cred.expiration.as_str());
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["region"], "oss-cn-beijing");
    assert_eq!(d["endpoint"], env.endpoint().as_str());
    let id = d["objectId"].as_i64().unwrap();
    let key = d["relativePath"].as_str().unwrap().to_string();
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(&parts[..3], ["test", "resource", "video"], "{key}");
    assert_eq!(parts[6], id.to_string());
    assert!(
        parts[7].ends_with(".mp4") && parts[7].len() == 36 + 4,
        "{key}"
    );

    // What STS was asked: the least-privilege policy, the session name, the duration.
    let sent = &env.fake.accepted()[0];
    assert_eq!(sent["Action"], "AssumeRole");
    assert_eq!(sent["RoleArn"], ROLE_ARN);
    assert_eq!(sent["RoleSessionName"], "alice");
    assert_eq!(sent["DurationSeconds"], "3600");
    let policy: Value = serde_json::from_str(&sent["Policy"]).unwrap();
    assert_eq!(
        policy,
        json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": ["oss:PutObject", "oss:AbortMultipartUpload", "oss:ListParts"],
            "Resource": [format!("acs:oss:*:*:{BUCKET}/{key}")]}]})
    );

    // The browser form.
    let form = &d["form"];
    assert_eq!(form["url"], env.bucket_url().as_str());
    let fields = form["fields"].as_object().unwrap();
    let names = keys_in_text_order(&a.text[a.text.find("\"fields\":").unwrap() + 9..]);
    assert_eq!(
        names,
        [
            "key",
            "OSSAccessKeyId",
            "policy",
            "Signature",
            "x-oss-security-token",
            "success_action_status",
            "Content-Type",
            "callback",
            "x:objectid",
            "x:resourcetype"
        ],
        "field order"
    );
    assert_eq!(fields["key"], key.as_str());
    assert_eq!(fields["OSSAccessKeyId"], cred.access_key_id.as_str());
    assert_eq!(fields["x-oss-security-token"], cred.security_token.as_str());
    assert_eq!(fields["success_action_status"], "200");
    assert_eq!(fields["x:objectid"], id.to_string());
    assert_eq!(fields["x:resourcetype"], "1");
    assert_eq!(d["policy"], fields["policy"]);
    assert_eq!(d["signature"], fields["Signature"]);
    let policy_b64 = fields["policy"].as_str().unwrap();
    assert_eq!(
        fields["Signature"],
        hmac_sha1_b64(&cred.access_key_secret, policy_b64).as_str(),
        "V1 signature with the temporary secret"
    );
    let post: Value = serde_json::from_str(&unb64(policy_b64)).unwrap();
    let exp = post["expiration"].as_str().unwrap();
    assert_eq!(
        exp,
        format!("{}.000Z", cred.expiration.trim_end_matches('Z'))
    );
    let conditions = post["conditions"].as_array().unwrap();
    assert!(conditions.contains(&json!({"bucket": BUCKET})));
    assert!(conditions.contains(&json!(["eq", "$key", key])));
    assert!(conditions.contains(&json!(["content-length-range", 0, 2_147_483_648u64])));
    assert!(conditions.contains(&json!({"x-oss-security-token": cred.security_token})));
    assert!(conditions.contains(&json!({"callback": fields["callback"]})));

    // callbackInfo: the OSS template, and the ready-made callback / callbackVar.
    let cb = &d["callbackInfo"];
    assert_eq!(cb["callbackUrl"], "http://127.0.0.1:8080/upload/callback");
    assert_eq!(
        cb["callbackBody"],
        "objectId=${x:objectid}&resourceType=${x:resourcetype}&bucket=${bucket}&object=${object}&size=${size}&mimeType=${mimeType}&etag=${etag}"
    );
    assert_eq!(cb["customInfo"], json!({"objectId": id, "resourceType": 1}));
    assert_eq!(cb["callback"], fields["callback"]);
    let callback: Value = serde_json::from_str(&unb64(cb["callback"].as_str().unwrap())).unwrap();
    assert_eq!(
        callback,
        json!({"callbackUrl": "http://127.0.0.1:8080/upload/callback",
            "callbackBody": cb["callbackBody"], "callbackBodyType": "application/x-www-form-urlencoded"})
    );
    assert_eq!(
        unb64(cb["callbackVar"].as_str().unwrap()),
        format!(r#"{{"x:objectid":"{id}","x:resourcetype":"1"}}"#)
    );

    // A browser posts the form (a real multipart body, the callback fields included); the
    // fake OSS checks the V1 signature, the token and every policy condition.
    let mp4 = b"\x00\x00\x00\x18ftypmp42stsgate-form-upload";
    let (status, text) = env.post_form(d, "clip.mp4", "video/mp4", mp4).await;
    assert_eq!(status, 200, "{text}");
    let stored = env.oss.buckets.get(BUCKET, &key).expect("stored");
    assert_eq!(stored.data, mp4);
    assert_eq!(stored.content_type.as_deref(), Some("video/mp4"));

    // OSS's signed callback (claiming other facts) is confirmed by stsgate's HEAD: the row
    // records the bucket's size, type and ETag.
    let body = oss_body(id, 1, BUCKET, &key, 1234, "video/mp4");
    let r = env.signed(&body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        json!({"objectId": id, "status": "uploaded"})
    );
    assert_eq!(env.object_calls("HEAD"), 1);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(mp4.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("video/mp4"));
    let etag = stsgate_fakes::bucket::etag(mp4);
    assert_eq!(row.etag.as_deref(), Some(etag.trim_matches('"')));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    let o = s
        .get(&format!("/upload/objects/{id}"), Some(&s.token("alice")))
        .await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["data"]["verifiedBy"], "head", "{}", o.text);
    assert_eq!(o.body["data"]["size"], mp4.len());
    // Replayed: 200, nothing changes, no new HEAD, and the key is not fetched again.
    let r = env.signed(&body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.state.store.get_object(id).await.unwrap().unwrap(), row);
    assert_eq!(env.object_calls("HEAD"), 1);
    assert_eq!(env.keys.fetches(), 1, "the public key is cached by URL");

    // Forged: the body altered after signing.
    let tampered = body.replace("size=1234", "size=9999");
    let r = env
        .oss_callback(
            &env.key_url(),
            CALLBACK_PATH,
            CALLBACK_PATH,
            &body,
            &tampered,
        )
        .await;
    assert_eq!((r.status, r.code()), (401, 40102), "{}", r.text);
    assert_eq!(s.state.store.get_object(id).await.unwrap().unwrap(), row);

    // A second object, and validly signed callbacks that report the wrong object/bucket.
    let b = s.sts("bob", Q_VIDEO).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let id2 = b.body["data"]["objectId"].as_i64().unwrap();
    let key2 = b.body["data"]["relativePath"].as_str().unwrap().to_string();
    for wrong in [
        oss_body(id2, 1, BUCKET, &key, 1, "video/mp4"),
        oss_body(id2, 1, "other-bucket", &key2, 1, "video/mp4"),
        format!("objectId={id2}&resourceType=1&size=1"),
    ] {
        let r = env.signed(&wrong).await;
        assert_eq!((r.status, r.code()), (403, 40301), "{wrong}: {}", r.text);
    }
    assert_eq!(
        s.state.store.get_object(id2).await.unwrap().unwrap().status,
        "issued"
    );
    // A callback URL with a query: OSS signs the decoded path, `?` and the raw query.
    env.put(&key2, "video/mp4", &[1u8; 77]);
    let good2 = oss_body(id2, 1, BUCKET, &key2, 77, "video/mp4");
    let r = env
        .oss_callback(
            &env.key_url(),
            "/upload/callback?tenant=a%2Bb",
            "/upload/callback?tenant=a%2Bb",
            &good2,
            &good2,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row2 = s.state.store.get_object(id2).await.unwrap().unwrap();
    assert_eq!((row2.status.as_str(), row2.size), ("uploaded", Some(77)));
    assert_eq!(env.keys.fetches(), 1);
    assert_eq!(env.fake.rejected(), 0);
    assert_eq!(env.fake.calls(), 2, "one STS call per issuance");
    assert_eq!(env.oss.refusals(), Vec::<String>::new());
    env.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_upload_covers_the_prefix() {
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |_| {}).await;
    let a = env
        .s
        .sts(
            "alice",
            "type=3&extension=png&isNeedCallback=1&uploadModule=resource_image&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let id = d["objectId"].as_i64().unwrap();
    let prefix = d["relativePath"].as_str().unwrap().to_string();
    assert!(prefix.ends_with(&format!("/{id}/")), "{prefix}");
    let sent = &env.fake.accepted()[0];
    let policy: Value = serde_json::from_str(&sent["Policy"]).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        json!([format!("acs:oss:*:*:{BUCKET}/{prefix}*")])
    );
    let fields = &d["form"]["fields"];
    assert_eq!(fields["key"], format!("{prefix}${{filename}}"));
    let post: Value = serde_json::from_str(&unb64(fields["policy"].as_str().unwrap())).unwrap();
    assert!(post["conditions"].as_array().unwrap().contains(&json!([
        "starts-with",
        "$key",
        prefix
    ])));
    assert!(post["conditions"].as_array().unwrap().contains(&json!([
        "content-length-range",
        0,
        20_971_520
    ])));
    // A file inside the folder is accepted; the folder itself or a sibling is not.
    let r = env
        .signed(&oss_body(id, 2, BUCKET, &prefix, 1, "image/png"))
        .await;
    assert_eq!((r.status, r.code()), (403, 40301));
    let sibling = prefix.replace(&format!("/{id}/"), &format!("/{}/", id + 1000));
    let r = env
        .signed(&oss_body(
            id,
            2,
            BUCKET,
            &format!("{sibling}a.png"),
            1,
            "image/png",
        ))
        .await;
    assert_eq!((r.status, r.code()), (403, 40301));
    let r = env
        .signed(&oss_body(
            id,
            2,
            BUCKET,
            &format!("{prefix}frame001.png"),
            9,
            "image/png",
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    env.s.stop().await;
}

/// Each failure mode answers its documented code, and the ledger row is `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_modes_map_to_documented_codes() {
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let s = &env.s;
    let e = |code: &str, status: u16| Mode::Error(status, code.into());
    let cases: Vec<Case<Mode>> = vec![
        (e("NoPermission", 403), 502, 50201, Some("NoPermission")),
        (
            e("InvalidParameter.DurationSeconds", 400),
            502,
            50201,
            Some("InvalidParameter.DurationSeconds"),
        ),
        (
            e("InvalidAccessKeyId.NotFound", 404),
            502,
            50201,
            Some("InvalidAccessKeyId.NotFound"),
        ),
        (
            e("SignatureDoesNotMatch", 400),
            502,
            50201,
            Some("SignatureDoesNotMatch"),
        ),
        (
            e("EntityNotExist.Role", 404),
            502,
            50201,
            Some("EntityNotExist.Role"),
        ),
        (e("Throttling.User", 400), 503, 50301, None),
        (e("ServiceUnavailable", 503), 503, 50301, None),
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
    assert_failure_cases(s, Q_VIDEO, 1, |m| env.fake.set_mode(m), cases).await;
    // One throttling answer is retried (with a fresh nonce) and succeeds.
    env.fake
        .set_mode(Mode::ErrorTimes(400, "Throttling.User".into(), 1));
    let calls = env.fake.calls();
    let a = s.sts("alice", Q_VIDEO).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(env.fake.calls(), calls + 2);
    assert_eq!(env.fake.rejected(), 0, "every request was signed correctly");
    env.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_by_the_fake() {
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |c| {
        c.providers.aliyun.access_key_secret = stsgate::secret::Secret::new("not-the-right-secret");
    })
    .await;
    let a = env.s.sts("alice", Q_VIDEO).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .contains("SignatureDoesNotMatch"));
    assert_eq!(env.fake.rejected(), 1);
    assert!(!a.text.contains("not-the-right-secret"));
    assert!(
        !a.text.contains(AK_ID),
        "the cloud's string to sign is not echoed"
    );
    env.s.stop().await;
}

/// The fake's own RPC verifier agrees with the official SDK vectors, and refuses a
/// signature altered by one byte.
#[tokio::test]
async fn fake_verifier_matches_vectors_and_rejects_one_altered_byte() {
    let file: Value =
        serde_json::from_str(include_str!("../vectors/aliyun/aliyun_rpc_sts.json")).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let i = &v["input"];
        let params: BTreeMap<String, String> = i["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let sig = aliyun::expected_signature(
            i["method"].as_str().unwrap(),
            i["access_key_secret"].as_str().unwrap(),
            &params,
        );
        assert_eq!(
            sig,
            v["expected"]["signature"].as_str().unwrap(),
            "{}",
            v["id"]
        );
        checked += 1;
    }
    assert_eq!(checked, 7);

    let fake = FakeAliyunSts::new(AK_ID, AK_SECRET, ROLE_ARN);
    let url = fake.start().await;
    let send = |nonce: &str, alter: bool| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut p: BTreeMap<String, String> = [
            ("Action", "AssumeRole"),
            ("Format", "JSON"),
            ("Version", "2015-04-01"),
            ("AccessKeyId", AK_ID),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("RoleArn", ROLE_ARN),
            ("RoleSessionName", "alice"),
            ("DurationSeconds", "900"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.insert("SignatureNonce".into(), nonce.into());
        p.insert("Timestamp".into(), stsgate::clock::rfc3339(now));
        let mut sig = aliyun::expected_signature("POST", AK_SECRET, &p).into_bytes();
        if alter {
            sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
        }
        p.insert("Signature".into(), String::from_utf8(sig).unwrap());
        let query: String = p
            .iter()
            .map(|(k, v)| format!("{}={}", aliyun::pct(k), aliyun::pct(v)))
            .collect::<Vec<_>>()
            .join("&");
        reqwest::Client::new()
            .post(format!("{url}/?{query}"))
            .send()
    };
    let ok = send("nonce-1", false).await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert!(ok["Credentials"]["AccessKeyId"].is_string(), "{ok}");
    let bad = send("nonce-2", true).await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["Code"], "SignatureDoesNotMatch");
    assert_eq!(fake.rejected(), 1);
    // A reused nonce is refused too.
    let again: Value = send("nonce-1", false).await.unwrap().json().await.unwrap();
    assert_eq!(again["Code"], "SignatureNonceUsed");
}

/// Key URLs outside the prefixes are refused before any fetch; failed fetches and
/// redirects out of the prefixes are refused and not cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_key_urls_are_confined_to_the_prefixes() {
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |_| {}).await;
    let a = env.s.sts("alice", Q_VIDEO).await;
    assert_eq!(a.status, 200);
    let id = a.body["data"]["objectId"].as_i64().unwrap();
    let key = a.body["data"]["relativePath"].as_str().unwrap().to_string();
    let body = oss_body(id, 1, BUCKET, &key, 5, "video/mp4");
    let host = env.key_base.trim_start_matches("http://").to_string();
    for url in [
        format!("http://{host}0{}", aliyun::KEY_PATH),
        format!("http://{host}@evil.example{}", aliyun::KEY_PATH),
        format!("http://{host}.evil.example{}", aliyun::KEY_PATH),
        format!("https://gosspublic.alicdn.com{}", aliyun::KEY_PATH),
    ] {
        let r = env
            .oss_callback(&url, CALLBACK_PATH, CALLBACK_PATH, &body, &body)
            .await;
        assert_eq!((r.status, r.code()), (401, 40102), "{url}: {}", r.text);
    }
    // Malformed headers.
    let r = env
        .s
        .send(
            env.s
                .http
                .post(format!("{}{CALLBACK_PATH}", env.s.base))
                .header("x-oss-pub-key-url", "%%%")
                .header("authorization", "x")
                .body(body.clone()),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, 40102));
    assert_eq!(env.keys.fetches(), 0, "nothing was fetched");

    // The key server fails: refused, and the failure is not cached.
    env.keys.set_mode(KeyMode::Http500);
    let r = env.signed(&body).await;
    assert_eq!((r.status, r.code()), (401, 40102), "{}", r.text);
    // A redirect to a server outside the prefixes (serving the right key) is refused
    // without being followed: the outside server is never asked.
    let outside = KeyServer::new(aliyun::TEST_CALLBACK_PUBLIC_KEY_PEM);
    let outside_base = outside.start().await;
    env.keys.set_mode(KeyMode::Redirect(format!(
        "{outside_base}{}",
        aliyun::KEY_PATH
    )));
    let r = env.signed(&body).await;
    assert_eq!((r.status, r.code()), (401, 40102), "{}", r.text);
    assert_eq!(outside.fetches(), 0, "the redirect was followed");
    env.keys.set_mode(KeyMode::Ok);
    env.put(&key, "video/mp4", b"12345");
    let r = env.signed(&body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(env.keys.fetches(), 3);
    // Signed for another path: refused (the cached key is used, no new fetch).
    let r = env
        .oss_callback(&env.key_url(), CALLBACK_PATH, "/other/path", &body, &body)
        .await;
    assert_eq!((r.status, r.code()), (401, 40102), "{}", r.text);
    env.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_callbacks_need_the_aliyun_provider() {
    // Aliyun disabled: an OSS-looking callback is refused, never treated as a user's.
    let db = Arc::new(sqlite().await);
    let s = Server::start(db.clone(), base_config(&db)).await;
    let alice = s.token("alice");
    let r = s
        .send(
            s.http
                .post(format!("{}{CALLBACK_PATH}", s.base))
                .bearer_auth(&alice)
                .header("x-oss-pub-key-url", b64("http://127.0.0.1:1/k.pem"))
                .body("objectId=1"),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, 40102), "{}", r.text);
    s.stop().await;
}

/// No secret reaches a log line at `trace` level through an issuance, OSS callbacks (good,
/// forged, key fetch failure) and every STS failure mode.
#[test]
fn no_secret_in_trace_logs() {
    let mut secrets: Vec<String> = vec![
        JWT_SECRET.into(),
        AK_SECRET.into(),
        "wrong-aliyun-secret-for-leak-test".into(),
    ];
    let mut signatures = Vec::new();
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let env = aliyun_server(db.clone(), |c| c.server.request_timeout_ms = 1200).await;
        let alice = env.s.token("alice");
        secrets.push(alice.clone());
        let a = env
            .s
            .get(&format!("/upload/sts/info?{Q_VIDEO}"), Some(&alice))
            .await;
        assert_eq!(a.status, 200);
        let id = a.body["data"]["objectId"].as_i64().unwrap();
        let key = a.body["data"]["relativePath"].as_str().unwrap().to_string();
        let body = oss_body(id, 1, BUCKET, &key, 3, "video/mp4");
        signatures.push(aliyun::sign_callback(
            aliyun::TEST_CALLBACK_PRIVATE_KEY_PEM,
            CALLBACK_PATH,
            body.as_bytes(),
        ));
        let put = a.body["data"]["uploadUrl"].as_str().unwrap().to_string();
        signatures.push(put.clone());
        signatures.push(put.rsplit_once("Signature=").unwrap().1.to_string());
        env.keys.set_mode(KeyMode::Http500);
        assert_eq!(env.signed(&body).await.status, 401);
        env.keys.set_mode(KeyMode::Ok);
        // Absent (a HEAD answers 404), then present (a HEAD answers 200).
        assert_eq!(env.signed(&body).await.status, 409);
        env.put(&key, "video/mp4", b"abc");
        assert_eq!(env.signed(&body).await.status, 200);
        let forged = body.replace("size=3", "size=4");
        let r = env
            .oss_callback(&env.key_url(), CALLBACK_PATH, CALLBACK_PATH, &body, &forged)
            .await;
        assert_eq!(r.status, 401);
        for mode in [
            Mode::Error(400, "SignatureDoesNotMatch".into()),
            Mode::Error(400, "Throttling.User".into()),
            Mode::Http500,
            Mode::Malformed,
            Mode::Hang,
            Mode::ShortLived(10),
        ] {
            env.fake.set_mode(mode);
            let a = env.s.sts("alice", Q_VIDEO).await;
            assert!(a.status >= 500, "{}", a.text);
        }
        env.fake.set_mode(Mode::Ok);
        env.s.stop().await;
        // A wrong configured secret: STS answers SignatureDoesNotMatch quoting its string to
        // sign; none of it may reach a log.
        let env2 = aliyun_server(db, |c| {
            c.providers.aliyun.access_key_secret =
                stsgate::secret::Secret::new("wrong-aliyun-secret-for-leak-test");
        })
        .await;
        assert_eq!(env2.s.sts("alice", Q_VIDEO).await.code(), 50201);
        env2.s.stop().await;
        for cred in env.fake.issued() {
            secrets.push(cred.access_key_secret);
            secrets.push(cred.security_token);
        }
    });
    assert!(secrets.len() > 6);
    secrets.extend(signatures);
    let auth_prefix = format!("OSS {AK_ID}:");
    let markers = [
        "Bearer ",
        "authorization: ",
        "string to sign",
        "Signature=",
        "security-token=",
        auth_prefix.as_str(),
    ];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}

on_both_databases!(
    oss_signed_callback_is_tied_to_aliyun_rows,
    oss_signed_callback_is_tied_to_aliyun_rows_body
);
/// An OSS signature proves only that OSS sent the callback (OSS signs every customer's
/// callbacks with one key, and the uploader writes the body): it must not mark another
/// cloud's row, not even one in a bucket of the same name under its `isDir` prefix.
async fn oss_signed_callback_is_tied_to_aliyun_rows_body(db: Arc<Db>) {
    let env = aliyun_server(db, |c| {
        c.providers.qiniu.access_key = stsgate::secret::Secret::new("AKqiniuForOssTest00000");
        c.providers.qiniu.secret_key = stsgate::secret::Secret::new("SKqiniuForOssTest00000");
        c.providers.qiniu.bucket = BUCKET.into();
    })
    .await;
    let s = &env.s;
    let q = s
        .sts(
            "bob",
            "type=0&extension=mp4&isNeedCallback=1&uploadModule=resource_video&isDir=1",
        )
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
    let id = q.body["data"]["objectId"].as_i64().unwrap();
    let prefix = q.body["data"]["relativePath"].as_str().unwrap().to_string();
    assert!(prefix.ends_with('/'), "{prefix}");
    let forged = oss_body(
        id,
        1,
        BUCKET,
        &format!("{prefix}forged.mp4"),
        1,
        "video/mp4",
    );
    let r = env.signed(&forged).await;
    assert_eq!((r.status, r.code()), (403, 40301), "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.size), ("issued", None));
    // The same signature on an Aliyun row of the same bucket is accepted.
    let a = s.sts("alice", Q_VIDEO).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let aid = a.body["data"]["objectId"].as_i64().unwrap();
    let key = a.body["data"]["relativePath"].as_str().unwrap().to_string();
    env.put(&key, "video/mp4", b"12345");
    let r = env
        .signed(&oss_body(aid, 1, BUCKET, &key, 5, "video/mp4"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(aid).await.unwrap().unwrap();
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    assert_eq!(
        env.object_calls("HEAD"),
        1,
        "the Qiniu row was never asked about"
    );
}

// ---- uploadUrl, the form, and stsgate's own V1-signed HEAD (docs/contract.md §6) ----

const Q_PNG: &str = "type=3&extension=png&isNeedCallback=1&uploadModule=resource_image";

/// Issues one PNG upload for alice; returns (objectId, relativePath, data).
async fn issue_png(env: &Env) -> (i64, String, Value) {
    let a = env.s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = a.body["data"].clone();
    (
        d["objectId"].as_i64().unwrap(),
        d["relativePath"].as_str().unwrap().to_string(),
        d,
    )
}

/// alice's own (JWT) callback for `id` claiming `size` bytes of `mime`.
async fn claim(env: &Env, id: i64, key: &str, size: usize, mime: &str) -> Answer {
    let body = format!(
        "objectId={id}&resourceType=2&bucket={BUCKET}&object={}&size={size}&mimeType={}",
        aliyun::pct(key),
        aliyun::pct(mime)
    );
    env.s
        .callback_form(Some(&env.s.token("alice")), &body)
        .await
}

/// `uploadHeaders` as pairs.
fn upload_headers(d: &Value) -> Vec<(String, String)> {
    d["uploadHeaders"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

on_both_databases!(
    upload_url_put_then_callback_records_the_bucket_s_facts,
    upload_url_body
);
async fn upload_url_body(db: Arc<Db>) {
    let env = aliyun_server(db, |_| {}).await;
    let (id, key, d) = issue_png(&env).await;
    let cred = env.fake.issued()[0].clone();
    // The presigned PUT: exactly the key (oss2 quotes the whole key, `/` included), the
    // token as the signed `security-token`, the temporary key id, Expires = the credentials'.
    let url = d["uploadUrl"].as_str().unwrap().to_string();
    assert_eq!(
        d["uploadHeaders"],
        json!({"Content-Type": "image/png"}),
        "the extension's type is signed"
    );
    let (path, query) = url.split_once('?').unwrap();
    assert_eq!(path, format!("{}/{}", env.bucket_url(), aliyun::pct(&key)));
    let q = stsgate_fakes::aliyun::oss::query_pairs(Some(query));
    let names: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["security-token", "OSSAccessKeyId", "Expires", "Signature"]
    );
    assert_eq!(q[0].1, cred.security_token);
    assert_eq!(q[1].1, cred.access_key_id);
    assert_eq!(
        q[2].1,
        cred.expires_at.to_string(),
        "never outlives the credentials"
    );
    let headers = upload_headers(&d);
    let png = b"\x89PNG\r\n\x1a\nstsgate-put-upload";

    // The fake OSS refuses: no Content-Type, another type, a signature or key changed by
    // one byte, an expired URL.
    let (st, text) = env.put_url(&url, &[], png).await;
    assert_eq!(st, 403, "{text}");
    assert!(
        text.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{text}"
    );
    let gif = vec![("Content-Type".to_string(), "image/gif".to_string())];
    assert_eq!(env.put_url(&url, &gif, png).await.0, 403);
    let sig_at = url.find("Signature=").unwrap() + "Signature=".len();
    let mut bytes = url.clone().into_bytes();
    bytes[sig_at + 2] = if bytes[sig_at + 2] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let altered = String::from_utf8(bytes).unwrap();
    assert_eq!(env.put_url(&altered, &headers, png).await.0, 403);
    let other_key = url.replacen(".png?", "x.png?", 1);
    assert_eq!(env.put_url(&other_key, &headers, png).await.0, 403);
    let expired = url.replace(
        &format!("Expires={}", cred.expires_at),
        "Expires=1000000000",
    );
    assert_eq!(env.put_url(&expired, &headers, png).await.0, 403);
    assert!(env.oss.buckets.objects().is_empty());
    assert_eq!(
        env.oss.refusals(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "AccessDenied"
        ]
    );

    // As sent: stored with the signed type.
    let (st, text) = env.put_url(&url, &headers, png).await;
    assert_eq!(st, 200, "{text}");
    let stored = env.oss.buckets.get(BUCKET, &key).unwrap();
    assert_eq!(
        (stored.data.as_slice(), stored.content_type.as_deref()),
        (&png[..], Some("image/png"))
    );

    // The client claims another size and type; the row takes the bucket's.
    let r = claim(&env, id, &key, 999_999, "text/plain").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(env.object_calls("HEAD"), 1);
    let o = env
        .s
        .get(
            &format!("/upload/objects/{id}"),
            Some(&env.s.token("alice")),
        )
        .await;
    assert_eq!(o.status, 200, "{}", o.text);
    let data = &o.body["data"];
    assert_eq!(data["status"], "uploaded", "{}", o.text);
    assert_eq!(data["verifiedBy"], "head", "{}", o.text);
    assert_eq!(data["size"], png.len());
    let row = env.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.mime.as_deref(), Some("image/png"));
    let etag = stsgate_fakes::bucket::etag(png);
    assert_eq!(row.etag.as_deref(), Some(etag.trim_matches('"')));
    // A repeat changes nothing and asks nothing.
    let r = claim(&env, id, &key, 1, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(env.object_calls("HEAD"), 1);

    // A folder grant has no uploadUrl.
    let dir = env.s.sts("alice", &format!("{Q_PNG}&isDir=1")).await;
    assert_eq!(dir.status, 200, "{}", dir.text);
    assert!(dir.body["data"].get("uploadUrl").is_none());
    assert!(dir.body["data"].get("uploadHeaders").is_none());
    env.s.stop().await;
}

on_both_databases!(a_signed_callback_for_an_absent_object_is_40903, absent_body);
/// OSS signs every bucket's callbacks with one key: a validly signed callback for an object
/// our bucket does not hold is 40903, and the row stays `issued`.
async fn absent_body(db: Arc<Db>) {
    let env = aliyun_server(db, |_| {}).await;
    let (id, key, d) = issue_png(&env).await;
    let body = oss_body(id, 2, BUCKET, &key, 10, "image/png");
    let r = env.signed(&body).await;
    assert_eq!((r.status, r.code()), (409, 40903), "{}", r.text);
    assert_eq!(env.object_calls("HEAD"), 1);
    let row = env.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!((row.size, row.verified_by), (None, None));
    // The client's own callback too.
    let r = claim(&env, id, &key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40903), "{}", r.text);
    assert_eq!(env.object_calls("HEAD"), 2);
    assert_eq!(
        env.s
            .state
            .store
            .get_object(id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "issued"
    );
    // Once uploaded (the form this time), the same signed callback records it.
    let (st, text) = env.post_form(&d, "n.png", "image/png", b"\x89PNGok").await;
    assert_eq!(st, 200, "{text}");
    let r = env.signed(&body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = env.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.size), ("uploaded", Some(6)));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    env.s.stop().await;
}

on_both_databases!(
    an_object_over_max_bytes_is_deleted_and_rejected,
    over_max_body
);
async fn over_max_body(db: Arc<Db>) {
    let env = aliyun_server(db, |c| {
        c.upload.modules.insert(
            "resource_image".into(),
            stsgate::config::ModuleConfig {
                extensions: Some(vec!["png".into()]),
                max_bytes: Some(16),
            },
        );
    })
    .await;
    // The form's policy refuses a file over the limit.
    let (id, key, d) = issue_png(&env).await;
    let (st, text) = env.post_form(&d, "n.png", "image/png", &[7u8; 17]).await;
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("EntityTooLarge"), "{text}");
    // Too large, put straight into the bucket: deleted, rejected with the bucket's facts.
    env.put(&key, "image/png", &[7u8; 17]);
    let r = claim(&env, id, &key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert_eq!(env.object_calls("DELETE"), 1);
    assert!(env.oss.buckets.get(BUCKET, &key).is_none(), "deleted");
    let row = env.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.size, Some(17));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    // The same through OSS's own signed callback, and for a refused content type.
    let (id2, key2, _) = issue_png(&env).await;
    env.put(&key2, "text/html", b"<html>");
    let r = env
        .signed(&oss_body(id2, 2, BUCKET, &key2, 6, "image/png"))
        .await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    let row = env.s.state.store.get_object(id2).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.mime.as_deref(), Some("text/html"));
    assert!(env.oss.buckets.get(BUCKET, &key2).is_none(), "deleted");
    // Within the rules: uploaded.
    let (id3, key3, _) = issue_png(&env).await;
    env.put(&key3, "image/png", &[7u8; 16]);
    let r = claim(&env, id3, &key3, 16, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A DELETE OSS refuses is logged, not fatal: the row is still rejected.
    let (id4, key4, _) = issue_png(&env).await;
    env.put(&key4, "image/png", &[7u8; 40]);
    env.oss
        .buckets
        .set_delete_mode(Mode::Error(403, "AccessDenied".into()));
    let r = claim(&env, id4, &key4, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(env.oss.buckets.get(BUCKET, &key4).is_some(), "still there");
    assert_eq!(
        env.s
            .state
            .store
            .get_object(id4)
            .await
            .unwrap()
            .unwrap()
            .status,
        "rejected"
    );
    env.s.stop().await;
}

/// `verify_uploads = false`: no HEAD; the client's claim (`verifiedBy: client`) and OSS's
/// signed callback (`cloud-callback`) are recorded as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verify_uploads_the_callback_s_word_is_recorded() {
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |c| c.providers.aliyun.verify_uploads = false).await;
    let (id, key, _) = issue_png(&env).await;
    let r = claim(&env, id, &key, 1234, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = env.s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.size, Some(1234));
    assert_eq!(row.verified_by.as_deref(), Some("client"));
    let (id2, key2, _) = issue_png(&env).await;
    let r = env
        .signed(&oss_body(id2, 2, BUCKET, &key2, 77, "image/png"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = env.s.state.store.get_object(id2).await.unwrap().unwrap();
    assert_eq!(row.size, Some(77));
    assert_eq!(row.verified_by.as_deref(), Some("cloud-callback"));
    assert!(env.oss.object_calls().is_empty(), "no HEAD was sent");
    env.s.stop().await;
}

/// A failing HEAD maps like any upstream call, and the row stays `issued`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_failures_map_to_the_upstream_codes() {
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let (id, key, _) = issue_png(&env).await;
    env.put(&key, "image/png", b"\x89PNGx");
    let cases: Vec<(Mode, u16, i64)> = vec![
        (Mode::Http500, 503, 50301),
        (Mode::Error(503, "ServiceUnavailable".into()), 503, 50301),
        (Mode::Error(403, "AccessDenied".into()), 502, 50201),
        (Mode::Hang, 504, 50401),
    ];
    for (mode, status, code) in cases {
        env.oss.buckets.set_head_mode(mode.clone());
        let before = env.object_calls("HEAD");
        // Both the client's callback and OSS's signed one go through the HEAD.
        let r = if status == 502 {
            env.signed(&oss_body(id, 2, BUCKET, &key, 5, "image/png"))
                .await
        } else {
            claim(&env, id, &key, 5, "image/png").await
        };
        assert_eq!((r.status, r.code()), (status, code), "{mode:?}: {}", r.text);
        if status == 503 {
            assert!(
                env.object_calls("HEAD") - before >= 2,
                "{mode:?} was retried"
            );
            assert!(r.headers.contains_key("retry-after"), "{mode:?}");
        }
        if status == 502 {
            assert_eq!(env.object_calls("HEAD") - before, 1, "{mode:?} is final");
        }
        let row = env.s.state.store.get_object(id).await.unwrap().unwrap();
        assert_eq!(row.status, "issued", "{mode:?}");
    }
    // One transient failure is retried and the callback succeeds.
    env.oss
        .buckets
        .set_head_mode(Mode::ErrorTimes(500, "InternalError".into(), 1));
    let r = claim(&env, id, &key, 5, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        env.s
            .state
            .store
            .get_object(id)
            .await
            .unwrap()
            .unwrap()
            .size,
        Some(5)
    );
    env.s.stop().await;
}

/// The fake OSS checks with its own V1 code: stsgate's long-term HEAD passes, one altered
/// byte, a wrong secret or another key id do not; a form with one field or the signature
/// changed, or for a file over its range, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_oss_refuses_altered_requests() {
    use stsgate::providers::aliyun::sign;
    let db = Arc::new(sqlite().await);
    let env = aliyun_server(db, |_| {}).await;
    env.put("k/a b+c.png", "image/png", b"12345");
    let head = |id: &'static str, secret: &'static str, alter: bool| {
        let client = env.bucket_client();
        let bucket_url = env.bucket_url();
        async move {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let signed = sign::sign_object_request(
                id,
                secret,
                "HEAD",
                &bucket_url,
                BUCKET,
                "k/a b+c.png",
                now,
            );
            let mut req = client.head(&signed.url);
            for (n, v) in signed.headers {
                let v = if alter && n == "Authorization" {
                    let mut b = v.into_bytes();
                    let at = b.len() - 3;
                    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
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
    assert_eq!(head(AK_ID, AK_SECRET, false).await, (200, Some("5".into())));
    assert_eq!(head(AK_ID, AK_SECRET, true).await.0, 403);
    assert_eq!(head(AK_ID, "wrongSecret", false).await.0, 403);
    assert_eq!(head("LTAIother", AK_SECRET, false).await.0, 403);
    assert_eq!(
        env.oss.refusals(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId"
        ]
    );

    // The form: as issued it passes; each change is refused.
    let (_, key, d) = issue_png(&env).await;
    let url = d["form"]["url"].as_str().unwrap();
    let fields: Vec<(String, String)> = d["form"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| {
                if k == name {
                    (k.clone(), value.to_string())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    };
    let sig = fields
        .iter()
        .find(|(k, _)| k == "Signature")
        .unwrap()
        .1
        .clone();
    let mut one_byte = sig.clone().into_bytes();
    one_byte[3] = if one_byte[3] == b'A' { b'B' } else { b'A' };
    let one_byte = String::from_utf8(one_byte).unwrap();
    let other_key = format!("{key}x");
    for (altered, code) in [
        (with("Signature", &one_byte), "SignatureDoesNotMatch"),
        (with("key", &other_key), "AccessDenied"),
        (with("Content-Type", "text/html"), "AccessDenied"),
        (
            with("x-oss-security-token", "CAISother"),
            "InvalidSecurityToken",
        ),
    ] {
        let before = env.oss.refusals().len();
        let (st, text) = env
            .post_fields(url, &altered, "n.png", "image/png", b"\x89PNG")
            .await;
        assert_eq!(st, 403, "{code}: {text}");
        assert_eq!(env.oss.refusals()[before..], [code.to_string()], "{text}");
    }
    assert!(env.oss.buckets.get(BUCKET, &other_key).is_none());
    let (st, text) = env
        .post_fields(url, &fields, "n.png", "image/png", b"\x89PNG")
        .await;
    assert_eq!(st, 200, "{text}");
    assert_eq!(env.oss.buckets.get(BUCKET, &key).unwrap().size, 4);
    env.s.stop().await;
}
