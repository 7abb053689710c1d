//! The embedded object store over real HTTP: minted credentials upload with a browser form,
//! a SigV4 PUT and a multipart upload; the ledger learns by itself; every refusal is S3's
//! XML error; nothing half-written stays on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use stsgate::config::{Config, ModuleConfig};
use stsgate::metrics::Metrics;
use stsgate::providers::embedded::config::StorageMode;
use stsgate::providers::sigv4::{sign_request, SigV4Key, SigV4Request};
use stsgate::secret::Secret;
use tokio::io::AsyncWriteExt as _;

use crate::helpers::*;

const STORE_KEY: &str = "embedded-store-test-key-0123456789abcdef";
const MAX_IMAGE: u64 = 300_000;

struct Store {
    server: Server,
    clock: Arc<ManualClock>,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

pub(crate) fn config(db: &Db, dir: &Path, listen: &str) -> Config {
    let mut c = base_config(db);
    c.storage.mode = StorageMode::On;
    c.storage.listen = listen.into();
    c.storage.public_url = format!("http://{listen}");
    c.storage.dir = dir.display().to_string();
    c.storage.secret = Secret::new(STORE_KEY);
    c.server.cors_allowed_origins = vec!["https://app.example".into()];
    c.upload.modules.insert(
        "resource_image".into(),
        ModuleConfig {
            extensions: None,
            max_bytes: Some(MAX_IMAGE),
        },
    );
    c
}

pub(crate) async fn start_on(db: Arc<Db>, config: Config, clock: Arc<ManualClock>) -> Server {
    let state = stsgate::app::build_with(config, None, clock, Metrics::new())
        .await
        .expect("app builds");
    let store = state.config.storage.listen.clone();
    let server = Server::start_state(db, state).await;
    // The store binds its own listener inside `serve`.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&store).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}

async fn start() -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let db = Arc::new(sqlite().await);
    let clock = ManualClock::new();
    let server = start_on(db.clone(), config(&db, &dir, &free_addr()), clock.clone()).await;
    Store {
        server,
        clock,
        dir,
        _tmp: tmp,
    }
}

/// A `multipart/form-data` body: `fields` in order, then `file` named `filename`.
fn multipart(fields: &[(String, String)], filename: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----stsgate-test-boundary-7d1c";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn form_fields(data: &Value) -> Vec<(String, String)> {
    data["form"]["fields"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .or_else(|| {
            data["form"]["fields"].as_array().map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap().to_string(),
                            p[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
        })
        .expect("form fields")
}

pub(crate) struct S3Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl S3Answer {
    /// S3's XML `<Code>`.
    pub(crate) fn code(&self) -> String {
        self.text
            .split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or("")
            .to_string()
    }
}

pub(crate) async fn send(r: reqwest::RequestBuilder) -> S3Answer {
    let resp = r.send().await.expect("store answers");
    S3Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

async fn post_form(
    url: &str,
    fields: &[(String, String)],
    filename: &str,
    file: &[u8],
) -> S3Answer {
    let (ct, body) = multipart(fields, filename, file);
    send(
        reqwest::Client::new()
            .post(url)
            .header("content-type", ct)
            .body(body),
    )
    .await
}

/// Minted credentials as the answer carries them.
pub(crate) struct Creds {
    pub(crate) akid: String,
    pub(crate) secret: String,
    pub(crate) token: String,
}

pub(crate) fn creds(data: &Value) -> Creds {
    Creds {
        akid: data["accessKeyId"].as_str().unwrap().into(),
        secret: data["secretAccessKey"].as_str().unwrap().into(),
        token: data["securityToken"].as_str().unwrap().into(),
    }
}

/// A SigV4-signed request to the store (`x-amz-content-sha256` is the body's hash).
pub(crate) fn signed(
    method: &str,
    url: &str,
    c: &Creds,
    token: Option<&str>,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    let s = sign_request(
        SigV4Key {
            access_key_id: &c.akid,
            secret_access_key: &c.secret,
            session_token: token,
        },
        &SigV4Request {
            method,
            url,
            signed_headers: &[("x-amz-content-sha256", &hash)],
            body,
            region: "us-east-1",
            service: "s3",
            time: SystemTime::now(),
        },
    )
    .unwrap();
    let mut r = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .header("x-amz-content-sha256", hash)
        .body(body.to_vec());
    for (k, v) in s.headers {
        r = r.header(k, v);
    }
    r
}

pub(crate) fn png(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn issue(s: &Store, query: &str) -> Value {
    let a = s.server.sts("alice", query).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["data"].clone()
}

const IMAGE: &str =
    "type=2&extension=png&isNeedCallback=1&uploadModule=resource_image&platform=web";

#[tokio::test]
async fn a_form_upload_lands_on_disk_and_in_the_ledger_with_no_callback() {
    let s = start().await;
    let data = issue(&s, IMAGE).await;
    let store_url = s.server.state.config.storage.public_url.clone();
    assert_eq!(data["endpoint"], store_url.as_str());
    assert_eq!(data["bucket"], "local");
    assert_eq!(data["form"]["url"], format!("{store_url}/local"));
    let bytes = png(200_000, 1);
    let a = post_form(
        data["form"]["url"].as_str().unwrap(),
        &form_fields(&data),
        "cat.png",
        &bytes,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let md5 = format!(
        "\"{}\"",
        hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes))
    );
    assert_eq!(a.headers["etag"].to_str().unwrap(), md5);
    let key = data["relativePath"].as_str().unwrap();
    assert_eq!(std::fs::read(s.dir.join("local").join(key)).unwrap(), bytes);

    let id = data["objectId"].as_i64().unwrap();
    let token = s.server.token("alice");
    let rec = s
        .server
        .get(&format!("/upload/objects/{id}"), Some(&token))
        .await;
    let r = &rec.body["data"];
    assert_eq!(r["status"], "uploaded", "{}", rec.text);
    assert_eq!(r["size"], 200_000);
    assert_eq!(r["etag"], md5.as_str());
    assert_eq!(
        r["mimeType"].as_str().or(r["mime"].as_str()),
        Some("image/png"),
        "{r}"
    );
    assert_eq!(r["verifiedBy"], "store");

    // A client's later callback answers 200 and changes nothing.
    let cb = s
        .server
        .callback_form(
            Some(&token),
            &format!("objectId={id}&resourceType=2&size=1&etag=x"),
        )
        .await;
    assert_eq!(cb.status, 200, "{}", cb.text);
    let again = s
        .server
        .get(&format!("/upload/objects/{id}"), Some(&token))
        .await;
    assert_eq!(again.body["data"], *r);
    // No temporary file remains.
    assert!(files_under(&s.dir.join(".stsgate")).is_empty());
}

#[tokio::test]
async fn put_and_multipart_uploads_with_minted_credentials() {
    let s = start().await;
    // Single PUT.
    let data = issue(&s, IMAGE).await;
    let c = creds(&data);
    let url = format!(
        "{}/local/{}",
        data["endpoint"].as_str().unwrap(),
        data["relativePath"].as_str().unwrap()
    );
    let body = png(1000, 2);
    let a = send(signed("PUT", &url, &c, Some(&c.token), &body)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = data["objectId"].as_i64().unwrap();
    let rec = s
        .server
        .get(
            &format!("/upload/objects/{id}"),
            Some(&s.server.token("alice")),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "uploaded");
    assert_eq!(rec.body["data"]["size"], 1000);

    // The presigned PUT (`uploadUrl`), as `curl -T` would send it: no SDK, no signing.
    let data = issue(&s, IMAGE).await;
    let put_url = data["uploadUrl"].as_str().expect("uploadUrl").to_string();
    assert!(put_url.contains("X-Amz-Security-Token="), "{put_url}");
    assert_eq!(
        data["uploadHeaders"],
        serde_json::json!({"Content-Type": "image/png"})
    );
    let body = png(2000, 9);
    let a = send(
        reqwest::Client::new()
            .put(&put_url)
            .header("content-type", "image/png")
            .body(body.clone()),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = data["objectId"].as_i64().unwrap();
    let rec = s
        .server
        .get(
            &format!("/upload/objects/{id}"),
            Some(&s.server.token("alice")),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "uploaded");
    assert_eq!(rec.body["data"]["size"], 2000);
    assert_eq!(rec.body["data"]["mimeType"], "image/png");
    // The URL is for exactly its key: the same signature on another key is refused.
    let other = put_url.replacen(
        data["relativePath"].as_str().unwrap(),
        "test/resource/image/x.png",
        1,
    );
    let a = send(
        reqwest::Client::new()
            .put(&other)
            .header("content-type", "image/png")
            .body("x"),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (403, "SignatureDoesNotMatch".to_string()),
        "{}",
        a.text
    );
    // Folder grants have no uploadUrl.
    let dir = issue(
        &s,
        "type=2&extension=png&isNeedCallback=0&uploadModule=directorytemp&isDir=1",
    )
    .await;
    assert!(dir.get("uploadUrl").is_none() && dir.get("uploadHeaders").is_none());

    // Multipart: create, two parts, complete; the ETag is S3's "md5-of-md5s-2".
    let data = issue(
        &s,
        "type=2&extension=mp4&isNeedCallback=0&uploadModule=resource_video",
    )
    .await;
    let c = creds(&data);
    let url = format!(
        "{}/local/{}",
        data["endpoint"].as_str().unwrap(),
        data["relativePath"].as_str().unwrap()
    );
    let created = send(signed(
        "POST",
        &format!("{url}?uploads"),
        &c,
        Some(&c.token),
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
    let (p1, p2) = (png(5 * 1024 * 1024, 3), png(1234, 4));
    let mut etags = Vec::new();
    for (n, part) in [(1, &p1), (2, &p2)] {
        let a = send(signed(
            "PUT",
            &format!("{url}?partNumber={n}&uploadId={upload_id}"),
            &c,
            Some(&c.token),
            part,
        ))
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        etags.push(a.headers["etag"].to_str().unwrap().to_string());
    }
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let done = send(signed(
        "POST",
        &format!("{url}?uploadId={upload_id}"),
        &c,
        Some(&c.token),
        xml.as_bytes(),
    ))
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    let md5 = |b: &[u8]| <md5::Md5 as md5::Digest>::digest(b).to_vec();
    let mut both = md5(&p1);
    both.extend(md5(&p2));
    let expected = format!("{}-2", hex::encode(md5(&both)));
    assert!(done.text.contains(&expected), "{}", done.text);
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    assert_eq!(
        std::fs::read(
            s.dir
                .join("local")
                .join(data["relativePath"].as_str().unwrap())
        )
        .unwrap(),
        whole
    );
    let id = data["objectId"].as_i64().unwrap();
    let rec = s
        .server
        .get(
            &format!("/upload/objects/{id}"),
            Some(&s.server.token("alice")),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "uploaded");
    assert_eq!(rec.body["data"]["size"], whole.len());
    assert_eq!(rec.body["data"]["etag"], format!("\"{expected}\""));
    assert!(files_under(&s.dir.join(".stsgate")).is_empty());
}

/// One line per refusal: other key, expired, altered token, missing token, bad signature,
/// over size, path escape — each S3's code, nothing written.
#[tokio::test]
async fn the_store_refuses_with_s3_codes_and_writes_nothing() {
    let s = start().await;
    let data = issue(&s, IMAGE).await;
    let c = creds(&data);
    let endpoint = data["endpoint"].as_str().unwrap().to_string();
    let key = data["relativePath"].as_str().unwrap().to_string();
    let url = format!("{endpoint}/local/{key}");
    let form_url = data["form"]["url"].as_str().unwrap().to_string();
    let fields = form_fields(&data);
    let small = png(100, 5);
    let mut lines = Vec::new();
    let mut check = |what: &str, a: S3Answer, status: u16, code: &str| {
        assert_eq!(
            (a.status, a.code().as_str()),
            (status, code),
            "{what}: {}",
            a.text
        );
        lines.push(format!("{what}: {} {}", a.status, a.code()));
    };

    let other = format!("{endpoint}/local/test/resource/image/other.png");
    check(
        "other key (PUT)",
        send(signed("PUT", &other, &c, Some(&c.token), &small)).await,
        403,
        "AccessDenied",
    );
    let mut f = fields.clone();
    f.iter_mut().find(|(k, _)| k == "key").unwrap().1 = "test/resource/image/other.png".into();
    check(
        "other key (form)",
        post_form(&form_url, &f, "a.png", &small).await,
        403,
        "AccessDenied",
    );
    let get = send(signed("GET", &url, &c, Some(&c.token), b"")).await;
    check("read (GET)", get, 403, "AccessDenied");

    let mut altered = c.token.clone().into_bytes();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    check(
        "altered token (PUT)",
        send(signed("PUT", &url, &c, Some(&altered), &small)).await,
        400,
        "InvalidToken",
    );
    check(
        "missing token (PUT)",
        send(signed("PUT", &url, &c, None, &small)).await,
        400,
        "InvalidToken",
    );
    let mut f = fields.clone();
    f.iter_mut()
        .find(|(k, _)| k == "x-amz-security-token")
        .unwrap()
        .1 = altered.clone();
    // The policy pins the token, but the signature is checked first: altered fields that
    // the signature covers are SignatureDoesNotMatch only when the policy changes.
    check(
        "altered token (form)",
        post_form(&form_url, &f, "a.png", &small).await,
        400,
        "InvalidToken",
    );

    let wrong = Creds {
        secret: "x".repeat(40),
        akid: c.akid.clone(),
        token: c.token.clone(),
    };
    check(
        "bad signature (PUT)",
        send(signed("PUT", &url, &wrong, Some(&c.token), &small)).await,
        403,
        "SignatureDoesNotMatch",
    );
    let mut f = fields.clone();
    let sig = &mut f
        .iter_mut()
        .find(|(k, _)| k == "x-amz-signature")
        .unwrap()
        .1;
    let last = sig.pop().unwrap();
    sig.push(if last == '0' { '1' } else { '0' });
    check(
        "bad signature (form)",
        post_form(&form_url, &f, "a.png", &small).await,
        403,
        "SignatureDoesNotMatch",
    );

    let big = png(MAX_IMAGE as usize + 1, 6);
    check(
        "over size (form)",
        post_form(&form_url, &fields, "a.png", &big).await,
        400,
        "EntityTooLarge",
    );
    check(
        "over size (PUT)",
        send(signed("PUT", &url, &c, Some(&c.token), &big)).await,
        400,
        "EntityTooLarge",
    );

    // A folder grant: the file name of a form upload becomes part of the key.
    let dir_data = issue(
        &s,
        "type=2&extension=png&isNeedCallback=0&uploadModule=directorytemp&isDir=1",
    )
    .await;
    let dir_fields = form_fields(&dir_data);
    for name in ["../../escape.png", "a\\..\\b.png", "/abs.png"] {
        let a = post_form(&form_url, &dir_fields, name, &small).await;
        check(
            &format!("path escape (form, {name})"),
            a,
            400,
            "InvalidArgument",
        );
    }

    let id = data["objectId"].as_i64().unwrap();
    let rec = s
        .server
        .get(
            &format!("/upload/objects/{id}"),
            Some(&s.server.token("alice")),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "issued");

    s.clock.advance(3601);
    check(
        "expired (PUT)",
        send(signed("PUT", &url, &c, Some(&c.token), &small)).await,
        400,
        "ExpiredToken",
    );
    check(
        "expired (form)",
        post_form(&form_url, &fields, "a.png", &small).await,
        400,
        "ExpiredToken",
    );

    println!("{}", lines.join("\n"));
    assert!(
        files_under(&s.dir.join("local")).is_empty(),
        "{:?}",
        files_under(&s.dir)
    );
    assert!(files_under(&s.dir.join(".stsgate")).is_empty());
    assert!(!s.dir.parent().unwrap().join("escape.png").exists());
}

#[tokio::test]
async fn a_folder_grant_takes_keys_below_its_prefix_only() {
    let s = start().await;
    let data = issue(
        &s,
        "type=2&extension=png&isNeedCallback=0&uploadModule=directorytemp&isDir=1",
    )
    .await;
    let prefix = data["relativePath"].as_str().unwrap().to_string();
    assert!(prefix.ends_with('/'));
    let form_url = data["form"]["url"].as_str().unwrap();
    let a = post_form(form_url, &form_fields(&data), "frame-001.png", b"one").await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(
        std::fs::read(s.dir.join("local").join(format!("{prefix}frame-001.png"))).unwrap(),
        b"one"
    );
    let c = creds(&data);
    let endpoint = data["endpoint"].as_str().unwrap();
    let a = send(signed(
        "PUT",
        &format!("{endpoint}/local/{prefix}sub/frame-002.png"),
        &c,
        Some(&c.token),
        b"two",
    ))
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let sibling = prefix.trim_end_matches('/').to_string() + "0/x.png";
    let a = send(signed(
        "PUT",
        &format!("{endpoint}/local/{sibling}"),
        &c,
        Some(&c.token),
        b"x",
    ))
    .await;
    assert_eq!((a.status, a.code()), (403, "AccessDenied".to_string()));
}

#[tokio::test]
async fn a_cut_off_upload_leaves_no_object_and_concurrent_uploads_do_not_mix() {
    let s = start().await;
    let data = issue(&s, IMAGE).await;
    let (ct, body) = multipart(&form_fields(&data), "a.png", &png(250_000, 7));
    let addr = s.server.state.config.storage.listen.clone();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /local HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() - 100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(conn);
    let gone = eventually(Duration::from_secs(5), || {
        files_under(&s.dir.join(".stsgate")).is_empty()
    })
    .await;
    assert!(gone, "{:?}", files_under(&s.dir));
    assert!(files_under(&s.dir.join("local")).is_empty());
    let id = data["objectId"].as_i64().unwrap();
    let rec = s
        .server
        .get(
            &format!("/upload/objects/{id}"),
            Some(&s.server.token("alice")),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "issued");

    // Eight at once, each with its own bytes.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let data = issue(&s, IMAGE).await;
        tasks.push(tokio::spawn(async move {
            let bytes = png(100_000 + usize::from(i) * 997, i);
            let a = post_form(
                data["form"]["url"].as_str().unwrap(),
                &form_fields(&data),
                "x.png",
                &bytes,
            )
            .await;
            assert_eq!(a.status, 204, "{}", a.text);
            (data["relativePath"].as_str().unwrap().to_string(), bytes)
        }));
    }
    for t in tasks {
        let (key, bytes) = t.await.unwrap();
        assert_eq!(std::fs::read(s.dir.join("local").join(key)).unwrap(), bytes);
    }
}

#[tokio::test]
async fn credentials_survive_a_restart_and_cors_lets_the_page_read_the_etag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let db = Arc::new(sqlite().await);
    let listen = free_addr();
    let clock = ManualClock::new();
    let first = start_on(db.clone(), config(&db, &dir, &listen), clock.clone()).await;
    let a = first.sts("alice", IMAGE).await;
    let data = a.body["data"].clone();
    first.stop().await;
    // Same server key, same directory, same port: the credentials are still good.
    let second = start_on(db.clone(), config(&db, &dir, &listen), clock).await;
    let c = creds(&data);
    let url = format!(
        "{}/local/{}",
        data["endpoint"].as_str().unwrap(),
        data["relativePath"].as_str().unwrap()
    );
    let a = send(signed("PUT", &url, &c, Some(&c.token), b"after restart")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = data["objectId"].as_i64().unwrap();
    let rec = second
        .get(
            &format!("/upload/objects/{id}"),
            Some(&second.token("alice")),
        )
        .await;
    assert_eq!(rec.body["data"]["status"], "uploaded");

    // CORS: a preflight from an allowed origin, and the ETag exposed on the answer.
    let form_url = data["form"]["url"].as_str().unwrap();
    let pre = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, form_url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let denied = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, form_url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(denied
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let data = second.sts("alice", IMAGE).await.body["data"].clone();
    let (ct, body) = multipart(&form_fields(&data), "a.png", b"x");
    let a = reqwest::Client::new()
        .post(data["form"]["url"].as_str().unwrap())
        .header("origin", "https://app.example")
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 204);
    let exposed = a.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
    second.stop().await;
}

/// Through every way the store refuses or accepts, at `trace` level: no minted secret,
/// session token, server key or JWT reaches the logs (`s3s` logs whole requests at debug
/// level, so it runs with no subscriber).
#[test]
fn no_secret_of_the_store_reaches_trace_logs() {
    let secrets = Arc::new(std::sync::Mutex::new(vec![STORE_KEY.to_string()]));
    let seen = secrets.clone();
    let text = capture_trace_logs(async move {
        let s = start().await;
        let data = issue(&s, IMAGE).await;
        let c = creds(&data);
        let jwt = s.server.token("alice");
        seen.lock()
            .unwrap()
            .extend([c.secret.clone(), c.token.clone(), jwt]);
        let url = format!(
            "{}/local/{}",
            data["endpoint"].as_str().unwrap(),
            data["relativePath"].as_str().unwrap()
        );
        let form_url = data["form"]["url"].as_str().unwrap().to_string();
        let fields = form_fields(&data);
        let mut altered = c.token.clone();
        altered.push('x');
        let wrong = Creds {
            secret: "y".repeat(40),
            akid: c.akid.clone(),
            token: c.token.clone(),
        };
        for r in [
            signed("PUT", &url, &c, Some(&altered), b"x"),
            signed("PUT", &url, &c, None, b"x"),
            signed("PUT", &url, &wrong, Some(&c.token), b"x"),
            signed("GET", &url, &c, Some(&c.token), b""),
            signed(
                "PUT",
                &url,
                &c,
                Some(&c.token),
                &png(MAX_IMAGE as usize + 1, 1),
            ),
        ] {
            assert!(send(r).await.status >= 400);
        }
        let mut f = fields.clone();
        f.retain(|(k, _)| k != "policy");
        assert_eq!(post_form(&form_url, &f, "a.png", b"x").await.status, 400);
        assert_eq!(
            post_form(&form_url, &fields, "a.png", &png(MAX_IMAGE as usize + 1, 2))
                .await
                .status,
            400
        );
        assert_eq!(
            send(signed("PUT", &url, &c, Some(&c.token), b"fine"))
                .await
                .status,
            200
        );
        assert_eq!(
            post_form(&form_url, &fields, "a.png", b"fine").await.status,
            204
        );
        s.clock.advance(4000);
        assert_eq!(
            send(signed("PUT", &url, &c, Some(&c.token), b"late"))
                .await
                .code(),
            "ExpiredToken"
        );
        s.server.stop().await;
    });
    assert!(
        text.contains("embedded store: upload finished"),
        "store logs were captured"
    );
    let secrets = secrets.lock().unwrap().clone();
    assert_eq!(secrets.len(), 4);
    assert_no_secret_in_logs(&text, &secrets, &["x-amz-security-token: stsg1", "stsg1."]);
}
