//! Cloud type 7: KSyun (Kingsoft Cloud) KS3 through STS `AssumeRole` (docs/contract.md §1.2, issue 7).
//!
//! One upstream call per issuance, no credential cache: `AssumeRole` (`Version=2015-11-01`)
//! as a form POST signed with AWS SigV4 (service `sts`) by the shared signer, with a
//! session policy that allows only uploading `relativePath` (or the `isDir` prefix). The
//! answer also carries a KS3 browser POST form (`Policy` + `Signature`, HMAC-SHA1) signed
//! with the configured long-term key, scoped to the same key and size limit and expiring
//! with the credentials; no secret leaves the server for it. For one object (never `isDir`)
//! it also carries a presigned `PUT` (`uploadUrl` + `uploadHeaders`, KS3 "V2" query
//! signature with the temporary credentials, the token as the signed `x-kss-security-token`
//! header, expiring with them).
//!
//! On a client callback stsgate `HEAD`s the object with its long-term key (KS3 "V2"
//! `Authorization: KSS`), unless `verify_uploads = false`, and `DELETE`s one that broke the
//! module's rules (`head_object` / `delete_object`).
//!
//! KSyun's native upload callback (`x-kss-callbackauth`) is not verified here (its
//! algorithm is not published): `callbackInfo` is the literal body the client POSTs back
//! with its JWT.

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use self::config::KsyunConfig;
use super::http::{send, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{
    object, CloudType, CredentialProvider, Head, IssueRequest, Issued, PresignedPut, ProviderError,
    TempCredentials,
};
use crate::clock::Clock;
use crate::config::ConfigError;

/// The KSyun provider.
#[derive(Clone)]
pub struct KsyunProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KsyunProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KsyunProvider")
            .field("sts_url", &self.inner.sts_url)
            .field("bucket", &self.inner.cfg.bucket)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: KsyunConfig,
    /// `sts_endpoint` with path `/`.
    sts_url: String,
    /// KS3 service endpoint (never the bucket).
    ks3_endpoint: String,
    /// The browser POST URL (bucket host).
    form_url: String,
    /// Requested `DurationSeconds`.
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &str,
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_secs(self.clock.now_unix().max(0).unsigned_abs());
        let headers = sign::sign_assume_role_form(
            ak,
            sk,
            &self.sts_url,
            body.as_bytes(),
            &self.cfg.region,
            now,
        )
        // Signer errors name the bad input, never a secret.
        .map_err(ProviderError::Unusable)?;
        let mut req = self
            .upstream
            .client
            .post(&self.sts_url)
            .timeout(timeout)
            .header("accept", "application/json")
            .body(body.to_string());
        for (name, value) in headers.0 {
            req = req.header(name, value);
        }
        let (status, bytes) = send(req).await?;
        sts::parse(status, &bytes, &[ak, sk])
    }
}

/// The presigned `PUT` of `key` (`uploadUrl`) with the temporary credentials, expiring with
/// them (at most [`sign::MAX_PRESIGN_SECS`] from `now`), the extension's `Content-Type`
/// signed.
pub fn put_url(
    cred: &TempCredentials,
    bucket_url: &str,
    bucket: &str,
    key: &str,
    content_type: &str,
    now: i64,
) -> PresignedPut {
    let expires = cred
        .expiration
        .min(now.saturating_add(sign::MAX_PRESIGN_SECS))
        .max(now + 1);
    sign::presigned_put(
        &cred.access_key_id,
        cred.expose_secret(),
        cred.expose_token(),
        bucket_url,
        bucket,
        key,
        Some(content_type),
        expires,
    )
}

impl Cloud for KsyunProvider {
    const TYPE: CloudType = CloudType::Ksyun;
    type Config = KsyunConfig;

    fn section(providers: &ProvidersConfig) -> &KsyunConfig {
        &providers.ksyun
    }

    fn new(cfg: KsyunConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        // Validated by the config (scheme and host only); the path is `/`.
        let url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| ConfigError("providers.ksyun.sts_endpoint is not a URL".into()))?;
        let ks3_endpoint = sts::ks3_endpoint(&cfg.ks3_endpoint);
        let form_url = form::bucket_url(&ks3_endpoint, &cfg.bucket);
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "ksyun",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(KsyunProvider {
            inner: Arc::new(Inner {
                sts_url: url.to_string(),
                ks3_endpoint,
                form_url,
                duration_secs,
                upstream,
                clock: ctx.clock.clone(),
                cfg,
            }),
        })
    }
}

/// `HEAD`/`DELETE` of one object, signed with the long-term key at the current time.
impl object::ObjectSigner for Inner {
    const SERVICE: &'static str = "KS3";

    fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    fn verify_uploads(&self) -> bool {
        self.cfg.verify_uploads
    }

    fn sign_object(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
    ) -> Result<object::SignedRequest, ProviderError> {
        let signed = sign::sign_object_request(
            self.cfg.access_key_id.expose(),
            self.cfg.secret_access_key.expose(),
            method,
            &form::bucket_url(&self.ks3_endpoint, bucket),
            bucket,
            key,
            self.clock.now_unix(),
        );
        Ok(signed)
    }
}

#[async_trait]
impl CredentialProvider for KsyunProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&inner.cfg.bucket, key, req.is_dir)
            .map_err(ProviderError::InvalidRequest)?;
        let body = sts::assume_role_body(
            &inner.cfg.role_krn,
            &sts::session_name(req.object_id),
            inner.duration_secs,
            Some(&policy),
        );
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = form::form(
            &inner.cfg,
            &inner.form_url,
            key,
            req.is_dir,
            req.max_bytes,
            cred.expiration,
            req.content_type(),
        );
        // `content_type()` is `None` exactly for a folder: no presigned PUT then.
        let upload = req.content_type().map(|ct| {
            put_url(
                &cred,
                &inner.form_url,
                &inner.cfg.bucket,
                key,
                ct,
                inner.clock.now_unix(),
            )
        });
        Ok(Issued::temporary(
            cred,
            &inner.cfg.bucket,
            &inner.ks3_endpoint,
            &inner.cfg.region,
            key,
            form,
        )
        .with_upload(upload))
    }

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Head, ProviderError> {
        object::head(&*self.inner, bucket, key, deadline).await
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), ProviderError> {
        object::delete(&*self.inner, bucket, key, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn cred(expiration: i64) -> TempCredentials {
        TempCredentials {
            access_key_id: "AKTPexample".into(),
            secret_access_key: SecretString::from("tmpSecret".to_string()),
            security_token: SecretString::from("tok/en+1".to_string()),
            expiration,
            start_time: None,
        }
    }

    #[test]
    fn the_put_url_expires_with_the_credentials() {
        let now = 1_767_225_600;
        let put = put_url(
            &cred(now + 3600),
            "https://b.ks3-cn-beijing.ksyuncs.com",
            "b",
            "k/a b.png",
            "image/png",
            now,
        );
        assert!(
            put.url
                .starts_with("https://b.ks3-cn-beijing.ksyuncs.com/k/a%20b.png?Signature="),
            "{}",
            put.url
        );
        assert!(
            put.url.ends_with(&format!(
                "&Expires={}&KSSAccessKeyId=AKTPexample",
                now + 3600
            )),
            "{}",
            put.url
        );
        assert!(
            !put.url.contains("tok"),
            "the token is a header, not in the URL"
        );
        assert_eq!(
            put.headers,
            [
                ("Content-Type".to_string(), "image/png".to_string()),
                ("x-kss-security-token".to_string(), "tok/en+1".to_string()),
            ]
        );
        // Clamped to the ceiling, and never in the past.
        let far = put_url(
            &cred(now + 30 * 86_400),
            "https://b.h",
            "b",
            "k",
            "a/b",
            now,
        );
        assert!(far
            .url
            .contains(&format!("&Expires={}&", now + sign::MAX_PRESIGN_SECS)));
        let past = put_url(&cred(now - 5), "https://b.h", "b", "k", "a/b", now);
        assert!(past.url.contains(&format!("&Expires={}&", now + 1)));
    }
}
