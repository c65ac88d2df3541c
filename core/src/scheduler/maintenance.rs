//! Built-in housekeeping jobs, listed with the others and disable-able
//! like them: the download clean-up (`general.auto_cleanup_days`), the
//! log retention (`logs.retention_days`) and the backup (`backup.enabled`).
//!
//! A built-in job exists for users only while its setting is on: with the
//! setting off it is left out of every listing, lookup and tick (so never
//! the next scheduled task), while its row keeps the schedule a person gave
//! it and its run history for when the setting comes back on.

use chrono::{DateTime, Duration, Utc};

use crate::backup::{self, BackupSources};
use crate::error::Error;
use crate::model::{CatchUp, Job, JobConfig, JobKind, JobSpec, Settings};
use crate::storage::MediaStorage;
use crate::store::Store;

/// Id of the job removing downloads older than `general.auto_cleanup_days`.
pub const AUTO_CLEANUP_JOB_ID: &str = "maintenance-auto-cleanup";
/// Id of the job removing stored logs older than `logs.retention_days`.
pub const LOG_RETENTION_JOB_ID: &str = "maintenance-log-retention";
/// Id of the job writing a backup archive while `backup.enabled` is on.
pub const BACKUP_JOB_ID: &str = "maintenance-backup";

/// Records removed per store round trip.
const BATCH: u32 = 500;

/// The built-in jobs as first created (daily, at night UTC).
pub(crate) fn builtin_jobs(now: DateTime<Utc>) -> Vec<Job> {
    let job = |id: &str, name: &str, schedule: &str| {
        let spec = JobSpec {
            name: name.to_owned(),
            kind: JobKind::Maintenance,
            platform: "system".to_owned(),
            source: id.to_owned(),
            content_type: "maintenance".to_owned(),
            schedule: schedule.to_owned(),
            timezone: None,
            enabled: true,
            catch_up: CatchUp::Once,
            config: JobConfig::default(),
            monitor_until: None,
        };
        Job::new(id, spec, now)
    };
    vec![
        job(
            AUTO_CLEANUP_JOB_ID,
            "Remove old downloads (general.auto_cleanup_days)",
            "30 3 * * *",
        ),
        job(
            LOG_RETENTION_JOB_ID,
            "Remove old logs (logs.retention_days)",
            "45 3 * * *",
        ),
        job(BACKUP_JOB_ID, "Back up the database (backup)", "0 4 * * *"),
    ]
}

/// Whether the built-in job `job_id` has work to do under `settings`
/// (an id this build does not know has none).
pub(crate) fn is_active(job_id: &str, settings: &Settings) -> bool {
    match job_id {
        AUTO_CLEANUP_JOB_ID => settings.general.auto_cleanup_days > 0,
        LOG_RETENTION_JOB_ID => settings.logs.retention_days > 0,
        BACKUP_JOB_ID => settings.backup.enabled,
        _ => false,
    }
}

/// Runs the maintenance job `job_id`; returns how many records it removed
/// (for the backup: archives written, so 1).
pub(crate) async fn run_maintenance(
    job_id: &str,
    store: &dyn Store,
    settings: &Settings,
    backups: Option<&BackupSources>,
    storage: Option<&dyn MediaStorage>,
    now: DateTime<Utc>,
) -> Result<u32, Error> {
    match job_id {
        AUTO_CLEANUP_JOB_ID => cleanup_downloads(store, storage, settings, now).await,
        BACKUP_JOB_ID => {
            let sources = backups.ok_or_else(|| {
                Error::invalid(
                    "backup.enabled",
                    "this process was started without a data directory to back up",
                )
            })?;
            let (archive, removed) =
                backup::run_scheduled(store, sources, &settings.backup, now).await?;
            tracing::info!(archive = %archive.display(), removed_old = removed, "backup written");
            Ok(1)
        }
        LOG_RETENTION_JOB_ID => {
            let days = settings.logs.retention_days;
            if days == 0 {
                return Ok(0);
            }
            let deleted = store
                .delete_logs_before(now - Duration::days(i64::from(days)))
                .await?;
            Ok(u32::try_from(deleted.entries).unwrap_or(u32::MAX))
        }
        other => Err(Error::invalid(
            "id",
            format!("{other:?} is not a built-in maintenance job"),
        )),
    }
}

/// Removes download records older than `general.auto_cleanup_days` (0:
/// keep everything), and their files when `auto_cleanup_delete_files` is
/// set. A file that a newer record still points at (a duplicate kept
/// after the cut-off) stays, and so does one outside the storage.
async fn cleanup_downloads(
    store: &dyn Store,
    storage: Option<&dyn MediaStorage>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<u32, Error> {
    let days = settings.general.auto_cleanup_days;
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now - Duration::days(i64::from(days));
    let delete_files = match storage {
        Some(storage) if settings.general.auto_cleanup_delete_files => Some(storage),
        Some(_) => None,
        None if settings.general.auto_cleanup_delete_files => {
            return Err(Error::invalid(
                "general.auto_cleanup_delete_files",
                "this process was started without the media storage to delete files from",
            ));
        }
        None => None,
    };
    let mut removed = 0u32;
    loop {
        let batch = store.downloads_before(cutoff, BATCH).await?;
        let full = batch.len() == BATCH as usize;
        if batch.is_empty() {
            break;
        }
        for download in batch {
            if let Some(storage) = delete_files
                && download.duplicate_of.is_none()
                && let Some(key) = download
                    .file_path
                    .as_deref()
                    .and_then(|p| storage.key_of(p))
            {
                let still_used = store
                    .duplicates_of(download.id)
                    .await?
                    .iter()
                    .any(|dup| dup.download_date >= cutoff);
                if !still_used {
                    let companions = crate::downloads::recorded_companions(&download.metadata);
                    crate::downloads::remove_with_companions(storage, &key, &companions).await?;
                }
            }
            match store.delete_download(download.id).await {
                Ok(_) => removed += 1,
                // Removed meanwhile by a user or another instance.
                Err(crate::StoreError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if !full {
            break;
        }
    }
    Ok(removed)
}
