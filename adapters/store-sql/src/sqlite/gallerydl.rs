//! Reading gallery-dl's archive database for `mediadl import`: the one
//! piece of the import that speaks SQL, so it lives here (core defines
//! [`ArchiveDatabaseReader`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mediadl::import::{ArchiveDatabaseReader, ArchivePages};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

/// Opens gallery-dl archive databases read-only (gallery-dl may keep
/// writing to one while it is imported: a busy database is waited for).
/// The entries are in the table `archive`, column `entry`, gallery-dl's
/// default layout (`archive-table` unset).
#[derive(Debug, Default, Clone, Copy)]
pub struct GalleryDlArchiveReader;

#[async_trait]
impl ArchiveDatabaseReader for GalleryDlArchiveReader {
    async fn open(&self, path: &Path) -> Result<Box<dyn ArchivePages>, String> {
        let mut conn = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|err| err.to_string())?
            .filename(path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|err| reason(&err))?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'archive'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|err| reason(&err))?;
        if tables == 0 {
            let _ = conn.close().await;
            return Err("it has no `archive` table".into());
        }
        Ok(Box::new(Pages { conn }))
    }
}

/// An open archive database.
struct Pages {
    conn: SqliteConnection,
}

#[async_trait]
impl ArchivePages for Pages {
    async fn count(&mut self) -> Result<u64, String> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM archive")
            .fetch_one(&mut self.conn)
            .await
            .map_err(|err| reason(&err))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn next_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        // Keyset paging over the primary key: each page is one index range.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<Option<String>> = match after {
            None => {
                sqlx::query_scalar("SELECT entry FROM archive ORDER BY entry LIMIT $1")
                    .bind(limit)
                    .fetch_all(&mut self.conn)
                    .await
            }
            Some(after) => {
                sqlx::query_scalar(
                    "SELECT entry FROM archive WHERE entry > $1 ORDER BY entry LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&mut self.conn)
                .await
            }
        }
        .map_err(|err| reason(&err))?;
        Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// SQLite's own words for what went wrong ("file is not a database",
/// "database disk image is malformed").
fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}
