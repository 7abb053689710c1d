//! Cloud type 2 end to end against the fake STS + S3 (`fakes::sts`), which verifies every
//! SigV4 signature and every POST policy with its own code.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stsgate::config::{Config, ModuleConfig};
use stsgate::secret::Secret;

use crate::helpers::*;
use crate::on_both_databases;
use crate::sts_common::{assert_form_answer_fields, post_form, put_upload};
use stsgate_fakes::aws::{self, FakeSts};
use stsgate_fakes::Mode;

const AWS_KEY_ID: &str = "AKIAITSTSGATE0000001";
const AWS_SECRET: &str = "itAwsSecretKey/+0123456789abcdefghijklmno";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/uploader";
const BUCKET: &str = "upload-bucket";
const REGION: &str = "eu-west-1";
const Q_PNG: &str = "type=2&extension=png&isNeedCallback=1&uploadModule=resource_image";

fn enable_aws(c: &mut Config, url: &str) {
    let a = &mut c.providers.aws;
    a.access_key_id = Secret::new(AWS_KEY_ID);
    a.secret_access_key = Secret::new(AWS_SECRET);
    a.role_arn = ROLE_ARN.into();
    a.sts_endpoint = url.into();
    a.region = REGION.into();
    a.bucket = BUCKET.into();
    a.s3_endpoint = url.into();
    a.path_style = true;
    a.timeout_ms = 300;
    a.connect_timeout_ms = 200;
}

async fn fake_sts() -> (Arc<FakeSts>, String) {
    let fake = FakeSts::new(AWS_KEY_ID, AWS_SECRET, REGION, ROLE_ARN, BUCKET);
    let url = fake.start().await;
    (fake, url)
}

async fn aws_server(
    db: Arc<Db>,
    tweak: impl FnOnce(&mut Config),
) -> (Server, Arc<FakeSts>, String) {
    let (fake, url) = fake_sts().await;
    let mut c = base_config(&db);
    enable_aws(&mut c, &url);
    tweak(&mut c);
    (Server::start(db, c).await, fake, url)
}

/// `form.fields` in order (S3 names the signature field `x-amz-signature`).
fn form_fields(d: &Value) -> Vec<(String, String)> {
    d["form"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// POSTs a browser form to the fake S3; returns (status, body).
async fn browser_post(
    url: &str,
    fields: &[(String, String)],
    filename: &str,
    data: &[u8],
) -> (u16, String) {
    post_form(url, fields, filename, "image/png", data, None).await
}

fn with_field(
    fields: &[(String, String)],
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        fields.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(v) = value {
        // Keep the field where it was.
        let at = fields
            .iter()
            .position(|(k, _)| k == name)
            .unwrap_or(out.len());
        out.insert(at.min(out.len()), (name.into(), v.into()));
    }
    out
}

on_both_databases!(
    issue_then_browser_upload_then_callback,
    issue_upload_callback_body
);
async fn issue_upload_callback_body(db: Arc<Db>) {
    let (s, fake, url) = aws_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    // docs/contract.md §1.3 fields; STS gives no startTime.
    assert_form_answer_fields(d, false, true, true);

    // One STS call, asking for exactly the least privilege on exactly this key.
    let calls = fake.assume_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    let key = d["relativePath"].as_str().unwrap();
    let id = d["objectId"].as_i64().unwrap();
    assert!(
        key.starts_with("test/resource/image/")
            && key.contains(&format!("/{id}/"))
            && key.ends_with(".png"),
        "{key}"
    );
    assert_eq!(call.role_arn, ROLE_ARN);
    assert_eq!(call.session_name, "alice");
    assert_eq!(call.duration_secs, Some(3600), "upload.duration_secs");
    assert_eq!(
        call.region, REGION,
        "signing region = region for a non-global endpoint"
    );
    assert_eq!(
        call.policy.as_deref().unwrap(),
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Resource":["arn:aws:s3:::{BUCKET}/{key}"]}}]}}"#
        )
    );

    // The answer is what STS issued; expiration is STS's Expiration.
    let issued = &fake.issued()[0];
    assert_eq!(d["accessKeyId"], issued.access_key_id.as_str());
    assert_eq!(d["secretAccessKey"], issued.secret_access_key.as_str());
    assert_eq!(d["securityToken"], issued.session_token.as_str());
    assert_eq!(d["expiration"], issued.expiration_text.as_str());
    assert_eq!(d["bucket"], BUCKET);
    assert_eq!(d["region"], REGION);
    assert_eq!(
        d["endpoint"],
        url.as_str(),
        "s3_endpoint, without the bucket"
    );

    // The browser form: path-style URL, documented field order, policy/signature repeated.
    assert_eq!(d["form"]["url"], format!("{url}/{BUCKET}"));
    let fields = form_fields(d);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "key",
            "policy",
            "x-amz-algorithm",
            "x-amz-credential",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-signature"
        ]
    );
    // The stored object gets the extension's type, pinned by the policy.
    assert_eq!(fields[0].1, "image/png");
    assert_eq!(fields[1].1, key);
    assert_eq!(fields[2].1, d["policy"].as_str().unwrap());
    assert_eq!(fields[7].1, d["signature"].as_str().unwrap());
    assert_eq!(fields[6].1, issued.session_token);
    assert!(fields[4]
        .1
        .starts_with(&format!("{}/", issued.access_key_id)));
    assert!(fields[4].1.ends_with(&format!("/{REGION}/s3/aws4_request")));
    let policy: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &fields[2].1).unwrap(),
    )
    .unwrap();
    assert_eq!(policy["expiration"], issued.expiration_text.as_str());
    assert_eq!(
        policy["conditions"][0],
        serde_json::json!(["content-length-range", 0, 20971520])
    );
    assert_eq!(
        policy["conditions"][1],
        serde_json::json!({"Content-Type": "image/png"})
    );

    // A browser uploads with the form; the fake S3 checks signature, token and policy.
    let png = b"\x89PNG\r\n\x1a\nstsgate-fake-image";
    let (status, text) =
        browser_post(d["form"]["url"].as_str().unwrap(), &fields, "cat.png", png).await;
    assert_eq!(status, 204, "{text}");
    let objects = fake.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].key, key);
    assert_eq!(objects[0].size, png.len());
    assert_eq!(objects[0].data, png);

    // The client's callback marks it uploaded.
    let alice = s.token("alice");
    let body = format!(
        "objectId={id}&resourceType=2&bucket={BUCKET}&object={}&size={}&mimeType=image%2Fpng",
        key.replace('/', "%2F"),
        png.len()
    );
    let r = s.callback_form(Some(&alice), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let o = s.get(&format!("/upload/objects/{id}"), Some(&alice)).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.body["data"]["status"], "uploaded");
    assert_eq!(o.body["data"]["type"], 2);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.object_key.as_deref(), Some(key));
    assert_eq!(row.bucket.as_deref(), Some(BUCKET));
    assert_eq!(row.size, Some(png.len() as i64));
    assert_eq!(fake.rejected(), 0);
    s.stop().await;
}

/// Each issuance is its own STS call with its own session policy (no credential cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_issuance_calls_sts_with_its_own_policy() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db, |_| {}).await;
    let mut paths = HashSet::new();
    let mut key_ids = HashSet::new();
    for _ in 0..3 {
        let a = s.sts("bob", Q_PNG).await;
        assert_eq!(a.status, 200, "{}", a.text);
        paths.insert(a.body["data"]["relativePath"].as_str().unwrap().to_string());
        key_ids.insert(a.body["data"]["accessKeyId"].as_str().unwrap().to_string());
    }
    assert_eq!((paths.len(), key_ids.len(), fake.calls()), (3, 3, 3));
    let policies: HashSet<String> = fake
        .assume_calls()
        .into_iter()
        .map(|c| c.policy.unwrap())
        .collect();
    assert_eq!(policies.len(), 3);
    for p in &paths {
        assert!(
            policies
                .iter()
                .any(|pol| pol.contains(&format!("{BUCKET}/{p}\""))),
            "{p}"
        );
    }
    s.stop().await;
}

/// The fake S3 enforces what the form's policy pins: key, size, token, signature, fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_form_policy_is_enforced() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db, |c| {
        c.upload.modules.insert(
            "resource_image".into(),
            ModuleConfig {
                extensions: None,
                max_bytes: Some(16),
            },
        );
    })
    .await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let url = d["form"]["url"].as_str().unwrap();
    let fields = form_fields(d);
    let policy: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            d["policy"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["conditions"][0],
        serde_json::json!(["content-length-range", 0, 16])
    );

    let refuse = |status: u16, code: &str, got: (u16, String)| {
        assert_eq!(got.0, status, "{}", got.1);
        assert!(got.1.contains(&format!("<Code>{code}</Code>")), "{}", got.1);
    };
    // Another key: refused by the policy (the signature still verifies).
    refuse(
        403,
        "AccessDenied",
        browser_post(
            url,
            &with_field(&fields, "key", Some("test/other.png")),
            "a.png",
            b"x",
        )
        .await,
    );
    // Larger than max_bytes.
    refuse(
        400,
        "EntityTooLarge",
        browser_post(url, &fields, "a.png", &[7u8; 17]).await,
    );
    // The signature altered by one byte.
    let mut sig = d["signature"].as_str().unwrap().to_string().into_bytes();
    sig[0] = if sig[0] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(sig).unwrap();
    refuse(
        403,
        "SignatureDoesNotMatch",
        browser_post(
            url,
            &with_field(&fields, "x-amz-signature", Some(&bad)),
            "a.png",
            b"x",
        )
        .await,
    );
    // Without the security token, or with another one.
    refuse(
        403,
        "InvalidToken",
        browser_post(
            url,
            &with_field(&fields, "x-amz-security-token", None),
            "a.png",
            b"x",
        )
        .await,
    );
    refuse(
        403,
        "InvalidToken",
        browser_post(
            url,
            &with_field(&fields, "x-amz-security-token", Some("forged")),
            "a.png",
            b"x",
        )
        .await,
    );
    // A field the policy does not cover.
    let mut extra = fields.clone();
    extra.insert(0, ("acl".into(), "public-read".into()));
    refuse(
        403,
        "AccessDenied",
        browser_post(url, &extra, "a.png", b"x").await,
    );
    assert!(fake.objects().is_empty());
    // Content-Type is allowed (starts-with ""), and the exact-size upload succeeds.
    let mut typed = fields.clone();
    typed.insert(0, ("Content-Type".into(), "image/png".into()));
    let (status, text) = browser_post(url, &typed, "a.png", &[1u8; 16]).await;
    assert_eq!(status, 204, "{text}");
    let objects = fake.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(
        fake.s3_refusals(),
        [
            "AccessDenied",
            "EntityTooLarge",
            "SignatureDoesNotMatch",
            "InvalidToken",
            "InvalidToken",
            "AccessDenied"
        ]
    );
    s.stop().await;
}

/// `isDir=1`: the session policy and the form cover the folder prefix, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_dir_covers_the_prefix() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db, |_| {}).await;
    let a = s
        .sts(
            "alice",
            "type=2&extension=png&isNeedCallback=0&uploadModule=directorytemp&isDir=1",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    let prefix = d["relativePath"].as_str().unwrap();
    let id = d["objectId"].as_i64().unwrap();
    assert!(
        prefix.starts_with("test/temp/") && prefix.ends_with(&format!("/{id}/")),
        "{prefix}"
    );
    let policy: Value =
        serde_json::from_str(fake.assume_calls()[0].policy.as_deref().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        serde_json::json!([format!("arn:aws:s3:::{BUCKET}/{prefix}*")])
    );
    let fields = form_fields(d);
    assert_eq!(
        fields[0],
        ("key".to_string(), format!("{prefix}${{filename}}"))
    );
    let url = d["form"]["url"].as_str().unwrap();
    for name in ["frame-0001.png", "frame-0002.png"] {
        let (status, text) = browser_post(url, &fields, name, b"frame").await;
        assert_eq!(status, 204, "{text}");
    }
    let keys: Vec<String> = fake.objects().into_iter().map(|o| o.key).collect();
    assert_eq!(
        keys,
        [
            format!("{prefix}frame-0001.png"),
            format!("{prefix}frame-0002.png")
        ]
    );
    // A key outside the prefix is refused by the form policy.
    let (status, _) = browser_post(
        url,
        &with_field(&fields, "key", Some("test/temp/x.png")),
        "x.png",
        b"x",
    )
    .await;
    assert_eq!(status, 403);
    // And the session policy itself would refuse it too.
    let sp = fake.assume_calls()[0].policy.clone().unwrap();
    assert!(aws::policy::session_policy_allows(
        &sp,
        "s3:PutObject",
        &format!("arn:aws:s3:::{BUCKET}/{prefix}a/b.png")
    ));
    assert!(!aws::policy::session_policy_allows(
        &sp,
        "s3:PutObject",
        &format!("arn:aws:s3:::{BUCKET}/test/temp/x.png")
    ));
    assert!(!aws::policy::session_policy_allows(
        &sp,
        "s3:GetObject",
        &format!("arn:aws:s3:::{BUCKET}/{prefix}a.png")
    ));
    assert!(!aws::policy::session_policy_allows(
        &sp,
        "s3:DeleteObject",
        &format!("arn:aws:s3:::{BUCKET}/{prefix}a.png")
    ));
    s.stop().await;
}

/// Each STS failure mode answers its documented code, and the ledger row is `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_modes_map_to_documented_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let cases: Vec<(Mode, u16, i64, Option<&str>)> = vec![
        (
            Mode::Error(403, "AccessDenied".into()),
            502,
            50201,
            Some("AccessDenied"),
        ),
        (
            Mode::Error(403, "InvalidClientTokenId".into()),
            502,
            50201,
            Some("InvalidClientTokenId"),
        ),
        (
            Mode::Error(403, "SignatureDoesNotMatch".into()),
            502,
            50201,
            Some("SignatureDoesNotMatch"),
        ),
        (
            Mode::Error(400, "ValidationError".into()),
            502,
            50201,
            Some("ValidationError"),
        ),
        (Mode::Error(400, "Throttling".into()), 503, 50301, None),
        (
            Mode::Error(503, "ServiceUnavailable".into()),
            503,
            50301,
            None,
        ),
        (Mode::Error(500, "InternalFailure".into()), 503, 50301, None),
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
        let before = fake.calls();
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
            assert!(fake.calls() - before >= 2, "{mode:?} was retried");
        }
        if status == 502 {
            assert_eq!(fake.calls() - before, 1, "{mode:?} is final: no retry");
        }
    }
    for id in 1..=n as i64 {
        let row = s.state.store.get_object(id).await.unwrap().unwrap();
        assert_eq!(row.status, "failed", "object {id}");
    }
    // One transient Throttling is retried and succeeds; fractional Expiration is truncated.
    fake.set_mode(Mode::ErrorTimes(400, "Throttling".into(), 1));
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    fake.set_mode(Mode::FractionalExpiration);
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let issued = fake.issued().pop().unwrap();
    assert!(issued.expiration_text.ends_with(".987Z"));
    assert_eq!(
        a.body["data"]["expiration"],
        issued.expiration_text.replace(".987Z", "Z")
    );
    s.stop().await;
}

/// A wrong configured secret or key id is refused by the fake's own verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_refused_by_the_fake() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db.clone(), |c| {
        c.providers.aws.secret_access_key = Secret::new("not-the-right-secret");
    })
    .await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .contains("SignatureDoesNotMatch"));
    assert!(!a.text.contains("not-the-right-secret"));
    assert_eq!(fake.rejected(), 1);
    s.stop().await;

    let (s, fake, _) = aws_server(db, |c| {
        c.providers.aws.access_key_id = Secret::new("AKIAUNKNOWN000000000");
        // The legacy global endpoint's rule does not apply to 127.0.0.1; an explicit
        // sts_region wins.
        c.providers.aws.sts_region = REGION.into();
    })
    .await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!((a.status, a.code()), (502, 50201), "{}", a.text);
    assert!(a.body["enMsg"]
        .as_str()
        .unwrap()
        .contains("InvalidClientTokenId"));
    assert!(!a.text.contains("AKIAUNKNOWN"));
    assert_eq!(fake.rejected(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_region_is_the_signing_region() {
    let db = Arc::new(sqlite().await);
    let (fake, url) = {
        let fake = FakeSts::new(AWS_KEY_ID, AWS_SECRET, "us-east-1", ROLE_ARN, BUCKET);
        let url = fake.start().await;
        (fake, url)
    };
    let mut c = base_config(&db);
    enable_aws(&mut c, &url);
    c.providers.aws.sts_region = "us-east-1".into();
    let s = Server::start(db, c).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(fake.assume_calls()[0].region, "us-east-1");
    assert_eq!(
        a.body["data"]["region"], REGION,
        "the bucket's region is still `region`"
    );
    s.stop().await;
}

fn parse_amz(d: &str) -> i64 {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(d, &f)
        .unwrap()
        .assume_utc()
        .unix_timestamp()
}

/// The fake's own SigV4 and POST-policy code agrees with botocore's vectors, and the fake
/// refuses a signature altered by one byte (STS and S3).
#[tokio::test]
async fn fake_verifiers_match_vectors_and_reject_one_altered_byte() {
    let file: Value =
        serde_json::from_str(include_str!("../vectors/aws/aws_sigv4_sts.json")).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let i = &v["input"];
        let e = &v["expected"];
        let mut headers = vec![
            (
                "content-type".to_string(),
                i["content_type"].as_str().unwrap().to_string(),
            ),
            ("host".to_string(), i["host"].as_str().unwrap().to_string()),
            (
                "x-amz-date".to_string(),
                i["amz_date"].as_str().unwrap().to_string(),
            ),
        ];
        if let Some(t) = i["session_token"].as_str() {
            headers.push(("x-amz-security-token".into(), t.into()));
        }
        let signed = e["signed_headers"].as_str().unwrap();
        let canonical = aws::sigv4::canonical_request(
            "POST",
            "/",
            &headers,
            signed,
            i["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(
            canonical,
            e["canonical_request"].as_str().unwrap(),
            "{}",
            v["id"]
        );
        let scope = e["credential_scope"].as_str().unwrap();
        let sts_text =
            aws::sigv4::string_to_sign(i["amz_date"].as_str().unwrap(), scope, &canonical);
        assert_eq!(
            sts_text,
            e["string_to_sign"].as_str().unwrap(),
            "{}",
            v["id"]
        );
        let date = &i["amz_date"].as_str().unwrap()[..8];
        let region = i["region"].as_str().unwrap();
        let secret = i["secret_access_key"].as_str().unwrap();
        assert_eq!(
            hex::encode(aws::sigv4::signing_key(secret, date, region, "sts")),
            e["signing_key_hex"].as_str().unwrap()
        );
        assert_eq!(
            aws::sigv4::signature(secret, date, region, "sts", &sts_text),
            e["signature"].as_str().unwrap()
        );
        checked += 1;
    }
    assert_eq!(checked, file["count"].as_u64().unwrap());

    let post: Value =
        serde_json::from_str(include_str!("../vectors/aws/aws_s3_post_policy.json")).unwrap();
    let mut checked = 0;
    for v in post["vectors"].as_array().unwrap() {
        let i = &v["input"];
        let e = &v["expected"];
        let date = &i["amz_date"].as_str().unwrap()[..8];
        let b64 = e["policy_base64"].as_str().unwrap();
        assert_eq!(
            aws::sigv4::post_signature(
                i["secret_access_key"].as_str().unwrap(),
                date,
                i["region"].as_str().unwrap(),
                b64
            ),
            e["x_amz_signature"].as_str().unwrap()
        );
        // The fake's condition checker accepts botocore's own fields at signing time...
        let policy: Value = serde_json::from_str(e["policy_json"].as_str().unwrap()).unwrap();
        let fields: Vec<(String, String)> = e["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().unwrap().replace("${filename}", "f.bin"),
                )
            })
            .collect();
        let now = parse_amz(i["amz_date"].as_str().unwrap());
        let bucket = i["bucket"].as_str().unwrap();
        aws::policy::check_policy(&policy, &fields, bucket, 1, now)
            .unwrap_or_else(|r| panic!("{}: {r:?}", v["id"]));
        // ...and refuses them after the expiration, in another bucket, or with a field added.
        assert!(aws::policy::check_policy(&policy, &fields, bucket, 1, now + 604_801).is_err());
        assert!(aws::policy::check_policy(&policy, &fields, "other", 1, now).is_err());
        let mut more = fields.clone();
        more.push(("x-amz-meta-evil".into(), "1".into()));
        assert!(aws::policy::check_policy(&policy, &more, bucket, 1, now).is_err());
        checked += 1;
    }
    assert_eq!(checked, post["count"].as_u64().unwrap());

    // A real request signed by the fake's own code passes; one altered byte does not.
    let (fake, url) = fake_sts().await;
    let host = url.trim_start_matches("http://").to_string();
    let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fuploader&RoleSessionName=direct&DurationSeconds=900";
    let amz = {
        let t = time::OffsetDateTime::now_utc();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let ct = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = vec![
        ("content-type".to_string(), ct.to_string()),
        ("host".to_string(), host.clone()),
        ("x-amz-date".to_string(), amz.clone()),
    ];
    let signed = "content-type;host;x-amz-date";
    let canonical = aws::sigv4::canonical_request("POST", "/", &headers, signed, body.as_bytes());
    let scope = format!("{}/{REGION}/sts/aws4_request", &amz[..8]);
    let good = aws::sigv4::signature(
        AWS_SECRET,
        &amz[..8],
        REGION,
        "sts",
        &aws::sigv4::string_to_sign(&amz, &scope, &canonical),
    );
    let send = |sig: String| {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", ct)
            .header("x-amz-date", &amz)
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/{scope}, SignedHeaders={signed}, Signature={sig}"),
            )
            .body(body)
            .send()
    };
    let ok = send(good.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let text = ok.text().await.unwrap();
    assert!(text.contains("<AccessKeyId>ASIAFAKE"), "{text}");
    let mut bad = good.into_bytes();
    bad[17] = if bad[17] == b'a' { b'b' } else { b'a' };
    let refused = send(String::from_utf8(bad).unwrap()).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("<Code>SignatureDoesNotMatch</Code>"));
    assert_eq!(fake.rejected(), 1);

    // S3: a form signed by the fake's own code with the issued credentials passes; one
    // altered byte in the signature does not.
    let cred = fake.issued()[0].clone();
    let date = &amz[..8];
    let expiration = time::OffsetDateTime::now_utc() + Duration::from_secs(600);
    let policy_json = serde_json::json!({
        "expiration": expiration.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "conditions": [
            {"bucket": BUCKET},
            {"key": "k/direct.bin"},
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": format!("{}/{date}/{REGION}/s3/aws4_request", cred.access_key_id)},
            {"x-amz-date": amz},
            {"x-amz-security-token": cred.session_token},
        ]
    })
    .to_string();
    let policy_b64 =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, policy_json);
    let sig = aws::sigv4::post_signature(&cred.secret_access_key, date, REGION, &policy_b64);
    let fields = |sig: &str| -> Vec<(String, String)> {
        vec![
            ("key".into(), "k/direct.bin".into()),
            ("policy".into(), policy_b64.clone()),
            ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
            (
                "x-amz-credential".into(),
                format!("{}/{date}/{REGION}/s3/aws4_request", cred.access_key_id),
            ),
            ("x-amz-date".into(), amz.clone()),
            ("x-amz-security-token".into(), cred.session_token.clone()),
            ("x-amz-signature".into(), sig.into()),
        ]
    };
    // The session policy was absent in this direct call: nothing else restricts the key.
    let (status, text) = browser_post(
        &format!("{url}/{BUCKET}"),
        &fields(&sig),
        "d.bin",
        b"direct",
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let mut bad = sig.into_bytes();
    bad[30] = if bad[30] == b'f' { b'e' } else { b'f' };
    let (status, text) = browser_post(
        &format!("{url}/{BUCKET}"),
        &fields(&String::from_utf8(bad).unwrap()),
        "d.bin",
        b"direct",
    )
    .await;
    assert_eq!(status, 403);
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
}

/// No secret (long-term secret, temporary secrets, session tokens) reaches a log line at
/// trace level through a success, a form upload and the failure modes.
#[test]
fn no_aws_secret_in_trace_logs() {
    let mut secrets: Vec<String> = vec![
        AWS_SECRET.into(),
        AWS_KEY_ID.into(),
        "wrong-aws-secret-for-leak".into(),
    ];
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let (s, fake, _) = aws_server(db.clone(), |c| c.server.request_timeout_ms = 1200).await;
        let ok = s.sts("alice", Q_PNG).await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        let d = &ok.body["data"];
        let (status, _) = browser_post(
            d["form"]["url"].as_str().unwrap(),
            &form_fields(d),
            "a.png",
            b"x",
        )
        .await;
        assert_eq!(status, 204);
        for mode in [
            Mode::Error(403, "AccessDenied".into()),
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
        let (s2, fake2, _) = aws_server(db, |c| {
            c.providers.aws.secret_access_key = Secret::new("wrong-aws-secret-for-leak");
        })
        .await;
        assert_eq!(s2.sts("alice", Q_PNG).await.code(), 50201);
        s2.stop().await;
        for cred in fake.issued().into_iter().chain(fake2.issued()) {
            secrets.push(cred.secret_access_key);
            secrets.push(cred.session_token);
        }
    });
    assert!(secrets.len() >= 5);
    let markers = [
        "Signature=",
        "AWS4-HMAC-SHA256 Credential",
        "x-amz-security-token: ",
    ];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}

// ---- The cloud's word on an upload: stsgate's own signed HEAD (docs/contract.md §6) ----

/// Issues one PNG upload for alice; returns (objectId, relativePath, form url, fields).
async fn issue_png(s: &Server) -> (i64, String, String, Vec<(String, String)>) {
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.body["data"];
    (
        d["objectId"].as_i64().unwrap(),
        d["relativePath"].as_str().unwrap().to_string(),
        d["form"]["url"].as_str().unwrap().to_string(),
        form_fields(d),
    )
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

fn heads(fake: &FakeSts, method: &str) -> usize {
    fake.object_calls()
        .iter()
        .filter(|(m, _)| m == method)
        .count()
}

on_both_databases!(
    a_callback_records_the_bucket_s_facts_not_the_client_s,
    head_facts_body
);
async fn head_facts_body(db: Arc<Db>) {
    let (s, fake, _) = aws_server(db, |_| {}).await;
    let (id, key, url, fields) = issue_png(&s).await;
    let png = b"\x89PNG\r\n\x1a\nstsgate-head-check";
    let (status, text) = browser_post(&url, &fields, "cat.png", png).await;
    assert_eq!(status, 204, "{text}");
    // The client claims another size and type; the record takes the bucket's.
    let r = claim(&s, id, &key, 999_999, "text/plain").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(heads(&fake, "HEAD"), 1);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(png.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("image/png"));
    let etag = {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(png)[..16])
    };
    assert_eq!(row.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    let o = s
        .get(&format!("/upload/objects/{id}"), Some(&s.token("alice")))
        .await;
    assert_eq!(o.body["data"]["verifiedBy"], "head", "{}", o.text);
    assert_eq!(o.body["data"]["size"], png.len());
    // A repeat is 200 and changes nothing.
    let r = claim(&s, id, &key, 1, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let again = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(again.size, Some(png.len() as i64));
    assert_eq!(
        heads(&fake, "HEAD"),
        1,
        "a settled row is not asked about again"
    );
    assert_eq!(fake.s3_refusals(), Vec::<String>::new());
    s.stop().await;
}

on_both_databases!(
    a_presigned_put_upload_is_confirmed_by_a_head,
    presigned_put_body
);
async fn presigned_put_body(db: Arc<Db>) {
    let (s, fake, _) = aws_server(db, |_| {}).await;
    let a = s.sts("alice", Q_PNG).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let d = a.body["data"].clone();
    let id = d["objectId"].as_i64().unwrap();
    let key = d["relativePath"].as_str().unwrap().to_string();
    assert_eq!(d["uploadHeaders"]["Content-Type"], "image/png", "{d}");
    let url = d["uploadUrl"].as_str().unwrap();
    // One byte of the signature changed: refused, nothing stored.
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged = url.to_string();
    let flip = if &url[at..at + 1] == "0" { "1" } else { "0" };
    forged.replace_range(at..at + 1, flip);
    let mut bad = d.clone();
    bad["uploadUrl"] = forged.into();
    let (status, text) = put_upload(&bad, b"x", None).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    // Another Content-Type than the signed one: refused too.
    let mut other = d.clone();
    other["uploadHeaders"]["Content-Type"] = "text/html".into();
    let (status, text) = put_upload(&other, b"x", None).await;
    assert_eq!(status, 403, "{text}");
    assert!(fake.objects().is_empty());
    // The real upload, then the callback: the record holds the bucket's facts.
    let png = b"\x89PNG\r\n\x1a\npresigned-put";
    let (status, text) = put_upload(&d, png, None).await;
    assert_eq!(status, 200, "{text}");
    let stored = fake.objects();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].key, key);
    assert_eq!(stored[0].content_type.as_deref(), Some("image/png"));
    let r = claim(&s, id, &key, 1, "text/plain").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "uploaded");
    assert_eq!(row.size, Some(png.len() as i64));
    assert_eq!(row.mime.as_deref(), Some("image/png"));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    s.stop().await;
}

on_both_databases!(
    a_callback_for_an_object_never_uploaded_is_40903,
    never_uploaded_body
);
async fn never_uploaded_body(db: Arc<Db>) {
    let (s, fake, _) = aws_server(db, |_| {}).await;
    let (id, key, url, fields) = issue_png(&s).await;
    let r = claim(&s, id, &key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40903), "{}", r.text);
    assert_eq!(heads(&fake, "HEAD"), 1);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "issued");
    assert_eq!(row.size, None);
    assert_eq!(row.verified_by, None);
    // Once the object is there, the same callback records it.
    let (status, text) = browser_post(&url, &fields, "cat.png", b"\x89PNGok").await;
    assert_eq!(status, 204, "{text}");
    let r = claim(&s, id, &key, 10, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.size), ("uploaded", Some(6)));
    s.stop().await;
}

on_both_databases!(
    an_object_over_max_bytes_is_deleted_and_rejected,
    over_max_body
);
async fn over_max_body(db: Arc<Db>) {
    let (s, fake, _) = aws_server(db, |c| {
        c.upload.modules.insert(
            "resource_image".into(),
            ModuleConfig {
                extensions: Some(vec!["png".into()]),
                max_bytes: Some(16),
            },
        );
    })
    .await;
    // Too large: put straight into the bucket, bypassing the form's policy.
    let (id, key, _, _) = issue_png(&s).await;
    fake.put_object(BUCKET, &key, Some("image/png"), &[7u8; 17]);
    let r = claim(&s, id, &key, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert_eq!(heads(&fake, "DELETE"), 1);
    assert!(fake.objects().iter().all(|o| o.key != key), "deleted");
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.size, Some(17));
    assert_eq!(row.verified_by.as_deref(), Some("head"));
    // A content type the module does not allow (within the size) is rejected too.
    let (id2, key2, _, _) = issue_png(&s).await;
    fake.put_object(BUCKET, &key2, Some("text/html"), b"<html>");
    let r = claim(&s, id2, &key2, 6, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    let row = s.state.store.get_object(id2).await.unwrap().unwrap();
    assert_eq!(row.status, "rejected");
    assert_eq!(row.mime.as_deref(), Some("text/html"));
    assert!(fake.objects().iter().all(|o| o.key != key2), "deleted");
    // Within the rules: uploaded.
    let (id3, key3, _, _) = issue_png(&s).await;
    fake.put_object(BUCKET, &key3, Some("image/png"), &[7u8; 16]);
    let r = claim(&s, id3, &key3, 16, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A delete S3 refuses is logged, not fatal: the row is still rejected.
    let (id4, key4, _, _) = issue_png(&s).await;
    fake.put_object(BUCKET, &key4, Some("image/png"), &[7u8; 40]);
    fake.set_delete_mode(Mode::Error(403, "AccessDenied".into()));
    let r = claim(&s, id4, &key4, 10, "image/png").await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(fake.objects().iter().any(|o| o.key == key4), "still there");
    assert_eq!(
        s.state.store.get_object(id4).await.unwrap().unwrap().status,
        "rejected"
    );
    s.stop().await;
}

/// `verify_uploads = false`: the client's claim, `verifiedBy: client`, no HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verify_uploads_the_client_s_word_is_recorded() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db, |c| c.providers.aws.verify_uploads = false).await;
    let (id, key, _, _) = issue_png(&s).await;
    let r = claim(&s, id, &key, 1234, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(fake.object_calls().is_empty());
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!(row.size, Some(1234));
    assert_eq!(row.verified_by.as_deref(), Some("client"));
    s.stop().await;
}

/// A failing HEAD maps like any upstream call, and the row stays `issued`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_failures_map_to_the_upstream_codes() {
    let db = Arc::new(sqlite().await);
    let (s, fake, _) = aws_server(db, |c| c.server.request_timeout_ms = 1500).await;
    let (id, key, url, fields) = issue_png(&s).await;
    let (status, text) = browser_post(&url, &fields, "cat.png", b"\x89PNGx").await;
    assert_eq!(status, 204, "{text}");
    let cases: Vec<(Mode, u16, i64)> = vec![
        (Mode::Http500, 503, 50301),
        (Mode::Error(503, "SlowDown".into()), 503, 50301),
        (Mode::Error(403, "AccessDenied".into()), 502, 50201),
        (Mode::Hang, 504, 50401),
    ];
    for (mode, status, code) in cases {
        fake.set_object_mode(mode.clone());
        let before = heads(&fake, "HEAD");
        let r = claim(&s, id, &key, 5, "image/png").await;
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
    fake.set_object_mode(Mode::ErrorTimes(500, "InternalError".into(), 1));
    let r = claim(&s, id, &key, 5, "image/png").await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

/// The fake's HEAD verifier (its own SigV4 code) accepts stsgate's signature and refuses
/// one altered byte, a wrong secret, and another key id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_head_refuses_an_altered_signature() {
    use stsgate::providers::aws::{form::bucket_url, sign};
    use stsgate::providers::sigv4::SigV4Key;
    let (fake, base) = fake_sts().await;
    fake.put_object(BUCKET, "k/a b.png", Some("image/png"), b"12345");
    let url = sign::object_url(&bucket_url(&base, REGION, BUCKET, true), "k/a b.png");
    let head = |id: &'static str, secret: &'static str, alter: bool| {
        let url = url.clone();
        async move {
            let signed = sign::sign_object_request(
                SigV4Key {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: None,
                },
                "HEAD",
                &url,
                REGION,
                std::time::SystemTime::now(),
            )
            .unwrap();
            let mut req = reqwest::Client::new().head(&url);
            for (n, v) in signed.headers {
                let v = if alter && n == "authorization" {
                    // One byte of the signature changed.
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
    assert_eq!(
        head(AWS_KEY_ID, AWS_SECRET, false).await,
        (200, Some("5".into()))
    );
    assert_eq!(head(AWS_KEY_ID, AWS_SECRET, true).await.0, 403);
    assert_eq!(head(AWS_KEY_ID, "wrongSecret", false).await.0, 403);
    assert_eq!(head("AKIAOTHER", AWS_SECRET, false).await.0, 403);
    assert_eq!(
        fake.s3_refusals(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId"
        ]
    );
}
