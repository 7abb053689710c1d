//! Cloud type 3: Aliyun STS `AssumeRole` + OSS (protocols §3).
//!
//! Each issuance makes one `AssumeRole` call (RPC signature, HMAC-SHA1) with a session policy
//! that allows writing only `relativePath` (or the `isDir` prefix); nothing is cached. The
//! answer carries a PostObject form signed (V1) with the temporary secret, and, when asked,
//! the OSS `callback`/`callbackVar` values. OSS callbacks are verified by RSA-MD5 with the
//! public key fetched from an allowed URL and cached by URL; as that key signs every
//! bucket's callbacks, a signed callback is still confirmed by a `HEAD`.
//!
//! For one object (not `isDir`) the answer also carries `uploadUrl`: a V1-presigned `PUT`
//! with the temporary key (the token as the signed `security-token` sub-resource, the
//! extension's `Content-Type` signed), expiring with the credentials. `HEAD`/`DELETE` of an
//! uploaded object are V1-signed (`Authorization: OSS {ak}:{sig}`) with the long-term key.

pub mod callback;
pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rsa::RsaPublicKey;
use tokio::time::Instant;

use self::callback::{CallbackError, CallbackParam};
use self::config::AliyunConfig;
use self::form::PostFormInput;
use self::sts::AssumeRole;
use super::http::{send, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{
    object, CallbackInput, CallbackOverride, CallbackRefused, CloudType, CredentialProvider, Head,
    IssueRequest, Issued, PresignedPut, ProviderError, TempCredentials,
};
use crate::clock::{rfc3339, Clock};
use crate::config::ConfigError;
use crate::metrics::Metrics;

/// Longest wait for a callback public key (OSS gives the whole callback about 5 s).
pub const KEY_FETCH_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long a fetched public key is trusted before it is fetched again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(3600);

/// The Aliyun provider.
#[derive(Clone)]
pub struct AliyunProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: AliyunConfig,
    sts_url: reqwest::Url,
    endpoint: String,
    bucket_url: String,
    duration_secs: u64,
    upstream: Upstream,
    keys: moka::future::Cache<String, Arc<RsaPublicKey>>,
    key_timeout: Duration,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl Inner {
    /// One signed `AssumeRole` call (one send, no retry).
    async fn assume_role_once(
        &self,
        call: &AssumeRole,
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = rfc3339(self.clock.now_unix());
        let owned = call.params(self.cfg.access_key_id.expose(), &nonce, &timestamp);
        let params: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let secret = self.cfg.access_key_secret.expose();
        let query = sign::rpc_sign("POST", secret, &params);
        let mut url = self.sts_url.clone();
        url.set_query(Some(&query));
        let req = self
            .upstream
            .client
            .post(url)
            .timeout(timeout)
            .header("Accept", "application/json");
        let (status, body) = send(req).await?;
        sts::parse(status, &body, &[self.cfg.access_key_id.expose(), secret])
    }

    /// The public key at `url` (already checked against the prefixes), from the cache or
    /// fetched once; concurrent callbacks for one URL share one fetch. Failures are not cached.
    async fn public_key(&self, url: &str) -> Result<Arc<RsaPublicKey>, CallbackError> {
        self.keys
            .try_get_with(url.to_string(), self.fetch_key(url))
            .await
            .map_err(|e| (*e).clone())
    }

    async fn fetch_key(&self, url: &str) -> Result<Arc<RsaPublicKey>, CallbackError> {
        let started = Instant::now();
        let result = self.fetch_key_inner(url).await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.metrics.upstream_call(
            "aliyun-callback-key",
            outcome,
            started.elapsed().as_secs_f64(),
        );
        if let Err(e) = &result {
            tracing::warn!(key_url = %url, error = %e, "could not obtain the OSS callback public key");
        }
        result
    }

    async fn fetch_key_inner(&self, url: &str) -> Result<Arc<RsaPublicKey>, CallbackError> {
        let unavailable = |what: &str| CallbackError::KeyUnavailable(what.to_string());
        let mut res = self
            .upstream
            .client
            .get(url)
            .timeout(self.key_timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    unavailable("timed out")
                } else {
                    unavailable("fetch failed")
                }
            })?;
        // The client follows no redirect (a 3xx is refused below); this re-check guards the
        // final URL should that ever change.
        if !callback::key_url_allowed(res.url().as_str(), &self.cfg.callback_key_url_prefixes) {
            return Err(CallbackError::KeyUrlNotAllowed);
        }
        if !res.status().is_success() {
            return Err(CallbackError::KeyUnavailable(format!(
                "HTTP {}",
                res.status().as_u16()
            )));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|_| unavailable("fetch failed"))? {
            pem.extend_from_slice(&chunk);
            if pem.len() > callback::MAX_PEM_BYTES {
                return Err(unavailable("key document too large"));
            }
        }
        let pem = String::from_utf8(pem).map_err(|_| unavailable("key is not text"))?;
        callback::parse_public_key(&pem).map(Arc::new)
    }

    async fn verify(&self, input: &CallbackInput) -> Result<(), CallbackError> {
        let header = |n: &str| input.headers.get(n).and_then(|v| v.to_str().ok());
        // The URL is checked before anything else, and before any network access.
        let url = callback::allowed_key_url(
            header("x-oss-pub-key-url"),
            &self.cfg.callback_key_url_prefixes,
        )?;
        let signature = callback::decode_authorization(header("authorization"))?;
        let key = self.public_key(&url).await?;
        let message =
            callback::string_to_verify(&input.raw_path, input.raw_query.as_deref(), &input.body);
        callback::verify_signature(&key, &message, &signature)
    }
}

/// The longest a presigned URL is made valid for (OSS's V4 ceiling; STS credentials never
/// live longer than 12 hours anyway).
pub const MAX_PUT_URL_SECS: i64 = 7 * 24 * 3600;

/// The presigned `PUT` of `key` (`uploadUrl`, `uploadHeaders`), V1-signed with the temporary
/// credentials as oss2's `StsAuth` + `Bucket.sign_url('PUT', …)` do: `Expires` = the
/// credentials' expiration (at least a second from `now`, at most [`MAX_PUT_URL_SECS`]), the
/// token as the signed `security-token` parameter, `content_type` signed and to be sent.
pub fn put_url(
    creds: &TempCredentials,
    bucket_url: &str,
    bucket: &str,
    key: &str,
    content_type: Option<&str>,
    now: i64,
) -> PresignedPut {
    let expires = creds
        .expiration
        .clamp(now.saturating_add(1), now.saturating_add(MAX_PUT_URL_SECS));
    PresignedPut {
        url: sign::oss_presigned_url(
            &creds.access_key_id,
            creds.expose_secret(),
            creds.expose_token(),
            "PUT",
            bucket_url,
            bucket,
            key,
            content_type,
            expires,
        ),
        headers: content_type
            .map(|c| ("Content-Type".to_string(), c.to_string()))
            .into_iter()
            .collect(),
    }
}

impl Cloud for AliyunProvider {
    const TYPE: CloudType = CloudType::Aliyun;
    type Config = AliyunConfig;

    fn section(providers: &ProvidersConfig) -> &AliyunConfig {
        &providers.aliyun
    }

    /// The form posts to the bucket's virtual host at the OSS endpoint
    /// ([`form::bucket_url`]), whatever the endpoint's host.
    fn new(cfg: AliyunConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let sts_url = reqwest::Url::parse(&cfg.sts_endpoint)
            .map_err(|_| ConfigError("providers.aliyun.sts_endpoint is not a URL".into()))?;
        let endpoint = sts::oss_endpoint(&cfg.oss_endpoint, &cfg.region);
        let bucket_url = form::bucket_url(&endpoint, &cfg.bucket);
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "aliyun",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(AliyunProvider {
            inner: Arc::new(Inner {
                sts_url,
                endpoint,
                bucket_url,
                duration_secs,
                upstream,
                keys: moka::future::Cache::builder()
                    .max_capacity(64)
                    .time_to_live(KEY_CACHE_TTL)
                    .build(),
                key_timeout: KEY_FETCH_TIMEOUT.min(Duration::from_millis(cfg.timeout_ms)),
                clock: ctx.clock.clone(),
                metrics: ctx.metrics.clone(),
                cfg,
            }),
        })
    }

    fn claims_callback(headers: &axum::http::HeaderMap) -> bool {
        headers.contains_key("x-oss-pub-key-url")
    }
}

/// `HEAD`/`DELETE` of one object, signed with the long-term key at the current time.
impl object::ObjectSigner for Inner {
    const SERVICE: &'static str = "OSS";

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
            self.cfg.access_key_secret.expose(),
            method,
            &form::bucket_url(&self.endpoint, bucket),
            bucket,
            key,
            self.clock.now_unix(),
        );
        Ok(signed)
    }
}

#[async_trait]
impl CredentialProvider for AliyunProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&cfg.bucket, key, req.is_dir);
        sts::check_policy_length(&policy)?;
        let call = AssumeRole {
            role_arn: cfg.role_arn.clone(),
            role_session_name: sts::role_session_name(&req.sub),
            duration_secs: inner.duration_secs,
            policy,
        };
        let creds = inner
            .upstream
            .call(req.deadline, |t| inner.assume_role_once(&call, t))
            .await?;

        let (callback_override, vars, callback_b64) = match &req.callback {
            Some(plan) => {
                let vars = callback::stsgate_vars(plan.object_id, plan.resource_type);
                let cb = CallbackParam::stsgate(&plan.url).to_base64();
                let over = CallbackOverride {
                    body: Some(callback::CALLBACK_BODY_TEMPLATE.to_string()),
                    callback: Some(cb.clone()),
                    callback_var: Some(callback::callback_var_base64(&vars)),
                };
                (Some(over), vars, Some(cb))
            }
            None => (None, Vec::new(), None),
        };
        let form = form::post_form(&PostFormInput {
            url: inner.bucket_url.clone(),
            bucket: &cfg.bucket,
            key,
            is_dir: req.is_dir,
            max_bytes: req.max_bytes,
            creds: &creds,
            callback: callback_b64.as_deref().map(|cb| (cb, vars.as_slice())),
            content_type: req.content_type(),
        });
        let upload = (!req.is_dir).then(|| {
            put_url(
                &creds,
                &inner.bucket_url,
                &cfg.bucket,
                key,
                req.content_type(),
                inner.clock.now_unix(),
            )
        });
        Ok(Issued {
            callback: callback_override,
            ..Issued::temporary(creds, &cfg.bucket, &inner.endpoint, &cfg.region, key, form)
                .with_upload(upload)
        })
    }

    /// OSS signs every customer's callbacks with one key: the signature proves OSS sent it,
    /// not that our bucket holds the object.
    fn signed_callback_needs_head(&self) -> bool {
        true
    }

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        deadline: Instant,
    ) -> Result<Head, ProviderError> {
        object::head(&*self.inner, bucket, key, deadline).await
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        object::delete(&*self.inner, bucket, key, deadline).await
    }

    async fn verify_callback(&self, input: &CallbackInput) -> Result<(), CallbackRefused> {
        self.inner
            .verify(input)
            .await
            .map_err(|e| CallbackRefused(format!("OSS callback: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn creds(expiration: i64) -> TempCredentials {
        TempCredentials {
            access_key_id: "STS.tmp".into(),
            secret_access_key: SecretString::from("tmpSECRET".to_string()),
            security_token: SecretString::from("tok+/=".to_string()),
            expiration,
            start_time: None,
        }
    }

    fn expires(p: &PresignedPut) -> i64 {
        let q = p.url.split_once('?').unwrap().1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix("Expires="))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn put_url_expires_with_the_credentials_and_signs_the_type() {
        let now = 1_704_168_245;
        let p = put_url(
            &creds(now + 3600),
            "https://b.oss-cn-beijing.aliyuncs.com",
            "b",
            "k/a b.png",
            Some("image/png"),
            now,
        );
        assert_eq!(expires(&p), now + 3600, "the credentials' expiration");
        assert!(
            p.url.starts_with(
                "https://b.oss-cn-beijing.aliyuncs.com/k%2Fa%20b.png?security-token=tok%2B%2F%3D&OSSAccessKeyId=STS.tmp&Expires="
            ),
            "{}",
            p.url
        );
        assert_eq!(
            p.headers,
            [("Content-Type".to_string(), "image/png".to_string())]
        );
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("tok") && !dbg.contains("Signature"), "{dbg}");
        // Never past the ceiling, never already expired; no type: no header.
        let far = put_url(
            &creds(now + 30 * 86_400),
            "https://b.h",
            "b",
            "k",
            None,
            now,
        );
        assert_eq!(expires(&far), now + MAX_PUT_URL_SECS);
        assert!(far.headers.is_empty());
        let past = put_url(&creds(now - 5), "https://b.h", "b", "k", None, now);
        assert_eq!(expires(&past), now + 1);
    }
}
