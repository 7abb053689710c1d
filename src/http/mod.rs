//! The HTTP layer: routes, middleware, one module per resource. No SQL, no signing.

pub mod callback;
pub mod demo;
pub mod limit;
pub mod middleware;
pub mod objects;
pub mod ops;
pub mod sts;

use axum::Router;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;

/// The full router with its middleware stack.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(sts::router())
        .merge(callback::router())
        .merge(objects::router())
        .merge(ops::router())
        .merge(demo::router(&state))
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    middleware::stack(routes, state.clone()).with_state(state)
}

/// Reads a request body of at most `server.max_body_bytes`: a declared `Content-Length`
/// beyond it is refused before anything is read (41301), a body that grows beyond it too,
/// and one that stops arriving for `server.body_read_timeout_ms` (at most three quarters of
/// `server.request_timeout_ms`) or breaks off is 40001.
pub async fn read_body(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<bytes::Bytes, ApiError> {
    let limit = state.config.server.max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    // Capped below the request deadline, so a stalled body is 40001, never 504.
    let server = &state.config.server;
    let timeout = std::time::Duration::from_millis(
        server
            .body_read_timeout_ms
            .min(server.request_timeout_ms * 3 / 4),
    );
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::InvalidParam(format!(
            "body: did not arrive within {} ms",
            timeout.as_millis()
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(ApiError::BodyTooLarge(limit)),
        Ok(Err(_)) => Err(ApiError::InvalidParam(
            "body: broke off before its end".into(),
        )),
    }
}

/// Whether reading stopped at the length limit (rather than a broken connection).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The success envelope.
#[derive(Serialize)]
pub struct Success<T: Serialize> {
    /// Always 0.
    pub code: u32,
    /// Always "".
    pub message: &'static str,
    /// The payload.
    pub data: T,
}

/// Wraps `data` in `{"code":0,"message":"","data":...}`.
pub fn success<T: Serialize>(data: T) -> JsonAnswer<Success<T>> {
    JsonAnswer(Success {
        code: 0,
        message: "",
        data,
    })
}

/// A JSON answer written into one buffer sized for a credential answer (axum's `Json` grows
/// a 128-byte buffer through `BytesMut`'s writer, one reserve check per piece).
pub struct JsonAnswer<T>(pub T);

impl<T: Serialize> axum::response::IntoResponse for JsonAnswer<T> {
    fn into_response(self) -> axum::response::Response {
        let mut buf = Vec::with_capacity(2048);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(e) => ApiError::Internal(format!("answer serialisation: {e}")).into_response(),
        }
    }
}
