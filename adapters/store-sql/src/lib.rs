//! SQL stores for mediadl.

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::{MIGRATOR as SQLITE_MIGRATOR, SqliteStore, SqliteStoreOptions};

#[cfg(feature = "postgres")]
mod postgres;
/// Test helpers (feature `testing`): a fresh PostgreSQL database per test.
#[cfg(feature = "testing")]
pub use postgres::testing;
#[cfg(feature = "postgres")]
pub use postgres::{PgEventBus, PgEventBusOptions, PgStore, PgStoreOptions};
