//! Hash, HMAC and encoding helpers shared by every cloud's signer, written once.
//!
//! Everything here is a small pure function over bytes; the cloud-specific staging
//! (canonical requests, strings to sign) lives in each provider's `sign.rs`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// `HMAC-SHA1(key, msg)`.
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA1 key prepared once (its padded key blocks already absorbed), cloned per
/// message: for signers that sign with one long-term key on every request.
#[derive(Clone)]
pub struct HmacSha1Key(Hmac<sha1::Sha1>);

impl HmacSha1Key {
    /// Prepares `key`.
    pub fn new(key: &[u8]) -> Self {
        HmacSha1Key(Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// `HMAC-SHA1(key, msg)`, equal to [`hmac_sha1`].
    pub fn sign(&self, msg: &[u8]) -> [u8; 20] {
        let mut mac = self.0.clone();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for HmacSha1Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha1Key(<redacted>)")
    }
}

/// `HMAC-SHA256(key, msg)`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// `SHA256(data)`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// `SHA1(data)`.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

/// `MD5(data)`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

/// Lower-case hexadecimal.
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    ::hex::encode(bytes)
}

/// Standard base64 with padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// URL-safe base64 (`-` and `_`) **with** padding, as Qiniu uses it.
pub fn b64_url(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// Decodes URL-safe base64, with or without padding.
pub fn b64_url_decode(text: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(text).ok()
}

/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay; everything else is `%XX`
/// (upper-case hex). This is the encoding Aliyun RPC, Baidu and most canonical requests use.
pub const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `s` with [`RFC3986`].
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RFC3986).to_string()
}

/// Constant-time equality for signatures.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2202 / RFC 4231 published test cases, not computed here.
    #[test]
    fn hmac_known_answers() {
        assert_eq!(
            hex(hmac_sha1(
                b"key",
                b"The quick brown fox jumps over the lazy dog"
            )),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
        assert_eq!(
            hex(hmac_sha256(
                b"key",
                b"The quick brown fox jumps over the lazy dog"
            )),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    // RFC 2202 test case 2, through the prepared key, twice (the key is reusable).
    #[test]
    fn prepared_hmac_sha1_key_matches() {
        let key = HmacSha1Key::new(b"Jefe");
        for _ in 0..2 {
            assert_eq!(
                hex(key.sign(b"what do ya want for nothing?")),
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
            );
        }
        assert_eq!(format!("{key:?}"), "HmacSha1Key(<redacted>)");
    }

    #[test]
    fn percent_encoding_is_rfc3986() {
        assert_eq!(percent_encode("a b*~/é"), "a%20b%2A~%2F%C3%A9");
    }

    #[test]
    fn url_safe_base64_round_trips_without_padding() {
        let enc = b64_url(b"\xff\xfe\xfd?");
        assert!(!enc.contains('+') && !enc.contains('/'));
        assert_eq!(
            b64_url_decode(enc.trim_end_matches('=')).unwrap(),
            b"\xff\xfe\xfd?"
        );
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
