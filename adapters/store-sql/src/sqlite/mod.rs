//! [`SqliteStore`]: the embedded store, one database file.
//!
//! Writes go through one connection (a pool of one), so in-process writers
//! queue on an async semaphore instead of spinning in SQLite's busy
//! handler; reads use a pool of their own and run beside the writer (WAL).
//! Other processes on the same file are serialised by `BEGIN IMMEDIATE` and
//! `busy_timeout`. Every queue transition is a single `UPDATE … RETURNING`
//! statement, so a claim can never hand one item to two workers.

mod backup;
mod downloads;
mod gallerydl;
mod jobs;
mod misc;
mod queue;
mod rows;
mod users;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use backup::restore_sqlite;
pub use gallerydl::GalleryDlArchiveReader;
use mediadl::StoreError;
use sqlx::Sqlite;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The embedded migrations, applied by [`SqliteStore::open`] and `mediadl migrate`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Page cache of each read connection (`PRAGMA cache_size`; negative
/// means KiB): 8 MiB, against the writer's 32 MiB.
const READER_CACHE_SIZE: &str = "-8000";
/// Read connections unused this long are closed.
const READER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How to open a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStoreOptions {
    /// How long a statement waits for another process's lock before failing
    /// with [`StoreError::Unavailable`].
    pub busy_timeout: Duration,
    /// Connections for reads (writes always use one connection).
    pub read_connections: u32,
    /// Apply pending migrations when opening (the default); when false, an
    /// out-of-date database is an error.
    pub migrate: bool,
    /// Create the file when it does not exist.
    pub create_if_missing: bool,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(10),
            read_connections: 4,
            migrate: true,
            create_if_missing: true,
        }
    }
}

/// The SQLite implementation of every [`Store`](mediadl::Store) capability.
///
/// One file in WAL mode: writes go through a single connection (SQLite
/// allows one writer), reads through a small pool. Several processes may
/// open the same file; a write waits up to
/// [`busy_timeout`](SqliteStoreOptions::busy_timeout) for the lock.
///
/// ```
/// use chrono::Utc;
/// use mediadl::model::{NewQueueItem, QueueStatus};
/// use mediadl::store::QueueRepo;
/// use mediadl_store::SqliteStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("mediadl.db")).await?;
/// let item = NewQueueItem::new("https://example.org/a.jpg", "direct", "example.org", "file");
/// let queued = store.enqueue(item, Utc::now()).await?;
/// assert_eq!(store.get_queue_item(queued.id).await?.status, QueueStatus::Pending);
/// store.close().await;
///
/// // Opening again finds the item: the file is the database.
/// let store = SqliteStore::open(dir.path().join("mediadl.db")).await?;
/// assert_eq!(store.get_queue_item(queued.id).await?.url, "https://example.org/a.jpg");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with default
    /// options and applies pending migrations.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open_with`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteStoreOptions::default()).await
    }

    /// Opens a `sqlite://path` (or `sqlite:path`) URL.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a URL of another scheme or an in-memory
    /// database; otherwise as [`SqliteStore::open_with`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(Self::url_path(url)?).await
    }

    /// The database file a `sqlite://path` (or `sqlite:path`) URL names.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a URL of another scheme or an in-memory
    /// database.
    pub fn url_path(url: &str) -> Result<&Path, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Invalid(format!("{url:?} is not a sqlite: URL")))?;
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::Invalid(
                "the SQLite store needs a database file, not an in-memory database".into(),
            ));
        }
        Ok(Path::new(path))
    }

    /// Opens the database file at `path`.
    ///
    /// Fails with a clear message when the file is locked by another
    /// program ([`StoreError::Unavailable`]), is not a SQLite database or is
    /// corrupt ([`StoreError::Internal`]), or was written by a newer
    /// mediadl ([`StoreError::Invalid`]).
    ///
    /// # Errors
    ///
    /// The errors above, and [`StoreError::Unavailable`] when the file cannot
    /// be opened or created (missing directory, permissions).
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteStoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let display = path.display().to_string();
        make_private(&path, options.create_if_missing);
        let connect = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|err| StoreError::Internal(err.to_string()))?
            .filename(&path)
            .create_if_missing(options.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL: a commit is durable after the next checkpoint
            // and never corrupts; the usual choice for WAL databases.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000")
            .statement_cache_capacity(256);
        // A local file needs no liveness ping before each use; skipping it
        // saves a round trip to the connection's thread per statement.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect.clone())
            .await
            .map_err(|err| open_error(&display, err))?;
        check_readable(&writer, &display).await?;
        if options.migrate {
            MIGRATOR
                .run(&writer)
                .await
                .map_err(|err| migrate_error(&display, err))?;
        } else {
            check_schema_current(&writer, &display).await?;
        }
        // Fresh query-planner statistics when they are missing or stale.
        sqlx::query("PRAGMA optimize=0x10002")
            .execute(&writer)
            .await
            .map_err(|err| open_error(&display, err))?;
        // Reads are index lookups of a few dozen pages, so each reader
        // keeps a smaller page cache than the writer, and readers idle for a
        // minute are closed: an idle server gives their caches back.
        let reader = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .idle_timeout(READER_IDLE_TIMEOUT)
            .connect_with(
                connect
                    .create_if_missing(false)
                    .pragma("cache_size", READER_CACHE_SIZE),
            )
            .await
            .map_err(|err| open_error(&display, err))?;
        Ok(Self {
            writer,
            reader,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies pending migrations (what `mediadl migrate` does); returns the
    /// versions applied.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the database was migrated by a newer
    /// mediadl; other store errors when a migration fails (it is rolled back).
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before = applied_versions(&self.writer).await?;
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|err| migrate_error(&self.path.display().to_string(), err))?;
        let after = applied_versions(&self.writer).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// The query plan SQLite chooses for a download list query (tests and
    /// diagnostics): one line per plan step.
    ///
    /// # Errors
    ///
    /// A store error when the query cannot be planned.
    pub async fn explain_list_downloads(
        &self,
        filter: &mediadl::model::DownloadFilter,
    ) -> Result<Vec<String>, StoreError> {
        downloads::explain_list(self, filter).await
    }

    pub(crate) async fn write_conn(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        self.writer.acquire().await.map_err(map_err)
    }

    /// A write transaction that takes the database's write lock at once
    /// (`BEGIN IMMEDIATE`), so another process cannot slip in between a
    /// read and the write that depends on it.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

async fn applied_versions(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(map_err)
}

/// Reads the schema once, so a corrupt or foreign file fails at start-up
/// with a message that names it.
async fn check_readable(pool: &SqlitePool, path: &str) -> Result<(), StoreError> {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_master")
        .fetch_one(pool)
        .await
        .map(|_| ())
        .map_err(|err| open_error(path, err))
}

/// Without migrating: the database must have exactly the migrations this
/// build knows.
async fn check_schema_current(pool: &SqlitePool, path: &str) -> Result<(), StoreError> {
    let applied = applied_versions(pool).await.unwrap_or_default();
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        return Err(newer_version(path, *unknown));
    }
    if applied.len() < known.len() {
        return Err(StoreError::Invalid(format!(
            "database {path} is not migrated to this version of mediadl; run `mediadl migrate`"
        )));
    }
    Ok(())
}

fn newer_version(path: &str, version: i64) -> StoreError {
    StoreError::Invalid(format!(
        "database {path} was written by a newer version of mediadl (it has migration {version}, \
         which this build does not know); upgrade mediadl or use a backup"
    ))
}

fn migrate_error(path: &str, err: MigrateError) -> StoreError {
    match err {
        MigrateError::VersionMissing(version) => newer_version(path, version),
        MigrateError::VersionMismatch(version) => StoreError::Invalid(format!(
            "database {path}: migration {version} differs from the one this build ships; \
             the schema was changed by hand or by another build"
        )),
        MigrateError::Dirty(version) => StoreError::Internal(format!(
            "database {path}: migration {version} failed part-way earlier; restore a backup"
        )),
        MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => {
            open_error(path, err)
        }
        other => StoreError::Internal(format!("database {path}: migration failed: {other}")),
    }
}

/// Start-up errors, in words a person can act on.
/// The database file is created 0600 before SQLite opens it (SQLite gives
/// its `-wal` and `-shm` files the database's mode); an existing one, and
/// its companions, readable by others are tightened. Failures here are
/// logged, not fatal: opening the database reports a missing directory
/// better, and a file of another owner may still be usable.
fn make_private(path: &Path, create: bool) {
    if create && let Err(err) = crate::private::create_private_file(path) {
        tracing::debug!(target: "mediadl_store", path = %path.display(), error = %err, "could not create the database file");
    }
    let mut companions = [path.as_os_str().to_owned(), path.as_os_str().to_owned()];
    companions[0].push("-wal");
    companions[1].push("-shm");
    for file in std::iter::once(path).chain(companions.iter().map(Path::new)) {
        if let Err(err) = crate::private::restrict_to_owner(file) {
            tracing::warn!(target: "mediadl_store", path = %file.display(), error = %err, "could not make the database private");
        }
    }
}

fn open_error(path: &str, err: sqlx::Error) -> StoreError {
    match sqlite_code(&err) {
        Some(5 | 6) => StoreError::Unavailable(format!(
            "database {path} is locked by another program; stop it or wait, then start again"
        )),
        Some(11 | 26) => StoreError::Internal(format!(
            "database {path} is not a SQLite database or is corrupt: {err}"
        )),
        Some(14) => StoreError::Unavailable(format!(
            "cannot open database {path}: check that the directory exists and is writable ({err})"
        )),
        Some(8) => StoreError::Unavailable(format!("database {path} is read-only: {err}")),
        _ => match map_err(err) {
            StoreError::Internal(message) => {
                StoreError::Internal(format!("database {path}: {message}"))
            }
            other => other,
        },
    }
}

/// The primary SQLite result code of a database error.
fn sqlite_code(err: &sqlx::Error) -> Option<i64> {
    let code = err.as_database_error()?.code()?;
    code.parse::<i64>().ok().map(|code| code & 0xff)
}

/// Runs a statement that must change a row: when it changes none, the
/// `entity` with `id` does not exist.
pub(crate) async fn change_existing(
    statement: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
    conn: &mut sqlx::SqliteConnection,
    entity: &'static str,
    id: impl std::fmt::Display,
) -> Result<(), StoreError> {
    let changed = statement
        .execute(conn)
        .await
        .map_err(map_err)?
        .rows_affected();
    if changed == 0 {
        return Err(StoreError::not_found(entity, id));
    }
    Ok(())
}

/// Maps a driver error to the store's typed errors.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    if let Some(db) = err.as_database_error() {
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return StoreError::Conflict(format!("already exists: {}", db.message()));
            }
            ErrorKind::ForeignKeyViolation => {
                return StoreError::NotFound {
                    entity: "referenced row",
                    id: db.message().to_string(),
                };
            }
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                return StoreError::Invalid(db.message().to_string());
            }
            _ => {}
        }
        return match sqlite_code(&err) {
            Some(5 | 6) => StoreError::Unavailable(format!("database is busy: {}", db.message())),
            Some(10 | 13 | 14) => StoreError::Unavailable(db.message().to_string()),
            _ => StoreError::Internal(db.message().to_string()),
        };
    }
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}
