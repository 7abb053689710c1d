//! What every fake cloud's bucket shares: the stored objects, the log of object requests,
//! the failure script for `HEAD` and `DELETE`, and the `HEAD` answer (size, ETag, content
//! type). Each cloud's fake checks its own signatures (presigned `PUT`, browser `POST`,
//! stsgate's long-term-key `HEAD`/`DELETE`) and answers errors in its own format; once a
//! request passed, it stores, answers or deletes through here.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::common::Mode;

/// An object stored by an upload (or put directly by a test).
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub bucket: String,
    pub key: String,
    pub size: usize,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// One fake bucket service (any number of buckets by name).
#[derive(Debug)]
pub struct Buckets {
    objects: Mutex<Vec<StoredObject>>,
    head_mode: Mutex<Mode>,
    delete_mode: Mutex<Mode>,
    calls: Mutex<Vec<(String, String)>>,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            objects: Mutex::new(Vec::new()),
            head_mode: Mutex::new(Mode::Ok),
            delete_mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
        }
    }
}

/// The ETag the fakes give an object: a quoted hex digest of its bytes.
pub fn etag(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(data)[..16]))
}

impl Buckets {
    /// Objects stored so far.
    pub fn objects(&self) -> Vec<StoredObject> {
        self.objects.lock().unwrap().clone()
    }

    /// The object at `bucket`/`key`.
    pub fn get(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .find(|o| o.bucket == bucket && o.key == key)
            .cloned()
    }

    /// Stores (or replaces) an object; answers its ETag.
    pub fn put(&self, bucket: &str, key: &str, content_type: Option<&str>, data: &[u8]) -> String {
        let mut objects = self.objects.lock().unwrap();
        objects.retain(|o| !(o.bucket == bucket && o.key == key));
        objects.push(StoredObject {
            bucket: bucket.into(),
            key: key.into(),
            size: data.len(),
            content_type: content_type.map(str::to_string),
            data: data.to_vec(),
        });
        etag(data)
    }

    /// Removes an object (nothing when absent).
    pub fn delete(&self, bucket: &str, key: &str) {
        self.objects
            .lock()
            .unwrap()
            .retain(|o| !(o.bucket == bucket && o.key == key));
    }

    /// Changes how an authenticated `HEAD` of an object is answered (`Error`, `ErrorTimes`,
    /// `Http500`, `Hang`, `Delay`; anything else answers normally).
    pub fn set_head_mode(&self, m: Mode) {
        *self.head_mode.lock().unwrap() = m;
    }

    /// The same for an authenticated `DELETE`.
    pub fn set_delete_mode(&self, m: Mode) {
        *self.delete_mode.lock().unwrap() = m;
    }

    /// Records an object request (method, key), authenticated or not.
    pub fn log(&self, method: &str, key: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((method.to_string(), key.to_string()));
    }

    /// Object requests received (method, key).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }

    /// Applies the failure script of `method` (`HEAD` or `DELETE`): `Some(answer)` when this
    /// request is to fail (`error` builds the cloud's error answer from status and code),
    /// `None` to answer normally (after a `Delay`).
    pub async fn scripted(
        &self,
        method: &str,
        error: impl Fn(u16, &str) -> Response,
    ) -> Option<Response> {
        let slot = if method == "DELETE" {
            &self.delete_mode
        } else {
            &self.head_mode
        };
        match Mode::next(slot) {
            Mode::Error(status, code) | Mode::AltError(status, code) => Some(error(status, &code)),
            Mode::Http500 => Some(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<html>Internal Server Error</html>",
                )
                    .into_response(),
            ),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Some(StatusCode::OK.into_response())
            }
            Mode::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            _ => None,
        }
    }

    /// The `HEAD` answer for `bucket`/`key`: 200 with `Content-Length`, `ETag` and
    /// `Content-Type`, or `None` when there is no such object (the caller answers its cloud's
    /// 404).
    pub fn head(&self, bucket: &str, key: &str) -> Option<Response> {
        let o = self.get(bucket, key)?;
        let mut res = StatusCode::OK.into_response();
        let h = res.headers_mut();
        h.insert("etag", etag(&o.data).parse().unwrap());
        h.insert("content-length", o.size.into());
        if let Some(ct) = o.content_type.as_deref().and_then(|c| c.parse().ok()) {
            h.insert("content-type", ct);
        }
        Some(res)
    }
}
