//! The credential call: STS `AssumeRole` (pure; no HTTP here).
//!
//! - the request: [`assume_role_body`], with the least-privilege [`session_policy`] and a
//!   [`role_session_name`] derived from the user;
//! - the answer: [`parse`] reads `AssumeRoleResponse` into [`TempCredentials`] and every
//!   error shape an STS speaker sends (`ErrorResponse/Error{Type,Code,Message}`, and
//!   S3-style `Error`, which some S3-compatible stores use) with quick-xml; [`metadata`]
//!   reads what the answer says besides the credentials;
//! - the endpoints: [`s3_endpoint`] and [`dns_suffix`].
//!
//! Protocol: docs/providers/aws.md

use quick_xml::events::Event;
use quick_xml::Reader;
use secrecy::SecretString;

use crate::providers::sigv4::form_encode;
use crate::providers::{ProviderError, TempCredentials};

/// STS query-protocol action.
pub const ACTION: &str = "AssumeRole";
/// STS API version.
pub const VERSION: &str = "2011-06-15";
/// IAM policy language version.
pub const POLICY_VERSION: &str = "2012-10-17";
/// The only actions a session may perform: upload, and clean up its own multipart uploads.
pub const SESSION_ACTIONS: [&str; 3] = [
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];
/// AWS's limit on the plaintext of an inline session policy.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;
/// `AssumeRole`'s `DurationSeconds` range (the role's own maximum may be lower).
pub const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=43_200;

// ---- request ----

/// The ARN partition for S3 resources: the role's own partition (`aws`, `aws-cn`,
/// `aws-us-gov`, ...); `aws` for non-AWS stores (MinIO roles are `arn:minio:...`, while
/// MinIO policies name `arn:aws:s3:::` resources).
pub fn partition(role_arn: &str) -> &str {
    match role_arn.split(':').nth(1) {
        Some(p) if p == "aws" || p.starts_with("aws-") => p,
        _ => "aws",
    }
}

/// The inline session policy: only [`SESSION_ACTIONS`] on `arn:{partition}:s3:::{bucket}/{key}`,
/// or on `{key}*` when `is_dir` (then `key` is the folder ending in `/`). Compact JSON.
///
/// stsgate's keys never contain `*` or `?` (IAM wildcards): the layout allows
/// `[A-Za-z0-9-_./]` and digits only.
pub fn session_policy(partition: &str, bucket: &str, key: &str, is_dir: bool) -> String {
    let resource = if is_dir {
        format!("arn:{partition}:s3:::{bucket}/{key}*")
    } else {
        format!("arn:{partition}:s3:::{bucket}/{key}")
    };
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Policy<'a> {
        version: &'a str,
        statement: [Statement<'a>; 1],
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Statement<'a> {
        effect: &'a str,
        action: [&'a str; 3],
        resource: [String; 1],
    }
    // Fields in the conventional order (Version, Statement; Effect, Action, Resource).
    serde_json::to_string(&Policy {
        version: POLICY_VERSION,
        statement: [Statement {
            effect: "Allow",
            action: SESSION_ACTIONS,
            resource: [resource],
        }],
    })
    .expect("plain strings always serialise")
}

/// `RoleSessionName` from the user's `sub`: 2–64 of `[A-Za-z0-9_+=,.@-]`; any other
/// character becomes `-`, longer names are cut, a shorter one gets a `stsgate-` prefix.
/// It shows in CloudTrail as `assumed-role/{role}/{name}`.
pub fn role_session_name(sub: &str) -> String {
    let cleaned: String = sub
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.len() < 2 {
        format!("stsgate-{cleaned}")
    } else {
        cleaned
    }
}

/// The form body of `AssumeRole`, in botocore's parameter order.
pub fn assume_role_body(
    role_arn: &str,
    session_name: &str,
    duration_secs: u64,
    policy: &str,
) -> String {
    let duration = duration_secs.to_string();
    form_encode(&[
        ("Action", ACTION),
        ("Version", VERSION),
        ("RoleArn", role_arn),
        ("RoleSessionName", session_name),
        ("DurationSeconds", &duration),
        ("Policy", policy),
    ])
}

// ---- answer ----

/// What an `AssumeRole` answer says besides the credentials (for logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `AssumedRoleUser/Arn`; empty when absent.
    pub assumed_role_arn: String,
    /// `PackedPolicySize` (percent of the allowance used), when given.
    pub packed_policy_size: Option<u32>,
    /// `ResponseMetadata/RequestId`; empty when absent.
    pub request_id: String,
}

/// An XML document flattened to `(path of local names joined by '/', text)` per element,
/// in document order; namespaces are ignored. `None` when it is not well-formed XML.
fn leaves(body: &[u8]) -> Option<(String, Vec<(String, String)>)> {
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut root: Option<String> = None;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).ok()?;
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8(e.local_name().as_ref().to_vec()).ok()?;
                if path.is_empty() {
                    if root.is_some() {
                        return None; // a second root element
                    }
                    root = Some(name.clone());
                }
                path.push(name);
                out.push((path.join("/"), String::new()));
            }
            Event::Empty(e) => {
                let name = String::from_utf8(e.local_name().as_ref().to_vec()).ok()?;
                if path.is_empty() {
                    if root.is_some() {
                        return None;
                    }
                    root = Some(name.clone());
                }
                out.push((
                    format!("{}/{name}", path.join("/"))
                        .trim_start_matches('/')
                        .to_string(),
                    String::new(),
                ));
            }
            Event::End(_) => {
                path.pop()?;
            }
            Event::Text(t) => {
                if path.is_empty() {
                    return None; // text outside the root
                }
                let text = t.unescape().ok()?;
                let p = path.join("/");
                match out.iter_mut().rev().find(|(k, _)| *k == p) {
                    Some((_, v)) => v.push_str(&text),
                    None => out.push((p, text.into_owned())),
                }
            }
            Event::CData(c) => {
                if path.is_empty() {
                    return None;
                }
                let text = String::from_utf8(c.into_inner().into_owned()).ok()?;
                let p = path.join("/");
                match out.iter_mut().rev().find(|(k, _)| *k == p) {
                    Some((_, v)) => v.push_str(&text),
                    None => out.push((p, text)),
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions and DOCTYPE carry no data
            // (quick-xml never fetches or expands external entities).
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return None; // unclosed element
    }
    Some((root?, out))
}

fn leaf<'a>(leaves: &'a [(String, String)], path: &str) -> Option<&'a str> {
    leaves
        .iter()
        .find(|(k, _)| k == path)
        .map(|(_, v)| v.as_str())
}

/// Whether an STS error code is worth retrying: throttling and the service's own failures.
/// Authentication (`InvalidClientTokenId`, `SignatureDoesNotMatch`), authorisation
/// (`AccessDenied`) and parameter (`ValidationError`, `MalformedPolicyDocument`,
/// `PackedPolicyTooLarge`, ...) errors are not; any 5xx answer is, whatever its code.
pub fn is_retryable(status: u16, code: &str) -> bool {
    status >= 500
        || status == 429
        || code.starts_with("Throttling")
        || code.starts_with("TooManyRequests")
        || code == "RequestLimitExceeded"
        || code == "SlowDown"
        || code == "InternalFailure"
        || code == "InternalError"
        || code == "ServiceUnavailable"
}

/// The error message kept for logs: dropped for signature errors (some stores echo the
/// canonical request or string to sign), otherwise one line ([`ProviderError::refused`]
/// then cuts it and scrubs the secrets).
fn safe_message(code: &str, message: &str) -> String {
    if code.contains("Signature") {
        return String::new();
    }
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Parses an STS `AssumeRole` answer (any HTTP status) into credentials or the error it
/// carries. `secrets` are scrubbed from any error text the cloud sends back (STS does not
/// echo keys, but an S3-compatible store might). Error texts name fields, never their
/// values. The expiration goes through [`crate::clock::parse_utc`] (fractions truncated; no
/// offset is UTC, as botocore reads it).
pub fn parse(status: u16, body: &[u8], secrets: &[&str]) -> Result<TempCredentials, ProviderError> {
    let ok = (200..300).contains(&status);
    let shapeless = || {
        if ok {
            ProviderError::Unusable(format!(
                "STS answered HTTP {status} with an unrecognised body"
            ))
        } else {
            ProviderError::http_status(status)
        }
    };
    let Some((root, leaves)) = leaves(body) else {
        return Err(shapeless());
    };
    // Errors: STS's ErrorResponse/Error, or the S3-style Error some compatible stores send.
    let error_prefix = match root.as_str() {
        "ErrorResponse" => Some("ErrorResponse/Error"),
        "Error" => Some("Error"),
        _ => None,
    };
    if let Some(prefix) = error_prefix {
        let code = leaf(&leaves, &format!("{prefix}/Code"))
            .unwrap_or("")
            .trim();
        if code.is_empty() {
            return Err(shapeless());
        }
        let message = leaf(&leaves, &format!("{prefix}/Message")).unwrap_or("");
        return Err(ProviderError::refused(
            code,
            &safe_message(code, message),
            is_retryable(status, code),
            secrets,
        ));
    }
    if root != "AssumeRoleResponse" || !ok {
        return Err(shapeless());
    }
    const CREDS: &str = "AssumeRoleResponse/AssumeRoleResult/Credentials";
    let need = |name: &str| {
        leaf(&leaves, &format!("{CREDS}/{name}"))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ProviderError::Unusable(format!("STS answer lacks Credentials.{name}")))
    };
    let access_key_id = need("AccessKeyId")?.to_string();
    let secret_access_key = SecretString::from(need("SecretAccessKey")?.to_string());
    let security_token = SecretString::from(need("SessionToken")?.to_string());
    let expiration = crate::clock::parse_utc(need("Expiration")?).ok_or_else(|| {
        ProviderError::Unusable("STS answer has a malformed Credentials.Expiration".into())
    })?;
    Ok(TempCredentials {
        access_key_id,
        secret_access_key,
        security_token,
        expiration,
        start_time: None,
    })
}

/// The [`Metadata`] of an `AssumeRoleResponse` (all empty for any other body).
pub fn metadata(body: &[u8]) -> Metadata {
    let Some((root, leaves)) = leaves(body) else {
        return Metadata::default();
    };
    if root != "AssumeRoleResponse" {
        return Metadata::default();
    }
    let opt = |path: &str| leaf(&leaves, path).unwrap_or("").trim().to_string();
    Metadata {
        assumed_role_arn: opt("AssumeRoleResponse/AssumeRoleResult/AssumedRoleUser/Arn"),
        packed_policy_size: opt("AssumeRoleResponse/AssumeRoleResult/PackedPolicySize")
            .parse()
            .ok(),
        request_id: opt("AssumeRoleResponse/ResponseMetadata/RequestId"),
    }
}

// ---- endpoints ----

/// The AWS DNS suffix of a region: `amazonaws.com.cn` in China, else `amazonaws.com`.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The S3 service endpoint, never containing the bucket: `s3_endpoint` (without a trailing
/// `/`), else `https://s3.{region}.amazonaws.com` (`.com.cn` in China).
pub fn s3_endpoint(s3_endpoint: &str, region: &str) -> String {
    if s3_endpoint.is_empty() {
        format!("https://s3.{region}.{}", dns_suffix(region))
    } else {
        s3_endpoint.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_utc;
    use crate::providers::test_vectors::s;
    use proptest::prelude::*;
    use serde_json::Value;

    const STS: &str = include_str!("../../../tests/vectors/aws/aws_sigv4_sts.json");

    fn parse_no_secrets(status: u16, body: &[u8]) -> Result<TempCredentials, ProviderError> {
        parse(status, body, &[])
    }

    /// Every canned STS answer of the botocore vectors parses to what botocore parsed.
    #[test]
    fn vectors_aws_sigv4_sts_responses() {
        let file: Value = serde_json::from_str(STS).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let r = &v["response"];
            let status = r["status"].as_u64().unwrap() as u16;
            let got = parse_no_secrets(status, s(r, "xml").as_bytes());
            if let Some(err) = r["error"].as_object() {
                match got {
                    Err(ProviderError::Refused {
                        code,
                        message,
                        retryable,
                    }) => {
                        assert_eq!(code, err["Code"].as_str().unwrap(), "{id}");
                        assert_eq!(message, err["Message"].as_str().unwrap(), "{id}");
                        assert!(!retryable, "{id}: AccessDenied is final");
                    }
                    other => panic!("{id}: {other:?}"),
                }
            } else {
                let p = &r["parsed"];
                let c = got.unwrap_or_else(|e| panic!("{id}: {e:?}"));
                let m = metadata(s(r, "xml").as_bytes());
                assert_eq!(c.access_key_id, s(p, "AccessKeyId"), "{id}");
                assert_eq!(c.expose_secret(), s(p, "SecretAccessKey"));
                assert_eq!(c.expose_token(), s(p, "SessionToken"));
                assert_eq!(c.start_time, None);
                assert_eq!(Some(c.expiration), parse_utc(s(p, "Expiration")));
                assert_eq!(
                    crate::clock::rfc3339(c.expiration),
                    s(p, "Expiration"),
                    "{id}"
                );
                assert_eq!(m.assumed_role_arn, s(&p["AssumedRoleUser"], "Arn"));
                assert_eq!(
                    m.packed_policy_size.map(u64::from),
                    p["PackedPolicySize"].as_u64()
                );
                assert_eq!(m.request_id, "c6104cbe-af31-11e0-8154-cbc7ccf896c7");
                let dbg = format!("{c:?}");
                assert!(
                    !dbg.contains(s(p, "SecretAccessKey")) && !dbg.contains(s(p, "SessionToken"))
                );
            }
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 8);
    }

    #[test]
    fn session_policy_is_least_privilege() {
        assert_eq!(
            session_policy("aws", "bkt", "test/temp/2024/01/02/7/x.png", false),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Resource":["arn:aws:s3:::bkt/test/temp/2024/01/02/7/x.png"]}]}"#
        );
        let dir: Value = serde_json::from_str(&session_policy(
            "aws-cn",
            "bkt",
            "test/temp/2024/01/02/7/",
            true,
        ))
        .unwrap();
        assert_eq!(
            dir["Statement"][0]["Resource"][0],
            "arn:aws-cn:s3:::bkt/test/temp/2024/01/02/7/*"
        );
        assert_eq!(dir["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(partition("arn:aws:iam::1:role/r"), "aws");
        assert_eq!(partition("arn:aws-cn:iam::1:role/r"), "aws-cn");
        assert_eq!(partition("arn:aws-us-gov:iam::1:role/r"), "aws-us-gov");
        assert_eq!(partition("arn:minio:iam:::role/dummy"), "aws");
    }

    /// The longest key stsgate's layout can produce (64-character key prefix, a 64-character
    /// template uuid, the largest objectId, a 16-character extension) in a 63-character
    /// bucket, in the longest partition name, keeps the session policy far under AWS's
    /// 2048-character plaintext limit (and so under the packed limit it is measured against).
    #[test]
    fn session_policy_packed_length_is_under_the_limit() {
        use crate::upload::layout;
        use crate::upload::module::UploadModule;
        let prefix = "p".repeat(64);
        let dir = layout::module_dir(UploadModule::MaterialTemplate, None, Some(&"u".repeat(64)));
        let key = layout::relative_path(
            &prefix,
            &dir,
            time::macros::date!(2099 - 12 - 31),
            i64::MAX,
            uuid::Uuid::new_v4(),
            &"e".repeat(16),
            false,
        );
        let bucket = "b".repeat(63);
        for is_dir in [false, true] {
            let p = session_policy("aws-us-gov", &bucket, &key, is_dir);
            assert!(p.len() < 700, "{} characters", p.len());
            assert!(p.len() < MAX_SESSION_POLICY_CHARS);
            // Form-encoded for the STS body it stays reasonable too.
            assert!(assume_role_body("arn:aws:iam::1:role/r", "s", 3600, &p).len() < 2 * 1024);
        }
    }

    #[test]
    fn session_names_follow_sts_rules() {
        assert_eq!(role_session_name("alice"), "alice");
        assert_eq!(role_session_name("a"), "stsgate-a");
        assert_eq!(role_session_name(""), "stsgate-");
        assert_eq!(role_session_name("auth0|user 1/x"), "auth0-user-1-x");
        assert_eq!(
            role_session_name("tenant-a.user@example.com"),
            "tenant-a.user@example.com"
        );
        assert_eq!(role_session_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn body_is_botocore_form_encoding() {
        assert_eq!(
            assume_role_body("arn:aws:iam::1:role/r", "alice", 900, "{\"a\":\"b c\"}"),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=alice&DurationSeconds=900&Policy=%7B%22a%22%3A%22b+c%22%7D"
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            s3_endpoint("", "eu-west-1"),
            "https://s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            s3_endpoint("", "cn-north-1"),
            "https://s3.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            s3_endpoint("http://127.0.0.1:9000/", "us-east-1"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(dns_suffix("cn-northwest-1"), "amazonaws.com.cn");
        assert_eq!(dns_suffix("eu-west-1"), "amazonaws.com");
    }

    fn refused(status: u16, body: &str) -> (String, String, bool) {
        match parse_no_secrets(status, body.as_bytes()) {
            Err(ProviderError::Refused {
                code,
                message,
                retryable,
            }) => (code, message, retryable),
            other => panic!("{body}: {other:?}"),
        }
    }

    fn error_xml(code: &str) -> String {
        format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>m &amp; n</Message></Error><RequestId>r</RequestId></ErrorResponse>")
    }

    #[test]
    fn error_codes_are_classified() {
        for (status, code, retryable) in [
            (400, "Throttling", true),
            (400, "ThrottlingException", true),
            (400, "RequestLimitExceeded", true),
            (503, "ServiceUnavailable", true),
            (500, "InternalFailure", true),
            (500, "AnythingElse", true),
            (403, "AccessDenied", false),
            (403, "InvalidClientTokenId", false),
            (403, "SignatureDoesNotMatch", false),
            (400, "ValidationError", false),
            (400, "MalformedPolicyDocument", false),
            (400, "PackedPolicyTooLarge", false),
            (403, "ExpiredToken", false),
            (403, "RegionDisabledException", false),
        ] {
            let (c, m, r) = refused(status, &error_xml(code));
            assert_eq!(c, code);
            assert_eq!(r, retryable, "{status} {code}");
            if code.contains("Signature") {
                assert_eq!(m, "", "signature errors keep no message");
            } else {
                assert_eq!(m, "m & n");
            }
        }
        // S3-style error (MinIO and others), any status.
        let (c, _, r) = refused(
            403,
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>x</Message></Error>",
        );
        assert_eq!((c.as_str(), r), ("AccessDenied", false));
        let (c, _, r) = refused(503, "<Error><Code>SlowDown</Code></Error>");
        assert_eq!((c.as_str(), r), ("SlowDown", true));
    }

    #[test]
    fn shapeless_answers() {
        assert_eq!(
            parse_no_secrets(502, b"<html>bad gateway</html>").unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse_no_secrets(403, b"").unwrap_err(),
            ProviderError::http_status(403)
        );
        assert_eq!(
            parse_no_secrets(400, b"<ErrorResponse><Error></Error></ErrorResponse>").unwrap_err(),
            ProviderError::http_status(400)
        );
        assert!(matches!(
            parse_no_secrets(200, b"<AssumeRoleResponse><AssumeRoleResult>"),
            Err(ProviderError::Unusable(_))
        ));
        assert!(matches!(
            parse_no_secrets(200, b"{\"json\":1}"),
            Err(ProviderError::Unusable(_))
        ));
        assert!(matches!(
            parse_no_secrets(200, b"<a/><b/>"),
            Err(ProviderError::Unusable(_))
        ));
        // A success document with a non-2xx status is not trusted.
        assert_eq!(
            parse_no_secrets(400, ok_xml("2024-01-02T04:04:05Z").as_bytes()).unwrap_err(),
            ProviderError::http_status(400)
        );
    }

    fn ok_xml(expiration: &str) -> String {
        format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>SECRET-VALUE</SecretAccessKey><SessionToken>TOKEN-VALUE</SessionToken><Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"
        )
    }

    #[test]
    fn missing_fields_are_named_never_valued() {
        for name in [
            "AccessKeyId",
            "SecretAccessKey",
            "SessionToken",
            "Expiration",
        ] {
            let xml = ok_xml("2024-01-02T04:04:05Z");
            let start = xml.find(&format!("<{name}>")).unwrap();
            let end = xml.find(&format!("</{name}>")).unwrap() + name.len() + 3;
            let cut = format!("{}{}", &xml[..start], &xml[end..]);
            assert_eq!(
                parse_no_secrets(200, cut.as_bytes()).unwrap_err(),
                ProviderError::Unusable(format!("STS answer lacks Credentials.{name}"))
            );
        }
        let err = parse_no_secrets(200, ok_xml("SECRET-VALUE-soon").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Credentials.Expiration") && !err.contains("SECRET"),
            "{err}"
        );
        let c = parse_no_secrets(200, ok_xml("2024-01-02T04:04:05Z").as_bytes()).unwrap();
        let m = metadata(ok_xml("2024-01-02T04:04:05Z").as_bytes());
        assert!(m.packed_policy_size.is_none() && m.request_id.is_empty());
        assert_eq!(
            metadata(&error_xml("AccessDenied").into_bytes()),
            Metadata::default()
        );
        assert_eq!(metadata(b"not xml"), Metadata::default());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET-VALUE") && !dbg.contains("TOKEN-VALUE"));
    }

    #[test]
    fn expirations_in_every_iso_form_truncate() {
        for (text, unix) in [
            ("2024-01-02T04:04:05Z", 1_704_168_245),
            ("2024-01-02T04:04:05.999Z", 1_704_168_245),
            ("2024-01-02T04:04:05.999999+00:00", 1_704_168_245),
            ("2024-01-02T05:04:05+01:00", 1_704_168_245),
            ("2024-01-02T04:04:05", 1_704_168_245),
            ("2024-01-02T04:04:05.5", 1_704_168_245),
        ] {
            assert_eq!(parse_utc(text), Some(unix), "{text}");
            let c = parse_no_secrets(200, ok_xml(text).as_bytes()).unwrap();
            assert_eq!(c.expiration, unix, "{text}");
        }
        assert_eq!(parse_utc("tomorrow"), None);
    }

    #[test]
    fn cdata_and_entities_are_read() {
        let xml = ok_xml("2024-01-02T04:04:05Z")
            .replace("TOKEN-VALUE", "<![CDATA[tok/+=]]>")
            .replace("SECRET-VALUE", "a&amp;b");
        let c = parse_no_secrets(200, xml.as_bytes()).unwrap();
        assert_eq!(c.expose_token(), "tok/+=");
        assert_eq!(c.expose_secret(), "a&b");
    }

    /// Belt and braces: STS does not quote our keys, but an S3-compatible store might; the
    /// long-term key id and secret never reach the logged message.
    #[test]
    fn refusals_never_quote_our_keys() {
        let xml = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>key AKIDSECRETID (s3cr3t) is unknown</Message></Error></ErrorResponse>";
        let e = parse(403, xml.as_bytes(), &["AKIDSECRETID", "s3cr3t"]).unwrap_err();
        assert_eq!(
            e,
            ProviderError::Refused {
                code: "InvalidClientTokenId".into(),
                message: "key <redacted> (<redacted>) is unknown".into(),
                retryable: false
            }
        );
        let kept = parse(403, error_xml("AccessDenied").as_bytes(), &["AKIDSECRETID"]);
        assert!(matches!(kept, Err(ProviderError::Refused { message, .. }) if message == "m & n"));
        let long = format!(
            "<Error><Code>AccessDenied</Code><Message>{}</Message></Error>",
            "y".repeat(500)
        );
        match parse(403, long.as_bytes(), &[]) {
            Err(ProviderError::Refused { message, .. }) => assert_eq!(message.chars().count(), 160),
            other => panic!("{other:?}"),
        }
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "<Code>Throttling</Code>",
            "<Code></Code>",
            "<Message>x</Message>",
            "<Error>",
            "</Error>",
            "<Credentials>",
            "</Credentials>",
            "<AccessKeyId>A</AccessKeyId>",
            "<SecretAccessKey>S</SecretAccessKey>",
            "<SessionToken>T</SessionToken>",
            "<Expiration>2024-01-02T04:04:05Z</Expiration>",
            "<Expiration>2024-13-45T99:04:05Z</Expiration>",
            "<Expiration>-1</Expiration>",
            "<AssumeRoleResult>",
            "</AssumeRoleResult>",
            "<![CDATA[x]]>",
            "&amp;",
            "&bogus;",
            "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
            "&e;",
            "<?xml version=\"1.0\"?>",
            "<a/>",
            "text",
        ])
        .prop_map(String::from)
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_no_secrets(status, &body);
        }

        #[test]
        fn never_panics_on_documents(
            status in prop::sample::select(vec![200u16, 400, 403, 429, 500, 503]),
            root in prop::sample::select(vec!["AssumeRoleResponse", "ErrorResponse", "Error", "Other"]),
            parts in prop::collection::vec(fragment(), 0..12),
        ) {
            let body = format!("<{root}>{}</{root}>", parts.concat());
            let got = parse_no_secrets(status, body.as_bytes());
            if let Err(e) = &got {
                // No error text ever carries a credential value.
                let t = e.to_string();
                prop_assert!(!t.contains("<SecretAccessKey>") && !t.contains("/etc/passwd"));
            }
            if got.is_ok() {
                prop_assert!((200..300).contains(&status));
            }
        }

        #[test]
        fn session_names_are_always_valid(sub in "\\PC{0,100}") {
            let n = role_session_name(&sub);
            prop_assert!((2..=64).contains(&n.len()));
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)));
        }

    }
}
