//! The edges: JWKS key sources (rotation, refetch limit, an identity provider that is down,
//! several issuers), the per-user request limit, CORS, the request id on every answer and
//! log line, and the audit events.

use std::sync::Arc;

use serde_json::Value;
use stsgate::config::{Config, IssuerConfig};
use stsgate::metrics::Metrics;
use stsgate::secret::Secret;

use crate::helpers::*;
use stsgate_fakes::jwks::{self, FakeJwks, Mode};

/// A server on `config` whose clock is `clock`.
async fn start_with_clock(db: Arc<Db>, config: Config, clock: Arc<ManualClock>) -> Server {
    let state = stsgate::app::build_with(config, None, clock, Metrics::new())
        .await
        .expect("app builds");
    Server::start_state(db, state).await
}

/// A config whose only issuer is the JWKS at `url`.
fn jwks_config(db: &Db, url: &str) -> Config {
    let mut c = base_config(db);
    c.auth.hs256_secret = Secret::default();
    c.auth.jwks_url = url.into();
    c.auth.jwks_min_refresh_secs = 30;
    c.auth.jwks_timeout_ms = 300;
    c.auth.issuer = "https://idp.test".into();
    c.auth.audience = "stsgate".into();
    c
}

/// 40401 when `token` authenticates (the object does not exist), 40102 when it does not.
async fn auth_code(s: &Server, token: &str) -> i64 {
    s.get("/upload/objects/999999", Some(token)).await.code()
}

const AUTHED: i64 = 40401;
const REFUSED: i64 = 40102;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_is_picked_up_on_unknown_kid() {
    let fake = FakeJwks::new(vec![jwks::rsa_jwk("key-A")]);
    let url = fake.start().await;
    let db = Arc::new(sqlite().await);
    let clock = ManualClock::new();
    let s = start_with_clock(db.clone(), jwks_config(&db, &url), clock.clone()).await;
    let claims = jwks::claims("alice", "https://idp.test", "stsgate");
    assert_eq!(
        fake.fetches(),
        0,
        "nothing is fetched before a token needs a key"
    );

    // kid A: fetched once, then served from the cache.
    let token_a = jwks::rs256("key-A", &claims);
    assert_eq!(auth_code(&s, &token_a).await, AUTHED);
    assert_eq!(auth_code(&s, &token_a).await, AUTHED);
    assert_eq!(fake.fetches(), 1);

    // The provider rotates to kid B (an ES256 key). Within the refetch interval of the last
    // fetch an unknown kid is refused without a fetch ...
    fake.rotate(vec![jwks::ec_jwk("key-B")]);
    let token_b = jwks::es256("key-B", &claims);
    assert_eq!(auth_code(&s, &token_b).await, REFUSED);
    assert_eq!(fake.fetches(), 1);
    // ... and once the interval has passed, one refetch picks B up.
    clock.advance(30);
    assert_eq!(auth_code(&s, &token_b).await, AUTHED);
    assert_eq!(fake.fetches(), 2);
    assert_eq!(auth_code(&s, &token_b).await, AUTHED);
    assert_eq!(fake.fetches(), 2);
    // A was removed by the rotation: it no longer verifies, although it was verified (and
    // remembered by the token cache) before.
    assert_eq!(auth_code(&s, &token_a).await, REFUSED);

    // A flood of unknown kids right after a fetch causes no fetch at all ...
    let flood = |round: u32| {
        let s = &s;
        let claims = &claims;
        futures::future::join_all((0..20).map(move |i| async move {
            auth_code(s, &jwks::rs256(&format!("made-up-{round}-{i}"), claims)).await
        }))
    };
    assert!(flood(1).await.iter().all(|c| *c == REFUSED));
    assert_eq!(fake.fetches(), 2);
    // ... and one interval later, exactly one.
    clock.advance(30);
    assert!(flood(2).await.iter().all(|c| *c == REFUSED));
    assert_eq!(fake.fetches(), 3, "at most one fetch per interval");
    assert_eq!(auth_code(&s, &token_b).await, AUTHED);
    assert_eq!(fake.fetches(), 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_server_down_gives_401_and_recovers() {
    let fake = FakeJwks::new(vec![jwks::rsa_jwk("k1")]);
    let url = fake.start().await;
    let db = Arc::new(sqlite().await);
    let clock = ManualClock::new();
    let s = start_with_clock(db.clone(), jwks_config(&db, &url), clock.clone()).await;
    let token = jwks::rs256("k1", &jwks::claims("alice", "https://idp.test", "stsgate"));

    fake.set_mode(Mode::Down);
    let a = s.get("/upload/objects/1", Some(&token)).await;
    assert_eq!((a.status, a.code()), (401, REFUSED), "{}", a.text);
    assert_eq!(a.headers["www-authenticate"], "Bearer");
    assert!(
        !a.text.contains("jwks"),
        "no detail in the body: {}",
        a.text
    );

    clock.advance(30);
    fake.set_mode(Mode::Hang); // the 300 ms fetch timeout ends it
    assert_eq!(auth_code(&s, &token).await, REFUSED);
    assert_eq!(fake.fetches(), 2);

    clock.advance(30);
    fake.set_mode(Mode::Ok);
    assert_eq!(auth_code(&s, &token).await, AUTHED);
    // The provider going down again does not drop the cached keys.
    fake.set_mode(Mode::Down);
    assert_eq!(auth_code(&s, &token).await, AUTHED);
    assert_eq!(fake.fetches(), 3);
    assert_eq!(s.get("/healthz", None).await.status, 200);
    s.stop().await;

    // Nothing listening at all.
    let closed = format!("http://{}/jwks.json", free_addr());
    let s = start_with_clock(db.clone(), jwks_config(&db, &closed), ManualClock::new()).await;
    assert_eq!(auth_code(&s, &token).await, REFUSED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_issuers_each_with_their_own_key_source() {
    let one = FakeJwks::new(vec![jwks::rsa_jwk("r1")]);
    let two = FakeJwks::new(vec![jwks::ec_jwk("e1")]);
    let (url_one, url_two) = (one.start().await, two.start().await);
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db); // inline issuer: HS256 with JWT_SECRET, no iss/aud
    for (url, iss, aud) in [
        (&url_one, "https://one.test", "app-one"),
        (&url_two, "https://two.test", "app-two"),
    ] {
        c.auth.issuers.push(IssuerConfig {
            jwks_url: url.clone(),
            issuer: iss.into(),
            audience: aud.into(),
            jwks_timeout_ms: 300,
            ..IssuerConfig::default()
        });
    }
    let s = start_with_clock(db, c, ManualClock::new()).await;
    let c_one = jwks::claims("u1", "https://one.test", "app-one");
    let c_two = jwks::claims("u2", "https://two.test", "app-two");

    assert_eq!(auth_code(&s, &jwks::rs256("r1", &c_one)).await, AUTHED);
    assert_eq!(
        (one.fetches(), two.fetches()),
        (1, 0),
        "a token of issuer one never makes stsgate fetch issuer two's keys"
    );
    assert_eq!(auth_code(&s, &jwks::es256("e1", &c_two)).await, AUTHED);
    assert_eq!(auth_code(&s, &s.token("u3")).await, AUTHED, "inline HS256");

    // Each issuer's own keys, issuer and audience.
    assert_eq!(auth_code(&s, &jwks::es256("e1", &c_one)).await, REFUSED);
    let wrong_aud = jwks::claims("u2", "https://two.test", "app-one");
    assert_eq!(auth_code(&s, &jwks::es256("e1", &wrong_aud)).await, REFUSED);
    // A kid's key type pins the algorithm: an RS256 token naming the EC key is refused.
    assert_eq!(auth_code(&s, &jwks::rs256("e1", &c_two)).await, REFUSED);
    // HS256 signed with the public key (as PEM text or as the JWK's modulus) is refused,
    // and so is `alg: none`.
    let pem = include_str!("../fixtures/jwt_rsa_public.pem");
    let n = jwks::rsa_jwk("r1")["n"].as_str().unwrap().to_string();
    for secret in [pem, n.as_str()] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("r1".into());
        let forged = jsonwebtoken::encode(
            &h,
            &c_one,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(auth_code(&s, &forged).await, REFUSED);
    }
    let b64 = |v: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT","kid":"r1"}"#),
        b64(&c_one.to_string())
    );
    assert_eq!(auth_code(&s, &none).await, REFUSED);
    assert_eq!((one.fetches(), two.fetches()), (1, 1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limit_answers_429_with_retry_after() {
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.server.per_user_rps = 1;
    let s = Server::start(db.clone(), c).await;
    let alice = s.token("alice");
    // Burst 1, then one per second: ten back-to-back requests cannot all pass.
    let mut codes = Vec::new();
    let mut limited = None;
    for _ in 0..10 {
        let a = s.get("/upload/objects/999999", Some(&alice)).await;
        codes.push(a.code());
        if a.status == 429 {
            limited = Some(a);
        }
    }
    assert_eq!(codes[0], AUTHED, "the first request of a user passes");
    let a = limited.unwrap_or_else(|| panic!("no 429 in {codes:?}"));
    assert_eq!(a.code(), 42901);
    assert!(a.body["enMsg"].as_str().unwrap().contains("too many"));
    assert!(a.body["data"].is_null());
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert!(!a.headers["x-request-id"].is_empty());
    // Other users are not limited by alice; authentication comes first.
    assert_eq!(auth_code(&s, &s.token("bob")).await, AUTHED);
    assert_eq!(s.get("/upload/objects/1", None).await.code(), 40101);
    s.stop().await;

    // Off by default.
    let db = Arc::new(sqlite().await);
    let s = Server::start(db.clone(), base_config(&db)).await;
    let alice = s.token("alice");
    for _ in 0..10 {
        assert_eq!(auth_code(&s, &alice).await, AUTHED);
    }
    s.stop().await;
}

/// The comma-separated values of `name`, lower-cased.
fn header_list(a: &Answer, name: &str) -> Vec<String> {
    a.headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_simple_requests_by_origin() {
    const APP: &str = "https://app.example.com";
    let db = Arc::new(sqlite().await);
    let mut c = base_config(&db);
    c.server.cors_allowed_origins = vec![format!("{APP}/")]; // a trailing slash still matches
    let s = Server::start(db.clone(), c).await;
    let a = s
        .send(preflight_on(&s, APP).header(
            "access-control-request-headers",
            "authorization,idempotency-key,content-type",
        ))
        .await;
    assert!(
        a.status == 200 || a.status == 204,
        "{} {}",
        a.status,
        a.text
    );
    assert_eq!(a.headers["access-control-allow-origin"], APP);
    let allowed = header_list(&a, "access-control-allow-headers");
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(&h.to_string()), "{h} in {allowed:?}");
    }
    let methods = header_list(&a, "access-control-allow-methods");
    assert!(methods.contains(&"get".into()) && methods.contains(&"post".into()));
    assert!(a.headers.contains_key("access-control-max-age"));
    assert!(
        a.headers.contains_key("x-request-id"),
        "preflights carry the id too"
    );

    // A preflight from another origin gets no permission.
    let a = s.send(preflight_on(&s, "https://evil.example")).await;
    assert!(!a.headers.contains_key("access-control-allow-origin"));

    // Simple requests: the allowed origin sees the answer and the exposed headers, on
    // success and on an error envelope alike; another origin is not allowed to read it.
    for (path, token, status) in [
        ("/healthz", None, 200),
        ("/upload/sts/info?type=1", None, 401),
        ("/upload/objects/999999", Some(s.token("alice")), 404),
    ] {
        let mut r = s
            .http
            .get(format!("{}{path}", s.base))
            .header("origin", APP);
        if let Some(t) = &token {
            r = r.bearer_auth(t);
        }
        let a = s.send(r).await;
        assert_eq!(a.status, status, "{path}: {}", a.text);
        assert_eq!(a.headers["access-control-allow-origin"], APP, "{path}");
        let exposed = header_list(&a, "access-control-expose-headers");
        for h in ["x-request-id", "retry-after", "date"] {
            assert!(exposed.contains(&h.to_string()), "{h} in {exposed:?}");
        }
        let a = s
            .send(
                s.http
                    .get(format!("{}{path}", s.base))
                    .header("origin", "https://evil.example"),
            )
            .await;
        assert!(!a.headers.contains_key("access-control-allow-origin"));
    }
    s.stop().await;

    // `["*"]` allows any origin; no list means no CORS at all.
    let mut c = base_config(&db);
    c.server.cors_allowed_origins = vec!["*".into()];
    let s = Server::start(db.clone(), c).await;
    let a = s
        .send(
            s.http
                .get(format!("{}/healthz", s.base))
                .header("origin", "https://anyone.example"),
        )
        .await;
    assert_eq!(a.headers["access-control-allow-origin"], "*");
    s.stop().await;
    let s = Server::start(db.clone(), base_config(&db)).await;
    let a = s.send(preflight_on(&s, APP)).await;
    assert!(!a.headers.contains_key("access-control-allow-origin"));
    assert_eq!(
        a.code(),
        40501,
        "without CORS an OPTIONS is just a wrong method"
    );
    s.stop().await;
}

fn preflight_on(s: &Server, origin: &str) -> reqwest::RequestBuilder {
    s.http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/upload/sts/info", s.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "GET")
}

/// The request id a log line belongs to: its own field, else its request span's.
fn line_request_id(line: &Value) -> Option<&str> {
    line["request_id"]
        .as_str()
        .or_else(|| line["span"]["request_id"].as_str())
}

#[test]
fn request_id_is_on_every_answer_and_every_log_line_of_the_request() {
    let mut answers = Vec::new();
    let logs = capture_json_logs(tracing::Level::DEBUG, async {
        let db = Arc::new(sqlite().await);
        let (_fake, url) = fake_lke().await;
        let mut c = base_config(&db);
        enable_tencent(&mut c, &url);
        let s = Server::start(db, c).await;
        let alice = s.token("alice");
        let q = "/upload/sts/info?type=1&extension=pdf&isNeedCallback=0&uploadModule=directorytemp";
        // (sent id, path, token, method)
        let cases: Vec<(Option<&str>, &str, Option<&str>, reqwest::Method)> = vec![
            (Some("edge-rid-ok"), q, Some(&alice), reqwest::Method::GET),
            (None, q, Some(&alice), reqwest::Method::POST),
            (Some("edge-rid-401"), q, None, reqwest::Method::GET),
            (None, "/no/such/route", None, reqwest::Method::GET),
            (None, "/upload/callback", None, reqwest::Method::GET),
            (
                None,
                "/upload/sts/info?type=99",
                Some(&alice),
                reqwest::Method::GET,
            ),
        ];
        for (rid, path, token, method) in cases {
            let mut r = s.http.request(method, format!("{}{path}", s.base));
            if let Some(id) = rid {
                r = r.header("x-request-id", id);
            }
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let a = s.send(r).await;
            let got = a
                .headers
                .get("x-request-id")
                .unwrap_or_else(|| panic!("no x-request-id on {path}: {}", a.status))
                .to_str()
                .unwrap()
                .to_string();
            match rid {
                Some(id) => assert_eq!(got, id, "propagated"),
                None => assert_eq!(got.len(), 36, "generated uuid: {got}"),
            }
            answers.push((got, a.status));
        }
        s.stop().await;
    });
    let statuses: Vec<u16> = answers.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [200, 200, 401, 404, 405, 400]);
    let lines = logs.lines();
    // Every line the request span encloses names its request; every request logged one
    // answer line with its id.
    let in_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "request")
        .collect();
    assert!(in_request.len() >= answers.len());
    for l in &in_request {
        assert!(
            line_request_id(l).is_some_and(|id| !id.is_empty()),
            "line without a request id: {l}"
        );
    }
    for (id, status) in &answers {
        let of_this: Vec<&&Value> = in_request
            .iter()
            .filter(|l| line_request_id(l) == Some(id.as_str()))
            .collect();
        assert!(
            of_this.iter().any(|l| l["status"] == *status),
            "no answer line for {id}"
        );
    }
    // The issuance's own lines (audit included) carry the id it was sent with.
    let issued: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "issued upload credentials")
        .collect();
    assert_eq!(issued.len(), 2);
    assert_eq!(line_request_id(issued[0]), Some("edge-rid-ok"));
    assert_eq!(issued[0]["span"]["request_id"], "edge-rid-ok");
    // Nothing the request path logs escapes its span.
    for l in &lines {
        let target = l["target"].as_str().unwrap_or("");
        let request_path = ["http", "upload", "auth", "store", "audit"]
            .iter()
            .any(|m| target.starts_with(&format!("stsgate::{m}")));
        assert!(
            !request_path || l["span"]["name"] == "request",
            "request-path line outside a request: {l}"
        );
    }
}

#[test]
fn audit_events_for_issuance_and_callback_hold_no_secret() {
    let mut secrets: Vec<String> = vec![JWT_SECRET.into(), TC_SECRET_KEY.into()];
    let mut answer = Value::Null;
    let logs = capture_json_logs(tracing::Level::INFO, async {
        let db = Arc::new(sqlite().await);
        let (fake, url) = fake_lke().await;
        let mut c = base_config(&db);
        enable_tencent(&mut c, &url);
        let s = Server::start(db, c).await;
        let alice = s.token("alice");
        secrets.push(alice.clone());
        let q = "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp";
        // An idempotent retry replays the answer: still one issuance, one audit event.
        for _ in 0..2 {
            let a = s
                .send(
                    s.http
                        .get(format!("{}/upload/sts/info?{q}", s.base))
                        .bearer_auth(&alice)
                        .header("x-request-id", "audit-rid-1")
                        .header("idempotency-key", "audit-1"),
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            answer = a.body["data"].clone();
        }
        let id = answer["objectId"].as_i64().unwrap();
        let cb = s
            .send(
                s.http
                    .post(format!("{}/upload/callback", s.base))
                    .bearer_auth(&alice)
                    .header("x-request-id", "audit-rid-cb")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("objectId={id}&resourceType=6&size=42")),
            )
            .await;
        assert_eq!(cb.status, 200, "{}", cb.text);
        for cred in fake.issued() {
            secrets.push(cred.tmp_secret_id);
            secrets.push(cred.tmp_secret_key);
            secrets.push(cred.token);
        }
        s.stop().await;
    });
    let lines = logs.lines();
    let audit: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "stsgate::audit")
        .collect();
    assert_eq!(
        audit.len(),
        2,
        "one per issuance and one per callback: {audit:?}"
    );
    let issued = audit[0];
    assert_eq!(issued["event"], "credentials_issued");
    assert_eq!(issued["level"], "INFO");
    assert_eq!(issued["request_id"], "audit-rid-1");
    assert_eq!(issued["sub"], "alice");
    assert_eq!(issued["object_id"], answer["objectId"]);
    assert_eq!(issued["cloud_type"], 1);
    assert_eq!(issued["bucket"], answer["bucket"]);
    assert_eq!(issued["key"], answer["relativePath"]);
    assert_eq!(issued["expiration"], answer["expiration"]);
    let cb = audit[1];
    assert_eq!(cb["event"], "upload_callback");
    assert_eq!(cb["request_id"], "audit-rid-cb");
    assert_eq!(cb["sub"], "alice");
    assert_eq!(cb["object_id"], answer["objectId"]);
    assert_eq!(cb["cloud_type"], 1);
    assert_eq!(cb["key"], answer["relativePath"]);
    assert_eq!(cb["size"], 42);
    assert_eq!(cb["origin"], "user");
    // No secret in the audit lines, nor anywhere in the run's logs.
    assert!(secrets.len() >= 6);
    let text = logs.text();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached the logs: {}…",
            &secret[..6]
        );
    }
    for a in &audit {
        let line = a.to_string();
        for field in ["secretAccessKey", "securityToken", "accessKeyId"] {
            assert!(!line.contains(field), "{field} in {line}");
        }
    }
    // The issuance audit line, for the record.
    println!("{issued}");
}
