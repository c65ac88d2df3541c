//! `SqliteStore`: the conformance suite, migrations, concurrency across
//! separate connections, index use, and start-up errors.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mediadl::StoreError;
use mediadl::model::{DownloadFilter, DownloadStatus, Page, QueueStatus, WorkerId};
use mediadl::store::conformance::{Harness, at, new_download, new_item};
use mediadl::store::{DownloadRepo, QueueRepo};
use mediadl_store::{SQLITE_MIGRATOR, SqliteStore, SqliteStoreOptions};
use sqlx::Connection;
use tempfile::TempDir;

/// A migrated store in a new temporary directory, for the conformance suite.
async fn fresh_store() -> Harness {
    let dir = TempDir::new().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("mediadl.db"))
        .await
        .expect("open");
    Harness::with_guard(Arc::new(store), dir)
}

mod conformance {
    use super::fresh_store;
    mediadl::store_conformance_suite!(fresh_store);
}

async fn raw_connection(path: &std::path::Path) -> sqlx::SqliteConnection {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("raw connection")
}

#[tokio::test]
async fn migrations_apply_from_empty_and_only_once() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("fresh.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let known: Vec<i64> = SQLITE_MIGRATOR.iter().map(|m| m.version).collect();
    assert!(!known.is_empty());
    assert!(
        store.migrate().await.expect("migrate again").is_empty(),
        "nothing left to apply"
    );
    store.close().await;

    let mut conn = raw_connection(&path).await;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("applied");
    assert_eq!(applied, known);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    assert_eq!(
        tables,
        [
            "download_platform_totals",
            "download_rollup",
            "download_source_rollup",
            "downloads",
            "job_runs",
            "jobs",
            "logs",
            "queue",
            "refresh_tokens",
            "settings",
            "state",
            "users"
        ]
    );
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal mode");
    assert_eq!(journal, "wal");

    // A second open of the migrated file keeps the data.
    drop(conn);
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    reopened
        .insert_download(new_download("m:1", at(0)))
        .await
        .expect("insert");
    reopened.close().await;
    let again = SqliteStore::open(&path).await.expect("reopen again");
    assert!(
        again
            .download_by_archive_key("m:1")
            .await
            .expect("lookup")
            .is_some()
    );
}

#[tokio::test]
async fn a_sqlite_url_opens_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("by-url.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqliteStore::connect(&url).await.expect("connect");
    assert_eq!(store.path(), path);
    assert!(matches!(
        SqliteStore::connect("postgres://localhost/x").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        SqliteStore::connect("sqlite::memory:").await,
        Err(StoreError::Invalid(_))
    ));
}

/// Eight stores on one file (separate connections, as separate processes
/// would have) claim 5,000 items, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_connections_claim_each_item_once() {
    const ITEMS: usize = 5_000;
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("shared.db");
    let producer = SqliteStore::open(&path).await.expect("open");
    for n in 0..ITEMS {
        producer
            .enqueue(
                new_item(&format!("https://example.com/{n}"), (n % 10) as u8 + 1),
                at(0),
            )
            .await
            .expect("enqueue");
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = SqliteStore::open_with(
            &path,
            SqliteStoreOptions {
                read_connections: 1,
                ..Default::default()
            },
        )
        .await
        .expect("open worker store");
        workers.push(tokio::spawn(async move {
            let me = WorkerId(format!("process-{w}"));
            let mut done = Vec::new();
            loop {
                let batch = store
                    .claim(&me, 4, Duration::from_secs(60), at(1))
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    break;
                }
                for leased in batch {
                    store
                        .complete(&leased.lease, 1, at(2))
                        .await
                        .expect("complete");
                    done.push(leased.item.id);
                }
            }
            done
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), ITEMS);
    assert_eq!(unique.len(), ITEMS);
    let counts = producer.queue_counts().await.expect("counts");
    assert_eq!(counts.completed, ITEMS as u64);
    let list = producer
        .list_queue(
            &mediadl::model::QueueFilter {
                status: Some(QueueStatus::Completed),
                platform: None,
            },
            Page::new(1, 1),
        )
        .await
        .expect("list");
    assert_eq!(list.total, ITEMS as u64);
}

#[tokio::test]
async fn filtered_list_queries_use_an_index() {
    let dir = TempDir::new().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("plan.db"))
        .await
        .expect("open");
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
    let filters = [
        DownloadFilter::default(),
        DownloadFilter {
            platform: Some("instagram".into()),
            status: Some(DownloadStatus::Completed),
            date_from: Some(day(1)),
            date_to: Some(day(31)),
            ..Default::default()
        },
        DownloadFilter {
            source: Some("alice".into()),
            ..Default::default()
        },
        DownloadFilter {
            date_from: Some(day(1)),
            search: Some("cat".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        let plan = store
            .explain_list_downloads(&filter)
            .await
            .expect("explain")
            .join("\n");
        assert!(
            plan.contains("USING INDEX downloads_") || plan.contains("USING COVERING INDEX"),
            "{filter:?} reads an index:\n{plan}"
        );
        assert!(
            !plan.contains("USE TEMP B-TREE FOR ORDER BY"),
            "{filter:?} needs no sort:\n{plan}"
        );
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).expect("write garbage");
    match SqliteStore::open(&path).await {
        Err(StoreError::Internal(message)) => {
            assert!(
                message.contains("not a SQLite database or is corrupt"),
                "{message}"
            );
            assert!(message.contains("garbage.db"), "names the file: {message}");
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("future.db");
    SqliteStore::open(&path).await.expect("open").close().await;
    let mut conn = raw_connection(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .expect("add a future migration");
    drop(conn);
    for options in [
        SqliteStoreOptions::default(),
        SqliteStoreOptions {
            migrate: false,
            ..Default::default()
        },
    ] {
        match SqliteStore::open_with(&path, options).await {
            Err(StoreError::Invalid(message)) => {
                assert!(message.contains("newer version of mediadl"), "{message}")
            }
            other => panic!("expected a newer-version error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_locked_database_is_reported_as_unavailable() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("locked.db");
    // Another program holds an exclusive lock on a (rollback-journal) database.
    let mut holder = raw_connection(&path).await;
    sqlx::query("CREATE TABLE other (x INTEGER)")
        .execute(&mut holder)
        .await
        .expect("create");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .expect("lock");
    let options = SqliteStoreOptions {
        busy_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    match SqliteStore::open_with(&path, options).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("locked"), "{message}")
        }
        other => panic!("expected a locked error, got {other:?}"),
    }
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("unlock");
    drop(holder);
    SqliteStore::open(&path)
        .await
        .expect("opens once the lock is gone");
}

/// How many downloads `filter` matches, as the store counts them.
async fn total_matching(store: &SqliteStore, filter: &DownloadFilter) -> u64 {
    store
        .list_downloads(filter, Page::new(1, 1))
        .await
        .expect("count")
        .total
}

/// Totals and list counts come from roll-ups kept by triggers; they must
/// match a plain count over the rows after many mixed writes.
#[tokio::test]
async fn rollups_match_the_rows() {
    let dir = TempDir::new().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("rollup.db"))
        .await
        .expect("open");
    let platforms = ["instagram", "tiktok", "forum"];
    let mut ids = Vec::new();
    for n in 0..300_i64 {
        let mut new = new_download(&format!("roll:{n}"), at(n * 997));
        new.platform = platforms[(n % 3) as usize].into();
        new.source = format!("source-{}", n % 7);
        new.status = if n % 5 == 0 {
            DownloadStatus::Failed
        } else {
            DownloadStatus::Completed
        };
        new.file_size = Some(n as u64);
        ids.push(store.insert_download(new).await.expect("insert").id);
    }
    for id in ids.iter().step_by(4) {
        store.delete_download(*id).await.expect("delete");
    }
    for (n, id) in ids.iter().enumerate().skip(1).step_by(4) {
        let mut new = new_download(&format!("roll:{n}:moved"), at(n as i64 * 3_001));
        new.platform = "direct".into();
        new.file_size = Some(7);
        store.replace_download(*id, new).await.expect("replace");
    }
    let all = store
        .list_downloads(&DownloadFilter::default(), Page::new(1, 200))
        .await
        .expect("list");
    let mut rows = all.items.clone();
    let mut page = 2;
    while rows.len() < all.total as usize {
        rows.extend(
            store
                .list_downloads(&DownloadFilter::default(), Page::new(page, 200))
                .await
                .expect("list")
                .items,
        );
        page += 1;
    }
    assert_eq!(rows.len(), 225);
    let totals = store
        .download_totals(mediadl::model::Window::default())
        .await
        .expect("totals");
    assert_eq!(totals.total, rows.len() as u64);
    assert_eq!(
        totals.size_bytes,
        rows.iter()
            .filter(|d| d.status == DownloadStatus::Completed)
            .map(|d| d.file_size.unwrap_or(0))
            .sum::<u64>()
    );
    for platform in ["instagram", "tiktok", "forum", "direct"] {
        for status in [None, Some(DownloadStatus::Failed)] {
            let filter = DownloadFilter {
                platform: Some(platform.into()),
                status,
                ..Default::default()
            };
            let counted = total_matching(&store, &filter).await;
            let expected = rows
                .iter()
                .filter(|d| d.platform == platform && status.is_none_or(|s| d.status == s))
                .count() as u64;
            assert_eq!(counted, expected, "{platform} {status:?}");
        }
    }
    for source in 0..7 {
        let filter = DownloadFilter {
            source: Some(format!("source-{source}")),
            ..Default::default()
        };
        let counted = total_matching(&store, &filter).await;
        let expected = rows
            .iter()
            .filter(|d| d.source == format!("source-{source}"))
            .count() as u64;
        assert_eq!(counted, expected, "source-{source}");
    }
}
