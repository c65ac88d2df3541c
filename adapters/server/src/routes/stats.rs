//! `/stats/*`: the dashboard's overview, the timeline and the per-platform breakdown.

use chrono::{DateTime, Duration, Utc};
use mediadl::format::human_bytes;
use mediadl::model::{Bucket, GroupBy, Period, Window};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, reader};
use crate::error::{ApiError, ApiResult, handle};
use crate::request::query;
use crate::routes::auth::with;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    period: Option<String>,
    group_by: Option<String>,
}

/// The `/stats/*` routes.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let overview = warp::path!("stats" / "overview")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state| handle(overview(state)));
    let timeline = warp::path!("stats" / "timeline")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<TimelineQuery>())
        .and_then(|_: AuthUser, state, q| handle(timeline(state, q)));
    let platforms = warp::path!("stats" / "platforms")
        .and(warp::get())
        .and(reader(state.clone()))
        .and(with(state))
        .and_then(|_: AuthUser, state: AppState| {
            handle(async move {
                let groups = state
                    .store
                    .download_totals_by(GroupBy::Platform, Window::default())
                    .await?;
                let platforms: Vec<Value> = groups
                    .iter()
                    .map(|group| {
                        json!({
                            "platform": group.key,
                            "downloads": group.totals.total,
                            "success": group.totals.completed,
                            "failed": group.totals.failed,
                            "success_rate": group.totals.success_rate(),
                            "total_size_bytes": group.totals.size_bytes,
                        })
                    })
                    .collect();
                Ok(warp::reply::json(&json!({"platforms": platforms})).into_response())
            })
        });
    overview.or(timeline).unify().or(platforms).unify().boxed()
}

async fn overview(state: AppState) -> ApiResult {
    let now = state.clock.now();
    let (today_w, week_w, month_w) = (
        Period::Today.window(now),
        Period::Week.window(now),
        Period::Month.window(now),
    );
    let store = &state.store;
    let (today, week, month, total, counts, used, by_platform_today, jobs) = tokio::try_join!(
        store.download_totals(today_w),
        store.download_totals(week_w),
        store.download_totals(month_w),
        store.download_totals(Window::default()),
        store.queue_counts(),
        store.storage_used(),
        store.download_totals_by(GroupBy::Platform, today_w),
        store.list_jobs(),
    )?;
    let settings = state.settings.current();
    let statuses = state.registry.statuses(&settings).await;
    let mut platforms = serde_json::Map::new();
    for platform in state.registry.platforms() {
        let usable = statuses
            .iter()
            .any(|s| s.info.platform == platform && s.enabled);
        let today_count = by_platform_today
            .iter()
            .find(|group| group.key == platform)
            .map_or(0, |group| group.totals.total);
        platforms.insert(
            platform,
            json!({
                "status": if usable { "operational" } else { "unavailable" },
                "downloads_today": today_count,
            }),
        );
    }
    let limit = settings.storage_limit_bytes();
    let next = jobs
        .iter()
        .filter(|job| job.spec.enabled)
        .filter_map(|job| job.state.next_run.map(|at| (at, job)))
        .min_by_key(|(at, _)| *at)
        .map(|(at, job)| {
            json!({
                "job_id": job.id,
                "job_name": job.spec.name,
                "scheduled_time": at,
                "in_seconds": (at - now).num_seconds().max(0),
            })
        });
    Ok(warp::reply::json(&json!({
        "downloads": {
            "today": today.total,
            "week": week.total,
            "month": month.total,
            "total": total.total,
        },
        "queue": {
            "pending": counts.pending,
            "downloading": counts.downloading,
            "paused": counts.paused,
            "failed": counts.failed,
        },
        "success_rate": {
            "today": today.success_rate(),
            "week": week.success_rate(),
            "month": month.success_rate(),
        },
        "storage": {
            "used_bytes": used,
            "used_human": human_bytes(used),
            "limit_bytes": limit,
            "limit_human": limit.map(human_bytes),
            "percent": limit.map(|limit| (used as f64 * 1000.0 / limit as f64).round() / 10.0),
        },
        "platforms": platforms,
        "next_scheduled_task": next,
    }))
    .into_response())
}

async fn timeline(state: AppState, q: TimelineQuery) -> ApiResult {
    let now: DateTime<Utc> = state.clock.now();
    let (span, default_bucket) = match q.period.as_deref().unwrap_or("week") {
        "day" | "today" => (Duration::days(1), Bucket::Hour),
        "week" => (Duration::days(7), Bucket::Day),
        "month" => (Duration::days(30), Bucket::Day),
        "year" => (Duration::days(365), Bucket::Month),
        other => {
            return Err(ApiError::validation(
                "period",
                format!("unknown period {other:?} (day, week, month, year)"),
            ));
        }
    };
    let bucket = match q.group_by.as_deref() {
        None => default_bucket,
        Some("hour") => Bucket::Hour,
        Some("day") => Bucket::Day,
        Some("week") => Bucket::Week,
        Some("month") => Bucket::Month,
        Some(other) => {
            return Err(ApiError::validation(
                "group_by",
                format!("unknown bucket {other:?} (hour, day, week, month)"),
            ));
        }
    };
    let window = Window {
        from: Some(now - span),
        to: None,
    };
    let points = state.store.download_timeline(bucket, window).await?;
    let timeline: Vec<Value> = points
        .iter()
        .map(|point| {
            json!({
                "timestamp": point.timestamp,
                "downloads": point.downloads,
                "success": point.success,
                "failed": point.failed,
            })
        })
        .collect();
    Ok(warp::reply::json(&json!({"timeline": timeline})).into_response())
}
