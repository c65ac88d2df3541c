//! sqlx errors as the store's typed errors, so the engine decides by
//! variant: retry (`Unavailable`), "already have it" (`Conflict`), or give up.

use mediadl::StoreError;
use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

/// SQLSTATE classes and codes that mean "the server is unreachable, going
/// away or overloaded": worth retrying once it is back.
fn is_transient_sqlstate(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources; 57P01–57P03:
    // admin shutdown, crash shutdown, cannot connect now; 40001/40P01:
    // serialization failure and deadlock, which succeed when retried.
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

/// Maps any sqlx error; callers that know what a unique violation means
/// use [`map_err_conflict`] to word the conflict.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::not_found("row", "?"),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
            match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict(db.message().to_owned()),
                ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
                | ErrorKind::ExclusionViolation => StoreError::Invalid(db.message().to_owned()),
                _ if is_transient_sqlstate(&code) => {
                    StoreError::Unavailable(format!("{} ({code})", db.message()))
                }
                // 22xxx: data exceptions (out of range, bad encoding) come from input.
                _ if code.starts_with("22") => {
                    StoreError::Invalid(format!("{} ({code})", db.message()))
                }
                _ => StoreError::Internal(format!("{} ({code})", db.message())),
            }
        }
        sqlx::Error::Io(err) => StoreError::Unavailable(format!("PostgreSQL connection: {err}")),
        sqlx::Error::Tls(err) => StoreError::Unavailable(format!("PostgreSQL TLS: {err}")),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("no PostgreSQL connection became available in time".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the PostgreSQL pool is closed".into()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the PostgreSQL connection worker crashed".into())
        }
        // A protocol error mid-stream is most often a connection cut off.
        sqlx::Error::Protocol(message) => {
            StoreError::Unavailable(format!("PostgreSQL protocol: {message}"))
        }
        sqlx::Error::Configuration(err) => {
            StoreError::Invalid(format!("PostgreSQL configuration: {err}"))
        }
        sqlx::Error::Encode(err) => StoreError::Invalid(format!("cannot encode a value: {err}")),
        sqlx::Error::Migrate(err) => map_migrate_err(*err),
        other => StoreError::Internal(other.to_string()),
    }
}

/// Like [`map_err`], but a unique violation becomes `Conflict(conflict())`.
pub(crate) fn map_err_conflict(err: sqlx::Error, conflict: impl FnOnce() -> String) -> StoreError {
    match map_err(err) {
        StoreError::Conflict(_) => StoreError::Conflict(conflict()),
        other => other,
    }
}

/// Migration failures with a message that says what to do.
pub(crate) fn map_migrate_err(err: MigrateError) -> StoreError {
    match err {
        MigrateError::VersionMissing(version) => StoreError::Internal(format!(
            "the PostgreSQL database was migrated by a newer mediadl (migration {version} is \
             unknown to this version): upgrade mediadl or use another database"
        )),
        MigrateError::VersionMismatch(version) => StoreError::Internal(format!(
            "migration {version} applied to the PostgreSQL database differs from the one \
             this mediadl ships: the schema was changed by hand or by another build"
        )),
        MigrateError::Dirty(version) => StoreError::Internal(format!(
            "migration {version} is partially applied to the PostgreSQL database"
        )),
        MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => match map_err(err) {
            StoreError::Unavailable(message) => StoreError::Unavailable(message),
            other => StoreError::Internal(format!("migrating the PostgreSQL database: {other}")),
        },
        other => StoreError::Internal(format!("migrating the PostgreSQL database: {other}")),
    }
}

/// A number the database cannot hold (u64 beyond i64, u32 beyond i32).
pub(crate) fn out_of_range(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("{what} {value} is too large to store"))
}

/// A stored value that does not decode into the domain type: a corrupt row.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in PostgreSQL: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(map_err(io).is_transient());
        assert!(map_err(sqlx::Error::PoolTimedOut).is_transient());
        assert!(map_err(sqlx::Error::PoolClosed).is_transient());
    }

    #[test]
    fn sqlstates_classify() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(is_transient_sqlstate("40001"));
        assert!(!is_transient_sqlstate("23505"));
        assert!(!is_transient_sqlstate("42P01"));
    }

    #[test]
    fn newer_database_is_a_clear_error() {
        let err = map_migrate_err(MigrateError::VersionMissing(9));
        assert!(err.to_string().contains("newer mediadl"), "{err}");
        assert!(!err.is_transient());
    }
}
