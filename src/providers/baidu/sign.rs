//! Baidu AI Cloud `bce-auth-v1` request signing and the BOS PostObject signature, as pure
//! staged functions.
//!
//! The time is always an argument. Each stage restates the formula of
//! docs/providers/baidu.md; the tests check every stage against
//! vectors produced by `bce-python-sdk` and `@baiducloud/sdk`. Unlike the Python SDK, the
//! `Authorization` always lists the signed headers, exactly the canonical ones (as the JS
//! and Go SDKs do).

use percent_encoding::AsciiSet;

use crate::providers::crypto::{b64, hex, hmac_sha256, percent_encode, RFC3986};
use crate::providers::form::SignedPolicy;

/// RFC 3986 encoding that keeps `/` (for the canonical URI).
const RFC3986_PATH: &AsciiSet = &RFC3986.remove(b'/');

/// Headers signed by default besides every `x-bce-*` header.
pub const DEFAULT_SIGNED: [&str; 4] = ["host", "content-length", "content-type", "content-md5"];

/// `authStringPrefix = "bce-auth-v1/" + AK + "/" + timestamp + "/" + expiration_seconds`,
/// with `timestamp` = UTC `YYYY-MM-DDTHH:MM:SSZ`.
pub fn auth_string_prefix(access_key: &str, timestamp: &str, expiration_seconds: u64) -> String {
    format!("bce-auth-v1/{access_key}/{timestamp}/{expiration_seconds}")
}

/// `signingKey = hex(HMAC-SHA256(SK, authStringPrefix))`; the hex *text* keys the next HMAC.
pub fn signing_key(secret_key: &str, auth_string_prefix: &str) -> String {
    hex(hmac_sha256(
        secret_key.as_bytes(),
        auth_string_prefix.as_bytes(),
    ))
}

/// `CanonicalURI`: RFC 3986-encode the path byte-wise, keeping `/` (no trailing `/` added).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    percent_encoding::utf8_percent_encode(path, RFC3986_PATH).to_string()
}

/// `CanonicalQueryString`: drop `authorization` (any case); `enc(name) + "=" + enc(value)`
/// (a missing value gives `name=`), `enc` encoding `/` too; sort those strings; join with `&`.
pub fn canonical_query(params: &[(&str, Option<&str>)]) -> String {
    let mut parts: Vec<String> = params
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v.unwrap_or(""))))
        .collect();
    parts.sort();
    parts.join("&")
}

/// `CanonicalHeaders` and the names it signs: headers whose lower-cased name is in
/// `to_sign` (default [`DEFAULT_SIGNED`]) or starts with `x-bce-`, whose trimmed value is not
/// empty, as `enc(lower(name)) + ":" + enc(trim(value))`, sorted, joined with `\n`.
pub fn canonical_headers(
    headers: &[(&str, &str)],
    to_sign: Option<&[&str]>,
) -> (String, Vec<String>) {
    let wanted = |name: &str| {
        name.starts_with("x-bce-")
            || match to_sign {
                Some(list) => list.iter().any(|h| h.eq_ignore_ascii_case(name)),
                None => DEFAULT_SIGNED.contains(&name),
            }
    };
    let mut lines: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        .filter(|(n, v)| !v.is_empty() && wanted(n))
        .map(|(n, v)| {
            let line = format!("{}:{}", percent_encode(&n), percent_encode(v));
            (line, n)
        })
        .collect();
    lines.sort();
    let canonical = lines
        .iter()
        .map(|(l, _)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    (canonical, lines.into_iter().map(|(_, n)| n).collect())
}

/// `CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQueryString \n CanonicalHeaders`
/// (what is signed; the body is not part of it).
pub fn canonical_request(method: &str, uri: &str, query: &str, headers: &str) -> String {
    format!("{method}\n{uri}\n{query}\n{headers}")
}

/// `signature = hex(HMAC-SHA256(signingKey hex text, CanonicalRequest))`.
pub fn signature(signing_key_hex: &str, canonical_request: &str) -> String {
    hex(hmac_sha256(
        signing_key_hex.as_bytes(),
        canonical_request.as_bytes(),
    ))
}

/// `Authorization = authStringPrefix + "/" + join(";", signed names) + "/" + signature`.
pub fn authorization(
    auth_string_prefix: &str,
    signed_headers: &[String],
    signature: &str,
) -> String {
    format!(
        "{auth_string_prefix}/{}/{signature}",
        signed_headers.join(";")
    )
}

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The path, not yet encoded.
    pub path: &'a str,
    /// Query parameters, not yet encoded.
    pub params: &'a [(&'a str, Option<&'a str>)],
    /// Every header sent, `Host` and `x-bce-date` included.
    pub headers: &'a [(&'a str, &'a str)],
}

/// The `Authorization` of `req`, signed at `timestamp` (`YYYY-MM-DDTHH:MM:SSZ`, the
/// request's `x-bce-date`) and valid for `expiration_seconds`, over the default headers.
pub fn sign(
    access_key: &str,
    secret_key: &str,
    req: &Request<'_>,
    timestamp: &str,
    expiration_seconds: u64,
) -> String {
    sign_with(
        access_key,
        secret_key,
        req,
        timestamp,
        expiration_seconds,
        None,
    )
}

/// [`sign`] over the headers named in `to_sign` (plus every `x-bce-*` one) instead of the
/// default set: the one bce-auth-v1 entry point every request of this cloud goes through.
pub fn sign_with(
    access_key: &str,
    secret_key: &str,
    req: &Request<'_>,
    timestamp: &str,
    expiration_seconds: u64,
    to_sign: Option<&[&str]>,
) -> String {
    let prefix = auth_string_prefix(access_key, timestamp, expiration_seconds);
    let (headers, names) = canonical_headers(req.headers, to_sign);
    let cr = canonical_request(
        req.method,
        &canonical_uri(req.path),
        &canonical_query(req.params),
        &headers,
    );
    authorization(
        &prefix,
        &names,
        &signature(&signing_key(secret_key, &prefix), &cr),
    )
}

/// Validity of stsgate's own `HEAD`/`DELETE` signature (the SDKs' default).
pub const OBJECT_SIGNATURE_SECS: u64 = 1800;

/// Longest presigned `PUT` we sign. BOS documents no ceiling (only `-1`, never expiring,
/// which we never use); the URL never outlives the credentials anyway, whose lifetime STS
/// caps at 36 hours.
pub const MAX_PRESIGN_SECS: i64 = 129_600;

/// Where one object is addressed, from its bucket's URL ([`crate::providers::form::bucket_url`]:
/// `https://{bucket}.{endpoint host}`, or path style `http://127.0.0.1:port/{bucket}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTarget {
    /// `scheme://host[:port]`.
    pub origin: String,
    /// The `Host` header as sent: the host, and the port when it is not the scheme's default.
    pub host: String,
    /// The path, not yet encoded: `/{key}` (path style: `/{bucket}/{key}`).
    pub path: String,
}

/// The [`ObjectTarget`] of `key` under `bucket_url`; `None` when that is not a URL with a
/// host.
pub fn object_target(bucket_url: &str, key: &str) -> Option<ObjectTarget> {
    let url = reqwest::Url::parse(bucket_url).ok()?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str()?),
        None => url.host_str()?.to_string(),
    };
    let base = url.path().trim_end_matches('/');
    Some(ObjectTarget {
        origin: format!("{}://{host}", url.scheme()),
        host,
        path: format!("{base}/{}", key.trim_start_matches('/')),
    })
}

/// The URL query as the SDK writes it: `enc(name)=enc(value)` pairs sorted and joined with
/// `&` (`authorization` included, `/` encoded).
pub fn url_query(params: &[(&str, &str)]) -> String {
    let mut parts: Vec<String> = params
        .iter()
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
        .collect();
    parts.sort();
    parts.join("&")
}

/// The presigned `PUT` of `target` with temporary credentials (bce-python-sdk's
/// `generate_pre_signed_url(..., httpmethod=PUT)` with `security_token`): the token is the
/// query parameter `x-bce-security-token`, signed in the canonical query; `host` is signed,
/// and so is `content-type` when given (then the client must send exactly it: it is returned
/// as the one upload header). Valid from `timestamp` for `expiration_seconds`.
pub fn presigned_put(
    access_key: &str,
    secret_key: &str,
    security_token: &str,
    target: &ObjectTarget,
    content_type: Option<&str>,
    timestamp: &str,
    expiration_seconds: u64,
) -> crate::providers::PresignedPut {
    let mut headers = vec![("host", target.host.as_str())];
    let mut to_sign = vec!["host"];
    if let Some(ct) = content_type {
        headers.push(("content-type", ct));
        to_sign.push("content-type");
    }
    let token = [("x-bce-security-token", Some(security_token))];
    let auth = sign_with(
        access_key,
        secret_key,
        &Request {
            method: "PUT",
            path: &target.path,
            params: &token,
            headers: &headers,
        },
        timestamp,
        expiration_seconds,
        Some(&to_sign),
    );
    let query = url_query(&[
        ("authorization", &auth),
        ("x-bce-security-token", security_token),
    ]);
    crate::providers::PresignedPut {
        url: format!("{}{}?{query}", target.origin, canonical_uri(&target.path)),
        headers: content_type
            .map(|ct| vec![("Content-Type".to_string(), ct.to_string())])
            .unwrap_or_default(),
    }
}

/// stsgate's own `HEAD`/`DELETE` of `target` with the long-term key, as the SDK's
/// `get_object_meta_data`/`delete_object` send it: `Host`, `Content-Length: 0` and
/// `x-bce-date` signed (the default set), valid [`OBJECT_SIGNATURE_SECS`]; the
/// `Authorization` lists those names (the SDK writes `//` for the same signature).
pub fn sign_object_request(
    access_key: &str,
    secret_key: &str,
    method: &str,
    target: &ObjectTarget,
    timestamp: &str,
) -> crate::providers::object::SignedRequest {
    let headers = [
        ("host", target.host.as_str()),
        ("content-length", "0"),
        ("x-bce-date", timestamp),
    ];
    let auth = sign(
        access_key,
        secret_key,
        &Request {
            method,
            path: &target.path,
            params: &[],
            headers: &headers,
        },
        timestamp,
        OBJECT_SIGNATURE_SECS,
    );
    crate::providers::object::SignedRequest {
        url: format!("{}{}", target.origin, canonical_uri(&target.path)),
        headers: vec![
            ("x-bce-date".into(), timestamp.into()),
            ("content-length".into(), "0".into()),
            ("authorization".into(), auth),
        ],
    }
}

/// BOS PostObject: `policy = base64(policy JSON bytes)`,
/// `signature = hex(HMAC-SHA256(SK, policy))` over the base64 text.
pub fn sign_bos_post(secret_key: &str, policy_json: &str) -> SignedPolicy {
    let policy = b64(policy_json.as_bytes());
    let signature = hex(hmac_sha256(secret_key.as_bytes(), policy.as_bytes()));
    SignedPolicy { policy, signature }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::{expected_count, load, s};
    use proptest::prelude::*;

    #[test]
    fn vectors_baidu_bce_auth_v1() {
        let file = load("baidu/baidu_bce_auth_v1.json");
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let name = s(v, "name");
            let input = &v["input"];
            let exp = &v["expected"];
            let ak = s(input, "access_key");
            let sk = s(input, "secret_key");
            let ts = crate::clock::rfc3339(input["timestamp_unix"].as_i64().unwrap());
            assert_eq!(ts, s(exp, "canonical_time"), "{name}: timestamp");
            let expiration = input["expiration_seconds"].as_u64().unwrap();
            let prefix = auth_string_prefix(ak, &ts, expiration);
            assert_eq!(prefix, s(exp, "auth_string_prefix"), "{name}: prefix");
            let key = signing_key(sk, &prefix);
            assert_eq!(key, s(exp, "signing_key_hex"), "{name}: signing_key");
            let uri = canonical_uri(s(input, "raw_path"));
            assert_eq!(uri, s(exp, "canonical_uri"), "{name}: canonical_uri");
            let params: Vec<(&str, Option<&str>)> = input["params"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .unwrap_or_default();
            let query = canonical_query(&params);
            assert_eq!(query, s(exp, "canonical_query_string"), "{name}: query");
            let headers: Vec<(&str, &str)> = input["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let to_sign: Option<Vec<&str>> = input["headers_to_sign"]
                .as_array()
                .map(|a| a.iter().map(|h| h.as_str().unwrap()).collect());
            let (ch, names) = canonical_headers(&headers, to_sign.as_deref());
            assert_eq!(ch, s(exp, "canonical_headers"), "{name}: canonical_headers");
            let cr = canonical_request(s(input, "method"), &uri, &query, &ch);
            assert_eq!(cr, s(exp, "string_to_sign"), "{name}: canonical request");
            let sig = signature(&key, &cr);
            assert_eq!(sig, s(exp, "signature"), "{name}: signature");
            // We always list the canonical headers, as the JS SDK does.
            let auth = authorization(&prefix, &names, &sig);
            assert_eq!(
                auth,
                s(exp, "js_sdk_authorization"),
                "{name}: authorization"
            );
            // The Python SDK's form differs only in the signedHeaders field.
            let py = s(exp, "authorization");
            assert!(py.starts_with(&format!("{prefix}/")) && py.ends_with(&format!("/{sig}")));
            if to_sign.is_none() {
                let req = Request {
                    method: s(input, "method"),
                    path: s(input, "raw_path"),
                    params: &params,
                    headers: &headers,
                };
                assert_eq!(sign(ak, sk, &req, &ts, expiration), auth, "{name}: sign");
            }
            ran += 1;
        }
        assert_eq!(ran, expected_count(&file, 8));
        assert_eq!(ran, 8);
    }

    #[test]
    fn vectors_baidu_bos_post() {
        let file = load("baidu/baidu_bos_post.json");
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let name = s(v, "name");
            let input = &v["input"];
            let exp = &v["expected"];
            let signed = sign_bos_post(s(input, "secret_key"), s(input, "policy_json"));
            let policy = signed.policy.clone();
            assert_eq!(policy, s(exp, "policy_base64"), "{name}: policy");
            let sig = signed.signature.clone();
            assert_eq!(sig, s(exp, "signature"), "{name}: signature");
            let fields = &exp["suggested_form_fields"];
            assert_eq!(
                fields["accessKey"],
                s(input, "access_key"),
                "{name}: accessKey"
            );
            assert_eq!(fields["policy"], policy.as_str(), "{name}: policy field");
            assert_eq!(fields["signature"], sig.as_str(), "{name}: signature field");
            ran += 1;
        }
        assert_eq!(ran, expected_count(&file, 6));
        assert_eq!(ran, 6);
    }

    #[test]
    fn vectors_baidu_object() {
        let file = load("baidu/baidu_object.json");
        let (mut puts, mut objects) = (0, 0);
        for v in file["vectors"].as_array().unwrap() {
            let name = s(v, "name");
            let input = &v["input"];
            let exp = &v["expected"];
            let ak = s(input, "access_key");
            let sk = s(input, "secret_key");
            let key = s(input, "key");
            let ts = crate::clock::rfc3339(input["timestamp_unix"].as_i64().unwrap());
            assert_eq!(ts, s(exp, "canonical_time"), "{name}: timestamp");
            let expiration = input["expiration_seconds"].as_u64().unwrap();
            // The SDK's endpoint is the region's (the bucket label added) or, with
            // cname_enabled, the bucket's own host.
            let endpoint = s(input, "sdk_endpoint");
            let bucket_url = if input["cname_enabled"] == true {
                endpoint.to_string()
            } else {
                crate::providers::form::bucket_url(endpoint, s(input, "bucket")).unwrap()
            };
            let target = object_target(&bucket_url, key).unwrap();
            assert_eq!(target.host, s(exp, "host"), "{name}: host");
            let uri = canonical_uri(&target.path);
            assert_eq!(uri, s(exp, "canonical_uri"), "{name}: canonical_uri");
            let prefix = auth_string_prefix(ak, &ts, expiration);
            assert_eq!(prefix, s(exp, "auth_string_prefix"), "{name}: prefix");
            let signing = signing_key(sk, &prefix);
            assert_eq!(signing, s(exp, "signing_key_hex"), "{name}: signing key");
            let method = if v["kind"] == "presigned_put" {
                "PUT"
            } else {
                s(input, "method")
            };
            let token = input["security_token"].as_str();
            let params: Vec<(&str, Option<&str>)> = token
                .map(|t| vec![("x-bce-security-token", Some(t))])
                .unwrap_or_default();
            let query = canonical_query(&params);
            assert_eq!(query, s(exp, "canonical_query_string"), "{name}: query");
            let content_type = input["content_type"].as_str();
            let mut headers = vec![("host", target.host.as_str())];
            let to_sign: Option<Vec<&str>> = if token.is_some() {
                if let Some(ct) = content_type {
                    headers.push(("content-type", ct));
                }
                Some(
                    exp["signed_headers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| h.as_str().unwrap())
                        .collect(),
                )
            } else {
                headers.push(("content-length", "0"));
                headers.push(("x-bce-date", &ts));
                None
            };
            let (ch, names) = canonical_headers(&headers, to_sign.as_deref());
            assert_eq!(ch, s(exp, "canonical_headers"), "{name}: canonical headers");
            assert_eq!(
                names,
                exp["signed_headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap())
                    .collect::<Vec<_>>(),
                "{name}: signed names"
            );
            let cr = canonical_request(method, &uri, &query, &ch);
            assert_eq!(cr, s(exp, "string_to_sign"), "{name}: canonical request");
            let sig = signature(&signing, &cr);
            assert_eq!(sig, s(exp, "signature"), "{name}: signature");
            assert_eq!(
                authorization(&prefix, &names, &sig),
                s(exp, "authorization"),
                "{name}: authorization"
            );
            match token {
                Some(token) => {
                    let put = presigned_put(ak, sk, token, &target, content_type, &ts, expiration);
                    assert_eq!(put.url, s(exp, "url"), "{name}: url");
                    let want: Vec<(String, String)> = exp["upload_headers"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    assert_eq!(put.headers, want, "{name}: upload headers");
                    puts += 1;
                }
                None => {
                    assert_eq!(expiration, OBJECT_SIGNATURE_SECS);
                    let signed = sign_object_request(ak, sk, method, &target, &ts);
                    assert_eq!(signed.url, s(exp, "url"), "{name}: url");
                    let sent = |n: &str| {
                        signed
                            .headers
                            .iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| v.as_str())
                    };
                    assert_eq!(
                        sent("authorization"),
                        Some(s(exp, "authorization")),
                        "{name}"
                    );
                    for (k, v) in exp["headers"].as_object().unwrap() {
                        assert_eq!(sent(k), v.as_str(), "{name}: header {k}");
                    }
                    assert_eq!(signed.headers.len(), 3, "{name}: only signed headers");
                    // The SDK's own header: the same signature, `//` for the names.
                    assert_eq!(
                        s(exp, "python_sdk_authorization"),
                        format!("{prefix}//{sig}")
                    );
                    objects += 1;
                }
            }
        }
        assert_eq!(puts + objects, expected_count(&file, 11));
        assert_eq!((puts, objects), (5, 6));
    }

    #[test]
    fn object_targets_and_a_one_byte_change() {
        let t = object_target("https://b.bj.bcebos.com", "k/a b.png").unwrap();
        assert_eq!(
            t,
            ObjectTarget {
                origin: "https://b.bj.bcebos.com".into(),
                host: "b.bj.bcebos.com".into(),
                path: "/k/a b.png".into(),
            }
        );
        let p = object_target("http://127.0.0.1:9000/b", "k.png").unwrap();
        assert_eq!(
            (p.host.as_str(), p.path.as_str()),
            ("127.0.0.1:9000", "/b/k.png")
        );
        assert!(object_target("not a url", "k").is_none());
        let ts = "2025-01-01T00:00:00Z";
        let a = presigned_put("ak", "sk", "tok", &t, Some("image/png"), ts, 60);
        let b = presigned_put("ak", "sk", "tok", &t, Some("image/jpeg"), ts, 60);
        let c = presigned_put("ak", "sk", "tol", &t, Some("image/png"), ts, 60);
        assert_ne!(a.url, b.url);
        assert_ne!(a.url, c.url);
        assert!(format!("{a:?}").find("tok").is_none());
    }

    #[test]
    fn one_byte_changes_the_signature() {
        let headers = [
            ("Host", "sts.bj.baidubce.com"),
            ("x-bce-date", "2025-01-01T00:00:00Z"),
        ];
        let req = Request {
            method: "POST",
            path: "/v1/sessionToken",
            params: &[("durationSeconds", Some("3600"))],
            headers: &headers,
        };
        let ts = "2025-01-01T00:00:00Z";
        let a = sign("ak", "sk", &req, ts, 1800);
        let b = sign(
            "ak",
            "sk",
            &Request {
                params: &[("durationSeconds", Some("3601"))],
                ..req
            },
            ts,
            1800,
        );
        let c = sign("ak", "sj", &req, ts, 1800);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.contains("/host;x-bce-date/"), "{a}");
    }

    proptest! {
        #[test]
        fn canonical_uri_keeps_slashes_and_is_ascii(path in "/[a-z 照片+~%/]{0,16}") {
            let uri = canonical_uri(&path);
            prop_assert!(uri.is_ascii());
            prop_assert_eq!(uri.matches('/').count(), path.matches('/').count());
        }
    }
}
