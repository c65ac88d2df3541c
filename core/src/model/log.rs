use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Metadata;

/// Log levels with the spec's spelling (`WARNING`, not `WARN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" | "TRACE" => Ok(Self::Debug),
            "INFO" => Ok(Self::Info),
            "WARNING" | "WARN" => Ok(Self::Warning),
            "ERROR" => Ok(Self::Error),
            _ => Err(crate::Error::invalid(
                "level",
                format!("unknown log level {s:?}"),
            )),
        }
    }
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub level: LogLevel,
    /// `Instagram`, `Scheduler`, … (the spec's modules), or a Rust module path.
    pub module: String,
    pub message: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
}

/// A log line before the store has given it an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLogEntry {
    pub timestamp: DateTime<Utc>,
    pub level: LogLevel,
    pub module: String,
    pub message: String,
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
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    /// Newest first, at most this many (1–1000).
    pub limit: u32,
}

/// Result of a log query: the newest `limit` matching entries, how many match,
/// and how many entries are stored in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub logs: Vec<LogEntry>,
    pub matching: u64,
    pub total: u64,
}

/// What a log clean-up removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsDeleted {
    pub entries: u64,
    /// Approximate bytes of message and metadata text removed.
    pub bytes: u64,
}
