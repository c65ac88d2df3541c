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

/// Fails with the item's error message unless it completed.
fn assert_completed(item: &mediadl::model::QueueItem) {
    assert_eq!(
        item.status,
        mediadl::model::QueueStatus::Completed,
        "{:?}",
        item.error_message
    );
}
