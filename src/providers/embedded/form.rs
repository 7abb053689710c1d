//! The embedded store's browser form: the S3 POST form ([`crate::providers::aws::form`]),
//! signed with the minted credentials, posted path-style to `{public_url}/{bucket}`. The
//! policy pins the bucket, the key (or the folder prefix), the size range (the module's
//! `max_bytes`), the session token and the expiry, and — for one object — the
//! `Content-Type` derived from the extension, which the store records.

use std::time::{Duration, SystemTime};

use crate::providers::{Form, TempCredentials};

/// What the form is for.
pub struct FormTarget<'a> {
    /// `{public_url}/{bucket}`.
    pub url: &'a str,
    /// Bucket.
    pub bucket: &'a str,
    /// Region (signing scope).
    pub region: &'a str,
    /// Key, or folder prefix.
    pub key: &'a str,
    /// Folder upload: the form's key is `{prefix}${filename}`.
    pub is_dir: bool,
    /// The `Content-Type` the form sets for one object.
    pub content_type: Option<&'a str>,
    /// Largest object.
    pub max_bytes: u64,
}

/// The form for `target`, signed with `cred` at `now` (Unix seconds): the AWS S3 POST form.
pub fn form(cred: &TempCredentials, target: &FormTarget<'_>, now: i64) -> Form {
    crate::providers::aws::form::form(
        cred,
        target.bucket,
        target.region,
        target.url,
        target.key,
        target.is_dir,
        target.content_type,
        target.max_bytes,
        SystemTime::UNIX_EPOCH + Duration::from_secs(now.max(0) as u64),
    )
}
