//! Verifying Qiniu's upload callbacks, in both `Authorization` forms Qiniu sends.
//!
//! `QBox <AK>:<sign>` (legacy) signs `path?query "\n"` plus the body only for
//! `application/x-www-form-urlencoded`; `Qiniu <AK>:<sign>` (v2) also signs the method, `Host`,
//! `Content-Type` and `X-Qiniu-*` headers. Both use `sign = b64url(HMAC-SHA1(SK, data))` with the
//! key pair that signed the upload token. Neither carries a nonce or timestamp: replay
//! protection is the caller's idempotent handling.
//!
//! [`verify`] follows the official SDKs' verdict exactly, which accepts a `QBox` callback
//! whose JSON body is not covered by the signature. Callers that read the body must use
//! [`verify_with_body`] (or check [`body_is_signed`]).

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};

use crate::providers::crypto::ct_eq;
use crate::providers::qiniu::sign::{sign, Signer};
use crate::providers::CallbackInput;

const FORM: &str = "application/x-www-form-urlencoded";
const OCTET_STREAM: &str = "application/octet-stream";
const X_QINIU: &str = "x-qiniu-";

/// A received callback, taken from the raw request (path and query exactly as received).
#[derive(Debug, Clone, Copy)]
pub struct CallbackRequest<'a> {
    /// HTTP method as received (`POST`).
    pub method: &'a str,
    /// Raw path, no re-encoding (the externally visible one, behind a proxy).
    pub path: &'a str,
    /// Raw query string without `?`; `None` or empty when there is none.
    pub query: Option<&'a str>,
    /// `Host` header value (the externally visible one).
    pub host: &'a str,
    /// `Content-Type` header value.
    pub content_type: Option<&'a str>,
    /// All headers, lower-case names; only `x-qiniu-*` are used.
    pub headers: &'a [(String, String)],
    /// Raw body bytes.
    pub body: &'a [u8],
    /// `Authorization` header value.
    pub authorization: &'a str,
}

/// Why a callback was refused; all map to 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// `Authorization` is not `QBox <AK>:<sign>` or `Qiniu <AK>:<sign>`.
    #[error("malformed Qiniu callback authorization")]
    Malformed,
    /// The header names an AccessKey other than ours.
    #[error("Qiniu callback signed for another access key")]
    WrongAccessKey,
    /// The signature does not match the request.
    #[error("Qiniu callback signature mismatch")]
    BadSignature,
    /// Signature valid, but it does not cover the non-empty body (from [`verify_with_body`]).
    #[error("Qiniu callback body is not covered by its signature")]
    UnsignedBody,
}

/// The two `Authorization` forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `QBox <AK>:<sign>`, the legacy form.
    QBox,
    /// `Qiniu <AK>:<sign>`, the v2 form.
    Qiniu,
}

impl Scheme {
    /// The header prefix, trailing space included.
    pub fn prefix(self) -> &'static str {
        match self {
            Scheme::QBox => "QBox ",
            Scheme::Qiniu => "Qiniu ",
        }
    }
}

/// Splits `"<Scheme> <AK>:<sign>"` (scheme case-sensitive, as the SDKs compare it) into its
/// parts; AK and sign must be non-empty and sign must contain no further `:`.
pub fn parse_authorization(authorization: &str) -> Result<(Scheme, &str, &str), CallbackError> {
    let (scheme, rest) = if let Some(rest) = authorization.strip_prefix(Scheme::QBox.prefix()) {
        (Scheme::QBox, rest)
    } else if let Some(rest) = authorization.strip_prefix(Scheme::Qiniu.prefix()) {
        (Scheme::Qiniu, rest)
    } else {
        return Err(CallbackError::Malformed);
    };
    match rest.split_once(':') {
        Some((ak, signature))
            if !ak.is_empty() && !signature.is_empty() && !signature.contains(':') =>
        {
            Ok((scheme, ak, signature))
        }
        _ => Err(CallbackError::Malformed),
    }
}

/// `path` + (`"?" + query` when the query is non-empty).
fn path_with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

// QBox: data = path + ("?" + rawQuery if rawQuery != "") + "\n"
//            + (body if Content-Type == "application/x-www-form-urlencoded", exact match)
/// The `QBox` string to sign.
pub fn qbox_string_to_sign(
    path: &str,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut data = path_with_query(path, query).into_bytes();
    data.push(b'\n');
    if content_type == Some(FORM) {
        data.extend_from_slice(body);
    }
    data
}

/// Go's `CanonicalMIMEHeaderKey` for token names: upper-case the first letter and each one
/// after `-`, lower-case the rest (`x-qiniu-date` → `X-Qiniu-Date`).
fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

// For each header whose name is "X-Qiniu-" + something, by canonical name (sorted):
//   CanonicalName + ": " + value, joined with "\n". A repeated name signs its first value.
/// The `X-Qiniu-*` block of the `Qiniu` string to sign (empty when there are none).
pub fn x_qiniu_headers(headers: &[(String, String)]) -> String {
    let mut lines: Vec<(String, &str)> = Vec::new();
    for (name, value) in headers {
        let is_qiniu = name.len() > X_QINIU.len()
            && name.is_char_boundary(X_QINIU.len())
            && name[..X_QINIU.len()].eq_ignore_ascii_case(X_QINIU);
        if !is_qiniu {
            continue;
        }
        let canonical = canonical_header_name(name);
        if !lines.iter().any(|(n, _)| *n == canonical) {
            lines.push((canonical, value));
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    lines
        .iter()
        .map(|(n, v)| format!("{n}: {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `Content-Type` the `Qiniu` form signs: a missing one counts as form-encoded (Go SDK).
fn qiniu_content_type(content_type: Option<&str>) -> &str {
    content_type.filter(|c| !c.is_empty()).unwrap_or(FORM)
}

// Qiniu: data = METHOD + " " + path + ("?" + rawQuery if rawQuery != "")
//             + "\nHost: " + host
//             + "\nContent-Type: " + contentType        (missing: form-encoded, as the Go SDK)
//             + ("\n" + xQiniuHeaders if any)
//             + "\n\n"
//             + (body if contentType != "application/octet-stream")
/// The `Qiniu` (v2) string to sign.
pub fn qiniu_string_to_sign(
    method: &str,
    path: &str,
    query: Option<&str>,
    host: &str,
    content_type: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let content_type = qiniu_content_type(content_type);
    let mut data = format!(
        "{method} {}\nHost: {host}\nContent-Type: {content_type}",
        path_with_query(path, query)
    );
    let block = x_qiniu_headers(headers);
    if !block.is_empty() {
        data.push('\n');
        data.push_str(&block);
    }
    data.push_str("\n\n");
    let mut data = data.into_bytes();
    if content_type != OCTET_STREAM {
        data.extend_from_slice(body);
    }
    data
}

/// The string to sign for `req` in `scheme`.
pub fn string_to_sign(scheme: Scheme, req: &CallbackRequest<'_>) -> Vec<u8> {
    match scheme {
        Scheme::QBox => qbox_string_to_sign(req.path, req.query, req.content_type, req.body),
        Scheme::Qiniu => qiniu_string_to_sign(
            req.method,
            req.path,
            req.query,
            req.host,
            req.content_type,
            req.headers,
            req.body,
        ),
    }
}

// Authorization = Scheme + " " + AK + ":" + b64url(HMAC-SHA1(SK, data))
/// The `Authorization` value Qiniu would send for `data`.
pub fn authorization(scheme: Scheme, access_key: &str, secret_key: &str, data: &[u8]) -> String {
    format!("{}{access_key}:{}", scheme.prefix(), sign(secret_key, data))
}

/// Checks a callback's `Authorization` against our key pair (prepared in `signer`), in the
/// form it names: the AK must be ours and the signature equal (constant-time) to the one
/// recomputed from `req`.
pub fn verify(signer: &Signer, req: &CallbackRequest<'_>) -> Result<(), CallbackError> {
    let (scheme, ak, presented) = parse_authorization(req.authorization)?;
    if !ct_eq(ak.as_bytes(), signer.access_key().as_bytes()) {
        return Err(CallbackError::WrongAccessKey);
    }
    let expected = signer.sign(&string_to_sign(scheme, req));
    if ct_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(CallbackError::BadSignature)
    }
}

/// Whether the signature form `req` names covers its body: always for an empty body; under
/// `QBox` only for exactly `application/x-www-form-urlencoded`; under `Qiniu` unless
/// `application/octet-stream`. `false` for a malformed `Authorization`.
pub fn body_is_signed(req: &CallbackRequest<'_>) -> bool {
    let Ok((scheme, _, _)) = parse_authorization(req.authorization) else {
        return false;
    };
    req.body.is_empty()
        || match scheme {
            Scheme::QBox => req.content_type == Some(FORM),
            Scheme::Qiniu => qiniu_content_type(req.content_type) != OCTET_STREAM,
        }
}

/// [`verify`], then refuses a non-empty body the signature does not cover
/// ([`CallbackError::UnsignedBody`]): what a handler that trusts the body's fields needs.
pub fn verify_with_body(signer: &Signer, req: &CallbackRequest<'_>) -> Result<(), CallbackError> {
    verify(signer, req)?;
    if body_is_signed(req) {
        Ok(())
    } else {
        Err(CallbackError::UnsignedBody)
    }
}

/// Where Qiniu sends callbacks, as it signs them: the host (with its port, when given) and
/// path of `server.public_base_url + /upload/callback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `Host` as Qiniu signs it.
    pub host: String,
    /// The path as Qiniu signs it.
    pub path: String,
}

impl PublicUrl {
    /// The callback URL under `public_base_url`; `Err` names the key when it is not a URL.
    pub fn of(public_base_url: &str) -> Result<Self, String> {
        let callback_url = format!("{}/upload/callback", public_base_url.trim_end_matches('/'));
        let url = reqwest::Url::parse(&callback_url)
            .map_err(|_| "server.public_base_url is not a URL".to_string())?;
        let host = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(PublicUrl {
            host,
            path: url.path().to_string(),
        })
    }
}

/// Verifies a callback as received ([`verify_with_body`]), then, on a signature mismatch,
/// against the public callback URL's path and host (what Qiniu signed when a reverse proxy
/// rewrote them).
pub fn verify_received(
    signer: &Signer,
    public: &PublicUrl,
    input: &CallbackInput,
) -> Result<(), CallbackError> {
    let h = &input.headers;
    let text = |name| h.get(name).and_then(|v| v.to_str().ok());
    let authorization = text(AUTHORIZATION).ok_or(CallbackError::Malformed)?;
    let x_qiniu: Vec<(String, String)> = h
        .iter()
        .filter(|(n, _)| n.as_str().starts_with(X_QINIU))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let received_host = text(HOST).unwrap_or(&public.host);
    let check = |path: &str, host: &str| {
        verify_with_body(
            signer,
            &CallbackRequest {
                method: &input.method,
                path,
                query: input.raw_query.as_deref(),
                host,
                content_type: text(CONTENT_TYPE),
                headers: &x_qiniu,
                body: &input.body,
                authorization,
            },
        )
    };
    match check(&input.raw_path, received_host) {
        Err(CallbackError::BadSignature)
            if (input.raw_path.as_str(), received_host)
                != (public.path.as_str(), public.host.as_str()) =>
        {
            check(&public.path, &public.host)
        }
        verdict => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::s;
    use serde_json::Value;

    const CALLBACK: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/qiniu/qiniu_callback.json"
    ));

    /// `https://host/path?query` → (host, path, query).
    fn split_url(url: &str) -> (&str, &str, Option<&str>) {
        let rest = url.split_once("://").unwrap().1;
        let slash = rest.find('/').unwrap();
        let (host, path_query) = rest.split_at(slash);
        match path_query.split_once('?') {
            Some((p, q)) => (host, p, Some(q)),
            None => (host, path_query, None),
        }
    }

    /// Header names lower-cased, as the HTTP layer hands them over.
    fn headers_of(v: &Value) -> Vec<(String, String)> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn scheme_of(v: &Value) -> Scheme {
        match s(v, "scheme") {
            "QBox" => Scheme::QBox,
            "Qiniu" => Scheme::Qiniu,
            other => panic!("unknown scheme {other}"),
        }
    }

    #[test]
    fn vectors_qiniu_callback() {
        let file: Value = serde_json::from_str(CALLBACK).unwrap();
        let (mut ran, mut positives, mut negatives) = (0, 0, 0);
        for v in file["vectors"].as_array().unwrap() {
            let name = s(v, "name");
            let scheme = scheme_of(v);

            // Signer side: every stage the vector carries.
            let signer = &v["signer"];
            let (url_host, path, query) = split_url(s(signer, "url"));
            let headers = headers_of(&signer["headers"]);
            let host = header(&headers, "host").unwrap_or(url_host);
            let content_type = signer["content_type"].as_str();
            let body = s(signer, "body").as_bytes();
            let data = match scheme {
                Scheme::QBox => qbox_string_to_sign(path, query, content_type, body),
                Scheme::Qiniu => {
                    let block = x_qiniu_headers(&headers);
                    assert_eq!(
                        block,
                        s(v, "x_qiniu_headers_block"),
                        "{name}: x-qiniu block"
                    );
                    qiniu_string_to_sign(
                        s(signer, "method"),
                        path,
                        query,
                        host,
                        content_type,
                        &headers,
                        body,
                    )
                }
            };
            assert_eq!(
                String::from_utf8(data.clone()).unwrap(),
                s(v, "string_to_sign"),
                "{name}: string to sign"
            );
            let auth = authorization(
                scheme,
                s(signer, "access_key"),
                s(signer, "secret_key"),
                &data,
            );
            assert_eq!(auth, s(v, "signed_authorization"), "{name}: authorization");

            // Server side: the SDK's verdict.
            let input = &v["verify_input"];
            let (url_host, path, query) = split_url(s(input, "url"));
            let headers = headers_of(&input["headers"]);
            let req = CallbackRequest {
                method: s(input, "method"),
                path,
                query,
                host: header(&headers, "host").unwrap_or(url_host),
                content_type: input["content_type"].as_str(),
                headers: &headers,
                body: s(input, "body").as_bytes(),
                authorization: s(input, "authorization"),
            };
            let server = Signer::new(s(input, "server_access_key"), s(input, "server_secret_key"));
            let verdict = verify(&server, &req);
            if v["valid"].as_bool().unwrap() {
                assert_eq!(verdict, Ok(()), "{name}: must be accepted");
                positives += 1;
            } else {
                assert!(verdict.is_err(), "{name}: must be refused");
                negatives += 1;
            }
            ran += 1;
        }
        assert_eq!((ran, positives, negatives), (23, 9, 14));
    }

    fn valid_qiniu_json<'a>(
        headers: &'a [(String, String)],
        authorization: &'a str,
    ) -> CallbackRequest<'a> {
        CallbackRequest {
            method: "POST",
            path: "/upload/callback",
            query: None,
            host: "api.example.com",
            content_type: Some("application/json"),
            headers,
            body: br#"{"objectId":1}"#,
            authorization,
        }
    }

    const AK: &str = "AKFAKE0000EXAMPLE0001";
    const SK: &str = "skFAKE/0000+EXAMPLE+secret/key=0001";

    fn signer() -> Signer {
        Signer::new(AK, SK)
    }

    fn public() -> PublicUrl {
        PublicUrl::of("https://api.example.com/sts/").unwrap()
    }

    #[test]
    fn public_url_is_host_with_port_and_path() {
        assert_eq!(
            public(),
            PublicUrl {
                host: "api.example.com".into(),
                path: "/sts/upload/callback".into()
            }
        );
        assert_eq!(
            PublicUrl::of("http://127.0.0.1:8080").unwrap(),
            PublicUrl {
                host: "127.0.0.1:8080".into(),
                path: "/upload/callback".into()
            }
        );
        assert_eq!(
            PublicUrl::of("not a url"),
            Err("server.public_base_url is not a URL".into())
        );
    }

    // Behind a proxy that rewrites path and Host, the signature Qiniu made for the public
    // callback URL still verifies; the same signature for another path does not.
    #[test]
    fn public_callback_url_is_the_fallback() {
        use crate::providers::qiniu::sts::CALLBACK_BODY_TYPE;
        use axum::http::{HeaderMap, HeaderValue};
        let (p, s) = (public(), signer());
        let body = "objectId=1&resourceType=2&bucket=stsgate-demo&object=k.png";
        let sign_for = |path: &str, host: &str| {
            let data = qiniu_string_to_sign(
                "POST",
                path,
                None,
                host,
                Some(CALLBACK_BODY_TYPE),
                &[],
                body.as_bytes(),
            );
            authorization(Scheme::Qiniu, AK, SK, &data)
        };
        let input = |auth: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(HOST, HeaderValue::from_static("10.0.0.7:8080"));
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(CALLBACK_BODY_TYPE));
            headers.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
            CallbackInput {
                method: "POST".into(),
                raw_path: "/upload/callback".into(),
                raw_query: None,
                headers,
                body: bytes::Bytes::from(body),
            }
        };
        let public = sign_for("/sts/upload/callback", "api.example.com");
        assert_eq!(verify_received(&s, &p, &input(&public)), Ok(()));
        let received = sign_for("/upload/callback", "10.0.0.7:8080");
        assert_eq!(verify_received(&s, &p, &input(&received)), Ok(()));
        let other = sign_for("/other/upload/callback", "api.example.com");
        assert_eq!(
            verify_received(&s, &p, &input(&other)),
            Err(CallbackError::BadSignature)
        );
        let mut no_auth = input(&public);
        no_auth.headers.remove(AUTHORIZATION);
        assert_eq!(
            verify_received(&s, &p, &no_auth),
            Err(CallbackError::Malformed)
        );
    }

    // Every single-byte change of a valid signature (to any other base64url character or '=')
    // is refused; the valid one comes from the vector file, not from this code.
    #[test]
    fn one_altered_signature_byte_is_refused() {
        let valid = "Qiniu AKFAKE0000EXAMPLE0001:ZnkN6KYxOo-H_bfGB36h91M4MPI=";
        const BODY: &[u8] = b"key=uploads%2Fuser-42%2Fa.jpg&hash=FmDZwqadA4-ib_15hYfQpb7UXUYR&fsize=20480&mime=image%2Fjpeg&bucket=stsgate-demo&uid=42";
        fn req(authorization: &str) -> CallbackRequest<'_> {
            CallbackRequest {
                method: "POST",
                path: "/qiniu/callback",
                query: None,
                host: "api.example.com",
                content_type: Some(FORM),
                headers: &[],
                body: BODY,
                authorization,
            }
        }
        assert_eq!(verify(&signer(), &req(valid)), Ok(()));
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
        let start = valid.find(':').unwrap() + 1;
        let mut tried = 0;
        for i in start..valid.len() {
            for &c in alphabet {
                if valid.as_bytes()[i] == c {
                    continue;
                }
                let mut altered = valid.as_bytes().to_vec();
                altered[i] = c;
                let altered = String::from_utf8(altered).unwrap();
                assert_eq!(
                    verify(&signer(), &req(&altered)),
                    Err(CallbackError::BadSignature),
                    "{altered}"
                );
                tried += 1;
            }
        }
        assert_eq!(tried, 28 * 64);
    }

    #[test]
    fn malformed_and_foreign_headers_are_classified() {
        let headers = [];
        for bad in [
            "",
            "QBox",
            "QBox ",
            "QBox AK",
            "QBox :sig",
            "QBox AK:",
            "QBox AK:a:b",
            "qiniu AK:sig",
            "Bearer AK:sig",
            " QBox AK:sig",
        ] {
            assert_eq!(
                verify(&signer(), &valid_qiniu_json(&headers, bad)),
                Err(CallbackError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(&signer(), &valid_qiniu_json(&headers, "Qiniu OTHER:sig=")),
            Err(CallbackError::WrongAccessKey)
        );
    }

    #[test]
    fn qbox_json_body_verifies_but_is_not_signed() {
        // The SDK accepts this vector (`qbox_json_body_not_covered`); the body is free.
        let req = CallbackRequest {
            method: "POST",
            path: "/qiniu/callback",
            query: None,
            host: "evil.example.net",
            content_type: Some("application/json"),
            headers: &[],
            body: br#"{"fsize":99999999}"#,
            authorization: "QBox AKFAKE0000EXAMPLE0001:sOPyQ3B6iV2ik8t_p8W3kY9xocQ=",
        };
        assert_eq!(verify(&signer(), &req), Ok(()));
        assert!(!body_is_signed(&req));
        assert_eq!(
            verify_with_body(&signer(), &req),
            Err(CallbackError::UnsignedBody)
        );
        // A parameterised form type is not an exact match either.
        let req = CallbackRequest {
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
            ..req
        };
        assert_eq!(
            verify_with_body(&signer(), &req),
            Err(CallbackError::UnsignedBody)
        );
        // The empty body has nothing to forge.
        let req = CallbackRequest { body: b"", ..req };
        assert_eq!(verify_with_body(&signer(), &req), Ok(()));
    }

    #[test]
    fn signed_bodies_pass_verify_with_body() {
        let headers = vec![("x-qiniu-date".to_owned(), "20250101T000005Z".to_owned())];
        let unsigned = valid_qiniu_json(&headers, "");
        let data = string_to_sign(Scheme::Qiniu, &unsigned);
        let auth = authorization(Scheme::Qiniu, AK, SK, &data);
        let req = valid_qiniu_json(&headers, &auth);
        assert!(body_is_signed(&req));
        assert_eq!(verify_with_body(&signer(), &req), Ok(()));
        let octet = CallbackRequest {
            content_type: Some(OCTET_STREAM),
            ..req
        };
        assert!(!body_is_signed(&octet));
    }

    #[test]
    fn x_qiniu_block_canonicalises_sorts_and_filters() {
        let h = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        let headers = [
            h("x-qiniu-zz", "3"),
            h("X-QINIU-AB", "1"),
            h("x-qiniu-", "ignored: nothing after the prefix"),
            h("x-qiniu-ab", "duplicate: first value wins"),
            h("x-qiniux", "ignored: no dash"),
            h("content-type", "application/json"),
        ];
        assert_eq!(x_qiniu_headers(&headers), "X-Qiniu-Ab: 1\nX-Qiniu-Zz: 3");
        assert_eq!(x_qiniu_headers(&[h("x-qiniu-é", "1")]), "X-Qiniu-é: 1");
    }

    #[test]
    fn missing_content_type_signs_as_form_with_body() {
        let data = qiniu_string_to_sign("POST", "/cb", Some(""), "h", None, &[], b"a=1");
        assert_eq!(
            data,
            b"POST /cb\nHost: h\nContent-Type: application/x-www-form-urlencoded\n\na=1"
        );
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(
            authorization in ".*",
            raw_auth in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            content_type in proptest::option::of(".*"),
            header_name in ".*",
            header_value in ".*",
        ) {
            let headers = vec![(header_name, header_value)];
            let prefixed = format!("Qiniu {}", String::from_utf8_lossy(&raw_auth));
            for auth in [authorization.as_str(), prefixed.as_str(), "QBox AKFAKE0000EXAMPLE0001:x"] {
                let req = CallbackRequest {
                    method: "POST",
                    path: "/upload/callback",
                    query: Some("a=b"),
                    host: "api.example.com",
                    content_type: content_type.as_deref(),
                    headers: &headers,
                    body: &body,
                    authorization: auth,
                };
                let _ = verify(&signer(), &req);
                let _ = verify_with_body(&signer(), &req);
                let _ = body_is_signed(&req);
            }
        }

        #[test]
        fn verify_received_never_panics(
            auth in "(QBox |Qiniu )?[ -~]{0,60}",
            path in "/[ -~]{0,40}",
            query in proptest::option::of("[ -~]{0,40}"),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            use axum::http::{HeaderMap, HeaderValue};
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&auth) {
                headers.insert(AUTHORIZATION, v);
            }
            headers.insert("x-qiniu-date", HeaderValue::from_static("20250101T000000Z"));
            let input = CallbackInput {
                method: "POST".into(),
                raw_path: path,
                raw_query: query,
                headers,
                body: bytes::Bytes::from(body),
            };
            proptest::prop_assert!(verify_received(&signer(), &public(), &input).is_err());
        }
    }
}
