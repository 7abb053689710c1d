//! Cloud type 2: AWS S3 and any S3-compatible store that speaks STS `AssumeRole` (MinIO and
//! others).
//!
//! Each issuance makes one SigV4-signed `AssumeRole` call (no credential cache: every
//! credential carries its own session policy, allowing only uploads to that request's
//! `relativePath`, or its folder with `isDir`), then signs a browser POST form with the
//! temporary credentials. `expiration` is the `Expiration` STS returned.
//!
//! The SigV4 signer in [`sign`] is shared with KSyun.

pub mod api;
pub mod config;
pub mod sign;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::SecretString;

use self::api::{AssumedCredentials, Condition, PostFormInput};
use self::config::AwsConfig;
use self::sign::FORM_CONTENT_TYPE;
use super::http::{send, Upstream};
use super::{CredentialProvider, Form, IssueRequest, Issued, ProviderError};
use crate::clock::{rfc3339, Clock};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::providers::sigv4::{sign_request, SigV4Key, SigV4Request};
use crate::providers::CloudType;

/// The AWS / S3-compatible provider.
#[derive(Clone)]
pub struct AwsProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("sts_url", &self.inner.sts_url)
            .field("bucket", &self.inner.cfg.bucket)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: AwsConfig,
    sts_url: String,
    sts_region: String,
    endpoint: String,
    form_url: String,
    partition: String,
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

fn system_time(unix: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64)
}

impl AwsProvider {
    /// Builds the provider from its (enabled, validated) section; `upload_duration_secs`
    /// is the lifetime to request when the section sets none.
    pub fn new_legacy(
        cfg: AwsConfig,
        upload_duration_secs: u64,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        cluster: Option<&Cluster>,
    ) -> Result<Self, String> {
        let sts_url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| "providers.aws.sts_endpoint is not a URL".to_string())?
            .to_string();
        let upstream = Upstream::new(
            "aws",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
            metrics,
            cluster,
        );
        Ok(AwsProvider {
            inner: Arc::new(Inner {
                sts_url,
                sts_region: cfg.sts_signing_region(),
                endpoint: api::s3_endpoint(&cfg.s3_endpoint, &cfg.region),
                form_url: api::bucket_url(
                    &cfg.s3_endpoint,
                    &cfg.region,
                    &cfg.bucket,
                    cfg.path_style,
                ),
                partition: api::partition(&cfg.role_arn).to_string(),
                duration_secs: cfg.duration_secs.unwrap_or(upload_duration_secs),
                upstream,
                clock,
                cfg,
            }),
        })
    }
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry), signed at the current time.
    async fn assume_role_once(
        &self,
        body: &str,
        timeout: Duration,
    ) -> Result<AssumedCredentials, ProviderError> {
        let signed = sign_request(
            SigV4Key {
                access_key_id: self.cfg.access_key_id.expose(),
                secret_access_key: self.cfg.secret_access_key.expose(),
                session_token: None,
            },
            &SigV4Request {
                method: "POST",
                url: &self.sts_url,
                signed_headers: &[("content-type", FORM_CONTENT_TYPE)],
                body: body.as_bytes(),
                region: &self.sts_region,
                service: "sts",
                time: system_time(self.clock.now_unix()),
            },
        )
        .map_err(ProviderError::Unusable)?;
        let mut req = self
            .upstream
            .client
            .post(&self.sts_url)
            .timeout(timeout)
            .header("content-type", FORM_CONTENT_TYPE)
            .body(body.to_string());
        for (name, value) in signed.headers {
            req = req.header(name, value);
        }
        let (status, bytes) = send(req).await?;
        api::parse_assume_role(status, &bytes).map_err(|e| self.scrub(e))
    }

    /// Drops an upstream message that quotes one of our own keys (belt and braces: STS
    /// does not, but an S3-compatible store might).
    fn scrub(&self, e: ProviderError) -> ProviderError {
        match e {
            ProviderError::Refused {
                code,
                message,
                retryable,
            } => {
                let leaks = [
                    self.cfg.access_key_id.expose(),
                    self.cfg.secret_access_key.expose(),
                ]
                .iter()
                .any(|s| !s.is_empty() && message.contains(s));
                ProviderError::Refused {
                    code,
                    message: if leaks { String::new() } else { message },
                    retryable,
                }
            }
            other => other,
        }
    }
}

impl crate::providers::registry::Cloud for AwsProvider {
    const TYPE: CloudType = CloudType::Aws;
    type Config = AwsConfig;
    fn section(providers: &crate::providers::registry::ProvidersConfig) -> &AwsConfig {
        &providers.aws
    }
    fn new(
        cfg: AwsConfig,
        ctx: &crate::providers::registry::Context<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        Self::new_legacy(
            cfg,
            ctx.config.upload.duration_secs,
            ctx.clock.clone(),
            ctx.metrics.clone(),
            ctx.cluster,
        )
        .map_err(crate::config::ConfigError)
    }
}

#[async_trait]
impl CredentialProvider for AwsProvider {
    fn cloud_type(&self) -> CloudType {
        CloudType::Aws
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let key = req.planned_key.as_str();
        let policy = api::session_policy(&inner.partition, &cfg.bucket, key, req.is_dir);
        if policy.len() > api::MAX_SESSION_POLICY_CHARS {
            // Unreachable with the validated key layout (see the packed-length test).
            return Err(ProviderError::Unusable(
                "session policy exceeds 2048 characters".into(),
            ));
        }
        let body = api::assume_role_body(
            &cfg.role_arn,
            &api::role_session_name(&req.sub),
            inner.duration_secs,
            &policy,
        );
        let creds: AssumedCredentials = inner
            .upstream
            .call(req.deadline, |t| inner.assume_role_once(&body, t))
            .await?;
        tracing::debug!(
            packed_policy_size = creds.packed_policy_size,
            request_id = %creds.request_id,
            "STS AssumeRole answered"
        );

        // The browser form: signed with the temporary keys, valid as long as they are.
        let form_key = if req.is_dir {
            format!("{key}${{filename}}")
        } else {
            key.to_string()
        };
        let expiration = rfc3339(creds.expiration);
        let conditions = [
            Condition::LengthRange(0, req.max_bytes),
            // Lets a browser set the stored Content-Type; the key stays pinned.
            Condition::StartsWith("Content-Type".into(), String::new()),
        ];
        let form = api::post_form(&PostFormInput {
            url: &inner.form_url,
            bucket: &cfg.bucket,
            key: &form_key,
            access_key_id: &creds.access_key_id,
            secret_access_key: creds.expose_secret_access_key(),
            session_token: Some(creds.expose_session_token()),
            region: &cfg.region,
            time: system_time(inner.clock.now_unix()),
            expiration: &expiration,
            conditions: &conditions,
            extra_fields: &[],
        });
        Ok(Issued {
            secret_access_key: SecretString::from(creds.expose_secret_access_key().to_string()),
            security_token: SecretString::from(creds.expose_session_token().to_string()),
            access_key_id: creds.access_key_id,
            bucket: cfg.bucket.clone(),
            endpoint: inner.endpoint.clone(),
            region: cfg.region.clone(),
            relative_path: key.to_string(),
            expiration: creds.expiration,
            start_time: None,
            form: Some(Form {
                url: form.url,
                fields: form.fields,
                policy: form.policy,
                signature: form.signature,
            }),
            callback: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AwsConfig {
        AwsConfig {
            access_key_id: crate::secret::Secret::new("AKIDSECRETID"),
            secret_access_key: crate::secret::Secret::new("s3cr3t"),
            role_arn: "arn:aws:iam::1:role/r".into(),
            bucket: "b".into(),
            ..AwsConfig::default()
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let p = AwsProvider::new_legacy(
            cfg(),
            3600,
            Arc::new(crate::clock::SystemClock),
            Metrics::new(),
            None,
        )
        .unwrap();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("AKIDSECRETID") && !dbg.contains("s3cr3t"),
            "{dbg}"
        );
        assert_eq!(p.inner.sts_region, "us-east-1");
        assert_eq!(p.inner.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert_eq!(p.inner.form_url, "https://b.s3.amazonaws.com/");
        assert_eq!(p.inner.sts_url, "https://sts.amazonaws.com/");
    }

    #[test]
    fn scrub_drops_messages_that_quote_our_keys() {
        let p = AwsProvider::new_legacy(
            cfg(),
            3600,
            Arc::new(crate::clock::SystemClock),
            Metrics::new(),
            None,
        )
        .unwrap();
        let e = p.inner.scrub(ProviderError::Refused {
            code: "InvalidClientTokenId".into(),
            message: "key AKIDSECRETID is unknown".into(),
            retryable: false,
        });
        assert_eq!(
            e,
            ProviderError::Refused {
                code: "InvalidClientTokenId".into(),
                message: String::new(),
                retryable: false
            }
        );
        let kept = p.inner.scrub(ProviderError::Refused {
            code: "AccessDenied".into(),
            message: "not authorized".into(),
            retryable: false,
        });
        assert!(
            matches!(kept, ProviderError::Refused { message, .. } if message == "not authorized")
        );
    }
}
