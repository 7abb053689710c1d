//! The credential call: LKE `DescribeStorageCredential` — request body and answer parsing
//! into [`TempCredentials`] plus where they allow writing (pure; no HTTP here).
//!
//! Answers arrive as `{"Response": {...}}`; failures as `{"Response": {"Error": {"Code",
//! "Message"}, "RequestId"}}`, normally with HTTP 200 (docs/providers/tencent.md).

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::providers::answer::Answer;
use crate::providers::{ProviderError, TempCredentials};

/// TC3 service name of LKE (docs/contract.md §3: always `lke`, whatever host the endpoint names).
pub const SERVICE: &str = "lke";
/// `X-TC-Action`.
pub const ACTION: &str = "DescribeStorageCredential";
/// `X-TC-Version`.
pub const VERSION: &str = "2023-11-30";
/// `Content-Type` we send and sign (the SDKs send no charset).
pub const CONTENT_TYPE: &str = "application/json";

/// Request body of `DescribeStorageCredential`, with LKE's exact field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DescribeStorageCredentialRequest {
    /// LKE application id (a decimal id as a string).
    #[serde(rename = "BotBizId")]
    pub bot_biz_id: String,
    /// File extension without the dot; its presence makes the credential upload-only.
    #[serde(rename = "FileType")]
    pub file_type: String,
    /// `true` for chat-side images (stored under `/public/`).
    #[serde(rename = "IsPublic")]
    pub is_public: bool,
    /// `offline` (knowledge base) or `realtime` (chat uploads).
    #[serde(rename = "TypeKey")]
    pub type_key: String,
}

impl DescribeStorageCredentialRequest {
    /// The body bytes to send and sign: compact JSON, fields in declaration order.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("four plain fields always serialise")
    }
}

/// A usable upload credential from LKE: single-use, scoped to exactly `upload_path`.
#[derive(Clone)]
pub struct LkeCredential {
    /// `Credentials.TmpSecretId` / `TmpSecretKey` / `Token`, `ExpiredTime` and `StartTime`
    /// (Unix seconds, fractions truncated).
    pub cred: TempCredentials,
    /// `Bucket`, including its `-APPID` suffix.
    pub bucket: String,
    /// `Region`, the COS region.
    pub region: String,
    /// `UploadPath` as LKE sent it, with its leading `/`; see [`object_key`].
    pub upload_path: String,
    /// `Type` (`cos` for COS); empty when LKE did not send it.
    pub storage_type: String,
    /// `UploadUrl`, a pre-signed PUT URL (newer API versions only).
    pub upload_url: Option<String>,
    /// `RequestId`; empty when absent.
    pub request_id: String,
}

impl std::fmt::Debug for LkeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LkeCredential")
            .field("tmp_secret_id", &self.cred.access_key_id)
            .field("tmp_secret_key", &"<redacted>")
            .field("token", &"<redacted>")
            .field("expired_time", &self.cred.expiration)
            .field("start_time", &self.cred.start_time)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("upload_path", &self.upload_path)
            .field("storage_type", &self.storage_type)
            // A pre-signed URL is a bearer capability: redact it like a key.
            .field(
                "upload_url",
                &self.upload_url.as_ref().map(|_| "<redacted>"),
            )
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// The COS object key: `UploadPath` without ONE leading `/`.
pub fn object_key(upload_path: &str) -> &str {
    upload_path.strip_prefix('/').unwrap_or(upload_path)
}

/// The COS service endpoint for a region (never contains the bucket).
pub fn cos_endpoint(region: &str) -> String {
    format!("https://cos.{region}.myqcloud.com")
}

/// The virtual-host COS host of a bucket: `{bucket}.cos.{region}.myqcloud.com`.
pub fn cos_host(bucket: &str, region: &str) -> String {
    format!("{bucket}.cos.{region}.myqcloud.com")
}

/// Tencent error codes worth retrying: throttling and internal errors (docs/contract.md §3).
/// The code alone decides: LKE sends its errors with HTTP 200, whatever their kind.
pub fn is_retryable(_status: u16, code: &str) -> bool {
    code.starts_with("RequestLimitExceeded") || code.starts_with("InternalError")
}

/// How errors name this answer.
const LKE: Answer = Answer("LKE");

/// Parses an LKE `DescribeStorageCredential` answer (any HTTP status) into a credential or
/// the error it carries. `secrets` are scrubbed from any error text the cloud sends back.
/// Error messages name fields, never their values.
pub fn parse(status: u16, body: &[u8], secrets: &[&str]) -> Result<LkeCredential, ProviderError> {
    let ok = (200..300).contains(&status);
    // Anything that is not the documented envelope.
    let shapeless = |what: &str| LKE.shapeless(status, what);

    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Err(shapeless("with a body that is not a JSON object"));
    };
    let Some(Value::Object(response)) = root.get("Response") else {
        return Err(shapeless("without a Response object"));
    };

    if let Some(error) = response.get("Error") {
        let code = error.get("Code").and_then(Value::as_str).unwrap_or("");
        if code.is_empty() {
            return Err(shapeless("with a Response.Error that has no Code"));
        }
        let message = error.get("Message").and_then(Value::as_str).unwrap_or("");
        return Err(ProviderError::refused(
            code,
            message,
            is_retryable(status, code),
            secrets,
        ));
    }
    if !ok {
        return Err(ProviderError::http_status(status));
    }

    let Some(Value::Object(credentials)) = response.get("Credentials") else {
        return Err(LKE.missing("Credentials"));
    };
    let tmp_secret_id = LKE.required_str(credentials, "TmpSecretId", "Credentials.TmpSecretId")?;
    let tmp_secret_key =
        LKE.required_str(credentials, "TmpSecretKey", "Credentials.TmpSecretKey")?;
    let token = LKE.required_str(credentials, "Token", "Credentials.Token")?;
    let expired_time = match response.get("ExpiredTime") {
        None | Some(Value::Null) => return Err(LKE.missing("ExpiredTime")),
        Some(v) => unix_seconds(v).ok_or_else(|| LKE.malformed("ExpiredTime"))?,
    };
    let start_time = match response.get("StartTime") {
        None | Some(Value::Null) => None,
        Some(v) => Some(unix_seconds(v).ok_or_else(|| LKE.malformed("StartTime"))?),
    };
    let bucket = LKE.required_str(response, "Bucket", "Bucket")?;
    let region = LKE.required_str(response, "Region", "Region")?;
    let upload_path = LKE.optional_str(response, "UploadPath")?;
    if upload_path.is_empty() {
        return Err(ProviderError::Unusable(
            "LKE answered without UploadPath (download-only credentials)".into(),
        ));
    }
    let upload_url = Some(LKE.optional_str(response, "UploadUrl")?).filter(|u| !u.is_empty());

    Ok(LkeCredential {
        cred: TempCredentials {
            access_key_id: tmp_secret_id,
            secret_access_key: SecretString::from(tmp_secret_key),
            security_token: SecretString::from(token),
            expiration: expired_time,
            start_time,
        },
        bucket,
        region,
        upload_path,
        storage_type: LKE.optional_str(response, "Type")?,
        upload_url,
        request_id: LKE.optional_str(response, "RequestId")?,
    })
}

/// Unix seconds from an integer, a number with a fraction (truncated toward the past, never
/// rounded up) or a decimal string of either.
fn unix_seconds(v: &Value) -> Option<i64> {
    fn from_f64(f: f64) -> Option<i64> {
        let f = f.floor();
        // i64::MAX as f64 rounds up to 2^63, so the upper bound is exclusive.
        (f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    }
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(from_f64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_f64))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`parse`] with nothing to scrub.
    fn parse_describe_storage_credential(
        status: u16,
        body: &[u8],
    ) -> Result<LkeCredential, ProviderError> {
        parse(status, body, &[])
    }

    const RESPONSES: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/tencent/tencent_lke_responses.json"
    ));

    fn body(v: &Value) -> Vec<u8> {
        serde_json::to_vec(&v["response_json"]).unwrap()
    }

    fn refused(code: &str) -> Result<LkeCredential, ProviderError> {
        let body = serde_json::json!({"Response": {
            "Error": {"Code": code, "Message": "m"}, "RequestId": "r"}});
        parse_describe_storage_credential(200, &serde_json::to_vec(&body).unwrap())
    }

    #[test]
    fn vectors_tencent_lke_responses() {
        let file: Value = serde_json::from_str(RESPONSES).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let got = parse_describe_storage_credential(200, &body(v));
            if let Some(err) = v["error"].as_object() {
                let code = err["code"].as_str().unwrap();
                match got {
                    Err(ProviderError::Refused {
                        code: c,
                        message,
                        retryable,
                    }) => {
                        assert_eq!(c, code, "{id}: code");
                        assert_eq!(message, err["message"].as_str().unwrap(), "{id}: message");
                        // Every error vector is an auth, parameter or not-found code.
                        assert!(!retryable, "{id}: {code} must not be retryable");
                    }
                    other => panic!("{id}: expected Refused, got {other:?}"),
                }
            } else {
                let parsed = &v["parsed"];
                let upload_path = parsed["UploadPath"].as_str().unwrap_or("");
                if upload_path.is_empty() {
                    // lke-download-only (UploadPath ""), and sts-getfederationtoken-ok: an STS
                    // answer is not an LKE upload credential (no Bucket, Region, UploadPath).
                    assert!(
                        matches!(got, Err(ProviderError::Unusable(_))),
                        "{id}: expected Unusable, got {got:?}"
                    );
                    if id == "lke-download-only" {
                        assert_eq!(
                            got.unwrap_err(),
                            ProviderError::Unusable(
                                "LKE answered without UploadPath (download-only credentials)"
                                    .into()
                            )
                        );
                    }
                } else {
                    let c = got.unwrap_or_else(|e| panic!("{id}: {e:?}"));
                    let creds = &parsed["Credentials"];
                    assert_eq!(c.cred.access_key_id, creds["TmpSecretId"].as_str().unwrap());
                    assert_eq!(
                        c.cred.expose_secret(),
                        creds["TmpSecretKey"].as_str().unwrap()
                    );
                    assert_eq!(c.cred.expose_token(), creds["Token"].as_str().unwrap());
                    assert_eq!(Some(c.cred.expiration), parsed["ExpiredTime"].as_i64());
                    assert_eq!(c.cred.start_time, parsed["StartTime"].as_i64());
                    assert_eq!(c.bucket, parsed["Bucket"].as_str().unwrap());
                    assert_eq!(c.region, parsed["Region"].as_str().unwrap());
                    assert_eq!(c.upload_path, upload_path);
                    assert_eq!(c.storage_type, parsed["Type"].as_str().unwrap());
                    assert_eq!(c.upload_url.as_deref(), parsed["UploadUrl"].as_str());
                    assert_eq!(c.request_id, parsed["RequestId"].as_str().unwrap());
                    if let Some(derived) = v.get("derived").and_then(Value::as_object) {
                        assert_eq!(object_key(&c.upload_path), derived["object_key"]);
                        assert_eq!(cos_host(&c.bucket, &c.region), derived["cos_host"]);
                        assert_eq!(
                            Some(c.cred.expiration - c.cred.start_time.unwrap()),
                            derived["ttl_seconds"].as_i64()
                        );
                    }
                    let debug = format!("{c:?}");
                    assert!(!debug.contains(creds["TmpSecretKey"].as_str().unwrap()));
                    assert!(!debug.contains(creds["Token"].as_str().unwrap()));
                    if let Some(url) = &c.upload_url {
                        assert!(!debug.contains(url.as_str()));
                    }
                }
            }
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 8);
    }

    #[test]
    fn error_codes_are_classified() {
        for (code, retryable) in [
            ("RequestLimitExceeded", true),
            ("RequestLimitExceeded.UinLimitExceeded", true),
            ("InternalError", true),
            ("InternalError.DbError", true),
            ("FailedOperation.X", false),
            ("AuthFailure.SecretIdNotFound", false),
            ("InvalidParameterValue", false),
            ("ResourceNotFound", false),
            ("LimitExceeded", false),
            ("UnauthorizedOperation", false),
        ] {
            match refused(code) {
                Err(ProviderError::Refused {
                    code: c,
                    retryable: r,
                    ..
                }) => {
                    assert_eq!(c, code);
                    assert_eq!(r, retryable, "{code}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn refusals_are_scrubbed_and_capped() {
        let body = serde_json::json!({"Response": {"Error": {
            "Code": "AuthFailure.SecretIdNotFound",
            "Message": format!("SecretId AKIDLONGTERM1 not found {}", "x".repeat(500))},
            "RequestId": "r"}});
        let err = parse(200, &serde_json::to_vec(&body).unwrap(), &["AKIDLONGTERM1"]).unwrap_err();
        let ProviderError::Refused {
            code,
            message,
            retryable,
        } = err
        else {
            panic!("not Refused: {err:?}")
        };
        assert_eq!(code, "AuthFailure.SecretIdNotFound");
        assert!(
            message.starts_with("SecretId <redacted> not found"),
            "{message}"
        );
        assert_eq!(message.chars().count(), 160);
        assert!(!retryable);
    }

    #[test]
    fn non_2xx_answers() {
        let err =
            br#"{"Response":{"Error":{"Code":"InternalError","Message":"x"},"RequestId":"r"}}"#;
        assert!(matches!(
            parse_describe_storage_credential(500, err),
            Err(ProviderError::Refused { ref code, retryable: true, .. }) if code == "InternalError"
        ));
        assert_eq!(
            parse_describe_storage_credential(502, b"<html>bad gateway</html>").unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse_describe_storage_credential(403, br#"{"Response":{"RequestId":"r"}}"#)
                .unwrap_err(),
            ProviderError::http_status(403)
        );
        assert_eq!(
            parse_describe_storage_credential(429, b"").unwrap_err(),
            ProviderError::http_status(429)
        );
    }

    fn ok_body() -> Value {
        serde_json::json!({"Response": {
            "Credentials": {"Token": "TOKEN-SECRET", "TmpSecretId": "AKIDx", "TmpSecretKey": "KEY-SECRET"},
            "ExpiredTime": 1717063483, "StartTime": 1717062883,
            "Bucket": "b-1250000000", "Region": "ap-jakarta", "Type": "cos",
            "UploadPath": "/corp/1/2/doc/x.pdf", "RequestId": "r"}})
    }

    fn parse_value(v: &Value) -> Result<LkeCredential, ProviderError> {
        parse_describe_storage_credential(200, &serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn missing_fields_are_named() {
        for (path, name) in [
            (&["Credentials"][..], "Credentials"),
            (
                &["Credentials", "TmpSecretId"][..],
                "Credentials.TmpSecretId",
            ),
            (
                &["Credentials", "TmpSecretKey"][..],
                "Credentials.TmpSecretKey",
            ),
            (&["Credentials", "Token"][..], "Credentials.Token"),
            (&["ExpiredTime"][..], "ExpiredTime"),
            (&["Bucket"][..], "Bucket"),
            (&["Region"][..], "Region"),
        ] {
            let mut v = ok_body();
            let mut obj = &mut v["Response"];
            for p in &path[..path.len() - 1] {
                obj = &mut obj[*p];
            }
            obj.as_object_mut().unwrap().remove(path[path.len() - 1]);
            match parse_value(&v) {
                Err(ProviderError::Unusable(msg)) => {
                    assert_eq!(msg, format!("LKE answer lacks {name}"))
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let mut v = ok_body();
        v["Response"].as_object_mut().unwrap().remove("UploadPath");
        assert_eq!(
            parse_value(&v).unwrap_err(),
            ProviderError::Unusable(
                "LKE answered without UploadPath (download-only credentials)".into()
            )
        );
        assert!(matches!(
            parse_describe_storage_credential(200, b"{\"Other\":1}"),
            Err(ProviderError::Unusable(_))
        ));
        assert!(matches!(
            parse_describe_storage_credential(200, b"not json"),
            Err(ProviderError::Unusable(_))
        ));
    }

    #[test]
    fn fractional_times_are_truncated() {
        let mut v = ok_body();
        v["Response"]["ExpiredTime"] = serde_json::json!(1717063483.999);
        v["Response"]["StartTime"] = serde_json::json!("1717062883.5");
        let c = parse_value(&v).unwrap();
        assert_eq!(c.cred.expiration, 1717063483);
        assert_eq!(c.cred.start_time, Some(1717062883));
        v["Response"]["ExpiredTime"] = serde_json::json!("soon");
        assert_eq!(
            parse_value(&v).unwrap_err(),
            ProviderError::Unusable("LKE answer has a malformed ExpiredTime".into())
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let c = parse_value(&ok_body()).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("KEY-SECRET") && !debug.contains("TOKEN-SECRET"));
        assert!(debug.contains("AKIDx"));
        // A wrongly typed secret is reported by name, not by value.
        let mut v = ok_body();
        v["Response"]["Credentials"]["Token"] = serde_json::json!(987654321);
        let err = parse_value(&v).unwrap_err().to_string();
        assert!(!err.contains("987654321"), "{err}");
        assert!(err.contains("Credentials.Token"), "{err}");
    }

    #[test]
    fn key_and_endpoint() {
        assert_eq!(object_key("/corp/a/b.pdf"), "corp/a/b.pdf");
        assert_eq!(object_key("//x"), "/x");
        assert_eq!(object_key("x"), "x");
        assert_eq!(
            cos_endpoint("ap-jakarta"),
            "https://cos.ap-jakarta.myqcloud.com"
        );
    }

    #[test]
    fn request_body_matches_the_compact_vector() {
        // Body of tencent_tc3.json vector lke-compact-utf8-body.
        let req = DescribeStorageCredentialRequest {
            bot_biz_id: "1771061216515457024".into(),
            file_type: "docx".into(),
            is_public: false,
            type_key: "offline".into(),
        };
        assert_eq!(
            req.to_body(),
            br#"{"BotBizId":"1771061216515457024","FileType":"docx","IsPublic":false,"TypeKey":"offline"}"#
        );
    }

    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "\"x\"",
            "\"\"",
            "\"/a\"",
            "1",
            "-1",
            "1.5",
            "-1e300",
            "1e300",
            "18446744073709551615",
            "null",
            "{}",
            "[]",
            "true",
            "\"1.9\"",
            "\"NaN\"",
            "{\"Code\":1}",
            "{\"Code\":\"InternalError\"}",
            "{\"TmpSecretId\":\"a\",\"TmpSecretKey\":\"b\",\"Token\":\"c\"}",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_describe_storage_credential(status, &body);
        }

        #[test]
        fn never_panics_on_envelopes(
            status in prop::sample::select(vec![200u16, 204, 400, 429, 500, 503]),
            fields in prop::collection::vec(
                (prop::sample::select(vec![
                    "Error", "Credentials", "ExpiredTime", "StartTime", "Bucket", "Region",
                    "UploadPath", "UploadUrl", "Type", "RequestId",
                ]), fragment()),
                0..10,
            ),
        ) {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let body = format!("{{\"Response\":{{{}}}}}", inner.join(","));
            let _ = parse_describe_storage_credential(status, body.as_bytes());
        }
    }
}
