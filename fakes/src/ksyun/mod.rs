//! A fake KSyun STS (`AssumeRole`, `Version=2015-11-01`) for tests and local runs.
//!
//! It verifies every request's AWS SigV4 signature with its own code (below, straight
//! from the SigV4 formulas over `hmac`/`sha2`; it never calls the crate's signer or
//! `aws-sigv4`), accepts both official request shapes (the newer SDK's form POST and
//! ks3sdk's GET with a JSON body), checks the parameters, and answers in the shape the
//! protocol notes give: `{"RequestId", "AssumeRoleResult": {"Credentials": {...},
//! "AssumedRoleUser": {...}}}` on success, `{"RequestId", "Error": {"Code", "Message",
//! "Type"}}` on failure (the envelope the official Python SDK reads). It records each
//! call and can be told to fail, hang or answer slowly.
//!
//! The KS3 bucket (presigned `PUT`, browser `POST`, stsgate's `HEAD`/`DELETE`) is [`ks3`].

pub mod ks3;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::Mode;
use crate::common::{self, hmac_sha256, now_unix, utc};

/// One issued credential, for assertions.
#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub security_token: String,
    /// `Expiration` exactly as answered.
    pub expiration: String,
    /// Unix seconds of `expiration`.
    pub expiration_unix: i64,
    /// The session `Policy` exactly as sent, if any.
    pub policy: Option<String>,
}

/// One verified call: its method and every parameter (query and body merged).
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: BTreeMap<String, String>,
    pub signed_headers: String,
}

/// Shared state of the fake.
pub struct FakeKsyunSts {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub role_krn: String,
    mode: Mutex<Mode>,
    arrivals: Mutex<Vec<Instant>>,
    calls: Mutex<Vec<Call>>,
    rejected: AtomicU64,
    counter: AtomicU64,
    issued: Mutex<Vec<IssuedCred>>,
}

impl FakeKsyunSts {
    /// A fake expecting these long-term keys, signing region and role.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        region: &str,
        role_krn: &str,
    ) -> Arc<Self> {
        Arc::new(FakeKsyunSts {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            region: region.into(),
            role_krn: role_krn.into(),
            mode: Mutex::new(Mode::Ok),
            arrivals: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            issued: Mutex::new(Vec::new()),
        })
    }

    /// Changes how the fake answers.
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    /// Requests received (verified or not).
    pub fn arrivals(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Requests whose signature verified, with their parameters.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Requests refused for their signature or signing headers.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::SeqCst)
    }

    /// Everything issued so far.
    pub fn issued(&self) -> Vec<IssuedCred> {
        self.issued.lock().unwrap().clone()
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
                .route("/", get(handle).post(handle))
                .with_state(self.clone()),
        )
        .await
    }
}

/// KSyun's error envelope.
fn error(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({
            "RequestId": uuid::Uuid::new_v4().to_string(),
            "Error": {"Code": code, "Message": message, "Type": kind}
        })),
    )
        .into_response()
}

// ---- the fake's own SigV4 (independent of stsgate's signer and of aws-sigv4) ----

/// RFC 3986 unreserved characters stay; everything else `%XX` (upper-case).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `CanonicalQueryString`: every `name=value` of the raw query decoded, re-encoded with
/// RFC 3986 (upper-case hex), sorted by name then value, joined with `&`.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let enc = |s: String| utf8_percent_encode(&s, UNRESERVED).to_string();
            (enc(dec(k)), enc(dec(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `CanonicalRequest = METHOD \n URI \n Query \n CanonicalHeaders \n SignedHeaders \n
/// hex(SHA256(body))`, where `CanonicalHeaders` = `name:value\n` for each signed header
/// (values trimmed, inner runs of spaces collapsed). `headers` are lower-case names.
pub fn canonical_request(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &BTreeMap<String, String>,
    signed_headers: &str,
    body: &[u8],
) -> Option<String> {
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = headers.get(name)?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    Some(format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_query(raw_query),
        sha256_hex(body)
    ))
}

/// `StringToSign = "AWS4-HMAC-SHA256" \n X-Amz-Date \n scope \n hex(SHA256(CanonicalRequest))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+SK, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date);
    let k = hmac_sha256(&k, region);
    let k = hmac_sha256(&k, service);
    hmac_sha256(&k, "aws4_request")
}

/// `signature = hex(HMAC-SHA256(kSigning, StringToSign))`.
pub fn signature(key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(key, string_to_sign))
}

/// Checks a request's SigV4 `Authorization`; `Err` is (HTTP status, KSyun-style code).
pub fn verify(
    fake: &FakeKsyunSts,
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, (u16, &'static str)> {
    let lower: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(n, v)| {
            Some((
                n.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let h = |n: &str| lower.get(n).map(String::as_str).unwrap_or("");
    let auth = h("authorization");
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or((403, "IncompleteSignature"))?;
    let (mut credential, mut signed, mut sig) = ("", "", "");
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = v;
        }
    }
    let amz_date = h("x-amz-date");
    let t = time::PrimitiveDateTime::parse(
        amz_date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| (403, "IncompleteSignature"))?
    .assume_utc()
    .unix_timestamp();
    if (now_unix() - t).abs() > 900 {
        return Err((403, "RequestExpired"));
    }
    let c: Vec<&str> = credential.split('/').collect();
    if c.len() != 5 {
        return Err((403, "IncompleteSignature"));
    }
    if c[0] != fake.access_key_id {
        return Err((403, "InvalidAccessKeyId"));
    }
    if c[1] != &amz_date[..8] || c[2] != fake.region || c[3] != "sts" || c[4] != "aws4_request" {
        return Err((403, "SignatureDoesNotMatch"));
    }
    let names: Vec<&str> = signed.split(';').collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    if names != sorted || !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err((403, "IncompleteSignature"));
    }
    // A form body's meaning depends on its Content-Type, so that must be signed.
    if method == "POST" && !names.contains(&"content-type") {
        return Err((403, "IncompleteSignature"));
    }
    if lower.contains_key("x-amz-content-sha256") && h("x-amz-content-sha256") != sha256_hex(body) {
        return Err((400, "XAmzContentSHA256Mismatch"));
    }
    let canonical = canonical_request(method, path, raw_query, &lower, signed, body)
        .ok_or((403, "IncompleteSignature"))?;
    let scope = format!("{}/{}/sts/aws4_request", &amz_date[..8], fake.region);
    let sts = string_to_sign(amz_date, &scope, &canonical);
    let want = signature(
        &signing_key(&fake.secret_access_key, &amz_date[..8], &fake.region, "sts"),
        &sts,
    );
    // Constant-time enough for a fake; the point is the exact comparison.
    if want != sig {
        return Err((403, "SignatureDoesNotMatch"));
    }
    Ok(signed.to_string())
}

/// Query parameters plus the body's (form or JSON), decoded.
fn params(
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, ()> {
    let mut out: BTreeMap<String, String> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if body.is_empty() {
        return Ok(out);
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        out.extend(form_urlencoded::parse(body).into_owned());
    } else if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|_| ())?;
        for (k, v) in v.as_object().ok_or(())? {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(()),
            };
            out.insert(k.clone(), text);
        }
    } else {
        return Err(());
    }
    Ok(out)
}

async fn handle(
    State(fake): State<Arc<FakeKsyunSts>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.arrivals.lock().unwrap().push(Instant::now());
    let raw_query = uri.query().unwrap_or("");
    let signed = match verify(
        &fake,
        method.as_str(),
        uri.path(),
        raw_query,
        &headers,
        &body,
    ) {
        Ok(s) => s,
        Err((status, code)) => {
            fake.rejected.fetch_add(1, Ordering::SeqCst);
            return error(status, code, "The request signature could not be verified.");
        }
    };
    let Ok(p) = params(raw_query, &headers, &body) else {
        return error(400, "MalformedInput", "the body could not be read");
    };
    fake.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        params: p.clone(),
        signed_headers: signed,
    });
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("Action") != "AssumeRole" {
        return error(400, "InvalidAction", "unknown Action");
    }
    if get("Version") != "2015-11-01" {
        return error(400, "InvalidVersion", "unknown Version");
    }
    if get("RoleKrn") != fake.role_krn {
        return error(404, "NoSuchEntity", "role not found");
    }
    let session = get("RoleSessionName");
    let session_ok = (2..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !session_ok {
        return error(400, "InvalidParameterValue", "RoleSessionName");
    }
    let duration: i64 = match get("DurationSeconds") {
        "" => 3600,
        d => match d.parse() {
            Ok(n) if (900..=86_400).contains(&n) => n,
            _ => return error(400, "InvalidParameterValue", "DurationSeconds"),
        },
    };
    if let Some(policy) = p.get("Policy") {
        if policy.is_empty() || policy.chars().count() > 1024 {
            return error(400, "PackedPolicyTooLarge", "Policy is 1-1024 characters");
        }
        if !serde_json::from_str::<Value>(policy).is_ok_and(|v| v.is_object()) {
            return error(
                400,
                "MalformedPolicyDocument",
                "Policy is not a JSON object",
            );
        }
    }
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
        Mode::Malformed => {
            return (StatusCode::OK, "{\"AssumeRoleResult\": {\"Credentials\": ").into_response()
        }
        Mode::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK.into_response();
        }
        _ => {}
    }
    let n = fake.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let ttl = if let Mode::ShortLived(s) = mode {
        s
    } else {
        duration
    };
    let expires_at = now_unix() + ttl;
    let cred = IssuedCred {
        access_key_id: format!("AKTPfake{n:08}"),
        secret_access_key: format!("FAKEtmpSK{n:08}{}", uuid::Uuid::new_v4().simple()),
        security_token: format!("FAKEtoken{n:08}{}", uuid::Uuid::new_v4().simple()),
        expiration: utc(expires_at, "Z"),
        expiration_unix: expires_at,
        policy: p.get("Policy").cloned(),
    };
    fake.issued.lock().unwrap().push(cred.clone());
    let account = fake
        .role_krn
        .strip_prefix("krn:ksc:iam::")
        .and_then(|r| r.split(':').next())
        .unwrap_or("0");
    let role = fake.role_krn.rsplit('/').next().unwrap_or("role");
    axum::Json(json!({
        "RequestId": format!("fake-{n}"),
        "AssumeRoleResult": {
            "Credentials": {
                "AccessKeyId": cred.access_key_id,
                "SecretAccessKey": cred.secret_access_key,
                "SecurityToken": cred.security_token,
                "Expiration": cred.expiration,
            },
            "AssumedRoleUser": {
                "Krn": format!("krn:ksc:iam::{account}:assumed-role/{role}/{session}"),
                "AssumedRoleId": format!("{n}:{session}"),
            }
        }
    }))
    .into_response()
}
