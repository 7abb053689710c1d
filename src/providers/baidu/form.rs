//! The BOS PostObject form, signed with the temporary secret ([`super::sign::sign_bos_post`]).

use super::sign::sign_bos_post;
use crate::clock::rfc3339;
use crate::providers::form::PostPolicy;
use crate::providers::{Form, TempCredentials};

/// The BOS PostObject policy JSON: `{"expiration":..,"conditions":[{"bucket":..},
/// {"key": pattern}, {"x-bce-security-token":..}, ["content-length-range",0,max]]}`; BOS
/// matches a trailing `*` in the key condition as a wildcard. The size condition only when
/// `max_bytes` is given.
pub fn post_policy(
    expiration: &str,
    bucket: &str,
    pattern: &str,
    session_token: &str,
    max_bytes: Option<u64>,
    content_type: Option<&str>,
) -> String {
    let policy = PostPolicy::new()
        .field("bucket", bucket)
        .field("key", pattern)
        .field("x-bce-security-token", session_token);
    let policy = match max_bytes {
        Some(max) => policy.content_length_range(0, max),
        None => policy,
    };
    match content_type {
        Some(ct) => policy.field("Content-Type", ct),
        None => policy,
    }
    .to_json(expiration)
}

/// The form for `key` (policy pattern `pattern`: the key, or the prefix with `*`) in
/// `bucket` at `form_url`; the policy expires with the credentials.
pub fn form(
    cred: &TempCredentials,
    bucket: &str,
    form_url: &str,
    key: &str,
    pattern: &str,
    max_bytes: u64,
    content_type: Option<&str>,
) -> Form {
    let policy_json = post_policy(
        &rfc3339(cred.expiration),
        bucket,
        pattern,
        cred.expose_token(),
        Some(max_bytes),
        content_type,
    );
    let signed = sign_bos_post(cred.expose_secret(), &policy_json);
    let mut leading = vec![
        ("key", key.to_string()),
        ("accessKey", cred.access_key_id.clone()),
        ("x-bce-security-token", cred.expose_token().into()),
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
    fn post_policy_reproduces_the_vectors() {
        let file = load("baidu/baidu_bos_post.json");
        let v = named(&file, "with_session_token_field");
        let got = post_policy(
            "2025-01-01T00:30:00Z",
            "stsgate-demo",
            "tenant-7/*",
            "FAKE-session-token-abc/def=",
            None,
            None,
        );
        assert_eq!(got, v["input"]["policy_json"].as_str().unwrap());
        assert_eq!(
            post_policy(
                "2025-01-01T00:30:00Z",
                "b",
                "k/\"x\".png",
                "t",
                Some(10),
                None
            ),
            r#"{"expiration":"2025-01-01T00:30:00Z","conditions":[{"bucket":"b"},{"key":"k/\"x\".png"},{"x-bce-security-token":"t"},["content-length-range",0,10]]}"#
        );
    }
}
