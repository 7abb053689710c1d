//! Reading a cloud's JSON answer: the field helpers every `sts.rs` uses, written once, so
//! that "absent", "empty" and "wrong type" mean the same thing for every cloud.
//!
//! A required field that is absent, `null` or an empty string is *missing*; one of another
//! JSON type is *malformed*. Both are [`ProviderError::Unusable`] (502/50201) naming the
//! field, never its value. Times go through [`crate::clock::parse_utc`] (fractions
//! truncated, never rounded up).

use serde_json::{Map, Value};

use super::ProviderError;

/// The answer of one cloud call, named in errors (`"LKE"`, `"Aliyun STS"`, …).
#[derive(Debug, Clone, Copy)]
pub struct Answer(pub &'static str);

impl Answer {
    /// A body that is not the cloud's documented envelope: on a 2xx, `"{call} answered HTTP
    /// {status} {what}"`; otherwise the HTTP status alone ([`ProviderError::http_status`]).
    pub fn shapeless(self, status: u16, what: &str) -> ProviderError {
        if (200..300).contains(&status) {
            ProviderError::Unusable(format!("{} answered HTTP {status} {what}", self.0))
        } else {
            ProviderError::http_status(status)
        }
    }

    /// `"{call} answer lacks {field}"`.
    pub fn missing(self, field: &str) -> ProviderError {
        ProviderError::Unusable(format!("{} answer lacks {field}", self.0))
    }

    /// `"{call} answer has a malformed {field}"`.
    pub fn malformed(self, field: &str) -> ProviderError {
        ProviderError::Unusable(format!("{} answer has a malformed {field}", self.0))
    }

    /// The non-empty string `obj[key]`; `name` is how errors call it (e.g.
    /// `Credentials.AccessKeyId`).
    pub fn required_str(
        self,
        obj: &Map<String, Value>,
        key: &str,
        name: &str,
    ) -> Result<String, ProviderError> {
        match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) | Some(Value::String(_)) => Err(self.missing(name)),
            Some(_) => Err(self.malformed(name)),
        }
    }

    /// The string `obj[key]`, empty when absent or `null`; another type is malformed.
    pub fn optional_str(
        self,
        obj: &Map<String, Value>,
        key: &str,
    ) -> Result<String, ProviderError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.malformed(key)),
        }
    }

    /// The object `obj[key]`.
    pub fn required_obj<'a>(
        self,
        obj: &'a Map<String, Value>,
        key: &str,
        name: &str,
    ) -> Result<&'a Map<String, Value>, ProviderError> {
        match obj.get(key) {
            Some(Value::Object(o)) => Ok(o),
            None | Some(Value::Null) => Err(self.missing(name)),
            Some(_) => Err(self.malformed(name)),
        }
    }

    /// The UTC time `obj[key]` (RFC 3339 or the clouds' `YYYY-MM-DDTHH:MM:SS[.fff]Z`
    /// forms) as Unix seconds.
    pub fn required_time(
        self,
        obj: &Map<String, Value>,
        key: &str,
        name: &str,
    ) -> Result<i64, ProviderError> {
        let text = self.required_str(obj, key, name)?;
        crate::clock::parse_utc(&text).ok_or_else(|| self.malformed(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn shapeless_names_the_status_on_2xx_and_is_the_status_otherwise() {
        assert_eq!(
            Answer("LKE").shapeless(200, "with a body that is not a JSON object"),
            ProviderError::Unusable(
                "LKE answered HTTP 200 with a body that is not a JSON object".into()
            )
        );
        assert_eq!(
            Answer("LKE").shapeless(503, "x"),
            ProviderError::http_status(503)
        );
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn missing_and_malformed_are_told_apart() {
        let a = Answer("Test STS");
        let o = obj(json!({"s": "v", "e": "", "n": null, "i": 3, "t": "2025-01-01T00:00:00.999Z"}));
        assert_eq!(a.required_str(&o, "s", "S").unwrap(), "v");
        for key in ["e", "n", "absent"] {
            assert_eq!(
                a.required_str(&o, key, "X"),
                Err(ProviderError::Unusable("Test STS answer lacks X".into()))
            );
        }
        assert_eq!(
            a.required_str(&o, "i", "X"),
            Err(ProviderError::Unusable(
                "Test STS answer has a malformed X".into()
            ))
        );
        assert_eq!(a.optional_str(&o, "n").unwrap(), "");
        assert!(a.optional_str(&o, "i").is_err());
        assert_eq!(a.required_time(&o, "t", "T").unwrap(), 1_735_689_600);
        assert!(a.required_time(&o, "s", "T").is_err());
        assert!(a.required_obj(&o, "s", "S").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_never_echoes_the_value(v in ".{0,40}") {
            let a = Answer("P");
            let o = obj(json!({"k": v.clone()}));
            if let Err(ProviderError::Unusable(m)) = a.required_time(&o, "k", "K") {
                prop_assert!(v.len() < 4 || !m.contains(&v));
            }
        }
    }
}
