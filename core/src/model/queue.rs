use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Metadata;

/// Lifecycle of a queue item.
///
/// `pending → downloading → completed | failed`, with `paused` reachable
/// from `pending` and `downloading` (the spec's list omits it; PATCH uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QueueStatus {
    /// Waiting for a worker (possibly until `next_attempt_at`).
    Pending,
    /// Claimed by a worker that holds its lease.
    Downloading,
    /// Held back by a person; no worker claims it until resumed.
    Paused,
    /// Finished successfully.
    Completed,
    /// Finished with an error after its last attempt, or a permanent error.
    Failed,
}

impl QueueStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [QueueStatus; 5] = [
        Self::Pending,
        Self::Downloading,
        Self::Paused,
        Self::Completed,
        Self::Failed,
    ];

    /// Completed and failed items never run again unless retried.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

spellings! {
    QueueStatus, field "status", unknown "queue status";
    Pending => "pending",
    Downloading => "downloading",
    Paused => "paused",
    Completed => "completed",
    Failed => "failed",
}

/// One unit of work: a URL, or a source to check, waiting for or held by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueItem {
    /// Store-assigned id, unique and increasing.
    pub id: i64,
    /// The URL to download, or the source's canonical URL.
    pub url: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the platform downloads from.
    pub source: String,
    /// Kind of content asked for (`posts`, `stories`, `thread`, …); what is valid depends on the platform.
    pub content_type: String,
    /// `Referer` header to send with the requests, when the URL needs one.
    pub referer: Option<String>,
    /// Directory the files go to, when the request fixed one.
    pub save_path: Option<String>,
    /// 1 is the most urgent, 10 the least.
    pub priority: u8,
    /// Where the item is in its lifecycle.
    pub status: QueueStatus,
    /// Attempts started so far (a claim starts one).
    pub attempts: u32,
    /// Attempts allowed before a retryable failure becomes final.
    pub max_attempts: u32,
    /// When the item was enqueued.
    pub created_date: DateTime<Utc>,
    /// When the current or last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the item finished (the spec's name).
    pub download_date: Option<DateTime<Utc>>,
    /// 0–100.
    pub progress: u8,
    /// Expected finish time, from the current transfer speed.
    pub estimated_completion: Option<DateTime<Utc>>,
    /// The worker holding the lease while `downloading`.
    pub assigned_worker: Option<String>,
    /// The last failed attempt's error.
    pub error_message: Option<String>,
    /// Not claimed before this time (retry backoff, storage wait).
    pub next_attempt_at: DateTime<Utc>,
    /// When the current lease runs out; another worker may claim the item after it.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Media items saved so far.
    pub items_downloaded: u32,
    /// Media items discovery has counted, once it knows.
    pub items_total: Option<u32>,
    /// What to fetch beyond platform, source and content type.
    pub options: RequestOptions,
    /// Free-form data carried from the request to the downloads (job name, forum post, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
}

/// What to fetch for a source, beyond platform/source/content type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestOptions {
    /// Downloader name within the platform (`native`, `gallery-dl`, …); the
    /// platform's default when absent.
    pub downloader: Option<String>,
    /// Save at most this many new media items.
    pub max_downloads: Option<u32>,
    /// Only media posted within this many days (the request's `since`).
    pub days_back: Option<u32>,
    /// Stop a newest-first listing after this many already archived items in a row.
    pub stop_after_known: Option<u32>,
    /// Scheduled job and its history row, when a job fired this item.
    pub job_id: Option<String>,
    /// The `scheduled_runs` row recording the job's run.
    pub run_id: Option<i64>,
}

/// A queue item before the store has given it an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewQueueItem {
    /// The URL to download, or the source's canonical URL.
    pub url: String,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the platform downloads from.
    pub source: String,
    /// Kind of content asked for (`posts`, `stories`, `thread`, …).
    pub content_type: String,
    /// `Referer` header to send with the requests, when the URL needs one.
    pub referer: Option<String>,
    /// Directory the files go to, instead of the placement template's.
    pub save_path: Option<String>,
    /// 1 is the most urgent, 10 the least.
    pub priority: u8,
    /// Attempts allowed before a retryable failure becomes final.
    pub max_attempts: u32,
    /// What to fetch beyond platform, source and content type.
    pub options: RequestOptions,
    /// Free-form data carried to the downloads.
    pub metadata: Metadata,
}

impl NewQueueItem {
    /// A pending item with the defaults (priority 5, 3 attempts).
    pub fn new(
        url: impl Into<String>,
        platform: impl Into<String>,
        source: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            platform: platform.into(),
            source: source.into(),
            content_type: content_type.into(),
            referer: None,
            save_path: None,
            priority: 5,
            max_attempts: 3,
            options: RequestOptions::default(),
            metadata: Metadata::new(),
        }
    }

    /// The stored item this becomes under `id`, created at `now`.
    pub fn into_item(self, id: i64, now: DateTime<Utc>) -> QueueItem {
        QueueItem {
            id,
            url: self.url,
            platform: self.platform,
            source: self.source,
            content_type: self.content_type,
            referer: self.referer,
            save_path: self.save_path,
            priority: self.priority,
            status: QueueStatus::Pending,
            attempts: 0,
            max_attempts: self.max_attempts,
            created_date: now,
            started_at: None,
            download_date: None,
            progress: 0,
            estimated_completion: None,
            assigned_worker: None,
            error_message: None,
            next_attempt_at: now,
            lease_expires_at: None,
            items_downloaded: 0,
            items_total: None,
            options: self.options,
            metadata: self.metadata,
        }
    }
}

/// Filters of `GET /queue`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueFilter {
    /// Only items in this status.
    pub status: Option<QueueStatus>,
    /// Only items of this platform.
    pub platform: Option<String>,
}

/// Number of queue items in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueCounts {
    /// Waiting for a worker.
    pub pending: u64,
    /// Held by a worker.
    pub downloading: u64,
    /// Paused by a person.
    pub paused: u64,
    /// Finished successfully.
    pub completed: u64,
    /// Failed for good.
    pub failed: u64,
}

impl QueueCounts {
    /// Items in all statuses.
    pub fn total(&self) -> u64 {
        self.pending + self.downloading + self.paused + self.completed + self.failed
    }

    /// Adds `n` items of `status`.
    pub fn add(&mut self, status: QueueStatus, n: u64) {
        match status {
            QueueStatus::Pending => self.pending += n,
            QueueStatus::Downloading => self.downloading += n,
            QueueStatus::Paused => self.paused += n,
            QueueStatus::Completed => self.completed += n,
            QueueStatus::Failed => self.failed += n,
        }
    }
}

/// `GET /queue/stats` beyond the counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Items per status.
    pub counts: QueueCounts,
    /// Mean seconds between creation and start, over items started in the last 24 hours.
    pub avg_wait_time_seconds: Option<f64>,
    /// Mean seconds from start to finish, over items finished in the last 24 hours.
    pub avg_run_time_seconds: Option<f64>,
    /// Distinct workers holding a lease now.
    pub active_workers: u64,
}

/// A change to a queue item requested through the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuePatch {
    /// New priority, 1 (most urgent) to 10.
    pub priority: Option<u8>,
    /// Only `paused` (pause a pending or running item) or `pending` (resume).
    pub status: Option<QueueStatus>,
}

/// Identifies a worker process/task holding leases (`host:pid:n`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub String);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Proof of holding a queue item. Every write by a worker names it: once
/// the lease runs out and another worker claims the item, the old token is
/// refused with [`StoreError::LeaseLost`](crate::StoreError::LeaseLost).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseToken {
    /// The held item.
    pub queue_id: i64,
    /// The worker holding it.
    pub worker: WorkerId,
    /// Fresh per claim, so a re-claim by the same worker is a new lease.
    pub token: uuid::Uuid,
}

/// A claimed item and the lease that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leased {
    /// The item as claimed (status `downloading`, attempts counted).
    pub item: QueueItem,
    /// The lease to name in every write about the item.
    pub lease: LeaseToken,
}

/// One finished item for [`QueueRepo::complete_many`](crate::store::QueueRepo::complete_many):
/// what [`QueueRepo::complete`](crate::store::QueueRepo::complete) takes, as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The lease the worker holds; a lost lease fails only this completion.
    pub lease: LeaseToken,
    /// Files the attempt produced (the item's `items_downloaded`).
    pub items_downloaded: u32,
    /// When the worker finished (the item's `download_date`).
    pub finished_at: DateTime<Utc>,
}

/// Progress of a running item, written under its lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueProgress {
    /// 0–100 over the whole item.
    pub progress: u8,
    /// Media items saved so far.
    pub items_downloaded: u32,
    /// Media items discovery has counted, once it knows.
    pub items_total: Option<u32>,
    /// Expected finish time, from the current transfer speed.
    pub estimated_completion: Option<DateTime<Utc>>,
}
