use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LogLevel, Metadata, QueueStatus};

/// Something that happened, as the WebSocket sends it: `{"type", "timestamp", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub timestamp: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
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
    DownloadProgress(ProgressEvent),
    DownloadCompleted(CompletedEvent),
    QueueUpdated(QueueUpdate),
    Log(LogEvent),
    Notification(Notification),
}

/// `download_progress`: a running queue item's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub queue_id: i64,
    pub url: String,
    pub platform: String,
    pub source: String,
    pub status: QueueStatus,
    /// 0–100 over the whole queue item.
    pub progress: u8,
    pub items_downloaded: u32,
    pub items_total: Option<u32>,
    pub current_item: Option<String>,
    /// Megabytes (10^6 bytes) per second of the current transfer.
    pub speed_mbps: f64,
    pub eta_seconds: Option<u64>,
    /// Bytes of the current item so far and in all, when known.
    pub bytes_downloaded: u64,
    pub bytes_total: Option<u64>,
}

/// `download_completed`: a queue item ended (completed or failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedEvent {
    pub queue_id: i64,
    pub url: String,
    pub platform: String,
    pub source: String,
    pub content_type: String,
    pub items_downloaded: u32,
    /// Items that failed within the queue item.
    pub items_failed: u32,
    pub duration_seconds: f64,
    pub status: QueueStatus,
    pub error_message: Option<String>,
    pub job_id: Option<String>,
}

/// What happened to a queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueAction {
    Added,
    Started,
    Updated,
    Paused,
    Resumed,
    Retrying,
    Completed,
    Failed,
    Removed,
    Cleared,
}

/// A queue item in a `queue_updated` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEventItem {
    pub id: i64,
    pub url: String,
    pub platform: String,
    pub source: String,
    pub status: QueueStatus,
    pub priority: u8,
    pub attempts: u32,
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
    pub action: QueueAction,
    pub item: QueueEventItem,
}

/// `log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    pub level: LogLevel,
    pub module: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: Metadata,
}

/// Severity of a notification, as the dashboard colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    Info,
    Success,
    Warning,
    Error,
}

/// A link a notification offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAction {
    pub label: String,
    pub link: String,
}

/// Why a notification was raised; notification rules match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NotificationTopic {
    DownloadCompleted,
    DownloadFailed,
    SourceNeedsAttention,
    ScheduledRunFailed,
    StorageThreshold,
    ForumMonitorExpiring,
    System,
}

/// `notification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub level: NotificationLevel,
    pub title: String,
    pub message: String,
    pub action: Option<NotificationAction>,
    pub auto_dismiss_seconds: Option<u32>,
    pub topic: NotificationTopic,
}
