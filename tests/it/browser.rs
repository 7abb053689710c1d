//! The `/demo` page (docs/demo.md): served only when `server.demo` is on, with its headers and
//! injected configuration (in process); and driven in a real Chromium (`tests/browser/demo.mjs`
//! through playwright-core) against the real binary, on embedded defaults (the embedded store
//! of docs/contract.md §5: no callback, the bytes under `./stsgate-data/local/`) and against
//! the fake AWS S3 (a cloud whose upload the page reports with a callback).
//!
//! The browser tests need `node`, `tests/browser/node_modules/playwright-core` (`npm ci` in
//! `tests/browser`) and `/usr/bin/chromium`. Without them they fail when
//! `STSGATE_REQUIRE_BROWSER=1` (CI) and otherwise say why and pass.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stsgate::config::Config;
use stsgate::upload::module::UploadModule;
use stsgate_fakes::aws::FakeSts;

use crate::helpers::*;

const CHROMIUM: &str = "/usr/bin/chromium";
/// `resource_image`'s `max_bytes` in the browser tests: the small file is under it, the
/// large one over it.
const MAX_BYTES: usize = 300_000;
const SMALL: usize = 200_000;
const LARGE: usize = 400_000;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why the browser tests cannot run on this machine, if they cannot.
fn missing_browser() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("`node` is not on PATH".into());
    }
    let pw = manifest_dir().join("tests/browser/node_modules/playwright-core/package.json");
    if !pw.exists() {
        return Some(
            "tests/browser/node_modules/playwright-core is missing (`npm ci` in tests/browser)"
                .into(),
        );
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    None
}

/// Whether the browser test `name` can run; panics when it cannot and
/// `STSGATE_REQUIRE_BROWSER=1`.
fn browser_available(name: &str) -> bool {
    match missing_browser() {
        None => true,
        Some(why) if std::env::var("STSGATE_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("{name}: STSGATE_REQUIRE_BROWSER=1 but {why}")
        }
        Some(why) => {
            eprintln!("{name}: not run: {why} (STSGATE_REQUIRE_BROWSER=1 makes this a failure)");
            false
        }
    }
}

/// The binary in `dir`, with nothing inherited from the caller's stsgate environment.
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

/// A running `stsgate serve`, killed on drop; its log is `{dir}/stsgate.log`.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(dir: &Path, env: &[(&str, &str)]) -> Proc {
        let log = dir.join("stsgate.log");
        let mut cmd = stsgate(dir);
        cmd.arg("serve")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        Proc {
            child: cmd.spawn().expect("stsgate starts"),
            log,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits for `/healthz`; fails with the log's end if the process exits first.
    async fn wait_healthy(&mut self, base: &str) {
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "stsgate exited ({status}) before serving:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("stsgate did not come up:\n{}", self.log_tail());
    }
}

/// `stsgate token --sub alice` in `dir` (same key file or configured key as the server).
fn mint_token(dir: &Path, env: &[(&str, &str)]) -> String {
    let out = stsgate(dir)
        .args(["token", "--sub", "alice"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `n` bytes that start like a PNG and are otherwise a deterministic pseudo-random stream
/// (xorshift), so two files never share a prefix beyond the signature.
fn test_file(n: usize, seed: u64) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut x = seed | 1;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Where screenshots go: `{target dir}/ci-output/browser/`.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"))
        .join("ci-output/browser")
}

/// Runs `tests/browser/demo.mjs` against `base` and returns its result object.
async fn run_demo(base: &str, token: &str, small: &Path, large: &Path, screenshot: &Path) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("demo.mjs")
        .current_dir(manifest_dir().join("tests/browser"))
        .env("STSGATE_DEMO_URL", base)
        .env("STSGATE_DEMO_TOKEN", token)
        .env("STSGATE_DEMO_SMALL_FILE", small)
        .env("STSGATE_DEMO_LARGE_FILE", large)
        .env("STSGATE_DEMO_SCREENSHOT", screenshot)
        .env("STSGATE_DEMO_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("demo.mjs finished within 120 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo.mjs failed ({}):\n{stderr}",
        out.status
    );
    eprint!("{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STSGATE_DEMO_RESULT "))
        .unwrap_or_else(|| panic!("no result line from demo.mjs:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).expect("demo.mjs printed JSON")
}

async fn get_record(base: &str, token: &str, id: i64) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}/upload/objects/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["data"].clone()
}

/// What holds for both stores: the page's headers, no script error or CSP violation, the
/// JWT in a password field, no secret of the answer on the page, the small file uploaded
/// and the large one refused by the store with `EntityTooLarge`.
fn assert_page_behaved(r: &Value) {
    for case in ["uploaded", "tooLarge"] {
        let c = &r[case];
        assert_eq!(c["headers"]["contentType"], "text/html; charset=utf-8");
        let csp = c["headers"]["csp"].as_str().unwrap_or("");
        assert!(
            csp.starts_with("default-src 'none'; script-src 'sha256-"),
            "{csp}"
        );
        assert_eq!(c["headers"]["cacheControl"], "no-store");
        assert_eq!(c["stsStatus"], 200, "{case}: {c}");
        assert_eq!(c["tokenInputType"], "password");
        assert!(
            c["tokenInfo"].as_str().unwrap().contains("\"alice\""),
            "{case}: {c}"
        );
        let checked: Vec<&str> = c["secretsChecked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for name in [
            "jwt",
            "secretAccessKey",
            "securityToken",
            "form.policy",
            "form.x-amz-signature",
        ] {
            assert!(
                checked.contains(&name),
                "{case}: {name} not checked: {checked:?}"
            );
        }
        assert_eq!(c["leaked"], serde_json::json!([]), "{case}: shown in full");
        // The only console errors allowed: the browser's own line for a refused POST.
        for p in c["problems"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            assert!(
                case == "tooLarge" && p.starts_with("console: Failed to load resource"),
                "{case}: {p}"
            );
        }
    }
    let a = &r["uploaded"];
    assert_eq!(a["state"], "done", "{a}");
    assert_eq!(a["error"], "");
    assert_eq!(a["recordStatus"], "uploaded", "{a}");
    assert_eq!(a["progress"], 100);
    assert_eq!(
        a["objectId"].as_str().unwrap(),
        a["answerObjectId"].as_i64().unwrap().to_string()
    );
    let b = &r["tooLarge"];
    assert_eq!(b["state"], "error", "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("EntityTooLarge"),
        "{b}"
    );
    assert!(b["recordStatus"].is_null());
}

struct Files {
    small: Vec<u8>,
    small_path: PathBuf,
    large_path: PathBuf,
}

fn write_files(dir: &Path) -> Files {
    let small = test_file(SMALL, 0x5eed_0001);
    let small_path = dir.join("small.png");
    let large_path = dir.join("large.png");
    std::fs::write(&small_path, &small).unwrap();
    std::fs::write(&large_path, test_file(LARGE, 0x5eed_0002)).unwrap();
    Files {
        small,
        small_path,
        large_path,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_uploads_to_the_embedded_store_in_a_real_browser() {
    if !browser_available("demo_uploads_to_the_embedded_store_in_a_real_browser") {
        return;
    }
    let started = std::time::Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("server");
    std::fs::create_dir(&dir).unwrap();
    let files = write_files(work.path());
    let (addr, storage) = (free_addr(), free_addr());
    let base = format!("http://{addr}");
    let storage_url = format!("http://{storage}");
    let max = MAX_BYTES.to_string();
    let env = [
        ("STSGATE_SERVER__LISTEN", addr.as_str()),
        ("STSGATE_SERVER__PUBLIC_BASE_URL", base.as_str()),
        ("STSGATE_STORAGE__LISTEN", storage.as_str()),
        ("STSGATE_STORAGE__PUBLIC_URL", storage_url.as_str()),
        // No STSGATE_SERVER__DEMO: the page is on because the embedded store is.
        (
            "STSGATE_UPLOAD__MODULES__RESOURCE_IMAGE__MAX_BYTES",
            max.as_str(),
        ),
    ];
    let mut server = Proc::spawn(&dir, &env);
    server.wait_healthy(&base).await;
    let token = mint_token(&dir, &[]);
    let shot = screenshot_dir().join("demo-uploaded.png");
    let r = run_demo(&base, &token, &files.small_path, &files.large_path, &shot).await;
    println!("screenshot: {}", shot.display());
    assert!(shot.exists(), "{}", shot.display());
    assert_page_behaved(&r);

    let a = &r["uploaded"];
    assert!(
        a["clouds"].as_array().unwrap().contains(&Value::from("2")),
        "{a}"
    );
    assert_eq!(a["formUrl"], format!("{storage_url}/local"));
    assert_eq!(
        a["callback"], false,
        "the embedded store records the upload itself: no client callback"
    );
    let id = a["answerObjectId"].as_i64().unwrap();
    let key = a["answerRelativePath"].as_str().unwrap();
    let rec = get_record(&base, &token, id).await;
    assert_eq!(rec["status"], "uploaded", "{rec}");
    assert_eq!(rec["size"], SMALL as u64, "{rec}");
    assert_eq!(rec["relativePath"], key);
    let stored = std::fs::read(dir.join("stsgate-data/local").join(key))
        .expect("the object is in ./stsgate-data/local/");
    assert!(stored == files.small, "stored bytes differ from the file");

    let b = &r["tooLarge"];
    let id = b["answerObjectId"].as_i64().unwrap();
    let key = b["answerRelativePath"].as_str().unwrap();
    let rec = get_record(&base, &token, id).await;
    assert_eq!(
        rec["status"], "issued",
        "refused upload stays issued: {rec}"
    );
    assert!(!dir.join("stsgate-data/local").join(key).exists());
    // For CI's log (`.ci/run` prints it after the test stage).
    let report = format!(
        "browser::demo_uploads_to_the_embedded_store_in_a_real_browser passed in {:.1} s; screenshot {}\n",
        started.elapsed().as_secs_f64(),
        shot.display()
    );
    std::fs::write(screenshot_dir().join("report.txt"), report).unwrap();
}

const AWS_KEY_ID: &str = "AKIAITDEMO0000000001";
const AWS_SECRET: &str = "itDemoAwsSecret/+0123456789abcdefghijklm";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/uploader";
const BUCKET: &str = "demo-bucket";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_uploads_to_the_fake_aws_s3_with_a_callback_in_a_real_browser() {
    if !browser_available("demo_uploads_to_the_fake_aws_s3_with_a_callback_in_a_real_browser") {
        return;
    }
    let fake = FakeSts::new(AWS_KEY_ID, AWS_SECRET, "us-east-1", ROLE_ARN, BUCKET);
    let s3 = fake.start().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("server");
    std::fs::create_dir(&dir).unwrap();
    let files = write_files(work.path());
    let addr = free_addr();
    let base = format!("http://{addr}");
    let max = MAX_BYTES.to_string();
    let env = [
        ("STSGATE_SERVER__LISTEN", addr.as_str()),
        ("STSGATE_SERVER__PUBLIC_BASE_URL", base.as_str()),
        ("STSGATE_SERVER__DEMO", "true"),
        (
            "STSGATE_UPLOAD__MODULES__RESOURCE_IMAGE__MAX_BYTES",
            max.as_str(),
        ),
        ("STSGATE_AUTH__HS256_SECRET", JWT_SECRET),
        ("STSGATE_PROVIDERS__AWS__ACCESS_KEY_ID", AWS_KEY_ID),
        ("STSGATE_PROVIDERS__AWS__SECRET_ACCESS_KEY", AWS_SECRET),
        ("STSGATE_PROVIDERS__AWS__ROLE_ARN", ROLE_ARN),
        ("STSGATE_PROVIDERS__AWS__STS_ENDPOINT", s3.as_str()),
        ("STSGATE_PROVIDERS__AWS__S3_ENDPOINT", s3.as_str()),
        ("STSGATE_PROVIDERS__AWS__PATH_STYLE", "true"),
        ("STSGATE_PROVIDERS__AWS__REGION", "us-east-1"),
        ("STSGATE_PROVIDERS__AWS__BUCKET", BUCKET),
    ];
    let mut server = Proc::spawn(&dir, &env);
    server.wait_healthy(&base).await;
    let token = mint_token(&dir, &[("STSGATE_AUTH__HS256_SECRET", JWT_SECRET)]);
    let shot = screenshot_dir().join("demo-uploaded-fake-aws.png");
    let r = run_demo(&base, &token, &files.small_path, &files.large_path, &shot).await;
    println!("screenshot: {}", shot.display());
    assert_page_behaved(&r);

    let a = &r["uploaded"];
    assert_eq!(a["formUrl"], format!("{s3}/{BUCKET}"));
    assert_eq!(a["callback"], true, "AWS needs the client's callback");
    let id = a["answerObjectId"].as_i64().unwrap();
    let key = a["answerRelativePath"].as_str().unwrap();
    let rec = get_record(&base, &token, id).await;
    assert_eq!(rec["status"], "uploaded", "{rec}");
    assert_eq!(
        rec["size"], SMALL as u64,
        "the bucket's size, confirmed with a HEAD: {rec}"
    );
    assert_eq!(rec["mimeType"], "image/png", "{rec}");
    assert_eq!(rec["verifiedBy"], "head", "{rec}");
    let objects = fake.objects();
    assert_eq!(objects.len(), 1, "only the small file was stored");
    assert_eq!(objects[0].key, key);
    assert!(
        objects[0].data == files.small,
        "stored bytes differ from the file"
    );
    assert_eq!(
        fake.s3_refusals(),
        vec!["EntityTooLarge".to_string()],
        "the large file was refused by S3"
    );
    let b = &r["tooLarge"];
    let rec = get_record(&base, &token, b["answerObjectId"].as_i64().unwrap()).await;
    assert_eq!(rec["status"], "issued", "{rec}");
}

fn demo_config(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"demo-config\">";
    let start = page.find(open).expect("config block") + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).expect("the config is JSON")
}

#[tokio::test]
async fn demo_is_served_only_when_on_with_its_headers_and_config() {
    let (_fake, url) = fake_lke().await;
    for demo in [Some(false), None, Some(true)] {
        let db = Arc::new(sqlite().await);
        let mut c: Config = base_config(&db);
        enable_tencent(&mut c, &url);
        c.server.demo = demo;
        let s = Server::start(db, c).await;
        let on = stsgate::http::demo::enabled(&s.state);
        // On and off as configured; absent ("auto") is whatever `enabled` says, and the
        // route follows it.
        if let Some(v) = demo {
            assert_eq!(on, v);
        }
        let a = s.get("/demo", None).await;
        if !on {
            assert_eq!(a.status, 404, "{demo:?}");
            assert_eq!(a.code(), 40401, "{}", a.text);
            s.stop().await;
            continue;
        }
        assert_eq!(a.status, 200);
        let h = |n: &str| a.headers.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(h("content-type"), "text/html; charset=utf-8");
        assert_eq!(h("cache-control"), "no-store");
        assert_eq!(h("x-content-type-options"), "nosniff");
        let csp = h("content-security-policy");
        assert_eq!(csp, *stsgate::http::demo::CSP);
        assert!(csp.contains("connect-src *;") && csp.contains("frame-ancestors 'none'"));
        let cfg = demo_config(&a.text);
        let clouds = cfg["clouds"].as_array().unwrap();
        assert!(
            clouds.contains(&serde_json::json!({"type": 1, "name": "tencent", "callback": true})),
            "{clouds:?}"
        );
        let types: Vec<u64> = clouds.iter().map(|c| c["type"].as_u64().unwrap()).collect();
        let enabled: Vec<u64> = s
            .state
            .providers
            .enabled()
            .iter()
            .map(|c| u64::from(c.code()))
            .collect();
        assert_eq!(types, enabled, "exactly the enabled clouds");
        let names: Vec<&str> = cfg["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let all: Vec<&str> = UploadModule::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(names, all);
        let bs = &cfg["modules"][0];
        assert_eq!(bs["requires"], "projectId");
        assert_eq!(cfg["modules"][4]["requires"], "uuid");
        assert_eq!(cfg["modules"][3]["maxBytes"], 20 * 1024 * 1024);
        // Only GET (and the HEAD that comes with it).
        let post = s.send(s.http.post(format!("{}/demo", s.base))).await;
        assert_eq!(post.status, 405);
        assert_eq!(post.code(), 40501);
        s.stop().await;
    }
}
