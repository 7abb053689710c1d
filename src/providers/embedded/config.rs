//! `[storage]`: the embedded S3-compatible store (cloud type 2 when no `[providers.aws]`).

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// When the embedded store runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// On when no provider serves cloud type 2.
    #[default]
    Auto,
    /// Always on; `[providers.aws]` configured as well is a startup error.
    On,
    /// Never.
    Off,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `auto` | `on` | `off`.
    pub mode: StorageMode,
    /// The store's own listener.
    pub listen: String,
    /// The endpoint and form URL the answers name (path style: `{public_url}/{bucket}`).
    pub public_url: String,
    /// Objects live under `{dir}/{bucket}/{key}`.
    pub dir: String,
    /// The one bucket.
    pub bucket: String,
    /// The region the credentials are scoped to (SigV4 credential scope).
    pub region: String,
    /// The server key minted credentials derive from. Empty: `./stsgate-store.key` (mode
    /// 0600), created on first start, so a restart keeps issued credentials valid.
    pub secret: Secret,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            mode: StorageMode::Auto,
            listen: "127.0.0.1:9000".into(),
            public_url: "http://127.0.0.1:9000".into(),
            dir: "./stsgate-data".into(),
            bucket: "local".into(),
            region: "us-east-1".into(),
            secret: Secret::default(),
        }
    }
}

impl StorageConfig {
    /// The key file used when `secret` is empty.
    pub fn key_file_path() -> std::path::PathBuf {
        std::path::PathBuf::from("stsgate-store.key")
    }

    /// Whether the store runs, given whether `[providers.aws]` is enabled; `Err` when
    /// `mode = "on"` collides with it.
    pub fn is_on(&self, aws_enabled: bool) -> Result<bool, String> {
        match (self.mode, aws_enabled) {
            (StorageMode::Off, _) => Ok(false),
            (StorageMode::Auto, aws) => Ok(!aws),
            (StorageMode::On, false) => Ok(true),
            (StorageMode::On, true) => Err(
                "storage.mode = \"on\" and [providers.aws] both serve cloud type 2: set storage.mode to \"off\" or \"auto\", or remove [providers.aws]"
                    .into(),
            ),
        }
    }

    /// Checks the section (only when the store runs).
    pub fn validate(&self) -> Result<(), String> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("storage.listen must be host:port, got {:?}", self.listen))?;
        match reqwest::Url::parse(&self.public_url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.path() == "/" => {}
            _ => {
                return Err(format!(
                    "storage.public_url must be an http(s) URL with no path, got {:?}",
                    self.public_url
                ))
            }
        }
        if self.dir.is_empty() {
            return Err("storage.dir must not be empty".into());
        }
        let b = &self.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !b.starts_with('-')
            && !b.ends_with('-');
        if !bucket_ok {
            return Err(format!(
                "storage.bucket must be 3-63 of [a-z0-9-], not starting or ending with '-', got {b:?}"
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        {
            return Err(format!(
                "storage.region must be letters, digits and '-', got {:?}",
                self.region
            ));
        }
        if self.secret.is_set() && self.secret.expose().len() < 32 {
            return Err("storage.secret must be at least 32 characters".into());
        }
        Ok(())
    }

    /// `public_url` without a trailing slash.
    pub fn endpoint(&self) -> String {
        self.public_url.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_yields_to_aws_and_on_collides_with_it() {
        let mut c = StorageConfig::default();
        assert_eq!(c.is_on(false), Ok(true));
        assert_eq!(c.is_on(true), Ok(false));
        c.mode = StorageMode::On;
        assert_eq!(c.is_on(false), Ok(true));
        let err = c.is_on(true).unwrap_err();
        assert!(
            err.contains("storage.mode") && err.contains("[providers.aws]"),
            "{err}"
        );
        c.mode = StorageMode::Off;
        assert_eq!(c.is_on(false), Ok(false));
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(StorageConfig::default().validate(), Ok(()));
        for (cfg, key) in [
            (
                StorageConfig {
                    listen: "nope".into(),
                    ..Default::default()
                },
                "storage.listen",
            ),
            (
                StorageConfig {
                    public_url: "ftp://x".into(),
                    ..Default::default()
                },
                "storage.public_url",
            ),
            (
                StorageConfig {
                    public_url: "http://x/sub".into(),
                    ..Default::default()
                },
                "storage.public_url",
            ),
            (
                StorageConfig {
                    bucket: "Up".into(),
                    ..Default::default()
                },
                "storage.bucket",
            ),
            (
                StorageConfig {
                    bucket: "a_b_c".into(),
                    ..Default::default()
                },
                "storage.bucket",
            ),
            (
                StorageConfig {
                    region: "".into(),
                    ..Default::default()
                },
                "storage.region",
            ),
            (
                StorageConfig {
                    dir: "".into(),
                    ..Default::default()
                },
                "storage.dir",
            ),
            (
                StorageConfig {
                    secret: Secret::new("short"),
                    ..Default::default()
                },
                "storage.secret",
            ),
        ] {
            let err = cfg.validate().unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }
}
