//! The S3 browser POST form: [`post_form`] writes the POST policy exactly as botocore's
//! `generate_presigned_post` does (its JSON bytes, Python's `json.dumps` spacing and
//! escaping, are what is signed, so this is AWS's own builder rather than
//! [`crate::providers::form::PostPolicy`]), and signs it with the `aws-sigv4` key derivation
//! ([`super::sign::post_policy_signature`]). [`form`] is the form an issuance answers with.

use std::time::SystemTime;

use super::sign::post_policy_signature;
use super::sts::{dns_suffix, s3_endpoint};
use crate::clock::rfc3339;
use crate::providers::crypto::b64;
use crate::providers::sigv4::{amz_date, credential, ALGORITHM};
use crate::providers::{Form, TempCredentials};

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

/// The form an issuance answers with: for `key` (a folder: `{key}${filename}`, any key
/// under it) in `bucket` at `url`, signed at `time` with the temporary credentials (in the
/// bucket's `region`) and valid as long as they are; size at most `max_bytes`. For one object
/// the form sets `Content-Type` (pinned by the policy) so the stored object is typed; a
/// folder's files differ, so there the browser sets each one's.
#[allow(clippy::too_many_arguments)]
pub fn form(
    cred: &TempCredentials,
    bucket: &str,
    region: &str,
    url: &str,
    key: &str,
    is_dir: bool,
    content_type: Option<&str>,
    max_bytes: u64,
    time: SystemTime,
) -> Form {
    let form_key = if is_dir {
        format!("{key}${{filename}}")
    } else {
        key.to_string()
    };
    let expiration = rfc3339(cred.expiration);
    let mut conditions = vec![Condition::LengthRange(0, max_bytes)];
    let mut extra: Vec<(&str, &str)> = Vec::new();
    match content_type {
        Some(ct) => {
            conditions.push(Condition::Eq("Content-Type".into(), ct.into()));
            extra.push(("Content-Type", ct));
        }
        None => conditions.push(Condition::StartsWith("Content-Type".into(), String::new())),
    }
    let form = post_form(&PostFormInput {
        url,
        bucket,
        key: &form_key,
        access_key_id: &cred.access_key_id,
        secret_access_key: cred.expose_secret(),
        session_token: Some(cred.expose_token()),
        region,
        time,
        expiration: &expiration,
        conditions: &conditions,
        extra_fields: &extra,
    });
    Form {
        url: form.url,
        fields: form.fields,
        policy: form.policy,
        signature: form.signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::{amz_time, s};
    use proptest::prelude::*;
    use serde_json::Value;
    use std::time::Duration;

    const POST: &str = include_str!("../../../tests/vectors/aws/aws_s3_post_policy.json");

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
    fn python_json_escaping() {
        assert_eq!(
            py_json_string("a\"b\\c\n\u{7f}é😀"),
            "\"a\\\"b\\\\c\\n\\u007f\\u00e9\\ud83d\\ude00\""
        );
    }

    #[test]
    fn bucket_urls() {
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

    proptest! {
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
