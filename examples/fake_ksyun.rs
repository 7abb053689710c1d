//! Runs the fake KSyun STS and the fake KS3 bucket used by the tests, for trying stsgate
//! locally (the bucket on the second address, reached as `{bucket}.localhost:{port}`: point
//! `ks3_endpoint` at `http://localhost:{port}` and add `"{bucket}.localhost" = "{address}"`
//! to `[providers.resolve]`):
//!
//! ```text
//! cargo run --example fake_ksyun -- 127.0.0.1:9401 127.0.0.1:9402
//! STSGATE_PROVIDERS__KSYUN__STS_ENDPOINT=http://127.0.0.1:9401 \
//! STSGATE_PROVIDERS__KSYUN__ACCESS_KEY_ID=AKLTfake STSGATE_PROVIDERS__KSYUN__SECRET_ACCESS_KEY=fakesecret \
//! STSGATE_PROVIDERS__KSYUN__ROLE_KRN=krn:ksc:iam::2000000001:role/stsgate-upload \
//! STSGATE_PROVIDERS__KSYUN__BUCKET=stsgate-demo cargo run --release
//! ```
//! The fake expects access key `AKLTfake`, secret `fakesecret`, region `cn-beijing-6` and
//! that role (override with `FAKE_KSYUN_ACCESS_KEY_ID`, `FAKE_KSYUN_SECRET_ACCESS_KEY`,
//! `FAKE_KSYUN_REGION`, `FAKE_KSYUN_ROLE_KRN`); the bucket is `FAKE_KSYUN_BUCKET`
//! (`stsgate-demo`).

use stsgate_fakes::ksyun;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9401".into());
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let ak = env("FAKE_KSYUN_ACCESS_KEY_ID", "AKLTfake");
    let sk = env("FAKE_KSYUN_SECRET_ACCESS_KEY", "fakesecret");
    let region = env("FAKE_KSYUN_REGION", "cn-beijing-6");
    let role = env(
        "FAKE_KSYUN_ROLE_KRN",
        "krn:ksc:iam::2000000001:role/stsgate-upload",
    );
    let ks3_addr = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "127.0.0.1:9402".into());
    let bucket = env("FAKE_KSYUN_BUCKET", "stsgate-demo");
    let fake = ksyun::FakeKsyunSts::new(&ak, &sk, &region, &role);
    let base = fake.start_on(&addr).await;
    println!("fake KSyun STS listening on {base} (access key {ak}, region {region})");
    let ks3 = ksyun::ks3::FakeKs3::new(&fake, &bucket);
    let ks3_base = ks3.start_on(&ks3_addr).await;
    println!("fake KS3 listening on {ks3_base} (bucket {bucket}, as {bucket}.localhost)");
    tokio::signal::ctrl_c().await.ok();
}
