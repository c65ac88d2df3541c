//! PostgreSQL store benchmarks (a bench binary, not criterion: the figures
//! are throughput under concurrency and latency percentiles over a large
//! table, which criterion's per-iteration model does not fit).
//!
//! ```text
//! cargo bench -p mediadl-store --no-default-features --features testing --bench pg_store
//! ```
//!
//! Environment: `MEDIADL_TEST_DATABASE_URL` (server; a scratch database is
//! created and dropped), `MEDIADL_BENCH_ROWS` (download rows, default
//! 1,000,000), `MEDIADL_BENCH_ITEMS` (queue items, default 50,000).
//!
//! Prints:
//! 1. claim + complete with 16 workers, each on its own connection, for
//!    claim batches of 1 and 16 items, completing each item on its own or
//!    through the engine's `CompletionBatcher` (on a connection of its own;
//!    the claimed items finish concurrently and share commits): items per
//!    second;
//! 2. with the download rows loaded: p50/p99 of `list_downloads` (page and
//!    count) for the dashboard's filters, and of the stats queries;
//! 3. table, index and database size, per million rows.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mediadl::engine::CompletionBatcher;
use mediadl::model::{Bucket, DownloadFilter, DownloadStatus, GroupBy, Page, Window, WorkerId};
use mediadl::store::{DownloadRepo, QueueRepo};
use mediadl_store::testing::fresh_pg_database;
use mediadl_store::{PgStore, PgStoreOptions};

const WORKERS: usize = 16;
const LEASE: Duration = Duration::from_secs(300);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let rows = env_number("MEDIADL_BENCH_ROWS", 1_000_000);
    let items = env_number("MEDIADL_BENCH_ITEMS", 50_000);
    let db = fresh_pg_database()
        .await
        .unwrap_or_else(|err| panic!("the PostgreSQL bench needs a server: {err}"));
    let store = PgStore::connect_with(
        db.url(),
        PgStoreOptions {
            max_connections: 8,
            ..Default::default()
        },
    )
    .await
    .expect("connect");

    println!("== claim + complete, {WORKERS} workers, one connection each ==");
    for asynchronous in [false, true] {
        for (batch, batched_completions) in [(1_u32, false), (16, false), (1, true), (16, true)] {
            let commits = Commits {
                asynchronous,
                batched_completions,
            };
            let rate = claim_complete(&store, db.url(), items, batch, commits).await;
            let durability = if asynchronous {
                "asynchronous lease commits"
            } else {
                "durable commits"
            };
            let completions = if batched_completions {
                "batched"
            } else {
                "one by one"
            };
            println!(
                "claim batch {batch:>2}, completions {completions:<10}, {durability:<26}: \
                 {items} items, {rate:>8.0} items/s"
            );
        }
    }

    println!("\n== {rows} download rows ==");
    let now = load_downloads(&store, rows).await;
    insert_rate(&store, now).await;
    list_latencies(&store, now).await;
    stats_latencies(&store, now).await;
    sizes(&store, rows).await;
}

/// How the queue's writes are committed.
#[derive(Clone, Copy)]
struct Commits {
    /// `PgStoreOptions::asynchronous_lease_commits`.
    asynchronous: bool,
    /// Completions through a `CompletionBatcher` rather than one by one.
    batched_completions: bool,
}

/// Enqueues `items` and times 16 workers claiming `batch` at a time and
/// completing each item, until the queue is empty.
async fn claim_complete(
    store: &PgStore,
    url: &str,
    items: u64,
    batch: u32,
    commits: Commits,
) -> f64 {
    sqlx::query("TRUNCATE queue")
        .execute(store.pool())
        .await
        .expect("truncate");
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO queue (url, platform, source, content_type, priority, status, max_attempts, \
         created_date, next_attempt_at) \
         SELECT 'https://example.com/' || n, 'direct', 'example.com', 'file', 1 + n % 10, \
                'pending', 3, $1, $1 FROM generate_series(1, $2) AS n",
    )
    .bind(now)
    .bind(items as i64)
    .execute(store.pool())
    .await
    .expect("enqueue");
    sqlx::query("VACUUM ANALYZE queue")
        .execute(store.pool())
        .await
        .expect("vacuum");
    let connect = || {
        PgStore::connect_with(
            url,
            PgStoreOptions {
                max_connections: 1,
                migrate: false,
                asynchronous_lease_commits: commits.asynchronous,
                ..Default::default()
            },
        )
    };
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        workers.push(connect().await.expect("worker connection"));
    }
    let completer = if commits.batched_completions {
        let store = connect().await.expect("completer connection");
        Some(CompletionBatcher::new(Arc::new(store)))
    } else {
        None
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, worker) in workers.into_iter().enumerate() {
        let completer = completer.clone();
        tasks.push(tokio::spawn(async move {
            let me = WorkerId(format!("bench-{w}"));
            common::drain_queue(&worker, &me, batch, LEASE, completer.as_ref()).await
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("worker");
    }
    let elapsed = started.elapsed();
    assert_eq!(done, items, "every item completed once");
    items as f64 / elapsed.as_secs_f64()
}

/// Loads `rows` downloads shaped like an archive: runs of 50 items from
/// one source and content type within minutes, 20,000 runs over a year, 300 sources on 4
/// platforms, 3% failed, 2% duplicates. Returns the newest download time.
async fn load_downloads(store: &PgStore, rows: u64) -> DateTime<Utc> {
    let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().expect("time");
    let started = Instant::now();
    // In chunks so the trigger-maintained rollup is exercised as in real
    // use, without one enormous transaction.
    let chunk = 100_000_u64;
    let mut from = 1;
    while from <= rows {
        let to = (from + chunk - 1).min(rows);
        sqlx::query(
            "INSERT INTO downloads (url, url_hash, archive_key, platform, source, content_type, \
             filename, file_path, file_size, file_hash, post_date, download_date, status, \
             attempts, error_message, duplicate_of, metadata) \
             SELECT 'https://cdn.example.com/' || p || '/' || s || '/' || n || '.jpg', \
                    encode(sha256(convert_to('k:' || n, 'UTF8')), 'hex'), p || ':' || n, p, s, \
                    (ARRAY['posts','stories','reels'])[1 + r % 3], \
                    'IMG_' || n || '.jpg', '/data/downloads/' || p || '/' || s || '/IMG_' || n || '.jpg', \
                    100000 + (n * 7919) % 9900000, \
                    'sha256:' || encode(sha256(convert_to(n::text, 'UTF8')), 'hex'), \
                    t - interval '1 day', t, \
                    CASE WHEN n % 33 = 0 THEN 'failed' ELSE 'completed' END, 1, \
                    CASE WHEN n % 33 = 0 THEN 'HTTP 404' END, \
                    CASE WHEN n % 50 = 7 THEN n - 1 END, \
                    jsonb_build_object('width', 1080, 'height', 1350) \
             FROM (SELECT n, r, \
                          'source-' || (r * 7919) % 300 AS s, \
                          (ARRAY['instagram','tiktok','forum','direct'])[1 + ((r * 7919) % 300) % 4] AS p, \
                          $1 - make_interval(secs => r * 1577 + (n % 50) * 7) AS t \
                   FROM (SELECT n, n / 50 AS r FROM generate_series($2::bigint, $3::bigint) AS n) AS g) AS x",
        )
        .bind(now)
        .bind(from as i64)
        .bind(to as i64)
        .execute(store.pool())
        .await
        .expect("load downloads");
        from = to + 1;
    }
    // Loading 100,000 rows per transaction leaves every superseded version
    // of the rollup rows behind (nothing can be pruned until the
    // transaction ends); with one download per transaction, as in use,
    // HOT pruning and autovacuum keep the rollups compact. VACUUM FULL
    // gives the rollups that steady-state size.
    for statement in [
        "VACUUM FULL download_rollup",
        "VACUUM FULL download_daily",
        "VACUUM ANALYZE downloads",
        "VACUUM ANALYZE download_rollup",
        "VACUUM ANALYZE download_daily",
    ] {
        sqlx::raw_sql(statement)
            .execute(store.pool())
            .await
            .expect("vacuum");
    }
    println!(
        "loaded in {:.1} s ({:.0} rows/s, rollup maintained by the trigger)",
        started.elapsed().as_secs_f64(),
        rows as f64 / started.elapsed().as_secs_f64()
    );
    now
}

/// 16 writers recording downloads one per transaction (as workers do),
/// each insert also updating both rollups through the trigger.
async fn insert_rate(store: &PgStore, now: DateTime<Utc>) {
    const PER_WRITER: usize = 500;
    let rollup_size = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT pg_total_relation_size('download_rollup') + pg_total_relation_size('download_daily')",
        )
        .fetch_one(store.pool())
        .await
        .expect("size")
    };
    let before = rollup_size().await;
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                let key = format!("bench:{w}:{n}");
                let new = mediadl::model::NewDownload {
                    url: format!("https://cdn.example.com/instagram/source-{w}/{n}.jpg"),
                    archive_key: key,
                    platform: "instagram".into(),
                    source: format!("source-{w}"),
                    content_type: "posts".into(),
                    filename: Some(format!("bench_{w}_{n}.jpg")),
                    file_path: None,
                    file_size: Some(1_000_000),
                    file_hash: None,
                    post_date: None,
                    download_date: now,
                    status: DownloadStatus::Completed,
                    attempts: 1,
                    error_message: None,
                    duplicate_of: None,
                    queue_id: None,
                    metadata: Default::default(),
                };
                store.insert_download(new).await.expect("insert");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let rate = (WORKERS * PER_WRITER) as f64 / started.elapsed().as_secs_f64();
    let after = rollup_size().await;
    println!(
        "insert_download, {WORKERS} writers, one per transaction: {rate:.0} rows/s; \
         rollups {:.1} MiB -> {:.1} MiB",
        before as f64 / 1_048_576.0,
        after as f64 / 1_048_576.0
    );
}

/// p50 and p99 of `runs` timed calls.
async fn percentiles<F, Fut>(runs: usize, mut call: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Warm-up: plans cached, pages in memory, as on a running server.
    for n in 0..5 {
        call(n).await;
    }
    let mut times = Vec::with_capacity(runs);
    for n in 0..runs {
        let started = Instant::now();
        call(n).await;
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    (at(0.50), at(0.99))
}

fn ms(duration: Duration) -> String {
    format!("{:7.2} ms", duration.as_secs_f64() * 1000.0)
}

async fn list_latencies(store: &PgStore, now: DateTime<Utc>) {
    println!("\n-- list_downloads (page of 50 + total), 200 runs each --");
    let month_ago = (now - chrono::Duration::days(30)).date_naive();
    let filters: Vec<(&str, DownloadFilter)> = vec![
        ("no filter", DownloadFilter::default()),
        (
            "platform",
            DownloadFilter {
                platform: Some("instagram".into()),
                ..Default::default()
            },
        ),
        (
            "platform + status",
            DownloadFilter {
                platform: Some("tiktok".into()),
                status: Some(DownloadStatus::Completed),
                ..Default::default()
            },
        ),
        (
            "status failed",
            DownloadFilter {
                status: Some(DownloadStatus::Failed),
                ..Default::default()
            },
        ),
        (
            "source",
            DownloadFilter {
                source: Some("source-42".into()),
                ..Default::default()
            },
        ),
        (
            "last 30 days",
            DownloadFilter {
                date_from: Some(month_ago),
                date_to: Some(now.date_naive()),
                ..Default::default()
            },
        ),
        (
            "platform + status + 30 days",
            DownloadFilter {
                platform: Some("instagram".into()),
                status: Some(DownloadStatus::Completed),
                date_from: Some(month_ago),
                date_to: Some(now.date_naive()),
                ..Default::default()
            },
        ),
        (
            "search (filename)",
            DownloadFilter {
                search: Some("IMG_4242".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in &filters {
        let filter = Arc::new(filter.clone());
        let (p50, p99) = percentiles(200, |n| {
            let filter = filter.clone();
            async move {
                // Pages 1–5, as people page through.
                let page = Page::new(1 + (n % 5) as u32, 50);
                store.list_downloads(&filter, page).await.expect("list");
            }
        })
        .await;
        let total = store
            .list_downloads(&filter, Page::new(1, 1))
            .await
            .expect("list")
            .total;
        println!(
            "{name:<30} total {total:>8}  p50 {}  p99 {}",
            ms(p50),
            ms(p99)
        );
    }
}

async fn stats_latencies(store: &PgStore, now: DateTime<Utc>) {
    println!("\n-- stats, 50 runs each --");
    let since = |days: i64| Window {
        from: Some(now - chrono::Duration::days(days)),
        to: Some(now),
    };
    let (p50, p99) = percentiles(50, |_| async {
        store.download_totals(Window::default()).await.expect("all");
    })
    .await;
    println!(
        "totals, all time               p50 {}  p99 {}",
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = percentiles(50, |_| async {
        store.download_totals(since(30)).await.expect("month");
    })
    .await;
    println!(
        "totals, last 30 days           p50 {}  p99 {}",
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = percentiles(50, |_| async {
        store
            .download_totals_by(GroupBy::Source, Window::default())
            .await
            .expect("by source");
    })
    .await;
    println!(
        "totals by source, all time     p50 {}  p99 {}",
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = percentiles(50, |_| async {
        store
            .download_timeline(Bucket::Day, since(30))
            .await
            .expect("timeline");
    })
    .await;
    println!(
        "timeline by day, 30 days       p50 {}  p99 {}",
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = percentiles(50, |_| async {
        store
            .download_timeline(Bucket::Month, Window::default())
            .await
            .expect("timeline");
    })
    .await;
    println!(
        "timeline by month, all time    p50 {}  p99 {}",
        ms(p50),
        ms(p99)
    );
    // What GET /stats/overview asks for, in one go.
    let (p50, p99) = percentiles(50, |_| async {
        let today = Window {
            from: Some(now - chrono::Duration::hours(24)),
            to: Some(now),
        };
        let (a, b, c, d, e, f, g, h) = futures::join!(
            store.download_totals(today),
            store.download_totals(since(7)),
            store.download_totals(since(30)),
            store.download_totals(Window::default()),
            store.download_totals_by(GroupBy::Platform, today),
            store.storage_used(),
            store.last_download_per_platform(),
            store.queue_stats(now),
        );
        a.and(b).and(c).and(d).expect("totals");
        e.expect("by platform");
        f.expect("storage");
        g.expect("last per platform");
        h.expect("queue stats");
    })
    .await;
    println!(
        "stats overview (8 queries)     p50 {}  p99 {}",
        ms(p50),
        ms(p99)
    );
}

async fn sizes(store: &PgStore, rows: u64) {
    let (table, indexes, rollup, database): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pg_table_size('downloads'), pg_indexes_size('downloads'), \
                pg_total_relation_size('download_rollup') + pg_total_relation_size('download_daily'), pg_database_size(current_database())",
    )
    .fetch_one(store.pool())
    .await
    .expect("sizes");
    let rollup_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM download_rollup")
        .fetch_one(store.pool())
        .await
        .expect("rollup rows");
    let per_million = |bytes: i64| bytes as f64 / 1_048_576.0 * 1_000_000.0 / rows as f64;
    println!("\n-- size --");
    println!(
        "downloads table {:.0} MiB, its indexes {:.0} MiB, rollups {:.1} MiB ({rollup_rows} hourly rows), database {:.0} MiB",
        table as f64 / 1_048_576.0,
        indexes as f64 / 1_048_576.0,
        rollup as f64 / 1_048_576.0,
        database as f64 / 1_048_576.0
    );
    println!(
        "per million rows: table {:.0} MiB + indexes {:.0} MiB + rollups {:.1} MiB = {:.0} MiB",
        per_million(table),
        per_million(indexes),
        per_million(rollup),
        per_million(table + indexes + rollup)
    );
}
