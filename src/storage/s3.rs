//! The S3 side of the embedded store, on `s3s`: [`Keys`] answers the secret of a minted
//! access key id (derived, never stored), [`Guard`] admits a request only with a valid
//! session token for that key, for a write action on a key its grant covers, and within
//! its size; [`Backend`] writes the objects (single PUT and multipart) and records each
//! finished upload on the ledger.

use std::path::PathBuf;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, ETag,
    PutObjectInput, PutObjectOutput, UploadPartInput, UploadPartOutput,
};
use s3s::path::S3Path;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use serde::{Deserialize, Serialize};

use super::disk::{self, WriteError};
use super::paths;
use super::Core;
use crate::providers::embedded::sign::{self, Grant, TokenRefused};

/// Most parts of one multipart upload (S3's own limit).
const MAX_PARTS: i32 = 10_000;

/// The error an S3 client sees for a refused token.
pub fn token_error(refused: TokenRefused) -> S3Error {
    match refused {
        TokenRefused::Expired => {
            S3Error::with_message(S3ErrorCode::ExpiredToken, "The provided token has expired.")
        }
        TokenRefused::Invalid | TokenRefused::OtherKey => S3Error::with_message(
            S3ErrorCode::InvalidToken,
            "The provided token is malformed or otherwise invalid.",
        ),
    }
}

/// The error for a key with no place on disk.
pub fn bad_key(e: paths::BadKey) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidArgument,
        format!("Invalid key: {}.", e.0),
    )
}

fn too_large(max: u64) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::EntityTooLarge,
        format!("Your proposed upload exceeds the maximum allowed size of {max} bytes."),
    )
}

fn write_error(e: WriteError, max: u64) -> S3Error {
    match e {
        WriteError::TooLarge => too_large(max),
        WriteError::Body(_) => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            "The request body ended before its end.",
        ),
        WriteError::Io(e) => {
            tracing::error!(error = %e, "embedded store: disk write failed");
            S3Error::with_message(S3ErrorCode::InternalError, "The store could not write.")
        }
    }
}

/// The secret of any access key id: derived from the server key. A key id we never minted
/// still gets a secret, but its requests fail at the session token.
pub struct Keys(pub Arc<Core>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if !access_key.starts_with(crate::providers::embedded::sts::ACCESS_KEY_PREFIX) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            ));
        }
        Ok(SecretKey::from(sign::derive_secret(
            self.0.server_key(),
            access_key,
        )))
    }
}

/// The session token of a request: the `x-amz-security-token` header, or the
/// `X-Amz-Security-Token` query parameter of a presigned URL.
fn session_token(cx: &S3AccessContext<'_>) -> Option<String> {
    if let Some(v) = cx.headers().get("x-amz-security-token") {
        return v.to_str().ok().map(str::to_string);
    }
    let query = cx.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "X-Amz-Security-Token")
        .map(|(_, v)| v.into_owned())
}

/// The write actions minted credentials allow.
const ALLOWED: [&str; 5] = [
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
];

/// Admits a request only under a valid grant.
pub struct Guard(pub Arc<Core>);

#[async_trait::async_trait]
impl S3Access for Guard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(cred) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed."));
        };
        let access_key = cred.access_key.clone();
        let token = session_token(cx).ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidToken,
                "The request carries no session token (x-amz-security-token).",
            )
        })?;
        let grant = sign::open(
            self.0.server_key(),
            &token,
            &access_key,
            self.0.clock.now_unix(),
        )
        .map_err(token_error)?;
        let op = cx.s3_op().name();
        if !ALLOWED.contains(&op) {
            return Err(s3_error!(
                AccessDenied,
                "These credentials allow uploads only."
            ));
        }
        let S3Path::Object { bucket, key } = cx.s3_path() else {
            return Err(s3_error!(
                AccessDenied,
                "These credentials allow uploads only."
            ));
        };
        if !grant.covers(bucket, key) {
            return Err(s3_error!(
                AccessDenied,
                "These credentials do not allow writing this key."
            ));
        }
        paths::check_key(key).map_err(bad_key)?;
        if op == "PutObject" || op == "UploadPart" {
            let declared = ["x-amz-decoded-content-length", "content-length"]
                .iter()
                .find_map(|h| cx.headers().get(*h))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > grant.max_bytes) {
                return Err(too_large(grant.max_bytes));
            }
        }
        cx.extensions_mut().insert(grant);
        Ok(())
    }
}

fn grant_of<T>(req: &S3Request<T>) -> S3Result<Grant> {
    req.extensions
        .get::<Grant>()
        .cloned()
        .ok_or_else(|| s3_error!(AccessDenied, "No grant."))
}

/// What a multipart upload remembers between its requests.
#[derive(Serialize, Deserialize)]
struct UploadMeta {
    bucket: String,
    key: String,
    content_type: Option<String>,
}

/// Writes objects.
pub struct Backend(pub Arc<Core>);

impl Backend {
    fn upload_dir(&self, upload_id: &str) -> S3Result<PathBuf> {
        // Our ids are 32 hex digits; anything else names no upload (and no path).
        if upload_id.len() != 32 || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(paths::upload_dir(&self.0.dir, upload_id))
    }

    /// Writes `body` (at most `limit` bytes) to `dest` atomically; its size and ETag.
    async fn write(
        &self,
        body: Option<s3s::dto::StreamingBlob>,
        limit: u64,
        dest: &std::path::Path,
    ) -> S3Result<(u64, String)> {
        let Some(body) = body else {
            return Err(s3_error!(IncompleteBody));
        };
        let staged = disk::stage(&self.0.dir, body, limit)
            .await
            .map_err(|e| write_error(e, limit))?;
        let (size, etag) = (staged.size, staged.etag());
        staged
            .persist(dest)
            .await
            .map_err(|e| write_error(WriteError::Io(e), limit))?;
        Ok((size, etag))
    }

    async fn meta(&self, upload_id: &str, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let dir = self.upload_dir(upload_id)?;
        let text = tokio::fs::read(dir.join("meta.json"))
            .await
            .map_err(|_| s3_error!(NoSuchUpload))?;
        let meta: UploadMeta =
            serde_json::from_slice(&text).map_err(|_| s3_error!(NoSuchUpload))?;
        if meta.bucket != bucket || meta.key != key {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(dir)
    }
}

#[async_trait::async_trait]
impl S3 for Backend {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let grant = grant_of(&req)?;
        let input = req.input;
        let dest = paths::object_path(&self.0.dir, &input.bucket, &input.key).map_err(bad_key)?;
        let (size, etag) = self.write(input.body, grant.max_bytes, &dest).await?;
        self.0
            .record(
                &grant,
                &input.key,
                size,
                &etag,
                input.content_type.as_deref(),
            )
            .await;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag.trim_matches('"').to_string())),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        paths::object_path(&self.0.dir, &input.bucket, &input.key).map_err(bad_key)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let dir = paths::upload_dir(&self.0.dir, &upload_id);
        let meta = UploadMeta {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            content_type: input.content_type.clone(),
        };
        let write = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(
                dir.join("meta.json"),
                serde_json::to_vec(&meta).expect("meta serialises"),
            )
            .await
        };
        write.await.map_err(|e| write_error(WriteError::Io(e), 0))?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let grant = grant_of(&req)?;
        let input = req.input;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be 1 to 10000."
            ));
        }
        let dir = self
            .meta(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let part = dir.join(format!("{}.part", input.part_number));
        let (_, etag) = self.write(input.body, grant.max_bytes, &part).await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag.trim_matches('"').to_string())),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let grant = grant_of(&req)?;
        let input = req.input;
        let dir = self
            .meta(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| s3_error!(MalformedXML, "The XML names no parts."))?;
        let mut files = Vec::with_capacity(parts.len());
        let mut md5s = Vec::with_capacity(parts.len());
        let mut last = 0;
        for part in &parts {
            let n = part.part_number.unwrap_or(0);
            if n <= last {
                return Err(s3_error!(InvalidPartOrder));
            }
            last = n;
            let file = dir.join(format!("{n}.part"));
            // The part's ETag is its MD5; the client must name the one it got.
            let md5 = file_md5(&file)
                .await
                .ok_or_else(|| s3_error!(InvalidPart))?;
            let named = part
                .e_tag
                .as_ref()
                .map(|e| e.value().trim_matches('"').to_string());
            if named.as_deref() != Some(hex::encode(md5).as_str()) {
                return Err(s3_error!(InvalidPart));
            }
            files.push(file);
            md5s.push(md5);
        }
        let dest = paths::object_path(&self.0.dir, &input.bucket, &input.key).map_err(bad_key)?;
        let staged = match disk::concat(&self.0.dir, &files, grant.max_bytes).await {
            Ok(s) => s,
            Err(e) => {
                if matches!(e, WriteError::TooLarge) {
                    // Nothing of an over-size upload is kept.
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                }
                return Err(write_error(e, grant.max_bytes));
            }
        };
        let size = staged.size;
        staged
            .persist(&dest)
            .await
            .map_err(|e| write_error(WriteError::Io(e), 0))?;
        let meta: Option<UploadMeta> = tokio::fs::read(dir.join("meta.json"))
            .await
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok());
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let etag = disk::multipart_etag(&md5s);
        self.0
            .record(
                &grant,
                &input.key,
                size,
                &etag,
                meta.and_then(|m| m.content_type).as_deref(),
            )
            .await;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(etag.trim_matches('"').to_string())),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let dir = self
            .meta(&input.upload_id, &input.bucket, &input.key)
            .await?;
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| write_error(WriteError::Io(e), 0))?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// The MD5 of a file, read in blocks.
async fn file_md5(path: &std::path::Path) -> Option<[u8; 16]> {
    use md5::{Digest as _, Md5};
    use tokio::io::AsyncReadExt as _;
    let mut f = tokio::fs::File::open(path).await.ok()?;
    let mut hash = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).await.ok()?;
        if n == 0 {
            return Some(hash.finalize().into());
        }
        hash.update(&buf[..n]);
    }
}
