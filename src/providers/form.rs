//! The browser form upload every object store offers (S3, OSS, COS, OBS, KS3, BOS): the
//! [`Form`] an answer carries, the bucket URL it posts to, and the POST policy document
//! ([`PostPolicy`]) with the signature schemes several clouds share. Each cloud's `form.rs`
//! picks its field names and conditions; the JSON and the shared signatures are written here
//! once.

use serde_json::{json, Value};

use super::crypto;

/// A browser form upload: POST `url` with `fields` (in order) before the `file` part.
/// `Debug` lists the field names only: the fields and the policy carry the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Form {
    /// Full POST URL (bucket host).
    pub url: String,
    /// Form fields in order, with the cloud's own names.
    pub fields: Vec<(String, String)>,
    /// The policy value (repeated at the top level of the answer).
    pub policy: String,
    /// The signature value (repeated at the top level of the answer).
    pub signature: String,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Form")
            .field("url", &self.url)
            .field(
                "fields",
                &self
                    .fields
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("policy", &"<redacted>")
            .field("signature", &"<redacted>")
            .finish()
    }
}

impl Form {
    /// A form whose fields are `leading` (key, access key, token, with the cloud's names)
    /// followed by `policy` and `signature`, the two names OBS, BOS and S3-style stores share.
    pub fn with_policy(
        url: String,
        leading: Vec<(&str, String)>,
        policy: String,
        signature: String,
    ) -> Form {
        let mut fields: Vec<(String, String)> = leading
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        fields.push(("policy".into(), policy.clone()));
        fields.push(("signature".into(), signature.clone()));
        Form {
            url,
            fields,
            policy,
            signature,
        }
    }
}

/// The browser-form URL of `bucket` at a service `endpoint` that does not contain it:
/// virtual-host style (`https://obs.r.example.com` → `https://{bucket}.obs.r.example.com`),
/// or path style (`http://127.0.0.1:9000/{bucket}`) when the host is an IP address or
/// `localhost`, where a bucket label cannot resolve. `None` when `endpoint` is not a URL.
pub fn bucket_url(endpoint: &str, bucket: &str) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path_style =
        host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() || host == "localhost";
    Some(if path_style {
        format!("{}/{bucket}", endpoint.trim_end_matches('/'))
    } else {
        format!("{}://{bucket}.{host}{port}", url.scheme())
    })
}

/// The service endpoint (the configured one without a trailing `/`, else `default`) and the
/// bucket's form URL at it ([`bucket_url`]); `key` names the config key in the error.
pub fn service_urls(
    configured: &str,
    default: String,
    bucket: &str,
    key: &str,
) -> Result<(String, String), String> {
    let endpoint = if configured.is_empty() {
        default
    } else {
        configured.trim_end_matches('/').to_string()
    };
    let form_url = bucket_url(&endpoint, bucket).ok_or_else(|| format!("{key} is not a URL"))?;
    Ok((endpoint, form_url))
}

/// A browser-POST policy document, `{"expiration":"…","conditions":[…]}`, built condition
/// by condition in the order the cloud's SDK writes them (the exact bytes are signed).
#[derive(Debug, Clone, Default)]
pub struct PostPolicy {
    conditions: Vec<Value>,
}

impl PostPolicy {
    /// An empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// `{"field": "value"}` (exact match, object form).
    pub fn field(mut self, field: &str, value: &str) -> Self {
        self.conditions.push(json!({ field: value }));
        self
    }

    /// `["eq", "$field", "value"]`.
    pub fn eq(mut self, field: &str, value: &str) -> Self {
        self.conditions
            .push(json!(["eq", format!("${field}"), value]));
        self
    }

    /// `["starts-with", "$field", "prefix"]`.
    pub fn starts_with(mut self, field: &str, prefix: &str) -> Self {
        self.conditions
            .push(json!(["starts-with", format!("${field}"), prefix]));
        self
    }

    /// The object key: `["eq", "$key", key]`, or `["starts-with", "$key", prefix]` for a
    /// folder (`is_dir`).
    pub fn key(self, key: &str, is_dir: bool) -> Self {
        if is_dir {
            self.starts_with("key", key)
        } else {
            self.eq("key", key)
        }
    }

    /// `["content-length-range", min, max]`.
    pub fn content_length_range(mut self, min: u64, max: u64) -> Self {
        self.conditions
            .push(json!(["content-length-range", min, max]));
        self
    }

    /// Any other condition, as the cloud writes it.
    pub fn condition(mut self, condition: Value) -> Self {
        self.conditions.push(condition);
        self
    }

    /// The conditions so far.
    pub fn conditions(&self) -> &[Value] {
        &self.conditions
    }

    /// The document, compact, `expiration` first: the bytes to base64-encode and sign.
    pub fn to_json(&self, expiration: &str) -> String {
        policy_json(expiration, &self.conditions)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.000Z`, the `expiration` format of OSS and COS POST policies.
pub fn policy_time(unix: i64) -> String {
    let s = crate::clock::rfc3339(unix);
    format!("{}.000Z", s.trim_end_matches('Z'))
}

/// `{"expiration":"…","conditions":[…]}`, compact, in that order.
pub fn policy_json(expiration: &str, conditions: &[Value]) -> String {
    #[derive(serde::Serialize)]
    struct Policy<'a> {
        expiration: &'a str,
        conditions: &'a [Value],
    }
    serde_json::to_string(&Policy {
        expiration,
        conditions,
    })
    .unwrap_or_default()
}

/// A policy and its signature, as a form carries them.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPolicy {
    /// `base64(policy JSON)`.
    pub policy: String,
    /// The signature over `policy`.
    pub signature: String,
}

impl std::fmt::Debug for SignedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedPolicy(<redacted>)")
    }
}

/// The V1 form signature OSS, OBS and KS3 share:
/// `policy = base64(json)`, `signature = base64(HMAC-SHA1(secret, policy))`.
pub fn sign_policy_hmac_sha1(secret: &str, policy_json: &str) -> SignedPolicy {
    let policy = crypto::b64(policy_json.as_bytes());
    let signature = crypto::b64(crypto::hmac_sha1(secret.as_bytes(), policy.as_bytes()));
    SignedPolicy { policy, signature }
}

/// The `Content-Type` a form sets for a file with extension `ext` (lower-case), so the
/// stored object is not `binary/octet-stream`; `application/octet-stream` when unknown.
pub fn content_type_for(ext: &str) -> &'static str {
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "heic" => "image/heic",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "flv" => "video/x-flv",
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "json" => "application/json",
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_debug_lists_field_names_only() {
        let form = Form {
            url: "https://b.s3.amazonaws.com/".into(),
            fields: vec![
                ("key".into(), "k".into()),
                ("x-amz-security-token".into(), "TOKEN-VALUE".into()),
            ],
            policy: "POLICY-VALUE".into(),
            signature: "SIGNATURE-VALUE".into(),
        };
        let dbg = format!("{form:?}");
        assert!(
            dbg.contains("x-amz-security-token") && dbg.contains("https://b.s3"),
            "{dbg}"
        );
        for v in ["TOKEN-VALUE", "POLICY-VALUE", "SIGNATURE-VALUE", "\"k\""] {
            assert!(!dbg.contains(v), "{v} in {dbg}");
        }
    }

    #[test]
    fn bucket_url_is_virtual_host_or_path_style() {
        assert_eq!(
            bucket_url("https://obs.cn-north-4.myhuaweicloud.com", "b").as_deref(),
            Some("https://b.obs.cn-north-4.myhuaweicloud.com")
        );
        assert_eq!(
            bucket_url("https://bj.bcebos.com:8443/", "b").as_deref(),
            Some("https://b.bj.bcebos.com:8443")
        );
        assert_eq!(
            bucket_url("http://127.0.0.1:9000/", "b").as_deref(),
            Some("http://127.0.0.1:9000/b")
        );
        assert_eq!(
            bucket_url("http://localhost:9000", "b").as_deref(),
            Some("http://localhost:9000/b")
        );
        assert_eq!(bucket_url("not a url", "b"), None);
        assert_eq!(
            service_urls("", "https://bj.bcebos.com".into(), "b", "k"),
            Ok((
                "https://bj.bcebos.com".into(),
                "https://b.bj.bcebos.com".into()
            ))
        );
        assert_eq!(
            service_urls("http://127.0.0.1:9000/", "unused".into(), "b", "k"),
            Ok((
                "http://127.0.0.1:9000".into(),
                "http://127.0.0.1:9000/b".into()
            ))
        );
        assert_eq!(
            service_urls("bad", String::new(), "b", "providers.x.endpoint"),
            Err("providers.x.endpoint is not a URL".into())
        );
    }

    #[test]
    fn policy_json_is_compact_and_ordered() {
        let p = PostPolicy::new()
            .field("bucket", "b")
            .key("a/\"q\"", true)
            .content_length_range(0, 10)
            .eq("x-amz-date", "d");
        assert_eq!(
            p.to_json("2025-01-01T00:00:00Z"),
            r#"{"expiration":"2025-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","a/\"q\""],["content-length-range",0,10],["eq","$x-amz-date","d"]]}"#
        );
        assert_eq!(
            PostPolicy::new().key("k", false).conditions(),
            &[json!(["eq", "$key", "k"])]
        );
    }

    #[test]
    fn hmac_sha1_policy_signature_is_base64_of_the_mac_of_the_base64_policy() {
        // HMAC-SHA1("key", "eyJhIjoxfQ==") computed with `openssl dgst -sha1 -hmac key -binary | base64`.
        let s = sign_policy_hmac_sha1("key", r#"{"a":1}"#);
        assert_eq!(s.policy, "eyJhIjoxfQ==");
        assert_eq!(s.signature, "HPU9ThOoTroovHGVOVn6B1OSik0=");
        assert!(!format!("{s:?}").contains(&s.signature));
    }
    #[test]
    fn post_policy_json_is_compact_and_ordered() {
        let conditions = [
            json!({"bucket": "b"}),
            json!(["starts-with", "$key", "a/\"q\""]),
        ];
        assert_eq!(
            policy_json("2025-01-01T00:00:00Z", &conditions),
            r#"{"expiration":"2025-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","a/\"q\""]]}"#
        );
    }
}
