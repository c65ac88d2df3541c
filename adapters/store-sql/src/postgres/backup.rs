//! Online snapshots (`pg_dump`) and restores (`pg_restore`) of the
//! PostgreSQL database, through PostgreSQL's own client programs: they
//! must be on `PATH`, in a version at least the server's.

use std::path::Path;
use std::process::Stdio;

use mediadl::StoreError;
use mediadl::backup::{DatabaseSnapshot, Manifest};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::error::map_err;
use super::{MIGRATOR, PgStore, PgStoreOptions, redact_url, url_without_password};
use crate::restore::{self, DATA_TABLES, RestoreError};

/// The snapshot's file name inside the archive (`pg_dump` custom format).
const SNAPSHOT_NAME: &str = "mediadl.pgdump";

/// Runs a PostgreSQL client program against `database_url`, the password
/// passed in `PGPASSWORD` so it never shows in the process list. Returns
/// what it wrote to standard error when it fails.
async fn run_tool(program: &str, args: &[&str], database_url: &str) -> Result<(), String> {
    let target =
        url_without_password(database_url).ok_or_else(|| "unparseable database URL".to_owned())?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .arg("--dbname")
        .arg(&target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = password_of(database_url) {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{program} is not installed (not found on PATH): install PostgreSQL's client \
                 programs in a version at least the server's (Debian/Ubuntu: \
                 `apt-get install postgresql-client`)"
            )
        } else {
            format!("cannot run {program}: {err}")
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "{program} failed ({}) on {}: {}",
        output.status,
        redact_url(database_url),
        stderr.trim()
    ))
}

/// The percent-decoded password of a `postgres://user:password@…` URL.
fn password_of(database_url: &str) -> Option<String> {
    let (_, rest) = database_url.split_once("://")?;
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    percent_encoding::percent_decode_str(password)
        .decode_utf8()
        .ok()
        .map(|password| password.into_owned())
}

/// The newest migration applied, 0 for a database without migrations.
async fn schema_version(conn: &mut PgConnection) -> Result<i64, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)
}

impl PgStore {
    /// `pg_dump --format=custom` of the database: one consistent snapshot
    /// (a repeatable-read transaction) while the store stays in use.
    pub(crate) async fn snapshot_into(&self, dir: &Path) -> Result<DatabaseSnapshot, StoreError> {
        let url = self.database_url.as_deref().ok_or_else(|| {
            StoreError::Invalid(
                "this store was made from a pool without its URL; connect with PgStore::connect to back it up".into(),
            )
        })?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let schema_version = schema_version(&mut conn).await?;
        drop(conn);
        let file = dir.join(SNAPSHOT_NAME);
        // pg_dump keeps an existing file's mode: made private first.
        crate::private::create_private_file(&file).map_err(|err| {
            StoreError::Unavailable(format!("cannot write {}: {err}", file.display()))
        })?;
        let path = file.to_string_lossy();
        run_tool(
            "pg_dump",
            &[
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--file",
                &path,
            ],
            url,
        )
        .await
        .map_err(StoreError::Unavailable)?;
        Ok(DatabaseSnapshot {
            file,
            backend: "postgres".into(),
            schema_version,
        })
    }
}

/// Restores the `pg_dump` archive `dump` of a backup (its `manifest`)
/// into the database at `database_url`.
///
/// The target is checked first: one holding data or with other sessions
/// open (a running server, workers) is replaced only with `force`, and one
/// migrated past the backup's schema never (restore into an empty database
/// instead). `pg_restore` then runs as a single transaction, so a failure
/// leaves the database as it was; afterwards the store is opened once,
/// which migrates an older backup's schema forward.
///
/// # Errors
///
/// [`RestoreError::WrongBackend`] / [`RestoreError::NewerSchema`] for an
/// archive this build cannot restore here; [`RestoreError::Live`] or
/// [`RestoreError::Blocked`] for a target refused as above;
/// [`RestoreError::Tool`] when `pg_restore` is missing or fails;
/// [`RestoreError::Store`] when the database cannot be reached.
pub async fn restore_postgres(
    dump: &Path,
    manifest: &Manifest,
    database_url: &str,
    force: bool,
) -> Result<(), RestoreError> {
    restore::check_manifest(manifest, "postgres", &MIGRATOR)?;
    check_target(database_url, manifest.schema_version, force).await?;
    let path = dump.to_string_lossy();
    run_tool(
        "pg_restore",
        &[
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            &path,
        ],
        database_url,
    )
    .await
    .map_err(RestoreError::Tool)?;
    let store = PgStore::connect_with(database_url, PgStoreOptions::default()).await?;
    store.close().await;
    Ok(())
}

async fn check_target(
    database_url: &str,
    backup_schema: i64,
    force: bool,
) -> Result<(), RestoreError> {
    let target = redact_url(database_url);
    let mut conn = PgConnection::connect(database_url).await.map_err(map_err)?;
    let checked = async {
        let current = schema_version(&mut conn).await?;
        if current > backup_schema {
            return Err(RestoreError::Blocked {
                target: target.clone(),
                reason: format!(
                    "the database has schema version {current}, newer than the backup's \
                     {backup_schema}; restore into an empty database"
                ),
            });
        }
        let mut counts = Vec::new();
        for (table, count) in DATA_TABLES {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table)
                .fetch_one(&mut conn)
                .await
                .map_err(map_err)?;
            if exists {
                let rows: i64 = sqlx::query_scalar(count)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(map_err)?;
                counts.push((table, rows));
            }
        }
        let sessions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(map_err)?;
        Ok((counts, sessions))
    }
    .await;
    let _ = conn.close().await;
    let (counts, sessions) = checked?;
    if force {
        return Ok(());
    }
    let mut reasons: Vec<String> = restore::describe_rows(&counts).into_iter().collect();
    if sessions > 0 {
        reasons.push(format!(
            "{sessions} other session(s) are connected (a running server or workers?)"
        ));
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(RestoreError::Live {
        target,
        reason: reasons.join("; "),
    })
}
