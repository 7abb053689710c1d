//! Qiniu upload tokens: a JSON put policy signed with the long-term secret key.
//!
//! Qiniu has no STS, so the secret never leaves the server; only the finished token does.
//! `uploadToken = AK ":" b64url(HMAC-SHA1(SK, b64url(policy))) ":" b64url(policy)`
//! (URL-safe base64 **with** padding). The policy bytes are serialised once and those exact
//! bytes are encoded and signed.

use serde::Serialize;

use crate::providers::crypto::{b64_url, b64_url_decode, hmac_sha1, HmacSha1Key};

/// `callbackBodyType` stsgate always uses: the legacy `QBox` callback signature covers the
/// body only for this type.
pub const CALLBACK_BODY_TYPE: &str = "application/x-www-form-urlencoded";

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

/// The put policy stsgate issues; serialised in field-declaration order, absent fields left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutPolicy<'a> {
    /// `bucket:key`, or `bucket:prefix` with `is_prefixal_scope`.
    pub scope: String,
    /// Unix seconds; Qiniu checks it when the upload completes.
    pub deadline: i64,
    /// `1`: the key part of `scope` is a prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_prefixal_scope: Option<u8>,
    /// `1`: never overwrite an existing object.
    pub insert_only: u8,
    /// Maximum object size in bytes.
    pub fsize_limit: u64,
    /// Allowed MIME types (`;`-separated, wildcards allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_limit: Option<&'a str>,
    /// Where Qiniu POSTs after storing the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<&'a str>,
    /// Callback body template (magic variables such as `$(key)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_body: Option<&'a str>,
    /// Always [`CALLBACK_BODY_TYPE`] when a callback is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_body_type: Option<&'a str>,
}

impl PutPolicy<'_> {
    /// Compact JSON in field order: the exact bytes to encode and sign.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and integers always serialises")
    }
}

/// The put-policy JSON pinning one object (or, with `is_prefix`, one folder): `insertOnly`,
/// size and MIME limits, and the callback when given as `(callbackUrl, callbackBody)`.
pub fn put_policy_for(
    bucket: &str,
    key_or_prefix: &str,
    is_prefix: bool,
    deadline_unix: i64,
    fsize_limit: u64,
    mime_limit: Option<&str>,
    callback: Option<(&str, &str)>,
) -> String {
    PutPolicy {
        scope: format!("{bucket}:{key_or_prefix}"),
        deadline: deadline_unix,
        is_prefixal_scope: is_prefix.then_some(1),
        insert_only: 1,
        fsize_limit,
        mime_limit,
        callback_url: callback.map(|(url, _)| url),
        callback_body: callback.map(|(_, body)| body),
        callback_body_type: callback.map(|_| CALLBACK_BODY_TYPE),
    }
    .to_json()
}

/// Form-encoded `callbackBody` yielding docs/contract.md §1.4's field names; `objectId` and
/// `resourceType` are written in literally (uploader-chosen `x:` variables are not trusted).
pub fn callback_body(object_id: i64, resource_type: u8) -> String {
    format!(
        "objectId={object_id}&resourceType={resource_type}\
         &bucket=$(bucket)&object=$(key)&size=$(fsize)&mimeType=$(mimeType)&etag=$(etag)"
    )
}

/// `mimeLimit` for an extension's family (`image/*`, `video/*`, `audio/*`); `None` (no limit)
/// for anything else, including types whose sniffed MIME is not in the family (m3u8, svg).
pub fn mime_limit_for_extension(ext: &str) -> Option<&'static str> {
    const IMAGE: &[&str] = &[
        "png", "jpg", "jpeg", "gif", "webp", "bmp", "heic", "heif", "avif", "tif", "tiff",
    ];
    const VIDEO: &[&str] = &[
        "mp4", "mov", "m4v", "webm", "mkv", "avi", "flv", "ts", "3gp", "wmv", "mpg", "mpeg",
    ];
    const AUDIO: &[&str] = &["mp3", "wav", "aac", "m4a", "flac", "ogg", "opus"];
    let is = |list: &[&str]| list.iter().any(|e| e.eq_ignore_ascii_case(ext));
    if is(IMAGE) {
        Some("image/*")
    } else if is(VIDEO) {
        Some("video/*")
    } else if is(AUDIO) {
        Some("audio/*")
    } else {
        None
    }
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

    // The builder's field order reproduces the SDK's bytes for the one vector whose fields
    // are exactly stsgate's (scope, deadline, insertOnly, fsizeLimit, mimeLimit).
    #[test]
    fn builder_matches_exact_key_vector() {
        let file: Value = serde_json::from_str(UPLOAD_TOKEN).unwrap();
        let v = file["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "exact_key_insert_only")
            .unwrap();
        let exp = &v["expected"];
        let built = put_policy_for(
            "stsgate-demo",
            "avatars/u42.png",
            false,
            exp["deadline"].as_i64().unwrap(),
            5_242_880,
            Some("image/png;image/jpeg"),
            None,
        );
        assert_eq!(built, s(exp, "put_policy_json"));
        let token = upload_token(
            s(&v["input"], "access_key"),
            s(&v["input"], "secret_key"),
            &built,
        );
        assert_eq!(token, s(exp, "upload_token"));
    }

    #[test]
    fn prefix_policy_with_callback_has_every_field_in_order() {
        let body = callback_body(10503, 1);
        let built = put_policy_for(
            "bseditor",
            "test/temp/2020/12/25/10503/",
            true,
            1_609_030_000,
            1_048_576,
            Some("video/*"),
            Some(("https://api.example.com/upload/callback", &body)),
        );
        assert_eq!(
            built,
            "{\"scope\":\"bseditor:test/temp/2020/12/25/10503/\",\"deadline\":1609030000,\
             \"isPrefixalScope\":1,\"insertOnly\":1,\"fsizeLimit\":1048576,\
             \"mimeLimit\":\"video/*\",\"callbackUrl\":\"https://api.example.com/upload/callback\",\
             \"callbackBody\":\"objectId=10503&resourceType=1&bucket=$(bucket)&object=$(key)\
             &size=$(fsize)&mimeType=$(mimeType)&etag=$(etag)\",\
             \"callbackBodyType\":\"application/x-www-form-urlencoded\"}"
        );
    }

    #[test]
    fn exact_key_policy_without_limits_omits_optional_fields() {
        let built = put_policy_for("b", "k.bin", false, 1, 2, None, None);
        assert_eq!(
            built,
            "{\"scope\":\"b:k.bin\",\"deadline\":1,\"insertOnly\":1,\"fsizeLimit\":2}"
        );
    }

    #[test]
    fn callback_body_is_the_issue_template() {
        assert_eq!(
            callback_body(10503, 1),
            "objectId=10503&resourceType=1&bucket=$(bucket)&object=$(key)&size=$(fsize)\
             &mimeType=$(mimeType)&etag=$(etag)"
        );
    }

    #[test]
    fn mime_limit_follows_the_extension_family() {
        assert_eq!(mime_limit_for_extension("png"), Some("image/*"));
        assert_eq!(mime_limit_for_extension("JPEG"), Some("image/*"));
        assert_eq!(mime_limit_for_extension("mp4"), Some("video/*"));
        assert_eq!(mime_limit_for_extension("mkv"), Some("video/*"));
        assert_eq!(mime_limit_for_extension("mp3"), Some("audio/*"));
        assert_eq!(mime_limit_for_extension("m3u8"), None);
        assert_eq!(mime_limit_for_extension("zip"), None);
        assert_eq!(mime_limit_for_extension(""), None);
    }

    #[test]
    fn decode_rejects_malformed_tokens() {
        assert_eq!(decode_put_policy("no-colons"), None);
        assert_eq!(decode_put_policy("ak:sig"), None);
        assert_eq!(decode_put_policy("ak:sig:!!!"), None);
    }
}
