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
    /// Started and not finished yet.
    Running,
    /// Finished; its queue item completed.
    Success,
    /// Finished with an error; `error_message` says which.
    Failure,
    /// The slot fired while the previous run was still active.
    Skipped,
}

spellings! {
    RunStatus, field "status", unknown "run status";
    Running => "running",
    Success => "success",
    Failure => "failure",
    Skipped => "skipped",
}

/// A job's `config`, typed. Download jobs and forum monitors take the
/// download options; built-in maintenance jobs take none. Serialised as the
/// flat JSON object users write, so stored rows read back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConfig {
    /// The downloader to use instead of the platform's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloader: Option<String>,
    /// Most media items one run saves (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downloads: Option<u32>,
    /// Only media posted in the last this many days (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_back: Option<u32>,
    /// Stop listing after this many known items in a row (0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after_known: Option<u32>,
    /// The queue priority of its items, 1 (most urgent) to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The http(s) URL to fetch instead of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A forum thread's title, copied to its downloads' metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_title: Option<String>,
    /// Keys no job kind reads, kept as the user gave them.
    #[serde(flatten)]
    pub other: Metadata,
}

impl JobConfig {
    /// The config a user gave for a job of `kind`, each key checked.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) naming `config.<key>` for a
    /// value of the wrong type or range, or `config` for a maintenance job
    /// given any.
    pub fn parse(kind: JobKind, config: &Metadata) -> Result<Self, crate::Error> {
        if kind == JobKind::Maintenance {
            return if config.is_empty() {
                Ok(Self::default())
            } else {
                Err(crate::Error::invalid(
                    "config",
                    "a built-in maintenance job takes no config (see the settings instead)",
                ))
            };
        }
        let priority = config_u32(config, "priority", 1)?;
        if priority.is_some_and(|priority| priority > 10) {
            return Err(crate::Error::invalid(
                "config.priority",
                "must be between 1 (most urgent) and 10",
            ));
        }
        crate::engine::placement::check_template_overrides(config, "config")?;
        const TYPED: [&str; 7] = [
            "downloader",
            "max_downloads",
            "days_back",
            "stop_after_known",
            "priority",
            "url",
            "thread_title",
        ];
        Ok(Self {
            downloader: config_string(config, "downloader")?,
            max_downloads: config_u32(config, "max_downloads", 1)?,
            days_back: config_u32(config, "days_back", 1)?,
            stop_after_known: config_u32(config, "stop_after_known", 0)?,
            priority: priority.and_then(|priority| u8::try_from(priority).ok()),
            url: config_string(config, "url")?,
            thread_title: config_string(config, "thread_title")?,
            other: config
                .iter()
                .filter(|(key, _)| !TYPED.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        })
    }
}

/// `config.<key>` as a whole number of at least `min`, when given.
fn config_u32(config: &Metadata, key: &str, min: u32) -> Result<Option<u32>, crate::Error> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= min)
            .map(Some)
            .ok_or_else(|| {
                crate::Error::invalid(
                    format!("config.{key}"),
                    format!("must be a whole number of at least {min}, not {value}"),
                )
            }),
    }
}

/// `config.<key>` as a non-empty string (trimmed), when given.
fn config_string(config: &Metadata, key: &str) -> Result<Option<String>, crate::Error> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(value) => Err(crate::Error::invalid(
            format!("config.{key}"),
            format!("must be a non-empty string, not {value}"),
        )),
    }
}

/// A job's definition: what a person (or a forum monitor request) edits.
///
/// It is written only by [`JobRepo::update_job_spec`](crate::store::JobRepo::update_job_spec)
/// and [`JobRepo::set_job_enabled`](crate::store::JobRepo::set_job_enabled),
/// neither of which touches the [`JobState`], so an edit made from a stale
/// read can never undo a firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSpec {
    /// Human-readable name shown in the dashboard.
    pub name: String,
    /// What the job does when it fires.
    pub kind: JobKind,
    /// Platform name, as in [`Registry`](crate::Registry).
    pub platform: String,
    /// The account, thread or URL the job downloads from.
    pub source: String,
    /// Kind of content to download (`posts`, `stories`, `thread`, …).
    pub content_type: String,
    /// Standard 5-field cron.
    pub schedule: String,
    /// IANA zone the schedule is read in; UTC when absent.
    pub timezone: Option<String>,
    /// Disabled jobs keep their schedule but never fire.
    pub enabled: bool,
    /// What happens to slots missed while no scheduler ran.
    pub catch_up: CatchUp,
    /// `max_downloads`, `downloader`, `days_back`, `url`, … typed for its kind
    /// (see [`JobConfig::parse`]); stored and sent as the same JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: JobConfig,
    /// Forum monitors disable themselves after this time.
    pub monitor_until: Option<DateTime<Utc>>,
}

/// What firings change: the latest slot taken, run counters and the last
/// and next run. Only [`claim_slot`](crate::store::JobRepo::claim_slot),
/// [`open_run`](crate::store::JobRepo::open_run) and
/// [`close_run`](crate::store::JobRepo::close_run) write the slot and the
/// counters; `next_run` also follows the definition (a new schedule,
/// enabling, disabling).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobState {
    /// When the job last fired.
    pub last_run: Option<DateTime<Utc>>,
    /// How its last run ended.
    pub last_run_status: Option<RunStatus>,
    /// Media items its last run saved.
    pub last_run_items: Option<u32>,
    /// The next slot it fires at, `None` while disabled.
    pub next_run: Option<DateTime<Utc>>,
    /// The latest slot any scheduler instance fired (exactly-once firing).
    /// Internal: never serialized, so no job body shows it.
    #[serde(skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub last_slot: Option<DateTime<Utc>>,
    /// Runs started since the job was created.
    pub total_runs: u64,
    /// Runs that ended in success.
    pub success_count: u64,
    /// Runs that ended in failure.
    pub failure_count: u64,
}

/// A scheduled job (`/scheduler/jobs`): its definition and its state, one
/// flat object on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Slug such as `instagram-evalongoria-posts`.
    pub id: String,
    /// What the user edits.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub spec: JobSpec,
    /// What firings change.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub state: JobState,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
    /// When the job's definition last changed.
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// A job that has never run and has no next run yet, created at `now`.
    pub fn new(id: impl Into<String>, spec: JobSpec, now: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            spec,
            state: JobState::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The same job with `next_run` set (a job about to be created).
    pub fn with_next_run(mut self, next_run: Option<DateTime<Utc>>) -> Self {
        self.state.next_run = next_run;
        self
    }
}

/// What a change of a job's definition does to its next firing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRun {
    /// The stored `next_run` stays (a change that does not touch timing).
    Keep,
    /// `next_run` becomes this (a new schedule, enabling; `None` while disabled).
    Set(Option<DateTime<Utc>>),
}

/// One execution of a job (`/scheduler/history`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRun {
    /// Store-assigned id.
    pub id: i64,
    /// The job that ran ([`Job::id`]).
    pub job_id: String,
    /// When the run fired.
    pub started_at: DateTime<Utc>,
    /// When the run ended, once it has.
    pub completed_at: Option<DateTime<Utc>>,
    /// Seconds from start to end, once ended.
    pub duration_seconds: Option<f64>,
    /// How the run is going or ended.
    pub status: RunStatus,
    /// Media items the run saved.
    pub items_downloaded: u32,
    /// Why the run failed, when it did.
    pub error_message: Option<String>,
    /// The queue item the run enqueued.
    pub queue_id: Option<i64>,
}

/// Filters of `GET /scheduler/history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Only runs of this job.
    pub job_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// At most this many runs, newest first; 0 means the default
    /// ([`run_history_limit`](crate::store::rules::run_history_limit)).
    pub limit: u32,
}
