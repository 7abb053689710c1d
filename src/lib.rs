//! stsgate — a credential broker for direct-to-cloud uploads.
//!
//! Frontends call `GET /upload/sts/info` with a JWT; stsgate validates the request,
//! allocates an `objectId` in its ledger, picks the object key, obtains short-lived
//! credentials from the cloud that holds the bucket, and answers with everything needed
//! to upload directly — plus callback information so it learns when the upload finished.
//!
//! # Layout
//! - [`config`]: typed configuration, defaults < TOML < `STSGATE_*` environment (schema,
//!   environment layer, per-section validation).
//! - [`app`]: `App` (config, store, providers, verifier, metrics, clock) and `AppState`.
//! - [`error`]: `ApiError` and the one mapping to HTTP status + envelope; `StartupError`.
//! - [`http`]: routes, middleware (request id, trace, CORS, deadline) and the per-user
//!   request limit; no SQL, no signing.
//! - [`auth`]: JWT verification (secret, PEM or JWKS keys, pinned algorithms) and the
//!   extractor.
//! - [`upload`]: the domain — parameters, key layout, answers, idempotency, issuing,
//!   upload callbacks.
//! - [`store`]: the ledger trait with SQLite and PostgreSQL implementations.
//! - [`providers`]: the table of clouds (`registry`), one folder per cloud, and what they
//!   share: budget, retrying HTTP driver, crypto, answer parsing, browser forms.
//! - [`storage`]: the embedded S3-compatible object store (cloud type 2 with no cloud
//!   account), on its own listener; its provider is `providers::embedded`.
//! - [`notify`]: signed webhooks — the task that delivers the outbox the store writes.
//! - [`cluster`]: the optional Redis connection replicas share (cluster-wide budget,
//!   idempotent answers, Tencent pool) and its failure policy.

pub mod app;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod logline;
pub mod metrics;
pub mod notify;
pub mod providers;
pub mod secret;
pub mod storage;
pub mod store;
pub mod upload;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

pub use app::AppState;

/// Serves `state` on `listener` until `shutdown` completes, then closes idle connections
/// at once and lets in-flight requests finish for at most `server.shutdown_grace_ms`.
///
/// Each connection is HTTP/1.1 with a header-read timeout that also bounds an idle
/// keep-alive connection (`server.header_read_timeout_ms`); at most
/// `server.max_connections` are open at once (further ones wait in the listen backlog).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::service::TowerToHyperService;

    let server_cfg = &state.config.server;
    let grace = Duration::from_millis(server_cfg.shutdown_grace_ms);
    let header_timeout = Duration::from_millis(server_cfg.header_read_timeout_ms);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(server_cfg.max_connections));
    let router = http::router(state.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let store_task = match &state.storage {
        Some(store) => {
            let st = &state.config.storage;
            let store_listener = TcpListener::bind(&st.listen).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("storage.listen {}: {e}", st.listen))
            })?;
            tracing::info!(
                listen = %store_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                public_url = %st.public_url,
                dir = %st.dir,
                bucket = %st.bucket,
                "embedded object store on (cloud type 2): for development and single-node use; \
                 clustered deployments use a cloud or MinIO"
            );
            Some(tokio::spawn(store.clone().serve(
                store_listener,
                header_timeout,
                server_cfg.max_connections,
                grace,
                rx.clone(),
            )))
        }
        None => None,
    };
    let notifier = state
        .config
        .notify
        .enabled()
        .then(|| tokio::spawn(notify::run(state.clone(), rx.clone())));
    let sweeper = tokio::spawn(expiry_sweeper(state.clone(), rx));
    let graceful = accept_loop(
        listener,
        TowerToHyperService::new(router),
        header_timeout,
        slots,
        shutdown,
    )
    .await;
    let _ = tx.send(true);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "shutdown grace period over; dropping in-flight requests"
        );
    }
    sweeper.abort();
    if let Some(task) = notifier {
        // A delivery cut off here keeps its lease and is sent again once it lapses.
        let abort = task.abort_handle();
        if tokio::time::timeout(grace, task).await.is_err() {
            abort.abort();
        }
    }
    if let Some(task) = store_task {
        let _ = tokio::time::timeout(grace, task).await;
    }
    Ok(())
}

/// Accepts HTTP/1.1 connections on `listener` for `svc` until `shutdown` resolves: each with
/// a header-read timeout that also bounds an idle keep-alive connection, at most as many open
/// at once as `slots` has permits (further ones wait in the listen backlog). Returns the
/// handle that drains the open connections.
pub(crate) async fn accept_loop<S, B>(
    listener: TcpListener,
    svc: S,
    header_timeout: Duration,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    shutdown: impl Future<Output = ()>,
) -> hyper_util::server::graceful::GracefulShutdown
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc.clone()));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful
}

/// One pass of the sweeper: `issued` rows whose credentials lapsed become `expired`, and
/// `issued` rows that never got their key and are older than one request deadline (no
/// request can still complete them) become `failed`.
pub async fn sweep(state: &AppState) {
    let now = state.clock.now_unix();
    match state.store.expire_lapsed(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "marked lapsed credentials expired"),
        Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
    }
    let deadline_secs = state.config.server.request_timeout_ms.div_ceil(1000) as i64;
    match state.store.fail_unfinished(now - deadline_secs - 1).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "marked unfinished issuances failed"),
        Err(e) => tracing::warn!(error = %e, "unfinished-row sweep failed"),
    }
}

/// How often the metrics' histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Runs [`sweep`] once a minute, and the metrics' upkeep every [`METRICS_UPKEEP`]: the
/// recorder keeps every histogram sample until it is folded into the buckets, which a scrape
/// of `/metrics` also does — without one (no Prometheus configured) the samples piled up,
/// 24 bytes each: some 20 MB a minute at 15 k requests/s.
async fn expiry_sweeper(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut upkeep = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => sweep(&state).await,
            _ = upkeep.tick() => state.metrics.upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// Installs the tracing subscriber: level from `STSGATE_LOG` (or `RUST_LOG`, default
/// `info`), JSON lines when `STSGATE_LOG_FORMAT=json`.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("STSGATE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("STSGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Colour only for a terminal: escape codes cost a sixth of a request's instructions under
    // load (callgrind, docs/decisions.md) and are noise in a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    } else if ansi {
        let _ = builder.try_init();
    } else {
        // The same layout as the default formatter, without its generic path (logline.rs).
        let _ = builder
            .fmt_fields(logline::LineFields)
            .event_format(logline::LineFormat)
            .try_init();
    }
}
