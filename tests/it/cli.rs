//! The `stsgate` binary: first run on embedded defaults, token, check-config, migrate,
//! healthcheck, and graceful shutdown with a request in flight.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::helpers::*;
use stsgate_fakes::Mode;

fn stsgate(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stsgate"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("STSGATE_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("stsgate runs")
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    let up = async {
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), up)
        .await
        .expect("server came up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let store_addr = free_addr();
    let base = format!("http://{addr}");
    let mut cmd = stsgate(dir.path());
    // Only the ports differ from the built-in defaults (tests run side by side).
    cmd.arg("serve")
        .env("STSGATE_SERVER__LISTEN", &addr)
        .env("STSGATE_SERVER__PUBLIC_BASE_URL", &base)
        .env("STSGATE_STORAGE__LISTEN", &store_addr)
        .env(
            "STSGATE_STORAGE__PUBLIC_URL",
            format!("http://{store_addr}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = Proc(cmd.spawn().unwrap());
    wait_healthy(&base).await;
    let key = dir.path().join("stsgate.key");
    assert!(key.exists(), "serve generated ./stsgate.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        dir.path().join("stsgate.db").exists(),
        "SQLite at ./stsgate.db"
    );
    let out = run({
        let mut c = stsgate(dir.path());
        c.args([
            "token",
            "--sub",
            "alice",
            "--claim",
            "projects=[1,2]",
            "--claim",
            "team=ops",
        ]);
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let c = claims(&token);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["projects"], serde_json::json!([1, 2]));
    assert_eq!(c["team"], "ops");
    assert!(c.get("scope").is_none());
    let out = run({
        let mut c = stsgate(dir.path());
        c.args(["token", "--sub", "backend", "--service"]);
        c
    });
    assert!(out.status.success());
    let service = claims(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(service["scope"], "stsgate:service");
    assert_eq!(service["sub"], "backend");
    let client = reqwest::Client::new();
    let r = client.get(format!("{base}/upload/sts/info?type=1&extension=png&isNeedCallback=0&uploadModule=resource_image")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 40002);

    // Cloud type 2 is the embedded store: credentials out, a real file in with the form,
    // the ledger updated by the store itself.
    let r = client.get(format!("{base}/upload/sts/info?type=2&extension=png&isNeedCallback=0&uploadModule=resource_image")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let data = r.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(data["endpoint"], format!("http://{store_addr}"));
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in data["form"]["fields"].as_object().unwrap() {
        form = form.text(k.clone(), v.as_str().unwrap().to_string());
    }
    let bytes: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("a.png"),
    );
    let up = client
        .post(data["form"]["url"].as_str().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 204);
    let key = data["relativePath"].as_str().unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("stsgate-data/local").join(key)).unwrap(),
        bytes
    );
    let rec: Value = client
        .get(format!("{base}/upload/objects/{}", data["objectId"]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec["data"]["status"], "uploaded");
    assert_eq!(rec["data"]["size"], 150_000);
    let store_key = dir.path().join("stsgate-store.key");
    assert!(store_key.exists(), "serve generated ./stsgate-store.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&store_key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let r = client
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 40401);
    // healthcheck against the running server: 0; SIGTERM: clean exit 0; then healthcheck fails.
    let hc = run({
        let mut c = stsgate(dir.path());
        c.arg("healthcheck").env("STSGATE_SERVER__LISTEN", &addr);
        c
    });
    assert!(hc.status.success());
    let mut child = child;
    sigterm(&child.0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    // The store stopped with the server.
    assert!(std::net::TcpStream::connect(&store_addr).is_err());
    let hc = run({
        let mut c = stsgate(dir.path());
        c.arg("healthcheck").env("STSGATE_SERVER__LISTEN", &addr);
        c
    });
    assert!(!hc.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish() {
    let (fake, url) = fake_lke().await;
    fake.set_mode(Mode::Delay(800));
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut cmd = stsgate(dir.path());
    cmd.arg("serve")
        .env("STSGATE_SERVER__LISTEN", &addr)
        .env("STSGATE_AUTH__HS256_SECRET", JWT_SECRET)
        .env("STSGATE_STORAGE__MODE", "off")
        .env("STSGATE_PROVIDERS__TENCENT__SECRET_ID", TC_SECRET_ID)
        .env("STSGATE_PROVIDERS__TENCENT__SECRET_KEY", TC_SECRET_KEY)
        .env("STSGATE_PROVIDERS__TENCENT__BOT_BIZ_ID", "42")
        .env("STSGATE_PROVIDERS__TENCENT__ENDPOINT", &url)
        .env("STSGATE_PROVIDERS__TENCENT__POOL_SIZE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Proc(cmd.spawn().unwrap());
    wait_healthy(&base).await;
    assert!(
        !dir.path().join("stsgate.key").exists(),
        "a configured key wins: no key file"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = mint_jwt(JWT_SECRET, "alice", now);
    let req = tokio::spawn(
        reqwest::Client::new()
            .get(format!("{base}/upload/sts/info?type=1&extension=pdf&isNeedCallback=0&uploadModule=directorytemp"))
            .bearer_auth(token)
            .send(),
    );
    assert!(
        eventually(Duration::from_secs(5), || fake.calls() == 1).await,
        "request reached the cloud"
    );
    sigterm(&child.0);
    let res = req.await.unwrap().expect("in-flight request answered");
    assert_eq!(res.status(), 200);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn check_config_redacts_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = stsgate(dir.path());
        c.arg("check-config")
            .env("STSGATE_PROVIDERS__TENCENT__SECRET_ID", "AKIDcheckconfig")
            .env("STSGATE_PROVIDERS__TENCENT__SECRET_KEY", "topsecretvalue")
            .env("STSGATE_PROVIDERS__TENCENT__BOT_BIZ_ID", "1")
            .env("STSGATE_DATABASE__URL", "postgres://u:dbpassword@h/db");
        c
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("<redacted>"));
    assert!(stdout.contains("tencent: true"), "{stdout}");
    for s in ["AKIDcheckconfig", "topsecretvalue", "dbpassword"] {
        assert!(!stdout.contains(s), "{s} leaked");
    }
    let out = run({
        let mut c = stsgate(dir.path());
        c.arg("check-config")
            .env("STSGATE_PROVIDERS__TENCENT__SECRET_KEY", "topsecretvalue");
        c
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("providers.tencent.secret_id"), "{err}");
    assert!(!err.contains("topsecretvalue"));
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[upload]\nkey_prefx = \"x\"\n").unwrap();
    let out = run({
        let mut c = stsgate(dir.path());
        c.arg("--config").arg(&file).arg("check-config");
        c
    });
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upload.key_prefx"));
    let out = run({
        let mut c = stsgate(dir.path());
        c.arg("check-config").env("STSGATE_CONFIG", &file);
        c
    });
    assert!(!out.status.success(), "STSGATE_CONFIG selects the file too");
}

#[test]
fn migrate_and_token_share_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = stsgate(dir.path());
        c.arg("migrate");
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("stsgate.db").exists());
    let t1 = run({
        let mut c = stsgate(dir.path());
        c.args(["token", "--sub", "bob", "--ttl", "120"]);
        c
    });
    assert!(t1.status.success());
    let token = String::from_utf8(t1.stdout).unwrap().trim().to_string();
    let secret = std::fs::read_to_string(dir.path().join("stsgate.key"))
        .unwrap()
        .trim()
        .to_string();
    let v = stsgate::auth::Verifier::new(&[], Some(&secret)).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let c = futures::executor::block_on(v.verify(&token, now)).unwrap();
    assert_eq!(c.sub, "bob");
    assert!(c.exp - now <= 120 && c.exp - now >= 110);
    // With a configured key, `token` uses it and creates no key file.
    let other = tempfile::tempdir().unwrap();
    let t2 = run({
        let mut c = stsgate(other.path());
        c.args(["token", "--sub", "bob"])
            .env("STSGATE_AUTH__HS256_SECRET", JWT_SECRET);
        c
    });
    assert!(t2.status.success());
    assert!(!other.path().join("stsgate.key").exists());
    let v = stsgate::auth::Verifier::new(&[], Some(JWT_SECRET)).unwrap();
    assert!(futures::executor::block_on(
        v.verify(String::from_utf8(t2.stdout).unwrap().trim(), now)
    )
    .is_ok());
}
