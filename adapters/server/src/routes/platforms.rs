//! `/platforms`: what each platform and downloader can do and whether it is
//! usable now, the Instagram and TikTok download shortcuts, and cookies
//! uploads (`PUT/DELETE /platforms/{name}/cookies`). The forum monitor
//! lives with the scheduler routes.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use mediadl::fetch::parse_netscape_cookies;
use mediadl::model::PlatformOverview;
use mediadl::recognise::Recognition;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, reader, writer};
use crate::error::{ApiError, ApiResult, ErrorBody, handle};
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::routes::queue::{QueueRequest, check_url, submit, task_id};
use crate::routes::{endpoint, endpoint_with};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstagramRequest {
    username: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    downloader: Option<String>,
    #[serde(default)]
    max_downloads: Option<u32>,
    #[serde(default)]
    days_back: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<u8>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TiktokRequest {
    username: String,
    #[serde(default)]
    downloader: Option<String>,
    #[serde(default)]
    max_downloads: Option<u32>,
    #[serde(default)]
    days_back: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    priority: Option<u8>,
}

/// `GET /platforms`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlatformList {
    /// Every platform, in the registry's order.
    platforms: Vec<PlatformOverview>,
}

/// The status of an accepted download request.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QueuedStatus {
    /// In the queue.
    Queued,
}

/// `202` of the platform download shortcuts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Queued {
    /// The new queue item.
    queue_id: i64,
    /// `queue-<queue_id>`.
    task_id: String,
    /// Always `queued`.
    status: QueuedStatus,
    /// For people.
    message: String,
}

/// The cookies just stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StoredCookies {
    /// Always `true`.
    #[schema(schema_with = crate::openapi::always_true)]
    present: bool,
    /// Cookies in the file.
    count: usize,
    /// The earliest expiry among them.
    #[schema(required = true)]
    expires_at: Option<DateTime<Utc>>,
}

/// `PUT /platforms/{name}/cookies`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CookiesUpdated {
    /// The platform.
    platform: String,
    /// What is stored now.
    cookies: StoredCookies,
}

/// A platform's cookies.
const COOKIES: &str = "/api/v1/platforms/{name}/cookies";

fn accepted(item: &mediadl::model::QueueItem) -> Response {
    warp::reply::with_status(
        warp::reply::json(&Queued {
            queue_id: item.id,
            task_id: task_id(item),
            status: QueuedStatus::Queued,
            message: "Download queued successfully".into(),
        }),
        StatusCode::ACCEPTED,
    )
    .into_response()
}

/// The `/platforms` routes: capabilities, download shortcuts and cookies.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = endpoint::<__path_list>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state| handle(list(state)));
    let instagram = endpoint::<__path_instagram>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<InstagramRequest>())
        .and_then(|_: AuthUser, state, body| handle(instagram(state, body)));
    let tiktok = endpoint::<__path_tiktok>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<TiktokRequest>())
        .and_then(|_: AuthUser, state, body| handle(tiktok(state, body)));
    let recognise = endpoint::<__path_recognise>()
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(query::<RecogniseQuery>())
        .and_then(|_: AuthUser, state, q| handle(recognise(state, q)));
    let put_cookies = endpoint_with::<__path_put_cookies, String>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(warp::body::bytes())
        .and_then(|name: String, _: AuthUser, state, body: Bytes| {
            handle(put_cookies(name, state, body))
        });
    let delete_cookies = endpoint_with::<__path_delete_cookies, String>()
        .and(admin(state.clone()))
        .and(with(state))
        .and_then(|name, _: AuthUser, state| handle(delete_cookies(name, state)));
    list.or(recognise)
        .unify()
        .or(instagram)
        .unify()
        .or(tiktok)
        .unify()
        .or(put_cookies)
        .unify()
        .or(delete_cookies)
        .unify()
        .boxed()
}

/// The query of `GET /platforms/recognise`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecogniseQuery {
    /// The pasted http(s) URL.
    #[param(max_length = 4096)]
    url: String,
}

/// Which platform a URL would be queued on
///
/// What `"platform": "auto"` in `POST /queue` and `POST /scheduler/jobs`
/// would choose for this URL, for the dashboard to show before queueing.
#[utoipa::path(get, path = "/api/v1/platforms/recognise", tag = "platforms", security(("bearer" = ["user"])),
    params(RecogniseQuery),
    responses(
        (status = 200, description = "The platform, source and content type chosen", body = Recognition),
        (status = 422, description = "Not an http(s) URL", body = ErrorBody),
    ))]
async fn recognise(state: AppState, q: RecogniseQuery) -> ApiResult {
    check_url("url", q.url.trim())?;
    let settings = state.settings.current();
    let found = state.registry.recognise(&q.url, &settings).await?;
    Ok(warp::reply::with_status(warp::reply::json(&found), StatusCode::OK).into_response())
}

/// Platforms, downloaders and their status
#[utoipa::path(get, path = "/api/v1/platforms", tag = "platforms", security(("bearer" = [])),
    responses((status = 200, description = "Every platform", body = PlatformList)))]
async fn list(state: AppState) -> ApiResult {
    let platforms = state
        .registry
        .overview(
            &state.settings.current(),
            state.store.as_ref(),
            state.clock.now(),
        )
        .await?;
    Ok(warp::reply::json(&PlatformList { platforms }).into_response())
}

/// Queue an Instagram download
#[utoipa::path(post, path = "/api/v1/platforms/instagram/download", tag = "platforms",
    security(("bearer" = ["user"])),
    request_body = InstagramRequest,
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 409, body = ErrorBody),
    ))]
async fn instagram(state: AppState, body: InstagramRequest) -> ApiResult {
    let item = submit(
        &state,
        QueueRequest {
            url: None,
            platform: Some("instagram".into()),
            source: Some(body.username),
            content_type: Some(body.content_type.unwrap_or_else(|| "posts".into())),
            priority: body.priority,
            max_downloads: body.max_downloads,
            days_back: body.days_back,
            downloader: body.downloader,
            referer: None,
            max_attempts: None,
            metadata: None,
        },
    )
    .await?;
    Ok(accepted(&item))
}

/// Queue a TikTok download
#[utoipa::path(post, path = "/api/v1/platforms/tiktok/download", tag = "platforms",
    security(("bearer" = ["user"])),
    request_body = TiktokRequest,
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 409, body = ErrorBody),
    ))]
async fn tiktok(state: AppState, body: TiktokRequest) -> ApiResult {
    let item = submit(
        &state,
        QueueRequest {
            url: None,
            platform: Some("tiktok".into()),
            source: Some(body.username),
            content_type: Some("videos".into()),
            priority: body.priority,
            max_downloads: body.max_downloads,
            days_back: body.days_back,
            downloader: body.downloader,
            referer: None,
            max_attempts: None,
            metadata: None,
        },
    )
    .await?;
    Ok(accepted(&item))
}

/// Remove stored cookies
#[utoipa::path(delete, path = COOKIES, tag = "platforms", security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "platform")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The platform takes no cookies (VALIDATION_ERROR)"),
    ))]
async fn delete_cookies(name: String, state: AppState) -> ApiResult {
    cookie_platform(&state, &name)?;
    state
        .settings
        .update(
            state.store.as_ref(),
            &json!({"platforms": {name: {"cookies": null}}}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 404 for an unknown platform, 422 for one that takes no cookies.
fn cookie_platform(state: &AppState, name: &str) -> Result<(), ApiError> {
    let infos: Vec<_> = state
        .registry
        .all()
        .iter()
        .map(|d| d.info())
        .filter(|info| info.platform == name)
        .collect();
    if infos.is_empty() {
        return Err(ApiError::not_found(format!("unknown platform {name:?}")));
    }
    if !infos.iter().any(|info| info.accepts_cookies) {
        return Err(ApiError::validation(
            "platform",
            format!("{name} does not use cookies"),
        ));
    }
    Ok(())
}

/// Upload a Netscape cookies.txt
#[utoipa::path(put, path = COOKIES, tag = "platforms", security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "platform")),
    request_body(content = String, content_type = "text/plain", description = "A Netscape cookies.txt"),
    responses(
        (status = 200, description = "Stored", body = CookiesUpdated),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
async fn put_cookies(name: String, state: AppState, body: Bytes) -> ApiResult {
    cookie_platform(&state, &name)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::validation("cookies", "must be UTF-8 text (Netscape cookies.txt)")
    })?;
    let parsed = parse_netscape_cookies(text).map_err(|err| {
        ApiError::validation("cookies", format!("line {}: {}", err.line, err.reason))
    })?;
    if parsed.count == 0 {
        return Err(ApiError::validation("cookies", "the file holds no cookies"));
    }
    state
        .settings
        .update(
            state.store.as_ref(),
            &json!({"platforms": {&name: {"cookies": text}}}),
        )
        .await?;
    tracing::info!(target: "mediadl_server::routes::platforms", platform = %name, count = parsed.count, "cookies updated");
    Ok(warp::reply::json(&CookiesUpdated {
        platform: name,
        cookies: StoredCookies {
            present: true,
            count: parsed.count,
            expires_at: parsed.earliest_expiry,
        },
    })
    .into_response())
}
