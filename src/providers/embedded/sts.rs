//! Minting: what an issuance of the embedded store hands out. There is no upstream call;
//! the credentials are derived locally ([`super::sign`]).

use rand::Rng as _;
use secrecy::SecretString;

use super::sign::{derive_secret, seal, Grant};
use crate::providers::TempCredentials;

/// Access key ids start with this, like AWS's `ASIA` for temporary keys.
pub const ACCESS_KEY_PREFIX: &str = "STSG";

/// A fresh access key id: `STSG` and 16 random characters of `[A-Z2-7]`.
pub fn new_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rngs::OsRng;
    let mut id = String::from(ACCESS_KEY_PREFIX);
    id.extend((0..16).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char));
    id
}

/// What one issuance allows.
pub struct MintRequest<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Key, or folder prefix when `is_dir`.
    pub key: &'a str,
    /// Folder upload.
    pub is_dir: bool,
    /// Largest object.
    pub max_bytes: u64,
    /// Ledger row.
    pub object_id: i64,
    /// Now, Unix seconds.
    pub now: i64,
    /// Lifetime, seconds.
    pub duration_secs: u64,
}

/// Mints credentials under `server_key` with access key id `access_key_id`.
pub fn mint(server_key: &[u8], access_key_id: String, req: &MintRequest<'_>) -> TempCredentials {
    let expires = req.now + req.duration_secs as i64;
    let grant = Grant {
        access_key_id: access_key_id.clone(),
        bucket: req.bucket.into(),
        key: req.key.into(),
        is_dir: req.is_dir,
        max_bytes: req.max_bytes,
        expires,
        object_id: req.object_id,
    };
    TempCredentials {
        secret_access_key: SecretString::from(derive_secret(server_key, &access_key_id)),
        security_token: SecretString::from(seal(server_key, &grant)),
        access_key_id,
        expiration: expires,
        start_time: Some(req.now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::embedded::sign::open;

    #[test]
    fn minted_credentials_carry_their_grant() {
        let key = b"0123456789abcdef0123456789abcdef";
        let id = new_access_key_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("STSG"));
        assert_ne!(id, new_access_key_id());
        let req = MintRequest {
            bucket: "local",
            key: "test/temp/2026/12/03/9/",
            is_dir: true,
            max_bytes: 5,
            object_id: 9,
            now: 100,
            duration_secs: 3600,
        };
        let cred = mint(key, id.clone(), &req);
        assert_eq!(cred.expiration, 3700);
        assert_eq!(cred.expose_secret(), derive_secret(key, &id));
        let grant = open(key, cred.expose_token(), &id, 200).unwrap();
        assert_eq!(
            (grant.object_id, grant.max_bytes, grant.is_dir),
            (9, 5, true)
        );
        assert_eq!(grant.key, "test/temp/2026/12/03/9/");
    }
}
