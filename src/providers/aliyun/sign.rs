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

// ---------------------------------------------------------------------------------------
// OSS signature V1 for requests: the presigned PUT (`uploadUrl`) and stsgate's HEAD/DELETE
// ---------------------------------------------------------------------------------------

/// An HTTP date as OSS (and oss2's `utils.http_date`) writes it:
/// `Tue, 02 Jan 2024 04:04:05 GMT`.
pub fn oss_http_date(unix: i64) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&f)
        .unwrap_or_default()
}

/// The URL of `key` under `bucket_url` (`{scheme}://{bucket}.{host}`) as oss2 builds it by
/// default (`slash_safe=False`): the whole key RFC 3986-encoded, `/` included (`%2F`).
pub fn oss_object_url(bucket_url: &str, key: &str) -> String {
    format!(
        "{}/{}",
        bucket_url.trim_end_matches('/'),
        percent_encode(key)
    )
}

/// `canonicalized_resource = "/" + bucket + "/" + key` (the key as it is, not encoded), then
/// `"?" + join("&", k + "=" + v)` over the signed sub-resources sorted by name (values as
/// they are), when there are any.
pub fn oss_canonical_resource(bucket: &str, key: &str, subresources: &[(&str, &str)]) -> String {
    let mut sub = subresources.to_vec();
    sub.sort_by(|a, b| a.0.cmp(b.0));
    let query = sub
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    if query.is_empty() {
        format!("/{bucket}/{key}")
    } else {
        format!("/{bucket}/{key}?{query}")
    }
}

/// `string_to_sign = METHOD + "\n" + Content-MD5 + "\n" + Content-Type + "\n" + Date + "\n" +
/// concat(lower(name) + ":" + value + "\n" for the x-oss-* headers sorted by name) +
/// canonicalized_resource`. For a presigned URL, `Date` is the `Expires` value.
pub fn oss_v1_string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    oss_headers: &[(&str, &str)],
    canonical_resource: &str,
) -> String {
    let mut h: Vec<(String, &str)> = oss_headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .filter(|(k, _)| k.starts_with("x-oss-"))
        .collect();
    h.sort_by(|a, b| a.0.cmp(&b.0));
    let headers: String = h.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    format!("{method}\n{content_md5}\n{content_type}\n{date}\n{headers}{canonical_resource}")
}

/// `Signature = b64(HMAC-SHA1(AccessKeySecret, string_to_sign))`.
pub fn oss_v1_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    b64(hmac_sha1(
        access_key_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ))
}

/// A presigned OSS V1 URL of `method` on `key`, as oss2 `StsAuth` + `Bucket.sign_url` write
/// it: the token is the signed sub-resource `security-token`, `content_type` (when given) is
/// signed and must be sent as it is, `Date` is `expires` (Unix seconds). The query is
/// `security-token`, `OSSAccessKeyId`, `Expires`, `Signature`, each value RFC 3986-encoded.
#[allow(clippy::too_many_arguments)]
pub fn oss_presigned_url(
    access_key_id: &str,
    access_key_secret: &str,
    security_token: &str,
    method: &str,
    bucket_url: &str,
    bucket: &str,
    key: &str,
    content_type: Option<&str>,
    expires: i64,
) -> String {
    let expires = expires.to_string();
    let resource = oss_canonical_resource(bucket, key, &[("security-token", security_token)]);
    let to_sign = oss_v1_string_to_sign(
        method,
        "",
        content_type.unwrap_or(""),
        &expires,
        &[],
        &resource,
    );
    let signature = oss_v1_signature(access_key_secret, &to_sign);
    format!(
        "{}?security-token={}&OSSAccessKeyId={}&Expires={expires}&Signature={}",
        oss_object_url(bucket_url, key),
        percent_encode(security_token),
        percent_encode(access_key_id),
        percent_encode(&signature)
    )
}

/// `Authorization = "OSS " + AccessKeyId + ":" + Signature`.
pub fn oss_v1_authorization(access_key_id: &str, signature: &str) -> String {
    format!("OSS {access_key_id}:{signature}")
}

/// Signs a body-less object request (`HEAD`, `DELETE`) of `key` with the long-term key at
/// `now`, as oss2 `Auth` (V1) does: `Date` (HTTP date) and `Authorization: OSS {ak}:{sig}`
/// over `METHOD\n\n\n{Date}\n/{bucket}/{key}`.
pub fn sign_object_request(
    access_key_id: &str,
    access_key_secret: &str,
    method: &str,
    bucket_url: &str,
    bucket: &str,
    key: &str,
    now: i64,
) -> crate::providers::object::SignedRequest {
    let date = oss_http_date(now);
    let to_sign = oss_v1_string_to_sign(
        method,
        "",
        "",
        &date,
        &[],
        &oss_canonical_resource(bucket, key, &[]),
    );
    let signature = oss_v1_signature(access_key_secret, &to_sign);
    crate::providers::object::SignedRequest {
        url: oss_object_url(bucket_url, key),
        headers: vec![
            ("Date".to_string(), date),
            (
                "Authorization".to_string(),
                oss_v1_authorization(access_key_id, &signature),
            ),
        ],
    }
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

    /// Every vector of `aliyun_object.json` (oss2 2.19.1: `StsAuth` + `Bucket.sign_url('PUT')`
    /// and `Auth` + `head_object` / `delete_object`), stage by stage.
    #[test]
    fn vectors_aliyun_object() {
        use crate::providers::test_vectors::{expected_count, load, s};
        let file = load("aliyun/aliyun_object.json");
        let (mut puts, mut objects) = (0, 0);
        for v in file["vectors"].as_array().unwrap() {
            let id = s(v, "id");
            let i = &v["input"];
            let e = &v["expected"];
            let bucket = s(i, "bucket");
            let key = s(i, "key");
            let bucket_url = super::super::form::bucket_url(s(i, "endpoint"), bucket);
            let now = i["now"].as_i64().unwrap();
            match s(v, "kind") {
                "presigned_put" => {
                    let ct = i["content_type"].as_str();
                    let expires = now + i["expires_in"].as_i64().unwrap();
                    assert_eq!(expires.to_string(), s(e, "expires"), "{id}: expires");
                    let resource = oss_canonical_resource(
                        bucket,
                        key,
                        &[("security-token", s(i, "security_token"))],
                    );
                    let to_sign = oss_v1_string_to_sign(
                        "PUT",
                        "",
                        ct.unwrap_or(""),
                        &expires.to_string(),
                        &[],
                        &resource,
                    );
                    assert_eq!(to_sign, s(e, "string_to_sign"), "{id}: string to sign");
                    let sig = oss_v1_signature(s(i, "access_key_secret"), &to_sign);
                    assert_eq!(sig, s(e, "signature"), "{id}: signature");
                    let url = oss_presigned_url(
                        s(i, "access_key_id"),
                        s(i, "access_key_secret"),
                        s(i, "security_token"),
                        "PUT",
                        &bucket_url,
                        bucket,
                        key,
                        ct,
                        expires,
                    );
                    assert_eq!(url, s(e, "url"), "{id}: url");
                    let want_headers = e["headers"].as_object().unwrap();
                    assert_eq!(want_headers.len(), usize::from(ct.is_some()), "{id}");
                    if let Some(ct) = ct {
                        assert_eq!(want_headers["Content-Type"], ct, "{id}: headers");
                    }
                    puts += 1;
                }
                kind @ ("head" | "delete") => {
                    let method = s(i, "method");
                    assert_eq!(method.to_ascii_lowercase(), kind);
                    let date = oss_http_date(now);
                    assert_eq!(date, s(e, "date"), "{id}: date");
                    let to_sign = oss_v1_string_to_sign(
                        method,
                        "",
                        "",
                        &date,
                        &[],
                        &oss_canonical_resource(bucket, key, &[]),
                    );
                    assert_eq!(to_sign, s(e, "string_to_sign"), "{id}: string to sign");
                    let sig = oss_v1_signature(s(i, "access_key_secret"), &to_sign);
                    assert_eq!(sig, s(e, "signature"), "{id}: signature");
                    assert_eq!(
                        oss_v1_authorization(s(i, "access_key_id"), &sig),
                        s(e, "authorization"),
                        "{id}: authorization"
                    );
                    assert!(
                        e["other_signed_headers"].as_array().unwrap().is_empty(),
                        "{id}: the SDK signed no other header"
                    );
                    let signed = sign_object_request(
                        s(i, "access_key_id"),
                        s(i, "access_key_secret"),
                        method,
                        &bucket_url,
                        bucket,
                        key,
                        now,
                    );
                    assert_eq!(signed.url, s(e, "url"), "{id}: url");
                    let want: Vec<(String, String)> = e["headers"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    let mut got = signed.headers.clone();
                    got.sort();
                    let mut want = want;
                    want.sort();
                    assert_eq!(got, want, "{id}: headers");
                    objects += 1;
                }
                other => panic!("{id}: unknown kind {other}"),
            }
        }
        assert_eq!(puts + objects, expected_count(&file, 8));
        assert_eq!((puts, objects), (4, 4));
    }

    #[test]
    fn one_byte_changes_the_object_signatures() {
        let url = |key: &str, ct: Option<&str>, exp: i64, token: &str| {
            oss_presigned_url(
                "STS.a",
                "sec",
                token,
                "PUT",
                "https://b.h",
                "b",
                key,
                ct,
                exp,
            )
        };
        let base = url("k/a.png", Some("image/png"), 100, "tok");
        for other in [
            url("k/b.png", Some("image/png"), 100, "tok"),
            url("k/a.png", Some("image/jpeg"), 100, "tok"),
            url("k/a.png", None, 100, "tok"),
            url("k/a.png", Some("image/png"), 101, "tok"),
            url("k/a.png", Some("image/png"), 100, "tol"),
        ] {
            let sig = |u: &str| u.rsplit_once("Signature=").unwrap().1.to_string();
            assert_ne!(sig(&base), sig(&other));
        }
        let h =
            |m: &str, now: i64| sign_object_request("ak", "sk", m, "https://b.h", "b", "k", now);
        assert_ne!(h("HEAD", 1).headers, h("DELETE", 1).headers);
        assert_ne!(h("HEAD", 1).headers, h("HEAD", 2).headers);
        assert_eq!(oss_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(
            !format!("{:?}", h("HEAD", 1)).contains("OSS ak:"),
            "Debug shows no signature"
        );
    }
}
