//! Scaling out: three `mediadl worker` processes and one producer share one
//! PostgreSQL database and complete 2,000 queued downloads from a local
//! fixture server, each file stored exactly once.
//!
//! Needs PostgreSQL (`MEDIADL_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); fails when it is unreachable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mediadl::model::{DownloadFilter, NewQueueItem, Page, QueueCounts};
use mediadl::store::{DownloadRepo, QueueRepo};
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl_store::PgStore;
use mediadl_store::testing::fresh_pg_database;

const ITEMS: usize = 2_000;
const PROCESSES: usize = 3;

fn body_of(n: usize) -> Vec<u8> {
    format!("fixture file {n:05}\n").repeat(20).into_bytes()
}

/// Worker processes stopped (SIGTERM, then SIGKILL) however the test ends.
pub(crate) struct Workers {
    pub(crate) children: Vec<Child>,
    pub(crate) logs: Vec<PathBuf>,
}

impl Workers {
    pub(crate) fn stop(&mut self) {
        let mut children: Vec<Child> = self.children.drain(..).collect();
        for child in &children {
            // A graceful stop first: the worker gives running items back.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        for child in &mut children {
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- {}\n{}",
                    path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every regular file under `root` (the engine's part files excluded).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_worker_processes_complete_two_thousand_downloads_once() {
    let db = fresh_pg_database()
        .await
        .unwrap_or_else(|err| panic!("this test needs PostgreSQL: {err}"));
    let producer = PgStore::connect(db.url())
        .await
        .expect("producer connects and migrates");
    let site = FixtureServer::start().await;
    for n in 0..ITEMS {
        site.route(&format!("/media/{n:05}.bin"), Fixture::bytes(body_of(n)));
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let downloads = scratch.path().join("downloads");

    let mut workers = Workers {
        children: Vec::new(),
        logs: Vec::new(),
    };
    for p in 0..PROCESSES {
        let log = scratch.path().join(format!("worker-{p}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_mediadl"))
            .arg("worker")
            .arg("--database-url")
            .arg(db.url())
            .arg("--data-dir")
            .arg(scratch.path().join(format!("data-{p}")))
            .arg("--download-dir")
            .arg(&downloads)
            .arg("--concurrency")
            .arg("4")
            .env("MEDIADL_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start a mediadl worker");
        workers.children.push(child);
        workers.logs.push(log);
    }

    // The producer enqueues while the workers already run.
    let mut producers = Vec::new();
    for part in 0..4 {
        let producer = producer.clone();
        let urls: Vec<String> = (part..ITEMS)
            .step_by(4)
            .map(|n| site.url(&format!("/media/{n:05}.bin")))
            .collect();
        producers.push(tokio::spawn(async move {
            for url in urls {
                producer
                    .enqueue(
                        NewQueueItem::new(url, "direct", "fixture", "file"),
                        chrono::Utc::now(),
                    )
                    .await
                    .expect("enqueue");
            }
        }));
    }
    for task in producers {
        task.await.expect("producer");
    }

    // Wait for the queue to drain (the bound only keeps a broken build from hanging).
    let mut counts = QueueCounts::default();
    for _ in 0..3000 {
        counts = producer.queue_counts().await.expect("counts");
        if counts.completed + counts.failed == ITEMS as u64 {
            break;
        }
        for child in &mut workers.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("a worker exited early ({status}):\n{}", workers.logs());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        (counts.completed, counts.total()),
        (ITEMS as u64, ITEMS as u64),
        "every item completed: {counts:?}\n{}",
        workers.logs()
    );
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
