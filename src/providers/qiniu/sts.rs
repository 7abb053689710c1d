//! The Qiniu credential: an upload token that stsgate signs itself (Qiniu has no
//! credential call). This file holds what the token allows, the put policy: one object (or,
//! with `isDir`, one folder), the module's size limit, the extension's MIME family and the
//! callback. [`super::sign`] signs it; [`super::form`] hands it to the browser.

use serde::Serialize;

use crate::providers::IssueRequest;

/// `callbackBodyType` stsgate always uses: the legacy `QBox` callback signature covers the
/// body only for this type.
pub const CALLBACK_BODY_TYPE: &str = "application/x-www-form-urlencoded";

/// Longest key part of a `scope` Qiniu accepts (protocol notes §1.3).
pub const MAX_SCOPE_KEY_BYTES: usize = 750;

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

/// The put policy for `req` in `bucket`, expiring at `deadline_unix`: the object (or the
/// `isDir` prefix), the module's size limit, the extension's MIME family and, when the
/// request asks for a callback, `callback_body` posted to its URL.
pub fn put_policy(
    bucket: &str,
    req: &IssueRequest,
    deadline_unix: i64,
    callback_body: Option<&str>,
) -> String {
    put_policy_for(
        bucket,
        &req.planned_key,
        req.is_dir,
        deadline_unix,
        req.max_bytes,
        mime_limit_for_extension(&req.extension),
        req.callback
            .as_ref()
            .zip(callback_body)
            .map(|(c, body)| (c.url.as_str(), body)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::qiniu::sign::upload_token;
    use crate::providers::test_vectors::{load, named, s};

    #[test]
    fn builder_matches_exact_key_vector() {
        let file = load("qiniu/qiniu_upload_token.json");
        let v = named(&file, "exact_key_insert_only");
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
}
