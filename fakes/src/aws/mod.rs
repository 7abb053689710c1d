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
//! stores the object. Like a bucket with a CORS rule, S3's answers allow any origin and
//! expose `ETag`, so a browser page (stsgate's `/demo`) can read them.

pub mod policy;
pub mod sigv4;

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

use self::policy::{check_policy, session_policy_allows};
use self::sigv4::{
    amz_date_unix, canonical_query, canonical_request, canonical_request_hashed,
    canonical_request_query, post_signature, signature, string_to_sign,
};
use crate::bucket::Buckets;
use crate::common::Mode;
use crate::common::{self, now_unix, utc};
use crate::multipart::parse_multipart;

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

pub use crate::bucket::StoredObject;

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
    s3_refusals: Mutex<Vec<String>>,
    /// The bucket's objects, object-request log and HEAD/DELETE failure script.
    pub buckets: Buckets,
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
            s3_refusals: Mutex::new(Vec::new()),
            buckets: Buckets::default(),
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
        self.buckets.objects()
    }

    /// Changes how S3 answers an authenticated `HEAD` of an object (`Error`, `ErrorTimes`,
    /// `Http500`, `Hang`, `Delay`; anything else answers normally).
    pub fn set_object_mode(&self, m: Mode) {
        self.buckets.set_head_mode(m);
    }

    /// The same for an authenticated `DELETE` of an object.
    pub fn set_delete_mode(&self, m: Mode) {
        self.buckets.set_delete_mode(m);
    }

    /// `HEAD`/`DELETE` requests of objects received (method, key), authenticated or not.
    pub fn object_calls(&self) -> Vec<(String, String)> {
        self.buckets.calls()
    }

    /// Stores an object directly, bypassing every policy (a test's stand-in for an upload
    /// that broke the rules some other way).
    pub fn put_object(&self, bucket: &str, key: &str, content_type: Option<&str>, data: &[u8]) {
        self.buckets.put(bucket, key, content_type, data);
    }

    /// S3 error codes answered so far.
    pub fn s3_refusals(&self) -> Vec<String> {
        self.s3_refusals.lock().unwrap().clone()
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        let app = Router::new()
            .route("/", post(sts))
            .route("/{bucket}", post(s3_post).options(preflight))
            .route("/{bucket}/", post(s3_post).options(preflight))
            .route(
                "/{bucket}/{*key}",
                axum::routing::head(s3_object)
                    .delete(s3_object)
                    .put(s3_put)
                    .options(preflight),
            )
            .layer(axum::middleware::map_response(cors))
            .with_state(self.clone());
        common::serve("127.0.0.1:0", app).await
    }
}

/// The answer to a CORS preflight (a browser sends one before a POST whose upload progress
/// it watches): POST allowed from any origin with whatever headers it asks for.
async fn preflight(headers: HeaderMap) -> Response {
    let asked = headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("content-type"));
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.insert("access-control-allow-methods", "POST".parse().unwrap());
    h.insert("access-control-allow-headers", asked);
    h.insert("access-control-max-age", "600".parse().unwrap());
    res
}

/// A CORS rule allowing any origin to read S3's answers (and `ETag`).
async fn cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("access-control-allow-origin", "*".parse().unwrap());
    h.insert("access-control-expose-headers", "ETag".parse().unwrap());
    res
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
    let (scope, signed, sig) = authorization_parts(rest);
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
    let mode = Mode::next(&fake.mode);
    match &mode {
        Mode::Error(status, code) | Mode::AltError(status, code) => {
            return sts_error(*status, code, "fake failure")
        }
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
    let etag = fake.buckets.put(
        &bucket,
        &key,
        get(&fields, "Content-Type")
            .or(file.content_type.clone())
            .as_deref(),
        &file.data,
    );
    (
        StatusCode::NO_CONTENT,
        [("etag", etag), ("location", format!("/{bucket}/{key}"))],
    )
        .into_response()
}

/// Checks an S3 request's SigV4 `Authorization` header against the configured long-term
/// key (stsgate's own `HEAD`/`DELETE`): scope `{date}/{region}/s3/aws4_request`, `host`,
/// `x-amz-date` and `x-amz-content-sha256` signed, the path exactly as sent, the payload hash
/// the `x-amz-content-sha256` header (which must be that of the empty body). `Err` is
/// (status, S3 error code).
pub fn verify_s3_header(
    fake: &FakeSts,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), (u16, &'static str)> {
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if raw_query.is_some_and(|q| !q.is_empty()) {
        return Err((400, "InvalidArgument"));
    }
    let auth = h("authorization").ok_or((403, "AccessDenied"))?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or((400, "InvalidArgument"))?;
    let (scope, signed, sig) = authorization_parts(rest);
    if scope.len() != 5 || signed.is_empty() || sig.is_empty() {
        return Err((400, "AuthorizationHeaderMalformed"));
    }
    if scope[0] != fake.access_key_id {
        return Err((403, "InvalidAccessKeyId"));
    }
    let amz_date = h("x-amz-date").ok_or((403, "AccessDenied"))?;
    let t = amz_date_unix(amz_date).ok_or((403, "AccessDenied"))?;
    if (now_unix() - t).abs() > 900 {
        return Err((403, "RequestTimeTooSkewed"));
    }
    if scope[1] != &amz_date[..8]
        || scope[2] != fake.region
        || scope[3] != "s3"
        || scope[4] != "aws4_request"
    {
        return Err((400, "AuthorizationHeaderMalformed"));
    }
    let payload = h("x-amz-content-sha256").ok_or((400, "InvalidRequest"))?;
    if payload != EMPTY {
        return Err((400, "XAmzContentSHA256Mismatch"));
    }
    let names: Vec<&str> = signed.split(';').collect();
    for must in ["host", "x-amz-content-sha256", "x-amz-date"] {
        if !names.contains(&must) {
            return Err((403, "SignatureDoesNotMatch"));
        }
    }
    let mut pairs = Vec::new();
    for n in &names {
        let v = h(n).ok_or((403, "SignatureDoesNotMatch"))?;
        pairs.push((n.to_string(), v.to_string()));
    }
    let canonical = canonical_request_hashed(method, raw_path, &pairs, signed, payload);
    let sts = string_to_sign(amz_date, &scope[1..].join("/"), &canonical);
    let want = signature(&fake.secret_access_key, scope[1], scope[2], "s3", &sts);
    if want != sig {
        return Err((403, "SignatureDoesNotMatch"));
    }
    Ok(())
}

/// Checks a presigned `PUT` as S3 does, with the fake's own SigV4: the `X-Amz-*` query
/// parameters (algorithm, credential scope `{date}/{region}/s3/aws4_request`, date, expiry),
/// the credential and session token it issued (not expired), every header named in
/// `X-Amz-SignedHeaders` (`host` required), the canonical request over the path exactly as
/// sent and the canonical query (every parameter but the signature, `UNSIGNED-PAYLOAD`), and
/// the session policy attached at AssumeRole. `Err` is (status, S3 error code).
pub fn verify_presigned_put(
    fake: &FakeSts,
    bucket: &str,
    key: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    now: i64,
) -> Result<(), (u16, &'static str)> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let q = |n: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .ok_or((403, "AccessDenied"))
    };
    if q("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err((400, "AuthorizationQueryParametersError"));
    }
    let credential = q("X-Amz-Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let amz_date = q("X-Amz-Date")?;
    let signed = q("X-Amz-SignedHeaders")?;
    let sig = q("X-Amz-Signature")?;
    let expires: i64 = q("X-Amz-Expires")?
        .parse()
        .map_err(|_| (400, "AuthorizationQueryParametersError"))?;
    if scope.len() != 5
        || scope[2] != fake.region
        || scope[3] != "s3"
        || scope[4] != "aws4_request"
        || !amz_date.starts_with(scope[1])
        || !(1..=7 * 24 * 3600).contains(&expires)
    {
        return Err((400, "AuthorizationQueryParametersError"));
    }
    let t = amz_date_unix(amz_date).ok_or((400, "AuthorizationQueryParametersError"))?;
    if now < t - 900 || now > t + expires {
        return Err((403, "AccessDenied"));
    }
    let issued = fake
        .issued()
        .into_iter()
        .find(|c| c.access_key_id == scope[0])
        .ok_or((403, "InvalidAccessKeyId"))?;
    if q("X-Amz-Security-Token")? != issued.session_token {
        return Err((403, "InvalidToken"));
    }
    if issued.expiration <= now {
        return Err((400, "ExpiredToken"));
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") {
        return Err((400, "AuthorizationQueryParametersError"));
    }
    let mut hdrs = Vec::new();
    for n in &names {
        let v = headers
            .get(*n)
            .and_then(|v| v.to_str().ok())
            .ok_or((403, "SignatureDoesNotMatch"))?;
        hdrs.push((n.to_string(), v.to_string()));
    }
    let unsigned: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .cloned()
        .collect();
    let canonical = canonical_request_query(
        "PUT",
        raw_path,
        &canonical_query(&unsigned),
        &hdrs,
        signed,
        "UNSIGNED-PAYLOAD",
    );
    let sts = string_to_sign(amz_date, &scope[1..].join("/"), &canonical);
    if signature(&issued.secret_access_key, scope[1], scope[2], "s3", &sts) != sig {
        return Err((403, "SignatureDoesNotMatch"));
    }
    let arn = format!("arn:aws:s3:::{bucket}/{key}");
    if let Some(sp) = &issued.policy {
        if !session_policy_allows(sp, "s3:PutObject", &arn) {
            return Err((403, "AccessDenied"));
        }
    }
    Ok(())
}

/// `PUT /{bucket}/{key}?X-Amz-...`: a presigned upload ([`verify_presigned_put`]); stores
/// the body with the request's `Content-Type` and answers 200 with the ETag.
async fn s3_put(
    State(fake): State<Arc<FakeSts>>,
    Path((bucket, key)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.buckets.log("PUT", &key);
    if bucket != fake.bucket {
        return s3_error(
            &fake,
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    if let Err((status, code)) = verify_presigned_put(
        &fake,
        &bucket,
        &key,
        uri.path(),
        uri.query().unwrap_or(""),
        &headers,
        now_unix(),
    ) {
        return s3_error(&fake, status, code, "The presigned PUT was refused.");
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let etag = fake.buckets.put(&bucket, &key, content_type, &body);
    (StatusCode::OK, [("etag", etag)]).into_response()
}

/// `HEAD`/`DELETE /{bucket}/{key}` signed with the long-term key: `HEAD` answers the stored
/// object's size, ETag and content type (404 when absent); `DELETE` removes it (204, also
/// when absent, as S3 does).
async fn s3_object(
    State(fake): State<Arc<FakeSts>>,
    Path((bucket, key)): Path<(String, String)>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    fake.buckets.log(method.as_str(), &key);
    if let Err((status, code)) =
        verify_s3_header(&fake, method.as_str(), uri.path(), uri.query(), &headers)
    {
        // A HEAD answer has no body; the code is still recorded.
        return s3_error(&fake, status, code, "The request signature was refused.");
    }
    if let Some(res) = fake
        .buckets
        .scripted(method.as_str(), |status, code| {
            s3_error(&fake, status, code, "fake failure")
        })
        .await
    {
        return res;
    }
    if bucket != fake.bucket {
        return s3_error(
            &fake,
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    if method == axum::http::Method::DELETE {
        fake.buckets.delete(&bucket, &key);
        return StatusCode::NO_CONTENT.into_response();
    }
    fake.buckets
        .head(&bucket, &key)
        .unwrap_or_else(|| s3_error(&fake, 404, "NoSuchKey", "The specified key does not exist."))
}

/// The `Credential` scope (split at `/`), `SignedHeaders` and `Signature` of a SigV4
/// `Authorization` value after its algorithm; empty where a part is missing.
fn authorization_parts(rest: &str) -> (Vec<&str>, &str, &str) {
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
    (credential.split('/').collect(), signed, sig)
}
