//! The SQL stores' integration tests: each store runs the core's
//! conformance suite and its own checks (migrations, concurrency, start-up
//! errors) against a real database.

#[cfg(feature = "sqlite")]
mod backup;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
