//! The scheduled backup job on a real SQLite file: archives in the
//! configured directory, the oldest removed beyond `backup.keep`, each one
//! restorable; a directory it cannot write fails the run with the reason.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mediadl::backup::{self, BackupSources};
use mediadl::clock::ManualClock;
use mediadl::model::{NewQueueItem, RunStatus, Settings};
use mediadl::scheduler::{BACKUP_JOB_ID, CronScheduler, SchedulerOptions};
use mediadl::store::QueueRepo;
use mediadl::{
    BroadcastBus, Clock, EventBus, QueueService, Registry, Scheduler, SettingsHandle, Store,
};
use mediadl_store::SqliteStore;

fn archives(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_backup_job_keeps_the_newest_archives_and_each_restores() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("jwt_secret"), "s".repeat(64)).unwrap();
    let store = Arc::new(SqliteStore::open(data.join("mediadl.db")).await.unwrap());
    let start: DateTime<Utc> = "2025-10-13T10:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let mut settings = Settings::default();
    settings.backup.enabled = true;
    settings.backup.keep = 2;
    let backups = root.path().join("backups");
    settings.backup.directory = backups.display().to_string();
    let settings = SettingsHandle::new(settings);
    let registry = Arc::new(Registry::builtin());
    let queue = QueueService::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(BroadcastBus::default()) as Arc<dyn EventBus>,
        Arc::clone(&registry),
        settings.clone(),
        Arc::clone(&clock) as Arc<dyn Clock>,
    );
    let scheduler = CronScheduler::new(
        Arc::clone(&store) as Arc<dyn Store>,
        queue,
        registry,
        settings.clone(),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .with_options(SchedulerOptions {
        backups: Some(BackupSources {
            secrets: vec![data.join("jwt_secret")],
            default_directory: data.join("backups"),
        }),
        ..SchedulerOptions::default()
    });
    scheduler.ensure_builtin_jobs().await.unwrap();
    let job = scheduler.get_job(BACKUP_JOB_ID).await.unwrap();
    assert_eq!(
        job.state.next_run,
        Some("2025-10-14T04:00:00Z".parse().unwrap())
    );

    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(backups.join("notes.txt"), "not an archive").unwrap();
    for day in 0..3 {
        store
            .enqueue(
                NewQueueItem::new(
                    format!("https://example.org/{day}.jpg"),
                    "direct",
                    "x",
                    "file",
                ),
                clock.now(),
            )
            .await
            .unwrap();
        let fired = scheduler.run_now(BACKUP_JOB_ID).await.unwrap();
        assert_eq!(
            fired.run.status,
            RunStatus::Success,
            "{:?}",
            fired.run.error_message
        );
        clock.set(clock.now() + Duration::days(1));
    }
    assert_eq!(
        archives(&backups),
        [
            "mediadl-backup-20251014T100000Z.tar",
            "mediadl-backup-20251015T100000Z.tar",
            "notes.txt"
        ],
        "the two newest kept, other files untouched"
    );

    let newest = backups.join("mediadl-backup-20251015T100000Z.tar");
    let unpacked = backup::open(&newest, root.path()).unwrap();
    assert_eq!(unpacked.manifest.backend, "sqlite");
    assert_eq!(unpacked.secrets.len(), 1);
    let target = root.path().join("restored.db");
    mediadl_store::restore_sqlite(&unpacked.database, &unpacked.manifest, &target, false)
        .await
        .unwrap();
    let copy = SqliteStore::open(&target).await.unwrap();
    assert_eq!(copy.queue_counts().await.unwrap().total(), 3);
    copy.close().await;

    // A directory that is a file: the run fails, saying why.
    let mut broken = (*settings.current()).clone();
    broken.backup.directory = backups.join("notes.txt").display().to_string();
    settings.replace(broken);
    let fired = scheduler.run_now(BACKUP_JOB_ID).await.unwrap();
    assert_eq!(fired.run.status, RunStatus::Failure);
    let message = fired.run.error_message.unwrap_or_default();
    assert!(message.contains("notes.txt"), "{message}");

    // Switched off: the job is gone from the list.
    let mut off = (*settings.current()).clone();
    off.backup.enabled = false;
    settings.replace(off);
    assert!(scheduler.get_job(BACKUP_JOB_ID).await.is_err());
    store.close().await;
}
