//! A fake Baidu STS `POST /v1/sessionToken` for tests and local runs.
//!
//! It verifies every request's `bce-auth-v1` signature with its own code (below; never the
//! crate's signer), honouring the `signedHeaders` the request lists, checks the ACL body
//! (BOS only, `Allow`, `WRITE` only) and `durationSeconds`, answers like STS
//! (`{"accessKeyId",...}`; errors as the BCE envelope `{"requestId","code","message"}`), and
//! can fail or hang on request. It also checks a BOS PostObject form the way BOS would.
//!
//! On the same port it serves the BOS bucket ([`bos`]): presigned `PUT`s and PostObject
//! forms signed with the temporary credentials it issued, and stsgate's own `HEAD`/`DELETE`
//! signed with the long-term key, each verified with this module's own bce-auth-v1 code.

pub mod bos;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::bucket::Buckets;
use crate::common::{self, rfc3986, unescape, FormRules, Script, Step};

/// The path STS serves.
pub const PATH: &str = "/v1/sessionToken";

/// One session token the fake issued, with the ACL that scoped it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub create_time: String,
    pub expiration: String,
    pub duration_seconds: u64,
    pub acl: Value,
}

/// Shared state of the fake.
pub struct FakeSts {
    pub access_key: String,
    pub secret_key: String,
    pub script: Script<IssuedToken>,
    /// The buckets' objects, object-request log and HEAD/DELETE failure script.
    pub buckets: Buckets,
    /// BOS error codes answered so far (bucket requests only).
    refusals: Mutex<Vec<String>>,
    /// The `authorization` (header or query) of every bucket request, in order.
    bucket_auths: Mutex<Vec<String>>,
}

impl FakeSts {
    /// A fake expecting these long-term keys.
    pub fn new(access_key: &str, secret_key: &str) -> Arc<Self> {
        Arc::new(FakeSts {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            script: Script::default(),
            buckets: Buckets::default(),
            refusals: Mutex::new(Vec::new()),
            bucket_auths: Mutex::new(Vec::new()),
        })
    }

    /// The `authorization` of every bucket request (header or presigned query), in order.
    pub fn bucket_authorizations(&self) -> Vec<String> {
        self.bucket_auths.lock().unwrap().clone()
    }

    /// BOS error codes the bucket answered so far.
    pub fn bos_refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; returns the base URL. STS answers at [`PATH`]; every other request
    /// is a bucket request ([`bos::handle`]; the bucket is read from the `Host`).
    pub async fn start_on(self: &Arc<Self>, addr: &str) -> String {
        let app = Router::new()
            .route(PATH, post(handle))
            .fallback(bos::handle)
            .with_state(self.clone());
        common::serve(addr, app).await
    }

    /// Checks a BOS PostObject form as BOS would: `signature` is
    /// `hex(HMAC-SHA256(temporary SK, policy))` for the `accessKey` issued here, the token
    /// field is that token, and the policy's conditions hold (`*` ends a key wildcard).
    pub fn check_form(
        &self,
        bucket: &str,
        fields: &[(String, String)],
        file_size: u64,
    ) -> Result<(), String> {
        common::check_form(&BOS_FORM, fields, file_size, bucket, |ak| {
            let issued = self
                .script
                .issued()
                .into_iter()
                .find(|c| c.access_key_id == ak)?;
            Some((issued.secret_access_key, issued.session_token))
        })
    }
}

/// BOS's PostObject rules (protocol §4.3).
const BOS_FORM: FormRules = FormRules {
    access_key_field: "accessKey",
    token_field: "x-bce-security-token",
    exempt: &["accessKey", "policy", "signature"],
    star_wildcard: true,
    sign: |secret, policy| hmac_hex(secret.as_bytes(), policy),
};

// ---- the fake's own bce-auth-v1 (independent of stsgate's sign.rs) ----

fn hmac_hex(key: &[u8], msg: &str) -> String {
    hex::encode(common::hmac_sha256(key, msg))
}

/// The signature BCE expects: `prefix` is `bce-auth-v1/{ak}/{timestamp}/{expiration}`,
/// `path` and `query` as received, `signed` the listed names (empty: BCE's default set).
pub fn expected_signature(
    secret_key: &str,
    prefix: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    signed: &str,
) -> String {
    let uri = path
        .split('/')
        .map(|seg| rfc3986(&unescape(seg)))
        .collect::<Vec<_>>()
        .join("/");
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
        .map(|(k, v)| format!("{}={}", rfc3986(&unescape(k)), rfc3986(&unescape(v))))
        .collect();
    params.sort();
    let defaults = ["host", "content-length", "content-type", "content-md5"];
    let listed: Vec<&str> = signed.split(';').filter(|n| !n.is_empty()).collect();
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim()))
        .filter(|(n, v)| {
            let wanted = if listed.is_empty() {
                defaults.contains(&n.as_str()) || n.starts_with("x-bce-")
            } else {
                listed.contains(&n.as_str())
            };
            wanted && !v.is_empty()
        })
        .map(|(n, v)| format!("{}:{}", rfc3986(n.as_bytes()), rfc3986(v.as_bytes())))
        .collect();
    lines.sort();
    let canonical = format!(
        "{method}\n{uri}\n{}\n{}",
        params.join("&"),
        lines.join("\n")
    );
    let signing_key = hmac_hex(secret_key.as_bytes(), prefix);
    hmac_hex(signing_key.as_bytes(), &canonical)
}

/// Checks a long-term-key `Authorization` header (STS, and stsgate's own `HEAD`/`DELETE` of
/// an object); `Err` is (HTTP status, BCE code).
pub(crate) fn verify(
    fake: &FakeSts,
    method: &str,
    uri: &Uri,
    headers: &[(String, String)],
) -> Result<(), (u16, &'static str)> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let auth = value("authorization").ok_or((400, "InvalidHTTPAuthHeader"))?;
    let parts: Vec<&str> = auth.split('/').collect();
    let [version, ak, timestamp, expiration, signed, signature] = parts[..] else {
        return Err((400, "InvalidHTTPAuthHeader"));
    };
    if version != "bce-auth-v1" {
        return Err((400, "InvalidHTTPAuthHeader"));
    }
    if ak != fake.access_key {
        return Err((403, "InvalidAccessKeyId"));
    }
    let ts = time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .map_err(|_| (400, "InvalidHTTPAuthHeader"))?
        .unix_timestamp();
    let valid_for: i64 = expiration
        .parse()
        .map_err(|_| (400, "InvalidHTTPAuthHeader"))?;
    let now = common::now_unix();
    if now > ts + valid_for || ts > now + 300 {
        return Err((400, "RequestExpired"));
    }
    if value("x-bce-date") != Some(timestamp) {
        return Err((400, "InvalidHTTPAuthHeader"));
    }
    if !signed.is_empty() && !signed.split(';').any(|n| n == "host") {
        return Err((400, "InvalidHTTPAuthHeader"));
    }
    let prefix = format!("{version}/{ak}/{timestamp}/{expiration}");
    let want = expected_signature(
        &fake.secret_key,
        &prefix,
        method,
        uri.path(),
        uri.query().unwrap_or(""),
        headers,
        signed,
    );
    if want != signature {
        return Err((400, "SignatureDoesNotMatch"));
    }
    Ok(())
}

pub(crate) fn bce_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"requestId": uuid::Uuid::new_v4().to_string(),
            "code": code, "message": message})),
    )
        .into_response()
}

/// `Ok` when the ACL scopes the token to writing BOS objects only.
fn acl_ok(acl: &Value) -> bool {
    let Some(entries) = acl["accessControlList"].as_array() else {
        return false;
    };
    !entries.is_empty()
        && entries.iter().all(|e| {
            e["service"] == "bce:bos"
                && e["effect"] == "Allow"
                && e["permission"] == json!(["WRITE"])
                && e["region"].is_string()
                && e["resource"].as_array().is_some_and(|r| {
                    !r.is_empty()
                        && r.iter()
                            .all(|x| x.as_str().is_some_and(|x| x.contains('/')))
                })
        })
}

async fn handle(
    State(fake): State<Arc<FakeSts>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.script.arrive(&headers);
    let list: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    if let Err((status, code)) = verify(&fake, method.as_str(), &uri, &list) {
        fake.script.reject();
        return bce_error(
            status,
            code,
            "The request signature we calculated does not match.",
        );
    }
    let duration = match uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("durationSeconds="))
    {
        None => 43_200,
        Some(d) => match d.parse::<u64>() {
            Ok(d) if (1..=129_600).contains(&d) => d,
            _ => return bce_error(400, "InvalidHTTPRequest", "durationSeconds is invalid"),
        },
    };
    let acl: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !acl_ok(&acl) {
        return bce_error(400, "InappropriateJSON", "accessControlList is invalid");
    }
    let ttl = match fake.script.step().await {
        Step::Answer(status, text, ct) => {
            return (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", ct)],
                text,
            )
                .into_response()
        }
        Step::Refuse { status, code, .. } => return bce_error(status, &code, "fake failure"),
        Step::Issue(ttl) => ttl.unwrap_or(duration as i64),
    };
    let n = fake.script.serial();
    let now = common::now_unix();
    let cred = IssuedToken {
        access_key_id: format!("{}{n:04}", &uuid::Uuid::new_v4().simple().to_string()[..28]),
        secret_access_key: format!("fakeBceTmpSecret{n}{}", uuid::Uuid::new_v4().simple()),
        session_token: format!("ZjkyZmQFAKE{n}{}", uuid::Uuid::new_v4().simple()),
        create_time: common::utc(now, "Z"),
        expiration: common::utc(now + ttl, "Z"),
        duration_seconds: duration,
        acl,
    };
    fake.script.record(cred.clone());
    axum::Json(json!({
        "accessKeyId": cred.access_key_id, "secretAccessKey": cred.secret_access_key,
        "sessionToken": cred.session_token, "createTime": cred.create_time,
        "expiration": cred.expiration, "userId": "0f3e7c2a5b6d4e8f9a1b2c3d4e5f6a7b"}))
    .into_response()
}
