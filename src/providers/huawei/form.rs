//! The OBS browser POST form (V2 signature: `policy = base64(json)`,
//! `signature = base64(HMAC-SHA1(SK, policy))`, signed with the temporary secret).

use crate::clock::rfc3339;
use crate::providers::form::{sign_policy_hmac_sha1, PostPolicy};
use crate::providers::{Form, TempCredentials};

/// The OBS browser POST policy JSON: `{"expiration":..,"conditions":[{"bucket":..},
/// key (exact `{"key":..}` or `["starts-with","$key",prefix]`),
/// {"x-obs-security-token":..}, ["content-length-range",0,max]]}`, compact, in this order,
/// then `{"Content-Type":..}` when the form sets one.
pub fn post_policy(
    expiration: &str,
    bucket: &str,
    key: &str,
    is_dir: bool,
    security_token: &str,
    max_bytes: u64,
    content_type: Option<&str>,
) -> String {
    let policy = PostPolicy::new().field("bucket", bucket);
    let policy = if is_dir {
        policy.starts_with("key", key)
    } else {
        policy.field("key", key)
    };
    let policy = policy
        .field("x-obs-security-token", security_token)
        .content_length_range(0, max_bytes);
    match content_type {
        Some(ct) => policy.field("Content-Type", ct),
        None => policy,
    }
    .to_json(expiration)
}

/// The form for `key` in `bucket` at `form_url`, signed with the temporary secret; the
/// policy expires with the credentials. `content_type` (one object, from the extension) is
/// a field the policy pins, so the stored object has it.
pub fn form(
    cred: &TempCredentials,
    bucket: &str,
    form_url: &str,
    key: &str,
    is_dir: bool,
    max_bytes: u64,
    content_type: Option<&str>,
) -> Form {
    let policy_json = post_policy(
        &rfc3339(cred.expiration),
        bucket,
        key,
        is_dir,
        cred.expose_token(),
        max_bytes,
        content_type,
    );
    let signed = sign_policy_hmac_sha1(cred.expose_secret(), &policy_json);
    let mut leading = vec![
        ("key", key.to_string()),
        ("AccessKeyId", cred.access_key_id.clone()),
        ("x-obs-security-token", cred.expose_token().into()),
    ];
    if let Some(ct) = content_type {
        leading.push(("Content-Type", ct.to_string()));
    }
    Form::with_policy(
        form_url.to_string(),
        leading,
        signed.policy,
        signed.signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::{load, named};

    #[test]
    fn post_policy_reproduces_the_raw_prefix_vector() {
        let file = load("huawei/huawei_obs_post.json");
        let v = named(&file, "raw_prefix_with_security_token");
        let got = post_policy(
            "2025-01-01T01:00:00Z",
            "stsgate-demo",
            "tenant-7/",
            true,
            v["input"]["security_token"].as_str().unwrap(),
            104_857_600,
            None,
        );
        assert_eq!(got, v["input"]["policy_json"].as_str().unwrap());
        let exact = post_policy("2025-01-01T01:00:00Z", "b", "k/x.png", false, "t", 10, None);
        assert_eq!(
            exact,
            r#"{"expiration":"2025-01-01T01:00:00Z","conditions":[{"bucket":"b"},{"key":"k/x.png"},{"x-obs-security-token":"t"},["content-length-range",0,10]]}"#
        );
        let typed = post_policy(
            "2025-01-01T01:00:00Z",
            "b",
            "k/x.png",
            false,
            "t",
            10,
            Some("image/png"),
        );
        assert!(
            typed.ends_with(r#"["content-length-range",0,10],{"Content-Type":"image/png"}]}"#),
            "{typed}"
        );
    }
}
