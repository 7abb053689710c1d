//! `[providers.aws]`: cloud type 2: STS AssumeRole, S3 and any S3-compatible store.

use serde::{Deserialize, Serialize};

use crate::providers::section::{self, ProviderSection};
use crate::secret::Secret;

/// `[providers.aws]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Access key id (secret: it names the account).
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Role to assume.
    pub role_arn: String,
    /// STS endpoint.
    pub sts_endpoint: String,
    /// SigV4 region for STS; empty: us-east-1 for the global endpoint, else `region`.
    pub sts_region: String,
    /// Bucket region.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// S3 endpoint; empty: https://s3.{region}.amazonaws.com.
    pub s3_endpoint: String,
    /// Path-style bucket URLs (MinIO).
    pub path_style: bool,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Requested credential lifetime; empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            access_key_id: Secret::default(),
            secret_access_key: Secret::default(),
            role_arn: String::new(),
            sts_endpoint: "https://sts.amazonaws.com".into(),
            sts_region: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            s3_endpoint: String::new(),
            path_style: false,
            rate_limit_per_sec: section::default_rate_limit(),
            connect_timeout_ms: section::default_connect_timeout_ms(),
            timeout_ms: section::default_timeout_ms(),
            duration_secs: None,
        }
    }
}

impl ProviderSection for AwsConfig {
    const NAME: &'static str = "aws";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("access_key_id", self.access_key_id.is_set()),
            ("secret_access_key", self.secret_access_key.is_set()),
            ("role_arn", !self.role_arn.is_empty()),
            ("bucket", !self.bucket.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "sts_endpoint", &self.sts_endpoint)?;
        section::check_url(Self::NAME, "s3_endpoint", &self.s3_endpoint)?;
        section::check_limits(
            Self::NAME,
            self.rate_limit_per_sec,
            self.connect_timeout_ms,
            self.timeout_ms,
            self.duration_secs,
        )
    }
}
