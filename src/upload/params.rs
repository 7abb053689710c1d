//! `GET/POST /upload/sts/info` parameters: collected from the query string and a JSON
//! body (the body overrides the query field by field; an empty string counts as absent),
//! then validated in the order of docs/contract.md §1.3. Every failure here is 40001 naming the
//! field and the rule.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;
use crate::providers::CloudType;
use crate::upload::module::UploadModule;

/// Raw fields after merging query and body.
pub type Fields = BTreeMap<String, Value>;

/// `web` or `app`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// `web`
    Web,
    /// `app` (default)
    App,
}

impl Platform {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Web => "web",
            Platform::App => "app",
        }
    }
}

/// Validated parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StsParams {
    /// The raw `type` (kept for 40002 messages).
    pub type_code: i64,
    /// The cloud.
    pub cloud: CloudType,
    /// Lower-case extension.
    pub extension: String,
    /// `isNeedCallback`.
    pub need_callback: bool,
    /// `uploadModule`.
    pub module: UploadModule,
    /// `platform`.
    pub platform: Platform,
    /// `projectId`.
    pub project_id: Option<i64>,
    /// `isDir`.
    pub is_dir: bool,
    /// `uuid`.
    pub uuid: Option<String>,
}

impl StsParams {
    /// A stable hash of the parameters (for Idempotency-Key).
    pub fn hash(&self) -> String {
        let canonical = format!(
            "type={}&extension={}&isNeedCallback={}&uploadModule={}&platform={}&projectId={}&isDir={}&uuid={}",
            self.type_code,
            self.extension,
            u8::from(self.need_callback),
            self.module.as_str(),
            self.platform.as_str(),
            self.project_id.map(|p| p.to_string()).unwrap_or_default(),
            u8::from(self.is_dir),
            self.uuid.as_deref().unwrap_or("")
        );
        crate::providers::crypto::hex(crate::providers::crypto::sha256(canonical.as_bytes()))
    }
}

/// Whether `s` can be stored and logged as text: no NUL and no other control character
/// (PostgreSQL refuses NUL in text; no upload field legitimately holds a control character).
pub fn storable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// 40001 naming `field` when a key or a string value is not [`storable`].
pub fn check_storable(field: &str, value: &Value) -> Result<(), ApiError> {
    let ok = match value {
        Value::String(v) => storable(v),
        Value::Array(items) => items.iter().all(|v| v.as_str().is_none_or(storable)),
        _ => true,
    };
    if ok && storable(field) {
        Ok(())
    } else {
        let shown: String = field.chars().filter(|c| !c.is_control()).take(64).collect();
        Err(bad(&shown, "must not contain control characters"))
    }
}

/// Merges the query string and the body. A non-empty body must be a JSON object
/// (whatever its Content-Type says); no key or string value may hold a control character.
pub fn collect(query: Option<&str>, body: &[u8]) -> Result<Fields, ApiError> {
    let mut fields = Fields::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            let v = Value::String(v.into_owned());
            check_storable(&k, &v)?;
            if v.as_str() != Some("") {
                fields.insert(k.into_owned(), v);
            }
        }
    }
    let trimmed = body.trim_ascii();
    if !trimmed.is_empty() {
        let v: Value = serde_json::from_slice(trimmed).map_err(|e| {
            ApiError::InvalidParam(format!(
                "body: malformed JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(map) = v else {
            return Err(ApiError::InvalidParam("body: must be a JSON object".into()));
        };
        // An empty string or null in the body is absent: it does not hide the query's value.
        for (k, v) in map {
            check_storable(&k, &v)?;
            if !matches!(v, Value::Null) && v.as_str() != Some("") {
                fields.insert(k, v);
            }
        }
    }
    Ok(fields)
}

fn bad(field: &str, rule: &str) -> ApiError {
    ApiError::InvalidParam(format!("{field}: {rule}"))
}

/// An integer from a JSON number or a decimal string.
fn int(fields: &Fields, name: &str) -> Result<Option<i64>, ApiError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(name, "must be an integer")),
        Some(Value::String(s)) => {
            let t = s.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad(name, "must be an integer"));
            }
            t.parse()
                .map(Some)
                .map_err(|_| bad(name, "must be an integer"))
        }
        Some(_) => Err(bad(name, "must be an integer")),
    }
}

/// A string from a JSON string (or a number, written as text).
fn text(fields: &Fields, name: &str) -> Result<Option<String>, ApiError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(name, "must be a string")),
    }
}

fn flag(fields: &Fields, name: &str) -> Result<Option<bool>, ApiError> {
    match int(fields, name).map_err(|_| bad(name, "must be 0 or 1"))? {
        None => Ok(None),
        Some(0) => Ok(Some(false)),
        Some(1) => Ok(Some(true)),
        Some(_) => Err(bad(name, "must be 0 or 1")),
    }
}

/// Validates the 40001 rules, in the table's order.
pub fn validate(fields: &Fields) -> Result<StsParams, ApiError> {
    let type_code = int(fields, "type")?.ok_or_else(|| bad("type", "is required"))?;
    let cloud = CloudType::from_code(type_code)
        .ok_or_else(|| bad("type", "must be one of 0, 1, 2, 3, 4, 6, 7"))?;

    let extension = text(fields, "extension")?.ok_or_else(|| bad("extension", "is required"))?;
    if extension.is_empty()
        || extension.len() > 16
        || !extension.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad("extension", "must be 1-16 of [A-Za-z0-9]"));
    }
    let extension = extension.to_ascii_lowercase();

    let need_callback =
        flag(fields, "isNeedCallback")?.ok_or_else(|| bad("isNeedCallback", "is required"))?;

    let module_name =
        text(fields, "uploadModule")?.ok_or_else(|| bad("uploadModule", "is required"))?;
    let module = UploadModule::parse(&module_name).ok_or_else(|| {
        bad(
            "uploadModule",
            "must be one of bs_project, app_project, resource_video, resource_image, material_template, directorytemp",
        )
    })?;

    let platform = match text(fields, "platform")?.as_deref() {
        None | Some("app") => Platform::App,
        Some("web") => Platform::Web,
        Some(_) => return Err(bad("platform", "must be web or app")),
    };

    let project_id = match int(fields, "projectId")
        .map_err(|_| bad("projectId", "must be a positive integer"))?
    {
        Some(p) if p >= 1 => Some(p),
        Some(_) => return Err(bad("projectId", "must be a positive integer")),
        None => None,
    };
    if module == UploadModule::BsProject && project_id.is_none() {
        return Err(bad(
            "projectId",
            "is required when uploadModule is bs_project",
        ));
    }

    let is_dir = flag(fields, "isDir")?.unwrap_or(false);
    if is_dir && !cloud.supports_dir() {
        return Err(bad(
            "isDir",
            "must be 0 for type 1 (Tencent LKE grants exactly one object)",
        ));
    }

    let uuid = text(fields, "uuid")?;
    if let Some(u) = &uuid {
        if u.is_empty()
            || u.len() > 64
            || !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad("uuid", "must be 1-64 of [A-Za-z0-9_-]"));
        }
    }
    if module == UploadModule::MaterialTemplate && uuid.is_none() {
        return Err(bad(
            "uuid",
            "is required when uploadModule is material_template",
        ));
    }

    Ok(StsParams {
        type_code,
        cloud,
        extension,
        need_callback,
        module,
        platform,
        project_id,
        is_dir,
        uuid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(q: &str, body: &str) -> StsParams {
        validate(&collect(Some(q), body.as_bytes()).unwrap()).unwrap()
    }

    fn err(q: &str, body: &str) -> String {
        match collect(Some(q), body.as_bytes()).and_then(|f| validate(&f)) {
            Err(ApiError::InvalidParam(m)) => m,
            other => panic!("expected 40001, got {other:?}"),
        }
    }

    #[test]
    fn the_seed_body_parses() {
        let p = ok(
            "",
            r#"{"type": 3, "extension": "json", "isNeedCallback": 1, "uploadModule": "bs_project",
               "projectId": 8357, "isDir": 1, "uuid": "", "platform": "web"}"#,
        );
        assert_eq!(p.cloud, CloudType::Aliyun);
        assert_eq!(p.project_id, Some(8357));
        assert!(p.is_dir && p.need_callback);
        assert_eq!(p.uuid, None, "empty string is absent");
        assert_eq!(p.platform, Platform::Web);
    }

    #[test]
    fn body_overrides_query_field_by_field() {
        let p = ok(
            "type=1&extension=PNG&isNeedCallback=0&uploadModule=resource_image",
            r#"{"isNeedCallback": "1", "extension": ""}"#,
        );
        assert_eq!(p.extension, "png", "empty body field leaves the query's");
        assert!(p.need_callback, "body wins");
        assert_eq!(p.platform, Platform::App, "default");
    }

    #[test]
    fn each_rule_names_its_field() {
        let base = "extension=png&isNeedCallback=0&uploadModule=resource_image";
        assert!(err(base, "").starts_with("type: is required"));
        assert!(err(&format!("type=5&{base}"), "").starts_with("type:"));
        assert!(err(&format!("type=x&{base}"), "").starts_with("type:"));
        assert!(
            err("type=1&isNeedCallback=0&uploadModule=resource_image", "")
                .starts_with("extension: is required")
        );
        assert!(err(
            "type=1&extension=p.ng&isNeedCallback=0&uploadModule=resource_image",
            ""
        )
        .starts_with("extension:"));
        assert!(err(
            "type=1&extension=aaaaaaaaaaaaaaaaa&isNeedCallback=0&uploadModule=resource_image",
            ""
        )
        .starts_with("extension:"));
        assert!(err("type=1&extension=png&uploadModule=resource_image", "")
            .starts_with("isNeedCallback: is required"));
        assert!(err(
            "type=1&extension=png&isNeedCallback=2&uploadModule=resource_image",
            ""
        )
        .starts_with("isNeedCallback:"));
        assert!(err("type=1&extension=png&isNeedCallback=0", "")
            .starts_with("uploadModule: is required"));
        assert!(
            err("type=1&extension=png&isNeedCallback=0&uploadModule=x", "")
                .starts_with("uploadModule:")
        );
        assert!(err(&format!("type=2&{base}&platform=ios"), "").starts_with("platform:"));
        assert!(err(
            "type=2&extension=png&isNeedCallback=0&uploadModule=bs_project",
            ""
        )
        .starts_with("projectId: is required"));
        assert!(err(&format!("type=2&{base}&projectId=0"), "").starts_with("projectId:"));
        assert!(err(&format!("type=2&{base}&projectId=-3"), "").starts_with("projectId:"));
        assert!(err(&format!("type=2&{base}&isDir=2"), "").starts_with("isDir:"));
        assert!(err(&format!("type=1&{base}&isDir=1"), "").starts_with("isDir:"));
        assert!(err(
            "type=2&extension=png&isNeedCallback=0&uploadModule=material_template",
            ""
        )
        .starts_with("uuid: is required"));
        assert!(err(&format!("type=2&{base}&uuid=a/b"), "").starts_with("uuid:"));
        assert!(err(base, "{").starts_with("body: malformed JSON"));
        assert!(err(base, "[1]").starts_with("body: must be a JSON object"));
        assert!(err(base, r#"{"type": true}"#).starts_with("type:"));
    }

    #[test]
    fn hash_changes_with_any_parameter() {
        let a = ok(
            "type=2&extension=png&isNeedCallback=0&uploadModule=resource_image",
            "",
        );
        let b = ok(
            "type=2&extension=png&isNeedCallback=1&uploadModule=resource_image",
            "",
        );
        assert_ne!(a.hash(), b.hash());
        assert_eq!(
            a.hash(),
            ok(
                "type=2&extension=PNG&isNeedCallback=0&uploadModule=resource_image&platform=app",
                ""
            )
            .hash()
        );
    }

    proptest! {
        #[test]
        fn a_control_character_anywhere_is_40001(
            before in "[a-z/.]{0,8}",
            ctl in proptest::char::range('\u{0}', '\u{1f}'),
            after in "[a-z/.]{0,8}",
            in_body in any::<bool>(),
        ) {
            let value = format!("{before}{ctl}{after}");
            let r = if in_body {
                let body = serde_json::json!({"type": 1, "extension": "png", "uploadModule": value});
                collect(None, body.to_string().as_bytes())
            } else {
                let q: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("type", "1")
                    .append_pair("uploadModule", &value)
                    .finish();
                collect(Some(&q), b"")
            };
            let Err(ApiError::InvalidParam(msg)) = r else {
                return Err(TestCaseError::fail(format!("accepted {value:?}")));
            };
            prop_assert!(msg.starts_with("uploadModule:"), "{}", msg);
            prop_assert!(msg.chars().all(|c| !c.is_control()));
        }

        #[test]
        fn printable_values_pass_the_control_check(v in "[^\\p{Cc}]{0,40}") {
            prop_assert!(storable(&v));
            prop_assert!(check_storable("f", &Value::String(v)).is_ok());
        }

        #[test]
        fn never_panics_on_arbitrary_input(q in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(f) = collect(Some(&q), &body) {
                let _ = validate(&f);
            }
        }

        #[test]
        fn accepted_extensions_are_lowercase_alnum(ext in "[A-Za-z0-9]{1,16}") {
            let p = ok(&format!("type=2&extension={ext}&isNeedCallback=0&uploadModule=directorytemp"), "");
            prop_assert_eq!(p.extension, ext.to_ascii_lowercase());
        }

        #[test]
        fn bad_extensions_are_refused(ext in "[A-Za-z0-9]{0,4}[^A-Za-z0-9&=#%+]{1,3}[A-Za-z0-9]{0,4}") {
            let q = format!("type=2&extension={}&isNeedCallback=0&uploadModule=directorytemp", ext);
            let r = collect(Some(&q), b"").and_then(|f| validate(&f));
            prop_assert!(matches!(r, Err(ApiError::InvalidParam(_))));
        }

        #[test]
        fn uuid_rule(u in "[A-Za-z0-9_-]{1,64}") {
            let p = ok(&format!("type=2&extension=zip&isNeedCallback=0&uploadModule=material_template&uuid={u}"), "");
            prop_assert_eq!(p.uuid.as_deref(), Some(u.as_str()));
        }
    }
}
