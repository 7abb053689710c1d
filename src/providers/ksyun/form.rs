//! The KS3 browser POST form (KS3 "V2": `Policy = base64(json)`,
//! `Signature = base64(HMAC-SHA1(SK, Policy))`, [`sign_policy_hmac_sha1`]), signed with the
//! configured long-term key: no secret leaves the server for it.

use super::config::KsyunConfig;
use crate::providers::form::{sign_policy_hmac_sha1, PostPolicy};
use crate::providers::Form;

/// KS3 POST policy expiration: ISO-8601 UTC with milliseconds, `2025-01-01T00:15:00.000Z`.
pub fn post_expiration(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    t.format(&f).unwrap_or_default()
}

/// The KS3 POST policy JSON (compact): the bucket, the exact key (or `starts-with` the
/// folder prefix, for a `key` field of `{prefix}${filename}`), and a size limit; expires
/// with the credentials. Besides `KSSAccessKeyId`, `Policy`, `Signature` and `file`, the
/// form's fields are `key` and, for one object, `Content-Type`, each with its condition.
pub fn post_policy(
    bucket: &str,
    key: &str,
    is_dir: bool,
    max_bytes: u64,
    expiration_unix: i64,
    content_type: Option<&str>,
) -> String {
    let policy = PostPolicy::new()
        .eq("bucket", bucket)
        .key(key, is_dir)
        .content_length_range(0, max_bytes);
    match content_type {
        Some(ct) => policy.eq("Content-Type", ct),
        None => policy,
    }
    .to_json(&post_expiration(expiration_unix))
}

/// The browser POST URL: the bucket as a virtual host of the endpoint
/// (`https://ks3-cn-beijing.ksyuncs.com` → `https://{bucket}.ks3-cn-beijing.ksyuncs.com`),
/// always, IP hosts included (unlike [`crate::providers::form::bucket_url`]).
pub fn bucket_url(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("https://{bucket}.{endpoint}"),
    }
}

/// The form for `key` in the section's bucket at `form_url`, signed with the section's
/// long-term key; the policy expires with the credentials (`expiration`, Unix seconds).
pub fn form(
    cfg: &KsyunConfig,
    form_url: &str,
    key: &str,
    is_dir: bool,
    max_bytes: u64,
    expiration: i64,
    content_type: Option<&str>,
) -> Form {
    let policy_json = post_policy(
        &cfg.bucket,
        key,
        is_dir,
        max_bytes,
        expiration,
        content_type,
    );
    let signed = sign_policy_hmac_sha1(cfg.secret_access_key.expose(), &policy_json);
    Form {
        url: form_url.to_string(),
        fields: vec![
            // A folder: KS3 expands `${filename}` before matching `starts-with`.
            (
                "key".into(),
                if is_dir {
                    format!("{key}${{filename}}")
                } else {
                    key.to_string()
                },
            ),
            (
                "KSSAccessKeyId".into(),
                cfg.access_key_id.expose().to_string(),
            ),
            ("Policy".into(), signed.policy.clone()),
            ("Signature".into(), signed.signature.clone()),
        ]
        .into_iter()
        .chain(content_type.map(|ct| ("Content-Type".to_string(), ct.to_string())))
        .collect(),
        policy: signed.policy,
        signature: signed.signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_vectors::s;
    use serde_json::Value;

    const POST: &str = include_str!("../../../tests/vectors/ksyun/ksyun_ks3_post.json");

    /// Every vector of `ksyun_ks3_post.json` (`ks3.auth.encode`, the SDK's primitive).
    #[test]
    fn vectors_ksyun_ks3_post() {
        let file: Value = serde_json::from_str(POST).unwrap();
        let vectors = file["vectors"].as_array().unwrap();
        let mut ran = 0;
        for v in vectors {
            let name = s(v, "name");
            let input = &v["input"];
            let exp = &v["expected"];
            let signed = sign_policy_hmac_sha1(s(input, "secret_key"), s(input, "policy_json"));
            assert_eq!(signed.policy, s(exp, "policy_base64"), "{name}: policy");
            assert_eq!(signed.signature, s(exp, "signature"), "{name}: signature");
            let fields = &exp["suggested_form_fields"];
            assert_eq!(fields["Policy"], signed.policy.as_str(), "{name}");
            assert_eq!(fields["Signature"], signed.signature.as_str(), "{name}");
            assert_eq!(fields["KSSAccessKeyId"], s(input, "access_key"), "{name}");
            ran += 1;
        }
        // No `count` key in this file either: pin the number and the array length.
        assert_eq!(ran, vectors.len());
        assert_eq!(ran, 6);
    }

    #[test]
    fn post_policy_shape() {
        let p = post_policy(
            "stsgate-demo",
            "test/a.png",
            false,
            10_485_760,
            1_735_690_500,
            None,
        );
        assert_eq!(
            p,
            r#"{"expiration":"2025-01-01T00:15:00.000Z","conditions":[["eq","$bucket","stsgate-demo"],["eq","$key","test/a.png"],["content-length-range",0,10485760]]}"#
        );
        let d = post_policy("b", "test/temp/", true, 1, 0, None);
        assert!(d.contains(r#"["starts-with","$key","test/temp/"]"#), "{d}");
        assert_eq!(post_expiration(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn bucket_url_is_always_virtual_host() {
        assert_eq!(
            bucket_url(crate::providers::ksyun::sts::DEFAULT_KS3_ENDPOINT, "bkt"),
            "https://bkt.ks3-cn-beijing.ksyuncs.com"
        );
        assert_eq!(
            bucket_url("http://127.0.0.1:9000", "b"),
            "http://b.127.0.0.1:9000"
        );
        assert_eq!(
            bucket_url("ks3.example.com", "b"),
            "https://b.ks3.example.com"
        );
    }

    #[test]
    fn form_fields_in_order_signed_with_the_long_term_key() {
        let cfg = KsyunConfig {
            access_key_id: crate::secret::Secret::new("AKLT"),
            secret_access_key: crate::secret::Secret::new("SK"),
            bucket: "b".into(),
            ..KsyunConfig::default()
        };
        let f = form(&cfg, "https://b.ks3", "dir/", true, 5, 0, None);
        let names: Vec<&str> = f.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["key", "KSSAccessKeyId", "Policy", "Signature"]);
        assert_eq!(f.fields[0].1, "dir/${filename}");
        assert_eq!(f.fields[1].1, "AKLT");
        let signed = sign_policy_hmac_sha1("SK", &post_policy("b", "dir/", true, 5, 0, None));
        assert_eq!((f.policy, f.signature), (signed.policy, signed.signature));
        assert_eq!(f.url, "https://b.ks3");
    }
}
