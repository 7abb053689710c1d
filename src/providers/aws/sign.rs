//! AWS Signature Version 4 through AWS's own `aws-sigv4` crate (no hand-written SigV4), for
//! every cloud that speaks it: AWS STS and S3-compatible stores, and KSyun STS.
//!
//! - [`sign_request`] signs one HTTP request (STS query protocol: a form POST; KSyun's ks3sdk
//!   shape: a GET with a query and a JSON body) and returns the headers to add.
//! - [`post_policy_signature`] signs a browser POST policy: `hex(HMAC-SHA256(signing key,
//!   base64 policy))`, with the crate's public key-derivation and signing functions.
//! - [`form_encode`] builds a body byte-identical to botocore's (`quote_plus`, nothing safe
//!   but `A-Za-z0-9-_.~`); the signature covers the exact bytes, so any valid encoding works,
//!   but matching botocore makes the official vectors reproducible to the byte.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::providers::crypto::percent_encode;

/// Content-Type of the STS query protocol.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The algorithm name (`x-amz-algorithm`).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs. `Debug` shows only the access key id's first four characters.
#[derive(Clone, Copy)]
pub struct SigV4Key<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Session token when the signer itself holds temporary credentials (then sent and
    /// signed as `X-Amz-Security-Token`).
    pub session_token: Option<&'a str>,
}

impl std::fmt::Debug for SigV4Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Key")
            .field("access_key_id", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct SigV4Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Full URL, already percent-encoded, with its query (`https://sts.us-east-1.amazonaws.com/`).
    /// Its authority is the signed `host`.
    pub url: &'a str,
    /// Headers to sign besides `host` and `x-amz-date` (e.g. `content-type` for AWS STS;
    /// none for KSyun's ks3sdk shape). Send them with exactly these values.
    pub signed_headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
    /// Signing region (`sts_region`).
    pub region: &'a str,
    /// Signing service (`sts`, `s3`).
    pub service: &'a str,
    /// Signing time.
    pub time: SystemTime,
}

/// The headers to add to the request (`x-amz-date`, `authorization`, and
/// `x-amz-security-token` when the key has one), plus the bare signature.
pub struct Signed {
    /// Header name (lower case) and value.
    pub headers: Vec<(&'static str, String)>,
    /// Hex signature.
    pub signature: String,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signature is not a secret, but the security-token header is.
        f.debug_struct("Signed")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("signature", &self.signature)
            .finish()
    }
}

/// Signs `req` with `key`. Errors name what was wrong (never a secret).
pub fn sign_request(key: SigV4Key<'_>, req: &SigV4Request<'_>) -> Result<Signed, String> {
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_string),
        None,
        "stsgate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(req.region)
        .name(req.service)
        .time(req.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("sigv4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.signed_headers.iter().copied(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| format!("sigv4 request: {e}"))?;
    // aws-sigv4 traces the request and the signing identity, access key id included; run it
    // with no subscriber so nothing of the key reaches stsgate's logs at any level.
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
    Ok(Signed { headers, signature })
}

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

/// `x-amz-date` for `time`: `YYYYMMDD'T'HHMMSS'Z'`.
pub fn amz_date(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `{access_key_id}/{YYYYMMDD}/{region}/{service}/aws4_request` (`x-amz-credential`).
pub fn credential(access_key_id: &str, time: SystemTime, region: &str, service: &str) -> String {
    let date = &amz_date(time)[..8];
    format!("{access_key_id}/{date}/{region}/{service}/aws4_request")
}

/// The SigV4 signing key, `HMAC chain("AWS4"+secret, date, region, service, "aws4_request")`.
pub fn signing_key(secret: &str, time: SystemTime, region: &str, service: &str) -> Vec<u8> {
    v4::generate_signing_key(secret, time, region, service)
        .as_ref()
        .to_vec()
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

/// Form-encodes `pairs` as botocore does (`urllib.parse.urlencode`: unreserved
/// `A-Za-z0-9-_.~` kept, space as `+`, everything else `%XX` of the UTF-8 bytes).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(k).replace("%20", "+"));
        out.push('=');
        out.push_str(&percent_encode(v).replace("%20", "+"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn signing_logs_nothing_even_at_trace() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::trace!("before");
            sign_request(
                SigV4Key {
                    access_key_id: "AKIDLEAKCHECK",
                    secret_access_key: "s3cr3t",
                    session_token: Some("tok3n"),
                },
                &SigV4Request {
                    method: "POST",
                    url: "https://sts.us-east-1.amazonaws.com/",
                    signed_headers: &[("content-type", FORM_CONTENT_TYPE)],
                    body: b"Action=AssumeRole",
                    region: "us-east-1",
                    service: "sts",
                    time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                },
            )
            .unwrap();
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("before"), "the capture works");
        for secret in ["AKIDLEAKCHECK", "s3cr3t", "tok3n"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn debug_redacts_keys_and_tokens() {
        let key = SigV4Key {
            access_key_id: "AKIDSECRETID",
            secret_access_key: "s3cr3t",
            session_token: Some("tok3n"),
        };
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("AKIDSECRETID") && !dbg.contains("s3cr3t") && !dbg.contains("tok3n"));
        let signed = sign_request(
            key,
            &SigV4Request {
                method: "POST",
                url: "https://sts.us-east-1.amazonaws.com/",
                signed_headers: &[("content-type", FORM_CONTENT_TYPE)],
                body: b"Action=AssumeRole",
                region: "us-east-1",
                service: "sts",
                time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            },
        )
        .unwrap();
        assert!(signed
            .headers
            .iter()
            .any(|(n, v)| *n == "x-amz-security-token" && v == "tok3n"));
        assert!(!format!("{signed:?}").contains("tok3n"));
    }

    proptest::proptest! {
        #[test]
        fn form_encode_round_trips(k in "[A-Za-z]{1,8}", v in "\\PC{0,40}") {
            let enc = form_encode(&[(&k, &v)]);
            let back: Vec<(String, String)> = form_urlencoded::parse(enc.as_bytes()).into_owned().collect();
            proptest::prop_assert_eq!(back, vec![(k.clone(), v.clone())]);
            proptest::prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%+=".contains(&b)));
        }
    }
}
