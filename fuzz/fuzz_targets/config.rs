//! Configuration loading: `stsgate::config::Config::load_from(file, env)` on TOML text and
//! `STSGATE_*` pairs.
//!
//! Input: the TOML file's text (empty: no file), then optionally a NUL byte and environment
//! lines `NAME=VALUE`.
//! Asserts: no panic; the answer is a configuration or a `ConfigError` with a message; no
//! secret configured in the input shows in the message (or, on success, in `check-config`'s
//! redacted TOML and the `Debug` output). A secret is the value of a secret key
//! (`hs256_secret`, `secret_key`, `access_key_id`, ... written as `key = value` in the file or
//! as `STSGATE_..._<KEY>`) or the password of a `url`. Since a message may legitimately
//! contain the same text for another reason (a key name, a fixed phrase), a secret counts as
//! shown only when changing that one value (letters and digits rotated) changes the output
//! to show the changed value.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stsgate::config::Config;

const SECRET_KEYS: &[&str] = &[
    "hs256_secret",
    "secret_id",
    "secret_key",
    "access_key",
    "access_key_id",
    "access_key_secret",
    "secret_access_key",
    "secret",
];

/// Where the TOML text is written for `Config::load_from` (one file per process).
fn file_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("stsgate-fuzz-config-{}.toml", std::process::id()))
    })
}

/// The input: TOML text and environment lines.
#[derive(Clone)]
struct Input {
    toml: Vec<u8>,
    env: Vec<(String, String)>,
}

/// What a load shows: the error message, or the redacted TOML and `Debug` of the config.
fn load(input: &Input) -> (bool, String) {
    let file = if input.toml.is_empty() {
        None
    } else {
        std::fs::write(file_path(), &input.toml).expect("write the config file");
        Some(file_path().as_path())
    };
    match Config::load_from(file, input.env.clone()) {
        Ok(c) => (true, format!("{}\n{:?}", c.redacted_toml(), c)),
        Err(e) => {
            assert!(!e.0.is_empty(), "empty ConfigError");
            (false, e.to_string())
        }
    }
}

/// Where a secret sits in the input.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// Byte range in the TOML text.
    Toml(usize, usize),
    /// Byte range in the value of environment pair `i`.
    Env(usize, usize, usize),
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// The secret part of `value` (a quoted or bare value; for a `url`, its password), as a
/// byte range within `value`.
fn secret_range(value: &str, url: bool) -> Option<(usize, usize)> {
    let (start, inner) = match value.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => {
            let end = value[1..].find(q as char).map_or(value.len(), |e| e + 1);
            (1, &value[1..end])
        }
        _ => {
            let end = value.find([' ', '\t', '#']).unwrap_or(value.len());
            (0, &value[..end])
        }
    };
    if !url {
        return Some((start, start + inner.len()));
    }
    let rest_at = inner.find("://")? + 3;
    let rest = &inner[rest_at..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    let s = start + rest_at + colon + 1;
    Some((s, start + rest_at + at))
}

/// Secret values in the input, with their place.
fn secrets(input: &Input) -> Vec<Place> {
    let mut out = Vec::new();
    if let Ok(text) = std::str::from_utf8(&input.toml) {
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if let Some(eq) = line.find('=') {
                let key = line[..eq].trim();
                let key = key.rsplit('.').next().unwrap_or(key).trim();
                let key = key.trim_matches(|c| c == '"' || c == '\'');
                let url = key == "url";
                if is_secret_key(key) || url {
                    let after = &line[eq + 1..];
                    let lead = after.len() - after.trim_start().len();
                    let value = after.trim_start().trim_end_matches(['\n', '\r']);
                    if let Some((s, e)) = secret_range(value, url) {
                        let base = offset + eq + 1 + lead;
                        out.push(Place::Toml(base + s, base + e));
                    }
                }
            }
            offset += line.len();
        }
    }
    for (i, (name, value)) in input.env.iter().enumerate() {
        let key = name.rsplit("__").next().unwrap_or("").to_ascii_lowercase();
        if !name.starts_with("STSGATE_") {
            continue;
        }
        let url = key == "url";
        if is_secret_key(&key) || url {
            if let Some((s, e)) = secret_range(value, url) {
                out.push(Place::Env(i, s, e));
            }
        }
    }
    out
}

fn text_at(input: &Input, place: Place) -> Option<String> {
    match place {
        Place::Toml(s, e) => String::from_utf8(input.toml.get(s..e)?.to_vec()).ok(),
        Place::Env(i, s, e) => input.env[i].1.get(s..e).map(str::to_string),
    }
}

/// Letters and digits rotated: the same shape, another value.
fn rotate(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => (b'a' + (c as u8 - b'a' + 13) % 26) as char,
            'A'..='Z' => (b'A' + (c as u8 - b'A' + 13) % 26) as char,
            '0'..='9' => (b'0' + (c as u8 - b'0' + 5) % 10) as char,
            other => other,
        })
        .collect()
}

fn replaced(input: &Input, place: Place, with: &str) -> Input {
    let mut out = input.clone();
    match place {
        Place::Toml(s, e) => {
            out.toml.splice(s..e, with.bytes());
        }
        Place::Env(i, s, e) => out.env[i].1.replace_range(s..e, with),
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (toml, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let input = Input {
        toml: toml.to_vec(),
        env,
    };
    let (ok, shown) = load(&input);
    for place in secrets(&input) {
        let Some(secret) = text_at(&input, place) else {
            continue;
        };
        if secret.len() < 4 || !shown.contains(&secret) {
            continue;
        }
        let other = rotate(&secret);
        if other == secret {
            continue;
        }
        let (_, shown2) = load(&replaced(&input, place, &other));
        assert!(
            !(shown2 != shown && shown2.contains(&other)),
            "a configured secret ({place:?}) is shown when {}:\n{shown}",
            if ok {
                "the configuration loads"
            } else {
                "it is refused"
            },
        );
    }
});
