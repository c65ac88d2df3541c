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

pub mod concurrency;
pub mod downloads;
pub mod jobs;
pub mod misc;
pub mod queue;
pub mod users;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::{Store, StoreResult};
use crate::error::StoreError;
use crate::model::{
    CatchUp, DownloadStatus, Job, JobConfig, JobKind, JobSpec, LogLevel, Metadata, NewDownload,
    NewLogEntry, NewQueueItem, RefreshToken, WorkerId,
};

pub use concurrency::*;
pub use downloads::*;
pub use jobs::*;
pub use misc::*;
pub use queue::*;
pub use users::*;

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
        $crate::conformance_downloads_cases!($factory);
        $crate::conformance_queue_cases!($factory);
        $crate::conformance_jobs_cases!($factory);
        $crate::conformance_users_cases!($factory);
        $crate::conformance_misc_cases!($factory);
        $crate::conformance_concurrency_cases!($factory);
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

/// An unused refresh token `id` of `user_id` in `family`, issued at 0 and
/// expiring at `expires` (seconds after [`base_time`]).
fn refresh_token(id: &str, user_id: i64, family: &str, expires: i64) -> RefreshToken {
    RefreshToken {
        id: id.to_string(),
        user_id,
        family_id: family.to_string(),
        issued_at: at(0),
        expires_at: at(expires),
        used_at: None,
        revoked: false,
    }
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
        config: JobConfig::parse(
            JobKind::Download,
            json!({"max_downloads": 50, "nested": {"a": [1, 2]}})
                .as_object()
                .expect("object"),
        )
        .expect("config"),
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

/// Every check of each capability file is in that file's case list, so
/// the suite runs it for every store.
#[cfg(test)]
mod complete {
    /// The `pub async fn NAME(store: Arc<dyn Store>)` checks of `source`,
    /// and the names its `@cases` list gives the suite.
    fn checks_and_cases(source: &str) -> (Vec<&str>, Vec<&str>) {
        let checks = source
            .split("pub async fn ")
            .skip(1)
            .filter_map(|rest| rest.split_once("(store: Arc<dyn Store>)"))
            .map(|(name, _)| name)
            .filter(|name| !name.contains(char::is_whitespace))
            .collect();
        let cases = source
            .split_once("@cases $factory;")
            .and_then(|(_, rest)| rest.split_once(");"))
            .map(|(list, _)| {
                list.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        (checks, cases)
    }

    #[test]
    fn every_check_is_in_its_files_case_list() {
        for (file, source) in [
            ("downloads.rs", include_str!("downloads.rs")),
            ("queue.rs", include_str!("queue.rs")),
            ("jobs.rs", include_str!("jobs.rs")),
            ("users.rs", include_str!("users.rs")),
            ("misc.rs", include_str!("misc.rs")),
            ("concurrency.rs", include_str!("concurrency.rs")),
        ] {
            let (checks, cases) = checks_and_cases(source);
            assert!(!checks.is_empty(), "{file} has no checks");
            assert_eq!(
                checks, cases,
                "{file}: its case list must name every check, in order"
            );
        }
    }
}
