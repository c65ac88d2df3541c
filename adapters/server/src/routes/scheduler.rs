//! `/scheduler/*` and `POST /platforms/forum/monitor`.
//!
//! Roles (CONTRACT.md): any signed-in user reads jobs and history; `user`
//! may run a job now and start a forum monitor (both queue downloads);
//! creating, changing and deleting jobs is `admin`.

use chrono::{DateTime, Utc};
use http::StatusCode;
use mediadl::model::{Job, JobRun, RunFilter, RunStatus};
use mediadl::scheduler::{ForumMonitorRequest, JobPatch, NewJob, schedule_human};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, reader, writer};
use crate::error::{ApiError, ApiResult, ErrorBody, handle};
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::routes::{endpoint, endpoint_with};
use crate::state::AppState;

/// Largest `limit` of `GET /scheduler/history`.
const MAX_HISTORY: u32 = 1000;
const DEFAULT_HISTORY: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Job id.
    job_id: Option<String>,
    /// One run status; empty means any.
    #[param(schema_with = run_status_choices)]
    status: Option<String>,
    /// Newest runs to return.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
}

/// The run statuses `GET /scheduler/history` filters on (empty: any).
fn run_status_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["success", "failure", "running", "skipped", ""])
}

/// The jobs collection.
const JOBS: &str = "/api/v1/scheduler/jobs";
/// One job.
const JOB: &str = "/api/v1/scheduler/jobs/{id}";

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView<'a> {
    /// The job.
    #[serde(flatten)]
    pub job: &'a Job,
    /// The schedule in words.
    pub schedule_human: String,
}

impl<'a> JobView<'a> {
    /// The view of `job`.
    pub fn new(job: &'a Job) -> Self {
        Self {
            job,
            schedule_human: schedule_human(job),
        }
    }
}

/// `GET /scheduler/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobList<'a> {
    /// Every job.
    jobs: Vec<JobView<'a>>,
}

/// `POST /scheduler/jobs/{id}/run`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobStarted {
    /// The queue item's id as text; `null` for a maintenance job.
    #[schema(required = true)]
    task_id: Option<String>,
    /// The queue item; `null` for a maintenance job.
    #[schema(required = true)]
    queue_id: Option<i64>,
    /// The run.
    run_id: i64,
    /// `queued`, or how a maintenance run ended.
    status: String,
    /// For people.
    message: String,
    /// Media items a maintenance run saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    items_downloaded: Option<u32>,
    /// Why a maintenance run failed (present for maintenance runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    error_message: Option<Option<String>>,
}

/// `GET /scheduler/history`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobHistory {
    /// Runs, newest first.
    history: Vec<JobRun>,
}

/// Whether a forum monitor still runs.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MonitorStatus {
    /// Its job is enabled.
    Active,
    /// Its job is disabled.
    Stopped,
}

/// `POST /platforms/forum/monitor`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ForumMonitor {
    /// The monitor's job id.
    thread_id: String,
    /// The same id.
    job_id: String,
    /// Whether it still runs.
    status: MonitorStatus,
    /// When it stops.
    #[schema(required = true)]
    monitor_until: Option<DateTime<Utc>>,
    /// Its next check.
    #[schema(required = true)]
    next_run: Option<DateTime<Utc>>,
    /// Its cron schedule.
    schedule: String,
    /// The schedule in words.
    schedule_human: String,
    /// A new monitor (201) rather than one re-checked (200).
    created: bool,
    /// The queue item of this check, as text.
    #[schema(required = true)]
    task_id: Option<String>,
    /// The queue item of this check.
    #[schema(required = true)]
    queue_id: Option<i64>,
    /// The run of this check.
    run_id: i64,
}

/// `body` as JSON with `status`.
fn reply<T: Serialize>(body: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// The `/scheduler/*` routes and `POST /platforms/forum/monitor`.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = endpoint::<__path_list_jobs>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state| handle(list_jobs(state)));
    let create = endpoint::<__path_create_job>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<NewJob>())
        .and_then(|_: AuthUser, state, body| handle(create_job(state, body)));
    let get = endpoint_with::<__path_get_job, String>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(get_job(id, state)));
    let update = endpoint_with::<__path_update_job, String>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<JobPatch>())
        .and_then(|id, _: AuthUser, state, body| handle(update_job(id, state, body)));
    let delete = endpoint_with::<__path_delete_job, String>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(delete_job(id, state)));
    let run = endpoint_with::<__path_run_job, String>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(run_job(id, state)));
    let history = endpoint::<__path_history>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<HistoryQuery>())
        .and_then(|_: AuthUser, state, q| handle(history(state, q)));
    let monitor = endpoint::<__path_monitor_forum>()
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

/// List scheduled jobs
#[utoipa::path(get, path = JOBS, tag = "scheduler", security(("bearer" = [])),
    responses((status = 200, description = "Every job", body = JobList)))]
async fn list_jobs(state: AppState) -> ApiResult {
    let jobs = state.scheduler.list_jobs().await?;
    let jobs = jobs.iter().map(JobView::new).collect();
    Ok(reply(&JobList { jobs }, StatusCode::OK))
}

/// One job
#[utoipa::path(get, path = JOB, tag = "scheduler", security(("bearer" = [])),
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "The job", body = JobView)))]
async fn get_job(id: String, state: AppState) -> ApiResult {
    let job = state.scheduler.get_job(&id).await?;
    Ok(reply(&JobView::new(&job), StatusCode::OK))
}

/// Create a job
#[utoipa::path(post, path = JOBS, tag = "scheduler", security(("bearer" = ["admin"])),
    request_body = NewJob,
    responses(
        (status = 201, description = "Created", body = JobView),
        (status = 409, body = ErrorBody),
    ))]
async fn create_job(state: AppState, body: NewJob) -> ApiResult {
    let job = state.scheduler.create_job(body).await?;
    tracing::info!(target: "mediadl_server::routes::scheduler", job = %job.id, schedule = %job.spec.schedule, "job created");
    Ok(reply(&JobView::new(&job), StatusCode::CREATED))
}

/// Change a job
#[utoipa::path(patch, path = JOB, tag = "scheduler", security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "job id")),
    request_body = JobPatch,
    responses(
        (status = 200, description = "The changed job", body = JobView),
        (status = 409, body = ErrorBody),
    ))]
async fn update_job(id: String, state: AppState, body: JobPatch) -> ApiResult {
    let job = state.scheduler.update_job(&id, body).await?;
    Ok(reply(&JobView::new(&job), StatusCode::OK))
}

/// Delete a job
#[utoipa::path(delete, path = JOB, tag = "scheduler", security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "A built-in maintenance job can only be disabled (VALIDATION_ERROR)"),
    ))]
async fn delete_job(id: String, state: AppState) -> ApiResult {
    state.scheduler.delete_job(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Run a job now
#[utoipa::path(post, path = "/api/v1/scheduler/jobs/{id}/run", tag = "scheduler", security(("bearer" = ["user"])),
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 202, description = "Started", body = JobStarted),
        (status = 409, body = ErrorBody),
    ))]
async fn run_job(id: String, state: AppState) -> ApiResult {
    let fired = state.scheduler.run_now(&id).await?;
    let body = match &fired.queue_item {
        Some(item) => JobStarted {
            task_id: Some(item.id.to_string()),
            queue_id: Some(item.id),
            run_id: fired.run.id,
            status: "queued".into(),
            message: "Job execution queued".into(),
            items_downloaded: None,
            error_message: None,
        },
        // Maintenance jobs run in the scheduler: the run is already over.
        None => JobStarted {
            task_id: None,
            queue_id: None,
            run_id: fired.run.id,
            status: fired.run.status.as_str().into(),
            message: "Maintenance job ran".into(),
            items_downloaded: Some(fired.run.items_downloaded),
            error_message: Some(fired.run.error_message.clone()),
        },
    };
    Ok(reply(&body, StatusCode::ACCEPTED))
}

/// Job run history, newest first
#[utoipa::path(get, path = "/api/v1/scheduler/history", tag = "scheduler", security(("bearer" = [])),
    params(HistoryQuery),
    responses((status = 200, description = "The runs", body = JobHistory)))]
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
    Ok(reply(&JobHistory { history: runs }, StatusCode::OK))
}

/// Monitor a forum thread (201 new, 200 re-checked)
#[utoipa::path(post, path = "/api/v1/platforms/forum/monitor", tag = "platforms", security(("bearer" = ["user"])),
    request_body = ForumMonitorRequest,
    responses(
        (status = 201, description = "A new monitor", body = ForumMonitor),
        (status = 200, description = "An existing monitor, checked now", body = ForumMonitor),
        (status = 409, body = ErrorBody),
    ))]
async fn monitor_forum(state: AppState, body: ForumMonitorRequest) -> ApiResult {
    let monitor = state.scheduler.monitor_forum(body).await?;
    let job = &monitor.job;
    let body = ForumMonitor {
        thread_id: job.id.clone(),
        job_id: job.id.clone(),
        status: if job.spec.enabled {
            MonitorStatus::Active
        } else {
            MonitorStatus::Stopped
        },
        monitor_until: job.spec.monitor_until,
        next_run: job.state.next_run,
        schedule: job.spec.schedule.clone(),
        schedule_human: schedule_human(job),
        created: monitor.created,
        task_id: monitor.queue_id.map(|id| id.to_string()),
        queue_id: monitor.queue_id,
        run_id: monitor.run.id,
    };
    let status = if monitor.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(&body, status))
}
