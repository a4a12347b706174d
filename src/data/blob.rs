//! Content-addressed blobs: bytes stored once under their BLAKE3 hash.
//!
//! [`BlobStore`] has two backends, chosen by `storage.url` ([`open`]): [`LocalBlobStore`]
//! keeps blobs in `<storage.dir>/blobs/ab/cdef…` (written to a temporary file and renamed into
//! place, so a blob is either whole or absent); [`S3BlobStore`] keeps them as objects
//! `<prefix>/blobs/ab/cdef…` in an S3 bucket through the `object_store` crate (an object is
//! whole or absent by S3's own semantics). Every read re-hashes the bytes and refuses a blob
//! whose content no longer matches its name, whichever backend it came from.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    #[error("the artifact store at {url}: {message}")]
    Remote { url: String, message: String },
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
    /// Every blob's hash, in no particular order (for `steward storage migrate`).
    fn list(&self) -> Result<Vec<String>, BlobError>;
    /// The store itself, for messages: a folder or `s3://bucket/prefix`.
    fn describe(&self) -> String;
}

/// A shared store is a store (the CLI's commands hold the one [`open`] gave).
impl<T: BlobStore + ?Sized> BlobStore for Arc<T> {
    fn put(&self, bytes: &[u8]) -> Result<Stored, BlobError> {
        (**self).put(bytes)
    }
    fn replace(&self, bytes: &[u8]) -> Result<Stored, BlobError> {
        (**self).replace(bytes)
    }
    fn get(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        (**self).get(hash)
    }
    fn delete(&self, hash: &str) -> Result<(), BlobError> {
        (**self).delete(hash)
    }
    fn locate(&self, hash: &str) -> Result<String, BlobError> {
        (**self).locate(hash)
    }
    fn list(&self) -> Result<Vec<String>, BlobError> {
        (**self).list()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// The store `storage.url` names: the local folder `<storage.dir>/blobs` when it is empty, an
/// [`S3BlobStore`] for `s3://BUCKET[/PREFIX]`.
///
/// Errors: a URL `config` would refuse, or S3 settings from the environment that do not build
/// a client (a malformed endpoint, say; the region defaults to us-east-1).
pub fn open(storage: &crate::config::StorageSettings) -> Result<Arc<dyn BlobStore>, BlobError> {
    open_url(&storage.url, &storage.dir)
}

/// [`open`] for a URL: empty or a folder path for a local store (`<dir>/blobs`), or
/// `s3://BUCKET[/PREFIX]`.
pub fn open_url(url: &str, dir: &Path) -> Result<Arc<dyn BlobStore>, BlobError> {
    if url.is_empty() {
        return Ok(Arc::new(LocalBlobStore::new(dir)));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3BlobStore::new(url)?));
    }
    Ok(Arc::new(LocalBlobStore::new(Path::new(url))))
}

fn valid_hash(hash: &str) -> Result<(), BlobError> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(BlobError::BadHash(crate::error::bounded(hash, 80)))
    }
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
        valid_hash(hash)?;
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

    fn list(&self) -> Result<Vec<String>, BlobError> {
        let mut out = Vec::new();
        let shards = match std::fs::read_dir(&self.root) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.root)(e)),
        };
        for shard in shards {
            let shard = shard.map_err(io(&self.root))?;
            let name = shard.file_name().to_string_lossy().into_owned();
            if name.len() != 2 || !shard.path().is_dir() {
                continue;
            }
            let dir = shard.path();
            for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let rest = entry
                    .map_err(io(&dir))?
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                // Temporary files of writes in progress have other names.
                let hash = format!("{name}{rest}");
                if valid_hash(&hash).is_ok() {
                    out.push(hash.to_ascii_lowercase());
                }
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// Blobs as objects in an S3 bucket (or an S3-compatible store: MinIO, moto), under
/// `<prefix>/blobs/ab/cdef…`. The client comes from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`: object_store's `AmazonS3Builder::from_env`). The trait is blocking, as
/// its callers run on tokio's blocking pool (or in the CLI): each call runs its request on a
/// small runtime of its own, from a scoped thread, so it works inside or outside tokio.
pub struct S3BlobStore {
    store: Arc<dyn object_store::ObjectStore>,
    /// The key prefix without a trailing slash (may be empty).
    prefix: String,
    url: String,
}

/// The runtime S3 requests run on; built once, never dropped (a runtime may not be dropped
/// inside another).
fn s3_runtime() -> Result<&'static tokio::runtime::Runtime, BlobError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("steward-s3")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| BlobError::Remote {
            url: "s3".into(),
            message: format!("no runtime for S3 requests: {e}"),
        })
}

impl S3BlobStore {
    /// A store for `s3://BUCKET[/PREFIX]`.
    ///
    /// Errors: a malformed URL, or a client the environment's settings don't build.
    pub fn new(url: &str) -> Result<Self, BlobError> {
        let remote = |message: String| BlobError::Remote {
            url: crate::error::bounded(url, 120),
            message,
        };
        crate::config::check_storage_url(url).map_err(remote)?;
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        use object_store::ClientConfigKey;
        use object_store::aws::AmazonS3ConfigKey;
        // Bounded: an unreachable store fails a try within 5 s (connect) and a request after 2
        // retries started within 30 s; a try may take 5 minutes in all, room for the largest
        // upload (the timeout covers the body too).
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            )
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "300s")
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: std::time::Duration::from_secs(30),
                ..Default::default()
            })
            .build()
            .map_err(|e| remote(crate::error::bounded(&e.to_string(), 300)))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            prefix: prefix.trim_end_matches('/').to_owned(),
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    fn key(&self, hash: &str) -> Result<object_store::path::Path, BlobError> {
        valid_hash(hash)?;
        let hash = hash.to_ascii_lowercase();
        let (shard, rest) = (hash.get(..2).unwrap_or(""), hash.get(2..).unwrap_or(""));
        Ok(object_store::path::Path::from(
            self.join(&format!("blobs/{shard}/{rest}")),
        ))
    }

    fn join(&self, tail: &str) -> String {
        if self.prefix.is_empty() {
            tail.to_owned()
        } else {
            format!("{}/{tail}", self.prefix)
        }
    }

    fn error(&self, e: object_store::Error) -> BlobError {
        BlobError::Remote {
            url: self.url.clone(),
            message: crate::error::bounded(&e.to_string(), 300),
        }
    }

    /// Runs a request to completion on the S3 runtime, from a thread of its own.
    fn run<T: Send>(
        &self,
        request: impl std::future::Future<Output = Result<T, object_store::Error>> + Send,
    ) -> Result<T, BlobError> {
        let rt = s3_runtime()?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| rt.block_on(request))
                .join()
                .map_err(|_| BlobError::Remote {
                    url: self.url.clone(),
                    message: "the request's thread panicked".into(),
                })
        })?
        .map_err(|e| self.error(e))
    }
}

impl BlobStore for S3BlobStore {
    fn put(&self, bytes: &[u8]) -> Result<Stored, BlobError> {
        use object_store::ObjectStoreExt;
        let hash = hash_bytes(bytes);
        let key = self.key(&hash)?;
        let store = self.store.clone();
        let exists = self.run(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })?;
        if exists {
            return Ok(Stored {
                hash,
                created: false,
            });
        }
        self.replace(bytes)
    }

    fn replace(&self, bytes: &[u8]) -> Result<Stored, BlobError> {
        use object_store::ObjectStoreExt;
        let hash = hash_bytes(bytes);
        let key = self.key(&hash)?;
        let (store, payload) = (
            self.store.clone(),
            object_store::PutPayload::from(bytes.to_vec()),
        );
        self.run(async move { store.put(&key, payload).await })?;
        Ok(Stored {
            hash,
            created: true,
        })
    }

    fn get(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        use object_store::ObjectStoreExt;
        let key = self.key(hash)?;
        let store = self.store.clone();
        let bytes = self
            .run(async move {
                match store.get(&key).await {
                    Ok(found) => found.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })?
            .ok_or_else(|| BlobError::Missing {
                hash: hash.to_owned(),
            })?;
        let actual = hash_bytes(&bytes);
        if actual != hash.to_ascii_lowercase() {
            return Err(BlobError::Corrupt {
                hash: hash.to_owned(),
                actual,
            });
        }
        Ok(bytes.to_vec())
    }

    fn delete(&self, hash: &str) -> Result<(), BlobError> {
        use object_store::ObjectStoreExt;
        let key = self.key(hash)?;
        let store = self.store.clone();
        self.run(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn locate(&self, hash: &str) -> Result<String, BlobError> {
        let key = self.key(hash)?;
        let bucket = self
            .url
            .strip_prefix("s3://")
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        Ok(format!("s3://{bucket}/{key}"))
    }

    fn list(&self) -> Result<Vec<String>, BlobError> {
        use futures_util::TryStreamExt;
        let prefix = object_store::path::Path::from(self.join("blobs"));
        let store = self.store.clone();
        let keys: Vec<object_store::ObjectMeta> =
            self.run(async move { store.list(Some(&prefix)).try_collect().await })?;
        Ok(keys
            .into_iter()
            .filter_map(|meta| {
                // `…/blobs/ab/cdef…`: a two-digit shard and the rest.
                let mut parts = meta.location.as_ref().rsplit('/');
                let (rest, shard) = (parts.next()?, parts.next()?);
                let hash = format!("{shard}{rest}");
                // Only names this store writes: lower-case hex (others are left alone).
                let ours = shard.len() == 2
                    && valid_hash(&hash).is_ok()
                    && !hash.bytes().any(|b| b.is_ascii_uppercase());
                ours.then_some(hash)
            })
            .collect())
    }

    fn describe(&self) -> String {
        self.url.clone()
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
