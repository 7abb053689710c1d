//! `GET /upload/objects/{objectId}`: the ledger record, for its owner.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::http::{success, Success};
use crate::store::ObjectRecord;
use crate::upload::callback::check_owner;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/upload/objects/{object_id}", get(show))
}

/// The record with its times as RFC 3339.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDto {
    #[serde(flatten)]
    record: ObjectRecord,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded_at: Option<String>,
}

impl From<ObjectRecord> for ObjectDto {
    fn from(record: ObjectRecord) -> Self {
        ObjectDto {
            created_at: rfc3339(record.created_at),
            expires_at: record.expires_at.map(rfc3339),
            uploaded_at: record.uploaded_at.map(rfc3339),
            record,
        }
    }
}

async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw_id): Path<String>,
) -> Result<Json<Success<ObjectDto>>, ApiError> {
    let id: i64 = raw_id
        .parse()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::InvalidParam("objectId: must be a positive integer".into()))?;
    let record = state
        .store
        .get_object(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("object {id}")))?;
    check_owner(&record, &user.sub)?;
    Ok(success(ObjectDto::from(record)))
}
