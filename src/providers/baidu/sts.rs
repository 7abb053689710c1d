//! STS `POST /v1/sessionToken` wire types, the ACL that scopes the token, the BOS PostObject
//! policy, and answer parsing (pure; no HTTP here).
//!
//! Success: `{"accessKeyId","secretAccessKey","sessionToken","createTime","expiration",
//! "userId"}`. Failure: the BCE envelope `{"requestId","code","message"}` with an HTTP error
//! status (docs/providers/baidu.md; Baidu's public error-code table).

use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::providers::{ProviderError, TempCredentials};

/// The STS path.
pub const PATH: &str = "/v1/sessionToken";
/// The `Content-Type` we send and sign.
pub const CONTENT_TYPE: &str = "application/json";
/// Validity of our own request signature (the SDKs' default).
pub const SIGNATURE_EXPIRATION_SECS: u64 = 1800;
/// Largest ACL body we send. Baidu documents no figure; the bound keeps a runaway
/// `key_prefix` from producing an oversized token.
pub const MAX_ACL_BYTES: usize = 2048;
/// BOS permission of the token: write only (PutObject, PostObject and the multipart calls).
pub const PERMISSION: &str = "WRITE";

/// The BOS service endpoint of a region (never contains the bucket).
pub fn bos_endpoint(region: &str) -> String {
    format!("https://{region}.bcebos.com")
}

#[derive(Serialize)]
struct AclEntry<'a> {
    service: &'a str,
    region: &'a str,
    effect: &'a str,
    resource: [String; 1],
    permission: [&'a str; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Acl<'a> {
    access_control_list: [AclEntry<'a>; 1],
}

/// The request body: an ACL allowing only [`PERMISSION`] on `bucket/{pattern}` in
/// `region`, where `pattern` is the key or `prefix*`
/// ([`crate::providers::IssueRequest::key_pattern`]); compact, in the SDK sample's order.
pub fn acl_body(region: &str, bucket: &str, pattern: &str) -> Vec<u8> {
    serde_json::to_vec(&Acl {
        access_control_list: [AclEntry {
            service: "bce:bos",
            region,
            effect: "Allow",
            resource: [format!("{bucket}/{pattern}")],
            permission: [PERMISSION],
        }],
    })
    .expect("plain strings always serialise")
}

/// Internal errors, unavailability and throttling are worth retrying.
fn is_retryable(status: u16, code: &str) -> bool {
    status >= 500
        || status == 429
        || matches!(
            code,
            "InternalError" | "ServiceUnavailable" | "RequestRateLimitExceeded" | "TooManyRequests"
        )
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ProviderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ProviderError::Unusable(format!(
            "STS answer has a malformed {key}"
        ))),
    }
}

fn time_field(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, ProviderError> {
    text(obj, key)?
        .map(|t| {
            crate::clock::parse_utc(t)
                .ok_or_else(|| ProviderError::Unusable(format!("STS answer has a malformed {key}")))
        })
        .transpose()
}

/// Parses a sessionToken answer (any HTTP status). `secrets` are scrubbed from any error text
/// the cloud sends back. Error messages name fields, never their values.
pub fn parse(status: u16, body: &[u8], secrets: &[&str]) -> Result<TempCredentials, ProviderError> {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Some(obj),
        _ => None,
    };
    if let Some(code) = obj.as_ref().and_then(|o| o.get("code")?.as_str()) {
        let message = obj
            .as_ref()
            .and_then(|o| o.get("message")?.as_str())
            .unwrap_or("");
        return Err(ProviderError::refused(
            code,
            message,
            is_retryable(status, code),
            secrets,
        ));
    }
    if !(200..300).contains(&status) {
        return Err(ProviderError::http_status(status));
    }
    let obj = obj.ok_or_else(|| {
        ProviderError::Unusable(format!(
            "STS answered HTTP {status} with a body that is not a JSON object"
        ))
    })?;
    let need = |key: &str| -> Result<String, ProviderError> {
        text(&obj, key)?
            .map(str::to_string)
            .ok_or_else(|| ProviderError::Unusable(format!("STS answer lacks {key}")))
    };
    let access_key_id = need("accessKeyId")?;
    let secret_access_key = need("secretAccessKey")?;
    let session_token = need("sessionToken")?;
    let expiration = time_field(&obj, "expiration")?
        .ok_or_else(|| ProviderError::Unusable("STS answer lacks expiration".into()))?;
    Ok(TempCredentials {
        access_key_id,
        secret_access_key: SecretString::from(secret_access_key),
        security_token: SecretString::from(session_token),
        expiration,
        start_time: time_field(&obj, "createTime")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::{assert_refused, load};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn acl_body_is_the_sdk_sample() {
        let file = load("baidu/baidu_bce_auth_v1.json");
        let body = acl_body("bj", "stsgate-demo", "uploads/user-42/*");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            file["sts_request_body_example"]
        );
        let sent = file["vectors"][0]["input"]["body_not_signed"]
            .as_str()
            .unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), sent);
    }

    #[test]
    fn acl_packed_length() {
        let exact = acl_body("bj", "b", "k.png");
        assert_eq!(
            String::from_utf8(exact.clone()).unwrap(),
            r#"{"accessControlList":[{"service":"bce:bos","region":"bj","effect":"Allow","resource":["b/k.png"],"permission":["WRITE"]}]}"#
        );
        // Packed length = 114 bytes of fixed text + region + bucket + key.
        assert_eq!(exact.len(), 114 + 2 + 1 + 5);
        let key = format!(
            "test/material/template/{}/2025/01/01/{}/{}.{}",
            "u".repeat(64),
            i64::MAX,
            uuid::Uuid::nil(),
            "e".repeat(16)
        );
        let longest = acl_body("bj", &"b".repeat(63), &format!("{key}*")).len();
        assert_eq!(longest, 114 + 2 + 63 + key.len() + 1);
        assert!(longest < MAX_ACL_BYTES / 4, "{longest}");
    }

    fn ok_body() -> Value {
        json!({"accessKeyId": "TMPAK", "secretAccessKey": "TMP-SECRET",
            "sessionToken": "TOKEN-SECRET", "createTime": "2025-01-01T00:00:00Z",
            "expiration": "2025-01-01T01:00:00.5Z", "userId": "u1"})
    }

    fn parse(status: u16, v: &Value) -> Result<TempCredentials, ProviderError> {
        super::parse(status, &serde_json::to_vec(v).unwrap(), &[])
    }

    #[test]
    fn parses_the_documented_answer() {
        let c = parse(200, &ok_body()).unwrap();
        assert_eq!(c.access_key_id, "TMPAK");
        assert_eq!(c.expose_secret(), "TMP-SECRET");
        assert_eq!(c.expose_token(), "TOKEN-SECRET");
        assert_eq!(c.start_time, Some(1_735_689_600));
        assert_eq!(c.expiration, 1_735_693_200, "fraction truncated");
        let debug = format!("{c:?}");
        for secret in ["TMPAK", "TMP-SECRET", "TOKEN-SECRET"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let mut v = ok_body();
        v.as_object_mut().unwrap().remove("createTime");
        assert_eq!(parse(200, &v).unwrap().start_time, None);
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        for field in [
            "accessKeyId",
            "secretAccessKey",
            "sessionToken",
            "expiration",
        ] {
            let mut v = ok_body();
            v.as_object_mut().unwrap().remove(field);
            assert_eq!(
                parse(200, &v).unwrap_err(),
                ProviderError::Unusable(format!("STS answer lacks {field}"))
            );
            v[field] = json!(987_654);
            let err = parse(200, &v).unwrap_err().to_string();
            assert!(err.contains(field) && !err.contains("987654"), "{err}");
        }
        let mut v = ok_body();
        v["createTime"] = json!("yesterday");
        assert_eq!(
            parse(200, &v).unwrap_err(),
            ProviderError::Unusable("STS answer has a malformed createTime".into())
        );
        assert!(matches!(
            super::parse(200, b"[1]", &[]),
            Err(ProviderError::Unusable(_))
        ));
    }

    #[test]
    fn the_bce_envelope_is_read_and_classified() {
        for (status, code, retryable) in [
            (400, "SignatureDoesNotMatch", false),
            (403, "InvalidAccessKeyId", false),
            (403, "AccessDenied", false),
            (400, "RequestExpired", false),
            (400, "InappropriateJSON", false),
            (500, "InternalError", true),
            (503, "ServiceUnavailable", true),
            (429, "RequestRateLimitExceeded", true),
        ] {
            let body = json!({"requestId": "r", "code": code, "message": "m"});
            assert_refused(parse(status, &body), code, retryable);
        }
        assert_eq!(
            super::parse(502, b"<html>", &[]).unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            super::parse(404, b"{}", &[]).unwrap_err(),
            ProviderError::http_status(404)
        );
        let body = json!({"code": "InvalidAccessKeyId", "message": "no key LONGTERM-AK"});
        let err =
            super::parse(403, &serde_json::to_vec(&body).unwrap(), &["LONGTERM-AK"]).unwrap_err();
        assert!(!format!("{err:?}").contains("LONGTERM-AK"));
    }

    #[test]
    fn endpoint() {
        assert_eq!(bos_endpoint("bj"), "https://bj.bcebos.com");
    }

    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "\"x\"",
            "\"\"",
            "1",
            "-1.5",
            "null",
            "{}",
            "[]",
            "true",
            "\"2025-01-01T00:00:00Z\"",
            "\"2025-01-01T00:00:00.9+08:00\"",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = super::parse(status, &body, &["secret"]);
        }

        #[test]
        fn never_panics_on_answers(
            status in prop::sample::select(vec![200u16, 201, 400, 403, 429, 500]),
            fields in prop::collection::vec(
                (prop::sample::select(vec![
                    "accessKeyId", "secretAccessKey", "sessionToken", "createTime",
                    "expiration", "code", "message", "requestId",
                ]), fragment()),
                0..9,
            ),
        ) {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let body = format!("{{{}}}", inner.join(","));
            let _ = super::parse(status, body.as_bytes(), &[]);
        }
    }
}
