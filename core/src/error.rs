//! Errors that say what to do next: the engine retries, waits, pauses a
//! source or gives up according to the variant, never according to text.

use std::time::Duration;

/// An error of the core crate outside a download (configuration, input).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given by a user is not acceptable; `field` names it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// A unique key exists already (an archive key, a username, a job id).
    #[error("{0}")]
    Conflict(String),
    /// The operation does not apply to the row's state or the input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The lease named by a worker is no longer held (expired and re-claimed,
    /// paused or removed): the worker must stop working on the item.
    #[error("lease lost on queue item {queue_id}")]
    LeaseLost { queue_id: i64 },
    /// The database cannot be reached or is busy; worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt row: not worth retrying.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Why one media item (or a whole listing) could not be downloaded, and
/// what the engine should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// Retrying will not help: 404, 410, a parse failure, a refused URL.
    #[error("{0}")]
    Permanent(String),
    /// A transient failure: a 5xx, a reset connection, a short body.
    #[error("{reason}")]
    Retryable {
        reason: String,
        /// The server's `Retry-After`, when it sent one.
        after: Option<Duration>,
    },
    /// The host asked us to slow down: the item waits `after` without
    /// using up an attempt.
    #[error("rate limited by {host}, retry in {}s", after.as_secs())]
    RateLimited { host: String, after: Duration },
    /// Login, cookies or a challenge are needed: a person must act, so the
    /// source's job pauses and a notification goes out.
    #[error("authentication required: {0}")]
    AuthRequired(String),
    /// The local disk refused the file (full, read-only, not permitted).
    #[error("cannot write: {0}")]
    Storage(String),
    /// Stopped on request (pause, removal, shutdown).
    #[error("cancelled")]
    Cancelled,
}

impl DownloadError {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent(reason.into())
    }

    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::Retryable {
            reason: reason.into(),
            after: None,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::RateLimited { .. })
    }

    /// The delay the remote side asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { after, .. } => *after,
            Self::RateLimited { after, .. } => Some(*after),
            _ => None,
        }
    }

    /// A stable machine-readable name of the variant (logs, API error codes).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Permanent(_) => "DOWNLOAD_FAILED",
            Self::Retryable { .. } => "DOWNLOAD_RETRYABLE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::AuthRequired(_) => "AUTH_REQUIRED",
            Self::Storage(_) => "STORAGE_ERROR",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl From<StoreError> for DownloadError {
    fn from(err: StoreError) -> Self {
        if err.is_transient() {
            Self::retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}
