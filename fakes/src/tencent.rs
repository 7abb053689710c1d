//! A fake Tencent LKE `DescribeStorageCredential` endpoint for tests and local runs.
//!
//! It verifies every request's TC3-HMAC-SHA256 signature with its own code (below; it
//! never calls the crate's signer), checks the action/version/region headers and the
//! body, answers in LKE's envelope (`Response{...}` or `Response.Error{Code,Message}`,
//! always HTTP 200 like LKE), records each call's time, and can be told to fail.
//!
//! On a second port ([`FakeLke::start_cos`]) it is also LKE's COS bucket: a presigned `PUT`
//! and a POST Object form signed with a temporary key it issued are verified with its own
//! COS signature code ([`verify_cos_presigned`], [`verify_cos_post`]) for exactly that
//! credential's `UploadPath`, and stored (`buckets`). The bucket's virtual host
//! (`{bucket}.cos.{region}.myqcloud.com`) is read from the `Host` header, so a test sends the
//! URL's path and query to this port with the URL's host as `Host`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::bucket::Buckets;
use crate::common::Mode;
use crate::common::{self, hmac_sha256, now_unix};
use crate::multipart::parse_multipart;

/// The COS region of the bucket the fake's credentials are for (LKE's answer `Region`).
pub const COS_REGION: &str = "ap-guangzhou";

/// One issued credential, for assertions (e.g. that no secret reached a log).
#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub tmp_secret_id: String,
    pub tmp_secret_key: String,
    pub token: String,
    pub upload_path: String,
}

/// Shared state of the fake.
pub struct FakeLke {
    pub secret_id: String,
    pub secret_key: String,
    pub region: String,
    pub bucket: String,
    pub ttl_secs: i64,
    mode: Mutex<Mode>,
    calls: Mutex<Vec<Instant>>,
    rejected: AtomicU64,
    counter: AtomicU64,
    issued: Mutex<Vec<IssuedCred>>,
    /// LKE's COS bucket: what was uploaded to it.
    pub buckets: Buckets,
}

impl FakeLke {
    /// A fake expecting these long-term keys and `X-TC-Region`.
    pub fn new(secret_id: &str, secret_key: &str, region: &str) -> Arc<Self> {
        Arc::new(FakeLke {
            secret_id: secret_id.into(),
            secret_key: secret_key.into(),
            region: region.into(),
            bucket: "lke-offline-1250000000".into(),
            ttl_secs: 1800,
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            issued: Mutex::new(Vec::new()),
            buckets: Buckets::default(),
        })
    }

    /// Changes how the fake answers.
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    /// Arrival times of every call.
    pub fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }

    /// Number of calls received.
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Calls refused for a bad signature or headers.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::SeqCst)
    }

    /// Everything issued so far.
    pub fn issued(&self) -> Vec<IssuedCred> {
        self.issued.lock().unwrap().clone()
    }

    /// The largest number of calls inside any window of `window`.
    pub fn max_calls_in_window(&self, window: Duration) -> usize {
        let mut t = self.call_times();
        t.sort();
        (0..t.len())
            .map(|i| {
                t[i..]
                    .iter()
                    .take_while(|x| x.duration_since(t[i]) < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Serves LKE's COS bucket on 127.0.0.1 (an ephemeral port): `PUT /{key}` (presigned)
    /// and `POST /` (POST Object form); returns the base URL.
    pub async fn start_cos(self: &Arc<Self>) -> String {
        common::serve(
            "127.0.0.1:0",
            Router::new()
                .route("/", post(cos_post))
                .route("/{*key}", axum::routing::put(cos_put))
                .with_state(self.clone()),
        )
        .await
    }

    /// The COS virtual host of the fake's bucket.
    pub fn cos_host(&self) -> String {
        format!("{}.cos.{COS_REGION}.myqcloud.com", self.bucket)
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
                .route("/", post(handle))
                .with_state(self.clone()),
        )
        .await
    }
}

fn error(code: &str, message: &str) -> Response {
    axum::Json(json!({"Response": {
        "Error": {"Code": code, "Message": message},
        "RequestId": format!("fake-{}", uuid::Uuid::new_v4())
    }}))
    .into_response()
}

// ---- the fake's own TC3 implementation (independent of stsgate's sign.rs) ----

fn utc_date(ts: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ts).unwrap();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// The signature TC3 expects for a POST with `content-type;host` signed.
pub fn expected_signature(
    secret_key: &str,
    host: &str,
    content_type: &str,
    body: &[u8],
    ts: i64,
    service: &str,
) -> String {
    let date = utc_date(ts);
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        content_type.trim().to_lowercase(),
        host.trim().to_lowercase(),
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{date}/{service}/tc3_request");
    let sts = format!(
        "TC3-HMAC-SHA256\n{ts}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac_sha256(format!("TC3{secret_key}").as_bytes(), &date);
    let k = hmac_sha256(&k, service);
    let k = hmac_sha256(&k, "tc3_request");
    hex::encode(hmac_sha256(&k, &sts))
}

/// Checks the Authorization header; `Err` is the LKE error code to answer.
pub fn verify(fake: &FakeLke, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ts: i64 = h("x-tc-timestamp")
        .parse()
        .map_err(|_| "MissingParameter")?;
    if (now_unix() - ts).abs() > 300 {
        return Err("AuthFailure.SignatureExpire");
    }
    let auth = h("authorization");
    let rest = auth
        .strip_prefix("TC3-HMAC-SHA256 ")
        .ok_or("AuthFailure.InvalidAuthorization")?;
    let mut credential = "";
    let mut signed = "";
    let mut signature = "";
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let mut cred = credential.splitn(4, '/');
    let (id, date, service, term) = (cred.next(), cred.next(), cred.next(), cred.next());
    if id != Some(fake.secret_id.as_str()) {
        return Err("AuthFailure.SecretIdNotFound");
    }
    if date != Some(utc_date(ts).as_str()) || service != Some("lke") || term != Some("tc3_request")
    {
        return Err("AuthFailure.InvalidAuthorization");
    }
    if signed != "content-type;host" {
        return Err("AuthFailure.InvalidAuthorization");
    }
    let want = expected_signature(
        &fake.secret_key,
        h("host"),
        h("content-type"),
        body,
        ts,
        "lke",
    );
    if want != signature {
        return Err("AuthFailure.SignatureFailure");
    }
    Ok(())
}

async fn handle(State(fake): State<Arc<FakeLke>>, headers: HeaderMap, body: Bytes) -> Response {
    fake.calls.lock().unwrap().push(Instant::now());
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if let Err(code) = verify(&fake, &headers, &body) {
        fake.rejected.fetch_add(1, Ordering::SeqCst);
        return error(code, "The provided credentials could not be validated.");
    }
    if h("x-tc-action") != "DescribeStorageCredential" {
        return error("InvalidAction", "unknown action");
    }
    if h("x-tc-version") != "2023-11-30" {
        return error("NoSuchVersion", "unknown version");
    }
    if h("x-tc-region") != fake.region {
        return error("InvalidParameterValue.Region", "region");
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error("InvalidParameter", "body is not JSON"),
    };
    let file_type = req["FileType"].as_str().unwrap_or("").to_string();
    if !req["BotBizId"].is_string()
        || file_type.is_empty()
        || !req["IsPublic"].is_boolean()
        || !req["TypeKey"].is_string()
    {
        return error("InvalidParameter", "BotBizId, FileType, IsPublic, TypeKey");
    }
    let mode = Mode::next(&fake.mode);
    match mode {
        Mode::Error(_, code) | Mode::AltError(_, code) => return error(&code, "fake failure"),
        Mode::Http500 => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html>upstream error</html>",
            )
                .into_response()
        }
        Mode::Malformed => {
            return (StatusCode::OK, "{\"Response\": {\"Credentials\": ").into_response()
        }
        Mode::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK.into_response();
        }
        _ => {}
    }
    let n = fake.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let now = now_unix();
    let ttl = if let Mode::ShortLived(s) = mode {
        s
    } else {
        fake.ttl_secs
    };
    let upload_path = if mode == Mode::NoUploadPath {
        String::new()
    } else {
        format!(
            "/corp/1768567877186617344/1768574873671565312/doc/{}-{n}.{file_type}",
            uuid::Uuid::new_v4().simple()
        )
    };
    let cred = IssuedCred {
        tmp_secret_id: format!("AKIDtmpFAKE{n:08}"),
        tmp_secret_key: format!("FAKEtmpKEY{n:08}{}", uuid::Uuid::new_v4().simple()),
        token: format!("FAKEtoken{n:08}{}", uuid::Uuid::new_v4().simple()),
        upload_path: upload_path.clone(),
    };
    fake.issued.lock().unwrap().push(cred.clone());
    axum::Json(json!({"Response": {
        "Credentials": {"Token": cred.token, "TmpSecretId": cred.tmp_secret_id, "TmpSecretKey": cred.tmp_secret_key},
        "ExpiredTime": now + ttl,
        "StartTime": now,
        "Bucket": fake.bucket,
        "Region": COS_REGION,
        "FilePath": "",
        "Type": "cos",
        "CorpUin": "0",
        "ImagePath": "",
        "UploadPath": upload_path,
        "RequestId": format!("fake-{n}")
    }}))
    .into_response()
}

/// Verifies a presigned COS request the way COS does (its own code, not stsgate's): the
/// `q-*` parameters of `url`, the FormatString rebuilt from the method, the decoded path, the
/// parameters named in `q-url-param-list` and the `headers` named in `q-header-list` (`host`
/// from the URL), the signature under `secret_key`, and `now` inside `q-key-time`.
pub fn verify_cos_presigned(
    secret_key: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    now: i64,
) -> Result<(), String> {
    use hmac::{Hmac, Mac};
    use sha1::{Digest as _, Sha1};
    let (base, query) = url.split_once('?').ok_or("no query")?;
    let rest = base.strip_prefix("https://").ok_or("not https")?;
    let (host, path) = rest.split_once('/').ok_or("no path")?;
    let path = format!(
        "/{}",
        percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| "path is not UTF-8")?
    );
    let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |n: &str| {
        q.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {n}"))
    };
    if get("q-sign-algorithm")? != "sha1" {
        return Err("q-sign-algorithm".into());
    }
    let key_time = get("q-key-time")?;
    let (start, end) = key_time.split_once(';').ok_or("q-key-time")?;
    let (start, end): (i64, i64) = (
        start.parse().map_err(|_| "start")?,
        end.parse().map_err(|_| "end")?,
    );
    if now < start || now > end {
        return Err("RequestTimeTooSkewed or expired".into());
    }
    let enc = |s: &str| {
        const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        percent_encoding::utf8_percent_encode(s, SET).to_string()
    };
    let listed =
        |list: &str, value_of: &dyn Fn(&str) -> Option<String>| -> Result<String, String> {
            let mut pairs = Vec::new();
            for name in list.split(';').filter(|n| !n.is_empty()) {
                let v = value_of(name).ok_or(format!("{name} is listed but absent"))?;
                pairs.push(format!("{name}={}", enc(&v)));
            }
            pairs.sort();
            Ok(pairs.join("&"))
        };
    let params = listed(&get("q-url-param-list")?, &|n| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    })?;
    let hdrs = listed(&get("q-header-list")?, &|n| {
        if n == "host" {
            return Some(host.to_string());
        }
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.to_string())
    })?;
    let format = format!(
        "{}\n{path}\n{params}\n{hdrs}\n",
        method.to_ascii_lowercase()
    );
    let to_sign = format!(
        "sha1\n{key_time}\n{}\n",
        hex::encode(Sha1::digest(format.as_bytes()))
    );
    let mac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
        m.update(msg);
        hex::encode(m.finalize().into_bytes())
    };
    let sign_key = mac(secret_key.as_bytes(), key_time.as_bytes());
    if get("q-signature")? != mac(sign_key.as_bytes(), to_sign.as_bytes()) {
        return Err("SignatureDoesNotMatch".into());
    }
    Ok(())
}

/// Checks a COS POST Object form as COS does, with the fake's own code: `q-signature` is
/// `hex(HMAC-SHA1(hex(HMAC-SHA1(secret, q-key-time)), hex(SHA1(decoded policy))))`, and the
/// policy's `q-ak`, `q-sign-time`, `key` and `x-cos-security-token` conditions match the
/// fields. `Err` says what does not hold.
pub fn verify_cos_post(secret_key: &str, fields: &Value) -> Result<(), String> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha1::{Digest as _, Sha1};
    let field = |n: &str| {
        fields[n]
            .as_str()
            .map(str::to_string)
            .ok_or(format!("no {n}"))
    };
    let policy = base64::engine::general_purpose::STANDARD
        .decode(field("policy")?)
        .map_err(|_| "policy is not base64".to_string())?;
    let key_time = field("q-key-time")?;
    let mac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
        m.update(msg);
        hex::encode(m.finalize().into_bytes())
    };
    let sign_key = mac(secret_key.as_bytes(), key_time.as_bytes());
    let want = mac(
        sign_key.as_bytes(),
        hex::encode(Sha1::digest(&policy)).as_bytes(),
    );
    if field("q-signature")? != want {
        return Err("SignatureDoesNotMatch".into());
    }
    let doc: Value = serde_json::from_slice(&policy).map_err(|_| "policy is not JSON")?;
    let conditions = doc["conditions"].as_array().ok_or("no conditions")?;
    for (cond, name) in [
        ("q-ak", "q-ak"),
        ("q-sign-time", "q-key-time"),
        ("key", "key"),
        ("x-cos-security-token", "x-cos-security-token"),
    ] {
        let value = field(name)?;
        if !conditions.contains(&json!({ cond: value })) {
            return Err(format!("policy does not pin {cond}"));
        }
    }
    Ok(())
}

/// A COS error answer (`<Error><Code>…`).
fn cos_error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n  <RequestId>fake-cos</RequestId>\n</Error>\n"
    );
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/xml")],
        body,
    )
        .into_response()
}

/// The issued credential whose temporary SecretId is `ak`, when its bucket host is `host`.
fn cos_credential(fake: &FakeLke, host: &str, ak: &str) -> Result<IssuedCred, Box<Response>> {
    if host != fake.cos_host() {
        return Err(Box::new(cos_error(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        )));
    }
    fake.issued()
        .into_iter()
        .find(|c| c.tmp_secret_id == ak)
        .ok_or_else(|| {
            Box::new(cos_error(
                403,
                "InvalidAccessKeyId",
                "The access key Id format you provided is invalid.",
            ))
        })
}

/// `PUT /{key}?q-sign-algorithm=…`: a presigned upload, verified by
/// [`verify_cos_presigned`] against the issued temporary key, with the issued token as its
/// `x-cos-security-token` parameter, for exactly the credential's `UploadPath`.
async fn cos_put(
    State(fake): State<Arc<FakeLke>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.buckets.log("PUT", &key);
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let query = uri.query().unwrap_or("");
    let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |n: &str| {
        q.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let cred = match cos_credential(&fake, host, get("q-ak")) {
        Ok(c) => c,
        Err(res) => return *res,
    };
    if get("x-cos-security-token") != cred.token {
        return cos_error(403, "InvalidToken", "The provided token is invalid.");
    }
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let url = format!("https://{host}{}", uri);
    if let Err(e) = verify_cos_presigned(&cred.tmp_secret_key, "PUT", &url, &pairs, now_unix()) {
        let code = if e.contains("Signature") {
            "SignatureDoesNotMatch"
        } else {
            "AccessDenied"
        };
        return cos_error(403, code, &e);
    }
    if key != cred.upload_path.trim_start_matches('/') {
        return cos_error(
            403,
            "AccessDenied",
            "The key is not the credential's UploadPath.",
        );
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    let etag = fake.buckets.put(&fake.bucket, &key, ct, &body);
    (StatusCode::OK, [("etag", etag)]).into_response()
}

/// `POST /` with a POST Object form: the signature and pins ([`verify_cos_post`]) against
/// the issued temporary key, every policy condition (bucket, size range, Content-Type,
/// expiry) with the shared policy checker, and the credential's `UploadPath`.
async fn cos_post(State(fake): State<Arc<FakeLke>>, headers: HeaderMap, body: Bytes) -> Response {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(parts) = parse_multipart(ct, &body) else {
        return cos_error(
            400,
            "MalformedPOSTRequest",
            "The body of the POST request is not well-formed multipart/form-data.",
        );
    };
    let Some(file_at) = parts.iter().position(|p| p.name == "file") else {
        return cos_error(400, "InvalidArgument", "POST requires one file.");
    };
    let file = &parts[file_at];
    let fields: Vec<(String, String)> = parts[..file_at]
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                String::from_utf8_lossy(&p.data).into_owned(),
            )
        })
        .collect();
    let field = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let key = field("key");
    fake.buckets.log("POST", &key);
    let cred = match cos_credential(&fake, &host, &field("q-ak")) {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let as_json: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Err(e) = verify_cos_post(&cred.tmp_secret_key, &Value::Object(as_json)) {
        return cos_error(403, "AccessDenied", &e);
    }
    if field("x-cos-security-token") != cred.token {
        return cos_error(403, "InvalidToken", "The provided token is invalid.");
    }
    // The policy names the signing time `q-sign-time`; the form carries it as `q-key-time`.
    let mut checked = fields.clone();
    checked.push(("q-sign-time".into(), field("q-key-time")));
    let form = common::PostForm {
        fields: &checked,
        file_size: file.data.len() as u64,
        exempt: &["policy", "q-signature", "q-key-time"],
        star_wildcard: false,
    };
    if let Err(e) = common::check_policy(&form, &fake.bucket) {
        return cos_error(403, "AccessDenied", &e);
    }
    if key != cred.upload_path.trim_start_matches('/') {
        return cos_error(
            403,
            "AccessDenied",
            "The key is not the credential's UploadPath.",
        );
    }
    let content_type = Some(field("Content-Type")).filter(|c| !c.is_empty());
    let etag = fake
        .buckets
        .put(&fake.bucket, &key, content_type.as_deref(), &file.data);
    (StatusCode::NO_CONTENT, [("etag", etag)]).into_response()
}
