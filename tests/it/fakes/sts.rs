//! A fake AWS STS (`AssumeRole`) and S3 (browser POST upload, path-style) on one port, as
//! an S3-compatible store such as MinIO serves them.
//!
//! STS verifies every request's SigV4 signature with its own code below (its own canonical
//! request and HMAC chain over the `hmac`/`sha2` crates; never `aws-sigv4` nor stsgate's
//! `sign.rs`), checks the query-protocol parameters as AWS does, records each call (the
//! session policy included), answers in STS's XML (`AssumeRoleResponse` /
//! `ErrorResponse`), and can be told to fail.
//!
//! S3 accepts `POST /{bucket}` multipart forms signed with the credentials it issued: it
//! checks the policy signature, the credential and token, every policy condition (and that
//! every field is covered by one), the policy's expiry, and the recorded session policy, then
//! stores the object.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::upstream::{self, hmac_sha256, now_unix, utc};

/// How STS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Fresh credentials.
    Ok,
    /// `ErrorResponse` with this HTTP status and code.
    Error(u16, String),
    /// The first `n` calls answer `ErrorResponse` (status, code), then `Ok`.
    ErrorTimes(u16, String, u32),
    /// HTTP 500 with an HTML body.
    Http500,
    /// HTTP 200 with truncated XML.
    Malformed,
    /// Never answers (until the client gives up).
    Hang,
    /// Credentials living only this many seconds.
    ShortLived(i64),
    /// Answer normally after this many milliseconds.
    Delay(u64),
    /// `Expiration` with fractional seconds (`.987Z`).
    FractionalExpiration,
}

/// One `AssumeRole` call that passed authentication.
#[derive(Debug, Clone)]
pub struct AssumeCall {
    pub role_arn: String,
    pub session_name: String,
    pub duration_secs: Option<u64>,
    /// The session policy exactly as sent.
    pub policy: Option<String>,
    /// The SigV4 credential scope region.
    pub region: String,
}

/// Credentials the fake issued.
#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expiration: i64,
    /// The `Expiration` text sent.
    pub expiration_text: String,
    pub policy: Option<String>,
}

/// An object stored by a POST upload.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub bucket: String,
    pub key: String,
    pub size: usize,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// Shared state of the fake.
pub struct FakeSts {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// SigV4 region STS expects in the credential scope.
    pub region: String,
    pub role_arn: String,
    pub bucket: String,
    mode: Mutex<Mode>,
    calls: Mutex<Vec<Instant>>,
    rejected: AtomicU64,
    counter: AtomicU64,
    assume_calls: Mutex<Vec<AssumeCall>>,
    issued: Mutex<Vec<IssuedCred>>,
    objects: Mutex<Vec<StoredObject>>,
    s3_refusals: Mutex<Vec<String>>,
}

impl FakeSts {
    /// A fake expecting these long-term keys, signing region, role and bucket.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        region: &str,
        role_arn: &str,
        bucket: &str,
    ) -> Arc<Self> {
        Arc::new(FakeSts {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            region: region.into(),
            role_arn: role_arn.into(),
            bucket: bucket.into(),
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            assume_calls: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            objects: Mutex::new(Vec::new()),
            s3_refusals: Mutex::new(Vec::new()),
        })
    }

    /// Changes how STS answers.
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    /// STS requests received (authenticated or not).
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// STS requests refused for their signature or key.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::SeqCst)
    }

    /// Authenticated `AssumeRole` calls, with what they asked for.
    pub fn assume_calls(&self) -> Vec<AssumeCall> {
        self.assume_calls.lock().unwrap().clone()
    }

    /// Credentials issued so far.
    pub fn issued(&self) -> Vec<IssuedCred> {
        self.issued.lock().unwrap().clone()
    }

    /// Objects stored by POST uploads.
    pub fn objects(&self) -> Vec<StoredObject> {
        self.objects.lock().unwrap().clone()
    }

    /// S3 error codes answered so far.
    pub fn s3_refusals(&self) -> Vec<String> {
        self.s3_refusals.lock().unwrap().clone()
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        let app = Router::new()
            .route("/", post(sts))
            .route("/{bucket}", post(s3_post))
            .route("/{bucket}/", post(s3_post))
            .with_state(self.clone());
        upstream::serve("127.0.0.1:0", app).await
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn sts_error(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        xml_escape(message),
        uuid::Uuid::new_v4()
    );
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "text/xml")],
        body,
    )
        .into_response()
}

fn s3_error(fake: &FakeSts, status: u16, code: &str, message: &str) -> Response {
    fake.s3_refusals.lock().unwrap().push(code.to_string());
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
        xml_escape(message),
        uuid::Uuid::new_v4().simple()
    );
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/xml")],
        body,
    )
        .into_response()
}

// ---- the fake's own SigV4 (independent of aws-sigv4 and stsgate's sign.rs) ----

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// Header value as SigV4 canonicalises it: trimmed, inner whitespace runs folded to one space.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request of a query-protocol POST to `/`: no query, `headers` already
/// lower-case and in the order of `signed_headers`.
pub fn canonical_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    signed_headers: &str,
    body: &[u8],
) -> String {
    let mut block = String::new();
    for (n, v) in headers {
        block.push_str(n);
        block.push(':');
        block.push_str(&canonical_value(v));
        block.push('\n');
    }
    format!(
        "{method}\n{path}\n\n{block}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    )
}

/// `AWS4-HMAC-SHA256\n{amz_date}\n{scope}\nhex(SHA256(canonical))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// `hex(HMAC(kSigning, string_to_sign))`.
pub fn signature(secret: &str, date: &str, region: &str, service: &str, sts: &str) -> String {
    hex::encode(hmac_sha256(
        &signing_key(secret, date, region, service),
        sts.as_bytes(),
    ))
}

/// The S3 POST signature: `hex(HMAC(kSigning(secret, date, region, "s3"), policy_b64))`.
pub fn post_signature(secret: &str, date: &str, region: &str, policy_b64: &str) -> String {
    hex::encode(hmac_sha256(
        &signing_key(secret, date, region, "s3"),
        policy_b64.as_bytes(),
    ))
}

fn amz_date_unix(d: &str) -> Option<i64> {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(d, &f)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Checks an STS request's SigV4 `Authorization`; `Err` is (status, STS error code).
pub fn verify_sts(
    fake: &FakeSts,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, (u16, &'static str)> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let auth = h("authorization").ok_or((403, "MissingAuthenticationToken"))?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or((400, "IncompleteSignature"))?;
    let (mut credential, mut signed, mut sig) = ("", "", "");
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = v;
        }
    }
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || signed.is_empty() || sig.is_empty() {
        return Err((400, "IncompleteSignature"));
    }
    if scope[0] != fake.access_key_id {
        return Err((403, "InvalidClientTokenId"));
    }
    let amz_date = h("x-amz-date").ok_or((400, "IncompleteSignature"))?;
    let t = amz_date_unix(amz_date).ok_or((400, "IncompleteSignature"))?;
    if (now_unix() - t).abs() > 900 || scope[1] != &amz_date[..8] {
        return Err((403, "SignatureDoesNotMatch"));
    }
    if scope[2] != fake.region || scope[3] != "sts" || scope[4] != "aws4_request" {
        return Err((403, "SignatureDoesNotMatch"));
    }
    let names: Vec<&str> = signed.split(';').collect();
    for must in ["content-type", "host", "x-amz-date"] {
        if !names.contains(&must) {
            return Err((403, "SignatureDoesNotMatch"));
        }
    }
    let mut pairs = Vec::new();
    for n in &names {
        let v = h(n).ok_or((400, "IncompleteSignature"))?;
        pairs.push((n.to_string(), v.to_string()));
    }
    let canonical = canonical_request("POST", "/", &pairs, signed, body);
    let sts = string_to_sign(amz_date, &scope[1..].join("/"), &canonical);
    let want = signature(&fake.secret_access_key, scope[1], scope[2], "sts", &sts);
    if want != sig {
        return Err((403, "SignatureDoesNotMatch"));
    }
    Ok(scope[2].to_string())
}

fn valid_session_name(n: &str) -> bool {
    (2..=64).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

async fn sts(State(fake): State<Arc<FakeSts>>, headers: HeaderMap, body: Bytes) -> Response {
    fake.calls.lock().unwrap().push(Instant::now());
    let region = match verify_sts(&fake, &headers, &body) {
        Ok(r) => r,
        Err((status, code)) => {
            fake.rejected.fetch_add(1, Ordering::SeqCst);
            return sts_error(
                status,
                code,
                "The request signature we calculated does not match the signature you provided.",
            );
        }
    };
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return sts_error(400, "InvalidParameterValue", "content type");
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("Action").as_deref() != Some("AssumeRole") {
        return sts_error(400, "InvalidAction", "Could not find operation");
    }
    if get("Version").as_deref() != Some("2011-06-15") {
        return sts_error(400, "InvalidAction", "Could not find operation for version");
    }
    let session_name = get("RoleSessionName").unwrap_or_default();
    if !valid_session_name(&session_name) {
        return sts_error(
            400,
            "ValidationError",
            "1 validation error detected: roleSessionName",
        );
    }
    let duration = match get("DurationSeconds").map(|d| d.parse::<u64>()) {
        None => None,
        Some(Ok(d)) if (900..=43_200).contains(&d) => Some(d),
        Some(_) => {
            return sts_error(
                400,
                "ValidationError",
                "1 validation error detected: durationSeconds",
            )
        }
    };
    let policy = get("Policy");
    if let Some(p) = &policy {
        if p.len() > 2048 {
            return sts_error(
                400,
                "PackedPolicyTooLarge",
                "Packed size of the policy is too large",
            );
        }
        if serde_json::from_str::<Value>(p).is_err() {
            return sts_error(400, "MalformedPolicyDocument", "Syntax errors in policy");
        }
    }
    let role_arn = get("RoleArn").unwrap_or_default();
    if role_arn != fake.role_arn {
        return sts_error(
            403,
            "AccessDenied",
            "User is not authorized to perform: sts:AssumeRole",
        );
    }
    fake.assume_calls.lock().unwrap().push(AssumeCall {
        role_arn,
        session_name,
        duration_secs: duration,
        policy: policy.clone(),
        region,
    });
    let mode = {
        let mut m = fake.mode.lock().unwrap();
        let current = m.clone();
        if let Mode::ErrorTimes(status, code, n) = &current {
            *m = if *n <= 1 {
                Mode::Ok
            } else {
                Mode::ErrorTimes(*status, code.clone(), n - 1)
            };
            Mode::Error(*status, code.clone())
        } else {
            current
        }
    };
    match &mode {
        Mode::Error(status, code) => return sts_error(*status, code, "fake failure"),
        Mode::Http500 => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html><body>Internal Server Error</body></html>",
            )
                .into_response()
        }
        Mode::Malformed => {
            return (
                StatusCode::OK,
                "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA",
            )
                .into_response()
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK.into_response();
        }
        Mode::Delay(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        _ => {}
    }
    let n = fake.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let ttl = match mode {
        Mode::ShortLived(s) => s,
        _ => duration.unwrap_or(3600) as i64,
    };
    let expiration = now_unix() + ttl;
    let expiration_text = if mode == Mode::FractionalExpiration {
        utc(expiration, ".987Z")
    } else {
        utc(expiration, "Z")
    };
    let cred = IssuedCred {
        access_key_id: format!("ASIAFAKE{n:012}"),
        secret_access_key: format!("fakeTmpSecret/+{n:06}{}", uuid::Uuid::new_v4().simple()),
        session_token: format!(
            "FwoGZXIvYXdzEFAKE//{n:06}+{}=",
            uuid::Uuid::new_v4().simple()
        ),
        expiration,
        expiration_text: expiration_text.clone(),
        policy,
    };
    fake.issued.lock().unwrap().push(cred.clone());
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <Arn>arn:aws:sts::123456789012:assumed-role/uploader/s</Arn>\n      <AssumedRoleId>AROAFAKE:s</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n    <PackedPolicySize>9</PackedPolicySize>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>fake-{n}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
        cred.access_key_id,
        xml_escape(&cred.secret_access_key),
        xml_escape(&cred.session_token),
        expiration_text
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

// ---- S3 browser POST ----

/// One multipart part.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

const BOUNDARY: &str = "----stsgateFakeBrowserBoundary7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body as a browser sends it: `fields` in order, then `file`.
/// Returns (Content-Type header, body).
pub fn multipart_body(
    fields: &[(String, String)],
    filename: &str,
    file_type: &str,
    data: &[u8],
) -> (String, Vec<u8>) {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {file_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), b)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

fn disposition_param(line: &str, name: &str) -> Option<String> {
    let pat = format!("{name}=\"");
    let start = line.find(&pat)? + pat.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

/// Parses a `multipart/form-data` body; `None` when it is malformed.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0)? + delim.len();
    loop {
        if body.get(pos..pos + 2)? == b"--" {
            return Some(parts);
        }
        pos += 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = std::str::from_utf8(&body[pos..head_end]).ok()?;
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start)?;
        let mut name = None;
        let mut filename = None;
        let mut ctype = None;
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                name = disposition_param(line, "name");
                filename = disposition_param(line, "filename");
            } else if let Some(v) = lower.strip_prefix("content-type:") {
                ctype = Some(v.trim().to_string());
            }
        }
        parts.push(Part {
            name: name?,
            filename,
            content_type: ctype,
            data: body[data_start..next].to_vec(),
        });
        pos = next + 2 + delim.len();
    }
}

/// Why a form was refused: (HTTP status, S3 code, message).
pub type Refusal = (u16, &'static str, String);

fn deny(msg: impl Into<String>) -> Refusal {
    (
        403,
        "AccessDenied",
        format!("Invalid according to Policy: {}", msg.into()),
    )
}

/// Checks a decoded POST policy against the submitted fields (names as sent; `key` with
/// `${filename}` already substituted), the bucket, the file size and the time, as S3 does:
/// the policy has not expired, every condition holds, and every field except `file`,
/// `policy`, `x-amz-signature` and `x-ignore-*` is covered by a condition.
pub fn check_policy(
    policy: &Value,
    fields: &[(String, String)],
    bucket: &str,
    size: u64,
    now: i64,
) -> Result<(), Refusal> {
    let exp = policy["expiration"]
        .as_str()
        .ok_or_else(|| deny("Policy has no expiration"))?;
    let exp = time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339)
        .map_err(|_| deny("Policy expiration is malformed"))?;
    if exp.unix_timestamp() <= now {
        return Err(deny("Policy expired."));
    }
    let field = |name: &str| -> Option<String> {
        if name == "bucket" {
            return Some(bucket.to_string());
        }
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut covered: Vec<String> = Vec::new();
    let conditions = policy["conditions"]
        .as_array()
        .ok_or_else(|| deny("Policy has no conditions"))?;
    for c in conditions {
        match c {
            Value::Object(o) if o.len() == 1 => {
                let (k, v) = o.iter().next().unwrap();
                let want = v.as_str().ok_or_else(|| deny("condition value"))?;
                if field(k).as_deref() != Some(want) {
                    return Err(deny(format!(
                        "Policy Condition failed: [\"eq\", \"${k}\", \"{want}\"]"
                    )));
                }
                covered.push(k.to_ascii_lowercase());
            }
            Value::Array(a) if a.len() == 3 => {
                let op = a[0].as_str().unwrap_or("");
                match op {
                    "content-length-range" => {
                        let (min, max) = (a[1].as_u64().unwrap_or(0), a[2].as_u64().unwrap_or(0));
                        if size > max {
                            return Err((
                                400,
                                "EntityTooLarge",
                                "Your proposed upload exceeds the maximum allowed size".into(),
                            ));
                        }
                        if size < min {
                            return Err((
                                400,
                                "EntityTooSmall",
                                "Your proposed upload is smaller than the minimum allowed size"
                                    .into(),
                            ));
                        }
                    }
                    "eq" | "starts-with" => {
                        let name = a[1].as_str().unwrap_or("").trim_start_matches('$');
                        let want = a[2].as_str().unwrap_or("");
                        let got = field(name).unwrap_or_default();
                        let ok = if op == "eq" {
                            got == want
                        } else {
                            got.starts_with(want)
                        };
                        // A starts-with "" condition on an absent field is satisfied.
                        if !ok || (op == "eq" && field(name).is_none()) {
                            return Err(deny(format!(
                                "Policy Condition failed: [\"{op}\", \"${name}\", \"{want}\"]"
                            )));
                        }
                        covered.push(name.to_ascii_lowercase());
                    }
                    _ => return Err(deny("unknown condition")),
                }
            }
            _ => return Err(deny("malformed condition")),
        }
    }
    let extra: Vec<&str> = fields
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            let l = k.to_ascii_lowercase();
            !(l == "file"
                || l == "policy"
                || l == "x-amz-signature"
                || l.starts_with("x-ignore-")
                || covered.contains(&l))
        })
        .collect();
    if !extra.is_empty() {
        return Err(deny(format!("Extra input fields: {}", extra.join(", "))));
    }
    Ok(())
}

/// Whether an IAM resource pattern (`*` and `?` wildcards) matches `arn`.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), arn.as_bytes())
}

/// Whether a session policy allows `action` on `arn` (Allow statements only; stsgate's
/// policies have no Deny).
pub fn session_policy_allows(policy: &str, action: &str, arn: &str) -> bool {
    let Ok(p) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    };
    p["Statement"].as_array().into_iter().flatten().any(|st| {
        st["Effect"] == "Allow"
            && list(&st["Action"]).iter().any(|a| arn_matches(a, action))
            && list(&st["Resource"]).iter().any(|r| arn_matches(r, arn))
    })
}

async fn s3_post(
    State(fake): State<Arc<FakeSts>>,
    Path(bucket): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(parts) = parse_multipart(ct, &body) else {
        return s3_error(
            &fake,
            400,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        );
    };
    if bucket != fake.bucket {
        return s3_error(
            &fake,
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    // Fields after the file are ignored by S3; the file must be there.
    let Some(file_at) = parts.iter().position(|p| p.name == "file") else {
        return s3_error(
            &fake,
            400,
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
        );
    };
    let file = &parts[file_at];
    let mut fields: Vec<(String, String)> = parts[..file_at]
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                String::from_utf8_lossy(&p.data).into_owned(),
            )
        })
        .collect();
    let get = |fields: &[(String, String)], k: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let filename = file.filename.clone().unwrap_or_default();
    if let Some(kv) = fields.iter_mut().find(|(n, _)| n == "key") {
        kv.1 = kv.1.replace("${filename}", &filename);
    }
    let Some(key) = get(&fields, "key") else {
        return s3_error(
            &fake,
            400,
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.",
        );
    };
    let (Some(policy_b64), Some(sig), Some(cred), Some(date), Some(alg)) = (
        get(&fields, "policy"),
        get(&fields, "x-amz-signature"),
        get(&fields, "x-amz-credential"),
        get(&fields, "x-amz-date"),
        get(&fields, "x-amz-algorithm"),
    ) else {
        return s3_error(&fake, 400, "InvalidArgument", "Bucket POST must contain policy, x-amz-signature, x-amz-credential, x-amz-date and x-amz-algorithm.");
    };
    if alg != "AWS4-HMAC-SHA256" {
        return s3_error(&fake, 400, "InvalidArgument", "Unsupported algorithm");
    }
    let scope: Vec<&str> = cred.split('/').collect();
    if scope.len() != 5
        || scope[3] != "s3"
        || scope[4] != "aws4_request"
        || !date.starts_with(scope[1])
    {
        return s3_error(&fake, 400, "InvalidArgument", "Invalid credential scope");
    }
    let Some(issued) = fake
        .issued()
        .into_iter()
        .find(|c| c.access_key_id == scope[0])
    else {
        return s3_error(
            &fake,
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        );
    };
    if get(&fields, "x-amz-security-token").as_deref() != Some(issued.session_token.as_str()) {
        return s3_error(
            &fake,
            403,
            "InvalidToken",
            "The provided token is malformed or otherwise invalid.",
        );
    }
    let want = post_signature(&issued.secret_access_key, scope[1], scope[2], &policy_b64);
    if want != sig {
        return s3_error(
            &fake,
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let now = now_unix();
    if issued.expiration <= now {
        return s3_error(
            &fake,
            400,
            "ExpiredToken",
            "The provided token has expired.",
        );
    }
    let policy: Value = match base64::engine::general_purpose::STANDARD
        .decode(&policy_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(v) => v,
        None => {
            return s3_error(
                &fake,
                400,
                "InvalidPolicyDocument",
                "Invalid Policy: Invalid JSON.",
            )
        }
    };
    if let Err((status, code, msg)) =
        check_policy(&policy, &fields, &bucket, file.data.len() as u64, now)
    {
        return s3_error(&fake, status, code, &msg);
    }
    // The session policy attached at AssumeRole.
    let arn = format!("arn:aws:s3:::{bucket}/{key}");
    if let Some(sp) = &issued.policy {
        if !session_policy_allows(sp, "s3:PutObject", &arn) {
            return s3_error(&fake, 403, "AccessDenied", "Access Denied (session policy)");
        }
    }
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&file.data)[..16]));
    fake.objects.lock().unwrap().push(StoredObject {
        bucket: bucket.clone(),
        key: key.clone(),
        size: file.data.len(),
        content_type: get(&fields, "Content-Type").or(file.content_type.clone()),
        data: file.data.clone(),
    });
    (
        StatusCode::NO_CONTENT,
        [("etag", etag), ("location", format!("/{bucket}/{key}"))],
    )
        .into_response()
}
