//! Runs the fake Huawei IAM and fake Baidu STS used by the tests, for trying stsgate
//! locally (docs/providers/huawei.md and docs/providers/baidu.md show a session):
//!
//! ```text
//! cargo run --example fake_huawei_baidu -- 127.0.0.1:9406 127.0.0.1:9404
//! ```
//! IAM expects AK `HWFAKEAK0000EXAMPLE01`, SK `hwFAKEsecret0001` and X-Domain-Id
//! `0123456789abcdef0123456789abcdef`; STS expects AK `bdfakeak0001`, SK `bdFAKEsecret0001`
//! (override with `FAKE_HUAWEI_AK`, `FAKE_HUAWEI_SK`, `FAKE_HUAWEI_DOMAIN_ID`,
//! `FAKE_BAIDU_AK`, `FAKE_BAIDU_SK`).

// The fakes refer to their shared helpers as `super::upstream`: keep all three at the root.
use stsgate_fakes::{baidu, huawei};

use baidu::FakeSts;
use huawei::FakeIam;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let iam_addr = args.next().unwrap_or_else(|| "127.0.0.1:9406".into());
    let sts_addr = args.next().unwrap_or_else(|| "127.0.0.1:9404".into());
    let iam = FakeIam::new(
        &env_or("FAKE_HUAWEI_AK", "HWFAKEAK0000EXAMPLE01"),
        &env_or("FAKE_HUAWEI_SK", "hwFAKEsecret0001"),
        &env_or("FAKE_HUAWEI_DOMAIN_ID", "0123456789abcdef0123456789abcdef"),
    );
    let sts = FakeSts::new(
        &env_or("FAKE_BAIDU_AK", "bdfakeak0001"),
        &env_or("FAKE_BAIDU_SK", "bdFAKEsecret0001"),
    );
    println!(
        "fake Huawei IAM listening on {}",
        iam.start_on(&iam_addr).await
    );
    println!(
        "fake Baidu STS listening on {}",
        sts.start_on(&sts_addr).await
    );
    tokio::signal::ctrl_c().await.ok();
}
