//! Rows as PostgreSQL returns them, and their conversion to domain types.
//!
//! Every conversion is checked: a status the domain does not know or a
//! negative count is a corrupt row (`Internal`), never a panic.

use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{
    CatchUp, Download, Job, JobConfig, JobKind, JobRun, JobSpec, JobState, LeaseToken, Leased,
    LogEntry, Metadata, QueueItem, RefreshToken, RequestOptions, User, WorkerId,
};
use sqlx::types::Json;

use super::error::{corrupt, out_of_range};

/// `u64` → `BIGINT`.
pub(crate) fn to_i64(what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| out_of_range(what, value))
}

/// `u32` → `INTEGER`.
pub(crate) fn to_i32(what: &str, value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| out_of_range(what, value))
}

/// `BIGINT` → `u64`.
pub(crate) fn from_i64(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(what, format!("negative value {value}")))
}

/// `INTEGER` → `u32`.
pub(crate) fn from_i32(what: &str, value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(what, format!("negative value {value}")))
}

/// `SMALLINT` → `u8`.
pub(crate) fn from_i16(what: &str, value: i16) -> Result<u8, StoreError> {
    u8::try_from(value).map_err(|_| corrupt(what, format!("value {value} out of range")))
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| corrupt(what, format!("unknown value {text:?}")))
}

/// Text of a serde enum that serialises as a plain string (`"forum_monitor"`).
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        _ => Err(StoreError::Internal(
            "enum does not serialise as text".into(),
        )),
    }
}

fn enum_from_text<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| corrupt(what, format!("unknown value {text:?}")))
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DownloadRow {
    id: i64,
    url: String,
    url_hash: String,
    archive_key: String,
    platform: String,
    source: String,
    content_type: String,
    filename: Option<String>,
    file_path: Option<String>,
    file_size: Option<i64>,
    file_hash: Option<String>,
    post_date: Option<DateTime<Utc>>,
    download_date: DateTime<Utc>,
    status: String,
    attempts: i32,
    error_message: Option<String>,
    duplicate_of: Option<i64>,
    queue_id: Option<i64>,
    metadata: Json<Metadata>,
}

impl TryFrom<DownloadRow> for Download {
    type Error = StoreError;
    fn try_from(row: DownloadRow) -> Result<Self, StoreError> {
        Ok(Download {
            id: row.id,
            url: row.url,
            url_hash: row.url_hash,
            archive_key: row.archive_key,
            platform: row.platform,
            source: row.source,
            content_type: row.content_type,
            filename: row.filename,
            file_path: row.file_path,
            file_size: row
                .file_size
                .map(|size| from_i64("downloads.file_size", size))
                .transpose()?,
            file_hash: row.file_hash,
            post_date: row.post_date,
            download_date: row.download_date,
            status: parse("downloads.status", &row.status)?,
            attempts: from_i32("downloads.attempts", row.attempts)?,
            error_message: row.error_message,
            duplicate_of: row.duplicate_of,
            queue_id: row.queue_id,
            metadata: row.metadata.0,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct QueueRow {
    id: i64,
    url: String,
    platform: String,
    source: String,
    content_type: String,
    referer: Option<String>,
    save_path: Option<String>,
    priority: i16,
    status: String,
    attempts: i32,
    max_attempts: i32,
    created_date: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    download_date: Option<DateTime<Utc>>,
    progress: i16,
    estimated_completion: Option<DateTime<Utc>>,
    assigned_worker: Option<String>,
    error_message: Option<String>,
    next_attempt_at: DateTime<Utc>,
    lease_expires_at: Option<DateTime<Utc>>,
    lease_token: Option<uuid::Uuid>,
    items_downloaded: i32,
    items_total: Option<i32>,
    options: Json<RequestOptions>,
    metadata: Json<Metadata>,
}

impl QueueRow {
    /// The claimed item with its lease; `Internal` when the row holds no lease.
    pub(crate) fn into_leased(self) -> Result<Leased, StoreError> {
        let token = self
            .lease_token
            .ok_or_else(|| corrupt("queue.lease_token", "claimed row without a token"))?;
        let worker = WorkerId(self.assigned_worker.clone().unwrap_or_default());
        let item = QueueItem::try_from(self)?;
        Ok(Leased {
            lease: LeaseToken {
                queue_id: item.id,
                worker,
                token,
            },
            item,
        })
    }
}

impl TryFrom<QueueRow> for QueueItem {
    type Error = StoreError;
    fn try_from(row: QueueRow) -> Result<Self, StoreError> {
        Ok(QueueItem {
            id: row.id,
            url: row.url,
            platform: row.platform,
            source: row.source,
            content_type: row.content_type,
            referer: row.referer,
            save_path: row.save_path,
            priority: from_i16("queue.priority", row.priority)?,
            status: parse("queue.status", &row.status)?,
            attempts: from_i32("queue.attempts", row.attempts)?,
            max_attempts: from_i32("queue.max_attempts", row.max_attempts)?,
            created_date: row.created_date,
            started_at: row.started_at,
            download_date: row.download_date,
            progress: from_i16("queue.progress", row.progress)?,
            estimated_completion: row.estimated_completion,
            assigned_worker: row.assigned_worker,
            error_message: row.error_message,
            next_attempt_at: row.next_attempt_at,
            lease_expires_at: row.lease_expires_at,
            items_downloaded: from_i32("queue.items_downloaded", row.items_downloaded)?,
            items_total: row
                .items_total
                .map(|total| from_i32("queue.items_total", total))
                .transpose()?,
            options: row.options.0,
            metadata: row.metadata.0,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    name: String,
    kind: String,
    platform: String,
    source: String,
    content_type: String,
    schedule: String,
    timezone: Option<String>,
    enabled: bool,
    catch_up: String,
    config: Json<JobConfig>,
    monitor_until: Option<DateTime<Utc>>,
    last_run: Option<DateTime<Utc>>,
    last_run_status: Option<String>,
    last_run_items: Option<i32>,
    next_run: Option<DateTime<Utc>>,
    last_slot: Option<DateTime<Utc>>,
    total_runs: i64,
    success_count: i64,
    failure_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            id: row.id,
            spec: JobSpec {
                name: row.name,
                kind: enum_from_text::<JobKind>("jobs.kind", &row.kind)?,
                platform: row.platform,
                source: row.source,
                content_type: row.content_type,
                schedule: row.schedule,
                timezone: row.timezone,
                enabled: row.enabled,
                catch_up: enum_from_text::<CatchUp>("jobs.catch_up", &row.catch_up)?,
                config: row.config.0,
                monitor_until: row.monitor_until,
            },
            state: JobState {
                last_run: row.last_run,
                last_run_status: row
                    .last_run_status
                    .map(|status| parse("jobs.last_run_status", &status))
                    .transpose()?,
                last_run_items: row
                    .last_run_items
                    .map(|items| from_i32("jobs.last_run_items", items))
                    .transpose()?,
                next_run: row.next_run,
                last_slot: row.last_slot,
                total_runs: from_i64("jobs.total_runs", row.total_runs)?,
                success_count: from_i64("jobs.success_count", row.success_count)?,
                failure_count: from_i64("jobs.failure_count", row.failure_count)?,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRunRow {
    id: i64,
    pub(crate) job_id: String,
    started_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    duration_seconds: Option<f64>,
    status: String,
    items_downloaded: i32,
    error_message: Option<String>,
    queue_id: Option<i64>,
}

impl TryFrom<JobRunRow> for JobRun {
    type Error = StoreError;
    fn try_from(row: JobRunRow) -> Result<Self, StoreError> {
        Ok(JobRun {
            id: row.id,
            job_id: row.job_id,
            started_at: row.started_at,
            completed_at: row.completed_at,
            duration_seconds: row.duration_seconds,
            status: parse("job_runs.status", &row.status)?,
            items_downloaded: from_i32("job_runs.items_downloaded", row.items_downloaded)?,
            error_message: row.error_message,
            queue_id: row.queue_id,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    role: String,
    pub(crate) password_hash: String,
    disabled: bool,
    created_at: DateTime<Utc>,
    last_login: Option<DateTime<Utc>>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: row.id,
            username: row.username,
            email: row.email,
            role: parse("users.role", &row.role)?,
            disabled: row.disabled,
            created_at: row.created_at,
            last_login: row.last_login,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RefreshTokenRow {
    id: String,
    user_id: i64,
    family_id: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked: bool,
}

impl From<RefreshTokenRow> for RefreshToken {
    fn from(row: RefreshTokenRow) -> Self {
        RefreshToken {
            id: row.id,
            user_id: row.user_id,
            family_id: row.family_id,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            revoked: row.revoked,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LogRow {
    id: i64,
    timestamp: DateTime<Utc>,
    level: String,
    module: String,
    message: String,
    metadata: Json<Metadata>,
}

impl TryFrom<LogRow> for LogEntry {
    type Error = StoreError;
    fn try_from(row: LogRow) -> Result<Self, StoreError> {
        Ok(LogEntry {
            id: row.id,
            timestamp: row.timestamp,
            level: parse("logs.level", &row.level)?,
            module: row.module,
            message: row.message,
            metadata: row.metadata.0,
        })
    }
}

/// Converts every row, stopping at the first corrupt one.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
