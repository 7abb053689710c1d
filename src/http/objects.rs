//! The ledger records: `GET /upload/objects/{objectId}` for its owner or the service;
//! `GET /upload/objects` (list) and `POST /upload/objects/{objectId}/consume` for the service
//! only (a token whose `scope` holds `stsgate:service`; others get 403/40302).

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::http::{success, JsonAnswer, Success};
use crate::store::{ConsumeOutcome, ListFilter};
use crate::upload::callback::check_owner;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/upload/objects", get(list))
        .route("/upload/objects/{object_id}", get(show))
        .route("/upload/objects/{object_id}/consume", post(consume))
}

pub use crate::store::ObjectDto;

async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw_id): Path<String>,
) -> Result<JsonAnswer<Success<ObjectDto>>, ApiError> {
    let id = object_id(&raw_id)?;
    let record = state
        .store
        .get_object(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("object {id}")))?;
    if !user.service {
        check_owner(&record, &user.sub)?;
    }
    Ok(success(ObjectDto::from(record)))
}

fn object_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::InvalidParam("objectId: must be a positive integer".into()))
}

/// Most records one list answer holds.
pub const MAX_LIMIT: u32 = 1000;
/// Records per list answer when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 100;

/// The ledger states a record can be in.
pub const STATES: [&str; 6] = [
    "issued", "uploaded", "consumed", "failed", "expired", "rejected",
];

/// Parses the list query: `owner`, `status`, `after`, `limit` (each at most once).
pub fn list_filter(query: Option<&str>) -> Result<ListFilter, ApiError> {
    let mut f = ListFilter {
        limit: DEFAULT_LIMIT,
        ..ListFilter::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(ApiError::InvalidParam(format!("{k}: given twice")));
        }
        match &*k {
            "owner" if v.is_empty() => {}
            "owner" => {
                if !crate::upload::params::storable(&v) || v.len() > 256 {
                    return Err(ApiError::InvalidParam(
                        "owner: at most 256 characters, no control characters".into(),
                    ));
                }
                f.owner = Some(v.into_owned());
            }
            "status" if v.is_empty() => {}
            "status" => {
                if !STATES.contains(&&*v) {
                    return Err(ApiError::InvalidParam(format!(
                        "status: one of {}",
                        STATES.join(", ")
                    )));
                }
                f.status = Some(v.into_owned());
            }
            "after" => {
                f.after = v.parse().ok().filter(|a| *a >= 0).ok_or_else(|| {
                    ApiError::InvalidParam(
                        "after: a non-negative integer (the last objectId seen)".into(),
                    )
                })?;
            }
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| ApiError::InvalidParam(format!("limit: 1 to {MAX_LIMIT}")))?;
            }
            other => {
                return Err(ApiError::InvalidParam(format!(
                    "{other}: unknown parameter (owner, status, after, limit)"
                )))
            }
        }
    }
    Ok(f)
}

/// One page of records.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPage {
    items: Vec<ObjectDto>,
    /// The `after` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(query): RawQuery,
) -> Result<JsonAnswer<Success<ObjectPage>>, ApiError> {
    user.require_service()?;
    let filter = list_filter(query.as_deref())?;
    let records = state.store.list_objects(&filter).await?;
    let next_after = (records.len() == filter.limit as usize)
        .then(|| records.last().map(|r| r.object_id))
        .flatten();
    Ok(success(ObjectPage {
        items: records.into_iter().map(ObjectDto::from).collect(),
        next_after,
    }))
}

/// The optional body of a consume.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeBody {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// Checks a consume's `ref`: 1–128 printable characters (no control characters).
pub fn check_ref(reference: &str) -> Result<(), ApiError> {
    let n = reference.chars().count();
    if !(1..=128).contains(&n) || reference.chars().any(char::is_control) {
        return Err(ApiError::InvalidParam(
            "ref: 1 to 128 printable characters".into(),
        ));
    }
    Ok(())
}

async fn consume(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<JsonAnswer<Success<ObjectDto>>, ApiError> {
    user.require_service()?;
    let id = object_id(&raw_id)?;
    let bytes = crate::http::read_body(&state, &headers, body).await?;
    let reference = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let bad =
            |e: String| ApiError::InvalidParam(format!("body: not the JSON {{\"ref\": ...}}: {e}"));
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if !v.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        let b: ConsumeBody = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        b.reference
    };
    if let Some(r) = &reference {
        check_ref(r)?;
    }
    let now = state.clock.now_unix();
    match state.store.consume(id, reference.as_deref(), now).await? {
        ConsumeOutcome::Consumed(record) => {
            let record = *record;
            tracing::info!(
                target: crate::upload::service::AUDIT_TARGET,
                event = "object_consumed",
                object_id = id,
                service = %user.sub,
                reference = reference.as_deref().unwrap_or(""),
                "object consumed"
            );
            Ok(success(ObjectDto::from(record)))
        }
        ConsumeOutcome::WrongState(status) => Err(ApiError::WrongState {
            id,
            status,
            action: "consume",
            needs: "uploaded",
        }),
        ConsumeOutcome::NotFound => Err(ApiError::NotFound(format!("object {id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn list_filter_rules() {
        let f = list_filter(Some("owner=alice&status=uploaded&after=7&limit=2")).unwrap();
        assert_eq!(
            f,
            ListFilter {
                owner: Some("alice".into()),
                status: Some("uploaded".into()),
                after: 7,
                limit: 2
            }
        );
        assert_eq!(list_filter(None).unwrap().limit, DEFAULT_LIMIT);
        for bad in [
            "limit=0",
            "limit=1001",
            "after=-1",
            "after=x",
            "status=gone",
            "owner=a%00b",
            "x=1",
            "limit=1&limit=2",
        ] {
            let e = list_filter(Some(bad)).unwrap_err();
            assert_eq!(e.status_and_code().1, 40001, "{bad}");
        }
    }

    #[test]
    fn ref_rules() {
        assert!(check_ref("order-17").is_ok());
        assert!(check_ref(&"x".repeat(128)).is_ok());
        assert!(check_ref(&"é".repeat(128)).is_ok());
        for bad in ["", "a\u{0}b", "a\nb"] {
            assert!(check_ref(bad).is_err(), "{bad:?}");
        }
        assert!(check_ref(&"x".repeat(129)).is_err());
    }

    proptest! {
        /// Whatever the query, the filter is an error or within its rules.
        #[test]
        fn list_filter_accepts_only_valid_pages(q in "[a-z=&%0-9]{0,60}") {
            if let Ok(f) = list_filter(Some(&q)) {
                prop_assert!((1..=MAX_LIMIT).contains(&f.limit));
                prop_assert!(f.after >= 0);
                prop_assert!(f.status.as_deref().is_none_or(|s| STATES.contains(&s)));
                prop_assert!(f.owner.as_deref().is_none_or(|o| !o.chars().any(char::is_control)));
            }
        }

        #[test]
        fn accepted_refs_are_printable_and_short(r in "\\PC{0,140}") {
            if check_ref(&r).is_ok() {
                prop_assert!((1..=128).contains(&r.chars().count()));
            }
        }
    }
}
