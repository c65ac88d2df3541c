//! The HTTP API under `/api/v1`, one module per area of the spec. Each
//! area's `routes(state)` answers with a [`Response`]; failures are
//! [`ApiError`](crate::error::ApiError) rejections that
//! [`recover`](crate::error::recover) turns into the error body.
//!
//! Every operation is a handler carrying `#[utoipa::path]`: its method and
//! path are written there once, and `endpoint` / `endpoint_with` build
//! the warp filter from that declaration, so the OpenAPI document
//! ([`crate::openapi`]) and the routes cannot name different paths.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use utoipa::openapi::path::HttpMethod;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::state::AppState;

pub mod auth;
pub mod downloads;
pub mod health;
pub mod import;
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
        .or(stats::routes(state.clone()))
        .unify()
        .or(import::routes(state))
        .unify()
        .boxed()
}

/// `(method, path)` of every operation a filter was built for, methods in
/// lower case and paths as the document writes them.
static BUILT: LazyLock<Mutex<BTreeSet<(String, String)>>> = LazyLock::new(Mutex::default);

/// The operations the API's filters answer, as `(method, path)` pairs
/// (`("get", "/api/v1/queue/{id}")`): what [`api`] built so far in this
/// process. The route/document check compares it with the OpenAPI document.
pub fn built_operations() -> BTreeSet<(String, String)> {
    BUILT.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A documented path's segments: `Some(literal)` or `None` for a `{parameter}`.
fn segments(path: &str) -> Vec<Option<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
        .collect()
}

/// The parameter segments of `path` when it matches `pattern`. One trailing
/// slash is accepted and an empty parameter is not, as with `warp::path!`.
fn captures(pattern: &[Option<String>], path: &str) -> Option<Vec<String>> {
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() != pattern.len() {
        return None;
    }
    let mut params = Vec::new();
    for (expected, actual) in pattern.iter().zip(parts) {
        match expected {
            Some(literal) if literal == actual => {}
            None if !actual.is_empty() => params.push(actual.to_owned()),
            _ => return None,
        }
    }
    Some(params)
}

/// warp's filter for `method`: a wrong method is a `MethodNotAllowed`
/// rejection, which [`recover`](crate::error::recover) answers with 405.
fn method_filter(method: &HttpMethod) -> BoxedFilter<()> {
    match method {
        HttpMethod::Get => warp::get().boxed(),
        HttpMethod::Post => warp::post().boxed(),
        HttpMethod::Put => warp::put().boxed(),
        HttpMethod::Patch => warp::patch().boxed(),
        HttpMethod::Delete => warp::delete().boxed(),
        HttpMethod::Head => warp::head().boxed(),
        HttpMethod::Options => warp::options().boxed(),
        // warp has no TRACE filter and the API has no TRACE operation.
        HttpMethod::Trace => warp::any()
            .and_then(|| async { Err::<(), _>(warp::reject::not_found()) })
            .untuple_one()
            .boxed(),
    }
}

/// Matches the path of operation `P` (its `#[utoipa::path]`) and
/// extracts the path's parameter segments; records the operation as built.
fn path_of<P: utoipa::Path>() -> BoxedFilter<(Vec<String>,)> {
    let path = P::path();
    let pattern = Arc::new(segments(&path));
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    for method in P::methods() {
        built.insert((method_name(&method), path.clone()));
    }
    drop(built);
    warp::path::full()
        .and_then(move |full: warp::path::FullPath| {
            let found = captures(&pattern, full.as_str());
            async move { found.ok_or_else(warp::reject::not_found) }
        })
        .boxed()
}

/// Matches the method(s) of operation `P`.
fn method_of<P: utoipa::Path>() -> BoxedFilter<()> {
    P::methods()
        .iter()
        .map(method_filter)
        .reduce(|one, other| one.or(other).unify().boxed())
        .unwrap_or_else(|| method_filter(&HttpMethod::Trace))
}

/// The lower-case name of `method`, as the document's path items key it.
pub(crate) fn method_name(method: &HttpMethod) -> String {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Delete => "delete",
        HttpMethod::Options => "options",
        HttpMethod::Head => "head",
        HttpMethod::Patch => "patch",
        HttpMethod::Trace => "trace",
    }
    .to_owned()
}

/// The filter of operation `P`, a path without parameters.
pub(crate) fn endpoint<P: utoipa::Path>() -> BoxedFilter<()> {
    path_of::<P>()
        .and_then(|params: Vec<String>| async move {
            if params.is_empty() {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(method_of::<P>())
        .boxed()
}

/// The filter of operation `P`, a path with one parameter, extracted as `T`.
/// As with `warp::path!`, the path is matched (and the parameter parsed)
/// before the method: a segment `T` cannot parse is a 404, not a 405.
pub(crate) fn endpoint_with<P, T>() -> BoxedFilter<(T,)>
where
    P: utoipa::Path,
    T: FromStr + Send + 'static,
{
    path_of::<P>()
        .and_then(|params: Vec<String>| async move {
            match params.as_slice() {
                [one] => one.parse::<T>().map_err(|_| warp::reject::not_found()),
                _ => Err(warp::reject::not_found()),
            }
        })
        .and(method_of::<P>())
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_follow_the_pattern() {
        let pattern = segments("/api/v1/queue/{id}/retry");
        assert_eq!(
            captures(&pattern, "/api/v1/queue/17/retry"),
            Some(vec!["17".to_owned()])
        );
        assert_eq!(
            captures(&pattern, "/api/v1/queue/17/retry/"),
            Some(vec!["17".to_owned()])
        );
        assert_eq!(captures(&pattern, "/api/v1/queue//retry"), None);
        assert_eq!(captures(&pattern, "/api/v1/queue/17"), None);
        assert_eq!(captures(&pattern, "/api/v1/queue/17/retry/x"), None);
        assert_eq!(
            captures(&segments("/api/v1/queue"), "/api/v1/queue"),
            Some(vec![])
        );
    }
}
