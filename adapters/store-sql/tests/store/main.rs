//! The SQL stores' integration tests: each store runs the core's
//! conformance suite and its own checks (migrations, concurrency, start-up
//! errors) against a real database.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
