//! Cloud type 6: Huawei OBS, with temporary AK/SK/security token from IAM
//! `POST /v3.0/OS-CREDENTIAL/securitytokens` (`docs/providers/huawei.md`).
//!
//! Every issuance makes its own IAM call (no credential cache): the session policy allows
//! only uploading `relativePath` (or, with `isDir`, keys under the prefix). The answer also
//! carries a ready OBS browser POST form and (not for `isDir`) a presigned `PUT`
//! (`uploadUrl`), both signed with the temporary secret. OBS's own upload callback is not
//! used (its signature is not fully documented): `callbackInfo` is for the client to call
//! back with its JWT, and that callback is confirmed by a `HEAD` signed with the long-term
//! key (`verify_uploads`).

pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::HuaweiConfig;
use super::form::{bucket_url, service_urls};
use super::http::{send, Target, Upstream};
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{
    object, CloudType, CredentialProvider, Head, IssueRequest, Issued, PresignedPut, ProviderError,
    TempCredentials,
};
use crate::clock::Clock;
use crate::config::ConfigError;

/// The Huawei OBS provider.
#[derive(Clone)]
pub struct HuaweiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: HuaweiConfig,
    /// The securitytokens call: URL, and `Host` and path as sent and signed.
    sts: Target,
    /// OBS service endpoint (never contains the bucket).
    endpoint: String,
    /// The browser POST URL (bucket host).
    form_url: String,
    duration_secs: u64,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HuaweiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiProvider")
            .field("cfg", &self.inner.cfg)
            .field("sts", &self.inner.sts)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// One signed securitytokens call (one send, no retry).
    async fn fetch_once(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<TempCredentials, ProviderError> {
        let ak = self.cfg.access_key_id.expose();
        let sk = self.cfg.secret_access_key.expose();
        let mut headers = vec![("Content-Type", sts::CONTENT_TYPE)];
        if !self.cfg.domain_id.is_empty() {
            headers.push(("X-Domain-Id", self.cfg.domain_id.as_str()));
        }
        let signed = sign::sign(
            ak,
            sk,
            &sign::Request {
                method: "POST",
                host: &self.sts.host,
                path: &self.sts.path,
                query: &[],
                headers: &headers,
                body,
            },
            self.clock.now_unix(),
        );
        let mut req = self
            .upstream
            .client
            .post(&self.sts.url)
            .timeout(timeout)
            .body(body.to_vec());
        for (name, value) in &signed {
            // reqwest sends exactly this Host (from the URL); it was signed as such.
            if !name.eq_ignore_ascii_case("host") {
                req = req.header(name.as_str(), value.as_str());
            }
        }
        let (status, bytes) = send(req).await?;
        sts::parse(status, &bytes, &[ak, sk])
    }
}

/// The presigned `PUT` of `key` (`uploadUrl`) with the temporary credentials: the token as
/// the `x-obs-security-token` query parameter, `content_type` signed (the client sends it as
/// `Content-Type`), `Expires` = the credentials' expiration, at most
/// [`sign::MAX_PRESIGN_SECS`] from `now`.
pub fn put_url(
    cred: &TempCredentials,
    bucket_url: &str,
    bucket: &str,
    key: &str,
    content_type: Option<&str>,
    now: i64,
) -> PresignedPut {
    let expires = cred.expiration.min(now + sign::MAX_PRESIGN_SECS);
    let p = sign::presigned_put(
        &cred.access_key_id,
        cred.expose_secret(),
        cred.expose_token(),
        bucket_url,
        bucket,
        key,
        content_type,
        expires,
    );
    PresignedPut {
        url: p.url,
        headers: p.headers,
    }
}

impl Cloud for HuaweiProvider {
    const TYPE: CloudType = CloudType::Huawei;
    type Config = HuaweiConfig;

    fn section(providers: &ProvidersConfig) -> &HuaweiConfig {
        &providers.huawei
    }

    fn new(cfg: HuaweiConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let sts = Target::new(
            &cfg.iam_endpoint,
            sts::PATH,
            &[],
            "providers.huawei.iam_endpoint",
        )
        .map_err(ConfigError)?;
        let (endpoint, form_url) = service_urls(
            &cfg.obs_endpoint,
            sts::obs_endpoint(&cfg.region),
            &cfg.bucket,
            "providers.huawei.obs_endpoint",
        )
        .map_err(ConfigError)?;
        let duration_secs = ctx.duration_secs(cfg.duration_secs, sts::DURATION_RANGE);
        let upstream = ctx.upstream(
            "huawei",
            cfg.rate_limit_per_sec,
            cfg.connect_timeout_ms,
            cfg.timeout_ms,
        );
        Ok(HuaweiProvider {
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
    const SERVICE: &'static str = "OBS";

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
        let base = bucket_url(&self.endpoint, bucket).ok_or_else(|| {
            ProviderError::Unusable("providers.huawei.obs_endpoint is not a URL".into())
        })?;
        let signed = sign::sign_object_request(
            self.cfg.access_key_id.expose(),
            self.cfg.secret_access_key.expose(),
            method,
            &base,
            bucket,
            key,
            self.clock.now_unix(),
        );
        Ok(signed)
    }
}

#[async_trait]
impl CredentialProvider for HuaweiProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let inner = &self.inner;
        let key = req.planned_key.as_str();
        let policy = sts::session_policy(&inner.cfg.bucket, &req.key_pattern());
        let packed = policy.packed().len();
        if packed > sts::MAX_POLICY_BYTES {
            return Err(ProviderError::Unusable(format!(
                "session policy of {packed} bytes exceeds {} (key_prefix too long?)",
                sts::MAX_POLICY_BYTES
            )));
        }
        let body = sts::request_body(inner.duration_secs, &policy);
        let cred = inner
            .upstream
            .call(req.deadline, |t| inner.fetch_once(&body, t))
            .await?;
        let form = form::form(
            &cred,
            &inner.cfg.bucket,
            &inner.form_url,
            key,
            req.is_dir,
            req.max_bytes,
            req.content_type(),
        );
        let upload = (!req.is_dir).then(|| {
            put_url(
                &cred,
                &inner.form_url,
                &inner.cfg.bucket,
                key,
                req.content_type(),
                inner.clock.now_unix(),
            )
        });
        Ok(Issued::temporary(
            cred,
            &inner.cfg.bucket,
            &inner.endpoint,
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
            access_key_id: "HSTTMPAK".into(),
            secret_access_key: SecretString::from("tmpSecret/+="),
            security_token: SecretString::from("tok+en/=="),
            expiration,
            start_time: None,
        }
    }

    #[test]
    fn put_url_expires_with_the_credentials_at_most_a_day() {
        let now = 1_735_689_600;
        let base = "https://b.obs.cn-north-4.myhuaweicloud.com";
        let p = put_url(
            &cred(now + 900),
            base,
            "b",
            "k/a b.png",
            Some("image/png"),
            now,
        );
        assert!(
            p.url.starts_with(&format!(
                "{base}/k/a%20b.png?x-obs-security-token=tok%2Ben/%3D%3D&Expires={}&AccessKeyId=HSTTMPAK&Signature=",
                now + 900
            )),
            "{}",
            p.url
        );
        assert_eq!(
            p.headers,
            [("Content-Type".to_string(), "image/png".to_string())]
        );
        let long = put_url(&cred(now + 200_000), base, "b", "k", None, now);
        assert!(long.url.contains(&format!("&Expires={}&", now + 86_400)));
        assert!(long.headers.is_empty());
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("tok") && !dbg.contains("Signature"), "{dbg}");
    }
}
