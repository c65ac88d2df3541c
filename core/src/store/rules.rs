//! Rules every [`Store`](super::Store) implementation applies the same way:
//! input validation, limits, time arithmetic, bucket boundaries, which
//! queue status changes a person may ask for, and what a job run's opening
//! and outcome do to the job. Keeping
//! them here is what lets the in-memory and SQL stores pass one conformance
//! suite without drifting apart.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

use crate::error::StoreError;
use crate::model::{
    Bucket, DownloadFilter, LogFilter, Metadata, NewDownload, NewQueueItem, NewUser, QueueStatus,
    RunStatus, UserPatch,
};

use super::StoreResult;

/// Most attempts a queue item may be given.
pub const MAX_ATTEMPTS: u32 = 100;
/// Run history rows returned when a filter asks for none in particular.
pub const DEFAULT_RUN_HISTORY_LIMIT: u32 = 50;
/// Log entries returned when a filter asks for none in particular.
pub const DEFAULT_LOG_LIMIT: u32 = 100;
/// Most rows a history or log query returns.
pub const MAX_QUERY_LIMIT: u32 = 1000;

/// Rounds a timestamp down to whole microseconds, the precision both SQL
/// databases keep, so every store returns the same value it was given.
pub fn to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(ts.timestamp_micros())
}

/// Microseconds since the Unix epoch back to a timestamp (saturating at the
/// representable range rather than panicking on a corrupt value).
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `now + lease_for`, refusing durations too large to represent.
pub fn lease_until(now: DateTime<Utc>, lease_for: Duration) -> StoreResult<DateTime<Utc>> {
    chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .map(to_micros)
        .ok_or_else(|| StoreError::Invalid(format!("lease of {lease_for:?} is too long")))
}

/// Priorities run from 1 (most urgent) to 10.
pub fn validate_priority(priority: u8) -> StoreResult<()> {
    within("priority", priority, 1..=10)
}

/// A queue item needs a URL, a platform, a priority in range and at least one attempt.
pub fn validate_new_queue_item(new: &NewQueueItem) -> StoreResult<()> {
    not_blank("queue item url", &new.url)?;
    not_blank("queue item platform", &new.platform)?;
    validate_priority(new.priority)?;
    validate_max_attempts(new.max_attempts)
}

/// Between 1 and [`MAX_ATTEMPTS`] attempts.
pub fn validate_max_attempts(max_attempts: u32) -> StoreResult<()> {
    within("max_attempts", max_attempts, 1..=MAX_ATTEMPTS)
}

/// Progress is a percentage.
pub fn validate_progress(progress: u8) -> StoreResult<()> {
    within("progress", progress, 0..=100)
}

/// `value` within `range`, else `Invalid` naming `name` and the bounds.
fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> StoreResult<()> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{name} must be between {} and {}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

/// Refuses a `value` of only white space as "`what` is empty".
fn not_blank(what: &str, value: &str) -> StoreResult<()> {
    if value.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{what} is empty")));
    }
    Ok(())
}

/// A download record needs an archive key and a URL; a file hash, when
/// present, is `sha256:` and 64 hex digits.
pub fn validate_new_download(new: &NewDownload) -> StoreResult<()> {
    not_blank("download archive_key", &new.archive_key)?;
    not_blank("download url", &new.url)?;
    if let Some(hash) = &new.file_hash {
        validate_file_hash(hash)?;
    }
    Ok(())
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn validate_file_hash(hash: &str) -> StoreResult<()> {
    let valid = hash.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "file hash {hash:?} is not sha256:<64 lowercase hex digits>"
        )))
    }
}

/// Only argon2 PHC strings are ever stored as password hashes: a plain
/// password handed to the store by mistake is refused.
pub fn validate_password_hash(hash: &str) -> StoreResult<()> {
    let argon2 = ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix));
    if argon2 && hash.split('$').count() >= 5 {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "password hash is not an argon2 PHC string".into(),
        ))
    }
}

/// A username is 1–64 characters with no surrounding spaces.
pub fn validate_username(username: &str) -> StoreResult<()> {
    if username.is_empty() || username.chars().count() > 64 || username.trim() != username {
        return Err(StoreError::Invalid(format!(
            "username {username:?} must be 1-64 characters without surrounding spaces"
        )));
    }
    Ok(())
}

/// Username and hash of a new account.
pub fn validate_new_user(new: &NewUser) -> StoreResult<()> {
    validate_username(&new.username)?;
    validate_password_hash(&new.password_hash)
}

/// A new password hash in a patch must be argon2 too.
pub fn validate_user_patch(patch: &UserPatch) -> StoreResult<()> {
    match &patch.password_hash {
        Some(hash) => validate_password_hash(hash),
        None => Ok(()),
    }
}

/// A job id is a non-empty slug without spaces.
pub fn validate_job_id(id: &str) -> StoreResult<()> {
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(StoreError::Invalid(format!(
            "job id {id:?} must be non-empty and without spaces"
        )));
    }
    Ok(())
}

/// What a status change asked of a queue item (pause or resume) does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueTransition {
    /// No status change: a priority change alone.
    Stay,
    /// Pending or downloading → `paused`, with no estimated completion.
    /// Pausing is not a failure: a download it interrupts gives its
    /// attempt back, and its worker's lease is void.
    Pause {
        /// The item was downloading.
        interrupts_attempt: bool,
    },
    /// Paused → `pending`, due at once.
    Resume,
}

/// The only status changes a person may ask for: pause (pending or
/// downloading → paused) and resume (paused → pending). `Invalid` for any
/// other, naming both statuses.
pub fn queue_transition(
    id: i64,
    from: QueueStatus,
    to: Option<QueueStatus>,
) -> StoreResult<QueueTransition> {
    match (from, to) {
        (_, None) => Ok(QueueTransition::Stay),
        (QueueStatus::Pending | QueueStatus::Downloading, Some(QueueStatus::Paused)) => {
            Ok(QueueTransition::Pause {
                interrupts_attempt: from == QueueStatus::Downloading,
            })
        }
        (QueueStatus::Paused, Some(QueueStatus::Pending)) => Ok(QueueTransition::Resume),
        (from, Some(to)) => Err(StoreError::Invalid(format!(
            "queue item {id} cannot go from {} to {}",
            from.as_str(),
            to.as_str()
        ))),
    }
}

/// The `max_attempts` of a finished (failed or completed) item sent back to
/// `pending` with `extra_attempts` more. `Invalid` for an item still in the
/// queue's hands, no extra attempt, or a total over [`MAX_ATTEMPTS`].
pub fn retry_max_attempts(
    id: i64,
    status: QueueStatus,
    attempts: u32,
    extra_attempts: u32,
) -> StoreResult<u32> {
    if !status.is_finished() {
        return Err(StoreError::Invalid(format!(
            "queue item {id} is {}, only failed or completed items can be retried",
            status.as_str()
        )));
    }
    if extra_attempts == 0 {
        return Err(StoreError::Invalid(
            "a retry needs at least one more attempt".into(),
        ));
    }
    let max_attempts = attempts.saturating_add(extra_attempts);
    validate_max_attempts(max_attempts)?;
    Ok(max_attempts)
}

/// A run opens `running`, or `skipped` (closed at once) when the slot
/// fired while the previous run was active.
pub fn validate_run_opening(status: RunStatus) -> StoreResult<()> {
    if matches!(status, RunStatus::Running | RunStatus::Skipped) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "a run opens as running or skipped, not {}",
            status.as_str()
        )))
    }
}

/// The job's `last_run_items` when a run opens with `status`: none saved by
/// a skipped slot, not known yet while running.
pub fn opening_run_items(status: RunStatus) -> Option<u32> {
    (status == RunStatus::Skipped).then_some(0)
}

/// What closing a run adds to its job's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// Added to `success_count`.
    pub successes: u32,
    /// Added to `failure_count`.
    pub failures: u32,
}

/// A run closes as `success` or `failure` (`Invalid` otherwise), counted
/// once on its job.
pub fn run_outcome(status: RunStatus) -> StoreResult<RunOutcome> {
    match status {
        RunStatus::Success => Ok(RunOutcome {
            successes: 1,
            failures: 0,
        }),
        RunStatus::Failure => Ok(RunOutcome {
            successes: 0,
            failures: 1,
        }),
        other => Err(StoreError::Invalid(format!(
            "a run closes as success or failure, not {}",
            other.as_str()
        ))),
    }
}

/// The `next_run` stored for a job: none while disabled, whatever the
/// caller computed.
pub fn stored_next_run(enabled: bool, next_run: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    next_run.filter(|_| enabled).map(to_micros)
}

/// The settings document is a JSON object.
pub fn validate_settings_document(document: &serde_json::Value) -> StoreResult<()> {
    if document.is_object() {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "the settings document must be a JSON object".into(),
        ))
    }
}

/// Rows of run history to return for a requested `limit` (0 means the default).
pub fn run_history_limit(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_RUN_HISTORY_LIMIT
    } else {
        limit.min(MAX_QUERY_LIMIT)
    }
}

/// Log entries to return for a requested `limit` (0 means the default).
pub fn log_limit(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_LOG_LIMIT
    } else {
        limit.min(MAX_QUERY_LIMIT)
    }
}

/// Approximate storage of a log entry: its message and its metadata as JSON text.
pub fn log_entry_bytes(message: &str, metadata: &Metadata) -> u64 {
    let metadata_len = serde_json::to_string(metadata).map_or(0, |text| text.len());
    (message.len() + metadata_len) as u64
}

/// Start of a UTC day.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The `download_date` range a filter selects: inclusive start, exclusive end.
pub fn download_date_range(
    filter: &DownloadFilter,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let from = filter.date_from.map(day_start);
    let to = filter
        .date_to
        .map(|day| day.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, day_start));
    (from, to)
}

/// The start (UTC) of the bucket `ts` falls in. Weeks start on Monday.
pub fn bucket_start(bucket: Bucket, ts: DateTime<Utc>) -> DateTime<Utc> {
    let date = ts.date_naive();
    match bucket {
        Bucket::Hour => day_start(date) + chrono::Duration::hours(i64::from(ts.hour())),
        Bucket::Day => day_start(date),
        Bucket::Week => {
            day_start(date)
                - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()))
        }
        Bucket::Month => day_start(date.with_day(1).expect("day 1 exists")),
    }
}

/// Escapes `%`, `_` and `\` so a user's search text matches literally in a
/// SQL `LIKE … ESCAPE '\'` pattern, wrapped in `%` for a substring match.
pub fn like_substring_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for ch in search.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// Whether a filter text can occur in stored text at all. Stored text never
/// holds NUL: PostgreSQL refuses it in `text` (the query would fail), and
/// SQLite's `LIKE` and `lower()` stop reading at it, so `%\0%` would match
/// everything. A filter value with a NUL therefore matches nothing, and the
/// SQL stores answer so without sending it.
pub fn filter_text_can_match(text: &str) -> bool {
    !text.contains('\0')
}

/// Whether any download can match the text parts of `filter` (see
/// [`filter_text_can_match`]).
pub fn download_filter_can_match(filter: &DownloadFilter) -> bool {
    [&filter.platform, &filter.source, &filter.search]
        .into_iter()
        .flatten()
        .all(|text| filter_text_can_match(text))
}

/// Whether any log entry can match the text parts of `filter` (see
/// [`filter_text_can_match`]).
pub fn log_filter_can_match(filter: &LogFilter) -> bool {
    [&filter.module, &filter.search]
        .into_iter()
        .flatten()
        .all(|text| filter_text_can_match(text))
}

/// The message a queue item gets when its last lease ran out.
pub fn lease_expired_message(attempts: u32) -> String {
    format!("worker stopped responding (lease expired) after {attempts} attempt(s)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn buckets_start_at_hour_day_monday_and_first_of_month() {
        let ts = at("2026-03-12T17:45:10.5Z"); // a Thursday
        assert_eq!(bucket_start(Bucket::Hour, ts), at("2026-03-12T17:00:00Z"));
        assert_eq!(bucket_start(Bucket::Day, ts), at("2026-03-12T00:00:00Z"));
        assert_eq!(bucket_start(Bucket::Week, ts), at("2026-03-09T00:00:00Z"));
        assert_eq!(bucket_start(Bucket::Month, ts), at("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_substring_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }

    #[test]
    fn password_hashes_must_be_argon2() {
        assert!(validate_password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").is_ok());
        assert!(validate_password_hash("hunter2").is_err());
        assert!(validate_password_hash("$2b$12$bcrypthash").is_err());
    }

    #[test]
    fn file_hashes_are_checked() {
        assert!(validate_file_hash(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_file_hash("md5:abc").is_err());
        assert!(validate_file_hash(&format!("sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn date_range_includes_the_whole_last_day() {
        let filter = DownloadFilter {
            date_from: NaiveDate::from_ymd_opt(2026, 1, 1),
            date_to: NaiveDate::from_ymd_opt(2026, 1, 31),
            ..Default::default()
        };
        assert_eq!(
            download_date_range(&filter),
            (
                Some(at("2026-01-01T00:00:00Z")),
                Some(at("2026-02-01T00:00:00Z"))
            )
        );
    }

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(log_limit(0), DEFAULT_LOG_LIMIT);
        assert_eq!(log_limit(5000), MAX_QUERY_LIMIT);
        assert_eq!(run_history_limit(7), 7);
    }

    #[test]
    fn only_pause_and_resume_are_asked_for() {
        use QueueStatus::*;
        assert_eq!(
            queue_transition(1, Failed, None).unwrap(),
            QueueTransition::Stay
        );
        assert_eq!(
            queue_transition(1, Downloading, Some(Paused)).unwrap(),
            QueueTransition::Pause {
                interrupts_attempt: true
            }
        );
        assert_eq!(
            queue_transition(1, Pending, Some(Paused)).unwrap(),
            QueueTransition::Pause {
                interrupts_attempt: false
            }
        );
        assert_eq!(
            queue_transition(1, Paused, Some(Pending)).unwrap(),
            QueueTransition::Resume
        );
        for (from, to) in [
            (Paused, Paused),
            (Completed, Paused),
            (Pending, Pending),
            (Failed, Pending),
            (Pending, Completed),
        ] {
            let err = queue_transition(7, from, Some(to)).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("from {} to {}", from.as_str(), to.as_str())),
                "{err}"
            );
        }
    }

    #[test]
    fn retries_need_a_finished_item_and_an_attempt_in_range() {
        use QueueStatus::*;
        assert_eq!(retry_max_attempts(1, Failed, 3, 2).unwrap(), 5);
        assert_eq!(retry_max_attempts(1, Completed, 1, 1).unwrap(), 2);
        assert!(retry_max_attempts(1, Pending, 0, 1).is_err());
        assert!(retry_max_attempts(1, Failed, 3, 0).is_err());
        assert!(retry_max_attempts(1, Failed, MAX_ATTEMPTS, 1).is_err());
    }

    #[test]
    fn runs_open_and_close_by_their_rules() {
        assert!(validate_run_opening(RunStatus::Running).is_ok());
        assert!(validate_run_opening(RunStatus::Success).is_err());
        assert_eq!(opening_run_items(RunStatus::Skipped), Some(0));
        assert_eq!(opening_run_items(RunStatus::Running), None);
        assert_eq!(run_outcome(RunStatus::Failure).unwrap().failures, 1);
        assert_eq!(run_outcome(RunStatus::Success).unwrap().successes, 1);
        assert!(run_outcome(RunStatus::Skipped).is_err());
        assert_eq!(
            stored_next_run(false, Some(at("2026-01-01T00:00:00Z"))),
            None
        );
    }

    #[test]
    fn timestamps_round_to_micros() {
        let ts = at("2026-01-01T00:00:00.123456789Z");
        assert_eq!(to_micros(ts), at("2026-01-01T00:00:00.123456Z"));
        assert!(lease_until(ts, Duration::from_secs(u64::MAX)).is_err());
    }
}
