//! `Idempotency-Key` (docs/contract.md §1.3): (sub, key, parameters hash, objectId) is recorded in
//! the database; the answer is kept in memory (moka) until it has less than
//! `min_remaining_secs` left. A retry with the same parameters gets the same answer; a
//! concurrent duplicate waits for the first (moka coalesces the initialisation); other
//! parameters are 40901; an answer no longer held (expired, restarted, other replica) is
//! 40902 — never a second allocation.
//!
//! With Redis ([`crate::cluster`]) the answer is also stored there, under
//! `{key_prefix}:idem:{hex sha256(sub)}:{key}`, with a TTL until it has
//! `min_remaining_secs` left, so a retry that lands on another replica gets it too; moka
//! stays the first level. The stored answer holds the temporary credentials (Redis must be
//! private); it is never logged.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use moka::future::Cache;
use moka::Expiry;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::providers::crypto;
use crate::providers::Form;
use crate::upload::answer::{CallbackInfo, StsAnswer};

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// Parameters hash it was issued for.
    pub params_hash: String,
    /// The answer.
    pub answer: StsAnswer,
    /// Unix seconds after which it must not be replayed.
    pub replay_until: i64,
}

struct UntilReplayEnds;

impl Expiry<(String, String), Arc<Remembered>> for UntilReplayEnds {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        value: &Arc<Remembered>,
        _created_at: StdInstant,
    ) -> Option<Duration> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Some(Duration::from_secs(
            value.replay_until.saturating_sub(now).max(0) as u64,
        ))
    }
}

/// The remembered answers: in memory, and in Redis when configured.
#[derive(Clone)]
pub struct IdemCache {
    cache: Cache<(String, String), Arc<Remembered>>,
    cluster: Option<Cluster>,
}

impl std::fmt::Debug for IdemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdemCache({} entries)", self.cache.entry_count())
    }
}

impl Default for IdemCache {
    fn default() -> Self {
        Self::new(None)
    }
}

impl IdemCache {
    /// An empty cache; with `shared`, answers are also kept in Redis.
    pub fn new(cluster: Option<Cluster>) -> Self {
        IdemCache {
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(UntilReplayEnds)
                .build(),
            cluster,
        }
    }

    /// Whether answers are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.cluster.is_some()
    }

    fn redis_key(cluster: &Cluster, sub: &str, key: &str) -> String {
        cluster.key(&["idem", &crypto::hex(crypto::sha256(sub.as_bytes())), key])
    }

    /// The answer another replica stored for (sub, key), if Redis holds one.
    pub async fn fetch_shared(&self, sub: &str, key: &str) -> Option<Remembered> {
        let cluster = self.cluster.as_ref()?;
        let k = Self::redis_key(cluster, sub, key);
        let text: Option<String> = cluster
            .run("idempotency", |mut c| async move {
                redis::cmd("GET").arg(k).query_async(&mut c).await
            })
            .await
            .ok()?;
        let r = decode(&text?);
        if r.is_none() {
            tracing::warn!("ignored an unreadable idempotent answer in Redis");
        }
        r
    }

    /// Stores a fresh answer in Redis until its `replay_until` (best effort: without it a
    /// retry on another replica is 40902, as without Redis).
    pub async fn store_shared(&self, sub: &str, key: &str, r: &Remembered, now: i64) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let ttl = r.replay_until - now;
        if ttl <= 0 {
            return;
        }
        let k = Self::redis_key(cluster, sub, key);
        let text = encode(r);
        let _ = cluster
            .run("idempotency", |mut c| async move {
                redis::cmd("SET")
                    .arg(k)
                    .arg(text)
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    /// Returns the remembered answer for (sub, key), running `first` when this process
    /// holds none; concurrent callers for the same (sub, key) wait for one `first`.
    pub async fn get_or_run<F>(
        &self,
        sub: &str,
        key: &str,
        first: F,
    ) -> Result<Arc<Remembered>, ApiError>
    where
        F: std::future::Future<Output = Result<Remembered, ApiError>>,
    {
        let k = (sub.to_string(), key.to_string());
        self.cache
            .try_get_with(k, async move { first.await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())
    }

    /// Forgets (sub, key).
    pub async fn forget(&self, sub: &str, key: &str) {
        self.cache
            .invalidate(&(sub.to_string(), key.to_string()))
            .await;
    }
}

/// A remembered answer as stored in Redis (compact JSON, versioned; `serverTime` is not
/// kept: a replay gets a fresh one).
#[derive(Serialize, Deserialize)]
struct Stored {
    v: u8,
    hash: String,
    until: i64,
    id: String,
    secret: String,
    token: String,
    bucket: String,
    endpoint: String,
    region: String,
    path: String,
    exp: i64,
    #[serde(default)]
    start: Option<i64>,
    object_id: i64,
    #[serde(default)]
    callback: Option<StoredCallback>,
    #[serde(default)]
    form: Option<StoredForm>,
    #[serde(default)]
    upload: Option<StoredUpload>,
}

#[derive(Serialize, Deserialize)]
struct StoredUpload {
    url: String,
    headers: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct StoredCallback {
    body_type: String,
    url: String,
    object_id: i64,
    resource_type: u8,
    body: String,
    #[serde(default)]
    callback: Option<String>,
    #[serde(default)]
    callback_var: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredForm {
    url: String,
    fields: Vec<(String, String)>,
    policy: String,
    signature: String,
}

const STORED_VERSION: u8 = 1;

/// The Redis value of a remembered answer (secrets included; never log it).
fn encode(r: &Remembered) -> String {
    let a = &r.answer;
    serde_json::to_string(&Stored {
        v: STORED_VERSION,
        hash: r.params_hash.clone(),
        until: r.replay_until,
        id: a.access_key_id.clone(),
        secret: a.secret_access_key.expose_secret().to_string(),
        token: a.security_token.expose_secret().to_string(),
        bucket: a.bucket.clone(),
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        path: a.relative_path.clone(),
        exp: a.expiration,
        start: a.start_time,
        object_id: a.object_id,
        callback: a.callback_info.as_ref().map(|c| StoredCallback {
            body_type: c.callback_body_type.clone(),
            url: c.callback_url.clone(),
            object_id: c.object_id,
            resource_type: c.resource_type,
            body: c.callback_body.clone(),
            callback: c.callback.clone(),
            callback_var: c.callback_var.clone(),
        }),
        form: a.form.as_ref().map(|f| StoredForm {
            url: f.url.clone(),
            fields: f.fields.clone(),
            policy: f.policy.clone(),
            signature: f.signature.clone(),
        }),
        upload: a.upload.as_ref().map(|u| StoredUpload {
            url: u.url.clone(),
            headers: u.headers.clone(),
        }),
    })
    .expect("plain fields always serialise")
}

/// A remembered answer from its Redis value; `None` for anything else.
fn decode(text: &str) -> Option<Remembered> {
    let s: Stored = serde_json::from_str(text).ok()?;
    if s.v != STORED_VERSION {
        return None;
    }
    Some(Remembered {
        params_hash: s.hash,
        replay_until: s.until,
        answer: StsAnswer {
            access_key_id: s.id,
            secret_access_key: SecretString::from(s.secret),
            security_token: SecretString::from(s.token),
            bucket: s.bucket,
            endpoint: s.endpoint,
            region: s.region,
            relative_path: s.path,
            expiration: s.exp,
            start_time: s.start,
            server_time: 0,
            object_id: s.object_id,
            callback_info: s.callback.map(|c| CallbackInfo {
                callback_body_type: c.body_type,
                callback_url: c.url,
                object_id: c.object_id,
                resource_type: c.resource_type,
                callback_body: c.body,
                callback: c.callback,
                callback_var: c.callback_var,
            }),
            form: s.form.map(|f| Form {
                url: f.url,
                fields: f.fields,
                policy: f.policy,
                signature: f.signature,
            }),
            upload: s.upload.map(|u| crate::providers::PresignedPut {
                url: u.url,
                headers: u.headers,
            }),
        },
    })
}

/// Checks an `Idempotency-Key` header value: 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_rule() {
        assert!(valid_key("abc-1.2_3"));
        assert!(!valid_key(""));
        assert!(!valid_key("a b"));
        assert!(!valid_key(&"a".repeat(65)));
    }

    fn remembered(form: bool, callback: bool) -> Remembered {
        Remembered {
            params_hash: "h1".into(),
            replay_until: 1_900_000_000,
            answer: StsAnswer {
                access_key_id: "AKIDtmp".into(),
                secret_access_key: SecretString::from("tmpSECRET".to_string()),
                security_token: SecretString::from("tok\"en".to_string()),
                bucket: "b".into(),
                endpoint: "https://oss-cn-beijing.aliyuncs.com".into(),
                region: "oss-cn-beijing".into(),
                relative_path: "test/temp/2020/12/25/5/x.pdf".into(),
                expiration: 1_900_000_300,
                start_time: Some(1_899_996_700),
                server_time: 1_899_996_701,
                object_id: 5,
                callback_info: callback.then(|| CallbackInfo {
                    callback_body_type: "application/x-www-form-urlencoded".into(),
                    callback_url: "http://h/upload/callback".into(),
                    object_id: 5,
                    resource_type: 6,
                    callback_body: "objectId=5&resourceType=6".into(),
                    callback: Some("Y2I=".into()),
                    callback_var: None,
                }),
                form: form.then(|| Form {
                    url: "https://b.example".into(),
                    fields: vec![("key".into(), "k".into()), ("policy".into(), "P".into())],
                    policy: "P".into(),
                    signature: "S".into(),
                }),
                upload: form.then(|| crate::providers::PresignedPut {
                    url: "https://b.example/k?X-Amz-Signature=s".into(),
                    headers: vec![("Content-Type".into(), "image/png".into())],
                }),
            },
        }
    }

    /// The client's view of an answer (what a replay must reproduce), `serverTime` aside.
    fn client_view(r: &Remembered) -> serde_json::Value {
        let mut v = serde_json::to_value(&r.answer).unwrap();
        v.as_object_mut().unwrap().remove("serverTime");
        v
    }

    #[test]
    fn stored_answers_round_trip_and_junk_is_refused() {
        for (form, callback) in [(false, false), (true, true), (false, true)] {
            let r = remembered(form, callback);
            let back = decode(&encode(&r)).unwrap();
            assert_eq!(client_view(&back), client_view(&r));
            assert_eq!(back.params_hash, r.params_hash);
            assert_eq!(back.replay_until, r.replay_until);
        }
        let text = encode(&remembered(true, true));
        for junk in ["", "null", "{}", &text.replace("\"v\":1", "\"v\":9")] {
            assert!(decode(junk).is_none(), "{junk}");
        }
    }

    proptest! {
        #[test]
        fn any_answer_round_trips(
            secret in "\\PC{0,60}",
            token in "\\PC{0,200}",
            path in "\\PC{1,80}",
            exp in any::<i64>(),
            start in proptest::option::of(any::<i64>()),
            fields in proptest::collection::vec(("\\PC{1,10}", "\\PC{0,30}"), 0..5),
        ) {
            let mut r = remembered(true, true);
            r.answer.secret_access_key = SecretString::from(secret);
            r.answer.security_token = SecretString::from(token);
            r.answer.relative_path = path;
            r.answer.expiration = exp;
            r.answer.start_time = start;
            r.answer.form.as_mut().unwrap().fields = fields;
            let back = decode(&encode(&r)).unwrap();
            prop_assert_eq!(client_view(&back), client_view(&r));
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,200}") {
            let _ = decode(&text);
        }

        #[test]
        fn valid_keys_match_the_pattern(k in "[A-Za-z0-9_.-]{1,64}") {
            prop_assert!(valid_key(&k));
        }
        #[test]
        fn keys_with_other_bytes_fail(k in "[A-Za-z0-9]{0,10}[^A-Za-z0-9_.-][A-Za-z0-9]{0,10}") {
            prop_assert!(!valid_key(&k));
        }
    }
}
