//! KSyun STS `AssumeRole` and KS3 POST wire formats (pure; no HTTP here).
//!
//! **The one place to change** when KSyun's real answer shape is confirmed: the protocol
//! notes mark the `AssumeRole` answer as unverified (docs/providers/ksyun.md //! §3.1, §7.3). What is implemented, and where it comes from:
//! - success: `{"RequestId", "AssumeRoleResult": {"Credentials": {"AccessKeyId",
//!   "SecretAccessKey", "SecurityToken", "Expiration"}, "AssumedRoleUser": {"Krn",
//!   "AssumedRoleId"}}}` — the "AssumeRole-style result object" of the notes, with the field
//!   names of the official Java SDK model (`ksyun.client.sts.assumerole.v20151101`). Parsed
//!   defensively: the credentials are also found at the top level (`Credentials`) or under
//!   `AssumeRoleResponse.AssumeRoleResult`, and `SessionToken` is read when `SecurityToken`
//!   is absent;
//! - failure: `{"Error": {"Code", "Message"}, "RequestId"}` — what the official Python SDK
//!   (`ksyun.client.sts.v20151101.StsClient.AssumeRole`) reads, with any HTTP status;
//! - `Expiration`: RFC 3339 ("UTC time"; fractions truncated, offsets honoured), also
//!   accepted without an offset (taken as UTC) or as Unix seconds.

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::providers::sigv4::form_encode;
use crate::providers::ProviderError;

/// `Action`.
pub const ACTION: &str = "AssumeRole";
/// `Version`.
pub const VERSION: &str = "2015-11-01";
/// Longest session `Policy` KSyun accepts (characters).
pub const MAX_POLICY_CHARS: usize = 1024;
/// `DurationSeconds` bounds.
pub const MIN_DURATION_SECS: u64 = 900;
/// `DurationSeconds` upper bound.
pub const MAX_DURATION_SECS: u64 = 86_400;
/// The KS3 actions a session policy allows: upload, and the multipart clean-up/listing of
/// the same object (KS3, like S3, authorises initiate/upload-part/complete as `PutObject`).
pub const UPLOAD_ACTIONS: [&str; 3] = [
    "ks3:PutObject",
    "ks3:AbortMultipartUpload",
    "ks3:ListMultipartUploadParts",
];
/// Default KS3 service endpoint (docs/contract.md §1.2).
pub const DEFAULT_KS3_ENDPOINT: &str = "https://ks3-cn-beijing.ksyuncs.com";

/// The `AssumeRole` form body: `Action`, `Version`, `RoleKrn`, `RoleSessionName`,
/// `DurationSeconds` and (when given) `Policy`, form-encoded (`A-Za-z0-9-_.~` kept).
/// The newer official SDK sends the same parameters the same way (plus SDK bookkeeping
/// fields the API does not need); the signature covers these exact bytes.
pub fn assume_role_body(
    role_krn: &str,
    session_name: &str,
    duration_secs: u64,
    policy: Option<&str>,
) -> String {
    let duration = duration_secs.to_string();
    let mut pairs = vec![
        ("Action", ACTION),
        ("Version", VERSION),
        ("RoleKrn", role_krn),
        ("RoleSessionName", session_name),
        ("DurationSeconds", duration.as_str()),
    ];
    if let Some(p) = policy {
        pairs.push(("Policy", p));
    }
    form_encode(&pairs)
}

/// `RoleSessionName` for one issuance: `stsgate-{objectId}` (2–64 of `[\w+=,.@-]`; no user
/// data, and unique per object so KSyun's audit log names the allocation).
pub fn session_name(object_id: i64) -> String {
    format!("stsgate-{object_id}")
}

/// The KRN the credentials may write: `krn:ksc:ks3:::{bucket}/{key}`, or
/// `krn:ksc:ks3:::{bucket}/{prefix}*` for a folder (`key` ends in `/`).
pub fn object_krn(bucket: &str, key: &str, is_dir: bool) -> String {
    if is_dir {
        format!("krn:ksc:ks3:::{bucket}/{key}*")
    } else {
        format!("krn:ksc:ks3:::{bucket}/{key}")
    }
}

/// A KSyun IAM policy document, fields in the documented order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyDocument<'a> {
    version: &'a str,
    statement: [Statement<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement<'a> {
    effect: &'a str,
    action: &'a [&'a str],
    resource: [String; 1],
}

/// The least-privilege session policy (compact JSON): upload actions only, on one object
/// (or one prefix). Effective rights are the role's intersected with this.
/// `Err` when it is longer than [`MAX_POLICY_CHARS`].
pub fn session_policy(bucket: &str, key: &str, is_dir: bool) -> Result<String, String> {
    let policy = serde_json::to_string(&PolicyDocument {
        version: VERSION,
        statement: [Statement {
            effect: "Allow",
            action: &UPLOAD_ACTIONS,
            resource: [object_krn(bucket, key, is_dir)],
        }],
    })
    .expect("plain strings always serialise");
    let chars = policy.chars().count();
    if chars > MAX_POLICY_CHARS {
        return Err(format!(
            "the KSyun session policy would be {chars} characters (at most {MAX_POLICY_CHARS})"
        ));
    }
    Ok(policy)
}

/// KS3 POST policy expiration: ISO-8601 UTC with milliseconds, `2025-01-01T00:15:00.000Z`.
pub fn post_expiration(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    t.format(&f).unwrap_or_default()
}

/// The KS3 POST policy JSON (compact): the bucket, the exact key (or `starts-with` the
/// folder prefix, for a `key` field of `{prefix}${filename}`), and a size limit; expires
/// with the credentials. Only `key` is a form field besides `KSSAccessKeyId`, `Policy`,
/// `Signature` and `file`, so nothing else needs a condition.
pub fn post_policy(
    bucket: &str,
    key: &str,
    is_dir: bool,
    max_bytes: u64,
    expiration_unix: i64,
) -> String {
    #[derive(Serialize)]
    struct PostPolicy {
        expiration: String,
        conditions: [Value; 3],
    }
    let key_condition = if is_dir {
        json!(["starts-with", "$key", key])
    } else {
        json!(["eq", "$key", key])
    };
    serde_json::to_string(&PostPolicy {
        expiration: post_expiration(expiration_unix),
        conditions: [
            json!(["eq", "$bucket", bucket]),
            key_condition,
            json!(["content-length-range", 0, max_bytes]),
        ],
    })
    .expect("plain values always serialise")
}

/// The KS3 service endpoint: the configured one (trailing `/` removed), else the default.
pub fn ks3_endpoint(configured: &str) -> String {
    let e = configured.trim_end_matches('/');
    if e.is_empty() {
        DEFAULT_KS3_ENDPOINT.to_string()
    } else {
        e.to_string()
    }
}

/// The browser POST URL: the bucket as a virtual host of the endpoint
/// (`https://ks3-cn-beijing.ksyuncs.com` → `https://{bucket}.ks3-cn-beijing.ksyuncs.com`).
pub fn bucket_url(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("https://{bucket}.{endpoint}"),
    }
}

/// Temporary credentials from `AssumeRole`.
#[derive(Clone)]
pub struct KsyunCredential {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: SecretString,
    /// `SecurityToken`.
    pub security_token: SecretString,
    /// `Expiration`, Unix seconds (fractions truncated).
    pub expiration: i64,
    /// `AssumedRoleUser.Krn`; empty when absent.
    pub assumed_role_krn: String,
    /// `RequestId`; empty when absent.
    pub request_id: String,
}

impl std::fmt::Debug for KsyunCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KsyunCredential")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("security_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .field("assumed_role_krn", &self.assumed_role_krn)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl KsyunCredential {
    /// The temporary secret, for the one place that hands it to the client.
    pub fn expose_secret_access_key(&self) -> &str {
        self.secret_access_key.expose_secret()
    }

    /// The session token, for the one place that hands it to the client.
    pub fn expose_security_token(&self) -> &str {
        self.security_token.expose_secret()
    }
}

/// Error codes worth retrying: throttling and the server's own failures. KSyun's code list
/// for STS is not published; these are the AWS-style names its gateway uses elsewhere
/// (unverified). Every other code (signature, parameter, policy, role) is final.
pub fn is_retryable_code(code: &str) -> bool {
    const RETRYABLE: [&str; 6] = [
        "Throttl",
        "RequestLimitExceeded",
        "TooManyRequests",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
    ];
    RETRYABLE.iter().any(|p| code.contains(p))
}

/// Keeps an upstream message fit for logs: at most 120 characters, and any run of 16 or
/// more key-like characters (`A-Za-z0-9+/=_-`) replaced by `<redacted>`, so an echoed key
/// id, token or signature never reaches a log.
pub fn scrub_message(message: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 16 {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || "+/=_-".contains(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    out.chars().take(120).collect()
}

/// Parses an `AssumeRole` answer (any HTTP status) into credentials or the error it carries.
/// Error messages name fields, never their values.
pub fn parse_assume_role(status: u16, body: &[u8]) -> Result<KsyunCredential, ProviderError> {
    let ok = (200..300).contains(&status);
    let shapeless = || {
        if ok {
            ProviderError::Unusable(format!(
                "KSyun STS answered HTTP {status} with an unrecognised body"
            ))
        } else {
            ProviderError::http_status(status)
        }
    };
    let root: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => return Err(shapeless()),
    };
    if let Some(err) = root.get("Error").and_then(Value::as_object) {
        let code = match err.get("Code") {
            Some(Value::String(c)) if !c.is_empty() => c.clone(),
            _ => return Err(shapeless()),
        };
        let message = err
            .get("Message")
            .and_then(Value::as_str)
            .map(scrub_message)
            .unwrap_or_default();
        let retryable = is_retryable_code(&code) || status >= 500 || status == 429;
        return Err(ProviderError::Refused {
            code,
            message,
            retryable,
        });
    }
    if !ok {
        return Err(ProviderError::http_status(status));
    }
    let result = root
        .get("AssumeRoleResult")
        .or_else(|| root.get("AssumeRoleResponse")?.get("AssumeRoleResult"))
        .and_then(Value::as_object);
    let creds = result
        .and_then(|r| r.get("Credentials"))
        .or_else(|| root.get("Credentials"));
    let creds = match creds {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => {
            return Err(if result.is_none() {
                shapeless()
            } else {
                missing("Credentials")
            })
        }
        Some(_) => return Err(malformed("Credentials")),
    };
    let access_key_id = required_str(creds, "AccessKeyId", "Credentials.AccessKeyId")?;
    let secret_access_key = required_str(creds, "SecretAccessKey", "Credentials.SecretAccessKey")?;
    let security_token = if creds.contains_key("SecurityToken") {
        required_str(creds, "SecurityToken", "Credentials.SecurityToken")?
    } else if creds.contains_key("SessionToken") {
        required_str(creds, "SessionToken", "Credentials.SessionToken")?
    } else {
        return Err(missing("Credentials.SecurityToken"));
    };
    let expiration = match creds.get("Expiration") {
        None | Some(Value::Null) => return Err(missing("Credentials.Expiration")),
        Some(v) => expiration_unix(v).ok_or_else(|| malformed("Credentials.Expiration"))?,
    };
    let assumed_role_krn = result
        .and_then(|r| r.get("AssumedRoleUser"))
        .and_then(|u| u.get("Krn"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let request_id = root
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(KsyunCredential {
        access_key_id,
        secret_access_key: SecretString::from(secret_access_key),
        security_token: SecretString::from(security_token),
        expiration,
        assumed_role_krn,
        request_id,
    })
}

/// `Expiration` as Unix seconds: RFC 3339 (fraction truncated, offset honoured), the same
/// without an offset (UTC), or an integer / decimal string of Unix seconds.
pub fn expiration_unix(v: &Value) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
                return Some(t.unix_timestamp());
            }
            if let Ok(n) = s.parse::<i64>() {
                return Some(n);
            }
            // No offset: "UTC time" per KSyun's SDK docs.
            let f = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            time::PrimitiveDateTime::parse(s, &f)
                .ok()
                .map(|t| t.assume_utc().unix_timestamp())
        }
        _ => None,
    }
}

fn missing(field: &str) -> ProviderError {
    ProviderError::Unusable(format!("KSyun STS answer lacks {field}"))
}

fn malformed(field: &str) -> ProviderError {
    ProviderError::Unusable(format!("KSyun STS answer has a malformed {field}"))
}

/// A non-empty string field; absent, null or empty is "lacks", another type "malformed".
fn required_str(obj: &Map<String, Value>, key: &str, name: &str) -> Result<String, ProviderError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(missing(name)),
        Some(_) => Err(malformed(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok_body() -> Value {
        json!({
            "RequestId": "req-1",
            "AssumeRoleResult": {
                "Credentials": {
                    "AccessKeyId": "AKTPtmp",
                    "SecretAccessKey": "SECRET-KEY-VALUE",
                    "SecurityToken": "TOKEN-VALUE",
                    "Expiration": "2025-01-01T01:00:00Z"
                },
                "AssumedRoleUser": {
                    "Krn": "krn:ksc:iam::2000000001:assumed-role/stsgate-upload/stsgate-7",
                    "AssumedRoleId": "r:stsgate-7"
                }
            }
        })
    }

    fn parse(v: &Value) -> Result<KsyunCredential, ProviderError> {
        parse_assume_role(200, &serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn parses_the_documented_shape() {
        let c = parse(&ok_body()).unwrap();
        assert_eq!(c.access_key_id, "AKTPtmp");
        assert_eq!(c.expose_secret_access_key(), "SECRET-KEY-VALUE");
        assert_eq!(c.expose_security_token(), "TOKEN-VALUE");
        assert_eq!(c.expiration, 1_735_693_200);
        assert_eq!(c.request_id, "req-1");
        assert!(c.assumed_role_krn.ends_with("/stsgate-7"));
        let dbg = format!("{c:?}");
        for secret in ["AKTPtmp", "SECRET-KEY-VALUE", "TOKEN-VALUE"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn parses_the_defensive_variants() {
        let creds = ok_body()["AssumeRoleResult"]["Credentials"].clone();
        // Credentials at the top level.
        let c = parse(&json!({"RequestId": "r", "Credentials": creds})).unwrap();
        assert_eq!(c.access_key_id, "AKTPtmp");
        // Wrapped in AssumeRoleResponse (AWS's JSON rendering).
        let c = parse(&json!({"AssumeRoleResponse": {"AssumeRoleResult": {"Credentials": creds}}}))
            .unwrap();
        assert_eq!(c.expiration, 1_735_693_200);
        // SessionToken instead of SecurityToken.
        let mut v = ok_body();
        let cr = v["AssumeRoleResult"]["Credentials"]
            .as_object_mut()
            .unwrap();
        let token = cr.remove("SecurityToken").unwrap();
        cr.insert("SessionToken".into(), token);
        assert_eq!(parse(&v).unwrap().expose_security_token(), "TOKEN-VALUE");
    }

    #[test]
    fn expiration_formats() {
        for (text, want) in [
            (json!("2025-01-01T01:00:00Z"), 1_735_693_200),
            (json!("2025-01-01T01:00:00.999Z"), 1_735_693_200),
            (json!("2025-01-01T09:00:00+08:00"), 1_735_693_200),
            (json!("2025-01-01T01:00:00"), 1_735_693_200),
            (json!("2025-01-01T01:00:00.5"), 1_735_693_200),
            (json!(1_735_693_200), 1_735_693_200),
            (json!("1735693200"), 1_735_693_200),
        ] {
            assert_eq!(expiration_unix(&text), Some(want), "{text}");
        }
        for bad in [
            json!("soon"),
            json!(true),
            json!(1.5),
            json!(null),
            json!(""),
        ] {
            assert_eq!(expiration_unix(&bad), None, "{bad}");
        }
        let mut v = ok_body();
        v["AssumeRoleResult"]["Credentials"]["Expiration"] = json!("tomorrow");
        assert_eq!(
            parse(&v).unwrap_err(),
            ProviderError::Unusable(
                "KSyun STS answer has a malformed Credentials.Expiration".into()
            )
        );
    }

    #[test]
    fn error_envelope_and_classification() {
        for (status, code, retryable) in [
            (403, "SignatureDoesNotMatch", false),
            (403, "InvalidAccessKeyId", false),
            (400, "InvalidParameterValue", false),
            (400, "MalformedPolicyDocument", false),
            (404, "NoSuchEntity", false),
            (400, "Throttling", true),
            (400, "RequestLimitExceeded", true),
            (500, "InternalError", true),
            (503, "ServiceUnavailable", true),
            (500, "SomethingElse", true),
            (429, "SomethingElse", true),
            (200, "AccessDenied", false),
        ] {
            let body = json!({"RequestId": "r", "Error": {"Code": code, "Message": "m", "Type": "Sender"}});
            match parse_assume_role(status, &serde_json::to_vec(&body).unwrap()) {
                Err(ProviderError::Refused {
                    code: c,
                    message,
                    retryable: r,
                }) => {
                    assert_eq!(c, code);
                    assert_eq!(message, "m");
                    assert_eq!(r, retryable, "{status} {code}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn shapeless_answers() {
        assert_eq!(
            parse_assume_role(502, b"<html>bad gateway</html>").unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse_assume_role(403, br#"{"RequestId":"r"}"#).unwrap_err(),
            ProviderError::http_status(403)
        );
        assert_eq!(
            parse_assume_role(403, br#"{"Error":{"Code":""}}"#).unwrap_err(),
            ProviderError::http_status(403)
        );
        assert!(matches!(
            parse_assume_role(200, b"not json"),
            Err(ProviderError::Unusable(m)) if m.contains("HTTP 200")
        ));
        assert!(matches!(
            parse_assume_role(200, br#"{"Other":1}"#),
            Err(ProviderError::Unusable(m)) if m.contains("HTTP 200")
        ));
    }

    #[test]
    fn missing_fields_are_named_and_secrets_never_echoed() {
        for (field, name) in [
            ("AccessKeyId", "Credentials.AccessKeyId"),
            ("SecretAccessKey", "Credentials.SecretAccessKey"),
            ("SecurityToken", "Credentials.SecurityToken"),
            ("Expiration", "Credentials.Expiration"),
        ] {
            let mut v = ok_body();
            v["AssumeRoleResult"]["Credentials"]
                .as_object_mut()
                .unwrap()
                .remove(field);
            assert_eq!(
                parse(&v).unwrap_err(),
                ProviderError::Unusable(format!("KSyun STS answer lacks {name}"))
            );
        }
        let v = json!({"AssumeRoleResult": {"AssumedRoleUser": {}}});
        assert_eq!(
            parse(&v).unwrap_err(),
            ProviderError::Unusable("KSyun STS answer lacks Credentials".into())
        );
        let mut v = ok_body();
        v["AssumeRoleResult"]["Credentials"]["SecurityToken"] = json!(987_654_321);
        let err = parse(&v).unwrap_err().to_string();
        assert!(err.contains("Credentials.SecurityToken") && !err.contains("987654321"));
    }

    #[test]
    fn messages_are_scrubbed() {
        assert_eq!(scrub_message("Role not found."), "Role not found.");
        let m = scrub_message("The AccessKeyId AKLTabcdefghijklmnop1234 is invalid\nsee docs");
        assert_eq!(m, "The AccessKeyId <redacted> is invalid see docs");
        assert_eq!(scrub_message(&"x ".repeat(200)).chars().count(), 120);
    }

    #[test]
    fn body_and_policy() {
        let policy = session_policy("stsgate-demo", "test/a/b.png", false).unwrap();
        assert_eq!(
            policy,
            r#"{"Version":"2015-11-01","Statement":[{"Effect":"Allow","Action":["ks3:PutObject","ks3:AbortMultipartUpload","ks3:ListMultipartUploadParts"],"Resource":["krn:ksc:ks3:::stsgate-demo/test/a/b.png"]}]}"#
        );
        let dir = session_policy("b", "test/temp/2025/01/01/7/", true).unwrap();
        assert!(dir.contains(r#""krn:ksc:ks3:::b/test/temp/2025/01/01/7/*""#));
        let body = assume_role_body(
            "krn:ksc:iam::2000000001:role/stsgate-upload",
            &session_name(7),
            900,
            Some(&policy),
        );
        let back: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let names: Vec<&str> = back.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Action",
                "Version",
                "RoleKrn",
                "RoleSessionName",
                "DurationSeconds",
                "Policy"
            ]
        );
        assert_eq!(back[0].1, "AssumeRole");
        assert_eq!(back[1].1, "2015-11-01");
        assert_eq!(back[3].1, "stsgate-7");
        assert_eq!(back[4].1, "900");
        assert_eq!(back[5].1, policy);
        assert!(body.starts_with(
            "Action=AssumeRole&Version=2015-11-01&RoleKrn=krn%3Aksc%3Aiam%3A%3A2000000001%3Arole%2Fstsgate-upload&"
        ));
        assert!(!assume_role_body("k", "s", 900, None).contains("Policy"));
    }

    /// The packed policy for the longest key stsgate can allocate stays within KSyun's
    /// 1024 characters, and anything longer is refused before a call.
    #[test]
    fn session_policy_packed_length() {
        // key_prefix 64, the longest module dir (material/template/{uuid of 64}), the date,
        // a 19-digit objectId, a UUID and a 16-character extension.
        let key = format!(
            "{}/material/template/{}/2025/12/31/{}/{}.{}",
            "p".repeat(64),
            "u".repeat(64),
            i64::MAX,
            uuid::Uuid::nil().hyphenated(),
            "e".repeat(16)
        );
        let bucket = "b".repeat(63);
        let p = session_policy(&bucket, &key, false).unwrap();
        assert!(p.len() <= MAX_POLICY_CHARS, "{}", p.len());
        assert!(p.len() < 600, "{}", p.len());
        // 173 characters of structure, plus the bucket and the key (+1 `*` for a folder).
        assert_eq!(p.len(), 173 + bucket.len() + key.len());
        assert_eq!(
            session_policy("b", "k/", true).unwrap().len(),
            173 + 1 + 2 + 1
        );
        let err = session_policy("b", &"k".repeat(1000), false).unwrap_err();
        assert!(err.contains("at most 1024"), "{err}");
    }

    #[test]
    fn post_policy_shape() {
        let p = post_policy(
            "stsgate-demo",
            "test/a.png",
            false,
            10_485_760,
            1_735_690_500,
        );
        assert_eq!(
            p,
            r#"{"expiration":"2025-01-01T00:15:00.000Z","conditions":[["eq","$bucket","stsgate-demo"],["eq","$key","test/a.png"],["content-length-range",0,10485760]]}"#
        );
        let d = post_policy("b", "test/temp/", true, 1, 0);
        assert!(d.contains(r#"["starts-with","$key","test/temp/"]"#), "{d}");
        assert_eq!(post_expiration(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn endpoints() {
        assert_eq!(ks3_endpoint(""), DEFAULT_KS3_ENDPOINT);
        assert_eq!(
            ks3_endpoint("https://ks3-cn-shanghai.ksyuncs.com/"),
            "https://ks3-cn-shanghai.ksyuncs.com"
        );
        assert_eq!(
            bucket_url(DEFAULT_KS3_ENDPOINT, "bkt"),
            "https://bkt.ks3-cn-beijing.ksyuncs.com"
        );
        assert_eq!(
            bucket_url("http://127.0.0.1:9000", "b"),
            "http://b.127.0.0.1:9000"
        );
    }

    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "\"x\"",
            "\"\"",
            "1",
            "-1",
            "1.5",
            "1e300",
            "18446744073709551615",
            "null",
            "{}",
            "[]",
            "true",
            "\"2025-01-01T00:00:00Z\"",
            "\"2025-13-01T00:00:00Z\"",
            "{\"Code\":1}",
            "{\"Code\":\"InternalError\"}",
            "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\",\"SecurityToken\":\"c\",\"Expiration\":\"2025-01-01T00:00:00Z\"}",
            "{\"Credentials\":{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\",\"SessionToken\":\"c\",\"Expiration\":9}}",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_assume_role(status, &body);
        }

        #[test]
        fn never_panics_on_envelopes(
            status in prop::sample::select(vec![200u16, 204, 400, 403, 429, 500, 503]),
            fields in prop::collection::vec(
                (prop::sample::select(vec![
                    "Error", "AssumeRoleResult", "AssumeRoleResponse", "Credentials",
                    "RequestId", "AssumedRoleUser",
                ]), fragment()),
                0..8,
            ),
        ) {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let body = format!("{{{}}}", inner.join(","));
            let _ = parse_assume_role(status, body.as_bytes());
        }

        #[test]
        fn expiration_never_panics(s in "\\PC{0,40}") {
            let _ = expiration_unix(&Value::String(s));
        }

        #[test]
        fn rfc3339_round_trips(unix in 0i64..4_102_444_800) {
            let text = crate::clock::rfc3339(unix);
            prop_assert_eq!(expiration_unix(&Value::String(text)), Some(unix));
        }

        #[test]
        fn scrubbed_messages_hold_no_long_token(s in "\\PC{0,300}") {
            let m = scrub_message(&s);
            prop_assert!(m.chars().count() <= 120);
            let mut run = 0;
            for c in m.chars() {
                if c.is_ascii_alphanumeric() || "+/=_-".contains(c) { run += 1; } else { run = 0; }
                prop_assert!(run < 16, "{}", m);
            }
        }

        #[test]
        fn policies_stay_scoped(key in "[A-Za-z0-9/._-]{1,200}", is_dir in any::<bool>()) {
            let p = session_policy("bkt", &key, is_dir).unwrap();
            let v: Value = serde_json::from_str(&p).unwrap();
            let res = v["Statement"][0]["Resource"][0].as_str().unwrap().to_string();
            prop_assert_eq!(res, object_krn("bkt", &key, is_dir));
            prop_assert_eq!(v["Statement"].as_array().unwrap().len(), 1);
            prop_assert_eq!(&v["Statement"][0]["Action"], &json!(UPLOAD_ACTIONS));
        }
    }
}
