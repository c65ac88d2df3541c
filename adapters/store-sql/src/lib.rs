//! SQL stores for mediadl.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::{PgEventBus, PgEventBusOptions, PgStore, PgStoreOptions};
/// Test helpers (feature `testing`): a fresh PostgreSQL database per test.
#[cfg(feature = "testing")]
pub use postgres::testing;
