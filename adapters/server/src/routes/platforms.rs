//! `/platforms`: what each platform and downloader can do and whether it is
//! usable now, the Instagram and TikTok download shortcuts, and cookies
//! uploads (`PUT/DELETE /platforms/{name}/cookies`). The forum monitor
//! lives with the scheduler routes.

use bytes::Bytes;
use http::StatusCode;
use mediadl::fetch::parse_netscape_cookies;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, reader, writer};
use crate::error::{ApiError, ApiResult, handle};
use crate::request::json_body;
use crate::routes::auth::with;
use crate::routes::queue::{QueueRequest, submit, task_id};
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

fn accepted(item: &mediadl::model::QueueItem) -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({
            "queue_id": item.id,
            "task_id": task_id(item),
            "status": "queued",
            "message": "Download queued successfully",
        })),
        StatusCode::ACCEPTED,
    )
    .into_response()
}

/// The `/platforms` routes: capabilities, download shortcuts and cookies.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = warp::path!("platforms")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state: AppState| {
            handle(async move {
                let platforms = state
                    .registry
                    .overview(
                        &state.settings.current(),
                        state.store.as_ref(),
                        state.clock.now(),
                    )
                    .await?;
                Ok(warp::reply::json(&json!({"platforms": platforms})).into_response())
            })
        });
    let instagram = warp::path!("platforms" / "instagram" / "download")
        .and(warp::post())
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<InstagramRequest>())
        .and_then(|_: AuthUser, state: AppState, body: InstagramRequest| {
            handle(async move {
                let item = submit(
                    &state,
                    QueueRequest {
                        url: None,
                        platform: "instagram".into(),
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
            })
        });
    let tiktok = warp::path!("platforms" / "tiktok" / "download")
        .and(warp::post())
        .and(writer(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<TiktokRequest>())
        .and_then(|_: AuthUser, state: AppState, body: TiktokRequest| {
            handle(async move {
                let item = submit(
                    &state,
                    QueueRequest {
                        url: None,
                        platform: "tiktok".into(),
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
            })
        });
    let put_cookies = warp::path!("platforms" / String / "cookies")
        .and(warp::put())
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(warp::body::bytes())
        .and_then(|name: String, _: AuthUser, state, body: Bytes| {
            handle(put_cookies(name, state, body))
        });
    let delete_cookies = warp::path!("platforms" / String / "cookies")
        .and(warp::delete())
        .and(admin(state.clone()))
        .and(with(state))
        .and_then(|name: String, _: AuthUser, state: AppState| {
            handle(async move {
                cookie_platform(&state, &name)?;
                state
                    .settings
                    .update(
                        state.store.as_ref(),
                        &json!({"platforms": {name: {"cookies": null}}}),
                    )
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            })
        });
    list.or(instagram)
        .unify()
        .or(tiktok)
        .unify()
        .or(put_cookies)
        .unify()
        .or(delete_cookies)
        .unify()
        .boxed()
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
    Ok(warp::reply::json(&json!({
        "platform": name,
        "cookies": {
            "present": true,
            "count": parsed.count,
            "expires_at": parsed.earliest_expiry,
        }
    }))
    .into_response())
}
