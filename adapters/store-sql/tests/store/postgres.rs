//! `PgStore` and `PgEventBus` against a real PostgreSQL server
//! (`MEDIADL_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Every test creates its own database and drops it afterwards; an
//! unreachable server fails the tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use mediadl::StoreError;
use mediadl::events::{BusMessage, EventBus};
use mediadl::model::{
    DownloadFilter, DownloadStatus, Event, EventKind, LogEvent, LogLevel, NewQueueItem, Page,
    QueueStatus, WorkerId,
};
use mediadl::store::conformance::Harness;
use mediadl::store::{DownloadRepo, JobRepo, QueueRepo};
use mediadl_store::testing::{TestDatabase, fresh_pg_database};
use mediadl_store::{PgEventBus, PgEventBusOptions, PgStore, PgStoreOptions};

async fn fresh_database() -> TestDatabase {
    fresh_pg_database()
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL tests need a server: {err}"))
}

/// A migrated store over a new database, for the conformance suite.
async fn fresh_store() -> Harness {
    let db = fresh_database().await;
    let store = PgStore::connect(db.url())
        .await
        .expect("connect and migrate");
    Harness::with_guard(Arc::new(store), db)
}

mod conformance {
    use super::fresh_store;
    mediadl::store_conformance_suite!(fresh_store);
}

/// A store with exactly one connection: one worker process's view.
async fn single_connection_store(db: &TestDatabase) -> PgStore {
    worker_store(db, false).await
}

/// A worker's store, with durable or asynchronous lease commits.
async fn worker_store(db: &TestDatabase, asynchronous_lease_commits: bool) -> PgStore {
    PgStore::connect_with(
        db.url(),
        PgStoreOptions {
            max_connections: 1,
            asynchronous_lease_commits,
            ..Default::default()
        },
    )
    .await
    .expect("connect")
}

fn at(seconds: i64) -> DateTime<Utc> {
    mediadl::store::conformance::at(seconds)
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_apply_from_empty_and_again() {
    let db = fresh_database().await;
    let first = PgStore::connect(db.url()).await.expect("from empty");
    // Several processes starting at once: sqlx serialises them with an
    // advisory lock, and an up-to-date database is left alone.
    let (a, b) = tokio::join!(PgStore::connect(db.url()), PgStore::connect(db.url()));
    a.expect("second start");
    b.expect("third start");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(first.pool())
        .await
        .expect("migrations table");
    assert!(applied >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_from_a_newer_version_is_refused_clearly() {
    let db = fresh_database().await;
    let store = PgStore::connect(db.url()).await.expect("migrate");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999999, 'from the future', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(store.pool())
    .await
    .expect("fake a newer migration");
    let err = PgStore::connect(db.url()).await.unwrap_err();
    assert!(
        err.to_string().contains("newer mediadl"),
        "unclear error: {err}"
    );
}

/// 8 workers, each on its own connection, claim 5,000 items: every item
/// is taken exactly once. Half of them commit lease transitions
/// asynchronously: the two kinds mix safely.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_workers_on_separate_connections_claim_each_item_once() {
    const ITEMS: usize = 5_000;
    const WORKERS: usize = 8;
    let db = fresh_database().await;
    let producer = PgStore::connect(db.url()).await.expect("connect");
    sqlx::query(
        "INSERT INTO queue (url, platform, source, content_type, priority, status, max_attempts, \
         created_date, next_attempt_at) \
         SELECT 'https://example.com/' || n, 'direct', 'example.com', 'file', 1 + n % 10, \
                'pending', 3, $1, $1 FROM generate_series(1, $2) AS n",
    )
    .bind(at(0))
    .bind(ITEMS as i64)
    .execute(producer.pool())
    .await
    .expect("enqueue");

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let store = worker_store(&db, w % 2 == 1).await;
        workers.push(tokio::spawn(async move {
            let me = WorkerId(format!("worker-{w}"));
            let mut done = Vec::new();
            loop {
                let batch = store
                    .claim(&me, 1 + (w as u32 % 4) * 5, LEASE, at(1))
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return done;
                }
                for leased in batch {
                    assert_eq!(
                        leased.item.attempts, 1,
                        "item {} claimed before",
                        leased.item.id
                    );
                    store
                        .complete(&leased.lease, 1, at(2))
                        .await
                        .expect("complete");
                    done.push(leased.item.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), ITEMS, "claims in all");
    assert_eq!(unique.len(), ITEMS, "no item claimed twice");
    let counts = producer.queue_counts().await.expect("counts");
    assert_eq!(counts.completed, ITEMS as u64);
    assert_eq!(counts.total(), ITEMS as u64);
}

/// A worker that stops renewing loses its items to a worker on another
/// connection once the lease runs out; its late writes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_worker_loses_its_items_to_another_connection() {
    let db = fresh_database().await;
    let stalled_store = single_connection_store(&db).await;
    let healthy_store = single_connection_store(&db).await;
    for n in 0..50 {
        stalled_store
            .enqueue(
                NewQueueItem::new(format!("https://example.com/{n}"), "direct", "x", "file"),
                at(0),
            )
            .await
            .expect("enqueue");
    }
    let stalled = stalled_store
        .claim(&WorkerId("stalled".into()), 50, LEASE, at(1))
        .await
        .expect("claim");
    assert_eq!(stalled.len(), 50);
    let healthy = WorkerId("healthy".into());
    assert!(
        healthy_store
            .claim(&healthy, 50, LEASE, at(10))
            .await
            .expect("claim")
            .is_empty(),
        "leased items are not taken"
    );
    // Before expiry the reaper leaves them; after it, they return.
    assert!(
        healthy_store
            .requeue_expired(at(30))
            .await
            .expect("reaper")
            .is_empty()
    );
    let requeued = healthy_store.requeue_expired(at(31)).await.expect("reaper");
    assert_eq!(requeued.len(), 50);
    assert!(
        requeued
            .iter()
            .all(|item| item.status == QueueStatus::Pending)
    );
    let taken = healthy_store
        .claim(&healthy, 50, LEASE, at(32))
        .await
        .expect("take over");
    assert_eq!(taken.len(), 50);
    for leased in &stalled {
        match stalled_store.complete(&leased.lease, 1, at(33)).await {
            Err(StoreError::LeaseLost { queue_id }) => assert_eq!(queue_id, leased.item.id),
            other => panic!("stale completion must be refused, got {other:?}"),
        }
        assert!(matches!(
            stalled_store.renew(&leased.lease, LEASE, at(33)).await,
            Err(StoreError::LeaseLost { .. })
        ));
    }
    for leased in &taken {
        let item = healthy_store
            .complete(&leased.lease, 1, at(34))
            .await
            .expect("complete");
        assert_eq!(item.attempts, 2, "the lost attempt is counted");
    }
    let counts = healthy_store.queue_counts().await.expect("counts");
    assert_eq!((counts.completed, counts.total()), (50, 50));
}

/// Schedulers in several processes firing one slot: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_scheduler_instance_wins_a_slot() {
    let db = fresh_database().await;
    let setup = PgStore::connect(db.url()).await.expect("connect");
    sqlx::query(
        "INSERT INTO jobs (id, name, kind, platform, source, content_type, schedule, enabled, \
         catch_up, created_at, updated_at) \
         VALUES ('j', 'J', 'download', 'direct', 's', 'file', '* * * * *', TRUE, 'once', $1, $1)",
    )
    .bind(at(0))
    .execute(setup.pool())
    .await
    .expect("job");
    let mut racers = Vec::new();
    for _ in 0..8 {
        let store = single_connection_store(&db).await;
        racers.push(tokio::spawn(async move {
            store.claim_slot("j", at(60), Some(at(120))).await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        if racer.await.expect("join").expect("claim_slot") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

/// The main filtered list is served by an index, not a scan of the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filtered_download_list_uses_an_index() {
    let db = fresh_database().await;
    let store = PgStore::connect(db.url()).await.expect("connect");
    // 50,000 rows over a year, four platforms, 200 sources, 5% failed.
    sqlx::query(
        "INSERT INTO downloads (url, url_hash, archive_key, platform, source, content_type, \
         filename, file_size, download_date, status, attempts) \
         SELECT 'https://example.com/' || n, md5(n::text), 'k:' || n, \
                (ARRAY['instagram','tiktok','forum','direct'])[1 + n % 4], 'source-' || n % 200, \
                'posts', 'file-' || n || '.jpg', 1000, \
                $1 - make_interval(secs => n * 631), \
                CASE WHEN n % 20 = 0 THEN 'failed' ELSE 'completed' END, 1 \
         FROM generate_series(1, 50000) AS n",
    )
    .bind(at(0))
    .execute(store.pool())
    .await
    .expect("rows");
    sqlx::query("ANALYZE downloads")
        .execute(store.pool())
        .await
        .expect("analyze");
    let filters = [
        DownloadFilter::default(),
        DownloadFilter {
            platform: Some("instagram".into()),
            status: Some(DownloadStatus::Completed),
            date_from: Some(at(-30 * 86_400).date_naive()),
            date_to: Some(at(0).date_naive()),
            ..Default::default()
        },
        DownloadFilter {
            source: Some("source-7".into()),
            ..Default::default()
        },
        DownloadFilter {
            platform: Some("tiktok".into()),
            status: Some(DownloadStatus::Failed),
            ..Default::default()
        },
        DownloadFilter {
            status: Some(DownloadStatus::Failed),
            ..Default::default()
        },
    ];
    for filter in &filters {
        let plan = store
            .explain_list_downloads(filter, Page::default())
            .await
            .expect("explain");
        assert!(
            plan.contains("downloads_") && !plan.contains("Seq Scan"),
            "{filter:?} is not served by an index:\n{plan}"
        );
    }
    // And the answer is right: the count (from the rollup) matches the rows.
    let page = store
        .list_downloads(&filters[1], Page::new(1, 200))
        .await
        .expect("list");
    let counted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM downloads WHERE platform = 'instagram' AND status = 'completed' \
         AND download_date >= $1 AND download_date < $2",
    )
    .bind(mediadl::store::rules::day_start(
        at(-30 * 86_400).date_naive(),
    ))
    .bind(mediadl::store::rules::day_start(at(86_400).date_naive()))
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(page.total, counted as u64);
}

/// Connections killed under a store: every operation either succeeds or
/// fails with `Unavailable` (so the engine retries), and the store
/// recovers without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_are_unavailable_then_recover() {
    let db = fresh_database().await;
    let store = PgStore::connect(db.url()).await.expect("connect");
    let admin = PgStore::connect_with(
        db.url(),
        PgStoreOptions {
            max_connections: 1,
            migrate: false,
            ..Default::default()
        },
    )
    .await
    .expect("admin");
    let item = store
        .enqueue(
            NewQueueItem::new("https://example.com/a", "direct", "x", "file"),
            at(0),
        )
        .await
        .expect("enqueue");
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND application_name = 'mediadl'",
    )
    .fetch_one(admin.pool())
    .await
    .expect("terminate");
    assert!(killed >= 1, "the store's connections were found");
    let mut recovered = false;
    for _ in 0..20 {
        match store.get_queue_item(item.id).await {
            Ok(found) => {
                assert_eq!(found.id, item.id);
                recovered = true;
                break;
            }
            Err(StoreError::Unavailable(_)) => {}
            Err(other) => panic!("a lost connection must be Unavailable, got {other:?}"),
        }
    }
    assert!(recovered, "the pool reconnects");
}

fn log_event(message: String) -> Event {
    Event::now(EventKind::Log(LogEvent {
        level: LogLevel::Info,
        module: "test".into(),
        message,
        metadata: Default::default(),
    }))
}

fn message_of(event: &Event) -> &str {
    match &event.kind {
        EventKind::Log(log) => &log.message,
        _ => "",
    }
}

/// The next event whose message starts with `prefix`; gives up after 30 s
/// (a hang guard, not a speed requirement).
async fn next_event(
    stream: &mut futures::stream::BoxStream<'static, BusMessage>,
    prefix: &str,
) -> Option<Arc<Event>> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = stream.next().await {
            if let BusMessage::Event(event) = message
                && message_of(&event).starts_with(prefix)
            {
                return Some(event);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_cross_between_buses_including_large_ones() {
    let db = fresh_database().await;
    let a = PgEventBus::connect(db.url()).await.expect("bus a");
    let b = PgEventBus::connect(db.url()).await.expect("bus b");
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();

    let small = log_event("small hello".into());
    a.publish(small.clone()).await;
    let received = next_event(&mut on_b, "small")
        .await
        .expect("small event on b");
    assert_eq!(*received, small);

    // Well above NOTIFY's 8000-byte payload limit.
    let large = log_event(format!("large {}", "x".repeat(50_000)));
    a.publish(large.clone()).await;
    let received = next_event(&mut on_b, "large")
        .await
        .expect("large event on b");
    assert_eq!(*received, large);

    // The publisher's own subscribers get each event once, not echoed back.
    a.publish(log_event("marker".into())).await;
    let mut seen_on_a = Vec::new();
    while let Some(event) = next_event(&mut on_a, "").await {
        let message = message_of(&event).to_owned();
        let done = message == "marker";
        seen_on_a.push(message.chars().take(5).collect::<String>());
        if done {
            break;
        }
    }
    assert_eq!(seen_on_a, ["small", "large", "marke"]);
    // Both ways.
    b.publish(log_event("reply".into())).await;
    assert!(next_event(&mut on_a, "reply").await.is_some());
}

/// The listener's connection is killed: it reconnects and events flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_listener_reconnects_after_its_connection_dies() {
    let db = fresh_database().await;
    let publisher = PgEventBus::connect(db.url()).await.expect("publisher");
    let listener = PgEventBus::connect_with(
        db.url(),
        PgEventBusOptions {
            listener_name: "mediadl-events-victim".into(),
            ..Default::default()
        },
    )
    .await
    .expect("listener");
    let mut received = listener.subscribe();
    let admin = PgStore::connect(db.url()).await.expect("admin");
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'mediadl-events-victim'",
    )
    .fetch_one(admin.pool())
    .await
    .expect("terminate");
    assert_eq!(killed, 1);
    // Events sent while the listener is away are lost; keep sending until
    // one arrives over the new connection.
    let arrived = tokio::time::timeout(Duration::from_secs(30), async {
        let mut n = 0;
        loop {
            n += 1;
            publisher.publish(log_event(format!("again {n}"))).await;
            let next = tokio::time::timeout(Duration::from_millis(200), received.next()).await;
            if let Ok(Some(BusMessage::Event(event))) = next
                && message_of(&event).starts_with("again")
            {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(arrived, "events flow again after the reconnect");
    assert!(listener.listener_reconnects() >= 1);
}

/// Stats over both the rollup and raw edge rows agree with a plain count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_with_unaligned_windows_match_the_rows() {
    use mediadl::model::{Bucket, GroupBy, Window};
    let db = fresh_database().await;
    let store = PgStore::connect(db.url()).await.expect("connect");
    sqlx::query(
        "INSERT INTO downloads (url, url_hash, archive_key, platform, source, content_type, \
         file_size, download_date, status, attempts, duplicate_of) \
         SELECT 'u' || n, 'h', 'k:' || n, (ARRAY['a','b','c'])[1 + n % 3], 's', 'posts', n, \
                $1 + make_interval(secs => n * 97), \
                CASE WHEN n % 7 = 0 THEN 'failed' ELSE 'completed' END, 1, \
                CASE WHEN n % 11 = 0 THEN 1 END \
         FROM generate_series(1, 3000) AS n",
    )
    .bind(at(0))
    .execute(store.pool())
    .await
    .expect("rows");
    // Deletions and updates keep the rollup right too.
    sqlx::query("DELETE FROM downloads WHERE id % 13 = 0")
        .execute(store.pool())
        .await
        .expect("delete");
    sqlx::query("UPDATE downloads SET status = 'failed' WHERE id % 17 = 0")
        .execute(store.pool())
        .await
        .expect("update");
    // Unaligned to hours and days, spanning whole days in between.
    let window = Window {
        from: Some(at(1234)),
        to: Some(at(250_000)),
    };
    let totals = store.download_totals(window).await.expect("totals");
    let (total, completed, size): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), \
         COALESCE(sum(file_size) FILTER (WHERE status = 'completed' AND duplicate_of IS NULL), 0)::BIGINT \
         FROM downloads WHERE download_date >= $1 AND download_date < $2",
    )
    .bind(at(1234))
    .bind(at(250_000))
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(
        (totals.total, totals.completed, totals.size_bytes),
        (total as u64, completed as u64, size as u64)
    );
    let by_platform = store
        .download_totals_by(GroupBy::Platform, window)
        .await
        .expect("by platform");
    assert_eq!(
        by_platform.iter().map(|g| g.totals.total).sum::<u64>(),
        total as u64
    );
    let by_source = store
        .download_totals_by(GroupBy::Source, window)
        .await
        .expect("by source");
    assert_eq!(
        by_source.iter().map(|g| g.totals.completed).sum::<u64>(),
        completed as u64
    );
    for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week] {
        let timeline = store
            .download_timeline(bucket, window)
            .await
            .expect("timeline");
        assert_eq!(
            timeline.iter().map(|p| p.downloads).sum::<u64>(),
            total as u64,
            "{bucket:?}"
        );
    }
    assert_eq!(
        store.storage_used().await.expect("storage"),
        sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(sum(file_size), 0)::BIGINT FROM downloads \
             WHERE status = 'completed' AND duplicate_of IS NULL"
        )
        .fetch_one(store.pool())
        .await
        .expect("sum") as u64
    );
    let everything = store.download_totals(Window::default()).await.expect("all");
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM downloads")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(everything.total, all as u64);
}
