//! The embedded store's browser form: the S3 POST form ([`crate::providers::aws::form`]),
//! signed with the minted credentials, posted path-style to `{public_url}/{bucket}`. The
//! policy pins the bucket, the key (or the folder prefix), the size range (the module's
//! `max_bytes`), the session token and the expiry, and — for one object — the
//! `Content-Type` derived from the extension, which the store records.

use std::time::{Duration, SystemTime};

use crate::clock::rfc3339;
use crate::providers::aws::form::{post_form, Condition, PostFormInput};
use crate::providers::form::content_type_for;
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
    /// Lower-case extension.
    pub extension: &'a str,
    /// Largest object.
    pub max_bytes: u64,
}

/// The form for `target`, signed with `cred` at `now` (Unix seconds).
pub fn form(cred: &TempCredentials, target: &FormTarget<'_>, now: i64) -> Form {
    let form_key = if target.is_dir {
        format!("{}${{filename}}", target.key)
    } else {
        target.key.to_string()
    };
    let content_type = content_type_for(target.extension);
    let mut conditions = vec![Condition::LengthRange(0, target.max_bytes)];
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if target.is_dir {
        // Files of a folder differ in type: the browser sets each one's.
        conditions.push(Condition::StartsWith("Content-Type".into(), String::new()));
    } else {
        conditions.push(Condition::Eq("Content-Type".into(), content_type.into()));
        extra.push(("Content-Type", content_type));
    }
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(now.max(0) as u64);
    let expiration = rfc3339(cred.expiration);
    let signed = post_form(&PostFormInput {
        url: target.url,
        bucket: target.bucket,
        key: &form_key,
        access_key_id: &cred.access_key_id,
        secret_access_key: cred.expose_secret(),
        session_token: Some(cred.expose_token()),
        region: target.region,
        time,
        expiration: &expiration,
        conditions: &conditions,
        extra_fields: &extra,
    });
    Form {
        url: signed.url,
        fields: signed.fields,
        policy: signed.policy,
        signature: signed.signature,
    }
}
