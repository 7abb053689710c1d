//! The fake OBS bucket, on the fake IAM's port.
//!
//! It checks every request with its own code (never stsgate's `sign.rs`), as OBS does with
//! the OBS (V2) signature:
//!
//! * a presigned `PUT` (`?x-obs-security-token=..&Expires=..&AccessKeyId=..&Signature=..`):
//!   the access key and token are a credential issued here, neither the URL nor the
//!   credential has expired (nor does the URL outlive it), `Signature` is
//!   `base64(HMAC-SHA1(temporary SK, StringToSign))` over the `Content-Type` actually sent,
//!   and the credential's session policy allows `obs:object:PutObject` on the key;
//! * a browser `POST` form (multipart): [`FakeIam::check_form`] (signature, token, every
//!   policy condition, `content-length-range`) and the session policy;
//! * stsgate's `HEAD`/`DELETE`: `Authorization: OBS {AK}:{signature}` with the long-term key
//!   over `METHOD\n{Content-MD5}\n{Content-Type}\n{Date}\n{x-obs- headers}/{bucket}/{key}`,
//!   the `Date` within 15 minutes.
//!
//! Errors are OBS's XML `<Error><Code>..</Code><Message>..</Message>..</Error>` (with
//! `x-obs-error-code`). Storage, the request log and the HEAD/DELETE failure script are
//! [`crate::bucket::Buckets`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;

use super::{FakeIam, IssuedCred};
use crate::common::{now_unix, unescape};
use crate::multipart::parse_multipart;

/// `StringToSign` of the OBS signature: method, `Content-MD5`, `Content-Type`, the date (or
/// `Expires`), the `x-obs-` headers (`lower(name):value\n`, sorted) and the resource.
pub fn string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    obs_headers: &[(String, String)],
    resource: &str,
) -> String {
    let mut headers: Vec<(String, String)> = obs_headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n.starts_with("x-obs-"))
        .collect();
    headers.sort();
    let mut out = format!("{method}\n{content_md5}\n{content_type}\n{date}\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}:{v}\n"));
    }
    out.push_str(resource);
    out
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `/{bucket}/{key as sent}` resource, then the `x-obs-` query parameters (decoded
/// values, sorted by name).
pub fn resource(bucket: &str, raw_key: &str, query: &[(String, String)]) -> String {
    let mut out = format!("/{bucket}/{raw_key}");
    let mut sub: Vec<&(String, String)> = query
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-obs-"))
        .collect();
    sub.sort();
    if !sub.is_empty() {
        out.push('?');
        out.push_str(
            &sub.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    out
}

/// Query pairs with percent-decoded values (`+` stays `+`, as OBS reads it).
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&unescape(k)).into_owned(),
                String::from_utf8_lossy(&unescape(v)).into_owned(),
            )
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An OBS error answer (the code is also recorded).
pub fn obs_error(fake: &FakeIam, status: u16, code: &str, message: &str) -> Response {
    fake.obs_refusals.lock().unwrap().push(code.to_string());
    let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>{id}</RequestId><HostId>fake-obs</HostId></Error>",
        xml_escape(message)
    );
    (
        StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/xml".to_string()),
            ("x-obs-request-id", id.clone()),
            ("x-obs-error-code", code.to_string()),
        ],
        body,
    )
        .into_response()
}

/// (bucket, key as sent in the path) from `Host` and the path: virtual-host style
/// (`{bucket}.{host}`), or path style (`/{bucket}/{key}`) when the host is an IP address or
/// `localhost`.
fn address(headers: &HeaderMap, uri: &Uri) -> Option<(String, String)> {
    let host = headers.get("host")?.to_str().ok()?;
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let path = uri.path().trim_start_matches('/');
    if name == "localhost" || name.parse::<std::net::IpAddr>().is_ok() || name.starts_with('[') {
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        Some((bucket.to_string(), key.to_string()))
    } else {
        let (bucket, _) = name.split_once('.')?;
        Some((bucket.to_string(), path.to_string()))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn obs_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-obs-"))
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

/// Unix seconds of an IAM `expires_at` (`2025-01-01T01:00:00.123000Z`).
fn expires_at(cred: &IssuedCred) -> i64 {
    time::OffsetDateTime::parse(
        &cred.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.unix_timestamp())
    .unwrap_or(0)
}

/// Whether a session policy (IAM `policy`, version 1.1) allows `action` on `resource`
/// (`OBS:*:*:object:{bucket}/{key}`; a trailing `*` in the policy is a prefix).
pub fn policy_allows(policy: &Value, action: &str, resource: &str) -> bool {
    let Some(statements) = policy["Statement"].as_array() else {
        return false;
    };
    statements.iter().any(|st| {
        st["Effect"] == "Allow"
            && st["Action"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == action || x == "obs:object:*"))
            && st["Resource"].as_array().is_some_and(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .any(|r| match r.strip_suffix('*') {
                        Some(prefix) => resource.starts_with(prefix),
                        None => r == resource,
                    })
            })
    })
}

/// Checks a presigned `PUT` (see the module docs); `Err` is (status, code, message).
pub fn verify_presigned_put(
    fake: &FakeIam,
    bucket: &str,
    raw_key: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<IssuedCred, (u16, &'static str, &'static str)> {
    let pairs = query_pairs(query);
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let (Some(ak), Some(expires), Some(sig)) =
        (get("AccessKeyId"), get("Expires"), get("Signature"))
    else {
        return Err((403, "AccessDenied", "Anonymous access is forbidden."));
    };
    let Some(cred) = fake.script.issued().into_iter().find(|c| c.access == ak) else {
        return Err((
            403,
            "InvalidAccessKeyId",
            "The access key Id does not exist.",
        ));
    };
    if get("x-obs-security-token") != Some(cred.token.as_str()) {
        return Err((
            403,
            "InvalidSecurityToken",
            "The security token is invalid.",
        ));
    }
    let expires_unix: i64 = expires
        .parse()
        .map_err(|_| (403, "AccessDenied", "Invalid Expires."))?;
    let now = now_unix();
    if expires_unix < now {
        return Err((403, "AccessDenied", "Request has expired."));
    }
    let cred_expiry = expires_at(&cred);
    if cred_expiry <= now {
        return Err((400, "ExpiredToken", "The security token has expired."));
    }
    if expires_unix > cred_expiry {
        // Stricter than OBS: a URL must not promise more than its credential.
        return Err((403, "AccessDenied", "Expires is after the token's expiry."));
    }
    let sts = string_to_sign(
        "PUT",
        header(headers, "content-md5"),
        header(headers, "content-type"),
        expires,
        &obs_headers(headers),
        &resource(bucket, raw_key, &pairs),
    );
    if signature(&cred.secret, &sts) != sig {
        return Err((
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(cred)
}

/// Checks stsgate's long-term-key `HEAD`/`DELETE` (see the module docs).
pub fn verify_header(
    fake: &FakeIam,
    method: &str,
    bucket: &str,
    raw_key: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), (u16, &'static str, &'static str)> {
    if query.is_some_and(|q| !q.is_empty()) {
        return Err((400, "InvalidArgument", "Unexpected query."));
    }
    let auth = header(headers, "authorization");
    let Some((ak, sig)) = auth
        .strip_prefix("OBS ")
        .and_then(|rest| rest.split_once(':'))
    else {
        return Err((403, "AccessDenied", "Anonymous access is forbidden."));
    };
    if ak != fake.access_key {
        return Err((
            403,
            "InvalidAccessKeyId",
            "The access key Id does not exist.",
        ));
    }
    let date_header = if headers.contains_key("x-obs-date") {
        header(headers, "x-obs-date")
    } else {
        header(headers, "date")
    };
    let when = time::PrimitiveDateTime::parse(
        date_header,
        time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ),
    )
    .map_err(|_| (403, "AccessDenied", "Invalid Date."))?
    .assume_utc()
    .unix_timestamp();
    if (now_unix() - when).abs() > 900 {
        return Err((
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        ));
    }
    // With x-obs-date, the Date line of the string to sign is empty.
    let date_line = if headers.contains_key("x-obs-date") {
        ""
    } else {
        date_header
    };
    let sts = string_to_sign(
        method,
        header(headers, "content-md5"),
        header(headers, "content-type"),
        date_line,
        &obs_headers(headers),
        &resource(bucket, raw_key, &[]),
    );
    if signature(&fake.secret_key, &sts) != sig {
        return Err((
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(())
}

fn decoded_key(raw_key: &str) -> String {
    String::from_utf8_lossy(&unescape(raw_key)).into_owned()
}

/// Every request that is not IAM's: the bucket's routes.
pub async fn handle(
    State(fake): State<Arc<FakeIam>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((bucket, raw_key)) = address(&headers, &uri) else {
        return obs_error(
            &fake,
            400,
            "InvalidURI",
            "Couldn't parse the specified URI.",
        );
    };
    if bucket.is_empty() || (!fake.bucket.is_empty() && bucket != fake.bucket) {
        return obs_error(
            &fake,
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    let key = decoded_key(&raw_key);
    match method {
        Method::PUT if !key.is_empty() => {
            put(&fake, &bucket, &raw_key, &key, &uri, &headers, &body)
        }
        Method::POST if key.is_empty() => post_form(&fake, &bucket, &headers, &body),
        Method::HEAD | Method::DELETE if !key.is_empty() => {
            object(&fake, &method, &bucket, &raw_key, &key, &uri, &headers).await
        }
        _ => obs_error(
            &fake,
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        ),
    }
}

fn stored(etag: String) -> Response {
    (StatusCode::OK, [("etag", etag)]).into_response()
}

fn put(
    fake: &FakeIam,
    bucket: &str,
    raw_key: &str,
    key: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let cred = match verify_presigned_put(fake, bucket, raw_key, uri.query(), headers) {
        Ok(c) => c,
        Err((status, code, msg)) => return obs_error(fake, status, code, msg),
    };
    let arn = format!("OBS:*:*:object:{bucket}/{key}");
    if !policy_allows(&cred.policy, "obs:object:PutObject", &arn) {
        return obs_error(fake, 403, "AccessDenied", "Access Denied (session policy)");
    }
    let ct = Some(header(headers, "content-type")).filter(|c| !c.is_empty());
    stored(fake.buckets.put(bucket, key, ct, body))
}

fn post_form(fake: &FakeIam, bucket: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(parts) = parse_multipart(header(headers, "content-type"), body) else {
        return obs_error(
            fake,
            400,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        );
    };
    // Fields after the file are ignored; the file must be there.
    let Some(file_at) = parts.iter().position(|p| p.name == "file") else {
        return obs_error(
            fake,
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
    let filename = file.filename.clone().unwrap_or_default();
    if let Some(kv) = fields.iter_mut().find(|(n, _)| n == "key") {
        kv.1 = kv.1.replace("${filename}", &filename);
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let Some(key) = get("key") else {
        return obs_error(
            fake,
            400,
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.",
        );
    };
    if let Err(why) = fake.check_form(bucket, &fields, file.data.len() as u64) {
        let (status, code) = match why.as_str() {
            "SignatureDoesNotMatch" => (403, "SignatureDoesNotMatch"),
            "InvalidSecurityToken" => (403, "InvalidSecurityToken"),
            "access key unknown" => (403, "InvalidAccessKeyId"),
            w if w.starts_with("file size") => (400, "EntityTooLarge"),
            _ => (403, "AccessDenied"),
        };
        return obs_error(fake, status, code, &why);
    }
    let ak = get("AccessKeyId").unwrap_or_default();
    let cred = fake.script.issued().into_iter().find(|c| c.access == ak);
    let arn = format!("OBS:*:*:object:{bucket}/{key}");
    let Some(cred) = cred.filter(|c| expires_at(c) > now_unix()) else {
        return obs_error(fake, 400, "ExpiredToken", "The security token has expired.");
    };
    if !policy_allows(&cred.policy, "obs:object:PutObject", &arn) {
        return obs_error(fake, 403, "AccessDenied", "Access Denied (session policy)");
    }
    let etag = fake.buckets.put(
        bucket,
        &key,
        get("Content-Type").or(file.content_type.clone()).as_deref(),
        &file.data,
    );
    (
        StatusCode::NO_CONTENT,
        [("etag", etag), ("location", format!("/{key}"))],
    )
        .into_response()
}

async fn object(
    fake: &FakeIam,
    method: &Method,
    bucket: &str,
    raw_key: &str,
    key: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    fake.buckets.log(method.as_str(), key);
    if let Err((status, code, msg)) =
        verify_header(fake, method.as_str(), bucket, raw_key, uri.query(), headers)
    {
        // A HEAD answer has no body; the code is still recorded and in x-obs-error-code.
        return obs_error(fake, status, code, msg);
    }
    if let Some(res) = fake
        .buckets
        .scripted(method.as_str(), |status, code| {
            obs_error(fake, status, code, "fake failure")
        })
        .await
    {
        return res;
    }
    if method == Method::DELETE {
        fake.buckets.delete(bucket, key);
        return StatusCode::NO_CONTENT.into_response();
    }
    fake.buckets
        .head(bucket, key)
        .unwrap_or_else(|| obs_error(fake, 404, "NoSuchKey", "The specified key does not exist."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake's own OBS signature reproduces the SDK's vectors (the same file stsgate's
    /// signer is tested against), so the fake is an independent check.
    #[test]
    fn own_signature_matches_the_sdk_vectors() {
        let text = include_str!("../../../tests/vectors/huawei/huawei_object.json");
        let file: Value = serde_json::from_str(text).unwrap();
        let mut n = 0;
        for v in file["vectors"].as_array().unwrap() {
            let (i, e) = (&v["input"], &v["expected"]);
            let s = |x: &Value| x.as_str().unwrap().to_string();
            let sts = if v["kind"] == "presigned_put" {
                let url = s(&e["url"]);
                let (path, query) = url.split_once('?').unwrap();
                let raw_key = path.splitn(4, '/').nth(3).unwrap();
                let pairs = query_pairs(Some(query));
                let expires = pairs.iter().find(|(k, _)| k == "Expires").unwrap();
                string_to_sign(
                    "PUT",
                    "",
                    i["content_type"].as_str().unwrap_or(""),
                    &expires.1,
                    &[],
                    &resource(&s(&i["bucket"]), raw_key, &pairs),
                )
            } else {
                string_to_sign(
                    &s(&i["method"]),
                    "",
                    "",
                    &s(&e["date"]),
                    &[],
                    &resource(&s(&i["bucket"]), &s(&e["path"])[1..], &[]),
                )
            };
            assert_eq!(sts, s(&e["string_to_sign"]), "{}", v["name"]);
            assert_eq!(
                signature(&s(&i["secret_key"]), &sts),
                s(&e["signature"]),
                "{}",
                v["name"]
            );
            n += 1;
        }
        assert_eq!(n, file["count"].as_u64().unwrap());
    }

    #[test]
    fn session_policy_prefixes() {
        let p = serde_json::json!({"Version": "1.1", "Statement": [{"Effect": "Allow",
            "Action": ["obs:object:PutObject"], "Resource": ["OBS:*:*:object:b/dir/*"]}]});
        assert!(policy_allows(
            &p,
            "obs:object:PutObject",
            "OBS:*:*:object:b/dir/x.png"
        ));
        assert!(!policy_allows(
            &p,
            "obs:object:PutObject",
            "OBS:*:*:object:b/other.png"
        ));
        assert!(!policy_allows(
            &p,
            "obs:object:GetObject",
            "OBS:*:*:object:b/dir/x.png"
        ));
    }
}
