//! `App`: everything a request needs, built in one function; `AppState(Arc<App>)`.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::{keyfile, Verifier};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::limit::UserLimiter;
use crate::metrics::Metrics;
use crate::providers::aliyun::AliyunProvider;
use crate::providers::aws::AwsProvider;
use crate::providers::baidu::BaiduProvider;
use crate::providers::huawei::HuaweiProvider;
use crate::providers::ksyun::KsyunProvider;
use crate::providers::qiniu::QiniuProvider;
use crate::providers::tencent::TencentProvider;
use crate::providers::Registry;
use crate::shared::Shared;
use crate::store::{self, ObjectStore};
use crate::upload::idempotency::IdemCache;

/// Shared application state.
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// The ledger.
    pub store: Arc<dyn ObjectStore>,
    /// Enabled providers.
    pub providers: Registry,
    /// JWT verification.
    pub verifier: Verifier,
    /// The per-user request limit; `None` when `server.per_user_rps` is 0.
    pub limiter: Option<UserLimiter>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Idempotent answers.
    pub idem: IdemCache,
    /// The Redis connection replicas share; `None` when `[redis] url` is empty.
    pub shared: Option<Shared>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .field("providers", &self.providers)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// The axum state.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Builds the enabled providers.
pub fn build_registry(
    config: &Config,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
    shared: Option<&Shared>,
) -> Result<Registry, String> {
    let enabled = config.validate().map_err(|e| e.to_string())?;
    let mut reg = Registry::default();
    if enabled.tencent {
        reg.insert(Arc::new(TencentProvider::new(
            config.providers.tencent.clone(),
            config.upload.min_remaining_secs,
            clock.clone(),
            metrics.clone(),
            shared,
        )?));
    }
    // One block per cloud.
    if enabled.aws {
        reg.insert(Arc::new(AwsProvider::new(
            config.providers.aws.clone(),
            config.upload.duration_secs,
            clock.clone(),
            metrics.clone(),
            shared,
        )?));
    }
    if enabled.aliyun {
        reg.insert(Arc::new(AliyunProvider::new(
            config.providers.aliyun.clone(),
            config.upload.duration_secs,
            clock.clone(),
            metrics.clone(),
            shared,
        )?));
    }
    if enabled.qiniu {
        reg.insert(Arc::new(QiniuProvider::new(
            &config.providers.qiniu,
            &config.upload,
            &config.server.public_base_url,
        )?));
    }
    if enabled.huawei {
        reg.insert(Arc::new(HuaweiProvider::new(
            config.providers.huawei.clone(),
            config.upload.duration_secs,
            clock.clone(),
            metrics.clone(),
            shared,
        )?));
    }
    if enabled.ksyun {
        reg.insert(Arc::new(KsyunProvider::new(
            config.providers.ksyun.clone(),
            config.upload.duration_secs,
            clock.clone(),
            metrics.clone(),
            shared,
        )?));
    }
    if enabled.baidu {
        reg.insert(Arc::new(BaiduProvider::new(
            config.providers.baidu.clone(),
            config.upload.duration_secs,
            clock.clone(),
            metrics.clone(),
            shared,
        )?));
    }
    Ok(reg)
}

/// Resolves the HS256 fallback secret: `./stsgate.key` when no JWT key is configured
/// (created on first use). Returns `None` when a key is configured.
pub fn key_file_secret(config: &Config) -> Result<Option<String>, String> {
    if !config.auth.needs_key_file() {
        return Ok(None);
    }
    let path = Config::key_file_path();
    let (secret, created) = keyfile::load_or_create(&path)?;
    if created {
        tracing::info!(path = %path.display(), "no JWT key configured: generated a random HS256 secret");
    } else {
        tracing::info!(path = %path.display(), "no JWT key configured: using the HS256 secret in the key file");
    }
    Ok(Some(secret))
}

/// Connects the store, applies migrations, builds providers and the verifier.
pub async fn build(config: Config, hs256_fallback: Option<String>) -> Result<AppState, String> {
    build_with(
        config,
        hs256_fallback,
        Arc::new(SystemClock),
        Metrics::new(),
    )
    .await
}

/// [`build`] with an explicit clock and metrics registry.
pub async fn build_with(
    config: Config,
    hs256_fallback: Option<String>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) -> Result<AppState, String> {
    let options = store::StoreOptions {
        sqlite_synchronous: config.database.sqlite_synchronous,
    };
    let store = store::connect_with(&config.database.url, &options)
        .await
        .map_err(|e| format!("database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migrations: {e}"))?;
    let verifier = Verifier::new(&config.auth.all_issuers(), hs256_fallback.as_deref())?;
    let shared = Shared::connect(&config.redis, metrics.clone()).await?;
    let providers = build_registry(&config, clock.clone(), &metrics, shared.as_ref())?;
    let limiter = UserLimiter::new(config.server.per_user_rps);
    Ok(AppState(Arc::new(App {
        config,
        store,
        providers,
        verifier,
        limiter,
        metrics,
        clock,
        idem: IdemCache::new(shared.clone()),
        shared,
    })))
}
