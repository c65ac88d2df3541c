//! Online snapshots (`VACUUM INTO`) and restores of the SQLite file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use mediadl::StoreError;
use mediadl::backup::{DatabaseSnapshot, Manifest};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::{MIGRATOR, SqliteStore, SqliteStoreOptions, applied_versions, map_err, sqlite_code};
use crate::restore::{self, DATA_TABLES, RestoreError};

/// The snapshot's file name inside the archive.
const SNAPSHOT_NAME: &str = "mediadl.db";

impl SqliteStore {
    /// A consistent copy of the database while it is in use: `VACUUM INTO`
    /// runs in one read transaction beside the writer (WAL), and the copy
    /// is compacted, without the WAL.
    pub(crate) async fn snapshot_into(&self, dir: &Path) -> Result<DatabaseSnapshot, StoreError> {
        let file = dir.join(SNAPSHOT_NAME);
        let path = file.to_str().ok_or_else(|| {
            StoreError::Invalid(format!("{} is not a UTF-8 path", file.display()))
        })?;
        // VACUUM INTO takes an empty file's mode: made private first.
        crate::private::create_private_file(&file).map_err(|err| {
            StoreError::Unavailable(format!("cannot write {}: {err}", file.display()))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        let schema_version = applied_versions(&self.reader)
            .await?
            .into_iter()
            .max()
            .unwrap_or(0);
        Ok(DatabaseSnapshot {
            file,
            backend: "sqlite".into(),
            schema_version,
        })
    }

    /// The integrity checks a restored database passes before it replaces
    /// the live one: SQLite's own page and index check and no row pointing
    /// at a missing one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] naming the first problem found.
    pub async fn check_integrity(&self) -> Result<(), StoreError> {
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.writer)
            .await
            .map_err(map_err)?;
        if integrity != ["ok"] {
            return Err(StoreError::Internal(format!(
                "integrity check: {}",
                integrity.join("; ")
            )));
        }
        let dangling = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&self.writer)
            .await
            .map_err(map_err)?;
        if !dangling.is_empty() {
            return Err(StoreError::Internal(format!(
                "{} rows point at rows that do not exist",
                dangling.len()
            )));
        }
        Ok(())
    }
}

/// A staged copy of the restored database, removed unless it was put in place.
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        for file in companions(&self.0).iter().chain([&self.0]) {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The `-wal` and `-shm` files of a database file.
fn companions(path: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

fn io_error(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let context = format!("{context} {}", path.display());
    move |source| RestoreError::Io { context, source }
}

/// Restores the SQLite `snapshot` of a backup (its `manifest`) to the
/// database file `target`.
///
/// The snapshot is copied beside `target`, opened (older schemas are
/// migrated forward), checked with [`SqliteStore::check_integrity`] and
/// only then renamed over `target`. An existing `target` that holds data
/// is replaced only with `force`; one another process has open (a running
/// server) never is, since that process would go on writing the old file.
///
/// # Errors
///
/// [`RestoreError::WrongBackend`] / [`RestoreError::NewerSchema`] for an
/// archive this build cannot restore here; [`RestoreError::Damaged`] when
/// the snapshot fails its checks; [`RestoreError::Live`] for a target
/// holding data without `force`; [`RestoreError::Blocked`] for a target in
/// use; [`RestoreError::Io`] for file errors. `target` is unchanged after
/// any of them.
pub async fn restore_sqlite(
    snapshot: &Path,
    manifest: &Manifest,
    target: &Path,
    force: bool,
) -> Result<(), RestoreError> {
    restore::check_manifest(manifest, "sqlite", &MIGRATOR)?;
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staged = Staged(dir.join(format!(
        ".mediadl-restore-{}.db",
        uuid::Uuid::new_v4().simple()
    )));
    std::fs::copy(snapshot, &staged.0).map_err(io_error("staging the database in", dir))?;
    let store = SqliteStore::open_with(
        &staged.0,
        SqliteStoreOptions {
            create_if_missing: false,
            ..SqliteStoreOptions::default()
        },
    )
    .await
    .map_err(|err| RestoreError::Damaged(err.to_string()))?;
    let checked = store.check_integrity().await;
    store.close().await;
    checked.map_err(|err| RestoreError::Damaged(err.to_string()))?;

    if target.exists() {
        check_target(target, force).await?;
    }
    for file in companions(target) {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("removing", &file)(err)),
        }
    }
    std::fs::rename(&staged.0, target).map_err(io_error("replacing", target))?;
    Ok(())
}

/// Refuses a target another process has open, and one holding data
/// unless `force`.
async fn check_target(target: &Path, force: bool) -> Result<(), RestoreError> {
    let name = target.display().to_string();
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|err| RestoreError::Store(StoreError::Internal(err.to_string())))?
        .filename(target)
        .create_if_missing(false)
        .busy_timeout(Duration::ZERO)
        // An exclusive lock cannot be had while another connection, in
        // this process or any other, has the file open in WAL mode.
        .locking_mode(sqlx::sqlite::SqliteLockingMode::Exclusive);
    let mut conn = options
        .connect()
        .await
        .map_err(|err| blocked_or_store(&name, err))?;
    let checked = async {
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .map_err(|err| blocked_or_store(&name, err))?;
        let mut counts = Vec::new();
        for (table, count) in DATA_TABLES {
            let exists: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .map_err(map_err)?;
            if exists > 0 {
                let rows: i64 = sqlx::query_scalar(count)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(map_err)?;
                counts.push((table, rows));
            }
        }
        sqlx::query("ROLLBACK")
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
        Ok::<_, RestoreError>(counts)
    }
    .await;
    let _ = conn.close().await;
    let counts = checked?;
    match restore::describe_rows(&counts) {
        Some(reason) if !force => Err(RestoreError::Live {
            target: name,
            reason,
        }),
        _ => Ok(()),
    }
}

fn blocked_or_store(target: &str, err: sqlx::Error) -> RestoreError {
    match sqlite_code(&err) {
        Some(5 | 6) => RestoreError::Blocked {
            target: target.to_owned(),
            reason: "another process has it open (a running `mediadl serve` or worker?); \
                     stop it, then restore"
                .into(),
        },
        _ => RestoreError::Store(map_err(err)),
    }
}
