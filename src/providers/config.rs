//! What every `[providers.<cloud>]` section shares: enablement rules and upstream limits.

/// A provider configuration section.
pub trait ProviderSection {
    /// The section name under `[providers]`, e.g. `tencent`.
    const NAME: &'static str;
    /// `(key, is_set)` for every key the provider needs. All unset: disabled; some set:
    /// a startup error naming the first missing key.
    fn required(&self) -> Vec<(&'static str, bool)>;
    /// Checks the remaining keys (URLs, ranges); `Err` names the key.
    fn validate_rest(&self) -> Result<(), String>;
}

/// Decides whether a section is enabled; `Err` names the first missing required key.
pub fn enabled<S: ProviderSection>(section: &S) -> Result<bool, String> {
    let required = section.required();
    let set = required.iter().filter(|(_, is_set)| *is_set).count();
    if set == 0 {
        return Ok(false);
    }
    if let Some((missing, _)) = required.iter().find(|(_, is_set)| !*is_set) {
        return Err(format!(
            "providers.{}.{missing} is required when the [providers.{}] section is used",
            S::NAME,
            S::NAME
        ));
    }
    section.validate_rest()?;
    Ok(true)
}

/// Checks that `value` is an absolute http(s) URL; `key` names it in the error.
pub fn check_url(section: &str, key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    match reqwest::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(())
        }
        _ => Err(format!(
            "providers.{section}.{key} must be an http(s) URL, got {value:?}"
        )),
    }
}

/// Checks the upstream limits shared by every calling provider.
pub fn check_limits(
    section: &str,
    rate_limit_per_sec: u32,
    connect_timeout_ms: u64,
    timeout_ms: u64,
    duration_secs: Option<u64>,
) -> Result<(), String> {
    if rate_limit_per_sec == 0 {
        return Err(format!(
            "providers.{section}.rate_limit_per_sec must be at least 1"
        ));
    }
    if connect_timeout_ms == 0 {
        return Err(format!(
            "providers.{section}.connect_timeout_ms must be at least 1"
        ));
    }
    if timeout_ms == 0 {
        return Err(format!("providers.{section}.timeout_ms must be at least 1"));
    }
    if let Some(d) = duration_secs {
        if !(60..=129_600).contains(&d) {
            return Err(format!(
                "providers.{section}.duration_secs must be between 60 and 129600"
            ));
        }
    }
    Ok(())
}

/// Default upstream rate limit (calls per second).
pub fn default_rate_limit() -> u32 {
    90
}
/// Default connect timeout.
pub fn default_connect_timeout_ms() -> u64 {
    2000
}
/// Default total timeout of one upstream call.
pub fn default_timeout_ms() -> u64 {
    5000
}
