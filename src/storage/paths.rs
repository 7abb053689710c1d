//! Where an object lives on disk: `{dir}/{bucket}/{key}`, with every key that could leave
//! its bucket's folder refused. Uploads in progress live outside every bucket, under
//! `{dir}/.stsgate/` (a bucket name never starts with `.`).

use std::path::{Path, PathBuf};

/// Why a key has no place on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKey(pub &'static str);

/// Longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest path segment most file systems accept, in bytes.
const MAX_SEGMENT_BYTES: usize = 255;

/// The file of `key` in `bucket` under `dir`. Refused: an empty key, one longer than 1024
/// bytes, a leading `/`, an empty segment (`a//b`, a trailing `/`), a `.` or `..` segment, a
/// backslash, NUL or any other control character, a segment longer than 255 bytes,.
pub fn object_path(dir: &Path, bucket: &str, key: &str) -> Result<PathBuf, BadKey> {
    check_key(key)?;
    let mut path = dir.join(bucket);
    for segment in key.split('/') {
        path.push(segment);
    }
    Ok(path)
}

/// [`object_path`]'s rules without a path.
pub fn check_key(key: &str) -> Result<(), BadKey> {
    if key.is_empty() {
        return Err(BadKey("the key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(BadKey("the key is longer than 1024 bytes"));
    }
    if key.chars().any(|c| c.is_control()) {
        return Err(BadKey("the key holds a control character"));
    }
    if key.contains('\\') {
        return Err(BadKey("the key holds a backslash"));
    }
    if key.starts_with('/') {
        return Err(BadKey("the key is absolute"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(BadKey("the key has an empty segment")),
            "." | ".." => return Err(BadKey("the key has a '.' or '..' segment")),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(BadKey("a segment of the key is longer than 255 bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The folder of temporary files (same file system as the objects, so a rename is atomic).
pub fn tmp_dir(dir: &Path) -> PathBuf {
    dir.join(".stsgate").join("tmp")
}

/// The folder of one multipart upload's parts.
pub fn upload_dir(dir: &Path, upload_id: &str) -> PathBuf {
    dir.join(".stsgate").join("uploads").join(upload_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    #[test]
    fn keys_that_escape_are_refused() {
        let dir = Path::new("/data");
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
            "..",
            ".",
        ] {
            assert!(object_path(dir, "local", key).is_err(), "{key:?}");
        }
        assert_eq!(
            object_path(dir, "local", "test/resource/image/x.png").unwrap(),
            Path::new("/data/local/test/resource/image/x.png")
        );
        assert!(object_path(dir, "local", &"a".repeat(1025)).is_err());
        assert!(object_path(dir, "local", &"a".repeat(256)).is_err());
        assert!(object_path(dir, "local", "..a/b..").is_ok());
    }

    proptest! {
        /// Whatever the key, an accepted one maps strictly inside `{dir}/{bucket}`, with
        /// only normal components, one per key segment.
        #[test]
        fn accepted_keys_stay_inside_the_bucket(key in "[a-z./\\\\\\x00-\\x1f\u{e9}]{0,40}") {
            let dir = Path::new("/data");
            if let Ok(path) = object_path(dir, "local", &key) {
                prop_assert!(path.starts_with("/data/local/"));
                let rest = path.strip_prefix("/data/local").unwrap();
                prop_assert!(rest.components().all(|c| matches!(c, Component::Normal(_))));
                prop_assert_eq!(rest.components().count(), key.split('/').count());
                prop_assert!(!key.split('/').any(|s| s.is_empty() || s == ".." || s == "."));
                prop_assert!(!key.contains('\\') && !key.contains('\0'));
            }
        }

        /// Any key with a `..` segment, a backslash or a NUL is refused.
        #[test]
        fn dot_dot_backslash_and_nul_are_always_refused(
            head in "[a-z/]{0,10}", tail in "[a-z/]{0,10}", bad in prop::sample::select(vec!["/../", "\\", "\0", "/./"])
        ) {
            let key = format!("{head}{bad}{tail}");
            prop_assert!(object_path(Path::new("/data"), "local", &key).is_err());
        }
    }
}
