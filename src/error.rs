//! `ApiError` and the one place that maps errors to an HTTP status and the envelope
//! `{"code", "enMsg", "msg", "data": null}`.
//!
//! 5xx bodies are fixed text; the detail goes to a response extension ([`ErrorDetail`])
//! that the trace layer logs once. Nothing here ever carries a secret: provider errors
//! hold only the cloud's error code.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::ConfigError;
use crate::providers::{CallbackRefused, ProviderError};
use crate::store::StoreError;

/// Every failure the HTTP API reports.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400/40001: the message names the field and the rule.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    /// 400/40002
    #[error("cloud type {0} is not enabled on this server")]
    CloudNotEnabled(i64),
    /// 400/40003
    #[error("extension {extension:?} is not allowed for uploadModule {module}")]
    ExtensionNotAllowed {
        /// The refused extension.
        extension: String,
        /// The module.
        module: String,
    },
    /// 401/40101
    #[error("missing or malformed Authorization header")]
    MissingAuth,
    /// 401/40102 (the reason is logged, never returned in detail).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// 401/40102 for callbacks whose signature fails.
    #[error("callback signature verification failed")]
    BadCallbackSignature(String),
    /// 403/40301
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 403/40302: a service endpoint called without the `stsgate:service` scope.
    #[error("this endpoint needs a token with the stsgate:service scope")]
    ServiceScopeRequired,
    /// 404/40401
    #[error("{0} not found")]
    NotFound(String),
    /// 405/40501
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409/40901
    #[error("Idempotency-Key was used with other parameters")]
    IdempotencyMismatch,
    /// 409/40902
    #[error("the answer for this Idempotency-Key is no longer available")]
    IdempotencyGone,
    /// 409/40903: a client's callback for an object the bucket does not have (the cloud's
    /// `HEAD` answered 404); the row stays `issued`.
    #[error("object {0} is not in the bucket")]
    NotUploaded(i64),
    /// 409/40904: the object's state does not allow this.
    #[error("object {id} is {status}: {action} needs {needs}")]
    WrongState {
        /// objectId.
        id: i64,
        /// Its state.
        status: String,
        /// What was asked.
        action: &'static str,
        /// The state it needs.
        needs: &'static str,
    },
    /// 409/40904: refresh on a cloud whose credentials are single-use.
    #[error("object {0} is on a cloud whose credentials are single-use (Tencent LKE): ask for a new objectId instead of a refresh")]
    SingleUse(i64),
    /// 413/41301
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// 429/42901
    #[error("too many requests")]
    TooManyRequests {
        /// `Retry-After`.
        retry_after: Duration,
    },
    /// 502/50201: `code` is the cloud's error code or what was unusable.
    #[error("the cloud refused the call: {code}")]
    CloudRefused {
        /// The cloud's error code, or a short description of the unusable answer.
        code: String,
    },
    /// 503/50301
    #[error("the cloud is unavailable")]
    CloudUnavailable {
        /// `Retry-After`.
        retry_after: Duration,
        /// Logged only.
        detail: String,
    },
    /// 503/50302
    #[error("database unavailable")]
    DatabaseUnavailable(String),
    /// 504/50401
    #[error("the cloud did not answer in time")]
    CloudTimeout,
    /// 500/50001 (detail logged only).
    #[error("internal error")]
    Internal(String),
}

/// The JSON envelope of every non-2xx answer.
#[derive(Debug, Serialize)]
pub struct Envelope {
    /// Numeric error code.
    pub code: u32,
    /// English message.
    #[serde(rename = "enMsg")]
    pub en_msg: String,
    /// Chinese message.
    pub msg: String,
    /// Always `null`.
    pub data: Option<()>,
}

/// Response extension carrying the internal detail of an error, for the trace layer.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

/// Marker extension: this response already is an envelope.
#[derive(Debug, Clone, Copy)]
pub struct Enveloped;

impl ApiError {
    /// HTTP status and numeric code.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        use ApiError::*;
        match self {
            InvalidParam(_) => (StatusCode::BAD_REQUEST, 40001),
            CloudNotEnabled(_) => (StatusCode::BAD_REQUEST, 40002),
            ExtensionNotAllowed { .. } => (StatusCode::BAD_REQUEST, 40003),
            MissingAuth => (StatusCode::UNAUTHORIZED, 40101),
            InvalidToken(_) | BadCallbackSignature(_) => (StatusCode::UNAUTHORIZED, 40102),
            Forbidden(_) => (StatusCode::FORBIDDEN, 40301),
            ServiceScopeRequired => (StatusCode::FORBIDDEN, 40302),
            NotFound(_) => (StatusCode::NOT_FOUND, 40401),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 40501),
            IdempotencyMismatch => (StatusCode::CONFLICT, 40901),
            IdempotencyGone => (StatusCode::CONFLICT, 40902),
            NotUploaded(_) => (StatusCode::CONFLICT, 40903),
            WrongState { .. } | SingleUse(_) => (StatusCode::CONFLICT, 40904),
            BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 41301),
            TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, 42901),
            CloudRefused { .. } => (StatusCode::BAD_GATEWAY, 50201),
            CloudUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, 50301),
            DatabaseUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, 50302),
            CloudTimeout => (StatusCode::GATEWAY_TIMEOUT, 50401),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }

    /// English message for the client (no internal detail).
    pub fn en_msg(&self) -> String {
        use ApiError::*;
        match self {
            InvalidToken(_) => "invalid or expired token".into(),
            BadCallbackSignature(_) => "callback signature verification failed".into(),
            CloudUnavailable { .. } => {
                "the cloud is unavailable or our call budget to it is spent; retry later".into()
            }
            DatabaseUnavailable(_) => "database unavailable".into(),
            Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    /// Chinese message for the client.
    pub fn zh_msg(&self) -> String {
        use ApiError::*;
        match self {
            InvalidParam(m) => format!("参数错误：{m}"),
            CloudNotEnabled(t) => format!("本服务未启用云类型 {t}"),
            ExtensionNotAllowed { extension, module } => {
                format!("上传模块 {module} 不允许扩展名 {extension}")
            }
            MissingAuth => "缺少或格式错误的 Authorization 请求头".into(),
            InvalidToken(_) => "令牌无效或已过期".into(),
            BadCallbackSignature(_) => "回调签名校验失败".into(),
            Forbidden(_) => "无权访问".into(),
            ServiceScopeRequired => "此接口需要带 stsgate:service 权限的令牌".into(),
            NotFound(_) => "资源不存在".into(),
            MethodNotAllowed => "请求方法不允许".into(),
            IdempotencyMismatch => "幂等键已用于不同的参数".into(),
            IdempotencyGone => "该幂等键的结果已不可用".into(),
            NotUploaded(id) => format!("对象 {id} 不在存储桶中"),
            WrongState { id, status, .. } => format!("对象 {id} 当前状态为 {status}，不允许此操作"),
            SingleUse(id) => format!("对象 {id} 所在云的临时凭证只能使用一次，无法续期"),
            BodyTooLarge(n) => format!("请求体超过 {n} 字节"),
            TooManyRequests { .. } => "请求过于频繁，请稍后重试".into(),
            CloudRefused { code } => format!("云服务拒绝了请求：{code}"),
            CloudUnavailable { .. } => "云服务暂不可用，请稍后重试".into(),
            DatabaseUnavailable(_) => "数据库不可用".into(),
            CloudTimeout => "云服务响应超时".into(),
            Internal(_) => "服务器内部错误".into(),
        }
    }

    /// Internal detail for the log line, if any.
    pub fn detail(&self) -> Option<&str> {
        use ApiError::*;
        match self {
            InvalidToken(d) | BadCallbackSignature(d) | DatabaseUnavailable(d) | Internal(d) => {
                Some(d)
            }
            CloudUnavailable { detail, .. } => Some(detail),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyRequests { retry_after } => Some(*retry_after),
            ApiError::CloudUnavailable { retry_after, .. } => Some(*retry_after),
            ApiError::DatabaseUnavailable(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Refused {
                code, retryable, ..
            } if retryable => ApiError::CloudUnavailable {
                retry_after: Duration::from_secs(1),
                detail: format!("last retryable error: {code}"),
            },
            ProviderError::Refused { code, .. } => ApiError::CloudRefused { code },
            ProviderError::Unusable(what) => ApiError::CloudRefused { code: what },
            ProviderError::Network(d) => ApiError::CloudUnavailable {
                retry_after: Duration::from_secs(1),
                detail: d,
            },
            ProviderError::Timeout => ApiError::CloudTimeout,
            ProviderError::Unavailable { retry_after, last } => ApiError::CloudUnavailable {
                retry_after,
                detail: last,
            },
            ProviderError::InvalidRequest(m) => ApiError::InvalidParam(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(d) => ApiError::DatabaseUnavailable(d),
        }
    }
}

impl From<CallbackRefused> for ApiError {
    fn from(e: CallbackRefused) -> Self {
        ApiError::BadCallbackSignature(e.0)
    }
}

/// Why the server could not start. Every message names the configuration key or the part
/// that failed, and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A key is missing, unknown or has a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `database.url` cannot be opened.
    #[error("database: {0}")]
    Database(StoreError),
    /// The migrations did not apply.
    #[error("migrations: {0}")]
    Migrations(StoreError),
    /// The JWT keys cannot be loaded (`auth.*`, or `./stsgate.key`).
    #[error("auth: {0}")]
    Auth(String),
    /// `redis.url` is configured but unusable.
    #[error("redis: {0}")]
    Redis(String),
}

/// Builds an envelope response for `status` with `code` and messages.
pub fn envelope_response(status: StatusCode, code: u32, en: String, zh: String) -> Response {
    let body = Envelope {
        code,
        en_msg: en,
        msg: zh,
        data: None,
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.extensions_mut().insert(Enveloped);
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut res = envelope_response(status, code, self.en_msg(), self.zh_msg());
        if let Some(ra) = self.retry_after() {
            let secs = ra.as_secs().max(1);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let detail = match self.detail() {
            Some(d) => format!("{self}: {d}"),
            None => self.to_string(),
        };
        res.extensions_mut().insert(ErrorDetail(detail));
        res
    }
}

/// The envelope for a non-2xx status produced outside our handlers (framework rejections).
pub fn envelope_for_status(status: StatusCode) -> Response {
    let err = match status.as_u16() {
        401 => ApiError::MissingAuth,
        403 => ApiError::Forbidden("forbidden".into()),
        404 => ApiError::NotFound("route".into()),
        405 => ApiError::MethodNotAllowed,
        408 | 504 => ApiError::CloudTimeout,
        413 => ApiError::BodyTooLarge(0),
        429 => ApiError::TooManyRequests {
            retry_after: Duration::from_secs(1),
        },
        400..=499 => ApiError::InvalidParam(format!(
            "request rejected ({})",
            status.canonical_reason().unwrap_or("client error")
        )),
        _ => ApiError::Internal(format!("framework answered {status}")),
    };
    err.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every variant's status and code (docs/contract.md §1.3).
    #[test]
    fn every_variant_maps_to_its_status_and_code() {
        let d = Duration::from_secs(2);
        let cases: Vec<(ApiError, u16, u32)> = vec![
            (ApiError::InvalidParam("x".into()), 400, 40001),
            (ApiError::CloudNotEnabled(1), 400, 40002),
            (
                ApiError::ExtensionNotAllowed {
                    extension: "exe".into(),
                    module: "m".into(),
                },
                400,
                40003,
            ),
            (ApiError::MissingAuth, 401, 40101),
            (ApiError::InvalidToken("x".into()), 401, 40102),
            (ApiError::BadCallbackSignature("x".into()), 401, 40102),
            (ApiError::Forbidden("x".into()), 403, 40301),
            (ApiError::NotFound("x".into()), 404, 40401),
            (ApiError::MethodNotAllowed, 405, 40501),
            (ApiError::IdempotencyMismatch, 409, 40901),
            (ApiError::IdempotencyGone, 409, 40902),
            (ApiError::NotUploaded(3), 409, 40903),
            (ApiError::BodyTooLarge(1), 413, 41301),
            (ApiError::TooManyRequests { retry_after: d }, 429, 42901),
            (ApiError::CloudRefused { code: "X".into() }, 502, 50201),
            (
                ApiError::CloudUnavailable {
                    retry_after: d,
                    detail: "x".into(),
                },
                503,
                50301,
            ),
            (ApiError::DatabaseUnavailable("x".into()), 503, 50302),
            (ApiError::CloudTimeout, 504, 50401),
            (ApiError::Internal("x".into()), 500, 50001),
        ];
        assert_eq!(cases.len(), 19, "one case per variant");
        for (err, status, code) in cases {
            let (s, c) = err.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
            assert!(!err.zh_msg().is_empty());
            let res = err.clone().into_response();
            assert_eq!(res.status().as_u16(), status);
            assert!(res.extensions().get::<Enveloped>().is_some());
            if status == 429 || code == 50301 {
                assert_eq!(res.headers()[header::RETRY_AFTER], "2");
            }
            if status == 401 {
                assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
            }
        }
    }

    #[test]
    fn internal_detail_never_reaches_the_message() {
        let e = ApiError::Internal("sqlx: password=hunter2".into());
        assert!(!e.en_msg().contains("hunter2"));
        assert!(!e.zh_msg().contains("hunter2"));
        let e = ApiError::InvalidToken("signature mismatch eyJhbGciOi".into());
        assert!(!e.en_msg().contains("eyJ"));
    }

    #[test]
    fn provider_errors_map_per_product() {
        let refused = |retryable| ProviderError::Refused {
            code: "AuthFailure.SignatureFailure".into(),
            message: "m".into(),
            retryable,
        };
        assert_eq!(ApiError::from(refused(false)).status_and_code().1, 50201);
        assert_eq!(ApiError::from(refused(true)).status_and_code().1, 50301);
        assert_eq!(
            ApiError::from(ProviderError::Timeout).status_and_code().1,
            50401
        );
        assert_eq!(
            ApiError::from(ProviderError::Unusable("no UploadPath".into()))
                .status_and_code()
                .1,
            50201
        );
        assert_eq!(
            ApiError::from(ProviderError::InvalidRequest("isDir".into()))
                .status_and_code()
                .1,
            40001
        );
    }

    #[test]
    fn framework_statuses_get_envelopes_and_never_408() {
        for s in [400u16, 401, 404, 405, 408, 413, 415, 422, 500] {
            let res = envelope_for_status(StatusCode::from_u16(s).unwrap());
            assert_ne!(res.status(), StatusCode::REQUEST_TIMEOUT);
            assert!(res.extensions().get::<Enveloped>().is_some());
        }
    }
}
