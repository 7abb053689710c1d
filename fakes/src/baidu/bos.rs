//! The fake BOS bucket, on the fake STS's port: the bucket is the first label of the `Host`
//! (`{bucket}.bos.localhost:port`, virtual-host style), or the first path segment when the
//! host is an IP address or `localhost` (path style).
//!
//! - `PUT /{key}?authorization=…&x-bce-security-token=…`: a presigned upload. The
//!   `authorization` must name a temporary access key this fake issued, carry that key's
//!   token, be unexpired (and so must the token), sign `host`, and its signature (the fake's
//!   own bce-auth-v1, over the path, the query and the listed headers as received, so a
//!   signed `content-type` must be sent exactly) must match; the token's ACL must allow
//!   `WRITE` on `{bucket}/{key}`.
//! - `POST /` with `multipart/form-data`: a PostObject form, checked by
//!   [`FakeSts::check_form`] (signature, token, every policy condition, the size range) and
//!   the token's ACL.
//! - `HEAD`/`DELETE /{key}` signed with the long-term key in `Authorization`
//!   (stsgate's own confirmation and clean-up), through the shared [`crate::bucket`] script.
//!
//! Errors are BOS's JSON `{"code","message","requestId"}` (a `HEAD` answer has no body).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{bce_error, expected_signature, verify, FakeSts, IssuedToken};
use crate::common::{self, unescape};
use crate::multipart::parse_multipart;

/// Where a bucket request points: (bucket, key), the key percent-decoded.
pub fn locate(host: &str, path: &str) -> Option<(String, String)> {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let decode = |s: &str| String::from_utf8(unescape(s)).ok();
    let path = path.strip_prefix('/')?;
    let path_style =
        name == "localhost" || name.starts_with('[') || name.parse::<std::net::IpAddr>().is_ok();
    if path_style {
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        Some((decode(bucket)?, decode(key)?))
    } else {
        let (bucket, _) = name.split_once('.')?;
        Some((bucket.to_string(), decode(path)?))
    }
}

impl FakeSts {
    fn refuse(&self, status: u16, code: &str, message: &str) -> Response {
        self.refusals.lock().unwrap().push(code.to_string());
        bce_error(status, code, message)
    }

    fn token_of(&self, access_key: &str) -> Option<IssuedToken> {
        self.script
            .issued()
            .into_iter()
            .find(|c| c.access_key_id == access_key)
    }
}

/// Whether the token's ACL allows `WRITE` on `bucket/key` (`*` ends a wildcard).
fn acl_allows(token: &IssuedToken, bucket: &str, key: &str) -> bool {
    let object = format!("{bucket}/{key}");
    token.acl["accessControlList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["effect"] == "Allow" && e["service"] == "bce:bos")
        .filter(|e| {
            e["permission"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p == "WRITE"))
        })
        .flat_map(|e| e["resource"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_string))
        .any(|r| match r.strip_suffix('*') {
            Some(prefix) => object.starts_with(prefix),
            None => object == r,
        })
}

fn unix_of(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Every bucket request.
pub async fn handle(
    State(fake): State<Arc<FakeSts>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some((bucket, key)) = locate(host, uri.path()) else {
        return fake.refuse(400, "InvalidURI", "Could not parse the request URI.");
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            uri.query()?
                .split('&')
                .find_map(|p| p.strip_prefix("authorization="))
                .and_then(|v| String::from_utf8(unescape(v)).ok())
        });
    if let Some(a) = auth {
        fake.bucket_auths.lock().unwrap().push(a);
    }
    let list: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    match method {
        Method::PUT if !key.is_empty() => {
            fake.buckets.log("PUT", &key);
            presigned_put(&fake, &uri, &list, &bucket, &key, &body)
        }
        Method::POST if key.is_empty() => {
            fake.buckets.log("POST", "");
            post_object(&fake, &headers, &bucket, &body)
        }
        Method::HEAD | Method::DELETE if !key.is_empty() => {
            object(&fake, &method, &uri, &list, &bucket, &key).await
        }
        _ => fake.refuse(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        ),
    }
}

/// Verifies a presigned `PUT` (query authorization with a temporary key) and stores it.
fn presigned_put(
    fake: &FakeSts,
    uri: &Uri,
    headers: &[(String, String)],
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Response {
    let query = uri.query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| String::from_utf8(unescape(v)).ok())
    };
    let Some(auth) = param("authorization") else {
        return fake.refuse(403, "AccessDenied", "Anonymous access is denied.");
    };
    let parts: Vec<&str> = auth.split('/').collect();
    let [version, ak, timestamp, expiration, signed, signature] = parts[..] else {
        return fake.refuse(400, "InvalidHTTPAuthHeader", "Malformed authorization.");
    };
    if version != "bce-auth-v1" {
        return fake.refuse(400, "InvalidHTTPAuthHeader", "Unknown auth version.");
    }
    let Some(token) = fake.token_of(ak) else {
        return fake.refuse(403, "InvalidAccessKeyId", "The access key does not exist.");
    };
    if param("x-bce-security-token").as_deref() != Some(token.session_token.as_str()) {
        return fake.refuse(400, "InvalidSessionToken", "The session token is invalid.");
    }
    let now = common::now_unix();
    let (Some(ts), Ok(valid_for)) = (unix_of(timestamp), expiration.parse::<i64>()) else {
        return fake.refuse(400, "InvalidHTTPAuthHeader", "Malformed authorization.");
    };
    if now > ts + valid_for || ts > now + 300 {
        return fake.refuse(400, "RequestExpired", "The request has expired.");
    }
    if unix_of(&token.expiration).is_none_or(|e| now >= e) {
        return fake.refuse(400, "InvalidSessionToken", "The session token has expired.");
    }
    if !signed.split(';').any(|n| n == "host") {
        return fake.refuse(400, "InvalidHTTPAuthHeader", "host must be signed.");
    }
    let prefix = format!("{version}/{ak}/{timestamp}/{expiration}");
    let want = expected_signature(
        &token.secret_access_key,
        &prefix,
        "PUT",
        uri.path(),
        query,
        headers,
        signed,
    );
    if want != signature {
        return fake.refuse(
            400,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match.",
        );
    }
    if !acl_allows(&token, bucket, key) {
        return fake.refuse(
            403,
            "AccessDenied",
            "The session token does not allow this.",
        );
    }
    let content_type = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let etag = fake.buckets.put(bucket, key, content_type, body);
    (StatusCode::OK, [("etag", etag)]).into_response()
}

/// Verifies a PostObject form ([`FakeSts::check_form`] and the token's ACL) and stores it.
fn post_object(fake: &FakeSts, headers: &HeaderMap, bucket: &str, body: &[u8]) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(parts) = parse_multipart(ct, body) else {
        return fake.refuse(
            400,
            "MalformedPOSTRequest",
            "The body is not multipart/form-data.",
        );
    };
    let Some(file_at) = parts.iter().position(|p| p.name == "file") else {
        return fake.refuse(400, "InvalidArgument", "The form has no file.");
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
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Err(why) = fake.check_form(bucket, &fields, file.data.len() as u64) {
        return match why.as_str() {
            "SignatureDoesNotMatch" => fake.refuse(400, "SignatureDoesNotMatch", &why),
            "access key unknown" => fake.refuse(403, "InvalidAccessKeyId", &why),
            "InvalidSecurityToken" => fake.refuse(400, "InvalidSessionToken", &why),
            _ => fake.refuse(403, "AccessDenied", &why),
        };
    }
    let (Some(key), Some(ak)) = (get("key"), get("accessKey")) else {
        return fake.refuse(400, "InvalidArgument", "key and accessKey are required.");
    };
    let token = fake.token_of(&ak).expect("check_form found it");
    if !acl_allows(&token, bucket, &key) {
        return fake.refuse(
            403,
            "AccessDenied",
            "The session token does not allow this.",
        );
    }
    let content_type = get("Content-Type").or(file.content_type.clone());
    let etag = fake
        .buckets
        .put(bucket, &key, content_type.as_deref(), &file.data);
    (StatusCode::OK, [("etag", etag)]).into_response()
}

/// stsgate's `HEAD`/`DELETE` with the long-term key.
async fn object(
    fake: &FakeSts,
    method: &Method,
    uri: &Uri,
    headers: &[(String, String)],
    bucket: &str,
    key: &str,
) -> Response {
    fake.buckets.log(method.as_str(), key);
    if let Err((status, code)) = verify(fake, method.as_str(), uri, headers) {
        return fake.refuse(status, code, "The request signature was refused.");
    }
    if let Some(res) = fake
        .buckets
        .scripted(method.as_str(), |status, code| {
            fake.refuse(status, code, "fake failure")
        })
        .await
    {
        return res;
    }
    if *method == Method::DELETE {
        fake.buckets.delete(bucket, key);
        return StatusCode::NO_CONTENT.into_response();
    }
    fake.buckets
        .head(bucket, key)
        .unwrap_or_else(|| fake.refuse(404, "NoSuchKey", "The specified key does not exist."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_virtual_host_and_path_style() {
        assert_eq!(
            locate("b.bos.localhost:9000", "/k/a%20b.png"),
            Some(("b".into(), "k/a b.png".into()))
        );
        assert_eq!(
            locate("127.0.0.1:9000", "/b/k/%E7%8C%AB.png"),
            Some(("b".into(), "k/猫.png".into()))
        );
        assert_eq!(
            locate("b.bj.bcebos.com", "/"),
            Some(("b".into(), "".into()))
        );
        assert_eq!(locate("localhost", "/b"), Some(("b".into(), "".into())));
    }

    #[test]
    fn the_acl_scopes_writes() {
        let token = |resource: &str| IssuedToken {
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            create_time: String::new(),
            expiration: String::new(),
            duration_seconds: 1,
            acl: serde_json::json!({"accessControlList": [{"service": "bce:bos",
                "region": "bj", "effect": "Allow", "resource": [resource],
                "permission": ["WRITE"]}]}),
        };
        assert!(acl_allows(&token("b/k.png"), "b", "k.png"));
        assert!(!acl_allows(&token("b/k.png"), "b", "k.pngx"));
        assert!(!acl_allows(&token("b/k.png"), "c", "k.png"));
        assert!(acl_allows(&token("b/dir/*"), "b", "dir/x.ts"));
        assert!(!acl_allows(&token("b/dir/*"), "b", "other/x.ts"));
    }
}
