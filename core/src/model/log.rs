use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Metadata;

/// Log levels with the spec's spelling (`WARNING`, not `WARN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LogLevel {
    /// Detail for debugging (also what `TRACE` parses to).
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that mediadl recovered from.
    Warning,
    /// Something failed.
    Error,
}

spellings! {
    LogLevel, field "level", unknown "log level", folded by str::to_ascii_uppercase;
    Debug => "DEBUG" | "TRACE",
    Info => "INFO",
    Warning => "WARNING" | "WARN",
    Error => "ERROR",
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// Store-assigned id, increasing with insertion.
    pub id: i64,
    /// When the line was logged.
    pub timestamp: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// `Instagram`, `Scheduler`, … (the spec's modules), or a Rust module path.
    pub module: String,
    /// The formatted message.
    pub message: String,
    /// Structured fields of the log call.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
}

/// A log line before the store has given it an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLogEntry {
    /// When the line was logged.
    pub timestamp: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// `Instagram`, `Scheduler`, … or a Rust module path.
    pub module: String,
    /// The formatted message.
    pub message: String,
    /// Structured fields of the log call.
    pub metadata: Metadata,
}

/// Filters of `GET /logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    /// Exact level.
    pub level: Option<LogLevel>,
    /// Case-insensitive exact module name.
    pub module: Option<String>,
    /// Case-insensitive substring of the message.
    pub search: Option<String>,
    /// Only entries at or after this time.
    pub date_from: Option<DateTime<Utc>>,
    /// Only entries at or before this time.
    pub date_to: Option<DateTime<Utc>>,
    /// Newest first, at most this many (1–1000).
    pub limit: u32,
}

/// Result of a log query: the newest `limit` matching entries, how many match,
/// and how many entries are stored in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// The newest matching entries, newest first.
    pub logs: Vec<LogEntry>,
    /// Entries matching the filter, beyond the page too.
    pub matching: u64,
    /// Entries stored in all.
    pub total: u64,
}

/// What a log clean-up removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsDeleted {
    /// Entries removed.
    pub entries: u64,
    /// Approximate bytes of message and metadata text removed.
    pub bytes: u64,
}
