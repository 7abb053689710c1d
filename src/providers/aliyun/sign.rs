//! Aliyun signing as pure staged functions (docs/providers/aliyun.md):
//!
//! - STS RPC signature v1.0 (HMAC-SHA1), what stsgate sends;
//! - ACS3-HMAC-SHA256 (the Tea SDK's default), implemented and vector-tested, not used;
//! - OSS PostObject V1 (what the `form` carries: the shared
//!   [`crate::providers::form::sign_policy_hmac_sha1`], checked here against the OSS vectors)
//!   and V4 (implemented and vector-tested).
//!
//! Time and nonce are always arguments. Each function restates its formula; the tests
//! check every stage against vectors produced by the official SDKs.

use crate::providers::crypto::{b64, hex, hmac_sha1, hmac_sha256, percent_encode, sha256};

// ---------------------------------------------------------------------------------------
// STS RPC signature v1.0
// ---------------------------------------------------------------------------------------

/// `SignatureMethod` of the RPC signature.
pub const RPC_SIGNATURE_METHOD: &str = "HMAC-SHA1";
/// `SignatureVersion` of the RPC signature.
pub const RPC_SIGNATURE_VERSION: &str = "1.0";

/// `pct(k) + "=" + pct(v)` joined by `&`, in the given order.
fn pct_pairs<'a>(params: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    params
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `canonicalized_query = join("&", pct(k) + "=" + pct(v) for (k, v) in params sorted by k)`,
/// `Signature` excluded; `pct` is RFC 3986 over UTF-8 (space `%20`, `*` `%2A`, `~` kept).
pub fn rpc_canonicalized_query(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(k, _)| *k != "Signature")
        .collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pct_pairs(sorted.into_iter())
}

/// `string_to_sign = METHOD + "&" + pct("/") + "&" + pct(canonicalized_query)` (the
/// canonical query is encoded a second time).
pub fn rpc_string_to_sign(method: &str, canonicalized_query: &str) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(canonicalized_query)
    )
}

/// `Signature = b64(HMAC-SHA1(key = AccessKeySecret + "&", msg = string_to_sign))`.
pub fn rpc_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    let key = format!("{access_key_secret}&");
    b64(hmac_sha1(key.as_bytes(), string_to_sign.as_bytes()))
}

/// The query string as sent: the parameters in the given order, then
/// `Signature=pct(signature)`.
pub fn rpc_signed_query(params: &[(&str, &str)], signature: &str) -> String {
    let all = params
        .iter()
        .copied()
        .filter(|(k, _)| *k != "Signature")
        .chain(std::iter::once(("Signature", signature)));
    pct_pairs(all)
}

/// All stages at once: the signed query string for `params` (which must already hold the
/// common parameters, nonce and timestamp).
pub fn rpc_sign(method: &str, access_key_secret: &str, params: &[(&str, &str)]) -> String {
    let canonical = rpc_canonicalized_query(params);
    let to_sign = rpc_string_to_sign(method, &canonical);
    rpc_signed_query(params, &rpc_signature(access_key_secret, &to_sign))
}

// ---------------------------------------------------------------------------------------
// ACS3-HMAC-SHA256 (bonus; not used for calls)
// ---------------------------------------------------------------------------------------

/// The algorithm name that opens the string to sign and the `Authorization` value.
pub const ACS3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// `canonical_query = join("&", pct(k) + "=" + pct(v) sorted by k)`.
pub fn acs3_canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pct_pairs(sorted.into_iter())
}

fn acs3_normalised(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `canonical_headers = concat(lower(name) + ":" + trim(value) + "\n")` sorted by name, over
/// every header given (the caller chooses what to sign).
pub fn acs3_canonical_headers(headers: &[(&str, &str)]) -> String {
    acs3_normalised(headers)
        .into_iter()
        .map(|(n, v)| format!("{n}:{v}\n"))
        .collect()
}

/// `signed_headers = join(";", sorted(lower(name)))`.
pub fn acs3_signed_headers(headers: &[(&str, &str)]) -> String {
    acs3_normalised(headers)
        .into_iter()
        .map(|(n, _)| n)
        .collect::<Vec<_>>()
        .join(";")
}

/// `canonical_request = METHOD + "\n" + path + "\n" + canonical_query + "\n" +
/// canonical_headers + "\n" + signed_headers + "\n" + hex(SHA256(body))`.
pub fn acs3_canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}")
}

/// `hashed_payload = hex(SHA256(body))` (sent as `x-acs-content-sha256`).
pub fn acs3_hashed_payload(body: &[u8]) -> String {
    hex(sha256(body))
}

/// `string_to_sign = "ACS3-HMAC-SHA256\n" + hex(SHA256(canonical_request))`.
pub fn acs3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ACS3_ALGORITHM}\n{}",
        hex(sha256(canonical_request.as_bytes()))
    )
}

/// `signature = hex(HMAC-SHA256(AccessKeySecret, string_to_sign))`; no derived key.
pub fn acs3_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    hex(hmac_sha256(
        access_key_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ))
}

/// `Authorization = "ACS3-HMAC-SHA256 Credential=" + AKID + ",SignedHeaders=" + signed +
/// ",Signature=" + signature` (bare commas).
pub fn acs3_authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!("{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}")
}

// ---------------------------------------------------------------------------------------
// OSS PostObject
// ---------------------------------------------------------------------------------------

/// The `policy` form field: `b64(UTF-8 policy JSON)`; these exact bytes are signed.
pub fn post_policy_base64(policy_json: &str) -> String {
    b64(policy_json.as_bytes())
}

/// V4 `x-oss-signature-version`.
pub const OSS4_ALGORITHM: &str = "OSS4-HMAC-SHA256";

/// The V4 region: the OSS region id without its `oss-` prefix (`oss-cn-beijing` → `cn-beijing`).
pub fn oss4_region(region: &str) -> &str {
    region.strip_prefix("oss-").unwrap_or(region)
}

/// `x-oss-credential = AKID + "/" + YYYYMMDD + "/" + region + "/oss/aliyun_v4_request"`.
pub fn oss4_credential(access_key_id: &str, yyyymmdd: &str, region: &str) -> String {
    format!(
        "{access_key_id}/{yyyymmdd}/{}/oss/aliyun_v4_request",
        oss4_region(region)
    )
}

/// `SigningKey = HMAC(HMAC(HMAC(HMAC("aliyun_v4" + secret, YYYYMMDD), region), "oss"),
/// "aliyun_v4_request")` (HMAC-SHA256).
pub fn oss4_signing_key(access_key_secret: &str, yyyymmdd: &str, region: &str) -> [u8; 32] {
    let k = hmac_sha256(
        format!("aliyun_v4{access_key_secret}").as_bytes(),
        yyyymmdd.as_bytes(),
    );
    let k = hmac_sha256(&k, oss4_region(region).as_bytes());
    let k = hmac_sha256(&k, b"oss");
    hmac_sha256(&k, b"aliyun_v4_request")
}

/// V4: `x-oss-signature = hex(HMAC-SHA256(SigningKey, policy_b64))`.
pub fn post_signature_v4(signing_key: &[u8; 32], policy_base64: &str) -> String {
    hex(hmac_sha256(signing_key, policy_base64.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn load(name: &str) -> Value {
        let path = format!(
            "{}/tests/vectors/aliyun/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The string members of an object (in whatever order serde_json keeps them).
    fn pairs(v: &Value) -> Vec<(String, String)> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    }

    /// The `params` object of vector `id`, in the file's own key order: the signed URL keeps
    /// the order the SDK sent, and `Value` may not preserve it.
    fn params_in_file_order(file_text: &str, id: &str) -> Vec<(String, String)> {
        let start = file_text
            .find(&format!("\"id\": \"{id}\""))
            .unwrap_or_else(|| panic!("{id} not found"));
        let rest = &file_text[start..];
        let p = rest.find("\"params\": {").unwrap() + "\"params\": ".len();
        let mut de = serde_json::Deserializer::from_str(&rest[p..]);
        let ordered: Vec<(String, String)> = {
            use serde::de::{Deserializer as _, MapAccess, Visitor};
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<(String, String)>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of strings")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, String>()? {
                        out.push((k, v));
                    }
                    Ok(out)
                }
            }
            (&mut de).deserialize_map(V).unwrap()
        };
        ordered
    }

    #[test]
    fn vectors_aliyun_rpc_sts() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/vectors/aliyun/aliyun_rpc_sts.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let file: Value = serde_json::from_str(&text).unwrap();
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let i = &v["input"];
            let e = &v["expected"];
            let owned = params_in_file_order(&text, id);
            assert_eq!(owned.len(), pairs(&i["params"]).len(), "{id}");
            let params: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let method = i["method"].as_str().unwrap();
            let secret = i["access_key_secret"].as_str().unwrap();
            let canonical = rpc_canonicalized_query(&params);
            assert_eq!(
                canonical, e["canonicalized_query_string"],
                "{id}: canonical"
            );
            let to_sign = rpc_string_to_sign(method, &canonical);
            assert_eq!(to_sign, e["string_to_sign"], "{id}: string to sign");
            let sig = rpc_signature(secret, &to_sign);
            assert_eq!(sig, e["signature"], "{id}: signature");
            let url = format!(
                "https://{}/?{}",
                i["host"].as_str().unwrap(),
                rpc_signed_query(&params, &sig)
            );
            assert_eq!(url, e["signed_url"], "{id}: signed url");
            assert_eq!(
                rpc_sign(method, secret, &params),
                rpc_signed_query(&params, &sig)
            );
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 7);
    }

    #[test]
    fn vectors_aliyun_acs3_sts() {
        let file = load("aliyun_acs3_sts");
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let i = &v["input"];
            let e = &v["expected"];
            let query = pairs(&i["query"]);
            let query: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let headers = pairs(&i["headers"]);
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let hashed = acs3_hashed_payload(i["body"].as_str().unwrap().as_bytes());
            let signed = acs3_signed_headers(&headers);
            assert_eq!(signed, e["signed_headers"], "{id}: signed headers");
            let request = acs3_canonical_request(
                i["method"].as_str().unwrap(),
                i["path"].as_str().unwrap(),
                &acs3_canonical_query(&query),
                &acs3_canonical_headers(&headers),
                &signed,
                &hashed,
            );
            assert_eq!(request, e["canonical_request"], "{id}: canonical request");
            let to_sign = acs3_string_to_sign(&request);
            assert_eq!(to_sign, e["string_to_sign"], "{id}: string to sign");
            let sig = acs3_signature(i["access_key_secret"].as_str().unwrap(), &to_sign);
            assert_eq!(sig, e["signature"], "{id}: signature");
            assert_eq!(
                acs3_authorization(i["access_key_id"].as_str().unwrap(), &signed, &sig),
                e["authorization"],
                "{id}: authorization"
            );
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 2);
    }

    fn endpoint(bucket: &str, region: &str) -> String {
        format!("https://{bucket}.oss-{region}.aliyuncs.com/")
    }

    #[test]
    fn vectors_aliyun_oss_post_v1() {
        let file = load("aliyun_oss_post_v1");
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let i = &v["input"];
            let e = &v["expected"];
            let policy = post_policy_base64(i["policy_json"].as_str().unwrap());
            assert_eq!(policy, e["policy_base64"], "{id}: policy");
            assert_eq!(policy, e["string_to_sign"], "{id}: string to sign");
            let signed = crate::providers::form::sign_policy_hmac_sha1(
                i["access_key_secret"].as_str().unwrap(),
                i["policy_json"].as_str().unwrap(),
            );
            assert_eq!(signed.policy, policy, "{id}: shared policy");
            let sig = signed.signature;
            assert_eq!(sig, e["signature"], "{id}: signature");
            let f = &e["form_fields"];
            assert_eq!(f["Signature"], sig.as_str(), "{id}");
            assert_eq!(f["policy"], policy.as_str(), "{id}");
            assert_eq!(f["OSSAccessKeyId"], i["access_key_id"], "{id}");
            assert_eq!(f["key"], i["key"], "{id}");
            if let Some(token) = i["security_token"].as_str() {
                assert_eq!(f["x-oss-security-token"], token, "{id}");
            }
            assert_eq!(
                endpoint(i["bucket"].as_str().unwrap(), i["region"].as_str().unwrap()),
                e["endpoint"].as_str().unwrap(),
                "{id}"
            );
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 6);
    }

    #[test]
    fn vectors_aliyun_oss_post_v4() {
        let file = load("aliyun_oss_post_v4");
        let mut ran = 0;
        for v in file["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let i = &v["input"];
            let e = &v["expected"];
            let date = i["x_oss_date"].as_str().unwrap();
            let day = &date[..8];
            let region = i["region"].as_str().unwrap();
            let akid = i["access_key_id"].as_str().unwrap();
            let cred = oss4_credential(akid, day, region);
            assert_eq!(cred, e["x_oss_credential"], "{id}: credential");
            // The OSS region id form (`oss-` prefix) gives the same credential and key.
            assert_eq!(oss4_credential(akid, day, &format!("oss-{region}")), cred);
            let policy = post_policy_base64(i["policy_json"].as_str().unwrap());
            assert_eq!(policy, e["policy_base64"], "{id}: policy");
            assert_eq!(policy, e["string_to_sign"], "{id}: string to sign");
            let key = oss4_signing_key(i["access_key_secret"].as_str().unwrap(), day, region);
            assert_eq!(hex(key), e["signing_key_hex"], "{id}: signing key");
            let sig = post_signature_v4(&key, &policy);
            assert_eq!(sig, e["signature"], "{id}: signature");
            let f = &e["form_fields"];
            assert_eq!(f["x-oss-signature"], sig.as_str(), "{id}");
            assert_eq!(f["x-oss-signature-version"], OSS4_ALGORITHM, "{id}");
            assert_eq!(f["x-oss-credential"], cred.as_str(), "{id}");
            assert_eq!(f["x-oss-date"], date, "{id}");
            assert_eq!(
                endpoint(i["bucket"].as_str().unwrap(), region),
                e["endpoint"].as_str().unwrap(),
                "{id}"
            );
            ran += 1;
        }
        assert_eq!(ran, file["count"].as_u64().unwrap() as usize);
        assert_eq!(ran, 6);
    }

    #[test]
    fn rpc_encoding_edge_cases() {
        // RFC 3986: space %20 (never +), * %2A, ~ kept; the signature's + / = are encoded.
        assert_eq!(
            rpc_canonicalized_query(&[("b", "a b*~"), ("a", "+/="), ("Signature", "x")]),
            "a=%2B%2F%3D&b=a%20b%2A~"
        );
        assert_eq!(
            rpc_signed_query(&[("k", "v")], "a+b/c="),
            "k=v&Signature=a%2Bb%2Fc%3D"
        );
        assert_eq!(
            rpc_string_to_sign("GET", "a=b&c=d"),
            "GET&%2F&a%3Db%26c%3Dd"
        );
    }
}
