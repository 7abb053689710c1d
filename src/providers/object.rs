//! Asking a cloud about one stored object with stsgate's long-term key: the `HEAD` that
//! confirms an upload and the `DELETE` that removes one that broke the module's rules
//! (`docs/contract.md` §6). Each cloud signs its own request (`sign::sign_object_request` in
//! its folder); sending it and reading the answer is the same everywhere and lives here, so
//! every cloud maps statuses and headers the same way.

use std::time::Duration;

use tokio::time::Instant;

use super::http::Upstream;
use super::{CloudObject, Head, ProviderError};

/// A signed object request: the full URL and the headers the signature covers.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// URL, query included.
    pub url: String,
    /// Headers to send as they are (`Host` is reqwest's).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The headers carry the signature (and maybe a token): names only.
        f.debug_struct("SignedRequest")
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

/// One send of a signed `HEAD`/`DELETE` (no retry: the caller runs it inside
/// [`Upstream::call`](super::http::Upstream::call)); answers (status, headers). The (error)
/// body is drained so the connection can be reused; its text is not needed.
pub async fn send_once(
    client: &reqwest::Client,
    method: reqwest::Method,
    signed: SignedRequest,
    timeout: Duration,
) -> Result<(u16, reqwest::header::HeaderMap), ProviderError> {
    let mut req = client.request(method, &signed.url).timeout(timeout);
    for (name, value) in signed.headers {
        req = req.header(name, value);
    }
    let res = req.send().await.map_err(super::http::transport_error)?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let _ = res.bytes().await;
    Ok((status, headers))
}

/// What a cloud brings to the shared `HEAD`/`DELETE` ([`head`], [`delete`]): its name (in
/// errors), its upstream, whether it verifies uploads, and the signing of one request with the
/// long-term key at the current time (called again for every attempt).
pub trait ObjectSigner: Sync {
    /// The service's name in errors (`S3`, `OSS`, ...).
    const SERVICE: &'static str;
    /// The cloud's upstream (client, budget, retries).
    fn upstream(&self) -> &Upstream;
    /// `verify_uploads` of the cloud's section.
    fn verify_uploads(&self) -> bool;
    /// `method` (`HEAD` or `DELETE`) of `key` in `bucket`, signed now.
    fn sign_object(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
    ) -> Result<SignedRequest, ProviderError>;
}

/// [`CredentialProvider::head_object`](super::CredentialProvider::head_object) for a cloud:
/// [`Head::CannotVerify`] without `verify_uploads`, else a signed `HEAD` through the
/// upstream's retries within `deadline`.
pub async fn head<S: ObjectSigner>(
    cloud: &S,
    bucket: &str,
    key: &str,
    deadline: Instant,
) -> Result<Head, ProviderError> {
    if !cloud.verify_uploads() {
        return Ok(Head::CannotVerify);
    }
    let up = cloud.upstream();
    up.call(deadline, |t| async move {
        let signed = cloud.sign_object("HEAD", bucket, key)?;
        let (status, headers) = send_once(&up.client, reqwest::Method::HEAD, signed, t).await?;
        head_answer(S::SERVICE, status, &headers)
    })
    .await
}

/// [`CredentialProvider::delete_object`](super::CredentialProvider::delete_object) for a
/// cloud: a signed `DELETE` through the upstream's retries within `deadline`.
pub async fn delete<S: ObjectSigner>(
    cloud: &S,
    bucket: &str,
    key: &str,
    deadline: Instant,
) -> Result<(), ProviderError> {
    let up = cloud.upstream();
    up.call(deadline, |t| async move {
        let signed = cloud.sign_object("DELETE", bucket, key)?;
        let (status, _) = send_once(&up.client, reqwest::Method::DELETE, signed, t).await?;
        delete_answer(S::SERVICE, status)
    })
    .await
}

/// A `HEAD` answer: 2xx → the object's facts, 404 → absent, anything else an error
/// ([`status_error`]).
pub fn head_answer(
    service: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
) -> Result<Head, ProviderError> {
    match status {
        200..=299 => Ok(Head::Present(head_facts(service, headers)?)),
        404 => Ok(Head::Absent),
        s => Err(status_error(service, s)),
    }
}

/// A `DELETE` answer: 2xx, or 404 (already gone), is done.
pub fn delete_answer(service: &str, status: u16) -> Result<(), ProviderError> {
    match status {
        200..=299 | 404 => Ok(()),
        s => Err(status_error(service, s)),
    }
}

/// A non-2xx answer to a `HEAD`/`DELETE` (which has no body to read a code from) as a
/// [`ProviderError`]: 5xx and 429 retryable, anything else final.
pub fn status_error(service: &str, status: u16) -> ProviderError {
    let code = match status {
        403 => "AccessDenied".to_string(),
        _ => format!("HTTP {status}"),
    };
    ProviderError::Refused {
        code,
        message: format!("{service} answered HTTP {status}"),
        retryable: status >= 500 || status == 429,
    }
}

/// The facts of a `HEAD` answer: `Content-Length` (required), `ETag` without its quotes,
/// `Content-Type`.
pub fn head_facts(
    service: &str,
    headers: &reqwest::header::HeaderMap,
) -> Result<CloudObject, ProviderError> {
    let text = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let size = text("content-length")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0)
        .ok_or_else(|| {
            ProviderError::Unusable(format!("{service} HEAD answer without Content-Length"))
        })?;
    Ok(CloudObject {
        size,
        etag: text("etag").map(|e| e.trim().trim_matches('"').to_string()),
        content_type: text("content-type"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn head_answers_map_to_facts_absence_or_errors() {
        let h = headers(&[
            ("content-length", "42"),
            ("etag", "\"abc\""),
            ("content-type", "image/png"),
        ]);
        assert_eq!(
            head_answer("OSS", 200, &h).unwrap(),
            Head::Present(CloudObject {
                size: 42,
                etag: Some("abc".into()),
                content_type: Some("image/png".into()),
            })
        );
        assert_eq!(head_answer("OSS", 404, &h).unwrap(), Head::Absent);
        let e = head_answer("OSS", 403, &h).unwrap_err();
        assert!(
            matches!(&e, ProviderError::Refused { code, retryable: false, .. } if code == "AccessDenied"),
            "{e:?}"
        );
        let e = head_answer("OSS", 503, &h).unwrap_err();
        assert!(
            matches!(
                &e,
                ProviderError::Refused {
                    retryable: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(matches!(
            head_answer("OSS", 200, &headers(&[("content-length", "-1")])),
            Err(ProviderError::Unusable(_))
        ));
        assert!(matches!(
            head_answer("OSS", 200, &HeaderMap::new()),
            Err(ProviderError::Unusable(_))
        ));
    }

    #[test]
    fn delete_answers() {
        assert!(delete_answer("OBS", 204).is_ok());
        assert!(delete_answer("OBS", 404).is_ok());
        assert!(matches!(
            delete_answer("OBS", 429),
            Err(ProviderError::Refused {
                retryable: true,
                ..
            })
        ));
        assert!(matches!(
            delete_answer("OBS", 403),
            Err(ProviderError::Refused {
                retryable: false,
                ..
            })
        ));
    }
}
