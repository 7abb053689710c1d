//! The fake's own SigV4 (independent of `aws-sigv4` and of stsgate's signer): the signing
//! key chain, the canonical request, the string to sign and the signatures, over the
//! `hmac`/`sha2` crates.

use sha2::{Digest, Sha256};

use crate::common::hmac_sha256;

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// Header value as SigV4 canonicalises it: trimmed, inner whitespace runs folded to one space.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request of a query-protocol POST to `/`: no query, `headers` already
/// lower-case and in the order of `signed_headers`.
pub fn canonical_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    signed_headers: &str,
    body: &[u8],
) -> String {
    canonical_request_hashed(
        method,
        path,
        headers,
        signed_headers,
        &hex::encode(Sha256::digest(body)),
    )
}

/// The same with the payload hash given (S3: the `x-amz-content-sha256` header's value),
/// `path` exactly as sent (S3 encodes it once and does not normalise it).
pub fn canonical_request_hashed(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    canonical_request_query(method, path, "", headers, signed_headers, payload_hash)
}

/// The canonical request with a canonical query string (a presigned URL's parameters but
/// `X-Amz-Signature`, see [`canonical_query`]).
pub fn canonical_request_query(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut block = String::new();
    for (n, v) in headers {
        block.push_str(n);
        block.push(':');
        block.push_str(&canonical_value(v));
        block.push('\n');
    }
    format!("{method}\n{path}\n{query}\n{block}\n{signed_headers}\n{payload_hash}")
}

/// `AWS4-HMAC-SHA256\n{amz_date}\n{scope}\nhex(SHA256(canonical))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// `hex(HMAC(kSigning, string_to_sign))`.
pub fn signature(secret: &str, date: &str, region: &str, service: &str, sts: &str) -> String {
    hex::encode(hmac_sha256(
        &signing_key(secret, date, region, service),
        sts.as_bytes(),
    ))
}

/// The S3 POST signature: `hex(HMAC(kSigning(secret, date, region, "s3"), policy_b64))`.
pub fn post_signature(secret: &str, date: &str, region: &str, policy_b64: &str) -> String {
    hex::encode(hmac_sha256(
        &signing_key(secret, date, region, "s3"),
        policy_b64.as_bytes(),
    ))
}

pub(crate) fn amz_date_unix(d: &str) -> Option<i64> {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(d, &f)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex).
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query of decoded `(name, value)` pairs: each encoded, sorted by name then
/// value, joined with `&`.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}
