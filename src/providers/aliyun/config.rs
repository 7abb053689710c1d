//! `[providers.aliyun]`: cloud type 3: STS AssumeRole + OSS.

use serde::{Deserialize, Serialize};

use crate::providers::section::{self, ProviderSection};
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
    /// Requested credential lifetime; empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
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
        section::check_url(Self::NAME, "oss_endpoint", &self.oss_endpoint)?;
        section::check_limits(
            Self::NAME,
            self.rate_limit_per_sec,
            self.connect_timeout_ms,
            self.timeout_ms,
            self.duration_secs,
        )
    }
}
