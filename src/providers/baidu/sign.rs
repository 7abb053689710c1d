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
    let prefix = auth_string_prefix(access_key, timestamp, expiration_seconds);
    let (headers, names) = canonical_headers(req.headers, None);
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
