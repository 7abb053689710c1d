//! A JWKS key source: public keys fetched over HTTP, cached in moka, refetched when a token
//! names an unknown `kid` — at most once per `jwks_min_refresh_secs`, so a flood of made-up
//! `kid`s costs the identity provider one request per interval.
//!
//! Only RSA (RS256) and EC P-256 (ES256) signing keys are taken; a key's `kty`/`crv` (and
//! its `alg`, when given, which must agree) decides its algorithm, so a token cannot choose
//! one. `oct` (HMAC) keys, other curves and algorithms, encryption keys and RSA keys under
//! 2048 bits are skipped. A refetch replaces the whole set (a key the provider removed stops
//! verifying); the set also lapses after [`KEY_SET_TTL`] (or the refresh interval, when that
//! is longer) so removals are seen without a new `kid`. A failed fetch keeps the cached set.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::secret::redact_url;

/// How long a fetched key set is used before it is fetched again on the next token.
pub const KEY_SET_TTL: Duration = Duration::from_secs(600);

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// One usable verification key.
#[derive(Clone)]
pub struct JwkKey {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// The pinned algorithm (from `kty`/`crv`).
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for JwkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document into its usable signing keys (see the module doc for which).
/// `Err` only when the document itself is not a JWKS; unusable keys are skipped.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<JwkKey>, String> {
    let doc: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    Ok(doc.keys.into_iter().filter_map(usable_key).collect())
}

fn usable_key(value: serde_json::Value) -> Option<JwkKey> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            // Refuse short moduli: 2048 bits is 256 bytes (a leading zero byte aside).
            let n = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                p.n.trim_end_matches('='),
            )
            .ok()?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < 256 {
                return None;
            }
            (declared.is_none() || declared == Some(KeyAlgorithm::RS256))
                .then_some(Algorithm::RS256)?
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (declared.is_none() || declared == Some(KeyAlgorithm::ES256))
                .then_some(Algorithm::ES256)?
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(JwkKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// The keys of one JWKS URL.
pub struct JwksSource {
    url: String,
    client: reqwest::Client,
    min_refresh_secs: i64,
    /// One entry: the current key set and its generation.
    keys: moka::future::Cache<(), Arc<(u64, Vec<JwkKey>)>>,
    /// The generation of the next fetched set.
    next_generation: std::sync::atomic::AtomicU64,
    /// When the last fetch started (Unix seconds); the lock makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<i64>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &redact_url(&self.url))
            .field("min_refresh_secs", &self.min_refresh_secs)
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// A source for `url`; nothing is fetched until the first token needs a key.
    pub fn new(url: &str, min_refresh_secs: u64, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("stsgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("JWKS client: {e}"))?;
        Ok(Self {
            url: url.to_string(),
            client,
            min_refresh_secs: i64::try_from(min_refresh_secs).unwrap_or(i64::MAX),
            keys: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(KEY_SET_TTL.max(Duration::from_secs(min_refresh_secs)))
                .build(),
            last_fetch: tokio::sync::Mutex::new(None),
            next_generation: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// The keys that may verify a token with header `kid` and `alg` at `now` (Unix seconds):
    /// the key named by `kid`, or every key of `alg` when the token names none. An unknown
    /// `kid` refetches the set when the last fetch is at least `min_refresh_secs` old.
    pub async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: i64,
    ) -> Result<Vec<JwkKey>, String> {
        Ok(self.stamped_keys_for(kid, alg, now).await?.0)
    }

    /// The generation of the key set in use, `None` when none is (never fetched, or lapsed).
    /// Every fetched set gets a new generation, so a token verified under generation `g` was
    /// verified by a key still in use exactly when this is `Some(g)`.
    pub async fn generation(&self) -> Option<u64> {
        self.keys.get(&()).await.map(|set| set.0)
    }

    /// [`keys_for`](Self::keys_for) with the generation of the set the keys come from.
    pub async fn stamped_keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: i64,
    ) -> Result<(Vec<JwkKey>, u64), String> {
        if let Some(found) = self.cached(kid, alg).await? {
            return Ok(found);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        if let Some(found) = self.cached(kid, alg).await? {
            return Ok(found);
        }
        if let Some(at) = *last {
            let due = at.saturating_add(self.min_refresh_secs);
            if now < due {
                return Err(format!(
                    "no JWKS key for kid {kid:?}; next refetch allowed in {}s",
                    due - now
                ));
            }
        }
        *last = Some(now);
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(
                    jwks_url = %redact_url(&self.url),
                    keys = set.len(),
                    "fetched JWKS"
                );
                let generation = self
                    .next_generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.keys.insert((), Arc::new((generation, set))).await;
            }
            Err(e) => {
                tracing::warn!(jwks_url = %redact_url(&self.url), error = %e, "JWKS fetch failed");
                return Err(format!("JWKS fetch failed: {e}"));
            }
        }
        drop(last);
        self.cached(kid, alg)
            .await?
            .ok_or_else(|| format!("no JWKS key for kid {kid:?}"))
    }

    /// `Ok(None)` when the set is absent or lacks the `kid`; `Err` when the `kid` is known
    /// under another algorithm (a pinned key is never used with the token's choice).
    async fn cached(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<(Vec<JwkKey>, u64)>, String> {
        let Some(entry) = self.keys.get(&()).await else {
            return Ok(None);
        };
        let (generation, set) = (entry.0, &entry.1);
        match kid {
            Some(kid) => match set.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                Some(k) if k.alg == alg => Ok(Some((vec![k.clone()], generation))),
                Some(k) => Err(format!(
                    "kid {kid:?} is an {:?} key; the token says {alg:?}",
                    k.alg
                )),
                None => Ok(None),
            },
            None => {
                let all: Vec<JwkKey> = set.iter().filter(|k| k.alg == alg).cloned().collect();
                Ok((!all.is_empty()).then_some((all, generation)))
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<JwkKey>, String> {
        // without_url: the message never repeats the URL (it may carry a query token).
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                "timed out".to_string()
            } else {
                let e = e.without_url();
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                msg
            }
        };
        let mut res = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(describe)?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use proptest::prelude::*;
    use serde_json::json;

    fn rsa_jwk(kid: &str) -> serde_json::Value {
        let k =
            EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/jwt_rsa_private.pem"))
                .unwrap();
        let mut v =
            serde_json::to_value(Jwk::from_encoding_key(&k, Algorithm::RS256).unwrap()).unwrap();
        v["kid"] = kid.into();
        v
    }

    fn ec_jwk(kid: &str) -> serde_json::Value {
        let k = EncodingKey::from_ec_pem(include_bytes!("../../tests/fixtures/jwt_ec_private.pem"))
            .unwrap();
        let mut v =
            serde_json::to_value(Jwk::from_encoding_key(&k, Algorithm::ES256).unwrap()).unwrap();
        v["kid"] = kid.into();
        v
    }

    fn parse(keys: Vec<serde_json::Value>) -> Vec<JwkKey> {
        parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn rsa_and_p256_keys_are_pinned_by_their_type() {
        let got = parse(vec![rsa_jwk("r"), ec_jwk("e")]);
        let algs: Vec<(Option<&str>, Algorithm)> =
            got.iter().map(|k| (k.kid.as_deref(), k.alg)).collect();
        assert_eq!(
            algs,
            vec![(Some("r"), Algorithm::RS256), (Some("e"), Algorithm::ES256)]
        );
        // Without `alg` the key type decides.
        let mut r = rsa_jwk("r");
        r.as_object_mut().unwrap().remove("alg");
        assert_eq!(parse(vec![r])[0].alg, Algorithm::RS256);
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let mut wrong_alg = rsa_jwk("ps");
        wrong_alg["alg"] = "PS256".into();
        let mut ec_says_rs = ec_jwk("x");
        ec_says_rs["alg"] = "RS256".into();
        let mut enc = rsa_jwk("enc");
        enc["use"] = "enc".into();
        let mut p384 = ec_jwk("p384");
        p384["crv"] = "P-384".into();
        let hmac = json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"});
        let short_rsa = json!({"kty": "RSA", "kid": "s", "n": "AQAB", "e": "AQAB"});
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let garbage = json!({"kty": 5});
        let got = parse(vec![
            wrong_alg, ec_says_rs, enc, p384, hmac, short_rsa, okp, garbage,
        ]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn documents_that_are_not_jwks_are_errors() {
        assert!(parse_jwks(b"").is_err());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(br#"{"key": []}"#).is_err());
        assert!(parse_jwks(br#"{"keys": []}"#).unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_source_is_an_error_and_rate_limited() {
        // Port 9 on localhost: refused at once.
        let src =
            JwksSource::new("http://127.0.0.1:9/jwks", 30, Duration::from_millis(300)).unwrap();
        let e = src
            .keys_for(Some("a"), Algorithm::RS256, 1000)
            .await
            .unwrap_err();
        assert!(e.contains("JWKS fetch failed"), "{e}");
        let e = src
            .keys_for(Some("b"), Algorithm::RS256, 1010)
            .await
            .unwrap_err();
        assert!(e.contains("next refetch allowed in 20s"), "{e}");
        let e = src
            .keys_for(Some("b"), Algorithm::RS256, 1030)
            .await
            .unwrap_err();
        assert!(e.contains("JWKS fetch failed"), "due again: {e}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_jwks(&body);
        }

        #[test]
        fn parse_never_panics_on_key_shaped_json(
            kty in "RSA|EC|oct|OKP|.{0,4}",
            alg in proptest::option::of("RS256|ES256|HS256|none|.{0,6}"),
            crv in proptest::option::of("P-256|P-384|.{0,6}"),
            n in "[A-Za-z0-9_-]{0,400}",
            x in "[A-Za-z0-9_=-]{0,60}",
        ) {
            let mut k = json!({"kty": kty, "n": n, "e": "AQAB", "x": x, "y": x, "k": x});
            if let Some(a) = alg { k["alg"] = a.into(); }
            if let Some(c) = crv { k["crv"] = c.into(); }
            let got = parse_jwks(json!({"keys": [k]}).to_string().as_bytes()).unwrap();
            for key in got {
                prop_assert!(matches!(key.alg, Algorithm::RS256 | Algorithm::ES256));
            }
        }
    }
}
