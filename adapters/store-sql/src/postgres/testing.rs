//! Test helpers: a fresh PostgreSQL database per test, dropped afterwards.
//!
//! The server comes from `MEDIADL_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable server is
//! an error, never a reason to skip: a test that silently passes without
//! its database proves nothing.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The server tests use when `MEDIADL_TEST_DATABASE_URL` is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administrative URL tests create databases through.
pub fn test_server_url() -> String {
    std::env::var("MEDIADL_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// Why a test database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestDatabaseError {
    /// The URL does not parse as a PostgreSQL connection URL.
    #[error("MEDIADL_TEST_DATABASE_URL {url:?} is not a PostgreSQL URL: {source}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// The driver's parse error.
        #[source]
        source: sqlx::Error,
    },
    /// No connection to the server could be made.
    #[error(
        "PostgreSQL for tests is unreachable at {url} ({source}); start it (e.g. \
         `pg_ctlcluster 15 main start`) or set MEDIADL_TEST_DATABASE_URL"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The connection error.
        #[source]
        source: sqlx::Error,
    },
    /// The server refused `CREATE DATABASE` (permissions, disk).
    #[error("cannot create test database {name}: {source}")]
    Create {
        /// The database that was to be created.
        name: String,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
}

/// A database created for one test; dropped (with any connections still
/// open to it) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin: PgConnectOptions,
}

impl TestDatabase {
    /// The URL of the fresh database (hand it to `PgStore::connect`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name (`mediadl_test_<32 hex digits>`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's async runtime, which must not be
        // blocked on itself: a plain thread with its own runtime does the
        // (quick) DROP and is joined.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(runtime) = runtime else { return };
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await
                    {
                        eprintln!("could not drop test database {name}: {err}");
                    }
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Creates a database with a random name on the test server and returns
/// it; fails (never skips) when the server is unreachable.
///
/// ```
/// use mediadl::store::UserRepo;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let db = mediadl_store::testing::fresh_pg_database().await?;
/// let store = mediadl_store::PgStore::connect(db.url()).await?;
/// assert_eq!(store.count_users().await?, 0, "a fresh, migrated database");
/// store.close().await;
/// // Dropping `db` drops the database.
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`TestDatabaseError`] when `MEDIADL_TEST_DATABASE_URL` is malformed,
/// the server cannot be reached, or the database cannot be created.
pub async fn fresh_pg_database() -> Result<TestDatabase, TestDatabaseError> {
    let server = test_server_url();
    let admin: PgConnectOptions = server.parse().map_err(|source| TestDatabaseError::BadUrl {
        url: server.clone(),
        source,
    })?;
    let admin = admin.application_name("mediadl-tests");
    let mut conn = admin
        .connect()
        .await
        .map_err(|source| TestDatabaseError::Unreachable {
            url: server.clone(),
            source,
        })?;
    let name = format!("mediadl_test_{}", uuid::Uuid::new_v4().simple());
    // The name is generated here (hex digits only), so it is safe to splice.
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|source| TestDatabaseError::Create {
            name: name.clone(),
            source,
        })?;
    let _ = conn.close().await;
    let url = with_database(&server, &name);
    Ok(TestDatabase { name, url, admin })
}

/// `url` with its path (the database name) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
