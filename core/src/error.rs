//! Errors that say what to do next: the engine retries, waits, pauses a
//! source or gives up according to the variant, never according to text.

use std::time::Duration;

/// An error of the core crate outside a download (configuration, input).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given by a user is not acceptable; `field` names it.
    #[error("{field}: {reason}")]
    Invalid {
        /// The input's name or dotted path (`schedule`, `network.proxy`).
        field: String,
        /// What is wrong with it, for a person to read.
        reason: String,
    },
    /// A setting that a change through the API may not make: a program
    /// setting, or a key the config file, the environment or a flag sets.
    #[error("{field}: {reason}")]
    ReadOnlySetting {
        /// The setting's dotted path (`general.download_directory`).
        field: String,
        /// Where its value is set instead, for a person to read.
        reason: String,
    },
    /// The store refused or failed an operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A download or a platform request failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The media storage refused or failed an operation.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path (`creating /data/x`).
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// [`Error::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// [`Error::Io`] while doing `context`.
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
    /// No row has this id or key.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What was looked up (`download`, `queue item`, `job`, …).
        entity: &'static str,
        /// The id or key looked up.
        id: String,
    },
    /// A unique key exists already (an archive key, a username, a job id).
    #[error("{0}")]
    Conflict(String),
    /// The operation does not apply to the row's state or the input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The lease named by a worker is no longer held (expired and re-claimed,
    /// paused or removed): the worker must stop working on the item.
    #[error("lease lost on queue item {queue_id}")]
    LeaseLost {
        /// The item the lease was for.
        queue_id: i64,
    },
    /// The database cannot be reached or is busy; worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt row: not worth retrying.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// [`StoreError::NotFound`] for `entity` `id`.
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
        /// What failed, for the item's `error_message`.
        reason: String,
        /// The server's `Retry-After`, when it sent one.
        after: Option<Duration>,
    },
    /// The host asked us to slow down: the item waits `after` without
    /// using up an attempt.
    #[error("rate limited by {host}, retry in {}s", after.as_secs())]
    RateLimited {
        /// The host that answered 429 (or its platform's equivalent).
        host: String,
        /// How long to wait before asking again.
        after: Duration,
    },
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
    /// [`DownloadError::Permanent`] with `reason`.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent(reason.into())
    }

    /// [`DownloadError::Retryable`] with `reason` and no server-given delay.
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

/// `error: cause: cause`, the way a person wants to read it: an error and
/// its sources joined (reqwest's and lettre's own texts alone hide the cause),
/// each cause once.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
