//! Typed configuration: built-in defaults < TOML file < `STSGATE_<SECTION>__<KEY>` environment.
//!
//! Every struct denies unknown fields, so a typo stops the start with a message naming the
//! key. [`Config::load`] layers and validates. The schema is here; the environment layer is
//! in `env.rs`, the checks (one per section) in `validate.rs`. Each cloud's section is its
//! own type in its folder, gathered in [`ProvidersConfig`].

mod env;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::providers::registry::ProvidersConfig;
use crate::secret::{redact_url, Secret};
use crate::upload::module::{UploadModule, DENIED_EXTENSIONS};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[redis]`
    pub redis: RedisConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[upload]`
    pub upload: UploadConfig,
    /// `[providers.*]`
    pub providers: ProvidersConfig,
    /// `[storage]`: the embedded object store.
    pub storage: crate::providers::embedded::config::StorageConfig,
    /// `[notify]`: signed webhooks.
    pub notify: NotifyConfig,
}

/// `[notify]`: every change to `uploaded`, `rejected`, `expired` and `consumed` is POSTed
/// to `url`, signed with `secret` (see [`crate::notify`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Empty: no webhooks. An http(s) URL otherwise.
    pub url: String,
    /// The HMAC-SHA256 key of `Stsgate-Signature`; required when `url` is set.
    pub secret: Secret,
    /// Timeout of one delivery (connect, send, answer).
    pub timeout_ms: u64,
    /// An event not delivered this long after it happened is marked dead.
    pub max_age_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret: Secret::default(),
            timeout_ms: 5_000,
            max_age_secs: 259_200,
        }
    }
}

impl NotifyConfig {
    /// Whether webhooks are on.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: String,
    /// Base of `callbackUrl`.
    pub public_base_url: String,
    /// Allowed CORS origins; `["*"]` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Deadline of one request.
    pub request_timeout_ms: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// Requests per second per user; 0 = off.
    pub per_user_rps: u32,
    /// How long a connection may take to send a request's head, and how long an idle
    /// keep-alive connection stays open (a connection that sends nothing is closed).
    pub header_read_timeout_ms: u64,
    /// How long a request body may take to arrive once its head is read (40001 after).
    pub body_read_timeout_ms: u64,
    /// Open connections at most; past it, new connections wait in the listen backlog.
    pub max_connections: usize,
    /// The demo page `GET /demo`: `Some(true)` on, `Some(false)` off, absent = auto
    /// (see [`crate::http::demo::enabled`]).
    pub demo: Option<bool>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_base_url: "http://127.0.0.1:8080".into(),
            cors_allowed_origins: Vec::new(),
            request_timeout_ms: 10_000,
            max_body_bytes: 16_384,
            shutdown_grace_ms: 10_000,
            per_user_rps: 0,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 5_000,
            max_connections: 1_024,
            demo: None,
        }
    }
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`.
    pub url: String,
    /// SQLite only: `normal` (a committed objectId survives a crash of the process) or
    /// `full` (it also survives power loss; every commit waits for the disk).
    pub sqlite_synchronous: crate::store::SqliteSynchronous,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://stsgate.db?mode=rwc".into(),
            sqlite_synchronous: Default::default(),
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .finish()
    }
}

impl Serialize for DatabaseConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("DatabaseConfig", 2)?;
        st.serialize_field("url", &redact_url(&self.url))?;
        st.serialize_field("sqlite_synchronous", &self.sqlite_synchronous)?;
        st.end()
    }
}

/// `[redis]`: state shared by replicas (see [`crate::cluster`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Empty: single instance, nothing shared. May hold a password: never shown.
    pub url: String,
    /// First segment of every key (`{key_prefix}:budget:tencent`, ...).
    pub key_prefix: String,
    /// Timeout of one connection attempt.
    pub connect_timeout_ms: u64,
    /// Timeout of one Redis command; past it the replica uses its local fallback.
    pub command_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: "stsgate".into(),
            connect_timeout_ms: 500,
            command_timeout_ms: 250,
        }
    }
}

impl RedisConfig {
    /// Whether Redis is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .finish()
    }
}

impl Serialize for RedisConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RedisConfig", 4)?;
        st.serialize_field("url", &redact_url(&self.url))?;
        st.serialize_field("key_prefix", &self.key_prefix)?;
        st.serialize_field("connect_timeout_ms", &self.connect_timeout_ms)?;
        st.serialize_field("command_timeout_ms", &self.command_timeout_ms)?;
        st.end()
    }
}

/// One JWT issuer: a key source plus the claims checked.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// HS256 shared secret.
    pub hs256_secret: Secret,
    /// RS256 or ES256 public key (PEM file).
    pub public_key_pem_file: String,
    /// JWKS URL.
    pub jwks_url: String,
    /// At most one refetch on an unknown `kid` per this many seconds.
    pub jwks_min_refresh_secs: u64,
    /// Connect + read timeout of one JWKS fetch.
    pub jwks_timeout_ms: u64,
    /// Required `iss` when set.
    pub issuer: String,
    /// Required `aud` when set.
    pub audience: String,
    /// Clock leeway for `exp`/`nbf`.
    pub leeway_secs: u64,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            hs256_secret: Secret::default(),
            public_key_pem_file: String::new(),
            jwks_url: String::new(),
            jwks_min_refresh_secs: 10,
            jwks_timeout_ms: 2000,
            issuer: String::new(),
            audience: String::new(),
            leeway_secs: 30,
        }
    }
}

impl IssuerConfig {
    /// Number of key sources set (must be 0 or 1).
    pub(crate) fn key_sources(&self) -> usize {
        [
            self.hs256_secret.is_set(),
            !self.public_key_pem_file.is_empty(),
            !self.jwks_url.is_empty(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// `[auth]`: one issuer inline, more in `[[auth.issuers]]` (same keys).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// See [`IssuerConfig::hs256_secret`].
    pub hs256_secret: Secret,
    /// See [`IssuerConfig::public_key_pem_file`].
    pub public_key_pem_file: String,
    /// See [`IssuerConfig::jwks_url`].
    pub jwks_url: String,
    /// See [`IssuerConfig::jwks_min_refresh_secs`].
    pub jwks_min_refresh_secs: u64,
    /// See [`IssuerConfig::jwks_timeout_ms`].
    pub jwks_timeout_ms: u64,
    /// See [`IssuerConfig::issuer`].
    pub issuer: String,
    /// See [`IssuerConfig::audience`].
    pub audience: String,
    /// See [`IssuerConfig::leeway_secs`].
    pub leeway_secs: u64,
    /// Further issuers.
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let d = IssuerConfig::default();
        Self {
            hs256_secret: d.hs256_secret,
            public_key_pem_file: d.public_key_pem_file,
            jwks_url: d.jwks_url,
            jwks_min_refresh_secs: d.jwks_min_refresh_secs,
            jwks_timeout_ms: d.jwks_timeout_ms,
            issuer: d.issuer,
            audience: d.audience,
            leeway_secs: d.leeway_secs,
            issuers: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// All issuers with a key source: the inline one (when it has a key) first.
    pub fn all_issuers(&self) -> Vec<IssuerConfig> {
        let primary = self.primary();
        let mut out = Vec::new();
        if primary.key_sources() > 0 {
            out.push(primary);
        }
        out.extend(self.issuers.iter().cloned());
        out
    }

    /// The inline issuer.
    pub fn primary(&self) -> IssuerConfig {
        IssuerConfig {
            hs256_secret: self.hs256_secret.clone(),
            public_key_pem_file: self.public_key_pem_file.clone(),
            jwks_url: self.jwks_url.clone(),
            jwks_min_refresh_secs: self.jwks_min_refresh_secs,
            jwks_timeout_ms: self.jwks_timeout_ms,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway_secs,
        }
    }

    /// Whether no key source is configured at all (first run: use `./stsgate.key`).
    pub fn needs_key_file(&self) -> bool {
        self.all_issuers().is_empty()
    }
}

/// `[upload]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// First segment of every object key.
    pub key_prefix: String,
    /// Never hand out credentials that expire sooner.
    pub min_remaining_secs: u64,
    /// Requested lifetime where the cloud lets us choose.
    pub duration_secs: u64,
    /// Per-module overrides.
    pub modules: BTreeMap<String, ModuleConfig>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            key_prefix: "test".into(),
            min_remaining_secs: 300,
            duration_secs: 3600,
            modules: BTreeMap::new(),
        }
    }
}

/// `[upload.modules.<name>]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModuleConfig {
    /// Allow-list of extensions (lower-case).
    pub extensions: Option<Vec<String>>,
    /// Largest object.
    pub max_bytes: Option<u64>,
}

/// The effective rules of one module.
#[derive(Debug, Clone)]
pub struct ModuleRules {
    /// `Some`: allow-list; `None`: anything but [`DENIED_EXTENSIONS`].
    pub extensions: Option<Vec<String>>,
    /// Largest object.
    pub max_bytes: u64,
}

impl ModuleRules {
    /// Whether `ext` (lower-case) may be uploaded.
    pub fn allows(&self, ext: &str) -> bool {
        match &self.extensions {
            Some(list) => list.iter().any(|e| e == ext),
            None => !DENIED_EXTENSIONS.contains(&ext),
        }
    }
}

impl UploadConfig {
    /// The effective rules of `module`.
    pub fn rules(&self, module: UploadModule) -> ModuleRules {
        let over = self.modules.get(module.as_str());
        ModuleRules {
            extensions: over.and_then(|o| o.extensions.clone()).or_else(|| {
                module
                    .default_extensions()
                    .map(|l| l.iter().map(|s| s.to_string()).collect())
            }),
            max_bytes: over
                .and_then(|o| o.max_bytes)
                .unwrap_or(module.default_max_bytes()),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Environment variables under `STSGATE_` that are not configuration keys.
pub const RESERVED_ENV: &[&str] = &["STSGATE_CONFIG", "STSGATE_LOG", "STSGATE_LOG_FORMAT"];

impl Config {
    /// Layers defaults < `file` < environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        if let Some(env_toml) = env::layer(env)? {
            fig = fig.merge(Toml::string(&env_toml));
        }
        let config: Config = fig.extract().map_err(|e| ConfigError(env::describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// The JWT key file used when no key is configured.
    pub fn key_file_path() -> PathBuf {
        PathBuf::from("stsgate.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://stsgate.db?mode=rwc");
        assert_eq!(c.upload.key_prefix, "test");
        assert_eq!(c.providers.tencent.rate_limit_per_sec, 90);
        // Only the embedded store, serving cloud type 2.
        assert_eq!(
            c.validate().unwrap(),
            vec![crate::providers::CloudType::Aws]
        );
        assert_eq!(c.storage.listen, "127.0.0.1:9000");
        assert_eq!(c.storage.public_url, "http://127.0.0.1:9000");
        assert_eq!(c.storage.dir, "./stsgate-data");
        assert_eq!(c.storage.bucket, "local");
        assert!(c.auth.needs_key_file());
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\nrequest_timeout_ms = 3000\n");
        let c = Config::load_from(
            Some(f.path()),
            env(&[
                ("STSGATE_SERVER__LISTEN", "0.0.0.0:8081"),
                (
                    "STSGATE_SERVER__CORS_ALLOWED_ORIGINS",
                    "[\"https://a.example\"]",
                ),
                ("STSGATE_CONFIG", "ignored.toml"),
                ("STSGATE_LOG", "debug"),
                ("STSGATE_LOG_FORMAT", "json"),
                ("STSGATE_UPLOAD__MODULES__RESOURCE_IMAGE__MAX_BYTES", "1024"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:8081");
        assert_eq!(c.server.request_timeout_ms, 3000);
        assert_eq!(c.server.cors_allowed_origins, vec!["https://a.example"]);
        assert_eq!(c.upload.rules(UploadModule::ResourceImage).max_bytes, 1024);
    }

    #[test]
    fn notify_needs_a_secret_and_an_http_url() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert!(!c.notify.enabled());
        assert_eq!(
            (c.notify.timeout_ms, c.notify.max_age_secs),
            (5000, 259_200)
        );
        let e = Config::load_from(
            None,
            env(&[("STSGATE_NOTIFY__URL", "https://hooks.example/in")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("notify.secret"), "{e}");
        let e = Config::load_from(
            None,
            env(&[
                (
                    "STSGATE_NOTIFY__URL",
                    "ftp://hooks.example/in?token=tok-123",
                ),
                ("STSGATE_NOTIFY__SECRET", "whsec-config-test"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("notify.url"), "{e}");
        assert!(!e.contains("tok-123"), "{e}");
        let e = Config::load_from(
            None,
            env(&[
                ("STSGATE_NOTIFY__URL", "https://hooks.example/in"),
                ("STSGATE_NOTIFY__SECRET", "whsec-config-test"),
                ("STSGATE_NOTIFY__TIMEOUT_MS", "0"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("notify.timeout_ms"), "{e}");
        let c = Config::load_from(
            None,
            env(&[
                ("STSGATE_NOTIFY__URL", "https://hooks.example/in"),
                ("STSGATE_NOTIFY__SECRET", "whsec-config-test"),
            ]),
        )
        .unwrap();
        assert!(c.notify.enabled());
        assert_eq!(c.notify.secret.expose(), "whsec-config-test");
        assert!(!format!("{c:?}").contains("whsec-config-test"));
        assert!(!c.redacted_toml().contains("whsec-config-test"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = file("[server]\nlisten_addr = \"x\"\n");
        let e = Config::load_from(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen_addr"), "{e}");
        let e = Config::load_from(None, env(&[("STSGATE_SERVR__LISTEN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("servr"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_named_once() {
        let e = Config::load_from(None, env(&[("STSGATE_SERVER__NOPE", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key server.nope"), "{e}");
        assert!(!e.contains("server.nope.nope"), "{e}");
        let f = file("[nosuch]\nx = 1\n");
        let e = Config::load_from(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key nosuch"), "{e}");
        assert!(!e.contains("nosuch.nosuch"), "{e}");
    }

    #[test]
    fn bad_values_are_named_without_echoing_them() {
        let e = Config::load_from(None, env(&[("STSGATE_SERVER__REQUEST_TIMEOUT_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.request_timeout_ms"), "{e}");
        let e = Config::load_from(None, env(&[("STSGATE_SERVER__LISTEN", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn half_configured_provider_names_the_missing_key() {
        let e = Config::load_from(
            None,
            env(&[("STSGATE_PROVIDERS__TENCENT__SECRET_ID", "AKIDxyz")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("providers.tencent.secret_key"), "{e}");
        assert!(!e.contains("AKIDxyz"));
        let e = Config::load_from(None, env(&[("STSGATE_PROVIDERS__AWS__BUCKET", "b")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("providers.aws.access_key_id"), "{e}");
    }

    #[test]
    fn full_provider_is_enabled_and_redacted() {
        let c = Config::load_from(
            None,
            env(&[
                ("STSGATE_PROVIDERS__TENCENT__SECRET_ID", "AKIDsecretid"),
                ("STSGATE_PROVIDERS__TENCENT__SECRET_KEY", "verysecretkey"),
                ("STSGATE_PROVIDERS__TENCENT__BOT_BIZ_ID", "123"),
                ("STSGATE_AUTH__HS256_SECRET", "jwtsecretjwtsecret"),
                ("STSGATE_DATABASE__URL", "postgres://u:dbpass@h/db"),
            ]),
        )
        .unwrap();
        assert!(c
            .validate()
            .unwrap()
            .contains(&crate::providers::CloudType::Tencent));
        let shown = format!("{}\n{:?}", c.redacted_toml(), c);
        for secret in [
            "AKIDsecretid",
            "verysecretkey",
            "jwtsecretjwtsecret",
            "dbpass",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
        assert!(!c.auth.needs_key_file());
    }

    #[test]
    fn issuers_array_and_single_key_source() {
        let f = file("[auth]\nhs256_secret = \"a\"\npublic_key_pem_file = \"/x\"\n");
        let e = Config::load_from(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("only one"), "{e}");
        let f = file("[[auth.issuers]]\nhs256_secret = \"a\"\nissuer = \"i\"\n");
        let c = Config::load_from(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.auth.all_issuers().len(), 1);
    }

    #[test]
    fn jwks_issuers_are_accepted_and_their_keys_checked() {
        let f = file(
            "[auth]\njwks_url = \"https://idp.example/.well-known/jwks.json\"\n\
             issuer = \"https://idp.example\"\n\
             [[auth.issuers]]\njwks_url = \"http://127.0.0.1:9/jwks\"\njwks_min_refresh_secs = 1\n",
        );
        let c = Config::load_from(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.auth.all_issuers().len(), 2);
        assert!(!c.auth.needs_key_file());
        for (text, key) in [
            ("[auth]\njwks_url = \"ftp://x/jwks\"\n", "auth.jwks_url"),
            (
                "[auth]\njwks_url = \"https://x/jwks\"\njwks_min_refresh_secs = 0\n",
                "auth.jwks_min_refresh_secs",
            ),
            (
                "[[auth.issuers]]\njwks_url = \"https://x/jwks\"\njwks_timeout_ms = 5\n",
                "auth.issuers[0].jwks_timeout_ms",
            ),
        ] {
            let f = file(text);
            let e = Config::load_from(Some(f.path()), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn redis_keys_validate_and_the_url_stays_redacted() {
        let c = Config::load_from(
            None,
            env(&[
                ("STSGATE_REDIS__URL", "redis://:hunter2pass@10.0.0.5:6379/2"),
                ("STSGATE_REDIS__KEY_PREFIX", "stsgate-prod"),
                ("STSGATE_REDIS__COMMAND_TIMEOUT_MS", "100"),
            ]),
        )
        .unwrap();
        assert!(c.redis.enabled());
        assert_eq!(c.redis.key_prefix, "stsgate-prod");
        assert_eq!(c.redis.command_timeout_ms, 100);
        let shown = format!("{}\n{:?}", c.redacted_toml(), c);
        assert!(!shown.contains("hunter2pass"), "{shown}");
        assert!(shown.contains("10.0.0.5"), "{shown}");
        for (k, v, named) in [
            ("STSGATE_REDIS__URL", "http://x:6379", "redis.url"),
            ("STSGATE_REDIS__URL", "rediss://:pw@x:6379", "redis.url"),
            ("STSGATE_REDIS__URL", "redis://:secretpw@[::1", "redis.url"),
            ("STSGATE_REDIS__KEY_PREFIX", "", "redis.key_prefix"),
            ("STSGATE_REDIS__KEY_PREFIX", "a b", "redis.key_prefix"),
            (
                "STSGATE_REDIS__CONNECT_TIMEOUT_MS",
                "0",
                "redis.connect_timeout_ms",
            ),
            (
                "STSGATE_REDIS__COMMAND_TIMEOUT_MS",
                "20000",
                "redis.command_timeout_ms",
            ),
        ] {
            let e = Config::load_from(None, env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(named), "{k}={v}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
        // An empty URL is "no Redis", whatever the other keys say.
        let c = Config::load_from(None, env(&[])).unwrap();
        assert!(!c.redis.enabled());
    }

    #[test]
    fn module_rules_validate() {
        let f = file("[upload.modules.resource_audio]\nmax_bytes = 1\n");
        let e = Config::load_from(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("resource_audio"), "{e}");
        let f = file("[upload.modules.directorytemp]\nextensions = [\"PNG\"]\n");
        assert!(Config::load_from(Some(f.path()), env(&[])).is_err());
        let c = Config::default();
        assert!(c.upload.rules(UploadModule::ResourceImage).allows("png"));
        assert!(!c.upload.rules(UploadModule::ResourceImage).allows("mp4"));
        assert!(c.upload.rules(UploadModule::DirectoryTemp).allows("json"));
        assert!(!c.upload.rules(UploadModule::DirectoryTemp).allows("exe"));
    }

    #[test]
    fn example_toml_is_valid_and_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let c = Config::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        // Every key of the defaults appears in the example, in its section.
        let text = std::fs::read_to_string(&path).unwrap();
        let example: toml::Table = text.parse().unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut missing = Vec::new();
        fn walk(
            prefix: &str,
            v: &toml::Value,
            ex: Option<&toml::Value>,
            missing: &mut Vec<String>,
        ) {
            if let toml::Value::Table(t) = v {
                for (k, child) in t {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    let ex_child = ex.and_then(|e| e.get(k));
                    if ex_child.is_none()
                        && !matches!(child, toml::Value::Table(_))
                        && k != "issuers"
                    {
                        missing.push(path.clone());
                    }
                    walk(&path, child, ex_child, missing);
                }
            }
        }
        walk(
            "",
            &defaults,
            Some(&toml::Value::Table(example)),
            &mut missing,
        );
        assert!(missing.is_empty(), "example.toml lacks {missing:?}");
    }
}
