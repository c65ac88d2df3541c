use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Field a breakdown groups downloads by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Platform,
    Source,
    ContentType,
}

/// Width of a timeline bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Hour,
    Day,
    /// Weeks start on Monday (ISO).
    Week,
    Month,
}

/// A time window of the stats queries; `None` bounds are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Totals of downloads in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadTotals {
    pub total: u64,
    pub completed: u64,
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
    pub key: String,
    pub totals: DownloadTotals,
}

/// One bucket of a timeline; `timestamp` is the bucket's start (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub timestamp: DateTime<Utc>,
    pub downloads: u64,
    pub success: u64,
    pub failed: u64,
}
