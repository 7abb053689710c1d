//! Typed configuration: built-in defaults < TOML file < `STSGATE_<SECTION>__<KEY>` environment.
//!
//! Every struct denies unknown fields, so a typo stops the start with a message naming the
//! key. [`Config::load`] layers and validates; [`Config::validate`] is also unit-tested.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::providers::aliyun::config::AliyunConfig;
use crate::providers::aws::config::AwsConfig;
use crate::providers::baidu::config::BaiduConfig;
use crate::providers::huawei::config::HuaweiConfig;
use crate::providers::ksyun::config::KsyunConfig;
use crate::providers::qiniu::config::QiniuConfig;
use crate::providers::section;
use crate::providers::tencent::config::TencentConfig;
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

/// `[redis]`: state shared by replicas (see [`crate::shared`]).
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
    fn key_sources(&self) -> usize {
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

/// `[providers]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// type 1
    pub tencent: TencentConfig,
    /// type 2
    pub aws: AwsConfig,
    /// type 3
    pub aliyun: AliyunConfig,
    /// type 0
    pub qiniu: QiniuConfig,
    /// type 6
    pub huawei: HuaweiConfig,
    /// type 7
    pub ksyun: KsyunConfig,
    /// type 4
    pub baidu: BaiduConfig,
}

/// Which provider sections are enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    /// type 1
    pub tencent: bool,
    /// type 2
    pub aws: bool,
    /// type 3
    pub aliyun: bool,
    /// type 0
    pub qiniu: bool,
    /// type 6
    pub huawei: bool,
    /// type 7
    pub ksyun: bool,
    /// type 4
    pub baidu: bool,
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
        // Only STSGATE_<SECTION>__<KEY>; reserved names never carry `__`.
        let mut env_toml = String::new();
        let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("STSGATE_") else {
                continue;
            };
            if RESERVED_ENV.contains(&name.as_str()) || !rest.contains("__") {
                continue;
            }
            let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if parts.iter().any(|p| p.is_empty() || !is_bare_key(p)) {
                return Err(ConfigError(format!(
                    "environment variable {name} does not name a configuration key"
                )));
            }
            let (key, table) = parts.split_last().expect("contains __");
            tables
                .entry(table.join("."))
                .or_default()
                .push((key.clone(), env_value_to_toml(&parts, &value)));
        }
        for (table, entries) in &tables {
            if !table.is_empty() {
                env_toml.push_str(&format!("[{table}]\n"));
            }
            for (k, v) in entries {
                env_toml.push_str(&format!("{k} = {v}\n"));
            }
        }
        if !env_toml.is_empty() {
            // Check the environment layer parses on its own, to name the variable.
            if let Err(e) = env_toml.parse::<toml::Table>() {
                return Err(ConfigError(format!(
                    "environment variables do not form valid configuration: {}",
                    e.message()
                )));
            }
            fig = fig.merge(Toml::string(&env_toml));
        }
        let _ = Env::raw; // environment is parsed above so that values take TOML syntax
        let config: Config = fig.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values and provider sections; `Err` names the key.
    pub fn validate(&self) -> Result<Enabled, ConfigError> {
        let err = |m: String| ConfigError(m);
        self.server.listen.parse::<SocketAddr>().map_err(|_| {
            err(format!(
                "server.listen must be host:port, got {:?}",
                self.server.listen
            ))
        })?;
        match reqwest::Url::parse(&self.server.public_base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(err(format!(
                    "server.public_base_url must be an http(s) URL, got {:?}",
                    self.server.public_base_url
                )))
            }
        }
        if self.server.request_timeout_ms < 100 {
            return Err(err("server.request_timeout_ms must be at least 100".into()));
        }
        if self.server.max_body_bytes == 0 {
            return Err(err("server.max_body_bytes must be at least 1".into()));
        }
        for o in &self.server.cors_allowed_origins {
            let origin = reqwest::Url::parse(o)
                .ok()
                .filter(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some());
            if o != "*" && origin.is_none() {
                return Err(err(format!(
                    "server.cors_allowed_origins entries must be http(s) origins or \"*\", got {o:?}"
                )));
            }
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(err(
                "database.url must start with sqlite: or postgres://".into()
            ));
        }
        self.validate_redis().map_err(err)?;
        // auth
        let primary = self.auth.primary();
        if primary.key_sources() > 1 {
            return Err(err(
                "auth: set only one of hs256_secret, public_key_pem_file, jwks_url".into(),
            ));
        }
        for (i, iss) in self.auth.issuers.iter().enumerate() {
            if iss.key_sources() != 1 {
                return Err(err(format!(
                    "auth.issuers[{i}]: set exactly one of hs256_secret, public_key_pem_file, jwks_url"
                )));
            }
        }
        // Each issuer's keys, named as written: `auth.<key>` or `auth.issuers[i].<key>`.
        let named = std::iter::once(("auth".to_string(), primary))
            .chain(
                self.auth
                    .issuers
                    .iter()
                    .enumerate()
                    .map(|(i, iss)| (format!("auth.issuers[{i}]"), iss.clone())),
            )
            .filter(|(_, iss)| iss.key_sources() > 0);
        for (at, iss) in named {
            if !iss.jwks_url.is_empty() {
                match reqwest::Url::parse(&iss.jwks_url) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    _ => return Err(err(format!("{at}.jwks_url must be an http(s) URL"))),
                }
                if !(1..=86_400).contains(&iss.jwks_min_refresh_secs) {
                    return Err(err(format!(
                        "{at}.jwks_min_refresh_secs must be between 1 and 86400"
                    )));
                }
                if !(100..=60_000).contains(&iss.jwks_timeout_ms)
                    || iss.jwks_timeout_ms >= self.server.request_timeout_ms
                {
                    return Err(err(format!(
                        "{at}.jwks_timeout_ms must be between 100 and 60000 and less than server.request_timeout_ms"
                    )));
                }
            }
            if !iss.public_key_pem_file.is_empty() && !Path::new(&iss.public_key_pem_file).is_file()
            {
                return Err(err(format!(
                    "{at}.public_key_pem_file: {} is not a readable file",
                    iss.public_key_pem_file
                )));
            }
            if iss.leeway_secs > 300 {
                return Err(err(format!("{at}.leeway_secs must be at most 300")));
            }
        }
        // upload
        let p = &self.upload.key_prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            || p.starts_with('/')
            || p.ends_with('/')
            || p.contains("..")
        {
            return Err(err(format!(
                "upload.key_prefix must be 1-64 of [A-Za-z0-9-_./] without leading/trailing '/', got {p:?}"
            )));
        }
        if self.upload.duration_secs < 900 || self.upload.duration_secs > 43_200 {
            return Err(err(
                "upload.duration_secs must be between 900 and 43200".into()
            ));
        }
        if self.upload.min_remaining_secs >= self.upload.duration_secs {
            return Err(err(
                "upload.min_remaining_secs must be less than upload.duration_secs".into(),
            ));
        }
        for (name, m) in &self.upload.modules {
            if UploadModule::parse(name).is_none() {
                return Err(err(format!("upload.modules.{name}: unknown uploadModule")));
            }
            if let Some(exts) = &m.extensions {
                for e in exts {
                    if e.is_empty()
                        || e.len() > 16
                        || !e
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    {
                        return Err(err(format!(
                            "upload.modules.{name}.extensions: {e:?} must be 1-16 of [a-z0-9]"
                        )));
                    }
                }
            }
            if m.max_bytes == Some(0) {
                return Err(err(format!(
                    "upload.modules.{name}.max_bytes must be at least 1"
                )));
            }
        }
        let pr = &self.providers;
        Ok(Enabled {
            tencent: section::enabled(&pr.tencent).map_err(err)?,
            aws: section::enabled(&pr.aws).map_err(err)?,
            aliyun: section::enabled(&pr.aliyun).map_err(err)?,
            qiniu: section::enabled(&pr.qiniu).map_err(err)?,
            huawei: section::enabled(&pr.huawei).map_err(err)?,
            ksyun: section::enabled(&pr.ksyun).map_err(err)?,
            baidu: section::enabled(&pr.baidu).map_err(err)?,
        })
    }

    /// The `[redis]` checks; the message names the key and never echoes the URL (it may
    /// hold a password).
    fn validate_redis(&self) -> Result<(), String> {
        let r = &self.redis;
        if r.enabled() {
            if r.url.starts_with("rediss://") {
                return Err(
                    "redis.url: rediss:// (TLS) is not supported; use redis:// on a private network"
                        .into(),
                );
            }
            let parsed = redis::IntoConnectionInfo::into_connection_info(r.url.as_str());
            if !(r.url.starts_with("redis://")
                || r.url.starts_with("redis+unix://")
                || r.url.starts_with("unix://"))
                || parsed.is_err()
            {
                return Err("redis.url must be a redis:// (or unix://) URL, or empty".into());
            }
        }
        let p = &r.key_prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(format!(
                "redis.key_prefix must be 1-64 of [A-Za-z0-9-_.:], got {p:?}"
            ));
        }
        if !(10..=60_000).contains(&r.connect_timeout_ms) {
            return Err("redis.connect_timeout_ms must be between 10 and 60000".into());
        }
        // Compared with the request deadline only when Redis is used, so a short
        // request_timeout_ms needs no [redis] section.
        if !(10..=10_000).contains(&r.command_timeout_ms)
            || (r.enabled() && r.command_timeout_ms >= self.server.request_timeout_ms)
        {
            return Err(
                "redis.command_timeout_ms must be between 10 and 10000 and less than server.request_timeout_ms"
                    .into(),
            );
        }
        Ok(())
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

fn is_bare_key(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An environment value as TOML: for a string key it is a string (unless written quoted);
/// for other keys it is taken as TOML when it parses (`3000`, `true`, `["a"]`), else as a
/// string (so the type error names the key).
fn env_value_to_toml(path: &[String], value: &str) -> String {
    let quoted = || toml::Value::String(value.to_string()).to_string();
    let parses = || format!("v = {value}").parse::<toml::Table>().is_ok();
    // The key's type, from the defaults; keys without a default (optional numbers,
    // module tables) take numbers, booleans and arrays as written.
    let defaults = toml::Value::try_from(Config::default()).ok();
    let mut node = defaults.as_ref();
    for p in path {
        node = node.and_then(|n| n.get(p));
    }
    match node {
        Some(toml::Value::String(_)) => {
            let t = value.trim_start();
            if t.starts_with('"') && parses() {
                value.to_string()
            } else {
                quoted()
            }
        }
        Some(_) | None if parses() => value.to_string(),
        _ => quoted(),
    }
}

/// Figment's message, naming the key path and never echoing a value that could be secret.
fn describe(e: figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e {
        let path = err.path.join(".");
        let kind = match &err.kind {
            figment::error::Kind::UnknownField(f, _) => {
                let key = if path.is_empty() {
                    f.clone()
                } else {
                    format!("{path}.{f}")
                };
                format!("unknown key {key}")
            }
            figment::error::Kind::InvalidType(actual, expected) => {
                format!("{path}: expected {expected}, found {}", type_only(actual))
            }
            figment::error::Kind::InvalidValue(actual, expected) => {
                format!("{path}: expected {expected}, found {}", type_only(actual))
            }
            other => format!("{path}: {other}"),
        };
        parts.push(kind);
    }
    parts.join("; ")
}

fn type_only(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(_) => "a string".into(),
        Actual::Signed(_) | Actual::Unsigned(_) => "an integer".into(),
        Actual::Float(_) => "a float".into(),
        Actual::Bool(_) => "a boolean".into(),
        other => other.to_string(),
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
        assert_eq!(c.validate().unwrap(), Enabled::default());
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
        assert!(c.validate().unwrap().tencent);
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
