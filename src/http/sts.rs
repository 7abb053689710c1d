//! `GET|POST /upload/sts/info`: extract, call the domain, answer.
//!
//! Check order (docs/contract.md §1.3): authentication (401, the extractor), body size (413),
//! parameters (40001), cloud enabled (40002), extension (40003), projects (40301).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::{Json, Router};
use tokio::time::Instant;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::http::middleware::REQUEST_ID;
use crate::http::{read_body, success, Success};
use crate::upload::answer::StsAnswer;
use crate::upload::idempotency::valid_key;
use crate::upload::{params, service};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    // HEAD would run the GET handler (and allocate): it is refused instead.
    Router::new().route(
        "/upload/sts/info",
        get(info)
            .post(info)
            .head(|| async { ApiError::MethodNotAllowed }),
    )
}

async fn info(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Json<Success<StsAnswer>>, ApiError> {
    let start = Instant::now();
    let body = read_body(&state, &headers, body).await?;
    let fields = params::collect(uri.query(), &body)?;
    let p = params::validate(&fields)?;
    let idem_key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v.to_str().ok().filter(|k| valid_key(k)).ok_or_else(|| {
                ApiError::InvalidParam("Idempotency-Key: must be 1-64 of [A-Za-z0-9_.-]".into())
            })?;
            Some(k.to_string())
        }
        None => None,
    };
    service::authorize(&state, &user, &p)?;
    let deadline = service::upstream_deadline(
        start,
        std::time::Duration::from_millis(state.config.server.request_timeout_ms),
    );
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let answer =
        service::issue(&state, &user, &p, idem_key.as_deref(), deadline, request_id).await?;
    Ok(success(answer))
}
