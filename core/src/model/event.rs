use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LogLevel, Metadata, QueueStatus};

/// Something that happened, as the WebSocket sends it: `{"type", "timestamp", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (UTC).
    pub timestamp: DateTime<Utc>,
    /// What happened; flattened into the `type` and `data` keys.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event of `kind` stamped with the system clock's current time.
    pub fn now(kind: EventKind) -> Self {
        Self {
            timestamp: Utc::now(),
            kind,
        }
    }

    /// The spec's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::DownloadProgress(_) => "download_progress",
            EventKind::DownloadCompleted(_) => "download_completed",
            EventKind::QueueUpdated(_) => "queue_updated",
            EventKind::Log(_) => "log",
            EventKind::Notification(_) => "notification",
        }
    }
}

/// The spec's five WebSocket event kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventKind {
    /// A running queue item moved on: bytes, items, speed.
    DownloadProgress(ProgressEvent),
    /// A queue item ended, completed or failed.
    DownloadCompleted(CompletedEvent),
    /// A queue item was added, changed state or was removed.
    QueueUpdated(QueueUpdate),
    /// A log line at or above the configured level.
    Log(LogEvent),
    /// Something a person should see in the dashboard.
    Notification(Notification),
}

/// `download_progress`: a running queue item's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// The queue item (`queue.id`) this progress belongs to.
    pub queue_id: i64,
    /// The URL the queue item downloads.
    pub url: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the platform downloads from.
    pub source: String,
    /// The queue item's status (normally `downloading`).
    pub status: QueueStatus,
    /// 0–100 over the whole queue item.
    pub progress: u8,
    /// Media items saved so far by this queue item.
    pub items_downloaded: u32,
    /// How many media items the queue item will save, once discovery has counted them.
    pub items_total: Option<u32>,
    /// File name of the item being transferred, if any.
    pub current_item: Option<String>,
    /// Megabytes (10^6 bytes) per second of the current transfer.
    pub speed_mbps: f64,
    /// Seconds until the current transfer ends at the current speed, when its size is known.
    pub eta_seconds: Option<u64>,
    /// Bytes of the current item so far and in all, when known.
    pub bytes_downloaded: u64,
    /// Size of the current item in bytes, when the server said.
    pub bytes_total: Option<u64>,
}

/// `download_completed`: a queue item ended (completed or failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedEvent {
    /// The queue item (`queue.id`) that ended.
    pub queue_id: i64,
    /// The URL the queue item downloaded.
    pub url: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the platform downloaded from.
    pub source: String,
    /// Kind of content asked for (`posts`, `stories`, `thread`, …).
    pub content_type: String,
    /// Media items saved by this run.
    pub items_downloaded: u32,
    /// Items that failed within the queue item.
    pub items_failed: u32,
    /// Wall-clock seconds from start to end of the run.
    pub duration_seconds: f64,
    /// `completed` or `failed`.
    pub status: QueueStatus,
    /// Why the queue item failed, when it did.
    pub error_message: Option<String>,
    /// The scheduled job that enqueued the item, if one did.
    pub job_id: Option<String>,
}

/// What happened to a queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueAction {
    /// Enqueued.
    Added,
    /// A worker claimed it and started downloading.
    Started,
    /// Its fields or its progress counts changed.
    Updated,
    /// Paused by a person; no worker takes it until resumed.
    Paused,
    /// Resumed after a pause.
    Resumed,
    /// Failed with a retryable error and waits for its next attempt.
    Retrying,
    /// Finished successfully.
    Completed,
    /// Failed for good (no attempts left or a permanent error).
    Failed,
    /// Deleted from the queue.
    Removed,
    /// Items were removed in bulk (the spec's `cleared` action).
    Cleared,
}

/// A queue item in a `queue_updated` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEventItem {
    /// Queue item id (`queue.id`).
    pub id: i64,
    /// The URL to download.
    pub url: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the platform downloads from.
    pub source: String,
    /// Status after the action.
    pub status: QueueStatus,
    /// Priority 1 (highest) to 10 (lowest).
    pub priority: u8,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    pub error_message: Option<String>,
}

impl From<&super::QueueItem> for QueueEventItem {
    fn from(item: &super::QueueItem) -> Self {
        Self {
            id: item.id,
            url: item.url.clone(),
            platform: item.platform.clone(),
            source: item.source.clone(),
            status: item.status,
            priority: item.priority,
            attempts: item.attempts,
            error_message: item.error_message.clone(),
        }
    }
}

/// `queue_updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueUpdate {
    /// What happened to the item.
    pub action: QueueAction,
    /// The item as it is after the action.
    pub item: QueueEventItem,
}

/// `log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Severity of the line.
    pub level: LogLevel,
    /// The Rust module path (`tracing` target) that logged it.
    pub module: String,
    /// The formatted message.
    pub message: String,
    /// Structured fields of the log call; omitted when empty.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: Metadata,
}

/// Severity of a notification, as the dashboard colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// Neutral information.
    Info,
    /// Something finished well.
    Success,
    /// Needs attention soon but nothing failed yet.
    Warning,
    /// Something failed.
    Error,
}

/// A link a notification offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAction {
    /// Button text.
    pub label: String,
    /// Where the button leads: a dashboard path or an absolute URL.
    pub link: String,
}

/// Why a notification was raised; notification rules match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NotificationTopic {
    /// A queue item completed.
    DownloadCompleted,
    /// A queue item failed for good.
    DownloadFailed,
    /// A source needs a person (login expired, account private, …).
    SourceNeedsAttention,
    /// A scheduled job's run failed.
    ScheduledRunFailed,
    /// Free disk space fell below the configured threshold.
    StorageThreshold,
    /// A forum thread monitor is close to its end date.
    ForumMonitorExpiring,
    /// mediadl itself (start-up, upgrades, configuration problems).
    System,
}

/// `notification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// How the dashboard colours it.
    pub level: NotificationLevel,
    /// One-line heading.
    pub title: String,
    /// The body text.
    pub message: String,
    /// An optional link to act on it.
    pub action: Option<NotificationAction>,
    /// Seconds after which the dashboard hides it; `None` keeps it until dismissed.
    pub auto_dismiss_seconds: Option<u32>,
    /// What raised it; notification rules match on this.
    pub topic: NotificationTopic,
}
