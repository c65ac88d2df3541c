use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Metadata;

/// What a scheduled job does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobKind {
    /// Enqueues a download of its source.
    #[default]
    Download,
    /// A forum thread re-checked until `monitor_until`.
    ForumMonitor,
    /// Built-in housekeeping (download clean-up, log retention).
    Maintenance,
}

/// What happens to slots missed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CatchUp {
    /// Missed slots are dropped.
    None,
    /// Missed slots run once at start-up, coalesced.
    #[default]
    Once,
}

/// Result of one job run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunStatus {
    Running,
    Success,
    Failure,
    /// The slot fired while the previous run was still active.
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            "skipped" => Ok(Self::Skipped),
            other => Err(crate::Error::invalid(
                "status",
                format!("unknown run status {other:?}"),
            )),
        }
    }
}

/// A scheduled job (`/scheduler/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Slug such as `instagram-evalongoria-posts`.
    pub id: String,
    pub name: String,
    pub kind: JobKind,
    pub platform: String,
    pub source: String,
    pub content_type: String,
    /// Standard 5-field cron.
    pub schedule: String,
    /// IANA zone the schedule is read in; UTC when absent.
    pub timezone: Option<String>,
    pub enabled: bool,
    pub catch_up: CatchUp,
    /// `max_downloads`, `downloader`, `days_back`, `url`, … as given by the user.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Metadata,
    /// Forum monitors disable themselves after this time.
    pub monitor_until: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_run_status: Option<RunStatus>,
    pub last_run_items: Option<u32>,
    pub next_run: Option<DateTime<Utc>>,
    /// The latest slot any scheduler instance fired (exactly-once firing).
    /// Internal: the API leaves it out of job bodies.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub last_slot: Option<DateTime<Utc>>,
    pub total_runs: u64,
    pub success_count: u64,
    pub failure_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One execution of a job (`/scheduler/history`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRun {
    pub id: i64,
    pub job_id: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub status: RunStatus,
    pub items_downloaded: u32,
    pub error_message: Option<String>,
    /// The queue item the run enqueued.
    pub queue_id: Option<i64>,
}

/// Filters of `GET /scheduler/history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFilter {
    pub job_id: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: u32,
}
