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

mod downloads;
mod jobs;
mod misc;
mod queue;
mod users;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreResult;
use crate::error::StoreError;
use crate::model::{
    Download, DownloadStatus, Job, JobRun, LeaseToken, LogEntry, Page, Paged, QueueItem,
    QueueStatus, RefreshToken, User,
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

/// A copy of row `id` of `table`, or `NotFound` naming `entity`.
fn cloned_row<K, Q, V>(table: &BTreeMap<K, V>, entity: &'static str, id: &Q) -> StoreResult<V>
where
    K: std::borrow::Borrow<Q> + Ord,
    Q: Ord + ToString + ?Sized,
    V: Clone,
{
    table
        .get(id)
        .cloned()
        .ok_or_else(|| StoreError::not_found(entity, id.to_string()))
}

/// Page `page` of rows already filtered and sorted, with their total.
fn paged<T: Clone>(sorted: Vec<&T>, page: Page) -> Paged<T> {
    let total = sorted.len() as u64;
    let items = sorted
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.per_page as usize)
        .cloned()
        .collect();
    Paged { items, total }
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

    /// Applies `change` to the item `lease` holds and ends the lease: the
    /// item's last step under that lease (complete, fail, release).
    fn finish_leased(
        &mut self,
        lease: &LeaseToken,
        change: impl FnOnce(&mut QueueItem),
    ) -> StoreResult<QueueItem> {
        self.change_leased(lease, change)?;
        self.drop_lease(lease.queue_id);
        Ok(self.queue[&lease.queue_id].clone())
    }

    /// Revokes every refresh token `matches` picks that is not revoked yet;
    /// how many it revoked.
    fn revoke_tokens(&mut self, matches: impl Fn(&RefreshToken) -> bool) -> u64 {
        let mut revoked = 0;
        for token in self
            .refresh_tokens
            .values_mut()
            .filter(|token| !token.revoked && matches(token))
        {
            token.revoked = true;
            revoked += 1;
        }
        revoked
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

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

/// Whether a record owns its bytes and counts toward storage.
fn owns_file(download: &Download) -> bool {
    download.status == DownloadStatus::Completed && download.duplicate_of.is_none()
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
