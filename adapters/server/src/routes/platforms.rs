//! `/platforms`: what each platform and downloader can do and whether it is
//! usable now, the Instagram and TikTok download shortcuts, and cookies
//! uploads (`PUT/DELETE /platforms/{name}/cookies`). The forum monitor
//! lives with the scheduler routes.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use mediadl::fetch::parse_netscape_cookies;
use mediadl::model::{DownloaderStatus, Settings};
use serde::Deserialize;
use serde_json::{Value, json};
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

/// `{present, count, expires_at}` of a platform's stored cookies.
fn cookies_summary(settings: &Settings, platform: &str) -> Value {
    // `platforms.<p>.cookies` is a secret key: masked on the way out.
    match settings
        .platform_common(platform)
        .cookies()
        .map(parse_netscape_cookies)
    {
        Some(Ok(parsed)) => json!({
            "present": true,
            "count": parsed.count,
            "expires_at": parsed.earliest_expiry,
            "expired": parsed.earliest_expiry.is_some_and(|at| at < Utc::now()),
        }),
        Some(Err(err)) => {
            json!({"present": true, "count": 0, "expires_at": null, "error": err.to_string()})
        }
        None => json!({"present": false, "count": 0, "expires_at": null}),
    }
}

/// Groups downloader statuses into the spec's platform entries.
fn platforms_json(
    statuses: &[DownloaderStatus],
    settings: &Settings,
    last: &BTreeMap<String, DateTime<Utc>>,
) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    for status in statuses {
        if !order.contains(&status.info.platform) {
            order.push(status.info.platform.clone());
        }
    }
    order
        .iter()
        .map(|platform| {
            let of: Vec<&DownloaderStatus> =
                statuses.iter().filter(|s| &s.info.platform == platform).collect();
            let mut content_types: Vec<String> = Vec::new();
            let mut features: Vec<String> = Vec::new();
            for status in &of {
                for ct in &status.info.content_types {
                    if !content_types.contains(ct) {
                        content_types.push(ct.clone());
                    }
                }
                for feature in &status.info.features {
                    if !features.contains(feature) {
                        features.push(feature.clone());
                    }
                }
            }
            let switched_on = settings.platform_common(platform).enabled;
            let usable = of.iter().any(|s| s.enabled);
            let status = match (switched_on, usable) {
                (false, _) => "disabled",
                (true, true) => "operational",
                (true, false) => "unavailable",
            };
            let downloaders: Vec<Value> = of
                .iter()
                .map(|s| {
                    json!({
                        "name": s.info.name,
                        "display_name": s.info.display_name,
                        "enabled": s.enabled,
                        "reason": s.reason,
                        "aliases": s.info.aliases,
                        "default": s.info.is_default,
                    })
                })
                .collect();
            let mut entry = json!({
                "name": platform,
                "display_name": of.first().map(|s| s.info.platform_display_name.clone()).unwrap_or_default(),
                "enabled": switched_on && usable,
                "downloaders": downloaders,
                "content_types": content_types,
                "features": features,
                "status": status,
                "last_successful_download": last.get(platform),
            });
            if of.iter().any(|s| s.info.accepts_cookies) {
                entry["cookies"] = cookies_summary(settings, platform);
            }
            entry
        })
        .collect()
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
                let settings = state.settings.current();
                let statuses = state.registry.statuses(&settings).await;
                let last: BTreeMap<String, DateTime<Utc>> = state
                    .store
                    .last_download_per_platform()
                    .await?
                    .into_iter()
                    .collect();
                let platforms = platforms_json(&statuses, &settings, &last);
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
