//! `Config::validate`: one check per section, each naming the key it refuses. Provider
//! sections are checked by their own rules ([`crate::providers::config`]) through the
//! registry.

use std::net::SocketAddr;
use std::path::Path;

use super::{Config, ConfigError};
use crate::providers::registry::enabled_clouds;
use crate::providers::CloudType;
use crate::upload::module::UploadModule;

impl Config {
    /// Checks every section; returns the enabled cloud types. `Err` names the key.
    pub fn validate(&self) -> Result<Vec<CloudType>, ConfigError> {
        self.validate_server()?;
        self.validate_database()?;
        self.validate_redis().map_err(ConfigError)?;
        self.validate_auth()?;
        self.validate_upload()?;
        self.validate_notify().map_err(ConfigError)?;
        let mut clouds = enabled_clouds(&self.providers)?;
        let aws = clouds.contains(&CloudType::Aws);
        if self.storage.is_on(aws).map_err(ConfigError)? {
            self.storage.validate().map_err(ConfigError)?;
            clouds.push(CloudType::Aws);
            clouds.sort();
        }
        Ok(clouds)
    }

    /// `[server]`.
    fn validate_server(&self) -> Result<(), ConfigError> {
        self.server.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "server.listen must be host:port, got {:?}",
                self.server.listen
            ))
        })?;
        match reqwest::Url::parse(&self.server.public_base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(ConfigError(format!(
                    "server.public_base_url must be an http(s) URL, got {:?}",
                    self.server.public_base_url
                )))
            }
        }
        if self.server.request_timeout_ms < 100 {
            return Err(ConfigError(
                "server.request_timeout_ms must be at least 100".into(),
            ));
        }
        for (key, value) in [
            ("header_read_timeout_ms", self.server.header_read_timeout_ms),
            ("body_read_timeout_ms", self.server.body_read_timeout_ms),
        ] {
            if !(100..=600_000).contains(&value) {
                return Err(ConfigError(format!(
                    "server.{key} must be between 100 and 600000"
                )));
            }
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            return Err(ConfigError(
                "server.max_connections must be between 1 and 1000000".into(),
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError(
                "server.max_body_bytes must be at least 1".into(),
            ));
        }
        for o in &self.server.cors_allowed_origins {
            let origin = reqwest::Url::parse(o)
                .ok()
                .filter(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some());
            if o != "*" && origin.is_none() {
                return Err(ConfigError(format!(
                    "server.cors_allowed_origins entries must be http(s) origins or \"*\", got {o:?}"
                )));
            }
        }
        Ok(())
    }

    /// `[database]`.
    fn validate_database(&self) -> Result<(), ConfigError> {
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "database.url must start with sqlite: or postgres://".into(),
            ));
        }
        Ok(())
    }

    /// `[auth]` and every `[[auth.issuers]]`.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let primary = self.auth.primary();
        if primary.key_sources() > 1 {
            return Err(ConfigError(
                "auth: set only one of hs256_secret, public_key_pem_file, jwks_url".into(),
            ));
        }
        for (i, iss) in self.auth.issuers.iter().enumerate() {
            if iss.key_sources() != 1 {
                return Err(ConfigError(format!(
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
                    _ => return Err(ConfigError(format!("{at}.jwks_url must be an http(s) URL"))),
                }
                if !(1..=86_400).contains(&iss.jwks_min_refresh_secs) {
                    return Err(ConfigError(format!(
                        "{at}.jwks_min_refresh_secs must be between 1 and 86400"
                    )));
                }
                if !(100..=60_000).contains(&iss.jwks_timeout_ms)
                    || iss.jwks_timeout_ms >= self.server.request_timeout_ms
                {
                    return Err(ConfigError(format!(
                        "{at}.jwks_timeout_ms must be between 100 and 60000 and less than server.request_timeout_ms"
                    )));
                }
            }
            if !iss.public_key_pem_file.is_empty() && !Path::new(&iss.public_key_pem_file).is_file()
            {
                return Err(ConfigError(format!(
                    "{at}.public_key_pem_file: {} is not a readable file",
                    iss.public_key_pem_file
                )));
            }
            if iss.leeway_secs > 300 {
                return Err(ConfigError(format!("{at}.leeway_secs must be at most 300")));
            }
        }
        Ok(())
    }

    /// `[upload]` and its modules.
    fn validate_upload(&self) -> Result<(), ConfigError> {
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
            return Err(ConfigError(format!(
                "upload.key_prefix must be 1-64 of [A-Za-z0-9-_./] without leading/trailing '/', got {p:?}"
            )));
        }
        if self.upload.duration_secs < 900 || self.upload.duration_secs > 43_200 {
            return Err(ConfigError(
                "upload.duration_secs must be between 900 and 43200".into(),
            ));
        }
        if self.upload.min_remaining_secs >= self.upload.duration_secs {
            return Err(ConfigError(
                "upload.min_remaining_secs must be less than upload.duration_secs".into(),
            ));
        }
        for (name, m) in &self.upload.modules {
            if UploadModule::parse(name).is_none() {
                return Err(ConfigError(format!(
                    "upload.modules.{name}: unknown uploadModule"
                )));
            }
            if let Some(exts) = &m.extensions {
                for e in exts {
                    if e.is_empty()
                        || e.len() > 16
                        || !e
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    {
                        return Err(ConfigError(format!(
                            "upload.modules.{name}.extensions: {e:?} must be 1-16 of [a-z0-9]"
                        )));
                    }
                }
            }
            if m.max_bytes == Some(0) {
                return Err(ConfigError(format!(
                    "upload.modules.{name}.max_bytes must be at least 1"
                )));
            }
        }
        Ok(())
    }

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

    /// `[notify]`.
    fn validate_notify(&self) -> Result<(), String> {
        let n = &self.notify;
        if n.enabled() {
            let ok = reqwest::Url::parse(&n.url)
                .ok()
                .filter(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some());
            if ok.is_none() {
                // The URL is not echoed: it may carry a token.
                return Err("notify.url must be an http(s) URL, or empty".into());
            }
            if !n.secret.is_set() {
                return Err("notify.secret is required when notify.url is set".into());
            }
        }
        if !(100..=60_000).contains(&n.timeout_ms) {
            return Err("notify.timeout_ms must be between 100 and 60000".into());
        }
        if !(1..=31_536_000).contains(&n.max_age_secs) {
            return Err("notify.max_age_secs must be between 1 and 31536000".into());
        }
        Ok(())
    }
}
