//! The PostgreSQL store and event bus, for several processes (a server and
//! `mediadl worker`s, possibly on other machines) sharing one archive.
//!
//! Queue items are claimed with one `UPDATE … WHERE id IN (SELECT … FOR
//! UPDATE SKIP LOCKED) RETURNING …` statement, so concurrent workers never
//! take the same item and never wait for each other's locks. Every later
//! write by a worker names its lease token and is refused with
//! `LeaseLost` once the lease is gone.

mod downloads;
mod error;
mod events;
mod jobs;
mod queue;
mod rows;
mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod users;

use std::time::Duration;

use mediadl::StoreError;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use events::{PgEventBus, PgEventBusOptions};

use error::{map_err, map_migrate_err};

/// The embedded PostgreSQL migrations (`migrations/postgres`).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How a [`PgStore`] connects.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    /// Connections in the pool (each worker task uses one at a time).
    pub max_connections: u32,
    /// How long an operation waits for a free connection before failing
    /// with `Unavailable`.
    pub acquire_timeout: Duration,
    /// Whether to apply pending migrations at connect.
    pub migrate: bool,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
        }
    }
}

/// Every store capability on PostgreSQL (`postgres://…` URLs).
///
/// Cloning is cheap: clones share the connection pool. A lost connection
/// surfaces as `StoreError::Unavailable` for the operations it was serving;
/// the pool opens a new connection for the next one.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects with the default options and applies pending migrations.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::connect_with(database_url, PgStoreOptions::default()).await
    }

    /// Connects with `options`; applies pending migrations unless told not to.
    pub async fn connect_with(
        database_url: &str,
        options: PgStoreOptions,
    ) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = database_url.parse().map_err(|err| {
            StoreError::Invalid(format!("invalid PostgreSQL URL {database_url:?}: {err}"))
        })?;
        let connect = connect.application_name("mediadl");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|err| match map_err(err) {
                StoreError::Unavailable(message) => StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}: {message}",
                    redact_url(database_url)
                )),
                other => other,
            })?;
        let store = Self { pool };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// A store over an existing pool (migrations are the caller's business:
    /// see [`PgStore::migrate`]).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies the migrations this build ships that the database lacks.
    /// Concurrent callers are serialised by sqlx's advisory lock. A
    /// database migrated by a newer build is refused with a clear error.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(map_migrate_err)
    }

    /// The connection pool (for other adapters sharing the database).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection; later operations fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact_url(database_url: &str) -> String {
    match url_without_password(database_url) {
        Some(redacted) => redacted,
        None => "<unparseable URL>".into(),
    }
}

fn url_without_password(database_url: &str) -> Option<String> {
    let (scheme, rest) = database_url.split_once("://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    Some(format!("{scheme}://{host}/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact_url("postgres://me:secret@db:5432/archive"),
            "postgres://me@db:5432/archive"
        );
        assert_eq!(redact_url("postgres://db/archive"), "postgres://db/archive");
    }

    #[tokio::test]
    async fn a_bad_url_is_invalid_and_an_unreachable_server_unavailable() {
        let err = PgStore::connect("not a url").await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        let options = PgStoreOptions {
            acquire_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        // Port 1 on loopback refuses connections.
        let err = PgStore::connect_with("postgres://postgres@127.0.0.1:1/none", options)
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
}
