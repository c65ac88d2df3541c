//! Turning SQLite rows into domain types and back: timestamps as integer
//! microseconds, JSON as text, enums as their snake_case names.

use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{
    CatchUp, Download, DownloadStatus, Job, JobConfig, JobKind, JobRun, JobSpec, JobState,
    LogEntry, LogLevel, Metadata, QueueItem, QueueStatus, RefreshToken, Role, RunStatus, User,
};
use mediadl::store::rules::from_micros;
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row};

use super::map_err;

pub(crate) fn micros(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros()
}

pub(crate) fn opt_micros(ts: Option<DateTime<Utc>>) -> Option<i64> {
    ts.map(micros)
}

pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Invalid(err.to_string()))
}

fn corrupt(column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt value in column {column}: {detail}"))
}

/// Typed access to a row's columns with corrupt values as `Internal` errors.
pub(crate) struct Cols<'r>(pub &'r SqliteRow);

impl Cols<'_> {
    pub fn get<'a, T>(&'a self, column: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'a, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        self.0.try_get(column).map_err(map_err)
    }

    pub fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        Ok(from_micros(self.get::<i64>(column)?))
    }

    pub fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.get::<Option<i64>>(column)?.map(from_micros))
    }

    pub fn u32(&self, column: &str) -> Result<u32, StoreError> {
        let value: i64 = self.get(column)?;
        u32::try_from(value).map_err(|err| corrupt(column, err))
    }

    pub fn opt_u32(&self, column: &str) -> Result<Option<u32>, StoreError> {
        self.get::<Option<i64>>(column)?
            .map(|value| u32::try_from(value).map_err(|err| corrupt(column, err)))
            .transpose()
    }

    pub fn u64(&self, column: &str) -> Result<u64, StoreError> {
        let value: i64 = self.get(column)?;
        u64::try_from(value).map_err(|err| corrupt(column, err))
    }

    pub fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.get::<i64>(column)? != 0)
    }

    pub fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text).map_err(|err| corrupt(column, err))
    }

    /// A snake_case enum stored by its serde name.
    pub fn name<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| corrupt(column, format!("unknown value {text:?}")))
    }

    pub fn opt_name<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError> {
        match self.get::<Option<String>>(column)? {
            None => Ok(None),
            Some(text) => serde_json::from_value(serde_json::Value::String(text.clone()))
                .map(Some)
                .map_err(|_| corrupt(column, format!("unknown value {text:?}"))),
        }
    }
}

/// The serde name of a unit enum variant (`"forum_monitor"`, `"once"`).
pub(crate) fn enum_name<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(StoreError::Internal("enum without a plain name".into())),
    }
}

/// The `downloads` columns in the order of [`DownloadColumns`].
const DOWNLOAD_COLUMNS: [&str; 19] = [
    "id",
    "url",
    "url_hash",
    "archive_key",
    "platform",
    "source",
    "content_type",
    "filename",
    "file_path",
    "file_size",
    "file_hash",
    "post_date",
    "download_date",
    "status",
    "attempts",
    "error_message",
    "duplicate_of",
    "queue_id",
    "metadata",
];

/// Where each `downloads` column is in a result set, looked up by name once
/// per result set: rows are then read by position (a page of 50 rows would
/// otherwise hash 950 column names).
pub(crate) struct DownloadColumns([usize; 19]);

impl DownloadColumns {
    /// The positions in the result set `row` belongs to.
    pub fn of(row: &SqliteRow) -> Result<Self, StoreError> {
        let mut positions = [0; 19];
        for (position, name) in positions.iter_mut().zip(DOWNLOAD_COLUMNS) {
            *position = row.try_column(name).map_err(map_err)?.ordinal();
        }
        Ok(Self(positions))
    }

    fn get<'r, T>(&self, row: &'r SqliteRow, column: usize) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        row.try_get(self.0[column]).map_err(map_err)
    }

    /// The record in `row`.
    pub fn decode(&self, row: &SqliteRow) -> Result<Download, StoreError> {
        let status: &str = self.get(row, 13)?;
        let metadata: &str = self.get(row, 18)?;
        Ok(Download {
            id: self.get(row, 0)?,
            url: self.get(row, 1)?,
            url_hash: self.get(row, 2)?,
            archive_key: self.get(row, 3)?,
            platform: self.get(row, 4)?,
            source: self.get(row, 5)?,
            content_type: self.get(row, 6)?,
            filename: self.get(row, 7)?,
            file_path: self.get(row, 8)?,
            file_size: self
                .get::<Option<i64>>(row, 9)?
                .map(|size| u64::try_from(size).map_err(|err| corrupt("file_size", err)))
                .transpose()?,
            file_hash: self.get(row, 10)?,
            post_date: self.get::<Option<i64>>(row, 11)?.map(from_micros),
            download_date: from_micros(self.get(row, 12)?),
            status: status
                .parse::<DownloadStatus>()
                .map_err(|err| corrupt("status", err))?,
            attempts: u32::try_from(self.get::<i64>(row, 14)?)
                .map_err(|err| corrupt("attempts", err))?,
            error_message: self.get(row, 15)?,
            duplicate_of: self.get(row, 16)?,
            queue_id: self.get(row, 17)?,
            metadata: serde_json::from_str::<Metadata>(metadata)
                .map_err(|err| corrupt("metadata", err))?,
        })
    }
}

pub(crate) fn download(row: &SqliteRow) -> Result<Download, StoreError> {
    DownloadColumns::of(row)?.decode(row)
}

/// The records of a result set.
pub(crate) fn downloads(rows: &[SqliteRow]) -> Result<Vec<Download>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns = DownloadColumns::of(first)?;
    rows.iter().map(|row| columns.decode(row)).collect()
}

pub(crate) fn queue_item(row: &SqliteRow) -> Result<QueueItem, StoreError> {
    let c = Cols(row);
    let status: String = c.get("status")?;
    let priority: i64 = c.get("priority")?;
    let progress: i64 = c.get("progress")?;
    Ok(QueueItem {
        id: c.get("id")?,
        url: c.get("url")?,
        platform: c.get("platform")?,
        source: c.get("source")?,
        content_type: c.get("content_type")?,
        referer: c.get("referer")?,
        save_path: c.get("save_path")?,
        priority: u8::try_from(priority).map_err(|err| corrupt("priority", err))?,
        status: status
            .parse::<QueueStatus>()
            .map_err(|err| corrupt("status", err))?,
        attempts: c.u32("attempts")?,
        max_attempts: c.u32("max_attempts")?,
        created_date: c.time("created_date")?,
        started_at: c.opt_time("started_at")?,
        download_date: c.opt_time("download_date")?,
        progress: u8::try_from(progress).map_err(|err| corrupt("progress", err))?,
        estimated_completion: c.opt_time("estimated_completion")?,
        assigned_worker: c.get("assigned_worker")?,
        error_message: c.get("error_message")?,
        next_attempt_at: c.time("next_attempt_at")?,
        lease_expires_at: c.opt_time("lease_expires_at")?,
        items_downloaded: c.u32("items_downloaded")?,
        items_total: c.opt_u32("items_total")?,
        options: c.json("options")?,
        metadata: c.json::<Metadata>("metadata")?,
    })
}

/// The lease token column as a UUID (stored as 32 hex digits).
pub(crate) fn lease_token(row: &SqliteRow) -> Result<uuid::Uuid, StoreError> {
    let text: String = Cols(row).get("lease_token")?;
    uuid::Uuid::parse_str(&text).map_err(|err| corrupt("lease_token", err))
}

pub(crate) fn job(row: &SqliteRow) -> Result<Job, StoreError> {
    let c = Cols(row);
    Ok(Job {
        id: c.get("id")?,
        spec: JobSpec {
            name: c.get("name")?,
            kind: c.name::<JobKind>("kind")?,
            platform: c.get("platform")?,
            source: c.get("source")?,
            content_type: c.get("content_type")?,
            schedule: c.get("schedule")?,
            timezone: c.get("timezone")?,
            enabled: c.flag("enabled")?,
            catch_up: c.name::<CatchUp>("catch_up")?,
            config: c.json::<JobConfig>("config")?,
            monitor_until: c.opt_time("monitor_until")?,
        },
        state: JobState {
            last_run: c.opt_time("last_run")?,
            last_run_status: c.opt_name::<RunStatus>("last_run_status")?,
            last_run_items: c.opt_u32("last_run_items")?,
            next_run: c.opt_time("next_run")?,
            last_slot: c.opt_time("last_slot")?,
            total_runs: c.u64("total_runs")?,
            success_count: c.u64("success_count")?,
            failure_count: c.u64("failure_count")?,
        },
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}

pub(crate) fn job_run(row: &SqliteRow) -> Result<JobRun, StoreError> {
    let c = Cols(row);
    Ok(JobRun {
        id: c.get("id")?,
        job_id: c.get("job_id")?,
        started_at: c.time("started_at")?,
        completed_at: c.opt_time("completed_at")?,
        duration_seconds: c.get("duration_seconds")?,
        status: c.name::<RunStatus>("status")?,
        items_downloaded: c.u32("items_downloaded")?,
        error_message: c.get("error_message")?,
        queue_id: c.get("queue_id")?,
    })
}

pub(crate) fn user(row: &SqliteRow) -> Result<User, StoreError> {
    let c = Cols(row);
    Ok(User {
        id: c.get("id")?,
        username: c.get("username")?,
        email: c.get("email")?,
        role: c.name::<Role>("role")?,
        disabled: c.flag("disabled")?,
        created_at: c.time("created_at")?,
        last_login: c.opt_time("last_login")?,
    })
}

pub(crate) fn refresh_token(row: &SqliteRow) -> Result<RefreshToken, StoreError> {
    let c = Cols(row);
    Ok(RefreshToken {
        id: c.get("id")?,
        user_id: c.get("user_id")?,
        family_id: c.get("family_id")?,
        issued_at: c.time("issued_at")?,
        expires_at: c.time("expires_at")?,
        used_at: c.opt_time("used_at")?,
        revoked: c.flag("revoked")?,
    })
}

pub(crate) fn log_entry(row: &SqliteRow) -> Result<LogEntry, StoreError> {
    let c = Cols(row);
    let level: String = c.get("level")?;
    Ok(LogEntry {
        id: c.get("id")?,
        timestamp: c.time("timestamp")?,
        level: level
            .parse::<LogLevel>()
            .map_err(|err| corrupt("level", err))?,
        module: c.get("module")?,
        message: c.get("message")?,
        metadata: c.json::<Metadata>("metadata")?,
    })
}
