//! Persistence as small capability traits behind one supertrait, [`Store`].
//!
//! Adapters implement every capability; code takes `Arc<dyn Store>` at the
//! edges. [`MemoryStore`] is the complete in-process implementation used by
//! tests and by embedders who want no database.
//!
//! Time: operations that depend on "now" take it as an argument, so the
//! caller's [`Clock`](crate::clock::Clock) decides and tests move time by hand.
//!
//! # Errors
//!
//! Every operation returns a [`StoreError`] saying what the caller can do:
//! `NotFound` for an id or key that does not exist, `Conflict` for a
//! duplicate unique key, `Invalid` for a change the row's state does not
//! allow, `LeaseLost` for a queue write under a lease that is no longer
//! held, `Unavailable` when the database cannot be reached (worth retrying),
//! and `Internal` for a bug or a corrupt row. The methods' docs name the
//! cases particular to them.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::StoreError;
use crate::model::{
    Bucket, Completion, Download, DownloadFilter, DownloadTotals, GroupBy, GroupTotals, Job,
    JobRun, JobSpec, LeaseToken, Leased, LogFilter, LogPage, LogsDeleted, Metadata, NewDownload,
    NewLogEntry, NewQueueItem, NewUser, NextRun, Page, Paged, QueueCounts, QueueFilter, QueueItem,
    QueuePatch, QueueProgress, QueueStats, QueueStatus, RefreshToken, RunFilter, RunStatus,
    TimelinePoint, User, UserPatch, Window, WorkerId,
};

#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
mod memory;
pub mod rules;

pub use memory::MemoryStore;

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The download history.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DownloadRepo: Send + Sync {
    /// Records a download. An `archive_key` that is already recorded is a
    /// [`StoreError::Conflict`]: the caller already has the item.
    async fn insert_download(&self, new: NewDownload) -> StoreResult<Download>;
    /// Records several downloads (an import's batch): the result for
    /// `new[i]` is at index `i`, and a `Conflict` (or an invalid record)
    /// fails only that one. An outer error fails the whole batch.
    /// Adapters override it to write the batch in one commit; the default
    /// inserts one record after another.
    async fn insert_downloads(
        &self,
        new: Vec<NewDownload>,
    ) -> StoreResult<Vec<StoreResult<Download>>> {
        let mut done = Vec::with_capacity(new.len());
        for one in new {
            match self.insert_download(one).await {
                Err(StoreError::Unavailable(reason)) => {
                    return Err(StoreError::Unavailable(reason));
                }
                other => done.push(other),
            }
        }
        Ok(done)
    }
    /// Replaces the record `id` (keeping its id), e.g. a failed item that
    /// later succeeded, or an upgraded file.
    async fn replace_download(&self, id: i64, new: NewDownload) -> StoreResult<Download>;
    /// The record `id`; `NotFound` when there is none.
    async fn get_download(&self, id: i64) -> StoreResult<Download>;
    /// Newest first (`download_date` descending, then id descending).
    async fn list_downloads(
        &self,
        filter: &DownloadFilter,
        page: Page,
    ) -> StoreResult<Paged<Download>>;
    /// Removes and returns the record.
    async fn delete_download(&self, id: i64) -> StoreResult<Download>;
    /// The record of the media item with this archive key, completed or failed.
    async fn download_by_archive_key(&self, archive_key: &str) -> StoreResult<Option<Download>>;
    /// Which of `archive_keys` are recorded as completed (one query for a batch).
    async fn known_archive_keys(&self, archive_keys: &[String]) -> StoreResult<Vec<String>>;
    /// The completed record that owns a file with this `sha256:<hex>` hash.
    async fn download_by_file_hash(&self, file_hash: &str) -> StoreResult<Option<Download>>;
    /// Merges `patch` into the record's metadata (top-level keys replace).
    async fn update_download_metadata(&self, id: i64, patch: Metadata) -> StoreResult<Download>;
    /// Points every record whose `file_path` is `from` at `to` (media moved
    /// to another storage: the original and its duplicates); returns how
    /// many records changed.
    async fn relocate_file(&self, from: &str, to: &str) -> StoreResult<u64>;
    /// Records whose `download_date` is before `cutoff`, oldest first, at most `limit`.
    async fn downloads_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Download>>;
    /// Other records pointing at `id`'s file as duplicates.
    async fn duplicates_of(&self, id: i64) -> StoreResult<Vec<Download>>;

    /// Totals of downloads whose `download_date` falls in `window`.
    async fn download_totals(&self, window: Window) -> StoreResult<DownloadTotals>;
    /// Totals per value of `group`, largest first.
    async fn download_totals_by(
        &self,
        group: GroupBy,
        window: Window,
    ) -> StoreResult<Vec<GroupTotals>>;
    /// Counts per bucket (UTC bucket starts), oldest first; empty buckets omitted.
    async fn download_timeline(
        &self,
        bucket: Bucket,
        window: Window,
    ) -> StoreResult<Vec<TimelinePoint>>;
    /// Bytes of files owned by completed records (duplicates excluded).
    async fn storage_used(&self) -> StoreResult<u64>;
    /// Latest completed `download_date` per platform.
    async fn last_download_per_platform(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>>;
}

/// The work queue with leases.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait QueueRepo: Send + Sync {
    /// Stores a new `pending` item due at once, created at `now`.
    async fn enqueue(&self, new: NewQueueItem, now: DateTime<Utc>) -> StoreResult<QueueItem>;
    /// The item `id`; `NotFound` when there is none.
    async fn get_queue_item(&self, id: i64) -> StoreResult<QueueItem>;
    /// Most urgent first (priority ascending, then oldest first).
    async fn list_queue(&self, filter: &QueueFilter, page: Page) -> StoreResult<Paged<QueueItem>>;
    /// Items per status, over the whole queue.
    async fn queue_counts(&self) -> StoreResult<QueueCounts>;
    /// Counts, mean wait and run times over the 24 hours before `now`, and the workers holding leases.
    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats>;

    /// Atomically takes up to `n` due items (pending, `next_attempt_at <= now`),
    /// most urgent first, marks them `downloading`, counts an attempt, and
    /// leases them to `worker` until `now + lease_for`.
    async fn claim(
        &self,
        worker: &WorkerId,
        n: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Leased>>;
    /// Extends a lease. `LeaseLost` when the item was re-claimed, paused or removed.
    async fn renew(
        &self,
        lease: &LeaseToken,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Writes progress under the lease.
    async fn record_progress(&self, lease: &LeaseToken, progress: QueueProgress)
    -> StoreResult<()>;
    /// Ends the item `completed` with its counts.
    async fn complete(
        &self,
        lease: &LeaseToken,
        items_downloaded: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem>;
    /// Completes several items at once, each under its own lease: the
    /// result for `done[i]` is at index `i`, and a lost lease fails only
    /// that item. An outer error fails the whole batch (the database is
    /// unreachable, say). Adapters override it to write the batch in one
    /// commit; the default completes one item after another.
    async fn complete_many(&self, done: &[Completion]) -> StoreResult<Vec<StoreResult<QueueItem>>> {
        let mut results = Vec::with_capacity(done.len());
        for completion in done {
            results.push(
                self.complete(
                    &completion.lease,
                    completion.items_downloaded,
                    completion.finished_at,
                )
                .await,
            );
        }
        Ok(results)
    }
    /// Ends the attempt with an error: back to `pending` until `retry_at`
    /// when given, otherwise `failed`.
    async fn fail(
        &self,
        lease: &LeaseToken,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem>;
    /// Gives the item back without using up the attempt (shutdown, storage
    /// full, rate limits): `pending` again, not before `not_before`, with
    /// `reason` as its message.
    async fn release(
        &self,
        lease: &LeaseToken,
        reason: Option<String>,
        not_before: DateTime<Utc>,
    ) -> StoreResult<QueueItem>;
    /// Items whose lease ran out go back to `pending` (or `failed` once out
    /// of attempts). Returns the items changed.
    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueItem>>;

    /// Priority change, pause (pending or downloading → paused, dropping any
    /// lease) or resume (paused → pending).
    async fn update_queue_item(
        &self,
        id: i64,
        patch: QueuePatch,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem>;
    /// A failed (or completed) item back to `pending` with `extra_attempts`
    /// more attempts allowed.
    async fn retry_queue_item(
        &self,
        id: i64,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem>;
    /// Removes and returns the item; a worker holding it loses its lease.
    async fn delete_queue_item(&self, id: i64) -> StoreResult<QueueItem>;
    /// Removes every item in one of `statuses`; returns how many.
    async fn clear_queue(&self, statuses: &[QueueStatus]) -> StoreResult<u64>;
}

/// Scheduled jobs and their history.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait JobRepo: Send + Sync {
    /// Stores a new job, its state included (a job is created before it
    /// fires: see [`Job::new`]). `Conflict` when the id exists.
    async fn create_job(&self, job: Job) -> StoreResult<Job>;
    /// The job `id`; `NotFound` when there is none.
    async fn get_job(&self, id: &str) -> StoreResult<Job>;
    /// Ordered by id.
    async fn list_jobs(&self) -> StoreResult<Vec<Job>>;
    /// Replaces the job's definition, sets `updated_at` to `now` and
    /// `next_run` as [`NextRun`] says (`None` whenever the new definition is
    /// disabled). The slot taken, the counters and `last_run*` stay as
    /// stored: a definition read before another process claimed a slot
    /// never re-opens that slot. `NotFound` when missing.
    async fn update_job_spec(
        &self,
        id: &str,
        spec: JobSpec,
        next_run: NextRun,
        now: DateTime<Utc>,
    ) -> StoreResult<Job>;
    /// Enables or disables the job with its next firing time (`None`
    /// whenever disabled), leaving the rest of the definition and the
    /// state as stored; sets `updated_at` to `now`. `NotFound` when missing.
    async fn set_job_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job>;
    /// Removes the job and its run history; `NotFound` when missing.
    async fn delete_job(&self, id: &str) -> StoreResult<()>;
    /// Takes the firing of `slot` for this job: true for exactly one caller
    /// across every process (sets `last_slot` when it is older than `slot`).
    async fn claim_slot(
        &self,
        job_id: &str,
        slot: DateTime<Utc>,
        next_run: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;
    /// Opens a history row (`running`, or `skipped` closed at once) and
    /// updates the job's counters and `last_run*` fields.
    async fn open_run(
        &self,
        job_id: &str,
        started_at: DateTime<Utc>,
        status: RunStatus,
        queue_id: Option<i64>,
    ) -> StoreResult<JobRun>;
    /// Links a run to the queue item it enqueued.
    async fn set_run_queue_item(&self, run_id: i64, queue_id: i64) -> StoreResult<()>;
    /// Closes a running row with its outcome and updates the job's counters
    /// and `last_run*` fields. Closing a closed row changes nothing.
    async fn close_run(
        &self,
        run_id: i64,
        status: RunStatus,
        items_downloaded: u32,
        error: Option<String>,
        completed_at: DateTime<Utc>,
    ) -> StoreResult<JobRun>;
    /// The job's run still `running`, if any.
    async fn active_run(&self, job_id: &str) -> StoreResult<Option<JobRun>>;
    /// Newest first.
    async fn run_history(&self, filter: &RunFilter) -> StoreResult<Vec<JobRun>>;
}

/// Accounts and refresh tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// `Conflict` when the username is taken (case-insensitive).
    async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> StoreResult<User>;
    /// The account `id`; `NotFound` when there is none.
    async fn get_user(&self, id: i64) -> StoreResult<User>;
    /// The user and their password hash (case-insensitive username).
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>>;
    /// Ordered by id.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Applies the patch's `Some` fields and returns the account; `NotFound` when missing.
    async fn update_user(&self, id: i64, patch: UserPatch) -> StoreResult<User>;
    /// Removes the account and its refresh tokens; `NotFound` when missing.
    async fn delete_user(&self, id: i64) -> StoreResult<()>;
    /// Sets `last_login` to `at`.
    async fn record_login(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()>;
    /// Accounts in all, disabled ones included.
    async fn count_users(&self) -> StoreResult<u64>;

    /// Stores a newly issued refresh token (by its `jti`).
    async fn insert_refresh_token(&self, token: RefreshToken) -> StoreResult<()>;
    /// Marks the token used and returns it; `Invalid` when it is unknown,
    /// already used, revoked or expired at `now` (one atomic step, so a
    /// token works once even under races).
    async fn use_refresh_token(&self, id: &str, now: DateTime<Utc>) -> StoreResult<RefreshToken>;
    /// Revokes every token of the user (password change, deletion).
    async fn revoke_refresh_tokens(&self, user_id: i64) -> StoreResult<u64>;
    /// Revokes every token of the family `family_id` not yet revoked and
    /// returns how many (a spent token presented again: the family is
    /// taken to be stolen).
    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64>;

    /// The user's session version (0 for a new account): access tokens
    /// carry the version they were issued under and are refused once it
    /// has moved on. `NotFound` when the account does not exist.
    async fn session_version(&self, user_id: i64) -> StoreResult<u64>;
    /// Increments the user's session version in one atomic step and returns
    /// the new one, ending every access token issued before (logout,
    /// password change, a disabled account, a new role). `NotFound` when
    /// the account does not exist.
    async fn bump_session_version(&self, user_id: i64) -> StoreResult<u64>;
}

/// The settings document.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SettingsRepo: Send + Sync {
    /// The stored document; `{}` when nothing was ever saved.
    async fn get_settings(&self) -> StoreResult<Value>;
    /// Replaces the whole stored document (validation is the caller's).
    async fn save_settings(&self, document: &Value) -> StoreResult<()>;
}

/// Stored application logs.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait LogRepo: Send + Sync {
    /// Stores entries in order; their ids increase with insertion.
    async fn append_logs(&self, entries: Vec<NewLogEntry>) -> StoreResult<()>;
    /// Newest first.
    async fn query_logs(&self, filter: &LogFilter) -> StoreResult<LogPage>;
    /// Removes entries logged before `cutoff`; says how many and how big.
    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<LogsDeleted>;
}

/// Small JSON documents kept per key between runs (a forum thread's last
/// page, a feed cursor, a host's cookies).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait StateRepo: Send + Sync + std::fmt::Debug {
    /// The document under `key`, `None` when nothing is stored.
    async fn get_state(&self, key: &str) -> StoreResult<Option<Value>>;
    /// Stores `value` under `key`, replacing what was there.
    async fn put_state(&self, key: &str, value: &Value) -> StoreResult<()>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete_state(&self, key: &str) -> StoreResult<()>;
    /// One cheap round trip to the database (readiness probes): `Ok` when it
    /// answers a query, [`StoreError::Unavailable`] when it cannot be reached.
    async fn ping(&self) -> StoreResult<()>;

    /// The database connection pools now, for `/metrics`; none for stores
    /// without a pool (the in-memory one).
    fn pool_usage(&self) -> Vec<crate::metrics::PoolUsage> {
        Vec::new()
    }

    /// Writes a consistent copy of the whole database into the existing
    /// directory `dir` while the store stays in use (SQLite `VACUUM INTO`,
    /// PostgreSQL `pg_dump`), for [`backup::create`](crate::backup::create).
    /// The file is readable by its owner only.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the copy cannot be taken (a program
    /// it needs is missing, the directory is not writable);
    /// [`StoreError::Invalid`] for a store that keeps nothing to copy.
    async fn snapshot(&self, dir: &Path) -> StoreResult<crate::backup::DatabaseSnapshot>;
}

/// Every capability together; `Arc<dyn Store>` at the edges.
pub trait Store:
    DownloadRepo
    + QueueRepo
    + JobRepo
    + UserRepo
    + SettingsRepo
    + LogRepo
    + StateRepo
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: DownloadRepo
        + QueueRepo
        + JobRepo
        + UserRepo
        + SettingsRepo
        + LogRepo
        + StateRepo
        + Send
        + Sync
        + 'static
{
}
