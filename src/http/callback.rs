//! `POST /upload/callback`: extract, call the domain ([`crate::upload::callback`]), answer.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::http::middleware::REQUEST_ID;
use crate::http::{read_body, success, JsonAnswer, Success};
use crate::providers::registry::callback_origin;
use crate::providers::{CallbackInput, CallbackOrigin};
use crate::upload::callback::{self, Caller, Marked};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/upload/callback", post(handle))
}

async fn handle(
    State(state): State<AppState>,
    req: Request,
) -> Result<JsonAnswer<Success<Marked>>, ApiError> {
    let deadline = crate::upload::service::upstream_deadline(
        tokio::time::Instant::now(),
        std::time::Duration::from_millis(state.config.server.request_timeout_ms),
    );
    let (parts, body): (_, Body) = req.into_parts();
    let caller = match callback_origin(&parts.headers) {
        CallbackOrigin::User => Caller::User(authenticate(&state, &parts.headers).await?.sub),
        CallbackOrigin::Cloud(cloud) => Caller::Cloud(cloud),
    };
    let body = read_body(&state, &parts.headers, body).await?;
    let request_id = parts
        .headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let input = CallbackInput {
        method: parts.method.to_string(),
        raw_path: parts.uri.path().to_string(),
        raw_query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    let marked = callback::record(&state, caller, &input, &request_id, deadline).await?;
    Ok(success(marked))
}
