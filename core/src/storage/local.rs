//! The download directory as a [`MediaStorage`]: the only code that
//! touches it. Keys are paths under the root; a write goes to a temporary
//! file in the key's directory, is synced, and is linked into place (a
//! link never replaces another file, unlike a rename).

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{
    Backend, ByteStream, Collision, MediaStorage, ObjectInfo, Staging, StorageError, StorageKey,
    Stored, TEMP_PREFIX, key_prefix,
};
use crate::config::SettingsHandle;
use crate::engine::placement::numbered;

/// A temporary file older than this is a crash's leftover, not a transfer
/// waiting to resume.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Where the root comes from.
#[derive(Debug, Clone)]
enum Root {
    Fixed(PathBuf),
    /// The settings' `general.download_directory`, else the default: the
    /// root may change at any time.
    Settings(SettingsHandle, PathBuf),
}

/// Media in a local directory (the download root).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: Root,
}

impl LocalStorage {
    /// Media under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: Root::Fixed(root.into()),
        }
    }

    /// Media under the settings' `general.download_directory` when set,
    /// else `default_root`; a change of the setting applies to the next
    /// operation.
    pub fn following(settings: SettingsHandle, default_root: impl Into<PathBuf>) -> Self {
        Self {
            root: Root::Settings(settings, default_root.into()),
        }
    }

    /// The root now.
    pub fn root(&self) -> PathBuf {
        match &self.root {
            Root::Fixed(root) => root.clone(),
            Root::Settings(settings, default) => {
                crate::downloads::download_root(&settings.current(), default)
            }
        }
    }

    fn path(&self, key: &StorageKey) -> PathBuf {
        let mut path = self.root();
        path.extend(key.as_str().split('/'));
        path
    }

    /// The key's file, resolved through links, when it exists inside the
    /// root (a link out of the root is treated as missing).
    fn contained(&self, key: &StorageKey) -> Result<PathBuf, StorageError> {
        let missing = || StorageError::NotFound {
            key: key.to_string(),
        };
        let path = self.path(key);
        let root = std::fs::canonicalize(self.root()).map_err(|_| missing())?;
        let resolved = std::fs::canonicalize(&path).map_err(|_| missing())?;
        if resolved.starts_with(&root) && resolved.is_file() {
            Ok(resolved)
        } else {
            Err(missing())
        }
    }
}

#[async_trait]
impl MediaStorage for LocalStorage {
    fn backend(&self) -> Backend {
        Backend::Local
    }

    fn locator(&self, key: &StorageKey) -> String {
        self.path(key).to_string_lossy().into_owned()
    }

    fn key_of(&self, locator: &str) -> Option<StorageKey> {
        let path = Path::new(locator);
        let root = self.root();
        let relative: PathBuf = match path.strip_prefix(&root) {
            Ok(relative) => relative.to_path_buf(),
            Err(_) => {
                // The root as written may differ from the record's (links).
                let root = std::fs::canonicalize(&root).ok()?;
                let parent = std::fs::canonicalize(path.parent()?).ok()?;
                parent.strip_prefix(&root).ok()?.join(path.file_name()?)
            }
        };
        let name = relative.file_name()?.to_str()?;
        StorageKey::in_dir(relative.parent().unwrap_or(Path::new("")), name).ok()
    }

    fn staging(&self, dir: &str) -> Result<Staging, StorageError> {
        let prefix = key_prefix(Path::new(dir))?;
        let mut path = self.root();
        path.extend(prefix.split('/').filter(|s| !s.is_empty()));
        Ok(Staging {
            dir: path,
            links_into_place: true,
        })
    }

    fn local_path(&self, key: &StorageKey) -> Option<PathBuf> {
        self.contained(key).ok()
    }

    async fn put(
        &self,
        key: &StorageKey,
        mut body: ByteStream,
        collision: Collision,
    ) -> Result<Stored, StorageError> {
        let final_path = self.path(key);
        let dir = final_path.parent().unwrap_or(Path::new(".")).to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|err| StorageError::io(&dir, None, &err))?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let written: Result<(u64, String), StorageError> = async {
            let io = |err: std::io::Error| StorageError::io(&temp, None, &err);
            let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.sync_all().await.map_err(io)?;
            Ok((size, hex::encode(hasher.finalize())))
        }
        .await;
        let placed = match written {
            Ok((size, sha256)) => self
                .commit_file(&temp, key, collision)
                .await
                .map(|key| Stored { key, size, sha256 }),
            Err(err) => Err(err),
        };
        if placed.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        placed
    }

    async fn commit_file(
        &self,
        staged: &Path,
        key: &StorageKey,
        collision: Collision,
    ) -> Result<StorageKey, StorageError> {
        let target = self.path(key);
        let root = self.root();
        let staged = staged.to_path_buf();
        let name = key.name().to_owned();
        let placed = tokio::task::spawn_blocking(move || {
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(|err| StorageError::io(dir, None, &err))?;
            match collision {
                Collision::Number => link_into_place(&staged, dir, &name),
                Collision::Replace => std::fs::rename(&staged, &target)
                    .map(|()| target.clone())
                    .map_err(|err| StorageError::io(&target, None, &err)),
            }
        })
        .await
        .map_err(|err| StorageError::Failed(format!("placing a file: {err}")))??;
        let relative = placed
            .strip_prefix(&root)
            .map_err(|_| StorageError::InvalidKey {
                key: placed.display().to_string(),
                reason: "placed outside the root".into(),
            })?;
        let name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        StorageKey::in_dir(
            relative.parent().unwrap_or(Path::new("")),
            name.as_deref().unwrap_or_default(),
        )
    }

    async fn size(&self, key: &StorageKey) -> Result<Option<u64>, StorageError> {
        let path = match self.contained(key) {
            Ok(path) => path,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StorageError::io(&path, Some(key), &err)),
        }
    }

    async fn read(
        &self,
        key: &StorageKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let path = self.contained(key)?;
        let io = |err: std::io::Error| StorageError::io(&path, Some(key), &err);
        let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
        let (start, len) = match range {
            Some(range) => (
                *range.start(),
                range.end().saturating_sub(*range.start()) + 1,
            ),
            None => (0, u64::MAX),
        };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(io)?;
        }
        let shown = path.clone();
        Ok(
            tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024)
                .map(move |chunk| chunk.map_err(|err| StorageError::io(&shown, None, &err)))
                .boxed(),
        )
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let path = match self.contained(key) {
            Ok(path) => path,
            Err(StorageError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        match tokio::fs::remove_file(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(StorageError::io(&path, Some(key), &err))
            }
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            // Only the directory the prefix's last `/` names can hold matches.
            let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
            let mut start = root.clone();
            start.extend(dir_part.split('/').filter(|s| !s.is_empty()));
            let mut found = Vec::new();
            walk(&start, &mut |path, meta| {
                let Ok(relative) = path.strip_prefix(&root) else {
                    return;
                };
                let key = relative
                    .iter()
                    .map(|part| part.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if meta.is_file()
                    && key.starts_with(&prefix)
                    && let Ok(key) = StorageKey::new(key)
                {
                    found.push(ObjectInfo {
                        key,
                        size: meta.len(),
                    });
                }
            });
            found.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        })
        .await
        .map_err(|err| StorageError::Failed(format!("listing: {err}")))?
    }

    /// The download directory exists (it is made at start, not by the
    /// probe) and takes a file.
    async fn check(&self) -> Result<(), StorageError> {
        let root = self.root();
        if !tokio::fs::metadata(&root)
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            return Err(StorageError::MissingLocation(format!(
                "download directory {} does not exist",
                root.display()
            )));
        }
        super::probe(self).await.map_err(|err| {
            StorageError::Denied(format!(
                "download directory {} is not writable: {err}",
                root.display()
            ))
        })
    }

    async fn recover(&self) -> Result<usize, StorageError> {
        Ok(remove_stale_temporaries(self.root(), STALE_TEMP_AGE).await)
    }
}

/// Calls `found` for every file under `dir` (recursively), skipping
/// temporary names.
fn walk(dir: &Path, found: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(&path, found);
        } else {
            found(&path, &meta);
        }
    }
}

/// Removes temporary files and directories under `root` older than
/// `age`; recent ones stay so their downloads resume. Returns how many.
pub(crate) async fn remove_stale_temporaries(root: PathBuf, age: Duration) -> usize {
    tokio::task::spawn_blocking(move || {
        let mut removed = 0usize;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                let is_temp = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
                let stale = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|elapsed| elapsed > age);
                if meta.is_dir() {
                    if is_temp && stale {
                        removed += usize::from(std::fs::remove_dir_all(&path).is_ok());
                    } else {
                        stack.push(path);
                    }
                } else if is_temp && stale {
                    removed += usize::from(std::fs::remove_file(&path).is_ok());
                }
            }
        }
        removed
    })
    .await
    .unwrap_or(0)
}

/// Moves a finished temporary file to `dir/name`, numbering the name
/// rather than overwriting a different file already there. Blocking.
///
/// # Errors
///
/// When no name is free or the file system refuses.
pub(crate) fn link_into_place(
    temp: &Path,
    dir: &Path,
    name: &str,
) -> Result<PathBuf, StorageError> {
    for attempt in 0..10_000 {
        let candidate = dir.join(numbered(name, attempt));
        // A hard link never replaces an existing file, unlike rename.
        match std::fs::hard_link(temp, &candidate) {
            Ok(()) => {
                std::fs::remove_file(temp).map_err(|err| StorageError::io(temp, None, &err))?;
                return Ok(candidate);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !candidate.exists() => {
                // File systems without hard links: rename (after the existence check).
                std::fs::rename(temp, &candidate)
                    .map_err(|err| StorageError::io(&candidate, None, &err))?;
                return Ok(candidate);
            }
            Err(_) => continue,
        }
    }
    Err(StorageError::Failed(format!(
        "no free file name for {name} in {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> crate::storage::conformance::StorageHarness {
        let dir = tempfile::tempdir().unwrap();
        crate::storage::conformance::StorageHarness::new(
            std::sync::Arc::new(LocalStorage::new(dir.path())),
            dir,
        )
    }
    crate::storage_conformance_suite!(fresh);

    #[tokio::test]
    async fn records_of_the_root_map_to_keys_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        let key = StorageKey::new("a/b.jpg").unwrap();
        let locator = storage.locator(&key);
        assert_eq!(
            locator,
            dir.path().join("a").join("b.jpg").to_string_lossy()
        );
        assert_eq!(storage.key_of(&locator), Some(key));
        assert_eq!(storage.key_of("/elsewhere/b.jpg"), None);
        assert_eq!(
            storage.key_of(&dir.path().join("../x.jpg").to_string_lossy()),
            None
        );
    }

    #[tokio::test]
    async fn a_link_out_of_the_root_is_neither_served_nor_deleted() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link")).unwrap();
        let storage = LocalStorage::new(dir.path());
        let key = StorageKey::new("link").unwrap();
        assert!(matches!(
            storage.read(&key, None).await,
            Err(StorageError::NotFound { .. })
        ));
        assert_eq!(storage.size(&key).await.unwrap(), None);
        storage.delete(&key).await.unwrap();
        assert!(secret.exists());
    }
}
