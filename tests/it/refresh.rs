//! `POST /upload/sts/refresh`: a long upload outlives its first credentials (time passed in,
//! no sleeping), and refresh is refused where the contract says so.

use std::sync::Arc;

use serde_json::{json, Value};
use stsgate::clock::Clock as _;

use crate::helpers::*;
use crate::on_both_databases;
use crate::storage::{config, creds, png, send, signed, start_on};

const VIDEO: &str = "type=2&extension=mp4&isNeedCallback=0&uploadModule=resource_video";

async fn refresh(s: &Server, sub: &str, body: Value, idem: Option<&str>) -> Answer {
    // Minted on the server's clock, which the tests move.
    let token = mint_jwt(JWT_SECRET, sub, s.state.clock.now_unix());
    let mut r = s
        .http
        .post(format!("{}/upload/sts/refresh", s.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = idem {
        r = r.header("idempotency-key", k);
    }
    s.send(r).await
}

/// A multipart upload whose first credentials lapse midway finishes with refreshed ones.
async fn long_upload(db: Arc<Db>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let s = start_on(
        db.clone(),
        config(&db, &tmp.path().join("data"), &free_addr()),
        clock.clone(),
    )
    .await;
    let first = s.sts("alice", VIDEO).await.body["data"].clone();
    let id = first["objectId"].as_i64().unwrap();
    let key = first["relativePath"].as_str().unwrap().to_string();
    let url = format!("{}/local/{key}", first["endpoint"].as_str().unwrap());
    let c1 = creds(&first);
    let created = send(signed(
        "POST",
        &format!("{url}?uploads"),
        &c1,
        Some(&c1.token),
        b"",
    ))
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let upload_id = created
        .text
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split("</UploadId>")
        .next()
        .unwrap()
        .to_string();
    let p1 = png(5 * 1024 * 1024, 1);
    let a = send(signed(
        "PUT",
        &format!("{url}?partNumber=1&uploadId={upload_id}"),
        &c1,
        Some(&c1.token),
        &p1,
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let e1 = a.headers["etag"].to_str().unwrap().to_string();

    // 50 minutes in, the uploader refreshes: same objectId and key, a later expiration.
    clock.advance(3000);
    let r = refresh(&s, "alice", json!({"objectId": id}), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.body["data"].clone();
    assert_eq!(second["objectId"], id);
    assert_eq!(second["relativePath"], key.as_str());
    assert_ne!(second["accessKeyId"], first["accessKeyId"]);
    assert!(second["expiration"].as_str().unwrap() > first["expiration"].as_str().unwrap());
    let rec = s
        .get(
            &format!("/upload/objects/{id}"),
            Some(&mint_jwt(JWT_SECRET, "alice", clock.now_unix())),
        )
        .await;
    assert_eq!(rec.body["data"]["expiresAt"], second["expiration"]);

    // Past the first expiration: the old credentials are refused, the new ones finish.
    clock.advance(700);
    let p2 = png(1000, 2);
    let old = send(signed(
        "PUT",
        &format!("{url}?partNumber=2&uploadId={upload_id}"),
        &c1,
        Some(&c1.token),
        &p2,
    ))
    .await;
    assert_eq!((old.status, old.code()), (400, "ExpiredToken".to_string()));
    let c2 = creds(&second);
    let a = send(signed(
        "PUT",
        &format!("{url}?partNumber=2&uploadId={upload_id}"),
        &c2,
        Some(&c2.token),
        &p2,
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let e2 = a.headers["etag"].to_str().unwrap().to_string();
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>"
    );
    let done = send(signed(
        "POST",
        &format!("{url}?uploadId={upload_id}"),
        &c2,
        Some(&c2.token),
        xml.as_bytes(),
    ))
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    let rec = s
        .get(
            &format!("/upload/objects/{id}"),
            Some(&mint_jwt(JWT_SECRET, "alice", clock.now_unix())),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "uploaded");
    assert_eq!(rec.body["data"]["size"], p1.len() + p2.len());

    // After the upload, a refresh is 40904.
    let r = refresh(&s, "alice", json!({"objectId": id}), None).await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    s.stop().await;
}
on_both_databases!(
    a_long_multipart_upload_finishes_after_a_refresh,
    long_upload
);

async fn refusals(db: Arc<Db>) {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_on(
        db.clone(),
        config(&db, &tmp.path().join("data"), &free_addr()),
        ManualClock::new(),
    )
    .await;
    let id = s.sts("alice", VIDEO).await.body["data"]["objectId"]
        .as_i64()
        .unwrap();
    assert_eq!(
        refresh(&s, "bob", json!({"objectId": id}), None)
            .await
            .code(),
        40301
    );
    assert_eq!(
        refresh(&s, "alice", json!({"objectId": 999_999}), None)
            .await
            .code(),
        40401
    );
    assert_eq!(
        refresh(&s, "alice", json!({"objectId": "x"}), None)
            .await
            .code(),
        40001
    );
    // The same Idempotency-Key answers the same credentials; other parameters are 40901.
    let a = refresh(&s, "alice", json!({"objectId": id}), Some("r-1")).await;
    let b = refresh(&s, "alice", json!({"objectId": id}), Some("r-1")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["data"]["accessKeyId"], b.body["data"]["accessKeyId"]);
    let c = refresh(
        &s,
        "alice",
        json!({"objectId": id, "isNeedCallback": 1}),
        Some("r-1"),
    )
    .await;
    assert_eq!(c.code(), 40901);
    let d = refresh(
        &s,
        "alice",
        json!({"objectId": id, "isNeedCallback": 1}),
        None,
    )
    .await;
    assert_eq!(d.body["data"]["callbackInfo"]["customInfo"]["objectId"], id);
    s.stop().await;

    // Tencent LKE credentials are single-use: no refresh.
    let (_fake, url) = fake_lke().await;
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    let s = Server::start(db.clone(), c).await;
    let a = s
        .sts(
            "alice",
            "type=1&extension=png&isNeedCallback=0&uploadModule=resource_image",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["data"]["objectId"].as_i64().unwrap();
    let r = refresh(&s, "alice", json!({"objectId": id}), None).await;
    assert_eq!((r.status, r.code()), (409, 40904), "{}", r.text);
    assert!(
        r.body["enMsg"].as_str().unwrap().contains("single-use"),
        "{}",
        r.text
    );
    s.stop().await;
}
on_both_databases!(
    refresh_is_for_the_owner_while_issued_and_not_on_single_use_clouds,
    refusals
);
