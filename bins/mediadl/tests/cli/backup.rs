//! `mediadl backup` and `mediadl restore` through the real binary: an
//! online snapshot while a worker downloads, SQLite and PostgreSQL, and the
//! refusals (not-writable target, truncated or newer archive, a live
//! database without `--force`) that must leave everything as it was.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mediadl::model::{DownloadFilter, NewQueueItem, Page};
use mediadl::store::{DownloadRepo, QueueRepo};
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl_store::testing::fresh_pg_database;
use mediadl_store::{PgStore, SqliteStore};

use crate::workers::Workers;

/// Runs `mediadl ARGS` with none of the environment's database settings.
pub(crate) fn mediadl(args: &[&str]) -> Output {
    mediadl_with(args, |_| {})
}

pub(crate) fn mediadl_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mediadl"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("MEDIADL_DATABASE_URL")
        .env_remove("MEDIADL_DATA_DIR")
        .env("MEDIADL_LOG", "warn")
        .stdin(Stdio::null());
    adjust(&mut command);
    command.output().expect("run mediadl")
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Names in a directory, sorted (to see that a refused restore left no trace).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn item(n: usize, site: &FixtureServer) -> NewQueueItem {
    NewQueueItem::new(
        site.url(&format!("/media/{n:03}.bin")),
        "direct",
        "fixture",
        "file",
    )
}

async fn completed_urls(store: &dyn DownloadRepo) -> BTreeSet<String> {
    store
        .list_downloads(&DownloadFilter::default(), Page::new(1, 1000))
        .await
        .expect("downloads")
        .items
        .into_iter()
        .map(|download| download.url)
        .collect()
}

/// Queues `https://example.org/<name>.jpg` for each name.
async fn enqueue(store: &dyn QueueRepo, names: impl IntoIterator<Item = impl std::fmt::Display>) {
    for name in names {
        store
            .enqueue(
                NewQueueItem::new(
                    format!("https://example.org/{name}.jpg"),
                    "direct",
                    "x",
                    "file",
                ),
                chrono::Utc::now(),
            )
            .await
            .expect("enqueue");
    }
}

/// A SQLite data dir whose database holds `items` queue items and a JWT secret.
async fn sqlite_data_dir(root: &Path, items: usize) -> (PathBuf, SqliteStore) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("jwt_secret"), "0123456789abcdef0123456789abcdef").expect("secret");
    let store = SqliteStore::open(data.join("mediadl.db"))
        .await
        .expect("open the data dir's database");
    enqueue(&store, 0..items).await;
    (data, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_taken_while_downloads_run_restores_every_completed_download() {
    const ITEMS: usize = 100;
    let scratch = tempfile::tempdir().expect("scratch");
    let (data, store) = sqlite_data_dir(scratch.path(), 0).await;
    let site = FixtureServer::start().await;
    for n in 0..ITEMS {
        // About half a second per file, so the snapshot lands mid-run.
        let body = format!("fixture file {n:03}\n").repeat(20);
        site.route(
            &format!("/media/{n:03}.bin"),
            Fixture::bytes(body).slow(64, Duration::from_millis(80)),
        );
    }
    for n in 0..ITEMS {
        store
            .enqueue(item(n, &site), chrono::Utc::now())
            .await
            .expect("enqueue");
    }
    let mut workers = Workers::default();
    workers.start(&data, None, scratch.path().join("worker.log"), |command| {
        command
            .args(["--concurrency", "4", "--download-dir"])
            .arg(scratch.path().join("downloads"));
    });
    let mut before = BTreeSet::new();
    for _ in 0..600 {
        before = completed_urls(&store).await;
        if before.len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(before.len() >= 10, "downloads started:\n{}", workers.logs());

    let archive = scratch.path().join("mediadl.tar");
    let output = tokio::task::spawn_blocking({
        let args = [
            "backup".to_owned(),
            "--data-dir".to_owned(),
            path(&data).to_owned(),
            "--output".to_owned(),
            path(&archive).to_owned(),
        ];
        move || mediadl(&args.each_ref().map(String::as_str))
    })
    .await
    .expect("backup task");
    let after = completed_urls(&store).await;
    assert!(output.status.success(), "backup: {}", stderr(&output));
    assert!(
        after.len() < ITEMS,
        "the snapshot was taken while downloads ran ({} done already)",
        after.len()
    );
    workers.stop();
    assert_eq!(mode(&archive), 0o600, "archives hold secrets");

    let restored = scratch.path().join("restored");
    let output = mediadl(&["restore", path(&archive), "--data-dir", path(&restored)]);
    assert!(output.status.success(), "restore: {}", stderr(&output));
    let copy = SqliteStore::open(restored.join("mediadl.db"))
        .await
        .expect("the restored database opens at this build's schema");
    copy.check_integrity()
        .await
        .expect("the restored database passes the checks");
    let listed = completed_urls(&copy).await;
    let missing: Vec<&String> = before.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "downloads completed before the snapshot are in the backup; missing {missing:?}"
    );
    assert!(listed.is_subset(&after.union(&before).cloned().collect()));
    assert_eq!(
        copy.queue_counts().await.expect("counts").total(),
        ITEMS as u64,
        "every queued item is in the backup"
    );
    assert_eq!(
        std::fs::read_to_string(restored.join("jwt_secret")).expect("secret restored"),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(mode(&restored.join("jwt_secret")), 0o600);
    assert_eq!(mode(&restored.join("mediadl.db")), 0o600);
    copy.close().await;
    store.close().await;
}

#[tokio::test]
async fn restore_refuses_a_live_database_without_force_and_one_in_use_at_all() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (data, store) = sqlite_data_dir(scratch.path(), 2).await;
    let archive = scratch.path().join("two.tar");
    let output = mediadl(&["backup", "--data-dir", path(&data), "-o", path(&archive)]);
    assert!(output.status.success(), "backup: {}", stderr(&output));
    // A third item after the backup.
    enqueue(&store, ["third"]).await;

    let restore = |force: bool| {
        let mut args = vec!["restore", path(&archive), "--data-dir", path(&data)];
        args.extend(force.then_some("--force"));
        mediadl(&args)
    };
    // The database is open here, as a running server would have it.
    let output = restore(true);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("another process has it open"),
        "{}",
        stderr(&output)
    );
    store.close().await;

    let before = listing(&data);
    let output = restore(false);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("refusing to overwrite") && message.contains("3 queue"),
        "{message}"
    );
    assert!(message.contains("--force"), "{message}");
    assert_eq!(listing(&data), before, "nothing left behind");

    let output = restore(true);
    assert!(
        output.status.success(),
        "restore --force: {}",
        stderr(&output)
    );
    let store = SqliteStore::open(data.join("mediadl.db"))
        .await
        .expect("open");
    assert_eq!(store.queue_counts().await.expect("counts").total(), 2);
    store.close().await;
}

#[tokio::test]
async fn bad_targets_and_bad_archives_are_refused_and_change_nothing() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (data, store) = sqlite_data_dir(scratch.path(), 1).await;
    store.close().await;
    let archive = scratch.path().join("good.tar");
    let output = mediadl(&["backup", "--data-dir", path(&data), "-o", path(&archive)]);
    assert!(output.status.success(), "backup: {}", stderr(&output));

    // Not writable: a missing directory, and a "directory" that is a file.
    for target in [scratch.path().join("missing/b.tar"), archive.join("b.tar")] {
        let output = mediadl(&["backup", "--data-dir", path(&data), "-o", path(&target)]);
        assert!(!output.status.success(), "{} refused", target.display());
        assert!(
            stderr(&output).contains("cannot write to"),
            "{}",
            stderr(&output)
        );
        assert!(!target.exists());
    }
    assert_eq!(
        listing(scratch.path()),
        ["data", "good.tar"],
        "no temporary files left"
    );

    let bytes = std::fs::read(&archive).expect("archive");
    let truncated = scratch.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("truncate");
    let newer = scratch.path().join("newer.tar");
    rewrite_manifest(&archive, &newer, |manifest| {
        manifest["schema_version"] = 9999.into();
    });
    let future = scratch.path().join("future.tar");
    rewrite_manifest(&archive, &future, |manifest| {
        manifest["format_version"] = 2.into();
    });

    let database = std::fs::read(data.join("mediadl.db")).expect("db");
    let before = listing(&data);
    for (bad, expected) in [
        (&truncated, "is not a usable mediadl backup"),
        (&newer, "newer mediadl (schema version 9999"),
        (&future, "backup format 2"),
    ] {
        let output = mediadl(&["restore", path(bad), "--data-dir", path(&data), "--force"]);
        assert!(!output.status.success(), "{} refused", bad.display());
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
        assert_eq!(
            std::fs::read(data.join("mediadl.db")).expect("db"),
            database,
            "{}: the database is unchanged",
            bad.display()
        );
        assert_eq!(
            listing(&data),
            before,
            "{}: nothing left behind",
            bad.display()
        );
    }
}

/// Copies an archive with its manifest changed by `change`.
fn rewrite_manifest(from: &Path, to: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut archive = tar::Archive::new(std::fs::File::open(from).expect("open"));
    let mut builder = tar::Builder::new(std::fs::File::create(to).expect("create"));
    let mut change = Some(change);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        let name = entry.path().expect("name").into_owned();
        if let Some(change) = change.take_if(|_| name == Path::new("manifest.json")) {
            let mut manifest: serde_json::Value = serde_json::from_slice(&data).expect("json");
            change(&mut manifest);
            data = serde_json::to_vec(&manifest).expect("json");
        }
        let mut header = entry.header().clone();
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder
            .append_data(&mut header, &name, data.as_slice())
            .expect("append");
    }
    builder.finish().expect("finish");
}

#[tokio::test]
async fn postgres_backup_restores_into_another_database_and_needs_force_on_a_live_one() {
    let source = fresh_pg_database()
        .await
        .unwrap_or_else(|err| panic!("this test needs PostgreSQL: {err}"));
    let target = fresh_pg_database()
        .await
        .unwrap_or_else(|err| panic!("this test needs PostgreSQL: {err}"));
    let store = PgStore::connect(source.url()).await.expect("connect");
    enqueue(&store, 0..3).await;
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let archive = scratch.path().join("pg.tar");
    let backup = |url: &str, adjust: fn(&mut Command)| {
        mediadl_with(
            &[
                "backup",
                "--data-dir",
                path(&data),
                "--database-url",
                url,
                "-o",
                path(&archive),
            ],
            adjust,
        )
    };

    // Without pg_dump on PATH: a message naming what is missing.
    let output = backup(source.url(), |command| {
        command.env("PATH", "/nonexistent");
    });
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("pg_dump is not installed")
            && stderr(&output).contains("postgresql-client"),
        "{}",
        stderr(&output)
    );
    assert!(!archive.exists());

    let output = backup(source.url(), |_| {});
    assert!(output.status.success(), "backup: {}", stderr(&output));
    assert_eq!(mode(&archive), 0o600);

    let restore = |url: &str, force: bool| {
        let mut args = vec![
            "restore",
            path(&archive),
            "--data-dir",
            path(&data),
            "--database-url",
            url,
        ];
        if force {
            args.push("--force");
        }
        mediadl(&args)
    };
    let output = restore(target.url(), false);
    assert!(
        output.status.success(),
        "restore into an empty database: {}",
        stderr(&output)
    );
    let copy = PgStore::connect(target.url())
        .await
        .expect("restored database opens");
    assert_eq!(copy.queue_counts().await.expect("counts").total(), 3);
    copy.close().await;

    // A fourth item after the backup.
    enqueue(&store, ["fourth"]).await;
    let output = restore(source.url(), false);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("refusing to overwrite") && message.contains("4 queue"),
        "{message}"
    );
    assert_eq!(
        store.queue_counts().await.expect("counts").total(),
        4,
        "unchanged"
    );

    let output = restore(source.url(), true);
    assert!(
        output.status.success(),
        "restore --force: {}",
        stderr(&output)
    );
    assert_eq!(store.queue_counts().await.expect("counts").total(), 3);
    store.close().await;
}
