//! The COS browser form (POST Object) for exactly the object LKE granted, signed with the
//! single-use temporary key: `key`, `policy`, `q-sign-algorithm`, `q-ak`, `q-key-time`,
//! `q-signature`, `x-cos-security-token` and `Content-Type`, in that order (the file goes
//! last). The policy pins the signature parameters, the bucket, the key, the token, the
//! module's size limit and the content type, and expires with the credentials.

use super::sign::cos_post_signature;
use crate::providers::form::{policy_json, policy_time};
use crate::providers::{crypto, Form};

/// What the form is built from: LKE's answer and the module's size limit.
pub struct CosPost<'a> {
    /// `TmpSecretId`.
    pub access_key_id: &'a str,
    /// `TmpSecretKey`.
    pub secret_key: &'a str,
    /// `Token`.
    pub security_token: &'a str,
    /// `Bucket` (with its `-APPID`).
    pub bucket: &'a str,
    /// `Region`.
    pub region: &'a str,
    /// The object key (LKE's `UploadPath` without its leading `/`).
    pub key: &'a str,
    /// Signature validity start (Unix seconds).
    pub start: i64,
    /// Signature validity end and policy expiry: the credentials' expiry.
    pub end: i64,
    /// Largest object the module allows.
    pub max_bytes: u64,
    /// The `Content-Type` field (from the extension), pinned by the policy.
    pub content_type: Option<&'a str>,
}

/// The browser POST form for `p`, posted to `https://{bucket}.cos.{region}.myqcloud.com/`.
pub fn cos_post_form(p: &CosPost<'_>) -> Form {
    let key_time = format!("{};{}", p.start, p.end);
    let mut conditions = vec![
        serde_json::json!({"q-sign-algorithm": "sha1"}),
        serde_json::json!({"q-ak": p.access_key_id}),
        serde_json::json!({"q-sign-time": key_time}),
        serde_json::json!({"bucket": p.bucket}),
        serde_json::json!({"key": p.key}),
        serde_json::json!({"x-cos-security-token": p.security_token}),
        serde_json::json!(["content-length-range", 0, p.max_bytes]),
    ];
    if let Some(ct) = p.content_type {
        conditions.push(serde_json::json!({"Content-Type": ct}));
    }
    let json = policy_json(&policy_time(p.end), &conditions);
    let policy = crypto::b64(json.as_bytes());
    let signature = cos_post_signature(p.secret_key, &key_time, &json);
    let mut fields = vec![
        ("key".to_string(), p.key.to_string()),
        ("policy".to_string(), policy.clone()),
        ("q-sign-algorithm".to_string(), "sha1".to_string()),
        ("q-ak".to_string(), p.access_key_id.to_string()),
        ("q-key-time".to_string(), key_time),
        ("q-signature".to_string(), signature.clone()),
        (
            "x-cos-security-token".to_string(),
            p.security_token.to_string(),
        ),
    ];
    if let Some(ct) = p.content_type {
        fields.push(("Content-Type".to_string(), ct.to_string()));
    }
    Form {
        url: format!("https://{}/", super::sts::cos_host(p.bucket, p.region)),
        fields,
        policy,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post() -> CosPost<'static> {
        CosPost {
            access_key_id: "AKIDtmp",
            secret_key: "tmpkey",
            security_token: "TOKEN",
            bucket: "lke-offline-1250000000",
            region: "ap-jakarta",
            key: "corp/1/doc/a.pdf",
            start: 1_700_000_000,
            end: 1_700_001_800,
            max_bytes: 1024,
            content_type: None,
        }
    }

    #[test]
    fn the_form_pins_bucket_key_token_size_and_expiry_and_verifies() {
        let form = cos_post_form(&post());
        assert_eq!(
            form.url,
            "https://lke-offline-1250000000.cos.ap-jakarta.myqcloud.com/"
        );
        let names: Vec<&str> = form.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "policy",
                "q-sign-algorithm",
                "q-ak",
                "q-key-time",
                "q-signature",
                "x-cos-security-token"
            ]
        );
        let json = String::from_utf8(crypto::b64_decode(&form.policy).unwrap()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["expiration"], "2023-11-14T22:43:20.000Z");
        let c = doc["conditions"].as_array().unwrap();
        assert!(c.contains(&serde_json::json!({"bucket": "lke-offline-1250000000"})));
        assert!(c.contains(&serde_json::json!({"key": "corp/1/doc/a.pdf"})));
        assert!(c.contains(&serde_json::json!({"x-cos-security-token": "TOKEN"})));
        assert!(c.contains(&serde_json::json!(["content-length-range", 0, 1024])));
        // What COS recomputes from the posted fields: the signature over the decoded policy.
        assert_eq!(
            form.signature,
            cos_post_signature("tmpkey", "1700000000;1700001800", &json)
        );
        assert_eq!(form.fields[5].1, form.signature);
        assert!(!format!("{form:?}").contains("TOKEN"));
    }
}
