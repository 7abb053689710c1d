//! Cloud type 7: KSyun (Kingsoft Cloud) KS3 through STS `AssumeRole` (docs/contract.md §1.2, issue 7).
//!
//! One upstream call per issuance, no credential cache: `AssumeRole` (`Version=2015-11-01`)
//! as a form POST signed with AWS SigV4 (service `sts`) by the shared signer, with a
//! session policy that allows only uploading `relativePath` (or the `isDir` prefix). The
//! answer also carries a KS3 browser POST form (`Policy` + `Signature`, HMAC-SHA1) signed
//! with the configured long-term key, scoped to the same key and size limit and expiring
//! with the credentials; no secret leaves the server for it.
//!
//! KSyun's native upload callback (`x-kss-callbackauth`) is not verified here (its
//! algorithm is not published): `callbackInfo` is the literal body the client POSTs back
//! with its JWT.

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use self::config::KsyunConfig;
use super::http::{send, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{CloudType, CredentialProvider, IssueRequest, Issued, ProviderError, TempCredentials};
use crate::clock::Clock;
use crate::config::ConfigError;

/// The KSyun provider.
#[derive(Clone)]
pub struct KsyunProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KsyunProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KsyunProvider")
            .field("sts_url", &self.inner.sts_url)
            .field("bucket", &self.inner.cfg.bucket)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: KsyunConfig,
    /// `sts_endpoint` with path `/`.
    sts_url: String,
    /// KS3 service endpoint (never the bucket).
    ks3_endpoint: String,
    /// The browser POST URL (bucket host).
    form_url: String,
    /// Requested `DurationSeconds`.
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &str,
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_secs(self.clock.now_unix().max(0).unsigned_abs());
        let headers = sign::sign_assume_role_form(
            ak,
            sk,
            &self.sts_url,
            body.as_bytes(),
            &self.cfg.region,
            now,
        )
        // Signer errors name the bad input, never a secret.
        .map_err(ProviderError::Unusable)?;
        let mut req = self
            .upstream
            .client
            .post(&self.sts_url)
            .timeout(timeout)
            .header("accept", "application/json")
            .body(body.to_string());
        for (name, value) in headers.0 {
            req = req.header(name, value);
        }
        let (status, bytes) = send(req).await?;
        sts::parse(status, &bytes, &[ak, sk])
    }
}

impl Cloud for KsyunProvider {
    const TYPE: CloudType = CloudType::Ksyun;
    type Config = KsyunConfig;

    fn section(providers: &ProvidersConfig) -> &KsyunConfig {
        &providers.ksyun
    }

    fn new(cfg: KsyunConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        // Validated by the config (scheme and host only); the path is `/`.
        let url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| ConfigError("providers.ksyun.sts_endpoint is not a URL".into()))?;
        let ks3_endpoint = sts::ks3_endpoint(&cfg.ks3_endpoint);
        let form_url = form::bucket_url(&ks3_endpoint, &cfg.bucket);
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "ksyun",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(KsyunProvider {
            inner: Arc::new(Inner {
                sts_url: url.to_string(),
                ks3_endpoint,
                form_url,
                duration_secs,
                upstream,
                clock: ctx.clock.clone(),
                cfg,
            }),
        })
    }
}

#[async_trait]
impl CredentialProvider for KsyunProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&inner.cfg.bucket, key, req.is_dir)
            .map_err(ProviderError::InvalidRequest)?;
        let body = sts::assume_role_body(
            &inner.cfg.role_krn,
            &sts::session_name(req.object_id),
            inner.duration_secs,
            Some(&policy),
        );
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = form::form(
            &inner.cfg,
            &inner.form_url,
            key,
            req.is_dir,
            req.max_bytes,
            cred.expiration,
            req.content_type(),
        );
        Ok(Issued::temporary(
            cred,
            &inner.cfg.bucket,
            &inner.ks3_endpoint,
            &inner.cfg.region,
            key,
            form,
        ))
    }
}
