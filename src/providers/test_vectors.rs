//! Test support: reading the official-SDK vector files and the error classification checks
//! every provider's tests repeat.

use serde_json::Value;

use super::ProviderError;

/// `tests/vectors/{rel}` parsed.
pub fn load(rel: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A string field of a vector, or a panic naming it.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} is not a string"))
}

/// An `x-amz-date` value (`20240102T030405Z`) as a `SystemTime`.
pub fn amz_time(d: &str) -> std::time::SystemTime {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(d, &f)
        .unwrap_or_else(|e| panic!("{d}: {e}"))
        .assume_utc();
    std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t.unix_timestamp() as u64)
}

/// The vector named `name` of a file.
pub fn named<'a>(file: &'a Value, name: &str) -> &'a Value {
    file["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

/// The number of cases a file must have run: its `count`, or, for the files that carry
/// none, the count the protocol's §6 table documents.
pub fn expected_count(file: &Value, documented: usize) -> usize {
    file.get("count")
        .and_then(Value::as_u64)
        .map_or(documented, |c| c as usize)
}

/// Asserts `got` is `Refused` with this code and retryability.
pub fn assert_refused<T: std::fmt::Debug>(
    got: Result<T, ProviderError>,
    code: &str,
    retryable: bool,
) {
    match got {
        Err(ProviderError::Refused {
            code: c,
            retryable: r,
            ..
        }) => {
            assert_eq!(c, code);
            assert_eq!(r, retryable, "{code}: retryable");
        }
        other => panic!("{code}: expected Refused, got {other:?}"),
    }
}
