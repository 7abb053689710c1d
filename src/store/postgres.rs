//! PostgreSQL ledger: `$n` placeholders; what stateless replicas share. Issuance writes go
//! through the group-commit task ([`super::batch`]): one transaction per batch, new rows in
//! multi-row `INSERT`s; objectIds come from the identity sequence in blocks.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use super::batch::{self, Batcher, Finished, IdPool, Write};
use super::{
    ConsumeOutcome, FactSource, IdemRecord, ListFilter, MarkOutcome, NewEvent, NewObject,
    ObjectRecord, ObjectStore, OutboxEvent, StoreError, UploadFacts,
};

/// objectIds taken from the sequence per reservation (the next block is taken when half of
/// one is left, so a restart skips at most two blocks; replicas interleave their blocks).
const ID_BLOCK: usize = 512;

/// A batch in one statement (the JSON arrays of [`BatchJson`]): its own transaction, one
/// round trip, prepared once per connection whatever the batch's size. The data-modifying
/// parts all run; no row is both inserted and updated in one batch (a row's completion is
/// queued only after its insert committed).
const APPLY_BATCH: &str = "WITH \
    inserted AS (INSERT INTO objects (id, owner, cloud_type, module, platform, project_id, \
        extension, is_dir, status, failure, bucket, object_key, expires_at, created_at) \
        SELECT id, owner, cloud_type, module, platform, project_id, extension, is_dir, status, \
        failure, bucket, object_key, expires_at, created_at \
        FROM json_populate_recordset(NULL::objects, $1::json)), \
    completed AS (UPDATE objects o SET bucket = c.bucket, object_key = c.object_key, \
        expires_at = c.expires_at \
        FROM json_populate_recordset(NULL::objects, $2::json) AS c WHERE o.id = c.id), \
    failed AS (UPDATE objects o SET status = 'failed', failure = c.failure \
        FROM json_populate_recordset(NULL::objects, $3::json) AS c WHERE o.id = c.id) \
    SELECT 1";

/// PostgreSQL-backed [`ObjectStore`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    writes: Batcher,
    ids: Arc<IdPool>,
    notify: bool,
}

/// The group-commit task's side: transactions on a pool connection.
struct PgWriter {
    pool: PgPool,
}

/// A batch as three JSON arrays, one bound parameter each, so that a batch of any size is
/// the same SQL text (prepared once per connection) and one round trip; PostgreSQL unpacks
/// them with `json_populate_recordset` (keys are the `objects` column names).
#[derive(Debug, Default)]
struct BatchJson {
    /// New rows: every column of an issuance.
    inserts: String,
    /// `{id, bucket, object_key, expires_at}` of rows completed after their upstream call.
    completes: String,
    /// `{id, failure}` of rows that failed after their upstream call.
    fails: String,
}

#[derive(serde::Serialize)]
struct InsertRow<'a> {
    id: i64,
    owner: &'a str,
    cloud_type: i64,
    module: &'a str,
    platform: &'a str,
    project_id: Option<i64>,
    extension: &'a str,
    is_dir: i64,
    status: &'static str,
    failure: Option<&'a str>,
    bucket: Option<&'a str>,
    object_key: Option<&'a str>,
    expires_at: Option<i64>,
    created_at: i64,
}

#[derive(serde::Serialize)]
struct CompleteRow<'a> {
    id: i64,
    bucket: &'a str,
    object_key: &'a str,
    expires_at: i64,
}

#[derive(serde::Serialize)]
struct FailRow<'a> {
    id: i64,
    failure: &'a str,
}

/// Appends `row` to the JSON array in `out` (opened with `[` on the first row).
fn push_json<T: serde::Serialize>(out: &mut String, row: &T) {
    out.push(if out.is_empty() { '[' } else { ',' });
    // A struct of strings and integers always serialises.
    out.push_str(&serde_json::to_string(row).unwrap_or_default());
}

impl BatchJson {
    /// Encodes `writes` (in their order within each array).
    fn encode(writes: &[Write]) -> BatchJson {
        let mut b = BatchJson {
            inserts: String::with_capacity(writes.len() * 256),
            ..BatchJson::default()
        };
        for w in writes {
            match w {
                Write::Insert { id, row, end } => {
                    let (status, failure) = batch::status_of(end);
                    let (bucket, object_key, expires_at) = batch::issued_of(end);
                    push_json(
                        &mut b.inserts,
                        &InsertRow {
                            id: *id,
                            owner: &row.owner,
                            cloud_type: row.cloud_type,
                            module: &row.module,
                            platform: &row.platform,
                            project_id: row.project_id,
                            extension: &row.extension,
                            is_dir: i64::from(row.is_dir),
                            status,
                            failure,
                            bucket,
                            object_key,
                            expires_at,
                            created_at: row.created_at,
                        },
                    );
                }
                Write::Complete {
                    id,
                    bucket,
                    key,
                    expires_at,
                } => push_json(
                    &mut b.completes,
                    &CompleteRow {
                        id: *id,
                        bucket,
                        object_key: key,
                        expires_at: *expires_at,
                    },
                ),
                Write::Fail { id, reason } => push_json(
                    &mut b.fails,
                    &FailRow {
                        id: *id,
                        failure: reason,
                    },
                ),
            }
        }
        for a in [&mut b.inserts, &mut b.completes, &mut b.fails] {
            a.push_str(if a.is_empty() { "[]" } else { "]" });
        }
        b
    }
}

#[async_trait]
impl batch::Writer for PgWriter {
    async fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        // One statement: its own transaction, one round trip, the same text for any batch.
        let b = BatchJson::encode(writes);
        sqlx::query(APPLY_BATCH)
            .bind(&b.inserts)
            .bind(&b.completes)
            .bind(&b.fails)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reserve(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
        // nextval never hands a value out twice; a value whose row was never committed is a
        // gap. A committed row's id is durable with it (the sequence's WAL record precedes it).
        Ok(sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('objects', 'id')) FROM generate_series(1, $1)",
        )
        .bind(n as i32)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl PgStore {
    /// Sets `status` and the upload facts on a row still open to them (`issued`/`expired`, or
    /// `uploaded` on a client's word when `replaces_client`), with its `event` in the same
    /// transaction when notify is on. Whether a row changed.
    async fn settle(
        &self,
        id: i64,
        f: &UploadFacts,
        at: i64,
        status: &str,
        event: &'static str,
        replaces_client: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE objects SET status = $1, size = $2, mime = $3, etag = $4, \
             uploaded_at = COALESCE(uploaded_at, $5), verified_by = $6 \
             WHERE id = $7 AND (status IN ('issued', 'expired') \
               OR ($8 AND status = 'uploaded' AND verified_by = 'client')) \
             RETURNING {COLUMNS}"
        ))
        .bind(status)
        .bind(f.size)
        .bind(&f.mime)
        .bind(&f.etag)
        .bind(at)
        .bind(f.source.as_str())
        .bind(id)
        .bind(replaces_client)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        if self.notify {
            insert_event(&mut tx, &NewEvent::new(event, record(&row)?, at)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The row's state, when it exists.
    async fn status_of(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT status FROM objects WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The group-commit task's counters.
    pub fn batch_stats(&self) -> &batch::BatchStats {
        self.writes.stats()
    }

    /// Connects a pool (connections are opened lazily after the first).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &super::StoreOptions::default()).await
    }

    /// [`connect`](Self::connect) with `options.statement_timeout` set on every connection.
    pub async fn connect_with(
        url: &str,
        options: &super::StoreOptions,
    ) -> Result<Self, StoreError> {
        let mut connect = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if let Some(t) = options.statement_timeout {
            connect = connect.options([("statement_timeout", t.as_millis().to_string())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(connect)
            .await?;
        Ok(PgStore {
            writes: Batcher::spawn(PgWriter { pool: pool.clone() }),
            ids: Arc::new(IdPool::new(ID_BLOCK)),
            notify: options.notify,
            pool,
        })
    }
}

const COLUMNS: &str = "id, owner, cloud_type, module, platform, project_id, extension, is_dir, \
     bucket, object_key, status, created_at, expires_at, uploaded_at, size, mime, etag, verified_by, \
     consumed_at, consumed_ref";

fn record(row: &sqlx::postgres::PgRow) -> Result<ObjectRecord, sqlx::Error> {
    Ok(ObjectRecord {
        object_id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        cloud_type: i64::from(row.try_get::<i32, _>("cloud_type")?),
        upload_module: row.try_get("module")?,
        platform: row.try_get("platform")?,
        project_id: row.try_get("project_id")?,
        extension: row.try_get("extension")?,
        is_dir: row.try_get::<i32, _>("is_dir")? != 0,
        bucket: row.try_get("bucket")?,
        object_key: row.try_get("object_key")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        uploaded_at: row.try_get("uploaded_at")?,
        size: row.try_get("size")?,
        mime: row.try_get("mime")?,
        etag: row.try_get("etag")?,
        verified_by: row.try_get("verified_by")?,
        consumed_at: row.try_get("consumed_at")?,
        consumed_ref: row.try_get("consumed_ref")?,
    })
}

/// Writes `event` to the outbox inside the transaction of its state change.
async fn insert_event(conn: &mut sqlx::PgConnection, e: &NewEvent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, object_id, created_at, body, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(&e.event_id)
    .bind(e.event_type)
    .bind(e.object_id)
    .bind(e.created_at)
    .bind(&e.body)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl ObjectStore for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Ready means the ledger can be written: take (and release) the lock an INSERT
        // needs, waiting at most half a second for it.
        let probe = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '500ms'")
                .execute(&mut *tx)
                .await?;
            sqlx::query("LOCK TABLE objects IN ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            tx.rollback().await?;
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StoreError::Unavailable("ready probe timed out".into())),
        }
    }

    async fn insert_object(&self, n: &NewObject) -> Result<i64, StoreError> {
        let id = self.ids.next(&self.writes).await?;
        self.writes
            .submit(Write::Insert {
                id,
                row: n.clone(),
                end: None,
            })
            .await?;
        Ok(id)
    }

    async fn next_object_id(&self) -> Result<i64, StoreError> {
        self.ids.next(&self.writes).await
    }

    async fn insert_finished(
        &self,
        id: i64,
        n: &NewObject,
        end: &Finished,
    ) -> Result<(), StoreError> {
        self.writes
            .submit(Write::Insert {
                id,
                row: n.clone(),
                end: Some(end.clone()),
            })
            .await
    }

    async fn complete_object(
        &self,
        id: i64,
        bucket: &str,
        key: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.writes
            .submit(Write::Complete {
                id,
                bucket: bucket.into(),
                key: key.into(),
                expires_at,
            })
            .await
    }

    async fn fail_object(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        self.writes
            .submit(Write::Fail {
                id,
                reason: reason.into(),
            })
            .await
    }

    async fn get_object(&self, id: i64) -> Result<Option<ObjectRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM objects WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    async fn list_objects(&self, f: &ListFilter) -> Result<Vec<ObjectRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM objects WHERE id > $1 AND ($2::TEXT IS NULL OR owner = $2) \
             AND ($3::TEXT IS NULL OR status = $3) ORDER BY id LIMIT $4"
        ))
        .bind(f.after)
        .bind(&f.owner)
        .bind(&f.status)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    async fn consume(
        &self,
        id: i64,
        reference: Option<&str>,
        at: i64,
    ) -> Result<ConsumeOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE objects SET status = 'consumed', consumed_at = $1, consumed_ref = $2 \
             WHERE id = $3 AND status = 'uploaded' RETURNING {COLUMNS}"
        ))
        .bind(at)
        .bind(reference)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let rec = record(&row)?;
            if self.notify {
                insert_event(&mut tx, &NewEvent::new("object.consumed", rec.clone(), at)).await?;
            }
            tx.commit().await?;
            return Ok(ConsumeOutcome::Consumed(Box::new(rec)));
        }
        tx.rollback().await?;
        Ok(match self.get_object(id).await? {
            Some(r) => ConsumeOutcome::WrongState(r.status),
            None => ConsumeOutcome::NotFound,
        })
    }

    async fn extend_expiry(&self, id: i64, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE objects SET expires_at = GREATEST(COALESCE(expires_at, 0), $1) WHERE id = $2 AND status = 'issued'")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mark_uploaded(
        &self,
        id: i64,
        f: &UploadFacts,
        at: i64,
    ) -> Result<MarkOutcome, StoreError> {
        let replaces_client = f.source != FactSource::Client;
        if self
            .settle(id, f, at, "uploaded", "object.uploaded", replaces_client)
            .await?
        {
            return Ok(MarkOutcome::Marked);
        }
        Ok(match self.status_of(id).await?.as_deref() {
            None => MarkOutcome::NotFound,
            Some("uploaded") => MarkOutcome::AlreadyUploaded,
            Some(_) => MarkOutcome::NotIssued,
        })
    }

    async fn reject_object(
        &self,
        id: i64,
        f: &UploadFacts,
        at: i64,
    ) -> Result<MarkOutcome, StoreError> {
        if self
            .settle(id, f, at, "rejected", "object.rejected", true)
            .await?
        {
            return Ok(MarkOutcome::Marked);
        }
        Ok(match self.status_of(id).await?.as_deref() {
            None => MarkOutcome::NotFound,
            Some("uploaded") | Some("rejected") => MarkOutcome::AlreadyUploaded,
            Some(_) => MarkOutcome::NotIssued,
        })
    }

    async fn expire_lapsed(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "UPDATE objects SET status = 'expired' WHERE status = 'issued' AND expires_at < $1 \
             RETURNING {COLUMNS}"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        if self.notify {
            for row in &rows {
                insert_event(&mut tx, &NewEvent::new("object.expired", record(row)?, now)).await?;
            }
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn claim_events(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        // Rows another replica is claiming right now are skipped, not waited for; rows it
        // claimed earlier carry its lease.
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 WHERE seq IN ( \
               SELECT seq FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL \
               AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY next_attempt_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING event_id, event_type, object_id, created_at, body, attempts",
        )
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEvent {
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    object_id: r.try_get("object_id")?,
                    created_at: r.try_get("created_at")?,
                    body: r.try_get("body")?,
                    attempts: i64::from(r.try_get::<i32, _>("attempts")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn event_delivered(&self, event_id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = $1, lease_until = NULL, last_error = NULL \
             WHERE event_id = $2 AND delivered_at IS NULL",
        )
        .bind(at)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn event_failed(
        &self,
        event_id: &str,
        retry_at: Option<i64>,
        at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET lease_until = NULL, last_error = $1, \
             next_attempt_at = COALESCE($2::BIGINT, next_attempt_at), \
             dead_at = CASE WHEN $2::BIGINT IS NULL THEN $3::BIGINT END \
             WHERE event_id = $4 AND delivered_at IS NULL AND dead_at IS NULL",
        )
        .bind(error)
        .bind(retry_at)
        .bind(at)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn fail_unfinished(&self, created_before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE objects SET status = 'failed', failure = 'never completed (interrupted before the credentials were recorded)' WHERE status = 'issued' AND object_key IS NULL AND created_at < $1",
        )
        .bind(created_before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn idem_get(&self, owner: &str, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT params_hash, object_id, created_at FROM idempotency_keys WHERE owner = $1 AND idem_key = $2",
        )
        .bind(owner)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(IdemRecord {
                params_hash: r.try_get("params_hash")?,
                object_id: r.try_get("object_id")?,
                claimed_at: r.try_get("created_at")?,
            }),
            None => None,
        })
    }

    async fn idem_claim(
        &self,
        owner: &str,
        key: &str,
        params_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (owner, idem_key, params_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (owner, idem_key) DO NOTHING",
        )
        .bind(owner)
        .bind(key)
        .bind(params_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn idem_attach(&self, owner: &str, key: &str, object_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET object_id = $1 WHERE owner = $2 AND idem_key = $3",
        )
        .bind(object_id)
        .bind(owner)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn idem_release(&self, owner: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE owner = $1 AND idem_key = $2")
            .bind(owner)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
