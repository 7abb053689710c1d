//! Cloud type 4: Baidu BOS, with a session token from STS `POST /v1/sessionToken`
//! (`docs/providers/baidu.md`).
//!
//! Every issuance makes its own STS call (no credential cache): the ACL body scopes the
//! token to writing `relativePath` (or, with `isDir`, keys under the prefix). The answer also
//! carries a ready BOS PostObject form signed with the temporary secret and, for one object,
//! a presigned `PUT` (`uploadUrl`, the token in its query, `Content-Type` signed). BOS
//! callbacks are not used (not researched, no vectors): `callbackInfo` is for the client to
//! call back with its JWT, and that callback is confirmed with a `HEAD` of the object signed
//! with the long-term key (`verify_uploads`).

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::BaiduConfig;
use super::form::service_urls;
use super::http::{send, Target, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{
    object, CloudType, CredentialProvider, Head, IssueRequest, Issued, PresignedPut, ProviderError,
    TempCredentials,
};
use crate::clock::{rfc3339, Clock};
use crate::config::ConfigError;

/// The Baidu BOS provider.
#[derive(Clone)]
pub struct BaiduProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BaiduConfig,
    /// The sessionToken call (`?durationSeconds=N` included): URL, `Host` and path as sent.
    sts: Target,
    /// BOS service endpoint (never contains the bucket).
    endpoint: String,
    /// The bucket's URL (`https://{bucket}.{endpoint host}`): PostObject and `PUT` target.
    form_url: String,
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BaiduProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaiduProvider")
            .field("cfg", &self.inner.cfg)
            .field("sts", &self.inner.sts)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// One signed sessionToken call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let date = rfc3339(self.clock.now_unix());
        let length = body.len().to_string();
        let duration = self.duration_secs.to_string();
        // Exactly the headers reqwest sends (it adds Host and Content-Length itself).
        let headers = [
            ("Host", self.sts.host.as_str()),
            ("Content-Type", sts::CONTENT_TYPE),
            ("Content-Length", length.as_str()),
            ("x-bce-date", date.as_str()),
        ];
        let authorization = sign::sign(
            ak,
            sk,
            &sign::Request {
                method: "POST",
                path: &self.sts.path,
                params: &[("durationSeconds", Some(duration.as_str()))],
                headers: &headers,
            },
            &date,
            sts::SIGNATURE_EXPIRATION_SECS,
        );
        let req = self
            .upstream
            .client
            .post(&self.sts.url)
            .timeout(timeout)
            .header("Content-Type", sts::CONTENT_TYPE)
            .header("x-bce-date", &date)
            .header("Authorization", authorization)
            .body(body.to_vec());
        let (status, bytes) = send(req).await?;
        sts::parse(status, &bytes, &[ak, sk])
    }
}

/// The presigned `PUT` of `key` (`uploadUrl`) at `bucket_url` with the temporary
/// credentials, signed at `now` and valid until they expire (at most
/// [`sign::MAX_PRESIGN_SECS`]), with `content_type` signed.
pub fn put_url(
    cred: &TempCredentials,
    bucket_url: &str,
    key: &str,
    content_type: Option<&str>,
    now: i64,
) -> Option<PresignedPut> {
    let target = sign::object_target(bucket_url, key)?;
    let lifetime = (cred.expiration - now).clamp(1, sign::MAX_PRESIGN_SECS) as u64;
    Some(sign::presigned_put(
        &cred.access_key_id,
        cred.expose_secret(),
        cred.expose_token(),
        &target,
        content_type,
        &rfc3339(now),
        lifetime,
    ))
}

impl Cloud for BaiduProvider {
    const TYPE: CloudType = CloudType::Baidu;
    type Config = BaiduConfig;

    fn section(providers: &ProvidersConfig) -> &BaiduConfig {
        &providers.baidu
    }

    fn new(cfg: BaiduConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let duration_secs = cfg.duration_secs.unwrap_or(ctx.config.upload.duration_secs);
        let sts = Target::new(
            &cfg.sts_endpoint,
            sts::PATH,
            &[("durationSeconds", &duration_secs.to_string())],
            "providers.baidu.sts_endpoint",
        )
        .map_err(ConfigError)?;
        let (endpoint, form_url) = service_urls(
            &cfg.bos_endpoint,
            sts::bos_endpoint(&cfg.region),
            &cfg.bucket,
            "providers.baidu.bos_endpoint",
        )
        .map_err(ConfigError)?;
        let upstream = ctx.upstream(
            "baidu",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(BaiduProvider {
            inner: Arc::new(Inner {
                sts,
                endpoint,
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
    const SERVICE: &'static str = "BOS";

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
        let target = crate::providers::form::bucket_url(&self.endpoint, bucket)
            .and_then(|url| sign::object_target(&url, key))
            .ok_or_else(|| ProviderError::Unusable("BOS endpoint is not a URL".into()))?;
        let signed = sign::sign_object_request(
            self.cfg.access_key_id.expose(),
            self.cfg.secret_access_key.expose(),
            method,
            &target,
            &rfc3339(self.clock.now_unix()),
        );
        Ok(signed)
    }
}

#[async_trait]
impl CredentialProvider for BaiduProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let pattern = req.key_pattern();
        let body = sts::acl_body(&inner.cfg.region, &inner.cfg.bucket, &pattern);
        if body.len() > sts::MAX_ACL_BYTES {
            return Err(ProviderError::Unusable(format!(
                "ACL of {} bytes exceeds {} (key_prefix too long?)",
                body.len(),
                sts::MAX_ACL_BYTES
            )));
        }
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let now = inner.clock.now_unix();
        let upload = (!req.is_dir)
            .then(|| {
                put_url(
                    &cred,
                    &inner.form_url,
                    &req.planned_key,
                    req.content_type(),
                    now,
                )
            })
            .flatten();
        let form = form::form(
            &cred,
            &inner.cfg.bucket,
            &inner.form_url,
            &req.planned_key,
            &pattern,
            req.max_bytes,
            req.content_type(),
        );
        Ok(Issued::temporary(
            cred,
            &inner.cfg.bucket,
            &inner.endpoint,
            &inner.cfg.region,
            &req.planned_key,
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
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::metrics::Metrics;
    use secrecy::SecretString;

    fn build(cfg: BaiduConfig) -> BaiduProvider {
        BaiduProvider::new(
            cfg,
            &Context {
                config: &Config::default(),
                clock: Arc::new(SystemClock),
                metrics: Metrics::new(),
                cluster: None,
            },
        )
        .unwrap()
    }

    fn cred(expiration: i64) -> TempCredentials {
        TempCredentials {
            access_key_id: "TMPAK".into(),
            secret_access_key: SecretString::from("TMP-SECRET"),
            security_token: SecretString::from("TOKEN/+="),
            expiration,
            start_time: None,
        }
    }

    #[test]
    fn defaults_address_the_bucket_s_virtual_host() {
        let p = build(BaiduConfig {
            bucket: "b".into(),
            ..BaiduConfig::default()
        });
        assert!(
            p.inner.cfg.verify_uploads,
            "verify_uploads defaults to true"
        );
        assert_eq!(p.inner.endpoint, "https://bj.bcebos.com");
        assert_eq!(p.inner.form_url, "https://b.bj.bcebos.com");
    }

    #[test]
    fn the_put_url_lives_as_long_as_the_credentials() {
        let now = 1_735_689_600;
        let lifetime = |put: PresignedPut| {
            let q = put.url.split_once("authorization=").unwrap().1;
            let auth = q.split('&').next().unwrap().replace("%2F", "/");
            auth.split('/').nth(3).unwrap().to_string()
        };
        let put = put_url(
            &cred(now + 3600),
            "https://b.bj.bcebos.com",
            "k.mp4",
            Some("video/mp4"),
            now,
        )
        .unwrap();
        assert!(put.url.starts_with("https://b.bj.bcebos.com/k.mp4?authorization=bce-auth-v1%2FTMPAK%2F2025-01-01T00%3A00%3A00Z%2F3600%2Fcontent-type%3Bhost%2F"), "{}", put.url);
        assert!(put.url.ends_with("&x-bce-security-token=TOKEN%2F%2B%3D"));
        assert_eq!(
            put.headers,
            [("Content-Type".to_string(), "video/mp4".to_string())]
        );
        let dbg = format!("{put:?}");
        assert!(!dbg.contains("TOKEN") && !dbg.contains("TMPAK"), "{dbg}");
        let long = put_url(
            &cred(now + 10 * 86_400),
            "https://b.bj.bcebos.com",
            "k",
            None,
            now,
        )
        .unwrap();
        assert_eq!(lifetime(long), "129600", "clamped to the ceiling");
        let past = put_url(&cred(now - 5), "https://b.bj.bcebos.com", "k", None, now).unwrap();
        assert_eq!(lifetime(past), "1");
        assert!(put_url(&cred(now + 60), "not a url", "k", None, now).is_none());
    }
}
