//! The middleware stack: request id (generated or propagated), trace span per request,
//! metrics by route template, CORS (when `server.cors_allowed_origins` is set), a deadline
//! that answers 504 (never 408), and a guard that turns any non-envelope error from the
//! framework into the envelope.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::app::AppState;
use crate::error::{envelope_for_status, ApiError, Enveloped, ErrorDetail};

/// `x-request-id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// How long browsers may cache a preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Wraps `routes` in the stack (outermost first: request id, trace+metrics, CORS, deadline,
/// envelope guard). CORS sits inside the trace layer so preflights are logged and carry the
/// request id, and outside the handlers so error envelopes get its headers too.
pub fn stack(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    let mut routes = routes
        .layer(middleware::from_fn(envelope_guard))
        .layer(middleware::from_fn_with_state(state.clone(), deadline));
    if let Some(cors) = cors_layer(&state.config.server.cors_allowed_origins) {
        routes = routes.layer(cors);
    }
    routes
        .layer(middleware::from_fn_with_state(state, observe))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// CORS for `origins` (`["*"]`: any origin); `None` when the list is empty (no CORS headers,
/// browsers on other origins are refused). Entries are compared as origins
/// (`scheme://host[:port]`), so a trailing `/` or a default port in the config still matches.
/// Credentials (cookies) are never allowed: the token travels in `Authorization`.
pub fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| normalize_origin(o)))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                IDEMPOTENCY_KEY,
                REQUEST_ID,
            ])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER, header::DATE])
            .max_age(CORS_MAX_AGE),
    )
}

/// `scheme://host[:port]` as browsers send it in `Origin`: lower case, default port and
/// any path dropped.
fn normalize_origin(configured: &str) -> Option<HeaderValue> {
    let uri: axum::http::Uri = configured.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = match (uri.port_u16(), scheme.as_str()) {
        (None, _) | (Some(80), "http") | (Some(443), "https") => String::new(),
        (Some(p), _) => format!(":{p}"),
    };
    HeaderValue::from_str(&format!("{scheme}://{host}{port}")).ok()
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
    // No copies: the method is an enum for the standard ones, the route an `Arc<str>`.
    let method = req.method().clone();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let rid = request_id(&req);
    let span = tracing::info_span!("request", request_id = %rid, method = %method, route = %route);
    let res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    state
        .metrics
        .http_request(route, method.as_str(), status, elapsed.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::normalize_origin;
    use proptest::prelude::*;

    #[test]
    fn configured_origins_are_compared_as_browsers_send_them() {
        for (configured, origin) in [
            ("https://app.example.com", "https://app.example.com"),
            ("https://App.Example.com/", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:80/path", "http://127.0.0.1"),
        ] {
            assert_eq!(
                normalize_origin(configured).unwrap(),
                origin,
                "{configured}"
            );
        }
        assert!(normalize_origin("app.example.com").is_none());
        assert!(normalize_origin("").is_none());
    }

    proptest! {
        #[test]
        fn normalize_never_panics(s in ".{0,80}") {
            let _ = normalize_origin(&s);
        }
    }
}
