//! `/queue`: list, add, change (priority, pause/resume), remove, retry,
//! clear, stats. Every write goes through [`mediadl::QueueService`], which
//! validates against the downloaders and announces `queue_updated`.

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use mediadl::model::{
    Metadata, NewQueueItem, QueueCounts, QueueFilter, QueueItem, QueuePatch, QueueStatus,
    RequestOptions,
};
use mediadl::recognise::is_auto;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, reader, writer};
use crate::error::{ApiError, ApiResult, ErrorBody, handle};
use crate::pagination::{self, PageInfo};
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::routes::{endpoint, endpoint_with};
use crate::state::AppState;

/// The query of `GET /queue`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// One status.
    status: Option<QueueStatus>,
    /// Platform name.
    #[param(max_length = 64)]
    platform: Option<String>,
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u32>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
}

/// The collection's path (also the base of its `Link` headers).
const QUEUE: &str = "/api/v1/queue";
/// One queue item.
const QUEUE_ITEM: &str = "/api/v1/queue/{id}";

/// `GET /queue`: one page of items and the counts per status.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    /// The page's items.
    pub items: Vec<QueueItem>,
    /// Where the page is.
    #[serde(flatten)]
    pub page: PageInfo,
    /// Items per status.
    #[serde(flatten)]
    pub counts: QueueCounts,
}

/// `POST /queue`: the new item.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueAdded {
    /// The item's id.
    pub id: i64,
    /// What it fetches.
    pub url: String,
    /// Platform name.
    pub platform: String,
    /// Account, thread or host.
    pub source: String,
    /// Kind of content.
    pub content_type: String,
    /// 1 (most urgent) – 10.
    #[schema(minimum = 0, maximum = 10)]
    pub priority: u8,
    /// Always `pending` for a new item.
    pub status: QueueStatus,
    /// When it was queued.
    pub created_date: DateTime<Utc>,
    /// `queue-<id>`.
    pub task_id: String,
}

/// `GET /queue/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStats {
    /// Items in the queue.
    pub total: u64,
    /// Items per status.
    #[serde(flatten)]
    pub counts: QueueCounts,
    /// Mean seconds from queued to started (recent items).
    #[schema(required = true)]
    pub avg_wait_time_seconds: Option<f64>,
    /// Mean seconds a run takes (recent items).
    #[schema(required = true)]
    pub avg_run_time_seconds: Option<f64>,
    /// When the pending work should be done at that pace.
    #[schema(required = true)]
    pub estimated_completion: Option<DateTime<Utc>>,
    /// Items running now.
    pub active_workers: u64,
}

/// `POST /queue/clear`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueCleared {
    /// Items removed.
    pub deleted: u64,
}

/// `PATCH /queue/{id}`: the item's new state.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueChanged {
    /// The item's id.
    pub id: i64,
    /// Its status now.
    pub status: QueueStatus,
    /// Its priority now.
    #[schema(minimum = 0, maximum = 10)]
    pub priority: u8,
}

/// `POST /queue/{id}/retry`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueRetried {
    /// The item's id.
    pub id: i64,
    /// `pending` again.
    pub status: QueueStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// `queue-<id>`.
    pub task_id: String,
}

/// `POST /queue`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// The file or page to fetch; for username platforms the profile URL or
    /// nothing (the source is used).
    #[serde(default)]
    pub url: Option<String>,
    /// Platform name, as `GET /platforms` lists it; omitted or `"auto"`:
    /// chosen from the URL (see `GET /platforms/recognise`), and so are an
    /// omitted source and content type.
    #[serde(default)]
    pub platform: Option<String>,
    /// The account, thread or URL; for `direct`, the URL's host when absent.
    #[serde(default)]
    pub source: Option<String>,
    /// Kind of content; the downloader's first when absent.
    #[serde(default)]
    pub content_type: Option<String>,
    /// 1 (most urgent) – 10; the settings' default when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    pub priority: Option<u8>,
    /// Save at most this many new media items.
    #[serde(default)]
    pub max_downloads: Option<u32>,
    /// Only media posted within this many days.
    #[serde(default)]
    pub days_back: Option<u32>,
    /// Downloader name or alias; the platform's default when absent.
    #[serde(default)]
    pub downloader: Option<String>,
    /// `Referer` header for the requests.
    #[serde(default)]
    pub referer: Option<String>,
    /// Attempts allowed; the settings' `retry_attempts` when absent.
    #[serde(default)]
    #[schema(maximum = 20)]
    pub max_attempts: Option<u32>,
    /// Free-form data carried to the download records.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueChange {
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<u8>,
    status: Option<QueueStatus>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearRequest {
    #[serde(default)]
    status: Option<Vec<QueueStatus>>,
}

/// Longest URL accepted.
const MAX_URL_LEN: usize = 4096;

/// Checks an http(s) URL given by a user.
pub fn check_url(field: &str, url: &str) -> Result<(), ApiError> {
    if url.len() > MAX_URL_LEN {
        return Err(ApiError::validation(
            field,
            format!("at most {MAX_URL_LEN} characters"),
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|err| ApiError::validation(field, format!("not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::validation(
            field,
            "must be an http(s) URL with a host",
        ));
    }
    Ok(())
}

/// Turns a validated request into a queue item and submits it.
pub async fn submit(state: &AppState, request: QueueRequest) -> Result<QueueItem, ApiError> {
    let platform = request.platform.unwrap_or_default();
    if platform.len() > 64 {
        return Err(ApiError::validation("platform", "unknown platform"));
    }
    let auto = is_auto(&platform);
    let mut metadata = request.metadata.unwrap_or_default();
    let downloader = request.downloader.or_else(|| {
        metadata
            .get("downloader")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let mut source = request.source.unwrap_or_default();
    if source.len() > 512 {
        return Err(ApiError::validation("source", "at most 512 characters"));
    }
    let url = match request.url {
        Some(url) if !url.trim().is_empty() => {
            check_url("url", url.trim())?;
            url.trim().to_string()
        }
        // Recognition reads a URL given as the source; the source is then
        // what the URL says (a username, a label, the URL).
        _ if auto => {
            check_url("url", source.trim())?;
            std::mem::take(&mut source).trim().to_owned()
        }
        _ if matches!(platform.as_str(), "direct" | "forum") => {
            return Err(ApiError::validation("url", "required for this platform"));
        }
        _ => source.clone(),
    };
    if let Some(referer) = &request.referer {
        check_url("referer", referer)?;
    }
    // Absent means the settings' default; an explicit value must be in range.
    if request.priority.is_some_and(|p| !(1..=10).contains(&p)) {
        return Err(ApiError::validation(
            "priority",
            "must be between 1 (most urgent) and 10",
        ));
    }
    if request.max_attempts.is_some_and(|n| n > 20) {
        return Err(ApiError::validation("max_attempts", "at most 20"));
    }
    if let Some(content_type) = &request.content_type {
        metadata.insert("content_type".into(), json!(content_type));
    }
    let item = NewQueueItem {
        referer: request.referer,
        priority: request.priority.unwrap_or(0),
        max_attempts: request.max_attempts.unwrap_or(0),
        options: RequestOptions {
            downloader,
            max_downloads: request.max_downloads,
            days_back: request.days_back,
            ..RequestOptions::default()
        },
        metadata,
        ..NewQueueItem::new(
            url,
            platform,
            source,
            request.content_type.unwrap_or_default(),
        )
    };
    Ok(state.queue.submit(item).await?)
}

/// The spec's `task_id` (Celery in the original) is the queue item's id here.
pub fn task_id(item: &QueueItem) -> String {
    format!("queue-{}", item.id)
}

/// The `/queue` routes.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = endpoint::<__path_list>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<ListQuery>())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(|_: AuthUser, state, q, raw| handle(list(state, q, raw)));
    let stats = endpoint::<__path_stats>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state| handle(stats(state)));
    let add = endpoint::<__path_add>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<QueueRequest>())
        .and_then(|_: AuthUser, state, body| handle(add(state, body)));
    let clear = endpoint::<__path_clear>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(warp::body::bytes())
        .and_then(|_: AuthUser, state, body| handle(clear(state, body)));
    let update = endpoint_with::<__path_update, i64>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<QueueChange>())
        .and_then(|id, _: AuthUser, state, body| handle(update(id, state, body)));
    let remove = endpoint_with::<__path_remove, i64>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(remove(id, state)));
    let get = endpoint_with::<__path_get, i64>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|id, _: AuthUser, state| handle(get(id, state)));
    let retry = endpoint_with::<__path_retry, i64>()
        .and(writer(state.clone()))
        .and(with(state))
        .and_then(|id, _: AuthUser, state| handle(retry(id, state)));
    list.or(stats)
        .unify()
        .or(add)
        .unify()
        .or(clear)
        .unify()
        .or(update)
        .unify()
        .or(remove)
        .unify()
        .or(get)
        .unify()
        .or(retry)
        .unify()
        .boxed()
}

/// Add an item
#[utoipa::path(post, path = QUEUE, tag = "queue", security(("bearer" = ["user"])),
    request_body = QueueRequest,
    responses(
        (status = 201, description = "Queued", body = QueueAdded),
        (status = 409, body = ErrorBody),
    ))]
async fn add(state: AppState, body: QueueRequest) -> ApiResult {
    let item = submit(&state, body).await?;
    let reply = QueueAdded {
        task_id: task_id(&item),
        id: item.id,
        url: item.url,
        platform: item.platform,
        source: item.source,
        content_type: item.content_type,
        priority: item.priority,
        status: item.status,
        created_date: item.created_date,
    };
    Ok(warp::reply::with_status(warp::reply::json(&reply), StatusCode::CREATED).into_response())
}

/// Remove finished items (completed and failed by default)
#[utoipa::path(post, path = "/api/v1/queue/clear", tag = "queue", security(("bearer" = ["admin"])),
    request_body(content = Option<ClearRequest>, description = "The statuses to clear; completed and failed when absent"),
    responses(
        (status = 200, description = "Cleared", body = QueueCleared),
        (status = 409, body = ErrorBody),
    ))]
async fn clear(state: AppState, body: bytes::Bytes) -> ApiResult {
    let request: ClearRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ClearRequest::default()
    } else {
        crate::request::parse_json(&body)?
    };
    let statuses = request
        .status
        .unwrap_or_else(|| vec![QueueStatus::Completed, QueueStatus::Failed]);
    let deleted = state.queue.clear(&statuses).await?;
    Ok(warp::reply::json(&QueueCleared { deleted }).into_response())
}

/// Change priority, pause or resume
#[utoipa::path(patch, path = QUEUE_ITEM, tag = "queue", security(("bearer" = ["user"])),
    params(("id" = i64, Path, description = "numeric id")),
    request_body = QueueChange,
    responses(
        (status = 200, description = "The item's new state", body = QueueChanged),
        (status = 409, body = ErrorBody),
    ))]
async fn update(id: i64, state: AppState, body: QueueChange) -> ApiResult {
    let item = state
        .queue
        .update(
            id,
            QueuePatch {
                priority: body.priority,
                status: body.status,
            },
        )
        .await?;
    Ok(warp::reply::json(&QueueChanged {
        id: item.id,
        status: item.status,
        priority: item.priority,
    })
    .into_response())
}

/// Remove an item (a running one is cancelled)
#[utoipa::path(delete, path = QUEUE_ITEM, tag = "queue", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "numeric id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, body = ErrorBody),
    ))]
async fn remove(id: i64, state: AppState) -> ApiResult {
    state.queue.remove(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One queue item
#[utoipa::path(get, path = QUEUE_ITEM, tag = "queue", security(("bearer" = [])),
    params(("id" = i64, Path, description = "numeric id")),
    responses((status = 200, description = "The item", body = QueueItem)))]
async fn get(id: i64, state: AppState) -> ApiResult {
    let item = state.store.get_queue_item(id).await?;
    Ok(warp::reply::json(&item).into_response())
}

/// Retry a failed item
#[utoipa::path(post, path = "/api/v1/queue/{id}/retry", tag = "queue", security(("bearer" = ["user"])),
    params(("id" = i64, Path, description = "numeric id")),
    responses(
        (status = 200, description = "Queued again", body = QueueRetried),
        (status = 409, body = ErrorBody),
    ))]
async fn retry(id: i64, state: AppState) -> ApiResult {
    let item = state.queue.retry(id).await?;
    Ok(warp::reply::json(&QueueRetried {
        task_id: task_id(&item),
        id: item.id,
        status: item.status,
        attempts: item.attempts,
        max_attempts: item.max_attempts,
    })
    .into_response())
}

/// List queue items
#[utoipa::path(get, path = QUEUE, tag = "queue", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "One page of items", body = QueuePage)))]
async fn list(state: AppState, q: ListQuery, raw: String) -> ApiResult {
    let page = pagination::page(q.page, q.per_page)?;
    if q.platform.as_ref().is_some_and(|p| p.len() > 64) {
        return Err(ApiError::validation("platform", "at most 64 characters"));
    }
    let filter = QueueFilter {
        status: q.status,
        platform: q.platform.filter(|p| !p.is_empty()),
    };
    let paged = state.store.list_queue(&filter, page).await?;
    let counts = state.store.queue_counts().await?;
    let body = QueuePage {
        page: PageInfo::new(paged.total, page),
        items: paged.items,
        counts,
    };
    Ok(pagination::paged_json(
        &body,
        body.page.total,
        page,
        QUEUE,
        &raw,
    ))
}

/// Queue statistics
#[utoipa::path(get, path = "/api/v1/queue/stats", tag = "queue", security(("bearer" = [])),
    responses((status = 200, description = "Counts and timings", body = QueueStats)))]
async fn stats(state: AppState) -> ApiResult {
    let now = state.clock.now();
    let stats = state.store.queue_stats(now).await?;
    let counts = stats.counts;
    let concurrency = f64::from(state.settings.current().general.concurrent_downloads.max(1));
    // Pending work spread over the workers at the recent mean run time.
    let estimated_completion = stats.avg_run_time_seconds.and_then(|run| {
        let remaining = (counts.pending + counts.downloading) as f64;
        (remaining > 0.0)
            .then(|| now + Duration::milliseconds((remaining * run / concurrency * 1000.0) as i64))
    });
    Ok(warp::reply::json(&QueueStats {
        total: counts.total(),
        counts,
        avg_wait_time_seconds: stats.avg_wait_time_seconds.map(f64::round),
        avg_run_time_seconds: stats.avg_run_time_seconds,
        estimated_completion,
        active_workers: stats.active_workers,
    })
    .into_response())
}
