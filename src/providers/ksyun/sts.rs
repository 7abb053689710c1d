//! The credential call: KSyun STS `AssumeRole` — request body, the KS3 session policy, and
//! answer parsing (pure; no HTTP here).
//!
//! **The one place to change** when KSyun's real answer shape is confirmed: the protocol
//! notes mark the `AssumeRole` answer as unverified (docs/providers/ksyun.md §3.1, §7.3). What is implemented, and where it comes from:
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

use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::providers::answer::Answer;
use crate::providers::sigv4::form_encode;
use crate::providers::{ProviderError, TempCredentials};

/// `Action`.
pub const ACTION: &str = "AssumeRole";
/// `Version`.
pub const VERSION: &str = "2015-11-01";
/// Longest session `Policy` KSyun accepts (characters).
pub const MAX_POLICY_CHARS: usize = 1024;
/// `DurationSeconds` bounds.
pub const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=86_400;
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

/// The KS3 service endpoint: the configured one (trailing `/` removed), else the default.
pub fn ks3_endpoint(configured: &str) -> String {
    let e = configured.trim_end_matches('/');
    if e.is_empty() {
        DEFAULT_KS3_ENDPOINT.to_string()
    } else {
        e.to_string()
    }
}

/// Error codes worth retrying: throttling and the server's own failures, and any 5xx or
/// 429. KSyun's code list for STS is not published; these are the AWS-style names its
/// gateway uses elsewhere (unverified). Every other code (signature, parameter, policy,
/// role) is final.
pub fn is_retryable(status: u16, code: &str) -> bool {
    const RETRYABLE: [&str; 6] = [
        "Throttl",
        "RequestLimitExceeded",
        "TooManyRequests",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
    ];
    status >= 500 || status == 429 || RETRYABLE.iter().any(|p| code.contains(p))
}

/// How errors name this answer.
const KSYUN_STS: Answer = Answer("KSyun STS");

/// KSyun's answers are not documented to keep keys out of their messages, so before the
/// shared scrubber ([`ProviderError::refused`]) any run of 16 or more key-like characters
/// (`A-Za-z0-9+/=_-`) becomes `<redacted>`: an echoed temporary key id, token or signature
/// never reaches a log either.
pub fn safe_message(message: &str) -> String {
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
    out
}

/// Parses an `AssumeRole` answer (any HTTP status) into credentials or the error it carries.
/// `secrets` are scrubbed from any error text the cloud sends back. Error messages name
/// fields, never their values.
pub fn parse(status: u16, body: &[u8], secrets: &[&str]) -> Result<TempCredentials, ProviderError> {
    let ok = (200..300).contains(&status);
    let shapeless = || KSYUN_STS.shapeless(status, "with an unrecognised body");
    let root: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => return Err(shapeless()),
    };
    if let Some(err) = root.get("Error").and_then(Value::as_object) {
        let code = match err.get("Code") {
            Some(Value::String(c)) if !c.is_empty() => c.as_str(),
            _ => return Err(shapeless()),
        };
        let message = err.get("Message").and_then(Value::as_str).unwrap_or("");
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
    let result = assume_role_result(&root);
    let creds = result
        .and_then(|r| r.get("Credentials"))
        .or_else(|| root.get("Credentials"));
    let creds = match creds {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => {
            return Err(if result.is_none() {
                shapeless()
            } else {
                KSYUN_STS.missing("Credentials")
            })
        }
        Some(_) => return Err(KSYUN_STS.malformed("Credentials")),
    };
    let field = |key: &str| KSYUN_STS.required_str(creds, key, &format!("Credentials.{key}"));
    let access_key_id = field("AccessKeyId")?;
    let secret_access_key = field("SecretAccessKey")?;
    let security_token = if creds.contains_key("SecurityToken") {
        field("SecurityToken")?
    } else if creds.contains_key("SessionToken") {
        field("SessionToken")?
    } else {
        return Err(KSYUN_STS.missing("Credentials.SecurityToken"));
    };
    let expiration = match creds.get("Expiration") {
        None | Some(Value::Null) => return Err(KSYUN_STS.missing("Credentials.Expiration")),
        Some(v) => {
            expiration_unix(v).ok_or_else(|| KSYUN_STS.malformed("Credentials.Expiration"))?
        }
    };
    Ok(TempCredentials {
        access_key_id,
        secret_access_key: SecretString::from(secret_access_key),
        security_token: SecretString::from(security_token),
        expiration,
        start_time: None,
    })
}

/// `AssumeRoleResult`, at the top level or under `AssumeRoleResponse`.
fn assume_role_result(root: &Map<String, Value>) -> Option<&Map<String, Value>> {
    root.get("AssumeRoleResult")
        .or_else(|| root.get("AssumeRoleResponse")?.get("AssumeRoleResult"))
        .and_then(Value::as_object)
}

/// The answer's `RequestId` (empty when absent or not a JSON object); for logs and tests.
pub fn request_id(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => root
            .get("RequestId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// The answer's `AssumedRoleUser.Krn` (empty when absent); for logs and tests.
pub fn assumed_role_krn(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => assume_role_result(&root)
            .and_then(|r| r.get("AssumedRoleUser"))
            .and_then(|u| u.get("Krn"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// `Expiration` as Unix seconds: RFC 3339 or the same without an offset (UTC), through
/// [`crate::clock::parse_utc`] (fraction truncated, offset honoured), or an integer /
/// decimal string of Unix seconds.
pub fn expiration_unix(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => crate::clock::parse_utc(s).or_else(|| s.trim().parse::<i64>().ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

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

    fn parse_value(v: &Value) -> Result<TempCredentials, ProviderError> {
        parse(200, &serde_json::to_vec(v).unwrap(), &[])
    }

    #[test]
    fn parses_the_documented_shape() {
        let c = parse_value(&ok_body()).unwrap();
        assert_eq!(c.access_key_id, "AKTPtmp");
        assert_eq!(c.expose_secret(), "SECRET-KEY-VALUE");
        assert_eq!(c.expose_token(), "TOKEN-VALUE");
        assert_eq!(c.expiration, 1_735_693_200);
        assert_eq!(c.start_time, None);
        let body = serde_json::to_vec(&ok_body()).unwrap();
        assert_eq!(request_id(&body), "req-1");
        assert!(assumed_role_krn(&body).ends_with("/stsgate-7"));
        assert_eq!(request_id(b"not json"), "");
        assert_eq!(assumed_role_krn(br#"{"Credentials":{}}"#), "");
        let dbg = format!("{c:?}");
        for secret in ["AKTPtmp", "SECRET-KEY-VALUE", "TOKEN-VALUE"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn parses_the_defensive_variants() {
        let creds = ok_body()["AssumeRoleResult"]["Credentials"].clone();
        // Credentials at the top level.
        let c = parse_value(&json!({"RequestId": "r", "Credentials": creds})).unwrap();
        assert_eq!(c.access_key_id, "AKTPtmp");
        // Wrapped in AssumeRoleResponse (AWS's JSON rendering).
        let c = parse_value(
            &json!({"AssumeRoleResponse": {"AssumeRoleResult": {"Credentials": creds}}}),
        )
        .unwrap();
        assert_eq!(c.expiration, 1_735_693_200);
        // SessionToken instead of SecurityToken.
        let mut v = ok_body();
        let cr = v["AssumeRoleResult"]["Credentials"]
            .as_object_mut()
            .unwrap();
        let token = cr.remove("SecurityToken").unwrap();
        cr.insert("SessionToken".into(), token);
        assert_eq!(parse_value(&v).unwrap().expose_token(), "TOKEN-VALUE");
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
            parse_value(&v).unwrap_err(),
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
            match parse(status, &serde_json::to_vec(&body).unwrap(), &[]) {
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
            parse(502, b"<html>bad gateway</html>", &[]).unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse(403, br#"{"RequestId":"r"}"#, &[]).unwrap_err(),
            ProviderError::http_status(403)
        );
        assert_eq!(
            parse(403, br#"{"Error":{"Code":""}}"#, &[]).unwrap_err(),
            ProviderError::http_status(403)
        );
        assert!(matches!(
            parse(200, b"not json", &[]),
            Err(ProviderError::Unusable(m)) if m.contains("HTTP 200")
        ));
        assert!(matches!(
            parse(200, br#"{"Other":1}"#, &[]),
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
                parse_value(&v).unwrap_err(),
                ProviderError::Unusable(format!("KSyun STS answer lacks {name}"))
            );
        }
        let v = json!({"AssumeRoleResult": {"AssumedRoleUser": {}}});
        assert_eq!(
            parse_value(&v).unwrap_err(),
            ProviderError::Unusable("KSyun STS answer lacks Credentials".into())
        );
        let mut v = ok_body();
        v["AssumeRoleResult"]["Credentials"]["SecurityToken"] = json!(987_654_321);
        let err = parse_value(&v).unwrap_err().to_string();
        assert!(err.contains("Credentials.SecurityToken") && !err.contains("987654321"));
    }

    #[test]
    fn messages_are_scrubbed() {
        let refused = |message: &str| {
            let body = json!({"Error": {"Code": "InvalidAccessKeyId", "Message": message}});
            parse(
                403,
                &serde_json::to_vec(&body).unwrap(),
                &["AKLTabcdefghijklmnop1234", "LONG-TERM-SECRET"],
            )
            .unwrap_err()
        };
        let message = |e: ProviderError| match e {
            ProviderError::Refused { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(refused("Role not found.")), "Role not found.");
        let m = message(refused(
            "The AccessKeyId AKLTabcdefghijklmnop1234 is invalid (LONG-TERM-SECRET)",
        ));
        assert_eq!(m, "The AccessKeyId <redacted> is invalid (<redacted>)");
        assert_eq!(message(refused(&"x ".repeat(200))).chars().count(), 160);
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
    fn endpoints() {
        assert_eq!(ks3_endpoint(""), DEFAULT_KS3_ENDPOINT);
        assert_eq!(
            ks3_endpoint("https://ks3-cn-shanghai.ksyuncs.com/"),
            "https://ks3-cn-shanghai.ksyuncs.com"
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
            let _ = parse(status, &body, &["secret"]);
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
            let _ = parse(status, body.as_bytes(), &[]);
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
        fn refusals_hold_no_long_token(s in "\\PC{0,300}") {
            let body = json!({"Error": {"Code": "InvalidParameter", "Message": s}});
            let Err(ProviderError::Refused { message: m, .. }) =
                parse(400, &serde_json::to_vec(&body).unwrap(), &[])
            else {
                return Err(TestCaseError::fail("not refused"));
            };
            prop_assert!(m.chars().count() <= 160);
            let mut run = 0;
            for c in m.chars() {
                if c.is_ascii_alphanumeric() || "+/=_-".contains(c) { run += 1; } else { run = 0; }
                prop_assert!(run < 16, "{}", m);
            }
        }

        #[test]
        fn refusals_never_echo_the_long_term_key(s in "\\PC{0,300}") {
            let ak = "AKLTabcdefghijklmnop1234";
            let body = json!({"Error": {"Code": format!("Bad{ak}"), "Message": format!("{s}{ak}{s}")}});
            match parse(400, &serde_json::to_vec(&body).unwrap(), &[ak]) {
                Err(ProviderError::Refused { code, message, .. }) => {
                    prop_assert!(message.chars().count() <= 160);
                    prop_assert!(!message.contains(ak) && !code.contains(ak));
                }
                other => prop_assert!(false, "{:?}", other),
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
