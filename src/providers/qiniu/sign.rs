//! Qiniu upload tokens: a JSON put policy signed with the long-term secret key.
//!
//! Qiniu has no STS, so the secret never leaves the server; only the finished token does.
//! `uploadToken = AK ":" b64url(HMAC-SHA1(SK, b64url(policy))) ":" b64url(policy)`
//! (URL-safe base64 **with** padding). The policy bytes are serialised once and those exact
//! bytes are encoded and signed.

use crate::providers::crypto::{b64_url, b64_url_decode, hmac_sha1, HmacSha1Key};

// encodedPutPolicy = b64url(putPolicyJSON)
/// URL-safe base64 (with padding) of the put-policy JSON bytes.
pub fn encoded_put_policy(policy_json: &str) -> String {
    b64_url(policy_json.as_bytes())
}

// sign = b64url(HMAC-SHA1(SK, data)); for a token, data is the ASCII encodedPutPolicy.
/// URL-safe base64 of `HMAC-SHA1(secret_key, data)`.
pub fn sign(secret_key: &str, data: &[u8]) -> String {
    b64_url(hmac_sha1(secret_key.as_bytes(), data))
}

// uploadToken = AK + ":" + sign(SK, encodedPutPolicy) + ":" + encodedPutPolicy
/// The upload token for `policy_json`, signed exactly as given (never re-serialised).
pub fn upload_token(access_key: &str, secret_key: &str, policy_json: &str) -> String {
    let encoded = encoded_put_policy(policy_json);
    let signature = sign(secret_key, encoded.as_bytes());
    format!("{access_key}:{signature}:{encoded}")
}

/// An upload token and its two signed parts.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadToken {
    /// `AK:sign:encodedPutPolicy`.
    pub token: String,
    /// `b64url(HMAC-SHA1(SK, encodedPutPolicy))`.
    pub signature: String,
    /// `b64url(putPolicyJSON)`.
    pub encoded_policy: String,
}

impl std::fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadToken(<redacted>)")
    }
}

/// The long-term key pair, prepared once: each token costs one HMAC over the encoded policy
/// and no key set-up.
#[derive(Clone)]
pub struct Signer {
    access_key: String,
    key: HmacSha1Key,
}

impl Signer {
    /// Prepares the key pair.
    pub fn new(access_key: &str, secret_key: &str) -> Self {
        Signer {
            access_key: access_key.to_owned(),
            key: HmacSha1Key::new(secret_key.as_bytes()),
        }
    }

    /// The access key.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// [`sign`] with the prepared key.
    pub fn sign(&self, data: &[u8]) -> String {
        b64_url(self.key.sign(data))
    }

    /// [`upload_token`] with the prepared key, keeping the two parts apart as well.
    pub fn upload_token(&self, policy_json: &str) -> UploadToken {
        let encoded_policy = encoded_put_policy(policy_json);
        let signature = self.sign(encoded_policy.as_bytes());
        UploadToken {
            token: format!("{}:{signature}:{encoded_policy}", self.access_key),
            signature,
            encoded_policy,
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

/// The put-policy JSON inside an upload token (split on the first two `:`, b64url-decode the
/// third part); `None` when the token is not in that shape.
pub fn decode_put_policy(token: &str) -> Option<String> {
    let mut parts = token.splitn(3, ':');
    let (_ak, _sign, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    String::from_utf8(b64_url_decode(encoded)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::s;
    use serde_json::Value;

    const UPLOAD_TOKEN: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/qiniu/qiniu_upload_token.json"
    ));

    #[test]
    fn vectors_qiniu_upload_token() {
        let file: Value = serde_json::from_str(UPLOAD_TOKEN).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let name = s(v, "name");
            let (input, exp) = (&v["input"], &v["expected"]);
            let (ak, sk) = (s(input, "access_key"), s(input, "secret_key"));
            let policy = s(exp, "put_policy_json");

            let encoded = encoded_put_policy(policy);
            assert_eq!(
                encoded,
                s(exp, "encoded_put_policy"),
                "{name}: encoded policy"
            );
            // The HMAC message is the encoded policy text itself.
            assert_eq!(encoded, s(exp, "hmac_sha1_message"), "{name}: hmac message");
            let signature = sign(sk, s(exp, "hmac_sha1_message").as_bytes());
            assert_eq!(signature, s(exp, "encoded_sign"), "{name}: sign");
            let token = upload_token(ak, sk, policy);
            assert_eq!(token, s(exp, "upload_token"), "{name}: token");
            let prepared = Signer::new(ak, sk).upload_token(policy);
            assert_eq!(prepared.token, token, "{name}: prepared signer token");
            assert_eq!(
                prepared.signature,
                s(exp, "encoded_sign"),
                "{name}: prepared sign"
            );
            assert_eq!(
                prepared.encoded_policy,
                s(exp, "encoded_put_policy"),
                "{name}: prepared policy"
            );

            let decoded = decode_put_policy(&token).expect("token decodes");
            assert_eq!(decoded, policy, "{name}: decoded bytes");
            let decoded: Value = serde_json::from_str(&decoded).unwrap();
            assert_eq!(decoded, exp["decoded_policy"], "{name}: decoded policy");
            assert_eq!(decoded["scope"], exp["scope"], "{name}: scope");
            assert_eq!(decoded["deadline"], exp["deadline"], "{name}: deadline");
            ran += 1;
        }
        assert_eq!(ran, 8);
    }

    #[test]
    fn decode_rejects_malformed_tokens() {
        assert_eq!(decode_put_policy("no-colons"), None);
        assert_eq!(decode_put_policy("ak:sig"), None);
        assert_eq!(decode_put_policy("ak:sig:!!!"), None);
    }
}
