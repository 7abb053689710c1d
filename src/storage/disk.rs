//! Writing objects: every byte goes to a temporary file under `{dir}/.stsgate/tmp`, counted
//! against the limit and hashed (MD5, S3's ETag) as it arrives; only a complete body is
//! renamed into place. A body that is cut off, too large or refused leaves nothing behind
//! (the temporary file is removed when dropped).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use md5::{Digest as _, Md5};
use tokio::io::AsyncWriteExt as _;

use super::paths;

/// Why a write failed.
#[derive(Debug)]
pub enum WriteError {
    /// More than the limit arrived.
    TooLarge,
    /// The body broke off or could not be read.
    Body(String),
    /// The disk refused.
    Io(std::io::Error),
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// A complete body in a temporary file, not yet in place.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    /// Bytes written.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    kept: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Staged {
    /// Moves the file to `dest` (creating its folders), replacing what was there.
    pub async fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&self.path, dest).await?;
        self.kept = true;
        Ok(())
    }

    /// The S3 ETag of a single-part object: the quoted hex MD5.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(self.md5))
    }
}

/// A temporary file being written: counted against `limit` and hashed as bytes arrive.
struct Writer {
    staged: Staged,
    out: tokio::io::BufWriter<tokio::fs::File>,
    hash: Md5,
    limit: u64,
}

impl Writer {
    /// A fresh temporary file under `{dir}/.stsgate/tmp`; removed again unless persisted.
    async fn create(dir: &Path, limit: u64) -> Result<Writer, WriteError> {
        let path = paths::tmp_dir(dir).join(uuid::Uuid::new_v4().simple().to_string());
        tokio::fs::create_dir_all(path.parent().expect("tmp has a parent")).await?;
        let file = tokio::fs::File::create(&path).await?;
        Ok(Writer {
            staged: Staged {
                path,
                size: 0,
                md5: [0; 16],
                kept: false,
            },
            out: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            hash: Md5::new(),
            limit,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), WriteError> {
        self.staged.size += chunk.len() as u64;
        if self.staged.size > self.limit {
            return Err(WriteError::TooLarge);
        }
        self.hash.update(chunk);
        self.out.write_all(chunk).await?;
        Ok(())
    }

    /// Flushes and syncs the file; the body is complete.
    async fn finish(mut self) -> Result<Staged, WriteError> {
        self.out.flush().await?;
        self.out.into_inner().sync_data().await?;
        self.staged.md5 = self.hash.finalize().into();
        Ok(self.staged)
    }
}

/// Streams `body` into a temporary file, refusing it once more than `limit` bytes arrive.
pub async fn stage<S, E>(dir: &Path, mut body: S, limit: u64) -> Result<Staged, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut w = Writer::create(dir, limit).await?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
        w.write(&chunk).await?;
    }
    w.finish().await
}

/// Concatenates `parts` (files) into one staged file; `limit` bounds the total.
pub async fn concat(dir: &Path, parts: &[PathBuf], limit: u64) -> Result<Staged, WriteError> {
    let mut w = Writer::create(dir, limit).await?;
    let mut buf = vec![0u8; 256 * 1024];
    for part in parts {
        let mut input = tokio::fs::File::open(part).await?;
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut input, &mut buf).await?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).await?;
        }
    }
    w.finish().await
}

/// The S3 ETag of a multipart object: the MD5 of the parts' binary MD5s, `-` and the count.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut hash = Md5::new();
    for m in part_md5s {
        hash.update(m);
    }
    let digest: [u8; 16] = hash.finalize().into();
    format!("\"{}-{}\"", hex::encode(digest), part_md5s.len())
}

/// Removes temporary files a previous run left behind (a crash mid-upload).
pub fn clean_tmp(dir: &Path) {
    let _ = std::fs::remove_dir_all(paths::tmp_dir(dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    fn tmp_files(dir: &Path) -> usize {
        std::fs::read_dir(paths::tmp_dir(dir)).map_or(0, |d| d.count())
    }

    #[tokio::test]
    async fn a_complete_body_lands_with_its_md5_and_nothing_else_remains() {
        let dir = tempfile::tempdir().unwrap();
        let staged = stage(dir.path(), chunks(&[b"hello ", b"world"]), 11)
            .await
            .unwrap();
        assert_eq!(staged.size, 11);
        assert_eq!(staged.etag(), "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
        let dest = dir.path().join("local/a/b.txt");
        staged.persist(&dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        assert_eq!(tmp_files(dir.path()), 0);
    }

    #[tokio::test]
    async fn too_large_or_broken_bodies_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = stage(dir.path(), chunks(&[b"hello ", b"world"]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, WriteError::TooLarge), "{err:?}");
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err("connection reset".to_string()),
        ]);
        let err = stage(dir.path(), broken, 100).await.unwrap_err();
        assert!(matches!(err, WriteError::Body(_)), "{err:?}");
        // A staged file dropped without persisting disappears too.
        drop(stage(dir.path(), chunks(&[b"x"]), 10).await.unwrap());
        assert_eq!(tmp_files(dir.path()), 0);
    }

    #[test]
    fn multipart_etag_is_s3_s() {
        // Two parts "a" and "b": md5(md5("a") ‖ md5("b")) with "-2", as S3 computes it.
        let a: [u8; 16] = Md5::digest(b"a").into();
        let b: [u8; 16] = Md5::digest(b"b").into();
        let mut both = a.to_vec();
        both.extend_from_slice(&b);
        let expected = format!("\"{}-2\"", hex::encode(Md5::digest(&both)));
        assert_eq!(multipart_etag(&[a, b]), expected);
    }
}
