//! One queue item, start to finish, under its lease.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, FuturesUnordered};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::placement::{NameParts, contained_path, relative_location};
use super::{Shared, TEMP_PREFIX};
use crate::downloader::{Context, Downloader, MediaItem, Request, Staging, TransferProgress};
use crate::error::{DownloadError, StoreError};
use crate::fetch::transfer::{Fetched, FinalName, Target, fetch_to_file, move_into_place};
use crate::format::human_bytes;
use crate::model::{
    CompletedEvent, Download, DownloadStatus, EventKind, LeaseToken, Leased, ListingOrder,
    NewDownload, Notification, NotificationAction, NotificationLevel, NotificationTopic,
    ProgressEvent, QueueAction, QueueItem, QueueProgress, QueueStatus, RunStatus, Settings,
};

/// How a queue item's run ended before its listing was exhausted.
#[derive(Debug)]
enum Stop {
    /// Paused, removed, lease lost, or shutting down.
    Cancelled,
    /// Give the item back without using an attempt, until `wait` has passed.
    Deferred { reason: String, wait: Duration },
    /// The listing itself failed.
    Failed(DownloadError),
}

/// What a run did.
#[derive(Debug, Default)]
struct Summary {
    downloaded: u32,
    failed: Vec<(MediaItem, DownloadError)>,
}

/// Counters the progress reporter reads while the run writes them.
#[derive(Debug)]
struct LiveProgress {
    /// One byte counter per transfer running at once. A slot keeps its last
    /// file's count until the next file takes it, so with one file at a
    /// time the bytes are the current (or just finished) file's, and with
    /// several they are summed over them.
    slots: std::sync::Mutex<Vec<TransferSlot>>,
    items_done: AtomicU32,
    items_total: Option<u32>,
    /// The file started or finished most recently.
    current: std::sync::Mutex<Option<String>>,
}

#[derive(Debug)]
struct TransferSlot {
    progress: Arc<TransferProgress>,
    busy: bool,
}

impl LiveProgress {
    fn new(items_total: Option<u32>) -> Self {
        Self {
            slots: std::sync::Mutex::new(Vec::new()),
            items_done: AtomicU32::new(0),
            items_total,
            current: std::sync::Mutex::new(None),
        }
    }

    /// A byte counter, reset, for a file starting now, and its slot number.
    fn start(&self, media: &MediaItem) -> (usize, Arc<TransferProgress>) {
        *self.current.lock().expect("progress lock") = Some(media.url.to_string());
        let mut slots = self.slots.lock().expect("progress lock");
        let index = match slots.iter().position(|slot| !slot.busy) {
            Some(index) => index,
            None => {
                slots.push(TransferSlot {
                    progress: Arc::new(TransferProgress::new()),
                    busy: false,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        slot.busy = true;
        slot.progress.set(0, None);
        (index, Arc::clone(&slot.progress))
    }

    /// Frees the slot of a file that ended.
    fn finish(&self, index: usize) {
        self.slots.lock().expect("progress lock")[index].busy = false;
    }

    /// Bytes done over all slots, and their total when every slot knows its own.
    fn bytes(&self) -> (u64, Option<u64>) {
        let slots = self.slots.lock().expect("progress lock");
        slots.iter().fold((0, Some(0)), |(done, total), slot| {
            let (slot_done, slot_total) = slot.progress.get();
            (done + slot_done, total.zip(slot_total).map(|(a, b)| a + b))
        })
    }
}

pub(super) async fn process(
    shared: &Arc<Shared>,
    leased: Leased,
    cancel: CancellationToken,
    shutdown: CancellationToken,
) {
    let Leased { item, lease } = leased;
    let started = Instant::now();
    shared.announce(QueueAction::Started, &item).await;
    let settings = shared.settings.current();
    let downloader = shared
        .registry
        .find(&item.platform, item.options.downloader.as_deref());
    let downloader = match downloader {
        Ok(downloader) => downloader,
        Err(err) => {
            let error = DownloadError::permanent(err.to_string());
            finish_failed(shared, &item, &lease, error, started, 0).await;
            return;
        }
    };
    let request = Request::from_item(&item, &settings, shared.clock.now());
    let info = downloader.info();
    let live = LiveProgress::new(match info.listing_order {
        ListingOrder::Single => Some(1),
        _ => request.max_downloads,
    });
    let cx = Context {
        http: shared.clients.for_platform(&item.platform, &settings),
        settings: Arc::clone(&settings),
        cancel: cancel.clone(),
        clock: Arc::clone(&shared.clock),
        state: Arc::clone(&shared.store) as Arc<dyn crate::store::StateRepo>,
        // Discovery's counter, which nothing reads: each file's transfer
        // gets its own (`LiveProgress::start`).
        progress: Arc::new(TransferProgress::new()),
    };

    let lease_lost = AtomicBool::new(false);
    let helpers = CancellationToken::new();
    let work = async {
        let outcome = run(shared, &item, downloader.as_ref(), &request, &cx, &live).await;
        helpers.cancel();
        outcome
    };
    // The lease renewer and the progress reporter run beside the work in
    // this task: nothing to spawn, and nothing else to wake, per item.
    let (outcome, (), ()) = tokio::join!(
        work,
        renew(shared, &lease, &cancel, &lease_lost, &helpers),
        report(shared, &item, &lease, &live, &helpers),
    );

    if lease_lost.load(Ordering::SeqCst) {
        tracing::info!(target: "mediadl::engine", queue_id = item.id, "stopped: the item was paused, removed or taken over");
        return;
    }
    match outcome {
        Err(Stop::Cancelled) => {
            if shutdown.is_cancelled() {
                match shared.store.release(&lease, None, shared.clock.now()).await {
                    Ok(item) => shared.announce(QueueAction::Updated, &item).await,
                    Err(err) => {
                        tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot return the item to the queue")
                    }
                }
            }
        }
        Err(Stop::Deferred { reason, wait }) => {
            let not_before =
                shared.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            match shared
                .store
                .release(&lease, Some(reason.clone()), not_before)
                .await
            {
                Ok(item) => {
                    tracing::info!(target: "mediadl::engine", queue_id = item.id, reason = %reason, "item waits");
                    shared.announce(QueueAction::Updated, &item).await;
                }
                Err(err) => {
                    tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot defer the item")
                }
            }
        }
        Err(Stop::Failed(error)) => {
            let downloaded = live.items_done.load(Ordering::Relaxed);
            finish_failed(shared, &item, &lease, error, started, downloaded).await;
        }
        Ok(summary) => finish(shared, &item, &lease, summary, started).await,
    }
}

/// Discovers and downloads everything new for the request: up to
/// `downloads.files_per_item` files at once, while the listing is read and
/// checked in order beside them.
async fn run(
    shared: &Shared,
    item: &QueueItem,
    downloader: &dyn Downloader,
    request: &Request,
    cx: &Context,
    live: &LiveProgress,
) -> Result<Summary, Stop> {
    let settings = &cx.settings;
    let limit = settings.storage_limit_bytes();
    let used = match limit {
        Some(_) => shared
            .store
            .storage_used()
            .await
            .map_err(|err| Stop::Failed(err.into()))?,
        None => 0,
    };
    if let Some(limit) = limit
        && used >= limit
    {
        return Err(storage_full(shared, used, limit).await);
    }
    let auto_upgrade = settings.platform_common(&item.platform).auto_upgrade;
    let parallel = settings.downloads.files_per_item.max(1) as usize;
    let mut wanted = std::pin::pin!(wanted(
        shared,
        request,
        downloader.info().listing_order,
        auto_upgrade,
        downloader.discover(request, cx),
    ));
    // Transfers stop through their own token, so a stop caused by one of
    // them (or by the listing) can end the others while the run waits for them.
    let transfers_cancel = cx.cancel.child_token();
    let mut in_flight = FuturesUnordered::new();
    let mut tally = Tally {
        summary: Summary::default(),
        used,
        limit,
    };
    let mut listing_open = true;
    let mut broken = None;
    let stop = loop {
        // Files in flight count against max_downloads as if done, so it is never exceeded.
        let started = tally.summary.downloaded as usize + in_flight.len();
        let room = in_flight.len() < parallel
            && request
                .max_downloads
                .is_none_or(|max| started < max as usize);
        if in_flight.is_empty() && !(room && listing_open) {
            break None;
        }
        tokio::select! {
            biased;
            _ = cx.cancel.cancelled() => break Some(Stop::Cancelled),
            Some((slot, media, result)) = in_flight.next() => {
                live.finish(slot);
                if let Some(stop) = tally.settle(item, live, media, result) {
                    break Some(stop);
                }
                // Checked as files complete: the files in flight when the
                // limit is reached are cancelled below and resume later.
                if let Some(limit) = tally.limit
                    && tally.used >= limit
                {
                    break Some(storage_full(shared, tally.used, limit).await);
                }
            }
            next = wanted.next(), if room && listing_open => match next {
                None => listing_open = false,
                Some(Ok(Wanted { media, existing, upgrade })) => {
                    let (slot, progress) = live.start(&media);
                    let file_cx = Context {
                        progress,
                        cancel: transfers_cancel.clone(),
                        ..cx.clone()
                    };
                    in_flight.push(async move {
                        let result =
                            download_one(shared, item, downloader, &media, &file_cx, existing, upgrade)
                                .await;
                        (slot, media, result)
                    });
                }
                Some(Err(Interruption::Stop(stop))) => break Some(stop),
                Some(Err(Interruption::Broken(error))) => {
                    listing_open = false;
                    broken = Some(error);
                }
            },
        }
    };
    if let Some(stop) = stop {
        // Transfers still fetching end with `Cancelled`, keeping their
        // partial files for the next attempt to resume, as a paused item's
        // do; one already placing its file finishes recording it, so no
        // file is left under its final name without a record.
        transfers_cancel.cancel();
        while let Some((slot, media, result)) = in_flight.next().await {
            live.finish(slot);
            tally.settle(item, live, media, result);
        }
        return Err(stop);
    }
    let summary = tally.summary;
    if let Some(error) = broken {
        if summary.downloaded == 0 && summary.failed.is_empty() {
            return Err(Stop::Failed(error));
        }
        // The listing broke after some items: keep what we have, retry the rest later.
        tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %error, "listing stopped early");
        if error.is_retryable() {
            return Err(Stop::Failed(error));
        }
    }
    Ok(summary)
}

/// A listed item that passed the in-order checks: to be fetched.
struct Wanted {
    media: MediaItem,
    existing: Option<Download>,
    upgrade: bool,
}

/// Why the checked listing ended before the listing ran out.
enum Interruption {
    /// End the run now.
    Stop(Stop),
    /// The listing failed; what it gave before still counts.
    Broken(DownloadError),
}

/// The listing with the checks that must see it in order applied: the date
/// window, archived keys (and upgrades), and `stop_after_known` archived
/// items in a row. It ends at the first interruption.
fn wanted<'a>(
    shared: &'a Shared,
    request: &'a Request,
    order: ListingOrder,
    auto_upgrade: bool,
    listing: BoxStream<'static, Result<MediaItem, DownloadError>>,
) -> impl Stream<Item = Result<Wanted, Interruption>> + 'a {
    stream::unfold(Some((listing, 0u32)), move |state| async move {
        let (mut listing, mut known_in_row) = state?;
        let interrupted = |why| Some((Err(why), None));
        loop {
            let media = match listing.next().await? {
                Ok(media) => media,
                Err(DownloadError::Cancelled) => {
                    return interrupted(Interruption::Stop(Stop::Cancelled));
                }
                Err(DownloadError::RateLimited { host, after }) => {
                    return interrupted(Interruption::Stop(rate_limited(&host, after)));
                }
                Err(error) => return interrupted(Interruption::Broken(error)),
            };
            if let (Some(since), Some(posted)) = (request.since, media.posted_at)
                && posted < since
            {
                if order == ListingOrder::NewestFirst {
                    return None;
                }
                continue;
            }
            let existing = match shared
                .store
                .download_by_archive_key(&media.archive_key)
                .await
            {
                Ok(existing) => existing,
                Err(err) => return interrupted(Interruption::Stop(Stop::Failed(err.into()))),
            };
            let upgrade = match &existing {
                Some(done) if done.status == DownloadStatus::Completed => {
                    if auto_upgrade && is_better(&media, done) {
                        true
                    } else {
                        known_in_row += 1;
                        if order == ListingOrder::NewestFirst
                            && request.stop_after_known > 0
                            && known_in_row >= request.stop_after_known
                        {
                            return None;
                        }
                        continue;
                    }
                }
                _ => false,
            };
            let wanted = Wanted {
                media,
                existing,
                upgrade,
            };
            return Some((Ok(wanted), Some((listing, 0))));
        }
    })
}

fn rate_limited(host: &str, after: Duration) -> Stop {
    Stop::Deferred {
        reason: format!("rate limited by {host}; waiting {}s", after.as_secs()),
        wait: after,
    }
}

/// What the finished files of a run add up to.
struct Tally {
    summary: Summary,
    /// Bytes under the download root, as of the run's start plus its new files.
    used: u64,
    limit: Option<u64>,
}

impl Tally {
    /// Counts one finished file; a failure that ends the whole item is returned.
    fn settle(
        &mut self,
        item: &QueueItem,
        live: &LiveProgress,
        media: MediaItem,
        result: Result<Recorded, DownloadError>,
    ) -> Option<Stop> {
        match result {
            Ok(Recorded::New(download)) => {
                self.summary.downloaded += 1;
                live.items_done.fetch_add(1, Ordering::Relaxed);
                if download.duplicate_of.is_none() {
                    self.used += download.file_size.unwrap_or(0);
                }
                *live.current.lock().expect("progress lock") = download.filename;
                None
            }
            Ok(Recorded::AlreadyHad) => None,
            Err(DownloadError::Cancelled) => Some(Stop::Cancelled),
            Err(DownloadError::RateLimited { host, after }) => Some(rate_limited(&host, after)),
            Err(error @ DownloadError::AuthRequired(_)) => Some(Stop::Failed(error)),
            Err(error) => {
                tracing::warn!(target: "mediadl::engine", queue_id = item.id, url = %media.url, error = %error, "item failed");
                self.summary.failed.push((media, error));
                None
            }
        }
    }
}

/// Whether `media` offers a larger picture than the stored record.
fn is_better(media: &MediaItem, stored: &Download) -> bool {
    let Some((w, h)) = media.resolution else {
        return false;
    };
    let stored_area = stored
        .metadata
        .get("resolution")
        .and_then(|r| r.as_str())
        .and_then(|r| r.split_once('x'))
        .and_then(|(w, h)| Some(w.parse::<u64>().ok()? * h.parse::<u64>().ok()?))
        .unwrap_or(u64::MAX);
    u64::from(w) * u64::from(h) > stored_area
}

async fn storage_full(shared: &Shared, used: u64, limit: u64) -> Stop {
    let reason = format!(
        "waiting: storage limit reached ({} of {} used; raise general.storage_limit_gb or free space)",
        human_bytes(used),
        human_bytes(limit)
    );
    shared
        .publish(EventKind::Notification(Notification {
            level: NotificationLevel::Warning,
            title: "Storage limit reached".into(),
            message: reason.clone(),
            action: Some(NotificationAction {
                label: "Settings".into(),
                link: "/settings".into(),
            }),
            auto_dismiss_seconds: None,
            topic: NotificationTopic::StorageThreshold,
        }))
        .await;
    Stop::Deferred {
        reason,
        wait: shared.timing.storage_wait,
    }
}

enum Recorded {
    New(Box<Download>),
    /// Another worker recorded the same archive key first.
    AlreadyHad,
}

/// Fetches one media item, places it and records it.
async fn download_one(
    shared: &Shared,
    item: &QueueItem,
    downloader: &dyn Downloader,
    media: &MediaItem,
    cx: &Context,
    existing: Option<Download>,
    upgrade: bool,
) -> Result<Recorded, DownloadError> {
    let settings: &Settings = &cx.settings;
    let root = shared.download_root();
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
    let (dir_rel, _) = relative_location(
        &settings.downloads.directory_template,
        &settings.downloads.filename_template,
        &placeholder,
    );
    let dir = contained_path(&root, &dir_rel)?;
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
        .map(PathBuf::from)
        .filter(|old| old.starts_with(&root));
    let staging = Staging::new(dir.join(format!("{TEMP_PREFIX}{}.staging", &key_hash[..20])));
    let began = Instant::now();
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
                .map_err(|err| storage(&staged, err))?;
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
                relative_location(
                    &settings.downloads.directory_template,
                    &settings.downloads.filename_template,
                    &parts,
                )
                .1
            };
            let target = Target {
                path: &temp,
                file: Arc::clone(&turn.file),
                partial_len: turn.partial_len,
                final_name: replace.is_none().then_some(&final_name as &FinalName<'_>),
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
                    // Keep a partial file only where a later attempt can resume it.
                    let resumable =
                        error.is_retryable() || matches!(error, DownloadError::Cancelled);
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
    let (file_path, filename, duplicate_of) = match duplicate.filter(|owner| {
        owner
            .file_path
            .as_deref()
            .is_some_and(|p| Path::new(p).exists())
    }) {
        Some(owner) => {
            remove_file(&fetched.path).await?;
            (
                owner.file_path.clone(),
                owner.filename.clone(),
                Some(owner.id),
            )
        }
        None => {
            let final_path = match replace {
                _ if fetched.placed => fetched.path,
                Some(old) => {
                    tokio::fs::rename(&fetched.path, &old)
                        .await
                        .map_err(|err| storage(&old, err))?;
                    old
                }
                None => {
                    let parts = NameParts {
                        original_name: fetched.disposition_name.as_deref(),
                        media_type: fetched.content_type.as_deref(),
                        ..placeholder.clone()
                    };
                    let (_, name) = relative_location(
                        &settings.downloads.directory_template,
                        &settings.downloads.filename_template,
                        &parts,
                    );
                    place(fetched.path, dir, name).await?
                }
            };
            if settings.downloads.metadata_sidecar {
                write_sidecar(&final_path, media, &metadata).await?;
            }
            let filename = final_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            (
                Some(final_path.to_string_lossy().into_owned()),
                filename,
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
            // Another worker got there first: keep its file and record, not ours.
            if duplicate_of.is_none()
                && let Some(path) = file_path
            {
                remove_file(Path::new(&path)).await?;
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
                    std::fs::create_dir_all(&dir).map_err(|err| storage(&dir, err))?;
                    open()
                }
                opened => opened,
            }
            .map_err(|err| storage(&temp, err))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(err)) => return Err(storage(&temp, err)),
            }
            let partial_len = file.metadata().map_err(|err| storage(&temp, err))?.len();
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

/// Moves a finished temporary file to `dir/name` (see [`move_into_place`]).
async fn place(temp: PathBuf, dir: PathBuf, name: String) -> Result<PathBuf, DownloadError> {
    tokio::task::spawn_blocking(move || move_into_place(&temp, &dir, &name))
        .await
        .map_err(|err| DownloadError::Storage(format!("placing a file: {err}")))?
}

async fn write_sidecar(
    path: &Path,
    media: &MediaItem,
    metadata: &crate::model::Metadata,
) -> Result<(), DownloadError> {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".json");
    let sidecar = PathBuf::from(sidecar);
    let document = serde_json::json!({
        "archive_key": media.archive_key,
        "url": media.url.as_str(),
        "posted_at": media.posted_at,
        "metadata": metadata,
    });
    let body = serde_json::to_vec_pretty(&document)
        .map_err(|err| DownloadError::Storage(err.to_string()))?;
    let mut temp = sidecar.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    tokio::fs::write(&temp, body)
        .await
        .map_err(|err| storage(&temp, err))?;
    tokio::fs::rename(&temp, &sidecar)
        .await
        .map_err(|err| storage(&sidecar, err))
}

/// Hashes a file a downloader produced itself, moving it to a temporary name.
async fn hash_file(path: PathBuf, url: url::Url) -> Result<Fetched, DownloadError> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path).map_err(|err| storage(&path, err))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer).map_err(|err| storage(&path, err))?;
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

fn storage(path: &Path, err: std::io::Error) -> DownloadError {
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
        .map_err(|err| storage(path, err))
}

/// Ends a run that produced a summary: complete, retry or fail.
async fn finish(
    shared: &Shared,
    item: &QueueItem,
    lease: &LeaseToken,
    summary: Summary,
    started: Instant,
) {
    let Summary { downloaded, failed } = summary;
    let now = shared.clock.now();
    let retryable = failed
        .iter()
        .any(|(_, err)| err.is_retryable() || matches!(err, DownloadError::Storage(_)));
    if !failed.is_empty() && retryable && item.attempts < item.max_attempts {
        let first = &failed[0].1;
        let message = if failed.len() == 1 {
            first.to_string()
        } else {
            format!("{} items failed; first: {first}", failed.len())
        };
        let retry_after = failed.iter().filter_map(|(_, err)| err.retry_after()).max();
        let delay = shared.retry.delay(item.attempts, retry_after);
        let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        match shared
            .store
            .fail(lease, &message, Some(retry_at), now)
            .await
        {
            Ok(updated) => {
                tracing::info!(target: "mediadl::engine", queue_id = item.id, attempt = item.attempts, retry_in = delay.as_secs(), error = %message, "will retry");
                shared.metrics.retried(&item.platform, first);
                shared.announce(QueueAction::Retrying, &updated).await;
            }
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot record the failure")
            }
        }
        return;
    }
    for (media, error) in &failed {
        record_failure(shared, item, Some(media), error).await;
    }
    let error_message = (!failed.is_empty()).then(|| {
        let first = &failed[0].1;
        if failed.len() == 1 {
            first.to_string()
        } else {
            format!("{} items failed; first: {first}", failed.len())
        }
    });
    let ended = if downloaded == 0 && !failed.is_empty() {
        shared
            .store
            .fail(
                lease,
                error_message.as_deref().unwrap_or_default(),
                None,
                now,
            )
            .await
    } else {
        shared.completer.complete(lease, downloaded, now).await
    };
    match ended {
        Ok(ended) => {
            conclude(
                shared,
                &ended,
                downloaded,
                failed.len() as u32,
                error_message,
                started,
            )
            .await
        }
        Err(err) => {
            tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot record the outcome")
        }
    }
}

/// Ends a run whose listing or single item failed: retry or give up.
async fn finish_failed(
    shared: &Shared,
    item: &QueueItem,
    lease: &LeaseToken,
    error: DownloadError,
    started: Instant,
    downloaded: u32,
) {
    let now = shared.clock.now();
    let can_retry = (error.is_retryable() || matches!(error, DownloadError::Storage(_)))
        && item.attempts < item.max_attempts;
    if can_retry {
        let delay = shared.retry.delay(item.attempts, error.retry_after());
        let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        match shared
            .store
            .fail(lease, &error.to_string(), Some(retry_at), now)
            .await
        {
            Ok(updated) => {
                tracing::info!(target: "mediadl::engine", queue_id = item.id, attempt = item.attempts, retry_in = delay.as_secs(), error = %error, "will retry");
                shared.metrics.retried(&item.platform, &error);
                shared.announce(QueueAction::Retrying, &updated).await;
            }
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot record the failure")
            }
        }
        return;
    }
    if let DownloadError::AuthRequired(reason) = &error {
        needs_attention(shared, item, reason).await;
    }
    record_failure(shared, item, None, &error).await;
    match shared
        .store
        .fail(lease, &error.to_string(), None, now)
        .await
    {
        Ok(ended) => {
            conclude(
                shared,
                &ended,
                downloaded,
                1,
                Some(error.to_string()),
                started,
            )
            .await
        }
        Err(err) => {
            tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot record the failure")
        }
    }
}

/// Leaves a failed download record, so history, stats and success rates count it.
async fn record_failure(
    shared: &Shared,
    item: &QueueItem,
    media: Option<&MediaItem>,
    error: &DownloadError,
) {
    let (url, archive_key, content_type, posted_at, metadata) = match media {
        Some(media) => (
            media.url.to_string(),
            media.archive_key.clone(),
            media.content_type.clone(),
            media.posted_at,
            media.metadata.clone(),
        ),
        None => {
            // A single-URL item fails under the URL's own key, so a later success replaces it.
            let key = match url::Url::parse(&item.url) {
                Ok(url) if item.platform == "direct" => crate::downloader::url_archive_key(&url),
                _ => format!("{}:listing:{}", item.platform, item.id),
            };
            (
                item.url.clone(),
                key,
                item.content_type.clone(),
                None,
                Default::default(),
            )
        }
    };
    let record = NewDownload {
        url,
        archive_key: archive_key.clone(),
        platform: item.platform.clone(),
        source: item.source.clone(),
        content_type,
        filename: None,
        file_path: None,
        file_size: None,
        file_hash: None,
        post_date: posted_at,
        download_date: shared.clock.now(),
        status: DownloadStatus::Failed,
        attempts: item.attempts,
        error_message: Some(error.to_string()),
        duplicate_of: None,
        queue_id: Some(item.id),
        metadata,
    };
    let result = match shared.store.download_by_archive_key(&archive_key).await {
        Ok(Some(existing)) if existing.status == DownloadStatus::Failed => {
            shared.store.replace_download(existing.id, record).await
        }
        Ok(Some(_)) => return,
        Ok(None) => shared.store.insert_download(record).await,
        Err(err) => Err(err),
    };
    if let Err(err) = result
        && !matches!(err, StoreError::Conflict(_))
    {
        tracing::warn!(target: "mediadl::engine", queue_id = item.id, error = %err, "cannot record the failed download");
    }
}

/// A login or cookies are needed: pause the source's job and tell a person.
async fn needs_attention(shared: &Shared, item: &QueueItem, reason: &str) {
    if let Some(job_id) = &item.options.job_id {
        match shared.store.get_job(job_id).await {
            Ok(job) if job.spec.enabled => {
                let paused = shared
                    .store
                    .set_job_enabled(job_id, false, None, shared.clock.now())
                    .await;
                if let Err(err) = paused {
                    tracing::warn!(target: "mediadl::engine", job_id, error = %err, "cannot pause the job");
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", job_id, error = %err, "cannot pause the job")
            }
        }
    }
    tracing::warn!(target: "mediadl::engine", platform = %item.platform, source = %item.source, reason, "source needs attention");
    shared
        .publish(EventKind::Notification(Notification {
            level: NotificationLevel::Error,
            title: format!("{} needs attention", item.platform),
            message: format!(
                "{}: {reason}. Upload fresh cookies or log in, then re-enable the job.",
                item.source
            ),
            action: Some(NotificationAction {
                label: "Platforms".into(),
                link: "/platforms".into(),
            }),
            auto_dismiss_seconds: None,
            topic: NotificationTopic::SourceNeedsAttention,
        }))
        .await;
}

/// Publishes the end of a queue item and closes its job run.
async fn conclude(
    shared: &Shared,
    ended: &QueueItem,
    downloaded: u32,
    failed: u32,
    error: Option<String>,
    started: Instant,
) {
    let duration = started.elapsed().as_secs_f64();
    let completed = ended.status == QueueStatus::Completed;
    if completed {
        shared
            .publish(EventKind::DownloadProgress(ProgressEvent {
                queue_id: ended.id,
                url: ended.url.clone(),
                platform: ended.platform.clone(),
                source: ended.source.clone(),
                status: QueueStatus::Completed,
                progress: 100,
                items_downloaded: downloaded,
                items_total: Some(downloaded + failed),
                current_item: None,
                speed_mbps: 0.0,
                eta_seconds: Some(0),
                bytes_downloaded: 0,
                bytes_total: None,
            }))
            .await;
    }
    shared
        .announce(
            if completed {
                QueueAction::Completed
            } else {
                QueueAction::Failed
            },
            ended,
        )
        .await;
    shared
        .publish(EventKind::DownloadCompleted(CompletedEvent {
            queue_id: ended.id,
            url: ended.url.clone(),
            platform: ended.platform.clone(),
            source: ended.source.clone(),
            content_type: ended.content_type.clone(),
            items_downloaded: downloaded,
            items_failed: failed,
            duration_seconds: duration,
            status: ended.status,
            error_message: error.clone(),
            job_id: ended.options.job_id.clone(),
        }))
        .await;
    if completed {
        tracing::info!(target: "mediadl::engine", queue_id = ended.id, platform = %ended.platform, source = %ended.source, downloaded, failed, "finished");
    } else {
        tracing::warn!(target: "mediadl::engine", queue_id = ended.id, platform = %ended.platform, source = %ended.source, error = error.as_deref().unwrap_or_default(), "failed");
    }
    if let Some(run_id) = ended.options.run_id {
        let status = if completed {
            RunStatus::Success
        } else {
            RunStatus::Failure
        };
        if let Err(err) = shared
            .store
            .close_run(
                run_id,
                status,
                downloaded,
                if completed { None } else { error },
                shared.clock.now(),
            )
            .await
        {
            tracing::warn!(target: "mediadl::engine", run_id, error = %err, "cannot close the job run");
        }
    }
}

/// Renews the lease until told to stop; a lost lease cancels the work.
async fn renew(
    shared: &Shared,
    lease: &LeaseToken,
    cancel: &CancellationToken,
    lost: &AtomicBool,
    stop: &CancellationToken,
) {
    let mut every = tokio::time::interval(shared.timing.renew_every);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        match shared
            .store
            .renew(lease, shared.timing.lease, shared.clock.now())
            .await
        {
            Ok(()) => {}
            Err(StoreError::LeaseLost { .. }) => {
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", queue_id = lease.queue_id, error = %err, "cannot renew the lease")
            }
        }
    }
}

/// Publishes progress at most `downloads.progress_events_per_second` times
/// a second while something changes, and writes it to the store about once
/// a second. The first report comes one period in: an item done sooner
/// (most small files) has only its start and its final 100 %.
async fn report(
    shared: &Shared,
    item: &QueueItem,
    lease: &LeaseToken,
    live: &LiveProgress,
    stop: &CancellationToken,
) {
    let rate = shared
        .settings
        .current()
        .downloads
        .progress_events_per_second
        .max(1);
    let period = Duration::from_millis(1000 / u64::from(rate));
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<(u64, u32)> = None;
    let mut last_bytes = (0u64, Instant::now());
    let mut last_stored = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let (bytes, total_bytes) = live.bytes();
        let done = live.items_done.load(Ordering::Relaxed);
        if last == Some((bytes, done)) {
            continue;
        }
        last = Some((bytes, done));
        let elapsed = last_bytes.1.elapsed().as_secs_f64().max(0.001);
        let speed = bytes.saturating_sub(last_bytes.0) as f64 / elapsed;
        last_bytes = (bytes, Instant::now());
        let fraction = total_bytes
            .filter(|t| *t > 0)
            .map_or(0.0, |t| (bytes as f64 / t as f64).min(1.0));
        let progress = match live.items_total {
            Some(total) if total > 0 => {
                ((f64::from(done) + fraction) / f64::from(total) * 100.0).min(99.0)
            }
            _ => (fraction * 100.0).min(99.0),
        } as u8;
        let eta = match (total_bytes, speed > 0.0) {
            (Some(total), true) if live.items_total == Some(1) => {
                Some((total.saturating_sub(bytes) as f64 / speed) as u64)
            }
            _ => None,
        };
        let current = live.current.lock().expect("progress lock").clone();
        shared
            .publish(EventKind::DownloadProgress(ProgressEvent {
                queue_id: item.id,
                url: item.url.clone(),
                platform: item.platform.clone(),
                source: item.source.clone(),
                status: QueueStatus::Downloading,
                progress,
                items_downloaded: done,
                items_total: live.items_total,
                current_item: current,
                speed_mbps: speed / 1_000_000.0,
                eta_seconds: eta,
                bytes_downloaded: bytes,
                bytes_total: total_bytes,
            }))
            .await;
        if last_stored.elapsed() >= Duration::from_secs(1) {
            last_stored = Instant::now();
            let estimated_completion =
                eta.map(|secs| shared.clock.now() + chrono::Duration::seconds(secs as i64));
            let _ = shared
                .store
                .record_progress(
                    lease,
                    QueueProgress {
                        progress,
                        items_downloaded: done,
                        items_total: live.items_total,
                        estimated_completion,
                    },
                )
                .await;
        }
    }
}
