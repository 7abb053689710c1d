//! The one error type every provider returns; `crate::error` maps it to HTTP.

use std::time::Duration;

/// What went wrong talking to a cloud, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The cloud answered with an error it documents (`code` is the cloud's own error
    /// code, e.g. `AuthFailure.SignatureFailure`, `Throttling.User`, `AccessDenied`).
    /// Never contains a secret: only the code and the cloud's message.
    #[error("cloud refused the call: {code}")]
    Refused {
        /// The cloud's error code.
        code: String,
        /// The cloud's message (kept for logs; not sent to clients).
        message: String,
        /// Throttling, internal errors and 5xx are retryable.
        retryable: bool,
    },
    /// The cloud answered, but with something we cannot use: a body in no documented
    /// shape, a missing field, credentials that expire too soon.
    #[error("unusable cloud answer: {0}")]
    Unusable(String),
    /// The connection failed (refused, reset, TLS). Retryable.
    #[error("network error: {0}")]
    Network(String),
    /// No answer within the time we had.
    #[error("cloud did not answer in time")]
    Timeout,
    /// Retryable failures until the deadline, or the call budget was spent.
    #[error("cloud unavailable (last: {last})")]
    Unavailable {
        /// When the client may try again.
        retry_after: Duration,
        /// The last retryable failure, for logs.
        last: String,
    },
    /// The request is invalid for this cloud (e.g. `isDir` where the cloud grants one object).
    #[error("invalid for this cloud: {0}")]
    InvalidRequest(String),
}

impl ProviderError {
    /// Whether a retry inside the request's deadline may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Refused { retryable, .. } => *retryable,
            ProviderError::Network(_) | ProviderError::Timeout => true,
            ProviderError::Unusable(_)
            | ProviderError::Unavailable { .. }
            | ProviderError::InvalidRequest(_) => false,
        }
    }

    /// A [`ProviderError::Refused`] from a cloud's error answer, made safe to log: the code
    /// keeps at most 64 characters of `[A-Za-z0-9._:- ]`, the message at most 160
    /// characters, and every one of `secrets` (4 characters or more) is replaced in both.
    pub fn refused(code: &str, message: &str, retryable: bool, secrets: &[&str]) -> Self {
        let scrub = |text: &str| {
            secrets
                .iter()
                .filter(|s| s.len() >= 4)
                .fold(text.to_string(), |t, s| t.replace(s, "<redacted>"))
        };
        let code: String = scrub(code)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "._:- <>".contains(*c))
            .take(64)
            .collect();
        ProviderError::Refused {
            code: if code.trim().is_empty() {
                "unknown".into()
            } else {
                code.trim().to_string()
            },
            message: scrub(message).chars().take(160).collect(),
            retryable,
        }
    }

    /// A non-2xx HTTP answer whose body fits none of the cloud's documented error shapes.
    pub fn http_status(status: u16) -> Self {
        if status >= 500 || status == 429 {
            ProviderError::Refused {
                code: format!("HTTP {status}"),
                message: String::new(),
                retryable: true,
            }
        } else {
            ProviderError::Unusable(format!("HTTP {status} with an unrecognised body"))
        }
    }
}

/// A cloud-signed callback whose signature does not verify (401/40102). The reason is for
/// logs; it never contains a key or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callback signature verification failed: {0}")]
pub struct CallbackRefused(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_scrubs_secrets_and_bounds_lengths() {
        let e = ProviderError::refused(
            "APIGW.0301 AKSECRET1\n\"x\"",
            &format!("key AKSECRET1 and SKSECRET2 rejected {}", "y".repeat(500)),
            false,
            &["AKSECRET1", "SKSECRET2", "ab"],
        );
        let ProviderError::Refused {
            code,
            message,
            retryable,
        } = e
        else {
            panic!("not Refused")
        };
        assert_eq!(code, "APIGW.0301 <redacted>x");
        assert!(message.starts_with("key <redacted> and <redacted> rejected"));
        assert_eq!(message.chars().count(), 160);
        assert!(!retryable);
        assert_eq!(
            ProviderError::refused("", "m", true, &[]),
            ProviderError::Refused {
                code: "unknown".into(),
                message: "m".into(),
                retryable: true
            }
        );
    }
}
