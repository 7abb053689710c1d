//! The Qiniu callback verifier: `stsgate::providers::qiniu::callback` (`parse_authorization`,
//! the `QBox` and `Qiniu` strings to sign, `verify`, `verify_with_body`, `verify_received`).
//!
//! Input: an HTTP-like request: `METHOD TARGET` on the first line, `Name: value` header lines,
//! an empty line, then the body (`\n` line ends).
//! Asserts: no panic; a malformed `Authorization` is `Malformed`; a callback verifies exactly
//! when its `Authorization` is the one Qiniu computes with our key pair (HMAC-SHA1 recomputed
//! here with the `hmac` crate, independently of stsgate's signer); the right signature for any
//! request verifies, another secret key never does; a signed body cannot be altered and an
//! unsigned non-empty body is refused by `verify_with_body`; `verify_received` accepts only
//! what verifies for the received or the public path and host.
#![no_main]

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stsgate::providers::qiniu::callback::{
    body_is_signed, parse_authorization, string_to_sign, verify, verify_received, verify_with_body,
    x_qiniu_headers, CallbackError, CallbackRequest, PublicUrl, Scheme,
};
use stsgate::providers::qiniu::sign::Signer;
use stsgate::providers::CallbackInput;

/// The key pair of tests/vectors/qiniu/qiniu_callback.json (fake, public test values).
const AK: &str = "AKFAKE0000EXAMPLE0001";
const SK: &str = "skFAKE/0000+EXAMPLE+secret/key=0001";
const OTHER_SK: &str = "skFAKE/0000+EXAMPLE+secret/key=0002";

/// `Scheme AK:b64url(HMAC-SHA1(SK, data))`, computed without stsgate.
fn expected_authorization(scheme: Scheme, data: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SK.as_bytes()).unwrap();
    mac.update(data);
    let sign = base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes());
    let prefix = match scheme {
        Scheme::QBox => "QBox ",
        Scheme::Qiniu => "Qiniu ",
    };
    format!("{prefix}{AK}:{sign}")
}

struct Parsed<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

fn parse(data: &[u8]) -> Option<Parsed<'_>> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, target) = lines.next()?.split_once(' ')?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim_start().to_string()))
        .collect();
    Some(Parsed {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether `req` verifies by the rule itself: its `Authorization` is Qiniu's for its scheme.
fn should_verify(req: &CallbackRequest<'_>) -> bool {
    [Scheme::QBox, Scheme::Qiniu].into_iter().any(|s| {
        req.authorization.starts_with(s.prefix())
            && req.authorization == expected_authorization(s, &string_to_sign(s, req))
    })
}

fn check_request(signer: &Signer, other: &Signer, req: &CallbackRequest<'_>) {
    // The Authorization grammar.
    match parse_authorization(req.authorization) {
        Ok((scheme, ak, sig)) => {
            assert_eq!(req.authorization, format!("{}{ak}:{sig}", scheme.prefix()));
            assert!(!ak.is_empty() && !sig.is_empty() && !sig.contains(':'));
            if ak != AK {
                assert_eq!(verify(signer, req), Err(CallbackError::WrongAccessKey));
            }
        }
        Err(e) => {
            assert_eq!(e, CallbackError::Malformed);
            assert_eq!(verify(signer, req), Err(CallbackError::Malformed));
            assert!(!body_is_signed(req));
        }
    }
    // The verdict is exactly the rule.
    let verdict = verify(signer, req);
    assert_ne!(verdict, Err(CallbackError::UnsignedBody));
    assert_eq!(
        verdict.is_ok(),
        should_verify(req),
        "verify disagrees with the recomputed signature: {verdict:?}"
    );
    let with_body = verify_with_body(signer, req);
    assert_eq!(
        with_body.is_ok(),
        verdict.is_ok() && body_is_signed(req),
        "{with_body:?}"
    );
    if verdict.is_ok() && !body_is_signed(req) {
        assert!(!req.body.is_empty());
        assert_eq!(with_body, Err(CallbackError::UnsignedBody));
    }
    assert!(
        !(verdict.is_ok() && verify(other, req).is_ok()),
        "verified under two secret keys"
    );

    // The right signature, in each scheme, for this very request.
    for scheme in [Scheme::QBox, Scheme::Qiniu] {
        let auth = expected_authorization(scheme, &string_to_sign(scheme, req));
        let signed = CallbackRequest {
            authorization: &auth,
            ..*req
        };
        assert_eq!(
            verify(signer, &signed),
            Ok(()),
            "{scheme:?}: right signature refused"
        );
        assert_eq!(
            verify(other, &signed),
            Err(CallbackError::BadSignature),
            "{scheme:?}: another secret key verified"
        );
        let covered = body_is_signed(&signed);
        assert_eq!(verify_with_body(signer, &signed).is_ok(), covered);
        if !covered {
            assert!(!signed.body.is_empty());
        }
        // A body changed after signing never passes verify_with_body.
        let mut altered = signed.body.to_vec();
        altered.push(b'x');
        let altered_req = CallbackRequest {
            body: &altered,
            ..signed
        };
        assert!(
            verify_with_body(signer, &altered_req).is_err(),
            "{scheme:?}: altered body accepted"
        );
        // Where the scheme signs the (now non-empty) body, the old signature no longer fits.
        if body_is_signed(&altered_req) {
            assert_eq!(
                verify(signer, &altered_req),
                Err(CallbackError::BadSignature),
                "{scheme:?}: altered signed body verified"
            );
        }
    }

    // The X-Qiniu-* block: canonical names, sorted, unique.
    let block = x_qiniu_headers(req.headers);
    if !block.is_empty() {
        let names: Vec<&str> = block
            .split('\n')
            .filter_map(|l| l.split_once(": ").map(|(n, _)| n))
            .collect();
        for n in &names {
            assert!(n.starts_with("X-Qiniu-"), "{block:?}");
        }
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{block:?}");
    }
}

fn text(h: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn check_received(signer: &Signer, public: &PublicUrl, p: &Parsed<'_>) {
    let mut headers = HeaderMap::new();
    for (n, v) in &p.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
    let input = |headers: HeaderMap| CallbackInput {
        method: p.method.to_string(),
        raw_path: p.path.to_string(),
        raw_query: p.query.map(str::to_string),
        headers,
        body: bytes::Bytes::copy_from_slice(p.body),
    };
    // The request as the verifier sees it through the header map.
    let x_qiniu: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-qiniu-"))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let content_type = text(&headers, CONTENT_TYPE);
    let received_host = text(&headers, HOST).unwrap_or(&public.host).to_string();
    let as_request = |auth: &str, use_public: bool| -> bool {
        let (path, host) = if use_public {
            (public.path.as_str(), public.host.as_str())
        } else {
            (p.path, received_host.as_str())
        };
        verify_with_body(
            signer,
            &CallbackRequest {
                method: p.method,
                path,
                query: p.query,
                host,
                content_type,
                headers: &x_qiniu,
                body: p.body,
                authorization: auth,
            },
        )
        .is_ok()
    };

    let verdict = verify_received(signer, public, &input(headers.clone()));
    match text(&headers, AUTHORIZATION) {
        None => assert_eq!(verdict, Err(CallbackError::Malformed)),
        Some(auth) => {
            if verdict.is_ok() {
                assert!(
                    as_request(auth, false) || as_request(auth, true),
                    "verify_received accepted what verifies for neither path/host"
                );
            }
        }
    }

    // Signed by Qiniu for the public callback URL: accepted when the body is covered.
    let public_req = CallbackRequest {
        method: p.method,
        path: &public.path,
        query: p.query,
        host: &public.host,
        content_type,
        headers: &x_qiniu,
        body: p.body,
        authorization: "",
    };
    let auth = expected_authorization(Scheme::Qiniu, &string_to_sign(Scheme::Qiniu, &public_req));
    let mut signed = headers.clone();
    signed.insert(AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
    let covered = body_is_signed(&CallbackRequest {
        authorization: &auth,
        ..public_req
    });
    let verdict = verify_received(signer, public, &input(signed));
    if covered {
        assert_eq!(verdict, Ok(()), "public-URL signature refused");
    } else {
        assert_eq!(verdict, Err(CallbackError::UnsignedBody));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(p) = parse(data) else { return };
    let signer = Signer::new(AK, SK);
    let other = Signer::new(AK, OTHER_SK);
    let authorization = header(&p.headers, "authorization").unwrap_or("");
    let req = CallbackRequest {
        method: p.method,
        path: p.path,
        query: p.query,
        host: header(&p.headers, "host").unwrap_or(""),
        content_type: header(&p.headers, "content-type"),
        headers: &p.headers,
        body: p.body,
        authorization,
    };
    check_request(&signer, &other, &req);
    let public = PublicUrl::of("https://api.example.com/sts/").unwrap();
    check_received(&signer, &public, &p);
});
