//! Upload callback bodies: `stsgate::upload::callback::parse_body(content_type, body)`.
//!
//! Input: the first line is the Content-Type (`-` alone: none), the rest is the body.
//! Asserts: no panic; every refusal is 40001 with a printable message; an accepted body has
//! a positive objectId, no negative size, no control character in any text that reaches the
//! ledger, an unquoted etag, `Client` as its source; and re-encoding it as a form body parses
//! back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stsgate::error::ApiError;
use stsgate::store::FactSource;
use stsgate::upload::callback::{parse_body, CallbackBody};

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn check_accepted(cb: &CallbackBody) {
    assert!(cb.object_id > 0, "objectId {}", cb.object_id);
    if let Some(size) = cb.facts.size {
        assert!(size >= 0, "size {size}");
    }
    for (name, v) in [
        ("bucket", &cb.bucket),
        ("object", &cb.object),
        ("mimeType", &cb.facts.mime),
        ("etag", &cb.facts.etag),
    ] {
        if let Some(v) = v {
            assert!(printable(v), "control character in {name}={v:?}");
            assert!(!v.is_empty() || name == "etag", "empty {name} kept");
        }
    }
    if let Some(e) = &cb.facts.etag {
        assert!(!e.starts_with('"') && !e.ends_with('"'), "etag {e:?}");
    }
    assert_eq!(cb.facts.source, FactSource::Client);

    // The same facts written as a form body read back identically.
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("objectId", &cb.object_id.to_string());
    if let Some(rt) = cb.resource_type {
        form.append_pair("resourceType", &rt.to_string());
    }
    for (name, v) in [
        ("bucket", &cb.bucket),
        ("object", &cb.object),
        ("mimeType", &cb.facts.mime),
        ("etag", &cb.facts.etag),
    ] {
        if let Some(v) = v {
            form.append_pair(name, v);
        }
    }
    if let Some(size) = cb.facts.size {
        form.append_pair("size", &size.to_string());
    }
    let form = form.finish();
    let again = parse_body(Some("application/x-www-form-urlencoded"), form.as_bytes())
        .unwrap_or_else(|e| panic!("re-encoded body {form:?} refused: {e:?}"));
    // An etag of only quotes becomes empty, which reads back as absent.
    let mut expected = cb.clone();
    if expected.facts.etag.as_deref() == Some("") {
        expected.facts.etag = None;
    }
    assert_eq!(again, expected, "re-encoded body {form:?}");
}

fuzz_target!(|data: &[u8]| {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let ct = String::from_utf8_lossy(first);
    let ct = (ct != "-").then_some(ct.as_ref());
    match parse_body(ct, body) {
        Ok(cb) => check_accepted(&cb),
        Err(e) => {
            let ApiError::InvalidParam(msg) = &e else {
                panic!("refusal is not 40001: {e:?}");
            };
            assert_eq!(e.status_and_code().1, 40001);
            assert!(printable(msg), "control character in {msg:?}");
        }
    }
});
