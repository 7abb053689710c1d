//! The embedded store's credentials, as pure functions: a minted secret is derived from the
//! server key and the access key id, and the session token carries what the credentials
//! allow (a [`Grant`]) under an HMAC of the server key. The store therefore keeps no
//! credential table, never stores a minted secret, and accepts a credential across a
//! restart for as long as it lives (the server key is kept in a file like `stsgate.key`).
//!
//! Token: `stsg1.<base64url(JSON grant)>.<base64url(HMAC-SHA256(key, "stsgate-store-token\n" ‖ payload))>`.
//! Secret: the first 40 characters of `base64url(HMAC-SHA256(key, "stsgate-store-secret\n" ‖ access key id))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::providers::crypto::hmac_sha256;

const TOKEN_PREFIX: &str = "stsg1.";
const TOKEN_LABEL: &[u8] = b"stsgate-store-token\n";
const SECRET_LABEL: &[u8] = b"stsgate-store-secret\n";
/// Longest token accepted before any decoding.
const MAX_TOKEN_LEN: usize = 4096;

/// What one set of minted credentials allows: writing `key` (or below it, when `is_dir`)
/// in `bucket`, objects of at most `max_bytes`, until `expires` (Unix seconds); the upload
/// is recorded on ledger row `object_id`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The access key id these credentials were minted with.
    #[serde(rename = "a")]
    pub access_key_id: String,
    /// Bucket.
    #[serde(rename = "b")]
    pub bucket: String,
    /// The object key, or the folder prefix (ending in `/`) when `is_dir`.
    #[serde(rename = "k")]
    pub key: String,
    /// Folder upload: any key below `key`.
    #[serde(rename = "d")]
    pub is_dir: bool,
    /// Largest object.
    #[serde(rename = "m")]
    pub max_bytes: u64,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
    /// The ledger row.
    #[serde(rename = "o")]
    pub object_id: i64,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access_key_id", &"<redacted>")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("is_dir", &self.is_dir)
            .field("max_bytes", &self.max_bytes)
            .field("expires", &self.expires)
            .field("object_id", &self.object_id)
            .finish()
    }
}

impl Grant {
    /// Whether the grant covers `key` in `bucket`.
    pub fn covers(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket
            && if self.is_dir {
                key.len() > self.key.len() && key.starts_with(&self.key)
            } else {
                key == self.key
            }
    }
}

/// Why a session token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefused {
    /// Not a token of ours, or altered.
    Invalid,
    /// Valid but for another access key id.
    OtherKey,
    /// Valid but past its expiry.
    Expired,
}

/// The secret of access key id `access_key_id` under `server_key`.
pub fn derive_secret(server_key: &[u8], access_key_id: &str) -> String {
    let mut msg = SECRET_LABEL.to_vec();
    msg.extend_from_slice(access_key_id.as_bytes());
    let mut s = URL_SAFE_NO_PAD.encode(hmac_sha256(server_key, &msg));
    s.truncate(40);
    s
}

fn token_mac(server_key: &[u8], payload: &str) -> [u8; 32] {
    let mut msg = TOKEN_LABEL.to_vec();
    msg.extend_from_slice(payload.as_bytes());
    hmac_sha256(server_key, &msg)
}

/// The session token that carries `grant`.
pub fn seal(server_key: &[u8], grant: &Grant) -> String {
    let json = serde_json::to_vec(grant).expect("a grant serialises");
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mac = URL_SAFE_NO_PAD.encode(token_mac(server_key, &payload));
    format!("{TOKEN_PREFIX}{payload}.{mac}")
}

/// The grant in `token`, when the token is ours, unaltered, minted for `access_key_id`
/// and not expired at `now`.
pub fn open(
    server_key: &[u8],
    token: &str,
    access_key_id: &str,
    now: i64,
) -> Result<Grant, TokenRefused> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenRefused::Invalid);
    }
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenRefused::Invalid)?;
    let (payload, mac) = rest.split_once('.').ok_or(TokenRefused::Invalid)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenRefused::Invalid)?;
    let expected = token_mac(server_key, payload);
    if mac.len() != expected.len() || !bool::from(mac.ct_eq(&expected)) {
        return Err(TokenRefused::Invalid);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenRefused::Invalid)?;
    let grant: Grant = serde_json::from_slice(&json).map_err(|_| TokenRefused::Invalid)?;
    if !bool::from(
        grant
            .access_key_id
            .as_bytes()
            .ct_eq(access_key_id.as_bytes()),
    ) {
        return Err(TokenRefused::OtherKey);
    }
    if now >= grant.expires {
        return Err(TokenRefused::Expired);
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn grant() -> Grant {
        Grant {
            access_key_id: "STSGABCDEFGHIJKLMNOP".into(),
            bucket: "local".into(),
            key: "test/resource/image/2026/12/03/7/x.png".into(),
            is_dir: false,
            max_bytes: 1000,
            expires: 2_000,
            object_id: 7,
        }
    }

    #[test]
    fn a_sealed_grant_opens_for_its_key_until_it_expires() {
        let t = seal(KEY, &grant());
        assert_eq!(open(KEY, &t, "STSGABCDEFGHIJKLMNOP", 1_999), Ok(grant()));
        assert_eq!(
            open(KEY, &t, "STSGABCDEFGHIJKLMNOP", 2_000),
            Err(TokenRefused::Expired)
        );
        assert_eq!(
            open(KEY, &t, "STSGOTHERKEY0000000", 1_000),
            Err(TokenRefused::OtherKey)
        );
        assert_eq!(
            open(
                b"another server key of 32 bytes!!",
                &t,
                "STSGABCDEFGHIJKLMNOP",
                1_000
            ),
            Err(TokenRefused::Invalid)
        );
        assert_eq!(
            open(KEY, "", "STSGABCDEFGHIJKLMNOP", 1_000),
            Err(TokenRefused::Invalid)
        );
    }

    #[test]
    fn secrets_differ_per_key_id_and_server_key() {
        let a = derive_secret(KEY, "STSGA");
        assert_eq!(a.len(), 40);
        assert_eq!(a, derive_secret(KEY, "STSGA"));
        assert_ne!(a, derive_secret(KEY, "STSGB"));
        assert_ne!(
            a,
            derive_secret(b"another server key of 32 bytes!!", "STSGA")
        );
    }

    #[test]
    fn covers_is_exact_or_strictly_below_the_folder() {
        let g = grant();
        assert!(g.covers("local", &g.key));
        assert!(!g.covers("other", &g.key));
        assert!(!g.covers("local", "test/resource/image/2026/12/03/7/y.png"));
        let d = Grant {
            key: "test/temp/2026/12/03/8/".into(),
            is_dir: true,
            ..grant()
        };
        assert!(d.covers("local", "test/temp/2026/12/03/8/a/b.png"));
        assert!(!d.covers("local", "test/temp/2026/12/03/8/"));
        assert!(!d.covers("local", "test/temp/2026/12/03/80/a.png"));
    }

    #[test]
    fn debug_hides_the_access_key_id() {
        assert!(!format!("{:?}", grant()).contains("STSGABCDEF"));
    }

    proptest! {
        /// Any one-byte change anywhere in a token is refused, never accepted as another
        /// grant.
        #[test]
        fn any_altered_byte_is_refused(pos in 0usize..400, byte in any::<u8>()) {
            let t = seal(KEY, &grant());
            let mut bytes = t.clone().into_bytes();
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != byte);
            bytes[pos] = byte;
            let altered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(altered != t);
            prop_assert!(open(KEY, &altered, "STSGABCDEFGHIJKLMNOP", 1_000).is_err());
        }

        /// Arbitrary text never panics and never opens.
        #[test]
        fn arbitrary_text_never_opens(s in ".{0,300}") {
            prop_assert!(open(KEY, &s, "STSGABCDEFGHIJKLMNOP", 1_000).is_err());
        }
    }
}
