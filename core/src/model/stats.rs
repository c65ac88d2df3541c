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

/// A period of the download statistics, ending now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Period {
    /// Since the start of today (UTC); parsed from `today` or `day`.
    Today,
    /// Today and the 6 days before.
    Week,
    /// Today and the 29 days before.
    Month,
    /// Today and the 364 days before.
    Year,
    /// Everything.
    #[default]
    All,
}

impl Period {
    /// The window of this period at `now`: whole UTC days, up to now and later.
    pub fn window(self, now: DateTime<Utc>) -> Window {
        let start_of_day = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |naive| naive.and_utc());
        let days_before = match self {
            Self::Today => 0,
            Self::Week => 6,
            Self::Month => 29,
            Self::Year => 364,
            Self::All => return Window::default(),
        };
        Window {
            from: Some(start_of_day - chrono::Duration::days(days_before)),
            to: None,
        }
    }
}

spellings! {
    Period, field "period", unknown "period", listing "(today, week, month, year, all)";
    Today => "today" | "day",
    Week => "week",
    Month => "month",
    Year => "year",
    All => "all",
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
