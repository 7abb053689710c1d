//! Cloud type 6: Huawei OBS, with temporary AK/SK/security token from IAM
//! `POST /v3.0/OS-CREDENTIAL/securitytokens` (`docs/providers/huawei.md`).
//!
//! Every issuance makes its own IAM call (no credential cache): the session policy allows
//! only uploading `relativePath` (or, with `isDir`, keys under the prefix). The answer also
//! carries a ready OBS browser POST form signed with the temporary secret. OBS's own upload
//! callback is not used (its signature is not fully documented): `callbackInfo` is for the
//! client to call back with its JWT.

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::HuaweiConfig;
use super::form::service_urls;
use super::http::{send, Target, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{CloudType, CredentialProvider, IssueRequest, Issued, ProviderError, TempCredentials};
use crate::clock::Clock;
use crate::config::ConfigError;

/// The Huawei OBS provider.
#[derive(Clone)]
pub struct HuaweiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: HuaweiConfig,
    /// The securitytokens call: URL, and `Host` and path as sent and signed.
    sts: Target,
    /// OBS service endpoint (never contains the bucket).
    endpoint: String,
    /// The browser POST URL (bucket host).
    form_url: String,
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HuaweiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiProvider")
            .field("cfg", &self.inner.cfg)
            .field("sts", &self.inner.sts)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// One signed securitytokens call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let mut headers = vec![("Content-Type", sts::CONTENT_TYPE)];
        if !self.cfg.domain_id.is_empty() {
            headers.push(("X-Domain-Id", self.cfg.domain_id.as_str()));
        }
        let signed = sign::sign(
            ak,
            sk,
            &sign::Request {
                method: "POST",
                host: &self.sts.host,
                path: &self.sts.path,
                query: &[],
                headers: &headers,
                body,
            },
            self.clock.now_unix(),
        );
        let mut req = self
            .upstream
            .client
            .post(&self.sts.url)
            .timeout(timeout)
            .body(body.to_vec());
        for (name, value) in &signed {
            // reqwest sends exactly this Host (from the URL); it was signed as such.
            if !name.eq_ignore_ascii_case("host") {
                req = req.header(name.as_str(), value.as_str());
            }
        }
        let (status, bytes) = send(req).await?;
        sts::parse(status, &bytes, &[ak, sk])
    }
}

impl Cloud for HuaweiProvider {
    const TYPE: CloudType = CloudType::Huawei;
    type Config = HuaweiConfig;

    fn section(providers: &ProvidersConfig) -> &HuaweiConfig {
        &providers.huawei
    }

    fn new(cfg: HuaweiConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let sts = Target::new(
            &cfg.iam_endpoint,
            sts::PATH,
            &[],
            "providers.huawei.iam_endpoint",
        )
        .map_err(ConfigError)?;
        let (endpoint, form_url) = service_urls(
            &cfg.obs_endpoint,
            sts::obs_endpoint(&cfg.region),
            &cfg.bucket,
            "providers.huawei.obs_endpoint",
        )
        .map_err(ConfigError)?;
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "huawei",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(HuaweiProvider {
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
impl CredentialProvider for HuaweiProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&inner.cfg.bucket, &req.key_pattern());
        let packed = policy.packed().len();
        if packed > sts::MAX_POLICY_BYTES {
            return Err(ProviderError::Unusable(format!(
                "session policy of {packed} bytes exceeds {} (key_prefix too long?)",
                sts::MAX_POLICY_BYTES
            )));
        }
        let body = sts::request_body(inner.duration_secs, &policy);
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = form::form(
            &cred,
            &inner.cfg.bucket,
            &inner.form_url,
            key,
            req.is_dir,
            req.max_bytes,
            req.content_type(),
        );
        Ok(Issued::temporary(
            cred,
            &inner.cfg.bucket,
            &inner.endpoint,
            &inner.cfg.region,
            key,
            form,
        ))
    }
}
