//! The PostgreSQL store and event bus, for several processes (a server and
//! `mediadl worker`s, possibly on other machines) sharing one archive.
//!
//! Queue items are claimed with one `UPDATE … WHERE id IN (SELECT … FOR
//! UPDATE SKIP LOCKED) RETURNING …` statement, so concurrent workers never
//! take the same item and never wait for each other's locks. Every later
//! write by a worker names its lease token and is refused with
//! `LeaseLost` once the lease is gone.

mod backup;
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

use std::sync::Arc;
use std::time::Duration;

use mediadl::StoreError;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use backup::restore_postgres;
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
    /// Whether the pool pings a connection before handing it out. Off by
    /// default: the ping is a second round trip on every operation, and a
    /// connection that died while idle fails its next operation with
    /// `Unavailable` instead, which callers retry.
    pub test_before_acquire: bool,
    /// Commit the workers' lease transitions (claim, renew, progress,
    /// complete, fail, release, requeue) without waiting for the WAL flush
    /// (`synchronous_commit = off` on a second pool). Several times the
    /// claim + complete throughput; the price is that a PostgreSQL crash
    /// (not an application crash) can forget the last fraction of a
    /// second of those transitions. That is safe by construction: a
    /// forgotten claim makes the item claimable again and the old worker's
    /// writes fail with `LeaseLost`; a forgotten completion puts the item
    /// back after its lease, and its downloads — recorded durably before
    /// completion — are then "already have it". Enqueues, downloads and
    /// every other write stay durable either way.
    pub asynchronous_lease_commits: bool,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
            test_before_acquire: false,
            asynchronous_lease_commits: false,
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
    /// The pool for lease transitions: `pool` itself, or a second pool
    /// with asynchronous commits (see [`PgStoreOptions`]).
    lease_pool: PgPool,
    /// Whether `lease_pool` is a pool of its own (counted apart in `/metrics`).
    separate_lease_pool: bool,

    /// The URL connected to (`pg_dump` needs it); `None` from a bare pool.
    database_url: Option<Arc<str>>,
}

impl PgStore {
    /// Connects with the default options and applies pending migrations.
    ///
    /// # Errors
    ///
    /// As [`PgStore::connect_with`].
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::connect_with(database_url, PgStoreOptions::default()).await
    }

    /// Connects with `options`; applies pending migrations unless told not to.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a malformed URL, [`StoreError::Unavailable`]
    /// when the server cannot be reached (the message names it, without the
    /// password), and the errors of [`PgStore::migrate`].
    pub async fn connect_with(
        database_url: &str,
        options: PgStoreOptions,
    ) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = database_url.parse().map_err(|err| {
            StoreError::Invalid(format!("invalid PostgreSQL URL {database_url:?}: {err}"))
        })?;
        let connect = connect.application_name("mediadl");
        let pool_options = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(options.test_before_acquire);
        let unavailable = |err| match map_err(err) {
            StoreError::Unavailable(message) => StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {message}",
                redact_url(database_url)
            )),
            other => other,
        };
        let pool = pool_options
            .clone()
            .connect_with(connect.clone())
            .await
            .map_err(unavailable)?;
        let lease_pool = if options.asynchronous_lease_commits {
            pool_options.connect_lazy_with(connect.options([("synchronous_commit", "off")]))
        } else {
            pool.clone()
        };
        let store = Self {
            pool,
            lease_pool,
            separate_lease_pool: options.asynchronous_lease_commits,

            database_url: Some(Arc::from(database_url)),
        };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// A store over an existing pool (migrations are the caller's business:
    /// see [`PgStore::migrate`]).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            lease_pool: pool.clone(),
            pool,
            separate_lease_pool: false,

            database_url: None,
        }
    }

    /// Applies the migrations this build ships that the database lacks.
    /// Concurrent callers are serialised by sqlx's advisory lock. A
    /// database migrated by a newer build is refused with a clear error.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] for a database migrated by a newer or a
    /// different build, or left half-migrated; [`StoreError::Unavailable`]
    /// when the connection fails.
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
        self.lease_pool.close().await;
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
