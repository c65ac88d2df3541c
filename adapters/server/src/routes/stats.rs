//! `/stats/*`: the dashboard's overview, the timeline and the per-platform breakdown.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use mediadl::format::human_bytes;
use mediadl::model::{Bucket, GroupBy, Period, TimelinePoint, Window};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, reader};
use crate::error::{ApiError, ApiResult, handle};
use crate::request::query;
use crate::routes::auth::with;
use crate::routes::endpoint;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// Window, default week.
    #[param(schema_with = period_choices)]
    period: Option<String>,
    /// Bucket, default by period.
    #[param(schema_with = bucket_choices)]
    group_by: Option<String>,
}

/// The periods of `GET /stats/timeline`.
fn period_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["day", "today", "week", "month", "year"])
}

/// The buckets of `GET /stats/timeline`.
fn bucket_choices() -> utoipa::openapi::Object {
    crate::openapi::choice(&["hour", "day", "week", "month"])
}

/// Downloads per period.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PeriodCounts {
    /// Since midnight (UTC).
    today: u64,
    /// The last 7 days.
    week: u64,
    /// The last 30 days.
    month: u64,
    /// Ever.
    total: u64,
}

/// Queue items still to finish.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueSummary {
    /// Waiting for a worker.
    pending: u64,
    /// Running now.
    downloading: u64,
    /// Held until resumed.
    paused: u64,
    /// Out of attempts.
    failed: u64,
}

/// Percent of downloads that completed, per period.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PeriodRates {
    /// Since midnight (UTC).
    today: f64,
    /// The last 7 days.
    week: f64,
    /// The last 30 days.
    month: f64,
}

/// Space the downloads take.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StorageUse {
    /// Bytes used.
    used_bytes: u64,
    /// The same, for people.
    used_human: String,
    /// The configured limit.
    #[schema(required = true)]
    limit_bytes: Option<u64>,
    /// The same, for people.
    #[schema(required = true)]
    limit_human: Option<String>,
    /// Percent of the limit used.
    #[schema(required = true)]
    percent: Option<f64>,
}

/// Whether a platform has a usable downloader.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Availability {
    /// A downloader is usable.
    Operational,
    /// None is.
    Unavailable,
}

/// One platform of the overview.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlatformToday {
    /// Whether it has a usable downloader.
    status: Availability,
    /// Its downloads since midnight (UTC).
    downloads_today: u64,
}

/// The enabled job that fires next.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NextTask {
    /// The job's id.
    job_id: String,
    /// The job's name.
    job_name: String,
    /// When it fires.
    scheduled_time: DateTime<Utc>,
    /// Seconds until then.
    #[schema(minimum = 0)]
    in_seconds: i64,
}

/// `GET /stats/overview`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Overview {
    /// Downloads per period.
    downloads: PeriodCounts,
    /// Queue items still to finish.
    queue: QueueSummary,
    /// Completion rate per period.
    success_rate: PeriodRates,
    /// Space used.
    storage: StorageUse,
    /// Each platform's state today.
    platforms: BTreeMap<String, PlatformToday>,
    /// The next firing, if any job is enabled.
    #[schema(required = true)]
    next_scheduled_task: Option<NextTask>,
}

/// `GET /stats/timeline`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Timeline {
    /// One point per bucket.
    timeline: Vec<TimelinePoint>,
}

/// One platform of `GET /stats/platforms`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlatformTotals {
    /// Platform name.
    platform: String,
    /// Downloads ever.
    downloads: u64,
    /// Of which completed.
    success: u64,
    /// Of which failed.
    failed: u64,
    /// Percent completed.
    success_rate: f64,
    /// Bytes saved.
    total_size_bytes: u64,
}

/// `GET /stats/platforms`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlatformStats {
    /// Platforms with downloads.
    platforms: Vec<PlatformTotals>,
}

/// The `/stats/*` routes.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let overview = endpoint::<__path_overview>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and_then(|_: AuthUser, state| handle(overview(state)));
    let timeline = endpoint::<__path_timeline>()
        .and(reader(state.clone()))
        .and(with(state.clone()))
        .and(query::<TimelineQuery>())
        .and_then(|_: AuthUser, state, q| handle(timeline(state, q)));
    let platforms = endpoint::<__path_platforms>()
        .and(reader(state.clone()))
        .and(with(state))
        .and_then(|_: AuthUser, state| handle(platforms(state)));
    overview.or(timeline).unify().or(platforms).unify().boxed()
}

/// Breakdown by platform
#[utoipa::path(get, path = "/api/v1/stats/platforms", tag = "stats", security(("bearer" = [])),
    responses((status = 200, description = "Totals per platform", body = PlatformStats)))]
async fn platforms(state: AppState) -> ApiResult {
    let groups = state
        .store
        .download_totals_by(GroupBy::Platform, Window::default())
        .await?;
    let platforms = groups
        .iter()
        .map(|group| PlatformTotals {
            platform: group.key.clone(),
            downloads: group.totals.total,
            success: group.totals.completed,
            failed: group.totals.failed,
            success_rate: group.totals.success_rate(),
            total_size_bytes: group.totals.size_bytes,
        })
        .collect();
    Ok(warp::reply::json(&PlatformStats { platforms }).into_response())
}

/// Dashboard overview
#[utoipa::path(get, path = "/api/v1/stats/overview", tag = "stats", security(("bearer" = [])),
    responses((status = 200, description = "Counts, rates, storage, platforms, the next job", body = Overview)))]
async fn overview(state: AppState) -> ApiResult {
    let now = state.clock.now();
    let (today_w, week_w, month_w) = (
        Period::Today.window(now),
        Period::Week.window(now),
        Period::Month.window(now),
    );
    let store = &state.store;
    let (today, week, month, total, counts, used, by_platform_today) = tokio::try_join!(
        store.download_totals(today_w),
        store.download_totals(week_w),
        store.download_totals(month_w),
        store.download_totals(Window::default()),
        store.queue_counts(),
        store.storage_used(),
        store.download_totals_by(GroupBy::Platform, today_w),
    )?;
    // The scheduler decides which job runs next (a switched-off built-in never does).
    let next_job = state.scheduler.next_scheduled().await?;
    let settings = state.settings.current();
    let statuses = state.registry.statuses(&settings).await;
    let mut platforms = BTreeMap::new();
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
            PlatformToday {
                status: if usable {
                    Availability::Operational
                } else {
                    Availability::Unavailable
                },
                downloads_today: today_count,
            },
        );
    }
    let limit = settings.storage_limit_bytes();
    let next = next_job
        .as_ref()
        .and_then(|job| job.state.next_run.map(|at| (at, job)))
        .map(|(at, job)| NextTask {
            job_id: job.id.clone(),
            job_name: job.spec.name.clone(),
            scheduled_time: at,
            in_seconds: (at - now).num_seconds().max(0),
        });
    Ok(warp::reply::json(&Overview {
        downloads: PeriodCounts {
            today: today.total,
            week: week.total,
            month: month.total,
            total: total.total,
        },
        queue: QueueSummary {
            pending: counts.pending,
            downloading: counts.downloading,
            paused: counts.paused,
            failed: counts.failed,
        },
        success_rate: PeriodRates {
            today: today.success_rate(),
            week: week.success_rate(),
            month: month.success_rate(),
        },
        storage: StorageUse {
            used_bytes: used,
            used_human: human_bytes(used),
            limit_bytes: limit,
            limit_human: limit.map(human_bytes),
            percent: limit.map(|limit| (used as f64 * 1000.0 / limit as f64).round() / 10.0),
        },
        platforms,
        next_scheduled_task: next,
    })
    .into_response())
}

/// Downloads over time
#[utoipa::path(get, path = "/api/v1/stats/timeline", tag = "stats", security(("bearer" = [])),
    params(TimelineQuery),
    responses((status = 200, description = "One point per bucket", body = Timeline)))]
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
    Ok(warp::reply::json(&Timeline { timeline: points }).into_response())
}
