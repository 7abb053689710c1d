//! A secret configuration value: redacted in `Debug` and when serialised for display.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Text that must never reach a log, an error message or `Debug` output.
#[derive(Clone, Default)]
pub struct Secret(Option<SecretString>);

impl Secret {
    /// Wraps a value; an empty string is "not set".
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        if value.is_empty() {
            Secret(None)
        } else {
            Secret(Some(SecretString::from(value)))
        }
    }

    /// The secret text ("" when unset). Call only where the value is used.
    pub fn expose(&self) -> &str {
        self.0.as_ref().map(|s| s.expose_secret()).unwrap_or("")
    }

    /// Whether a value is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() {
            "\"<redacted>\""
        } else {
            "\"\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_set() { "<redacted>" } else { "" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret::new(String::deserialize(d)?))
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL with `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:<redacted>")
            } else {
                user.to_string()
            };
            format!(
                "{}://{}@{}{}",
                &url[..scheme_end],
                masked,
                &authority[at + 1..],
                &rest[authority_end..]
            )
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_redact() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2");
        assert!(!Secret::new("").is_set());
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@db:5432/x?sslmode=require"),
            "postgres://u:<redacted>@db:5432/x?sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite://stsgate.db?mode=rwc"),
            "sqlite://stsgate.db?mode=rwc"
        );
        assert_eq!(
            redact_url("redis://:pw@h:6379/0"),
            "redis://:<redacted>@h:6379/0"
        );
    }
}
