//! `[providers.aliyun]`: cloud type 3: STS AssumeRole + OSS.

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
use crate::secret::Secret;

/// `[providers.aliyun]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AliyunConfig {
    /// AccessKeyId.
    pub access_key_id: Secret,
    /// AccessKeySecret.
    pub access_key_secret: Secret,
    /// Role to assume.
    pub role_arn: String,
    /// STS endpoint.
    pub sts_endpoint: String,
    /// OSS region id, as in the seed.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// OSS endpoint; empty: https://{region}.aliyuncs.com.
    pub oss_endpoint: String,
    /// Where OSS callback public keys may be fetched from.
    pub callback_key_url_prefixes: Vec<String>,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Requested credential lifetime (900–43200); empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
    /// `HEAD` the object with the long-term key before recording an upload (a client's
    /// callback, and an OSS-signed one: OSS signs every bucket's callbacks with one key), and
    /// record the bucket's size, ETag and content type (`verifiedBy: head`); `false`: record
    /// the callback's claim. The RAM user needs `oss:GetObject` (and `oss:DeleteObject` to
    /// delete a rejected object) on the bucket.
    pub verify_uploads: bool,
}

impl Default for AliyunConfig {
    fn default() -> Self {
        Self {
            access_key_id: Secret::default(),
            access_key_secret: Secret::default(),
            role_arn: String::new(),
            sts_endpoint: "https://sts.aliyuncs.com".into(),
            region: "oss-cn-beijing".into(),
            bucket: String::new(),
            oss_endpoint: String::new(),
            callback_key_url_prefixes: vec![
                "https://gosspublic.alicdn.com/".into(),
                "http://gosspublic.alicdn.com/".into(),
            ],
            rate_limit_per_sec: section::default_rate_limit(),
            connect_timeout_ms: section::default_connect_timeout_ms(),
            timeout_ms: section::default_timeout_ms(),
            duration_secs: None,
            verify_uploads: true,
        }
    }
}

impl ProviderSection for AliyunConfig {
    const NAME: &'static str = "aliyun";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("access_key_id", self.access_key_id.is_set()),
            ("access_key_secret", self.access_key_secret.is_set()),
            ("role_arn", !self.role_arn.is_empty()),
            ("bucket", !self.bucket.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "sts_endpoint", &self.sts_endpoint)?;
        if self.sts_endpoint.is_empty() {
            return Err("providers.aliyun.sts_endpoint must not be empty".into());
        }
        section::check_url(Self::NAME, "oss_endpoint", &self.oss_endpoint)?;
        if self.region.is_empty() {
            return Err("providers.aliyun.region must not be empty".into());
        }
        if !self.role_arn.starts_with("acs:ram::") {
            return Err(
                "providers.aliyun.role_arn must look like acs:ram::<account>:role/<name>".into(),
            );
        }
        for p in &self.callback_key_url_prefixes {
            check_key_url_prefix(p)?;
        }
        if let Some(d) = self.duration_secs {
            if !(900..=43_200).contains(&d) {
                return Err("providers.aliyun.duration_secs must be between 900 and 43200".into());
            }
        }
        section::check_limits(
            Self::NAME,
            self.rate_limit_per_sec,
            self.connect_timeout_ms,
            self.timeout_ms,
            self.duration_secs,
        )
    }
}

/// A key URL prefix must be an absolute http(s) URL without userinfo, query or fragment,
/// ending in `/`: the slash after the host is what makes the prefix check reject look-alike
/// hosts (`gosspublic.alicdn.com.evil…`) and userinfo (`gosspublic.alicdn.com@evil…`).
fn check_key_url_prefix(p: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "providers.aliyun.callback_key_url_prefixes: {p:?} must be an http(s) URL ending in \"/\" (e.g. \"https://gosspublic.alicdn.com/\")"
        ))
    };
    let Ok(u) = reqwest::Url::parse(p) else {
        return bad();
    };
    let scheme_ok = u.scheme() == "http" || u.scheme() == "https";
    let plain = u.username().is_empty()
        && u.password().is_none()
        && u.query().is_none()
        && u.fragment().is_none();
    // The text itself (not the parsed URL, which adds a slash) must end in "/", and the host
    // must be followed by "/" or ":port/" in it.
    let after_scheme = p.split_once("://").map(|(_, r)| r).unwrap_or("");
    let authority = after_scheme.split('/').next().unwrap_or("");
    if !scheme_ok
        || !plain
        || u.host_str().is_none()
        || !p.ends_with('/')
        || !after_scheme.contains('/')
        || authority.contains('@')
    {
        return bad();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::config::enabled;

    fn full() -> AliyunConfig {
        AliyunConfig {
            access_key_id: Secret::new("LTAIid"),
            access_key_secret: Secret::new("secret"),
            role_arn: "acs:ram::1234567890123456:role/stsgate-uploader".into(),
            bucket: "bseditor".into(),
            ..AliyunConfig::default()
        }
    }

    #[test]
    fn defaults_are_disabled_and_full_is_enabled() {
        assert_eq!(enabled(&AliyunConfig::default()), Ok(false));
        assert_eq!(enabled(&full()), Ok(true));
        let mut c = full();
        c.bucket.clear();
        assert!(enabled(&c).unwrap_err().contains("providers.aliyun.bucket"));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (tweak, key) in [
            (
                Box::new(|c: &mut AliyunConfig| c.role_arn = "arn:aws:iam::1:role/x".into())
                    as Box<dyn Fn(&mut AliyunConfig)>,
                "role_arn",
            ),
            (Box::new(|c| c.duration_secs = Some(600)), "duration_secs"),
            (
                Box::new(|c| c.duration_secs = Some(50_000)),
                "duration_secs",
            ),
            (Box::new(|c| c.region.clear()), "region"),
            (
                Box::new(|c| c.sts_endpoint = "ftp://x".into()),
                "sts_endpoint",
            ),
            (Box::new(|c| c.sts_endpoint.clear()), "sts_endpoint"),
            (
                Box::new(|c| {
                    c.callback_key_url_prefixes = vec!["https://gosspublic.alicdn.com".into()]
                }),
                "callback_key_url_prefixes",
            ),
            (
                Box::new(|c| {
                    c.callback_key_url_prefixes = vec!["https://u@gosspublic.alicdn.com/".into()]
                }),
                "callback_key_url_prefixes",
            ),
            (
                Box::new(|c| c.callback_key_url_prefixes = vec!["file:///etc/".into()]),
                "callback_key_url_prefixes",
            ),
        ] {
            let mut c = full();
            tweak(&mut c);
            let e = enabled(&c).unwrap_err();
            assert!(e.contains(&format!("providers.aliyun.{key}")), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
        let mut c = full();
        c.duration_secs = Some(900);
        c.callback_key_url_prefixes = vec![
            "http://127.0.0.1:9401/".into(),
            "https://gosspublic.alicdn.com/keys/".into(),
        ];
        assert_eq!(enabled(&c), Ok(true));
        c.callback_key_url_prefixes.clear();
        assert_eq!(
            enabled(&c),
            Ok(true),
            "no prefixes: OSS callbacks are all refused"
        );
    }
}
