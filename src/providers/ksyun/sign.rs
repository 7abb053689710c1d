//! KSyun signing: thin wrappers that sign STS `AssumeRole` with the shared SigV4 signer
//! ([`crate::providers::sigv4`], AWS's `aws-sigv4` crate). There is no SigV4 code here; the
//! KS3 browser POST signature (KS3 "V2", HMAC-SHA1) is the shared
//! [`crate::providers::form::sign_policy_hmac_sha1`] (see `form.rs`).
//!
//! Formulas (docs/providers/ksyun.md):
//! - STS: plain AWS Signature Version 4, service `sts`, the configured region as the
//!   credential-scope region, host `sts.api.ksyun.com` for every region.
//! - KS3 POST: `Policy = b64(policy JSON)`, `Signature = b64(HMAC-SHA1(SK, Policy))`.

use std::time::SystemTime;

use crate::providers::crypto::{hex, sha256};
use crate::providers::sigv4::{sign_request, SigV4Key, SigV4Request};

/// SigV4 signing service of KSyun STS.
pub const STS_SERVICE: &str = "sts";

/// Content-Type of the form POST shape, exactly as `kingsoftcloud-sdk-python` sends and signs it.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// `x-amz-content-sha256 = hex(SHA256(body))` (signed in the form POST shape).
pub fn payload_hash(body: &[u8]) -> String {
    hex(sha256(body))
}

/// The headers to send with a signed `AssumeRole` form POST, in order. `Debug` shows only
/// the names: `authorization` is a credential.
pub struct StsHeaders(pub Vec<(&'static str, String)>);

impl std::fmt::Debug for StsHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| *n))
            .finish()
    }
}

impl StsHeaders {
    /// The value of header `name` (lower case), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Signs an `AssumeRole` form POST the way `kingsoftcloud-sdk-python` does:
/// `SignedHeaders = content-type;host;x-amz-content-sha256;x-amz-date`, payload hash of the
/// exact `body` bytes. `url` is the STS endpoint with path `/` (its authority is the signed
/// `host`). Returns every header to send besides `host`: `content-type`,
/// `x-amz-content-sha256`, `x-amz-date`, `authorization`.
pub fn sign_assume_role_form(
    access_key_id: &str,
    secret_access_key: &str,
    url: &str,
    body: &[u8],
    region: &str,
    time: SystemTime,
) -> Result<StsHeaders, String> {
    let hash = payload_hash(body);
    let signed = sign_request(
        SigV4Key {
            access_key_id,
            secret_access_key,
            session_token: None,
        },
        &SigV4Request {
            method: "POST",
            url,
            signed_headers: &[
                ("content-type", FORM_CONTENT_TYPE),
                ("x-amz-content-sha256", &hash),
            ],
            body,
            region,
            service: STS_SERVICE,
            time,
        },
    )?;
    let mut headers = vec![
        ("content-type", FORM_CONTENT_TYPE.to_string()),
        ("x-amz-content-sha256", hash),
    ];
    headers.extend(signed.headers);
    Ok(StsHeaders(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::sigv4::{amz_date, credential, form_encode, signing_key};
    use crate::providers::test_vectors::s;
    use serde_json::Value;
    use std::time::Duration;

    const STS: &str = include_str!("../../../tests/vectors/ksyun/ksyun_sts.json");

    /// `2025-01-01T00:00:00Z` → SystemTime.
    fn parse_utc(d: &str) -> SystemTime {
        let t =
            time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp() as u64)
    }

    /// `Credential=<AK>/<scope>, SignedHeaders=<list>, Signature=<hex>` → its three parts.
    fn auth_parts(auth: &str) -> (String, String, String) {
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").unwrap();
        let mut it = rest.split(", ");
        let c = it.next().unwrap().strip_prefix("Credential=").unwrap();
        let h = it.next().unwrap().strip_prefix("SignedHeaders=").unwrap();
        let sig = it.next().unwrap().strip_prefix("Signature=").unwrap();
        (c.into(), h.into(), sig.into())
    }

    /// Compact JSON in the key order the SDK's caller wrote (`json.dumps` keeps insertion
    /// order; `serde_json::Value` sorts keys, so the order is restored here).
    fn sdk_json(v: &Value) -> String {
        const ORDER: [&str; 5] = ["Version", "Statement", "Effect", "Action", "Resource"];
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).expect("known key"));
                let parts: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}:{}", Value::from(k.as_str()), sdk_json(&m[*k])))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(a) => {
                format!("[{}]", a.iter().map(sdk_json).collect::<Vec<_>>().join(","))
            }
            other => other.to_string(),
        }
    }

    /// The body `kingsoftcloud-sdk-python` 1.5.8.114 builds (its parameters, then its own
    /// fields), rebuilt here from the vector's inputs in the SDK's order.
    fn sdk_form_body(input: &Value) -> String {
        let duration = input["duration_seconds"].as_u64().unwrap().to_string();
        let policy = (!input["policy"].is_null()).then(|| sdk_json(&input["policy"]));
        let mut pairs: Vec<(&str, &str)> = vec![
            ("RoleKrn", s(input, "role_krn")),
            ("RoleSessionName", s(input, "role_session_name")),
            ("DurationSeconds", &duration),
        ];
        if let Some(p) = &policy {
            pairs.push(("Policy", p));
        }
        pairs.extend([
            ("Service", "sts"),
            ("Action", "AssumeRole"),
            ("Version", "2015-11-01"),
            ("SdkVersion", "SDK_PYTHON_1.5.8.114"),
            ("Region", s(input, "region")),
            ("Accesskey", s(input, "access_key")),
            ("Language", "zh-CN"),
        ]);
        form_encode(&pairs)
    }

    /// Every vector of `ksyun_sts.json`: the five ks3sdk GET + JSON body captures signed with
    /// no extra signed header (content-type/accept sent unsigned), and the two newer-SDK form
    /// POSTs through [`sign_assume_role_form`], the wrapper stsgate uses. Every stage the
    /// shared signer exposes is asserted: date, scope, signing key, signature, Authorization.
    #[test]
    fn vectors_ksyun_sts() {
        let file: Value = serde_json::from_str(STS).unwrap();
        let vectors = file["vectors"].as_array().unwrap();
        let mut ran = 0;
        let (mut get_shape, mut form_shape) = (0, 0);
        for v in vectors {
            let name = s(v, "name");
            let input = &v["input"];
            let exp = &v["expected"];
            let (ak, sk, region) = (
                s(input, "access_key"),
                s(input, "secret_key"),
                s(input, "region"),
            );
            assert_eq!(s(input, "service"), STS_SERVICE, "{name}");
            let time = parse_utc(s(input, "now_utc"));
            assert_eq!(
                hex(signing_key(sk, time, region, STS_SERVICE)),
                s(exp, "signing_key_hex"),
                "{name}: signing key"
            );
            let scope = credential(ak, time, region, STS_SERVICE);
            assert_eq!(
                scope,
                format!("{ak}/{}", s(exp, "credential_scope")),
                "{name}: scope"
            );
            let authorization = if input["method"] == "GET" {
                // ks3sdk shape: GET /?Action=AssumeRole&Version=2015-11-01 with a JSON body;
                // only host;x-amz-date are signed.
                assert_eq!(s(exp, "x_amz_date"), amz_date(time), "{name}");
                let url = format!(
                    "https://{}{}?{}",
                    s(input, "host"),
                    s(input, "path"),
                    s(input, "query")
                );
                let signed = sign_request(
                    SigV4Key {
                        access_key_id: ak,
                        secret_access_key: sk,
                        session_token: None,
                    },
                    &SigV4Request {
                        method: "GET",
                        url: &url,
                        signed_headers: &[],
                        body: s(input, "body").as_bytes(),
                        region,
                        service: STS_SERVICE,
                        time,
                    },
                )
                .unwrap();
                assert_eq!(signed.signature, s(exp, "signature"), "{name}: signature");
                let get = |n: &str| {
                    signed
                        .headers
                        .iter()
                        .find(|(h, _)| h.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                };
                let finals = &exp["final_headers"];
                assert_eq!(
                    get("x-amz-date").as_deref(),
                    finals["x-amz-date"].as_str(),
                    "{name}"
                );
                assert_eq!(
                    get("authorization").as_deref(),
                    finals["Authorization"].as_str(),
                    "{name}: the captured header"
                );
                get_shape += 1;
                get("authorization").unwrap()
            } else {
                // kingsoftcloud-sdk-python shape: POST / with a form body.
                let body = sdk_form_body(input);
                assert_eq!(body, s(exp, "body"), "{name}: body");
                let url = s(exp, "url");
                assert_eq!(s(exp, "method"), "POST");
                let headers =
                    sign_assume_role_form(ak, sk, url, body.as_bytes(), region, time).unwrap();
                let sent = &exp["headers"];
                for (ours, captured) in [
                    ("content-type", "Content-Type"),
                    ("x-amz-content-sha256", "x-amz-content-sha256"),
                    ("x-amz-date", "x-amz-date"),
                    ("authorization", "Authorization"),
                ] {
                    assert_eq!(
                        headers.get(ours),
                        sent[captured].as_str(),
                        "{name}: the captured {captured}"
                    );
                }
                assert_eq!(
                    headers.0.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                    [
                        "content-type",
                        "x-amz-content-sha256",
                        "x-amz-date",
                        "authorization"
                    ]
                );
                form_shape += 1;
                headers.get("authorization").unwrap().to_string()
            };
            assert_eq!(authorization, s(exp, "authorization"), "{name}");
            let (cred, signed_headers, signature) = auth_parts(&authorization);
            assert_eq!(cred, scope, "{name}");
            assert_eq!(signature, s(exp, "signature"), "{name}");
            let want_signed = exp["signed_headers"].as_str().unwrap_or("host;x-amz-date");
            assert_eq!(signed_headers, want_signed, "{name}: signed headers");
            ran += 1;
        }
        // The file has no `count` key: pin the number, and that every entry ran.
        assert_eq!(ran, vectors.len());
        assert_eq!(ran, 7);
        assert_eq!((get_shape, form_shape), (5, 2));
    }

    #[test]
    fn sts_headers_debug_hides_values() {
        let h = sign_assume_role_form(
            "AKIDLEAK",
            "s3cr3t",
            "https://sts.api.ksyun.com/",
            b"Action=AssumeRole",
            "cn-beijing-6",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let dbg = format!("{h:?}");
        assert!(dbg.contains("authorization"));
        assert!(
            !dbg.contains("AKIDLEAK") && !dbg.contains("Signature="),
            "{dbg}"
        );
    }
}
