//! How a run ends: the item completed, retried or failed, failed media
//! recorded, a person told when a login is needed, the job run closed.

use std::time::Instant;

use super::Summary;
use crate::downloader::MediaItem;
use crate::engine::Shared;
use crate::error::{DownloadError, StoreError};
use crate::model::{
    CompletedEvent, DownloadStatus, EventKind, LeaseToken, NewDownload, Notification,
    NotificationAction, NotificationLevel, NotificationTopic, ProgressEvent, QueueAction,
    QueueItem, QueueStatus, RunStatus,
};

/// Ends a run that produced a summary: complete, retry or fail.
pub(super) async fn finish(
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
pub(super) async fn finish_failed(
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
    // One entry per finished item that a person can read in the log view,
    // under the platform's own name; the numbers go in the fields.
    let module = shared.registry.find(&ended.platform, None).map_or_else(
        |_| ended.platform.clone(),
        |d| d.info().platform_display_name,
    );
    let message = finished_message(ended, downloaded, failed, error.as_deref());
    let reason = error.as_deref().unwrap_or_default();
    if !completed {
        tracing::error!(target: "mediadl::engine", module = %module, queue_id = ended.id, platform = %ended.platform, source = %ended.source, downloaded, failed, duration_seconds = duration, error = reason, "{message}");
    } else if failed > 0 {
        tracing::warn!(target: "mediadl::engine", module = %module, queue_id = ended.id, platform = %ended.platform, source = %ended.source, downloaded, failed, duration_seconds = duration, error = reason, "{message}");
    } else {
        tracing::info!(target: "mediadl::engine", module = %module, queue_id = ended.id, platform = %ended.platform, source = %ended.source, downloaded, failed, duration_seconds = duration, "{message}");
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

/// What happened to an item, in words: `Downloaded 8 posts from
/// evalongoria`, `No new videos from someone`, `Downloaded 6 images from
/// Forum, 2 failed: …`, `Could not download posts from someone: …`.
fn finished_message(
    ended: &QueueItem,
    downloaded: u32,
    failed: u32,
    error: Option<&str>,
) -> String {
    let source = &ended.source;
    let kind = &ended.content_type;
    let reason = error.map(|e| format!(": {e}")).unwrap_or_default();
    if ended.status != QueueStatus::Completed {
        return format!("Could not download {} from {source}{reason}", plural(kind));
    }
    match (downloaded, failed) {
        (0, 0) => format!("No new {} from {source}", plural(kind)),
        (n, 0) => format!("Downloaded {} from {source}", counted(n, kind)),
        (n, f) => format!(
            "Downloaded {} from {source}, {f} failed{reason}",
            counted(n, kind)
        ),
    }
}

/// `1 post`, `8 posts`, `1 story`, `3 files`: a count of a content type.
fn counted(n: u32, content_type: &str) -> String {
    if n == 1 {
        format!("1 {}", singular(content_type))
    } else {
        format!("{n} {}", plural(content_type))
    }
}

fn singular(content_type: &str) -> String {
    match content_type {
        "stories" => "story".into(),
        "media" => "media item".into(),
        other => other.strip_suffix('s').unwrap_or(other).to_owned(),
    }
}

fn plural(content_type: &str) -> String {
    match content_type {
        "media" => "media items".into(),
        other if other.ends_with('s') => other.to_owned(),
        other => format!("{other}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewQueueItem;

    #[test]
    fn finished_items_are_told_in_words() {
        let item = |platform: &str, source: &str, kind: &str, status: QueueStatus| {
            let mut item = NewQueueItem::new("https://x.example/", platform, source, kind)
                .into_item(1, chrono::Utc::now());
            item.status = status;
            item
        };
        let done = QueueStatus::Completed;
        let cases = [
            (
                item("instagram", "evalongoria", "posts", done),
                8,
                0,
                None,
                "Downloaded 8 posts from evalongoria",
            ),
            (
                item("instagram", "evalongoria", "stories", done),
                1,
                0,
                None,
                "Downloaded 1 story from evalongoria",
            ),
            (
                item("direct", "example.com", "file", done),
                1,
                0,
                None,
                "Downloaded 1 file from example.com",
            ),
            (
                item("tiktok", "someone", "videos", done),
                0,
                0,
                None,
                "No new videos from someone",
            ),
            (
                item("forum", "Forum", "images", done),
                6,
                2,
                Some("2 items failed; first: HTTP 404"),
                "Downloaded 6 images from Forum, 2 failed: 2 items failed; first: HTTP 404",
            ),
            (
                item("instagram", "gone", "reels", QueueStatus::Failed),
                0,
                0,
                Some("profile not found"),
                "Could not download reels from gone: profile not found",
            ),
        ];
        for (item, downloaded, failed, error, expected) in cases {
            assert_eq!(finished_message(&item, downloaded, failed, error), expected);
        }
    }
}
