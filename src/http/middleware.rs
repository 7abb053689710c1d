//! The middleware stack: request id (generated or propagated), trace span per request,
//! metrics by route template, a deadline that answers 504 (never 408), and a guard that
//! turns any non-envelope error from the framework into the envelope.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::app::AppState;
use crate::error::{envelope_for_status, ApiError, Enveloped, ErrorDetail};

/// `x-request-id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `routes` in the stack (outermost first: request id, trace+metrics, deadline,
/// envelope guard).
pub fn stack(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    routes
        .layer(middleware::from_fn(envelope_guard))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state, observe))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Any error status without our envelope gets one (framework rejections, 405s, ...).
async fn envelope_guard(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if (status.is_client_error() || status.is_server_error())
        && res.extensions().get::<Enveloped>().is_none()
    {
        let mut fixed = envelope_for_status(status);
        for (k, v) in res.headers() {
            if k == axum::http::header::ALLOW {
                fixed.headers_mut().insert(k.clone(), v.clone());
            }
        }
        return fixed;
    }
    res
}

/// The request deadline; a handler still running past it answers 504/50401.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_millis(state.config.server.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::CloudTimeout.into_response(),
    }
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// One span per request (with the request id, so every log line of it carries the id),
/// one log line per answer, and the request metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let rid = request_id(&req);
    let span = tracing::info_span!("request", request_id = %rid, method = %method, route = %route);
    let res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    state
        .metrics
        .http_request(&route, &method, status, elapsed.as_secs_f64());
    let _enter = span.enter();
    let duration_ms = elapsed.as_millis() as u64;
    match res.extensions().get::<ErrorDetail>() {
        Some(ErrorDetail(detail)) if status >= 500 => {
            tracing::error!(status, duration_ms, error = %detail, "request failed")
        }
        Some(ErrorDetail(detail)) => {
            tracing::info!(status, duration_ms, error = %detail, "request refused")
        }
        None => tracing::info!(status, duration_ms, "request served"),
    }
    drop(_enter);
    let mut res = res;
    if let Ok(v) = HeaderValue::from_str(&rid) {
        res.headers_mut().entry(REQUEST_ID).or_insert(v);
    }
    res
}
