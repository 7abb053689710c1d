//! `openapi.yaml` stays true: valid YAML, every route and method served is described,
//! every error code is listed, no catch-all `default` response, and the success answer's
//! fields are exactly the schema's.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_yaml::Value;

use crate::helpers::*;

fn spec() -> Value {
    serde_yaml::from_str(include_str!("../../openapi.yaml")).expect("valid YAML")
}

/// Every (path, method) the router serves.
const SERVED: &[(&str, &str)] = &[
    ("/upload/sts/info", "get"),
    ("/upload/sts/info", "post"),
    ("/upload/sts/refresh", "post"),
    ("/upload/callback", "post"),
    ("/upload/objects/{objectId}", "get"),
    ("/upload/objects", "get"),
    ("/upload/objects/{objectId}/consume", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/openapi.yaml", "get"),
    ("/demo", "get"),
];

#[test]
fn describes_every_endpoint_and_nothing_else() {
    let s = spec();
    assert_eq!(s["openapi"].as_str().unwrap(), "3.0.3");
    let mut described = BTreeSet::new();
    for (path, item) in s["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            described.insert((
                path.as_str().unwrap().to_string(),
                method.as_str().unwrap().to_string(),
            ));
        }
    }
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(described, served);
}

#[test]
fn lists_every_error_code_and_has_no_default_response() {
    let text = include_str!("../../openapi.yaml");
    for code in [
        40001, 40002, 40003, 40101, 40102, 40301, 40401, 40501, 40901, 40902, 41301, 42901, 50001,
        50201, 50301, 50302, 50401,
    ] {
        assert!(
            text.contains(&code.to_string()),
            "{code} not in openapi.yaml"
        );
    }
    fn no_default(v: &Value, path: &str) {
        if let Some(m) = v.as_mapping() {
            for (k, child) in m {
                let key = k.as_str().unwrap_or("");
                if key == "responses" {
                    if let Some(r) = child.as_mapping() {
                        assert!(
                            !r.contains_key("default"),
                            "catch-all default response at {path}"
                        );
                    }
                }
                no_default(child, &format!("{path}/{key}"));
            }
        }
    }
    no_default(&spec(), "");
    for header in [
        "Idempotency-Key",
        "x-request-id",
        "Retry-After",
        "WWW-Authenticate",
    ] {
        assert!(text.contains(header), "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_answer_matches_the_schema_fields() {
    let s = spec();
    let props: BTreeSet<String> = s["components"]["schemas"]["StsData"]["properties"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let required: BTreeSet<String> = s["components"]["schemas"]["StsData"]["required"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let db = Arc::new(sqlite().await);
    let (_fake, url) = fake_lke().await;
    let mut c = base_config(&db);
    enable_tencent(&mut c, &url);
    let srv = Server::start(db, c).await;
    let a = srv
        .sts(
            "alice",
            "type=1&extension=pdf&isNeedCallback=1&uploadModule=directorytemp",
        )
        .await;
    let got: BTreeSet<String> = a.body["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        got.is_subset(&props),
        "undocumented fields: {:?}",
        got.difference(&props).collect::<Vec<_>>()
    );
    assert!(
        required.is_subset(&got),
        "missing required: {:?}",
        required.difference(&got).collect::<Vec<_>>()
    );
    let cb: BTreeSet<String> = a.body["data"]["callbackInfo"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let cb_props: BTreeSet<String> = s["components"]["schemas"]["CallbackInfo"]["properties"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(cb.is_subset(&cb_props));
    srv.stop().await;
}
