//! Cloud providers: one [`CredentialProvider`] per cloud, all listed in one table
//! ([`registry::CLOUDS`]), and what they share — the upstream [`budget`], the retrying HTTP
//! driver ([`http`]), hash/HMAC helpers ([`crypto`]), SigV4 ([`sigv4`]), answer parsing
//! ([`answer`]), browser forms ([`form`]) and section rules ([`config`]). The HTTP layer
//! knows no cloud; it talks to this trait.
//!
//! Every cloud folder has the same files (`docs/adding-a-cloud.md`): `mod.rs` (the
//! provider: `new`, `issue`, and `verify_callback` where the cloud signs callbacks),
//! `config.rs` (its section), `sign.rs` (its signature schemes, pure), `sts.rs` (the
//! credential call: request and answer, into [`TempCredentials`]), `form.rs` (the browser
//! form), and `callback.rs` where the cloud signs its upload callbacks.

pub mod answer;
pub mod budget;
pub mod config;
pub mod crypto;
pub mod error;
pub mod form;
pub mod http;
pub mod object;
pub mod registry;
pub mod sigv4;
#[cfg(test)]
pub(crate) mod test_vectors;

pub mod aliyun;
pub mod aws;
pub mod baidu;
pub mod embedded;
pub mod huawei;
pub mod ksyun;
pub mod qiniu;
pub mod tencent;

use async_trait::async_trait;
use axum::http::HeaderMap;
use bytes::Bytes;
use secrecy::SecretString;
use tokio::time::Instant;

pub use error::{CallbackRefused, ProviderError};
pub use form::Form;
pub use registry::{CallbackOrigin, CloudType, Registry};

use crate::upload::module::UploadModule;

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
    /// The `Content-Type` a form or presigned PUT for one object sets (from the extension),
    /// so the stored object is not `binary/octet-stream`; `None` for a folder, whose files
    /// differ.
    pub fn content_type(&self) -> Option<&'static str> {
        (!self.is_dir).then(|| form::content_type_for(&self.extension))
    }

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

/// A presigned `PUT` for exactly one key: the URL and the headers the client must send with
/// it. `Debug` shows neither (the URL is a bearer capability carrying the session token).
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedPut {
    /// The full URL, query included.
    pub url: String,
    /// Headers the signature covers besides `host`, to send as they are.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for PresignedPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedPut")
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
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
    /// Presigned `PUT`, where the cloud has one (never for `isDir`).
    pub upload: Option<PresignedPut>,
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
            upload: None,
            callback: None,
        }
    }

    /// The same, with a presigned `PUT` (`uploadUrl`, `uploadHeaders`).
    pub fn with_upload(mut self, upload: Option<PresignedPut>) -> Issued {
        self.upload = upload;
        self
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

/// What the cloud says about one stored object (a `HEAD` answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudObject {
    /// `Content-Length`.
    pub size: i64,
    /// `ETag`, quotes removed.
    pub etag: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

/// The answer of [`CredentialProvider::head_object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// This provider does not ask its cloud (not implemented, or `verify_uploads = false`):
    /// the client's claim is recorded.
    CannotVerify,
    /// The bucket has no such object.
    Absent,
    /// The bucket's facts.
    Present(CloudObject),
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

    /// Whether the provider's store records finished uploads on the ledger itself (the
    /// embedded store), so a client callback is not needed.
    fn records_uploads(&self) -> bool {
        false
    }

    /// Verifies a cloud-signed upload callback (only clouds that sign callbacks).
    async fn verify_callback(&self, _input: &CallbackInput) -> Result<(), CallbackRefused> {
        Err(CallbackRefused("this cloud does not sign callbacks".into()))
    }

    /// Whether a callback this cloud signed still needs the cloud's `HEAD`: a signature that
    /// proves who sent the callback but not which bucket holds the object (OSS: any bucket
    /// can be told to call back with the same key's signature) does not settle the upload.
    fn signed_callback_needs_head(&self) -> bool {
        false
    }

    /// Asks the cloud about `key` in `bucket` (a `HEAD` signed with stsgate's long-term
    /// credentials, through the shared HTTP driver, within `deadline`). The default cannot
    /// verify, so a cloud without it records the client's claim.
    async fn head_object(
        &self,
        _bucket: &str,
        _key: &str,
        _deadline: Instant,
    ) -> Result<Head, ProviderError> {
        Ok(Head::CannotVerify)
    }

    /// Deletes `key` in `bucket` (an upload that broke the module's rules), where the
    /// long-term credentials allow it. Only called after [`head_object`](Self::head_object)
    /// answered [`Head::Present`].
    async fn delete_object(
        &self,
        _bucket: &str,
        _key: &str,
        _deadline: Instant,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::InvalidRequest(
            "this cloud cannot delete objects".into(),
        ))
    }
}
