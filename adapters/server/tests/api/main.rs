//! The server end to end: real HTTP and WebSocket against `run` on port 0,
//! on SQLite and on PostgreSQL.

mod helpers;
mod import;
mod metrics;
mod notifications;
mod openapi;
mod recognise;
mod scenarios;
mod scheduler;
mod security_auth;
mod security_http;
mod security_secrets;
mod settings_layers;
#[cfg(feature = "s3")]
mod storage;

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
    import_is_admin_only_confined_and_idempotent,
);

/// Issue 18's one configuration, on both databases (the stored document
/// is what the layers go over).
mod configuration {
    use crate::helpers::Db;
    use crate::settings_layers as layers;

    #[tokio::test]
    async fn sqlite_file_values_survive_patch_reload_and_restart() {
        layers::file_values_survive_patch_reload_and_restart(Db::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_file_values_survive_patch_reload_and_restart() {
        layers::file_values_survive_patch_reload_and_restart(Db::Postgres).await;
    }

    #[tokio::test]
    async fn sqlite_the_operators_download_dir_is_shown_and_read_only() {
        layers::the_operators_download_dir_is_shown_and_read_only(Db::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_the_operators_download_dir_is_shown_and_read_only() {
        layers::the_operators_download_dir_is_shown_and_read_only(Db::Postgres).await;
    }
}

/// `GET /metrics` (issue 18).
mod prometheus {
    use crate::helpers::Db;
    use crate::metrics as scenario;

    #[tokio::test]
    async fn sqlite_counters_and_histograms_follow_downloads_failures_and_retries() {
        scenario::counters_and_histograms_follow_downloads_failures_and_retries(Db::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_counters_and_histograms_follow_downloads_failures_and_retries() {
        scenario::counters_and_histograms_follow_downloads_failures_and_retries(Db::Postgres).await;
    }

    #[tokio::test]
    async fn a_metrics_token_is_required_when_set() {
        scenario::a_metrics_token_is_required_when_set().await;
    }
}

/// The OpenAPI document against the route table.
#[tokio::test]
async fn every_route_has_an_operation_and_every_operation_a_route() {
    openapi::every_route_has_an_operation_and_every_operation_a_route().await;
}

/// The HTTP side of issue 19, written as the attacks.
mod security {
    use crate::helpers::Db;
    use crate::security_http as attack;

    #[tokio::test]
    async fn a_users_script_page_reaches_the_admin_as_an_inert_attachment() {
        attack::a_users_script_page_reaches_the_admin_as_an_inert_attachment().await;
    }

    #[tokio::test]
    async fn the_dashboard_has_a_strict_policy_and_no_inline_script() {
        attack::the_dashboard_has_a_strict_policy_and_no_inline_script().await;
    }

    #[tokio::test]
    async fn signed_media_links_open_one_download_until_they_expire() {
        attack::signed_media_links_open_one_download_until_they_expire().await;
    }

    #[tokio::test]
    async fn a_half_sent_request_is_closed_after_the_header_timeout() {
        attack::a_half_sent_request_is_closed_after_the_header_timeout().await;
    }

    #[tokio::test]
    async fn idle_sockets_up_to_the_cap_do_not_stop_health() {
        attack::idle_sockets_up_to_the_cap_do_not_stop_health().await;
    }

    #[tokio::test]
    async fn an_oversized_pre_auth_websocket_frame_closes_the_socket() {
        attack::an_oversized_pre_auth_websocket_frame_closes_the_socket().await;
    }

    #[tokio::test]
    async fn a_huge_images_thumbnail_is_refused_without_decoding() {
        attack::a_huge_images_thumbnail_is_refused_without_decoding().await;
    }

    #[tokio::test]
    async fn search_text_is_literal_on_sqlite() {
        attack::search_text_is_literal(Db::Sqlite).await;
    }

    #[tokio::test]
    async fn search_text_is_literal_on_postgres() {
        attack::search_text_is_literal(Db::Postgres).await;
    }
}
