//! `[providers.ksyun]`: cloud type 7: STS AssumeRole (SigV4) + KS3.

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
use crate::secret::Secret;

/// `[providers.ksyun]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KsyunConfig {
    /// AK.
    pub access_key_id: Secret,
    /// SK.
    pub secret_access_key: Secret,
    /// krn:ksc:iam::<account>:role/<name>.
    pub role_krn: String,
    /// STS endpoint (scheme and host only; the same host serves every region).
    pub sts_endpoint: String,
    /// SigV4 credential-scope region of STS, also answered as `region`.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// KS3 service endpoint (without the bucket); empty: https://ks3-cn-beijing.ksyuncs.com.
    pub ks3_endpoint: String,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Requested credential lifetime (`DurationSeconds`, 900–86400); empty:
    /// `upload.duration_secs`.
    pub duration_secs: Option<u64>,
    /// On a client callback, `HEAD` the object with the long-term key and record KS3's
    /// size/ETag/type (`verifiedBy: head`); false: record the client's claim.
    pub verify_uploads: bool,
}

impl Default for KsyunConfig {
    fn default() -> Self {
        Self {
            access_key_id: Secret::default(),
            secret_access_key: Secret::default(),
            role_krn: String::new(),
            sts_endpoint: "https://sts.api.ksyun.com".into(),
            region: "cn-beijing-6".into(),
            bucket: String::new(),
            ks3_endpoint: String::new(),
            rate_limit_per_sec: section::default_rate_limit(),
            connect_timeout_ms: section::default_connect_timeout_ms(),
            timeout_ms: section::default_timeout_ms(),
            duration_secs: None,
            verify_uploads: true,
        }
    }
}

impl ProviderSection for KsyunConfig {
    const NAME: &'static str = "ksyun";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("access_key_id", self.access_key_id.is_set()),
            ("secret_access_key", self.secret_access_key.is_set()),
            ("role_krn", !self.role_krn.is_empty()),
            ("bucket", !self.bucket.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "sts_endpoint", &self.sts_endpoint)?;
        section::check_url(Self::NAME, "ks3_endpoint", &self.ks3_endpoint)?;
        let sts = reqwest::Url::parse(&self.sts_endpoint)
            .map_err(|_| "providers.ksyun.sts_endpoint must be an http(s) URL".to_string())?;
        if sts.path() != "/" || sts.query().is_some() {
            return Err(
                "providers.ksyun.sts_endpoint must be a scheme and host, without a path or query"
                    .into(),
            );
        }
        if self.region.is_empty() {
            return Err("providers.ksyun.region must not be empty".into());
        }
        if let Some(d) = self.duration_secs {
            if !(900..=86_400).contains(&d) {
                return Err("providers.ksyun.duration_secs must be between 900 and 86400".into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn enabled() -> KsyunConfig {
        KsyunConfig {
            access_key_id: Secret::new("AK"),
            secret_access_key: Secret::new("SK"),
            role_krn: "krn:ksc:iam::1:role/r".into(),
            bucket: "b".into(),
            ..KsyunConfig::default()
        }
    }

    #[test]
    fn defaults_and_enablement() {
        let c = KsyunConfig::default();
        assert_eq!(section::enabled(&c), Ok(false));
        assert_eq!(c.sts_endpoint, "https://sts.api.ksyun.com");
        assert_eq!(c.region, "cn-beijing-6");
        assert!(c.verify_uploads);
        assert_eq!(section::enabled(&enabled()), Ok(true));
        let mut partial = enabled();
        partial.role_krn.clear();
        assert!(section::enabled(&partial)
            .unwrap_err()
            .contains("providers.ksyun.role_krn"));
    }

    #[test]
    fn rest_is_validated() {
        let bad = |f: fn(&mut KsyunConfig)| {
            let mut c = enabled();
            f(&mut c);
            section::enabled(&c).unwrap_err()
        };
        assert!(bad(|c| c.duration_secs = Some(600)).contains("duration_secs"));
        assert!(bad(|c| c.duration_secs = Some(86_401)).contains("duration_secs"));
        assert!(
            bad(|c| c.sts_endpoint = "https://sts.api.ksyun.com/x".into()).contains("sts_endpoint")
        );
        assert!(bad(|c| c.sts_endpoint = "ftp://x".into()).contains("sts_endpoint"));
        assert!(bad(|c| c.region.clear()).contains("region"));
        assert!(bad(|c| c.ks3_endpoint = "nope".into()).contains("ks3_endpoint"));
        let mut ok = enabled();
        ok.duration_secs = Some(86_400);
        ok.sts_endpoint = "http://127.0.0.1:9401".into();
        assert_eq!(section::enabled(&ok), Ok(true));
    }
}
