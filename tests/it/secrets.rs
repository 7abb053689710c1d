//! No secret reaches a log line: logs are captured at `trace` level (human and JSON
//! formats, `log` records included) through a success, a callback and every failure mode.

use std::sync::Arc;

use crate::helpers::*;
use stsgate_fakes::Mode;

#[test]
fn no_secret_in_trace_logs_through_every_failure_mode() {
    let mut secrets: Vec<String> = vec![
        JWT_SECRET.into(),
        TC_SECRET_KEY.into(),
        "wrong-secret-key-for-leak-test".into(),
    ];
    let text = capture_trace_logs(async {
        let db = Arc::new(sqlite().await);
        let (fake, url) = fake_lke().await;
        let mut c = base_config(&db);
        enable_tencent(&mut c, &url);
        c.server.request_timeout_ms = 1200;
        c.providers.tencent.pool_size = 1;
        let s = Server::start(db.clone(), c.clone()).await;
        let alice = s.token("alice");
        secrets.push(alice.clone());
        let q = "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp";
        let ok = s.get(&format!("/upload/sts/info?{q}"), Some(&alice)).await;
        assert_eq!(ok.status, 200);
        let id = ok.body["data"]["objectId"].as_i64().unwrap();
        let cb = s
            .callback_form(Some(&alice), &format!("objectId={id}&size=5"))
            .await;
        assert_eq!(cb.status, 200);
        let idem = s
            .send(
                s.http
                    .get(format!("{}/upload/sts/info?{q}", s.base))
                    .bearer_auth(&alice)
                    .header("idempotency-key", "leak-1"),
            )
            .await;
        assert_eq!(idem.status, 200);
        s.stop().await;
        // Failure modes without a pool, so every request reaches the fake.
        let mut c_nopool = c.clone();
        c_nopool.providers.tencent.pool_size = 0;
        let s = Server::start(db.clone(), c_nopool).await;
        for mode in [
            Mode::Error(200, "AuthFailure.SignatureFailure".into()),
            Mode::Error(200, "RequestLimitExceeded".into()),
            Mode::Http500,
            Mode::Malformed,
            Mode::Hang,
            Mode::ShortLived(10),
            Mode::NoUploadPath,
        ] {
            fake.set_mode(mode);
            let a = s.get(&format!("/upload/sts/info?{q}"), Some(&alice)).await;
            assert!(a.status >= 500, "{}", a.text);
        }
        fake.set_mode(Mode::Ok);
        // Authentication failures with real-looking tokens.
        let forged = mint_jwt("attacker-secret-0000000000000000", "alice", 2_000_000_000);
        secrets.push(forged.clone());
        assert_eq!(
            s.get(&format!("/upload/sts/info?{q}"), Some(&forged))
                .await
                .code(),
            40102
        );
        let expired = mint_jwt(JWT_SECRET, "alice", 1_000_000);
        secrets.push(expired.clone());
        assert_eq!(
            s.get(&format!("/upload/sts/info?{q}"), Some(&expired))
                .await
                .code(),
            40102
        );
        assert_eq!(
            s.callback_form(Some(&forged), "objectId=1").await.code(),
            40102
        );
        s.stop().await;
        // A wrong configured key: the fake refuses the signature.
        let mut c2 = c.clone();
        c2.providers.tencent.secret_key =
            stsgate::secret::Secret::new("wrong-secret-key-for-leak-test");
        let s2 = Server::start(db, c2).await;
        assert_eq!(
            s2.get(&format!("/upload/sts/info?{q}"), Some(&alice))
                .await
                .code(),
            50201
        );
        s2.stop().await;
        for cred in fake.issued() {
            secrets.push(cred.tmp_secret_key);
            secrets.push(cred.token);
        }
    });
    assert!(
        text.contains("\"request_id\""),
        "JSON lines carry the request id"
    );
    assert!(secrets.len() > 8);
    let markers = [
        "Signature=",
        "TC3-HMAC-SHA256",
        "Bearer ",
        "authorization: ",
    ];
    assert_no_secret_in_logs(&text, &secrets, &markers);
}
