//! The Aliyun OSS callback verifier: `stsgate::providers::aliyun::callback` (key URL header,
//! `authorization`, string to verify, PEM parsing, RSA-MD5 verification).
//!
//! Input: NUL-separated parts `x-oss-pub-key-url` NUL `authorization` NUL path[?query] NUL
//! PEM NUL body (the body is the rest and may hold NUL; a missing part is an absent header).
//! Asserts: no panic; each refusal is the documented `CallbackError`; an accepted key URL is
//! under a configured prefix; a signature verifies under a key only when it is one of the
//! known-good signatures for that key (the vectors' OSS test key, and one RSA key generated
//! once per process); an arbitrary PEM key never verifies a signature made by another key;
//! the known-good signatures keep verifying.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use stsgate::providers::aliyun::callback::{
    allowed_key_url, decode_authorization, decode_key_url, parse_public_key, string_to_verify,
    verify_signature, CallbackError,
};
use stsgate::providers::crypto::{b64_decode, md5};

const VECTORS: &str = include_str!("../../tests/vectors/aliyun/aliyun_oss_callback.json");

/// DER `DigestInfo` prefix of MD5 (RFC 8017 §9.2 note 1), written out here independently.
const MD5_PREFIX: [u8; 18] = [
    0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00,
    0x04, 0x10,
];

struct Known {
    /// The OSS test key of tests/vectors/aliyun/aliyun_oss_callback.json.
    vector_key: RsaPublicKey,
    /// Its valid (md5(message), signature) pairs.
    vector_good: Vec<([u8; 16], Vec<u8>)>,
    /// One valid (message, signature) of the vector key.
    vector_sample: (Vec<u8>, Vec<u8>),
    /// A key generated once (seeded: the same key every run).
    own_key: RsaPublicKey,
    /// A fixed message and its signature under `own_key`.
    own_message: Vec<u8>,
    own_signature: Vec<u8>,
}

fn prefixes() -> Vec<String> {
    vec![
        "https://gosspublic.alicdn.com/".into(),
        "http://gosspublic.alicdn.com/".into(),
    ]
}

fn split_pq(pq: &str) -> (&str, Option<&str>) {
    match pq.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (pq, None),
    }
}

fn known() -> &'static Known {
    static KNOWN: OnceLock<Known> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let file: serde_json::Value = serde_json::from_str(VECTORS).expect("vector file");
        let vector_key =
            parse_public_key(file["public_key_pem"].as_str().unwrap()).expect("vector key");
        let mut vector_good = Vec::new();
        let mut vector_sample = None;
        for v in file["vectors"].as_array().unwrap() {
            if !v["valid"].as_bool().unwrap() {
                continue;
            }
            let r = &v["callback_request"];
            let (path, query) = split_pq(r["path_and_query"].as_str().unwrap());
            let msg = string_to_verify(path, query, r["body"].as_str().unwrap().as_bytes());
            let sig = decode_authorization(r["headers"]["authorization"].as_str()).unwrap();
            assert_eq!(verify_signature(&vector_key, &msg, &sig), Ok(()), "{}", v["id"]);
            vector_good.push((md5(&msg), sig.clone()));
            vector_sample.get_or_insert((msg, sig));
        }
        assert_eq!(vector_good.len(), 6);

        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let private = RsaPrivateKey::new(&mut rng, 1024).expect("generate an RSA key");
        let own_key = RsaPublicKey::from(&private);
        let own_message = string_to_verify(
            "/upload/callback",
            None,
            b"objectId=7&resourceType=2&bucket=b&object=k%2F7.png&size=3&mimeType=image%2Fpng&etag=%22e%22",
        );
        let scheme = Pkcs1v15Sign {
            hash_len: Some(16),
            prefix: Box::new(MD5_PREFIX),
        };
        let own_signature = private.sign(scheme, &md5(&own_message)).expect("sign");
        assert_eq!(
            verify_signature(&own_key, &own_message, &own_signature),
            Ok(())
        );
        Known {
            vector_key,
            vector_good,
            vector_sample: vector_sample.unwrap(),
            own_key,
            own_message,
            own_signature,
        }
    })
}

fn check_key_url(header: Option<&str>) {
    let prefixes = prefixes();
    match allowed_key_url(header, &prefixes) {
        Ok(url) => {
            assert_eq!(decode_key_url(header).as_ref(), Ok(&url));
            assert!(
                prefixes.iter().any(|p| url.starts_with(p.as_str())),
                "accepted key URL {url:?}"
            );
            let authority = url.split("://").nth(1).and_then(|r| r.split('/').next());
            assert_eq!(authority, Some("gosspublic.alicdn.com"), "{url:?}");
        }
        Err(CallbackError::KeyUrlNotAllowed) => {
            let url = decode_key_url(header).expect("refused as not allowed, yet not decodable");
            assert!(!prefixes.iter().any(|p| url.starts_with(p.as_str())));
        }
        Err(CallbackError::MalformedKeyUrl) => assert!(decode_key_url(header).is_err()),
        Err(e) => panic!("key URL refused with {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let k = known();
    let mut parts = data.splitn(5, |&b| b == 0);
    let key_url = parts.next().map(String::from_utf8_lossy);
    let auth = parts.next().map(String::from_utf8_lossy);
    let pq = String::from_utf8_lossy(parts.next().unwrap_or(b"/upload/callback"));
    let pem = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or(b"");

    check_key_url(key_url.as_deref());

    let (path, query) = split_pq(&pq);
    let msg = string_to_verify(path, query, body);
    assert!(msg.ends_with(body));
    let head = &msg[..msg.len() - body.len()];
    assert_eq!(head.last(), Some(&b'\n'));
    if let Some(q) = query {
        assert!(head[..head.len() - 1].ends_with(format!("?{q}").as_bytes()));
    }
    if !path.contains('%') {
        assert!(msg.starts_with(path.as_bytes()));
    }

    let sig = match decode_authorization(auth.as_deref()) {
        Ok(sig) => {
            assert!(!sig.is_empty());
            assert_eq!(
                b64_decode(auth.as_deref().unwrap().trim()).as_ref(),
                Some(&sig)
            );
            Some(sig)
        }
        Err(CallbackError::MalformedAuthorization) => None,
        Err(e) => panic!("authorization refused with {e:?}"),
    };

    if let Some(sig) = &sig {
        let digest = md5(&msg);
        let known_vector = k.vector_good.iter().any(|(d, s)| *d == digest && s == sig);
        match verify_signature(&k.vector_key, &msg, sig) {
            Ok(()) => assert!(known_vector, "vector key verified an unknown signature"),
            Err(CallbackError::BadSignature) => {
                assert!(!known_vector, "a known-good vector stopped verifying")
            }
            Err(e) => panic!("verify refused with {e:?}"),
        }
        let own_known = digest == md5(&k.own_message) && *sig == k.own_signature;
        match verify_signature(&k.own_key, &msg, sig) {
            Ok(()) => assert!(own_known, "generated key verified an unknown signature"),
            Err(CallbackError::BadSignature) => assert!(!own_known, "own signature refused"),
            Err(e) => panic!("verify refused with {e:?}"),
        }
    }

    if let Some(pem) = pem.as_deref().filter(|p| !p.is_empty()) {
        match parse_public_key(pem) {
            Ok(key) => {
                if verify_signature(&key, &k.own_message, &k.own_signature).is_ok() {
                    assert!(
                        key == k.own_key,
                        "a PEM key verified another key's signature"
                    );
                }
                let (m, s) = &k.vector_sample;
                if verify_signature(&key, m, s).is_ok() {
                    assert!(
                        key == k.vector_key,
                        "a PEM key verified the vector key's signature"
                    );
                }
                if let Some(sig) = &sig {
                    let _ = verify_signature(&key, &msg, sig);
                }
            }
            Err(CallbackError::KeyUnavailable(_)) => {}
            Err(e) => panic!("PEM refused with {e:?}"),
        }
    }
});
