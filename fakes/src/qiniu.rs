//! A fake Qiniu Kodo upload host (`upload.qiniup.com`) for tests and local runs.
//!
//! `POST /` takes a form upload as Qiniu's form upload API does (`multipart/form-data`:
//! `token`, optional `key`, optional `x:{name}` variables, then `file`) and checks it with
//! this file's own code (never stsgate's `sign.rs` or `callback.rs`):
//!
//! - the upload token `AK:b64url(HMAC-SHA1(SK, encodedPutPolicy)):encodedPutPolicy` with the
//!   fake's key pair (401 `bad token`), its `deadline` (401 `expired token`);
//! - the put policy: `scope` (`bucket`, `bucket:key`, or `bucket:prefix` with
//!   `isPrefixalScope`; another bucket 631 `no such bucket`, another key 403
//!   `key doesn't match with scope`), `fsizeLimit` (413) and `fsizeMin` (403), `mimeLimit`
//!   (wildcards and the `!` deny list; 403 `limited mimeType`), `insertOnly` (and the
//!   create-only bare `bucket` scope; 614 `file exists`).
//!
//! An accepted file is stored in [`Buckets`] under the detected MIME type (the file's magic
//! number, else the part's `Content-Type`, else `application/octet-stream`). With a
//! `callbackUrl`, the fake then does what Qiniu does: expands the magic and custom
//! variables of `callbackBody` ([`expand_callback_body`]), POSTs it to the callback URL (`http`
//! only, each of several `;`-separated URLs in turn) as `callbackBodyType` with
//! `Authorization: QBox {AK}:{sign}` ([`qbox_authorization`]), and relays a 200 JSON answer
//! to the uploader; anything else is 579 (the file stays stored, as on Qiniu). Without a
//! callback the answer is `{"hash": etag, "key": key}`. Every error is Qiniu's
//! `{"error": "..."}` with Qiniu's status code; no error names a key or a token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::bucket::Buckets;
use crate::common::{self, now_unix};
use crate::multipart::parse_multipart;

/// How long the fake waits for a callback answer (Qiniu: about 5 s).
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

const FORM: &str = "application/x-www-form-urlencoded";

/// The largest form body the fake reads (axum's 2 MiB default would refuse before the
/// put policy's `fsizeLimit` could).
pub const MAX_FORM_BYTES: usize = 64 * 1024 * 1024;

/// One callback the fake sent, for assertions.
#[derive(Debug, Clone)]
pub struct CallbackSent {
    /// The callback URL.
    pub url: String,
    /// `callbackBodyType`.
    pub content_type: String,
    /// The expanded body.
    pub body: String,
    /// `QBox {AK}:{sign}`.
    pub authorization: String,
    /// The answer's HTTP status (0 when no answer came).
    pub status: u16,
    /// The answer's body.
    pub answer: String,
}

/// The fake upload host: one bucket, one key pair.
pub struct FakeQiniu {
    /// The AccessKey tokens must name.
    pub access_key: String,
    secret_key: String,
    /// The only bucket.
    pub bucket: String,
    /// What was uploaded.
    pub buckets: Buckets,
    callbacks: Mutex<Vec<CallbackSent>>,
    refusals: Mutex<Vec<(u16, String)>>,
    uploads: AtomicU64,
}

impl FakeQiniu {
    /// A fake accepting tokens signed with this key pair for `bucket`.
    pub fn new(access_key: &str, secret_key: &str, bucket: &str) -> Arc<Self> {
        Arc::new(FakeQiniu {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            bucket: bucket.into(),
            buckets: Buckets::default(),
            callbacks: Mutex::new(Vec::new()),
            refusals: Mutex::new(Vec::new()),
            uploads: AtomicU64::new(0),
        })
    }

    /// Serves `POST /` on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; returns the base URL.
    pub async fn start_on(self: &Arc<Self>, addr: &str) -> String {
        common::serve(
            addr,
            Router::new()
                .route("/", post(form_upload))
                .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
                .with_state(self.clone()),
        )
        .await
    }

    /// Callbacks sent so far, in order.
    pub fn callbacks(&self) -> Vec<CallbackSent> {
        self.callbacks.lock().unwrap().clone()
    }

    /// Uploads refused so far: (status, Qiniu's error text).
    pub fn refusals(&self) -> Vec<(u16, String)> {
        self.refusals.lock().unwrap().clone()
    }

    /// Uploads accepted and stored so far.
    pub fn uploads(&self) -> u64 {
        self.uploads.load(Ordering::SeqCst)
    }

    /// An upload token for `policy_json` signed with the fake's own key pair (for tests that
    /// need a token stsgate did not issue).
    pub fn upload_token(&self, policy_json: &str) -> String {
        upload_token(&self.access_key, &self.secret_key, policy_json)
    }
}

// ---- the fake's own Qiniu code (independent of stsgate's) ----

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// `b64url(HMAC-SHA1(secret_key, data))`, URL-safe alphabet with padding.
pub fn qiniu_sign(secret_key: &str, data: &[u8]) -> String {
    let mut m = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).unwrap();
    m.update(data);
    b64url(&m.finalize().into_bytes())
}

/// `AK:b64url(HMAC-SHA1(SK, b64url(policy))):b64url(policy)`.
pub fn upload_token(access_key: &str, secret_key: &str, policy_json: &str) -> String {
    let encoded = b64url(policy_json.as_bytes());
    format!(
        "{access_key}:{}:{encoded}",
        qiniu_sign(secret_key, encoded.as_bytes())
    )
}

/// Qiniu's `etag` (qetag): for up to 4 MiB, `b64url(0x16 ‖ SHA1(data))`; above,
/// `b64url(0x96 ‖ SHA1(SHA1(block₁) ‖ SHA1(block₂) ‖ …))` over 4 MiB blocks.
pub fn qetag(data: &[u8]) -> String {
    const BLOCK: usize = 4 * 1024 * 1024;
    let mut out = Vec::with_capacity(21);
    if data.len() <= BLOCK {
        out.push(0x16);
        out.extend_from_slice(&Sha1::digest(data));
    } else {
        let mut all = Vec::new();
        for block in data.chunks(BLOCK) {
            all.extend_from_slice(&Sha1::digest(block));
        }
        out.push(0x96);
        out.extend_from_slice(&Sha1::digest(&all));
    }
    b64url(&out)
}

/// `QBox {AK}:{b64url(HMAC-SHA1(SK, path[?query] "\n" [body]))}`, the body signed only for
/// `application/x-www-form-urlencoded` (the legacy callback form).
pub fn qbox_authorization(
    access_key: &str,
    secret_key: &str,
    path_and_query: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    let mut data = format!("{path_and_query}\n").into_bytes();
    if content_type == FORM {
        data.extend_from_slice(body);
    }
    format!("QBox {access_key}:{}", qiniu_sign(secret_key, &data))
}

/// A refusal: Qiniu's status code and error text.
pub type Refusal = (u16, String);

fn refuse(status: u16, error: &str) -> Refusal {
    (status, error.to_string())
}

/// Verifies an upload token as Qiniu does: our AccessKey, the signature over the encoded
/// policy, a JSON policy with `scope` and a `deadline` not yet passed at `now`. Answers the
/// policy.
pub fn verify_upload_token(
    access_key: &str,
    secret_key: &str,
    token: &str,
    now: i64,
) -> Result<Value, Refusal> {
    let bad = || refuse(401, "bad token");
    let mut parts = token.splitn(3, ':');
    let (ak, sign, encoded) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(s), Some(e)) => (a, s, e),
        _ => return Err(bad()),
    };
    if ak != access_key {
        return Err(bad());
    }
    let want = qiniu_sign(secret_key, encoded.as_bytes());
    // Constant-time enough for a fake, but no early exit on the first byte either.
    if sign.len() != want.len()
        || sign
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return Err(bad());
    }
    let json = base64::engine::general_purpose::URL_SAFE
        .decode(encoded)
        .map_err(|_| bad())?;
    let policy: Value = serde_json::from_slice(&json).map_err(|_| bad())?;
    if !policy["scope"].is_string() {
        return Err(bad());
    }
    let deadline = policy["deadline"].as_i64().ok_or_else(bad)?;
    if deadline < now {
        return Err(refuse(401, "expired token"));
    }
    Ok(policy)
}

/// Whether `mime` is allowed by a `mimeLimit` (`;`-separated, `type/*` wildcards, a leading
/// `!` turning the list into a deny list).
pub fn mime_allowed(mime_limit: &str, mime: &str) -> bool {
    let (deny, list) = match mime_limit.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, mime_limit),
    };
    let hit = list.split(';').map(str::trim).any(|want| {
        !want.is_empty()
            && match want.strip_suffix("/*") {
                Some(family) => mime.split('/').next() == Some(family),
                None => want.eq_ignore_ascii_case(mime),
            }
    });
    hit != deny
}

/// The MIME type Qiniu records: the file's magic number, else the part's `Content-Type`,
/// else `application/octet-stream`.
pub fn detect_mime(data: &[u8], part_type: Option<&str>) -> String {
    let sniffed = if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else if data.len() >= 8 && &data[4..8] == b"ftyp" {
        Some("video/mp4")
    } else if data.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    };
    sniffed
        .map(str::to_string)
        .or_else(|| {
            part_type
                .map(|t| {
                    t.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .filter(|t| !t.is_empty())
        })
        .unwrap_or_else(|| "application/octet-stream".into())
}

/// Checks the put policy against the upload (after the token): the scope's bucket and key,
/// the size bounds, the MIME limit. Answers whether the upload may only create (never
/// overwrite): `insertOnly`, or a bare `bucket` scope.
pub fn check_put_policy(
    policy: &Value,
    bucket: &str,
    key: &str,
    fsize: u64,
    mime: &str,
) -> Result<bool, Refusal> {
    let scope = policy["scope"].as_str().unwrap_or("");
    let (scope_bucket, scope_key) = match scope.split_once(':') {
        Some((b, k)) => (b, Some(k)),
        None => (scope, None),
    };
    if scope_bucket != bucket {
        return Err(refuse(631, "no such bucket"));
    }
    let prefixal = policy["isPrefixalScope"].as_i64().unwrap_or(0) != 0;
    if let Some(want) = scope_key {
        let ok = if prefixal {
            key.starts_with(want)
        } else {
            key == want
        };
        if !ok {
            return Err(refuse(403, "key doesn't match with scope"));
        }
    }
    if let Some(limit) = policy["fsizeLimit"].as_u64() {
        if fsize > limit {
            return Err(refuse(413, "exceed FsizeLimit"));
        }
    }
    if let Some(min) = policy["fsizeMin"].as_u64() {
        if fsize < min {
            return Err(refuse(403, "file size is smaller than fsizeMin"));
        }
    }
    if let Some(limit) = policy["mimeLimit"].as_str() {
        if !mime_allowed(limit, mime) {
            return Err(refuse(
                403,
                &format!("limited mimeType: this file type ({mime}) is forbidden to upload"),
            ));
        }
    }
    let insert_only = policy["insertOnly"].as_i64().unwrap_or(0) != 0;
    Ok(insert_only || (scope_key.is_none() && !prefixal))
}

/// The values of the magic variables for one upload.
#[derive(Debug, Clone, Default)]
pub struct UploadFacts {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub fsize: u64,
    pub mime_type: String,
    pub fname: String,
    pub end_user: String,
    pub body_sha1: String,
    /// The uploader's `x:{name}` fields (name with the `x:`).
    pub custom: Vec<(String, String)>,
}

/// Expands `$(name)` in `template` as Qiniu does: the magic variables `bucket`, `key`,
/// `etag`, `fsize`, `mimeType`, `fname`, `fprefix`, `ext`, `endUser`, `bodySha1`, `uuid`,
/// and custom `$(x:name)` from the form (absent ones empty; unknown names are left as they
/// are). Values are form-encoded for a form body and JSON-escaped for a JSON body.
pub fn expand_callback_body(template: &str, facts: &UploadFacts, body_type: &str) -> String {
    let json = body_type.starts_with("application/json");
    let encode = |v: &str| -> String {
        if json {
            let quoted = Value::String(v.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        } else {
            form_urlencoded::byte_serialize(v.as_bytes()).collect()
        }
    };
    let (fprefix, ext) = match facts.fname.rfind('.') {
        Some(i) => (&facts.fname[..i], &facts.fname[i..]),
        None => (facts.fname.as_str(), ""),
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        let value = match name {
            "bucket" => Some(facts.bucket.clone()),
            "key" => Some(facts.key.clone()),
            "etag" => Some(facts.etag.clone()),
            "fsize" => Some(facts.fsize.to_string()),
            "mimeType" => Some(facts.mime_type.clone()),
            "fname" => Some(facts.fname.clone()),
            "fprefix" => Some(fprefix.to_string()),
            "ext" => Some(ext.to_string()),
            "endUser" => Some(facts.end_user.clone()),
            "bodySha1" => Some(facts.body_sha1.clone()),
            "uuid" => Some(uuid::Uuid::new_v4().to_string()),
            n if n.starts_with("x:") => Some(
                facts
                    .custom
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&encode(&v)),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A minimal HTTP/1.1 `POST` over plain TCP (`http://` only): answers (status, body).
pub async fn http_post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// callback URLs are reachable from the fake")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: qiniu-callback-fake\r\n",
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        stream
            .write_all(body)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(CALLBACK_TIMEOUT, exchange)
        .await
        .map_err(|_| "callback timed out".to_string())??;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((n, v)) = line.split_once(':') {
            let (n, v) = (n.trim().to_ascii_lowercase(), v.trim());
            if n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if n == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let mut body = raw[head_end + 4..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = body[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("bad chunk")?
                + pos;
            let size = std::str::from_utf8(&body[pos..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or("bad chunk size")?;
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            out.extend_from_slice(body.get(start..start + size).ok_or("short chunk")?);
            pos = start + size + 2;
        }
        body = out;
    } else if let Some(n) = length {
        body.truncate(n);
    }
    Ok((status, body))
}

fn qiniu_error(status: u16, error: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-reqid", "fakeQiniuReqId"),
        ],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

impl FakeQiniu {
    fn refused(&self, (status, error): Refusal) -> Response {
        self.refusals.lock().unwrap().push((status, error.clone()));
        qiniu_error(status, &error)
    }

    /// Sends the callback to each URL in turn until one answers 200 with JSON; answers that
    /// JSON, or the 579 refusal.
    async fn call_back(&self, policy: &Value, facts: &UploadFacts) -> Result<Vec<u8>, Refusal> {
        let urls = policy["callbackUrl"].as_str().unwrap_or("");
        let body_type = policy["callbackBodyType"]
            .as_str()
            .filter(|t| !t.is_empty())
            .unwrap_or(FORM)
            .to_string();
        let body = expand_callback_body(
            policy["callbackBody"].as_str().unwrap_or(""),
            facts,
            &body_type,
        );
        let mut last = String::from("callback failed");
        for url in urls.split(';').map(str::trim).filter(|u| !u.is_empty()) {
            let path_and_query = url
                .split_once("://")
                .and_then(|(_, rest)| rest.find(['/', '?']).map(|i| &rest[i..]))
                .map(|p| {
                    if p.starts_with('?') {
                        format!("/{p}")
                    } else {
                        p.to_string()
                    }
                })
                .unwrap_or_else(|| "/".into());
            let authorization = qbox_authorization(
                &self.access_key,
                &self.secret_key,
                &path_and_query,
                &body_type,
                body.as_bytes(),
            );
            let answer = http_post(
                url,
                &[
                    ("Content-Type", &body_type),
                    ("Authorization", &authorization),
                ],
                body.as_bytes(),
            )
            .await;
            let (status, answer) = match answer {
                Ok(a) => a,
                Err(e) => {
                    last = format!("callback failed: {e}");
                    (0, Vec::new())
                }
            };
            self.callbacks.lock().unwrap().push(CallbackSent {
                url: url.to_string(),
                content_type: body_type.clone(),
                body: body.clone(),
                authorization,
                status,
                answer: String::from_utf8_lossy(&answer).into_owned(),
            });
            if status == 200 && serde_json::from_slice::<Value>(&answer).is_ok() {
                return Ok(answer);
            }
            if status != 0 {
                last = if status == 200 {
                    "callback failed: the answer is not JSON".into()
                } else {
                    format!("callback failed: HTTP {status}")
                };
            }
        }
        Err((579, last))
    }
}

/// `POST /`: a form upload.
async fn form_upload(
    State(fake): State<Arc<FakeQiniu>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(parts) = parse_multipart(ct, &body) else {
        return fake.refused(refuse(400, "invalid multipart format"));
    };
    let Some(file_at) = parts.iter().position(|p| p.name == "file") else {
        return fake.refused(refuse(400, "file is not specified in multipart"));
    };
    let file = &parts[file_at];
    let fields: Vec<(String, String)> = parts
        .iter()
        .filter(|p| p.name != "file")
        .map(|p| {
            (
                p.name.clone(),
                String::from_utf8_lossy(&p.data).into_owned(),
            )
        })
        .collect();
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let Some(token) = field("token") else {
        return fake.refused(refuse(401, "token not specified"));
    };
    let policy = match verify_upload_token(&fake.access_key, &fake.secret_key, token, now_unix()) {
        Ok(p) => p,
        Err(r) => return fake.refused(r),
    };
    let etag = qetag(&file.data);
    // No `key` field: the scope's exact key, else the file's hash (Qiniu's default).
    let key = match field("key") {
        Some(k) => k.to_string(),
        None => match policy["scope"].as_str().and_then(|s| s.split_once(':')) {
            Some((_, k)) if policy["isPrefixalScope"].as_i64().unwrap_or(0) == 0 => k.into(),
            _ => etag.clone(),
        },
    };
    fake.buckets.log("POST", &key);
    let mime = detect_mime(&file.data, file.content_type.as_deref());
    let size = file.data.len() as u64;
    let create_only = match check_put_policy(&policy, &fake.bucket, &key, size, &mime) {
        Ok(c) => c,
        Err(r) => return fake.refused(r),
    };
    if create_only && fake.buckets.get(&fake.bucket, &key).is_some() {
        return fake.refused(refuse(614, "file exists"));
    }
    fake.buckets
        .put(&fake.bucket, &key, Some(&mime), &file.data);
    fake.uploads.fetch_add(1, Ordering::SeqCst);
    if policy["callbackUrl"]
        .as_str()
        .is_some_and(|u| !u.is_empty())
    {
        let facts = UploadFacts {
            bucket: fake.bucket.clone(),
            key: key.clone(),
            etag: etag.clone(),
            fsize: size,
            mime_type: mime,
            fname: file.filename.clone().unwrap_or_default(),
            end_user: policy["endUser"].as_str().unwrap_or("").to_string(),
            body_sha1: hex::encode(Sha1::digest(&body)),
            custom: fields
                .iter()
                .filter(|(k, _)| k.starts_with("x:"))
                .cloned()
                .collect(),
        };
        return match fake.call_back(&policy, &facts).await {
            Ok(answer) => (
                StatusCode::OK,
                [
                    ("content-type", "application/json"),
                    ("x-reqid", "fakeQiniuReqId"),
                ],
                answer,
            )
                .into_response(),
            Err(r) => fake.refused(r),
        };
    }
    (
        StatusCode::OK,
        [("x-reqid", "fakeQiniuReqId")],
        axum::Json(json!({"hash": etag, "key": key})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multipart::multipart_body;

    const AK: &str = "AKfakeQiniuUnit0001";
    const SK: &str = "SKfakeQiniuUnit/+=secret0001";
    const BUCKET: &str = "fake-bucket";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRfake";

    fn policy(extra: Value) -> String {
        let mut p = json!({
            "scope": format!("{BUCKET}:a/b.png"),
            "deadline": now_unix() + 600,
            "insertOnly": 1,
            "fsizeLimit": 1024,
            "mimeLimit": "image/*",
        });
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p.to_string()
    }

    async fn upload(base: &str, fields: &[(&str, &str)], data: &[u8]) -> (u16, Value) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (ct, body) = multipart_body(&fields, "b.png", "image/png", data);
        let (status, answer) = http_post(base, &[("Content-Type", &ct)], &body)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        )
    }

    #[test]
    fn token_matches_a_known_vector() {
        // From tests/vectors/qiniu/qiniu_upload_token.json shape: recomputed independently
        // with Python's hmac/base64 for this policy.
        let token = upload_token("AK", "SK", "{\"scope\":\"b\",\"deadline\":1}");
        assert_eq!(
            token.split(':').nth(2).unwrap(),
            "eyJzY29wZSI6ImIiLCJkZWFkbGluZSI6MX0="
        );
        let policy = verify_upload_token("AK", "SK", &token, 0).unwrap();
        assert_eq!(policy["scope"], "b");
        assert_eq!(
            verify_upload_token("AK", "SK", &token, 2),
            Err((401, "expired token".into()))
        );
    }

    // Every single-byte change anywhere in a valid token is refused with 401.
    #[test]
    fn one_byte_change_of_the_token_is_refused() {
        let token = upload_token(AK, SK, &policy(json!({})));
        let now = now_unix();
        assert!(verify_upload_token(AK, SK, &token, now).is_ok());
        let mut tried = 0;
        for i in 0..token.len() {
            for c in [b'A', b'z', b'-', b':'] {
                if token.as_bytes()[i] == c {
                    continue;
                }
                let mut altered = token.as_bytes().to_vec();
                altered[i] = c;
                let altered = String::from_utf8(altered).unwrap();
                let verdict = verify_upload_token(AK, SK, &altered, now);
                assert_eq!(verdict.map(|_| ()), Err((401, "bad token".into())), "{i}");
                tried += 1;
            }
        }
        assert!(tried > 3 * token.len());
        assert!(verify_upload_token(AK, "other-secret", &token, now).is_err());
    }

    #[test]
    fn qetag_of_small_and_empty_data() {
        // Qiniu's documented etag of the empty file.
        assert_eq!(qetag(b""), "Fto5o-5ea0sNMlW_75VgGJCv2AcJ");
        let big = vec![7u8; 4 * 1024 * 1024 + 1];
        assert!(qetag(&big).starts_with('l'), "0x96 prefix");
    }

    #[test]
    fn put_policy_scope_size_and_mime() {
        let p: Value = serde_json::from_str(&policy(json!({}))).unwrap();
        assert_eq!(
            check_put_policy(&p, BUCKET, "a/b.png", 10, "image/png"),
            Ok(true)
        );
        assert_eq!(
            check_put_policy(&p, BUCKET, "a/c.png", 10, "image/png"),
            Err((403, "key doesn't match with scope".into()))
        );
        assert_eq!(
            check_put_policy(&p, "other", "a/b.png", 10, "image/png")
                .unwrap_err()
                .0,
            631
        );
        assert_eq!(
            check_put_policy(&p, BUCKET, "a/b.png", 1025, "image/png")
                .unwrap_err()
                .0,
            413
        );
        assert_eq!(
            check_put_policy(&p, BUCKET, "a/b.png", 10, "text/plain")
                .unwrap_err()
                .0,
            403
        );
        let dir: Value =
            json!({"scope": format!("{BUCKET}:d/"), "deadline": 1, "isPrefixalScope": 1});
        assert_eq!(
            check_put_policy(&dir, BUCKET, "d/x.mp4", 1, "video/mp4"),
            Ok(false)
        );
        assert!(check_put_policy(&dir, BUCKET, "e/x.mp4", 1, "video/mp4").is_err());
        let bare: Value = json!({"scope": BUCKET, "deadline": 1});
        assert_eq!(check_put_policy(&bare, BUCKET, "any", 1, "a/b"), Ok(true));
        assert!(mime_allowed("!text/plain;application/json", "image/png"));
        assert!(!mime_allowed("!text/plain;application/json", "text/plain"));
        assert!(mime_allowed("image/png;image/jpeg", "image/jpeg"));
        assert!(!mime_allowed("video/*", "image/png"));
    }

    #[test]
    fn callback_body_expands_magic_and_custom_variables() {
        let facts = UploadFacts {
            bucket: "b".into(),
            key: "a/b c.png".into(),
            etag: "Fetag".into(),
            fsize: 12,
            mime_type: "image/png".into(),
            fname: "b c.png".into(),
            custom: vec![("x:uid".into(), "4&2".into())],
            ..UploadFacts::default()
        };
        assert_eq!(
            expand_callback_body(
                "objectId=7&bucket=$(bucket)&object=$(key)&size=$(fsize)&mimeType=$(mimeType)&etag=$(etag)&u=$(x:uid)&n=$(x:none)&e=$(ext)&z=$(unknown)",
                &facts,
                FORM
            ),
            "objectId=7&bucket=b&object=a%2Fb+c.png&size=12&mimeType=image%2Fpng&etag=Fetag&u=4%262&n=&e=.png&z=$(unknown)"
        );
        assert_eq!(
            expand_callback_body(
                "{\"key\":\"$(key)\",\"fsize\":$(fsize)}",
                &facts,
                "application/json"
            ),
            "{\"key\":\"a/b c.png\",\"fsize\":12}"
        );
    }

    #[tokio::test]
    async fn form_upload_stores_refuses_and_never_overwrites() {
        let fake = FakeQiniu::new(AK, SK, BUCKET);
        let base = fake.start().await;
        let token = fake.upload_token(&policy(json!({})));
        // A one-byte change of the token: 401, nothing stored.
        let mut forged = token.clone().into_bytes();
        let i = forged.len() - 5;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        let (status, answer) = upload(&base, &[("key", "a/b.png"), ("token", &forged)], PNG).await;
        assert_eq!((status, answer), (401, json!({"error": "bad token"})));
        assert!(fake.buckets.objects().is_empty());
        // Wrong key, too big, wrong type.
        let (status, _) = upload(&base, &[("key", "a/c.png"), ("token", &token)], PNG).await;
        assert_eq!(status, 403);
        let (status, _) = upload(
            &base,
            &[("key", "a/b.png"), ("token", &token)],
            &[0u8; 1025],
        )
        .await;
        assert_eq!(status, 413);
        let (status, answer) =
            upload(&base, &[("key", "a/b.png"), ("token", &token)], b"%PDF-1.4").await;
        assert_eq!(status, 403, "{answer}");
        assert!(fake.buckets.objects().is_empty());
        // The genuine upload.
        let (status, answer) = upload(&base, &[("key", "a/b.png"), ("token", &token)], PNG).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"hash": qetag(PNG), "key": "a/b.png"}));
        let o = fake.buckets.get(BUCKET, "a/b.png").unwrap();
        assert_eq!(
            (o.data.as_slice(), o.content_type.as_deref()),
            (PNG, Some("image/png"))
        );
        // insertOnly: the second upload is refused.
        let (status, answer) = upload(&base, &[("key", "a/b.png"), ("token", &token)], PNG).await;
        assert_eq!((status, answer), (614, json!({"error": "file exists"})));
        assert_eq!(fake.uploads(), 1);
        assert_eq!(fake.refusals().len(), 5);
        // No secret in any refusal.
        for (_, e) in fake.refusals() {
            assert!(!e.contains(SK) && !e.contains(&token), "{e}");
        }
    }

    /// What the callback receiver saw: (Authorization, body).
    type Seen = Arc<Mutex<Vec<(String, String)>>>;

    #[tokio::test]
    async fn callback_is_qbox_signed_and_its_answer_relayed() {
        // A callback receiver checking the QBox header with this test's own arithmetic.
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/cb",
                post(
                    |State(seen): State<Seen>,
                     uri: axum::http::Uri,
                     headers: HeaderMap,
                     body: String| async move {
                        let auth = headers["authorization"].to_str().unwrap().to_string();
                        seen.lock().unwrap().push((auth.clone(), body.clone()));
                        let data = format!("{}\n{body}", uri);
                        let want = format!("QBox {AK}:{}", qiniu_sign(SK, data.as_bytes()));
                        if auth == want && headers["content-type"] == FORM {
                            (StatusCode::OK, axum::Json(json!({"ok": body}))).into_response()
                        } else {
                            (StatusCode::UNAUTHORIZED, "no").into_response()
                        }
                    },
                ),
            )
            .with_state(seen.clone());
        let receiver = common::serve("127.0.0.1:0", app).await;
        let fake = FakeQiniu::new(AK, SK, BUCKET);
        let base = fake.start().await;
        let token = fake.upload_token(&policy(json!({
            "callbackUrl": format!("{receiver}/cb?src=qiniu"),
            "callbackBody": "bucket=$(bucket)&object=$(key)&size=$(fsize)&mimeType=$(mimeType)&etag=$(etag)",
            "callbackBodyType": FORM,
        })));
        let (status, answer) = upload(&base, &[("key", "a/b.png"), ("token", &token)], PNG).await;
        let body = format!(
            "bucket={BUCKET}&object=a%2Fb.png&size={}&mimeType=image%2Fpng&etag={}",
            PNG.len(),
            qetag(PNG)
        );
        assert_eq!((status, answer), (200, json!({"ok": body})));
        assert_eq!(seen.lock().unwrap().len(), 1);
        let sent = fake.callbacks();
        assert_eq!((sent.len(), sent[0].status), (1, 200));
        // A callback that fails: 579, the file stays stored (as on Qiniu).
        let token = fake.upload_token(&policy(json!({
            "scope": format!("{BUCKET}:a/c.png"),
            "callbackUrl": format!("{receiver}/missing"),
            "callbackBody": "k=$(key)",
        })));
        let (status, answer) = upload(&base, &[("key", "a/c.png"), ("token", &token)], PNG).await;
        assert_eq!(status, 579, "{answer}");
        assert_eq!(answer["error"], "callback failed: HTTP 404");
        assert!(fake.buckets.get(BUCKET, "a/c.png").is_some());
    }
}
