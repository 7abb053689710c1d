//! Cloud type 3: Aliyun STS `AssumeRole` + OSS (protocols §3).
//!
//! Each issuance makes one `AssumeRole` call (RPC signature, HMAC-SHA1) with a session policy
//! that allows writing only `relativePath` (or the `isDir` prefix); nothing is cached. The
//! answer carries a PostObject form signed (V1) with the temporary secret, and, when asked,
//! the OSS `callback`/`callbackVar` values. OSS callbacks are verified by RSA-MD5 with the
//! public key fetched from an allowed URL and cached by URL.

pub mod callback;
pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rsa::RsaPublicKey;
use tokio::time::Instant;

use self::callback::{CallbackError, CallbackParam};
use self::config::AliyunConfig;
use self::form::PostFormInput;
use self::sts::AssumeRole;
use super::http::{send, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{
    CallbackInput, CallbackOverride, CallbackRefused, CloudType, CredentialProvider, IssueRequest,
    Issued, ProviderError, TempCredentials,
};
use crate::clock::{rfc3339, Clock};
use crate::config::ConfigError;
use crate::metrics::Metrics;

/// Longest wait for a callback public key (OSS gives the whole callback about 5 s).
pub const KEY_FETCH_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long a fetched public key is trusted before it is fetched again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(3600);

/// The Aliyun provider.
#[derive(Clone)]
pub struct AliyunProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: AliyunConfig,
    sts_url: reqwest::Url,
    endpoint: String,
    bucket_url: String,
    duration_secs: u64,
    upstream: Upstream,
    keys: moka::future::Cache<String, Arc<RsaPublicKey>>,
    key_timeout: Duration,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry).
    async fn assume_role_once(
        &self,
        call: &AssumeRole,
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = rfc3339(self.clock.now_unix());
        let owned = call.params(self.cfg.access_key_id.expose(), &nonce, &timestamp);
        let params: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let secret = self.cfg.access_key_secret.expose();
        let query = sign::rpc_sign("POST", secret, &params);
        let mut url = self.sts_url.clone();
        url.set_query(Some(&query));
        let req = self
            .upstream
            .client
            .post(url)
            .timeout(timeout)
            .header("Accept", "application/json");
        let (status, body) = send(req).await?;
        sts::parse(status, &body, &[self.cfg.access_key_id.expose(), secret])
    }

    /// The public key at `url` (already checked against the prefixes), from the cache or
    /// fetched once; concurrent callbacks for one URL share one fetch. Failures are not cached.
    async fn public_key(&self, url: &str) -> Result<Arc<RsaPublicKey>, CallbackError> {
        self.keys
            .try_get_with(url.to_string(), self.fetch_key(url))
            .await
            .map_err(|e| (*e).clone())
    }

    async fn fetch_key(&self, url: &str) -> Result<Arc<RsaPublicKey>, CallbackError> {
        let started = Instant::now();
        let result = self.fetch_key_inner(url).await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.metrics.upstream_call(
            "aliyun-callback-key",
            outcome,
            started.elapsed().as_secs_f64(),
        );
        if let Err(e) = &result {
            tracing::warn!(key_url = %url, error = %e, "could not obtain the OSS callback public key");
        }
        result
    }

    async fn fetch_key_inner(&self, url: &str) -> Result<Arc<RsaPublicKey>, CallbackError> {
        let unavailable = |what: &str| CallbackError::KeyUnavailable(what.to_string());
        let mut res = self
            .upstream
            .client
            .get(url)
            .timeout(self.key_timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    unavailable("timed out")
                } else {
                    unavailable("fetch failed")
                }
            })?;
        // The client follows no redirect (a 3xx is refused below); this re-check guards the
        // final URL should that ever change.
        if !callback::key_url_allowed(res.url().as_str(), &self.cfg.callback_key_url_prefixes) {
            return Err(CallbackError::KeyUrlNotAllowed);
        }
        if !res.status().is_success() {
            return Err(CallbackError::KeyUnavailable(format!(
                "HTTP {}",
                res.status().as_u16()
            )));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|_| unavailable("fetch failed"))? {
            pem.extend_from_slice(&chunk);
            if pem.len() > callback::MAX_PEM_BYTES {
                return Err(unavailable("key document too large"));
            }
        }
        let pem = String::from_utf8(pem).map_err(|_| unavailable("key is not text"))?;
        callback::parse_public_key(&pem).map(Arc::new)
    }

    async fn verify(&self, input: &CallbackInput) -> Result<(), CallbackError> {
        let header = |n: &str| input.headers.get(n).and_then(|v| v.to_str().ok());
        // The URL is checked before anything else, and before any network access.
        let url = callback::allowed_key_url(
            header("x-oss-pub-key-url"),
            &self.cfg.callback_key_url_prefixes,
        )?;
        let signature = callback::decode_authorization(header("authorization"))?;
        let key = self.public_key(&url).await?;
        let message =
            callback::string_to_verify(&input.raw_path, input.raw_query.as_deref(), &input.body);
        callback::verify_signature(&key, &message, &signature)
    }
}

impl Cloud for AliyunProvider {
    const TYPE: CloudType = CloudType::Aliyun;
    type Config = AliyunConfig;

    fn section(providers: &ProvidersConfig) -> &AliyunConfig {
        &providers.aliyun
    }

    /// The form posts to the bucket's virtual host at the OSS endpoint
    /// ([`form::bucket_url`]), whatever the endpoint's host.
    fn new(cfg: AliyunConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let sts_url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| ConfigError("providers.aliyun.sts_endpoint is not a URL".into()))?;
        let endpoint = sts::oss_endpoint(&cfg.oss_endpoint, &cfg.region);
        let bucket_url = form::bucket_url(&endpoint, &cfg.bucket);
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "aliyun",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(AliyunProvider {
            inner: Arc::new(Inner {
                sts_url,
                endpoint,
                bucket_url,
                duration_secs,
                upstream,
                keys: moka::future::Cache::builder()
                    .max_capacity(64)
                    .time_to_live(KEY_CACHE_TTL)
                    .build(),
                key_timeout: KEY_FETCH_TIMEOUT.min(Duration::from_millis(cfg.timeout_ms)),
                clock: ctx.clock.clone(),
                metrics: ctx.metrics.clone(),
                cfg,
            }),
        })
    }

    fn claims_callback(headers: &axum::http::HeaderMap) -> bool {
        headers.contains_key("x-oss-pub-key-url")
    }
}

#[async_trait]
impl CredentialProvider for AliyunProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&cfg.bucket, key, req.is_dir);
        sts::check_policy_length(&policy)?;
        let call = AssumeRole {
            role_arn: cfg.role_arn.clone(),
            role_session_name: sts::role_session_name(&req.sub),
            duration_secs: inner.duration_secs,
            policy,
        };
        let creds = inner
            .upstream
            .call(req.deadline, |t| inner.assume_role_once(&call, t))
            .await?;

        let (callback_override, vars, callback_b64) = match &req.callback {
            Some(plan) => {
                let vars = callback::stsgate_vars(plan.object_id, plan.resource_type);
                let cb = CallbackParam::stsgate(&plan.url).to_base64();
                let over = CallbackOverride {
                    body: Some(callback::CALLBACK_BODY_TEMPLATE.to_string()),
                    callback: Some(cb.clone()),
                    callback_var: Some(callback::callback_var_base64(&vars)),
                };
                (Some(over), vars, Some(cb))
            }
            None => (None, Vec::new(), None),
        };
        let form = form::post_form(&PostFormInput {
            url: inner.bucket_url.clone(),
            bucket: &cfg.bucket,
            key,
            is_dir: req.is_dir,
            max_bytes: req.max_bytes,
            creds: &creds,
            callback: callback_b64.as_deref().map(|cb| (cb, vars.as_slice())),
            content_type: req.content_type(),
        });
        Ok(Issued {
            callback: callback_override,
            ..Issued::temporary(creds, &cfg.bucket, &inner.endpoint, &cfg.region, key, form)
        })
    }

    async fn verify_callback(&self, input: &CallbackInput) -> Result<(), CallbackRefused> {
        self.inner
            .verify(input)
            .await
            .map_err(|e| CallbackRefused(format!("OSS callback: {e}")))
    }
}
