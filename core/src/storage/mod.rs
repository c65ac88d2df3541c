//! Where media bytes live: the [`MediaStorage`] seam.
//!
//! Everything that touches stored bytes — placing a finished transfer,
//! dedupe by content hash, sidecars and other companion files, serving
//! `/file` with ranges, deleting with a record, clean-up, the readiness
//! probe — goes through a `MediaStorage`. [`LocalStorage`] (the download
//! directory, the embedded default) is the only code that touches that
//! directory; `S3Storage` (feature `s3`) keeps media in an S3-compatible
//! bucket so that workers on several machines share it without a shared
//! file system.
//!
//! Objects are named by [`StorageKey`]s: relative, `/`-separated paths built
//! by the same directory and file name templates on every backend. A record
//! keeps its object's *locator* ([`MediaStorage::locator`]): the absolute
//! path for the local backend (as before), `s3://bucket/key` for S3.
//!
//! Transfers stage their bytes in a local temporary file (so a retry resumes
//! it with an HTTP Range request) and then commit it under its key
//! ([`MediaStorage::commit_file`]). The local backend stages in the final
//! directory and links the file into place on the writer thread, exactly
//! as before; S3 uploads the staged file in parts.

#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
pub(crate) mod local;
mod migrate;
#[cfg(feature = "s3")]
mod s3;
mod settings;

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};

use crate::error::DownloadError;

pub use local::LocalStorage;
pub use migrate::{MigrationReport, migrate};
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3Storage};
pub use settings::{S3Settings, StorageSettings};

/// Names of temporary files and directories (staged transfers, partial
/// writes): never listed, served or counted as media.
pub const TEMP_PREFIX: &str = ".mediadl-";

/// The name of an object: a relative path of `/`-separated segments, none
/// empty, `.` or `..`, without backslashes or NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(String);

impl StorageKey {
    /// Checks `raw` as a key.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidKey`] when a segment is empty, `.` or `..`,
    /// or the key holds a backslash or NUL.
    pub fn new(raw: impl Into<String>) -> Result<Self, StorageError> {
        let raw = raw.into();
        let refuse = |reason: &str| StorageError::InvalidKey {
            key: raw.clone(),
            reason: reason.to_owned(),
        };
        if raw.is_empty() {
            return Err(refuse("empty"));
        }
        if raw.contains(['\\', '\0']) {
            return Err(refuse("backslash or NUL"));
        }
        if raw
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(refuse("an empty, `.` or `..` segment"));
        }
        Ok(Self(raw))
    }

    /// The key of `name` in the relative directory `dir` (as the templates
    /// render it).
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidKey`] when `dir` is absolute or climbs out
    /// (`..`), or the result is no key.
    pub fn in_dir(dir: &Path, name: &str) -> Result<Self, StorageError> {
        let prefix = key_prefix(dir)?;
        Self::new(join_key(&prefix, name))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (the file name).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything before the last segment (`""` at the top).
    pub fn dir(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    /// A companion object beside this one: this key with `suffix` appended
    /// (`.json` for the metadata sidecar, `.info.json`, `.en.vtt`, …).
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidKey`] when the suffix holds a `/`.
    pub fn companion(&self, suffix: &str) -> Result<Self, StorageError> {
        if suffix.contains('/') {
            return Err(StorageError::InvalidKey {
                key: format!("{}{suffix}", self.0),
                reason: "a companion suffix with `/`".into(),
            });
        }
        Self::new(format!("{}{suffix}", self.0))
    }

    /// A key in the same directory named `name`.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidKey`] when `name` is no single segment.
    pub fn sibling(&self, name: &str) -> Result<Self, StorageError> {
        if name.contains('/') {
            return Err(StorageError::InvalidKey {
                key: name.to_owned(),
                reason: "a name with `/`".into(),
            });
        }
        Self::new(join_key(self.dir(), name))
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A relative directory as a key prefix (`a/b`, or `""` for the top).
///
/// # Errors
///
/// [`StorageError::InvalidKey`] when `dir` is absolute or climbs out.
pub fn key_prefix(dir: &Path) -> Result<String, StorageError> {
    let mut segments = Vec::new();
    for component in dir.components() {
        match component {
            Component::Normal(part) => segments.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(StorageError::InvalidKey {
                    key: dir.display().to_string(),
                    reason: "it would leave the storage root".into(),
                });
            }
        }
    }
    Ok(segments.join("/"))
}

fn join_key(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// What went wrong in a storage, named by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under this key.
    #[error("no object {key}")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The key (or a record's locator) names nothing this storage may hold.
    #[error("refused key {key}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// The storage could not be reached or answered with a temporary
    /// failure (network, timeout, 500, 503 SlowDown): try again later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The credentials were refused or lack a permission.
    #[error("storage access denied: {0}")]
    Denied(String),
    /// The bucket (or the download directory) does not exist.
    #[error("{0}")]
    MissingLocation(String),
    /// Anything else (a full or read-only disk, an unexpected answer).
    #[error("storage failed: {0}")]
    Failed(String),
}

impl StorageError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A stable machine-readable name of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "STORAGE_NOT_FOUND",
            Self::InvalidKey { .. } => "STORAGE_INVALID_KEY",
            Self::Unavailable(_) => "STORAGE_UNAVAILABLE",
            Self::Denied(_) => "STORAGE_DENIED",
            Self::MissingLocation(_) => "STORAGE_MISSING_LOCATION",
            Self::Failed(_) => "STORAGE_ERROR",
        }
    }

    /// An I/O error on `path` (a missing file is [`StorageError::NotFound`]).
    pub(crate) fn io(path: &Path, key: Option<&StorageKey>, err: &std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound {
                key: key.map_or_else(|| path.display().to_string(), ToString::to_string),
            },
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Self::Denied(format!("{}: {err}", path.display()))
            }
            _ => Self::Failed(format!("{}: {err}", path.display())),
        }
    }
}

impl From<StorageError> for DownloadError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Unavailable(_) => Self::retryable(err.to_string()),
            StorageError::InvalidKey { .. } => Self::permanent(err.to_string()),
            other => Self::Storage(other.to_string()),
        }
    }
}

/// Bytes read from, or written to, a storage.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// What to do when the key a new object is written under is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collision {
    /// Keep the other object; use the first free numbered name
    /// (`name_1.ext`, `name_2.ext`, …).
    Number,
    /// Replace the other object (an upgrade, a rewritten sidecar).
    Replace,
}

/// An object written whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Where it is (a numbered key when [`Collision::Number`] had to).
    pub key: StorageKey,
    /// Its length in bytes.
    pub size: u64,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: StorageKey,
    /// Its length in bytes.
    pub size: u64,
}

/// Where a transfer for keys in one directory stages its temporary files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staging {
    /// A local directory (created on demand by the transfer).
    pub dir: PathBuf,
    /// Whether a file staged here is placed by linking it to
    /// [`MediaStorage::local_path`] of its key: the transfer then places it
    /// itself on its writer thread (the local hot path) and calls
    /// [`MediaStorage::key_of`] on the result instead of
    /// [`MediaStorage::commit_file`].
    pub links_into_place: bool,
}

/// Which backend a storage is (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// [`LocalStorage`].
    Local,
    /// `S3Storage`.
    S3,
}

impl Backend {
    /// `local` or `s3`, as the settings name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::S3 => "s3",
        }
    }
}

/// Stored media bytes, on some backend. Object safe: used as
/// `Arc<dyn MediaStorage>`.
///
/// The contract every implementation keeps (checked by the
/// [`conformance`] suite):
/// - an object appears whole or not at all: a writer that fails or is
///   killed leaves nothing under the key (at most a temporary that
///   [`MediaStorage::recover`] removes);
/// - the hash returned by a write is the SHA-256 of exactly the bytes a
///   read returns;
/// - deleting a missing object succeeds; reading one is
///   [`StorageError::NotFound`];
/// - listing never shows temporary objects.
#[async_trait]
pub trait MediaStorage: Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// What a download record keeps to find the object again: the absolute
    /// path (local), `s3://bucket/key` (S3).
    fn locator(&self, key: &StorageKey) -> String;

    /// The key a record's locator names, when it lies in this storage.
    fn key_of(&self, locator: &str) -> Option<StorageKey>;

    /// Where transfers for keys in `dir` (a key prefix, `""` for the top)
    /// stage their temporary files.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidKey`] when `dir` is no key prefix.
    fn staging(&self, dir: &str) -> Result<Staging, StorageError>;

    /// The local file behind `key`, on backends that have one (thumbnails
    /// read it directly); `None` otherwise.
    fn local_path(&self, key: &StorageKey) -> Option<PathBuf> {
        let _ = key;
        None
    }

    /// Writes `body` under `key` while hashing it; the object appears whole
    /// or not at all.
    ///
    /// # Errors
    ///
    /// What the body or the storage failed with; nothing is left under
    /// the key.
    async fn put(
        &self,
        key: &StorageKey,
        body: ByteStream,
        collision: Collision,
    ) -> Result<Stored, StorageError>;

    /// Moves the finished local file `staged` (from [`MediaStorage::staging`])
    /// under `key`, consuming it; returns the key it got.
    ///
    /// # Errors
    ///
    /// What the storage failed with; `staged` is then left for the caller.
    async fn commit_file(
        &self,
        staged: &Path,
        key: &StorageKey,
        collision: Collision,
    ) -> Result<StorageKey, StorageError>;

    /// The object's length, `None` when there is none.
    ///
    /// # Errors
    ///
    /// When the storage cannot say.
    async fn size(&self, key: &StorageKey) -> Result<Option<u64>, StorageError>;

    /// The object's bytes, or those of `range` (inclusive, resolved by the
    /// caller against [`MediaStorage::size`]).
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] when there is no object.
    async fn read(
        &self,
        key: &StorageKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, StorageError>;

    /// Removes the object; a missing one is no error.
    ///
    /// # Errors
    ///
    /// When the storage refuses.
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    ///
    /// # Errors
    ///
    /// When the storage cannot list.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Bytes of all objects.
    ///
    /// # Errors
    ///
    /// When the storage cannot list.
    async fn used(&self) -> Result<u64, StorageError> {
        Ok(self.list("").await?.iter().map(|object| object.size).sum())
    }

    /// A URL that serves the object directly for a while, when this
    /// storage is set to hand those out instead of streaming the bytes
    /// (S3's `presigned_redirect`); `None` otherwise.
    ///
    /// # Errors
    ///
    /// When signing fails.
    async fn presigned_url(&self, key: &StorageKey) -> Result<Option<url::Url>, StorageError> {
        let _ = key;
        Ok(None)
    }

    /// Removes what a crashed process left: stale temporary files,
    /// unfinished uploads. Called at start; returns how many were removed.
    ///
    /// # Errors
    ///
    /// When the storage cannot be cleaned.
    async fn recover(&self) -> Result<usize, StorageError>;

    /// Writes, reads back and deletes a probe object: the storage works.
    ///
    /// # Errors
    ///
    /// The first step that failed, as the storage reported it.
    async fn check(&self) -> Result<(), StorageError> {
        probe(self).await
    }
}

/// Writes, reads back and deletes a probe object (a temporary name, never
/// listed): what [`MediaStorage::check`] does unless a backend checks more.
///
/// # Errors
///
/// The first step that failed, as the storage reported it.
pub async fn probe<S: MediaStorage + ?Sized>(storage: &S) -> Result<(), StorageError> {
    let key = StorageKey::new(format!("{TEMP_PREFIX}probe-{}", uuid::Uuid::new_v4()))?;
    let body = Bytes::from_static(b"mediadl storage check");
    let stored = storage
        .put(&key, bytes_stream(body.clone()), Collision::Replace)
        .await?;
    let read = match storage.read(&stored.key, None).await {
        Ok(read) => collect(read).await,
        Err(err) => Err(err),
    };
    storage.delete(&stored.key).await?;
    if read? != body {
        return Err(StorageError::Failed(
            "the probe object read back differs from what was written".into(),
        ));
    }
    Ok(())
}

/// The storage `storage.backend` names: see [`open_backend`].
///
/// # Errors
///
/// As [`open_backend`].
pub fn open(
    settings: &crate::SettingsHandle,
    default_root: PathBuf,
    staging_dir: PathBuf,
) -> Result<std::sync::Arc<dyn MediaStorage>, StorageError> {
    let backend = settings.current().storage.backend;
    open_backend(backend, settings, default_root, staging_dir)
}

/// The `backend` storage: the download directory (following
/// `general.download_directory`, else `default_root`), or the S3 bucket of
/// `storage.s3`, staging transfers under `staging_dir` on this machine.
///
/// # Errors
///
/// [`StorageError::Failed`] when the bucket settings cannot make a client,
/// or this build has no S3 support.
pub fn open_backend(
    backend: Backend,
    settings: &crate::SettingsHandle,
    default_root: PathBuf,
    staging_dir: PathBuf,
) -> Result<std::sync::Arc<dyn MediaStorage>, StorageError> {
    match backend {
        Backend::Local => Ok(std::sync::Arc::new(LocalStorage::following(
            settings.clone(),
            default_root,
        ))),
        #[cfg(feature = "s3")]
        Backend::S3 => Ok(std::sync::Arc::new(S3Storage::new(&S3Config::new(
            settings.current().storage.s3.clone(),
            staging_dir,
        ))?)),
        #[cfg(not(feature = "s3"))]
        Backend::S3 => {
            let _ = staging_dir;
            Err(StorageError::Failed(
                "storage.backend = \"s3\" needs a build with the `s3` feature".into(),
            ))
        }
    }
}

/// A stream of one buffer.
pub fn bytes_stream(bytes: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(bytes) }).boxed()
}

/// Reads a whole stream into memory (small objects: probes, sidecars, tests).
///
/// # Errors
///
/// The stream's first error.
pub async fn collect(mut body: ByteStream) -> Result<Bytes, StorageError> {
    let mut all = Vec::new();
    while let Some(chunk) = body.next().await {
        all.extend_from_slice(&chunk?);
    }
    Ok(all.into())
}

/// Hex SHA-256 of a whole object, read from storage.
///
/// # Errors
///
/// What reading failed with.
pub async fn sha256_of(
    storage: &dyn MediaStorage,
    key: &StorageKey,
) -> Result<String, StorageError> {
    let mut body = storage.read(key, None).await?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        hasher.update(&chunk?);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_what_could_leave_the_root() {
        for bad in [
            "", "/a", "a//b", "a/../b", "..", "./a", "a\\b", "a\0b", "a/",
        ] {
            assert!(StorageKey::new(bad).is_err(), "{bad:?} accepted");
        }
        let key = StorageKey::new("direct/host/a.jpg").unwrap();
        assert_eq!((key.dir(), key.name()), ("direct/host", "a.jpg"));
        assert_eq!(
            key.companion(".json").unwrap().as_str(),
            "direct/host/a.jpg.json"
        );
        assert_eq!(key.sibling("b.png").unwrap().as_str(), "direct/host/b.png");
        assert!(key.companion("/x").is_err());
        assert_eq!(StorageKey::new("top").unwrap().dir(), "");
        assert_eq!(
            StorageKey::in_dir(Path::new("a/./b"), "c.txt")
                .unwrap()
                .as_str(),
            "a/b/c.txt"
        );
        assert!(StorageKey::in_dir(Path::new("../up"), "c").is_err());
        assert!(StorageKey::in_dir(Path::new("/abs"), "c").is_err());
        assert_eq!(
            StorageKey::in_dir(Path::new(""), "c").unwrap().as_str(),
            "c"
        );
    }

    #[test]
    fn only_unavailable_storage_is_retried() {
        assert!(StorageError::Unavailable("503".into()).is_retryable());
        assert!(DownloadError::from(StorageError::Unavailable("503".into())).is_retryable());
        for permanent in [
            StorageError::Denied("x".into()),
            StorageError::MissingLocation("x".into()),
            StorageError::NotFound { key: "k".into() },
        ] {
            assert!(!permanent.is_retryable());
            assert!(!DownloadError::from(permanent).is_retryable());
        }
    }
}
