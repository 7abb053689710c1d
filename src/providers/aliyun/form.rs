//! The OSS PostObject browser form: its policy (built with [`PostPolicy`]) and the V1
//! signature (`policy = base64(json)`, `Signature = base64(HMAC-SHA1(secret, policy))`,
//! [`sign_policy_hmac_sha1`]), signed with the temporary secret. The V4 form signature is
//! implemented and vector-tested in [`super::sign`] but not used.
//!
//! The form posts to the bucket's own host, always virtual-host style ([`bucket_url`]), also
//! for an IP endpoint (unlike [`crate::providers::form::bucket_url`]).

pub use crate::providers::form::policy_time;
use crate::providers::form::{sign_policy_hmac_sha1, PostPolicy, SignedPolicy};
use crate::providers::{Form, TempCredentials};

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
    pub creds: &'a TempCredentials,
    /// The OSS `callback` parameter and the custom variables it uses, when asked.
    pub callback: Option<(&'a str, &'a [(String, String)])>,
    /// The `Content-Type` field (one object, from the extension), pinned by the policy.
    pub content_type: Option<&'a str>,
}

/// `success_action_status` the form asks for (an empty 200 rather than a 204).
pub const SUCCESS_ACTION_STATUS: &str = "200";

/// The PostObject policy JSON: `expiration` = the credentials' own, the bucket, the key
/// (`eq`, or `starts-with` for a folder), `content-length-range` 0..max, the
/// `success_action_status`, the security token and, when asked, the callback.
pub fn post_policy(input: &PostFormInput<'_>) -> String {
    let policy = PostPolicy::new()
        .field("bucket", input.bucket)
        .key(input.key, input.is_dir)
        .content_length_range(0, input.max_bytes)
        .field("success_action_status", SUCCESS_ACTION_STATUS)
        .field("x-oss-security-token", input.creds.expose_token());
    let policy = match input.content_type {
        Some(ct) => policy.field("Content-Type", ct),
        None => policy,
    };
    let policy = match input.callback {
        Some((cb, _)) => policy.field("callback", cb),
        None => policy,
    };
    policy.to_json(&policy_time(input.creds.expiration))
}

/// The browser form (V1 signature, signed with the temporary secret). Fields, in order:
/// `key`, `OSSAccessKeyId`, `policy`, `Signature`, `x-oss-security-token`,
/// `success_action_status`, then `callback` and its `x:` variables when asked.
pub fn post_form(input: &PostFormInput<'_>) -> Form {
    let SignedPolicy { policy, signature } =
        sign_policy_hmac_sha1(input.creds.expose_secret(), &post_policy(input));
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
    if let Some(ct) = input.content_type {
        fields.push(("Content-Type".to_string(), ct.to_string()));
    }
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
    use secrecy::SecretString;

    fn creds(expiration: i64) -> TempCredentials {
        TempCredentials {
            access_key_id: "STS.tmp".into(),
            secret_access_key: SecretString::from("tmpSECRET".to_string()),
            security_token: SecretString::from("tokenTOKEN".to_string()),
            expiration,
            start_time: None,
        }
    }

    #[test]
    fn policy_time_has_milliseconds() {
        assert_eq!(policy_time(1_704_168_245), "2024-01-02T04:04:05.000Z");
    }

    #[test]
    fn bucket_url_is_always_virtual_host() {
        assert_eq!(
            bucket_url("https://oss-cn-beijing.aliyuncs.com", "bseditor"),
            "https://bseditor.oss-cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            bucket_url("http://127.0.0.1:9000/", "b"),
            "http://b.127.0.0.1:9000"
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
            content_type: None,
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
            content_type: None,
            ..input
        };
        let f = post_form(&dir);
        assert_eq!(f.fields[0].1, "test/temp/2024/01/02/7/${filename}");
        assert_eq!(f.fields.len(), 6);
        let policy = String::from_utf8(b64_decode(&f.policy).unwrap()).unwrap();
        assert!(policy.contains(r#"["starts-with","$key","test/temp/2024/01/02/7/"]"#));
        assert!(!policy.contains("callback"));
    }
}
