//! The store conformance suite: one set of behaviour checks that every
//! [`Store`] implementation must pass unchanged (the in-memory store, SQLite,
//! PostgreSQL, and any third-party store).
//!
//! Each check is a plain `async fn(Arc<dyn Store>)` that panics on a
//! mismatch. [`store_conformance_suite!`](crate::store_conformance_suite)
//! turns all of them into `#[tokio::test]`s for a store factory:
//!
//! ```
//! use std::sync::Arc;
//!
//! use mediadl::store::MemoryStore;
//! use mediadl::store::conformance::{self, Harness};
//!
//! // In a test file of your store's crate (here the in-memory store stands in for yours):
//! async fn fresh_store() -> Harness {
//!     Harness::new(Arc::new(MemoryStore::new()))
//! }
//! mediadl::store_conformance_suite!(fresh_store);
//!
//! // Each check can also be run on its own.
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::queue_claim_order_and_due_time(fresh_store().await.store).await;
//! # }
//! ```
//!
//! Every check gets a fresh, empty store. Times are fixed instants passed as
//! `now`, so nothing here waits on a clock.

use std::any::Any;
use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::{Store, StoreResult};
use crate::error::StoreError;
use crate::model::{
    Bucket, CatchUp, Completion, DownloadFilter, DownloadStatus, DownloadTotals, GroupBy, Job,
    JobKind, JobSpec, LogFilter, LogLevel, Metadata, NewDownload, NewLogEntry, NewQueueItem,
    NewUser, NextRun, Page, QueueFilter, QueuePatch, QueueProgress, QueueStatus, RefreshToken,
    Role, RunFilter, RunStatus, UserPatch, Window, WorkerId,
};

/// A store under test and whatever must live exactly as long as it (a
/// temporary directory, a guard that drops a scratch database).
pub struct Harness {
    /// The store the conformance cases run against.
    pub store: Arc<dyn Store>,
    keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl Harness {
    /// A harness owning nothing besides `store` (an in-memory store, a database that outlives the test).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            keep_alive: None,
        }
    }

    /// A store plus a value dropped after the test (after the store).
    pub fn with_guard(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            keep_alive: Some(Box::new(guard)),
        }
    }
}

impl Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("has_guard", &self.keep_alive.is_some())
            .finish_non_exhaustive()
    }
}

/// Expands to one `#[tokio::test]` per conformance check, each calling
/// `$factory().await` (an `async fn() -> Harness`) for a fresh store.
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread`
/// features as a (dev-)dependency.
#[macro_export]
macro_rules! store_conformance_suite {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory;
            downloads_insert_get_replace_delete,
            downloads_reject_bad_input,
            downloads_list_filters_and_paging,
            downloads_search_is_literal_and_case_insensitive,
            filters_holding_nul_match_nothing,
            downloads_lookups,
            downloads_stats,
            downloads_timelines,
            downloads_stats_follow_replace_and_delete,
            queue_enqueue_list_and_counts,
            queue_claim_order_and_due_time,
            queue_lease_renew_progress_complete,
            queue_complete_many_checks_each_lease,
            queue_fail_retry_and_attempts,
            queue_release_gives_the_attempt_back,
            queue_expired_leases_are_requeued,
            queue_pause_resume_and_priority,
            queue_delete_and_clear,
            queue_stats_wait_run_and_workers,
            jobs_crud_and_slots,
            jobs_runs_and_history,
            jobs_spec_update_never_reopens_a_slot,
            users_accounts,
            users_refresh_tokens,
            users_refresh_families_and_session_versions,
            settings_document,
            logs_query_and_retention,
            state_documents,
            concurrent_claims_take_each_item_once,
            stalled_worker_loses_its_items,
            concurrent_inserts_of_one_archive_key,
            concurrent_refresh_token_use,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let harness: $crate::store::conformance::Harness = $factory().await;
                $crate::store::conformance::$case(harness.store.clone()).await;
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers

/// A fixed Monday, so week buckets are easy to reason about.
pub fn base_time() -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse().expect("valid timestamp")
}

/// `base_time()` plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    base_time() + chrono::Duration::seconds(seconds)
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn hash_of(n: u32) -> String {
    format!("sha256:{n:064x}")
}

/// A completed download of `archive_key` recorded at `date`.
pub fn new_download(archive_key: &str, date: DateTime<Utc>) -> NewDownload {
    NewDownload {
        url: format!("https://example.com/{}", archive_key.replace(':', "/")),
        archive_key: archive_key.to_string(),
        platform: "direct".into(),
        source: "example.com".into(),
        content_type: "file".into(),
        filename: Some(format!("{}.jpg", archive_key.replace(':', "_"))),
        file_path: Some(format!(
            "/data/downloads/{}.jpg",
            archive_key.replace(':', "_")
        )),
        file_size: Some(1000),
        file_hash: None,
        post_date: None,
        download_date: date,
        status: DownloadStatus::Completed,
        attempts: 1,
        error_message: None,
        duplicate_of: None,
        queue_id: None,
        metadata: Metadata::new(),
    }
}

/// A pending queue item for `url` with priority `priority`.
pub fn new_item(url: &str, priority: u8) -> NewQueueItem {
    let mut item = NewQueueItem::new(url, "direct", "example.com", "file");
    item.priority = priority;
    item
}

fn worker(name: &str) -> WorkerId {
    WorkerId(name.to_string())
}

const LEASE: Duration = Duration::from_secs(30);

fn argon2_hash(tag: &str) -> String {
    format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaC{tag}")
}

fn new_job(id: &str) -> Job {
    let spec = JobSpec {
        name: format!("Job {id}"),
        kind: JobKind::Download,
        platform: "instagram".into(),
        source: "someone".into(),
        content_type: "posts".into(),
        schedule: "0 */4 * * *".into(),
        timezone: Some("Europe/Berlin".into()),
        enabled: true,
        catch_up: CatchUp::Once,
        config: json!({"max_downloads": 50, "nested": {"a": [1, 2]}})
            .as_object()
            .cloned()
            .expect("object"),
        monitor_until: None,
    };
    Job::new(id, spec, at(0)).with_next_run(Some(at(3600)))
}

fn log(seconds: i64, level: LogLevel, module: &str, message: &str) -> NewLogEntry {
    NewLogEntry {
        timestamp: at(seconds),
        level,
        module: module.into(),
        message: message.into(),
        metadata: Metadata::new(),
    }
}

#[track_caller]
fn expect_not_found<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_invalid<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

#[track_caller]
fn expect_lease_lost<T: Debug>(result: StoreResult<T>, queue_id: i64, what: &str) {
    match result {
        Err(StoreError::LeaseLost { queue_id: id }) if id == queue_id => {}
        other => panic!("{what}: expected LeaseLost on {queue_id}, got {other:?}"),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    items.iter().map(id).collect()
}

// ---------------------------------------------------------------- downloads

/// Insert, get, replace and delete keep every field; a recorded archive key
/// is a conflict.
pub async fn downloads_insert_get_replace_delete(store: Arc<dyn Store>) {
    let mut first = new_download("direct:https://example.com/a.jpg", at(10));
    first.post_date = Some(at(-86_400));
    first.file_hash = Some(hash_of(1));
    first.queue_id = Some(42);
    first.metadata = json!({"title": "Grüße 🌍", "tags": ["a", "b"], "nested": {"w": 1920}})
        .as_object()
        .cloned()
        .expect("object");
    let stored = store.insert_download(first.clone()).await.expect("insert");
    assert!(stored.id > 0);
    assert_eq!(stored, first.clone().into_download(stored.id));
    assert_eq!(
        stored.url_hash,
        crate::model::url_hash("direct:https://example.com/a.jpg")
    );
    assert_eq!(
        store.get_download(stored.id).await.expect("get"),
        stored,
        "get returns what insert returned"
    );

    expect_conflict(
        store.insert_download(first.clone()).await,
        "second insert of one archive key",
    );
    let mut failed_same_key = first.clone();
    failed_same_key.status = DownloadStatus::Failed;
    expect_conflict(
        store.insert_download(failed_same_key).await,
        "a failed record of a recorded key",
    );

    let second = store
        .insert_download(new_download("direct:b", at(20)))
        .await
        .expect("insert b");
    assert_ne!(second.id, stored.id);

    let mut replacement = first.clone();
    replacement.file_size = Some(5000);
    replacement.status = DownloadStatus::Completed;
    replacement.metadata = Metadata::new();
    let replaced = store
        .replace_download(stored.id, replacement.clone())
        .await
        .expect("replace");
    assert_eq!(replaced, replacement.into_download(stored.id));
    assert_eq!(store.get_download(stored.id).await.expect("get"), replaced);
    expect_conflict(
        store
            .replace_download(
                second.id,
                new_download("direct:https://example.com/a.jpg", at(1)),
            )
            .await,
        "replace onto another record's key",
    );
    expect_not_found(
        store
            .replace_download(999_999, new_download("direct:zzz", at(1)))
            .await,
        "replace of a missing id",
    );

    let deleted = store.delete_download(stored.id).await.expect("delete");
    assert_eq!(deleted, replaced);
    expect_not_found(store.get_download(stored.id).await, "get after delete");
    expect_not_found(store.delete_download(stored.id).await, "delete twice");
    // The key is free again once its record is gone.
    store
        .insert_download(new_download("direct:https://example.com/a.jpg", at(30)))
        .await
        .expect("insert after delete");
}

/// Bad records are refused with `Invalid`, never stored.
pub async fn downloads_reject_bad_input(store: Arc<dyn Store>) {
    expect_invalid(
        store.insert_download(new_download("", at(0))).await,
        "empty archive key",
    );
    let mut bad_hash = new_download("direct:x", at(0));
    bad_hash.file_hash = Some("md5:abc".into());
    expect_invalid(store.insert_download(bad_hash).await, "bad file hash");
    let mut no_url = new_download("direct:y", at(0));
    no_url.url = String::new();
    expect_invalid(store.insert_download(no_url).await, "empty url");
    let all = store
        .list_downloads(&DownloadFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(all.total, 0, "nothing was stored");
    expect_not_found(store.get_download(-1).await, "negative id");
}

/// Every filter narrows; the order is newest first with id breaking ties;
/// paging reports the total of all matches.
pub async fn downloads_list_filters_and_paging(store: Arc<dyn Store>) {
    // (key, platform, source, status, download_date, url, filename)
    let rows: Vec<(&str, &str, &str, DownloadStatus, DateTime<Utc>)> = vec![
        ("k1", "instagram", "alice", DownloadStatus::Completed, at(0)),
        (
            "k2",
            "instagram",
            "alice",
            DownloadStatus::Failed,
            at(3_600),
        ),
        (
            "k3",
            "instagram",
            "bob",
            DownloadStatus::Completed,
            at(86_400),
        ),
        ("k4", "tiktok", "bob", DownloadStatus::Completed, at(86_400)),
        (
            "k5",
            "tiktok",
            "carol",
            DownloadStatus::Failed,
            at(2 * 86_400 - 1),
        ),
        (
            "k6",
            "direct",
            "example.com",
            DownloadStatus::Completed,
            at(2 * 86_400),
        ),
        (
            "k7",
            "forum",
            "cars",
            DownloadStatus::Completed,
            at(10 * 86_400),
        ),
    ];
    let mut ids_by_key = std::collections::HashMap::new();
    for (key, platform, source, status, date) in &rows {
        let mut new = new_download(key, *date);
        new.platform = platform.to_string();
        new.source = source.to_string();
        new.status = *status;
        if *status == DownloadStatus::Failed {
            new.filename = None;
            new.file_path = None;
            new.file_size = None;
            new.error_message = Some("HTTP 404".into());
        }
        let stored = store.insert_download(new).await.expect("insert");
        ids_by_key.insert(*key, stored.id);
    }
    let key_of = |id: i64| {
        ids_by_key
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.to_string())
            .expect("known id")
    };
    let list = |filter: DownloadFilter, page: Page| {
        let store = store.clone();
        async move {
            let paged = store.list_downloads(&filter, page).await.expect("list");
            let keys: Vec<String> = paged.items.iter().map(|d| key_of(d.id)).collect();
            (keys, paged.total)
        }
    };

    let (keys, total) = list(DownloadFilter::default(), Page::new(1, 50)).await;
    assert_eq!(total, 7);
    // k3 and k4 share a date: the later id comes first.
    assert_eq!(keys, ["k7", "k6", "k5", "k4", "k3", "k2", "k1"]);

    let (keys, total) = list(
        DownloadFilter {
            platform: Some("instagram".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(
        (keys, total),
        (vec!["k3".into(), "k2".into(), "k1".into()], 3)
    );

    let (keys, _) = list(
        DownloadFilter {
            source: Some("bob".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k4", "k3"]);

    let (keys, _) = list(
        DownloadFilter {
            status: Some(DownloadStatus::Failed),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k5", "k2"]);

    // Day bounds are inclusive: date_to covers its whole UTC day.
    let (keys, _) = list(
        DownloadFilter {
            date_from: Some(day(2026, 3, 3)),
            date_to: Some(day(2026, 3, 3)),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k5", "k4", "k3"]);
    let (keys, _) = list(
        DownloadFilter {
            date_from: Some(day(2026, 3, 4)),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k7", "k6"]);
    let (keys, _) = list(
        DownloadFilter {
            date_to: Some(day(2026, 3, 2)),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!(keys, ["k2", "k1"]);

    // Combined filters narrow together.
    let (keys, total) = list(
        DownloadFilter {
            platform: Some("tiktok".into()),
            status: Some(DownloadStatus::Completed),
            date_from: Some(day(2026, 3, 3)),
            search: Some("K4".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!((keys, total), (vec!["k4".into()], 1));

    // Paging: totals stay, pages slice in order, past the end is empty.
    let (keys, total) = list(DownloadFilter::default(), Page::new(2, 3)).await;
    assert_eq!(
        (keys, total),
        (vec!["k4".into(), "k3".into(), "k2".into()], 7)
    );
    let (keys, total) = list(DownloadFilter::default(), Page::new(3, 3)).await;
    assert_eq!((keys, total), (vec!["k1".into()], 7));
    let (keys, total) = list(DownloadFilter::default(), Page::new(9, 3)).await;
    assert_eq!((keys, total), (Vec::<String>::new(), 7));

    let (keys, total) = list(
        DownloadFilter {
            platform: Some("nope".into()),
            ..Default::default()
        },
        Page::default(),
    )
    .await;
    assert_eq!((keys, total), (Vec::<String>::new(), 0));
}

/// Search matches the URL or the filename, ignores ASCII case, and treats
/// `%`, `_` and `\` as plain characters.
pub async fn downloads_search_is_literal_and_case_insensitive(store: Arc<dyn Store>) {
    let mut a = new_download("s:a", at(0));
    a.url = "https://cdn.example.com/Photos/Summer_2025.JPG".into();
    a.filename = Some("beach.jpg".into());
    let mut b = new_download("s:b", at(1));
    b.url = "https://other.example.org/x?id=1".into();
    b.filename = Some("100% real_Photo.png".into());
    let mut c = new_download("s:c", at(2));
    c.url = "https://third.example.net/path\\with\\backslash".into();
    c.filename = None;
    for new in [a, b, c] {
        store.insert_download(new).await.expect("insert");
    }
    let search = |text: &str| {
        let store = store.clone();
        let filter = DownloadFilter {
            search: Some(text.to_string()),
            ..Default::default()
        };
        async move {
            let paged = store
                .list_downloads(&filter, Page::default())
                .await
                .expect("list");
            let mut keys: Vec<String> = paged.items.into_iter().map(|d| d.archive_key).collect();
            keys.sort();
            keys
        }
    };
    assert_eq!(search("summer_2025").await, ["s:a"], "URL, other case");
    assert_eq!(search("BEACH").await, ["s:a"], "filename, other case");
    assert_eq!(search("photo").await, ["s:a", "s:b"], "URL or filename");
    assert_eq!(search("100%").await, ["s:b"], "percent is literal");
    assert!(
        search("%").await == ["s:b"],
        "a lone percent matches only itself"
    );
    assert_eq!(search("l_p").await, ["s:b"], "underscore is literal");
    assert!(
        search("_").await.len() == 2,
        "underscore only where present"
    );
    assert_eq!(search("\\with\\").await, ["s:c"], "backslash is literal");
    assert!(search("nothing-like-this").await.is_empty());
}

/// A filter text holding NUL (`?search=%00`) matches nothing, on every
/// field and in logs too: no store may read it as an empty pattern that
/// matches everything, or fail on it.
pub async fn filters_holding_nul_match_nothing(store: Arc<dyn Store>) {
    let mut plain = new_download("n:a", at(0));
    plain.url = "https://example.com/a%00b".into();
    store.insert_download(plain).await.expect("insert");
    store
        .insert_download(new_download("n:b", at(1)))
        .await
        .expect("insert");
    store
        .append_logs(vec![log(0, LogLevel::Info, "Server", "started")])
        .await
        .expect("append");
    for text in ["\u{0}", "a\u{0}", "\u{0}%", "%\u{0}_", "Server\u{0}"] {
        let filters = [
            DownloadFilter {
                search: Some(text.into()),
                ..Default::default()
            },
            DownloadFilter {
                platform: Some(text.into()),
                ..Default::default()
            },
            DownloadFilter {
                source: Some(text.into()),
                ..Default::default()
            },
        ];
        for filter in filters {
            let paged = store
                .list_downloads(&filter, Page::default())
                .await
                .expect("a NUL is not an error");
            assert_eq!((paged.items.len(), paged.total), (0, 0), "{filter:?}");
        }
        for filter in [
            LogFilter {
                search: Some(text.into()),
                ..Default::default()
            },
            LogFilter {
                module: Some(text.into()),
                ..Default::default()
            },
        ] {
            let page = store
                .query_logs(&filter)
                .await
                .expect("a NUL is not an error");
            assert_eq!((page.logs.len(), page.matching), (0, 0), "{filter:?}");
            assert_eq!(page.total, 1, "the stored total is still counted");
        }
    }
}

/// Lookups by archive key and content hash, metadata merges, duplicates
/// and age queries.
pub async fn downloads_lookups(store: Arc<dyn Store>) {
    let mut original = new_download("h:original", at(100));
    original.file_hash = Some(hash_of(7));
    let original = store.insert_download(original).await.expect("original");
    let mut dup = new_download("h:dup", at(200));
    dup.file_hash = Some(hash_of(7));
    dup.duplicate_of = Some(original.id);
    let dup = store.insert_download(dup).await.expect("dup");
    let mut failed = new_download("h:failed", at(50));
    failed.status = DownloadStatus::Failed;
    failed.file_hash = Some(hash_of(8));
    let failed = store.insert_download(failed).await.expect("failed");

    assert_eq!(
        store
            .download_by_archive_key("h:dup")
            .await
            .expect("by key"),
        Some(dup.clone())
    );
    assert_eq!(
        store
            .download_by_archive_key("h:none")
            .await
            .expect("by key"),
        None
    );
    assert_eq!(
        store
            .download_by_archive_key("h:failed")
            .await
            .expect("failed by key"),
        Some(failed.clone()),
        "failed records are found by key too"
    );

    let asked: Vec<String> = ["h:original", "h:failed", "h:none", "h:dup", "h:original"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let known: BTreeSet<String> = store
        .known_archive_keys(&asked)
        .await
        .expect("known")
        .into_iter()
        .collect();
    assert_eq!(
        known,
        BTreeSet::from(["h:original".to_string(), "h:dup".to_string()]),
        "only completed records count as known"
    );
    assert!(
        store
            .known_archive_keys(&[])
            .await
            .expect("empty batch")
            .is_empty()
    );
    let many: Vec<String> = (0..1500).map(|n| format!("h:many:{n}")).collect();
    assert!(
        store
            .known_archive_keys(&many)
            .await
            .expect("large batch")
            .is_empty(),
        "a large batch works in one call"
    );

    assert_eq!(
        store
            .download_by_file_hash(&hash_of(7))
            .await
            .expect("by hash"),
        Some(original.clone()),
        "the owner, not the duplicate"
    );
    assert_eq!(
        store
            .download_by_file_hash(&hash_of(8))
            .await
            .expect("by hash"),
        None,
        "failed records own no file"
    );
    assert_eq!(
        store.duplicates_of(original.id).await.expect("dups"),
        vec![dup.clone()]
    );
    assert!(store.duplicates_of(dup.id).await.expect("dups").is_empty());

    let mut seeded = Metadata::new();
    seeded.insert("width".into(), json!(1920));
    seeded.insert("nested".into(), json!({"a": 1, "b": 2}));
    store
        .update_download_metadata(original.id, seeded)
        .await
        .expect("seed metadata");
    let mut patch = Metadata::new();
    patch.insert("nested".into(), json!({"c": 3}));
    patch.insert("height".into(), json!(1080));
    let updated = store
        .update_download_metadata(original.id, patch)
        .await
        .expect("patch metadata");
    assert_eq!(
        Value::Object(updated.metadata.clone()),
        json!({"width": 1920, "height": 1080, "nested": {"c": 3}}),
        "top-level keys replace"
    );
    assert_eq!(
        store.get_download(original.id).await.expect("get").metadata,
        updated.metadata
    );
    expect_not_found(
        store
            .update_download_metadata(999_999, Metadata::new())
            .await,
        "metadata of a missing record",
    );

    let old = store.downloads_before(at(150), 10).await.expect("before");
    assert_eq!(
        ids(&old, |d| d.id),
        [failed.id, original.id],
        "oldest first"
    );
    let old = store.downloads_before(at(150), 1).await.expect("before");
    assert_eq!(ids(&old, |d| d.id), [failed.id], "limited");
    assert!(
        store
            .downloads_before(at(50), 10)
            .await
            .expect("before")
            .is_empty(),
        "cutoff is exclusive"
    );
}

/// Totals, breakdowns, storage used and the latest download per platform.
pub async fn downloads_stats(store: Arc<dyn Store>) {
    let empty = store
        .download_totals(Window::default())
        .await
        .expect("totals");
    assert_eq!(empty, DownloadTotals::default());
    assert_eq!(store.storage_used().await.expect("storage"), 0);

    let mut owner = new_download("st:1", at(0));
    owner.platform = "instagram".into();
    owner.source = "alice".into();
    owner.content_type = "posts".into();
    owner.file_size = Some(1_000);
    owner.file_hash = Some(hash_of(1));
    let owner = store.insert_download(owner).await.expect("owner");
    let mut dup = new_download("st:2", at(60));
    dup.platform = "instagram".into();
    dup.source = "bob".into();
    dup.content_type = "reels".into();
    dup.file_size = Some(1_000);
    dup.duplicate_of = Some(owner.id);
    store.insert_download(dup).await.expect("dup");
    let mut failed = new_download("st:3", at(120));
    failed.platform = "instagram".into();
    failed.source = "alice".into();
    failed.content_type = "posts".into();
    failed.status = DownloadStatus::Failed;
    failed.file_size = None;
    store.insert_download(failed).await.expect("failed");
    let mut tiktok = new_download("st:4", at(86_400));
    tiktok.platform = "tiktok".into();
    tiktok.source = "carol".into();
    tiktok.content_type = "videos".into();
    tiktok.file_size = Some(5_000_000_000);
    store.insert_download(tiktok).await.expect("tiktok");
    let mut old_tiktok = new_download("st:5", at(-86_400));
    old_tiktok.platform = "tiktok".into();
    old_tiktok.source = "carol".into();
    old_tiktok.content_type = "videos".into();
    old_tiktok.file_size = Some(10);
    store.insert_download(old_tiktok).await.expect("old tiktok");

    let all = store
        .download_totals(Window::default())
        .await
        .expect("totals");
    assert_eq!(
        all,
        DownloadTotals {
            total: 5,
            completed: 4,
            failed: 1,
            size_bytes: 1_000 + 5_000_000_000 + 10,
        }
    );
    assert_eq!(all.success_rate(), 80.0);
    let window = Window {
        from: Some(at(0)),
        to: Some(at(86_400)),
    };
    assert_eq!(
        store.download_totals(window).await.expect("window"),
        DownloadTotals {
            total: 3,
            completed: 2,
            failed: 1,
            size_bytes: 1_000,
        },
        "from is inclusive, to exclusive"
    );

    let by_platform = store
        .download_totals_by(GroupBy::Platform, Window::default())
        .await
        .expect("by platform");
    let summary: Vec<(String, u64, u64, u64, u64)> = by_platform
        .iter()
        .map(|g| {
            (
                g.key.clone(),
                g.totals.total,
                g.totals.completed,
                g.totals.failed,
                g.totals.size_bytes,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("instagram".to_string(), 3, 2, 1, 1_000),
            ("tiktok".to_string(), 2, 2, 0, 5_000_000_010)
        ]
    );
    let by_source = store
        .download_totals_by(GroupBy::Source, window)
        .await
        .expect("by source");
    let summary: Vec<(String, u64)> = by_source
        .iter()
        .map(|g| (g.key.clone(), g.totals.total))
        .collect();
    assert_eq!(
        summary,
        [("alice".to_string(), 2), ("bob".to_string(), 1)],
        "largest first"
    );
    let by_type = store
        .download_totals_by(GroupBy::ContentType, Window::default())
        .await
        .expect("by type");
    let summary: Vec<(String, u64)> = by_type
        .iter()
        .map(|g| (g.key.clone(), g.totals.total))
        .collect();
    assert_eq!(
        summary,
        [
            ("posts".to_string(), 2),
            ("videos".to_string(), 2),
            ("reels".to_string(), 1)
        ],
        "equal totals in key order"
    );

    assert_eq!(
        store.storage_used().await.expect("storage"),
        1_000 + 5_000_000_000 + 10,
        "duplicates and failures use no storage"
    );
    assert_eq!(
        store.last_download_per_platform().await.expect("latest"),
        vec![
            ("instagram".to_string(), at(60)),
            ("tiktok".to_string(), at(86_400))
        ]
    );
}

/// Timeline buckets by hour, day, Monday-based week and month, in UTC.
pub async fn downloads_timelines(store: Arc<dyn Store>) {
    let points = [
        ("t:1", "2026-03-02T10:15:00Z", DownloadStatus::Completed),
        ("t:2", "2026-03-02T10:45:00Z", DownloadStatus::Failed),
        ("t:3", "2026-03-02T11:00:00Z", DownloadStatus::Completed),
        ("t:4", "2026-03-08T23:59:59Z", DownloadStatus::Completed),
        ("t:5", "2026-03-09T00:00:00Z", DownloadStatus::Completed),
        ("t:6", "2026-04-01T00:00:00Z", DownloadStatus::Failed),
        ("t:7", "2025-12-31T23:00:00Z", DownloadStatus::Completed),
    ];
    for (key, when, status) in points {
        let mut new = new_download(key, when.parse().expect("time"));
        new.status = status;
        store.insert_download(new).await.expect("insert");
    }
    let timeline = |bucket: Bucket, window: Window| {
        let store = store.clone();
        async move {
            store
                .download_timeline(bucket, window)
                .await
                .expect("timeline")
                .into_iter()
                .map(|p| (p.timestamp.to_rfc3339(), p.downloads, p.success, p.failed))
                .collect::<Vec<_>>()
        }
    };
    let march_second = Window {
        from: Some("2026-03-02T00:00:00Z".parse().expect("time")),
        to: Some("2026-03-03T00:00:00Z".parse().expect("time")),
    };
    assert_eq!(
        timeline(Bucket::Hour, march_second).await,
        [
            ("2026-03-02T10:00:00+00:00".to_string(), 2, 1, 1),
            ("2026-03-02T11:00:00+00:00".to_string(), 1, 1, 0)
        ]
    );
    assert_eq!(
        timeline(Bucket::Day, Window::default()).await,
        [
            ("2025-12-31T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-02T00:00:00+00:00".to_string(), 3, 2, 1),
            ("2026-03-08T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-09T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-04-01T00:00:00+00:00".to_string(), 1, 0, 1)
        ]
    );
    assert_eq!(
        timeline(Bucket::Week, Window::default()).await,
        [
            ("2025-12-29T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-02T00:00:00+00:00".to_string(), 4, 3, 1),
            ("2026-03-09T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-30T00:00:00+00:00".to_string(), 1, 0, 1)
        ]
    );
    assert_eq!(
        timeline(Bucket::Month, Window::default()).await,
        [
            ("2025-12-01T00:00:00+00:00".to_string(), 1, 1, 0),
            ("2026-03-01T00:00:00+00:00".to_string(), 5, 4, 1),
            ("2026-04-01T00:00:00+00:00".to_string(), 1, 0, 1)
        ]
    );
    assert!(
        timeline(
            Bucket::Day,
            Window {
                from: Some(at(365 * 86_400)),
                to: None
            }
        )
        .await
        .is_empty()
    );
}

/// Totals, breakdowns, storage and filtered counts follow records that are
/// replaced (other status, platform, size, date) or deleted.
pub async fn downloads_stats_follow_replace_and_delete(store: Arc<dyn Store>) {
    let mut first = new_download("r:1", at(0));
    first.platform = "instagram".into();
    first.file_size = Some(100);
    let first = store.insert_download(first).await.expect("first");
    let mut second = new_download("r:2", at(10));
    second.platform = "instagram".into();
    second.file_size = Some(200);
    let second = store.insert_download(second).await.expect("second");
    let mut third = new_download("r:3", at(3 * 86_400));
    third.platform = "tiktok".into();
    third.file_size = Some(400);
    store.insert_download(third).await.expect("third");

    // The first fails on a later day on another platform; the second goes.
    let mut replacement = new_download("r:1", at(2 * 86_400));
    replacement.platform = "tiktok".into();
    replacement.status = DownloadStatus::Failed;
    replacement.file_size = None;
    store
        .replace_download(first.id, replacement)
        .await
        .expect("replace");
    store.delete_download(second.id).await.expect("delete");

    assert_eq!(
        store
            .download_totals(Window::default())
            .await
            .expect("totals"),
        DownloadTotals {
            total: 2,
            completed: 1,
            failed: 1,
            size_bytes: 400,
        }
    );
    assert_eq!(store.storage_used().await.expect("storage"), 400);
    let by_platform = store
        .download_totals_by(GroupBy::Platform, Window::default())
        .await
        .expect("by platform");
    let summary: Vec<(String, u64, u64)> = by_platform
        .iter()
        .map(|g| (g.key.clone(), g.totals.completed, g.totals.failed))
        .collect();
    assert_eq!(summary, [("tiktok".to_string(), 1, 1)]);
    let by_source = store
        .download_totals_by(GroupBy::Source, Window::default())
        .await
        .expect("by source");
    assert_eq!(by_source.len(), 1);
    assert_eq!(by_source[0].totals.total, 2);
    let day_one = Window {
        from: Some(at(0)),
        to: Some(at(86_400)),
    };
    assert_eq!(
        store.download_totals(day_one).await.expect("day one"),
        DownloadTotals::default()
    );
    assert!(
        store
            .download_timeline(Bucket::Day, day_one)
            .await
            .expect("timeline")
            .is_empty(),
        "no empty buckets"
    );
    for (filter, expected) in [
        (
            DownloadFilter {
                platform: Some("instagram".into()),
                ..Default::default()
            },
            0,
        ),
        (
            DownloadFilter {
                platform: Some("tiktok".into()),
                status: Some(DownloadStatus::Failed),
                ..Default::default()
            },
            1,
        ),
        (
            DownloadFilter {
                source: Some("example.com".into()),
                date_from: Some(day(2026, 3, 4)),
                ..Default::default()
            },
            2,
        ),
        (
            DownloadFilter {
                date_to: Some(day(2026, 3, 3)),
                ..Default::default()
            },
            0,
        ),
    ] {
        let page = store
            .list_downloads(&filter, Page::default())
            .await
            .expect("list");
        assert_eq!(page.total, expected, "count for {filter:?}");
        assert_eq!(page.items.len() as u64, expected, "rows for {filter:?}");
    }
}

// ---------------------------------------------------------------- queue

/// Enqueue validates and stores every field; lists are most urgent first.
pub async fn queue_enqueue_list_and_counts(store: Arc<dyn Store>) {
    let mut first = new_item("https://example.com/1", 5);
    first.referer = Some("https://example.com/".into());
    first.save_path = Some("/data/custom".into());
    first.max_attempts = 7;
    first.options.downloader = Some("native".into());
    first.options.max_downloads = Some(50);
    first.options.job_id = Some("job-1".into());
    first.options.run_id = Some(9);
    first.metadata.insert("k".into(), json!({"v": [1, 2, 3]}));
    let stored = store.enqueue(first.clone(), at(0)).await.expect("enqueue");
    assert_eq!(stored, first.clone().into_item(stored.id, at(0)));
    assert_eq!(store.get_queue_item(stored.id).await.expect("get"), stored);
    expect_not_found(store.get_queue_item(999_999).await, "missing item");

    for priority in [0, 11] {
        expect_invalid(
            store
                .enqueue(new_item("https://example.com/p", priority), at(0))
                .await,
            "priority out of range",
        );
    }
    expect_invalid(store.enqueue(new_item("", 5), at(0)).await, "empty url");
    let mut no_attempts = new_item("https://example.com/z", 5);
    no_attempts.max_attempts = 0;
    expect_invalid(store.enqueue(no_attempts, at(0)).await, "zero attempts");

    let urgent = store
        .enqueue(new_item("https://example.com/urgent", 1), at(10))
        .await
        .expect("urgent");
    let later = store
        .enqueue(new_item("https://example.com/later", 5), at(5))
        .await
        .expect("later");
    let mut tiktok = new_item("https://tiktok.com/@x", 9);
    tiktok.platform = "tiktok".into();
    let tiktok = store.enqueue(tiktok, at(1)).await.expect("tiktok");

    let all = store
        .list_queue(&QueueFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(all.total, 4);
    assert_eq!(
        ids(&all.items, |i| i.id),
        [urgent.id, stored.id, later.id, tiktok.id],
        "priority, then oldest"
    );
    let page = store
        .list_queue(&QueueFilter::default(), Page::new(2, 2))
        .await
        .expect("page");
    assert_eq!(
        (ids(&page.items, |i| i.id), page.total),
        (vec![later.id, tiktok.id], 4)
    );
    let only_tiktok = store
        .list_queue(
            &QueueFilter {
                platform: Some("tiktok".into()),
                status: None,
            },
            Page::default(),
        )
        .await
        .expect("platform filter");
    assert_eq!(ids(&only_tiktok.items, |i| i.id), [tiktok.id]);

    store
        .claim(&worker("w"), 1, LEASE, at(20))
        .await
        .expect("claim");
    let downloading = store
        .list_queue(
            &QueueFilter {
                status: Some(QueueStatus::Downloading),
                platform: None,
            },
            Page::default(),
        )
        .await
        .expect("status filter");
    assert_eq!(ids(&downloading.items, |i| i.id), [urgent.id]);
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!(
        (counts.pending, counts.downloading, counts.total()),
        (3, 1, 4)
    );
}

/// Claims take due pending items, most urgent first, each once; items
/// waiting for a later attempt time stay.
pub async fn queue_claim_order_and_due_time(store: Arc<dyn Store>) {
    let low = store
        .enqueue(new_item("https://example.com/low", 9), at(0))
        .await
        .expect("low");
    let high_old = store
        .enqueue(new_item("https://example.com/high-old", 2), at(1))
        .await
        .expect("high old");
    let high_new = store
        .enqueue(new_item("https://example.com/high-new", 2), at(2))
        .await
        .expect("high new");
    // Not due until t=100: enqueued "in the future".
    let future = store
        .enqueue(new_item("https://example.com/future", 1), at(100))
        .await
        .expect("future");

    assert!(
        store
            .claim(&worker("w1"), 0, LEASE, at(10))
            .await
            .expect("claim none")
            .is_empty()
    );
    let first = store
        .claim(&worker("w1"), 2, LEASE, at(10))
        .await
        .expect("claim 2");
    assert_eq!(ids(&first, |l| l.item.id), [high_old.id, high_new.id]);
    for leased in &first {
        assert_eq!(leased.lease.queue_id, leased.item.id);
        assert_eq!(leased.lease.worker, worker("w1"));
        assert_eq!(leased.item.status, QueueStatus::Downloading);
        assert_eq!(leased.item.attempts, 1);
        assert_eq!(leased.item.started_at, Some(at(10)));
        assert_eq!(leased.item.assigned_worker.as_deref(), Some("w1"));
        assert_eq!(leased.item.lease_expires_at, Some(at(40)));
        assert_eq!(
            store.get_queue_item(leased.item.id).await.expect("stored"),
            leased.item,
            "the claim returns the stored row"
        );
    }
    assert_ne!(first[0].lease.token, first[1].lease.token);

    let second = store
        .claim(&worker("w2"), 10, LEASE, at(10))
        .await
        .expect("claim rest");
    assert_eq!(
        ids(&second, |l| l.item.id),
        [low.id],
        "the future item is not due"
    );
    assert!(
        store
            .claim(&worker("w2"), 10, LEASE, at(99))
            .await
            .expect("claim")
            .is_empty()
    );
    let due = store
        .claim(&worker("w2"), 10, LEASE, at(100))
        .await
        .expect("claim due");
    assert_eq!(ids(&due, |l| l.item.id), [future.id]);
}

/// The holder may renew, report progress and complete; nobody else may.
pub async fn queue_lease_renew_progress_complete(store: Arc<dyn Store>) {
    let item = store
        .enqueue(new_item("https://example.com/a", 5), at(0))
        .await
        .expect("enqueue");
    let leased = store
        .claim(&worker("w1"), 1, LEASE, at(1))
        .await
        .expect("claim")
        .pop()
        .expect("one item");
    let lease = leased.lease.clone();

    store
        .renew(&lease, Duration::from_secs(60), at(20))
        .await
        .expect("renew");
    assert_eq!(
        store
            .get_queue_item(item.id)
            .await
            .expect("get")
            .lease_expires_at,
        Some(at(80))
    );

    store
        .record_progress(
            &lease,
            QueueProgress {
                progress: 40,
                items_downloaded: 2,
                items_total: Some(5),
                estimated_completion: Some(at(90)),
            },
        )
        .await
        .expect("progress");
    let running = store.get_queue_item(item.id).await.expect("get");
    assert_eq!(
        (
            running.progress,
            running.items_downloaded,
            running.items_total,
            running.estimated_completion
        ),
        (40, 2, Some(5), Some(at(90)))
    );
    expect_invalid(
        store
            .record_progress(
                &lease,
                QueueProgress {
                    progress: 101,
                    ..Default::default()
                },
            )
            .await,
        "progress above 100",
    );

    let mut forged = lease.clone();
    forged.token = uuid::Uuid::new_v4();
    expect_lease_lost(
        store.complete(&forged, 1, at(30)).await,
        item.id,
        "a forged token",
    );
    let mut other_worker = lease.clone();
    other_worker.worker = worker("w2");
    expect_lease_lost(
        store.renew(&other_worker, LEASE, at(30)).await,
        item.id,
        "another worker's name",
    );

    let done = store.complete(&lease, 5, at(60)).await.expect("complete");
    assert_eq!(done.status, QueueStatus::Completed);
    assert_eq!(done.download_date, Some(at(60)));
    assert_eq!(done.items_downloaded, 5);
    assert_eq!(done.progress, 100);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.error_message, None);
    assert_eq!(store.get_queue_item(item.id).await.expect("get"), done);

    expect_lease_lost(
        store.complete(&lease, 5, at(61)).await,
        item.id,
        "completing twice",
    );
    expect_lease_lost(
        store.renew(&lease, LEASE, at(61)).await,
        item.id,
        "renewing a finished item",
    );
    expect_lease_lost(
        store.fail(&lease, "late", None, at(61)).await,
        item.id,
        "failing a finished item",
    );
    let mut missing = lease.clone();
    missing.queue_id = 999_999;
    expect_lease_lost(
        store.complete(&missing, 1, at(61)).await,
        999_999,
        "a lease on a missing item",
    );
}

/// A batched completion checks every lease on its own: a lost lease fails
/// that item only, the others complete with their own counts and times.
pub async fn queue_complete_many_checks_each_lease(store: Arc<dyn Store>) {
    for n in 0..4 {
        store
            .enqueue(new_item(&format!("https://example.com/{n}"), 5), at(0))
            .await
            .expect("enqueue");
    }
    let claimed = store
        .claim(&worker("w1"), 4, LEASE, at(1))
        .await
        .expect("claim");
    let [a, b, c, d] = <[_; 4]>::try_from(claimed).expect("four items");
    store
        .complete(&d.lease, 1, at(5))
        .await
        .expect("complete d alone");
    let mut forged = b.lease.clone();
    forged.token = uuid::Uuid::new_v4();
    let mut other_worker = c.lease.clone();
    other_worker.worker = worker("w2");
    let completion = |lease: &crate::model::LeaseToken, items: u32, seconds: i64| Completion {
        lease: lease.clone(),
        items_downloaded: items,
        finished_at: at(seconds),
    };

    assert_eq!(
        store.complete_many(&[]).await.expect("empty batch"),
        Vec::new(),
        "an empty batch"
    );
    let results = store
        .complete_many(&[
            completion(&a.lease, 3, 10),
            completion(&forged, 1, 11),
            completion(&other_worker, 1, 12),
            completion(&c.lease, 7, 13),
            completion(&c.lease, 8, 14),
            completion(&d.lease, 1, 15),
        ])
        .await
        .expect("batch");
    let [done_a, lost_b, lost_c_other, done_c, again_c, again_d] =
        <[_; 6]>::try_from(results).expect("one result per completion");

    let done_a = done_a.expect("a completes");
    assert_eq!(
        (
            done_a.status,
            done_a.items_downloaded,
            done_a.download_date,
            done_a.progress
        ),
        (QueueStatus::Completed, 3, Some(at(10)), 100)
    );
    assert_eq!(done_a.lease_expires_at, None);
    assert_eq!(store.get_queue_item(a.item.id).await.expect("get"), done_a);
    expect_lease_lost(lost_b, b.item.id, "a forged token in a batch");
    expect_lease_lost(lost_c_other, c.item.id, "another worker's name in a batch");
    let done_c = done_c.expect("c completes under its own lease");
    assert_eq!(
        (done_c.status, done_c.items_downloaded, done_c.download_date),
        (QueueStatus::Completed, 7, Some(at(13)))
    );
    expect_lease_lost(again_c, c.item.id, "the same lease twice in a batch");
    expect_lease_lost(again_d, d.item.id, "an item completed before the batch");

    let untouched = store.get_queue_item(b.item.id).await.expect("get b");
    assert_eq!(
        (untouched.status, untouched.lease_expires_at),
        (QueueStatus::Downloading, Some(at(31))),
        "a lost lease in a batch leaves the item as it was"
    );
    assert_eq!(
        store
            .get_queue_item(d.item.id)
            .await
            .expect("get d")
            .download_date,
        Some(at(5)),
        "the earlier completion stands"
    );
    assert_eq!(
        store.get_queue_item(c.item.id).await.expect("get c"),
        done_c
    );
}

/// Failures with a retry time go back to pending until their attempts run
/// out; retry gives a failed item more attempts.
pub async fn queue_fail_retry_and_attempts(store: Arc<dyn Store>) {
    let mut new = new_item("https://example.com/flaky", 5);
    new.max_attempts = 2;
    let item = store.enqueue(new, at(0)).await.expect("enqueue");

    let first = store
        .claim(&worker("w"), 1, LEASE, at(1))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    let after_first = store
        .fail(&first.lease, "HTTP 503", Some(at(100)), at(2))
        .await
        .expect("fail 1");
    assert_eq!(after_first.status, QueueStatus::Pending);
    assert_eq!(after_first.attempts, 1);
    assert_eq!(after_first.next_attempt_at, at(100));
    assert_eq!(after_first.error_message.as_deref(), Some("HTTP 503"));
    assert_eq!(after_first.lease_expires_at, None);
    assert!(
        store
            .claim(&worker("w"), 1, LEASE, at(99))
            .await
            .expect("claim early")
            .is_empty(),
        "not before the retry time"
    );

    let second = store
        .claim(&worker("w"), 1, LEASE, at(100))
        .await
        .expect("claim again")
        .pop()
        .expect("item");
    assert_eq!(second.item.attempts, 2);
    expect_lease_lost(
        store.complete(&first.lease, 1, at(101)).await,
        item.id,
        "the first attempt's lease",
    );
    // Out of attempts: a retry time no longer keeps it alive.
    let failed = store
        .fail(&second.lease, "HTTP 503 again", Some(at(200)), at(102))
        .await
        .expect("fail 2");
    assert_eq!(failed.status, QueueStatus::Failed);
    assert_eq!(failed.download_date, Some(at(102)));
    assert_eq!(failed.error_message.as_deref(), Some("HTTP 503 again"));
    assert!(
        store
            .claim(&worker("w"), 1, LEASE, at(300))
            .await
            .expect("claim")
            .is_empty()
    );

    expect_invalid(
        store.retry_queue_item(item.id, 0, at(300)).await,
        "retry without attempts",
    );
    let retried = store
        .retry_queue_item(item.id, 1, at(300))
        .await
        .expect("retry");
    assert_eq!(retried.status, QueueStatus::Pending);
    assert_eq!(retried.max_attempts, 3);
    assert_eq!(retried.next_attempt_at, at(300));
    assert_eq!(retried.download_date, None);
    expect_invalid(
        store.retry_queue_item(item.id, 1, at(300)).await,
        "retry of a pending item",
    );
    expect_not_found(
        store.retry_queue_item(999_999, 1, at(300)).await,
        "retry of a missing item",
    );

    let third = store
        .claim(&worker("w"), 1, LEASE, at(301))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    assert_eq!(third.item.attempts, 3);
    let permanent = store
        .fail(&third.lease, "HTTP 404", None, at(302))
        .await
        .expect("permanent failure");
    assert_eq!(permanent.status, QueueStatus::Failed);

    // A completed item can be retried too (re-download).
    let other = store
        .enqueue(new_item("https://example.com/ok", 5), at(400))
        .await
        .expect("enqueue");
    let leased = store
        .claim(&worker("w"), 1, LEASE, at(401))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    store
        .complete(&leased.lease, 1, at(402))
        .await
        .expect("complete");
    let again = store
        .retry_queue_item(other.id, 2, at(403))
        .await
        .expect("retry completed");
    assert_eq!(
        (again.status, again.max_attempts),
        (QueueStatus::Pending, 3)
    );
}

/// Releasing gives the item back without using up an attempt.
pub async fn queue_release_gives_the_attempt_back(store: Arc<dyn Store>) {
    let mut new = new_item("https://example.com/r", 5);
    new.max_attempts = 1;
    let item = store.enqueue(new, at(0)).await.expect("enqueue");
    let leased = store
        .claim(&worker("w"), 1, LEASE, at(1))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    let released = store
        .release(&leased.lease, Some("storage full".into()), at(50))
        .await
        .expect("release");
    assert_eq!(released.status, QueueStatus::Pending);
    assert_eq!(released.attempts, 0);
    assert_eq!(released.next_attempt_at, at(50));
    assert_eq!(released.error_message.as_deref(), Some("storage full"));
    expect_lease_lost(
        store.complete(&leased.lease, 1, at(2)).await,
        item.id,
        "a released lease",
    );
    let again = store
        .claim(&worker("w"), 1, LEASE, at(50))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    assert_eq!(again.item.attempts, 1);
    let shutdown = store
        .release(&again.lease, None, at(51))
        .await
        .expect("release without reason");
    assert_eq!(shutdown.error_message, None);
}

/// An expired lease returns the item to pending (or failed when out of
/// attempts); the old holder cannot write any more.
pub async fn queue_expired_leases_are_requeued(store: Arc<dyn Store>) {
    let mut once = new_item("https://example.com/once", 5);
    once.max_attempts = 1;
    let once = store.enqueue(once, at(0)).await.expect("once");
    let twice = store
        .enqueue(new_item("https://example.com/twice", 5), at(1))
        .await
        .expect("twice");
    let leases = store
        .claim(&worker("crashed"), 2, LEASE, at(10))
        .await
        .expect("claim");
    assert_eq!(leases.len(), 2);

    assert!(
        store
            .requeue_expired(at(39))
            .await
            .expect("nothing expired")
            .is_empty()
    );
    let mut changed = store.requeue_expired(at(40)).await.expect("requeue");
    changed.sort_by_key(|item| item.id);
    assert_eq!(ids(&changed, |i| i.id), [once.id, twice.id]);
    assert_eq!(changed[0].status, QueueStatus::Failed, "out of attempts");
    assert!(changed[0].error_message.is_some(), "says why it failed");
    assert_eq!(changed[0].download_date, Some(at(40)));
    assert_eq!(changed[1].status, QueueStatus::Pending);
    assert_eq!(changed[1].attempts, 1, "the lost attempt counts");
    assert_eq!(changed[1].lease_expires_at, None);
    assert!(
        store
            .requeue_expired(at(41))
            .await
            .expect("again")
            .is_empty(),
        "requeue is done once"
    );

    for leased in &leases {
        expect_lease_lost(
            store.complete(&leased.lease, 1, at(41)).await,
            leased.item.id,
            "complete after expiry",
        );
        expect_lease_lost(
            store.renew(&leased.lease, LEASE, at(41)).await,
            leased.item.id,
            "renew after expiry",
        );
    }
    let taken = store
        .claim(&worker("healthy"), 5, LEASE, at(42))
        .await
        .expect("claim");
    assert_eq!(ids(&taken, |l| l.item.id), [twice.id]);
    assert_eq!(taken[0].item.attempts, 2);
    assert_eq!(taken[0].item.assigned_worker.as_deref(), Some("healthy"));
    store
        .complete(&taken[0].lease, 1, at(43))
        .await
        .expect("the new holder completes");
}

/// Pause and resume, priority changes, and refused transitions.
pub async fn queue_pause_resume_and_priority(store: Arc<dyn Store>) {
    let a = store
        .enqueue(new_item("https://example.com/a", 5), at(0))
        .await
        .expect("a");
    let b = store
        .enqueue(new_item("https://example.com/b", 5), at(1))
        .await
        .expect("b");

    let paused = store
        .update_queue_item(
            a.id,
            QueuePatch {
                status: Some(QueueStatus::Paused),
                priority: None,
            },
            at(2),
        )
        .await
        .expect("pause pending");
    assert_eq!(paused.status, QueueStatus::Paused);
    let claimed = store
        .claim(&worker("w"), 5, LEASE, at(3))
        .await
        .expect("claim");
    assert_eq!(
        ids(&claimed, |l| l.item.id),
        [b.id],
        "paused items are not claimed"
    );

    // Pausing a running item drops its lease and gives the attempt back.
    let paused_running = store
        .update_queue_item(
            b.id,
            QueuePatch {
                status: Some(QueueStatus::Paused),
                priority: None,
            },
            at(4),
        )
        .await
        .expect("pause running");
    assert_eq!(paused_running.status, QueueStatus::Paused);
    assert_eq!(paused_running.attempts, 0);
    assert_eq!(paused_running.lease_expires_at, None);
    expect_lease_lost(
        store.complete(&claimed[0].lease, 1, at(5)).await,
        b.id,
        "complete after pause",
    );
    expect_lease_lost(
        store.renew(&claimed[0].lease, LEASE, at(5)).await,
        b.id,
        "renew after pause",
    );

    expect_invalid(
        store
            .update_queue_item(
                a.id,
                QueuePatch {
                    status: Some(QueueStatus::Completed),
                    priority: None,
                },
                at(6),
            )
            .await,
        "setting completed by hand",
    );
    let resumed = store
        .update_queue_item(
            a.id,
            QueuePatch {
                status: Some(QueueStatus::Pending),
                priority: Some(1),
            },
            at(7),
        )
        .await
        .expect("resume with priority");
    assert_eq!(
        (resumed.status, resumed.priority),
        (QueueStatus::Pending, 1)
    );
    assert_eq!(resumed.next_attempt_at, at(7));
    expect_invalid(
        store
            .update_queue_item(
                a.id,
                QueuePatch {
                    status: Some(QueueStatus::Pending),
                    priority: None,
                },
                at(8),
            )
            .await,
        "resuming an item that is not paused",
    );
    expect_invalid(
        store
            .update_queue_item(
                a.id,
                QueuePatch {
                    status: None,
                    priority: Some(0),
                },
                at(8),
            )
            .await,
        "priority 0",
    );
    expect_not_found(
        store
            .update_queue_item(999_999, QueuePatch::default(), at(8))
            .await,
        "missing item",
    );

    store
        .update_queue_item(
            b.id,
            QueuePatch {
                status: Some(QueueStatus::Pending),
                priority: None,
            },
            at(9),
        )
        .await
        .expect("resume b");
    let c = store
        .enqueue(new_item("https://example.com/c", 3), at(10))
        .await
        .expect("c");
    store
        .update_queue_item(
            c.id,
            QueuePatch {
                status: None,
                priority: Some(10),
            },
            at(11),
        )
        .await
        .expect("demote c");
    let order = store
        .claim(&worker("w"), 3, LEASE, at(12))
        .await
        .expect("claim all");
    assert_eq!(ids(&order, |l| l.item.id), [a.id, b.id, c.id]);
    assert_eq!(order[1].item.attempts, 1);
}

/// Deleting and clearing remove rows; a deleted item's lease is lost.
pub async fn queue_delete_and_clear(store: Arc<dyn Store>) {
    let mut items = Vec::new();
    for n in 0..6 {
        items.push(
            store
                .enqueue(new_item(&format!("https://example.com/{n}"), 5), at(n))
                .await
                .expect("enqueue"),
        );
    }
    let leased = store
        .claim(&worker("w"), 3, LEASE, at(10))
        .await
        .expect("claim");
    store
        .complete(&leased[0].lease, 1, at(11))
        .await
        .expect("complete");
    store
        .fail(&leased[1].lease, "gone", None, at(11))
        .await
        .expect("fail");
    // leased[2] stays downloading.

    let removed = store
        .delete_queue_item(leased[2].item.id)
        .await
        .expect("delete");
    assert_eq!(removed.id, leased[2].item.id);
    expect_not_found(store.get_queue_item(removed.id).await, "deleted item");
    expect_not_found(store.delete_queue_item(removed.id).await, "delete twice");
    expect_lease_lost(
        store.complete(&leased[2].lease, 1, at(12)).await,
        removed.id,
        "complete a deleted item",
    );

    assert_eq!(
        store
            .clear_queue(&[QueueStatus::Completed, QueueStatus::Failed])
            .await
            .expect("clear finished"),
        2
    );
    assert_eq!(store.clear_queue(&[]).await.expect("clear nothing"), 0);
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!((counts.pending, counts.total()), (3, 3));
    assert_eq!(
        store
            .clear_queue(&[QueueStatus::Pending])
            .await
            .expect("clear pending"),
        3
    );
    assert_eq!(store.queue_counts().await.expect("counts").total(), 0);
}

/// Average wait and run times over the last day, and workers holding
/// live leases.
pub async fn queue_stats_wait_run_and_workers(store: Arc<dyn Store>) {
    let empty = store.queue_stats(at(0)).await.expect("stats");
    assert_eq!(empty.avg_wait_time_seconds, None);
    assert_eq!(empty.avg_run_time_seconds, None);
    assert_eq!(empty.active_workers, 0);

    // Waits: 10 s and 30 s; the finished one ran 60 s.
    store
        .enqueue(new_item("https://example.com/1", 1), at(0))
        .await
        .expect("1");
    store
        .enqueue(new_item("https://example.com/2", 2), at(0))
        .await
        .expect("2");
    store
        .enqueue(new_item("https://example.com/3", 3), at(0))
        .await
        .expect("3");
    let first = store
        .claim(&worker("w1"), 1, LEASE, at(10))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    store
        .claim(&worker("w2"), 1, Duration::from_secs(1000), at(30))
        .await
        .expect("claim");
    store
        .complete(&first.lease, 1, at(70))
        .await
        .expect("complete");

    let stats = store.queue_stats(at(80)).await.expect("stats");
    assert_eq!(
        (
            stats.counts.pending,
            stats.counts.downloading,
            stats.counts.completed
        ),
        (1, 1, 1)
    );
    let wait = stats.avg_wait_time_seconds.expect("wait");
    assert!((wait - 20.0).abs() < 1e-6, "mean wait 20 s, got {wait}");
    let run = stats.avg_run_time_seconds.expect("run");
    assert!((run - 60.0).abs() < 1e-6, "mean run 60 s, got {run}");
    assert_eq!(stats.active_workers, 1);

    let much_later = store
        .queue_stats(at(3 * 86_400))
        .await
        .expect("stats later");
    assert_eq!(much_later.avg_wait_time_seconds, None, "older than a day");
    assert_eq!(much_later.avg_run_time_seconds, None);
    assert_eq!(much_later.active_workers, 0, "the lease ran out");
}

// ---------------------------------------------------------------- jobs

/// Job definitions round-trip; a slot fires for exactly one caller.
pub async fn jobs_crud_and_slots(store: Arc<dyn Store>) {
    let job = new_job("instagram-someone-posts");
    assert_eq!(store.create_job(job.clone()).await.expect("create"), job);
    expect_conflict(store.create_job(job.clone()).await, "duplicate job id");
    expect_invalid(store.create_job(new_job("")).await, "empty job id");
    let other = store.create_job(new_job("a-first")).await.expect("create");
    assert_eq!(store.get_job(&job.id).await.expect("get"), job);
    expect_not_found(store.get_job("nope").await, "missing job");
    assert_eq!(
        store.list_jobs().await.expect("list"),
        vec![other.clone(), job.clone()],
        "ordered by id"
    );

    let mut spec = job.spec.clone();
    spec.schedule = "*/5 * * * *".into();
    spec.monitor_until = Some(at(7 * 86_400));
    spec.config.insert("days_back".into(), json!(3));
    let changed = store
        .update_job_spec(&job.id, spec.clone(), NextRun::Keep, at(60))
        .await
        .expect("update");
    assert_eq!(
        (&changed.spec, &changed.state, changed.updated_at),
        (&spec, &job.state, at(60)),
        "the definition changes, the state stays"
    );
    assert_eq!(store.get_job(&job.id).await.expect("get"), changed);
    let retimed = store
        .update_job_spec(&job.id, spec.clone(), NextRun::Set(Some(at(300))), at(61))
        .await
        .expect("retime");
    assert_eq!(retimed.state.next_run, Some(at(300)));
    spec.enabled = false;
    let disabled = store
        .update_job_spec(&job.id, spec.clone(), NextRun::Keep, at(62))
        .await
        .expect("disable");
    assert_eq!(
        (disabled.spec.enabled, disabled.state.next_run),
        (false, None),
        "a disabled job has no next run"
    );
    let enabled = store
        .set_job_enabled(&job.id, true, Some(at(3600)), at(63))
        .await
        .expect("enable");
    assert_eq!(
        (
            &enabled.spec.schedule,
            enabled.spec.enabled,
            enabled.state.next_run
        ),
        (&spec.schedule, true, Some(at(3600)))
    );
    let paused = store
        .set_job_enabled(&job.id, false, Some(at(3600)), at(64))
        .await
        .expect("disable");
    assert_eq!(
        (
            paused.spec.enabled,
            paused.state.next_run,
            paused.updated_at
        ),
        (false, None, at(64))
    );
    expect_not_found(
        store
            .update_job_spec("ghost", spec.clone(), NextRun::Keep, at(65))
            .await,
        "update missing",
    );
    expect_not_found(
        store.set_job_enabled("ghost", true, None, at(65)).await,
        "enable missing",
    );
    store
        .set_job_enabled(&job.id, true, Some(at(3600)), at(66))
        .await
        .expect("enable again");

    assert!(
        store
            .claim_slot(&job.id, at(3600), Some(at(7200)))
            .await
            .expect("first claim")
    );
    assert!(
        !store
            .claim_slot(&job.id, at(3600), Some(at(7200)))
            .await
            .expect("same slot again"),
        "a slot fires once"
    );
    assert!(
        !store
            .claim_slot(&job.id, at(1800), None)
            .await
            .expect("older slot"),
        "an older slot never fires after a newer one"
    );
    let stored = store.get_job(&job.id).await.expect("get");
    assert_eq!(
        (stored.state.last_slot, stored.state.next_run),
        (Some(at(3600)), Some(at(7200)))
    );
    expect_not_found(
        store.claim_slot("ghost", at(1), None).await,
        "slot of a missing job",
    );

    // Racing schedulers: exactly one wins each slot.
    let mut racers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let id = job.id.clone();
        racers.push(tokio::spawn(async move {
            store.claim_slot(&id, at(7200), Some(at(10_800))).await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        if racer.await.expect("join").expect("claim") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);

    store.delete_job(&other.id).await.expect("delete");
    expect_not_found(store.get_job(&other.id).await, "deleted job");
    expect_not_found(store.delete_job(&other.id).await, "delete twice");
}

/// Runs open and close once, keep the job's counters, and list newest first.
pub async fn jobs_runs_and_history(store: Arc<dyn Store>) {
    let job = store.create_job(new_job("j1")).await.expect("create");
    let other = store.create_job(new_job("j2")).await.expect("create");
    expect_not_found(
        store
            .open_run("ghost", at(0), RunStatus::Running, None)
            .await,
        "run of a missing job",
    );
    expect_invalid(
        store
            .open_run(&job.id, at(0), RunStatus::Success, None)
            .await,
        "a run cannot open as success",
    );

    let run = store
        .open_run(&job.id, at(100), RunStatus::Running, None)
        .await
        .expect("open");
    assert_eq!(
        (run.status, run.started_at, run.completed_at),
        (RunStatus::Running, at(100), None)
    );
    assert_eq!(
        store.active_run(&job.id).await.expect("active"),
        Some(run.clone())
    );
    store
        .set_run_queue_item(run.id, 77)
        .await
        .expect("link queue item");
    expect_not_found(
        store.set_run_queue_item(999_999, 1).await,
        "link a missing run",
    );
    let skipped = store
        .open_run(&job.id, at(200), RunStatus::Skipped, None)
        .await
        .expect("skipped");
    assert_eq!(
        (skipped.completed_at, skipped.duration_seconds),
        (Some(at(200)), Some(0.0))
    );

    expect_invalid(
        store
            .close_run(run.id, RunStatus::Running, 0, None, at(150))
            .await,
        "closing as running",
    );
    let closed = store
        .close_run(run.id, RunStatus::Success, 12, None, at(190))
        .await
        .expect("close");
    assert_eq!(closed.status, RunStatus::Success);
    assert_eq!(closed.completed_at, Some(at(190)));
    assert_eq!(closed.duration_seconds, Some(90.0));
    assert_eq!(closed.items_downloaded, 12);
    assert_eq!(closed.queue_id, Some(77));
    let again = store
        .close_run(run.id, RunStatus::Failure, 0, Some("late".into()), at(500))
        .await
        .expect("close twice");
    assert_eq!(again, closed, "closing a closed run changes nothing");
    assert_eq!(store.active_run(&job.id).await.expect("active"), None);
    expect_not_found(
        store
            .close_run(999_999, RunStatus::Success, 0, None, at(1))
            .await,
        "close a missing run",
    );

    let failing = store
        .open_run(&other.id, at(300), RunStatus::Running, Some(5))
        .await
        .expect("open other");
    store
        .close_run(
            failing.id,
            RunStatus::Failure,
            0,
            Some("HTTP 429".into()),
            at(310),
        )
        .await
        .expect("close other");

    let stored = store.get_job(&job.id).await.expect("job");
    assert_eq!(stored.state.total_runs, 2, "skipped runs count as runs");
    assert_eq!(
        (stored.state.success_count, stored.state.failure_count),
        (1, 0)
    );
    assert_eq!(stored.state.last_run, Some(at(200)));
    let stored_other = store.get_job(&other.id).await.expect("job");
    assert_eq!(
        (
            stored_other.state.total_runs,
            stored_other.state.failure_count,
            stored_other.state.last_run_status,
            stored_other.state.last_run_items
        ),
        (1, 1, Some(RunStatus::Failure), Some(0))
    );

    let history = store
        .run_history(&RunFilter::default())
        .await
        .expect("history");
    assert_eq!(
        ids(&history, |r| r.id),
        [failing.id, skipped.id, run.id],
        "newest first"
    );
    let only_job = store
        .run_history(&RunFilter {
            job_id: Some(job.id.clone()),
            status: None,
            limit: 0,
        })
        .await
        .expect("history of one job");
    assert_eq!(ids(&only_job, |r| r.id), [skipped.id, run.id]);
    let only_failures = store
        .run_history(&RunFilter {
            job_id: None,
            status: Some(RunStatus::Failure),
            limit: 10,
        })
        .await
        .expect("failures");
    assert_eq!(only_failures.len(), 1);
    assert_eq!(only_failures[0].error_message.as_deref(), Some("HTTP 429"));
    let limited = store
        .run_history(&RunFilter {
            job_id: None,
            status: None,
            limit: 1,
        })
        .await
        .expect("limited");
    assert_eq!(ids(&limited, |r| r.id), [failing.id]);

    store.delete_job(&job.id).await.expect("delete job");
    let remaining = store
        .run_history(&RunFilter::default())
        .await
        .expect("history");
    assert_eq!(
        ids(&remaining, |r| r.id),
        [failing.id],
        "a deleted job's runs go with it"
    );
}

/// A definition written from a read taken before another process claimed
/// a slot and ran it leaves the slot claimed and the run counted: the same
/// slot never fires twice.
pub async fn jobs_spec_update_never_reopens_a_slot(store: Arc<dyn Store>) {
    let job = store.create_job(new_job("j-race")).await.expect("create");
    let stale = store
        .get_job(&job.id)
        .await
        .expect("read before the firing");

    // Another scheduler fires the slot and its run ends.
    assert!(
        store
            .claim_slot(&job.id, at(3600), Some(at(18_000)))
            .await
            .expect("claim")
    );
    let run = store
        .open_run(&job.id, at(3600), RunStatus::Running, Some(1))
        .await
        .expect("open");
    store
        .close_run(run.id, RunStatus::Success, 4, None, at(3700))
        .await
        .expect("close");
    let fired = store.get_job(&job.id).await.expect("after the firing");

    // A PATCH computed from the stale read, and a pause from the worker.
    let mut spec = stale.spec.clone();
    spec.name = "renamed".into();
    let updated = store
        .update_job_spec(&job.id, spec, NextRun::Keep, at(3800))
        .await
        .expect("update from the stale read");
    assert_eq!(updated.spec.name, "renamed");
    assert_eq!(
        updated.state, fired.state,
        "slot, counters, last and next run as the firing left them"
    );
    assert!(
        !store
            .claim_slot(&job.id, at(3600), Some(at(18_000)))
            .await
            .expect("claim again"),
        "the slot stays taken"
    );
    let paused = store
        .set_job_enabled(&job.id, false, None, at(3900))
        .await
        .expect("pause");
    assert_eq!(
        (
            paused.state.last_slot,
            paused.state.total_runs,
            paused.state.success_count
        ),
        (Some(at(3600)), 1, 1)
    );
    let resumed = store
        .update_job_spec(
            &job.id,
            stale.spec.clone(),
            NextRun::Set(Some(at(18_000))),
            at(4000),
        )
        .await
        .expect("resume from the stale read");
    assert_eq!(resumed.state.last_slot, Some(at(3600)));
    assert!(
        !store
            .claim_slot(&job.id, at(3600), Some(at(18_000)))
            .await
            .expect("claim after resume"),
        "re-enabling does not re-open the slot either"
    );

    // Writers racing claimers: each slot is won once.
    let mut tasks = Vec::new();
    for n in 0..4_i64 {
        let store = store.clone();
        let id = job.id.clone();
        let spec = stale.spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            for slot in 2..10_i64 {
                let slot_at = at(slot * 3600);
                if store
                    .claim_slot(&id, slot_at, Some(slot_at + chrono::Duration::hours(1)))
                    .await
                    .expect("racing claim")
                {
                    wins += 1;
                }
                store
                    .update_job_spec(&id, spec.clone(), NextRun::Keep, at(slot * 3600 + n))
                    .await
                    .expect("racing update");
            }
            wins
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.expect("join");
    }
    assert_eq!(wins, 8, "slots 2 to 9 fired once each");
    let last = store.get_job(&job.id).await.expect("after the race");
    assert_eq!(last.state.last_slot, Some(at(9 * 3600)));
}

// ---------------------------------------------------------------- users

/// Accounts: unique case-insensitive names, argon2 hashes only.
pub async fn users_accounts(store: Arc<dyn Store>) {
    assert_eq!(store.count_users().await.expect("count"), 0);
    let admin = store
        .create_user(
            NewUser {
                username: "Admin".into(),
                email: Some("admin@example.com".into()),
                role: Role::Admin,
                password_hash: argon2_hash("A"),
            },
            at(0),
        )
        .await
        .expect("create");
    assert_eq!(
        (
            admin.username.as_str(),
            admin.role,
            admin.disabled,
            admin.created_at,
            admin.last_login
        ),
        ("Admin", Role::Admin, false, at(0), None)
    );
    expect_conflict(
        store
            .create_user(
                NewUser {
                    username: "admin".into(),
                    email: None,
                    role: Role::User,
                    password_hash: argon2_hash("B"),
                },
                at(1),
            )
            .await,
        "same name in another case",
    );
    expect_invalid(
        store
            .create_user(
                NewUser {
                    username: "plain".into(),
                    email: None,
                    role: Role::User,
                    password_hash: "hunter2".into(),
                },
                at(1),
            )
            .await,
        "a plain password as hash",
    );
    expect_invalid(
        store
            .create_user(
                NewUser {
                    username: String::new(),
                    email: None,
                    role: Role::User,
                    password_hash: argon2_hash("C"),
                },
                at(1),
            )
            .await,
        "empty username",
    );
    let viewer = store
        .create_user(
            NewUser {
                username: "viewer".into(),
                email: None,
                role: Role::Viewer,
                password_hash: argon2_hash("V"),
            },
            at(2),
        )
        .await
        .expect("viewer");

    let (found, hash) = store
        .user_by_username("ADMIN")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((found, hash), (admin.clone(), argon2_hash("A")));
    assert_eq!(
        store.user_by_username("nobody").await.expect("lookup"),
        None
    );
    assert_eq!(store.get_user(viewer.id).await.expect("get"), viewer);
    expect_not_found(store.get_user(999_999).await, "missing user");
    assert_eq!(
        store.list_users().await.expect("list"),
        vec![admin.clone(), viewer.clone()]
    );
    assert_eq!(store.count_users().await.expect("count"), 2);

    let updated = store
        .update_user(
            viewer.id,
            UserPatch {
                email: Some(Some("v@example.com".into())),
                role: Some(Role::User),
                password_hash: Some(argon2_hash("V2")),
                disabled: Some(true),
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (updated.email.as_deref(), updated.role, updated.disabled),
        (Some("v@example.com"), Role::User, true)
    );
    let (_, new_hash) = store
        .user_by_username("viewer")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(new_hash, argon2_hash("V2"));
    let cleared = store
        .update_user(
            viewer.id,
            UserPatch {
                email: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("clear email");
    assert_eq!((cleared.email, cleared.role), (None, Role::User));
    expect_invalid(
        store
            .update_user(
                viewer.id,
                UserPatch {
                    password_hash: Some("plain".into()),
                    ..Default::default()
                },
            )
            .await,
        "plain password in a patch",
    );
    expect_not_found(
        store.update_user(999_999, UserPatch::default()).await,
        "update missing",
    );

    store.record_login(admin.id, at(500)).await.expect("login");
    assert_eq!(
        store.get_user(admin.id).await.expect("get").last_login,
        Some(at(500))
    );
    expect_not_found(store.record_login(999_999, at(1)).await, "login of missing");

    store.delete_user(viewer.id).await.expect("delete");
    expect_not_found(store.get_user(viewer.id).await, "deleted user");
    expect_not_found(store.delete_user(viewer.id).await, "delete twice");
    assert_eq!(store.count_users().await.expect("count"), 1);
}

/// Refresh tokens work once, and never when revoked or expired.
pub async fn users_refresh_tokens(store: Arc<dyn Store>) {
    let user = store
        .create_user(
            NewUser {
                username: "u".into(),
                email: None,
                role: Role::User,
                password_hash: argon2_hash("U"),
            },
            at(0),
        )
        .await
        .expect("user");
    let token = |id: &str, expires: i64| RefreshToken {
        id: id.to_string(),
        user_id: user.id,
        family_id: id.to_string(),
        issued_at: at(0),
        expires_at: at(expires),
        used_at: None,
        revoked: false,
    };
    store
        .insert_refresh_token(token("t1", 1000))
        .await
        .expect("insert");
    expect_conflict(
        store.insert_refresh_token(token("t1", 1000)).await,
        "duplicate token id",
    );
    let mut orphan = token("t-orphan", 1000);
    orphan.user_id = 999_999;
    expect_not_found(
        store.insert_refresh_token(orphan).await,
        "token of a missing user",
    );

    let used = store.use_refresh_token("t1", at(10)).await.expect("use");
    assert_eq!(used.used_at, Some(at(10)));
    assert_eq!((used.user_id, used.expires_at), (user.id, at(1000)));
    expect_invalid(store.use_refresh_token("t1", at(11)).await, "used twice");
    expect_invalid(
        store.use_refresh_token("unknown", at(11)).await,
        "unknown token",
    );

    store
        .insert_refresh_token(token("t2", 100))
        .await
        .expect("insert");
    expect_invalid(
        store.use_refresh_token("t2", at(100)).await,
        "expired at its expiry instant",
    );

    store
        .insert_refresh_token(token("t3", 1000))
        .await
        .expect("insert");
    store
        .insert_refresh_token(token("t4", 1000))
        .await
        .expect("insert");
    assert_eq!(
        store.revoke_refresh_tokens(user.id).await.expect("revoke"),
        4,
        "every token not yet revoked"
    );
    assert_eq!(
        store
            .revoke_refresh_tokens(user.id)
            .await
            .expect("revoke again"),
        0
    );
    expect_invalid(store.use_refresh_token("t3", at(20)).await, "revoked");

    store
        .insert_refresh_token(token("t5", 1000))
        .await
        .expect("insert");
    store.delete_user(user.id).await.expect("delete user");
    expect_invalid(
        store.use_refresh_token("t5", at(20)).await,
        "token of a deleted user",
    );
}

/// A reused refresh token revokes its family and no other; session
/// versions start at 0, only grow, and belong to one account.
pub async fn users_refresh_families_and_session_versions(store: Arc<dyn Store>) {
    let mut users = Vec::new();
    for name in ["fam-a", "fam-b"] {
        let user = store
            .create_user(
                NewUser {
                    username: name.into(),
                    email: None,
                    role: Role::User,
                    password_hash: argon2_hash(name),
                },
                at(0),
            )
            .await
            .expect("user");
        users.push(user);
    }
    let (alice, bob) = (&users[0], &users[1]);
    let token = |id: &str, user_id: i64, family: &str| RefreshToken {
        id: id.to_string(),
        user_id,
        family_id: family.to_string(),
        issued_at: at(0),
        expires_at: at(1000),
        used_at: None,
        revoked: false,
    };
    // Alice logs in twice (two families); Bob once.
    for (id, user_id, family) in [
        ("a1", alice.id, "login-1"),
        ("a2", alice.id, "login-1"),
        ("a3", alice.id, "login-1"),
        ("b1", alice.id, "login-2"),
        ("c1", bob.id, "login-3"),
    ] {
        store
            .insert_refresh_token(token(id, user_id, family))
            .await
            .expect("insert");
    }
    let used = store.use_refresh_token("a1", at(5)).await.expect("use");
    assert_eq!(used.family_id, "login-1");
    store.use_refresh_token("a2", at(6)).await.expect("use");
    assert_eq!(
        store
            .revoke_refresh_family("login-1")
            .await
            .expect("revoke family"),
        3,
        "every token of the family not yet revoked, used ones included"
    );
    assert_eq!(
        store
            .revoke_refresh_family("login-1")
            .await
            .expect("revoke again"),
        0
    );
    expect_invalid(store.use_refresh_token("a3", at(7)).await, "revoked family");
    // The other login of the same user and other users keep working.
    store
        .use_refresh_token("b1", at(7))
        .await
        .expect("other family");
    store
        .use_refresh_token("c1", at(7))
        .await
        .expect("other user");
    assert_eq!(
        store
            .revoke_refresh_family("no-such-family")
            .await
            .expect("unknown family"),
        0
    );

    assert_eq!(store.session_version(alice.id).await.expect("version"), 0);
    assert_eq!(store.bump_session_version(alice.id).await.expect("bump"), 1);
    assert_eq!(store.bump_session_version(alice.id).await.expect("bump"), 2);
    assert_eq!(store.session_version(alice.id).await.expect("version"), 2);
    assert_eq!(
        store.session_version(bob.id).await.expect("version"),
        0,
        "versions are per account"
    );
    // A change to the account itself leaves the version alone.
    store
        .update_user(
            alice.id,
            UserPatch {
                role: Some(Role::Viewer),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(store.session_version(alice.id).await.expect("version"), 2);
    expect_not_found(store.session_version(999_999).await, "version of missing");
    expect_not_found(store.bump_session_version(999_999).await, "bump of missing");
    store.delete_user(alice.id).await.expect("delete");
    expect_not_found(
        store.session_version(alice.id).await,
        "version of a deleted user",
    );
}

// ---------------------------------------------------------------- settings, logs, state

/// One JSON document, `{}` until saved; deep merge happens on top of it.
pub async fn settings_document(store: Arc<dyn Store>) {
    assert_eq!(store.get_settings().await.expect("get"), json!({}));
    let document = json!({
        "general": {"concurrent_downloads": 6, "download_directory": "/srv/media"},
        "platforms": {"instagram": {"native": {"sessionid": "secret"}}},
        "unicode": "Grüße 🌍"
    });
    store.save_settings(&document).await.expect("save");
    assert_eq!(store.get_settings().await.expect("get"), document);

    // The settings API merges a patch into what is stored and saves the result.
    let mut merged = store.get_settings().await.expect("get");
    crate::model::settings::merge_patch(
        &mut merged,
        &json!({"general": {"concurrent_downloads": 2}, "unicode": null}),
    );
    store.save_settings(&merged).await.expect("save merged");
    assert_eq!(
        store.get_settings().await.expect("get"),
        json!({
            "general": {"concurrent_downloads": 2, "download_directory": "/srv/media"},
            "platforms": {"instagram": {"native": {"sessionid": "secret"}}}
        })
    );
    expect_invalid(store.save_settings(&json!([1, 2])).await, "not an object");
    expect_invalid(store.save_settings(&json!("text")).await, "not an object");
}

/// Log queries filter, count and order; retention removes old entries.
pub async fn logs_query_and_retention(store: Arc<dyn Store>) {
    let empty = store
        .query_logs(&LogFilter::default())
        .await
        .expect("query");
    assert_eq!((empty.logs.len(), empty.matching, empty.total), (0, 0, 0));
    let mut with_metadata = log(40, LogLevel::Error, "Scheduler", "Job j1 failed: HTTP 500");
    with_metadata.metadata.insert("job_id".into(), json!("j1"));
    store
        .append_logs(vec![
            log(0, LogLevel::Info, "Instagram", "Fetched 12 posts"),
            log(10, LogLevel::Debug, "Instagram", "Page 2 requested"),
            log(20, LogLevel::Warning, "TikTok", "Rate limited, waiting 60s"),
            log(30, LogLevel::Info, "scheduler", "Job j1 started"),
            with_metadata.clone(),
        ])
        .await
        .expect("append");
    store.append_logs(Vec::new()).await.expect("append nothing");

    let all = store.query_logs(&LogFilter::default()).await.expect("all");
    assert_eq!((all.matching, all.total), (5, 5));
    assert_eq!(
        all.logs.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
        [at(40), at(30), at(20), at(10), at(0)],
        "newest first"
    );
    assert_eq!(all.logs[0].metadata, with_metadata.metadata);
    assert_eq!(all.logs[0].module, "Scheduler");

    let query = |filter: LogFilter| {
        let store = store.clone();
        async move {
            let page = store.query_logs(&filter).await.expect("query");
            (
                page.logs
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>(),
                page.matching,
                page.total,
            )
        }
    };
    assert_eq!(
        query(LogFilter {
            level: Some(LogLevel::Info),
            ..Default::default()
        })
        .await,
        (
            vec!["Job j1 started".to_string(), "Fetched 12 posts".to_string()],
            2,
            5
        )
    );
    let (messages, matching, _) = query(LogFilter {
        module: Some("SCHEDULER".into()),
        ..Default::default()
    })
    .await;
    assert_eq!((messages.len(), matching), (2, 2), "module ignores case");
    let (messages, _, _) = query(LogFilter {
        search: Some("RATE limited".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(messages, ["Rate limited, waiting 60s"]);
    let (messages, matching, _) = query(LogFilter {
        date_from: Some(at(10)),
        date_to: Some(at(30)),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(
        (messages, matching),
        (
            vec![
                "Job j1 started".to_string(),
                "Rate limited, waiting 60s".to_string()
            ],
            3
        ),
        "inclusive bounds, limited rows, full match count"
    );
    let (messages, _, _) = query(LogFilter {
        search: Some("%".into()),
        ..Default::default()
    })
    .await;
    assert!(messages.is_empty(), "percent is literal");

    let deleted = store.delete_logs_before(at(20)).await.expect("delete old");
    assert_eq!(deleted.entries, 2);
    assert_eq!(
        deleted.bytes,
        ("Fetched 12 posts".len() + 2 + "Page 2 requested".len() + 2) as u64,
        "message bytes plus the empty metadata document"
    );
    let rest = store.query_logs(&LogFilter::default()).await.expect("rest");
    assert_eq!((rest.matching, rest.total), (3, 3));
    assert_eq!(
        store
            .delete_logs_before(at(0))
            .await
            .expect("nothing older")
            .entries,
        0
    );
}

/// Small JSON documents per key.
pub async fn state_documents(store: Arc<dyn Store>) {
    assert_eq!(store.get_state("forum:thread:1").await.expect("get"), None);
    store
        .put_state("forum:thread:1", &json!({"last_page": 3}))
        .await
        .expect("put");
    store
        .put_state("forum:thread:1", &json!({"last_page": 4, "etag": "x"}))
        .await
        .expect("overwrite");
    store
        .put_state("cookies:example.com", &json!(["a", "b"]))
        .await
        .expect("put other");
    assert_eq!(
        store.get_state("forum:thread:1").await.expect("get"),
        Some(json!({"last_page": 4, "etag": "x"}))
    );
    store.delete_state("forum:thread:1").await.expect("delete");
    store
        .delete_state("forum:thread:1")
        .await
        .expect("delete missing is fine");
    assert_eq!(store.get_state("forum:thread:1").await.expect("get"), None);
    assert_eq!(
        store.get_state("cookies:example.com").await.expect("get"),
        Some(json!(["a", "b"]))
    );
}

// ---------------------------------------------------------------- concurrency

/// Items enqueued by [`concurrent_claims_take_each_item_once`].
pub const CONCURRENT_ITEMS: usize = 5_000;
/// Workers of [`concurrent_claims_take_each_item_once`].
pub const CONCURRENT_WORKERS: usize = 8;

/// Eight workers claiming and completing at once take each of 5,000 items
/// exactly once.
pub async fn concurrent_claims_take_each_item_once(store: Arc<dyn Store>) {
    let mut producers = Vec::new();
    for part in 0..4 {
        let store = store.clone();
        producers.push(tokio::spawn(async move {
            for n in (part..CONCURRENT_ITEMS).step_by(4) {
                let priority = (n % 10) as u8 + 1;
                store
                    .enqueue(
                        new_item(&format!("https://example.com/c/{n}"), priority),
                        at(0),
                    )
                    .await
                    .expect("enqueue");
            }
        }));
    }
    for producer in producers {
        producer.await.expect("producer");
    }
    let mut workers = Vec::new();
    for w in 0..CONCURRENT_WORKERS {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let me = worker(&format!("worker-{w}"));
            let mut done = Vec::new();
            loop {
                let batch = store
                    .claim(&me, 1 + (w as u32 % 4) * 8, LEASE, at(1))
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    break;
                }
                for leased in batch {
                    assert_eq!(leased.item.attempts, 1, "claimed before");
                    store
                        .complete(&leased.lease, 1, at(2))
                        .await
                        .expect("complete under my lease");
                    done.push(leased.item.id);
                }
            }
            done
        }));
    }
    let mut all = Vec::new();
    for handle in workers {
        all.extend(handle.await.expect("worker"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), CONCURRENT_ITEMS, "every item claimed");
    assert_eq!(unique.len(), CONCURRENT_ITEMS, "no item claimed twice");
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!(counts.completed, CONCURRENT_ITEMS as u64);
    assert_eq!(counts.total(), CONCURRENT_ITEMS as u64);
}

/// A worker that stops renewing loses its items to another after the
/// lease; its late writes are refused and nothing is done twice.
pub async fn stalled_worker_loses_its_items(store: Arc<dyn Store>) {
    for n in 0..20 {
        store
            .enqueue(new_item(&format!("https://example.com/s/{n}"), 5), at(0))
            .await
            .expect("enqueue");
    }
    let stalled = store
        .claim(&worker("stalled"), 10, LEASE, at(1))
        .await
        .expect("claim");
    let healthy = store
        .claim(&worker("healthy"), 10, LEASE, at(1))
        .await
        .expect("claim");
    assert_eq!((stalled.len(), healthy.len()), (10, 10));
    assert!(
        store
            .claim(&worker("healthy"), 10, LEASE, at(2))
            .await
            .expect("claim")
            .is_empty(),
        "held items are not claimed"
    );

    // The healthy worker renews; the stalled one does not.
    for leased in &healthy {
        store
            .renew(&leased.lease, LEASE, at(25))
            .await
            .expect("renew");
    }
    let requeued = store.requeue_expired(at(31)).await.expect("reaper");
    let requeued: BTreeSet<i64> = requeued.iter().map(|item| item.id).collect();
    let stalled_ids: BTreeSet<i64> = stalled.iter().map(|l| l.item.id).collect();
    assert_eq!(requeued, stalled_ids, "only the stalled worker's items");

    let taken = store
        .claim(&worker("healthy"), 20, LEASE, at(32))
        .await
        .expect("take over");
    let taken_ids: BTreeSet<i64> = taken.iter().map(|l| l.item.id).collect();
    assert_eq!(taken_ids, stalled_ids);
    for leased in &stalled {
        expect_lease_lost(
            store.complete(&leased.lease, 1, at(33)).await,
            leased.item.id,
            "the stalled worker wakes up",
        );
        expect_lease_lost(
            store
                .record_progress(&leased.lease, QueueProgress::default())
                .await,
            leased.item.id,
            "progress from the stalled worker",
        );
    }
    for leased in healthy.iter().chain(&taken) {
        store
            .complete(&leased.lease, 1, at(34))
            .await
            .expect("complete");
    }
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!((counts.completed, counts.total()), (20, 20));
}

/// Workers racing to record one archive key: one record, the others see a
/// conflict ("already have it").
pub async fn concurrent_inserts_of_one_archive_key(store: Arc<dyn Store>) {
    let mut racers = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            let mut new = new_download("race:one", at(n));
            new.source = format!("worker-{n}");
            store.insert_download(new).await
        }));
    }
    let mut stored = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => stored += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("expected Conflict, got {other:?}"),
        }
    }
    assert_eq!(stored, 1);
    let list = store
        .list_downloads(&DownloadFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(list.total, 1);
}

/// A refresh token used by racing requests works exactly once.
pub async fn concurrent_refresh_token_use(store: Arc<dyn Store>) {
    let user = store
        .create_user(
            NewUser {
                username: "racer".into(),
                email: None,
                role: Role::User,
                password_hash: argon2_hash("R"),
            },
            at(0),
        )
        .await
        .expect("user");
    store
        .insert_refresh_token(RefreshToken {
            id: "shared".into(),
            user_id: user.id,
            family_id: "shared".into(),
            issued_at: at(0),
            expires_at: at(1000),
            used_at: None,
            revoked: false,
        })
        .await
        .expect("token");
    let mut racers = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store.use_refresh_token("shared", at(1)).await
        }));
    }
    let mut accepted = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => accepted += 1,
            Err(StoreError::Invalid(_)) => {}
            Err(other) => panic!("expected Invalid, got {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
}
