//! `[providers.tencent]`: cloud type 1 through LKE `DescribeStorageCredential`.

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
use crate::secret::Secret;

/// Tencent LKE settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TencentConfig {
    /// API SecretId.
    pub secret_id: Secret,
    /// API SecretKey.
    pub secret_key: Secret,
    /// LKE API endpoint; the TC3 service name is always `lke`.
    pub endpoint: String,
    /// `X-TC-Region`.
    pub region: String,
    /// LKE application id.
    pub bot_biz_id: String,
    /// `offline` or `realtime`.
    pub type_key: String,
    /// `IsPublic`.
    pub is_public: bool,
    /// Upstream calls per second (sliding window).
    pub rate_limit_per_sec: u32,
    /// Connect timeout of one call.
    pub connect_timeout_ms: u64,
    /// Total timeout of one call.
    pub timeout_ms: u64,
    /// Unused (LKE decides the lifetime); accepted for uniformity.
    pub duration_secs: Option<u64>,
    /// Unused credentials kept per pool key (0 disables the pool).
    pub pool_size: usize,
}

impl Default for TencentConfig {
    fn default() -> Self {
        Self {
            secret_id: Secret::default(),
            secret_key: Secret::default(),
            endpoint: "https://lke.intl.tencentcloudapi.com".into(),
            region: "ap-jakarta".into(),
            bot_biz_id: String::new(),
            type_key: "offline".into(),
            is_public: false,
            rate_limit_per_sec: section::default_rate_limit(),
            connect_timeout_ms: section::default_connect_timeout_ms(),
            timeout_ms: section::default_timeout_ms(),
            duration_secs: None,
            pool_size: 2,
        }
    }
}

impl ProviderSection for TencentConfig {
    const NAME: &'static str = "tencent";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("secret_id", self.secret_id.is_set()),
            ("secret_key", self.secret_key.is_set()),
            ("bot_biz_id", !self.bot_biz_id.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "endpoint", &self.endpoint)?;
        if self.endpoint.is_empty() {
            return Err("providers.tencent.endpoint must not be empty".into());
        }
        if self.type_key != "offline" && self.type_key != "realtime" {
            return Err(format!(
                "providers.tencent.type_key must be \"offline\" or \"realtime\", got {:?}",
                self.type_key
            ));
        }
        if self.pool_size > 64 {
            return Err("providers.tencent.pool_size must be at most 64".into());
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
