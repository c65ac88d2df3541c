//! Restoring a backup archive's database (see `mediadl::backup`): the
//! checks both backends share and the error a restore reports.

use mediadl::StoreError;
use mediadl::backup::Manifest;

/// Why a restore was refused or failed. Every refusal happens before the
/// live database is touched.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The archive holds the other backend's database.
    #[error(
        "the backup holds a {found} database and the target is {expected}; restore it into a {found} database"
    )]
    WrongBackend {
        /// The archive's backend.
        found: String,
        /// The target's backend.
        expected: &'static str,
    },
    /// The archive's schema is newer than this build knows.
    #[error(
        "the backup was made by a newer mediadl (schema version {found}, this build knows up to {supported}); upgrade mediadl to restore it"
    )]
    NewerSchema {
        /// The archive's schema version.
        found: i64,
        /// The newest migration of this build.
        supported: i64,
    },
    /// The target holds data or is in use and `--force` was not given.
    #[error("refusing to overwrite {target}: {reason}; pass --force to replace it")]
    Live {
        /// The database (URL without password, or file).
        target: String,
        /// What was found.
        reason: String,
    },
    /// The target cannot be replaced now, even by force.
    #[error("cannot restore into {target}: {reason}")]
    Blocked {
        /// The database (URL without password, or file).
        target: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The archive's database failed the checks after unpacking.
    #[error("the backup's database failed its checks: {0}")]
    Damaged(String),
    /// A PostgreSQL client program is missing or failed.
    #[error("{0}")]
    Tool(String),
    /// The store failed while checking or opening the database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The backend and schema checks every restore makes first.
pub(crate) fn check_manifest(
    manifest: &Manifest,
    expected: &'static str,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), RestoreError> {
    if manifest.backend != expected {
        return Err(RestoreError::WrongBackend {
            found: manifest.backend.clone(),
            expected,
        });
    }
    let supported = latest_migration(migrator);
    if manifest.schema_version > supported {
        return Err(RestoreError::NewerSchema {
            found: manifest.schema_version,
            supported,
        });
    }
    Ok(())
}

/// The newest migration `migrator` ships.
pub(crate) fn latest_migration(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The rows that make a database "in use" for a restore: a person's
/// accounts, the archive's records, queued work and jobs (each table with
/// the statement counting it; the same SQL on both backends).
pub(crate) const DATA_TABLES: [(&str, &str); 4] = [
    ("users", "SELECT count(*) FROM users"),
    ("downloads", "SELECT count(*) FROM downloads"),
    ("queue", "SELECT count(*) FROM queue"),
    ("jobs", "SELECT count(*) FROM jobs"),
];

/// "3 users, 120 downloads" for the tables that hold rows.
pub(crate) fn describe_rows(counts: &[(&str, i64)]) -> Option<String> {
    let held: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} {table}"))
        .collect();
    (!held.is_empty()).then(|| format!("it holds data ({})", held.join(", ")))
}
