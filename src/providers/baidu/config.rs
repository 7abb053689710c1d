//! `[providers.baidu]`: cloud type 4: STS sessionToken + BOS.

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
use crate::secret::Secret;

/// `[providers.baidu]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaiduConfig {
    /// AK.
    pub access_key_id: Secret,
    /// SK.
    pub secret_access_key: Secret,
    /// STS endpoint.
    pub sts_endpoint: String,
    /// Region.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// BOS endpoint; empty: https://{region}.bcebos.com.
    pub bos_endpoint: String,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Requested credential lifetime; empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
    /// Confirm each upload callback with a `HEAD` of the object signed with this AK/SK
    /// (`verifiedBy: head`); `false` records the client's claim (`verifiedBy: client`). The
    /// key needs BOS `GetObjectMeta` (part of `READ`) on the bucket's objects, and
    /// `DeleteObject` (part of `WRITE`) to delete a rejected one.
    pub verify_uploads: bool,
}

impl Default for BaiduConfig {
    fn default() -> Self {
        Self {
            access_key_id: Secret::default(),
            secret_access_key: Secret::default(),
            sts_endpoint: "https://sts.bj.baidubce.com".into(),
            region: "bj".into(),
            bucket: String::new(),
            bos_endpoint: String::new(),
            rate_limit_per_sec: section::default_rate_limit(),
            connect_timeout_ms: section::default_connect_timeout_ms(),
            timeout_ms: section::default_timeout_ms(),
            duration_secs: None,
            verify_uploads: true,
        }
    }
}

impl ProviderSection for BaiduConfig {
    const NAME: &'static str = "baidu";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("access_key_id", self.access_key_id.is_set()),
            ("secret_access_key", self.secret_access_key.is_set()),
            ("bucket", !self.bucket.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "sts_endpoint", &self.sts_endpoint)?;
        section::check_url(Self::NAME, "bos_endpoint", &self.bos_endpoint)?;
        section::check_limits(
            Self::NAME,
            self.rate_limit_per_sec,
            self.connect_timeout_ms,
            self.timeout_ms,
            self.duration_secs,
        )
    }
}
