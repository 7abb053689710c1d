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
//! - [`cluster`]: the optional Redis connection replicas share (cluster-wide budget,
//!   idempotent answers, Tencent pool) and its failure policy.

pub mod app;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod providers;
pub mod secret;
pub mod store;
pub mod upload;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

pub use app::AppState;

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish for at most `server.shutdown_grace_ms`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_millis(state.config.server.shutdown_grace_ms);
    let router = http::router(state.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let sweeper = tokio::spawn(expiry_sweeper(state, rx));
    let result = tokio::select! {
        r = server => r,
        _ = async {
            let _ = rx2.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; dropping in-flight requests");
            Ok(())
        }
    };
    sweeper.abort();
    result
}

/// Marks `issued` rows whose credentials lapsed as `expired`, once a minute.
async fn expiry_sweeper(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match state.store.expire_lapsed(state.clock.now_unix()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "marked lapsed credentials expired"),
                    Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
                }
            }
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
}
