//! Runs every fake cloud of the test suite at once, on free ports of 127.0.0.1, and writes
//! the `STSGATE_*` environment that points stsgate at them (every provider enabled):
//!
//! ```text
//! cargo run --example fake_clouds -- --env-file fakes.env
//! set -a; . ./fakes.env; set +a; cargo run --release
//! ```
//! Used by `tests/contract/schemathesis.sh`. Each fake verifies every request's signature
//! with its own code, like in the integration tests.

use stsgate_fakes::{aliyun, aws, baidu, huawei, ksyun, tencent};

use std::fmt::Write as _;

fn section(env: &mut String, cloud: &str, pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        // Shell-quoted: the file is sourced (`set -a; . fakes.env`).
        let _ = writeln!(env, "STSGATE_PROVIDERS__{cloud}__{k}='{v}'");
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let env_file = args
        .iter()
        .position(|a| a == "--env-file")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mut env = String::new();

    // Tencent LKE (type 1).
    let fake = tencent::FakeLke::new("AKIDfake", "fakekey", "ap-jakarta");
    let url = fake.start().await;
    section(
        &mut env,
        "TENCENT",
        &[
            ("ENDPOINT", url.as_str()),
            ("SECRET_ID", "AKIDfake"),
            ("SECRET_KEY", "fakekey"),
            ("BOT_BIZ_ID", "1771061216515457024"),
            ("REGION", "ap-jakarta"),
        ],
    );

    // AWS STS + S3 (type 2), path-style on one port.
    let role = "arn:aws:iam::123456789012:role/uploader";
    let fake = aws::FakeSts::new(
        "AKIAFAKESTSGATE00001",
        "fakeAwsSecret/0123456789abcdefghijklmno",
        "us-east-1",
        role,
        "stsgate-demo",
    );
    let url = fake.start().await;
    section(
        &mut env,
        "AWS",
        &[
            ("ACCESS_KEY_ID", "AKIAFAKESTSGATE00001"),
            (
                "SECRET_ACCESS_KEY",
                "fakeAwsSecret/0123456789abcdefghijklmno",
            ),
            ("ROLE_ARN", role),
            ("STS_ENDPOINT", url.as_str()),
            ("S3_ENDPOINT", url.as_str()),
            ("PATH_STYLE", "true"),
            ("REGION", "us-east-1"),
            ("BUCKET", "stsgate-demo"),
        ],
    );

    // Aliyun STS (type 3) and the OSS callback key server.
    let role = "acs:ram::1234567890123456:role/stsgate-uploader";
    let fake = aliyun::FakeAliyunSts::new("LTAIfake", "fakesecret", role);
    let url = fake.start().await;
    let keys = aliyun::KeyServer::new(aliyun::TEST_CALLBACK_PUBLIC_KEY_PEM);
    let key_base = keys.start().await;
    let prefixes = format!("[\"{key_base}/\"]");
    section(
        &mut env,
        "ALIYUN",
        &[
            ("ACCESS_KEY_ID", "LTAIfake"),
            ("ACCESS_KEY_SECRET", "fakesecret"),
            ("ROLE_ARN", role),
            ("STS_ENDPOINT", url.as_str()),
            ("REGION", "oss-cn-beijing"),
            ("BUCKET", "bseditor"),
            ("CALLBACK_KEY_URL_PREFIXES", prefixes.as_str()),
            // OSS addresses the bucket as a virtual host, which has no DNS here: keep the
            // callback's word (tests/it/aliyun.rs drives the fake bucket with `resolve`).
            ("VERIFY_UPLOADS", "false"),
        ],
    );

    // Huawei IAM (type 6).
    let (ak, sk, domain) = (
        "HWFAKEAK0000EXAMPLE01",
        "hwFAKEsecret0001",
        "0123456789abcdef0123456789abcdef",
    );
    let fake = huawei::FakeIam::new(ak, sk, domain);
    let url = fake.start().await;
    section(
        &mut env,
        "HUAWEI",
        &[
            ("ACCESS_KEY_ID", ak),
            ("SECRET_ACCESS_KEY", sk),
            ("DOMAIN_ID", domain),
            ("IAM_ENDPOINT", url.as_str()),
            // The same fake serves the OBS bucket (path style at an IP address), so the
            // callback's HEAD stays on this machine.
            ("OBS_ENDPOINT", url.as_str()),
            ("REGION", "cn-north-4"),
            ("BUCKET", "stsgate-demo"),
        ],
    );

    // Baidu STS (type 4).
    let (ak, sk) = ("bdfakeak0001", "bdFAKEsecret0001");
    let fake = baidu::FakeSts::new(ak, sk);
    let url = fake.start().await;
    section(
        &mut env,
        "BAIDU",
        &[
            ("ACCESS_KEY_ID", ak),
            ("SECRET_ACCESS_KEY", sk),
            ("STS_ENDPOINT", url.as_str()),
            ("REGION", "bj"),
            ("BUCKET", "stsgate-demo"),
            // BOS addresses the bucket as a virtual host, which has no DNS here: keep the
            // client's word (tests/it/baidu.rs drives the fake bucket with `resolve`).
            ("VERIFY_UPLOADS", "false"),
        ],
    );

    // KSyun KS3 (type 7).
    let role = "krn:ksc:iam::2000000001:role/stsgate-upload";
    let fake = ksyun::FakeKsyunSts::new("AKLTfake", "fakesecret", "cn-beijing-6", role);
    let url = fake.start().await;
    section(
        &mut env,
        "KSYUN",
        &[
            ("STS_ENDPOINT", url.as_str()),
            ("ACCESS_KEY_ID", "AKLTfake"),
            ("SECRET_ACCESS_KEY", "fakesecret"),
            ("REGION", "cn-beijing-6"),
            ("ROLE_KRN", role),
            ("BUCKET", "stsgate-demo"),
            // No fake bucket here (KS3 addresses it as a virtual host): keep the client's word.
            ("VERIFY_UPLOADS", "false"),
        ],
    );

    // Qiniu (type 0): no upstream call; upload tokens are signed locally.
    section(
        &mut env,
        "QINIU",
        &[
            ("ACCESS_KEY", "AKfakeQINIUaccess0001"),
            ("SECRET_KEY", "fakeQINIUsecret0001"),
            ("BUCKET", "stsgate-demo"),
        ],
    );

    match env_file {
        // Written last and renamed into place, so a reader never sees half a file.
        Some(path) => {
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, &env).expect("write env file");
            std::fs::rename(&tmp, &path).expect("rename env file");
        }
        None => print!("{env}"),
    }
    eprintln!("fake clouds running; Ctrl-C stops them");
    tokio::signal::ctrl_c().await.ok();
}
