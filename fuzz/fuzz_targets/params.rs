//! `/upload/sts/info` parameters: `stsgate::upload::params::{collect, validate}`.
//!
//! Input: the first line is the raw query string (`-` alone: no query), the rest is the body.
//! Asserts: no panic; every refusal is 40001 (`ApiError::InvalidParam`) with a message naming
//! a field and holding no control character; collected fields hold no control character and
//! no empty value; accepted parameters satisfy every rule of docs/contract.md §1.3 and
//! re-validate to themselves from their canonical query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stsgate::error::ApiError;
use stsgate::providers::CloudType;
use stsgate::upload::module::UploadModule;
use stsgate::upload::params::{collect, validate, Fields, Platform, StsParams};

const FIELDS: &[&str] = &[
    "body",
    "type",
    "extension",
    "isNeedCallback",
    "uploadModule",
    "platform",
    "projectId",
    "isDir",
    "uuid",
];

fn no_control(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// A refusal: 40001, naming a field, printable.
fn check_refusal(e: &ApiError, stage: &str) {
    let ApiError::InvalidParam(msg) = e else {
        panic!("{stage}: refusal is not 40001: {e:?}");
    };
    assert_eq!(e.status_and_code().1, 40001, "{stage}: {e:?}");
    assert!(no_control(msg), "{stage}: control character in {msg:?}");
    let field = msg.split(':').next().unwrap_or("");
    if stage == "validate" {
        assert!(
            FIELDS.contains(&field),
            "validate: message names no field: {msg:?}"
        );
    }
}

fn check_fields(fields: &Fields) {
    for (k, v) in fields {
        assert!(no_control(k), "control character in key {k:?}");
        assert!(!v.is_null(), "null kept for {k:?}");
        assert_ne!(v.as_str(), Some(""), "empty string kept for {k:?}");
        if let Value::String(s) = v {
            assert!(no_control(s), "control character in {k}={s:?}");
        }
        if let Value::Array(items) = v {
            for s in items.iter().filter_map(Value::as_str) {
                assert!(no_control(s), "control character in {k}[]={s:?}");
            }
        }
    }
}

/// The raw text a field was given as (a JSON string, or a number written as text).
fn raw_text(fields: &Fields, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_accepted(fields: &Fields, p: &StsParams) {
    // type
    assert!([0, 1, 2, 3, 4, 6, 7].contains(&p.type_code), "{p:?}");
    assert_eq!(CloudType::from_code(p.type_code), Some(p.cloud));
    assert_eq!(i64::from(p.cloud.code()), p.type_code);
    // extension: 1-16 of [A-Za-z0-9] as given, lower-cased
    let given = raw_text(fields, "extension").expect("accepted without an extension");
    assert!(
        (1..=16).contains(&given.len()) && given.bytes().all(|b| b.is_ascii_alphanumeric()),
        "accepted extension {given:?}"
    );
    assert_eq!(p.extension, given.to_ascii_lowercase());
    assert!(p
        .extension
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    // uploadModule
    assert_eq!(UploadModule::parse(p.module.as_str()), Some(p.module));
    assert_eq!(
        raw_text(fields, "uploadModule").as_deref(),
        Some(p.module.as_str())
    );
    // platform
    match raw_text(fields, "platform").as_deref() {
        None | Some("app") => assert_eq!(p.platform, Platform::App),
        Some("web") => assert_eq!(p.platform, Platform::Web),
        Some(other) => panic!("accepted platform {other:?}"),
    }
    // projectId
    if let Some(id) = p.project_id {
        assert!(id >= 1, "projectId {id}");
    }
    if p.module == UploadModule::BsProject {
        assert!(p.project_id.is_some(), "bs_project without projectId");
    }
    // isDir
    if p.is_dir {
        assert!(p.cloud.supports_dir(), "isDir for {:?}", p.cloud);
    }
    // uuid
    if let Some(u) = &p.uuid {
        assert!(
            (1..=64).contains(&u.len())
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "accepted uuid {u:?}"
        );
    }
    if p.module == UploadModule::MaterialTemplate {
        assert!(p.uuid.is_some(), "material_template without uuid");
    }
    // Nothing that reaches the ledger holds a control character.
    for s in [p.extension.as_str(), p.module.as_str(), p.platform.as_str()] {
        assert!(no_control(s));
    }
    assert!(p.uuid.as_deref().is_none_or(no_control));
    // The idempotency hash is a SHA-256 in hex, stable.
    let h = p.hash();
    assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    // The canonical query string of the accepted parameters gives them back.
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("type", &p.type_code.to_string())
        .append_pair("extension", &p.extension)
        .append_pair("isNeedCallback", if p.need_callback { "1" } else { "0" })
        .append_pair("uploadModule", p.module.as_str())
        .append_pair("platform", p.platform.as_str())
        .append_pair("isDir", if p.is_dir { "1" } else { "0" });
    if let Some(id) = p.project_id {
        q.append_pair("projectId", &id.to_string());
    }
    if let Some(u) = &p.uuid {
        q.append_pair("uuid", u);
    }
    let q = q.finish();
    let again = collect(Some(&q), b"")
        .and_then(|f| validate(&f))
        .unwrap_or_else(|e| panic!("canonical query {q:?} refused: {e:?}"));
    assert_eq!(&again, p, "canonical query {q:?}");
    assert_eq!(again.hash(), h);
}

fuzz_target!(|data: &[u8]| {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let query = String::from_utf8_lossy(first);
    let query = (query != "-").then_some(query.as_ref());
    let fields = match collect(query, body) {
        Ok(f) => f,
        Err(e) => return check_refusal(&e, "collect"),
    };
    check_fields(&fields);
    match validate(&fields) {
        Ok(p) => check_accepted(&fields, &p),
        Err(e) => check_refusal(&e, "validate"),
    }
});
