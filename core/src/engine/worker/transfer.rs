//! One media item: fetched (or produced by its downloader) into a
//! temporary file under an exclusive turn, deduplicated, committed to the
//! media storage and recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::downloader::{Context, Downloader, MediaItem, Staging};
use crate::downloads::companion_suffix_is_safe;
use crate::engine::placement::{NameParts, relative_location, templates};
use crate::engine::{Shared, TEMP_PREFIX};
use crate::error::{DownloadError, StoreError};
use crate::fetch::transfer::{Fetched, FinalName, Target, fetch_to_file};
use crate::model::{Download, DownloadStatus, NewDownload, QueueItem, Settings};
use crate::storage::{Collision, MediaStorage, StorageKey, bytes_stream, key_prefix};

pub(super) enum Recorded {
    New(Box<Download>),
    /// Another worker recorded the same archive key first.
    AlreadyHad,
}

/// Fetches one media item, places it and records it.
pub(super) async fn download_one(
    shared: &Shared,
    item: &QueueItem,
    downloader: &dyn Downloader,
    media: &MediaItem,
    cx: &Context,
    existing: Option<Download>,
    upgrade: bool,
) -> Result<Recorded, DownloadError> {
    let settings: &Settings = &cx.settings;
    let storage: &dyn MediaStorage = &*shared.storage;
    let now = shared.clock.now();
    let placeholder = NameParts {
        platform: &item.platform,
        source: &item.source,
        content_type: &item.content_type,
        item: media,
        original_name: None,
        media_type: None,
        now,
    };
    // The source's own templates (queue item or job) win over the settings'.
    let (directory_template, filename_template) = templates(&item.metadata, settings);
    let (dir_rel, _) = relative_location(directory_template, filename_template, &placeholder);
    let key_dir = key_prefix(&dir_rel)?;
    let staging_area = storage.staging(&key_dir)?;
    let dir = staging_area.dir.clone();
    let key_hash = crate::model::url_hash(&media.archive_key);
    let temp = dir.join(format!("{TEMP_PREFIX}{}.part", &key_hash[..20]));

    // Two workers on the same item (duplicate queue entries, other
    // processes) take turns on its temporary file; the second then finds
    // the item recorded and stops.
    let turn = take_turn(&dir, &temp, &cx.cancel).await?;
    if !upgrade
        && let Some(done) = shared
            .store
            .download_by_archive_key(&media.archive_key)
            .await
            .map_err(DownloadError::from)?
        && done.status == DownloadStatus::Completed
    {
        remove_file(&temp).await?;
        return Ok(Recorded::AlreadyHad);
    }
    let replace = existing
        .as_ref()
        .filter(|_| upgrade)
        .and_then(|old| old.file_path.as_deref())
        .and_then(|old| storage.key_of(old));
    let staging = Staging::new(dir.join(format!("{TEMP_PREFIX}{}.staging", &key_hash[..20])));
    let began = Instant::now();
    // Files a program wrote beside the media (see `place_companions`).
    let mut companions: Vec<(PathBuf, String)> = Vec::new();
    let fetched = match downloader.transfer(media, &staging, cx).await {
        Some(produced) => {
            let produced = produced?;
            // The file leaves the staging directory (a rename: same file
            // system) before the directory is removed with whatever else
            // the program left there.
            let extension = produced
                .extension()
                .map(|ext| format!(".{}", ext.to_string_lossy()))
                .unwrap_or_default();
            let staged = dir.join(format!(
                "{TEMP_PREFIX}{}.staged{extension}",
                &key_hash[..20]
            ));
            tokio::fs::rename(&produced, &staged)
                .await
                .map_err(|err| io_error(&staged, err))?;
            companions = stage_companions(&produced, &staged).await?;
            let _ = tokio::fs::remove_dir_all(staging.dir())
                .await
                .or_else(ignore_missing);
            hash_file(staged, media.url.clone()).await?
        }
        None => {
            // The file goes straight under its final name unless it replaces the one it upgrades.
            let final_name = |media_type: Option<&str>, original_name: Option<&str>| {
                let parts = NameParts {
                    original_name,
                    media_type,
                    ..placeholder.clone()
                };
                relative_location(directory_template, filename_template, &parts).1
            };
            let target = Target {
                path: &temp,
                file: Arc::clone(&turn.file),
                partial_len: turn.partial_len,
                // The local storage links the file into place on the
                // writer thread; other backends get it committed below.
                final_name: (replace.is_none() && staging_area.links_into_place)
                    .then_some(&final_name as &FinalName<'_>),
            };
            let fetched = fetch_to_file(
                &cx.http,
                &media.url,
                media.referer.as_ref(),
                target,
                &cx.progress,
                &cx.cancel,
            )
            .await;
            match fetched {
                Ok(fetched) => fetched,
                Err(error) => {
                    // Keep a partial file only where a later attempt can
                    // resume it: not after the item's last attempt.
                    let retry_follows = error.is_retryable() && item.attempts < item.max_attempts;
                    let resumable = retry_follows || matches!(error, DownloadError::Cancelled);
                    let empty = tokio::fs::metadata(&temp)
                        .await
                        .is_ok_and(|meta| meta.len() == 0);
                    if !resumable || empty {
                        remove_file(&temp).await?;
                    }
                    return Err(error);
                }
            }
        }
    };
    shared.metrics.transferred(item, fetched.size, began);
    let file_hash = format!("sha256:{}", fetched.sha256);
    let mut metadata = media.metadata.clone();
    if let Some(id) = &media.media_id {
        metadata
            .entry("media_id")
            .or_insert_with(|| id.clone().into());
    }
    if let Some((w, h)) = media.resolution {
        metadata.insert("resolution".into(), format!("{w}x{h}").into());
    }
    metadata.insert("upgraded".into(), upgrade.into());
    if let Some(host) = media.url.host_str() {
        metadata.entry("host").or_insert_with(|| host.into());
    }
    if let Some(media_type) = &fetched.content_type {
        metadata.insert("mime_type".into(), media_type.clone().into());
    }

    let duplicate = if upgrade {
        None
    } else {
        shared
            .store
            .download_by_file_hash(&file_hash)
            .await
            .map_err(DownloadError::from)?
    };
    // The owner's object must still be there for this one to lean on it.
    let mut owner_stored = None;
    if let Some(owner) = duplicate
        && let Some(owner_key) = owner.file_path.as_deref().and_then(|p| storage.key_of(p))
        && storage.size(&owner_key).await?.is_some()
    {
        owner_stored = Some(owner);
    }
    let (file_path, filename, duplicate_of) = match owner_stored {
        Some(owner) => {
            discard(storage, &fetched).await?;
            for (staged, _) in &companions {
                remove_file(staged).await?;
            }
            (
                owner.file_path.clone(),
                owner.filename.clone(),
                Some(owner.id),
            )
        }
        None => {
            let key = match replace {
                _ if fetched.placed => placed_key(storage, &fetched.path)?,
                Some(old) => {
                    storage
                        .commit_file(&fetched.path, &old, Collision::Replace)
                        .await?
                }
                None => {
                    let parts = NameParts {
                        original_name: fetched.disposition_name.as_deref(),
                        media_type: fetched.content_type.as_deref(),
                        ..placeholder.clone()
                    };
                    let (_, name) =
                        relative_location(directory_template, filename_template, &parts);
                    let key = StorageKey::in_dir(&dir_rel, &name)?;
                    storage
                        .commit_file(&fetched.path, &key, Collision::Number)
                        .await?
                }
            };
            let placed = place_companions(storage, &companions, &key).await?;
            if !placed.is_empty() {
                metadata.insert("companions".into(), placed.into());
            }
            if settings.downloads.metadata_sidecar {
                write_sidecar(storage, &key, media, &metadata).await?;
            }
            (
                Some(storage.locator(&key)),
                Some(key.name().to_owned()),
                None,
            )
        }
    };
    let record = NewDownload {
        url: media.url.to_string(),
        archive_key: media.archive_key.clone(),
        platform: item.platform.clone(),
        source: item.source.clone(),
        content_type: media.content_type.clone(),
        filename,
        file_path: file_path.clone(),
        file_size: Some(fetched.size),
        file_hash: Some(file_hash),
        post_date: media.posted_at,
        download_date: shared.clock.now(),
        status: DownloadStatus::Completed,
        attempts: item.attempts,
        error_message: None,
        duplicate_of,
        queue_id: Some(item.id),
        metadata,
    };
    let stored = match &existing {
        Some(old) => shared.store.replace_download(old.id, record).await,
        None => shared.store.insert_download(record).await,
    };
    match stored {
        Ok(download) => Ok(Recorded::New(Box::new(download))),
        Err(StoreError::Conflict(_)) => {
            // Another worker got there first: keep its file and record, not
            // ours — unless both wrote the same key (two processes that
            // looked for a free object name at the same moment).
            if duplicate_of.is_none()
                && let Some(ours) = file_path.as_deref()
                && let Some(key) = storage.key_of(ours)
            {
                let winner = shared
                    .store
                    .download_by_archive_key(&media.archive_key)
                    .await
                    .map_err(DownloadError::from)?;
                if winner.is_none_or(|winner| winner.file_path.as_deref() != Some(ours)) {
                    storage.delete(&key).await?;
                }
            }
            Ok(Recorded::AlreadyHad)
        }
        Err(err) => Err(err.into()),
    }
}

/// This worker's turn on an item's temporary file: held until dropped.
#[derive(Debug)]
struct Turn {
    /// The temporary file, open for reading and appending, and locked.
    file: Arc<std::fs::File>,
    /// Bytes a previous attempt left in the file, to resume from.
    partial_len: u64,
}

/// Takes an exclusive lock on the temporary file `temp` in `dir` (creating
/// both if needed), waiting while another worker holds it. One trip to a
/// blocking thread does it all.
async fn take_turn(
    dir: &Path,
    temp: &Path,
    cancel: &CancellationToken,
) -> Result<Turn, DownloadError> {
    loop {
        let (dir, temp) = (dir.to_path_buf(), temp.to_path_buf());
        let attempt = tokio::task::spawn_blocking(move || {
            // Opened afresh on every attempt: the holder may have moved the
            // file into place meanwhile.
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&temp)
            };
            let file = match open() {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&dir).map_err(|err| io_error(&dir, err))?;
                    open()
                }
                opened => opened,
            }
            .map_err(|err| io_error(&temp, err))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(err)) => return Err(io_error(&temp, err)),
            }
            let partial_len = file.metadata().map_err(|err| io_error(&temp, err))?.len();
            Ok(Some(Turn {
                file: Arc::new(file),
                partial_len,
            }))
        })
        .await
        .map_err(|err| DownloadError::Storage(format!("opening a temporary file: {err}")))??;
        if let Some(turn) = attempt {
            return Ok(turn);
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(DownloadError::Cancelled),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// The key of a file the transfer linked into place itself.
fn placed_key(storage: &dyn MediaStorage, path: &Path) -> Result<StorageKey, DownloadError> {
    storage.key_of(&path.to_string_lossy()).ok_or_else(|| {
        DownloadError::Storage(format!("{} lies outside the storage", path.display()))
    })
}

/// Moves the companions a downloader left beside `produced` in its
/// staging directory (`<stem>.info.json`, `<stem>.en.vtt`, `<stem>.nfo`,
/// named by [`companion_path`]) next to `staged`, before the staging
/// directory goes. Their temporary names start like `staged`'s, so a crash
/// leaves nothing the start-up cleanup misses.
async fn stage_companions(
    produced: &Path,
    staged: &Path,
) -> Result<Vec<(PathBuf, String)>, DownloadError> {
    let Some(dir) = produced.parent() else {
        return Ok(Vec::new());
    };
    let stem = produced
        .file_stem()
        .map(|stem| format!("{}.", stem.to_string_lossy()))
        .unwrap_or_default();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(err) => return Err(io_error(dir, err)),
    };
    let mut staged_companions = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|err| io_error(dir, err))?
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(suffix) = name.strip_prefix(&stem) else {
            continue;
        };
        if !companion_suffix_is_safe(suffix) || !entry.path().is_file() {
            continue;
        }
        let target = crate::downloads::companion_path(staged, suffix);
        tokio::fs::rename(entry.path(), &target)
            .await
            .map_err(|err| io_error(&target, err))?;
        staged_companions.push((target, suffix.to_owned()));
    }
    staged_companions.sort();
    Ok(staged_companions)
}

/// The one place companion files reach their final names: beside the
/// media object, named after it (`Clip.mp4` → `Clip.info.json`, see
/// [`companion_path`](crate::downloads::companion_path)), like the metadata
/// sidecar. Returns their names, recorded with the download so they are
/// deleted with it.
async fn place_companions(
    storage: &dyn MediaStorage,
    companions: &[(PathBuf, String)],
    media: &StorageKey,
) -> Result<Vec<String>, DownloadError> {
    let mut names = Vec::new();
    for (staged, suffix) in companions {
        let name = crate::downloads::companion_path(Path::new(media.name()), suffix)
            .to_string_lossy()
            .into_owned();
        let target = media.sibling(&name)?;
        storage
            .commit_file(staged, &target, Collision::Replace)
            .await?;
        names.push(target.name().to_owned());
    }
    Ok(names)
}

/// Drops a transfer's file: from the storage when the transfer placed it
/// there, else the staged temporary file.
async fn discard(storage: &dyn MediaStorage, fetched: &Fetched) -> Result<(), DownloadError> {
    if fetched.placed {
        storage.delete(&placed_key(storage, &fetched.path)?).await?;
        Ok(())
    } else {
        remove_file(&fetched.path).await
    }
}

/// Writes the metadata sidecar beside the media object (`<key>.json`).
async fn write_sidecar(
    storage: &dyn MediaStorage,
    key: &StorageKey,
    media: &MediaItem,
    metadata: &crate::model::Metadata,
) -> Result<(), DownloadError> {
    let document = serde_json::json!({
        "archive_key": media.archive_key,
        "url": media.url.as_str(),
        "posted_at": media.posted_at,
        "metadata": metadata,
    });
    let body = serde_json::to_vec_pretty(&document)
        .map_err(|err| DownloadError::Storage(err.to_string()))?;
    storage
        .put(
            &key.companion(crate::downloads::SIDECAR_SUFFIX)?,
            bytes_stream(body.into()),
            Collision::Replace,
        )
        .await?;
    Ok(())
}

/// Hashes a file a downloader produced itself, moving it to a temporary name.
async fn hash_file(path: PathBuf, url: url::Url) -> Result<Fetched, DownloadError> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path).map_err(|err| io_error(&path, err))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer).map_err(|err| io_error(&path, err))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(Fetched {
            path,
            placed: false,
            size,
            sha256: hex::encode(hasher.finalize()),
            content_type: None,
            disposition_name: name,
            final_url: url,
        })
    })
    .await
    .map_err(|err| DownloadError::Storage(format!("hashing: {err}")))?
}

fn io_error(path: &Path, err: std::io::Error) -> DownloadError {
    DownloadError::Storage(format!("{}: {err}", path.display()))
}

fn ignore_missing(err: std::io::Error) -> Result<(), std::io::Error> {
    if err.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(err)
    }
}

async fn remove_file(path: &Path) -> Result<(), DownloadError> {
    tokio::fs::remove_file(path)
        .await
        .or_else(ignore_missing)
        .map_err(|err| io_error(path, err))
}
