//! The AWS-only SigV4 schemes, on top of the shared wrapper in [`crate::providers::sigv4`]
//! (AWS's own `aws-sigv4` crate; no hand-written SigV4):
//!
//! - [`presign_s3`] presigns an S3 request in the query string.
//! - [`post_policy_signature`] signs a browser POST policy: `hex(HMAC-SHA256(signing key,
//!   base64 policy))`, with the crate's public key-derivation and signing functions.
//!
//! Request signing itself ([`crate::providers::sigv4::sign_request`]) is shared with KSyun;
//! the AWS STS vectors that drive it are tested here.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::providers::sigv4::{SigV4Key, SigV4Request};

/// Content-Type of the STS query protocol.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The query parameters of a presigned request (`X-Amz-Algorithm`, `X-Amz-Credential`,
/// `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Security-Token` with
/// temporary keys, and `X-Amz-Signature`), in the order aws-sigv4 gives them.
pub struct Presigned {
    /// Parameter name and (unencoded) value.
    pub params: Vec<(&'static str, String)>,
    /// Hex signature.
    pub signature: String,
}

impl std::fmt::Debug for Presigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The security token is a secret; the URL as a whole is a bearer capability.
        f.debug_struct("Presigned")
            .field(
                "params",
                &self.params.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Presigns an S3 request in the query string (S3 rules: the path encoded once and not
/// normalised, payload `UNSIGNED-PAYLOAD`; `req.body` is ignored), valid for `expires_in`
/// (at most 7 days). Append the parameters, percent-encoded, to `req.url`.
pub fn presign_s3(
    key: SigV4Key<'_>,
    req: &SigV4Request<'_>,
    expires_in: std::time::Duration,
) -> Result<Presigned, String> {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignatureLocation, UriPathNormalizationMode,
    };
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_string),
        None,
        "stsgate",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(req.region)
        .name(req.service)
        .time(req.time)
        .settings(settings)
        .build()
        .map_err(|e| format!("sigv4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.signed_headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| format!("sigv4 request: {e}"))?;
    // As in sign_request: no subscriber sees the identity.
    let none = tracing::Dispatch::none();
    let (instructions, signature) =
        tracing::dispatcher::with_default(&none, || sign(signable, &params))
            .map_err(|e| format!("sigv4 signing: {e}"))?
            .into_parts();
    let (_, query) = instructions.into_parts();
    let params = query
        .into_iter()
        .map(|(n, v)| (n, v.into_owned()))
        .collect();
    Ok(Presigned { params, signature })
}

/// A presigned `PUT` of `key` under `bucket_url` (virtual-host `https://{bucket}.host/` or
/// path-style `{endpoint}/{bucket}`), signed with `cred` at `time`, valid `expires_in`, with
/// `Content-Type: content_type` signed when given (the client must send it as it is). Key
/// segments are percent-encoded once (S3's URI encoding; `/` kept).
pub fn presigned_put(
    cred: SigV4Key<'_>,
    bucket_url: &str,
    key: &str,
    region: &str,
    content_type: Option<&str>,
    time: std::time::SystemTime,
    expires_in: std::time::Duration,
) -> Result<crate::providers::PresignedPut, String> {
    use crate::providers::crypto::percent_encode;
    let path: Vec<String> = key.split('/').map(percent_encode).collect();
    let url = format!("{}/{}", bucket_url.trim_end_matches('/'), path.join("/"));
    let headers: Vec<(&str, &str)> = content_type
        .map(|c| ("content-type", c))
        .into_iter()
        .collect();
    let p = presign_s3(
        cred,
        &SigV4Request {
            method: "PUT",
            url: &url,
            signed_headers: &headers,
            body: b"",
            region,
            service: "s3",
            time,
        },
        expires_in,
    )?;
    let query: Vec<String> = p
        .params
        .iter()
        .map(|(n, v)| format!("{n}={}", percent_encode(v)))
        .collect();
    Ok(crate::providers::PresignedPut {
        url: format!("{url}?{}", query.join("&")),
        headers: content_type
            .map(|c| ("Content-Type".to_string(), c.to_string()))
            .into_iter()
            .collect(),
    })
}

/// SHA-256 of the empty body (`x-amz-content-sha256` of a `HEAD` or `DELETE`).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The URL of `key` under `bucket_url` (virtual-host or path-style, as the form URL), each
/// key segment percent-encoded once (S3's URI encoding; `/` kept).
pub fn object_url(bucket_url: &str, key: &str) -> String {
    use crate::providers::crypto::percent_encode;
    let path: Vec<String> = key.split('/').map(percent_encode).collect();
    format!("{}/{}", bucket_url.trim_end_matches('/'), path.join("/"))
}

/// Signs a body-less S3 request (`HEAD`, `DELETE`) of `url` in the `Authorization` header
/// with `key` at `time` (S3 rules: the path encoded once and not normalised,
/// `x-amz-content-sha256` of the empty body signed). Returns the headers to send
/// (`x-amz-date`, `x-amz-content-sha256`, `authorization`, and the token header when the
/// key has one).
pub fn sign_object_request(
    key: SigV4Key<'_>,
    method: &str,
    url: &str,
    region: &str,
    time: SystemTime,
) -> Result<crate::providers::sigv4::Signed, String> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, UriPathNormalizationMode,
    };
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_string),
        None,
        "stsgate",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("sigv4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        std::iter::empty::<(&str, &str)>(),
        SignableBody::Bytes(b""),
    )
    .map_err(|e| format!("sigv4 request: {e}"))?;
    // As in sign_request: no subscriber sees the identity.
    let none = tracing::Dispatch::none();
    let (instructions, signature) =
        tracing::dispatcher::with_default(&none, || sign(signable, &params))
            .map_err(|e| format!("sigv4 signing: {e}"))?
            .into_parts();
    let (headers, _) = instructions.into_parts();
    let headers = headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect();
    Ok(crate::providers::sigv4::Signed { headers, signature })
}

/// The browser POST policy signature: `hex(HMAC-SHA256(signing key, policy_base64))`.
pub fn post_policy_signature(
    secret: &str,
    time: SystemTime,
    region: &str,
    service: &str,
    policy_base64: &str,
) -> String {
    let key = v4::generate_signing_key(secret, time, region, service);
    v4::calculate_signature(key, policy_base64.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::sigv4::{amz_date, credential, form_encode, sign_request, signing_key};
    use crate::providers::test_vectors::{amz_time, s};
    use serde_json::Value;
    use std::time::Duration;

    const STS: &str = include_str!("../../../tests/vectors/aws/aws_sigv4_sts.json");
    const POST: &str = include_str!("../../../tests/vectors/aws/aws_s3_post_policy.json");

    fn param_pairs(params: &Value) -> Vec<(String, String)> {
        // botocore serialises in the caller's keyword order, which the vectors list in this order.
        const ORDER: [&str; 7] = [
            "RoleArn",
            "RoleSessionName",
            "DurationSeconds",
            "ExternalId",
            "Policy",
            "Tags",
            "SourceIdentity",
        ];
        let obj = params.as_object().unwrap();
        assert!(
            obj.keys().all(|k| ORDER.contains(&k.as_str())),
            "unknown param"
        );
        let mut out = Vec::new();
        for (k, v) in ORDER.iter().filter_map(|k| obj.get_key_value(*k)) {
            match v {
                Value::String(s) => out.push((k.clone(), s.clone())),
                Value::Number(n) => out.push((k.clone(), n.to_string())),
                Value::Array(items) => {
                    // botocore's query-protocol list flattening: Tags.member.N.Key/Value.
                    for (i, item) in items.iter().enumerate() {
                        for (ik, iv) in item.as_object().unwrap() {
                            out.push((
                                format!("{k}.member.{}.{ik}", i + 1),
                                iv.as_str().unwrap().to_string(),
                            ));
                        }
                    }
                }
                other => panic!("unexpected param {other}"),
            }
        }
        out
    }

    #[test]
    fn vectors_aws_sigv4_sts() {
        let file: Value = serde_json::from_str(STS).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let input = &v["input"];
            let exp = &v["expected"];
            // The body, rebuilt from the parameters in the vector's order.
            let mut pairs = vec![
                ("Action".to_string(), "AssumeRole".to_string()),
                ("Version".to_string(), "2011-06-15".to_string()),
            ];
            pairs.extend(param_pairs(&input["params"]));
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = form_encode(&borrowed);
            assert_eq!(body, s(input, "body"), "{id}: body");

            let time = amz_time(s(input, "amz_date"));
            assert_eq!(amz_date(time), s(input, "amz_date"), "{id}: amz_date");
            let key = SigV4Key {
                access_key_id: s(input, "access_key_id"),
                secret_access_key: s(input, "secret_access_key"),
                session_token: input["session_token"].as_str(),
            };
            assert_eq!(
                crate::providers::crypto::hex(signing_key(
                    key.secret_access_key,
                    time,
                    s(input, "region"),
                    s(input, "service")
                )),
                s(exp, "signing_key_hex"),
                "{id}: signing key"
            );
            let signed = sign_request(
                key,
                &SigV4Request {
                    method: s(input, "method"),
                    url: s(input, "url"),
                    signed_headers: &[("content-type", s(input, "content_type"))],
                    body: body.as_bytes(),
                    region: s(input, "region"),
                    service: s(input, "service"),
                    time,
                },
            )
            .unwrap();
            assert_eq!(signed.signature, s(exp, "signature"), "{id}: signature");
            let get = |name: &str| {
                signed
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("authorization"), Some(s(exp, "authorization")), "{id}");
            assert_eq!(get("x-amz-date"), Some(s(input, "amz_date")), "{id}");
            assert_eq!(
                get("x-amz-security-token"),
                input["session_token"].as_str(),
                "{id}: security token header"
            );
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 8);
    }

    #[test]
    fn post_policy_signature_matches_every_s3_post_vector() {
        let file: Value = serde_json::from_str(POST).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let input = &v["input"];
            let exp = &v["expected"];
            let time = amz_time(s(input, "amz_date"));
            let sig = post_policy_signature(
                s(input, "secret_access_key"),
                time,
                s(input, "region"),
                s(input, "service"),
                s(exp, "string_to_sign"),
            );
            assert_eq!(sig, s(exp, "x_amz_signature"), "{id}");
            assert_eq!(
                credential(
                    s(input, "access_key_id"),
                    time,
                    s(input, "region"),
                    s(input, "service")
                ),
                s(exp, "x_amz_credential"),
                "{id}"
            );
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
    }

    const PUT: &str = include_str!("../../../tests/vectors/aws/aws_s3_presigned_put.json");

    /// botocore `generate_presigned_url('put_object')`: every vector's signature, and the
    /// URL's query parameters (botocore orders them differently; the set is what counts).
    #[test]
    fn vectors_aws_s3_presigned_put() {
        let file: Value = serde_json::from_str(PUT).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let input = &v["input"];
            let exp = &v["expected"];
            let full = s(exp, "url");
            let (base, query) = full.split_once('?').unwrap();
            let time = amz_time(s(input, "amz_date"));
            let content_type = input["extra_params"]["ContentType"].as_str();
            let headers: Vec<(&str, &str)> = content_type
                .map(|c| ("content-type", c))
                .into_iter()
                .collect();
            let key = SigV4Key {
                access_key_id: s(input, "access_key_id"),
                secret_access_key: s(input, "secret_access_key"),
                session_token: input["session_token"].as_str(),
            };
            assert_eq!(
                crate::providers::crypto::hex(signing_key(
                    key.secret_access_key,
                    time,
                    s(input, "region"),
                    "s3"
                )),
                s(exp, "signing_key_hex"),
                "{id}: signing key"
            );
            let p = presign_s3(
                key,
                &SigV4Request {
                    method: s(input, "method"),
                    url: base,
                    signed_headers: &headers,
                    body: b"",
                    region: s(input, "region"),
                    service: s(input, "service"),
                    time,
                },
                Duration::from_secs(input["expires_in"].as_u64().unwrap()),
            )
            .unwrap();
            assert_eq!(p.signature, s(exp, "signature"), "{id}: signature");
            // The whole URL, as the answer's uploadUrl carries it.
            let put = presigned_put(
                SigV4Key {
                    access_key_id: s(input, "access_key_id"),
                    secret_access_key: s(input, "secret_access_key"),
                    session_token: input["session_token"].as_str(),
                },
                &{
                    let u = reqwest::Url::parse(base).unwrap();
                    let origin = u.origin().ascii_serialization();
                    if s(input, "addressing_style") == "path" {
                        format!("{origin}/{}", s(input, "bucket"))
                    } else {
                        origin
                    }
                },
                s(input, "key"),
                s(input, "region"),
                content_type,
                time,
                Duration::from_secs(input["expires_in"].as_u64().unwrap()),
            )
            .unwrap();
            let mut want: Vec<&str> = query.split('&').collect();
            let (got_base, got_query) = put.url.split_once('?').unwrap();
            let mut have: Vec<&str> = got_query.split('&').collect();
            want.sort();
            have.sort();
            assert_eq!((got_base, have), (base, want), "{id}: uploadUrl");
            let mut got: Vec<(String, String)> = p
                .params
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            got.sort();
            let mut want: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            want.sort();
            assert_eq!(got, want, "{id}: query parameters");
            assert!(!format!("{p:?}").contains("FwoGZX"), "{id}: Debug redacts");
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 6);
    }

    /// Every vector of `aws_s3_object.json` (botocore `S3SigV4Auth`, the HEAD that confirms
    /// an upload and the DELETE of a rejected one, long-term key): the object URL (path and
    /// virtual-host style, keys with spaces, `+`, reserved characters and non-ASCII) and the
    /// whole `Authorization` header.
    #[test]
    fn vectors_aws_s3_object() {
        let file: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/vectors/aws/aws_s3_object.json"
        ))
        .unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let (id, input, want) = (v["id"].as_str().unwrap(), &v["input"], &v["expected"]);
            let s = |o: &serde_json::Value, k: &str| o[k].as_str().unwrap().to_string();
            let bucket_url = crate::providers::aws::form::bucket_url(
                &s(input, "endpoint"),
                &s(input, "region"),
                &s(input, "bucket"),
                s(input, "addressing_style") == "path",
            );
            let url = object_url(&bucket_url, &s(input, "key"));
            assert_eq!(url, s(want, "url"), "{id}: url");
            let time = SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(input["unix_time"].as_u64().unwrap());
            let signed = sign_object_request(
                SigV4Key {
                    access_key_id: &s(input, "access_key_id"),
                    secret_access_key: &s(input, "secret_access_key"),
                    session_token: None,
                },
                &s(input, "method"),
                &url,
                &s(input, "region"),
                time,
            )
            .unwrap();
            let h = |n: &str| {
                signed
                    .headers
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            for n in ["x-amz-date", "x-amz-content-sha256", "authorization"] {
                assert_eq!(h(n), s(want, n), "{id}: {n}");
            }
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 5);
    }

    #[test]
    fn object_requests_are_signed_as_s3_checks_them() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let url = object_url("http://127.0.0.1:9000/b/", "k/a b+c.png");
        assert_eq!(url, "http://127.0.0.1:9000/b/k/a%20b%2Bc.png");
        let key = SigV4Key {
            access_key_id: "AKIDHEAD",
            secret_access_key: "headSecret",
            session_token: None,
        };
        let signed = sign_object_request(key, "HEAD", &url, "eu-west-1", time).unwrap();
        let h = |n: &str| {
            signed
                .headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("x-amz-content-sha256").as_deref(), Some(EMPTY_SHA256));
        assert_eq!(h("x-amz-date").as_deref(), Some("20231114T221320Z"));
        assert!(h("x-amz-security-token").is_none());
        let auth = h("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDHEAD/20231114/eu-west-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
            ),
            "{auth}"
        );
        // The signature, recomputed by hand (canonical request, string to sign, HMAC chain).
        let canonical = format!(
            "HEAD\n/b/k/a%20b%2Bc.png\n\nhost:127.0.0.1:9000\nx-amz-content-sha256:{EMPTY_SHA256}\n\
             x-amz-date:20231114T221320Z\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
        );
        let sts = format!(
            "AWS4-HMAC-SHA256\n20231114T221320Z\n20231114/eu-west-1/s3/aws4_request\n{}",
            hex::encode(crate::providers::crypto::sha256(canonical.as_bytes()))
        );
        let want = hex::encode(crate::providers::crypto::hmac_sha256(
            &crate::providers::sigv4::signing_key("headSecret", time, "eu-west-1", "s3"),
            sts.as_bytes(),
        ));
        assert_eq!(signed.signature, want);
        assert!(auth.ends_with(&want));
        // DELETE differs only by the method.
        let del = sign_object_request(key, "DELETE", &url, "eu-west-1", time).unwrap();
        assert_ne!(del.signature, signed.signature);
    }
}
