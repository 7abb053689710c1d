//! `/healthz`, `/readyz`, `/metrics`, `/openapi.yaml`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

/// The contract, served verbatim from the repository root.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.yaml", get(openapi))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers. With Redis configured, its state is reported too but
/// does not make the replica unready: every shared feature has a per-replica fallback, and
/// taking every replica out of the load balancer at once would turn a Redis outage into a
/// full one.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.store.ping().await?;
    Ok(Json(match &state.cluster {
        None => json!({"status": "ready"}),
        Some(cluster) => {
            let redis = if cluster.ping().await.is_ok() {
                "ok"
            } else {
                "unavailable"
            };
            json!({"status": "ready", "redis": redis})
        }
    }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}
