//! The embedded S3-compatible object store (`[storage]`): cloud type 2 with no cloud
//! account. It runs on its own listener inside the stsgate process and stops with it.
//!
//! - [`s3`]: single PUT and multipart uploads on the `s3s` crate (SigV4 header and
//!   presigned auth), admitted only with a valid session token for a write on a key the
//!   token's grant covers.
//! - [`post`]: POST Object (the browser form), with the policy enforced here.
//! - [`disk`]: atomic writes (temporary file, then rename) with MD5 ETags.
//! - [`paths`]: key → file, refusing every key that could leave `{dir}/{bucket}`.
//!
//! Every finished upload marks its ledger row `uploaded` (size, ETag, content type,
//! `verifiedBy: store`) — no client callback needed. Secrets of minted credentials are
//! never stored: they derive from the server key ([`crate::providers::embedded::sign`]).

pub mod disk;
pub mod paths;
pub mod post;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, Response};
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Config;
use crate::providers::embedded::sign::Grant;
use crate::secret::Secret;
use crate::store::{FactSource, ObjectStore, UploadFacts};

/// What every request of the store shares.
pub struct Core {
    /// `[storage] dir`.
    pub dir: PathBuf,
    /// `[storage] public_url` without a trailing slash.
    pub public_url: String,
    server_key: Secret,
    ledger: Arc<dyn ObjectStore>,
    /// Time (credential expiry).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("dir", &self.dir)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// The server key's bytes.
    pub fn server_key(&self) -> &[u8] {
        self.server_key.expose().as_bytes()
    }

    /// Records a finished upload of `key` under `grant` on its ledger row.
    pub async fn record(
        &self,
        grant: &Grant,
        key: &str,
        size: u64,
        etag: &str,
        content_type: Option<&str>,
    ) {
        let facts = UploadFacts {
            size: i64::try_from(size).ok(),
            mime: content_type.map(str::to_string),
            etag: Some(etag.to_string()),
            source: FactSource::Store,
        };
        let now = self.clock.now_unix();
        match self
            .ledger
            .mark_uploaded(grant.object_id, &facts, now)
            .await
        {
            Ok(outcome) => tracing::info!(
                object_id = grant.object_id,
                key,
                size,
                ?outcome,
                "embedded store: upload finished"
            ),
            // The object is stored; the ledger keeps `issued` and a client callback can
            // still record it.
            Err(e) => tracing::warn!(
                object_id = grant.object_id,
                error = %e,
                "embedded store: upload finished but the ledger did not record it"
            ),
        }
    }
}

/// The embedded store, ready to serve.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    core: Arc<Core>,
    s3: s3s::service::S3Service,
    cors: tower_http::cors::CorsLayer,
}

impl EmbeddedStore {
    /// Builds the store of `config` (whose `storage.secret` is resolved) over `ledger`.
    pub fn new(config: &Config, ledger: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>) -> Self {
        let st = &config.storage;
        let core = Arc::new(Core {
            dir: PathBuf::from(&st.dir),
            public_url: st.endpoint(),
            server_key: st.secret.clone(),
            ledger,
            clock,
        });
        disk::clean_tmp(&core.dir);
        let mut builder = s3s::service::S3ServiceBuilder::new(s3::Backend(core.clone()));
        builder.set_auth(s3::Keys(core.clone()));
        builder.set_access(s3::Guard(core.clone()));
        EmbeddedStore {
            s3: builder.build(),
            cors: cors_layer(config),
            core,
        }
    }

    /// Answers one request: POST Object here, everything else through `s3s`. `s3s` logs
    /// whole requests (with session tokens) at debug level, so it runs with no subscriber.
    pub async fn call(&self, req: Request<Body>) -> Response<Body> {
        let is_form = req.method() == Method::POST
            && req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if is_form {
            let path = req.uri().path().trim_matches('/').to_string();
            let bucket = path.split('/').next().unwrap_or("").to_string();
            if !path.contains('/') && !bucket.is_empty() {
                let ct = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                return post::handle(&self.core, &bucket, &ct, req.into_body()).await;
            }
        }
        use tracing::instrument::WithSubscriber as _;
        let req = req.map(s3s::Body::http_body_unsync);
        let result = self
            .s3
            .call(req)
            .with_subscriber(tracing::subscriber::NoSubscriber::default())
            .await;
        match result {
            Ok(resp) => resp.map(Body::new),
            Err(_) => post::error_response(&s3s::s3_error!(InternalError, "The store failed.")),
        }
    }

    /// Serves on `listener` (the server's connection rules: [`crate::accept_loop`]) until
    /// `shutdown` changes, then lets in-flight requests finish for at most `grace`.
    pub async fn serve(
        self,
        listener: TcpListener,
        header_timeout: Duration,
        max_connections: usize,
        grace: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        use hyper_util::service::TowerToHyperService;
        use tower::ServiceBuilder;

        let store = self.clone();
        let svc = ServiceBuilder::new()
            .layer(self.cors.clone())
            .service(tower::service_fn(
                move |req: Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(store.call(req.map(Body::new)).await)
                    }
                },
            ));
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections));
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        let graceful = crate::accept_loop(
            listener,
            TowerToHyperService::new(svc),
            header_timeout,
            slots,
            stop,
        )
        .await;
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    }
}

/// CORS for browsers posting forms: `server.cors_allowed_origins` plus stsgate's own origin
/// (the demo page), exposing `ETag`.
fn cors_layer(config: &Config) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let origins = &config.server.cors_allowed_origins;
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let own = reqwest::Url::parse(&config.server.public_base_url)
            .ok()
            .map(|u| u.origin().ascii_serialization());
        let list: Vec<http::HeaderValue> = origins
            .iter()
            .cloned()
            .chain(own)
            .filter_map(|o| http::HeaderValue::from_str(o.trim_end_matches('/')).ok())
            .collect();
        AllowOrigin::list(list)
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            http::header::ETAG,
            http::HeaderName::from_static("x-amz-request-id"),
            http::header::LOCATION,
        ])
        .max_age(Duration::from_secs(600))
}
