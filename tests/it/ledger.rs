//! The group-commit writer on real databases: every column of every kind of write survives
//! the batch encoding (strings that need escaping included), and a write that fails takes
//! down exactly its own batch, leaving the writer usable and nothing half-written.

use std::sync::Arc;

use stsgate::store::{self, Finished, NewObject, ObjectStore};

use crate::helpers::Db;
use crate::on_both_databases;

fn row(owner: &str, ext: &str, project_id: Option<i64>, is_dir: bool) -> NewObject {
    NewObject {
        owner: owner.into(),
        cloud_type: 3,
        module: "resource_image".into(),
        platform: "app".into(),
        project_id,
        extension: ext.into(),
        is_dir,
        created_at: 1_700_000_123,
    }
}

/// Owners a JSON encoding must escape, and some it must not mangle.
const OWNERS: &[&str] = &[
    "alice",
    "o'brien \"quoted\"",
    "back\\slash/and/slash",
    "ünïcødé 用户 🚀",
    "tab\u{7f}del",
    "{\"json\":[1,2]}",
    "-9223372036854775808",
];

async fn store_of(db: &Db) -> Arc<dyn ObjectStore> {
    let s = store::connect(&db.url).await.unwrap();
    s.migrate().await.unwrap();
    s
}

async fn every_write_round_trips(db: Arc<Db>) {
    let s = store_of(&db).await;
    // All at once, so the writer batches inserts, completions and failures together.
    let mut tasks = Vec::new();
    for (i, owner) in OWNERS.iter().enumerate() {
        for k in 0..8i64 {
            let s = s.clone();
            let owner = owner.to_string();
            tasks.push(tokio::spawn(async move {
                let project = (k % 2 == 0).then_some(k * 1_000_000_007);
                let new = row(&owner, "png", project, k % 3 == 0);
                let key = format!("img/{owner}/{k}.png");
                match k % 4 {
                    // Signed locally: the complete row in one write.
                    0 => {
                        let id = s.next_object_id().await.unwrap();
                        let end = Finished::Issued {
                            bucket: format!("bucket-{i}"),
                            key: key.clone(),
                            expires_at: 1_700_003_600 + k,
                        };
                        s.insert_finished(id, &new, &end).await.unwrap();
                        (
                            id,
                            new,
                            "issued",
                            Some((format!("bucket-{i}"), key, 1_700_003_600 + k)),
                        )
                    }
                    1 => {
                        let id = s.next_object_id().await.unwrap();
                        let end = Finished::Failed {
                            reason: format!("refused \"{owner}\""),
                        };
                        s.insert_finished(id, &new, &end).await.unwrap();
                        (id, new, "failed", None)
                    }
                    // Upstream: the row before the call, then its end.
                    2 => {
                        let id = s.insert_object(&new).await.unwrap();
                        s.complete_object(id, "b\"q", &key, 1_700_007_200)
                            .await
                            .unwrap();
                        (id, new, "issued", Some(("b\"q".into(), key, 1_700_007_200)))
                    }
                    _ => {
                        let id = s.insert_object(&new).await.unwrap();
                        s.fail_object(id, "upstream said \\no\\").await.unwrap();
                        (id, new, "failed", None)
                    }
                }
            }));
        }
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (id, new, status, issued) = t.await.unwrap();
        assert!(ids.insert(id), "objectId {id} handed out twice");
        let r = s.get_object(id).await.unwrap().expect("row written");
        assert_eq!(r.owner, new.owner);
        assert_eq!(r.cloud_type, new.cloud_type);
        assert_eq!(r.upload_module, new.module);
        assert_eq!(r.platform, new.platform);
        assert_eq!(r.project_id, new.project_id);
        assert_eq!(r.extension, new.extension);
        assert_eq!(r.is_dir, new.is_dir);
        assert_eq!(r.created_at, new.created_at);
        assert_eq!(r.status, status, "{id}");
        match issued {
            Some((bucket, key, exp)) => {
                assert_eq!(r.bucket.as_deref(), Some(bucket.as_str()));
                assert_eq!(r.object_key.as_deref(), Some(key.as_str()));
                assert_eq!(r.expires_at, Some(exp));
            }
            None if status == "failed" => {}
            None => unreachable!(),
        }
    }
    assert_eq!(ids.len(), OWNERS.len() * 8);
}
on_both_databases!(
    every_write_round_trips_through_the_batch,
    every_write_round_trips
);

async fn a_failed_write_fails_its_batch_only(db: Arc<Db>) {
    let s = store_of(&db).await;
    for round in 0..20 {
        let taken = s
            .insert_object(&row("alice", "png", None, false))
            .await
            .unwrap();
        // A duplicate objectId fails; whatever shared its batch fails with it, the rest
        // commits — and each caller's answer says which.
        let dup = {
            let s = s.clone();
            tokio::spawn(async move {
                let end = Finished::Issued {
                    bucket: "b".into(),
                    key: "k".into(),
                    expires_at: 1,
                };
                s.insert_finished(taken, &row("mallory", "png", None, false), &end)
                    .await
            })
        };
        let complete = {
            let s = s.clone();
            tokio::spawn(async move {
                s.complete_object(taken, "bucket", &format!("key-{round}"), 1_700_000_000)
                    .await
            })
        };
        let other = {
            let s = s.clone();
            tokio::spawn(async move {
                let id = s.next_object_id().await?;
                let end = Finished::Issued {
                    bucket: "b".into(),
                    key: format!("other-{round}"),
                    expires_at: 2,
                };
                s.insert_finished(id, &row("bob", "jpg", None, false), &end)
                    .await
                    .map(|()| id)
            })
        };
        assert!(
            dup.await.unwrap().is_err(),
            "a duplicate objectId is refused"
        );
        let completed = complete.await.unwrap();
        let r = s.get_object(taken).await.unwrap().unwrap();
        assert_eq!(r.owner, "alice", "the first row is untouched");
        match completed {
            Ok(()) => assert_eq!(
                r.object_key.as_deref(),
                Some(format!("key-{round}").as_str())
            ),
            Err(_) => assert_eq!(r.object_key, None, "a failed batch leaves nothing"),
        }
        // A write that failed (it shared the duplicate's batch) left nothing to check.
        if let Ok(id) = other.await.unwrap() {
            let o = s
                .get_object(id)
                .await
                .unwrap()
                .expect("answered, so committed");
            assert_eq!(
                o.object_key.as_deref(),
                Some(format!("other-{round}").as_str())
            );
        }
    }
    // The writer is still usable: no transaction was left open.
    let id = s
        .insert_object(&row("carol", "gif", None, false))
        .await
        .unwrap();
    s.fail_object(id, "x").await.unwrap();
    assert_eq!(s.get_object(id).await.unwrap().unwrap().status, "failed");
}
on_both_databases!(
    a_failed_write_fails_exactly_its_batch,
    a_failed_write_fails_its_batch_only
);
