//! `[providers.aws]`: cloud type 2: STS AssumeRole, S3 and any S3-compatible store.

use serde::{Deserialize, Serialize};

use crate::providers::config::{self as section, ProviderSection};
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
    /// On a client's (JWT) callback, `HEAD` the object with the long-term key and record
    /// the bucket's size, ETag and content type (`verifiedBy: head`); `false`: record the
    /// client's claim (`verifiedBy: client`). The key needs `s3:GetObject` (and
    /// `s3:DeleteObject` to delete a rejected object).
    pub verify_uploads: bool,
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
            verify_uploads: true,
        }
    }
}

impl AwsConfig {
    /// The SigV4 region for STS: `sts_region`, else `us-east-1` for the legacy global
    /// endpoint `sts.amazonaws.com`, else `region`.
    pub fn sts_signing_region(&self) -> String {
        if !self.sts_region.is_empty() {
            return self.sts_region.clone();
        }
        let host = reqwest::Url::parse(&self.sts_endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        if host.as_deref() == Some("sts.amazonaws.com") {
            "us-east-1".into()
        } else {
            self.region.clone()
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
        if self.sts_endpoint.is_empty() {
            return Err("providers.aws.sts_endpoint must not be empty".into());
        }
        section::check_url(Self::NAME, "sts_endpoint", &self.sts_endpoint)?;
        if self.region.is_empty() {
            return Err("providers.aws.region must not be empty".into());
        }
        if !self.role_arn.starts_with("arn:") {
            return Err(format!(
                "providers.aws.role_arn must be an ARN (arn:...), got {:?}",
                self.role_arn
            ));
        }
        if let Some(d) = self.duration_secs {
            // AssumeRole's DurationSeconds range (the role's own maximum may be lower).
            if !(900..=43_200).contains(&d) {
                return Err("providers.aws.duration_secs must be between 900 and 43200".into());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> AwsConfig {
        AwsConfig {
            access_key_id: Secret::new("AKIA1"),
            secret_access_key: Secret::new("s"),
            role_arn: "arn:aws:iam::1:role/r".into(),
            bucket: "b".into(),
            ..AwsConfig::default()
        }
    }

    #[test]
    fn signing_region_rules() {
        let mut c = enabled();
        c.region = "eu-west-1".into();
        assert_eq!(
            c.sts_signing_region(),
            "us-east-1",
            "legacy global endpoint"
        );
        c.sts_endpoint = "https://sts.eu-west-1.amazonaws.com".into();
        assert_eq!(c.sts_signing_region(), "eu-west-1", "else `region`");
        c.sts_region = "eu-central-1".into();
        assert_eq!(c.sts_signing_region(), "eu-central-1", "sts_region wins");
        c.sts_region.clear();
        c.sts_endpoint = "http://127.0.0.1:9000".into();
        assert_eq!(c.sts_signing_region(), "eu-west-1");
    }

    #[test]
    fn validation_names_the_key() {
        assert!(enabled().validate_rest().is_ok());
        let mut c = enabled();
        c.role_arn = "uploader".into();
        assert!(c
            .validate_rest()
            .unwrap_err()
            .contains("providers.aws.role_arn"));
        let mut c = enabled();
        c.duration_secs = Some(600);
        assert!(c
            .validate_rest()
            .unwrap_err()
            .contains("providers.aws.duration_secs"));
        c.duration_secs = Some(43_200);
        assert!(c.validate_rest().is_ok());
        let mut c = enabled();
        c.sts_endpoint.clear();
        assert!(c
            .validate_rest()
            .unwrap_err()
            .contains("providers.aws.sts_endpoint"));
        let mut c = enabled();
        c.region.clear();
        assert!(c
            .validate_rest()
            .unwrap_err()
            .contains("providers.aws.region"));
        let mut c = enabled();
        c.s3_endpoint = "ftp://x".into();
        assert!(c
            .validate_rest()
            .unwrap_err()
            .contains("providers.aws.s3_endpoint"));
    }
}
