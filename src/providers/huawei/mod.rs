//! Cloud type 6: Huawei OBS, with temporary AK/SK/security token from IAM
//! `POST /v3.0/OS-CREDENTIAL/securitytokens` (protocols/qiniu-huawei-ksyun-baidu.md §2).
//!
//! Every issuance makes its own IAM call (no credential cache): the session policy allows
//! only uploading `relativePath` (or, with `isDir`, keys under the prefix). The answer also
//! carries a ready OBS browser POST form signed with the temporary secret. OBS's own upload
//! callback is not used (its signature is not fully documented): `callbackInfo` is for the
//! client to call back with its JWT.

pub mod api;
pub mod config;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::HuaweiConfig;
use super::http::{send, Target, Upstream};
use super::{
    form::service_urls, CredentialProvider, Form, IssueRequest, Issued, ProviderError,
    TempCredentials,
};
use crate::clock::{rfc3339, Clock};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::providers::CloudType;

/// The Huawei OBS provider.
#[derive(Clone)]
pub struct HuaweiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: HuaweiConfig,
    /// The securitytokens call: URL, and `Host` and path as sent and signed.
    target: Target,
    /// OBS service endpoint (never contains the bucket).
    endpoint: String,
    /// The browser POST URL (bucket host).
    form_url: String,
    duration_seconds: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HuaweiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiProvider")
            .field("cfg", &self.inner.cfg)
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl HuaweiProvider {
    /// Builds the provider from its (enabled) section; `default_duration_secs` is
    /// `upload.duration_secs`, used when the section sets none.
    pub fn new_legacy(
        cfg: HuaweiConfig,
        default_duration_secs: u64,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        cluster: Option<&Cluster>,
    ) -> Result<Self, String> {
        let target = Target::new(
            &cfg.iam_endpoint,
            api::PATH,
            &[],
            "providers.huawei.iam_endpoint",
        )?;
        let (endpoint, form_url) = service_urls(
            &cfg.obs_endpoint,
            api::obs_endpoint(&cfg.region),
            &cfg.bucket,
            "providers.huawei.obs_endpoint",
        )?;
        let duration_seconds = cfg
            .duration_secs
            .unwrap_or(default_duration_secs)
            .clamp(*api::DURATION_RANGE.start(), *api::DURATION_RANGE.end());
        let upstream = Upstream::new(
            "huawei",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
            metrics,
            cluster,
        );
        Ok(HuaweiProvider {
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
    /// One signed securitytokens call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let mut headers = vec![("Content-Type", api::CONTENT_TYPE)];
        if !self.cfg.domain_id.is_empty() {
            headers.push(("X-Domain-Id", self.cfg.domain_id.as_str()));
        }
        let signed = sign::sign(
            ak,
            sk,
            &sign::Request {
                method: "POST",
                host: &self.target.host,
                path: &self.target.path,
                query: &[],
                headers: &headers,
                body,
            },
            self.clock.now_unix(),
        );
        let mut req = self
            .upstream
            .client
            .post(&self.target.url)
            .timeout(timeout)
            .body(body.to_vec());
        for (name, value) in &signed {
            // reqwest sends exactly this Host (from the URL); it was signed as such.
            if !name.eq_ignore_ascii_case("host") {
                req = req.header(name.as_str(), value.as_str());
            }
        }
        let (status, bytes) = send(req).await?;
        api::parse_securitytokens(status, &bytes, &[ak, sk])
    }

    /// The OBS browser POST form for `key`, signed with the temporary secret.
    fn form(&self, cred: &TempCredentials, key: &str, is_dir: bool, max_bytes: u64) -> Form {
        let policy_json = api::post_policy(
            &rfc3339(cred.expiration),
            &self.cfg.bucket,
            key,
            is_dir,
            cred.expose_token(),
            max_bytes,
        );
        let policy = sign::obs_post_policy(&policy_json);
        let signature = sign::obs_post_signature(cred.expose_secret(), &policy);
        Form::with_policy(
            self.form_url.clone(),
            vec![
                ("key", key.into()),
                ("AccessKeyId", cred.access_key_id.clone()),
                ("x-obs-security-token", cred.expose_token().into()),
            ],
            policy,
            signature,
        )
    }
}

impl crate::providers::registry::Cloud for HuaweiProvider {
    const TYPE: CloudType = CloudType::Huawei;
    type Config = HuaweiConfig;
    fn section(providers: &crate::providers::registry::ProvidersConfig) -> &HuaweiConfig {
        &providers.huawei
    }
    fn new(
        cfg: HuaweiConfig,
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
impl CredentialProvider for HuaweiProvider {
    fn cloud_type(&self) -> CloudType {
        CloudType::Huawei
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let key = req.planned_key.as_str();
        let policy = api::session_policy(&inner.cfg.bucket, &req.key_pattern());
        let packed = policy.packed().len();
        if packed > api::MAX_POLICY_BYTES {
            return Err(ProviderError::Unusable(format!(
                "session policy of {packed} bytes exceeds {} (key_prefix too long?)",
                api::MAX_POLICY_BYTES
            )));
        }
        let body = api::request_body(inner.duration_seconds, &policy);
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = inner.form(&cred, key, req.is_dir, req.max_bytes);
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
