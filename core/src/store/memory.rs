//! [`MemoryStore`]: every store capability in process memory.
//!
//! It is the reference the SQL stores are measured against (the
//! conformance suite runs unchanged against all of them), and the store for
//! tests and for embedders who want no database. One mutex guards all
//! state; no lock is ever held across an `.await`.
//!
//! The engine's hot paths (claim, archive-key and content-hash look-ups)
//! use indexes kept beside the tables, so a queue of many thousand items
//! costs a few map operations per item rather than a scan. Every change to
//! a queue item or a download goes through the `State` methods that keep
//! those indexes in step.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::rules::{self, QueueTransition, to_micros};
use super::{
    DownloadRepo, JobRepo, LogRepo, QueueRepo, SettingsRepo, StateRepo, StoreResult, UserRepo,
};
use crate::error::StoreError;
use crate::model::{
    Bucket, Download, DownloadFilter, DownloadStatus, DownloadTotals, GroupBy, GroupTotals, Job,
    JobRun, JobSpec, LeaseToken, Leased, LogEntry, LogFilter, LogPage, LogsDeleted, Metadata,
    NewDownload, NewLogEntry, NewQueueItem, NewUser, NextRun, Page, Paged, QueueCounts,
    QueueFilter, QueueItem, QueuePatch, QueueProgress, QueueStats, QueueStatus, RefreshToken,
    RunFilter, RunStatus, TimelinePoint, User, UserPatch, Window, WorkerId,
};

/// The complete in-process store.
///
/// Nothing survives the process; everything else behaves as the SQL
/// stores do (leases, exactly-once slot claims, unique keys), so code
/// tested on it runs unchanged on a database.
///
/// ```
/// use std::time::Duration;
///
/// use chrono::Utc;
/// use mediadl::StoreError;
/// use mediadl::model::{NewQueueItem, QueueStatus, WorkerId};
/// use mediadl::store::{MemoryStore, QueueRepo};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let now = Utc::now();
/// let item = NewQueueItem::new("https://example.org/a.jpg", "direct", "example.org", "file");
/// store.enqueue(item, now).await?;
///
/// // A worker claims it under a lease and completes it.
/// let worker = WorkerId("example/w1".into());
/// let claimed = store.claim(&worker, 1, Duration::from_secs(60), now).await?;
/// assert_eq!(claimed.len(), 1);
/// assert_eq!(claimed[0].item.status, QueueStatus::Downloading);
/// let done = store.complete(&claimed[0].lease, 1, now).await?;
/// assert_eq!(done.status, QueueStatus::Completed);
///
/// // The lease ended with the item: another write under it is refused.
/// assert!(matches!(
///     store.complete(&claimed[0].lease, 1, now).await,
///     Err(StoreError::LeaseLost { .. })
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

/// A pending item's place in claim order: priority (1 first), then age.
type ClaimKey = (u8, DateTime<Utc>, i64);

#[derive(Debug, Default)]
struct State {
    next_id: HashMap<&'static str, i64>,
    downloads: BTreeMap<i64, Download>,
    /// Download id by archive key (keys are unique).
    by_archive_key: HashMap<String, i64>,
    /// Ids of the downloads that own their file, by content hash.
    by_file_hash: HashMap<String, BTreeSet<i64>>,
    queue: BTreeMap<i64, QueueItem>,
    /// Every pending item, due or not, in claim order.
    claim_order: BTreeSet<ClaimKey>,
    /// The lease token of each item currently held by a worker (exactly
    /// the items that are downloading).
    leases: HashMap<i64, uuid::Uuid>,
    jobs: BTreeMap<String, Job>,
    runs: BTreeMap<i64, JobRun>,
    users: BTreeMap<i64, (User, String)>,
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Session versions of users whose version has moved past 0.
    session_versions: HashMap<i64, u64>,
    settings: Option<Value>,
    logs: BTreeMap<i64, LogEntry>,
    state: HashMap<String, Value>,
}

impl State {
    fn next_id(&mut self, table: &'static str) -> i64 {
        let id = self.next_id.entry(table).or_insert(0);
        *id += 1;
        *id
    }

    /// Adds a newly enqueued item (ids are never reused).
    fn insert_queue_item(&mut self, item: QueueItem) {
        if let Some(key) = claim_key(&item) {
            self.claim_order.insert(key);
        }
        self.queue.insert(item.id, item);
    }

    /// Applies `change` to queue item `id`, keeping the claim order in step.
    fn change_queue_item<T>(
        &mut self,
        id: i64,
        change: impl FnOnce(&mut QueueItem) -> T,
    ) -> Option<T> {
        let item = self.queue.get_mut(&id)?;
        let before = claim_key(item);
        let result = change(item);
        let after = claim_key(item);
        if before != after {
            if let Some(key) = before {
                self.claim_order.remove(&key);
            }
            if let Some(key) = after {
                self.claim_order.insert(key);
            }
        }
        Some(result)
    }

    fn take_queue_item(&mut self, id: i64) -> Option<QueueItem> {
        self.leases.remove(&id);
        let item = self.queue.remove(&id)?;
        if let Some(key) = claim_key(&item) {
            self.claim_order.remove(&key);
        }
        Some(item)
    }

    /// Applies `change` to the item held under `lease`, or fails with `LeaseLost`.
    fn change_leased<T>(
        &mut self,
        lease: &LeaseToken,
        change: impl FnOnce(&mut QueueItem) -> T,
    ) -> StoreResult<T> {
        let lost = StoreError::LeaseLost {
            queue_id: lease.queue_id,
        };
        if self.leases.get(&lease.queue_id) != Some(&lease.token) {
            return Err(lost);
        }
        let holds = |item: &QueueItem| {
            item.status == QueueStatus::Downloading
                && item.assigned_worker.as_deref() == Some(lease.worker.0.as_str())
        };
        if !self.queue.get(&lease.queue_id).is_some_and(holds) {
            return Err(lost);
        }
        Ok(self
            .change_queue_item(lease.queue_id, change)
            .expect("checked above"))
    }

    fn drop_lease(&mut self, queue_id: i64) {
        self.leases.remove(&queue_id);
        self.change_queue_item(queue_id, |item| item.lease_expires_at = None);
    }

    fn job_mut(&mut self, id: &str) -> StoreResult<&mut Job> {
        self.jobs
            .get_mut(id)
            .ok_or_else(|| StoreError::not_found("job", id))
    }

    fn download_id_by_key(&self, archive_key: &str) -> Option<i64> {
        self.by_archive_key.get(archive_key).copied()
    }

    /// Stores `download` (new or replacing the one with its id), keeping the indexes in step.
    fn put_download(&mut self, download: Download) {
        if let Some(old) = self.downloads.remove(&download.id) {
            self.unindex_download(&old);
        }
        self.by_archive_key
            .insert(download.archive_key.clone(), download.id);
        if let Some(hash) = owned_file_hash(&download) {
            self.by_file_hash
                .entry(hash.to_owned())
                .or_default()
                .insert(download.id);
        }
        self.downloads.insert(download.id, download);
    }

    fn take_download(&mut self, id: i64) -> Option<Download> {
        let download = self.downloads.remove(&id)?;
        self.unindex_download(&download);
        Some(download)
    }

    fn unindex_download(&mut self, download: &Download) {
        if self.by_archive_key.get(&download.archive_key) == Some(&download.id) {
            self.by_archive_key.remove(&download.archive_key);
        }
        if let Some(hash) = owned_file_hash(download)
            && let Some(ids) = self.by_file_hash.get_mut(hash)
        {
            ids.remove(&download.id);
            if ids.is_empty() {
                self.by_file_hash.remove(hash);
            }
        }
    }
}

fn claim_key(item: &QueueItem) -> Option<ClaimKey> {
    (item.status == QueueStatus::Pending).then_some((item.priority, item.created_date, item.id))
}

/// The content hash of a download that owns its file (what dedupe matches against).
fn owned_file_hash(download: &Download) -> Option<&str> {
    owns_file(download)
        .then_some(download.file_hash.as_deref())
        .flatten()
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, State>> {
        // A panic while holding the lock leaves state that may be half
        // written: report it rather than propagate the panic.
        self.state
            .lock()
            .map_err(|_| StoreError::Internal("memory store lock poisoned".into()))
    }
}

fn in_window(ts: DateTime<Utc>, window: Window) -> bool {
    window.from.is_none_or(|from| ts >= from) && window.to.is_none_or(|to| ts < to)
}

fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

/// Whether a record owns its bytes and counts toward storage.
fn owns_file(download: &Download) -> bool {
    download.status == DownloadStatus::Completed && download.duplicate_of.is_none()
}

fn add_to_totals(totals: &mut DownloadTotals, download: &Download) {
    totals.total += 1;
    match download.status {
        DownloadStatus::Completed => totals.completed += 1,
        DownloadStatus::Failed => totals.failed += 1,
    }
    if owns_file(download) {
        totals.size_bytes += download.file_size.unwrap_or(0);
    }
}

fn normalize_download(mut new: NewDownload) -> NewDownload {
    new.download_date = to_micros(new.download_date);
    new.post_date = new.post_date.map(to_micros);
    new
}

fn normalize_spec(mut spec: JobSpec) -> JobSpec {
    spec.monitor_until = spec.monitor_until.map(to_micros);
    spec
}

fn normalize_job(mut job: Job) -> Job {
    job.spec = normalize_spec(job.spec);
    let state = &mut job.state;
    state.last_run = state.last_run.map(to_micros);
    state.next_run = state.next_run.map(to_micros);
    state.last_slot = state.last_slot.map(to_micros);
    job.created_at = to_micros(job.created_at);
    job.updated_at = to_micros(job.updated_at);
    job
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[async_trait]
impl DownloadRepo for MemoryStore {
    async fn insert_download(&self, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let mut state = self.lock()?;
        if state.download_id_by_key(&new.archive_key).is_some() {
            return Err(StoreError::Conflict(format!(
                "archive key {} is already recorded",
                new.archive_key
            )));
        }
        let id = state.next_id("downloads");
        let download = normalize_download(new).into_download(id);
        state.put_download(download.clone());
        Ok(download)
    }

    async fn replace_download(&self, id: i64, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let mut state = self.lock()?;
        if !state.downloads.contains_key(&id) {
            return Err(StoreError::not_found("download", id));
        }
        if state
            .download_id_by_key(&new.archive_key)
            .is_some_and(|owner| owner != id)
        {
            return Err(StoreError::Conflict(format!(
                "archive key {} is recorded by another download",
                new.archive_key
            )));
        }
        let download = normalize_download(new).into_download(id);
        state.put_download(download.clone());
        Ok(download)
    }

    async fn get_download(&self, id: i64) -> StoreResult<Download> {
        self.lock()?
            .downloads
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("download", id))
    }

    async fn list_downloads(
        &self,
        filter: &DownloadFilter,
        page: Page,
    ) -> StoreResult<Paged<Download>> {
        let page = Page::new(page.page, page.per_page);
        let (from, to) = rules::download_date_range(filter);
        let search = filter.search.as_ref().map(|text| text.to_lowercase());
        let state = self.lock()?;
        let mut matching: Vec<&Download> = state
            .downloads
            .values()
            .filter(|d| filter.platform.as_ref().is_none_or(|p| &d.platform == p))
            .filter(|d| filter.source.as_ref().is_none_or(|s| &d.source == s))
            .filter(|d| filter.status.is_none_or(|s| d.status == s))
            .filter(|d| in_window(d.download_date, Window { from, to }))
            .filter(|d| {
                search.as_ref().is_none_or(|needle| {
                    contains_ignore_case(&d.url, needle)
                        || d.filename
                            .as_ref()
                            .is_some_and(|name| contains_ignore_case(name, needle))
                })
            })
            .collect();
        matching.sort_by(|a, b| {
            b.download_date
                .cmp(&a.download_date)
                .then_with(|| b.id.cmp(&a.id))
        });
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.per_page as usize)
            .cloned()
            .collect();
        Ok(Paged { items, total })
    }

    async fn delete_download(&self, id: i64) -> StoreResult<Download> {
        self.lock()?
            .take_download(id)
            .ok_or_else(|| StoreError::not_found("download", id))
    }

    async fn download_by_archive_key(&self, archive_key: &str) -> StoreResult<Option<Download>> {
        let state = self.lock()?;
        Ok(state
            .download_id_by_key(archive_key)
            .and_then(|id| state.downloads.get(&id).cloned()))
    }

    async fn known_archive_keys(&self, archive_keys: &[String]) -> StoreResult<Vec<String>> {
        let state = self.lock()?;
        let completed = |key: &str| {
            state
                .download_id_by_key(key)
                .and_then(|id| state.downloads.get(&id))
                .is_some_and(|d| d.status == DownloadStatus::Completed)
        };
        let mut seen = HashSet::new();
        Ok(archive_keys
            .iter()
            .filter(|key| completed(key) && seen.insert(key.as_str()))
            .cloned()
            .collect())
    }

    async fn download_by_file_hash(&self, file_hash: &str) -> StoreResult<Option<Download>> {
        let state = self.lock()?;
        Ok(state
            .by_file_hash
            .get(file_hash)
            .and_then(|ids| ids.first())
            .and_then(|id| state.downloads.get(id))
            .cloned())
    }

    async fn update_download_metadata(&self, id: i64, patch: Metadata) -> StoreResult<Download> {
        let mut state = self.lock()?;
        let download = state
            .downloads
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("download", id))?;
        download.metadata.extend(patch);
        Ok(download.clone())
    }

    async fn downloads_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Download>> {
        let state = self.lock()?;
        let mut old: Vec<&Download> = state
            .downloads
            .values()
            .filter(|d| d.download_date < cutoff)
            .collect();
        old.sort_by(|a, b| {
            a.download_date
                .cmp(&b.download_date)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(old.into_iter().take(limit as usize).cloned().collect())
    }

    async fn duplicates_of(&self, id: i64) -> StoreResult<Vec<Download>> {
        Ok(self
            .lock()?
            .downloads
            .values()
            .filter(|d| d.duplicate_of == Some(id))
            .cloned()
            .collect())
    }

    async fn download_totals(&self, window: Window) -> StoreResult<DownloadTotals> {
        let state = self.lock()?;
        let mut totals = DownloadTotals::default();
        for download in state
            .downloads
            .values()
            .filter(|d| in_window(d.download_date, window))
        {
            add_to_totals(&mut totals, download);
        }
        Ok(totals)
    }

    async fn download_totals_by(
        &self,
        group: GroupBy,
        window: Window,
    ) -> StoreResult<Vec<GroupTotals>> {
        let state = self.lock()?;
        let mut groups: BTreeMap<String, DownloadTotals> = BTreeMap::new();
        for download in state
            .downloads
            .values()
            .filter(|d| in_window(d.download_date, window))
        {
            let key = match group {
                GroupBy::Platform => &download.platform,
                GroupBy::Source => &download.source,
                GroupBy::ContentType => &download.content_type,
            };
            add_to_totals(groups.entry(key.clone()).or_default(), download);
        }
        let mut groups: Vec<GroupTotals> = groups
            .into_iter()
            .map(|(key, totals)| GroupTotals { key, totals })
            .collect();
        // Stable sort keeps the keys' alphabetical order among equal totals.
        groups.sort_by_key(|group| std::cmp::Reverse(group.totals.total));
        Ok(groups)
    }

    async fn download_timeline(
        &self,
        bucket: Bucket,
        window: Window,
    ) -> StoreResult<Vec<TimelinePoint>> {
        let state = self.lock()?;
        let mut points: BTreeMap<DateTime<Utc>, TimelinePoint> = BTreeMap::new();
        for download in state
            .downloads
            .values()
            .filter(|d| in_window(d.download_date, window))
        {
            let start = rules::bucket_start(bucket, download.download_date);
            let point = points.entry(start).or_insert(TimelinePoint {
                timestamp: start,
                downloads: 0,
                success: 0,
                failed: 0,
            });
            point.downloads += 1;
            match download.status {
                DownloadStatus::Completed => point.success += 1,
                DownloadStatus::Failed => point.failed += 1,
            }
        }
        Ok(points.into_values().collect())
    }

    async fn storage_used(&self) -> StoreResult<u64> {
        Ok(self
            .lock()?
            .downloads
            .values()
            .filter(|d| owns_file(d))
            .map(|d| d.file_size.unwrap_or(0))
            .sum())
    }

    async fn last_download_per_platform(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        let state = self.lock()?;
        let mut latest: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for download in state
            .downloads
            .values()
            .filter(|d| d.status == DownloadStatus::Completed)
        {
            let entry = latest
                .entry(download.platform.clone())
                .or_insert(download.download_date);
            *entry = (*entry).max(download.download_date);
        }
        Ok(latest.into_iter().collect())
    }
}

#[async_trait]
impl QueueRepo for MemoryStore {
    async fn enqueue(&self, new: NewQueueItem, now: DateTime<Utc>) -> StoreResult<QueueItem> {
        rules::validate_new_queue_item(&new)?;
        let mut state = self.lock()?;
        let id = state.next_id("queue");
        let item = new.into_item(id, to_micros(now));
        state.insert_queue_item(item.clone());
        Ok(item)
    }

    async fn get_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        self.lock()?
            .queue
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("queue item", id))
    }

    async fn list_queue(&self, filter: &QueueFilter, page: Page) -> StoreResult<Paged<QueueItem>> {
        let page = Page::new(page.page, page.per_page);
        let state = self.lock()?;
        let mut matching: Vec<&QueueItem> = state
            .queue
            .values()
            .filter(|item| filter.status.is_none_or(|s| item.status == s))
            .filter(|item| filter.platform.as_ref().is_none_or(|p| &item.platform == p))
            .collect();
        matching.sort_by_key(|item| (item.priority, item.created_date, item.id));
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.per_page as usize)
            .cloned()
            .collect();
        Ok(Paged { items, total })
    }

    async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let state = self.lock()?;
        let mut counts = QueueCounts::default();
        for item in state.queue.values() {
            counts.add(item.status, 1);
        }
        Ok(counts)
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        let counts = self.queue_counts().await?;
        let since = now - chrono::Duration::hours(24);
        let state = self.lock()?;
        let waits: Vec<f64> = state
            .queue
            .values()
            .filter_map(|item| item.started_at.map(|started| (item, started)))
            .filter(|(_, started)| *started >= since)
            .map(|(item, started)| seconds_between(item.created_date, started))
            .collect();
        let runs: Vec<f64> = state
            .queue
            .values()
            .filter(|item| item.status.is_finished())
            .filter_map(|item| Some((item.started_at?, item.download_date?)))
            .filter(|(_, finished)| *finished >= since)
            .map(|(started, finished)| seconds_between(started, finished))
            .collect();
        let active: HashSet<&str> = state
            .queue
            .values()
            .filter(|item| item.status == QueueStatus::Downloading)
            .filter(|item| item.lease_expires_at.is_some_and(|until| until > now))
            .filter_map(|item| item.assigned_worker.as_deref())
            .collect();
        Ok(QueueStats {
            counts,
            avg_wait_time_seconds: mean(&waits),
            avg_run_time_seconds: mean(&runs),
            active_workers: active.len() as u64,
        })
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        n: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Leased>> {
        let now = to_micros(now);
        let until = rules::lease_until(now, lease_for)?;
        let mut state = self.lock()?;
        let state = &mut *state;
        // Items waiting for a retry time stay in the order but are passed over.
        let due: Vec<i64> = state
            .claim_order
            .iter()
            .map(|&(_, _, id)| id)
            .filter(|id| state.queue[id].next_attempt_at <= now)
            .take(n as usize)
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            let token = uuid::Uuid::new_v4();
            state.leases.insert(id, token);
            let item = state
                .change_queue_item(id, |item| {
                    item.status = QueueStatus::Downloading;
                    item.attempts += 1;
                    item.started_at = Some(now);
                    item.assigned_worker = Some(worker.0.clone());
                    item.lease_expires_at = Some(until);
                    item.clone()
                })
                .expect("id taken from the claim order");
            claimed.push(Leased {
                item,
                lease: LeaseToken {
                    queue_id: id,
                    worker: worker.clone(),
                    token,
                },
            });
        }
        Ok(claimed)
    }

    async fn renew(
        &self,
        lease: &LeaseToken,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let until = rules::lease_until(to_micros(now), lease_for)?;
        self.lock()?
            .change_leased(lease, |item| item.lease_expires_at = Some(until))
    }

    async fn record_progress(
        &self,
        lease: &LeaseToken,
        progress: QueueProgress,
    ) -> StoreResult<()> {
        rules::validate_progress(progress.progress)?;
        self.lock()?.change_leased(lease, |item| {
            item.progress = progress.progress;
            item.items_downloaded = progress.items_downloaded;
            item.items_total = progress.items_total;
            item.estimated_completion = progress.estimated_completion.map(to_micros);
        })
    }

    async fn complete(
        &self,
        lease: &LeaseToken,
        items_downloaded: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut state = self.lock()?;
        state.change_leased(lease, |item| {
            item.status = QueueStatus::Completed;
            item.download_date = Some(to_micros(now));
            item.progress = 100;
            item.items_downloaded = items_downloaded;
            item.error_message = None;
            item.estimated_completion = None;
        })?;
        state.drop_lease(lease.queue_id);
        Ok(state.queue[&lease.queue_id].clone())
    }

    async fn fail(
        &self,
        lease: &LeaseToken,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut state = self.lock()?;
        state.change_leased(lease, |item| {
            item.error_message = Some(error.to_string());
            item.estimated_completion = None;
            match retry_at {
                // The store, not only the caller, guards the attempt budget.
                Some(retry_at) if item.attempts < item.max_attempts => {
                    item.status = QueueStatus::Pending;
                    item.next_attempt_at = to_micros(retry_at);
                }
                _ => {
                    item.status = QueueStatus::Failed;
                    item.download_date = Some(to_micros(now));
                }
            }
        })?;
        state.drop_lease(lease.queue_id);
        Ok(state.queue[&lease.queue_id].clone())
    }

    async fn release(
        &self,
        lease: &LeaseToken,
        reason: Option<String>,
        not_before: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut state = self.lock()?;
        state.change_leased(lease, |item| {
            item.status = QueueStatus::Pending;
            item.attempts = item.attempts.saturating_sub(1);
            item.next_attempt_at = to_micros(not_before);
            item.error_message = reason;
            item.estimated_completion = None;
        })?;
        state.drop_lease(lease.queue_id);
        Ok(state.queue[&lease.queue_id].clone())
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueItem>> {
        let now = to_micros(now);
        let mut state = self.lock()?;
        let mut expired: Vec<i64> = state
            .leases
            .keys()
            .filter(|id| {
                state.queue[id]
                    .lease_expires_at
                    .is_none_or(|until| until <= now)
            })
            .copied()
            .collect();
        // In queue order, as a scan of the queue would return them.
        expired.sort_unstable();
        let mut changed = Vec::with_capacity(expired.len());
        for id in expired {
            state.drop_lease(id);
            let item = state
                .change_queue_item(id, |item| {
                    if item.attempts < item.max_attempts {
                        item.status = QueueStatus::Pending;
                        item.next_attempt_at = now;
                    } else {
                        item.status = QueueStatus::Failed;
                        item.download_date = Some(now);
                        item.error_message = Some(rules::lease_expired_message(item.attempts));
                    }
                    item.estimated_completion = None;
                    item.clone()
                })
                .expect("a lease is only held on a queued item");
            changed.push(item);
        }
        Ok(changed)
    }

    async fn update_queue_item(
        &self,
        id: i64,
        patch: QueuePatch,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        if let Some(priority) = patch.priority {
            rules::validate_priority(priority)?;
        }
        let mut state = self.lock()?;
        let item = state
            .queue
            .get(&id)
            .ok_or_else(|| StoreError::not_found("queue item", id))?;
        let transition = rules::queue_transition(id, item.status, patch.status)?;
        if matches!(
            transition,
            QueueTransition::Pause {
                interrupts_attempt: true
            }
        ) {
            state.drop_lease(id);
        }
        let item = state.change_queue_item(id, |item| {
            if let Some(priority) = patch.priority {
                item.priority = priority;
            }
            match transition {
                QueueTransition::Pause { interrupts_attempt } => {
                    if interrupts_attempt {
                        item.attempts = item.attempts.saturating_sub(1);
                    }
                    item.status = QueueStatus::Paused;
                    item.estimated_completion = None;
                }
                QueueTransition::Resume => {
                    item.status = QueueStatus::Pending;
                    item.next_attempt_at = to_micros(now);
                }
                QueueTransition::Stay => {}
            }
            item.clone()
        });
        Ok(item.expect("checked above"))
    }

    async fn retry_queue_item(
        &self,
        id: i64,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut state = self.lock()?;
        let item = state
            .queue
            .get(&id)
            .ok_or_else(|| StoreError::not_found("queue item", id))?;
        let max_attempts =
            rules::retry_max_attempts(id, item.status, item.attempts, extra_attempts)?;
        let item = state.change_queue_item(id, |item| {
            item.status = QueueStatus::Pending;
            item.max_attempts = max_attempts;
            item.next_attempt_at = to_micros(now);
            item.download_date = None;
            item.error_message = None;
            item.progress = 0;
            item.clone()
        });
        Ok(item.expect("checked above"))
    }

    async fn delete_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        self.lock()?
            .take_queue_item(id)
            .ok_or_else(|| StoreError::not_found("queue item", id))
    }

    async fn clear_queue(&self, statuses: &[QueueStatus]) -> StoreResult<u64> {
        let mut state = self.lock()?;
        let doomed: Vec<i64> = state
            .queue
            .values()
            .filter(|item| statuses.contains(&item.status))
            .map(|item| item.id)
            .collect();
        for &id in &doomed {
            state.take_queue_item(id);
        }
        Ok(doomed.len() as u64)
    }
}

#[async_trait]
impl JobRepo for MemoryStore {
    async fn create_job(&self, job: Job) -> StoreResult<Job> {
        rules::validate_job_id(&job.id)?;
        let mut state = self.lock()?;
        if state.jobs.contains_key(&job.id) {
            return Err(StoreError::Conflict(format!("job {} exists", job.id)));
        }
        let job = normalize_job(job);
        state.jobs.insert(job.id.clone(), job.clone());
        Ok(job)
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        self.lock()?
            .jobs
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("job", id))
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        Ok(self.lock()?.jobs.values().cloned().collect())
    }

    async fn update_job_spec(
        &self,
        id: &str,
        spec: JobSpec,
        next_run: NextRun,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let mut state = self.lock()?;
        let job = state.job_mut(id)?;
        let next_run = match next_run {
            NextRun::Keep => job.state.next_run,
            NextRun::Set(next_run) => next_run,
        };
        job.state.next_run = rules::stored_next_run(spec.enabled, next_run);
        job.spec = normalize_spec(spec);
        job.updated_at = to_micros(now);
        Ok(job.clone())
    }

    async fn set_job_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let mut state = self.lock()?;
        let job = state.job_mut(id)?;
        job.spec.enabled = enabled;
        job.state.next_run = rules::stored_next_run(enabled, next_run);
        job.updated_at = to_micros(now);
        Ok(job.clone())
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let mut state = self.lock()?;
        state
            .jobs
            .remove(id)
            .ok_or_else(|| StoreError::not_found("job", id))?;
        state.runs.retain(|_, run| run.job_id != id);
        Ok(())
    }

    async fn claim_slot(
        &self,
        job_id: &str,
        slot: DateTime<Utc>,
        next_run: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let slot = to_micros(slot);
        let mut state = self.lock()?;
        let job = state.job_mut(job_id)?;
        if job.state.last_slot.is_some_and(|last| last >= slot) {
            return Ok(false);
        }
        job.state.last_slot = Some(slot);
        job.state.next_run = next_run.map(to_micros);
        Ok(true)
    }

    async fn open_run(
        &self,
        job_id: &str,
        started_at: DateTime<Utc>,
        status: RunStatus,
        queue_id: Option<i64>,
    ) -> StoreResult<JobRun> {
        rules::validate_run_opening(status)?;
        let started_at = to_micros(started_at);
        let mut state = self.lock()?;
        if !state.jobs.contains_key(job_id) {
            return Err(StoreError::not_found("job", job_id));
        }
        let id = state.next_id("runs");
        let skipped = status == RunStatus::Skipped;
        let run = JobRun {
            id,
            job_id: job_id.to_string(),
            started_at,
            completed_at: skipped.then_some(started_at),
            duration_seconds: skipped.then_some(0.0),
            status,
            items_downloaded: 0,
            error_message: None,
            queue_id,
        };
        state.runs.insert(id, run.clone());
        let job = &mut state.jobs.get_mut(job_id).expect("checked above").state;
        job.total_runs += 1;
        job.last_run = Some(started_at);
        job.last_run_status = Some(status);
        job.last_run_items = rules::opening_run_items(status);
        Ok(run)
    }

    async fn set_run_queue_item(&self, run_id: i64, queue_id: i64) -> StoreResult<()> {
        let mut state = self.lock()?;
        let run = state
            .runs
            .get_mut(&run_id)
            .ok_or_else(|| StoreError::not_found("job run", run_id))?;
        run.queue_id = Some(queue_id);
        Ok(())
    }

    async fn close_run(
        &self,
        run_id: i64,
        status: RunStatus,
        items_downloaded: u32,
        error: Option<String>,
        completed_at: DateTime<Utc>,
    ) -> StoreResult<JobRun> {
        let outcome = rules::run_outcome(status)?;
        let completed_at = to_micros(completed_at);
        let mut state = self.lock()?;
        let run = state
            .runs
            .get_mut(&run_id)
            .ok_or_else(|| StoreError::not_found("job run", run_id))?;
        if run.status != RunStatus::Running {
            return Ok(run.clone());
        }
        run.status = status;
        run.completed_at = Some(completed_at);
        run.duration_seconds = Some(seconds_between(run.started_at, completed_at));
        run.items_downloaded = items_downloaded;
        run.error_message = error;
        let run = run.clone();
        if let Some(job) = state.jobs.get_mut(&run.job_id).map(|job| &mut job.state) {
            job.success_count += u64::from(outcome.successes);
            job.failure_count += u64::from(outcome.failures);
            job.last_run_status = Some(status);
            job.last_run_items = Some(items_downloaded);
        }
        Ok(run)
    }

    async fn active_run(&self, job_id: &str) -> StoreResult<Option<JobRun>> {
        Ok(self
            .lock()?
            .runs
            .values()
            .rev()
            .find(|run| run.job_id == job_id && run.status == RunStatus::Running)
            .cloned())
    }

    async fn run_history(&self, filter: &RunFilter) -> StoreResult<Vec<JobRun>> {
        let state = self.lock()?;
        let mut runs: Vec<&JobRun> = state
            .runs
            .values()
            .filter(|run| filter.job_id.as_ref().is_none_or(|id| &run.job_id == id))
            .filter(|run| filter.status.is_none_or(|s| run.status == s))
            .collect();
        runs.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(runs
            .into_iter()
            .take(rules::run_history_limit(filter.limit) as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl UserRepo for MemoryStore {
    async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        rules::validate_new_user(&new)?;
        let mut state = self.lock()?;
        let lower = new.username.to_lowercase();
        if state
            .users
            .values()
            .any(|(user, _)| user.username.to_lowercase() == lower)
        {
            return Err(StoreError::Conflict(format!(
                "username {} is taken",
                new.username
            )));
        }
        let id = state.next_id("users");
        let user = User {
            id,
            username: new.username,
            email: new.email,
            role: new.role,
            disabled: false,
            created_at: to_micros(now),
            last_login: None,
        };
        state.users.insert(id, (user.clone(), new.password_hash));
        Ok(user)
    }

    async fn get_user(&self, id: i64) -> StoreResult<User> {
        self.lock()?
            .users
            .get(&id)
            .map(|(user, _)| user.clone())
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let lower = username.to_lowercase();
        Ok(self
            .lock()?
            .users
            .values()
            .find(|(user, _)| user.username.to_lowercase() == lower)
            .cloned())
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        Ok(self
            .lock()?
            .users
            .values()
            .map(|(user, _)| user.clone())
            .collect())
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> StoreResult<User> {
        rules::validate_user_patch(&patch)?;
        let mut state = self.lock()?;
        let (user, hash) = state
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        if let Some(email) = patch.email {
            user.email = email;
        }
        if let Some(role) = patch.role {
            user.role = role;
        }
        if let Some(disabled) = patch.disabled {
            user.disabled = disabled;
        }
        if let Some(new_hash) = patch.password_hash {
            *hash = new_hash;
        }
        Ok(user.clone())
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        let mut state = self.lock()?;
        state
            .users
            .remove(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        state.refresh_tokens.retain(|_, token| token.user_id != id);
        state.session_versions.remove(&id);
        Ok(())
    }

    async fn record_login(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        let mut state = self.lock()?;
        let (user, _) = state
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        user.last_login = Some(to_micros(at));
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.lock()?.users.len() as u64)
    }

    async fn insert_refresh_token(&self, mut token: RefreshToken) -> StoreResult<()> {
        let mut state = self.lock()?;
        if !state.users.contains_key(&token.user_id) {
            return Err(StoreError::not_found("user", token.user_id));
        }
        if state.refresh_tokens.contains_key(&token.id) {
            return Err(StoreError::Conflict(format!(
                "refresh token {} exists",
                token.id
            )));
        }
        token.issued_at = to_micros(token.issued_at);
        token.expires_at = to_micros(token.expires_at);
        token.used_at = token.used_at.map(to_micros);
        state.refresh_tokens.insert(token.id.clone(), token);
        Ok(())
    }

    async fn use_refresh_token(&self, id: &str, now: DateTime<Utc>) -> StoreResult<RefreshToken> {
        let mut state = self.lock()?;
        match state.refresh_tokens.get_mut(id) {
            Some(token) if token.used_at.is_none() && !token.revoked && token.expires_at > now => {
                token.used_at = Some(to_micros(now));
                Ok(token.clone())
            }
            _ => Err(StoreError::Invalid(
                "refresh token is unknown, used, revoked or expired".into(),
            )),
        }
    }

    async fn revoke_refresh_tokens(&self, user_id: i64) -> StoreResult<u64> {
        let mut state = self.lock()?;
        let mut revoked = 0;
        for token in state
            .refresh_tokens
            .values_mut()
            .filter(|token| token.user_id == user_id && !token.revoked)
        {
            token.revoked = true;
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64> {
        let mut state = self.lock()?;
        let mut revoked = 0;
        for token in state
            .refresh_tokens
            .values_mut()
            .filter(|token| token.family_id == family_id && !token.revoked)
        {
            token.revoked = true;
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn session_version(&self, user_id: i64) -> StoreResult<u64> {
        let state = self.lock()?;
        if !state.users.contains_key(&user_id) {
            return Err(StoreError::not_found("user", user_id));
        }
        Ok(state.session_versions.get(&user_id).copied().unwrap_or(0))
    }

    async fn bump_session_version(&self, user_id: i64) -> StoreResult<u64> {
        let mut state = self.lock()?;
        if !state.users.contains_key(&user_id) {
            return Err(StoreError::not_found("user", user_id));
        }
        let version = state.session_versions.entry(user_id).or_insert(0);
        *version += 1;
        Ok(*version)
    }
}

#[async_trait]
impl SettingsRepo for MemoryStore {
    async fn get_settings(&self) -> StoreResult<Value> {
        Ok(self
            .lock()?
            .settings
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default())))
    }

    async fn save_settings(&self, document: &Value) -> StoreResult<()> {
        rules::validate_settings_document(document)?;
        self.lock()?.settings = Some(document.clone());
        Ok(())
    }
}

#[async_trait]
impl LogRepo for MemoryStore {
    async fn append_logs(&self, entries: Vec<NewLogEntry>) -> StoreResult<()> {
        let mut state = self.lock()?;
        for entry in entries {
            let id = state.next_id("logs");
            state.logs.insert(
                id,
                LogEntry {
                    id,
                    timestamp: to_micros(entry.timestamp),
                    level: entry.level,
                    module: entry.module,
                    message: entry.message,
                    metadata: entry.metadata,
                },
            );
        }
        Ok(())
    }

    async fn query_logs(&self, filter: &LogFilter) -> StoreResult<LogPage> {
        let module = filter.module.as_ref().map(|m| m.to_lowercase());
        let search = filter.search.as_ref().map(|s| s.to_lowercase());
        let state = self.lock()?;
        let mut matching: Vec<&LogEntry> = state
            .logs
            .values()
            .filter(|e| filter.level.is_none_or(|level| e.level == level))
            .filter(|e| {
                module
                    .as_ref()
                    .is_none_or(|m| &e.module.to_lowercase() == m)
            })
            .filter(|e| {
                search
                    .as_ref()
                    .is_none_or(|s| contains_ignore_case(&e.message, s))
            })
            .filter(|e| filter.date_from.is_none_or(|from| e.timestamp >= from))
            .filter(|e| filter.date_to.is_none_or(|to| e.timestamp <= to))
            .collect();
        matching.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then_with(|| b.id.cmp(&a.id)));
        Ok(LogPage {
            matching: matching.len() as u64,
            total: state.logs.len() as u64,
            logs: matching
                .into_iter()
                .take(rules::log_limit(filter.limit) as usize)
                .cloned()
                .collect(),
        })
    }

    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<LogsDeleted> {
        let mut state = self.lock()?;
        let mut deleted = LogsDeleted::default();
        state.logs.retain(|_, entry| {
            let keep = entry.timestamp >= cutoff;
            if !keep {
                deleted.entries += 1;
                deleted.bytes += rules::log_entry_bytes(&entry.message, &entry.metadata);
            }
            keep
        });
        Ok(deleted)
    }
}

#[async_trait]
impl StateRepo for MemoryStore {
    async fn get_state(&self, key: &str) -> StoreResult<Option<Value>> {
        Ok(self.lock()?.state.get(key).cloned())
    }

    async fn put_state(&self, key: &str, value: &Value) -> StoreResult<()> {
        self.lock()?.state.insert(key.to_string(), value.clone());
        Ok(())
    }

    async fn delete_state(&self, key: &str) -> StoreResult<()> {
        self.lock()?.state.remove(key);
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        // The tables are in this process: reachable whenever the lock is.
        self.lock().map(drop)
    }

    async fn snapshot(&self, _dir: &Path) -> StoreResult<crate::backup::DatabaseSnapshot> {
        Err(StoreError::Invalid(
            "the in-memory store keeps nothing on disk to back up; back up a SQLite or PostgreSQL store".into(),
        ))
    }
}

#[cfg(test)]
mod conformance_tests {
    use std::sync::Arc;

    use crate::store::conformance::Harness;

    async fn fresh_store() -> Harness {
        Harness::new(Arc::new(super::MemoryStore::new()))
    }

    crate::store_conformance_suite!(fresh_store);
}

/// The indexes beside the tables, through changes the conformance suite
/// does not make: a replacement that changes key and hash, and claims
/// passing over items that wait for their retry time.
#[cfg(test)]
mod index_tests {
    use std::time::Duration;

    use super::MemoryStore;
    use crate::model::{DownloadStatus, NewQueueItem, QueuePatch, QueueStatus, WorkerId};
    use crate::store::conformance::{at, new_download};
    use crate::store::{DownloadRepo, QueueRepo};

    fn hash(n: u8) -> String {
        format!("sha256:{n:064x}")
    }

    #[tokio::test]
    async fn key_and_hash_lookups_follow_replace_and_delete() {
        let store = MemoryStore::new();
        let mut first = new_download("k:one", at(1));
        first.file_hash = Some(hash(0xaa));
        let first = store.insert_download(first).await.unwrap();
        let mut twin = new_download("k:twin", at(2));
        twin.file_hash = Some(hash(0xaa));
        let twin = store.insert_download(twin).await.unwrap();

        let mut moved = new_download("k:moved", at(3));
        moved.file_hash = Some(hash(0xbb));
        store.replace_download(first.id, moved).await.unwrap();
        assert_eq!(store.download_by_archive_key("k:one").await.unwrap(), None);
        let found = store.download_by_archive_key("k:moved").await.unwrap();
        assert_eq!(found.map(|d| d.id), Some(first.id));
        let owner = store.download_by_file_hash(&hash(0xaa)).await.unwrap();
        assert_eq!(
            owner.map(|d| d.id),
            Some(twin.id),
            "the other owner remains"
        );
        let owner = store.download_by_file_hash(&hash(0xbb)).await.unwrap();
        assert_eq!(owner.map(|d| d.id), Some(first.id));

        let mut failed = new_download("k:twin", at(4));
        failed.status = DownloadStatus::Failed;
        failed.file_hash = Some(hash(0xaa));
        store.replace_download(twin.id, failed).await.unwrap();
        assert_eq!(
            store.download_by_file_hash(&hash(0xaa)).await.unwrap(),
            None,
            "a failed record owns no file"
        );

        store.delete_download(first.id).await.unwrap();
        assert_eq!(
            store.download_by_archive_key("k:moved").await.unwrap(),
            None
        );
        assert_eq!(
            store.download_by_file_hash(&hash(0xbb)).await.unwrap(),
            None
        );
        store
            .insert_download(new_download("k:moved", at(5)))
            .await
            .expect("the key is free again");
    }

    #[tokio::test]
    async fn claims_follow_priority_changes_and_pass_over_waiting_items() {
        let store = MemoryStore::new();
        let mut ids = Vec::new();
        for n in 0..3 {
            let new = NewQueueItem::new(format!("https://e.com/{n}"), "direct", "e.com", "file");
            ids.push(store.enqueue(new, at(n)).await.unwrap().id);
        }
        let worker = WorkerId("w".into());
        let lease = Duration::from_secs(60);
        let first = store.claim(&worker, 1, lease, at(10)).await.unwrap();
        assert_eq!(first[0].item.id, ids[0]);
        store
            .fail(&first[0].lease, "later", Some(at(100)), at(10))
            .await
            .unwrap();
        let urgent = QueuePatch {
            priority: Some(1),
            ..Default::default()
        };
        store
            .update_queue_item(ids[2], urgent, at(11))
            .await
            .unwrap();

        let claimed = store.claim(&worker, 5, lease, at(20)).await.unwrap();
        let order: Vec<i64> = claimed.iter().map(|l| l.item.id).collect();
        assert_eq!(order, [ids[2], ids[1]], "the retry waits; priority 1 first");
        let retry = store.claim(&worker, 5, lease, at(100)).await.unwrap();
        assert_eq!(retry.len(), 1);
        assert_eq!(retry[0].item.id, ids[0]);
        assert_eq!(retry[0].item.status, QueueStatus::Downloading);
        assert!(
            store
                .claim(&worker, 5, lease, at(200))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
