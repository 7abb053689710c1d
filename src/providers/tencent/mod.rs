//! Cloud type 1: Tencent LKE `DescribeStorageCredential` (docs/contract.md §3).
//!
//! LKE credentials are single-use: with a `FileType`, an answer allows uploading exactly
//! one object, `UploadPath`. So each credential goes to exactly one request. To keep
//! latency low, a small pool of unused, unexpired credentials is kept per
//! (BotBizId, FileType, IsPublic, TypeKey) and refilled after each request for that key,
//! spending only spare upstream budget; entries leave at `ExpiredTime - min_remaining_secs`.
//! With Redis the pool is shared by all replicas ([`pool`]).

pub mod config;
pub mod form;
mod pool;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use tokio::time::Instant;

use self::config::TencentConfig;
use self::pool::{PoolKey, Pools, Slot};
use self::sts::{LkeCredential, ACTION, CONTENT_TYPE, VERSION};
use super::http::{send, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{CloudType, CredentialProvider, IssueRequest, Issued, ProviderError};
use crate::clock::Clock;
use crate::config::ConfigError;
use crate::metrics::Metrics;

/// The Tencent LKE provider.
#[derive(Clone)]
pub struct TencentProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: TencentConfig,
    url: String,
    host: String,
    upstream: Upstream,
    pools: Pools,
    min_remaining_secs: i64,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl Inner {
    fn key(&self, extension: &str) -> PoolKey {
        PoolKey {
            bot_biz_id: self.cfg.bot_biz_id.clone(),
            file_type: extension.to_string(),
            is_public: self.cfg.is_public,
            type_key: self.cfg.type_key.clone(),
        }
    }

    /// One signed `DescribeStorageCredential` call (one send, no retry).
    async fn fetch_once(
        &self,
        key: &PoolKey,
        timeout: Duration,
    ) -> Result<LkeCredential, ProviderError> {
        let body = sts::DescribeStorageCredentialRequest {
            bot_biz_id: key.bot_biz_id.clone(),
            file_type: key.file_type.clone(),
            is_public: key.is_public,
            type_key: key.type_key.clone(),
        }
        .to_body();
        let timestamp = self.clock.now_unix();
        // docs/contract.md §3: the TC3 service is `lke` whatever host the endpoint names.
        let authorization = sign::sign_post_json_for_service(
            self.cfg.secret_id.expose(),
            self.cfg.secret_key.expose(),
            &self.host,
            sts::SERVICE,
            CONTENT_TYPE,
            &body,
            timestamp,
        );
        let mut req = self
            .upstream
            .client
            .post(&self.url)
            .timeout(timeout)
            .header("Content-Type", CONTENT_TYPE)
            .header("X-TC-Action", ACTION)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Language", "en-US")
            .header("Authorization", authorization)
            .body(body);
        if !self.cfg.region.is_empty() {
            req = req.header("X-TC-Region", &self.cfg.region);
        }
        let (status, bytes) = send(req).await?;
        let cred = sts::parse(
            status,
            &bytes,
            &[self.cfg.secret_id.expose(), self.cfg.secret_key.expose()],
        )?;
        if !self.pools.usable(&cred, self.clock.now_unix()) {
            return Err(ProviderError::Unusable(format!(
                "LKE credentials expire in less than min_remaining_secs ({}s)",
                self.min_remaining_secs
            )));
        }
        Ok(cred)
    }

    /// A credential for a request: retried within the deadline.
    async fn fetch(
        &self,
        key: &PoolKey,
        deadline: Instant,
    ) -> Result<LkeCredential, ProviderError> {
        self.upstream
            .call(deadline, |t| self.fetch_once(key, t))
            .await
    }

    /// Tops the pool for `key` up to `pool_size`, spending only spare budget.
    async fn refill(self: Arc<Self>, key: PoolKey, slot: Slot) {
        loop {
            let seen = slot.lock().demand;
            let full = self.pools.len(&key, &slot).await >= self.cfg.pool_size;
            let permit = if full {
                None
            } else {
                self.upstream.budget.try_acquire().await
            };
            let Some(permit) = permit else {
                let mut s = slot.lock();
                // A request that came in while we counted a full pool may have taken from
                // it: count again rather than leave a place unfilled. (No spare budget:
                // stop; the next request schedules a refill again.)
                if full && s.demand != seen {
                    continue;
                }
                s.refilling = false;
                return;
            };
            let started = Instant::now();
            let fetched = tokio::time::timeout(
                self.upstream.timeout,
                self.fetch_once(&key, self.upstream.timeout),
            )
            .await
            .unwrap_or(Err(ProviderError::Timeout));
            drop(permit);
            let secs = started.elapsed().as_secs_f64();
            match fetched {
                Ok(c) => {
                    self.metrics.pool_refill("tencent");
                    self.metrics.upstream_call("tencent", "ok", secs);
                    self.pools.put(&key, &slot, c).await;
                }
                Err(e) => {
                    self.metrics.upstream_call("tencent", "refill_failed", secs);
                    tracing::debug!(error = %e, "pool refill failed; next request will fetch");
                    slot.lock().refilling = false;
                    return;
                }
            }
        }
    }

    fn schedule_refill(self: &Arc<Self>, key: PoolKey, slot: Slot) {
        if self.cfg.pool_size == 0 {
            return;
        }
        {
            let mut s = slot.lock();
            s.demand += 1;
            if s.refilling {
                return;
            }
            s.refilling = true;
        }
        tokio::spawn(Arc::clone(self).refill(key, slot));
    }
}

impl Cloud for TencentProvider {
    const TYPE: CloudType = CloudType::Tencent;
    type Config = TencentConfig;

    fn section(providers: &ProvidersConfig) -> &TencentConfig {
        &providers.tencent
    }

    /// Pooled credentials are handed out only while they outlive
    /// `upload.min_remaining_secs`; with a cluster the pool is shared.
    fn new(cfg: TencentConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let url = reqwest::Url::parse(&cfg.endpoint)
            .map_err(|_| ConfigError("providers.tencent.endpoint is not a URL".into()))?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let upstream = ctx.upstream(
            "tencent",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        let min_remaining_secs = ctx.config.upload.min_remaining_secs as i64;
        Ok(TencentProvider {
            inner: Arc::new(Inner {
                url: url.to_string(),
                host,
                upstream,
                pools: Pools::new(ctx.cluster.cloned(), min_remaining_secs, ctx.clock.clone()),
                min_remaining_secs,
                clock: ctx.clock.clone(),
                metrics: ctx.metrics.clone(),
                cfg,
            }),
        })
    }
}

#[async_trait]
impl CredentialProvider for TencentProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        if req.is_dir {
            return Err(ProviderError::InvalidRequest(
                "isDir: type 1 (Tencent LKE) grants exactly one object; isDir must be 0".into(),
            ));
        }
        let key = inner.key(&req.extension);
        let slot = inner.pools.slot(&key);
        let cred = match inner.pools.take(&key, &slot).await {
            Some(c) => {
                inner.metrics.pool("tencent", true);
                c
            }
            None => {
                inner.metrics.pool("tencent", false);
                inner.fetch(&key, req.deadline).await?
            }
        };
        inner.schedule_refill(key, slot);
        let relative_path = sts::object_key(&cred.upload_path).to_string();
        let start = cred
            .cred
            .start_time
            .unwrap_or_else(|| inner.clock.now_unix());
        // A presigned PUT of exactly UploadPath with the temporary key (the token signed as a
        // parameter, the extension's Content-Type as a header).
        let content_type = crate::providers::form::content_type_for(&req.extension);
        let upload = crate::providers::PresignedPut {
            url: sign::cos_presigned_url(
                &cred.cred.access_key_id,
                cred.cred.secret_access_key.expose_secret(),
                "PUT",
                &format!("{}.cos.{}.myqcloud.com", cred.bucket, cred.region),
                &relative_path,
                &[(
                    "x-cos-security-token",
                    cred.cred.security_token.expose_secret(),
                )],
                &[("Content-Type", content_type)],
                &format!("{start};{}", cred.cred.expiration),
            ),
            headers: vec![("Content-Type".into(), content_type.into())],
        };
        let form = form::cos_post_form(&form::CosPost {
            access_key_id: &cred.cred.access_key_id,
            secret_key: cred.cred.secret_access_key.expose_secret(),
            security_token: cred.cred.security_token.expose_secret(),
            bucket: &cred.bucket,
            region: &cred.region,
            key: &relative_path,
            start: cred
                .cred
                .start_time
                .unwrap_or_else(|| inner.clock.now_unix()),
            end: cred.cred.expiration,
            max_bytes: req.max_bytes,
            content_type: Some(content_type),
        });
        Ok(Issued {
            endpoint: sts::cos_endpoint(&cred.region),
            bucket: cred.bucket,
            region: cred.region,
            relative_path,
            access_key_id: cred.cred.access_key_id,
            secret_access_key: cred.cred.secret_access_key,
            security_token: cred.cred.security_token,
            expiration: cred.cred.expiration,
            start_time: cred.cred.start_time,
            form: Some(form),
            upload: Some(upload),
            callback: None,
        })
    }
}
