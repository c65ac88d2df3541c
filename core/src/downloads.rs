//! Download history operations as users request them (API, CLI, embedders):
//! deleting a record with or without its media, bulk actions, retrying,
//! marking upgraded and statistics. Media is only ever touched through the
//! [`MediaStorage`], so a record pointing elsewhere never deletes or serves
//! anything outside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::SettingsHandle;
use crate::error::{Error, StoreError};
use crate::model::{
    Bucket, Download, DownloadTotals, GroupBy, GroupTotals, Metadata, NewQueueItem, Period,
    Settings, TimelinePoint,
};
use crate::queue::QueueService;
use crate::storage::{LocalStorage, MediaStorage, StorageError, StorageKey};
use crate::store::Store;

/// Most ids one bulk request may name.
pub const MAX_BULK_IDS: usize = 1000;

/// The download root in effect: the settings' `general.download_directory`
/// when set, else `default`.
pub fn download_root(settings: &Settings, default: &Path) -> PathBuf {
    let configured = settings.general.download_directory.trim();
    if configured.is_empty() {
        default.to_path_buf()
    } else {
        PathBuf::from(configured)
    }
}

/// What the metadata sidecar's key adds to its media's key (`<file>.json`).
pub const SIDECAR_SUFFIX: &str = ".json";

/// Removes a media object, its sidecar and the companion files recorded
/// beside it (names, see [`recorded_companions`]).
///
/// # Errors
///
/// The first deletion the storage refused.
pub async fn remove_with_companions(
    storage: &dyn MediaStorage,
    key: &StorageKey,
    companions: &[String],
) -> Result<(), StorageError> {
    storage.delete(key).await?;
    storage.delete(&key.companion(SIDECAR_SUFFIX)?).await?;
    for name in companions {
        storage.delete(&key.sibling(name)?).await?;
    }
    Ok(())
}

/// Where a companion file of `media` goes (an `.info.json`, an `.nfo`,
/// subtitles, a thumbnail): beside it, named after it with `suffix` in
/// place of its extension (`Clip.mp4` → `Clip.info.json`, `Clip.en.vtt`),
/// as media servers look for them.
pub fn companion_path(media: &Path, suffix: &str) -> PathBuf {
    let stem = media
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    media.with_file_name(format!("{stem}.{suffix}"))
}

/// Whether `suffix` may end a companion's name: short, and only letters,
/// digits, `-`, `_` and inner dots (no path, no `..`).
pub fn companion_suffix_is_safe(suffix: &str) -> bool {
    !suffix.is_empty()
        && suffix.len() <= 40
        && !suffix.starts_with('.')
        && !suffix.ends_with('.')
        && !suffix.contains("..")
        && suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The companion files recorded with a download (`metadata.companions`):
/// names beside its file, never paths.
pub fn recorded_companions(metadata: &crate::model::Metadata) -> Vec<String> {
    metadata
        .get("companions")
        .and_then(serde_json::Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(serde_json::Value::as_str)
                .filter(|name| !name.contains('/') && !name.starts_with('.'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Files an embedder derives from a download's media (a thumbnail cache),
/// dropped when the media is deleted.
#[async_trait]
pub trait DerivedMedia: Send + Sync + std::fmt::Debug {
    /// Removes whatever was derived from download `id`'s file.
    async fn forget(&self, id: i64);
}

/// A bulk action on downloads (`POST /downloads/bulk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// [`DownloadService::delete`] each.
    Delete,
    /// [`DownloadService::retry`] each.
    Retry,
    /// [`DownloadService::mark_upgraded`] each.
    MarkUpgraded,
}

/// What a bulk action did: how many ids succeeded and why each other failed.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// Ids the action succeeded on.
    pub success: u32,
    /// Each failed id with its error, in the order given.
    pub errors: Vec<(i64, Error)>,
}

/// Where a download's media is, as far as may be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaFile {
    /// The record has no file (a failed download).
    None,
    /// The object is gone, or the record names nothing in the storage.
    Missing,
    /// The object in the storage ([`DownloadService::storage`]), and its size.
    At {
        /// Its key.
        key: StorageKey,
        /// Its length in bytes.
        size: u64,
    },
}

/// A download and the media it shows: a duplicate shows its original's.
#[derive(Debug, Clone)]
pub struct Media {
    /// The record asked for.
    pub download: Download,
    /// The record that owns the file (the original of a duplicate).
    pub owner_id: i64,
    /// The owner's file.
    pub file: MediaFile,
}

/// Download statistics of a [`Period`].
#[derive(Debug, Clone)]
pub struct DownloadStats {
    /// Totals of the period.
    pub totals: DownloadTotals,
    /// Totals per platform.
    pub by_platform: Vec<GroupTotals>,
    /// Totals per source.
    pub by_source: Vec<GroupTotals>,
    /// Totals per content type, when asked for.
    pub by_content_type: Option<Vec<GroupTotals>>,
    /// Daily points for short periods, monthly for a year or everything.
    pub timeline: Vec<TimelinePoint>,
}

/// Deletes, retries and summarises downloads.
#[derive(Debug, Clone)]
pub struct DownloadService {
    store: Arc<dyn Store>,
    queue: QueueService,
    storage: Arc<dyn MediaStorage>,
    clock: Arc<dyn Clock>,
    derived: Option<Arc<dyn DerivedMedia>>,
}

impl DownloadService {
    /// A service over `store`; retries go through `queue`; media is looked
    /// for in a [`LocalStorage`] under the settings' download directory, or
    /// `default_root` when it is empty (see [`DownloadService::with_storage`]);
    /// `clock` places the periods.
    pub fn new(
        store: Arc<dyn Store>,
        queue: QueueService,
        settings: SettingsHandle,
        default_root: impl Into<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            queue,
            storage: Arc::new(LocalStorage::following(settings, default_root)),
            clock,
            derived: None,
        }
    }

    /// Also forget what `derived` made from a file when it is deleted.
    #[must_use]
    pub fn with_derived(mut self, derived: Arc<dyn DerivedMedia>) -> Self {
        self.derived = Some(derived);
        self
    }

    /// Media in `storage` instead of the local download directory.
    #[must_use]
    pub fn with_storage(mut self, storage: Arc<dyn MediaStorage>) -> Self {
        self.storage = storage;
        self
    }

    /// Where the media is.
    pub fn storage(&self) -> &Arc<dyn MediaStorage> {
        &self.storage
    }

    /// A download and where its media is (its original's, for a duplicate).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the download does not exist; the storage's
    /// error when it cannot say whether the object is there.
    pub async fn media(&self, id: i64) -> Result<Media, Error> {
        let download = self.store.get_download(id).await?;
        // An original deleted after its duplicate was recorded: the
        // duplicate shows what it can of itself.
        let owner = match download.duplicate_of {
            Some(original) => self
                .store
                .get_download(original)
                .await
                .unwrap_or_else(|_| download.clone()),
            None => download.clone(),
        };
        let file = match owner.file_path.as_deref() {
            None => MediaFile::None,
            Some(stored) => match self.storage.key_of(stored) {
                None => MediaFile::Missing,
                Some(key) => match self.storage.size(&key).await? {
                    Some(size) => MediaFile::At { key, size },
                    None => MediaFile::Missing,
                },
            },
        };
        Ok(Media {
            download,
            owner_id: owner.id,
            file,
        })
    }

    /// Removes a record and, with `delete_file`, its file, sidecar and
    /// derived media, unless it is a duplicate or other records still
    /// point at the file. A file outside the storage is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the download does not exist or the store fails.
    /// A file that cannot be removed is logged, not an error: the record
    /// is gone either way.
    pub async fn delete(&self, id: i64, delete_file: bool) -> Result<Download, Error> {
        let download = self.store.get_download(id).await?;
        let owns_file = delete_file
            && download.duplicate_of.is_none()
            && self.store.duplicates_of(id).await?.is_empty();
        let deleted = self.store.delete_download(id).await?;
        if owns_file && let Some(stored) = download.file_path.as_deref() {
            let companions = recorded_companions(&download.metadata);
            self.remove_media(id, stored, &companions).await;
        }
        Ok(deleted)
    }

    async fn remove_media(&self, id: i64, stored: &str, companions: &[String]) {
        let Some(key) = self.storage.key_of(stored) else {
            tracing::warn!(
                target: "mediadl::downloads",
                path = stored, "not deleting a file outside the storage"
            );
            return;
        };
        if let Err(err) = remove_with_companions(&*self.storage, &key, companions).await {
            tracing::warn!(target: "mediadl::downloads", key = %key, error = %err, "could not delete file");
        }
        if let Some(derived) = &self.derived {
            derived.forget(id).await;
        }
    }

    /// Queues a download again: its queue item when it still exists, else
    /// (for `direct` downloads, whose URL is the whole request) a new item.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the download does not exist, its queue item
    /// cannot be retried, or ([`StoreError::Conflict`]) the item is gone and
    /// the platform needs its source queued again; the errors of
    /// [`QueueService::submit`] for the new item.
    pub async fn retry(&self, id: i64) -> Result<(), Error> {
        let download = self.store.get_download(id).await?;
        if let Some(queue_id) = download.queue_id {
            match self.queue.retry(queue_id).await {
                Ok(_) => return Ok(()),
                Err(Error::Store(StoreError::NotFound { .. })) => {}
                Err(err) => return Err(err),
            }
        }
        if download.platform != "direct" {
            return Err(StoreError::Conflict(
                "the queue item that produced this download is gone; queue the source again".into(),
            )
            .into());
        }
        self.queue
            .submit(NewQueueItem {
                priority: 0,
                max_attempts: 0,
                ..NewQueueItem::new(download.url, "direct", download.source, "file")
            })
            .await?;
        Ok(())
    }

    /// Records that a better copy of the download was fetched
    /// (`metadata.upgraded = true`).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the download does not exist.
    pub async fn mark_upgraded(&self, id: i64) -> Result<Download, Error> {
        let mut patch = Metadata::new();
        patch.insert("upgraded".into(), serde_json::Value::Bool(true));
        Ok(self.store.update_download_metadata(id, patch).await?)
    }

    /// Applies `action` to each of `ids` (1 to [`MAX_BULK_IDS`]); one
    /// failure does not stop the others.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming `ids` when there are none or too many.
    pub async fn bulk(
        &self,
        action: BulkAction,
        ids: &[i64],
        delete_files: bool,
    ) -> Result<BulkOutcome, Error> {
        if ids.is_empty() || ids.len() > MAX_BULK_IDS {
            return Err(Error::invalid("ids", format!("1 to {MAX_BULK_IDS} ids")));
        }
        let mut outcome = BulkOutcome::default();
        for &id in ids {
            let done = match action {
                BulkAction::Delete => self.delete(id, delete_files).await.map(drop),
                BulkAction::Retry => self.retry(id).await,
                BulkAction::MarkUpgraded => self.mark_upgraded(id).await.map(drop),
            };
            match done {
                Ok(()) => outcome.success += 1,
                Err(err) => outcome.errors.push((id, err)),
            }
        }
        Ok(outcome)
    }

    /// Totals, breakdowns and a timeline of `period`, with the per content
    /// type breakdown when `by_content_type`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    pub async fn statistics(
        &self,
        period: Period,
        by_content_type: bool,
    ) -> Result<DownloadStats, Error> {
        let window = period.window(self.clock.now());
        let bucket = match period {
            Period::Year | Period::All => Bucket::Month,
            Period::Today | Period::Week | Period::Month => Bucket::Day,
        };
        let store = &self.store;
        let (totals, by_platform, by_source, timeline) = tokio::try_join!(
            store.download_totals(window),
            store.download_totals_by(GroupBy::Platform, window),
            store.download_totals_by(GroupBy::Source, window),
            store.download_timeline(bucket, window),
        )?;
        let by_content_type = if by_content_type {
            Some(
                store
                    .download_totals_by(GroupBy::ContentType, window)
                    .await?,
            )
        } else {
            None
        };
        Ok(DownloadStats {
            totals,
            by_platform,
            by_source,
            by_content_type,
            timeline,
        })
    }

    /// Totals of everything downloaded so far.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    pub async fn totals(&self) -> Result<DownloadTotals, Error> {
        Ok(self
            .store
            .download_totals(Period::All.window(self.clock.now()))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::clock::ManualClock;
    use crate::downloader::Registry;
    use crate::events::BroadcastBus;
    use crate::model::{NewDownload, QueueStatus, WorkerId};
    use crate::store::conformance::new_download;
    use crate::store::{DownloadRepo, MemoryStore, QueueRepo};

    /// Remembers which downloads' derived media it was told to forget.
    #[derive(Debug, Default)]
    struct Forgotten(Mutex<Vec<i64>>);

    #[async_trait]
    impl DerivedMedia for Forgotten {
        async fn forget(&self, id: i64) {
            self.0.lock().unwrap().push(id);
        }
    }

    struct Fixture {
        store: Arc<MemoryStore>,
        service: DownloadService,
        forgotten: Arc<Forgotten>,
        root: tempfile::TempDir,
        clock: Arc<ManualClock>,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap(),
        ));
        let settings = SettingsHandle::new(Settings::default());
        let queue = QueueService::new(
            store.clone(),
            Arc::new(BroadcastBus::new(16)),
            Arc::new(Registry::builtin()),
            settings.clone(),
            clock.clone(),
        );
        let root = tempfile::tempdir().unwrap();
        let forgotten = Arc::new(Forgotten::default());
        let service =
            DownloadService::new(store.clone(), queue, settings, root.path(), clock.clone())
                .with_derived(forgotten.clone());
        Fixture {
            store,
            service,
            forgotten,
            root,
            clock,
        }
    }

    fn sidecar(file: &Path) -> PathBuf {
        PathBuf::from(format!("{}{SIDECAR_SUFFIX}", file.display()))
    }

    impl Fixture {
        /// A completed download whose file (and sidecar) exist under `dir`.
        async fn saved(&self, dir: &Path, key: &str) -> (Download, PathBuf) {
            let file = dir.join(format!("{key}.jpg"));
            std::fs::write(&file, b"jpeg").unwrap();
            std::fs::write(sidecar(&file), b"{}").unwrap();
            let mut new = new_download(key, self.clock.now());
            new.file_path = Some(file.display().to_string());
            (self.store.insert_download(new).await.unwrap(), file)
        }

        async fn insert(&self, new: NewDownload) -> Download {
            self.store.insert_download(new).await.unwrap()
        }
    }

    #[tokio::test]
    async fn delete_removes_the_file_its_sidecar_and_derived_media_only_when_asked() {
        let f = fixture();
        let (kept, kept_file) = f.saved(f.root.path(), "kept").await;
        f.service.delete(kept.id, false).await.unwrap();
        assert!(kept_file.exists() && sidecar(&kept_file).exists());
        assert!(f.store.get_download(kept.id).await.is_err());

        let (gone, gone_file) = f.saved(f.root.path(), "gone").await;
        f.service.delete(gone.id, true).await.unwrap();
        assert!(!gone_file.exists(), "the file is deleted");
        assert!(!sidecar(&gone_file).exists(), "so is its sidecar");
        assert_eq!(*f.forgotten.0.lock().unwrap(), [gone.id]);

        let missing = f.service.delete(gone.id, true).await.unwrap_err();
        assert!(matches!(missing, Error::Store(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn a_file_still_shown_by_another_record_or_outside_the_root_stays() {
        let f = fixture();
        let (original, file) = f.saved(f.root.path(), "original").await;
        let mut copy = new_download("copy", f.clock.now());
        copy.file_path = original.file_path.clone();
        copy.duplicate_of = Some(original.id);
        let copy = f.insert(copy).await;

        f.service.delete(original.id, true).await.unwrap();
        assert!(file.exists(), "the duplicate still shows it");
        f.service.delete(copy.id, true).await.unwrap();
        assert!(file.exists(), "a duplicate never owns the file");

        let elsewhere = tempfile::tempdir().unwrap();
        let (outside, outside_file) = f.saved(elsewhere.path(), "outside").await;
        f.service.delete(outside.id, true).await.unwrap();
        assert!(outside_file.exists(), "outside the download root");
        assert!(f.forgotten.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn media_is_the_originals_file_inside_the_root() {
        let f = fixture();
        let (original, file) = f.saved(f.root.path(), "original").await;
        let mut copy = new_download("copy", f.clock.now());
        copy.file_path = None;
        copy.duplicate_of = Some(original.id);
        let copy = f.insert(copy).await;
        let media = f.service.media(copy.id).await.unwrap();
        assert_eq!(media.download.id, copy.id);
        assert_eq!(media.owner_id, original.id);
        assert_eq!(
            media.file,
            MediaFile::At {
                key: StorageKey::new("original.jpg").unwrap(),
                size: 4
            }
        );

        let mut failed = new_download("failed", f.clock.now());
        failed.file_path = None;
        let failed = f.insert(failed).await;
        assert_eq!(
            f.service.media(failed.id).await.unwrap().file,
            MediaFile::None
        );

        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            f.service.media(original.id).await.unwrap().file,
            MediaFile::Missing
        );
        let elsewhere = tempfile::tempdir().unwrap();
        let (outside, _) = f.saved(elsewhere.path(), "outside").await;
        assert_eq!(
            f.service.media(outside.id).await.unwrap().file,
            MediaFile::Missing
        );
    }

    #[tokio::test]
    async fn the_settings_download_directory_wins_over_the_default_root() {
        let f = fixture();
        let media = StorageKey::new("a.jpg").unwrap();
        assert_eq!(
            f.service.storage().locator(&media),
            f.root.path().join("a.jpg").to_string_lossy()
        );
        let mut settings = Settings::default();
        settings.general.download_directory = "/srv/media".into();
        assert_eq!(
            download_root(&settings, f.root.path()),
            Path::new("/srv/media")
        );
    }

    #[tokio::test]
    async fn retry_requeues_the_failed_item_or_a_new_direct_one() {
        let f = fixture();
        let now = f.clock.now();
        let item = f
            .store
            .enqueue(
                NewQueueItem::new("https://example.com/a.jpg", "direct", "example.com", "file"),
                now,
            )
            .await
            .unwrap();
        let leased = f
            .store
            .claim(&WorkerId("w".into()), 1, Duration::from_secs(60), now)
            .await
            .unwrap()
            .pop()
            .unwrap();
        f.store
            .fail(&leased.lease, "HTTP 404", None, now)
            .await
            .unwrap();
        let mut from_item = new_download("a", now);
        from_item.queue_id = Some(item.id);
        let from_item = f.insert(from_item).await;
        f.service.retry(from_item.id).await.unwrap();
        let retried = f.store.get_queue_item(item.id).await.unwrap();
        assert_eq!(retried.status, QueueStatus::Pending);

        f.store.delete_queue_item(item.id).await.unwrap();
        f.service.retry(from_item.id).await.unwrap();
        let counts = f.store.queue_counts().await.unwrap();
        assert_eq!(counts.pending, 1, "a new direct item for its URL");

        let mut social = new_download("s", now);
        social.platform = "instagram".into();
        social.queue_id = Some(item.id);
        let social = f.insert(social).await;
        let refused = f.service.retry(social.id).await.unwrap_err();
        assert!(matches!(refused, Error::Store(StoreError::Conflict(_))));
    }

    #[tokio::test]
    async fn bulk_applies_to_each_id_and_reports_the_failures() {
        let f = fixture();
        let a = f.insert(new_download("a", f.clock.now())).await;
        let b = f.insert(new_download("b", f.clock.now())).await;
        let outcome = f
            .service
            .bulk(BulkAction::MarkUpgraded, &[a.id, 999, b.id], false)
            .await
            .unwrap();
        assert_eq!(outcome.success, 2);
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].0, 999);
        let upgraded = f.store.get_download(a.id).await.unwrap();
        assert_eq!(upgraded.metadata["upgraded"], serde_json::Value::Bool(true));

        let deleted = f
            .service
            .bulk(BulkAction::Delete, &[a.id, b.id], false)
            .await
            .unwrap();
        assert_eq!((deleted.success, deleted.errors.len()), (2, 0));

        for ids in [Vec::new(), vec![1; MAX_BULK_IDS + 1]] {
            let refused = f
                .service
                .bulk(BulkAction::Retry, &ids, false)
                .await
                .unwrap_err();
            assert!(matches!(refused, Error::Invalid { ref field, .. } if field == "ids"));
        }
    }

    #[tokio::test]
    async fn statistics_cover_the_period() {
        let f = fixture();
        let now = f.clock.now();
        let mut old = new_download("old", now - chrono::Duration::days(40));
        old.platform = "forum".into();
        old.content_type = "thread".into();
        f.insert(old).await;
        f.insert(new_download("today", now)).await;

        let month = f.service.statistics(Period::Month, false).await.unwrap();
        assert_eq!(month.totals.total, 1);
        assert_eq!(month.by_platform.len(), 1);
        assert_eq!(month.by_platform[0].key, "direct");
        assert!(month.by_content_type.is_none());
        assert_eq!(month.timeline.iter().map(|p| p.downloads).sum::<u64>(), 1);

        let all = f.service.statistics(Period::All, true).await.unwrap();
        assert_eq!(all.totals.total, 2);
        assert_eq!(all.by_source.len(), 1);
        let kinds: Vec<&str> = all
            .by_content_type
            .as_ref()
            .unwrap()
            .iter()
            .map(|group| group.key.as_str())
            .collect();
        assert_eq!(kinds.len(), 2);
        assert!(kinds.contains(&"thread"));
        assert_eq!(f.service.totals().await.unwrap(), all.totals);
    }

    #[test]
    fn periods_parse_and_end_now() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 30, 0).unwrap();
        let midnight = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
        assert_eq!("day".parse::<Period>().unwrap(), Period::Today);
        assert_eq!(Period::Today.window(now).from, Some(midnight));
        assert_eq!(
            "week".parse::<Period>().unwrap().window(now).from,
            Some(midnight - chrono::Duration::days(6))
        );
        assert_eq!(Period::All.window(now), crate::model::Window::default());
        let refused = "decade".parse::<Period>().unwrap_err();
        assert!(matches!(refused, Error::Invalid { ref field, .. } if field == "period"));
    }
}
