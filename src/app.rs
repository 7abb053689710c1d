//! `App`: everything a request needs, built in one function; `AppState(Arc<App>)`.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::{keyfile, Verifier};
use crate::clock::{Clock, SystemClock};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::StartupError;
use crate::http::limit::UserLimiter;
use crate::metrics::Metrics;
use crate::providers::registry::Context;
use crate::providers::Registry;
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
    pub cluster: Option<Cluster>,
    /// The embedded object store, when it serves cloud type 2 (`[storage]`).
    pub storage: Option<crate::storage::EmbeddedStore>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .field("providers", &self.providers)
            .field("cluster", &self.cluster)
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

/// Builds the enabled providers (every row of [`crate::providers::registry::CLOUDS`] whose
/// section is set).
pub fn build_registry(
    config: &Config,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
    cluster: Option<&Cluster>,
) -> Result<Registry, StartupError> {
    config.validate()?;
    Ok(Registry::build(&Context {
        config,
        clock,
        metrics: metrics.clone(),
        cluster,
    })?)
}

/// Resolves the HS256 fallback secret: `./stsgate.key` when no JWT key is configured
/// (created on first use). Returns `None` when a key is configured.
pub fn key_file_secret(config: &Config) -> Result<Option<String>, StartupError> {
    if !config.auth.needs_key_file() {
        return Ok(None);
    }
    let path = Config::key_file_path();
    let (secret, created) = keyfile::load_or_create(&path).map_err(StartupError::Auth)?;
    if created {
        tracing::info!(path = %path.display(), "no JWT key configured: generated a random HS256 secret");
    } else {
        tracing::info!(path = %path.display(), "no JWT key configured: using the HS256 secret in the key file");
    }
    Ok(Some(secret))
}

/// Whether the embedded store runs under `config` (no `[providers.aws]`, or `mode = "on"`).
pub fn storage_on(config: &Config) -> Result<bool, StartupError> {
    let aws = crate::providers::registry::enabled_clouds(&config.providers)?
        .contains(&crate::providers::CloudType::Aws);
    Ok(config
        .storage
        .is_on(aws)
        .map_err(crate::config::ConfigError)?)
}

/// Resolves the embedded store's server key from `./stsgate-store.key` (created on first
/// use, mode 0600) when the store runs and no `storage.secret` is configured, so minted
/// credentials stay valid across a restart.
pub fn storage_key_file(config: &mut Config) -> Result<(), StartupError> {
    if config.storage.secret.is_set() || !storage_on(config)? {
        return Ok(());
    }
    let path = crate::providers::embedded::config::StorageConfig::key_file_path();
    let (secret, created) = keyfile::load_or_create(&path).map_err(StartupError::Auth)?;
    if created {
        tracing::info!(path = %path.display(), "embedded store: generated its server key");
    }
    config.storage.secret = crate::secret::Secret::new(secret);
    Ok(())
}

/// Connects the store, applies migrations, builds providers and the verifier.
pub async fn build(
    config: Config,
    hs256_fallback: Option<String>,
) -> Result<AppState, StartupError> {
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
    mut config: Config,
    hs256_fallback: Option<String>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) -> Result<AppState, StartupError> {
    let options = store::StoreOptions {
        sqlite_synchronous: config.database.sqlite_synchronous,
        // Below the request deadline: a statement stuck behind a lock fails (503/50302)
        // before the request does, and is cancelled instead of committing later.
        statement_timeout: Some(std::time::Duration::from_millis(
            config.server.request_timeout_ms * 3 / 4,
        )),
        notify: config.notify.enabled(),
    };
    if storage_on(&config)? && !config.storage.secret.is_set() {
        // No key file was resolved (a library caller): credentials last as long as the
        // process.
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        config.storage.secret = crate::secret::Secret::new(hex::encode(key));
    }
    let store = store::connect_with(&config.database.url, &options)
        .await
        .map_err(StartupError::Database)?;
    store.migrate().await.map_err(StartupError::Migrations)?;
    let verifier = Verifier::new(&config.auth.all_issuers(), hs256_fallback.as_deref())
        .map_err(StartupError::Auth)?;
    let cluster = Cluster::connect(&config.redis, metrics.clone())
        .await
        .map_err(StartupError::Redis)?;
    let providers = build_registry(&config, clock.clone(), &metrics, cluster.as_ref())?;
    let limiter = UserLimiter::new(config.server.per_user_rps);
    let storage = providers
        .get(crate::providers::CloudType::Aws)
        .is_some_and(|p| p.records_uploads())
        .then(|| crate::storage::EmbeddedStore::new(&config, store.clone(), clock.clone()));
    Ok(AppState(Arc::new(App {
        config,
        store,
        providers,
        verifier,
        limiter,
        metrics,
        clock,
        idem: IdemCache::new(cluster.clone()),
        cluster,
        storage,
    })))
}
