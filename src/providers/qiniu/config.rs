//! `[providers.qiniu]`: cloud type 0, upload tokens signed locally (no upstream call).

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
use crate::secret::Secret;

/// `[providers.qiniu]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QiniuConfig {
    /// AccessKey.
    pub access_key: Secret,
    /// SecretKey; never leaves the server.
    pub secret_key: Secret,
    /// Bucket.
    pub bucket: String,
    /// Upload host given to clients as `endpoint` and `form.url`.
    pub upload_host: String,
    /// Region id, e.g. `z0`.
    pub region: String,
    /// Token lifetime; empty: `upload.duration_secs`.
    pub duration_secs: Option<u64>,
}

impl Default for QiniuConfig {
    fn default() -> Self {
        Self {
            access_key: Secret::default(),
            secret_key: Secret::default(),
            bucket: String::new(),
            upload_host: "https://upload.qiniup.com".into(),
            region: "z0".into(),
            duration_secs: None,
        }
    }
}

impl ProviderSection for QiniuConfig {
    const NAME: &'static str = "qiniu";
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("access_key", self.access_key.is_set()),
            ("secret_key", self.secret_key.is_set()),
            ("bucket", !self.bucket.is_empty()),
        ]
    }
    fn validate_rest(&self) -> Result<(), String> {
        section::check_url(Self::NAME, "upload_host", &self.upload_host)?;
        section::check_limits(Self::NAME, 1, 1, 1, self.duration_secs)
    }
}
