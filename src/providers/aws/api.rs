//! STS `AssumeRole` and S3 browser-POST wire formats (pure; no HTTP here).
//!
//! - the request: [`assume_role_body`], with the least-privilege [`session_policy`] and a
//!   [`role_session_name`] derived from the user;
//! - the answer: [`parse_assume_role`] reads `AssumeRoleResponse` and every error shape an
//!   STS speaker sends (`ErrorResponse/Error{Type,Code,Message}`, and S3-style `Error`, which
//!   some S3-compatible stores use) with quick-xml;
//! - the browser form: [`post_form`] writes the POST policy exactly as botocore's
//!   `generate_presigned_post` does (its JSON bytes are what is signed), and signs it with
//!   the `aws-sigv4` key derivation ([`super::sign::post_policy_signature`]).
//!
//! Protocol: docs/providers/aws.md

use std::time::SystemTime;

use quick_xml::events::Event;
use quick_xml::Reader;
use secrecy::{ExposeSecret as _, SecretString};

use super::sign::post_policy_signature;
use crate::providers::crypto::b64;
use crate::providers::sigv4::{amz_date, credential, form_encode, ALGORITHM};
use crate::providers::ProviderError;

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
/// Longest error message kept from an STS answer (for logs only).
const MAX_MESSAGE_CHARS: usize = 200;

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

/// Temporary credentials from `AssumeRole`.
#[derive(Clone)]
pub struct AssumedCredentials {
    /// `Credentials/AccessKeyId`.
    pub access_key_id: String,
    /// `Credentials/SecretAccessKey`.
    pub secret_access_key: SecretString,
    /// `Credentials/SessionToken`.
    pub session_token: SecretString,
    /// `Credentials/Expiration`, Unix seconds (fractions truncated).
    pub expiration: i64,
    /// `AssumedRoleUser/Arn`; empty when absent.
    pub assumed_role_arn: String,
    /// `PackedPolicySize` (percent of the allowance used), when given.
    pub packed_policy_size: Option<u32>,
    /// `ResponseMetadata/RequestId`; empty when absent.
    pub request_id: String,
}

impl std::fmt::Debug for AssumedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .field("packed_policy_size", &self.packed_policy_size)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl AssumedCredentials {
    /// The temporary secret, for the places that sign with it or hand it to the client.
    pub fn expose_secret_access_key(&self) -> &str {
        self.secret_access_key.expose_secret()
    }

    /// The session token, for the places that sign with it or hand it to the client.
    pub fn expose_session_token(&self) -> &str {
        self.session_token.expose_secret()
    }
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
/// canonical request or string to sign), otherwise one line cut to 200 characters.
fn safe_message(code: &str, message: &str) -> String {
    if code.contains("Signature") {
        return String::new();
    }
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

/// An RFC 3339 / ISO-8601 UTC timestamp as Unix seconds, fractions truncated; a timestamp
/// without an offset is taken as UTC (botocore does the same).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, &naive)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Parses an STS `AssumeRole` answer (any HTTP status) into credentials or the error it
/// carries. Error texts name fields, never their values.
pub fn parse_assume_role(status: u16, body: &[u8]) -> Result<AssumedCredentials, ProviderError> {
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
        return Err(ProviderError::Refused {
            code: code.chars().take(64).collect(),
            message: safe_message(code, message),
            retryable: is_retryable(status, code),
        });
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
    let session_token = SecretString::from(need("SessionToken")?.to_string());
    let expiration = parse_timestamp(need("Expiration")?).ok_or_else(|| {
        ProviderError::Unusable("STS answer has a malformed Credentials.Expiration".into())
    })?;
    let opt = |path: &str| leaf(&leaves, path).unwrap_or("").trim().to_string();
    Ok(AssumedCredentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        assumed_role_arn: opt("AssumeRoleResponse/AssumeRoleResult/AssumedRoleUser/Arn"),
        packed_policy_size: opt("AssumeRoleResponse/AssumeRoleResult/PackedPolicySize")
            .parse()
            .ok(),
        request_id: opt("AssumeRoleResponse/ResponseMetadata/RequestId"),
    })
}

// ---- endpoints ----

fn dns_suffix(region: &str) -> &'static str {
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

/// Where a browser POSTs: path-style `{endpoint}/{bucket}`; virtual-host
/// `https://{bucket}.s3.{region}.amazonaws.com/` (`{bucket}.s3.amazonaws.com` in us-east-1,
/// as botocore writes it), or `{scheme}://{bucket}.{host}/` on a configured endpoint.
pub fn bucket_url(s3_endpoint_cfg: &str, region: &str, bucket: &str, path_style: bool) -> String {
    if path_style {
        return format!("{}/{bucket}", s3_endpoint(s3_endpoint_cfg, region));
    }
    if s3_endpoint_cfg.is_empty() {
        return if region == "us-east-1" {
            format!("https://{bucket}.s3.amazonaws.com/")
        } else {
            format!("https://{bucket}.s3.{region}.{}/", dns_suffix(region))
        };
    }
    match reqwest::Url::parse(s3_endpoint_cfg) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            match u.port() {
                Some(p) => format!("{}://{bucket}.{host}:{p}/", u.scheme()),
                None => format!("{}://{bucket}.{host}/", u.scheme()),
            }
        }
        // Validated at start; unreachable in practice.
        Err(_) => format!("{}/{bucket}", s3_endpoint_cfg.trim_end_matches('/')),
    }
}

// ---- browser POST form ----

/// One POST-policy condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}`: the field must equal the value (`bucket` is the bucket).
    Eq(String, String),
    /// `["starts-with", "$field", "prefix"]`; an empty prefix allows any value.
    StartsWith(String, String),
    /// `["content-length-range", min, max]` on the file's size.
    LengthRange(u64, u64),
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii`: everything outside
/// printable ASCII as `\uXXXX`, lower-case hex, UTF-16 surrogate pairs).
fn py_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

impl Condition {
    fn to_json(&self) -> String {
        match self {
            Condition::Eq(k, v) => format!("{{{}: {}}}", py_json_string(k), py_json_string(v)),
            Condition::StartsWith(k, v) => format!(
                "[\"starts-with\", {}, {}]",
                py_json_string(&format!("${k}")),
                py_json_string(v)
            ),
            Condition::LengthRange(min, max) => {
                format!("[\"content-length-range\", {min}, {max}]")
            }
        }
    }
}

/// The policy document, byte-identical to botocore's
/// `json.dumps({"expiration": ..., "conditions": [...]})`.
pub fn policy_document(expiration: &str, conditions: &[Condition]) -> String {
    let conds: Vec<String> = conditions.iter().map(Condition::to_json).collect();
    format!(
        "{{\"expiration\": {}, \"conditions\": [{}]}}",
        py_json_string(expiration),
        conds.join(", ")
    )
}

/// What a browser form is built from.
#[derive(Clone, Copy)]
pub struct PostFormInput<'a> {
    /// Where to POST ([`bucket_url`]).
    pub url: &'a str,
    /// Bucket.
    pub bucket: &'a str,
    /// The `key` field. Ending in `${filename}` (S3 substitutes the file's name), the policy
    /// allows every key starting with what comes before it, as botocore does.
    pub key: &'a str,
    /// Signing access key id.
    pub access_key_id: &'a str,
    /// Signing secret.
    pub secret_access_key: &'a str,
    /// Session token of temporary credentials (sent and pinned as `x-amz-security-token`).
    pub session_token: Option<&'a str>,
    /// Bucket region (signing region, service `s3`).
    pub region: &'a str,
    /// Signing time (`x-amz-date`).
    pub time: SystemTime,
    /// Policy expiration, ISO-8601 UTC.
    pub expiration: &'a str,
    /// Conditions placed before the generated ones (botocore's `Conditions`).
    pub conditions: &'a [Condition],
    /// Fields placed before the generated ones (botocore's `Fields`); each must be covered
    /// by one of `conditions`.
    pub extra_fields: &'a [(&'a str, &'a str)],
}

/// A signed browser form.
#[derive(Clone)]
pub struct PostForm {
    /// Where to POST.
    pub url: String,
    /// The policy JSON (what was base64-encoded).
    pub policy_json: String,
    /// `policy`: base64 of the JSON; also the string to sign.
    pub policy: String,
    /// `x-amz-signature`.
    pub signature: String,
    /// Fields in order: the extra fields, `key`, `policy`, `x-amz-algorithm`,
    /// `x-amz-credential`, `x-amz-date`, `x-amz-security-token` (temporary keys),
    /// `x-amz-signature`. The `file` part comes after them.
    pub fields: Vec<(String, String)>,
}

impl std::fmt::Debug for PostForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The policy and fields carry the session token.
        f.debug_struct("PostForm")
            .field("url", &self.url)
            .field(
                "fields",
                &self
                    .fields
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds and signs a browser POST form. The policy pins, after `conditions`: the bucket,
/// the key (or its `starts-with` prefix), the algorithm, credential and date, and the
/// session token when there is one: the order botocore writes them in.
pub fn post_form(input: &PostFormInput<'_>) -> PostForm {
    let cred = credential(input.access_key_id, input.time, input.region, "s3");
    let date = amz_date(input.time);
    let mut conditions: Vec<Condition> = input.conditions.to_vec();
    conditions.push(Condition::Eq("bucket".into(), input.bucket.into()));
    match input.key.strip_suffix("${filename}") {
        Some(prefix) => conditions.push(Condition::StartsWith("key".into(), prefix.into())),
        None => conditions.push(Condition::Eq("key".into(), input.key.into())),
    }
    conditions.push(Condition::Eq("x-amz-algorithm".into(), ALGORITHM.into()));
    conditions.push(Condition::Eq("x-amz-credential".into(), cred.clone()));
    conditions.push(Condition::Eq("x-amz-date".into(), date.clone()));
    if let Some(token) = input.session_token {
        conditions.push(Condition::Eq("x-amz-security-token".into(), token.into()));
    }
    let policy_json = policy_document(input.expiration, &conditions);
    let policy = b64(policy_json.as_bytes());
    let signature = post_policy_signature(
        input.secret_access_key,
        input.time,
        input.region,
        "s3",
        &policy,
    );
    let mut fields: Vec<(String, String)> = input
        .extra_fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    fields.push(("key".into(), input.key.into()));
    fields.push(("policy".into(), policy.clone()));
    fields.push(("x-amz-algorithm".into(), ALGORITHM.into()));
    fields.push(("x-amz-credential".into(), cred));
    fields.push(("x-amz-date".into(), date));
    if let Some(token) = input.session_token {
        fields.push(("x-amz-security-token".into(), token.into()));
    }
    fields.push(("x-amz-signature".into(), signature.clone()));
    PostForm {
        url: input.url.to_string(),
        policy_json,
        policy,
        signature,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::{amz_time, s};
    use proptest::prelude::*;
    use serde_json::Value;
    use std::time::Duration;

    const STS: &str = include_str!("../../../tests/vectors/aws/aws_sigv4_sts.json");
    const POST: &str = include_str!("../../../tests/vectors/aws/aws_s3_post_policy.json");

    /// Every canned STS answer of the botocore vectors parses to what botocore parsed.
    #[test]
    fn vectors_aws_sigv4_sts_responses() {
        let file: Value = serde_json::from_str(STS).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let r = &v["response"];
            let status = r["status"].as_u64().unwrap() as u16;
            let got = parse_assume_role(status, s(r, "xml").as_bytes());
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
                assert_eq!(c.access_key_id, s(p, "AccessKeyId"), "{id}");
                assert_eq!(c.expose_secret_access_key(), s(p, "SecretAccessKey"));
                assert_eq!(c.expose_session_token(), s(p, "SessionToken"));
                assert_eq!(Some(c.expiration), parse_timestamp(s(p, "Expiration")));
                assert_eq!(
                    crate::clock::rfc3339(c.expiration),
                    s(p, "Expiration"),
                    "{id}"
                );
                assert_eq!(c.assumed_role_arn, s(&p["AssumedRoleUser"], "Arn"));
                assert_eq!(
                    c.packed_policy_size.map(u64::from),
                    p["PackedPolicySize"].as_u64()
                );
                assert_eq!(c.request_id, "c6104cbe-af31-11e0-8154-cbc7ccf896c7");
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

    fn condition(v: &Value) -> Condition {
        match v {
            Value::Array(a) if a[0] == "content-length-range" => {
                Condition::LengthRange(a[1].as_u64().unwrap(), a[2].as_u64().unwrap())
            }
            Value::Array(a) if a[0] == "starts-with" => Condition::StartsWith(
                a[1].as_str().unwrap().trim_start_matches('$').into(),
                a[2].as_str().unwrap().into(),
            ),
            Value::Object(o) if o.len() == 1 => {
                let (k, v) = o.iter().next().unwrap();
                Condition::Eq(k.clone(), v.as_str().unwrap().into())
            }
            other => panic!("unexpected condition {other}"),
        }
    }

    /// Every botocore `generate_presigned_post` vector: URL, policy JSON bytes, base64,
    /// signature, credential and every field.
    #[test]
    fn vectors_aws_s3_post_policy() {
        let file: Value = serde_json::from_str(POST).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let i = &v["input"];
            let e = &v["expected"];
            let time = amz_time(s(i, "amz_date"));
            let expires = time + Duration::from_secs(i["expires_in"].as_u64().unwrap());
            let expiration = crate::clock::rfc3339(
                expires
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
            );
            let region = s(i, "region");
            let url = bucket_url(
                i["endpoint_url"].as_str().unwrap_or(""),
                region,
                s(i, "bucket"),
                i["addressing_style"] == "path",
            );
            assert_eq!(url, s(e, "url"), "{id}: url");
            let conditions: Vec<Condition> = i["extra_conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(condition)
                .collect();
            let extra: Vec<(&str, &str)> = i["extra_fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let form = post_form(&PostFormInput {
                url: &url,
                bucket: s(i, "bucket"),
                key: s(i, "key"),
                access_key_id: s(i, "access_key_id"),
                secret_access_key: s(i, "secret_access_key"),
                session_token: i["session_token"].as_str(),
                region,
                time,
                expiration: &expiration,
                conditions: &conditions,
                extra_fields: &extra,
            });
            assert_eq!(
                form.policy_json,
                s(e, "policy_json"),
                "{id}: policy JSON bytes"
            );
            assert_eq!(form.policy, s(e, "policy_base64"), "{id}: base64");
            assert_eq!(form.policy, s(e, "string_to_sign"), "{id}: string to sign");
            assert_eq!(form.signature, s(e, "x_amz_signature"), "{id}: signature");
            // Every expected field, with its value, in botocore's order.
            let want: Vec<(String, String)> = e["fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let mut got_sorted = form.fields.clone();
            got_sorted.sort();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            assert_eq!(got_sorted, want_sorted, "{id}: fields");
            let cred = form
                .fields
                .iter()
                .find(|(k, _)| k == "x-amz-credential")
                .unwrap();
            assert_eq!(cred.1, s(e, "x_amz_credential"), "{id}");
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 6);
    }

    #[test]
    fn form_fields_are_in_the_documented_order() {
        let form = post_form(&PostFormInput {
            url: "https://b.s3.amazonaws.com/",
            bucket: "b",
            key: "k/x.png",
            access_key_id: "ASIA1",
            secret_access_key: "s",
            session_token: Some("tok"),
            region: "us-east-1",
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            expiration: "2023-11-14T23:13:20Z",
            conditions: &[Condition::LengthRange(0, 10)],
            extra_fields: &[],
        });
        let names: Vec<&str> = form.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "policy",
                "x-amz-algorithm",
                "x-amz-credential",
                "x-amz-date",
                "x-amz-security-token",
                "x-amz-signature"
            ]
        );
        assert_eq!(
            form.policy_json,
            "{\"expiration\": \"2023-11-14T23:13:20Z\", \"conditions\": [[\"content-length-range\", 0, 10], {\"bucket\": \"b\"}, {\"key\": \"k/x.png\"}, {\"x-amz-algorithm\": \"AWS4-HMAC-SHA256\"}, {\"x-amz-credential\": \"ASIA1/20231114/us-east-1/s3/aws4_request\"}, {\"x-amz-date\": \"20231114T221320Z\"}, {\"x-amz-security-token\": \"tok\"}]}"
        );
        let dbg = format!("{form:?}");
        assert!(
            !dbg.contains("tok\"") && !dbg.contains(&form.policy),
            "{dbg}"
        );
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
    fn endpoints_and_bucket_urls() {
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
        assert_eq!(
            bucket_url("", "us-east-1", "b", false),
            "https://b.s3.amazonaws.com/"
        );
        assert_eq!(
            bucket_url("", "eu-west-1", "b", true),
            "https://s3.eu-west-1.amazonaws.com/b"
        );
        assert_eq!(
            bucket_url("http://minio.local:9000", "us-east-1", "b", true),
            "http://minio.local:9000/b"
        );
        assert_eq!(
            bucket_url("https://s3.example.net", "x", "b", false),
            "https://b.s3.example.net/"
        );
        assert_eq!(
            bucket_url("http://s3.example.net:8080/", "x", "b", false),
            "http://b.s3.example.net:8080/"
        );
    }

    fn refused(status: u16, body: &str) -> (String, String, bool) {
        match parse_assume_role(status, body.as_bytes()) {
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
            parse_assume_role(502, b"<html>bad gateway</html>").unwrap_err(),
            ProviderError::http_status(502)
        );
        assert_eq!(
            parse_assume_role(403, b"").unwrap_err(),
            ProviderError::http_status(403)
        );
        assert_eq!(
            parse_assume_role(400, b"<ErrorResponse><Error></Error></ErrorResponse>").unwrap_err(),
            ProviderError::http_status(400)
        );
        assert!(matches!(
            parse_assume_role(200, b"<AssumeRoleResponse><AssumeRoleResult>"),
            Err(ProviderError::Unusable(_))
        ));
        assert!(matches!(
            parse_assume_role(200, b"{\"json\":1}"),
            Err(ProviderError::Unusable(_))
        ));
        assert!(matches!(
            parse_assume_role(200, b"<a/><b/>"),
            Err(ProviderError::Unusable(_))
        ));
        // A success document with a non-2xx status is not trusted.
        assert_eq!(
            parse_assume_role(400, ok_xml("2024-01-02T04:04:05Z").as_bytes()).unwrap_err(),
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
                parse_assume_role(200, cut.as_bytes()).unwrap_err(),
                ProviderError::Unusable(format!("STS answer lacks Credentials.{name}"))
            );
        }
        let err = parse_assume_role(200, ok_xml("SECRET-VALUE-soon").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Credentials.Expiration") && !err.contains("SECRET"),
            "{err}"
        );
        let c = parse_assume_role(200, ok_xml("2024-01-02T04:04:05Z").as_bytes()).unwrap();
        assert!(c.packed_policy_size.is_none() && c.request_id.is_empty());
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
            assert_eq!(parse_timestamp(text), Some(unix), "{text}");
            let c = parse_assume_role(200, ok_xml(text).as_bytes()).unwrap();
            assert_eq!(c.expiration, unix, "{text}");
        }
        assert_eq!(parse_timestamp("tomorrow"), None);
    }

    #[test]
    fn cdata_and_entities_are_read() {
        let xml = ok_xml("2024-01-02T04:04:05Z")
            .replace("TOKEN-VALUE", "<![CDATA[tok/+=]]>")
            .replace("SECRET-VALUE", "a&amp;b");
        let c = parse_assume_role(200, xml.as_bytes()).unwrap();
        assert_eq!(c.expose_session_token(), "tok/+=");
        assert_eq!(c.expose_secret_access_key(), "a&b");
    }

    #[test]
    fn python_json_escaping() {
        assert_eq!(
            py_json_string("a\"b\\c\n\u{7f}é😀"),
            "\"a\\\"b\\\\c\\n\\u007f\\u00e9\\ud83d\\ude00\""
        );
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
            let _ = parse_assume_role(status, &body);
        }

        #[test]
        fn never_panics_on_documents(
            status in prop::sample::select(vec![200u16, 400, 403, 429, 500, 503]),
            root in prop::sample::select(vec!["AssumeRoleResponse", "ErrorResponse", "Error", "Other"]),
            parts in prop::collection::vec(fragment(), 0..12),
        ) {
            let body = format!("<{root}>{}</{root}>", parts.concat());
            let got = parse_assume_role(status, body.as_bytes());
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

        #[test]
        fn policy_documents_are_json_that_round_trips(
            key in "\\PC{0,40}",
            prefix in "\\PC{0,20}",
            max in any::<u64>(),
        ) {
            let doc = policy_document("2024-01-02T03:04:05Z", &[
                Condition::LengthRange(0, max),
                Condition::StartsWith("Content-Type".into(), prefix.clone()),
                Condition::Eq("key".into(), key.clone()),
            ]);
            prop_assert!(doc.is_ascii());
            let v: Value = serde_json::from_str(&doc).unwrap();
            prop_assert_eq!(&v["conditions"][0][2], &serde_json::json!(max));
            prop_assert_eq!(v["conditions"][1][2].as_str().unwrap(), prefix.as_str());
            prop_assert_eq!(v["conditions"][2]["key"].as_str().unwrap(), key.as_str());
        }
    }
}
