//! Object storage across machines: `mediadl worker` processes that share
//! only a PostgreSQL database and an S3 bucket (moto's server on loopback),
//! each with its own empty data directory; and a worker killed (SIGKILL)
//! in the middle of a multipart upload.
//!
//! Needs PostgreSQL (`MEDIADL_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `moto_server`; fails
//! when either is missing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mediadl::model::{Download, DownloadFilter, DownloadStatus, Page};
use mediadl::storage::{S3Config, S3Storage, StorageKey, sha256_of};
use mediadl::store::DownloadRepo;
use mediadl::testkit::s3::{ProxyAnswer, S3Server};
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl_store::PgStore;
use mediadl_store::testing::TestDatabase;

use crate::storage::{hex, s3_env};
use crate::workers::{
    Workers, enqueue_direct, files_under, fresh_database, wait_until_all_completed,
};

const BUCKET: &str = "media";
const ITEMS: usize = 500;
const PROCESSES: usize = 3;
/// Over the S3 storage's 6 MiB part size: such a body goes up as a
/// multipart upload.
const MULTIPART_BODY: usize = 7 << 20;
/// The killed worker's file: several parts.
const BIG_BODY: usize = 40 << 20;

/// Distinct bodies; every hundredth one is uploaded in parts.
fn body_of(n: usize) -> Vec<u8> {
    let line = format!("s3 fixture file {n:05}\n");
    let times = if n % 100 == 50 {
        MULTIPART_BODY / line.len() + 1
    } else {
        20 + n % 30
    };
    line.repeat(times).into_bytes()
}

fn path_of(n: usize) -> String {
    format!("/media/{n:05}.bin")
}

/// A fresh database (with a producer's connection), a bucket and a
/// fixture site.
async fn services() -> (TestDatabase, PgStore, S3Server, FixtureServer) {
    let (db, producer) = fresh_database().await;
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    (db, producer, s3, FixtureServer::start().await)
}

/// Starts a worker on the S3 bucket at `endpoint`, with `data` as its only
/// local directory (no download directory shared with anyone).
fn start_on_bucket(
    workers: &mut Workers,
    db: &TestDatabase,
    data: &Path,
    log: PathBuf,
    endpoint: &str,
    concurrency: &str,
) {
    workers.start(data, Some(db.url()), log, |command: &mut Command| {
        s3_env(command, endpoint, BUCKET);
        command.args(["--storage-backend", "s3", "--concurrency", concurrency]);
    });
}

/// Every download record.
async fn all_downloads(store: &PgStore) -> Vec<Download> {
    let mut all = Vec::new();
    for page in 1.. {
        let rows = store
            .list_downloads(
                &DownloadFilter::default(),
                Page::new(page, Page::MAX_PER_PAGE),
            )
            .await
            .expect("downloads");
        let more = rows.items.len() == Page::MAX_PER_PAGE as usize;
        all.extend(rows.items);
        if !more {
            return all;
        }
    }
    all
}

/// The bucket key a record's locator (`s3://media/KEY`) names.
fn key_of(download: &Download) -> &str {
    let locator = download.file_path.as_deref().expect("a stored file");
    locator
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("an s3:// locator in the bucket: {locator}"))
}

/// Checks that `download` is completed and that its object, read back
/// from the bucket, has the hash the record names, which is the hash of
/// `served`.
async fn assert_stored(bucket: &S3Storage, download: &Download, served: &[u8]) {
    assert_eq!(download.status, DownloadStatus::Completed, "{download:?}");
    let key = StorageKey::new(key_of(download)).expect("a key");
    let stored = sha256_of(bucket, &key).await.expect("read the object");
    assert_eq!(
        download.file_hash.as_deref(),
        Some(format!("sha256:{stored}").as_str()),
        "the record's hash is the hash of the object {key}"
    );
    assert_eq!(stored, hex(served), "object {key} holds the bytes served");
}

/// A client of the bucket to read objects back (unsigned GETs of objects
/// are refused by moto); it stages nothing in `scratch`.
fn reader(s3: &S3Server, scratch: &Path) -> S3Storage {
    S3Storage::new(&S3Config::new(s3.settings(BUCKET), scratch)).expect("an S3 client")
}

/// Panics when anything is left as a file under the workers' data dirs:
/// staged transfers are removed once uploaded, and the upload journal
/// (`staging/.mediadl-uploads`) once an upload completes or is aborted.
fn assert_nothing_left(data_dirs: &[PathBuf]) {
    for data in data_dirs {
        let left = files_under(data);
        assert!(left.is_empty(), "left in {}: {left:?}", data.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_worker_processes_sharing_only_postgres_and_the_bucket_store_each_download_once() {
    let (db, producer, s3, site) = services().await;
    for n in 0..ITEMS {
        site.route(&path_of(n), Fixture::bytes(body_of(n)));
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let data_dirs: Vec<PathBuf> = (0..PROCESSES)
        .map(|p| scratch.path().join(format!("data-{p}")))
        .collect();
    let mut workers = Workers::default();
    for (p, data) in data_dirs.iter().enumerate() {
        let log = scratch.path().join(format!("worker-{p}.log"));
        start_on_bucket(&mut workers, &db, data, log, s3.endpoint(), "4");
    }

    // The producer enqueues while the workers already run.
    enqueue_direct(
        &producer,
        (0..ITEMS).map(|n| site.url(&path_of(n))).collect(),
    )
    .await;
    wait_until_all_completed(&producer, &mut workers, ITEMS as u64, 3000).await;
    workers.stop();

    let downloads = all_downloads(&producer).await;
    assert_eq!(downloads.len(), ITEMS, "one record per item");
    // Each record its own object, and no object beside them: none stored twice.
    let objects: HashSet<String> = s3
        .objects(BUCKET)
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let named: HashSet<String> = downloads.iter().map(|d| key_of(d).to_owned()).collect();
    assert_eq!(named.len(), ITEMS, "each record names its own object");
    assert_eq!(
        objects, named,
        "the bucket holds exactly the recorded objects"
    );
    let bucket = reader(&s3, scratch.path());
    for download in &downloads {
        let n: usize = download
            .url
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_suffix(".bin"))
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("a fixture URL: {}", download.url));
        assert_stored(&bucket, download, &body_of(n)).await;
    }
    assert_nothing_left(&data_dirs);
    assert_eq!(s3.unfinished_uploads(BUCKET).await, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_upload_leaves_no_object_and_its_next_start_aborts_the_upload() {
    let (db, producer, s3, site) = services().await;
    let body: Vec<u8> = (0..BIG_BODY).map(|i| (i % 251) as u8).collect();
    site.route("/media/big.bin", Fixture::bytes(body.clone()));
    // The way to the bucket stalls after the upload's first part, so the
    // worker is caught mid-upload however fast moto is.
    let (stalling, stop_stalling) = s3
        .proxy(|method, query| {
            let later_part = query
                .split('&')
                .any(|pair| pair.starts_with("partNumber=") && pair != "partNumber=1");
            if method.as_str() == "PUT" && later_part {
                ProxyAnswer::Hold
            } else {
                ProxyAnswer::Forward
            }
        })
        .await;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let data = scratch.path().join("data");
    let mut workers = Workers::default();
    let log = scratch.path().join("worker.log");
    start_on_bucket(&mut workers, &db, &data, log, &stalling, "1");
    enqueue_direct(&producer, vec![site.url("/media/big.bin")]).await;

    // The upload is open with its first part stored (the bound only keeps
    // a broken build from hanging).
    let mut under_way = None;
    for _ in 0..600 {
        workers.assert_running();
        if let Some(upload) = s3.unfinished_uploads(BUCKET).await.pop()
            && s3
                .parts_uploaded(BUCKET, &upload.key, &upload.upload_id)
                .await
                >= 1
        {
            under_way = Some(upload);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let upload = under_way.unwrap_or_else(|| panic!("no upload under way:\n{}", workers.logs()));
    workers.kill(0);
    stop_stalling.cancel();
    assert_eq!(
        s3.objects(BUCKET).await,
        Vec::new(),
        "nothing under the final key {} (nor any other)",
        upload.key
    );
    assert_eq!(
        s3.unfinished_uploads(BUCKET).await,
        vec![upload.clone()],
        "the killed upload stays open until a start aborts it"
    );

    // The same data dir again, straight to the bucket: the start aborts the
    // journalled upload. The item waits meanwhile for its lease to run out.
    let log = scratch.path().join("worker-restarted.log");
    start_on_bucket(&mut workers, &db, &data, log, s3.endpoint(), "1");
    let mut aborted = false;
    for _ in 0..600 {
        workers.assert_running();
        if !s3.unfinished_uploads(BUCKET).await.contains(&upload) {
            aborted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        aborted,
        "the killed upload was aborted:\n{}",
        workers.logs()
    );

    // The lease runs out (60 s) and the restarted worker finishes the item.
    wait_until_all_completed(&producer, &mut workers, 1, 1500).await;
    workers.stop();
    let downloads = all_downloads(&producer).await;
    assert_eq!(downloads.len(), 1, "one record");
    let objects = s3.objects(BUCKET).await;
    assert_eq!(
        objects,
        vec![(key_of(&downloads[0]).to_owned(), BIG_BODY as u64)],
        "one object, the recorded one"
    );
    assert_stored(&reader(&s3, scratch.path()), &downloads[0], &body).await;
    assert_eq!(s3.unfinished_uploads(BUCKET).await, Vec::new());
    assert_nothing_left(&[data]);
}
