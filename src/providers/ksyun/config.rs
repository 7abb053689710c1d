//! `[providers.ksyun]`: cloud type 7: STS AssumeRole (SigV4) + KS3.

use serde::{Deserialize, Serialize};

use crate::providers::section::{self, ProviderSection};
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
    /// STS endpoint.
    pub sts_endpoint: String,
    /// Region.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// KS3 endpoint; empty: https://ks3-cn-beijing.ksyuncs.com.
    pub ks3_endpoint: String,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Requested credential lifetime; empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
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
        section::check_limits(
            Self::NAME,
            self.rate_limit_per_sec,
            self.connect_timeout_ms,
            self.timeout_ms,
            self.duration_secs,
        )
    }
}
