//! `GET /health`: unauthenticated liveness; `GET /health/ready`:
//! unauthenticated readiness (the database answers, the download directory
//! takes files).

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::{ApiError, ErrorBody, codes};
use crate::routes::endpoint;
use crate::state::AppState;

/// `GET /health`.
const LIVE: &str = "/api/v1/health";
/// `GET /health/ready`.
const READY: &str = "/api/v1/health/ready";

/// The probe paths: neither is rate limited (a load balancer or container
/// runtime asks every few seconds) nor needs a token.
pub const PROBE_PATHS: [&str; 2] = [LIVE, READY];

/// A check that passed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Healthy {
    /// It works.
    Ok,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the server answers.
    pub status: Healthy,
}

/// `GET /health/ready` when everything is ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ok` (a failed check answers 503).
    pub status: Healthy,
    /// Each check that passed.
    pub checks: ReadinessChecks,
}

/// The checks of `GET /health/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// The database answers.
    pub database: Healthy,
    /// The download directory takes files.
    pub storage: Healthy,
}

/// How long the database may take to answer before the server is not ready:
/// shorter than a probe's usual timeout, so the probe sees our 503 and its
/// reason rather than its own timeout.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Seconds a client should wait before asking again after a 503.
const RETRY_AFTER_SECONDS: u64 = 5;

/// `GET /health` and `GET /health/ready`.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let live = endpoint::<__path_live>().map(live);
    let ready = endpoint::<__path_readiness>().then(move || readiness(state.clone()));
    live.or(ready).unify().boxed()
}

/// Liveness
#[utoipa::path(get, path = LIVE, tag = "health",
    responses((status = 200, description = "The server answers", body = Health)))]
fn live() -> Response {
    warp::reply::json(&Health {
        status: Healthy::Ok,
    })
    .into_response()
}

/// What one check found: `Ok` or why it failed.
type Check = Result<(), String>;

/// Readiness: the database answers and the download directory is writable
///
/// `200 {"status":"ok","checks":{"database":"ok","storage":"ok"}}`, or 503
/// with the error body whose `detail` names every failed check.
#[utoipa::path(get, path = READY, tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, body = ErrorBody),
    ))]
async fn readiness(state: AppState) -> Response {
    let database = check_database(&state).await;
    let storage =
        match tokio::time::timeout(DATABASE_TIMEOUT, state.downloads.storage().check()).await {
            Ok(checked) => checked.map_err(|err| err.to_string()),
            Err(_) => Err(format!("no answer within {} s", DATABASE_TIMEOUT.as_secs())),
        };
    let checks = [("database", database), ("storage", storage)];
    let failures: Vec<String> = checks
        .iter()
        .filter_map(|(name, check)| check.as_ref().err().map(|why| format!("{name}: {why}")))
        .collect();
    if failures.is_empty() {
        let body = Readiness {
            status: Healthy::Ok,
            checks: ReadinessChecks {
                database: Healthy::Ok,
                storage: Healthy::Ok,
            },
        };
        return warp::reply::json(&body).into_response();
    }
    tracing::warn!(target: "mediadl_server::health", failed = %failures.join("; "), "not ready");
    ApiError {
        retry_after: Some(RETRY_AFTER_SECONDS),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            format!("not ready: {}", failures.join("; ")),
        )
    }
    .to_response()
}

async fn check_database(state: &AppState) -> Check {
    match tokio::time::timeout(DATABASE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", DATABASE_TIMEOUT.as_secs())),
    }
}
