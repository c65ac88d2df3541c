//! SQLite store load generator: queue throughput and large-history query
//! latency. Prints one line per figure; benches/README.md records them.
//!
//! ```text
//! cargo bench -p mediadl-store --bench sqlite_store
//! MEDIADL_BENCH_ROWS=200000 cargo bench -p mediadl-store --bench sqlite_store
//! ```
//!
//! * `claim+complete`: 16 workers each loop claim → complete over a
//!   pre-filled queue, claiming 1 or 16 items at a time, completing each
//!   item on its own or through the engine's `CompletionBatcher` (the
//!   claimed items finish concurrently and share commits).
//! * `list`: the download list with its count over `MEDIADL_BENCH_ROWS`
//!   records (default 1,000,000) for several filters, p50/p99 of 200 runs.
//! * `stats overview`: every store call the dashboard overview makes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use mediadl::engine::CompletionBatcher;
use mediadl::model::{
    DownloadFilter, DownloadStatus, GroupBy, NewQueueItem, Page, WorkerId, url_hash,
};
use mediadl::store::{DownloadRepo, QueueRepo};
use mediadl_store::SqliteStore;
use sqlx::{Connection, QueryBuilder, Sqlite};

const WORKERS: usize = 16;
const QUEUE_ITEMS: usize = 20_000;
const RUNS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<58} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn claim_complete(dir: &std::path::Path, batch: u32, batched_completions: bool) -> f64 {
    let path = dir.join(format!("queue-{batch}-{batched_completions}.db"));
    let store = Arc::new(SqliteStore::open(&path).await.expect("open"));
    let now = Utc::now();
    for n in 0..QUEUE_ITEMS {
        let mut item = NewQueueItem::new(
            format!("https://example.com/{n}"),
            "direct",
            "example.com",
            "file",
        );
        item.priority = (n % 10) as u8 + 1;
        store.enqueue(item, now).await.expect("enqueue");
    }
    let completer = batched_completions.then(|| CompletionBatcher::new(store.clone()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        let completer = completer.clone();
        workers.push(tokio::spawn(async move {
            let me = WorkerId(format!("bench-{w}"));
            common::drain_queue(
                &*store,
                &me,
                batch,
                Duration::from_secs(300),
                completer.as_ref(),
            )
            .await
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    assert_eq!(total, QUEUE_ITEMS as u64);
    let rate = total as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    rate
}

const PLATFORMS: [(&str, &[&str]); 4] = [
    ("instagram", &["posts", "stories", "reels"]),
    ("tiktok", &["videos"]),
    ("forum", &["images"]),
    ("direct", &["file"]),
];

/// Fills `downloads` with `rows` records spread over the year before `now`
/// (through the schema's triggers, in large transactions).
async fn seed(path: &std::path::Path, rows: usize, now: DateTime<Utc>) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .pragma("synchronous", "OFF");
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("connect");
    let year_seconds = 365 * 86_400_u64;
    let end = now.timestamp_micros();
    let mut n = 0;
    while n < rows {
        let mut tx = conn.begin().await.expect("begin");
        let chunk_end = (n + 50_000).min(rows);
        while n < chunk_end {
            let batch_end = (n + 1_000).min(chunk_end);
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO downloads (url, url_hash, archive_key, platform, source, \
                 content_type, filename, file_path, file_size, file_hash, download_date, status, \
                 attempts, error_message, metadata) ",
            );
            qb.push_values(n..batch_end, |mut row, i| {
                // A cheap, deterministic spread over platforms, sources and time.
                let mix = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let (platform, types) = PLATFORMS[(mix % 4) as usize];
                let content_type = types[((mix >> 8) as usize) % types.len()];
                let source = format!("{platform}-source-{}", (mix >> 16) % 200);
                let failed = (mix >> 24).is_multiple_of(33);
                let when = end - ((mix >> 20) % year_seconds) as i64 * 1_000_000;
                let key = format!("{platform}:{i}");
                let filename = format!("{source}_{i}.jpg");
                row.push_bind(format!(
                    "https://cdn.{platform}.example.com/media/{i}/original.jpg"
                ))
                .push_bind(url_hash(&key))
                .push_bind(key)
                .push_bind(platform)
                .push_bind(source.clone())
                .push_bind(content_type)
                .push_bind(filename.clone())
                .push_bind(format!("/data/downloads/{platform}/{source}/{filename}"))
                .push_bind(if failed {
                    None
                } else {
                    Some(((mix >> 40) % 5_000_000) as i64)
                })
                .push_bind(if failed {
                    None
                } else {
                    Some(format!("sha256:{:064x}", mix))
                })
                .push_bind(when)
                .push_bind(if failed { "failed" } else { "completed" })
                .push_bind(1_i64)
                .push_bind(failed.then_some("HTTP 404"))
                .push_bind(format!(r#"{{"width":1080,"height":1350,"post_id":"{i}"}}"#));
            });
            qb.build().execute(&mut *tx).await.expect("insert");
            n = batch_end;
        }
        tx.commit().await.expect("commit");
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("analyze");
}

async fn large_history(dir: &std::path::Path, rows: usize) {
    let path = dir.join("history.db");
    let now = Utc::now();
    SqliteStore::open(&path)
        .await
        .expect("create")
        .close()
        .await;
    let seeding = Instant::now();
    seed(&path, rows, now).await;
    let size = std::fs::metadata(&path).expect("size").len();
    println!(
        "seeded {rows} downloads in {:.1} s; database {:.1} MB ({:.1} MB per million rows)",
        seeding.elapsed().as_secs_f64(),
        size as f64 / 1e6,
        size as f64 / 1e6 / (rows as f64 / 1e6),
    );

    let store = SqliteStore::open(&path).await.expect("open");
    let today = now.date_naive();
    let days_ago = |d: i64| today - chrono::Duration::days(d);
    let filters: Vec<(&str, DownloadFilter)> = vec![
        ("no filter", DownloadFilter::default()),
        (
            "platform + status + last 30 days",
            DownloadFilter {
                platform: Some("instagram".into()),
                status: Some(DownloadStatus::Completed),
                date_from: Some(days_ago(30)),
                date_to: Some(today),
                ..Default::default()
            },
        ),
        (
            "platform",
            DownloadFilter {
                platform: Some("tiktok".into()),
                ..Default::default()
            },
        ),
        (
            "source",
            DownloadFilter {
                source: Some("forum-source-7".into()),
                ..Default::default()
            },
        ),
        (
            "platform + source",
            DownloadFilter {
                platform: Some("forum".into()),
                source: Some("forum-source-7".into()),
                ..Default::default()
            },
        ),
        (
            "failed, last 7 days",
            DownloadFilter {
                status: Some(DownloadStatus::Failed),
                date_from: Some(days_ago(7)),
                ..Default::default()
            },
        ),
        (
            "search + last 7 days",
            DownloadFilter {
                search: Some("source-12_".into()),
                date_from: Some(days_ago(7)),
                ..Default::default()
            },
        ),
        (
            "search (whole history)",
            DownloadFilter {
                search: Some("source-12_".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in filters {
        let runs = if filter.search.is_some() && filter.date_from.is_none() {
            20
        } else {
            RUNS
        };
        let mut samples = Vec::with_capacity(runs);
        for run in 0..runs {
            let page = Page::new(1 + (run as u32 % 3), 50);
            let started = Instant::now();
            let result = store.list_downloads(&filter, page).await.expect("list");
            samples.push(started.elapsed());
            assert!(result.total > 0 || name == "search (whole history)");
        }
        report(&format!("list + count, {name}"), samples);
    }

    let day_start = |d: NaiveDate| mediadl::store::rules::day_start(d);
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        for from in [
            day_start(today),
            day_start(days_ago(7)),
            day_start(days_ago(30)),
        ] {
            let window = mediadl::model::Window {
                from: Some(from),
                to: None,
            };
            store.download_totals(window).await.expect("totals");
        }
        store
            .download_totals(mediadl::model::Window::default())
            .await
            .expect("all");
        store.storage_used().await.expect("storage");
        store
            .download_totals_by(
                GroupBy::Platform,
                mediadl::model::Window {
                    from: Some(day_start(today)),
                    to: None,
                },
            )
            .await
            .expect("platforms today");
        store
            .last_download_per_platform()
            .await
            .expect("latest per platform");
        store.queue_counts().await.expect("queue");
        samples.push(started.elapsed());
    }
    report("stats overview (9 store calls)", samples);

    let mut samples = Vec::with_capacity(50);
    for _ in 0..50 {
        let started = Instant::now();
        store
            .download_timeline(
                mediadl::model::Bucket::Day,
                mediadl::model::Window {
                    from: Some(day_start(days_ago(365))),
                    to: None,
                },
            )
            .await
            .expect("timeline");
        store
            .download_totals_by(GroupBy::Source, mediadl::model::Window::default())
            .await
            .expect("by source");
        samples.push(started.elapsed());
    }
    report("year timeline by day + totals by source", samples);
    store.close().await;
}

fn main() {
    let rows: usize = std::env::var("MEDIADL_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::TempDir::new().expect("temp dir");
    runtime.block_on(async {
        for (batch, batched_completions) in [(1, false), (16, false), (1, true), (16, true)] {
            let rate = claim_complete(dir.path(), batch, batched_completions).await;
            let completions = if batched_completions {
                "batched"
            } else {
                "one by one"
            };
            println!(
                "claim+complete, {WORKERS} workers, claim batch {batch:>2}, completions {completions:<10}: {rate:>9.0} items/s ({QUEUE_ITEMS} items)"
            );
        }
        large_history(dir.path(), rows).await;
    });
}
