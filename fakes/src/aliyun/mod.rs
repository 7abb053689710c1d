//! A fake Aliyun STS `AssumeRole` endpoint and a fake OSS callback key server, for tests
//! and local runs.
//!
//! The STS fake verifies every request's RPC signature (HMAC-SHA1) with its own code below
//! (it never calls the crate's signer), checks the common and action parameters like STS
//! does (timestamp window, nonce reuse, role, session name, duration, policy grammar and
//! length), answers in STS's JSON shapes (`{RequestId, AssumedRoleUser, Credentials}` or HTTP
//! 4xx/5xx `{RequestId, HostId, Code, Message, Recommend}`), records each call, and can be
//! told to fail. The key server serves a PEM public key and counts fetches; the matching
//! private key (a TEST key, from the vector set's `gen/testdata/`) signs callbacks here with
//! this file's own RSA-MD5 code. The OSS bucket (presigned `PUT`, browser `POST`, stsgate's
//! `HEAD`/`DELETE`) is [`oss`].

pub mod oss;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::common::Mode;
use crate::common::{self, now_unix, rfc3986, utc};

/// The TEST-ONLY key pair standing in for OSS's callback key (the private half of the
/// vectors' `public_key_pem`).
pub const TEST_CALLBACK_PRIVATE_KEY_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQC7LH4U3T2Brbyvutv77gsZhoQgj+englnlu76xspQOJM/UUi6g
lGUIoSnFM3dFq8tBDJFkPkRQ95rzS0uGBSj8AqhURKwuNErfTljN6EbnVN+VI0Ez
uR7F0gliDpJhwCXNEsNBoZFFdLkfaZQ9uRd0+mGBjfLbhT6HWycXxNNqtwIDAQAB
AoGALm7RMFfaJEt3XZjbbdoVwtVN/c31R+bcalNy8R4+AGw9aoygqJFnpwZkGFm2
IwCFQbPedaHEzNlABU8Og0bQbZd+wQZ7BC5BOSprmgYtKJga+OVojMbZ7qDOUPX7
idj0YpB+mSgIjmdCtv/UxWxhr0fEGhXVntwqP62skm5elYECQQDkXSQ/QJN4k7k7
1E5XjGHVYquzALwh7wAJtWnYXhmT7mTzEEFIdNU1p7UeX0zTUETcweXRWfPED03e
gb625C/XAkEA0dNB04k6aP6tNf9Hg0NHqK/BiCnCJFrcsn0yT2PeikeqDft4avjA
PUlvi1wpF809YfCTvRsVQ6OfRVd3TbjAIQJBAL0qqqv6wi5PsFFvPLYpA6HPaouN
QEqbwFxKerNQv79a6yStgmaS4Urg8ZeHOgyRoXl85PLWoKb4Rnja4TB/NWECQB9c
JrN6CBvXLIYsgECzFou0sQUr0JNkbSXUJmfNMl6SdW0fj5DVWs4OIri+bnnbN/hi
X4JdAOGaG9zeRLt+CGECQQC2tt2FYiw4ToWOc4sUBD1oRWCQgs0SKf+xwy7jDG+j
+JH/919FDz9jrfHLJVgtaSgRb1wJHZJ90EY3/5CMoUVA
-----END RSA PRIVATE KEY-----
";

/// Its public half (SubjectPublicKeyInfo), equal to `aliyun_oss_callback.json`'s
/// `public_key_pem`.
pub const TEST_CALLBACK_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC7LH4U3T2Brbyvutv77gsZhoQg
j+englnlu76xspQOJM/UUi6glGUIoSnFM3dFq8tBDJFkPkRQ95rzS0uGBSj8AqhU
RKwuNErfTljN6EbnVN+VI0EzuR7F0gliDpJhwCXNEsNBoZFFdLkfaZQ9uRd0+mGB
jfLbhT6HWycXxNNqtwIDAQAB
-----END PUBLIC KEY-----
";

/// The path the key server serves the key at.
pub const KEY_PATH: &str = "/callback_pub_key_v1.pem";

/// One issued credential, for assertions.
#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    pub expiration: String,
    /// Unix seconds of `expiration`.
    pub expires_at: i64,
    /// The session policy the credentials were issued with, as sent.
    pub policy: Option<String>,
}

/// Shared state of the STS fake.
pub struct FakeAliyunSts {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub role_arn: String,
    /// The role's maximum session duration.
    pub max_duration_secs: u64,
    mode: Mutex<Mode>,
    calls: Mutex<Vec<Instant>>,
    rejected: AtomicU64,
    counter: AtomicU64,
    nonces: Mutex<HashSet<String>>,
    issued: Mutex<Vec<IssuedCred>>,
    accepted: Mutex<Vec<BTreeMap<String, String>>>,
}

impl FakeAliyunSts {
    /// A fake expecting these long-term keys and this role.
    pub fn new(access_key_id: &str, access_key_secret: &str, role_arn: &str) -> Arc<Self> {
        Arc::new(FakeAliyunSts {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            role_arn: role_arn.into(),
            max_duration_secs: 43_200,
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            nonces: Mutex::new(HashSet::new()),
            issued: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
        })
    }

    /// Changes how the fake answers.
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    /// Number of calls received.
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Calls refused for a bad signature or parameters.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::SeqCst)
    }

    /// Everything issued so far.
    pub fn issued(&self) -> Vec<IssuedCred> {
        self.issued.lock().unwrap().clone()
    }

    /// The parameters of every request whose signature verified (without `Signature`).
    pub fn accepted(&self) -> Vec<BTreeMap<String, String>> {
        self.accepted.lock().unwrap().clone()
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; returns the base URL.
    pub async fn start_on(self: &Arc<Self>, addr: &str) -> String {
        common::serve(
            addr,
            Router::new()
                .route("/", any(handle))
                .with_state(self.clone()),
        )
        .await
    }
}

// ---- the fake's own RPC signature implementation (independent of stsgate's sign.rs) ----

/// RFC 3986 percent-encoding over UTF-8 bytes, upper-case hex.
pub fn pct(s: &str) -> String {
    rfc3986(s.as_bytes())
}

/// The signature STS expects for `params` (Signature excluded) sent with `method`.
pub fn expected_signature(method: &str, secret: &str, params: &BTreeMap<String, String>) -> String {
    let to_sign = string_to_sign(method, params);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    let canonical = params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{method}&{}&{}", pct("/"), pct(&canonical))
}

/// An STS error envelope.
pub fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({
        "RequestId": uuid::Uuid::new_v4().to_string().to_uppercase(),
        "HostId": "sts.aliyuncs.com",
        "Code": code,
        "Message": message,
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}&product=Sts"),
    });
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// An error answer: HTTP status, code, message.
type Refusal = (u16, String, String);

fn refusal(status: u16, code: &str, message: &str) -> Refusal {
    (status, code.to_string(), message.to_string())
}

/// Checks one request like STS; `Err` is the error answer.
fn check(
    fake: &FakeAliyunSts,
    method: &str,
    params: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let p = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    for k in [
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
        "Action",
        "Version",
    ] {
        if p(k).is_empty() {
            return Err(refusal(
                400,
                &format!("MissingParameter.{k}"),
                &format!("{k} is mandatory for this action."),
            ));
        }
    }
    if p("SignatureMethod") != "HMAC-SHA1" || p("SignatureVersion") != "1.0" {
        return Err(refusal(
            400,
            "InvalidParameter.SignatureMethod",
            "The specified signature method is not supported.",
        ));
    }
    if p("AccessKeyId") != fake.access_key_id {
        return Err(refusal(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    let ts = time::OffsetDateTime::parse(
        p("Timestamp"),
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| {
        refusal(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    })?;
    if (now_unix() - ts.unix_timestamp()).abs() > 900 {
        return Err(refusal(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    let want = expected_signature(method, &fake.access_key_secret, params);
    if want != p("Signature") {
        // Real STS quotes its string to sign here; stsgate must not keep it.
        let msg = format!(
            "Specified signature is not matched with our calculation. server string to sign is:{}",
            string_to_sign(method, params)
        );
        return Err(refusal(400, "SignatureDoesNotMatch", &msg));
    }
    if !fake
        .nonces
        .lock()
        .unwrap()
        .insert(p("SignatureNonce").to_string())
    {
        return Err(refusal(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    if p("Action") != "AssumeRole" {
        return Err(refusal(
            400,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        ));
    }
    if p("Version") != "2015-04-01" {
        return Err(refusal(
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        ));
    }
    if p("RoleArn").is_empty() {
        return Err(refusal(
            400,
            "MissingParameter.RoleArn",
            "RoleArn is mandatory for this action.",
        ));
    }
    if p("RoleArn") != fake.role_arn {
        return Err(refusal(404, "EntityNotExist.Role", "The role not exists."));
    }
    let name = p("RoleSessionName");
    if !(2..=64).contains(&name.len())
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".@_-".contains(&b))
    {
        return Err(refusal(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    if let Some(d) = params.get("DurationSeconds") {
        match d.parse::<u64>() {
            Ok(d) if (900..=fake.max_duration_secs).contains(&d) => {}
            _ => {
                return Err(refusal(
                    400,
                    "InvalidParameter.DurationSeconds",
                    "The Min/Max value of DurationSeconds is 15min/1hr.",
                ))
            }
        }
    }
    if let Some(policy) = params.get("Policy") {
        if serde_json::from_str::<Value>(policy)
            .map(|v| !v.is_object())
            .unwrap_or(true)
        {
            return Err(refusal(
                400,
                "InvalidParameter.PolicyGrammar",
                "The parameter Policy has not passed grammar check.",
            ));
        }
        if policy.chars().count() > 2048 {
            return Err(refusal(
                400,
                "InvalidParameter.PolicyLength",
                "The length of Policy is longer than 2048.",
            ));
        }
    }
    Ok(())
}

async fn handle(
    State(fake): State<Arc<FakeAliyunSts>>,
    method: axum::http::Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    fake.calls.lock().unwrap().push(Instant::now());
    // The signature covers the union of query and form-body parameters.
    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        params.insert(k.into_owned(), v.into_owned());
    }
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        for (k, v) in form_urlencoded::parse(&body) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    if let Err((status, code, message)) = check(&fake, method.as_str(), &params) {
        fake.rejected.fetch_add(1, Ordering::SeqCst);
        return error(status, &code, &message);
    }
    let mut recorded = params.clone();
    recorded.remove("Signature");
    fake.accepted.lock().unwrap().push(recorded);

    let mode = Mode::next(&fake.mode);
    match mode {
        Mode::Error(status, code) | Mode::AltError(status, code) => {
            return error(status, &code, "fake failure")
        }
        Mode::Http500 => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html>upstream error</html>",
            )
                .into_response()
        }
        Mode::Malformed => return (StatusCode::OK, "{\"Credentials\": ").into_response(),
        Mode::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK.into_response();
        }
        _ => {}
    }
    let n = fake.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let ttl: i64 = match mode {
        Mode::ShortLived(s) => s,
        _ => params
            .get("DurationSeconds")
            .and_then(|d| d.parse().ok())
            .unwrap_or(3600),
    };
    let session = params["RoleSessionName"].clone();
    let cred = IssuedCred {
        access_key_id: format!("STS.NUfake{n:08}"),
        access_key_secret: format!("FAKEtmpSecret{n:08}{}", uuid::Uuid::new_v4().simple()),
        security_token: format!("CAISfakeToken{n:08}+/={}", uuid::Uuid::new_v4().simple()),
        expiration: utc(now_unix() + ttl, "Z"),
        expires_at: now_unix() + ttl,
        policy: params.get("Policy").cloned(),
    };
    fake.issued.lock().unwrap().push(cred.clone());
    let body = json!({
        "RequestId": format!("FAKE-{n:08}"),
        "AssumedRoleUser": {
            "Arn": format!("{}/{session}", fake.role_arn),
            "AssumedRoleId": format!("344584339364951186:{session}"),
        },
        "Credentials": {
            "SecurityToken": cred.security_token,
            "AccessKeyId": cred.access_key_id,
            "AccessKeySecret": cred.access_key_secret,
            "Expiration": cred.expiration,
        },
    });
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

// ---- the callback key server ----

/// How the key server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMode {
    /// The PEM at [`KEY_PATH`], 404 elsewhere.
    Ok,
    /// HTTP 500.
    Http500,
    /// A 302 to this URL.
    Redirect(String),
}

/// A server publishing the callback public key, counting every request.
pub struct KeyServer {
    pub pem: String,
    fetches: AtomicU64,
    mode: Mutex<KeyMode>,
}

impl KeyServer {
    /// A server for `pem`.
    pub fn new(pem: &str) -> Arc<Self> {
        Arc::new(KeyServer {
            pem: pem.into(),
            fetches: AtomicU64::new(0),
            mode: Mutex::new(KeyMode::Ok),
        })
    }

    /// Requests received so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Changes how the server answers.
    pub fn set_mode(&self, m: KeyMode) {
        *self.mode.lock().unwrap() = m;
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL (no trailing `/`).
    pub async fn start(self: &Arc<Self>) -> String {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; returns the base URL (no trailing `/`).
    pub async fn start_on(self: &Arc<Self>, addr: &str) -> String {
        common::serve(
            addr,
            Router::new().fallback(serve_key).with_state(self.clone()),
        )
        .await
    }
}

async fn serve_key(State(ks): State<Arc<KeyServer>>, uri: Uri) -> Response {
    ks.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = ks.mode.lock().unwrap().clone();
    match mode {
        KeyMode::Http500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        KeyMode::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
        KeyMode::Ok if uri.path() == KEY_PATH => {
            ([("content-type", "application/x-pem-file")], ks.pem.clone()).into_response()
        }
        KeyMode::Ok => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---- signing callbacks as OSS does (own code) ----

/// DER DigestInfo prefix for MD5 (RFC 8017 §9.2).
const MD5_PREFIX: [u8; 18] = [
    0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00,
    0x04, 0x10,
];

/// `b64(RSA-PKCS1-v1_5-MD5(private_key, path_and_query + "\n" + body))`, where
/// `path_and_query` is what OSS signs: the URL-decoded path, then `?` and the raw query.
pub fn sign_callback(private_pem: &str, path_and_query: &str, body: &[u8]) -> String {
    use md5::Digest as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(private_pem).unwrap();
    let mut msg = path_and_query.as_bytes().to_vec();
    msg.push(b'\n');
    msg.extend_from_slice(body);
    let digest = md5::Md5::digest(&msg);
    let scheme = rsa::Pkcs1v15Sign {
        hash_len: Some(16),
        prefix: Box::new(MD5_PREFIX),
    };
    let sig = key.sign(scheme, &digest).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sig)
}

/// `x-oss-pub-key-url` for `url`.
pub fn key_url_header(url: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(url)
}
