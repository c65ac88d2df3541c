//! `/scheduler/*` and `POST /platforms/forum/monitor`.
//!
//! Roles (CONTRACT.md): any signed-in user reads jobs and history; `user`
//! may run a job now and start a forum monitor (both queue downloads);
//! creating, changing and deleting jobs is `admin`.

use http::StatusCode;
use mediadl::model::{Job, JobRun, RunFilter, RunStatus};
use mediadl::scheduler::{ForumMonitorRequest, JobPatch, NewJob, schedule_human};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, reader, writer};
use crate::error::{ApiError, ApiResult, handle};
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::state::AppState;

/// Largest `limit` of `GET /scheduler/history`.
const MAX_HISTORY: u32 = 1000;
const DEFAULT_HISTORY: u32 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    job_id: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

/// A job as the API shows it: the spec's fields, `schedule_human`, and
/// `kind`, `timezone`, `catch_up`, `monitor_until`, `created_at`, `updated_at`.
pub fn job_json(job: &Job) -> Value {
    let mut value = serde_json::to_value(job).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        // Internal to exactly-once firing.
        object.remove("last_slot");
        object.insert("schedule_human".into(), Value::String(schedule_human(job)));
    }
    value
}

fn run_json(run: &JobRun) -> Value {
    serde_json::to_value(run).unwrap_or_else(|_| json!({}))
}

fn reply(value: &Value, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// The `/scheduler/*` routes and `POST /platforms/forum/monitor`.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = warp::path!("scheduler" / "jobs")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state| handle(list_jobs(state)));
    let create = warp::path!("scheduler" / "jobs")
        .and(warp::post())
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<NewJob>())
        .and_then(|_: AuthUser, state, body| handle(create_job(state, body)));
    let get = warp::path!("scheduler" / "jobs" / String)
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(get_job(id, state)));
    let update = warp::path!("scheduler" / "jobs" / String)
        .and(warp::patch())
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<JobPatch>())
        .and_then(|id, _: AuthUser, state, body| handle(update_job(id, state, body)));
    let delete = warp::path!("scheduler" / "jobs" / String)
        .and(warp::delete())
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(delete_job(id, state)));
    let run = warp::path!("scheduler" / "jobs" / String / "run")
        .and(warp::post())
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(run_job(id, state)));
    let history = warp::path!("scheduler" / "history")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<HistoryQuery>())
        .and_then(|_: AuthUser, state, q| handle(history(state, q)));
    let monitor = warp::path!("platforms" / "forum" / "monitor")
        .and(warp::post())
        .and(writer(state.clone()))
        .and(with(state))
        .and(json_body::<ForumMonitorRequest>())
        .and_then(|_: AuthUser, state, body| handle(monitor_forum(state, body)));
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(run)
        .unify()
        .or(history)
        .unify()
        .or(monitor)
        .unify()
        .boxed()
}

async fn list_jobs(state: AppState) -> ApiResult {
    let jobs = state.scheduler.list_jobs().await?;
    let jobs: Vec<Value> = jobs.iter().map(job_json).collect();
    Ok(reply(&json!({ "jobs": jobs }), StatusCode::OK))
}

async fn get_job(id: String, state: AppState) -> ApiResult {
    let job = state.scheduler.get_job(&id).await?;
    Ok(reply(&job_json(&job), StatusCode::OK))
}

async fn create_job(state: AppState, body: NewJob) -> ApiResult {
    let job = state.scheduler.create_job(body).await?;
    tracing::info!(target: "mediadl_server::routes::scheduler", job = %job.id, schedule = %job.spec.schedule, "job created");
    Ok(reply(&job_json(&job), StatusCode::CREATED))
}

async fn update_job(id: String, state: AppState, body: JobPatch) -> ApiResult {
    let job = state.scheduler.update_job(&id, body).await?;
    Ok(reply(&job_json(&job), StatusCode::OK))
}

async fn delete_job(id: String, state: AppState) -> ApiResult {
    state.scheduler.delete_job(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn run_job(id: String, state: AppState) -> ApiResult {
    let fired = state.scheduler.run_now(&id).await?;
    let body = match &fired.queue_item {
        Some(item) => json!({
            "task_id": item.id.to_string(),
            "queue_id": item.id,
            "run_id": fired.run.id,
            "status": "queued",
            "message": "Job execution queued",
        }),
        // Maintenance jobs run in the scheduler: the run is already over.
        None => json!({
            "task_id": Value::Null,
            "queue_id": Value::Null,
            "run_id": fired.run.id,
            "status": fired.run.status.as_str(),
            "items_downloaded": fired.run.items_downloaded,
            "error_message": fired.run.error_message,
            "message": "Maintenance job ran",
        }),
    };
    Ok(reply(&body, StatusCode::ACCEPTED))
}

async fn history(state: AppState, q: HistoryQuery) -> ApiResult {
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(status) => Some(status.parse::<RunStatus>().map_err(|_| {
            ApiError::validation(
                "status",
                format!(
                    "unknown run status {status:?} (one of: success, failure, running, skipped)"
                ),
            )
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(DEFAULT_HISTORY);
    if !(1..=MAX_HISTORY).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_HISTORY}"),
        ));
    }
    let runs = state
        .scheduler
        .history(RunFilter {
            job_id: q.job_id.filter(|id| !id.trim().is_empty()),
            status,
            limit,
        })
        .await?;
    let runs: Vec<Value> = runs.iter().map(run_json).collect();
    Ok(reply(&json!({ "history": runs }), StatusCode::OK))
}

async fn monitor_forum(state: AppState, body: ForumMonitorRequest) -> ApiResult {
    let monitor = state.scheduler.monitor_forum(body).await?;
    let job = &monitor.job;
    let body = json!({
        "thread_id": job.id,
        "job_id": job.id,
        "status": if job.spec.enabled { "active" } else { "stopped" },
        "monitor_until": job.spec.monitor_until,
        "next_run": job.state.next_run,
        "schedule": job.spec.schedule,
        "schedule_human": schedule_human(job),
        "created": monitor.created,
        "task_id": monitor.queue_id.map(|id| id.to_string()),
        "queue_id": monitor.queue_id,
        "run_id": monitor.run.id,
    });
    let status = if monitor.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(&body, status))
}
