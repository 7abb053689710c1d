//! Cloud type 2: AWS S3 and any S3-compatible store that speaks STS `AssumeRole` (MinIO and
//! others).
//!
//! Each issuance makes one SigV4-signed `AssumeRole` call (no credential cache: every
//! credential carries its own session policy, allowing only uploads to that request's
//! `relativePath`, or its folder with `isDir`), then signs a browser POST form with the
//! temporary credentials. `expiration` is the `Expiration` STS returned.
//!
//! Request signing is the shared SigV4 wrapper ([`crate::providers::sigv4`], also used by
//! KSyun); [`sign`] holds the AWS-only schemes (S3 presigning, the POST policy signature).

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use self::config::AwsConfig;
use self::sign::FORM_CONTENT_TYPE;
use super::http::{send, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::sigv4::{sign_request, SigV4Key, SigV4Request};
use super::{
    object, CloudType, CredentialProvider, Head, IssueRequest, Issued, ProviderError,
    TempCredentials,
};
use crate::clock::Clock;
use crate::config::ConfigError;

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
    /// S3 service endpoint (never contains the bucket).
    endpoint: String,
    /// The browser POST URL.
    form_url: String,
    partition: String,
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

fn system_time(unix: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64)
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry), signed at the current time.
    async fn fetch_once(
        &self,
        body: &str,
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let signed = sign_request(
            SigV4Key {
                access_key_id: ak,
                secret_access_key: sk,
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
        let cred = sts::parse(status, &bytes, &[ak, sk])?;
        let meta = sts::metadata(&bytes);
        tracing::debug!(
            packed_policy_size = meta.packed_policy_size,
            request_id = %meta.request_id,
            "STS AssumeRole answered"
        );
        Ok(cred)
    }
}

impl Cloud for AwsProvider {
    const TYPE: CloudType = CloudType::Aws;
    type Config = AwsConfig;

    fn section(providers: &ProvidersConfig) -> &AwsConfig {
        &providers.aws
    }

    fn new(cfg: AwsConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let sts_url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| ConfigError("providers.aws.sts_endpoint is not a URL".into()))?
            .to_string();
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "aws",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(AwsProvider {
            inner: Arc::new(Inner {
                sts_url,
                sts_region: cfg.sts_signing_region(),
                endpoint: sts::s3_endpoint(&cfg.s3_endpoint, &cfg.region),
                form_url: form::bucket_url(
                    &cfg.s3_endpoint,
                    &cfg.region,
                    &cfg.bucket,
                    cfg.path_style,
                ),
                partition: sts::partition(&cfg.role_arn).to_string(),
                duration_secs,
                upstream,
                clock: ctx.clock.clone(),
                cfg,
            }),
        })
    }
}

/// `HEAD`/`DELETE` of one object, signed with the long-term key at the current time.
impl object::ObjectSigner for Inner {
    const SERVICE: &'static str = "S3";

    fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    fn verify_uploads(&self) -> bool {
        self.cfg.verify_uploads
    }

    fn sign_object(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
    ) -> Result<object::SignedRequest, ProviderError> {
        let cfg = &self.cfg;
        let url = sign::object_url(
            &form::bucket_url(&cfg.s3_endpoint, &cfg.region, bucket, cfg.path_style),
            key,
        );
        let signed = sign::sign_object_request(
            SigV4Key {
                access_key_id: cfg.access_key_id.expose(),
                secret_access_key: cfg.secret_access_key.expose(),
                session_token: None,
            },
            method,
            &url,
            &cfg.region,
            system_time(self.clock.now_unix()),
        )
        .map_err(ProviderError::Unusable)?;
        let signed = object::SignedRequest {
            url,
            headers: signed
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        Ok(signed)
    }
}

#[async_trait]
impl CredentialProvider for AwsProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&inner.partition, &cfg.bucket, key, req.is_dir);
        if policy.len() > sts::MAX_SESSION_POLICY_CHARS {
            // Unreachable with the validated key layout (see the packed-length test).
            return Err(ProviderError::Unusable(
                "session policy exceeds 2048 characters".into(),
            ));
        }
        let body = sts::assume_role_body(
            &cfg.role_arn,
            &sts::role_session_name(&req.sub),
            inner.duration_secs,
            &policy,
        );
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        // The browser form: signed with the temporary keys, valid as long as they are.
        let form = form::form(
            &cred,
            &cfg.bucket,
            &cfg.region,
            &inner.form_url,
            key,
            req.is_dir,
            req.content_type(),
            req.max_bytes,
            system_time(inner.clock.now_unix()),
        );
        let upload = (!req.is_dir)
            .then(|| {
                put_url(
                    &cred,
                    &inner.form_url,
                    key,
                    &cfg.region,
                    &req.extension,
                    inner.clock.now_unix(),
                )
            })
            .flatten();
        Ok(
            Issued::temporary(cred, &cfg.bucket, &inner.endpoint, &cfg.region, key, form)
                .with_upload(upload),
        )
    }

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Head, ProviderError> {
        object::head(&*self.inner, bucket, key, deadline).await
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), ProviderError> {
        object::delete(&*self.inner, bucket, key, deadline).await
    }
}

/// The presigned `PUT` of `key` (`uploadUrl`) with the temporary credentials, valid as long
/// as they are (S3's ceiling is 7 days), with the extension's `Content-Type` signed.
pub fn put_url(
    cred: &TempCredentials,
    bucket_url: &str,
    key: &str,
    region: &str,
    extension: &str,
    now: i64,
) -> Option<crate::providers::PresignedPut> {
    let lifetime = (cred.expiration - now).clamp(1, 7 * 24 * 3600) as u64;
    sign::presigned_put(
        SigV4Key {
            access_key_id: &cred.access_key_id,
            secret_access_key: cred.expose_secret(),
            session_token: Some(cred.expose_token()),
        },
        bucket_url,
        key,
        region,
        Some(crate::providers::form::content_type_for(extension)),
        system_time(now),
        Duration::from_secs(lifetime),
    )
    .map_err(|e| tracing::warn!(error = %e, "presigning the PUT failed"))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::metrics::Metrics;

    fn cfg() -> AwsConfig {
        AwsConfig {
            access_key_id: crate::secret::Secret::new("AKIDSECRETID"),
            secret_access_key: crate::secret::Secret::new("s3cr3t"),
            role_arn: "arn:aws:iam::1:role/r".into(),
            bucket: "b".into(),
            ..AwsConfig::default()
        }
    }

    /// The provider built as the registry builds it.
    fn build(cfg: AwsConfig, config: &Config) -> Result<AwsProvider, ConfigError> {
        AwsProvider::new(
            cfg,
            &Context {
                config,
                clock: Arc::new(SystemClock),
                metrics: Metrics::new(),
                cluster: None,
            },
        )
    }

    #[test]
    fn debug_shows_no_key() {
        let p = build(cfg(), &Config::default()).unwrap();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("AKIDSECRETID") && !dbg.contains("s3cr3t"),
            "{dbg}"
        );
        assert_eq!(p.inner.sts_region, "us-east-1");
        assert_eq!(p.inner.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert_eq!(p.inner.form_url, "https://b.s3.amazonaws.com/");
        assert_eq!(p.inner.sts_url, "https://sts.amazonaws.com/");
        assert_eq!(p.inner.partition, "aws");
    }

    #[test]
    fn duration_is_the_section_s_else_upload_s() {
        let mut config = Config::default();
        config.upload.duration_secs = 1800;
        assert_eq!(build(cfg(), &config).unwrap().inner.duration_secs, 1800);
        let with = AwsConfig {
            duration_secs: Some(7200),
            ..cfg()
        };
        assert_eq!(build(with, &config).unwrap().inner.duration_secs, 7200);
        let bad = AwsConfig {
            sts_endpoint: "not a url".into(),
            ..cfg()
        };
        assert_eq!(
            build(bad, &config).unwrap_err().0,
            "providers.aws.sts_endpoint is not a URL"
        );
    }
}
