//! What the Huawei IAM and Baidu STS fakes share: the failure script (how the next call is
//! answered), the call log, serving on 127.0.0.1, and checking a browser-POST policy's
//! conditions against the form fields (each fake checks its own signature).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::routing::MethodRouter;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How a fake answers its next calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Fresh credentials.
    Ok,
    /// The cloud's main error envelope with this HTTP status and code (LKE answers every
    /// error with HTTP 200, as the real service does, whatever the status here).
    Error(u16, String),
    /// The cloud's other documented error envelope (Huawei: Keystone `error{code,title}`).
    AltError(u16, String),
    /// The first `n` calls answer `Error(status, code)`, then `Ok`.
    ErrorTimes(u16, String, u32),
    /// HTTP 500 with an HTML body.
    Http500,
    /// HTTP 2xx with truncated JSON.
    Malformed,
    /// Never answers (until the client gives up).
    Hang,
    /// Credentials living only this many seconds.
    ShortLived(i64),
    /// Answer normally after this many milliseconds.
    Delay(u64),
    /// AWS: an `Expiration` with fractional seconds (other fakes answer as `Ok`).
    FractionalExpiration,
    /// Tencent LKE: download-only credentials with no `UploadPath` (other fakes answer as `Ok`).
    NoUploadPath,
}

impl Mode {
    /// The mode for this call, counting `ErrorTimes` down in `slot`: `ErrorTimes(status,
    /// code, n)` answers `Error(status, code)` and leaves `n - 1` calls (then `Ok`).
    pub fn next(slot: &Mutex<Mode>) -> Mode {
        let mut m = slot.lock().unwrap();
        let current = m.clone();
        if let Mode::ErrorTimes(status, code, n) = current {
            *m = if n <= 1 {
                Mode::Ok
            } else {
                Mode::ErrorTimes(status, code.clone(), n - 1)
            };
            Mode::Error(status, code)
        } else {
            current
        }
    }
}

/// The failure script, call log and issued credentials (`T`) of one fake.
#[derive(Debug)]
pub struct Script<T> {
    mode: Mutex<Mode>,
    calls: Mutex<Vec<Instant>>,
    authorizations: Mutex<Vec<String>>,
    rejected: AtomicU64,
    serial: AtomicU64,
    issued: Mutex<Vec<T>>,
}

impl<T> Default for Script<T> {
    fn default() -> Self {
        Script {
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
            authorizations: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            serial: AtomicU64::new(0),
            issued: Mutex::new(Vec::new()),
        }
    }
}

/// What to do with a call that passed signature checks.
pub enum Step {
    /// Answer with an error or a broken body: `(status, body, content type)`.
    Answer(u16, String, &'static str),
    /// The main or alternative error envelope.
    Refuse {
        alt: bool,
        status: u16,
        code: String,
    },
    /// Issue credentials living `ttl` seconds (`None`: the fake's default).
    Issue(Option<i64>),
}

impl<T: Clone> Script<T> {
    /// Records what was issued.
    pub fn record(&self, issued: T) {
        self.issued.lock().unwrap().push(issued);
    }

    /// Everything issued so far.
    pub fn issued(&self) -> Vec<T> {
        self.issued.lock().unwrap().clone()
    }

    /// Records a call's arrival and its `Authorization` header, if any.
    pub fn arrive(&self, headers: &HeaderMap) {
        self.calls.lock().unwrap().push(Instant::now());
        if let Some(v) = headers.get("authorization") {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            self.authorizations.lock().unwrap().push(v);
        }
    }

    /// The `Authorization` values of every call received, in order.
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().unwrap().clone()
    }

    /// Counts a call refused for its signature or headers.
    pub fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes how the next calls are answered.
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    /// Calls received (signed well or not).
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Calls refused for a bad signature or headers.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::SeqCst)
    }

    /// A fresh serial number for issued credentials.
    pub fn serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Decides the next step (counting `ErrorTimes` down); sleeps for `Delay` and `Hang`.
    pub async fn step(&self) -> Step {
        let mode = Mode::next(&self.mode);
        match mode {
            Mode::Ok | Mode::FractionalExpiration | Mode::NoUploadPath => Step::Issue(None),
            Mode::ShortLived(ttl) => Step::Issue(Some(ttl)),
            Mode::Error(status, code) | Mode::ErrorTimes(status, code, _) => Step::Refuse {
                alt: false,
                status,
                code,
            },
            Mode::AltError(status, code) => Step::Refuse {
                alt: true,
                status,
                code,
            },
            Mode::Http500 => Step::Answer(500, "<html>upstream error</html>".into(), "text/html"),
            Mode::Malformed => {
                Step::Answer(200, "{\"credential\": {\"acc".into(), "application/json")
            }
            Mode::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Step::Issue(None)
            }
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Step::Answer(200, String::new(), "text/plain")
            }
        }
    }
}

/// Serves `app` on `addr` (e.g. `127.0.0.1:0`) in a spawned task; returns the base URL.
pub async fn serve(addr: &str, app: Router) -> String {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    format!("http://{addr}")
}

/// Serves one route on `addr` (e.g. `127.0.0.1:0`); returns the base URL.
pub async fn serve_one<S: Clone + Send + Sync + 'static>(
    addr: &str,
    path: &str,
    route: MethodRouter<S>,
    state: S,
) -> String {
    serve(addr, Router::new().route(path, route).with_state(state)).await
}

/// `HMAC-SHA256(key, msg)`, the raw bytes.
pub fn hmac_sha256(key: &[u8], msg: impl AsRef<[u8]>) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg.as_ref());
    m.finalize().into_bytes().to_vec()
}

/// Unix seconds now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 3986 encoding: `A-Z a-z 0-9 - _ . ~` stay, every other byte is `%XX` (upper case).
pub fn rfc3986(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-decodes to bytes (a stray `%` stays as it is).
pub fn unescape(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// A UTC time as `YYYY-MM-DDTHH:MM:SS` plus `suffix` (e.g. `.123000Z`).
pub fn utc(unix: i64, suffix: &str) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{suffix}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// How one object store checks a browser POST form.
pub struct FormRules {
    /// The field naming the (temporary) access key.
    pub access_key_field: &'static str,
    /// The field carrying the security token.
    pub token_field: &'static str,
    /// Fields that need no policy condition (besides `file` and `x-ignore-*`).
    pub exempt: &'static [&'static str],
    /// Whether a trailing `*` in an exact condition is a wildcard (BOS).
    pub star_wildcard: bool,
    /// The signature of the base64 policy with a secret.
    pub sign: fn(secret: &str, policy_b64: &str) -> String,
}

/// Checks a form as the object store would: the access key is one the fake issued
/// (`lookup` gives its secret and token), `signature` is `rules.sign(secret, policy)`, the
/// token field is that token, and the policy's conditions hold ([`check_policy`]).
pub fn check_form(
    rules: &FormRules,
    fields: &[(String, String)],
    file_size: u64,
    bucket: &str,
    lookup: impl Fn(&str) -> Option<(String, String)>,
) -> Result<(), String> {
    let form = PostForm {
        fields,
        file_size,
        exempt: rules.exempt,
        star_wildcard: rules.star_wildcard,
    };
    let ak = form
        .get(rules.access_key_field)
        .ok_or("no access key field")?;
    let (secret, token) = lookup(ak).ok_or("access key unknown")?;
    let want = (rules.sign)(&secret, form.get("policy").ok_or("no policy")?);
    if form.get("signature") != Some(want.as_str()) {
        return Err("SignatureDoesNotMatch".into());
    }
    if form.get(rules.token_field) != Some(token.as_str()) {
        return Err("InvalidSecurityToken".into());
    }
    check_policy(&form, bucket)
}

/// A POST form as the answer gives it.
pub struct PostForm<'a> {
    /// The form fields, in order.
    pub fields: &'a [(String, String)],
    /// Size of the file that would be sent.
    pub file_size: u64,
    /// Fields that need no condition (besides `file`).
    pub exempt: &'a [&'a str],
    /// Whether a trailing `*` in an exact condition is a wildcard (BOS).
    pub star_wildcard: bool,
}

impl PostForm<'_> {
    /// A field's value (names compare case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Checks the form's base64 `policy` the way the object store does: not expired, the bucket
/// is `bucket`, every non-exempt field is matched by a condition, every condition is met,
/// and the file size fits any `content-length-range`. (Each fake checks the signature.)
pub fn check_policy(form: &PostForm<'_>, bucket: &str) -> Result<(), String> {
    let policy: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(form.get("policy").ok_or("no policy")?)
            .map_err(|_| "policy is not base64")?,
    )
    .map_err(|_| "policy is not JSON")?;
    let expiration = policy["expiration"]
        .as_str()
        .ok_or("policy without expiration")?;
    let exp =
        time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
            .map_err(|_| "policy expiration unreadable")?;
    if exp.unix_timestamp() <= now_unix() {
        return Err("policy expired".into());
    }
    let matches = |want: &str, got: &str| {
        if form.star_wildcard {
            if let Some(prefix) = want.strip_suffix('*') {
                return got.starts_with(prefix);
            }
        }
        want == got
    };
    let mut covered: Vec<String> = Vec::new();
    let mut bucket_checked = false;
    for cond in policy["conditions"]
        .as_array()
        .ok_or("policy without conditions")?
    {
        let (op, name, want) = match cond {
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().unwrap();
                (
                    "eq",
                    k.to_ascii_lowercase(),
                    v.as_str().unwrap_or("").to_string(),
                )
            }
            Value::Array(a) if a.len() == 3 && a[0] == "content-length-range" => {
                let (min, max) = (a[1].as_u64().unwrap_or(0), a[2].as_u64().unwrap_or(0));
                if form.file_size < min || form.file_size > max {
                    return Err(format!(
                        "file size {} outside [{min}, {max}]",
                        form.file_size
                    ));
                }
                continue;
            }
            Value::Array(a) if a.len() == 3 => {
                let op = a[0].as_str().unwrap_or("");
                let name = a[1].as_str().unwrap_or("").trim_start_matches('$');
                (
                    if op == "starts-with" {
                        "starts-with"
                    } else {
                        "eq"
                    },
                    name.to_ascii_lowercase(),
                    a[2].as_str().unwrap_or("").to_string(),
                )
            }
            other => return Err(format!("unknown condition {other}")),
        };
        if name == "bucket" {
            if want != bucket {
                return Err("bucket condition does not match".into());
            }
            bucket_checked = true;
            continue;
        }
        let got = form
            .get(&name)
            .ok_or(format!("condition on absent field {name}"))?;
        let ok = match op {
            "starts-with" => got.starts_with(&want),
            _ => matches(&want, got),
        };
        if !ok {
            return Err(format!("field {name} violates its condition"));
        }
        covered.push(name);
    }
    if !bucket_checked {
        return Err("policy does not name the bucket".into());
    }
    for (name, _) in form.fields {
        let lower = name.to_ascii_lowercase();
        let exempt = form.exempt.iter().any(|e| e.eq_ignore_ascii_case(name))
            || lower.starts_with("x-ignore-");
        if !exempt && !covered.contains(&lower) {
            return Err(format!("field {name} is not covered by the policy"));
        }
    }
    Ok(())
}
