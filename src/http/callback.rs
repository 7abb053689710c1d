//! `POST /upload/callback` (PRODUCT §1.4). Who is calling is decided by the headers:
//! `x-oss-pub-key-url` → Aliyun OSS (RSA signature only), `Authorization: QBox|Qiniu …` →
//! Qiniu (its signature only), otherwise the uploading user's JWT. A cloud-signed callback
//! must report the `bucket` and `object` of the ledger row. Marking is idempotent.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::http::middleware::REQUEST_ID;
use crate::http::read_body;
use crate::http::sts::{success, Success};
use crate::providers::registry::callback_origin;
use crate::providers::{CallbackInput, CallbackOrigin};
use crate::store::{MarkOutcome, UploadFacts};
use crate::upload::service::AUDIT_TARGET;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/upload/callback", post(callback))
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
        },
    })
}

/// The answer (OSS relays it to the uploader).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Marked {
    object_id: i64,
    status: &'static str,
}

async fn callback(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<Success<Marked>>, ApiError> {
    let (parts, body): (_, Body) = req.into_parts();
    let origin = callback_origin(&parts.headers);
    let owner = match origin {
        CallbackOrigin::User => Some(authenticate(&state, &parts.headers).await?.sub),
        CallbackOrigin::Cloud(_) => None,
    };
    let body = read_body(body, state.config.server.max_body_bytes).await?;
    let origin_label = match origin {
        CallbackOrigin::User => "user",
        CallbackOrigin::Cloud(c) => c.name(),
    };
    if let CallbackOrigin::Cloud(cloud) = origin {
        let provider = state.providers.get(cloud).ok_or_else(|| {
            ApiError::BadCallbackSignature(format!("{} callbacks are not enabled", cloud.name()))
        })?;
        let input = CallbackInput {
            method: parts.method.to_string(),
            raw_path: parts.uri.path().to_string(),
            raw_query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
            body: body.clone(),
        };
        if let Err(e) = provider.verify_callback(&input).await {
            state.metrics.callback(origin_label, "bad_signature");
            return Err(e.into());
        }
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let cb = parse_body(content_type, &body)?;
    let record = state
        .store
        .get_object(cb.object_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("object {}", cb.object_id)))?;
    if let Some(owner) = &owner {
        if &record.owner != owner {
            state.metrics.callback(origin_label, "forbidden");
            return Err(ApiError::Forbidden("not your object".into()));
        }
    } else {
        let key = record.object_key.as_deref().unwrap_or("");
        let object_ok = match cb.object.as_deref() {
            Some(o) if record.is_dir => {
                !key.is_empty() && o.starts_with(key) && o.len() > key.len()
            }
            Some(o) => o == key,
            None => false,
        };
        if cb.bucket.as_deref() != record.bucket.as_deref() || !object_ok {
            state.metrics.callback(origin_label, "mismatch");
            return Err(ApiError::Forbidden(
                "signed callback's bucket/object do not match the object".into(),
            ));
        }
    }
    if let Some(rt) = cb.resource_type {
        let expected = crate::upload::module::UploadModule::parse(&record.upload_module)
            .map(|m| i64::from(m.resource_type()));
        if Some(rt) != expected {
            return Err(ApiError::InvalidParam(
                "resourceType: does not match the object's uploadModule".into(),
            ));
        }
    }
    let outcome = state
        .store
        .mark_uploaded(cb.object_id, &cb.facts, state.clock.now_unix())
        .await?;
    match outcome {
        MarkOutcome::Marked | MarkOutcome::AlreadyUploaded => {
            state.metrics.callback(
                origin_label,
                if outcome == MarkOutcome::Marked {
                    "marked"
                } else {
                    "repeat"
                },
            );
            let request_id = parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info!(
                target: AUDIT_TARGET,
                event = "upload_callback",
                request_id,
                origin = origin_label,
                sub = %record.owner,
                object_id = cb.object_id,
                cloud_type = record.cloud_type,
                bucket = record.bucket.as_deref().unwrap_or(""),
                key = record.object_key.as_deref().unwrap_or(""),
                reported_object = cb.object.as_deref().unwrap_or(""),
                size = cb.facts.size,
                repeat = outcome == MarkOutcome::AlreadyUploaded,
                "upload recorded"
            );
            Ok(success(Marked {
                object_id: cb.object_id,
                status: "uploaded",
            }))
        }
        MarkOutcome::NotIssued => Err(ApiError::Forbidden(
            "object has no issued credentials (failed)".into(),
        )),
        MarkOutcome::NotFound => Err(ApiError::NotFound(format!("object {}", cb.object_id))),
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

    proptest! {
        #[test]
        fn never_panics(ct in proptest::option::of(".{0,30}"), body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_body(ct.as_deref(), &body);
        }
    }
}
