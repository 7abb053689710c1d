//! `[providers.huawei]`: cloud type 6: IAM securitytokens + OBS.

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
use crate::secret::Secret;

/// `[providers.huawei]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HuaweiConfig {
    /// AK.
    pub access_key_id: Secret,
    /// SK.
    pub secret_access_key: Secret,
    /// Sent as X-Domain-Id to the global IAM endpoint.
    pub domain_id: String,
    /// IAM endpoint.
    pub iam_endpoint: String,
    /// OBS region.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// OBS endpoint; empty: https://obs.{region}.myhuaweicloud.com.
    pub obs_endpoint: String,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Requested credential lifetime (IAM takes 900–86400); empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
    /// On a client's callback, `HEAD` the object with the long-term key and record the
    /// bucket's size, ETag and content type (`verifiedBy: head`); `false`: record the
    /// client's claim (`verifiedBy: client`). The IAM user then needs `obs:object:GetObject`
    /// (and `obs:object:DeleteObject` to delete a rejected object) on the bucket's objects.
    pub verify_uploads: bool,
}

impl Default for HuaweiConfig {
    fn default() -> Self {
        Self {
            access_key_id: Secret::default(),
            secret_access_key: Secret::default(),
            domain_id: String::new(),
            iam_endpoint: "https://iam.myhuaweicloud.com".into(),
            region: "cn-north-4".into(),
            bucket: String::new(),
            obs_endpoint: String::new(),
            rate_limit_per_sec: section::default_rate_limit(),
            connect_timeout_ms: section::default_connect_timeout_ms(),
            timeout_ms: section::default_timeout_ms(),
            duration_secs: None,
            verify_uploads: true,
        }
    }
}

impl ProviderSection for HuaweiConfig {
    const NAME: &'static str = "huawei";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("access_key_id", self.access_key_id.is_set()),
            ("secret_access_key", self.secret_access_key.is_set()),
            ("bucket", !self.bucket.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "iam_endpoint", &self.iam_endpoint)?;
        section::check_url(Self::NAME, "obs_endpoint", &self.obs_endpoint)?;
        if self.iam_endpoint.is_empty() {
            return Err("providers.huawei.iam_endpoint must not be empty".into());
        }
        if let Some(d) = self.duration_secs {
            if !super::sts::DURATION_RANGE.contains(&d) {
                return Err(
                    "providers.huawei.duration_secs must be between 900 and 86400 (IAM's limits)"
                        .into(),
                );
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

    fn enabled() -> HuaweiConfig {
        HuaweiConfig {
            access_key_id: Secret::new("ak"),
            secret_access_key: Secret::new("sk"),
            bucket: "b".into(),
            ..HuaweiConfig::default()
        }
    }

    #[test]
    fn duration_must_fit_iam_limits() {
        let mut c = enabled();
        assert_eq!(section::enabled(&c), Ok(true));
        for (d, ok) in [(899, false), (900, true), (86_400, true), (86_401, false)] {
            c.duration_secs = Some(d);
            let got = section::enabled(&c);
            assert_eq!(got.is_ok(), ok, "{d}: {got:?}");
            if !ok {
                assert!(got.unwrap_err().contains("providers.huawei.duration_secs"));
            }
        }
        c.duration_secs = None;
        c.iam_endpoint = String::new();
        assert!(section::enabled(&c)
            .unwrap_err()
            .contains("providers.huawei.iam_endpoint"));
    }
}
