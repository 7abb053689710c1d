//! The environment layer: `STSGATE_<SECTION>__<KEY>=value` variables become one TOML
//! document (values in TOML syntax where the key is not a string), and figment's errors
//! are rewritten to name the key without echoing a value that could be secret.

use std::collections::BTreeMap;

use super::{Config, ConfigError, RESERVED_ENV};

/// The `STSGATE_*__*` variables of `env` as a TOML document, `None` when there are none.
pub fn layer(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Option<String>, ConfigError> {
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
        let Some((key, table)) = parts.split_last() else {
            continue;
        };
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
    if env_toml.is_empty() {
        return Ok(None);
    }
    // Check the environment layer parses on its own, to name the variable.
    if let Err(e) = env_toml.parse::<toml::Table>() {
        return Err(ConfigError(format!(
            "environment variables do not form valid configuration: {}",
            e.message()
        )));
    }
    Ok(Some(env_toml))
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
pub fn describe(e: figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e {
        let path = err.path.join(".");
        let kind = match &err.kind {
            figment::error::Kind::UnknownField(f, _) => {
                // figment's path may already end with the unknown field itself.
                let key = if err.path.last() == Some(f) {
                    path.clone()
                } else if path.is_empty() {
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
            // A TOML parse error: its position and description, never the quoted source
            // line (which may hold a secret).
            figment::error::Kind::Message(m) => {
                let m = without_source_lines(m);
                if path.is_empty() {
                    m
                } else {
                    format!("{path}: {m}")
                }
            }
            other => format!("{path}: {other}"),
        };
        parts.push(kind);
    }
    parts.join("; ")
}

/// A TOML error message without its source excerpt: the `  |`, `2 | <line>` and `  |   ^`
/// lines go, the location and description lines stay (joined with `: `).
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .filter(|l| {
            let rest = l
                .trim_start()
                .trim_start_matches(|c: char| c.is_ascii_digit());
            !rest.trim_start().starts_with('|') && !l.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join(": ")
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
    use crate::config::Config;

    /// Found by `fuzz/` (target `config`): a TOML syntax error on a secret's line printed
    /// the line, secret included.
    #[test]
    fn a_toml_syntax_error_does_not_quote_the_secret_line() {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(
            &mut f,
            b"[providers.aws]\nsecret_access_key = \"fuzzawssecret01\n",
        )
        .unwrap();
        let e = Config::load_from(Some(f.path()), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("fuzzawssecret01"), "{e}");
        assert!(e.contains("TOML parse error at line 2"), "{e}");
        assert!(e.contains("invalid basic string"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
