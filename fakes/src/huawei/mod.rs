//! A fake Huawei IAM `POST /v3.0/OS-CREDENTIAL/securitytokens` for tests and local runs.
//!
//! It verifies every request's `SDK-HMAC-SHA256` signature with its own code (below; never
//! the crate's signer), checks `X-Domain-Id` and the body (method `token`, duration within
//! 900–86400, a session policy on OBS objects only), answers like IAM (HTTP 201
//! `{"credential":{...}}`; errors as the gateway's `{"error_code","error_msg"}` or Keystone's
//! `{"error":{"code","title","message"}}`), and can fail or hang on request. It also checks
//! an OBS browser POST form the way OBS would (signature with the temporary secret, policy).
//!
//! On the same port it serves the OBS bucket ([`obs`]): the bucket is read from the `Host`
//! header (`{bucket}.{endpoint host}`, as OBS addresses buckets), so a test points the OBS
//! endpoint at a name like `http://obs.fake.test:{port}` and resolves `{bucket}.obs.fake.test`
//! to this address. It takes presigned `PUT`s and browser `POST` forms made with the
//! credentials issued here, and stsgate's `HEAD`/`DELETE` signed with the long-term key.

pub mod obs;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::bucket::Buckets;
use crate::common::{self, rfc3986, unescape, FormRules, Script, Step};

/// The path IAM serves.
pub const PATH: &str = "/v3.0/OS-CREDENTIAL/securitytokens";

/// One credential the fake issued, with the request that asked for it.
#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub access: String,
    pub secret: String,
    pub token: String,
    pub expires_at: String,
    pub duration_seconds: u64,
    pub policy: Value,
}

/// Shared state of the fake.
pub struct FakeIam {
    pub access_key: String,
    pub secret_key: String,
    /// When not empty, `X-Domain-Id` must be sent, signed and equal to it.
    pub domain_id: String,
    pub script: Script<IssuedCred>,
    /// The OBS bucket served; empty: whichever bucket the `Host` names.
    pub bucket: String,
    /// The bucket's objects, object-request log and HEAD/DELETE failure script.
    pub buckets: Buckets,
    obs_refusals: Mutex<Vec<String>>,
}

impl FakeIam {
    /// A fake expecting these long-term keys and account id (any bucket name).
    pub fn new(access_key: &str, secret_key: &str, domain_id: &str) -> Arc<Self> {
        Self::with_bucket(access_key, secret_key, domain_id, "")
    }

    /// The same, serving only the OBS bucket `bucket` (others answer `NoSuchBucket`).
    pub fn with_bucket(
        access_key: &str,
        secret_key: &str,
        domain_id: &str,
        bucket: &str,
    ) -> Arc<Self> {
        Arc::new(FakeIam {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            domain_id: domain_id.into(),
            script: Script::default(),
            bucket: bucket.into(),
            buckets: Buckets::default(),
            obs_refusals: Mutex::new(Vec::new()),
        })
    }

    /// OBS error codes answered so far.
    pub fn obs_refusals(&self) -> Vec<String> {
        self.obs_refusals.lock().unwrap().clone()
    }

    /// `HEAD`/`DELETE` requests of objects received (method, key), authenticated or not.
    pub fn object_calls(&self) -> Vec<(String, String)> {
        self.buckets.calls()
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; returns the base URL.
    pub async fn start_on(self: &Arc<Self>, addr: &str) -> String {
        let app = axum::Router::new()
            .route(PATH, post(handle))
            .fallback(obs::handle)
            .with_state(self.clone());
        common::serve(addr, app).await
    }

    /// Checks an OBS browser POST form as OBS would: `signature` is
    /// `b64(HMAC-SHA1(temporary SK, policy))` for the `AccessKeyId` issued here, the token
    /// field is that credential's, and the policy's conditions hold.
    pub fn check_form(
        &self,
        bucket: &str,
        fields: &[(String, String)],
        file_size: u64,
    ) -> Result<(), String> {
        common::check_form(&OBS_FORM, fields, file_size, bucket, |ak| {
            let issued = self.script.issued().into_iter().find(|c| c.access == ak)?;
            Some((issued.secret, issued.token))
        })
    }
}

/// OBS's browser POST rules (protocol §2.3).
const OBS_FORM: FormRules = FormRules {
    access_key_field: "AccessKeyId",
    token_field: "x-obs-security-token",
    exempt: &["AccessKeyId", "policy", "signature", "token"],
    star_wildcard: false,
    sign: |secret, policy| {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(policy.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    },
};

// ---- the fake's own SDK-HMAC-SHA256 (independent of stsgate's sign.rs) ----

/// The signature IAM expects for a request as received: `uri` is the request target
/// (`/path?query`), `signed` the `SignedHeaders` list, `headers` everything received.
pub fn expected_signature(
    secret_key: &str,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    signed: &str,
    body: &[u8],
) -> String {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut canonical_uri = path
        .split('/')
        .map(|seg| rfc3986(&unescape(seg)))
        .collect::<Vec<_>>()
        .join("/");
    if !canonical_uri.ends_with('/') {
        canonical_uri.push('/');
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect::<Vec<_>>()
        .join("&");
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let mut canonical_headers = String::new();
    for name in signed.split(';') {
        canonical_headers.push_str(&format!("{name}:{}\n", value(name).unwrap_or_default()));
    }
    let payload = if body.is_empty() {
        hex::encode(Sha256::digest(b""))
    } else {
        value("x-sdk-content-sha256").unwrap_or_else(|| hex::encode(Sha256::digest(body)))
    };
    let canonical = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload}"
    );
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{}\n{}",
        value("x-sdk-date").unwrap_or_default(),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Splits `SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..`.
pub fn parse_authorization(auth: &str) -> Option<(&str, &str, &str)> {
    let rest = auth.strip_prefix("SDK-HMAC-SHA256 ")?;
    let (mut access, mut signed, mut signature) = (None, None, None);
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Access=") {
            access = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    Some((access?, signed?, signature?))
}

/// Checks the signature and signed headers; `Err` is the gateway's error message.
fn verify(
    fake: &FakeIam,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), &'static str> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let auth =
        value("authorization").ok_or("Incorrect IAM authentication information: ak is empty")?;
    let (access, signed, signature) = parse_authorization(auth)
        .ok_or("Incorrect IAM authentication information: unsupported authorization")?;
    if access != fake.access_key {
        return Err("Incorrect IAM authentication information: AK access key not found");
    }
    let date = time::PrimitiveDateTime::parse(
        value("x-sdk-date").unwrap_or(""),
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| "Incorrect IAM authentication information: x-sdk-date is invalid")?;
    if (common::now_unix() - date.assume_utc().unix_timestamp()).abs() > 900 {
        return Err(
            "Incorrect IAM authentication information: calc ak sk signature fail:signature expired",
        );
    }
    let names: Vec<&str> = signed.split(';').collect();
    let mut must_sign = vec!["content-type", "host", "x-sdk-date"];
    if !fake.domain_id.is_empty() {
        must_sign.push("x-domain-id");
        if value("x-domain-id") != Some(fake.domain_id.as_str()) {
            return Err("Incorrect IAM authentication information: x-domain-id mismatch");
        }
    }
    if must_sign.iter().any(|m| !names.contains(m)) {
        return Err("Incorrect IAM authentication information: required headers not signed");
    }
    let want = expected_signature(&fake.secret_key, method, uri, headers, signed, body);
    if want != signature {
        return Err("Incorrect IAM authentication information: verify aksk signature fail");
    }
    Ok(())
}

fn gateway_error(status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"error_code": code, "error_msg": msg,
            "request_id": uuid::Uuid::new_v4().simple().to_string()})),
    )
        .into_response()
}

fn keystone_error(status: u16, title: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"error": {"code": status, "message": "fake failure", "title": title}})),
    )
        .into_response()
}

/// `Err` names what is wrong with the body, as IAM's `IAM.0011` message would.
fn check_body(body: &Value) -> Result<(u64, Value), String> {
    let identity = &body["auth"]["identity"];
    if identity["methods"] != json!(["token"]) {
        return Err("methods".into());
    }
    let duration = identity["token"]["duration_seconds"]
        .as_u64()
        .unwrap_or(900);
    if !(900..=86_400).contains(&duration) {
        return Err("duration_seconds".into());
    }
    let policy = identity["policy"].clone();
    let statements = policy["Statement"].as_array().ok_or("policy")?;
    if policy["Version"] != "1.1" || statements.is_empty() {
        return Err("policy".into());
    }
    for st in statements {
        let only_obs_objects = st["Resource"].as_array().is_some_and(|r| {
            r.iter()
                .all(|x| x.as_str().is_some_and(|x| x.starts_with("OBS:*:*:object:")))
        });
        let obs_actions = st["Action"].as_array().is_some_and(|a| {
            a.iter()
                .all(|x| x.as_str().is_some_and(|x| x.starts_with("obs:")))
        });
        if st["Effect"] != "Allow" || !only_obs_objects || !obs_actions {
            return Err("policy.Statement".into());
        }
    }
    Ok((duration, policy))
}

async fn handle(
    State(fake): State<Arc<FakeIam>>,
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
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or(PATH);
    if let Err(msg) = verify(&fake, method.as_str(), target, &list, &body) {
        fake.script.reject();
        return gateway_error(401, "APIGW.0301", msg);
    }
    let parsed = serde_json::from_slice::<Value>(&body)
        .map_err(|_| "body".to_string())
        .and_then(|v| check_body(&v));
    let (duration, policy) = match parsed {
        Ok(ok) => ok,
        Err(field) => {
            return gateway_error(
                400,
                "IAM.0011",
                &format!("Request parameter {field} is invalid."),
            )
        }
    };
    let ttl = match fake.script.step().await {
        Step::Answer(status, text, ct) => {
            return (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", ct)],
                text,
            )
                .into_response()
        }
        Step::Refuse {
            alt: false,
            status,
            code,
        } => return gateway_error(status, &code, "fake failure"),
        Step::Refuse {
            alt: true,
            status,
            code,
        } => return keystone_error(status, &code),
        Step::Issue(ttl) => ttl.unwrap_or(duration as i64),
    };
    let n = fake.script.serial();
    let cred = IssuedCred {
        access: format!(
            "HSTFAKE{n:06}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
        .to_uppercase(),
        secret: format!("fakeTmpSecret{n}{}", uuid::Uuid::new_v4().simple()),
        token: format!("gQpjbi1ub3J0aC00FAKE{n}{}==", uuid::Uuid::new_v4().simple()),
        expires_at: common::utc(common::now_unix() + ttl, ".123000Z"),
        duration_seconds: duration,
        policy,
    };
    fake.script.record(cred.clone());
    (
        StatusCode::CREATED,
        axum::Json(json!({"credential": {
            "access": cred.access, "expires_at": cred.expires_at,
            "secret": cred.secret, "securitytoken": cred.token}})),
    )
        .into_response()
}
