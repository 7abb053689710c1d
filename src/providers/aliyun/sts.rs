//! The credential call: STS `AssumeRole` parameters, the session policy and answer parsing
//! into [`TempCredentials`], and the OSS endpoint (pure; no HTTP here).
//!
//! STS answers are JSON: `{"RequestId","AssumedRoleUser","Credentials":{"AccessKeyId",
//! "AccessKeySecret","SecurityToken","Expiration"}}` on success; failures are HTTP 4xx/5xx
//! with `{"RequestId","HostId","Code","Message","Recommend"}` (protocols §3.1).

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use super::sign;
use crate::providers::answer::Answer;
use crate::providers::{ProviderError, TempCredentials};

/// `Action`.
pub const ACTION: &str = "AssumeRole";
/// `Version` of the STS API.
pub const VERSION: &str = "2015-04-01";
/// `Format` we ask for.
pub const FORMAT: &str = "JSON";
/// Aliyun's limit on the session `Policy` (characters of the packed JSON).
pub const MAX_POLICY_CHARS: usize = 2048;
/// Shortest and longest `DurationSeconds` STS accepts (the role may allow less than the
/// maximum; STS then answers `InvalidParameter.DurationSeconds`).
pub const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=43_200;
/// The actions a session may use: `oss:PutObject` also authorises InitiateMultipartUpload,
/// UploadPart and CompleteMultipartUpload; the other two complete the multipart set.
pub const SESSION_ACTIONS: [&str; 3] =
    ["oss:PutObject", "oss:AbortMultipartUpload", "oss:ListParts"];

/// One `AssumeRole` call's action parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// `RoleArn` (`acs:ram::<account>:role/<name>`).
    pub role_arn: String,
    /// `RoleSessionName` (see [`role_session_name`]).
    pub role_session_name: String,
    /// `DurationSeconds`.
    pub duration_secs: u64,
    /// `Policy`: plain JSON, not pre-encoded.
    pub policy: String,
}

impl AssumeRole {
    /// Every parameter to sign and send, common ones first (the Tea SDK's set, `Format=JSON`).
    /// `timestamp` is `YYYY-MM-DDTHH:MM:SSZ` (UTC); `nonce` is unique per request.
    pub fn params(
        &self,
        access_key_id: &str,
        nonce: &str,
        timestamp: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("Action", ACTION.into()),
            ("Format", FORMAT.into()),
            ("Version", VERSION.into()),
            ("AccessKeyId", access_key_id.into()),
            ("SignatureMethod", sign::RPC_SIGNATURE_METHOD.into()),
            ("SignatureVersion", sign::RPC_SIGNATURE_VERSION.into()),
            ("SignatureNonce", nonce.into()),
            ("Timestamp", timestamp.into()),
            ("RoleArn", self.role_arn.clone()),
            ("RoleSessionName", self.role_session_name.clone()),
            ("DurationSeconds", self.duration_secs.to_string()),
            ("Policy", self.policy.clone()),
        ]
    }
}

/// `RoleSessionName` from the JWT `sub`: characters outside `[A-Za-z0-9.@_-]` become `_`,
/// at most 64 characters, and at least 2 (`u-` is put in front of shorter names).
pub fn role_session_name(sub: &str) -> String {
    let s: String = sub
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.len() < 2 {
        format!("u-{s}")
    } else {
        s
    }
}

#[derive(Serialize)]
struct SessionPolicy<'a> {
    #[serde(rename = "Version")]
    version: &'a str,
    #[serde(rename = "Statement")]
    statement: [Statement<'a>; 1],
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "Effect")]
    effect: &'a str,
    #[serde(rename = "Action")]
    action: &'a [&'a str],
    #[serde(rename = "Resource")]
    resource: [String; 1],
}

/// The session policy (packed JSON): [`SESSION_ACTIONS`] on `acs:oss:*:*:{bucket}/{key}`, or
/// on `acs:oss:*:*:{bucket}/{prefix}*` for a folder (`key` then ends with `/`).
pub fn session_policy(bucket: &str, key: &str, is_dir: bool) -> String {
    let star = if is_dir { "*" } else { "" };
    let p = SessionPolicy {
        version: "1",
        statement: [Statement {
            effect: "Allow",
            action: &SESSION_ACTIONS,
            resource: [format!("acs:oss:*:*:{bucket}/{key}{star}")],
        }],
    };
    serde_json::to_string(&p).expect("strings always serialise")
}

/// Refuses a session policy over [`MAX_POLICY_CHARS`] before STS does.
pub fn check_policy_length(policy: &str) -> Result<(), ProviderError> {
    let n = policy.chars().count();
    if n > MAX_POLICY_CHARS {
        return Err(ProviderError::InvalidRequest(format!(
            "relativePath: the Aliyun session policy for this key is {n} characters, over the limit of {MAX_POLICY_CHARS}"
        )));
    }
    Ok(())
}

/// Error codes not worth retrying are checked first; then throttling, service-side errors,
/// a nonce collision (a retry carries a fresh nonce) and any 5xx are retryable.
pub fn is_retryable(status: u16, code: &str) -> bool {
    const NEVER: [&str; 9] = [
        "InvalidParameter",
        "NoPermission",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidTimeStamp",
        "InvalidSecurityToken",
        "MissingParameter",
        "EntityNotExist",
        "IncompleteSignature",
    ];
    if NEVER.iter().any(|p| code.starts_with(p)) {
        return false;
    }
    code.starts_with("Throttling")
        || code.starts_with("ServiceUnavailable")
        || code.starts_with("InternalError")
        || code == "SignatureNonceUsed"
        || status >= 500
}

/// A cloud message made safe to keep: `SignatureDoesNotMatch` messages quote the server's
/// string to sign (which carries our AccessKeyId and, for temporary callers, the token), so
/// everything from "string to sign" on is dropped, and the rest is capped.
pub fn safe_message(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let cut = lower.find("string to sign").unwrap_or(message.len());
    let mut end = cut.min(160);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].trim().to_string()
}

/// How errors name this answer.
const STS: Answer = Answer("Aliyun STS");

/// Parses an `AssumeRole` answer (any HTTP status) into credentials or the error it
/// carries. `secrets` are scrubbed from any error text the cloud sends back. Error messages
/// name fields, never their values.
pub fn parse(status: u16, body: &[u8], secrets: &[&str]) -> Result<TempCredentials, ProviderError> {
    let ok = (200..300).contains(&status);
    let shapeless = |what: &str| STS.shapeless(status, what);
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Err(shapeless("with a body that is not a JSON object"));
    };
    let credentials = root.get("Credentials");
    let code = root.get("Code").and_then(Value::as_str).unwrap_or("");
    // An error envelope (a success answer that also names a Code is still a success).
    let is_error = !code.is_empty() && (!ok || credentials.is_none());
    if is_error {
        let message = root.get("Message").and_then(Value::as_str).unwrap_or("");
        return Err(ProviderError::refused(
            code,
            &safe_message(message),
            is_retryable(status, code),
            secrets,
        ));
    }
    if !ok {
        return Err(ProviderError::http_status(status));
    }
    let Some(Value::Object(c)) = credentials else {
        return Err(STS.missing("Credentials"));
    };
    let field = |key: &str| STS.required_str(c, key, &format!("Credentials.{key}"));
    let access_key_id = field("AccessKeyId")?;
    let access_key_secret = field("AccessKeySecret")?;
    let security_token = field("SecurityToken")?;
    let expiration = STS.required_time(c, "Expiration", "Credentials.Expiration")?;
    Ok(TempCredentials {
        access_key_id,
        secret_access_key: SecretString::from(access_key_secret),
        security_token: SecretString::from(security_token),
        expiration,
        start_time: None,
    })
}

/// `RequestId` of an answer, empty when absent (Aliyun's reference for a call, for logs).
pub fn request_id(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => match root.get("RequestId") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// The OSS service endpoint (never containing the bucket): the configured one, else
/// `https://{region}.aliyuncs.com` (`region` is the OSS region id, `oss-cn-beijing`).
pub fn oss_endpoint(configured: &str, region: &str) -> String {
    if configured.is_empty() {
        format!("https://{region}.aliyuncs.com")
    } else {
        configured.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const RPC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/aliyun/aliyun_rpc_sts.json"
    ));

    /// [`parse`] with nothing to scrub.
    fn parse_assume_role(status: u16, body: &[u8]) -> Result<TempCredentials, ProviderError> {
        parse(status, body, &[])
    }

    /// The answers of the Tea SDK vectors, parsed as the SDK did (success) or refused with
    /// the SDK's error code (NoPermission, not retryable).
    #[test]
    fn rpc_vector_responses_parse_like_the_sdk() {
        let file: Value = serde_json::from_str(RPC).unwrap();
        let mut with_response = 0;
        for v in file["vectors"].as_array().unwrap() {
            let Some(r) = v.get("response") else { continue };
            let id = v["id"].as_str().unwrap();
            let status = r["status"].as_u64().unwrap() as u16;
            let body = serde_json::to_vec(&r["json"]).unwrap();
            let got = parse_assume_role(status, &body);
            if r["error"].is_object() {
                match got {
                    Err(ProviderError::Refused {
                        code,
                        retryable,
                        message,
                    }) => {
                        assert_eq!(code, r["error"]["code"].as_str().unwrap(), "{id}");
                        assert!(!retryable, "{id}");
                        assert!(message.starts_with("You are not authorized"), "{id}");
                    }
                    other => panic!("{id}: {other:?}"),
                }
            } else {
                let c = got.unwrap_or_else(|e| panic!("{id}: {e:?}"));
                let p = &r["parsed"]["Credentials"];
                assert_eq!(c.access_key_id, p["AccessKeyId"].as_str().unwrap());
                assert_eq!(c.expose_secret(), p["AccessKeySecret"].as_str().unwrap());
                assert_eq!(c.expose_token(), p["SecurityToken"].as_str().unwrap());
                // 2024-01-02T04:04:05Z
                assert_eq!(c.expiration, 1_704_168_245, "{id}");
                assert_eq!(
                    request_id(&body),
                    r["parsed"]["RequestId"].as_str().unwrap()
                );
                let d = format!("{c:?}");
                assert!(!d.contains(p["AccessKeySecret"].as_str().unwrap()));
                assert!(!d.contains(p["SecurityToken"].as_str().unwrap()));
            }
            with_response += 1;
        }
        assert_eq!(with_response, 4);
    }

    #[test]
    fn error_codes_are_classified() {
        for (code, status, retryable) in [
            ("Throttling", 400, true),
            ("Throttling.User", 400, true),
            ("Throttling.Api", 503, true),
            ("ServiceUnavailable", 503, true),
            ("InternalError", 500, true),
            ("SignatureNonceUsed", 400, true),
            ("UnknownError", 500, true),
            ("InvalidParameter", 400, false),
            ("InvalidParameter.DurationSeconds", 400, false),
            ("InvalidParameter.PolicyGrammar", 400, false),
            ("NoPermission", 403, false),
            ("InvalidAccessKeyId.NotFound", 404, false),
            ("InvalidAccessKeyId.Inactive", 400, false),
            ("SignatureDoesNotMatch", 400, false),
            ("InvalidTimeStamp.Expired", 400, false),
            ("EntityNotExist.Role", 404, false),
            ("SomethingElse", 400, false),
        ] {
            let body = json!({"RequestId": "r", "HostId": "sts.aliyuncs.com", "Code": code,
                "Message": "m", "Recommend": "https://x"});
            match parse_assume_role(status, &serde_json::to_vec(&body).unwrap()) {
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
    fn signature_messages_lose_the_string_to_sign() {
        let m = "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DLTAIsecretish%26SecurityToken%3DCAIS";
        let body = json!({"Code": "SignatureDoesNotMatch", "Message": m});
        match parse_assume_role(400, &serde_json::to_vec(&body).unwrap()) {
            Err(ProviderError::Refused { message, .. }) => {
                assert_eq!(
                    message,
                    "Specified signature is not matched with our calculation. server"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(safe_message(&"é".repeat(200)).len() <= 160);
    }

    #[test]
    fn refusals_never_echo_a_secret() {
        let body = json!({"Code": "InvalidAccessKeyId.NotFound",
            "Message": "Specified access key LTAILONGTERM1 is not found."});
        let err = parse(404, &serde_json::to_vec(&body).unwrap(), &["LTAILONGTERM1"]).unwrap_err();
        assert!(!format!("{err:?}").contains("LTAILONGTERM1"), "{err:?}");
        assert!(
            matches!(err, ProviderError::Refused { ref code, retryable: false, .. }
            if code == "InvalidAccessKeyId.NotFound")
        );
    }

    #[test]
    fn shapeless_and_missing() {
        assert_eq!(
            parse_assume_role(502, b"<html>").unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse_assume_role(403, b"{}").unwrap_err(),
            ProviderError::http_status(403)
        );
        assert!(matches!(
            parse_assume_role(200, b"{\"Credentials\":"),
            Err(ProviderError::Unusable(_))
        ));
        for field in [
            "AccessKeyId",
            "AccessKeySecret",
            "SecurityToken",
            "Expiration",
        ] {
            let mut c = json!({"AccessKeyId": "a", "AccessKeySecret": "SECRETVALUE",
                "SecurityToken": "TOKENVALUE", "Expiration": "2024-01-02T04:04:05Z"});
            c.as_object_mut().unwrap().remove(field);
            let body = serde_json::to_vec(&json!({"Credentials": c})).unwrap();
            assert_eq!(
                parse_assume_role(200, &body).unwrap_err(),
                ProviderError::Unusable(format!("Aliyun STS answer lacks Credentials.{field}"))
            );
        }
        let body = json!({"Credentials": {"AccessKeyId": "a", "AccessKeySecret": 12345678,
            "SecurityToken": "t", "Expiration": "2024-01-02T04:04:05Z"}});
        let err = parse_assume_role(200, &serde_json::to_vec(&body).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Credentials.AccessKeySecret") && !err.contains("12345678"));
        let body = json!({"Credentials": {"AccessKeyId": "a", "AccessKeySecret": "s",
            "SecurityToken": "t", "Expiration": "tomorrow"}});
        assert_eq!(
            parse_assume_role(200, &serde_json::to_vec(&body).unwrap()).unwrap_err(),
            ProviderError::Unusable(
                "Aliyun STS answer has a malformed Credentials.Expiration".into()
            )
        );
    }

    #[test]
    fn fractional_expiration_is_truncated() {
        use crate::clock::parse_utc;
        assert_eq!(parse_utc("2024-01-02T04:04:05.999Z"), Some(1_704_168_245));
        assert_eq!(parse_utc("2024-01-02T04:04:05Z"), Some(1_704_168_245));
        assert_eq!(parse_utc("2024-01-02 04:04:05"), None);
        let body = serde_json::to_vec(&json!({"Credentials": {"AccessKeyId": "a",
            "AccessKeySecret": "s", "SecurityToken": "t",
            "Expiration": "2024-01-02T04:04:05.999Z"}}))
        .unwrap();
        assert_eq!(
            parse_assume_role(200, &body).unwrap().expiration,
            1_704_168_245
        );
        assert_eq!(request_id(&body), "");
        assert_eq!(request_id(b"{\"RequestId\":\"r-1\"}"), "r-1");
    }

    #[test]
    fn session_policy_is_least_privilege() {
        assert_eq!(
            session_policy(
                "bseditor",
                "test/resource/video/2020/12/25/10503/x.mp4",
                false
            ),
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["oss:PutObject","oss:AbortMultipartUpload","oss:ListParts"],"Resource":["acs:oss:*:*:bseditor/test/resource/video/2020/12/25/10503/x.mp4"]}]}"#
        );
        assert_eq!(
            session_policy("b", "test/temp/2020/12/25/7/", true),
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["oss:PutObject","oss:AbortMultipartUpload","oss:ListParts"],"Resource":["acs:oss:*:*:b/test/temp/2020/12/25/7/*"]}]}"#
        );
    }

    #[test]
    fn session_policy_packed_length_is_checked_against_2048() {
        // A realistic key: well under the limit.
        let key = format!(
            "test/material/template/{}/2020/12/25/9223372036854775807/{}.jpeg",
            "u".repeat(64),
            uuid::Uuid::nil()
        );
        let p = session_policy(&"b".repeat(63), &key, false);
        assert!(p.len() < 400, "{}", p.len());
        check_policy_length(&p).unwrap();
        // Exactly at the limit passes, one more character fails (characters, not bytes).
        let overhead = session_policy("b", "", false).chars().count();
        let at = session_policy("b", &"é".repeat(MAX_POLICY_CHARS - overhead), false);
        assert_eq!(at.chars().count(), MAX_POLICY_CHARS);
        check_policy_length(&at).unwrap();
        let over = session_policy("b", &"k".repeat(MAX_POLICY_CHARS - overhead + 1), false);
        assert!(matches!(
            check_policy_length(&over),
            Err(ProviderError::InvalidRequest(m)) if m.contains("2049 characters")
        ));
    }

    #[test]
    fn session_names_are_sanitised() {
        assert_eq!(role_session_name("alice"), "alice");
        assert_eq!(role_session_name("alice@example.com"), "alice@example.com");
        assert_eq!(role_session_name("a b/c:d"), "a_b_c_d");
        assert_eq!(role_session_name("用户"), "__");
        assert_eq!(role_session_name("x"), "u-x");
        assert_eq!(role_session_name(""), "u-");
        assert_eq!(role_session_name(&"z".repeat(100)).len(), 64);
    }

    #[test]
    fn assume_role_params_are_the_sdk_set() {
        let a = AssumeRole {
            role_arn: "acs:ram::1:role/r".into(),
            role_session_name: "alice".into(),
            duration_secs: 3600,
            policy: "{}".into(),
        };
        let names: Vec<&str> = a.params("AK", "n", "t").iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "Action",
                "Format",
                "Version",
                "AccessKeyId",
                "SignatureMethod",
                "SignatureVersion",
                "SignatureNonce",
                "Timestamp",
                "RoleArn",
                "RoleSessionName",
                "DurationSeconds",
                "Policy"
            ]
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            oss_endpoint("", "oss-cn-beijing"),
            "https://oss-cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            oss_endpoint("http://127.0.0.1:9000/", "x"),
            "http://127.0.0.1:9000"
        );
    }

    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "\"x\"", "\"\"", "1", "1.5", "null", "{}", "[]", "true",
            "\"2024-01-02T04:04:05Z\"", "\"2024-01-02T04:04:05.5+08:00\"", "\"NaN\"",
            "{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"b\",\"SecurityToken\":\"c\",\"Expiration\":\"2024-01-02T04:04:05Z\"}",
            "{\"AccessKeyId\":1}",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_assume_role(status, &body);
        }

        #[test]
        fn never_panics_on_envelopes(
            status in prop::sample::select(vec![200u16, 204, 400, 403, 404, 429, 500, 503]),
            fields in prop::collection::vec(
                (prop::sample::select(vec![
                    "Credentials", "Code", "Message", "RequestId", "HostId", "AssumedRoleUser",
                ]), fragment()),
                0..8,
            ),
        ) {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let body = format!("{{{}}}", inner.join(","));
            let _ = parse_assume_role(status, body.as_bytes());
        }

        #[test]
        fn parse_time_never_panics(s in ".{0,40}") {
            let _ = crate::clock::parse_utc(&s);
        }

        #[test]
        fn session_names_are_always_valid(sub in ".{0,100}") {
            let n = role_session_name(&sub);
            prop_assert!((2..=64).contains(&n.len()));
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || ".@_-".contains(c)));
        }
    }
}
