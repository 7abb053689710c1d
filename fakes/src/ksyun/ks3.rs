//! A fake KS3 bucket service, addressed as KS3 addresses buckets: the bucket is the first
//! label of the `Host` header (`{bucket}.{endpoint host}`), the object key the path.
//!
//! Every request is checked with the fake's own KS3 "V2" code below (its own string to sign
//! over `hmac`/`sha1`, its own key encoding; never stsgate's `sign.rs`):
//!
//! - `PUT /{key}?Signature&Expires&KSSAccessKeyId`: a presigned upload with a credential the
//!   fake STS issued: the signature with that credential's secret, its token as the
//!   `x-kss-security-token` header (signed), the URL and the credential not expired, the
//!   `Content-Type` as signed, and the credential's session policy allowing `ks3:PutObject`
//!   on the key;
//! - `POST /` (multipart form): the browser form signed with the long-term key
//!   (`Signature = b64(HMAC-SHA1(SK, Policy))`) and every policy condition
//!   ([`crate::common::check_policy`]: bucket, key, `content-length-range`, Content-Type,
//!   every field covered, not expired);
//! - `HEAD`/`DELETE /{key}` with `Authorization: KSS {AK}:{Signature}` and `Date` (within 15
//!   minutes) signed with the long-term key: stsgate's own confirmation and clean-up.
//!
//! Errors are KS3's XML `<Error><Code>…</Code><Message>…</Message>…</Error>`. Storage, the
//! object-request log, the HEAD/DELETE failure script and the HEAD answer are the shared
//! [`Buckets`].

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::{FakeKsyunSts, IssuedCred};
use crate::bucket::Buckets;
use crate::common::{self, now_unix, PostForm};
use crate::multipart::parse_multipart;

/// Fields of a KS3 form that need no policy condition (besides `file` and `x-ignore-*`).
const FORM_EXEMPT: &[&str] = &["KSSAccessKeyId", "Policy", "Signature"];

/// The token header of a temporary credential.
pub const TOKEN_HEADER: &str = "x-kss-security-token";

/// Shared state of the fake bucket service.
pub struct FakeKs3 {
    /// The STS whose issued credentials may presign, and whose long-term key signs forms,
    /// `HEAD` and `DELETE`.
    pub sts: Arc<FakeKsyunSts>,
    /// The one bucket that exists.
    pub bucket: String,
    /// Objects, object-request log, HEAD/DELETE failure script.
    pub buckets: Buckets,
    refusals: Mutex<Vec<String>>,
}

impl FakeKs3 {
    /// A bucket service for `bucket`, trusting what `sts` issued.
    pub fn new(sts: &Arc<FakeKsyunSts>, bucket: &str) -> Arc<Self> {
        Arc::new(FakeKs3 {
            sts: sts.clone(),
            bucket: bucket.into(),
            buckets: Buckets::default(),
            refusals: Mutex::new(Vec::new()),
        })
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the base URL.
    pub async fn start(self: &Arc<Self>) -> String {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; returns the base URL.
    pub async fn start_on(self: &Arc<Self>, addr: &str) -> String {
        let app = Router::new()
            .fallback(handle)
            .layer(axum::middleware::map_response(cors))
            .with_state(self.clone());
        common::serve(addr, app).await
    }

    /// KS3 error codes answered so far.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }

    fn error(&self, status: u16, code: &str, message: &str, resource: &str) -> Response {
        self.refusals.lock().unwrap().push(code.to_string());
        error_xml(status, code, message, resource)
    }
}

/// A CORS rule allowing any origin to read the answers (and `ETag`), as a bucket configured
/// for browser uploads has.
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

/// KS3's error body.
pub fn error_xml(status: u16, code: &str, message: &str, resource: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        xml_escape(message),
        xml_escape(resource),
        uuid::Uuid::new_v4().simple()
    );
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/xml")],
        body,
    )
        .into_response()
}

// ---- the fake's own KS3 V2 (independent of stsgate's sign.rs) ----

/// Characters a KS3 resource keeps in a key: RFC 3986 unreserved and `/`.
const RESOURCE_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `CanonicalizedResource = /{bucket}/{key, UTF-8 percent-encoded}` (`//` as `/%2F`).
pub fn resource(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", utf8_percent_encode(key, RESOURCE_KEEP)).replace("//", "/%2F")
}

/// `StringToSign = VERB \n Content-MD5 \n Content-Type \n Date|Expires \n
/// CanonicalizedKssHeaders CanonicalizedResource`, the `x-kss-` headers lower-case, sorted,
/// `name:value\n` each.
pub fn string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    when: &str,
    headers: &HeaderMap,
    resource: &str,
) -> String {
    let mut kss: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-kss-"))
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    kss.sort();
    let mut s = format!("{method}\n{content_md5}\n{content_type}\n{when}\n");
    for (n, v) in kss {
        s.push_str(&n);
        s.push(':');
        s.push_str(&v);
        s.push('\n');
    }
    s + resource
}

/// `b64(HMAC-SHA1(secret, text))`.
pub fn sign(secret: &str, text: &str) -> String {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// An RFC 1123 date (`Thu, 01 Jan 2026 00:00:00 GMT`) as Unix seconds.
pub fn parse_http_date(d: &str) -> Option<i64> {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    Some(
        time::PrimitiveDateTime::parse(d, &f)
            .ok()?
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Whether a KSyun session policy allows `action` on `krn` (an `Allow` statement listing the
/// action, with the resource exact or a trailing-`*` prefix of it).
pub fn session_policy_allows(policy: &str, action: &str, krn: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    doc["Statement"].as_array().is_some_and(|stmts| {
        stmts.iter().any(|st| {
            st["Effect"] == "Allow"
                && list(&st["Action"]).iter().any(|a| a == action)
                && list(&st["Resource"])
                    .iter()
                    .any(|r| match r.strip_suffix('*') {
                        Some(prefix) => krn.starts_with(prefix),
                        None => r == krn,
                    })
        })
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The bucket named by the `Host` header (its first label).
fn host_bucket(headers: &HeaderMap) -> String {
    let host = header(headers, "host");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.split('.').next().unwrap_or("").to_string()
}

async fn handle(
    State(fake): State<Arc<FakeKs3>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bucket = host_bucket(&headers);
    let key = String::from_utf8_lossy(
        &percent_decode_str(uri.path().trim_start_matches('/')).collect::<Vec<u8>>(),
    )
    .into_owned();
    let res = resource(&bucket, &key);
    if method == Method::OPTIONS {
        return preflight(&headers);
    }
    if bucket != fake.bucket {
        return fake.error(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist.",
            &res,
        );
    }
    match method.as_str() {
        "PUT" if !key.is_empty() => presigned_put(&fake, &bucket, &key, &uri, &headers, &body),
        "POST" if key.is_empty() => form_post(&fake, &bucket, &headers, &body),
        "HEAD" | "DELETE" if !key.is_empty() => {
            object_request(&fake, &method, &bucket, &key, &headers).await
        }
        _ => fake.error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            &res,
        ),
    }
}

/// The answer to a CORS preflight: PUT and POST from any origin with the asked headers.
fn preflight(headers: &HeaderMap) -> Response {
    let asked = headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("content-type"));
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.insert("access-control-allow-methods", "PUT, POST".parse().unwrap());
    h.insert("access-control-allow-headers", asked);
    h.insert("access-control-max-age", "600".parse().unwrap());
    res
}

/// Checks a presigned `PUT`; `Err` is (status, code, message).
pub fn check_presigned_put(
    fake: &FakeKs3,
    bucket: &str,
    key: &str,
    raw_query: &str,
    headers: &HeaderMap,
) -> Result<IssuedCred, (u16, &'static str, &'static str)> {
    let q: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(ak), Some(expires), Some(sig)) =
        (get("KSSAccessKeyId"), get("Expires"), get("Signature"))
    else {
        return Err((403, "AccessDenied", "Anonymous access is forbidden."));
    };
    let Some(cred) = fake
        .sts
        .issued()
        .into_iter()
        .find(|c| c.access_key_id == ak)
    else {
        return Err((
            403,
            "InvalidAccessKeyId",
            "The access key Id you provided does not exist in our records.",
        ));
    };
    if header(headers, TOKEN_HEADER) != cred.security_token {
        return Err((
            403,
            "InvalidSecurityToken",
            "The security token is missing or does not match the access key.",
        ));
    }
    let want = sign(
        &cred.secret_access_key,
        &string_to_sign(
            "PUT",
            header(headers, "content-md5"),
            header(headers, "content-type"),
            expires,
            headers,
            &resource(bucket, key),
        ),
    );
    if want != sig {
        return Err((
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let now = now_unix();
    match expires.parse::<i64>() {
        Ok(e) if e >= now => {}
        _ => return Err((403, "RequestExpired", "Request has expired.")),
    }
    if cred.expiration_unix <= now {
        return Err((400, "ExpiredToken", "The provided token has expired."));
    }
    let krn = format!("krn:ksc:ks3:::{bucket}/{key}");
    if let Some(policy) = &cred.policy {
        if !session_policy_allows(policy, "ks3:PutObject", &krn) {
            return Err((403, "AccessDenied", "Access Denied (session policy)."));
        }
    }
    Ok(cred)
}

fn presigned_put(
    fake: &FakeKs3,
    bucket: &str,
    key: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    fake.buckets.log("PUT", key);
    if let Err((status, code, message)) =
        check_presigned_put(fake, bucket, key, uri.query().unwrap_or(""), headers)
    {
        return fake.error(status, code, message, &resource(bucket, key));
    }
    let content_type = Some(header(headers, "content-type")).filter(|c| !c.is_empty());
    let etag = fake.buckets.put(bucket, key, content_type, body);
    (StatusCode::OK, [("etag", etag)]).into_response()
}

/// Checks a browser form's fields (before the file, `${filename}` already expanded) as KS3
/// would: `KSSAccessKeyId` is the long-term key, `Signature = b64(HMAC-SHA1(SK, Policy))`, and
/// every policy condition holds.
pub fn check_form(
    fake: &FakeKs3,
    bucket: &str,
    fields: &[(String, String)],
    file_size: u64,
) -> Result<(), (u16, &'static str, String)> {
    let form = PostForm {
        fields,
        file_size,
        exempt: FORM_EXEMPT,
        star_wildcard: false,
    };
    if form.get("KSSAccessKeyId") != Some(fake.sts.access_key_id.as_str()) {
        return Err((
            403,
            "InvalidAccessKeyId",
            "The access key Id you provided does not exist in our records.".into(),
        ));
    }
    let policy = form.get("Policy").unwrap_or("");
    if form.get("Signature") != Some(sign(&fake.sts.secret_access_key, policy).as_str()) {
        return Err((
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.".into(),
        ));
    }
    common::check_policy(&form, bucket).map_err(|e| {
        if e.contains("outside") {
            (400, "EntityTooLarge", e)
        } else {
            (
                403,
                "AccessDenied",
                format!("Invalid according to Policy: {e}"),
            )
        }
    })
}

fn form_post(fake: &FakeKs3, bucket: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let at = format!("/{bucket}/");
    let Some(parts) = parse_multipart(header(headers, "content-type"), body) else {
        return fake.error(
            400,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
            &at,
        );
    };
    let Some(file_at) = parts.iter().position(|p| p.name == "file") else {
        return fake.error(
            400,
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
            &at,
        );
    };
    let file = &parts[file_at];
    let filename = file.filename.clone().unwrap_or_default();
    // Fields after the file are ignored, as KS3 does.
    let fields: Vec<(String, String)> = parts[..file_at]
        .iter()
        .map(|p| {
            let v = String::from_utf8_lossy(&p.data).into_owned();
            if p.name == "key" {
                (p.name.clone(), v.replace("${filename}", &filename))
            } else {
                (p.name.clone(), v)
            }
        })
        .collect();
    let Some(key) = fields
        .iter()
        .find(|(n, _)| n == "key")
        .map(|(_, v)| v.clone())
    else {
        return fake.error(
            400,
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.",
            &at,
        );
    };
    fake.buckets.log("POST", &key);
    if let Err((status, code, message)) = check_form(fake, bucket, &fields, file.data.len() as u64)
    {
        return fake.error(status, code, &message, &resource(bucket, &key));
    }
    let content_type = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .or(file.content_type.clone());
    let etag = fake
        .buckets
        .put(bucket, &key, content_type.as_deref(), &file.data);
    (StatusCode::NO_CONTENT, [("etag", etag)]).into_response()
}

/// Checks a `HEAD`/`DELETE` signed with the long-term key; `Err` is (status, code).
pub fn check_object_request(
    fake: &FakeKs3,
    method: &str,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
) -> Result<(), (u16, &'static str)> {
    let auth = header(headers, "authorization");
    let Some((ak, sig)) = auth
        .strip_prefix("KSS ")
        .and_then(|rest| rest.split_once(':'))
    else {
        return Err((403, "AccessDenied"));
    };
    if ak != fake.sts.access_key_id {
        return Err((403, "InvalidAccessKeyId"));
    }
    let date = header(headers, "date");
    let t = parse_http_date(date).ok_or((403, "AccessDenied"))?;
    if (now_unix() - t).abs() > 900 {
        return Err((403, "RequestTimeTooSkewed"));
    }
    let want = sign(
        &fake.sts.secret_access_key,
        &string_to_sign(
            method,
            header(headers, "content-md5"),
            header(headers, "content-type"),
            date,
            headers,
            &resource(bucket, key),
        ),
    );
    if want != sig {
        return Err((403, "SignatureDoesNotMatch"));
    }
    Ok(())
}

async fn object_request(
    fake: &FakeKs3,
    method: &Method,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
) -> Response {
    fake.buckets.log(method.as_str(), key);
    let res = resource(bucket, key);
    if let Err((status, code)) = check_object_request(fake, method.as_str(), bucket, key, headers) {
        // A HEAD answer has no body; the code is still recorded.
        return fake.error(status, code, "The request signature was refused.", &res);
    }
    if let Some(answer) = fake
        .buckets
        .scripted(method.as_str(), |status, code| {
            fake.error(status, code, "fake failure", &res)
        })
        .await
    {
        return answer;
    }
    if method == Method::DELETE {
        fake.buckets.delete(bucket, key);
        return StatusCode::NO_CONTENT.into_response();
    }
    fake.buckets
        .head(bucket, key)
        .unwrap_or_else(|| fake.error(404, "NoSuchKey", "The specified key does not exist.", &res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_dates() {
        assert_eq!(resource("b", "a b+c/资"), "/b/a%20b%2Bc/%E8%B5%84");
        assert_eq!(
            parse_http_date("Thu, 01 Jan 2026 00:00:00 GMT"),
            Some(1_767_225_600)
        );
        assert_eq!(parse_http_date("2026-01-01"), None);
    }

    #[test]
    fn session_policies() {
        let p = r#"{"Version":"2015-11-01","Statement":[{"Effect":"Allow","Action":["ks3:PutObject"],"Resource":["krn:ksc:ks3:::b/dir/*"]}]}"#;
        assert!(session_policy_allows(
            p,
            "ks3:PutObject",
            "krn:ksc:ks3:::b/dir/x.png"
        ));
        assert!(!session_policy_allows(
            p,
            "ks3:PutObject",
            "krn:ksc:ks3:::b/other.png"
        ));
        assert!(!session_policy_allows(
            p,
            "ks3:DeleteObject",
            "krn:ksc:ks3:::b/dir/x.png"
        ));
    }

    /// A presigned PUT the fake signed itself passes; one byte of its signature changed, or
    /// another key in the URL, is refused.
    #[test]
    fn a_one_byte_change_is_refused() {
        let sts = FakeKsyunSts::new("AKLT", "longSK", "r", "krn:ksc:iam::1:role/r");
        let cred = IssuedCred {
            access_key_id: "AKTP1".into(),
            secret_access_key: "tmpSK".into(),
            security_token: "tok".into(),
            expiration: String::new(),
            expiration_unix: now_unix() + 600,
            policy: None,
        };
        sts.issued.lock().unwrap().push(cred);
        let fake = FakeKs3::new(&sts, "b");
        let expires = (now_unix() + 300).to_string();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "image/png".parse().unwrap());
        headers.insert(TOKEN_HEADER, "tok".parse().unwrap());
        let sig = sign(
            "tmpSK",
            &string_to_sign(
                "PUT",
                "",
                "image/png",
                &expires,
                &headers,
                &resource("b", "k/a b.png"),
            ),
        );
        let query = |sig: &str| {
            format!(
                "Signature={}&Expires={expires}&KSSAccessKeyId=AKTP1",
                utf8_percent_encode(sig, NON_ALPHANUMERIC)
            )
        };
        assert!(check_presigned_put(&fake, "b", "k/a b.png", &query(&sig), &headers).is_ok());
        let mut bad = sig.clone().into_bytes();
        bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            check_presigned_put(&fake, "b", "k/a b.png", &query(&bad), &headers)
                .unwrap_err()
                .1,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            check_presigned_put(&fake, "b", "k/a c.png", &query(&sig), &headers)
                .unwrap_err()
                .1,
            "SignatureDoesNotMatch"
        );
        let mut other_type = headers.clone();
        other_type.insert("content-type", "text/html".parse().unwrap());
        assert_eq!(
            check_presigned_put(&fake, "b", "k/a b.png", &query(&sig), &other_type)
                .unwrap_err()
                .1,
            "SignatureDoesNotMatch"
        );
        let mut no_token = headers.clone();
        no_token.remove(TOKEN_HEADER);
        assert_eq!(
            check_presigned_put(&fake, "b", "k/a b.png", &query(&sig), &no_token)
                .unwrap_err()
                .1,
            "InvalidSecurityToken"
        );
    }
}
