//! `mediadl worker` processes on one PostgreSQL database, and the producer
//! that feeds them: what pg_workers.rs and s3_workers.rs share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mediadl::model::{NewQueueItem, QueueCounts};
use mediadl::store::QueueRepo;
use mediadl_store::PgStore;
use mediadl_store::testing::{TestDatabase, fresh_pg_database};

/// Worker processes stopped (SIGTERM, then SIGKILL) however the test ends.
#[derive(Default)]
pub(crate) struct Workers {
    pub(crate) children: Vec<Child>,
    pub(crate) logs: Vec<PathBuf>,
}

impl Workers {
    /// Starts `mediadl worker` with `data_dir` on `database_url` (the
    /// data dir's SQLite database when `None`), logging warnings to `log`;
    /// `adjust` adds flags and environment.
    pub(crate) fn start(
        &mut self,
        data_dir: &Path,
        database_url: Option<&str>,
        log: PathBuf,
        adjust: impl FnOnce(&mut Command),
    ) {
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mediadl"));
        command.arg("worker").arg("--data-dir").arg(data_dir);
        if let Some(url) = database_url {
            command.arg("--database-url").arg(url);
        }
        command
            .env("MEDIADL_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("MEDIADL_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log_file);
        adjust(&mut command);
        self.children
            .push(command.spawn().expect("start a mediadl worker"));
        self.logs.push(log);
    }

    /// Kills worker `n` with SIGKILL (no clean-up runs) and reaps it.
    pub(crate) fn kill(&mut self, n: usize) {
        let mut child = self.children.remove(n);
        child.kill().expect("SIGKILL a worker");
        child.wait().expect("reap the killed worker");
    }

    /// Panics, with the logs, when a worker has exited.
    pub(crate) fn assert_running(&mut self) {
        for child in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("a worker exited early ({status}):\n{}", self.logs());
            }
        }
    }

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

/// A fresh PostgreSQL database and the producer's connection to it
/// (migrated); panics when PostgreSQL is unreachable.
pub(crate) async fn fresh_database() -> (TestDatabase, PgStore) {
    let db = fresh_pg_database()
        .await
        .unwrap_or_else(|err| panic!("this test needs PostgreSQL: {err}"));
    let producer = PgStore::connect(db.url())
        .await
        .expect("producer connects and migrates");
    (db, producer)
}

/// Enqueues one `direct` item per URL from four producer tasks at once.
pub(crate) async fn enqueue_direct(producer: &PgStore, urls: Vec<String>) {
    let mut producers = Vec::new();
    for part in 0..4 {
        let producer = producer.clone();
        let urls: Vec<String> = urls.iter().skip(part).step_by(4).cloned().collect();
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
}

/// Waits until the queue's `items` items are finished and checks that
/// every one completed; panics, with the logs, when one failed or a worker
/// exits meanwhile. The bound (`polls` of 200 ms) only keeps a broken
/// build from hanging.
pub(crate) async fn wait_until_all_completed(
    producer: &PgStore,
    workers: &mut Workers,
    items: u64,
    polls: usize,
) {
    let mut counts = QueueCounts::default();
    for _ in 0..polls {
        counts = producer.queue_counts().await.expect("counts");
        if counts.completed + counts.failed == items {
            break;
        }
        workers.assert_running();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        (counts.completed, counts.total()),
        (items, items),
        "every item completed: {counts:?}\n{}",
        workers.logs()
    );
}

/// Every regular file under `root`.
pub(crate) fn files_under(root: &Path) -> Vec<PathBuf> {
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
