//! A 50-page forum thread with 2,000 images through the engine, against the
//! same 2,000 files as direct URLs (the issue's target: the thread reaches
//! the direct files/s, page fetches aside).
//!
//! Two in-process fixture servers: a forum serving 50 XenForo-like pages of
//! 40 posts, each post linking one image on an image server, and that
//! server's 2,000 files of 200 KiB (distinct bytes, so nothing is
//! deduplicated). Each run builds a fresh engine on a `MemoryStore` with 16
//! workers, downloading into a temporary directory (under `/dev/shm` when
//! there is one). Three figures per run:
//!
//! - `direct`: the 2,000 image URLs as 2,000 `direct` queue items;
//! - `thread`: the thread URL as one `forum` queue item;
//! - `listing`: the forum downloader's listing of the thread alone (50 page
//!   fetches and parses, no downloads): what "minus page fetches" subtracts.
//!
//! `cargo bench -p mediadl --features forum,testkit --bench forum_thread`
//! (`FORUM_THREAD_RUNS=n` for n runs, default 3).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mediadl::clock::SystemClock;
use mediadl::downloader::{Context, Downloader, Request, TransferProgress};
use mediadl::fetch::HttpClient;
use mediadl::model::{NewQueueItem, Settings, Window};
use mediadl::platforms::forum::Forum;
use mediadl::store::{DownloadRepo, MemoryStore};
use mediadl::testkit::{Fixture, FixtureServer, TestEngine};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PAGES: u32 = 50;
const POSTS_PER_PAGE: u32 = 40;
const FILES: u32 = PAGES * POSTS_PER_PAGE;
const FILE_BYTES: usize = 200 * 1024;
const WORKERS: u32 = 16;
const THREAD: &str = "/threads/benchmark-thread.1/";
/// A run that has not finished by then is reported as failed.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// 200 KiB of bytes no other file has (xorshift seeded by the file number).
fn file_bytes(n: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(n).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut bytes = Vec::with_capacity(FILE_BYTES);
    while bytes.len() < FILE_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(FILE_BYTES);
    bytes
}

fn page_path(page: u32) -> String {
    if page == 1 {
        THREAD.to_owned()
    } else {
        format!("{THREAD}page-{page}")
    }
}

/// One page of the thread: 40 posts, each a thumbnail linking its image.
fn thread_page(page: u32, images: &FixtureServer) -> String {
    let first = (page - 1) * POSTS_PER_PAGE + 1;
    let posts: String = (first..first + POSTS_PER_PAGE)
        .map(|n| {
            format!(
                r#"<article class="message message--post js-post" data-author="Poster{author}" data-content="post-{n}" id="js-post-{n}">
  <div class="message-inner"><div class="message-cell message-cell--user"><img class="avatar" src="/data/avatars/m/0/{author}.jpg" width="96" height="96"></div>
  <div class="message-cell message-cell--main"><header class="message-attribution"><time class="u-dt" datetime="2024-03-01T10:00:00+0000" data-time="{time}">Mar 1, 2024</time></header>
  <div class="message-content"><article class="message-body"><div class="bbWrapper">Photo {n} <img src="/styles/smilies/smile.png" class="smilie" alt=":)">
  <a href="{image}" target="_blank" class="link link--external"><img src="{thumb}" class="bbImage" alt="{n}"></a></div></article></div>
  <aside class="message-signature"><div class="bbWrapper"><img src="/sig/banner.jpg" class="bbImage"></div></aside></div></div>
</article>"#,
                author = n % 7,
                time = 1_709_287_200 + u64::from(n) * 60,
                image = images.url(&format!("/img/{n}.jpg")),
                thumb = images.url(&format!("/thumbs/{n}.jpg")),
            )
        })
        .collect();
    let next = if page < PAGES {
        format!(
            r#"<a href="{}" class="pageNav-jump pageNav-jump--next">Next</a>"#,
            page_path(page + 1)
        )
    } else {
        String::new()
    };
    format!(
        r#"<!DOCTYPE html><html id="XF" data-template="thread_view"><head><title>Benchmark Thread | Fixture Forum</title></head>
<body><div class="p-title"><h1 class="p-title-value">Benchmark Thread</h1></div>
<div class="pageNav">{next}</div><div class="block-body">{posts}</div></body></html>"#
    )
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.general.concurrent_downloads = WORKERS;
    settings.general.storage_limit_gb = 0.0;
    settings.platforms.insert(
        "forum".into(),
        json!({"enabled": true, "request_interval_ms": 0}),
    );
    settings
}

fn download_root() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temporary directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("temporary directory")
    }
}

/// Submits `items`, runs a fresh engine until `FILES` downloads are
/// recorded, and returns the wall time from the first submission.
async fn run_engine(items: Vec<NewQueueItem>) -> Duration {
    let root = download_root();
    let test = TestEngine::new(root.path());
    test.settings.replace(settings());
    let queue = test.queue();
    let started = Instant::now();
    for item in items {
        queue.submit(item).await.expect("queue item accepted");
    }
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn({
        let engine = test.engine.clone();
        let shutdown = shutdown.clone();
        async move { engine.run(shutdown).await }
    });
    let mut completed = 0;
    while started.elapsed() < RUN_LIMIT {
        completed = test
            .store
            .download_totals(Window::default())
            .await
            .expect("totals")
            .completed;
        if completed >= u64::from(FILES) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    runner.await.expect("engine task").expect("engine run");
    assert_eq!(completed, u64::from(FILES), "every file downloaded");
    elapsed
}

/// The forum downloader's listing of the thread alone: page fetches and parsing.
async fn listing(thread_url: &str) -> Duration {
    let settings = settings();
    let cx = Context {
        http: HttpClient::new(&settings.network).expect("client"),
        settings: Arc::new(settings),
        cancel: CancellationToken::new(),
        clock: Arc::new(SystemClock),
        state: Arc::new(MemoryStore::new()),
        progress: Arc::new(TransferProgress::new()),
    };
    let request = Request {
        queue_id: 1,
        url: thread_url.into(),
        platform: "forum".into(),
        source: "FixtureForum".into(),
        content_type: "images".into(),
        downloader: None,
        max_downloads: None,
        since: None,
        stop_after_known: 0,
        referer: None,
        metadata: Default::default(),
    };
    let started = Instant::now();
    let items = Forum::default().discover(&request, &cx).count().await;
    let elapsed = started.elapsed();
    assert_eq!(items, FILES as usize, "every image listed");
    elapsed
}

fn files_per_second(elapsed: Duration) -> f64 {
    f64::from(FILES) / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let runs: u32 = std::env::var("FORUM_THREAD_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let forum = FixtureServer::start().await;
    let images = FixtureServer::start().await;
    for n in 1..=FILES {
        images.route(
            &format!("/img/{n}.jpg"),
            Fixture::bytes(file_bytes(n)).header("content-type", "image/jpeg"),
        );
    }
    for page in 1..=PAGES {
        forum.route(&page_path(page), Fixture::html(thread_page(page, &images)));
    }
    let thread_url = forum.url(THREAD);
    println!(
        "{FILES} files of {} KiB, {PAGES} pages, {WORKERS} workers",
        FILE_BYTES / 1024
    );
    for run in 1..=runs {
        let direct = run_engine(
            (1..=FILES)
                .map(|n| NewQueueItem::new(images.url(&format!("/img/{n}.jpg")), "direct", "", ""))
                .collect(),
        )
        .await;
        let thread = run_engine(vec![NewQueueItem::new(
            thread_url.clone(),
            "forum",
            "FixtureForum",
            "images",
        )])
        .await;
        let pages = listing(&thread_url).await;
        let downloads_only = thread.saturating_sub(pages);
        println!(
            "run {run}: direct {:.2} s ({:.0} files/s) | thread {:.2} s ({:.0} files/s) | listing {:.3} s | thread minus listing {:.0} files/s",
            direct.as_secs_f64(),
            files_per_second(direct),
            thread.as_secs_f64(),
            files_per_second(thread),
            pages.as_secs_f64(),
            files_per_second(downloads_only),
        );
    }
    forum.stop();
    images.stop();
}
