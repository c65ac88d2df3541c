//! The core crate's integration tests: the engine end to end on the
//! in-memory store against local fixture servers, and each platform.

mod engine;
#[cfg(any(feature = "ytdlp", feature = "gallerydl"))]
mod engines;
#[cfg(feature = "forum")]
mod forum;
#[cfg(all(feature = "ytdlp", feature = "gallerydl"))]
mod general_platforms;
#[cfg(feature = "instagram")]
mod instagram;
#[cfg(all(feature = "notify-email", feature = "webhooks"))]
mod notify;
mod scheduler;
#[cfg(feature = "s3")]
mod storage;
#[cfg(feature = "tiktok")]
mod tiktok;

/// Fails unless the item failed with an error message saying `words`.
fn assert_failed(item: &mediadl::model::QueueItem, words: &str) {
    assert_eq!(
        item.status,
        mediadl::model::QueueStatus::Failed,
        "{:?}",
        item.error_message
    );
    let message = item.error_message.as_deref().unwrap_or_default();
    assert!(message.contains(words), "{words:?} not in {message:?}");
}

/// Fails with the item's error message unless it completed.
fn assert_completed(item: &mediadl::model::QueueItem) {
    assert_eq!(
        item.status,
        mediadl::model::QueueStatus::Completed,
        "{:?}",
        item.error_message
    );
}

/// Fails unless `err` has the error code `code` and its message says
/// `words`; `case` names the scenario in the failure.
#[cfg(any(
    feature = "ytdlp",
    feature = "gallerydl",
    feature = "instagram",
    feature = "tiktok"
))]
#[track_caller]
fn assert_failure(err: &mediadl::DownloadError, code: &str, words: &str, case: &str) {
    assert_eq!(err.code(), code, "{case}: {err:?}");
    assert!(err.to_string().contains(words), "{case}: {err}");
}

/// Fails unless `downloader` is unavailable under `settings` for a reason
/// that says `words`.
#[cfg(any(
    feature = "ytdlp",
    feature = "gallerydl",
    feature = "instagram",
    feature = "tiktok"
))]
async fn assert_unavailable(
    downloader: &dyn mediadl::Downloader,
    settings: &mediadl::Settings,
    words: &str,
) {
    let reason = downloader.check(settings).await.unwrap_err().reason;
    assert!(reason.contains(words), "{words:?} not in {reason:?}");
}

/// The archive keys of `items`, in order.
#[cfg(any(feature = "ytdlp", feature = "gallerydl", feature = "instagram"))]
fn archive_keys(items: &[mediadl::MediaItem]) -> Vec<&str> {
    items.iter().map(|i| i.archive_key.as_str()).collect()
}
