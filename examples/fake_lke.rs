//! Runs the fake LKE used by the tests, for trying stsgate locally:
//!
//! ```text
//! cargo run --example fake_lke -- 127.0.0.1:9400
//! STSGATE_PROVIDERS__TENCENT__ENDPOINT=http://127.0.0.1:9400 \
//! STSGATE_PROVIDERS__TENCENT__SECRET_ID=AKIDfake STSGATE_PROVIDERS__TENCENT__SECRET_KEY=fakekey \
//! STSGATE_PROVIDERS__TENCENT__BOT_BIZ_ID=1771061216515457024 cargo run --release
//! ```
//! The fake expects SecretId `AKIDfake`, SecretKey `fakekey` (override with
//! `FAKE_LKE_SECRET_ID` / `FAKE_LKE_SECRET_KEY`) and region `ap-jakarta`.

use stsgate_fakes::tencent;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9400".into());
    let id = std::env::var("FAKE_LKE_SECRET_ID").unwrap_or_else(|_| "AKIDfake".into());
    let key = std::env::var("FAKE_LKE_SECRET_KEY").unwrap_or_else(|_| "fakekey".into());
    let region = std::env::var("FAKE_LKE_REGION").unwrap_or_else(|_| "ap-jakarta".into());
    let fake = tencent::FakeLke::new(&id, &key, &region);
    let base = fake.start_on(&addr).await;
    println!("fake LKE listening on {base} (SecretId {id}, region {region})");
    tokio::signal::ctrl_c().await.ok();
}
