//! Checks the cloud tests share: the answer's exact field set, its form, every failure mode
//! of a fake mapped to its documented code with the ledger row `failed`, and the JWT
//! callback of clouds whose native callbacks stsgate does not verify.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::Server;
use stsgate_fakes::common::Script;
use stsgate_fakes::Mode;

/// The answer fields of a cloud with a browser form (docs/contract.md §1.3).
pub fn assert_form_answer_fields(data: &Value, start_time: bool, callback: bool, upload_url: bool) {
    let got: BTreeSet<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut want: BTreeSet<&str> = [
        "accessKeyId",
        "secretAccessKey",
        "securityToken",
        "bucket",
        "endpoint",
        "region",
        "relativePath",
        "expiration",
        "serverTime",
        "objectId",
        "signature",
        "policy",
        "form",
    ]
    .into_iter()
    .collect();
    if start_time {
        want.insert("startTime");
    }
    if callback {
        want.insert("callbackInfo");
    }
    if upload_url {
        want.insert("uploadUrl");
        want.insert("uploadHeaders");
    }
    assert_eq!(got, want, "exactly the docs/contract.md §1.3 fields");
    for t in ["expiration", "serverTime"] {
        let v = data[t].as_str().unwrap();
        assert!(v.ends_with('Z') && v.len() == 20, "{t}={v}");
    }
}

/// `form.fields` in order; asserts `policy` / `signature` repeat the top-level values.
pub fn form_fields(data: &Value) -> Vec<(String, String)> {
    let fields: Vec<(String, String)> = data["form"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("policy"), data["policy"].as_str());
    assert_eq!(get("signature"), data["signature"].as_str());
    fields
}

/// Sends `req` to `url`, or, with `via` (a fake's base URL), sends the URL's path and query
/// to `via` with the URL's host as `Host`: the request a client makes to a bucket's virtual
/// host (`{bucket}.cos.{region}.myqcloud.com`), which has no DNS here.
fn upload_request(
    method: reqwest::Method,
    url: &str,
    via: Option<&str>,
) -> reqwest::RequestBuilder {
    let client = reqwest::Client::new();
    let Some(via) = via else {
        return client.request(method, url);
    };
    let u = reqwest::Url::parse(url).unwrap();
    let path_and_query = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    client
        .request(method, format!("{via}{path_and_query}"))
        .header("host", u.host_str().unwrap())
}

/// PUTs `data` to the answer's `uploadUrl` with its `uploadHeaders`, as `curl -T` does
/// (through `via`, see [`upload_request`]); answers (status, body).
pub async fn put_upload(data: &Value, bytes: &[u8], via: Option<&str>) -> (u16, String) {
    let mut req = upload_request(
        reqwest::Method::PUT,
        data["uploadUrl"].as_str().expect("uploadUrl"),
        via,
    )
    .body(bytes.to_vec());
    for (k, v) in data["uploadHeaders"].as_object().expect("uploadHeaders") {
        req = req.header(k, v.as_str().unwrap());
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// POSTs `fields` then the file as a browser's multipart form to `url` (through `via`);
/// answers (status, body).
pub async fn post_form(
    url: &str,
    fields: &[(String, String)],
    filename: &str,
    file_type: &str,
    bytes: &[u8],
    via: Option<&str>,
) -> (u16, String) {
    let (ct, body) = stsgate_fakes::multipart::multipart_body(fields, filename, file_type, bytes);
    let res = upload_request(reqwest::Method::POST, url, via)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Asserts `form.fields` of the raw answer `text` lists exactly `names`, in that order
/// (a parsed `Value` would sort them).
pub fn assert_field_order(text: &str, names: &[&str]) {
    let start = text.find("\"fields\":{").expect("form.fields") + 10;
    let end = start + text[start..].find('}').unwrap();
    let fields = &text[start..end];
    let at: Vec<usize> = names
        .iter()
        .map(|n| {
            fields
                .find(&format!("\"{n}\":"))
                .unwrap_or_else(|| panic!("no {n}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "order of {names:?} in {fields}"
    );
    assert_eq!(fields.matches("\":\"").count(), names.len(), "{fields}");
}

/// Replaces one form field's value.
pub fn with_field(fields: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), if k == name { value.into() } else { v.clone() }))
        .collect()
}

/// A `callbackInfo` for the client's JWT callback, then that callback (and a repeat).
pub async fn jwt_callback_round_trip(s: &Server, sub: &str, data: &Value, resource_type: u8) {
    let id = data["objectId"].as_i64().unwrap();
    let cb = &data["callbackInfo"];
    assert_eq!(cb["callbackBodyType"], "application/x-www-form-urlencoded");
    assert_eq!(cb["callbackUrl"], "http://127.0.0.1:8080/upload/callback");
    assert_eq!(cb["customInfo"]["objectId"], id);
    assert_eq!(cb["customInfo"]["resourceType"], resource_type);
    let body = format!("objectId={id}&resourceType={resource_type}");
    assert_eq!(
        cb["callbackBody"],
        body.as_str(),
        "a literal body, not a cloud template"
    );
    assert!(cb.get("callback").is_none() && cb.get("callbackVar").is_none());
    let token = s.token(sub);
    let r = s.callback_form(None, &body).await;
    assert_eq!(r.code(), 40101, "the callback needs the user's JWT");
    let r = s
        .callback_form(Some(&token), &format!("{body}&size=1000"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = s.state.store.get_object(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.size), ("uploaded", Some(1000)));
    let again = s.callback_form(Some(&token), &body).await;
    assert_eq!(again.status, 200);
}

/// One failure mode of a fake (its own `Mode` type) and what stsgate must answer: HTTP
/// status, envelope code, and a text `enMsg` must contain.
pub type Case<M = Mode> = (M, u16, i64, Option<&'static str>);

/// The failure modes every fake has besides its cloud's error codes: HTTP 500 with HTML,
/// truncated JSON, no answer, and credentials that live shorter than `min_remaining_secs`.
pub fn transport_cases() -> Vec<Case> {
    vec![
        (Mode::Http500, 503, 50301, None),
        (Mode::Malformed, 502, 50201, Some("HTTP 200")),
        (Mode::Hang, 504, 50401, None),
        (
            Mode::ShortLived(100),
            502,
            50201,
            Some("min_remaining_secs"),
        ),
    ]
}

/// One retryable error, then success: the request answers 200 after two calls.
pub async fn assert_retried_once<T: Clone>(
    s: &Server,
    query: &str,
    script: &Script<T>,
    mode: Mode,
) {
    script.set_mode(mode);
    let calls = script.calls();
    let a = s.sts("alice", query).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(script.calls(), calls + 2);
    assert_eq!(script.rejected(), 0);
}

/// Runs every case as a fresh request: status, code, envelope, `Retry-After` on 503, and
/// the allocated ledger row (ids count up from `first_id`) ends `failed` without a key.
pub async fn assert_failure_cases<M: Clone + std::fmt::Debug>(
    s: &Server,
    query: &str,
    first_id: i64,
    set_mode: impl Fn(M),
    cases: Vec<Case<M>>,
) {
    for (id, (mode, status, code, en)) in (first_id..).zip(cases) {
        set_mode(mode.clone());
        let a = s.sts("alice", query).await;
        assert_eq!((a.status, a.code()), (status, code), "{mode:?}: {}", a.text);
        assert!(a.body["data"].is_null());
        assert!(a.body["msg"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(en) = en {
            let msg = a.body["enMsg"].as_str().unwrap();
            assert!(msg.contains(en), "{mode:?}: {msg}");
        }
        if status == 503 {
            assert!(a.headers.contains_key("retry-after"), "{mode:?}");
        }
        let row = s.state.store.get_object(id).await.unwrap().unwrap();
        assert_eq!(row.status, "failed", "{mode:?}: object {id}");
        assert!(row.object_key.is_none());
    }
}

/// Drives a server through what a leak test must log: as `sub`, an issuance for `query`
/// and its JWT callback, then one request in each of `modes` (each must answer a 5xx),
/// then one through `retried`, a retryable refusal before credentials (must answer 200).
/// Returns the JWT every request carried.
pub async fn drive_through_every_mode<T: Clone>(
    s: &Server,
    query: &str,
    resource_type: u8,
    script: &Script<T>,
    modes: Vec<Mode>,
    retried: Mode,
) -> String {
    let token = s.token("alice");
    let path = format!("/upload/sts/info?{query}");
    let ok = s.get(&path, Some(&token)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let id = ok.body["data"]["objectId"].as_i64().unwrap();
    let body = format!("objectId={id}&resourceType={resource_type}&size=3");
    let cb = s.callback_form(Some(&token), &body).await;
    assert_eq!(cb.status, 200, "{}", cb.text);
    for mode in modes {
        script.set_mode(mode.clone());
        let a = s.get(&path, Some(&token)).await;
        assert!(a.status >= 500, "{mode:?}: {}", a.text);
    }
    script.set_mode(retried);
    let a = s.get(&path, Some(&token)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    token
}

/// The `Authorization` values of every call the fakes received (asserting each call had
/// one), and the number of calls.
pub fn signed_calls<T: Clone>(scripts: &[&Script<T>]) -> (Vec<String>, usize) {
    let auths: Vec<String> = scripts.iter().flat_map(|s| s.authorizations()).collect();
    let calls = scripts.iter().map(|s| s.calls()).sum();
    assert_eq!(auths.len(), calls, "every call was signed");
    (auths, calls)
}
