//! A fake identity provider: a JWKS endpoint whose key set can be rotated, taken down
//! (503) or made to hang, counting every fetch; plus signing with the test keys in
//! `tests/fixtures` (RSA for RS256, P-256 for ES256).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The current key set.
    Ok,
    /// 503, no body.
    Down,
    /// Never answers (the client's timeout must end the fetch).
    Hang,
}

/// The fake JWKS endpoint.
pub struct FakeJwks {
    keys: Mutex<Vec<Value>>,
    mode: Mutex<Mode>,
    fetches: AtomicUsize,
}

impl FakeJwks {
    /// A fake serving `keys`.
    pub fn new(keys: Vec<Value>) -> Arc<Self> {
        Arc::new(Self {
            keys: Mutex::new(keys),
            mode: Mutex::new(Mode::Ok),
            fetches: AtomicUsize::new(0),
        })
    }

    /// Serves on 127.0.0.1:0; returns the JWKS URL.
    pub async fn start(self: &Arc<Self>) -> String {
        let app = Router::new()
            .route("/.well-known/jwks.json", get(handle))
            .with_state(self.clone());
        let base = crate::common::serve("127.0.0.1:0", app).await;
        format!("{base}/.well-known/jwks.json")
    }

    /// Replaces the published key set.
    pub fn rotate(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    /// Sets how the fake answers.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests received so far (whatever the answer).
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn handle(State(fake): State<Arc<FakeJwks>>) -> Response {
    fake.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = *fake.mode.lock().unwrap();
    match mode {
        Mode::Ok => {
            let keys = fake.keys.lock().unwrap().clone();
            axum::Json(json!({ "keys": keys })).into_response()
        }
        Mode::Down => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/jwt_rsa_private.pem")).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("../../tests/fixtures/jwt_ec_private.pem")).unwrap()
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut v = serde_json::to_value(Jwk::from_encoding_key(key, alg).unwrap()).unwrap();
    v["kid"] = kid.into();
    v["use"] = "sig".into();
    v
}

/// The public JWK of the test RSA key (RS256) under `kid`.
pub fn rsa_jwk(kid: &str) -> Value {
    public_jwk(&rsa_key(), Algorithm::RS256, kid)
}

/// The public JWK of the test P-256 key (ES256) under `kid`.
pub fn ec_jwk(kid: &str) -> Value {
    public_jwk(&ec_key(), Algorithm::ES256, kid)
}

/// Standard claims for `sub`, valid for 10 minutes, with `iss` and `aud` when not empty.
pub fn claims(sub: &str, iss: &str, aud: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut c = json!({"sub": sub, "iat": now, "exp": now + 600});
    if !iss.is_empty() {
        c["iss"] = iss.into();
    }
    if !aud.is_empty() {
        c["aud"] = aud.into();
    }
    c
}

/// An RS256 token with `kid` (none when empty).
pub fn rs256(kid: &str, claims: &Value) -> String {
    sign(Algorithm::RS256, &rsa_key(), kid, claims)
}

/// An ES256 token with `kid` (none when empty).
pub fn es256(kid: &str, claims: &Value) -> String {
    sign(Algorithm::ES256, &ec_key(), kid, claims)
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(alg);
    if !kid.is_empty() {
        h.kid = Some(kid.to_string());
    }
    jsonwebtoken::encode(&h, claims, key).unwrap()
}
