//! `GET /health`: unauthenticated liveness.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

/// `200 {"status":"ok"}` once the server accepts requests.
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("health")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
        .boxed()
}
