//! Content-addressed blobs: bytes stored once under their BLAKE3 hash.
//!
//! `BlobStore` is the seam for other backends (S3 via object_store later); `LocalBlobStore`
//! keeps blobs in `<storage.dir>/blobs/ab/cdef…`. Writes go to a temporary file in the same
//! folder tree and are renamed into place, so a blob is either whole or absent. Every read
//! re-hashes the bytes and refuses a blob whose content no longer matches its name.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {hash} is missing from the artifact store")]
    Missing { hash: String },
    #[error("blob {hash} is corrupt: its content hashes to {actual}")]
    Corrupt { hash: String, actual: String },
    #[error("`{0}` is not a BLAKE3 hex hash")]
    BadHash(String),
    #[error("artifact store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: String,
    /// False when the same bytes were already stored.
    pub created: bool,
}

pub trait BlobStore: Send + Sync {
    fn put(&self, bytes: &[u8]) -> Result<Stored, BlobError>;
    /// Writes the bytes under their hash even when a blob of that name exists (a repair of a
    /// corrupt one), atomically.
    fn replace(&self, bytes: &[u8]) -> Result<Stored, BlobError>;
    /// The bytes, verified against their hash.
    fn get(&self, hash: &str) -> Result<Vec<u8>, BlobError>;
    fn delete(&self, hash: &str) -> Result<(), BlobError>;
    /// Where the blob lives, for messages and tests.
    fn locate(&self, hash: &str) -> Result<String, BlobError>;
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(storage_dir: &Path) -> Self {
        LocalBlobStore {
            root: storage_dir.join("blobs"),
        }
    }

    fn path_of(&self, hash: &str) -> Result<PathBuf, BlobError> {
        let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(BlobError::BadHash(hash.to_owned()));
        }
        let (shard, rest) = (hash.get(..2), hash.get(2..));
        match (shard, rest) {
            (Some(shard), Some(rest)) => Ok(self.root.join(shard).join(rest)),
            _ => Err(BlobError::BadHash(hash.to_owned())),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

impl BlobStore for LocalBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<Stored, BlobError> {
        let hash = hash_bytes(bytes);
        let path = self.path_of(&hash)?;
        if path.is_file() {
            return Ok(Stored {
                hash,
                created: false,
            });
        }
        self.replace(bytes)
    }

    fn replace(&self, bytes: &[u8]) -> Result<Stored, BlobError> {
        let hash = hash_bytes(bytes);
        let path = self.path_of(&hash)?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| BlobError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(Stored {
            hash,
            created: true,
        })
    }

    fn get(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path_of(hash)?;
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::Missing {
                hash: hash.to_owned(),
            },
            _ => BlobError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        let actual = hash_bytes(&bytes);
        if actual != hash {
            return Err(BlobError::Corrupt {
                hash: hash.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    fn delete(&self, hash: &str) -> Result<(), BlobError> {
        let path = self.path_of(hash)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::Io { path, source: e }),
        }
    }

    fn locate(&self, hash: &str) -> Result<String, BlobError> {
        Ok(self.path_of(hash)?.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_idempotent_and_get_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBlobStore::new(dir.path());
        let first = store.put(b"hello").expect("put");
        assert!(first.created);
        let again = store.put(b"hello").expect("put");
        assert_eq!(
            again,
            Stored {
                hash: first.hash.clone(),
                created: false
            }
        );
        assert_eq!(store.get(&first.hash).expect("get"), b"hello");

        std::fs::write(store.locate(&first.hash).expect("path"), b"jello").expect("tamper");
        assert!(matches!(
            store.get(&first.hash),
            Err(BlobError::Corrupt { .. })
        ));
        // A put keeps what is there; a replace rewrites it.
        assert!(!store.put(b"hello").expect("put").created);
        store.replace(b"hello").expect("replace");
        assert_eq!(store.get(&first.hash).expect("repaired"), b"hello");
        assert!(matches!(
            store.get(&"0".repeat(64)),
            Err(BlobError::Missing { .. })
        ));
        assert!(matches!(
            store.get("../../etc/passwd"),
            Err(BlobError::BadHash(_))
        ));
    }
}
