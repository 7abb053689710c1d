//! No secret reaches a log line: logs are captured at `trace` level (human and JSON
//! formats, `log` records included) through a success, a callback and every failure mode.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::fakes::lke::Mode;
use crate::helpers::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[test]
fn no_secret_in_trace_logs_through_every_failure_mode() {
    let logs = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(logs.clone()),
        );
    let _ = tracing_log::LogTracer::init();
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread: every task (server, fake, client) logs to this thread's subscriber.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut secrets: Vec<String> = vec![
        JWT_SECRET.into(),
        TC_SECRET_KEY.into(),
        "wrong-secret-key-for-leak-test".into(),
    ];
    rt.block_on(async {
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
            Mode::Error("AuthFailure.SignatureFailure".into()),
            Mode::Error("RequestLimitExceeded".into()),
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
        let forged = stsgate::auth::jwt::mint_hs256(
            "attacker-secret-0000000000000000",
            "alice",
            2_000_000_000,
            60,
            "",
            "",
            &Default::default(),
        )
        .unwrap();
        secrets.push(forged.clone());
        assert_eq!(
            s.get(&format!("/upload/sts/info?{q}"), Some(&forged))
                .await
                .code(),
            40102
        );
        let expired = stsgate::auth::jwt::mint_hs256(
            JWT_SECRET,
            "alice",
            1_000_000,
            60,
            "",
            "",
            &Default::default(),
        )
        .unwrap();
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
    drop(rt);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        text.contains("issued upload credentials"),
        "logs were captured"
    );
    assert!(text.contains("TRACE"), "trace level was on");
    assert!(
        text.contains("\"request_id\""),
        "JSON lines carry the request id"
    );
    assert!(secrets.len() > 8);
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "a secret reached the logs: {}…",
            &s[..6]
        );
    }
    for marker in [
        "Signature=",
        "TC3-HMAC-SHA256",
        "Bearer ",
        "authorization: ",
    ] {
        assert!(!text.contains(marker), "{marker} reached the logs");
    }
}
