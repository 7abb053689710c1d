//! JWT verification and minting.
//!
//! The algorithm is pinned by the key, never chosen by the token: HS256 for a secret, RS256
//! or ES256 for a PEM public key, and for a JWKS key what its `kty`/`crv` says
//! ([`super::jwks`]). So `alg: none` and HS256 tokens signed with a public key are refused.
//! `exp` and `sub` are required; `nbf` is checked when present. Leeway applies to `exp` and
//! `nbf` (default 30 s). With several issuers, a token is tried only against those whose
//! configured `issuer` is its `iss` (or that check none), so a token for one identity
//! provider never makes stsgate fetch another's JWKS.
//!
//! Verification is pure for secrets and PEM keys; a JWKS issuer may fetch its key set.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::cache::{token_hash, KeyStamp, TokenCache};
use super::jwks::JwksSource;
use crate::config::IssuerConfig;

/// The claims stsgate reads.
#[derive(Clone, Deserialize, Serialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Projects the user may upload to (`projectId` must be one of them when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<i64>>,
    /// Space-separated scopes; `stsgate:service` marks the backend (`docs/contract.md` §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("sub", &self.sub)
            .field("exp", &self.exp)
            .field("projects", &self.projects)
            .field("scope", &self.scope)
            .finish()
    }
}

enum KeySource {
    /// A secret or PEM key with its one algorithm.
    Fixed { key: DecodingKey, alg: Algorithm },
    /// Keys from a JWKS URL (RS256 or ES256, per key).
    Jwks(JwksSource),
}

struct IssuerKey {
    source: KeySource,
    config: IssuerConfig,
}

/// Verifies tokens against one or more issuers, remembering those that verified
/// ([`super::cache`]).
pub struct Verifier {
    issuers: Vec<IssuerKey>,
    cache: TokenCache,
    /// Verifications served from the cache (for tests).
    hits: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({} issuers)", self.issuers.len())
    }
}

impl Verifier {
    /// Builds a verifier; `hs256_fallback` is the key-file secret used when no issuer has
    /// a key source. Nothing is fetched here: a JWKS is fetched when a token first needs it.
    pub fn new(issuers: &[IssuerConfig], hs256_fallback: Option<&str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for (i, iss) in issuers.iter().enumerate() {
            let source = if iss.hs256_secret.is_set() {
                KeySource::Fixed {
                    key: DecodingKey::from_secret(iss.hs256_secret.expose().as_bytes()),
                    alg: Algorithm::HS256,
                }
            } else if !iss.public_key_pem_file.is_empty() {
                let pem = std::fs::read(&iss.public_key_pem_file).map_err(|e| {
                    format!("auth issuer {i}: cannot read public_key_pem_file: {e}")
                })?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    KeySource::Fixed {
                        key,
                        alg: Algorithm::RS256,
                    }
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    KeySource::Fixed {
                        key,
                        alg: Algorithm::ES256,
                    }
                } else {
                    return Err(format!(
                        "auth issuer {i}: public_key_pem_file is neither an RSA nor an EC public key"
                    ));
                }
            } else if !iss.jwks_url.is_empty() {
                KeySource::Jwks(JwksSource::new(
                    &iss.jwks_url,
                    iss.jwks_min_refresh_secs,
                    Duration::from_millis(iss.jwks_timeout_ms),
                )?)
            } else {
                return Err(format!("auth issuer {i}: no usable key source"));
            };
            out.push(IssuerKey {
                source,
                config: iss.clone(),
            });
        }
        if out.is_empty() {
            let secret = hs256_fallback.ok_or("no JWT key configured")?;
            out.push(IssuerKey {
                source: KeySource::Fixed {
                    key: DecodingKey::from_secret(secret.as_bytes()),
                    alg: Algorithm::HS256,
                },
                config: IssuerConfig::default(),
            });
        }
        Ok(Verifier {
            issuers: out,
            cache: TokenCache::new(super::cache::CAPACITY, super::cache::MAX_AGE),
            hits: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many verifications the cache answered.
    pub fn cache_hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the key that verified a cached token is still the one in use.
    async fn stamp_current(&self, stamp: KeyStamp) -> bool {
        match (
            self.issuers.get(stamp.issuer).map(|i| &i.source),
            stamp.generation,
        ) {
            (Some(KeySource::Fixed { .. }), None) => true,
            (Some(KeySource::Jwks(src)), Some(g)) => src.generation().await == Some(g),
            _ => false,
        }
    }

    /// Verifies `token` at `now` (Unix seconds). The error is for logs only (it never holds
    /// the token).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, String> {
        let hash = token_hash(token);
        // jsonwebtoken checks `exp` against the system clock as well: so does the cache.
        let latest = now.max(system_now());
        if let Some((claims, stamp)) = self.cache.get(&hash, latest) {
            if self.stamp_current(stamp).await {
                self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(claims);
            }
            self.cache.remove(&hash);
        }
        let (claims, stamp, leeway) = self.verify_uncached(token, now).await?;
        self.cache.insert(hash, &claims, leeway, stamp);
        Ok(claims)
    }

    /// The verification itself; also returns which key verified and the issuer's leeway.
    async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Claims, KeyStamp, u64), String> {
        // An unknown `alg` (`none` included) fails here: jsonwebtoken has no such algorithm.
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("header: {:?}", e.kind()))?;
        let token_iss = unverified_issuer(token);
        let mut last = String::from("no configured issuer accepts this token");
        for (index, iss) in self.issuers.iter().enumerate() {
            let cfg = &iss.config;
            let mut generation = None;
            if !cfg.issuer.is_empty() && token_iss.as_deref() != Some(cfg.issuer.as_str()) {
                continue;
            }
            let keys: Vec<(&DecodingKey, Algorithm)>;
            let fetched;
            match &iss.source {
                KeySource::Fixed { key, alg } => {
                    if header.alg != *alg {
                        last = format!("algorithm {:?} is not this issuer's", header.alg);
                        continue;
                    }
                    keys = vec![(key, *alg)];
                }
                KeySource::Jwks(src) => {
                    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                        last = format!("algorithm {:?} is not allowed with a JWKS", header.alg);
                        continue;
                    }
                    fetched = match src
                        .stamped_keys_for(header.kid.as_deref(), header.alg, now)
                        .await
                    {
                        Ok((k, g)) => {
                            generation = Some(g);
                            k
                        }
                        Err(e) => {
                            last = e;
                            continue;
                        }
                    };
                    keys = fetched.iter().map(|k| (&k.key, k.alg)).collect();
                }
            }
            for (key, alg) in keys {
                match check(token, key, &validation(alg, cfg), now) {
                    Ok(c) => {
                        let stamp = KeyStamp {
                            issuer: index,
                            generation,
                        };
                        return Ok((c, stamp, cfg.leeway_secs));
                    }
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Signature and claims against one key.
fn check(token: &str, key: &DecodingKey, v: &Validation, now: i64) -> Result<Claims, String> {
    let c = jsonwebtoken::decode::<Claims>(token, key, v)
        .map_err(|e| format!("{:?}", e.kind()))?
        .claims;
    // jsonwebtoken checks exp against the system clock; check our clock too.
    if c.exp + (v.leeway as i64) < now {
        return Err("expired".into());
    }
    if c.sub.is_empty() {
        return Err("empty sub".into());
    }
    if !crate::upload::params::storable(&c.sub) {
        return Err("sub holds a control character".into());
    }
    Ok(c)
}

/// The token's `iss` before verification — used only to choose which issuers to try.
fn unverified_issuer(token: &str) -> Option<String> {
    let data = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token).ok()?;
    data.claims.get("iss")?.as_str().map(str::to_string)
}

fn validation(alg: Algorithm, iss: &IssuerConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = iss.leeway_secs;
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    if !iss.issuer.is_empty() {
        required.push("iss");
    }
    if !iss.audience.is_empty() {
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    if !iss.issuer.is_empty() {
        v.set_issuer(&[iss.issuer.as_str()]);
    }
    if iss.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&[iss.audience.as_str()]);
    }
    v
}

/// Mints an HS256 token (for `stsgate token` and tests).
pub fn mint_hs256(
    secret: &str,
    sub: &str,
    iat: i64,
    ttl_secs: i64,
    issuer: &str,
    audience: &str,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, String> {
    let mut claims = serde_json::Map::new();
    for (k, v) in extra {
        claims.insert(k.clone(), v.clone());
    }
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), (iat + ttl_secs).into());
    if !issuer.is_empty() {
        claims.insert("iss".into(), issuer.into());
    }
    if !audience.is_empty() {
        claims.insert("aud".into(), audience.into());
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use base64::Engine as _;

    /// Fixed keys never await anything, so a plain executor runs the verification.
    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn hs(secret: &str, issuer: &str, audience: &str) -> IssuerConfig {
        IssuerConfig {
            hs256_secret: Secret::new(secret),
            issuer: issuer.into(),
            audience: audience.into(),
            ..IssuerConfig::default()
        }
    }

    #[test]
    fn hs256_round_trip_and_claims() {
        let v = Verifier::new(&[hs("s3cret", "", "")], None).unwrap();
        let mut extra = serde_json::Map::new();
        extra.insert("projects".into(), serde_json::json!([1, 2]));
        let t = mint_hs256("s3cret", "alice", now(), 60, "", "", &extra).unwrap();
        let c = block(v.verify(&t, now())).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.projects, Some(vec![1, 2]));
        let wrong = mint_hs256("other", "alice", now(), 60, "", "", &extra).unwrap();
        assert!(block(v.verify(&wrong, now())).is_err());
    }

    #[test]
    fn a_sub_with_a_control_character_is_refused() {
        let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
        let e = serde_json::Map::new();
        for sub in ["a\u{0}b", "\u{0}", "alice\n"] {
            let t = mint_hs256("k", sub, now(), 60, "", "", &e).unwrap();
            assert!(block(v.verify(&t, now())).is_err(), "{sub:?} accepted");
        }
        let t = mint_hs256("k", "alice@example.com", now(), 60, "", "", &e).unwrap();
        assert!(block(v.verify(&t, now())).is_ok());
    }

    #[test]
    fn a_verified_token_is_served_from_the_cache_until_exp_plus_leeway() {
        let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
        let e = serde_json::Map::new();
        let t = mint_hs256("k", "alice", now(), 60, "", "", &e).unwrap();
        assert_eq!(block(v.verify(&t, now())).unwrap().sub, "alice");
        assert_eq!(v.cache_hits(), 0);
        assert_eq!(block(v.verify(&t, now())).unwrap().sub, "alice");
        assert_eq!(v.cache_hits(), 1);
        // 60 s of life plus 30 s of leeway: still good at +90, not at +91.
        assert!(block(v.verify(&t, now() + 90)).is_ok());
        assert_eq!(v.cache_hits(), 2);
        assert!(block(v.verify(&t, now() + 91)).is_err());
        assert_eq!(v.cache_hits(), 2);
    }

    #[test]
    fn refused_and_tampered_tokens_are_never_served_from_the_cache() {
        let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
        let e = serde_json::Map::new();
        let t = mint_hs256("k", "alice", now(), 60, "", "", &e).unwrap();
        assert!(block(v.verify(&t, now())).is_ok());
        // One character inside the signature changed (not the last, whose low bits are
        // padding).
        let i = t.len() - 5;
        let c = if &t[i..=i] == "A" { "B" } else { "A" };
        let forged = format!("{}{c}{}", &t[..i], &t[i + 1..]);
        assert!(block(v.verify(&forged, now())).is_err());
        assert!(block(v.verify(&forged, now())).is_err());
        let wrong = mint_hs256("other", "alice", now(), 60, "", "", &e).unwrap();
        assert!(block(v.verify(&wrong, now())).is_err());
        assert!(block(v.verify(&wrong, now())).is_err());
        assert_eq!(v.cache_hits(), 0);
    }

    #[test]
    fn expired_beyond_leeway_is_refused_within_leeway_accepted() {
        let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
        let e = serde_json::Map::new();
        let t = mint_hs256("k", "a", now() - 100, 80, "", "", &e).unwrap(); // exp 20 s ago
        assert!(block(v.verify(&t, now())).is_ok(), "within 30 s leeway");
        let t = mint_hs256("k", "a", now() - 200, 80, "", "", &e).unwrap(); // 120 s ago
        assert!(block(v.verify(&t, now())).is_err());
    }

    #[test]
    fn missing_exp_or_sub_is_refused() {
        let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
        let key = EncodingKey::from_secret(b"k");
        let no_exp =
            jsonwebtoken::encode(&Header::default(), &serde_json::json!({"sub": "a"}), &key)
                .unwrap();
        assert!(block(v.verify(&no_exp, now())).is_err());
        let no_sub = jsonwebtoken::encode(
            &Header::default(),
            &serde_json::json!({"exp": now() + 60}),
            &key,
        )
        .unwrap();
        assert!(block(v.verify(&no_sub, now())).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_set() {
        let v = Verifier::new(&[hs("k", "https://idp", "stsgate")], None).unwrap();
        let e = serde_json::Map::new();
        let good = mint_hs256("k", "a", now(), 60, "https://idp", "stsgate", &e).unwrap();
        assert!(block(v.verify(&good, now())).is_ok());
        let bad_iss = mint_hs256("k", "a", now(), 60, "https://evil", "stsgate", &e).unwrap();
        assert!(block(v.verify(&bad_iss, now())).is_err());
        let bad_aud = mint_hs256("k", "a", now(), 60, "https://idp", "other", &e).unwrap();
        assert!(block(v.verify(&bad_aud, now())).is_err());
        let none = mint_hs256("k", "a", now(), 60, "", "", &e).unwrap();
        assert!(block(v.verify(&none, now())).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"a","exp":{}}}"#, now() + 60))
        );
        assert!(block(v.verify(&t, now())).is_err());
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // A real RSA public key; an attacker signs HS256 using its PEM text as the secret.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pub.pem");
        std::fs::write(&path, TEST_RSA_PUBLIC_PEM).unwrap();
        let cfg = IssuerConfig {
            public_key_pem_file: path.to_string_lossy().into_owned(),
            ..IssuerConfig::default()
        };
        let v = Verifier::new(&[cfg], None).unwrap();
        let e = serde_json::Map::new();
        let forged = mint_hs256(TEST_RSA_PUBLIC_PEM, "a", now(), 60, "", "", &e).unwrap();
        assert!(block(v.verify(&forged, now())).is_err());
    }

    #[test]
    fn fallback_key_file_secret_is_used_without_issuers() {
        let v = Verifier::new(&[], Some("filesecret")).unwrap();
        let e = serde_json::Map::new();
        let t = mint_hs256("filesecret", "bob", now(), 60, "", "", &e).unwrap();
        assert_eq!(block(v.verify(&t, now())).unwrap().sub, "bob");
        assert!(Verifier::new(&[], None).is_err());
    }

    /// A 2048-bit RSA public key (test material only, `tests/fixtures`).
    pub const TEST_RSA_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/jwt_rsa_public.pem");

    fn pem_issuer(dir: &tempfile::TempDir, name: &str, pem: &str) -> IssuerConfig {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        IssuerConfig {
            public_key_pem_file: path.to_string_lossy().into_owned(),
            ..IssuerConfig::default()
        }
    }

    #[test]
    fn rs256_and_es256_public_keys_verify_their_tokens_only() {
        let dir = tempfile::tempdir().unwrap();
        let claims = serde_json::json!({"sub": "carol", "exp": now() + 60});
        let rs = Verifier::new(&[pem_issuer(&dir, "r.pem", TEST_RSA_PUBLIC_PEM)], None).unwrap();
        let rs_key =
            EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/jwt_rsa_private.pem"))
                .unwrap();
        let t = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &rs_key).unwrap();
        assert_eq!(block(rs.verify(&t, now())).unwrap().sub, "carol");
        let es = Verifier::new(
            &[pem_issuer(
                &dir,
                "e.pem",
                include_str!("../../tests/fixtures/jwt_ec_public.pem"),
            )],
            None,
        )
        .unwrap();
        let es_key =
            EncodingKey::from_ec_pem(include_bytes!("../../tests/fixtures/jwt_ec_private.pem"))
                .unwrap();
        let t2 = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &es_key).unwrap();
        assert_eq!(block(es.verify(&t2, now())).unwrap().sub, "carol");
        // Pinned: the RSA verifier refuses the ES256 token and vice versa.
        assert!(block(rs.verify(&t2, now())).is_err());
        assert!(block(es.verify(&t, now())).is_err());
    }

    #[test]
    fn several_issuers_each_check_their_own_iss_aud_and_key() {
        let a = hs("secret-a", "https://a.example", "app-a");
        let b = hs("secret-b", "https://b.example", "app-b");
        let v = Verifier::new(&[a, b], None).unwrap();
        let e = serde_json::Map::new();
        let ta = mint_hs256("secret-a", "u", now(), 60, "https://a.example", "app-a", &e).unwrap();
        let tb = mint_hs256("secret-b", "u", now(), 60, "https://b.example", "app-b", &e).unwrap();
        assert!(block(v.verify(&ta, now())).is_ok());
        assert!(block(v.verify(&tb, now())).is_ok());
        // B's key with A's iss, and B's iss with A's audience, are refused.
        let mixed =
            mint_hs256("secret-b", "u", now(), 60, "https://a.example", "app-a", &e).unwrap();
        assert!(block(v.verify(&mixed, now())).is_err());
        let wrong_aud =
            mint_hs256("secret-b", "u", now(), 60, "https://b.example", "app-a", &e).unwrap();
        assert!(block(v.verify(&wrong_aud, now())).is_err());
        let err = block(v.verify(
            &mint_hs256("secret-a", "u", now(), 60, "https://c.example", "app-a", &e).unwrap(),
            now(),
        ))
        .unwrap_err();
        assert!(err.contains("no configured issuer"), "{err}");
    }

    #[test]
    fn unverified_issuer_reads_only_a_string_iss() {
        let e = serde_json::Map::new();
        let t = mint_hs256("k", "u", now(), 60, "https://idp", "", &e).unwrap();
        assert_eq!(unverified_issuer(&t).as_deref(), Some("https://idp"));
        let t = mint_hs256("k", "u", now(), 60, "", "", &e).unwrap();
        assert_eq!(unverified_issuer(&t), None);
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!("{}.{}.x", b64(r#"{"alg":"HS256"}"#), b64(r#"{"iss":5}"#));
        assert_eq!(unverified_issuer(&t), None);
    }

    proptest::proptest! {
        #[test]
        fn token_parsing_never_panics(token in "[A-Za-z0-9_.=-]{0,300}") {
            let _ = unverified_issuer(&token);
            let v = Verifier::new(&[hs("k", "", "")], None).unwrap();
            proptest::prop_assert!(block(v.verify(&token, now())).is_err());
        }
    }
}
