//! The server end to end: real HTTP and WebSocket against `run` on port 0,
//! on SQLite and on PostgreSQL.

mod helpers;
mod notifications;
mod scenarios;
mod scheduler;

/// Runs each scenario on both databases.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::scenarios::$name(crate::helpers::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::scenarios::$name(crate::helpers::Db::Postgres).await;
                }
            )*
        }
    };
}

on_both_databases!(
    health_errors_and_headers,
    auth_tokens_and_lockout,
    roles_and_user_admin,
    queue_validation_and_changes,
    download_with_websocket_file_and_thumbnail,
    websocket_auth_and_limits,
    settings_and_cookies,
    lists_paginate_and_stats,
    logs_are_stored_and_served,
    rate_limit_answers_429,
    restart_keeps_data,
    readiness_checks_database_and_storage,
);
