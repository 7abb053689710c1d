//! `GET|POST /upload/sts/info`: extract, call the domain, answer.
//!
//! Check order (docs/contract.md §1.3): authentication (401, the extractor), body size (413),
//! parameters (40001), cloud enabled (40002), extension (40003), projects (40301).

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use tokio::time::Instant;

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::http::middleware::REQUEST_ID;
use crate::http::{read_body, success, JsonAnswer, Success};
use crate::upload::answer::StsAnswer;
use crate::upload::idempotency::valid_key;
use crate::upload::{params, service};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    // HEAD would run the GET handler (and allocate): it is refused instead.
    Router::new()
        .route(
            "/upload/sts/info",
            get(info)
                .post(info)
                .head(|| async { ApiError::MethodNotAllowed }),
        )
        .route("/upload/sts/refresh", post(refresh))
}

/// The request id the middleware set (for the audit event).
fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `Idempotency-Key` header, when sent (40001 when malformed).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        Some(v) => {
            let k = v.to_str().ok().filter(|k| valid_key(k)).ok_or_else(|| {
                ApiError::InvalidParam("Idempotency-Key: must be 1-64 of [A-Za-z0-9_.-]".into())
            })?;
            Ok(Some(k.to_string()))
        }
        None => Ok(None),
    }
}

/// The body of `POST /upload/sts/refresh`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshBody {
    object_id: i64,
    #[serde(default)]
    is_need_callback: u8,
}

/// Parses a refresh body: `{"objectId": N}` with an optional `isNeedCallback` 0 or 1.
fn refresh_body(bytes: &[u8]) -> Result<(i64, bool), ApiError> {
    let bad = |e: String| {
        ApiError::InvalidParam(format!(
            "body: expected {{\"objectId\": N, \"isNeedCallback\": 0|1}}: {e}"
        ))
    };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if !v.is_object() {
        return Err(bad("not a JSON object".into()));
    }
    let b: RefreshBody = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    if b.object_id <= 0 {
        return Err(ApiError::InvalidParam(
            "objectId: must be a positive integer".into(),
        ));
    }
    if b.is_need_callback > 1 {
        return Err(ApiError::InvalidParam(
            "isNeedCallback: must be 0 or 1".into(),
        ));
    }
    Ok((b.object_id, b.is_need_callback == 1))
}

async fn refresh(
    State(state): State<AppState>,
    req: Request,
) -> Result<JsonAnswer<Success<StsAnswer>>, ApiError> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let user = authenticate(&state, headers).await?;
    let body = read_body(&state, headers, body).await?;
    let (object_id, need_callback) = refresh_body(&body)?;
    let idem_key = idempotency_key(headers)?;
    let deadline = service::upstream_deadline(
        start,
        std::time::Duration::from_millis(state.config.server.request_timeout_ms),
    );
    let request_id = request_id(headers);
    let answer = service::refresh(
        &state,
        &user,
        object_id,
        need_callback,
        idem_key.as_deref(),
        deadline,
        request_id,
    )
    .await?;
    Ok(success(answer))
}

/// One extractor besides the state: the request is taken apart here rather than cloned into
/// extractors (the header map, the URI), and authentication comes first, as in every route.
async fn info(
    State(state): State<AppState>,
    req: Request,
) -> Result<JsonAnswer<Success<StsAnswer>>, ApiError> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let user = authenticate(&state, headers).await?;
    let body = read_body(&state, headers, body).await?;
    let fields = params::collect(parts.uri.query(), &body)?;
    let p = params::validate(&fields)?;
    let idem_key = idempotency_key(headers)?;
    service::authorize(&state, &user, &p)?;
    let deadline = service::upstream_deadline(
        start,
        std::time::Duration::from_millis(state.config.server.request_timeout_ms),
    );
    let request_id = request_id(headers);
    let answer =
        service::issue(&state, &user, &p, idem_key.as_deref(), deadline, request_id).await?;
    Ok(success(answer))
}

#[cfg(test)]
mod tests {
    use super::refresh_body;
    use proptest::prelude::*;

    #[test]
    fn refresh_bodies() {
        assert_eq!(refresh_body(br#"{"objectId": 7}"#).unwrap(), (7, false));
        assert_eq!(
            refresh_body(br#"{"objectId": 7, "isNeedCallback": 1}"#).unwrap(),
            (7, true)
        );
        for bad in [
            &b""[..],
            b"{}",
            br#"{"objectId": 0}"#,
            br#"{"objectId": -3}"#,
            br#"{"objectId": "7"}"#,
            br#"{"objectId": 7, "isNeedCallback": 2}"#,
            br#"{"objectId": 7, "x": 1}"#,
            b"[7]",
        ] {
            let e = refresh_body(bad).unwrap_err();
            assert_eq!(
                e.status_and_code().1,
                40001,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn refresh_body_never_panics_and_accepts_only_positive_ids(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok((id, _)) = refresh_body(&b) {
                prop_assert!(id > 0);
            }
        }
    }
}
