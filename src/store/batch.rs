//! Group commit: one writer task per database applies the issuance writes of concurrent
//! requests in shared transactions.
//!
//! A request sends its [`Write`] to the writer task and waits. The task takes the first
//! write queued, adds whatever else is queued at that moment (up to [`MAX_BATCH`]), and
//! applies them all in one transaction; every caller of that batch is answered after the
//! commit, with the same result. A failed batch rolls back as a whole, so it fails exactly
//! its own callers (503/50302) and leaves nothing of theirs in the ledger; the next batch
//! starts fresh. Nobody waits for a batch to fill: under light load a batch is one write,
//! under heavy load the queue that builds up during one commit becomes the next batch.
//!
//! objectIds come from [`IdPool`]: blocks reserved from the database (SQLite's
//! `sqlite_sequence` row of `objects`, PostgreSQL's identity sequence) through the same
//! writer, handed out from memory. So a cloud that signs locally knows its objectId before
//! it builds the key and writes the finished row in one statement; an id reserved and never
//! written is a gap, never a duplicate (a reservation is committed before any of its ids is
//! used, and a restart reserves past it).

use std::collections::VecDeque;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{NewObject, StoreError};

/// The most writes one transaction takes.
pub const MAX_BATCH: usize = 256;

/// How the row of an objectId written in one statement ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Credentials were issued for `key` in `bucket` until `expires_at`.
    Issued {
        /// Bucket.
        bucket: String,
        /// Object key or prefix.
        key: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// Nothing was handed out; `reason` is short and holds no secret.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One issuance write.
#[derive(Debug, Clone)]
pub enum Write {
    /// A new row with a reserved id: `issued` without a key yet (`end: None`, the row
    /// written before an upstream call), or finished.
    Insert {
        /// objectId from [`IdPool`].
        id: i64,
        /// The request's columns.
        row: NewObject,
        /// The rest of the row, when known.
        end: Option<Finished>,
    },
    /// Records what was issued for a row inserted earlier.
    Complete {
        /// objectId.
        id: i64,
        /// Bucket.
        bucket: String,
        /// Object key or prefix.
        key: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// Marks a row inserted earlier `failed`.
    Fail {
        /// objectId.
        id: i64,
        /// Short reason, no secrets.
        reason: String,
    },
}

/// What a database does for the writer task.
#[async_trait]
pub trait Writer: Send + 'static {
    /// Applies `writes` in one transaction: all of them or none.
    async fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError>;
    /// Reserves `n` fresh objectIds, committed before they are returned.
    async fn reserve(&mut self, n: usize) -> Result<Vec<i64>, StoreError>;
    /// Runs after a batch's callers were answered, before the next batch (SQLite rewinds
    /// its WAL here).
    async fn after_batch(&mut self) {}
}

enum Job {
    Write(Write, oneshot::Sender<Result<(), StoreError>>),
    Reserve(usize, oneshot::Sender<Result<Vec<i64>, StoreError>>),
}

/// Counters of the writer task (for tests and the benchmark's reasoning).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Transactions applied (committed or rolled back).
    pub batches: std::sync::atomic::AtomicU64,
    /// Writes in them.
    pub writes: std::sync::atomic::AtomicU64,
}

/// The handle of one writer task; cloning shares the task. The task ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    stats: std::sync::Arc<BatchStats>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Batcher {
    /// Starts the writer task on the current runtime.
    pub fn spawn<W: Writer>(writer: W) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = std::sync::Arc::new(BatchStats::default());
        tokio::spawn(run(writer, rx, stats.clone()));
        Batcher { tx, stats }
    }

    /// Applies `w` in the next batch; returns once that batch committed (or failed).
    pub async fn submit(&self, w: Write) -> Result<(), StoreError> {
        self.enqueue(w)?.await.map_err(|_| gone())?
    }

    /// Queues `w`; the receiver gets the result of its batch.
    fn enqueue(&self, w: Write) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Job::Write(w, done)).map_err(|_| gone())?;
        Ok(rx)
    }

    /// Reserves `n` objectIds through the writer.
    pub async fn reserve(&self, n: usize) -> Result<Vec<i64>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Job::Reserve(n, done)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The task's counters.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable("the database writer stopped".into())
}

async fn run<W: Writer>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Job>,
    stats: std::sync::Arc<BatchStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut writes = Vec::with_capacity(MAX_BATCH);
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                // Reservations are rare (one per block) and committed on their own.
                Job::Reserve(n, done) => {
                    let _ = done.send(writer.reserve(n).await);
                }
                Job::Write(w, done) => {
                    writes.push(w);
                    waiting.push(done);
                }
            }
            if writes.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if writes.is_empty() {
            continue;
        }
        let result = writer.apply(&writes).await;
        if let Err(e) = &result {
            tracing::warn!(writes = writes.len(), error = %e, "ledger batch failed; its requests answer 503");
        }
        stats.batches.fetch_add(1, Relaxed);
        stats.writes.fetch_add(writes.len() as u64, Relaxed);
        writes.clear();
        for done in waiting.drain(..) {
            let _ = done.send(result.clone());
        }
        writer.after_batch().await;
    }
}

/// objectIds reserved in blocks, handed out one at a time.
#[derive(Debug)]
pub struct IdPool {
    ids: std::sync::Mutex<VecDeque<i64>>,
    /// Held by whoever reserves (one reservation at a time, blocks appended in order).
    refill: tokio::sync::Mutex<()>,
    /// A reservation ahead of need is under way.
    ahead: std::sync::atomic::AtomicBool,
    block: usize,
}

impl IdPool {
    /// A pool reserving `block` ids at a time.
    pub fn new(block: usize) -> IdPool {
        IdPool {
            ids: std::sync::Mutex::new(VecDeque::new()),
            refill: tokio::sync::Mutex::new(()),
            ahead: std::sync::atomic::AtomicBool::new(false),
            block: block.max(1),
        }
    }

    /// The next id and how many are left after it.
    fn pop(&self) -> (Option<i64>, usize) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = ids.pop_front();
        (id, ids.len())
    }

    fn len(&self) -> usize {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Reserves one block through `batcher` (the caller holds `refill`).
    async fn reserve_block(&self, batcher: &Batcher) -> Result<(), StoreError> {
        let fresh = batcher.reserve(self.block).await?;
        if fresh.is_empty() {
            return Err(StoreError::Unavailable("no objectId reserved".into()));
        }
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(fresh);
        Ok(())
    }

    /// The next objectId. When fewer than half a block is left, the next block is reserved
    /// in the background, so that under load no request waits for a reservation (waiting
    /// once per block stalled every request at once); when the pool is empty, one caller
    /// reserves and the others wait for it.
    pub async fn next(self: &std::sync::Arc<Self>, batcher: &Batcher) -> Result<i64, StoreError> {
        use std::sync::atomic::Ordering;
        loop {
            let (id, left) = self.pop();
            if let Some(id) = id {
                if left < self.block / 2 && !self.ahead.swap(true, Ordering::AcqRel) {
                    let (pool, batcher) = (self.clone(), batcher.clone());
                    tokio::spawn(async move {
                        let refill = pool.refill.lock().await;
                        if pool.len() < pool.block / 2 {
                            if let Err(e) = pool.reserve_block(&batcher).await {
                                tracing::debug!(error = %e, "objectId reservation ahead failed");
                            }
                        }
                        drop(refill);
                        pool.ahead.store(false, Ordering::Release);
                    });
                }
                return Ok(id);
            }
            let _refill = self.refill.lock().await;
            if self.len() > 0 {
                continue;
            }
            self.reserve_block(batcher).await?;
        }
    }
}

/// The status and failure columns of an inserted row.
pub(crate) fn status_of(end: &Option<Finished>) -> (&'static str, Option<&str>) {
    match end {
        Some(Finished::Failed { reason }) => ("failed", Some(reason.as_str())),
        _ => ("issued", None),
    }
}

/// The bucket, key and expiry columns of an inserted row.
pub(crate) fn issued_of(end: &Option<Finished>) -> (Option<&str>, Option<&str>, Option<i64>) {
    match end {
        Some(Finished::Issued {
            bucket,
            key,
            expires_at,
        }) => (Some(bucket.as_str()), Some(key.as_str()), Some(*expires_at)),
        _ => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that records its batches and fails those containing a poisoned id.
    struct Recording {
        batches: Arc<Mutex<Vec<Vec<i64>>>>,
        next_id: i64,
        /// The first batch tells it started, then waits for the gate.
        gate: Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>,
    }

    fn id_of(w: &Write) -> i64 {
        match w {
            Write::Insert { id, .. } | Write::Complete { id, .. } | Write::Fail { id, .. } => *id,
        }
    }

    #[async_trait]
    impl Writer for Recording {
        async fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
            // The first batch waits for the test to queue more writes behind it.
            if let Some((started, gate)) = self.gate.take() {
                let _ = started.send(());
                let _ = gate.await;
            }
            let ids: Vec<i64> = writes.iter().map(id_of).collect();
            self.batches.lock().unwrap().push(ids.clone());
            if ids.contains(&666) {
                return Err(StoreError::Unavailable("poisoned".into()));
            }
            Ok(())
        }
        async fn reserve(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
            let out = (self.next_id..self.next_id + n as i64).collect();
            self.next_id += n as i64;
            Ok(out)
        }
    }

    fn fail(id: i64) -> Write {
        Write::Fail {
            id,
            reason: "r".into(),
        }
    }

    #[tokio::test]
    async fn writes_queued_during_a_commit_share_the_next_batch_and_its_result() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        let b = Batcher::spawn(Recording {
            batches: batches.clone(),
            next_id: 1,
            gate: Some((started_tx, gate)),
        });
        // The first write holds the writer; then 5 good writes and a poisoned one queue.
        let first = b.enqueue(fail(1)).unwrap();
        started.await.unwrap();
        let second: Vec<_> = [2, 3, 4, 666, 5, 6]
            .into_iter()
            .map(|id| b.enqueue(fail(id)).unwrap())
            .collect();
        open.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        for rx in second {
            let r = rx.await.unwrap();
            assert!(
                matches!(&r, Err(StoreError::Unavailable(m)) if m == "poisoned"),
                "{r:?}"
            );
        }
        // A later batch is not affected by the failed one.
        assert!(b.submit(fail(7)).await.is_ok());
        let seen = batches.lock().unwrap().clone();
        assert_eq!(seen, vec![vec![1], vec![2, 3, 4, 666, 5, 6], vec![7]]);
        assert_eq!(b.stats().batches.load(Relaxed), 3);
        assert_eq!(b.stats().writes.load(Relaxed), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn id_pool_hands_out_each_reserved_id_once() {
        let b = Batcher::spawn(Recording {
            batches: Arc::default(),
            next_id: 100,
            gate: None,
        });
        let pool = Arc::new(IdPool::new(7));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (pool, b) = (pool.clone(), b.clone());
            tasks.push(tokio::spawn(async move { pool.next(&b).await.unwrap() }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.sort_unstable();
        assert_eq!(ids, (100..150).collect::<Vec<_>>());
    }
}
