//! Cloud type 4: Baidu BOS, with a session token from STS `POST /v1/sessionToken`
//! (protocols/qiniu-huawei-ksyun-baidu.md §4).
//!
//! Every issuance makes its own STS call (no credential cache): the ACL body scopes the
//! token to writing `relativePath` (or, with `isDir`, keys under the prefix). The answer also
//! carries a ready BOS PostObject form signed with the temporary secret. BOS callbacks are
//! not used (not researched, no vectors): `callbackInfo` is for the client to call back with
//! its JWT.

pub mod api;
pub mod config;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::BaiduConfig;
use super::http::{send, Target, Upstream};
use super::{
    form::service_urls, CredentialProvider, Form, IssueRequest, Issued, ProviderError,
    TempCredentials,
};
use crate::clock::{rfc3339, Clock};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::providers::CloudType;

/// The Baidu BOS provider.
#[derive(Clone)]
pub struct BaiduProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BaiduConfig,
    /// The sessionToken call (`?durationSeconds=N` included): URL, `Host` and path as sent.
    target: Target,
    /// BOS service endpoint (never contains the bucket).
    endpoint: String,
    /// The PostObject URL (bucket host).
    form_url: String,
    duration_seconds: String,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BaiduProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaiduProvider")
            .field("cfg", &self.inner.cfg)
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl BaiduProvider {
    /// Builds the provider from its (enabled) section; `default_duration_secs` is
    /// `upload.duration_secs`, used when the section sets none.
    pub fn new_legacy(
        cfg: BaiduConfig,
        default_duration_secs: u64,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        cluster: Option<&Cluster>,
    ) -> Result<Self, String> {
        let duration_seconds = cfg
            .duration_secs
            .unwrap_or(default_duration_secs)
            .to_string();
        let target = Target::new(
            &cfg.sts_endpoint,
            api::PATH,
            &[("durationSeconds", &duration_seconds)],
            "providers.baidu.sts_endpoint",
        )?;
        let (endpoint, form_url) = service_urls(
            &cfg.bos_endpoint,
            api::bos_endpoint(&cfg.region),
            &cfg.bucket,
            "providers.baidu.bos_endpoint",
        )?;
        let upstream = Upstream::new(
            "baidu",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
            metrics,
            cluster,
        );
        Ok(BaiduProvider {
            inner: Arc::new(Inner {
                target,
                endpoint,
                form_url,
                duration_seconds,
                upstream,
                clock,
                cfg,
            }),
        })
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
        // Exactly the headers reqwest sends (it adds Host and Content-Length itself).
        let headers = [
            ("Host", self.target.host.as_str()),
            ("Content-Type", api::CONTENT_TYPE),
            ("Content-Length", length.as_str()),
            ("x-bce-date", date.as_str()),
        ];
        let authorization = sign::sign(
            ak,
            sk,
            &sign::Request {
                method: "POST",
                path: &self.target.path,
                params: &[("durationSeconds", Some(self.duration_seconds.as_str()))],
                headers: &headers,
            },
            &date,
            api::SIGNATURE_EXPIRATION_SECS,
        );
        let req = self
            .upstream
            .client
            .post(&self.target.url)
            .timeout(timeout)
            .header("Content-Type", api::CONTENT_TYPE)
            .header("x-bce-date", &date)
            .header("Authorization", authorization)
            .body(body.to_vec());
        let (status, bytes) = send(req).await?;
        api::parse_session_token(status, &bytes, &[ak, sk])
    }

    /// The BOS PostObject form for `key`, signed with the temporary secret.
    fn form(&self, cred: &TempCredentials, key: &str, pattern: &str, max_bytes: u64) -> Form {
        let policy_json = api::post_policy(
            &rfc3339(cred.expiration),
            &self.cfg.bucket,
            pattern,
            cred.expose_token(),
            Some(max_bytes),
        );
        let policy = sign::bos_post_policy(&policy_json);
        let signature = sign::bos_post_signature(cred.expose_secret(), &policy);
        Form::with_policy(
            self.form_url.clone(),
            vec![
                ("key", key.into()),
                ("accessKey", cred.access_key_id.clone()),
                ("x-bce-security-token", cred.expose_token().into()),
            ],
            policy,
            signature,
        )
    }
}

impl crate::providers::registry::Cloud for BaiduProvider {
    const TYPE: CloudType = CloudType::Baidu;
    type Config = BaiduConfig;
    fn section(providers: &crate::providers::registry::ProvidersConfig) -> &BaiduConfig {
        &providers.baidu
    }
    fn new(
        cfg: BaiduConfig,
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
impl CredentialProvider for BaiduProvider {
    fn cloud_type(&self) -> CloudType {
        CloudType::Baidu
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let pattern = req.key_pattern();
        let body = api::acl_body(&inner.cfg.region, &inner.cfg.bucket, &pattern);
        if body.len() > api::MAX_ACL_BYTES {
            return Err(ProviderError::Unusable(format!(
                "ACL of {} bytes exceeds {} (key_prefix too long?)",
                body.len(),
                api::MAX_ACL_BYTES
            )));
        }
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = inner.form(&cred, &req.planned_key, &pattern, req.max_bytes);
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
