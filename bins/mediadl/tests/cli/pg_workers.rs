//! Scaling out: three `mediadl worker` processes and one producer share one
//! PostgreSQL database and complete 2,000 queued downloads from a local
//! fixture server, each file stored exactly once.
//!
//! Needs PostgreSQL (`MEDIADL_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); fails when it is unreachable.

use std::collections::HashMap;
use std::path::PathBuf;

use mediadl::model::{DownloadFilter, Page};
use mediadl::store::DownloadRepo;
use mediadl::testkit::{Fixture, FixtureServer};

use crate::workers::{
    Workers, enqueue_direct, files_under, fresh_database, wait_until_all_completed,
};

const ITEMS: usize = 2_000;
const PROCESSES: usize = 3;

fn body_of(n: usize) -> Vec<u8> {
    format!("fixture file {n:05}\n").repeat(20).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_worker_processes_complete_two_thousand_downloads_once() {
    let (db, producer) = fresh_database().await;
    let site = FixtureServer::start().await;
    for n in 0..ITEMS {
        site.route(&format!("/media/{n:05}.bin"), Fixture::bytes(body_of(n)));
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let downloads = scratch.path().join("downloads");

    let mut workers = Workers::default();
    for p in 0..PROCESSES {
        workers.start(
            &scratch.path().join(format!("data-{p}")),
            Some(db.url()),
            scratch.path().join(format!("worker-{p}.log")),
            |command| {
                command
                    .arg("--download-dir")
                    .arg(&downloads)
                    .arg("--concurrency")
                    .arg("4");
            },
        );
    }

    // The producer enqueues while the workers already run.
    let urls = (0..ITEMS)
        .map(|n| site.url(&format!("/media/{n:05}.bin")))
        .collect();
    enqueue_direct(&producer, urls).await;

    // Wait for the queue to drain.
    wait_until_all_completed(&producer, &mut workers, ITEMS as u64, 3000).await;
    workers.stop();

    // One download record per item, each completed.
    let recorded = producer
        .list_downloads(&DownloadFilter::default(), Page::new(1, 1))
        .await
        .expect("downloads");
    assert_eq!(recorded.total, ITEMS as u64, "one record per item");

    // Every file present exactly once, with the bytes served.
    let mut seen: HashMap<Vec<u8>, PathBuf> = HashMap::new();
    let files = files_under(&downloads);
    for path in &files {
        let bytes = std::fs::read(path).expect("read a downloaded file");
        if let Some(first) = seen.insert(bytes, path.clone()) {
            panic!("stored twice: {} and {}", first.display(), path.display());
        }
    }
    assert_eq!(files.len(), ITEMS, "files on disk");
    for n in 0..ITEMS {
        assert!(seen.contains_key(&body_of(n)), "file {n} is missing");
    }
}
