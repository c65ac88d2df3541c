//! SQL stores for mediadl: [`Store`](mediadl::Store) on an embedded
//! SQLite file (feature `sqlite`, the default) or on PostgreSQL (feature
//! `postgres`, with [`PgEventBus`] carrying events between processes over
//! `LISTEN`/`NOTIFY`). Both apply their embedded migrations when opened and
//! pass the core's store conformance suite, so the engine, scheduler and
//! server behave the same on either.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use mediadl::Store;
//! use mediadl_store::SqliteStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("mediadl.db")).await?);
//! // Hand `store` to the engine, the scheduler and the server.
//! assert_eq!(store.count_users().await?, 0);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```

pub mod private;
mod restore;
pub use restore::RestoreError;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::{
    GalleryDlArchiveReader, MIGRATOR as SQLITE_MIGRATOR, SqliteStore, SqliteStoreOptions,
    restore_sqlite,
};

#[cfg(feature = "postgres")]
mod postgres;
/// Test helpers (feature `testing`): a fresh PostgreSQL database per test.
#[cfg(feature = "testing")]
pub use postgres::testing;
#[cfg(feature = "postgres")]
pub use postgres::{PgEventBus, PgEventBusOptions, PgStore, PgStoreOptions, restore_postgres};

/// What `/metrics` shows of one of a store's connection pools.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn pool_usage<DB: sqlx::Database>(
    name: &'static str,
    pool: &sqlx::Pool<DB>,
) -> mediadl::metrics::PoolUsage {
    mediadl::metrics::PoolUsage {
        pool: name,
        open: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    }
}
