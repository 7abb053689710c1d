//! The first-run HS256 key file (`./stsgate.key`, mode 0600), shared by `serve` and `token`.

use std::io::Write as _;
use std::path::Path;

/// Reads the key file, creating it with a fresh random secret when missing.
/// Returns the secret and whether the file was created now.
pub fn load_or_create(path: &Path) -> Result<(String, bool), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().to_string();
            if secret.len() < 32 {
                return Err(format!(
                    "{} holds no usable key (at least 32 characters expected)",
                    path.display()
                ));
            }
            Ok((secret, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let secret = hex::encode(bytes);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(secret.as_bytes())
                        .and_then(|_| f.write_all(b"\n"))
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    Ok((secret, true))
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create(path).map(|(s, _)| (s, false))
                }
                Err(e) => Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_mode_0600_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stsgate.key");
        let (a, created) = load_or_create(&p).unwrap();
        assert!(created);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (b, created) = load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(a, b);
    }

    #[test]
    fn short_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "short").unwrap();
        assert!(load_or_create(&p).is_err());
    }
}
