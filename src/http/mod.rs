//! The HTTP layer: routes, middleware, one module per resource. No SQL, no signing.

pub mod callback;
pub mod limit;
pub mod middleware;
pub mod objects;
pub mod ops;
pub mod sts;

use axum::{Json, Router};
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
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    middleware::stack(routes, state.clone()).with_state(state)
}

/// Reads a request body up to `limit` bytes (41301 beyond).
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge(limit))
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
pub fn success<T: Serialize>(data: T) -> Json<Success<T>> {
    Json(Success {
        code: 0,
        message: "",
        data,
    })
}
