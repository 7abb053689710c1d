//! Aliyun wire types, pure: the STS `AssumeRole` parameters and answer parsing, the session
//! policy, the OSS PostObject policy and form, endpoints. No HTTP here.
//!
//! STS answers are JSON: `{"RequestId","AssumedRoleUser","Credentials":{"AccessKeyId",
//! "AccessKeySecret","SecurityToken","Expiration"}}` on success; failures are HTTP 4xx/5xx
//! with `{"RequestId","HostId","Code","Message","Recommend"}` (protocols §3.1).

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::sign;
use crate::providers::{Form, ProviderError};

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

/// Temporary credentials from `AssumeRole`.
#[derive(Clone)]
pub struct StsCredentials {
    /// `Credentials.AccessKeyId` (`STS.…`).
    pub access_key_id: String,
    /// `Credentials.AccessKeySecret`.
    pub access_key_secret: SecretString,
    /// `Credentials.SecurityToken`.
    pub security_token: SecretString,
    /// `Credentials.Expiration`, Unix seconds (fractions truncated).
    pub expiration: i64,
    /// `RequestId`; empty when absent.
    pub request_id: String,
}

impl std::fmt::Debug for StsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("security_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl StsCredentials {
    /// The temporary secret, for signing the form and for the one place that hands it out.
    pub fn expose_secret(&self) -> &str {
        self.access_key_secret.expose_secret()
    }
    /// The security token, likewise.
    pub fn expose_token(&self) -> &str {
        self.security_token.expose_secret()
    }
}

/// Error codes not worth retrying are checked first; then throttling, service-side errors,
/// a nonce collision (a retry carries a fresh nonce) and any 5xx are retryable.
pub fn is_retryable(code: &str, status: u16) -> bool {
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

/// Parses an `AssumeRole` answer (any HTTP status) into credentials or the error it
/// carries. Error messages name fields, never their values.
pub fn parse_assume_role(status: u16, body: &[u8]) -> Result<StsCredentials, ProviderError> {
    let ok = (200..300).contains(&status);
    let shapeless = |what: &str| {
        if ok {
            ProviderError::Unusable(format!("Aliyun STS answered HTTP {status} {what}"))
        } else {
            ProviderError::http_status(status)
        }
    };
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Err(shapeless("with a body that is not a JSON object"));
    };
    let credentials = root.get("Credentials");
    let code = root.get("Code").and_then(Value::as_str).unwrap_or("");
    // An error envelope (a success answer that also names a Code is still a success).
    let is_error = !code.is_empty() && (!ok || credentials.is_none());
    if is_error {
        let message = root.get("Message").and_then(Value::as_str).unwrap_or("");
        return Err(ProviderError::Refused {
            code: code.to_string(),
            message: safe_message(message),
            retryable: is_retryable(code, status),
        });
    }
    if !ok {
        return Err(ProviderError::http_status(status));
    }
    let Some(Value::Object(c)) = credentials else {
        return Err(missing("Credentials"));
    };
    let access_key_id = required_str(c, "AccessKeyId")?;
    let access_key_secret = required_str(c, "AccessKeySecret")?;
    let security_token = required_str(c, "SecurityToken")?;
    let expiration = required_str(c, "Expiration")?;
    let expiration = parse_time(&expiration).ok_or_else(|| malformed("Credentials.Expiration"))?;
    let request_id = match root.get("RequestId") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Ok(StsCredentials {
        access_key_id,
        access_key_secret: SecretString::from(access_key_secret),
        security_token: SecretString::from(security_token),
        expiration,
        request_id,
    })
}

fn missing(field: &str) -> ProviderError {
    ProviderError::Unusable(format!("Aliyun STS answer lacks {field}"))
}

fn malformed(field: &str) -> ProviderError {
    ProviderError::Unusable(format!("Aliyun STS answer has a malformed {field}"))
}

fn required_str(obj: &Map<String, Value>, key: &str) -> Result<String, ProviderError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            Err(missing(&format!("Credentials.{key}")))
        }
        Some(_) => Err(malformed(&format!("Credentials.{key}"))),
    }
}

/// ISO 8601 / RFC 3339 time (`2024-01-02T04:04:05Z`, fractions allowed and truncated) as
/// Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(t.unix_timestamp())
}

/// `YYYY-MM-DDTHH:MM:SS.000Z`, the PostObject policy's `expiration` format.
pub fn policy_time(unix: i64) -> String {
    let s = crate::clock::rfc3339(unix);
    format!("{}.000Z", s.trim_end_matches('Z'))
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

/// The bucket host URL for PostObject: `{scheme}://{bucket}.{endpoint host}[:port]`.
pub fn bucket_url(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{}", rest.trim_end_matches('/')),
        None => format!("https://{bucket}.{}", endpoint.trim_end_matches('/')),
    }
}

/// What a browser form upload needs.
#[derive(Debug, Clone)]
pub struct PostFormInput<'a> {
    /// `bucket_url`.
    pub url: String,
    /// Bucket.
    pub bucket: &'a str,
    /// `relativePath` (for a folder: the prefix, ending in `/`).
    pub key: &'a str,
    /// Folder upload: `key` is a prefix; the form's key is `{prefix}${filename}`.
    pub is_dir: bool,
    /// Largest object (`content-length-range` upper bound).
    pub max_bytes: u64,
    /// The credentials the form is signed with.
    pub creds: &'a StsCredentials,
    /// The OSS `callback` parameter and the custom variables it uses, when asked.
    pub callback: Option<(&'a str, &'a [(String, String)])>,
}

/// `success_action_status` the form asks for (an empty 200 rather than a 204).
pub const SUCCESS_ACTION_STATUS: &str = "200";

/// The PostObject policy JSON: `expiration` = the credentials' own, the bucket, the key
/// (`eq`, or `starts-with` for a folder), `content-length-range` 0..max, the
/// `success_action_status`, the security token and, when asked, the callback.
pub fn post_policy(input: &PostFormInput<'_>) -> String {
    let key_cond = if input.is_dir {
        json!(["starts-with", "$key", input.key])
    } else {
        json!(["eq", "$key", input.key])
    };
    let mut conditions = vec![
        json!({"bucket": input.bucket}),
        key_cond,
        json!(["content-length-range", 0, input.max_bytes]),
        json!({"success_action_status": SUCCESS_ACTION_STATUS}),
        json!({"x-oss-security-token": input.creds.expose_token()}),
    ];
    if let Some((cb, _)) = input.callback {
        conditions.push(json!({ "callback": cb }));
    }
    #[derive(Serialize)]
    struct Policy {
        expiration: String,
        conditions: Vec<Value>,
    }
    serde_json::to_string(&Policy {
        expiration: policy_time(input.creds.expiration),
        conditions,
    })
    .expect("JSON values always serialise")
}

/// The browser form (V1 signature, signed with the temporary secret). Fields, in order:
/// `key`, `OSSAccessKeyId`, `policy`, `Signature`, `x-oss-security-token`,
/// `success_action_status`, then `callback` and its `x:` variables when asked.
pub fn post_form(input: &PostFormInput<'_>) -> Form {
    let policy = sign::post_policy_base64(&post_policy(input));
    let signature = sign::post_signature_v1(input.creds.expose_secret(), &policy);
    let key = if input.is_dir {
        format!("{}${{filename}}", input.key)
    } else {
        input.key.to_string()
    };
    let mut fields = vec![
        ("key".to_string(), key),
        (
            "OSSAccessKeyId".to_string(),
            input.creds.access_key_id.clone(),
        ),
        ("policy".to_string(), policy.clone()),
        ("Signature".to_string(), signature.clone()),
        (
            "x-oss-security-token".to_string(),
            input.creds.expose_token().to_string(),
        ),
        (
            "success_action_status".to_string(),
            SUCCESS_ACTION_STATUS.to_string(),
        ),
    ];
    if let Some((cb, vars)) = input.callback {
        fields.push(("callback".to_string(), cb.to_string()));
        fields.extend(vars.iter().cloned());
    }
    Form {
        url: input.url.clone(),
        fields,
        policy,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::crypto::b64_decode;
    use proptest::prelude::*;

    const RPC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/aliyun/aliyun_rpc_sts.json"
    ));

    fn creds(expiration: i64) -> StsCredentials {
        StsCredentials {
            access_key_id: "STS.tmp".into(),
            access_key_secret: SecretString::from("tmpSECRET".to_string()),
            security_token: SecretString::from("tokenTOKEN".to_string()),
            expiration,
            request_id: String::new(),
        }
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
                assert_eq!(c.request_id, r["parsed"]["RequestId"].as_str().unwrap());
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
        assert_eq!(parse_time("2024-01-02T04:04:05.999Z"), Some(1_704_168_245));
        assert_eq!(parse_time("2024-01-02T04:04:05Z"), Some(1_704_168_245));
        assert_eq!(parse_time("2024-01-02 04:04:05"), None);
        assert_eq!(policy_time(1_704_168_245), "2024-01-02T04:04:05.000Z");
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
        assert_eq!(
            bucket_url("https://oss-cn-beijing.aliyuncs.com", "bseditor"),
            "https://bseditor.oss-cn-beijing.aliyuncs.com"
        );
    }

    #[test]
    fn form_fields_policy_and_signature() {
        let c = creds(1_704_168_245);
        let vars = vec![
            ("x:objectid".to_string(), "7".to_string()),
            ("x:resourcetype".to_string(), "2".to_string()),
        ];
        let input = PostFormInput {
            url: "https://b.oss-cn-beijing.aliyuncs.com".into(),
            bucket: "b",
            key: "test/resource/image/2024/01/02/7/n.png",
            is_dir: false,
            max_bytes: 20_971_520,
            creds: &c,
            callback: Some(("CB64", &vars)),
        };
        let f = post_form(&input);
        let names: Vec<&str> = f.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "OSSAccessKeyId",
                "policy",
                "Signature",
                "x-oss-security-token",
                "success_action_status",
                "callback",
                "x:objectid",
                "x:resourcetype"
            ]
        );
        let policy = String::from_utf8(b64_decode(&f.policy).unwrap()).unwrap();
        assert_eq!(
            policy,
            r#"{"expiration":"2024-01-02T04:04:05.000Z","conditions":[{"bucket":"b"},["eq","$key","test/resource/image/2024/01/02/7/n.png"],["content-length-range",0,20971520],{"success_action_status":"200"},{"x-oss-security-token":"tokenTOKEN"},{"callback":"CB64"}]}"#
        );
        // Independent HMAC-SHA1 over the base64 policy with the temporary secret.
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"tmpSECRET").unwrap();
        mac.update(f.policy.as_bytes());
        use base64::Engine as _;
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(f.signature, want);
        assert_eq!(f.fields[3].1, want);
        assert_eq!(f.fields[1].1, "STS.tmp");

        let dir = PostFormInput {
            key: "test/temp/2024/01/02/7/",
            is_dir: true,
            callback: None,
            ..input
        };
        let f = post_form(&dir);
        assert_eq!(f.fields[0].1, "test/temp/2024/01/02/7/${filename}");
        assert_eq!(f.fields.len(), 6);
        let policy = String::from_utf8(b64_decode(&f.policy).unwrap()).unwrap();
        assert!(policy.contains(r#"["starts-with","$key","test/temp/2024/01/02/7/"]"#));
        assert!(!policy.contains("callback"));
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
            let _ = parse_time(&s);
        }

        #[test]
        fn session_names_are_always_valid(sub in ".{0,100}") {
            let n = role_session_name(&sub);
            prop_assert!((2..=64).contains(&n.len()));
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || ".@_-".contains(c)));
        }
    }
}
