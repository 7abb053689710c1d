//! Cloud type 3 end to end against the fake Aliyun STS and a local callback key server.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::{assert_failure_cases, assert_form_answer_fields, Case};
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

/// Enables the Aliyun provider against the fakes.
fn enable_aliyun(c: &mut stsgate::config::Config, sts_url: &str, key_base: &str) {
    let a = &mut c.providers.aliyun;
    a.access_key_id = stsgate::secret::Secret::new(AK_ID);
    a.access_key_secret = stsgate::secret::Secret::new(AK_SECRET);
    a.role_arn = ROLE_ARN.into();
    a.bucket = BUCKET.into();
    a.sts_endpoint = sts_url.into();
    a.callback_key_url_prefixes = vec![format!("{key_base}/")];
    a.timeout_ms = 300;
    a.connect_timeout_ms = 200;
}

struct Env {
    s: Server,
    fake: Arc<FakeAliyunSts>,
    keys: Arc<KeyServer>,
    key_base: String,
}

async fn aliyun_server(db: Arc<Db>, tweak: impl FnOnce(&mut stsgate::config::Config)) -> Env {
    let fake = FakeAliyunSts::new(AK_ID, AK_SECRET, ROLE_ARN);
    let sts_url = fake.start().await;
    let keys = KeyServer::new(aliyun::TEST_CALLBACK_PUBLIC_KEY_PEM);
    let key_base = keys.start().await;
    let mut c = base_config(&db);
    enable_aliyun(&mut c, &sts_url, &key_base);
    tweak(&mut c);
    Env {
        s: Server::start(db, c).await,
        fake,
        keys,
        key_base,
    }
}

impl Env {
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
    // docs/contract.md §1.3 fields; STS gives no startTime.
    assert_form_answer_fields(d, false, true, false);

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
    assert_eq!(d["endpoint"], "https://oss-cn-beijing.aliyuncs.com");
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
    assert_eq!(form["url"], "https://bseditor.oss-cn-beijing.aliyuncs.com");
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

    // A signed callback marks the object uploaded, with size, mime and etag.
    let body = oss_body(id, 1, BUCKET, &key, 1234, "video/mp4");
    let r = env.signed(&body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        json!({"objectId": id, "status": "uploaded"})
    );
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(1234));
    assert_eq!(row.mime.as_deref(), Some("video/mp4"));
    assert_eq!(
        row.etag.as_deref(),
        Some("D41D8CD98F00B204E9800998ECF8427E")
    );
    // Replayed: 200, nothing changes, and the key is not fetched again.
    let r = env.signed(&body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.state.store.get_object(id).await.unwrap().unwrap(), row);
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
        env.keys.set_mode(KeyMode::Http500);
        assert_eq!(env.signed(&body).await.status, 401);
        env.keys.set_mode(KeyMode::Ok);
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
    let markers = ["Bearer ", "authorization: ", "string to sign", "Signature="];
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
    let r = env
        .signed(&oss_body(aid, 1, BUCKET, &key, 5, "video/mp4"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(aid).await.unwrap().unwrap();
    assert_eq!(row.verified_by.as_deref(), Some("cloud-callback"));
}
