//! `/notifications/*`: a test message through the configured transports,
//! and the delivery history of emails and webhooks. Both are `admin`
//! (the history names recipients and webhooks).
//!
//! * `POST /notifications/test` with `{"transport": "email"|"webhook"|"browser",
//!   "webhook": name}` (both optional; an empty body tests every transport
//!   set up) waits for the test deliveries (each bounded by its transport's
//!   timeout) and answers 200 with `{"success": true, "results": [...]}`.
//!   When a delivery fails it answers 502 `NOTIFICATION_FAILED` whose
//!   `detail` carries the SMTP server's or the receiver's words, with the
//!   same `results`. A transport that is not set up is a 422 naming the
//!   setting to fill in.
//! * `GET /notifications/deliveries?transport=&status=&limit=` lists the
//!   history, newest first, every attempt with its reason.

use bytes::Bytes;
use http::StatusCode;
use mediadl::notify::history::Delivery;
use mediadl::notify::{
    DeliveryFilter, DeliveryLog, DeliveryStatus, DeliveryTransport, TestError, TestOutcome,
    TestRequest, send_test,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin};
use crate::error::{ApiError, ApiResult, handle};
use crate::request::{body_bytes, parse_json, query};
use crate::routes::auth::with;
use crate::routes::endpoint;
use crate::state::AppState;

/// A test delivery failed; `detail` says why.
pub const NOTIFICATION_FAILED: &str = "NOTIFICATION_FAILED";

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = mediadl::notify::settings::MAX_HISTORY;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// Email or webhook.
    transport: Option<DeliveryTransport>,
    /// One status.
    status: Option<DeliveryStatus>,
    /// Entries to return.
    #[param(schema_with = limit_range)]
    limit: Option<u32>,
}

/// `limit`: 1 to the history's size, 100 by default.
fn limit_range() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_LIMIT))
        .default(Some(DEFAULT_LIMIT.into()))
        .build()
}

/// `POST /notifications/test` when every transport delivered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestResults {
    /// Always `true`.
    #[schema(schema_with = crate::openapi::always_true)]
    success: bool,
    /// What each transport did.
    results: Vec<TestOutcome>,
}

/// `GET /notifications/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryList {
    /// Deliveries, newest first.
    deliveries: Vec<Delivery>,
    /// Entries in `deliveries`.
    total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FailedTest<'a> {
    detail: &'a str,
    error_code: &'static str,
    timestamp: String,
    request_id: String,
    results: &'a [mediadl::notify::TestOutcome],
}

/// The `/notifications/*` routes (`admin` only).
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let test = endpoint::<__path_test>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(body_bytes())
        .and_then(|_: AuthUser, state, body| handle(test(state, body)));
    let deliveries = endpoint::<__path_deliveries>()
        .and(admin(state.clone()))
        .and(with(state))
        .and(query::<DeliveriesQuery>())
        .and_then(|_: AuthUser, state, q| handle(deliveries(state, q)));
    test.or(deliveries).unify().boxed()
}

/// Send a test notification through the configured transports
#[utoipa::path(post, path = "/api/v1/notifications/test", tag = "notifications", security(("bearer" = ["admin"])),
    request_body(content = Option<TestRequest>, description = "Which transports to try; all configured ones when absent"),
    responses(
        (status = 200, description = "Every transport delivered", body = TestResults),
        (status = 502, description = "A test delivery failed; `detail` says why", body = FailedTest),
    ))]
async fn test(state: AppState, body: Bytes) -> ApiResult {
    let request: TestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestRequest::default()
    } else {
        parse_json(&body)?
    };
    let settings = state.settings.current();
    let outcomes = send_test(
        state.store.clone(),
        state.events.as_ref(),
        state.clock.as_ref(),
        &settings,
        &request,
    )
    .await
    .map_err(|err| match err {
        TestError::NotConfigured { field, reason } => ApiError::validation(field, reason),
        TestError::UnknownWebhook(_) => ApiError::validation("webhook", err.to_string()),
        TestError::NotBuilt(..) => ApiError::validation("transport", err.to_string()),
    })?;
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.success)
        .map(|o| {
            format!(
                "{} to {}: {}",
                serde_json::to_value(o.transport)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                o.target,
                o.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if failures.is_empty() {
        let body = TestResults {
            success: true,
            results: outcomes,
        };
        return Ok(
            warp::reply::with_status(warp::reply::json(&body), StatusCode::OK).into_response(),
        );
    }
    // The error body of every failure, plus what each transport did.
    let error = ApiError::new(
        StatusCode::BAD_GATEWAY,
        NOTIFICATION_FAILED,
        failures.join("; "),
    );
    tracing::warn!(target: "mediadl_server::routes::notifications", detail = %error.detail, "test notification failed");
    let body = FailedTest {
        detail: &error.detail,
        error_code: NOTIFICATION_FAILED,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        request_id: crate::request::current_request_id(),
        results: &outcomes,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::BAD_GATEWAY).into_response())
}

/// Email and webhook delivery history, newest first
#[utoipa::path(get, path = "/api/v1/notifications/deliveries", tag = "notifications", security(("bearer" = ["admin"])),
    params(DeliveriesQuery),
    responses((status = 200, description = "The deliveries", body = DeliveryList)))]
async fn deliveries(state: AppState, q: DeliveriesQuery) -> ApiResult {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let log = DeliveryLog::new(state.store.clone());
    let list = log
        .list(&DeliveryFilter {
            transport: q.transport,
            status: q.status,
            limit,
        })
        .await
        .map_err(|err| match err {
            mediadl::notify::history::HistoryError::Store(store) => ApiError::from(store),
            other => ApiError::internal(other),
        })?;
    let body = DeliveryList {
        total: list.len(),
        deliveries: list,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::OK).into_response())
}
