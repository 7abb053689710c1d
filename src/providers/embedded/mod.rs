//! Cloud type 2 served by stsgate itself: the embedded S3-compatible store
//! ([`crate::storage`]), on when no `[providers.aws]` is configured (`[storage] mode`).
//!
//! An issuance makes no upstream call: it mints credentials locally ([`sts`]) whose secret
//! derives from the server key and whose session token carries the grant ([`sign`]), and
//! signs the S3 browser form with them ([`form`]). The answer is exactly a type-2 answer in
//! path style, so frontend code written against it works unchanged against AWS or MinIO.
//! The store records a finished upload on the ledger row itself; no callback is needed.

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;

use async_trait::async_trait;

use self::config::StorageConfig;
use self::form::FormTarget;
use super::registry::Context;
use super::{CloudType, CredentialProvider, IssueRequest, Issued, ProviderError};
use crate::clock::Clock;
use crate::config::ConfigError;

/// The embedded store's provider.
#[derive(Clone)]
pub struct EmbeddedProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: StorageConfig,
    endpoint: String,
    form_url: String,
    duration_secs: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmbeddedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedProvider")
            .field("endpoint", &self.inner.endpoint)
            .field("bucket", &self.inner.cfg.bucket)
            .finish_non_exhaustive()
    }
}

/// Longest lifetime of minted credentials (AWS's own ceiling for role sessions).
const MAX_DURATION_SECS: u64 = 43_200;

impl EmbeddedProvider {
    /// Builds the provider from `[storage]`, whose `secret` is already resolved.
    pub fn new(cfg: StorageConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        if !cfg.secret.is_set() {
            return Err(ConfigError(
                "storage.secret is not resolved (the key file was not read)".into(),
            ));
        }
        let endpoint = cfg.endpoint();
        let form_url = format!("{endpoint}/{}", cfg.bucket);
        Ok(EmbeddedProvider {
            inner: Arc::new(Inner {
                duration_secs: ctx.duration_secs(None, 900..=MAX_DURATION_SECS),
                endpoint,
                form_url,
                clock: ctx.clock.clone(),
                cfg,
            }),
        })
    }
}

#[async_trait]
impl CredentialProvider for EmbeddedProvider {
    fn cloud_type(&self) -> CloudType {
        CloudType::Aws
    }

    fn calls_upstream(&self) -> bool {
        false
    }

    fn records_uploads(&self) -> bool {
        true
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let now = inner.clock.now_unix();
        let cred = sts::mint(
            cfg.secret.expose().as_bytes(),
            sts::new_access_key_id(),
            &sts::MintRequest {
                bucket: &cfg.bucket,
                key: &req.planned_key,
                is_dir: req.is_dir,
                max_bytes: req.max_bytes,
                object_id: req.object_id,
                now,
                duration_secs: inner.duration_secs,
            },
        );
        let form = form::form(
            &cred,
            &FormTarget {
                url: &inner.form_url,
                bucket: &cfg.bucket,
                region: &cfg.region,
                key: &req.planned_key,
                is_dir: req.is_dir,
                content_type: req.content_type(),
                max_bytes: req.max_bytes,
            },
            now,
        );
        // A presigned PUT as on S3, for one object.
        let upload = (!req.is_dir)
            .then(|| {
                crate::providers::aws::put_url(
                    &cred,
                    &inner.form_url,
                    &req.planned_key,
                    &cfg.region,
                    &req.extension,
                    now,
                )
            })
            .flatten();
        Ok(Issued::temporary(
            cred,
            &cfg.bucket,
            &inner.endpoint,
            &cfg.region,
            &req.planned_key,
            form,
        )
        .with_upload(upload))
    }
}
