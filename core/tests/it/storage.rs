//! Media on S3: the storage conformance suite on a real S3-compatible
//! server (moto on loopback), crash leftovers, bad settings, and engines
//! that share only the store and the bucket.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mediadl::BroadcastBus;
use mediadl::model::{DownloadFilter, DownloadStatus, NewQueueItem, Page, QueueStatus};
use mediadl::storage::conformance::StorageHarness;
use mediadl::storage::{
    Collision, MediaStorage, S3Config, S3Settings, S3Storage, StorageError, StorageKey, sha256_of,
};
use mediadl::store::{DownloadRepo, MemoryStore, QueueRepo};
use mediadl::testkit::s3::S3Server;
use mediadl::testkit::{Fixture, FixtureServer, TestEngine};
use tokio_util::sync::CancellationToken;

const BUCKET: &str = "media";

/// A storage on `server`'s bucket, staging under `staging`.
fn s3_storage(settings: S3Settings, staging: &std::path::Path) -> S3Storage {
    let mut config = S3Config::new(settings, staging);
    config.max_retries = 1;
    S3Storage::new(&config).expect("client")
}

async fn fresh() -> StorageHarness {
    let server = S3Server::start().await;
    server.create_bucket(BUCKET).await;
    let staging = tempfile::tempdir().unwrap();
    let storage = s3_storage(server.settings(BUCKET), staging.path());
    StorageHarness::new(Arc::new(storage), (server, staging))
}

mod conformance {
    use super::*;
    mediadl::storage_conformance_suite!(fresh);
}

#[tokio::test]
async fn keys_live_under_the_prefix_and_records_name_the_bucket() {
    let server = S3Server::start().await;
    server.create_bucket(BUCKET).await;
    let staging = tempfile::tempdir().unwrap();
    let settings = S3Settings {
        prefix: "/archive/".into(),
        ..server.settings(BUCKET)
    };
    let storage = s3_storage(settings, staging.path());
    let key = StorageKey::new("a/b.jpg").unwrap();
    assert_eq!(storage.locator(&key), "s3://media/archive/a/b.jpg");
    assert_eq!(
        storage.key_of("s3://media/archive/a/b.jpg"),
        Some(key.clone())
    );
    assert_eq!(storage.key_of("s3://other/archive/a/b.jpg"), None);
    assert_eq!(storage.key_of("/data/downloads/a/b.jpg"), None);
    storage
        .put(
            &key,
            mediadl::storage::bytes_stream("x".into()),
            Collision::Number,
        )
        .await
        .unwrap();
    let listed = reqwest::get(format!("{}/{BUCKET}?list-type=2", server.endpoint()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("<Key>archive/a/b.jpg</Key>"), "{listed}");
}

/// `len` bytes, then a body that never ends: a worker killed part way.
fn hanging_body(len: usize) -> mediadl::storage::ByteStream {
    let data = futures::stream::iter(
        (0..len / (1 << 20)).map(|_| Ok::<_, StorageError>(Bytes::from(vec![7u8; 1 << 20]))),
    );
    data.chain(futures::stream::pending()).boxed()
}

#[tokio::test]
async fn a_worker_killed_mid_upload_leaves_no_object_and_its_upload_is_aborted_at_the_next_start() {
    let server = S3Server::start().await;
    server.create_bucket(BUCKET).await;
    let staging = tempfile::tempdir().unwrap();
    let key = StorageKey::new("big/video.mp4").unwrap();
    {
        let storage = s3_storage(server.settings(BUCKET), staging.path());
        // Dropping the future mid-way is what a kill does: no clean-up runs.
        let killed = tokio::time::timeout(
            Duration::from_secs(5),
            storage.put(&key, hanging_body(20 << 20), Collision::Number),
        )
        .await;
        assert!(killed.is_err(), "the upload cannot have finished");
        assert_eq!(storage.size(&key).await.unwrap(), None, "no half object");
    }
    assert_eq!(
        server.open_uploads(BUCKET).await,
        1,
        "the killed upload is open"
    );
    let restarted = s3_storage(server.settings(BUCKET), staging.path());
    assert_eq!(restarted.recover().await.unwrap(), 1);
    assert_eq!(server.open_uploads(BUCKET).await, 0, "aborted at the start");
    assert_eq!(restarted.size(&key).await.unwrap(), None);
}

#[tokio::test]
async fn bad_settings_are_told_in_words() {
    let mut server = S3Server::start().await;
    server.create_bucket(BUCKET).await;
    let staging = tempfile::tempdir().unwrap();

    let missing = s3_storage(server.settings("no-such-bucket"), staging.path());
    let err = missing.check().await.unwrap_err();
    assert!(matches!(err, StorageError::MissingLocation(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("bucket no-such-bucket does not exist"),
        "{err}"
    );

    let working = s3_storage(server.settings(BUCKET), staging.path());
    working.check().await.unwrap();
    server.stop().await;
    let err = working.check().await.unwrap_err();
    assert!(
        err.is_retryable(),
        "an unreachable server is retried: {err:?}"
    );

    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let wrong_endpoint = s3_storage(
        S3Settings {
            endpoint: format!("http://127.0.0.1:{closed}"),
            ..server.settings(BUCKET)
        },
        staging.path(),
    );
    let err = wrong_endpoint.check().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn slow_down_mid_upload_is_retried_and_a_lasting_one_leaves_nothing() {
    let server = S3Server::start().await;
    server.create_bucket(BUCKET).await;
    let staging = tempfile::tempdir().unwrap();
    let through = |endpoint: String| {
        s3_storage(
            S3Settings {
                endpoint,
                ..server.settings(BUCKET)
            },
            staging.path(),
        )
    };
    let body = || {
        let chunks: Vec<Result<Bytes, StorageError>> = (0..20)
            .map(|n| Ok(Bytes::from(vec![n as u8; 1 << 20])))
            .collect();
        futures::stream::iter(chunks).boxed()
    };
    // The second part is throttled once: the client retries it.
    let throttled = std::sync::atomic::AtomicBool::new(false);
    let (once, stop) = server
        .failing_proxy(move |method, query| {
            method == "PUT"
                && query.contains("partNumber=2")
                && !throttled.swap(true, std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    let key = StorageKey::new("slow/once.bin").unwrap();
    let stored = through(once)
        .put(&key, body(), Collision::Number)
        .await
        .unwrap();
    assert_eq!(stored.size, 20 << 20);
    stop.cancel();

    // Every part throttled: the write fails as retryable, nothing is left.
    let (always, stop) = server
        .failing_proxy(|method, query| method == "PUT" && query.contains("partNumber="))
        .await;
    let key = StorageKey::new("slow/never.bin").unwrap();
    let err = through(always)
        .put(&key, body(), Collision::Number)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("SlowDown"), "{err}");
    stop.cancel();
    let direct = s3_storage(server.settings(BUCKET), staging.path());
    assert_eq!(direct.size(&key).await.unwrap(), None);
    assert_eq!(
        server.open_uploads(BUCKET).await,
        0,
        "the failed upload was aborted"
    );
}

/// Runs engines until every queue item is finished (or `limit` passes).
async fn run_engines_until_finished(engines: &[TestEngine], store: &MemoryStore, limit: Duration) {
    let shutdown = CancellationToken::new();
    let runners: Vec<_> = engines
        .iter()
        .map(|test| {
            let engine = test.engine.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { engine.run(shutdown).await })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if all_queue_items(store)
            .await
            .iter()
            .all(|item| item.status.is_finished())
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    for runner in runners {
        runner.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_sharing_only_the_store_and_the_bucket_store_each_download_once() {
    const DOWNLOADS: usize = 500;
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let site = FixtureServer::start().await;
    for i in 0..DOWNLOADS {
        let body: Vec<u8> = format!("file {i} ").repeat(100 + i % 50).into_bytes();
        site.route(&format!("/f/{i}.bin"), Fixture::bytes(body));
    }
    let store = Arc::new(MemoryStore::new());
    let events = Arc::new(BroadcastBus::default());
    // Each worker its own empty local directory: nothing on disk is shared.
    let staging: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let engines: Vec<TestEngine> = staging
        .iter()
        .enumerate()
        .map(|(n, dir)| {
            let storage = Arc::new(s3_storage(s3.settings(BUCKET), dir.path()));
            TestEngine::on_storage(
                storage,
                Arc::clone(&store),
                Arc::clone(&events),
                &format!("w{n}"),
            )
        })
        .collect();
    let queue = engines[0].queue();
    for i in 0..DOWNLOADS {
        queue
            .submit(NewQueueItem::new(
                site.url(&format!("/f/{i}.bin")),
                "direct",
                "",
                "file",
            ))
            .await
            .unwrap();
    }
    run_engines_until_finished(&engines, &store, Duration::from_secs(240)).await;

    let unfinished: Vec<_> = all_queue_items(&store)
        .await
        .into_iter()
        .filter(|item| item.status != QueueStatus::Completed)
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");
    let downloads = all_downloads(&store).await;
    assert_eq!(downloads.len(), DOWNLOADS);
    let reader = s3_storage(s3.settings(BUCKET), staging[0].path());
    let objects = reader.list("").await.unwrap();
    let media: Vec<_> = objects
        .iter()
        .filter(|object| !object.key.as_str().ends_with(".json"))
        .collect();
    assert_eq!(media.len(), DOWNLOADS, "each stored exactly once");
    for download in &downloads {
        assert_eq!(download.status, DownloadStatus::Completed);
        let key = reader
            .key_of(download.file_path.as_deref().unwrap())
            .expect("an s3:// locator");
        let hash = sha256_of(&reader, &key).await.unwrap();
        assert_eq!(
            download.file_hash.as_deref(),
            Some(format!("sha256:{hash}").as_str())
        );
    }
    for dir in &staging {
        let left: Vec<_> = walk(dir.path());
        assert!(left.is_empty(), "staged files left behind: {left:?}");
    }
    assert_eq!(s3.open_uploads(BUCKET).await, 0);
}

async fn all_queue_items(store: &MemoryStore) -> Vec<mediadl::model::QueueItem> {
    let filter = mediadl::model::QueueFilter::default();
    every_page(|page| store.list_queue(&filter, page)).await
}

async fn all_downloads(store: &MemoryStore) -> Vec<mediadl::model::Download> {
    let filter = DownloadFilter::default();
    every_page(|page| store.list_downloads(&filter, page)).await
}

/// The rows of every page of a list.
async fn every_page<T, F, Fut>(mut list: F) -> Vec<T>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = Result<mediadl::model::Paged<T>, mediadl::StoreError>>,
{
    let mut all = Vec::new();
    for page in 1.. {
        let rows = list(Page::new(page, Page::MAX_PER_PAGE)).await.unwrap();
        let last = rows.items.len() < Page::MAX_PER_PAGE as usize;
        all.extend(rows.items);
        if last {
            break;
        }
    }
    all
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
