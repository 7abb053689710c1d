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

pub mod api;
pub mod config;
pub mod sign;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::SecretString;

use self::api::KsyunCredential;
use self::config::KsyunConfig;
use super::http::{send, Upstream};
use super::{CredentialProvider, Form, IssueRequest, Issued, ProviderError};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::providers::CloudType;

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
    /// Requested `DurationSeconds`.
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl KsyunProvider {
    /// Builds the provider from its (enabled) section; `default_duration_secs` is
    /// `upload.duration_secs`, used when the section sets none (kept within 900–86400).
    pub fn new_legacy(
        cfg: KsyunConfig,
        default_duration_secs: u64,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        cluster: Option<&Cluster>,
    ) -> Result<Self, String> {
        // Validated by the config (scheme and host only); the path is `/`.
        let url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| "providers.ksyun.sts_endpoint is not a URL".to_string())?;
        let duration_secs = cfg
            .duration_secs
            .unwrap_or(default_duration_secs)
            .clamp(api::MIN_DURATION_SECS, api::MAX_DURATION_SECS);
        let upstream = Upstream::new(
            "ksyun",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
            metrics,
            cluster,
        );
        Ok(KsyunProvider {
            inner: Arc::new(Inner {
                sts_url: url.to_string(),
                ks3_endpoint: api::ks3_endpoint(&cfg.ks3_endpoint),
                duration_secs,
                upstream,
                clock,
                cfg,
            }),
        })
    }
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry).
    async fn assume_role_once(
        &self,
        body: &str,
        timeout: Duration,
    ) -> Result<KsyunCredential, ProviderError> {
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_secs(self.clock.now_unix().max(0).unsigned_abs());
        let headers = sign::sign_assume_role_form(
            self.cfg.access_key_id.expose(),
            self.cfg.secret_access_key.expose(),
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
        api::parse_assume_role(status, &bytes)
    }

    /// The browser POST form for `key`, signed with the long-term key (KS3 V2 POST).
    fn form(&self, key: &str, is_dir: bool, max_bytes: u64, expiration: i64) -> Form {
        let policy_json = api::post_policy(&self.cfg.bucket, key, is_dir, max_bytes, expiration);
        let policy = sign::post_policy_base64(&policy_json);
        let signature = sign::post_signature(self.cfg.secret_access_key.expose(), &policy);
        Form {
            url: api::bucket_url(&self.ks3_endpoint, &self.cfg.bucket),
            fields: vec![
                // A folder: KS3 expands `${filename}` before matching `starts-with`.
                (
                    "key".into(),
                    if is_dir {
                        format!("{key}${{filename}}")
                    } else {
                        key.to_string()
                    },
                ),
                (
                    "KSSAccessKeyId".into(),
                    self.cfg.access_key_id.expose().to_string(),
                ),
                ("Policy".into(), policy.clone()),
                ("Signature".into(), signature.clone()),
            ],
            policy,
            signature,
        }
    }
}

impl crate::providers::registry::Cloud for KsyunProvider {
    const TYPE: CloudType = CloudType::Ksyun;
    type Config = KsyunConfig;
    fn section(providers: &crate::providers::registry::ProvidersConfig) -> &KsyunConfig {
        &providers.ksyun
    }
    fn new(
        cfg: KsyunConfig,
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
impl CredentialProvider for KsyunProvider {
    fn cloud_type(&self) -> CloudType {
        CloudType::Ksyun
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let key = req.planned_key.as_str();
        let policy = api::session_policy(&inner.cfg.bucket, key, req.is_dir)
            .map_err(ProviderError::InvalidRequest)?;
        let body = api::assume_role_body(
            &inner.cfg.role_krn,
            &api::session_name(req.object_id),
            inner.duration_secs,
            Some(&policy),
        );
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.assume_role_once(&body, t))
            .await?;
        let form = inner.form(key, req.is_dir, req.max_bytes, cred.expiration);
        Ok(Issued {
            access_key_id: cred.access_key_id.clone(),
            secret_access_key: SecretString::from(cred.expose_secret_access_key().to_string()),
            security_token: SecretString::from(cred.expose_security_token().to_string()),
            bucket: inner.cfg.bucket.clone(),
            endpoint: inner.ks3_endpoint.clone(),
            region: inner.cfg.region.clone(),
            relative_path: key.to_string(),
            expiration: cred.expiration,
            start_time: None,
            form: Some(form),
            callback: None,
        })
    }
}
