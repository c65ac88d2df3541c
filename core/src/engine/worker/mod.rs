//! One queue item, start to finish, under its lease: the run loop here
//! (listing, the in-order checks, lease renewal), each file's transfer and
//! placement in [`transfer`], how a run's end is recorded in [`outcome`],
//! and progress reporting in [`progress`].

mod outcome;
mod progress;
mod transfer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, FuturesUnordered};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::downloader::{Context, Downloader, MediaItem, Request, TransferProgress};
use crate::engine::Shared;
use crate::error::{DownloadError, StoreError};
use crate::format::human_bytes;
use crate::model::{
    Download, DownloadStatus, EventKind, LeaseToken, Leased, ListingOrder, Notification,
    NotificationAction, NotificationLevel, NotificationTopic, QueueAction, QueueItem,
};
use outcome::{finish, finish_failed};
use progress::{LiveProgress, report};
use transfer::{Recorded, download_one};

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
