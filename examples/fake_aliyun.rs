//! Runs the fake Aliyun STS, the fake OSS callback key server and the fake OSS bucket
//! (`FAKE_ALIYUN_OSS_ADDR`, default 127.0.0.1:9412) used by the tests, for trying stsgate
//! locally (see docs/providers/aliyun.md for a whole curl session):
//!
//! ```text
//! cargo run --example fake_aliyun -- 127.0.0.1:9410 127.0.0.1:9411 /tmp/oss_test_key.pem
//! STSGATE_PROVIDERS__ALIYUN__STS_ENDPOINT=http://127.0.0.1:9410 \
//! STSGATE_PROVIDERS__ALIYUN__OSS_ENDPOINT=http://localhost:9412 \
//! STSGATE_PROVIDERS__RESOLVE='{"bseditor.localhost"="127.0.0.1:9412"}' \
//! STSGATE_PROVIDERS__ALIYUN__ACCESS_KEY_ID=LTAIfake \
//! STSGATE_PROVIDERS__ALIYUN__ACCESS_KEY_SECRET=fakesecret \
//! STSGATE_PROVIDERS__ALIYUN__ROLE_ARN=acs:ram::1234567890123456:role/stsgate-uploader \
//! STSGATE_PROVIDERS__ALIYUN__BUCKET=bseditor \
//! STSGATE_PROVIDERS__ALIYUN__CALLBACK_KEY_URL_PREFIXES='["http://127.0.0.1:9411/"]' \
//! cargo run --release
//! ```
//! The STS fake expects AccessKeyId `LTAIfake`, secret `fakesecret` and that role (override
//! with `FAKE_ALIYUN_AK_ID` / `FAKE_ALIYUN_AK_SECRET` / `FAKE_ALIYUN_ROLE_ARN`). The key
//! server publishes the TEST callback public key at `/callback_pub_key_v1.pem`; when a third
//! argument is given, the matching TEST private key is written there (mode 0600) so that
//! `openssl dgst -md5 -sign` can sign callbacks as OSS would.

use stsgate_fakes::aliyun;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let sts_addr = args.next().unwrap_or_else(|| "127.0.0.1:9410".into());
    let key_addr = args.next().unwrap_or_else(|| "127.0.0.1:9411".into());
    let key_out = args.next();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let id = env("FAKE_ALIYUN_AK_ID", "LTAIfake");
    let secret = env("FAKE_ALIYUN_AK_SECRET", "fakesecret");
    let role = env(
        "FAKE_ALIYUN_ROLE_ARN",
        "acs:ram::1234567890123456:role/stsgate-uploader",
    );
    let sts = aliyun::FakeAliyunSts::new(&id, &secret, &role);
    let sts_base = sts.start_on(&sts_addr).await;
    let keys = aliyun::KeyServer::new(aliyun::TEST_CALLBACK_PUBLIC_KEY_PEM);
    let key_base = keys.start_on(&key_addr).await;
    let bucket = env("FAKE_ALIYUN_BUCKET", "bseditor");
    let oss = aliyun::oss::FakeOss::new(sts.clone(), &id, &secret, &bucket);
    let oss_addr = oss
        .start_on(&env("FAKE_ALIYUN_OSS_ADDR", "127.0.0.1:9412"))
        .await;
    if let Some(path) = key_out {
        write_private_key(&path);
        println!("TEST private key written to {path}");
    }
    println!("fake Aliyun STS listening on {sts_base} (AccessKeyId {id}, role {role})");
    println!(
        "callback key server on {key_base}{} (TEST key)",
        aliyun::KEY_PATH
    );
    println!(
        "fake OSS bucket {bucket} on {oss_addr} (address it as http://{bucket}.localhost:{})",
        oss_addr.port()
    );
    tokio::signal::ctrl_c().await.ok();
}

fn write_private_key(path: &str) {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).expect("private key file");
    f.write_all(aliyun::TEST_CALLBACK_PRIVATE_KEY_PEM.as_bytes())
        .expect("write private key");
}
