//! Cloud providers: one [`CredentialProvider`] per cloud, a [`Registry`] of the enabled
//! ones, the shared upstream [`budget`], the retrying HTTP driver ([`http`]) and the
//! signing helpers ([`crypto`]). The HTTP layer knows no cloud; it talks to this trait.

pub mod budget;
pub mod crypto;
pub mod error;
pub mod http;
pub mod section;
#[cfg(test)]
pub(crate) mod test_vectors;

pub mod aliyun;
pub mod aws;
pub mod baidu;
pub mod huawei;
pub mod ksyun;
pub mod qiniu;
pub mod tencent;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::HeaderMap;
use bytes::Bytes;
use secrecy::SecretString;
use tokio::time::Instant;

pub use error::ProviderError;

use crate::error::ApiError;
use crate::upload::module::{CloudType, UploadModule};

/// What the upload service asks a provider for.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// JWT sub (for session names; never a secret).
    pub sub: String,
    /// The allocated objectId.
    pub object_id: i64,
    /// stsgate's key (`relativePath`), or the folder prefix ending in `/` when `is_dir`.
    /// Providers whose cloud dictates the key (Tencent LKE) ignore it.
    pub planned_key: String,
    /// Lower-case extension.
    pub extension: String,
    /// The module.
    pub module: UploadModule,
    /// Folder/sequence upload: credentials cover the prefix.
    pub is_dir: bool,
    /// Largest object for this module.
    pub max_bytes: u64,
    /// Callback to announce when `isNeedCallback=1`.
    pub callback: Option<CallbackPlan>,
    /// The request's deadline for everything upstream.
    pub deadline: Instant,
    /// Unix seconds now.
    pub now: i64,
}

impl IssueRequest {
    /// The keys the credentials cover, as a wildcard pattern: `planned_key` itself, or
    /// `planned_key*` (everything under the folder) when `is_dir`.
    pub fn key_pattern(&self) -> String {
        if self.is_dir {
            format!("{}*", self.planned_key)
        } else {
            self.planned_key.clone()
        }
    }
}

/// The callback a client (or the cloud) should make after the upload.
#[derive(Debug, Clone)]
pub struct CallbackPlan {
    /// `public_base_url + /upload/callback`.
    pub url: String,
    /// objectId.
    pub object_id: i64,
    /// resourceType.
    pub resource_type: u8,
}

/// A browser form upload: POST `url` with `fields` (in order) before the `file` part.
/// `Debug` lists the field names only: the fields and the policy carry the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Form {
    /// Full POST URL (bucket host).
    pub url: String,
    /// Form fields in order, with the cloud's own names.
    pub fields: Vec<(String, String)>,
    /// The policy value (repeated at the top level of the answer).
    pub policy: String,
    /// The signature value (repeated at the top level of the answer).
    pub signature: String,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Form")
            .field("url", &self.url)
            .field(
                "fields",
                &self
                    .fields
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("policy", &"<redacted>")
            .field("signature", &"<redacted>")
            .finish()
    }
}

impl Form {
    /// A form whose fields are `leading` (key, access key, token, with the cloud's names)
    /// followed by `policy` and `signature`, the two names OBS, BOS and S3-style stores share.
    pub fn with_policy(
        url: String,
        leading: Vec<(&str, String)>,
        policy: String,
        signature: String,
    ) -> Form {
        let mut fields: Vec<(String, String)> = leading
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        fields.push(("policy".into(), policy.clone()));
        fields.push(("signature".into(), signature.clone()));
        Form {
            url,
            fields,
            policy,
            signature,
        }
    }
}

/// Temporary credentials as a cloud's STS returned them.
#[derive(Clone)]
pub struct TempCredentials {
    /// Temporary access key id.
    pub access_key_id: String,
    /// Temporary secret.
    pub secret_access_key: SecretString,
    /// Session / security token.
    pub security_token: SecretString,
    /// Expiry, Unix seconds, as the cloud returned it (fraction truncated).
    pub expiration: i64,
    /// Start, Unix seconds, when the cloud gives one.
    pub start_time: Option<i64>,
}

impl std::fmt::Debug for TempCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempCredentials")
            .field("access_key_id", &"<redacted>")
            .field("expiration", &self.expiration)
            .field("start_time", &self.start_time)
            .finish_non_exhaustive()
    }
}

impl TempCredentials {
    /// The temporary secret, for the places that sign with it or hand it out.
    pub fn expose_secret(&self) -> &str {
        use secrecy::ExposeSecret as _;
        self.secret_access_key.expose_secret()
    }

    /// The token, for the places that hand it out.
    pub fn expose_token(&self) -> &str {
        use secrecy::ExposeSecret as _;
        self.security_token.expose_secret()
    }
}

/// Cloud-specific callback values that replace the literal form body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackOverride {
    /// `callbackBody` (an OSS template, Qiniu's put-policy body, ...).
    pub body: Option<String>,
    /// OSS `callback` parameter (base64 JSON).
    pub callback: Option<String>,
    /// OSS `callbackVar` parameter (base64 JSON).
    pub callback_var: Option<String>,
}

/// What a provider issued.
pub struct Issued {
    /// Temporary access key id (Qiniu: the access key).
    pub access_key_id: String,
    /// Temporary secret (Qiniu: empty).
    pub secret_access_key: SecretString,
    /// Session token (Qiniu: the upload token).
    pub security_token: SecretString,
    /// Bucket.
    pub bucket: String,
    /// Service endpoint, never containing the bucket.
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// The object key (or prefix) the credentials allow writing.
    pub relative_path: String,
    /// Expiry (Unix seconds) as the cloud returned it.
    pub expiration: i64,
    /// Start (Unix seconds) when the cloud gives one.
    pub start_time: Option<i64>,
    /// Browser form upload, where the cloud has one.
    pub form: Option<Form>,
    /// Callback values specific to this cloud.
    pub callback: Option<CallbackOverride>,
}

impl Issued {
    /// What a cloud with temporary credentials and a browser form issued for `relative_path`
    /// in `bucket` (no cloud-specific callback).
    pub fn temporary(
        cred: TempCredentials,
        bucket: &str,
        endpoint: &str,
        region: &str,
        relative_path: &str,
        form: Form,
    ) -> Issued {
        Issued {
            access_key_id: cred.access_key_id,
            secret_access_key: cred.secret_access_key,
            security_token: cred.security_token,
            bucket: bucket.into(),
            endpoint: endpoint.into(),
            region: region.into(),
            relative_path: relative_path.into(),
            expiration: cred.expiration,
            start_time: cred.start_time,
            form: Some(form),
            callback: None,
        }
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_key_id", &"<redacted>")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("relative_path", &self.relative_path)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// A callback request as received, for signature verification.
#[derive(Debug, Clone)]
pub struct CallbackInput {
    /// HTTP method.
    pub method: String,
    /// The raw (still percent-encoded) path.
    pub raw_path: String,
    /// The raw query string, exactly as received.
    pub raw_query: Option<String>,
    /// All headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

/// One cloud.
#[async_trait]
pub trait CredentialProvider: Send + Sync + 'static {
    /// The cloud type this provider serves.
    fn cloud_type(&self) -> CloudType;

    /// Obtains credentials for one upload.
    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError>;

    /// Whether [`issue`](Self::issue) calls the cloud. A provider that does gets its ledger
    /// row written before the call (a crash during it leaves a trace) and completed after;
    /// one that signs locally (`false`) gets the complete row written in one statement.
    fn calls_upstream(&self) -> bool {
        true
    }

    /// Verifies a cloud-signed upload callback (only clouds that sign callbacks).
    async fn verify_callback(&self, _input: &CallbackInput) -> Result<(), ApiError> {
        Err(ApiError::BadCallbackSignature(
            "this cloud does not sign callbacks".into(),
        ))
    }
}

/// Who a callback claims to come from, decided by its headers (PRODUCT §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOrigin {
    /// Signed by a cloud; verified only by that cloud's signature.
    Cloud(CloudType),
    /// The uploading user, with a JWT.
    User,
}

/// `x-oss-pub-key-url` → Aliyun OSS; `Authorization: QBox …`/`Qiniu …` → Qiniu; else the user.
pub fn callback_origin(headers: &HeaderMap) -> CallbackOrigin {
    if headers.contains_key("x-oss-pub-key-url") {
        return CallbackOrigin::Cloud(CloudType::Aliyun);
    }
    if let Some(auth) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if auth.starts_with("QBox ") || auth.starts_with("Qiniu ") {
            return CallbackOrigin::Cloud(CloudType::Qiniu);
        }
    }
    CallbackOrigin::User
}

/// The browser-form URL of `bucket` at a service `endpoint` that does not contain it:
/// virtual-host style (`https://obs.r.example.com` → `https://{bucket}.obs.r.example.com`),
/// or path style (`http://127.0.0.1:9000/{bucket}`) when the host is an IP address or
/// `localhost`, where a bucket label cannot resolve. `None` when `endpoint` is not a URL.
pub fn bucket_url(endpoint: &str, bucket: &str) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path_style =
        host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() || host == "localhost";
    Some(if path_style {
        format!("{}/{bucket}", endpoint.trim_end_matches('/'))
    } else {
        format!("{}://{bucket}.{host}{port}", url.scheme())
    })
}

/// The service endpoint (the configured one without a trailing `/`, else `default`) and the
/// bucket's form URL at it ([`bucket_url`]); `key` names the config key in the error.
pub fn service_urls(
    configured: &str,
    default: String,
    bucket: &str,
    key: &str,
) -> Result<(String, String), String> {
    let endpoint = if configured.is_empty() {
        default
    } else {
        configured.trim_end_matches('/').to_string()
    };
    let form_url = bucket_url(&endpoint, bucket).ok_or_else(|| format!("{key} is not a URL"))?;
    Ok((endpoint, form_url))
}

/// The enabled providers.
#[derive(Clone, Default)]
pub struct Registry {
    by_type: BTreeMap<CloudType, Arc<dyn CredentialProvider>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.by_type.keys().map(|c| c.name()))
            .finish()
    }
}

impl Registry {
    /// Adds a provider.
    pub fn insert(&mut self, p: Arc<dyn CredentialProvider>) {
        self.by_type.insert(p.cloud_type(), p);
    }

    /// The provider for `cloud`, when enabled.
    pub fn get(&self, cloud: CloudType) -> Option<&Arc<dyn CredentialProvider>> {
        self.by_type.get(&cloud)
    }

    /// Enabled cloud types.
    pub fn enabled(&self) -> Vec<CloudType> {
        self.by_type.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_debug_lists_field_names_only() {
        let form = Form {
            url: "https://b.s3.amazonaws.com/".into(),
            fields: vec![
                ("key".into(), "k".into()),
                ("x-amz-security-token".into(), "TOKEN-VALUE".into()),
            ],
            policy: "POLICY-VALUE".into(),
            signature: "SIGNATURE-VALUE".into(),
        };
        let dbg = format!("{form:?}");
        assert!(
            dbg.contains("x-amz-security-token") && dbg.contains("https://b.s3"),
            "{dbg}"
        );
        for v in ["TOKEN-VALUE", "POLICY-VALUE", "SIGNATURE-VALUE", "\"k\""] {
            assert!(!dbg.contains(v), "{v} in {dbg}");
        }
    }

    #[test]
    fn bucket_url_is_virtual_host_or_path_style() {
        assert_eq!(
            bucket_url("https://obs.cn-north-4.myhuaweicloud.com", "b").as_deref(),
            Some("https://b.obs.cn-north-4.myhuaweicloud.com")
        );
        assert_eq!(
            bucket_url("https://bj.bcebos.com:8443/", "b").as_deref(),
            Some("https://b.bj.bcebos.com:8443")
        );
        assert_eq!(
            bucket_url("http://127.0.0.1:9000/", "b").as_deref(),
            Some("http://127.0.0.1:9000/b")
        );
        assert_eq!(
            bucket_url("http://localhost:9000", "b").as_deref(),
            Some("http://localhost:9000/b")
        );
        assert_eq!(bucket_url("not a url", "b"), None);
        assert_eq!(
            service_urls("", "https://bj.bcebos.com".into(), "b", "k"),
            Ok((
                "https://bj.bcebos.com".into(),
                "https://b.bj.bcebos.com".into()
            ))
        );
        assert_eq!(
            service_urls("http://127.0.0.1:9000/", "unused".into(), "b", "k"),
            Ok((
                "http://127.0.0.1:9000".into(),
                "http://127.0.0.1:9000/b".into()
            ))
        );
        assert_eq!(
            service_urls("bad", String::new(), "b", "providers.x.endpoint"),
            Err("providers.x.endpoint is not a URL".into())
        );
    }

    #[test]
    fn callback_origin_follows_header_precedence() {
        let mut h = HeaderMap::new();
        assert_eq!(callback_origin(&h), CallbackOrigin::User);
        h.insert("authorization", "Bearer x".parse().unwrap());
        assert_eq!(callback_origin(&h), CallbackOrigin::User);
        h.insert("authorization", "QBox ak:sig".parse().unwrap());
        assert_eq!(callback_origin(&h), CallbackOrigin::Cloud(CloudType::Qiniu));
        h.insert("authorization", "Qiniu ak:sig".parse().unwrap());
        assert_eq!(callback_origin(&h), CallbackOrigin::Cloud(CloudType::Qiniu));
        h.insert("x-oss-pub-key-url", "aHR0cA==".parse().unwrap());
        assert_eq!(
            callback_origin(&h),
            CallbackOrigin::Cloud(CloudType::Aliyun)
        );
    }
}
