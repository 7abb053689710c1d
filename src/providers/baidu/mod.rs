//! Cloud type 4: Baidu BOS, with a session token from STS `POST /v1/sessionToken`
//! (`docs/providers/baidu.md`).
//!
//! Every issuance makes its own STS call (no credential cache): the ACL body scopes the
//! token to writing `relativePath` (or, with `isDir`, keys under the prefix). The answer also
//! carries a ready BOS PostObject form signed with the temporary secret. BOS callbacks are
//! not used (not researched, no vectors): `callbackInfo` is for the client to call back with
//! its JWT.

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::BaiduConfig;
use super::form::service_urls;
use super::http::{send, Target, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{CloudType, CredentialProvider, IssueRequest, Issued, ProviderError, TempCredentials};
use crate::clock::{rfc3339, Clock};
use crate::config::ConfigError;

/// The Baidu BOS provider.
#[derive(Clone)]
pub struct BaiduProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BaiduConfig,
    /// The sessionToken call (`?durationSeconds=N` included): URL, `Host` and path as sent.
    sts: Target,
    /// BOS service endpoint (never contains the bucket).
    endpoint: String,
    /// The PostObject URL (bucket host).
    form_url: String,
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BaiduProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaiduProvider")
            .field("cfg", &self.inner.cfg)
            .field("sts", &self.inner.sts)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// One signed sessionToken call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let date = rfc3339(self.clock.now_unix());
        let length = body.len().to_string();
        let duration = self.duration_secs.to_string();
        // Exactly the headers reqwest sends (it adds Host and Content-Length itself).
        let headers = [
            ("Host", self.sts.host.as_str()),
            ("Content-Type", sts::CONTENT_TYPE),
            ("Content-Length", length.as_str()),
            ("x-bce-date", date.as_str()),
        ];
        let authorization = sign::sign(
            ak,
            sk,
            &sign::Request {
                method: "POST",
                path: &self.sts.path,
                params: &[("durationSeconds", Some(duration.as_str()))],
                headers: &headers,
            },
            &date,
            sts::SIGNATURE_EXPIRATION_SECS,
        );
        let req = self
            .upstream
            .client
            .post(&self.sts.url)
            .timeout(timeout)
            .header("Content-Type", sts::CONTENT_TYPE)
            .header("x-bce-date", &date)
            .header("Authorization", authorization)
            .body(body.to_vec());
        let (status, bytes) = send(req).await?;
        sts::parse(status, &bytes, &[ak, sk])
    }
}

impl Cloud for BaiduProvider {
    const TYPE: CloudType = CloudType::Baidu;
    type Config = BaiduConfig;

    fn section(providers: &ProvidersConfig) -> &BaiduConfig {
        &providers.baidu
    }

    fn new(cfg: BaiduConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let duration_secs = cfg.duration_secs.unwrap_or(ctx.config.upload.duration_secs);
        let sts = Target::new(
            &cfg.sts_endpoint,
            sts::PATH,
            &[("durationSeconds", &duration_secs.to_string())],
            "providers.baidu.sts_endpoint",
        )
        .map_err(ConfigError)?;
        let (endpoint, form_url) = service_urls(
            &cfg.bos_endpoint,
            sts::bos_endpoint(&cfg.region),
            &cfg.bucket,
            "providers.baidu.bos_endpoint",
        )
        .map_err(ConfigError)?;
        let upstream = ctx.upstream(
            "baidu",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(BaiduProvider {
            inner: Arc::new(Inner {
                sts,
                endpoint,
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
impl CredentialProvider for BaiduProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let pattern = req.key_pattern();
        let body = sts::acl_body(&inner.cfg.region, &inner.cfg.bucket, &pattern);
        if body.len() > sts::MAX_ACL_BYTES {
            return Err(ProviderError::Unusable(format!(
                "ACL of {} bytes exceeds {} (key_prefix too long?)",
                body.len(),
                sts::MAX_ACL_BYTES
            )));
        }
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = form::form(
            &cred,
            &inner.cfg.bucket,
            &inner.form_url,
            &req.planned_key,
            &pattern,
            req.max_bytes,
            req.content_type(),
        );
        Ok(Issued::temporary(
            cred,
            &inner.cfg.bucket,
            &inner.endpoint,
            &inner.cfg.region,
            &req.planned_key,
            form,
        ))
    }
}
