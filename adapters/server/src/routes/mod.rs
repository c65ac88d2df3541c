//! The HTTP API under `/api/v1`, one module per area of the spec. Each
//! area's `routes(state)` matches paths relative to `/api/v1` and answers
//! with a [`Response`]; failures are [`ApiError`](crate::error::ApiError)
//! rejections that [`recover`](crate::error::recover) turns into the error body.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::state::AppState;

pub mod auth;
pub mod downloads;
pub mod health;
pub mod logs;
pub mod notifications;
pub mod platforms;
pub mod queue;
/// `/scheduler/*` and `POST /platforms/forum/monitor` (owned by the scheduler work).
pub mod scheduler;
pub mod settings;
pub mod stats;
pub mod users;

/// Every `/api/v1` route (without the `/api/v1` prefix), unrecovered.
pub fn api(state: AppState) -> BoxedFilter<(Response,)> {
    health::routes(state.clone())
        .or(auth::routes(state.clone()))
        .unify()
        .or(users::routes(state.clone()))
        .unify()
        .or(downloads::routes(state.clone()))
        .unify()
        .or(queue::routes(state.clone()))
        .unify()
        .or(scheduler::routes(state.clone()))
        .unify()
        .or(platforms::routes(state.clone()))
        .unify()
        .or(settings::routes(state.clone()))
        .unify()
        .or(logs::routes(state.clone()))
        .unify()
        .or(notifications::routes(state.clone()))
        .unify()
        .or(stats::routes(state))
        .unify()
        .boxed()
}
