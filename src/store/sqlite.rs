//! SQLite ledger (the default): WAL mode, `?` placeholders. Issuance writes go through one
//! writer connection owned by the group-commit task ([`super::batch`]); a pool of other
//! connections serves reads and the rarer writes (callbacks, idempotency keys, the sweeper),
//! which wait for the write lock with `busy_timeout`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use super::batch::{self, Batcher, Finished, IdPool, Write};
use super::{
    ConsumeOutcome, FactSource, IdemRecord, ListFilter, MarkOutcome, NewEvent, NewObject,
    ObjectRecord, ObjectStore, OutboxEvent, StoreError, StoreOptions, UploadFacts,
};

/// objectIds reserved per `sqlite_sequence` update (the next block is reserved when half of
/// one is left, so a restart skips at most two blocks).
const ID_BLOCK: usize = 1024;

/// Row counts of the `INSERT` statements the writer prepares. A batch of new rows uses the
/// smallest that holds them (the rows it does not use are bound NULL and filtered out), so
/// four statements serve every batch size: no statement is prepared under load, and a
/// batch of up to 64 new rows is one statement in autocommit, one call to the connection.
const SHAPES: [usize; 4] = [1, 4, 16, 64];

/// Columns of a new row.
const INSERT_COLUMNS: usize = 14;

/// The `INSERT` of each of [`SHAPES`].
static INSERT_SQL: std::sync::LazyLock<[String; 4]> = std::sync::LazyLock::new(|| {
    SHAPES.map(|rows| {
        let row = format!("({})", vec!["?"; INSERT_COLUMNS].join(", "));
        format!(
            "INSERT INTO objects (id, owner, cloud_type, module, platform, project_id, \
             extension, is_dir, status, failure, bucket, object_key, expires_at, created_at) \
             SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
            vec![row; rows].join(", ")
        )
    })
});

/// Inserts `rows` (at most the largest of [`SHAPES`]) in one statement.
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[(i64, &NewObject, &Option<Finished>)],
) -> Result<(), sqlx::Error> {
    let shape = SHAPES
        .iter()
        .position(|&n| n >= rows.len())
        .expect("a chunk fits the largest shape");
    let mut q = sqlx::query(&INSERT_SQL[shape]);
    for (id, n, end) in rows {
        let (status, failure) = batch::status_of(end);
        let (bucket, key, expires_at) = batch::issued_of(end);
        q = q
            .bind(*id)
            .bind(n.owner.as_str())
            .bind(n.cloud_type)
            .bind(n.module.as_str())
            .bind(n.platform.as_str())
            .bind(n.project_id)
            .bind(n.extension.as_str())
            .bind(i64::from(n.is_dir))
            .bind(status)
            .bind(failure)
            .bind(bucket)
            .bind(key)
            .bind(expires_at)
            .bind(n.created_at);
    }
    // Parameters past the last row stay unbound: NULL, filtered out by `column1 IS NOT NULL`.
    q.execute(conn).await?;
    Ok(())
}

/// SQLite-backed [`ObjectStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writes: Batcher,
    ids: Arc<IdPool>,
    notify: bool,
}

impl SqliteStore {
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
            "UPDATE objects SET status = ?, size = ?, mime = ?, etag = ?, \
             uploaded_at = COALESCE(uploaded_at, ?), verified_by = ? \
             WHERE id = ? AND (status IN ('issued', 'expired') \
               OR (? AND status = 'uploaded' AND verified_by = 'client')) \
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
            sqlx::query_scalar("SELECT status FROM objects WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Opens (creating with `mode=rwc`) the database in WAL mode, `synchronous=NORMAL`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// [`connect`](Self::connect) with options (`synchronous`).
    pub async fn connect_with(url: &str, o: &StoreOptions) -> Result<Self, StoreError> {
        Self::connect_checkpointing(url, o, CHECKPOINT_EVERY, REWIND_FRAMES).await
    }

    /// [`connect_with`](Self::connect_with), checkpointing `every` and rewinding the WAL
    /// past `rewind_frames`.
    async fn connect_checkpointing(
        url: &str,
        o: &StoreOptions,
        every: Duration,
        rewind_frames: i64,
    ) -> Result<Self, StoreError> {
        let sync = match o.sqlite_synchronous {
            super::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
            super::SqliteSynchronous::Full => SqliteSynchronous::Full,
        };
        let opts = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts.clone())
            .await?;
        // The writer never checkpoints: SQLite's automatic checkpoint runs inside the commit
        // that crosses 1000 WAL pages, stalling that batch and every request waiting on it
        // (the tail of the latency). A background task checkpoints instead (`PASSIVE`: it
        // copies what no reader still needs and never waits for the writer).
        let writer = SqliteConnection::connect_with(
            &opts
                .clone()
                .pragma("wal_autocheckpoint", "0")
                // A transaction's statement journal in memory, not a temporary file per batch.
                .pragma("temp_store", "memory"),
        )
        .await?;
        let rewind = Arc::new(std::sync::atomic::AtomicBool::new(false));
        spawn_checkpointer(pool.clone(), rewind.clone(), every, rewind_frames);
        Ok(SqliteStore {
            pool,
            writes: Batcher::spawn(SqliteWriter {
                conn: writer,
                rewind,
            }),
            ids: Arc::new(IdPool::new(ID_BLOCK)),
            notify: o.notify,
        })
    }

    /// The group-commit task's counters.
    pub fn batch_stats(&self) -> &batch::BatchStats {
        self.writes.stats()
    }
}

/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL frames (of a page each, 32 MB) past which the writer rewinds the WAL.
const REWIND_FRAMES: i64 = 8192;

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] on a pool connection until the pool is
/// closed; a failed checkpoint is retried at the next tick.
///
/// `PASSIVE` copies what it can without waiting for anyone, but it never lets the WAL start
/// over: SQLite rewinds the WAL only when a write begins with every frame copied, which a
/// writer that never pauses never finds, and the WAL grew by some 6 KB per issued objectId,
/// forever (100 MB a second in the load benchmark). So once a pass finds more than
/// [`REWIND_FRAMES`] in the WAL, a second pass copies what was written during the first,
/// then it raises `rewind`, and the writer, between two batches, checkpoints the few frames
/// written since on its own connection; with no other writer
/// that copies everything, and its next write starts the WAL from the beginning. (A
/// `RESTART` checkpoint from here would do the same, but it takes the write lock away from
/// the writer, whose busy handler then sleeps in steps of several milliseconds: every
/// rewind stalled the batches by 5–15 ms.)
fn spawn_checkpointer(
    pool: sqlx::SqlitePool,
    rewind: Arc<std::sync::atomic::AtomicBool>,
    every: Duration,
    rewind_frames: i64,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            match checkpoint_pass(&pool).await {
                Ok(frames) if frames > rewind_frames => {
                    // Once more, so that the writer is left only what was written during
                    // this short second pass (its copy and syncs stall the batches).
                    let _ = checkpoint_pass(&pool).await;
                    rewind.store(true, std::sync::atomic::Ordering::Release);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "WAL checkpoint failed; retried at the next tick")
                }
            }
        }
    });
}

/// One `PASSIVE` checkpoint; the number of frames in the WAL.
async fn checkpoint_pass(pool: &sqlx::SqlitePool) -> Result<i64, sqlx::Error> {
    // (busy, frames in the WAL, frames copied)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok(frames)
}

/// The writer connection of the group-commit task.
struct SqliteWriter {
    conn: SqliteConnection,
    /// Raised by the checkpointer: the WAL is long, copy the rest and let it start over.
    rewind: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl batch::Writer for SqliteWriter {
    async fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let largest = SHAPES[SHAPES.len() - 1];
        let inserts: Vec<_> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Insert { id, row, end } => Some((*id, row, end)),
                _ => None,
            })
            .collect();
        if inserts.len() == writes.len() && inserts.len() <= largest {
            // One statement in autocommit: its own transaction, all rows or none.
            insert_rows(&mut self.conn, &inserts).await?;
            return Ok(());
        }
        let mut tx = self.conn.begin().await?;
        for chunk in inserts.chunks(largest) {
            insert_rows(&mut tx, chunk).await?;
        }
        for w in writes {
            match w {
                Write::Insert { .. } => {}
                Write::Complete {
                    id,
                    bucket,
                    key,
                    expires_at,
                } => {
                    sqlx::query(
                        "UPDATE objects SET bucket = ?, object_key = ?, expires_at = ? WHERE id = ?",
                    )
                    .bind(bucket)
                    .bind(key)
                    .bind(expires_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Fail { id, reason } => {
                    sqlx::query("UPDATE objects SET status = 'failed', failure = ? WHERE id = ?")
                        .bind(reason)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn after_batch(&mut self) {
        if self.rewind.swap(false, std::sync::atomic::Ordering::AcqRel) {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut self.conn)
                .await
            {
                tracing::debug!(error = %e, "WAL rewind checkpoint failed");
            }
        }
    }

    async fn reserve(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.conn.begin().await?;
        // AUTOINCREMENT keeps the highest id ever used in sqlite_sequence; moving it past the
        // block keeps the block from every later reservation and automatic id.
        sqlx::query(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'objects', 0 \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'objects')",
        )
        .execute(&mut *tx)
        .await?;
        let top: i64 = sqlx::query_scalar(
            "UPDATE sqlite_sequence SET seq = max(seq, (SELECT COALESCE(MAX(id), 0) FROM objects)) + ? \
             WHERE name = 'objects' RETURNING seq",
        )
        .bind(n as i64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((top - n as i64 + 1..=top).collect())
    }
}

const COLUMNS: &str = "id, owner, cloud_type, module, platform, project_id, extension, is_dir, \
     bucket, object_key, status, created_at, expires_at, uploaded_at, size, mime, etag, verified_by, \
     consumed_at, consumed_ref";

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<ObjectRecord, sqlx::Error> {
    Ok(ObjectRecord {
        object_id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        cloud_type: row.try_get("cloud_type")?,
        upload_module: row.try_get("module")?,
        platform: row.try_get("platform")?,
        project_id: row.try_get("project_id")?,
        extension: row.try_get("extension")?,
        is_dir: row.try_get::<i64, _>("is_dir")? != 0,
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
async fn insert_event(conn: &mut SqliteConnection, e: &NewEvent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, object_id, created_at, body, next_attempt_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&e.event_id)
    .bind(e.event_type)
    .bind(e.object_id)
    .bind(e.created_at)
    .bind(&e.body)
    .bind(e.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl ObjectStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        {
            Ok(r) => r.map(|_| ()).map_err(Into::into),
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
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM objects WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    async fn list_objects(&self, f: &ListFilter) -> Result<Vec<ObjectRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM objects WHERE id > ? AND (? IS NULL OR owner = ?) \
             AND (? IS NULL OR status = ?) ORDER BY id LIMIT ?"
        ))
        .bind(f.after)
        .bind(&f.owner)
        .bind(&f.owner)
        .bind(&f.status)
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
            "UPDATE objects SET status = 'consumed', consumed_at = ?, consumed_ref = ? \
             WHERE id = ? AND status = 'uploaded' RETURNING {COLUMNS}"
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
        sqlx::query("UPDATE objects SET expires_at = max(COALESCE(expires_at, 0), ?) WHERE id = ? AND status = 'issued'")
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
            "UPDATE objects SET status = 'expired' WHERE status = 'issued' AND expires_at < ? \
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
        // A read first: it takes no lock, so an idle outbox never makes the issuance
        // writer wait for the write lock.
        let due: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL \
             AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?))",
        )
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        if !due {
            return Ok(Vec::new());
        }
        // One statement: SQLite runs writers one at a time, so two replicas (processes on
        // one file) never claim the same row.
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = ?, attempts = attempts + 1 WHERE seq IN ( \
               SELECT seq FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL \
               AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) \
               ORDER BY next_attempt_at, seq LIMIT ?) \
             RETURNING event_id, event_type, object_id, created_at, body, attempts",
        )
        .bind(lease_until)
        .bind(now)
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
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn event_delivered(&self, event_id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = ?, lease_until = NULL, last_error = NULL \
             WHERE event_id = ? AND delivered_at IS NULL",
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
            "UPDATE outbox SET lease_until = NULL, last_error = ?, \
             next_attempt_at = COALESCE(?, next_attempt_at), \
             dead_at = CASE WHEN ? IS NULL THEN ? END \
             WHERE event_id = ? AND delivered_at IS NULL AND dead_at IS NULL",
        )
        .bind(error)
        .bind(retry_at)
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
            "UPDATE objects SET status = 'failed', failure = 'never completed (interrupted before the credentials were recorded)' WHERE status = 'issued' AND object_key IS NULL AND created_at < ?",
        )
        .bind(created_before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn idem_get(&self, owner: &str, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT params_hash, object_id, created_at FROM idempotency_keys WHERE owner = ? AND idem_key = ?",
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
             VALUES (?, ?, ?, ?) ON CONFLICT (owner, idem_key) DO NOTHING",
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
        sqlx::query("UPDATE idempotency_keys SET object_id = ? WHERE owner = ? AND idem_key = ?")
            .bind(object_id)
            .bind(owner)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn idem_release(&self, owner: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE owner = ? AND idem_key = ?")
            .bind(owner)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewObject;

    /// The group-commit writer never checkpoints (its commits stay short), yet the WAL
    /// reaches the database file within a few ticks: the background task copies it (without
    /// it, nothing here would: the pool's connections write nothing).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_in_the_background_not_by_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let store = SqliteStore::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // Wait for the migration's pages to be checkpointed, then measure.
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        let before = std::fs::metadata(&path).unwrap().len();
        let new = NewObject {
            owner: "alice".into(),
            cloud_type: 0,
            module: "resource_image".into(),
            platform: "web".into(),
            project_id: None,
            extension: "png".into(),
            is_dir: false,
            created_at: 1_700_000_000,
        };
        for _ in 0..3000 {
            store.insert_object(&new).await.unwrap();
        }
        let wal = path.with_extension("db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        let mut grown = false;
        for _ in 0..40 {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if std::fs::metadata(&path).unwrap().len() > before {
                grown = true;
                break;
            }
        }
        assert!(
            grown,
            "the rows reached the database file through a checkpoint"
        );
    }

    /// Under writes that never pause, the WAL still starts over: its size stays near the
    /// rewind threshold instead of growing with every row (without the writer's rewind it
    /// grew by about a page per row here, to 40 MB).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_rewound_under_sustained_writes() {
        const CHECKPOINT: Duration = Duration::from_millis(20);
        const REWIND: i64 = 256;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // Every 20 ms, past 256 frames (1 MB).
        let store = Arc::new(
            SqliteStore::connect_checkpointing(&url, &StoreOptions::default(), CHECKPOINT, REWIND)
                .await
                .unwrap(),
        );
        store.migrate().await.unwrap();
        let wal = path.with_extension("db-wal");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let largest = {
            let (wal, stop) = (wal.clone(), stop.clone());
            tokio::spawn(async move {
                let mut largest = 0;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                largest
            })
        };
        // 64 writers, 64 owners: every batch touches a page of the owner index per row.
        let mut writers = Vec::new();
        for w in 0..64 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let new = NewObject {
                    owner: format!("owner-{w:02}"),
                    cloud_type: 0,
                    module: "resource_image".into(),
                    platform: "web".into(),
                    project_id: None,
                    extension: "png".into(),
                    is_dir: false,
                    created_at: 1_700_000_000,
                };
                for _ in 0..200 {
                    let id = store.next_object_id().await.unwrap();
                    let end = Finished::Issued {
                        bucket: "b".into(),
                        key: format!("k/{id}"),
                        expires_at: 1_700_003_600,
                    };
                    store.insert_finished(id, &new, &end).await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        let largest = largest.await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM objects")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(rows, 64 * 200);
        assert!(
            largest < 20 << 20,
            "the WAL stayed near the 1 MB rewind threshold: it reached {largest} bytes"
        );
    }
}
