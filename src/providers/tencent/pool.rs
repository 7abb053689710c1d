//! The pool of unused single-use LKE credentials (docs/contract.md §3), per
//! (BotBizId, FileType, IsPublic, TypeKey).
//!
//! Per replica it is a moka cache of small queues. With Redis ([`crate::cluster`]) the
//! pool is one Redis list per key, `{key_prefix}:pool:tencent:{BotBizId}:{FileType}:
//! {IsPublic 0|1}:{TypeKey}`: refills `RPUSH` (and push the list's expiry to the newest
//! entry's end of use), takes `LPOP` — atomic, so one credential never goes to two requests
//! across replicas; first in, first out, like the local queue, so the oldest is used before
//! it lapses. Entries carry their `ExpiredTime`; lapsed ones are dropped on take. While Redis
//! fails, refills go to, and takes come from, the local queue, which takes are always tried
//! on first (it only ever holds what was refilled during an outage).
//!
//! Entries are the credential as compact JSON ([`encode`]), secrets included: Redis must be
//! private (docs/decisions.md). They are never logged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::sts::LkeCredential;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::providers::TempCredentials;

/// Most entries one take pops from Redis looking for a usable one.
const MAX_POPS: usize = 16;

/// The pool key: the request body's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PoolKey {
    pub bot_biz_id: String,
    pub file_type: String,
    pub is_public: bool,
    pub type_key: String,
}

/// The per-replica part of one key's pool.
pub(super) type Slot = Arc<Mutex<SlotState>>;

#[derive(Debug, Default)]
pub(super) struct SlotState {
    /// Unused credentials (the whole pool without Redis; the outage leftovers with it).
    creds: VecDeque<LkeCredential>,
    /// A refill task runs for this key on this replica.
    pub refilling: bool,
    /// Requests for this key so far; a refill task that saw the pool full stops only if
    /// none came in since it looked.
    pub demand: u64,
}

/// Every key's pool.
pub(super) struct Pools {
    local: moka::sync::Cache<PoolKey, Slot>,
    cluster: Option<Cluster>,
    min_remaining_secs: i64,
    clock: Arc<dyn Clock>,
}

impl Pools {
    pub fn new(cluster: Option<Cluster>, min_remaining_secs: i64, clock: Arc<dyn Clock>) -> Self {
        Pools {
            local: moka::sync::Cache::builder()
                .max_capacity(1024)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            cluster,
            min_remaining_secs,
            clock,
        }
    }

    /// This replica's slot for `key`.
    pub fn slot(&self, key: &PoolKey) -> Slot {
        self.local.get_with(key.clone(), Slot::default)
    }

    /// Whether `c` may still be handed out at `now`.
    pub fn usable(&self, c: &LkeCredential, now: i64) -> bool {
        c.cred.expiration - self.min_remaining_secs > now
    }

    fn redis_key(cluster: &Cluster, key: &PoolKey) -> String {
        cluster.key(&[
            "pool",
            "tencent",
            &key.bot_biz_id,
            &key.file_type,
            if key.is_public { "1" } else { "0" },
            &key.type_key,
        ])
    }

    /// Takes one unused credential, dropping lapsed ones: the local queue first, then Redis.
    pub async fn take(&self, key: &PoolKey, slot: &Slot) -> Option<LkeCredential> {
        let now = self.clock.now_unix();
        {
            let mut s = slot.lock();
            while let Some(c) = s.creds.pop_front() {
                if self.usable(&c, now) {
                    return Some(c);
                }
            }
        }
        let cluster = self.cluster.as_ref()?;
        let rkey = Self::redis_key(cluster, key);
        for _ in 0..MAX_POPS {
            let k = rkey.clone();
            let popped: Option<String> = cluster
                .run("pool", |mut c| async move {
                    redis::cmd("LPOP").arg(k).query_async(&mut c).await
                })
                .await
                .ok()?;
            match decode(&popped?) {
                Some(c) if self.usable(&c, self.clock.now_unix()) => return Some(c),
                Some(_) => {}
                None => tracing::warn!("dropped an unreadable entry of the shared Tencent pool"),
            }
        }
        None
    }

    /// How many unused credentials the pool holds for `key` (Redis's count when it
    /// answers, plus the local queue).
    pub async fn len(&self, key: &PoolKey, slot: &Slot) -> usize {
        let now = self.clock.now_unix();
        let local = {
            let mut s = slot.lock();
            s.creds
                .retain(|c| c.cred.expiration - self.min_remaining_secs > now);
            s.creds.len()
        };
        let Some(cluster) = &self.cluster else {
            return local;
        };
        let k = Self::redis_key(cluster, key);
        let remote: usize = cluster
            .run("pool", |mut c| async move {
                redis::cmd("LLEN").arg(k).query_async(&mut c).await
            })
            .await
            .unwrap_or(0);
        local + remote
    }

    /// Adds a freshly fetched credential: to Redis when it answers, else locally.
    pub async fn put(&self, key: &PoolKey, slot: &Slot, cred: LkeCredential) {
        if let Some(cluster) = &self.cluster {
            let k = Self::redis_key(cluster, key);
            let entry = encode(&cred);
            // The list lives as long as its newest entry is usable (entries are pushed in
            // the order they were fetched, so the newest lapses last).
            let ttl =
                (cred.cred.expiration - self.min_remaining_secs - self.clock.now_unix()).max(1);
            let pushed = cluster
                .run("pool", |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .cmd("RPUSH")
                        .arg(&k)
                        .arg(entry)
                        .ignore()
                        .cmd("EXPIRE")
                        .arg(&k)
                        .arg(ttl)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            if pushed.is_ok() {
                return;
            }
        }
        slot.lock().creds.push_back(cred);
    }
}

/// A pooled credential as stored in Redis (compact JSON, versioned).
#[derive(Serialize, Deserialize)]
struct Entry {
    v: u8,
    id: String,
    key: String,
    token: String,
    exp: i64,
    #[serde(default)]
    start: Option<i64>,
    bucket: String,
    region: String,
    path: String,
    #[serde(default)]
    typ: String,
}

const ENTRY_VERSION: u8 = 1;

/// The Redis entry of a credential (secrets included; never log it).
pub(super) fn encode(c: &LkeCredential) -> String {
    serde_json::to_string(&Entry {
        v: ENTRY_VERSION,
        id: c.cred.access_key_id.clone(),
        key: c.cred.expose_secret().to_string(),
        token: c.cred.expose_token().to_string(),
        exp: c.cred.expiration,
        start: c.cred.start_time,
        bucket: c.bucket.clone(),
        region: c.region.clone(),
        path: c.upload_path.clone(),
        typ: c.storage_type.clone(),
    })
    .expect("plain fields always serialise")
}

/// A credential from its Redis entry; `None` for anything else (another version, garbage).
pub(super) fn decode(text: &str) -> Option<LkeCredential> {
    let e: Entry = serde_json::from_str(text).ok()?;
    if e.v != ENTRY_VERSION || e.path.is_empty() {
        return None;
    }
    Some(LkeCredential {
        cred: TempCredentials {
            access_key_id: e.id,
            secret_access_key: SecretString::from(e.key),
            security_token: SecretString::from(e.token),
            expiration: e.exp,
            start_time: e.start,
        },
        bucket: e.bucket,
        region: e.region,
        upload_path: e.path,
        storage_type: e.typ,
        // A pre-signed URL and the request id are not needed to answer: not stored.
        upload_url: None,
        request_id: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cred(id: &str, exp: i64) -> LkeCredential {
        LkeCredential {
            cred: TempCredentials {
                access_key_id: id.into(),
                secret_access_key: SecretString::from("tmpKEY".to_string()),
                security_token: SecretString::from("tok\"en\\".to_string()),
                expiration: exp,
                start_time: Some(exp - 1800),
            },
            bucket: "lke-offline-1250000000".into(),
            region: "ap-guangzhou".into(),
            upload_path: "/corp/1/doc/x.pdf".into(),
            storage_type: "cos".into(),
            upload_url: Some("https://signed".into()),
            request_id: "req".into(),
        }
    }

    fn same(a: &LkeCredential, b: &LkeCredential) -> bool {
        a.cred.access_key_id == b.cred.access_key_id
            && a.cred.expose_secret() == b.cred.expose_secret()
            && a.cred.expose_token() == b.cred.expose_token()
            && a.cred.expiration == b.cred.expiration
            && a.cred.start_time == b.cred.start_time
            && a.bucket == b.bucket
            && a.region == b.region
            && a.upload_path == b.upload_path
            && a.storage_type == b.storage_type
    }

    #[test]
    fn entries_round_trip_and_junk_is_refused() {
        let c = cred("AKIDx", 1_900_000_000);
        let text = encode(&c);
        assert!(text.starts_with("{\"v\":1,"), "{text}");
        let back = decode(&text).unwrap();
        assert!(same(&c, &back));
        assert!(back.upload_url.is_none(), "pre-signed URLs are not stored");
        for junk in [
            "",
            "null",
            "{}",
            "[1]",
            &text.replace("\"v\":1", "\"v\":2"),
            &text.replace("/corp/1/doc/x.pdf", ""),
        ] {
            assert!(decode(junk).is_none(), "{junk}");
        }
    }

    proptest! {
        #[test]
        fn any_credential_round_trips(
            id in "\\PC{0,40}",
            key in "\\PC{0,60}",
            token in "\\PC{0,200}",
            exp in any::<i64>(),
            start in proptest::option::of(any::<i64>()),
            path in "/\\PC{1,80}",
        ) {
            let mut c = cred(&id, exp);
            c.cred.secret_access_key = SecretString::from(key);
            c.cred.security_token = SecretString::from(token);
            c.cred.start_time = start;
            c.upload_path = path;
            let back = decode(&encode(&c)).unwrap();
            prop_assert!(same(&c, &back));
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,200}") {
            let _ = decode(&text);
        }
    }
}
