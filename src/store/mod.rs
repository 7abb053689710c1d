//! The ledger: one trait, a SQLite and a PostgreSQL implementation (runtime queries, one
//! migrations folder per dialect).

pub mod batch;
pub mod postgres;
pub mod sqlite;

pub use batch::Finished;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

/// A database failure; the message is for logs only (it may name tables, never secrets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or answered with an error.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors never contain the connection password.
        StoreError::Unavailable(e.to_string())
    }
}

/// A row to insert when an objectId is allocated.
#[derive(Debug, Clone)]
pub struct NewObject {
    /// JWT sub.
    pub owner: String,
    /// Cloud type code.
    pub cloud_type: i64,
    /// Module wire name.
    pub module: String,
    /// `web` or `app`.
    pub platform: String,
    /// `projectId`.
    pub project_id: Option<i64>,
    /// Lower-case extension.
    pub extension: String,
    /// `isDir`.
    pub is_dir: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A ledger row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRecord {
    /// objectId.
    pub object_id: i64,
    /// JWT sub.
    pub owner: String,
    /// Cloud type code.
    #[serde(rename = "type")]
    pub cloud_type: i64,
    /// Module.
    pub upload_module: String,
    /// Platform.
    pub platform: String,
    /// Project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    /// Extension.
    pub extension: String,
    /// Folder upload.
    pub is_dir: bool,
    /// Bucket (once issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Object key or prefix (once issued).
    #[serde(rename = "relativePath", skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// `issued`, `uploaded`, `consumed`, `failed`, `expired`, `rejected`.
    pub status: String,
    /// Unix seconds.
    #[serde(skip)]
    pub created_at: i64,
    /// Unix seconds.
    #[serde(skip)]
    pub expires_at: Option<i64>,
    /// Unix seconds.
    #[serde(skip)]
    pub uploaded_at: Option<i64>,
    /// Bytes, from the callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// MIME type, from the callback.
    #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// ETag, from the callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Who vouched for size/mime/etag: `client`, `cloud-callback`, `head` (the cloud's
    /// `HEAD` of the object) or `store` (once uploaded or rejected).
    #[serde(rename = "verifiedBy", skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// Unix seconds, once consumed.
    #[serde(skip)]
    pub consumed_at: Option<i64>,
    /// What the consuming service attached the object to, once consumed.
    #[serde(rename = "consumedRef", skip_serializing_if = "Option::is_none")]
    pub consumed_ref: Option<String>,
}

/// A record as the API shows it (`GET /upload/objects/{id}`'s `data`, a webhook's `data`):
/// the ledger row with its times as RFC 3339.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDto {
    #[serde(flatten)]
    record: ObjectRecord,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumed_at: Option<String>,
}

impl From<ObjectRecord> for ObjectDto {
    fn from(record: ObjectRecord) -> Self {
        use crate::clock::rfc3339;
        ObjectDto {
            created_at: rfc3339(record.created_at),
            expires_at: record.expires_at.map(rfc3339),
            uploaded_at: record.uploaded_at.map(rfc3339),
            consumed_at: record.consumed_at.map(rfc3339),
            record,
        }
    }
}

/// The webhook event types (the outbox's `event_type`).
pub const EVENT_TYPES: [&str; 4] = [
    "object.uploaded",
    "object.rejected",
    "object.expired",
    "object.consumed",
];

/// A webhook event about to be written to the outbox with its state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// UUID, the `Stsgate-Event-Id`.
    pub event_id: String,
    /// One of [`EVENT_TYPES`].
    pub event_type: &'static str,
    /// The object it is about.
    pub object_id: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// `{"id","type","createdAt","data"}`: exactly the bytes POSTed and signed.
    pub body: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created_at: String,
    data: ObjectDto,
}

impl NewEvent {
    /// The event `event_type` about `record` (the row after the change) at `at`.
    pub fn new(event_type: &'static str, record: ObjectRecord, at: i64) -> NewEvent {
        let event_id = uuid::Uuid::new_v4().to_string();
        let object_id = record.object_id;
        let body = serde_json::to_string(&EventBody {
            id: &event_id,
            event_type,
            created_at: crate::clock::rfc3339(at),
            data: ObjectDto::from(record),
        })
        .expect("an event serialises");
        NewEvent {
            event_id,
            event_type,
            object_id,
            created_at: at,
            body,
        }
    }
}

/// An outbox event claimed for delivery (leased to this replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// UUID, the `Stsgate-Event-Id`.
    pub event_id: String,
    /// One of [`EVENT_TYPES`].
    pub event_type: String,
    /// The object it is about.
    pub object_id: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// The bytes to POST and sign.
    pub body: String,
    /// Delivery attempts started, this one included.
    pub attempts: i64,
}

/// Which records a service lists: ascending by objectId, after `after`, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this owner's.
    pub owner: Option<String>,
    /// Only in this state.
    pub status: Option<String>,
    /// Only objectIds greater than this (the last one of the previous page).
    pub after: i64,
    /// At most this many.
    pub limit: u32,
}

/// Result of consuming an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// `uploaded` → `consumed` now; the record after.
    Consumed(Box<ObjectRecord>),
    /// The object is in another state (already consumed, not uploaded yet, ...).
    WrongState(String),
    /// No such object.
    NotFound,
}

/// Who reports an upload's facts. A cloud's report replaces a client's earlier claim; a
/// client's claim never replaces the cloud's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FactSource {
    /// The uploading user, with its JWT.
    #[default]
    Client,
    /// A callback signed by the cloud.
    CloudCallback,
    /// The embedded store, which received the bytes itself.
    Store,
    /// stsgate's own `HEAD` of the object, signed with its long-term credentials.
    Head,
}

impl FactSource {
    /// The ledger's `verified_by` value.
    pub fn as_str(self) -> &'static str {
        match self {
            FactSource::Client => "client",
            FactSource::CloudCallback => "cloud-callback",
            FactSource::Store => "store",
            FactSource::Head => "head",
        }
    }
}

/// What a callback reports about a finished upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadFacts {
    /// Bytes.
    pub size: Option<i64>,
    /// MIME type.
    pub mime: Option<String>,
    /// ETag.
    pub etag: Option<String>,
    /// Who reports them.
    pub source: FactSource,
}

/// Result of marking an object uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// `issued`/`expired` → `uploaded` now, or a cloud's facts replaced a client's claim.
    Marked,
    /// Already `uploaded` (by the same or a more trusted source): nothing changed.
    AlreadyUploaded,
    /// The row is `failed`: no credentials were ever handed out for it.
    NotIssued,
    /// No such object.
    NotFound,
}

/// An Idempotency-Key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    /// Hash of the request parameters.
    pub params_hash: String,
    /// The objectId once allocated.
    pub object_id: Option<i64>,
    /// When the key was claimed (Unix seconds).
    pub claimed_at: i64,
}

/// The ledger.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Applies migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Inserts an `issued` row (no key yet: the trace left before an upstream call) and
    /// commits; returns the new objectId.
    async fn insert_object(&self, new: &NewObject) -> Result<i64, StoreError>;
    /// Reserves a fresh objectId without writing a row, for [`insert_finished`]. Never the
    /// same id twice; an id never written is a gap.
    ///
    /// [`insert_finished`]: ObjectStore::insert_finished
    async fn next_object_id(&self) -> Result<i64, StoreError>;
    /// Inserts the complete row of a reserved objectId in one statement and commits (clouds
    /// that sign locally: the key and expiry are known before anything is written).
    async fn insert_finished(
        &self,
        id: i64,
        new: &NewObject,
        end: &Finished,
    ) -> Result<(), StoreError>;
    /// Records what was issued (bucket, key, expiry).
    async fn complete_object(
        &self,
        id: i64,
        bucket: &str,
        key: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Marks the row `failed` with a short reason (no secrets).
    async fn fail_object(&self, id: i64, reason: &str) -> Result<(), StoreError>;
    /// One row.
    async fn get_object(&self, id: i64) -> Result<Option<ObjectRecord>, StoreError>;
    /// `issued`/`expired` → `uploaded` with the facts; idempotent. Facts from the cloud also
    /// replace those of a row a client marked; a client never replaces the cloud's.
    async fn mark_uploaded(
        &self,
        id: i64,
        facts: &UploadFacts,
        at: i64,
    ) -> Result<MarkOutcome, StoreError>;
    /// `issued`/`expired` (or `uploaded` on a client's word) → `rejected` with the cloud's
    /// facts (an upload that broke the module's rules), with its `object.rejected` event in
    /// the same transaction when notify is on. `Marked` when the row changed.
    async fn reject_object(
        &self,
        id: i64,
        facts: &UploadFacts,
        at: i64,
    ) -> Result<MarkOutcome, StoreError>;
    /// Records for a service, ascending by objectId (keyset paging: stable under inserts).
    async fn list_objects(&self, filter: &ListFilter) -> Result<Vec<ObjectRecord>, StoreError>;
    /// `uploaded` → `consumed` with `reference` at `at`, in one conditional statement: of
    /// concurrent consumes exactly one succeeds.
    async fn consume(
        &self,
        id: i64,
        reference: Option<&str>,
        at: i64,
    ) -> Result<ConsumeOutcome, StoreError>;
    /// A refresh: the `issued` row's credentials now last until `expires_at` (never earlier
    /// than before).
    async fn extend_expiry(&self, id: i64, expires_at: i64) -> Result<(), StoreError>;
    /// Claims at most `limit` outbox events due at `now` (not delivered, not dead, not leased
    /// by anyone until after `now`): leases them until `lease_until` and counts the attempt.
    /// Concurrent claims (other replicas) never get the same event while its lease holds.
    async fn claim_events(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError>;
    /// A claimed event was delivered (answered 2xx) at `at`.
    async fn event_delivered(&self, event_id: &str, at: i64) -> Result<(), StoreError>;
    /// A claimed event's delivery failed with `error` (short, no secrets): retried at
    /// `retry_at`, or, when `None`, marked dead at `at`.
    async fn event_failed(
        &self,
        event_id: &str,
        retry_at: Option<i64>,
        at: i64,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Outbox events neither delivered nor dead.
    async fn outbox_pending(&self) -> Result<i64, StoreError>;
    /// `issued` rows whose credentials lapsed → `expired`; returns how many.
    async fn expire_lapsed(&self, now: i64) -> Result<u64, StoreError>;
    /// `issued` rows that never got their key (the process died or the request was cut off
    /// between the insert and the completion) created before `created_before` → `failed`;
    /// returns how many.
    async fn fail_unfinished(&self, created_before: i64) -> Result<u64, StoreError>;
    /// The record of (owner, key), if any.
    async fn idem_get(&self, owner: &str, key: &str) -> Result<Option<IdemRecord>, StoreError>;
    /// Claims (owner, key) for `params_hash`; `false` when someone already holds it.
    async fn idem_claim(
        &self,
        owner: &str,
        key: &str,
        params_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Attaches the objectId to a claimed key.
    async fn idem_attach(&self, owner: &str, key: &str, object_id: i64) -> Result<(), StoreError>;
    /// Releases a claim whose issuance failed (so the client may retry).
    async fn idem_release(&self, owner: &str, key: &str) -> Result<(), StoreError>;
}

/// `database.sqlite_synchronous`: when a SQLite commit (WAL mode) is on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// `synchronous=NORMAL`: a commit survives a crash of the process, not a power loss
    /// (the WAL is synced at checkpoints only).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit syncs the WAL; it survives power loss.
    Full,
}

/// How a store is opened, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// SQLite only.
    pub sqlite_synchronous: SqliteSynchronous,
    /// PostgreSQL only: the server cancels a statement that runs (or waits for a lock)
    /// longer than this, so a request cut off by its deadline leaves nothing to commit
    /// later; `None`: no limit.
    pub statement_timeout: Option<std::time::Duration>,
    /// Webhooks are on: each change to `uploaded`, `expired` and `consumed` also writes its
    /// event to the outbox, in the same transaction.
    pub notify: bool,
}

/// Opens the store named by `url` (`sqlite:` or `postgres://`).
pub async fn connect(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    connect_with(url, &StoreOptions::default()).await
}

/// [`connect`] with options.
pub async fn connect_with(
    url: &str,
    options: &StoreOptions,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect_with(url, options).await?,
        ))
    } else {
        Ok(Arc::new(
            postgres::PgStore::connect_with(url, options).await?,
        ))
    }
}
