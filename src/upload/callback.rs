//! An upload callback, from the cloud or the uploader (`docs/contract.md` §1.4): verify →
//! parse → ledger lookup → match → mark → audit.
//!
//! Who is calling is decided by the headers
//! ([`crate::providers::registry::callback_origin`]). A cloud-signed callback
//! is verified only by that cloud's signature and accepted only for a row of that cloud
//! type, in the bucket the row was issued for, for exactly its key (or a key under its
//! `isDir` prefix): a signature proves where the callback came from, not which of our rows
//! it may touch. A user's callback is accepted only for the user's own object. Facts from
//! the cloud replace a client's earlier claim; a client never replaces the cloud's.

use serde::Serialize;
use serde_json::Value;

use crate::app::App;
use crate::error::ApiError;
use crate::providers::{CallbackInput, CloudObject, CloudType, Head};
use crate::store::{FactSource, MarkOutcome, ObjectRecord, UploadFacts};
use crate::upload::module::UploadModule;
use crate::upload::service::AUDIT_TARGET;

/// Who a callback says it comes from, before any check: the cloud (by its headers) or the
/// user (whose JWT the caller has already verified into `sub`).
#[derive(Debug, Clone)]
pub enum Caller {
    /// A cloud that signs its callbacks.
    Cloud(CloudType),
    /// The uploading user.
    User(String),
}

/// What a callback body reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackBody {
    /// objectId (required).
    pub object_id: i64,
    /// resourceType.
    pub resource_type: Option<i64>,
    /// bucket.
    pub bucket: Option<String>,
    /// object key.
    pub object: Option<String>,
    /// Facts to record.
    pub facts: UploadFacts,
}

/// Parses a form or JSON callback body (JSON when the Content-Type says so or the body
/// starts with `{`).
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<CallbackBody, ApiError> {
    let is_json = content_type.is_some_and(|c| c.contains("json"))
        || body.trim_ascii_start().first() == Some(&b'{');
    let mut fields: Vec<(String, Value)> = Vec::new();
    if is_json {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| ApiError::InvalidParam("body: malformed JSON".into()))?;
        let Value::Object(map) = v else {
            return Err(ApiError::InvalidParam("body: must be a JSON object".into()));
        };
        fields.extend(map);
    } else {
        for (k, v) in form_urlencoded::parse(body) {
            fields.push((k.into_owned(), Value::String(v.into_owned())));
        }
    }
    for (k, v) in &fields {
        super::params::check_storable(k, v)?;
    }
    let get = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
    };
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParam(format!("{name}: must be an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::InvalidParam(format!("{name}: must be an integer"))),
            Some(_) => Err(ApiError::InvalidParam(format!(
                "{name}: must be an integer"
            ))),
        }
    };
    let text = |name: &str| -> Option<String> {
        match get(name) {
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    let object_id = int("objectId")?.filter(|i| *i > 0).ok_or_else(|| {
        ApiError::InvalidParam("objectId: is required (a positive integer)".into())
    })?;
    let size = int("size")?;
    if size.is_some_and(|s| s < 0) {
        return Err(ApiError::InvalidParam("size: must not be negative".into()));
    }
    Ok(CallbackBody {
        object_id,
        resource_type: int("resourceType")?,
        bucket: text("bucket"),
        object: text("object"),
        facts: UploadFacts {
            size,
            mime: text("mimeType"),
            etag: text("etag").map(|e| e.trim_matches('"').to_string()),
            source: FactSource::Client,
        },
    })
}

/// The answer (OSS relays it to the uploader).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Marked {
    /// objectId.
    pub object_id: i64,
    /// Always `uploaded`.
    pub status: &'static str,
}

/// The one owner rule: a user reads and reports only their own objects (40301 otherwise).
pub fn check_owner(record: &ObjectRecord, sub: &str) -> Result<(), ApiError> {
    if record.owner != sub {
        return Err(ApiError::Forbidden("not your object".into()));
    }
    Ok(())
}

/// Whether a cloud-signed callback from `cloud` reporting `bucket`/`object` may touch
/// `record`: the same cloud type, the bucket the row was issued in, and exactly its key (or
/// a key strictly under its `isDir` prefix).
pub fn cloud_report_matches(
    cloud: CloudType,
    record: &ObjectRecord,
    bucket: Option<&str>,
    object: Option<&str>,
) -> bool {
    let key = record.object_key.as_deref().unwrap_or("");
    let object_ok = match object {
        Some(o) if record.is_dir => !key.is_empty() && o.starts_with(key) && o.len() > key.len(),
        Some(o) => !key.is_empty() && o == key,
        None => false,
    };
    record.cloud_type == i64::from(cloud.code())
        && record.bucket.is_some()
        && bucket == record.bucket.as_deref()
        && object_ok
}

/// Records a callback: verifies a cloud's signature, parses the body, finds the row,
/// applies the matching rule, marks the row and writes the audit event.
pub async fn record(
    app: &App,
    caller: Caller,
    input: &CallbackInput,
    request_id: &str,
    deadline: tokio::time::Instant,
) -> Result<Marked, ApiError> {
    let origin = match &caller {
        Caller::User(_) => "user",
        Caller::Cloud(c) => c.name(),
    };
    if let Caller::Cloud(cloud) = caller {
        let provider = app.providers.get(cloud).ok_or_else(|| {
            ApiError::BadCallbackSignature(format!("{} callbacks are not enabled", cloud.name()))
        })?;
        if let Err(e) = provider.verify_callback(input).await {
            app.metrics.callback(origin, "bad_signature");
            return Err(e.into());
        }
    }
    let content_type = input
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut cb = parse_body(content_type, &input.body)?;
    let record = app
        .store
        .get_object(cb.object_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("object {}", cb.object_id)))?;
    match &caller {
        Caller::User(sub) => {
            if let Err(e) = check_owner(&record, sub) {
                app.metrics.callback(origin, "forbidden");
                return Err(e);
            }
            cb.facts.source = FactSource::Client;
        }
        Caller::Cloud(cloud) => {
            if !cloud_report_matches(*cloud, &record, cb.bucket.as_deref(), cb.object.as_deref()) {
                app.metrics.callback(origin, "mismatch");
                return Err(ApiError::Forbidden(
                    "signed callback's cloud/bucket/object do not match the object".into(),
                ));
            }
            cb.facts.source = FactSource::CloudCallback;
        }
    }
    if let Some(rt) = cb.resource_type {
        let expected =
            UploadModule::parse(&record.upload_module).map(|m| i64::from(m.resource_type()));
        if Some(rt) != expected {
            return Err(ApiError::InvalidParam(
                "resourceType: does not match the object's uploadModule".into(),
            ));
        }
    }
    // A client's claim, and a cloud callback whose signature does not prove the bucket
    // (OSS), are settled by the cloud's HEAD.
    let ask_cloud = match &caller {
        Caller::User(_) => true,
        Caller::Cloud(c) => app
            .providers
            .get(*c)
            .is_some_and(|p| p.signed_callback_needs_head()),
    };
    if ask_cloud {
        match verify_with_cloud(app, &record, deadline).await? {
            Verified::ClientWord => {}
            Verified::Absent => {
                app.metrics.callback(origin, "absent");
                return Err(ApiError::NotUploaded(cb.object_id));
            }
            Verified::Cloud(facts) => cb.facts = facts,
            Verified::Rejected(facts, why) => {
                app.metrics.callback(origin, "rejected");
                let outcome = app
                    .store
                    .reject_object(cb.object_id, &facts, app.clock.now_unix())
                    .await?;
                tracing::info!(
                    target: AUDIT_TARGET,
                    event = "upload_rejected",
                    request_id,
                    origin,
                    sub = %record.owner,
                    object_id = cb.object_id,
                    cloud_type = record.cloud_type,
                    bucket = record.bucket.as_deref().unwrap_or(""),
                    key = record.object_key.as_deref().unwrap_or(""),
                    size = facts.size,
                    reason = why,
                    changed = outcome == MarkOutcome::Marked,
                    "upload rejected"
                );
                return Err(match outcome {
                    MarkOutcome::NotFound => ApiError::NotFound(format!("object {}", cb.object_id)),
                    MarkOutcome::NotIssued => {
                        ApiError::Forbidden("object has no issued credentials (failed)".into())
                    }
                    MarkOutcome::Marked | MarkOutcome::AlreadyUploaded => ApiError::WrongState {
                        id: cb.object_id,
                        status: "rejected".into(),
                        action: "upload",
                        needs: why,
                    },
                });
            }
        }
    }
    let outcome = app
        .store
        .mark_uploaded(cb.object_id, &cb.facts, app.clock.now_unix())
        .await?;
    match outcome {
        MarkOutcome::Marked | MarkOutcome::AlreadyUploaded => {
            let repeat = outcome == MarkOutcome::AlreadyUploaded;
            app.metrics
                .callback(origin, if repeat { "repeat" } else { "marked" });
            tracing::info!(
                target: AUDIT_TARGET,
                event = "upload_callback",
                request_id,
                origin,
                sub = %record.owner,
                object_id = cb.object_id,
                cloud_type = record.cloud_type,
                bucket = record.bucket.as_deref().unwrap_or(""),
                key = record.object_key.as_deref().unwrap_or(""),
                reported_object = cb.object.as_deref().unwrap_or(""),
                size = cb.facts.size,
                repeat,
                "upload recorded"
            );
            Ok(Marked {
                object_id: cb.object_id,
                status: "uploaded",
            })
        }
        MarkOutcome::NotIssued => Err(ApiError::Forbidden(
            "object has no issued credentials (failed)".into(),
        )),
        MarkOutcome::NotFound => Err(ApiError::NotFound(format!("object {}", cb.object_id))),
    }
}

/// What the cloud's `HEAD` decided about a client's callback.
#[derive(Debug)]
enum Verified {
    /// The provider does not verify: record the client's claim.
    ClientWord,
    /// The bucket has no such object (40903).
    Absent,
    /// Present and within the module's rules: the cloud's facts.
    Cloud(UploadFacts),
    /// Present but over `max_bytes` or of a refused content type: deleted (where the
    /// credentials allow) and to be marked `rejected` with the cloud's facts.
    Rejected(UploadFacts, &'static str),
}

/// Asks the row's cloud about its object (`docs/contract.md` §6): a folder (`isDir`) row has no one
/// object to ask about and keeps the client's word.
async fn verify_with_cloud(
    app: &App,
    record: &ObjectRecord,
    deadline: tokio::time::Instant,
) -> Result<Verified, ApiError> {
    let provider = CloudType::from_code(record.cloud_type).and_then(|c| app.providers.get(c));
    let (Some(provider), Some(bucket), Some(key)) = (
        provider,
        record.bucket.as_deref(),
        record.object_key.as_deref(),
    ) else {
        return Ok(Verified::ClientWord);
    };
    // A folder has no one object to ask about; a row already settled by the cloud (or
    // rejected, consumed, failed) is left to `mark_uploaded`, which changes nothing.
    let open = matches!(record.status.as_str(), "issued" | "expired")
        || (record.status == "uploaded" && record.verified_by.as_deref() == Some("client"));
    if record.is_dir || !open {
        return Ok(Verified::ClientWord);
    }
    let found = match provider.head_object(bucket, key, deadline).await? {
        Head::CannotVerify => return Ok(Verified::ClientWord),
        Head::Absent => return Ok(Verified::Absent),
        Head::Present(o) => o,
    };
    let facts = UploadFacts {
        size: Some(found.size),
        mime: found.content_type.clone(),
        etag: found.etag.clone(),
        source: FactSource::Head,
    };
    let Some(module) = UploadModule::parse(&record.upload_module) else {
        return Ok(Verified::Cloud(facts));
    };
    let rules = app.config.upload.rules(module);
    let why = if u64::try_from(found.size).unwrap_or(u64::MAX) > rules.max_bytes {
        Some("an object within the module's max_bytes")
    } else if !content_type_allowed(&rules, &found) {
        Some("a content type the module allows")
    } else {
        None
    };
    let Some(why) = why else {
        return Ok(Verified::Cloud(facts));
    };
    if let Err(e) = provider.delete_object(bucket, key, deadline).await {
        tracing::warn!(
            object_id = record.object_id,
            error = %e,
            "deleting a rejected upload failed; the object stays in the bucket"
        );
    }
    Ok(Verified::Rejected(facts, why))
}

/// Whether the cloud's `Content-Type` (parameters and case ignored) is one the module's
/// extensions give: with an allow-list, the type of one of its extensions; without one,
/// any type but that of a denied extension. An object with no `Content-Type` is not judged.
pub fn content_type_allowed(rules: &crate::config::ModuleRules, found: &CloudObject) -> bool {
    use crate::providers::form::content_type_for;
    let Some(ct) = found.content_type.as_deref() else {
        return true;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match &rules.extensions {
        Some(list) => list.iter().any(|e| content_type_for(e) == ct),
        None => !crate::upload::module::DENIED_EXTENSIONS
            .iter()
            .map(|e| content_type_for(e))
            .any(|t| t == ct && t != "application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn form_and_json_bodies() {
        let f = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"objectId=5&resourceType=1&bucket=b&object=k%2Fx.mp4&size=10&mimeType=video%2Fmp4&etag=%22abc%22",
        )
        .unwrap();
        assert_eq!(f.object_id, 5);
        assert_eq!(f.object.as_deref(), Some("k/x.mp4"));
        assert_eq!(f.facts.etag.as_deref(), Some("abc"));
        let j = parse_body(None, br#"{"objectId": "7", "size": 3}"#).unwrap();
        assert_eq!((j.object_id, j.facts.size), (7, Some(3)));
        assert!(parse_body(None, b"resourceType=1").is_err());
        assert!(parse_body(None, b"objectId=-1").is_err());
        assert!(parse_body(Some("application/json"), b"{").is_err());
    }

    #[test]
    fn a_nul_in_a_callback_field_is_40001_not_a_database_error() {
        for body in [
            &b"objectId=7&mimeType=image%2Fpng%00x"[..],
            b"objectId=7&etag=a%01b",
            br#"{"objectId": 7, "mimeType": "image/png\u0000x"}"#,
        ] {
            let Err(ApiError::InvalidParam(msg)) = parse_body(None, body) else {
                panic!("accepted {:?}", String::from_utf8_lossy(body));
            };
            assert!(msg.contains("control characters"), "{msg}");
        }
        assert!(parse_body(None, b"objectId=7&mimeType=image%2Fpng").is_ok());
    }

    proptest! {
        #[test]
        fn a_control_character_in_any_field_is_refused(
            field in "(mimeType|etag|bucket|object|size)",
            ctl in proptest::char::range('\u{0}', '\u{1f}'),
        ) {
            let body = serde_json::json!({"objectId": 7, field.clone(): format!("x{ctl}y")});
            prop_assert!(matches!(
                parse_body(None, body.to_string().as_bytes()),
                Err(ApiError::InvalidParam(_))
            ));
        }

        #[test]
        fn never_panics(ct in proptest::option::of(".{0,30}"), body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_body(ct.as_deref(), &body);
        }
    }

    fn row(cloud: CloudType, is_dir: bool, key: &str) -> ObjectRecord {
        ObjectRecord {
            object_id: 6,
            owner: "bob".into(),
            cloud_type: i64::from(cloud.code()),
            upload_module: "resource_video".into(),
            platform: "web".into(),
            project_id: None,
            extension: "mp4".into(),
            is_dir,
            bucket: Some("rel-bucket".into()),
            object_key: Some(key.into()),
            status: "issued".into(),
            created_at: 0,
            expires_at: None,
            uploaded_at: None,
            size: None,
            mime: None,
            etag: None,
            verified_by: None,
            consumed_at: None,
            consumed_ref: None,
        }
    }

    #[test]
    fn a_cloud_report_must_name_its_cloud_bucket_and_key() {
        let prefix = "test/resource/video/2026/12/02/6/";
        let dir = row(CloudType::Qiniu, true, prefix);
        let inside = format!("{prefix}forged.mp4");
        assert!(cloud_report_matches(
            CloudType::Qiniu,
            &dir,
            Some("rel-bucket"),
            Some(&inside)
        ));
        // Another cloud's signature, even for the right bucket and a key under the prefix.
        assert!(!cloud_report_matches(
            CloudType::Aliyun,
            &dir,
            Some("rel-bucket"),
            Some(&inside)
        ));
        assert!(!cloud_report_matches(
            CloudType::Qiniu,
            &dir,
            Some("other"),
            Some(&inside)
        ));
        assert!(!cloud_report_matches(
            CloudType::Qiniu,
            &dir,
            Some("rel-bucket"),
            Some(prefix)
        ));
        assert!(!cloud_report_matches(
            CloudType::Qiniu,
            &dir,
            None,
            Some(&inside)
        ));
        let one = row(CloudType::Aliyun, false, "k/x.mp4");
        assert!(cloud_report_matches(
            CloudType::Aliyun,
            &one,
            Some("rel-bucket"),
            Some("k/x.mp4")
        ));
        assert!(!cloud_report_matches(
            CloudType::Aliyun,
            &one,
            Some("rel-bucket"),
            Some("k/x.mp4x")
        ));
        assert!(!cloud_report_matches(
            CloudType::Aliyun,
            &one,
            Some("rel-bucket"),
            None
        ));
        let unissued = ObjectRecord {
            object_key: None,
            bucket: None,
            ..one.clone()
        };
        assert!(!cloud_report_matches(
            CloudType::Aliyun,
            &unissued,
            None,
            Some("")
        ));
        assert!(check_owner(&one, "bob").is_ok());
        assert!(check_owner(&one, "alice").is_err());
    }

    #[test]
    fn content_types_follow_the_module_s_extensions() {
        let obj = |ct: Option<&str>| CloudObject {
            size: 1,
            etag: None,
            content_type: ct.map(str::to_string),
        };
        let images = crate::config::ModuleRules {
            extensions: Some(vec!["png".into(), "jpg".into()]),
            max_bytes: 10,
        };
        assert!(content_type_allowed(&images, &obj(Some("image/png"))));
        assert!(content_type_allowed(
            &images,
            &obj(Some("Image/JPEG; charset=x"))
        ));
        assert!(!content_type_allowed(&images, &obj(Some("text/html"))));
        assert!(!content_type_allowed(
            &images,
            &obj(Some("binary/octet-stream"))
        ));
        assert!(content_type_allowed(&images, &obj(None)));
        let any = crate::config::ModuleRules {
            extensions: None,
            max_bytes: 10,
        };
        assert!(content_type_allowed(&any, &obj(Some("text/html"))));
    }
}
