//! Cloud type 0: Qiniu (upload tokens signed locally; verified Qiniu callbacks).
//!
//! Qiniu has no STS, so this folder has no `sts.rs`: each issuance signs one put policy
//! ([`form`]) with the long-term key pair, which never leaves the server: the policy pins the
//! object (`scope` = `bucket:relativePath`, or the `isDir` prefix with `isPrefixalScope`),
//! forbids overwriting (`insertOnly`), limits size and MIME family, expires at `deadline`,
//! and — with `isNeedCallback` — makes Qiniu POST a form body to stsgate with the objectId
//! written in literally. No network call is made, so there is no cache and no budget; the
//! key is prepared once ([`sign::Signer`]) and a token costs one HMAC-SHA1.
//!
//! Callbacks are verified in the `Authorization` form they name (`QBox` or `Qiniu`), against
//! the request as received and, failing that, against the public callback URL (the path and
//! host Qiniu signed when a reverse proxy rewrote them). A body the signature does not cover
//! (a JSON body under `QBox`) is refused ([`callback::verify_received`]).

pub mod callback;
pub mod config;
pub mod form;
pub mod sign;
pub mod sts;

use async_trait::async_trait;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use secrecy::SecretString;

use self::callback::{CallbackError, PublicUrl};
use self::config::QiniuConfig;
use self::sign::Signer;
use self::sts::MAX_SCOPE_KEY_BYTES;
use super::registry::{Cloud, Context, ProvidersConfig};
use super::{
    CallbackInput, CallbackOverride, CallbackRefused, CloudType, CredentialProvider, IssueRequest,
    Issued, ProviderError,
};
use crate::config::ConfigError;

/// Token lifetimes Qiniu accepts: it sets no bound of its own (the section's rules and
/// `upload.min_remaining_secs` do).
pub const DURATION_RANGE: std::ops::RangeInclusive<u64> = 0..=u64::MAX;

/// The Qiniu provider: everything per-request is derived from values prepared here.
pub struct QiniuProvider {
    signer: Signer,
    bucket: String,
    upload_host: String,
    region: String,
    duration_secs: i64,
    /// Host and path of `public_base_url + /upload/callback`, as Qiniu signs them.
    public: PublicUrl,
}

impl std::fmt::Debug for QiniuProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QiniuProvider")
            .field("bucket", &self.bucket)
            .field("upload_host", &self.upload_host)
            .field("region", &self.region)
            .field("duration_secs", &self.duration_secs)
            .finish_non_exhaustive()
    }
}

impl QiniuProvider {
    /// The answer for `req`; pure (time comes from `req.now`).
    pub fn issue_now(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        let key = req.planned_key.as_str();
        if key.len() > MAX_SCOPE_KEY_BYTES {
            return Err(ProviderError::InvalidRequest(format!(
                "relativePath is longer than Qiniu's {MAX_SCOPE_KEY_BYTES}-byte scope limit"
            )));
        }
        let expiration = req.now + self.duration_secs;
        let callback_body = req
            .callback
            .as_ref()
            .map(|c| sts::callback_body(c.object_id, c.resource_type));
        let policy = sts::put_policy(&self.bucket, req, expiration, callback_body.as_deref());
        let token = self.signer.upload_token(&policy);
        let form = form::form(&self.upload_host, key, &token);
        Ok(Issued {
            access_key_id: self.signer.access_key().to_string(),
            secret_access_key: SecretString::from(String::new()),
            form: Some(form),
            upload: None,
            security_token: SecretString::from(token.token),
            bucket: self.bucket.clone(),
            endpoint: self.upload_host.clone(),
            region: self.region.clone(),
            relative_path: key.to_string(),
            expiration,
            start_time: None,
            callback: callback_body.map(|body| CallbackOverride {
                body: Some(body),
                ..CallbackOverride::default()
            }),
        })
    }

    /// Verifies a callback as received, then (on a signature mismatch) against the public
    /// callback URL's path and host.
    pub fn verify(&self, input: &CallbackInput) -> Result<(), CallbackError> {
        callback::verify_received(&self.signer, &self.public, input)
    }
}

impl Cloud for QiniuProvider {
    const TYPE: CloudType = CloudType::Qiniu;
    type Config = QiniuConfig;

    fn section(providers: &ProvidersConfig) -> &QiniuConfig {
        &providers.qiniu
    }

    /// The token lifetime is the section's `duration_secs`, else `upload.duration_secs`, and
    /// must outlive `upload.min_remaining_secs`; callbacks arrive at
    /// `server.public_base_url`.
    fn new(cfg: QiniuConfig, ctx: &Context<'_>) -> Result<Self, ConfigError> {
        let min_remaining_secs = ctx.config.upload.min_remaining_secs;
        let duration_secs = ctx.duration_secs(cfg.duration_secs, DURATION_RANGE);
        if duration_secs <= min_remaining_secs {
            return Err(ConfigError(format!(
                "providers.qiniu.duration_secs ({duration_secs}) must be longer than \
                 upload.min_remaining_secs ({min_remaining_secs})"
            )));
        }
        let public = PublicUrl::of(&ctx.config.server.public_base_url).map_err(ConfigError)?;
        Ok(QiniuProvider {
            signer: Signer::new(cfg.access_key.expose(), cfg.secret_key.expose()),
            bucket: cfg.bucket.clone(),
            upload_host: cfg.upload_host.trim_end_matches('/').to_string(),
            region: cfg.region.clone(),
            duration_secs: duration_secs as i64,
            public,
        })
    }

    fn claims_callback(headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("QBox ") || a.starts_with("Qiniu "))
    }
}

#[async_trait]
impl CredentialProvider for QiniuProvider {
    fn cloud_type(&self) -> CloudType {
        Self::TYPE
    }

    async fn issue(&self, req: &IssueRequest) -> Result<Issued, ProviderError> {
        self.issue_now(req)
    }

    fn calls_upstream(&self) -> bool {
        false
    }

    async fn verify_callback(&self, input: &CallbackInput) -> Result<(), CallbackRefused> {
        self.verify(input).map_err(|e| {
            tracing::debug!(reason = %e, "Qiniu callback refused");
            CallbackRefused(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::metrics::Metrics;
    use crate::providers::CallbackPlan;
    use crate::secret::Secret;
    use crate::upload::module::UploadModule;
    use axum::http::header::{CONTENT_TYPE, HOST};
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use bytes::Bytes;
    use secrecy::ExposeSecret as _;
    use serde_json::Value;

    const AK: &str = "AKqiniuUNITtest0001";
    const SK: &str = "SKqiniuUNITtestSECRET/+=0001";

    fn cfg(ak: &str, sk: &str) -> QiniuConfig {
        QiniuConfig {
            access_key: Secret::new(ak),
            secret_key: Secret::new(sk),
            bucket: "stsgate-demo".into(),
            upload_host: "https://upload.qiniup.com/".into(),
            region: "z0".into(),
            duration_secs: None,
        }
    }

    /// The provider built as the registry builds it, with callbacks at `public_base_url`.
    fn build(cfg: QiniuConfig, public_base_url: &str) -> Result<QiniuProvider, ConfigError> {
        let mut config = Config::default();
        config.server.public_base_url = public_base_url.into();
        QiniuProvider::new(
            cfg,
            &Context {
                config: &config,
                clock: std::sync::Arc::new(SystemClock),
                metrics: Metrics::new(),
                cluster: None,
            },
        )
    }

    fn provider() -> QiniuProvider {
        build(cfg(AK, SK), "https://api.example.com/sts/").unwrap()
    }

    fn request(key: &str, is_dir: bool, callback: bool) -> IssueRequest {
        IssueRequest {
            sub: "alice".into(),
            object_id: 10503,
            planned_key: key.into(),
            extension: "png".into(),
            module: UploadModule::ResourceImage,
            is_dir,
            max_bytes: 20_971_520,
            callback: callback.then(|| CallbackPlan {
                url: "https://api.example.com/sts/upload/callback".into(),
                object_id: 10503,
                resource_type: 2,
            }),
            deadline: tokio::time::Instant::now(),
            now: 1_609_000_000,
        }
    }

    /// The policy inside a token, decoded here without the crate's decoder.
    fn policy_of(token: &str) -> Value {
        use base64::Engine as _;
        let encoded = token.rsplit(':').next().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(encoded)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn issue_pins_the_object_and_keeps_the_secret() {
        let key = "test/resource/image/2020/12/26/10503/0df00d20-5e55-4914-95f0-e02ff0abbfb8.png";
        let i = provider().issue_now(&request(key, false, true)).unwrap();
        let token = i.security_token.expose_secret();
        assert_eq!(i.access_key_id, AK);
        assert_eq!(i.secret_access_key.expose_secret(), "");
        assert!(!token.contains(SK));
        assert_eq!(i.endpoint, "https://upload.qiniup.com");
        assert_eq!(
            (i.bucket.as_str(), i.region.as_str()),
            ("stsgate-demo", "z0")
        );
        assert_eq!(i.relative_path, key);
        assert_eq!(i.expiration, 1_609_000_000 + 3600);
        assert_eq!(i.start_time, None);
        assert_eq!(
            policy_of(token),
            serde_json::json!({
                "scope": format!("stsgate-demo:{key}"),
                "deadline": 1_609_003_600,
                "insertOnly": 1,
                "fsizeLimit": 20_971_520,
                "mimeLimit": "image/*",
                "callbackUrl": "https://api.example.com/sts/upload/callback",
                "callbackBody": "objectId=10503&resourceType=2&bucket=$(bucket)&object=$(key)\
                                 &size=$(fsize)&mimeType=$(mimeType)&etag=$(etag)",
                "callbackBodyType": "application/x-www-form-urlencoded",
            })
        );
        let form = i.form.as_ref().unwrap();
        assert_eq!(form.url, "https://upload.qiniup.com");
        assert_eq!(
            form.fields,
            vec![
                ("key".into(), key.into()),
                ("token".into(), token.to_string())
            ]
        );
        assert_eq!(
            token,
            &format!("{AK}:{}:{}", form.signature, form.policy),
            "policy and signature are the token's parts"
        );
        assert_eq!(
            i.callback.unwrap().body.as_deref(),
            policy_of(token)["callbackBody"].as_str()
        );
    }

    #[test]
    fn dir_is_a_prefix_scope_and_no_callback_means_no_callback_fields() {
        let prefix = "test/resource/image/2020/12/26/10503/";
        let i = provider().issue_now(&request(prefix, true, false)).unwrap();
        let p = policy_of(i.security_token.expose_secret());
        assert_eq!(p["scope"], format!("stsgate-demo:{prefix}"));
        assert_eq!(p["isPrefixalScope"], 1);
        assert_eq!(p["insertOnly"], 1);
        for absent in ["callbackUrl", "callbackBody", "callbackBodyType"] {
            assert!(p.get(absent).is_none(), "{absent}");
        }
        assert!(i.callback.is_none());
    }

    // The longest key stsgate can plan (64-byte key_prefix, material_template with a 64-byte
    // uuid, 16-byte extension, 19-digit objectId) fits Qiniu's scope limit, and its token
    // stays well under an HTTP header's usual 8 KiB. Expected lengths computed outside the
    // crate (Python `json.dumps(separators=(',', ':'))`, `base64.urlsafe_b64encode`).
    #[test]
    fn longest_policy_fits_qiniu_limits() {
        let key = format!(
            "{}/material/template/{}/2020/12/26/{}/{}.{}",
            "p".repeat(64),
            "u".repeat(64),
            i64::MAX,
            uuid::Uuid::nil(),
            "e".repeat(16)
        );
        assert_eq!(key.len(), 232);
        let mut r = request(&key, false, true);
        r.extension = "e".repeat(16);
        let i = provider().issue_now(&r).unwrap();
        let token = i.security_token.expose_secret();
        let policy_len = sign::decode_put_policy(token).unwrap().len();
        assert_eq!(policy_len, 557);
        assert_eq!(token.len(), AK.len() + 1 + 28 + 1 + 744);
        let too_long = "k".repeat(MAX_SCOPE_KEY_BYTES + 1);
        assert!(matches!(
            provider().issue_now(&request(&too_long, false, false)),
            Err(ProviderError::InvalidRequest(_))
        ));
    }

    #[test]
    fn duration_must_outlive_min_remaining() {
        let mut c = cfg(AK, SK);
        c.duration_secs = Some(300);
        let ConfigError(err) = build(c.clone(), "http://127.0.0.1:8080").unwrap_err();
        assert!(err.contains("providers.qiniu.duration_secs"), "{err}");
        c.duration_secs = Some(600);
        let p = build(c, "http://127.0.0.1:8080").unwrap();
        assert_eq!(p.duration_secs, 600);
        assert_eq!(
            (p.public.host.as_str(), p.public.path.as_str()),
            ("127.0.0.1:8080", "/upload/callback")
        );
    }

    #[test]
    fn debug_redacts_keys() {
        let d = format!("{:?}", provider());
        assert!(!d.contains(AK) && !d.contains(SK), "{d}");
        let i = provider()
            .issue_now(&request("k.png", false, false))
            .unwrap();
        let d = format!("{i:?}");
        assert!(
            !d.contains(AK) && !d.contains(i.security_token.expose_secret()),
            "{d}"
        );
    }

    const CALLBACK: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/qiniu/qiniu_callback.json"
    ));

    fn input_from_vector(v: &Value) -> CallbackInput {
        let url = v["url"].as_str().unwrap();
        let rest = url.split_once("://").unwrap().1;
        let slash = rest.find('/').unwrap();
        let (host, path_query) = rest.split_at(slash);
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_query, None),
        };
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        for (k, val) in v["headers"].as_object().unwrap() {
            headers.insert(
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_str(val.as_str().unwrap()).unwrap(),
            );
        }
        if let Some(ct) = v["content_type"].as_str() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(v["authorization"].as_str().unwrap()).unwrap(),
        );
        CallbackInput {
            method: v["method"].as_str().unwrap().into(),
            raw_path: path.into(),
            raw_query: query,
            headers,
            body: Bytes::from(v["body"].as_str().unwrap().to_string()),
        }
    }

    // Every vector through the provider's HeaderMap path: the SDK's verdict, except that a
    // body the signature does not cover (`qbox_json_body_not_covered`) is refused.
    #[test]
    fn vectors_qiniu_callback_through_provider() {
        let file: Value = serde_json::from_str(CALLBACK).unwrap();
        let (mut accepted, mut refused) = (0, 0);
        for v in file["vectors"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let input = &v["verify_input"];
            let p = build(
                cfg(
                    input["server_access_key"].as_str().unwrap(),
                    input["server_secret_key"].as_str().unwrap(),
                ),
                "https://api.example.com",
            )
            .unwrap();
            let verdict = p.verify(&input_from_vector(input));
            let expect_ok = v["valid"].as_bool().unwrap() && name != "qbox_json_body_not_covered";
            if expect_ok {
                assert_eq!(verdict, Ok(()), "{name}");
                accepted += 1;
            } else {
                assert!(verdict.is_err(), "{name}");
                refused += 1;
            }
            if name == "qbox_json_body_not_covered" {
                assert_eq!(verdict, Err(CallbackError::UnsignedBody));
            }
        }
        assert_eq!((accepted, refused), (8, 15));
    }

    proptest::proptest! {
        // Any planned key round-trips into the token's scope, and the token always verifies
        // against an independently decoded policy.
        #[test]
        fn token_scope_round_trips(key in "[A-Za-z0-9/._-]{1,200}", now in 0i64..4_000_000_000, dir: bool) {
            let mut r = request(&key, dir, false);
            r.now = now;
            let i = provider().issue_now(&r).unwrap();
            let p = policy_of(i.security_token.expose_secret());
            proptest::prop_assert_eq!(p["scope"].as_str().unwrap(), format!("stsgate-demo:{key}"));
            proptest::prop_assert_eq!(p["deadline"].as_i64().unwrap(), now + 3600);
            proptest::prop_assert_eq!(p.get("isPrefixalScope").is_some(), dir);
        }
    }
}
