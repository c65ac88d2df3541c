//! Moving media from one storage to another (`mediadl storage migrate`):
//! each object is copied, its copy's hash checked against the record, and
//! the records pointing at it are updated. A record already pointing into
//! the target is skipped, so an interrupted migration resumes where it
//! stopped. The source objects stay until the operator removes them.

use crate::error::Error;
use crate::model::{Download, DownloadFilter, Page};
use crate::store::Store;

use super::{Collision, MediaStorage, StorageError, StorageKey, sha256_of};

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Objects copied and their records updated.
    pub moved: u64,
    /// Records that already pointed into the target (an earlier run).
    pub already_there: u64,
    /// Records without media (failed downloads, duplicates of a moved original).
    pub without_media: u64,
    /// Each record that could not be moved, with why.
    pub failed: Vec<(i64, String)>,
}

/// Copies every download's media from `from` to `to` and updates the
/// records; `progress(done, total)` is called after each record.
///
/// # Errors
///
/// [`Error::Store`] when the records cannot be read or updated. A single
/// object that cannot be copied or verified is reported in
/// [`MigrationReport::failed`] and left where it was.
pub async fn migrate(
    store: &dyn Store,
    from: &dyn MediaStorage,
    to: &dyn MediaStorage,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<MigrationReport, Error> {
    let mut report = MigrationReport::default();
    let mut done = 0u64;
    // Records change their file path, never their order or number: pages stay put.
    for page in 1.. {
        let rows = store
            .list_downloads(
                &DownloadFilter::default(),
                Page::new(page, Page::MAX_PER_PAGE),
            )
            .await?;
        let total = rows.total;
        let last = rows.items.len() < Page::MAX_PER_PAGE as usize;
        for download in rows.items {
            match move_one(store, from, to, &download).await {
                Ok(Moved::Copied) => report.moved += 1,
                Ok(Moved::AlreadyThere) => report.already_there += 1,
                Ok(Moved::NoMedia) => report.without_media += 1,
                Err(MoveError::Store(err)) => return Err(err),
                Err(MoveError::Object(why)) => report.failed.push((download.id, why)),
            }
            done += 1;
            progress(done, total);
        }
        if last {
            break;
        }
    }
    Ok(report)
}

enum Moved {
    Copied,
    AlreadyThere,
    NoMedia,
}

enum MoveError {
    Store(Error),
    Object(String),
}

impl From<StorageError> for MoveError {
    fn from(err: StorageError) -> Self {
        Self::Object(err.to_string())
    }
}

async fn move_one(
    store: &dyn Store,
    from: &dyn MediaStorage,
    to: &dyn MediaStorage,
    download: &Download,
) -> Result<Moved, MoveError> {
    let Some(path) = download.file_path.as_deref() else {
        return Ok(Moved::NoMedia);
    };
    if to.key_of(path).is_some() {
        return Ok(Moved::AlreadyThere);
    }
    if download.duplicate_of.is_some() {
        // Moved with its original (relocating the original's path moves it).
        return Ok(Moved::NoMedia);
    }
    let key = from
        .key_of(path)
        .ok_or_else(|| MoveError::Object(format!("{path} is not in the source storage")))?;
    let copied = copy(from, to, &key).await?;
    let hash = sha256_of(to, &copied).await?;
    if let Some(recorded) = download.file_hash.as_deref()
        && recorded != format!("sha256:{hash}")
    {
        let _ = to.delete(&copied).await;
        return Err(MoveError::Object(format!(
            "{key}: the copy's hash sha256:{hash} is not the recorded {recorded}"
        )));
    }
    let sidecar = key.companion(crate::downloads::SIDECAR_SUFFIX)?;
    if from.size(&sidecar).await?.is_some() {
        copy(from, to, &sidecar).await?;
    }
    store
        .relocate_file(path, &to.locator(&copied))
        .await
        .map_err(|err| MoveError::Store(err.into()))?;
    Ok(Moved::Copied)
}

async fn copy(
    from: &dyn MediaStorage,
    to: &dyn MediaStorage,
    key: &StorageKey,
) -> Result<StorageKey, StorageError> {
    let body = from.read(key, None).await?;
    Ok(to.put(key, body, Collision::Replace).await?.key)
}
