//! The Qiniu browser form: POST the file to the upload host with `key` and the upload
//! `token`. Qiniu has no POST policy document of the S3 kind
//! ([`crate::providers::form::PostPolicy`]): the put policy ([`super::sts`]) is its own
//! JSON, and the token carries it ([`super::sign`]).

use super::sign::UploadToken;
use crate::providers::Form;

/// The browser form for `key`: POST to `upload_host` with `key` and the upload `token`;
/// the form's policy and signature are the token's two signed parts.
pub fn form(upload_host: &str, key: &str, token: &UploadToken) -> Form {
    Form {
        url: upload_host.to_string(),
        fields: vec![
            ("key".into(), key.to_string()),
            ("token".into(), token.token.clone()),
        ],
        policy: token.encoded_policy.clone(),
        signature: token.signature.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::qiniu::sign::Signer;
    use crate::providers::qiniu::sts::put_policy_for;

    #[test]
    fn form_posts_key_and_token_with_the_token_parts() {
        let token = Signer::new("AK", "SK")
            .upload_token(&put_policy_for("b", "k.png", false, 1, 2, None, None));
        let f = form("https://upload.qiniup.com", "k.png", &token);
        assert_eq!(f.url, "https://upload.qiniup.com");
        assert_eq!(
            f.fields,
            vec![
                ("key".to_string(), "k.png".to_string()),
                ("token".to_string(), token.token.clone())
            ]
        );
        assert_eq!(token.token, format!("AK:{}:{}", f.signature, f.policy));
    }

    // The builder's field order reproduces the SDK's bytes for the one vector whose fields
    // are exactly stsgate's (scope, deadline, insertOnly, fsizeLimit, mimeLimit).
}
