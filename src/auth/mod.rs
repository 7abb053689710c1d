//! JWT authentication: pinned algorithms, required `exp` and `sub`, `iss`/`aud` when
//! configured, a documented leeway, keys from a secret, a PEM file or a JWKS URL, and an
//! extractor answering 401 with the envelope (and 429 over the per-user request limit).

pub mod cache;
pub mod jwks;
pub mod jwt;
pub mod keyfile;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::app::AppState;
use crate::error::ApiError;

pub use jwt::{Claims, Verifier};

/// The authenticated caller.
#[derive(Clone)]
pub struct AuthUser {
    /// JWT `sub`.
    pub sub: String,
    /// The `projects` claim, when the token carries one.
    pub projects: Option<Vec<i64>>,
    /// The token's `scope` contains `stsgate:service`: the backend that consumes objectIds.
    pub service: bool,
}

/// The scope that marks the backend's tokens.
pub const SERVICE_SCOPE: &str = "stsgate:service";

impl AuthUser {
    /// `Ok` for a service token, else 403/40302.
    pub fn require_service(&self) -> Result<(), ApiError> {
        if self.service {
            Ok(())
        } else {
            Err(ApiError::ServiceScopeRequired)
        }
    }
}

impl std::fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthUser")
            .field("sub", &self.sub)
            .field("projects", &self.projects)
            .field("service", &self.service)
            .finish()
    }
}

/// Extracts the token from an `Authorization` value: `Bearer <jwt>` (scheme
/// case-insensitive) or a bare token. Anything else is `None` (40101).
pub fn token_from_header(value: &str) -> Option<&str> {
    let value = value.trim();
    if let Some((scheme, rest)) = value.split_once(' ') {
        if scheme.eq_ignore_ascii_case("bearer") {
            let t = rest.trim();
            return (!t.is_empty() && !t.contains(' ')).then_some(t);
        }
        return None;
    }
    (!value.is_empty() && !value.eq_ignore_ascii_case("bearer")).then_some(value)
}

/// Authenticates the `Authorization` header of a request, then counts the request against
/// the user's limit (`server.per_user_rps`).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::MissingAuth)?
        .to_str()
        .map_err(|_| ApiError::MissingAuth)?;
    let token = token_from_header(header).ok_or(ApiError::MissingAuth)?;
    let claims = state
        .verifier
        .verify(token, state.clock.now_unix())
        .await
        .map_err(ApiError::InvalidToken)?;
    if let Some(limiter) = &state.limiter {
        limiter.check(&claims.sub)?;
    }
    let service = claims
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|x| x == SERVICE_SCOPE));
    Ok(AuthUser {
        sub: claims.sub,
        projects: claims.projects,
        service,
    })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers).await
    }
}

#[cfg(test)]
mod tests {
    use super::token_from_header;

    #[test]
    fn header_forms() {
        assert_eq!(token_from_header("Bearer a.b.c"), Some("a.b.c"));
        assert_eq!(token_from_header("bearer   a.b.c "), Some("a.b.c"));
        assert_eq!(token_from_header("a.b.c"), Some("a.b.c"));
        assert_eq!(token_from_header("Basic dXNlcjpwYXNz"), None);
        assert_eq!(token_from_header("Bearer "), None);
        assert_eq!(token_from_header(""), None);
        assert_eq!(token_from_header("Bearer a b"), None);
    }
}
