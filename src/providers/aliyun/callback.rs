//! OSS upload callbacks (protocols §3.4): the `callback` / `callbackVar` parameters a client
//! attaches to its upload, and verification of the callback OSS then sends us.
//!
//! OSS signs `url_decode(path) [+ "?" + raw query] + "\n" + body` with RSA PKCS#1 v1.5 over
//! MD5, puts `b64(signature)` in `authorization` and `b64(URL of its PEM public key)` in
//! `x-oss-pub-key-url`. The key URL is trusted only under a configured prefix (trailing `/`
//! included, so `gosspublic.alicdn.com.evil…` and `gosspublic.alicdn.com@evil…` fail). The
//! fetching and caching of keys lives in the provider (`mod.rs`); everything here is pure.

use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::Serialize;

use crate::providers::crypto::{b64, b64_decode, md5};

/// `callbackBody`: an OSS template yielding docs/contract.md §1.4's field names. Custom variables
/// must be lower case in OSS, hence `x:objectid` and `x:resourcetype`.
pub const CALLBACK_BODY_TEMPLATE: &str = "objectId=${x:objectid}&resourceType=${x:resourcetype}&bucket=${bucket}&object=${object}&size=${size}&mimeType=${mimeType}&etag=${etag}";
/// `callbackBodyType` stsgate asks for.
pub const CALLBACK_BODY_TYPE: &str = "application/x-www-form-urlencoded";
/// The custom variable carrying the objectId.
pub const VAR_OBJECT_ID: &str = "x:objectid";
/// The custom variable carrying the resourceType.
pub const VAR_RESOURCE_TYPE: &str = "x:resourcetype";

/// The DER `DigestInfo` prefix of an MD5 digest (RFC 8017 §9.2, note 1):
/// `SEQUENCE { SEQUENCE { OID 1.2.840.113549.2.5, NULL }, OCTET STRING (16) }`.
const MD5_DIGEST_INFO_PREFIX: [u8; 18] = [
    0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00,
    0x04, 0x10,
];

/// Largest PEM we accept from a key server.
pub const MAX_PEM_BYTES: usize = 16 * 1024;

/// The OSS `callback` parameter (JSON, in OSS's field order; absent fields left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackParam {
    /// `callbackUrl`.
    #[serde(rename = "callbackUrl")]
    pub url: String,
    /// `callbackHost`.
    #[serde(rename = "callbackHost", skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `callbackBody`.
    #[serde(rename = "callbackBody")]
    pub body: String,
    /// `callbackBodyType`.
    #[serde(rename = "callbackBodyType", skip_serializing_if = "Option::is_none")]
    pub body_type: Option<String>,
    /// `callbackSNI`.
    #[serde(rename = "callbackSNI", skip_serializing_if = "Option::is_none")]
    pub sni: Option<bool>,
}

impl CallbackParam {
    /// stsgate's callback: our URL, [`CALLBACK_BODY_TEMPLATE`], form-encoded.
    pub fn stsgate(url: &str) -> Self {
        CallbackParam {
            url: url.to_string(),
            host: None,
            body: CALLBACK_BODY_TEMPLATE.to_string(),
            body_type: Some(CALLBACK_BODY_TYPE.to_string()),
            sni: None,
        }
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings always serialise")
    }

    /// The parameter as attached to an upload: `b64(JSON)` (form field `callback`, header
    /// `x-oss-callback`).
    pub fn to_base64(&self) -> String {
        b64(self.to_json())
    }
}

/// The custom variables as a JSON object of strings, in the given order.
pub fn callback_var_json(vars: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in vars.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).expect("string"));
        out.push(':');
        out.push_str(&serde_json::to_string(v).expect("string"));
    }
    out.push('}');
    out
}

/// `x-oss-callback-var` (PutObject): `b64(callback_var_json)`.
pub fn callback_var_base64(vars: &[(String, String)]) -> String {
    b64(callback_var_json(vars))
}

/// stsgate's custom variables for one object.
pub fn stsgate_vars(object_id: i64, resource_type: u8) -> Vec<(String, String)> {
    vec![
        (VAR_OBJECT_ID.to_string(), object_id.to_string()),
        (VAR_RESOURCE_TYPE.to_string(), resource_type.to_string()),
    ]
}

/// Why a callback was refused; every one is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// `x-oss-pub-key-url` is absent, not base64 or not UTF-8.
    #[error("x-oss-pub-key-url is missing or malformed")]
    MalformedKeyUrl,
    /// The key URL is not under any configured prefix.
    #[error("public key URL is not under an allowed prefix")]
    KeyUrlNotAllowed,
    /// `authorization` is absent or not base64.
    #[error("authorization is missing or not base64")]
    MalformedAuthorization,
    /// The public key could not be fetched or parsed.
    #[error("public key unavailable: {0}")]
    KeyUnavailable(String),
    /// RSA-MD5 verification failed.
    #[error("RSA-MD5 signature mismatch")]
    BadSignature,
}

/// Step 1: `b64_decode(x-oss-pub-key-url)` as UTF-8.
pub fn decode_key_url(header: Option<&str>) -> Result<String, CallbackError> {
    let raw = b64_decode(header.ok_or(CallbackError::MalformedKeyUrl)?.trim())
        .ok_or(CallbackError::MalformedKeyUrl)?;
    String::from_utf8(raw).map_err(|_| CallbackError::MalformedKeyUrl)
}

/// Whether `url` starts with one of `prefixes`, byte for byte (each prefix ends with `/`,
/// which is what rejects look-alike hosts and userinfo tricks).
pub fn key_url_allowed(url: &str, prefixes: &[String]) -> bool {
    prefixes
        .iter()
        .any(|p| !p.is_empty() && url.starts_with(p.as_str()))
}

/// Step 1 in full: the decoded key URL, when allowed.
pub fn allowed_key_url(header: Option<&str>, prefixes: &[String]) -> Result<String, CallbackError> {
    let url = decode_key_url(header)?;
    if key_url_allowed(&url, prefixes) {
        Ok(url)
    } else {
        Err(CallbackError::KeyUrlNotAllowed)
    }
}

/// Step 3: `url_decode(path)` (`%XX` only; `+` stays), then `"?" + raw_query` when the
/// request had a query (exactly as received), then `"\n"` and the raw body.
pub fn string_to_verify(raw_path: &str, raw_query: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = percent_encoding::percent_decode_str(raw_path).collect();
    if let Some(q) = raw_query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// `b64_decode(authorization)`.
pub fn decode_authorization(header: Option<&str>) -> Result<Vec<u8>, CallbackError> {
    let h = header.ok_or(CallbackError::MalformedAuthorization)?.trim();
    match b64_decode(h) {
        Some(sig) if !sig.is_empty() => Ok(sig),
        _ => Err(CallbackError::MalformedAuthorization),
    }
}

/// Step 2: a PEM public key, SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`, what OSS publishes) or
/// PKCS#1 (`BEGIN RSA PUBLIC KEY`).
pub fn parse_public_key(pem: &str) -> Result<RsaPublicKey, CallbackError> {
    RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|_| CallbackError::KeyUnavailable("not an RSA public key in PEM".into()))
}

/// Step 4: RSASSA-PKCS1-v1_5 with MD5 over `message`.
pub fn verify_signature(
    key: &RsaPublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CallbackError> {
    let scheme = Pkcs1v15Sign {
        hash_len: Some(16),
        prefix: Box::new(MD5_DIGEST_INFO_PREFIX),
    };
    key.verify(scheme, &md5(message), signature)
        .map_err(|_| CallbackError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/aliyun/aliyun_oss_callback.json"
    ));

    fn default_prefixes() -> Vec<String> {
        vec![
            "https://gosspublic.alicdn.com/".into(),
            "http://gosspublic.alicdn.com/".into(),
        ]
    }

    /// Splits `path_and_query` at the first `?` as an HTTP server does.
    fn split(pq: &str) -> (&str, Option<&str>) {
        match pq.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (pq, None),
        }
    }

    /// The whole pipeline, with the vector file's public key standing in for the fetch.
    fn verify_vector(v: &Value, pem: &str) -> Result<(), CallbackError> {
        let r = &v["callback_request"];
        let h = |n: &str| r["headers"][n].as_str();
        let url = allowed_key_url(h("x-oss-pub-key-url"), &default_prefixes())?;
        assert_eq!(url, v["expected"]["pub_key_url"].as_str().unwrap());
        let sig = decode_authorization(h("authorization"))?;
        let key = parse_public_key(pem)?;
        let (path, query) = split(r["path_and_query"].as_str().unwrap());
        let msg = string_to_verify(path, query, r["body"].as_str().unwrap().as_bytes());
        assert_eq!(
            msg,
            v["expected"]["string_to_verify"]
                .as_str()
                .unwrap()
                .as_bytes(),
            "{}: string to verify",
            v["id"]
        );
        verify_signature(&key, &msg, &sig)
    }

    #[test]
    fn vectors_aliyun_oss_callback() {
        let file: Value = serde_json::from_str(VECTORS).unwrap();
        let pem = file["public_key_pem"].as_str().unwrap();
        let (mut ran, mut valid, mut forged) = (0, 0, 0);
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let got = verify_vector(v, pem);
            assert_eq!(v["valid"], v["expected"]["valid"], "{id}");
            if v["valid"].as_bool().unwrap() {
                got.unwrap_or_else(|e| panic!("{id}: {e}"));
                valid += 1;
            } else {
                let want = match v["reason"].as_str().unwrap() {
                    "RSA-MD5 signature mismatch" => CallbackError::BadSignature,
                    "public key URL not under gosspublic.alicdn.com" => {
                        CallbackError::KeyUrlNotAllowed
                    }
                    "authorization is not valid base64" => CallbackError::MalformedAuthorization,
                    other => panic!("{id}: unknown reason {other}"),
                };
                assert_eq!(got, Err(want), "{id}");
                forged += 1;
            }
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!((ran, valid, forged), (14, 6, 8));
    }

    /// The upload side of every vector: `callback` and `callback-var` rebuilt from their
    /// parts give the pinned JSON and base64, for PostObject fields and PutObject headers.
    #[test]
    fn vectors_aliyun_oss_callback_upload_side() {
        let file: Value = serde_json::from_str(VECTORS).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let u = &v["upload_side"];
            let pinned: Value = serde_json::from_str(u["callback_json"].as_str().unwrap()).unwrap();
            let s = |k: &str| pinned[k].as_str().map(str::to_string);
            let p = CallbackParam {
                url: s("callbackUrl").unwrap(),
                host: s("callbackHost"),
                body: s("callbackBody").unwrap(),
                body_type: s("callbackBodyType"),
                sni: pinned["callbackSNI"].as_bool(),
            };
            assert_eq!(p.to_json(), u["callback_json"].as_str().unwrap(), "{id}");
            assert_eq!(
                p.to_base64(),
                u["callback_base64"].as_str().unwrap(),
                "{id}"
            );
            assert_eq!(
                u["post_object_form_fields"]["callback"].as_str().unwrap(),
                p.to_base64()
            );
            assert_eq!(
                u["put_object_headers"]["x-oss-callback"].as_str().unwrap(),
                p.to_base64()
            );
            if let Some(var_json) = u["callback_var_json"].as_str() {
                let vars = ordered_strings(var_json);
                assert_eq!(callback_var_json(&vars), var_json, "{id}");
                let b = callback_var_base64(&vars);
                assert_eq!(b, u["callback_var_base64"].as_str().unwrap(), "{id}");
                assert_eq!(u["put_object_headers"]["x-oss-callback-var"], b.as_str());
                // PostObject carries each variable as a plain form field.
                for (k, val) in &vars {
                    assert_eq!(u["post_object_form_fields"][k], val.as_str(), "{id}: {k}");
                }
            }
            ran += 1;
        }
        assert_eq!(ran, 14);
    }

    /// A flat JSON object of strings, in text order.
    fn ordered_strings(json: &str) -> Vec<(String, String)> {
        use serde::de::{Deserializer as _, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry::<String, String>()? {
                    out.push(kv);
                }
                Ok(out)
            }
        }
        serde_json::Deserializer::from_str(json)
            .deserialize_map(V)
            .unwrap()
    }

    #[test]
    fn stsgate_callback_parameters() {
        let p = CallbackParam::stsgate("http://127.0.0.1:8080/upload/callback");
        assert_eq!(
            p.to_json(),
            r#"{"callbackUrl":"http://127.0.0.1:8080/upload/callback","callbackBody":"objectId=${x:objectid}&resourceType=${x:resourcetype}&bucket=${bucket}&object=${object}&size=${size}&mimeType=${mimeType}&etag=${etag}","callbackBodyType":"application/x-www-form-urlencoded"}"#
        );
        let vars = stsgate_vars(10503, 1);
        assert_eq!(
            callback_var_json(&vars),
            r#"{"x:objectid":"10503","x:resourcetype":"1"}"#
        );
        // Every custom variable in the template is lower case, as OSS requires.
        for part in CALLBACK_BODY_TEMPLATE.split("${x:").skip(1) {
            let name = part.split('}').next().unwrap();
            assert_eq!(name, name.to_lowercase());
        }
    }

    #[test]
    fn prefix_check_includes_the_slash() {
        let p = default_prefixes();
        assert!(key_url_allowed("https://gosspublic.alicdn.com/k.pem", &p));
        assert!(key_url_allowed("http://gosspublic.alicdn.com/a/b.pem", &p));
        for bad in [
            "https://gosspublic.alicdn.com.evil.example/k.pem",
            "https://gosspublic.alicdn.com@evil.example/k.pem",
            "https://gosspublic.alicdn.com:444/k.pem",
            "HTTPS://gosspublic.alicdn.com/k.pem",
            "https://evil.example/https://gosspublic.alicdn.com/",
            "",
        ] {
            assert!(!key_url_allowed(bad, &p), "{bad}");
        }
        assert!(!key_url_allowed("anything", &["".to_string()]));
        assert_eq!(
            allowed_key_url(Some("not base64!"), &p),
            Err(CallbackError::MalformedKeyUrl)
        );
        assert_eq!(
            allowed_key_url(None, &p),
            Err(CallbackError::MalformedKeyUrl)
        );
        assert_eq!(
            decode_authorization(Some("")),
            Err(CallbackError::MalformedAuthorization)
        );
    }

    #[test]
    fn path_is_decoded_but_query_is_raw() {
        assert_eq!(
            string_to_verify("/a%20b+c/%E5%9B%9E", Some("x=%2B&y=a+b"), b"body"),
            "/a b+c/回?x=%2B&y=a+b\nbody".as_bytes()
        );
        assert_eq!(string_to_verify("/cb", Some(""), b""), b"/cb?\n");
        assert_eq!(string_to_verify("/cb", None, b""), b"/cb\n");
    }

    #[test]
    fn bad_pem_is_refused() {
        assert!(matches!(
            parse_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err(CallbackError::KeyUnavailable(_))
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(h in proptest::option::of(".{0,80}"), path in ".{0,40}", q in proptest::option::of(".{0,40}"), pem in ".{0,200}") {
            let _ = allowed_key_url(h.as_deref(), &default_prefixes());
            let _ = decode_authorization(h.as_deref());
            let _ = string_to_verify(&path, q.as_deref(), b"");
            let _ = parse_public_key(&pem);
        }
    }
}
