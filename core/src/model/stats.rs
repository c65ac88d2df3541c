use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Field a breakdown groups downloads by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By platform name.
    Platform,
    /// By source (account, thread, URL).
    Source,
    /// By content type (`posts`, `stories`, …).
    ContentType,
}

/// Width of a timeline bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Whole hours (UTC).
    Hour,
    /// UTC days.
    Day,
    /// Weeks start on Monday (ISO).
    Week,
    /// Calendar months (UTC).
    Month,
}

/// A time window of the stats queries; `None` bounds are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start; `None` is the beginning of time.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end; `None` is now and later.
    pub to: Option<DateTime<Utc>>,
}

/// Totals of downloads in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadTotals {
    /// Download records (completed and failed).
    pub total: u64,
    /// Records of saved media.
    pub completed: u64,
    /// Records of media that failed for good.
    pub failed: u64,
    /// Bytes of completed downloads that own their file (duplicates excluded).
    pub size_bytes: u64,
}

impl DownloadTotals {
    /// Completed as a percentage of all, one decimal; 100 when there were none.
    pub fn success_rate(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            (self.completed as f64 * 1000.0 / self.total as f64).round() / 10.0
        }
    }
}

/// Totals for one value of a group (one platform, one source, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTotals {
    /// The group's value (a platform name, a source, …).
    pub key: String,
    /// The group's totals.
    pub totals: DownloadTotals,
}

/// One bucket of a timeline; `timestamp` is the bucket's start (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelinePoint {
    /// Start of the bucket (UTC).
    pub timestamp: DateTime<Utc>,
    /// Download records in the bucket.
    pub downloads: u64,
    /// Completed records in the bucket.
    pub success: u64,
    /// Failed records in the bucket.
    pub failed: u64,
}
