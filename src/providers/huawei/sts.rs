//! The credential call: IAM `POST /v3.0/OS-CREDENTIAL/securitytokens` — request body,
//! the OBS session policy, and answer parsing (pure; no HTTP here).
//!
//! Success is HTTP 201 `{"credential":{"access","secret","securitytoken","expires_at"}}`.
//! Failures come in two documented shapes: the API gateway's / IAM's
//! `{"error_code","error_msg"}` and Keystone's `{"error":{"code","title","message"}}`
//! (docs/providers/huawei.md; docs/contract.md §2).

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::providers::answer::Answer;
use crate::providers::{ProviderError, TempCredentials};

/// The IAM path.
pub const PATH: &str = "/v3.0/OS-CREDENTIAL/securitytokens";
/// The `Content-Type` we send and sign.
pub const CONTENT_TYPE: &str = "application/json;charset=UTF-8";
/// IAM's limits on `duration_seconds`.
pub const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=86_400;
/// Largest session policy we send (bytes of compact JSON). Huawei documents no figure for
/// the session policy; this bound keeps it far below IAM's custom-policy size limit.
pub const MAX_POLICY_BYTES: usize = 2048;
/// The only actions the temporary credentials get: single PUT / POST upload (which in OBS
/// also covers initiating, uploading parts of and completing a multipart upload) plus
/// listing and aborting the parts of one's own multipart upload.
pub const ACTIONS: [&str; 3] = [
    "obs:object:PutObject",
    "obs:object:AbortMultipartUpload",
    "obs:object:ListMultipartUploadParts",
];

/// The OBS service endpoint of a region (never contains the bucket).
pub fn obs_endpoint(region: &str) -> String {
    format!("https://obs.{region}.myhuaweicloud.com")
}

#[derive(Debug, Clone, Serialize)]
struct Statement {
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    action: &'static [&'static str],
    #[serde(rename = "Resource")]
    resource: [String; 1],
}

/// An IAM session policy (`Version` 1.1), serialised with its fields in IAM's order.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPolicy {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: [Statement; 1],
}

impl SessionPolicy {
    /// The compact JSON text, as it is sent inside the request body.
    pub fn packed(&self) -> String {
        serde_json::to_string(self).expect("plain strings always serialise")
    }
}

/// The session policy: [`ACTIONS`] on `OBS:*:*:object:{bucket}/{pattern}` only, where
/// `pattern` is the key or `prefix*` ([`crate::providers::IssueRequest::key_pattern`]).
pub fn session_policy(bucket: &str, pattern: &str) -> SessionPolicy {
    SessionPolicy {
        version: "1.1",
        statement: [Statement {
            effect: "Allow",
            action: &ACTIONS,
            resource: [format!("OBS:*:*:object:{bucket}/{pattern}")],
        }],
    }
}

/// The request body (variant `token`: temporary keys of the calling IAM user, signed with
/// its AK/SK): `{"auth":{"identity":{"methods":["token"],"token":{"duration_seconds":N},
/// "policy":{...}}}}`, compact, in this order.
pub fn request_body(duration_seconds: u64, policy: &SessionPolicy) -> Vec<u8> {
    #[derive(Serialize)]
    struct Token {
        duration_seconds: u64,
    }
    #[derive(Serialize)]
    struct Identity<'a> {
        methods: [&'a str; 1],
        token: Token,
        policy: &'a SessionPolicy,
    }
    #[derive(Serialize)]
    struct Auth<'a> {
        identity: Identity<'a>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        auth: Auth<'a>,
    }
    serde_json::to_vec(&Body {
        auth: Auth {
            identity: Identity {
                methods: ["token"],
                token: Token { duration_seconds },
                policy,
            },
        },
    })
    .expect("plain values always serialise")
}

/// Throttling codes of the API gateway in front of IAM (HTTP 429).
fn is_retryable(status: u16, code: &str) -> bool {
    status >= 500 || status == 429 || matches!(code, "APIGW.0308" | "APIG.0308")
}

/// The error an answer carries, in either documented shape; `None` when it has neither.
fn error_of(status: u16, v: &Value, secrets: &[&str]) -> Option<ProviderError> {
    if let Some(code) = v.get("error_code").and_then(Value::as_str) {
        let msg = v.get("error_msg").and_then(Value::as_str).unwrap_or("");
        return Some(ProviderError::refused(
            code,
            msg,
            is_retryable(status, code),
            secrets,
        ));
    }
    let e = v.get("error")?.as_object()?;
    let code = match e.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let title = e.get("title").and_then(Value::as_str).unwrap_or("");
    if code.is_empty() && title.is_empty() {
        return None;
    }
    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
    let label = format!("{code} {title}");
    Some(ProviderError::refused(
        label.trim(),
        msg,
        is_retryable(status, &code),
        secrets,
    ))
}

/// How errors name this answer.
const IAM: Answer = Answer("IAM");

/// Parses an IAM securitytokens answer (any HTTP status). `secrets` are scrubbed from any
/// error text the cloud sends back. Error messages name fields, never their values.
pub fn parse(status: u16, body: &[u8], secrets: &[&str]) -> Result<TempCredentials, ProviderError> {
    let ok = (200..300).contains(&status);
    let value: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(err) = value.as_ref().and_then(|v| error_of(status, v, secrets)) {
        return Err(err);
    }
    if !ok {
        return Err(ProviderError::http_status(status));
    }
    let Some(Value::Object(root)) = value else {
        return Err(IAM.shapeless(status, "with a body that is not a JSON object"));
    };
    let cred = root
        .get("credential")
        .and_then(Value::as_object)
        .ok_or_else(|| IAM.missing("credential"))?;
    let field = |name: &str| IAM.required_str(cred, name, &format!("credential.{name}"));
    let access = field("access")?;
    let secret = field("secret")?;
    let security_token = field("securitytoken")?;
    let expires_at = IAM.required_time(cred, "expires_at", "credential.expires_at")?;
    Ok(TempCredentials {
        access_key_id: access,
        secret_access_key: SecretString::from(secret),
        security_token: SecretString::from(security_token),
        expiration: expires_at,
        start_time: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::{assert_refused, load, named};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn session_policy_matches_the_sdk_vector_shape() {
        // The policy of huawei_sdk_hmac_sha256.json's first vector, with our extra
        // multipart actions; field order as in the vector.
        let file = load("huawei/huawei_sdk_hmac_sha256.json");
        let v = named(&file, "iam_securitytokens_aksk_with_session_policy");
        let mut want: Value = serde_json::from_str(v["input"]["body"].as_str().unwrap()).unwrap();
        want["auth"]["identity"]["policy"]["Statement"][0]["Action"] = json!(ACTIONS);
        let policy = session_policy("stsgate-demo", "uploads/user-42/*");
        let body = request_body(900, &policy);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), want);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"auth":{"identity":{"methods":["token"],"token":{"duration_seconds":900},"policy":{"Version":"1.1","Statement":[{"Effect":"Allow","Action":["obs:object:PutObject","obs:object:AbortMultipartUpload","obs:object:ListMultipartUploadParts"],"Resource":["OBS:*:*:object:stsgate-demo/uploads/user-42/*"]}]}}}}"#
        );
    }

    #[test]
    fn session_policy_packed_length() {
        let exact = session_policy("b", "k.png").packed();
        assert_eq!(
            exact,
            r#"{"Version":"1.1","Statement":[{"Effect":"Allow","Action":["obs:object:PutObject","obs:object:AbortMultipartUpload","obs:object:ListMultipartUploadParts"],"Resource":["OBS:*:*:object:b/k.png"]}]}"#
        );
        // Packed length = 188 bytes of fixed text + bucket + key.
        assert_eq!(exact.len(), 188 + 1 + 5);
        // The longest key stsgate makes: a 63-character bucket and a material_template key
        // with a 64-character uuid, a 19-digit objectId and a 16-character extension.
        let key = format!(
            "test/material/template/{}/2025/01/01/{}/{}.{}",
            "u".repeat(64),
            i64::MAX,
            uuid::Uuid::nil(),
            "e".repeat(16)
        );
        let longest = session_policy(&"b".repeat(63), &key).packed().len();
        assert_eq!(longest, 188 + 63 + key.len());
        assert!(longest < MAX_POLICY_BYTES / 4, "{longest}");
    }

    fn ok_body() -> Value {
        json!({"credential": {
            "access": "TMPAK", "secret": "TMP-SECRET", "securitytoken": "TOKEN-SECRET",
            "expires_at": "2025-01-01T01:00:00.987000Z"}})
    }

    fn parse_value(status: u16, v: &Value) -> Result<TempCredentials, ProviderError> {
        super::parse(status, &serde_json::to_vec(v).unwrap(), &[])
    }

    #[test]
    fn parses_the_documented_answer() {
        let c = parse_value(201, &ok_body()).unwrap();
        assert_eq!(c.access_key_id, "TMPAK");
        assert_eq!(c.expose_secret(), "TMP-SECRET");
        assert_eq!(c.expose_token(), "TOKEN-SECRET");
        assert_eq!(c.expiration, 1_735_693_200, "fraction truncated");
        assert_eq!(c.start_time, None);
        let debug = format!("{c:?}");
        assert!(!debug.contains("TMP-SECRET") && !debug.contains("TOKEN-SECRET"));
        assert!(!debug.contains("TMPAK"));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        for (field, name) in [
            ("access", "credential.access"),
            ("secret", "credential.secret"),
            ("securitytoken", "credential.securitytoken"),
            ("expires_at", "credential.expires_at"),
        ] {
            let mut v = ok_body();
            v["credential"].as_object_mut().unwrap().remove(field);
            assert_eq!(
                parse_value(201, &v).unwrap_err(),
                ProviderError::Unusable(format!("IAM answer lacks {name}"))
            );
            v["credential"][field] = json!(12345);
            let err = parse_value(201, &v).unwrap_err().to_string();
            assert!(err.contains(name) && !err.contains("12345"), "{err}");
        }
        let mut v = ok_body();
        v["credential"]["expires_at"] = json!("tomorrow");
        assert_eq!(
            parse_value(201, &v).unwrap_err(),
            ProviderError::Unusable("IAM answer has a malformed credential.expires_at".into())
        );
        assert_eq!(
            parse_value(201, &json!({"token": {}})).unwrap_err(),
            ProviderError::Unusable("IAM answer lacks credential".into())
        );
        assert!(matches!(
            parse(201, b"{\"credential\": ", &[]),
            Err(ProviderError::Unusable(_))
        ));
    }

    #[test]
    fn both_error_shapes_are_read_and_classified() {
        let cases = [
            (
                401,
                json!({"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information: verify aksk signature fail", "request_id": "r"}),
                "APIGW.0301",
                false,
            ),
            (
                429,
                json!({"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}),
                "APIGW.0308",
                true,
            ),
            (
                400,
                json!({"error_code": "IAM.0011", "error_msg": "Request parameter duration_seconds is invalid."}),
                "IAM.0011",
                false,
            ),
            (
                500,
                json!({"error_code": "IAM.0006", "error_msg": "system error"}),
                "IAM.0006",
                true,
            ),
            (
                403,
                json!({"error": {"code": 403, "message": "You are not authorized to perform the requested action.", "title": "Forbidden"}}),
                "403 Forbidden",
                false,
            ),
            (
                503,
                json!({"error": {"code": 503, "message": "unavailable", "title": "Service Unavailable"}}),
                "503 Service Unavailable",
                true,
            ),
        ];
        for (status, body, code, retryable) in cases {
            assert_refused(parse_value(status, &body), code, retryable);
        }
        // No documented shape: the HTTP status decides.
        assert_eq!(
            parse(502, b"<html>bad gateway</html>", &[]).unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse(403, b"{\"message\":\"x\"}", &[]).unwrap_err(),
            ProviderError::http_status(403)
        );
    }

    #[test]
    fn error_text_never_echoes_a_secret() {
        let body = json!({"error_code": "APIGW.0301", "error_msg": "bad key LONGTERM-AK-1"});
        let err = parse(401, &serde_json::to_vec(&body).unwrap(), &["LONGTERM-AK-1"]).unwrap_err();
        assert!(!format!("{err:?}").contains("LONGTERM-AK-1"));
    }

    #[test]
    fn endpoint() {
        assert_eq!(
            obs_endpoint("cn-north-4"),
            "https://obs.cn-north-4.myhuaweicloud.com"
        );
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
            "\"2025-01-01T00:00:00.9Z\"",
            "{\"code\":401,\"title\":\"Unauthorized\"}",
            "{\"code\":[]}",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(status, &body, &["secret"]);
        }

        #[test]
        fn never_panics_on_envelopes(
            status in prop::sample::select(vec![200u16, 201, 400, 401, 429, 500]),
            top in prop::collection::vec(
                (prop::sample::select(vec!["credential", "error", "error_code", "error_msg"]), fragment()),
                0..4,
            ),
            inner in prop::collection::vec(
                (prop::sample::select(vec!["access", "secret", "securitytoken", "expires_at"]), fragment()),
                0..6,
            ),
        ) {
            let inner: Vec<String> = inner.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let mut fields: Vec<String> = top.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            fields.push(format!("\"credential\":{{{}}}", inner.join(",")));
            let body = format!("{{{}}}", fields.join(","));
            let _ = parse(status, body.as_bytes(), &[]);
        }
    }
}
