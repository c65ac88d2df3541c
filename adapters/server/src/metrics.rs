//! `GET /metrics`: the process's [`Metrics`] in the Prometheus text format,
//! behind an optional bearer token; the same on a listener of its own for
//! `mediadl worker --metrics-bind`; and the route template HTTP requests are
//! counted under.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use mediadl::{Metrics, Store};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::auth::bearer_token;
use crate::error::{ApiError, codes};
use crate::request::with_request_id;
use crate::ws::Connections;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// What `/metrics` answers from.
#[derive(Clone)]
pub struct MetricsSource {
    /// The series of this process.
    pub metrics: Metrics,
    /// Read at each scrape: queue depth, storage used, the pools.
    pub store: Arc<dyn Store>,
    /// When set, a scrape must send `Authorization: Bearer <token>`.
    pub token: Option<Arc<str>>,
    /// The server's WebSocket connections; `None` in a worker (it has none).
    pub connections: Option<Arc<Connections>>,
}

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSource")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Whether `given` is `expected`, in time independent of where they differ
/// (both are hashed first, so their lengths leak nothing either).
fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

impl MetricsSource {
    /// The scrape's answer for a request with `authorization`.
    pub async fn answer(&self, authorization: Option<&str>) -> Response {
        if let Some(expected) = &self.token
            && !bearer_token(authorization).is_some_and(|given| token_matches(given, expected))
        {
            let mut response = ApiError::unauthorized(
                codes::UNAUTHORIZED,
                "metrics need the bearer token set with --metrics-token (MEDIADL_METRICS_TOKEN)",
            )
            .to_response();
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return response;
        }
        if let Some(connections) = &self.connections {
            self.metrics
                .set_websocket_clients(u64::from(connections.total()));
        }
        let text = self.metrics.render(self.store.as_ref()).await;
        let mut response = Response::new(text.into());
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(mediadl::metrics::CONTENT_TYPE),
        );
        response
    }
}

/// `GET /metrics`.
pub fn route(source: MetricsSource) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .then(move |authorization: Option<String>| {
            let source = source.clone();
            async move { source.answer(authorization.as_deref()).await }
        })
        .boxed()
}

/// The API document's path templates with `:name` for `{name}`: braces
/// inside a label value trip simple Prometheus text parsers.
static ROUTE_LABELS: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    crate::openapi::path_templates()
        .map(|template| (template, template.replace('{', ":").replace('}', "")))
        .collect()
});

/// The template a request to `path` is counted under: the API document's
/// (`/api/v1/queue/:id`), never the raw path, so the series stay few.
pub fn route_template(path: &str) -> &'static str {
    if let Some(label) = crate::openapi::path_template(path).and_then(|t| ROUTE_LABELS.get(t)) {
        return label;
    }
    match path {
        PATH => PATH,
        "/ws/downloads" => "/ws/downloads",
        _ if path.starts_with("/api/docs") => "/api/docs",
        _ if path == "/api" || path.starts_with("/api/") || path.starts_with("/ws/") => "unmatched",
        _ => "dashboard",
    }
}

/// Serves `/metrics` alone on `listener` until `shutdown` (a `mediadl
/// worker`'s `--metrics-bind`). Every answer carries an `X-Request-Id`
/// (the one in an error body); other paths get the API's 404 body.
pub async fn serve_standalone(
    listener: TcpListener,
    source: MetricsSource,
    shutdown: CancellationToken,
) {
    let filter = route(source).recover(crate::error::recover).unify();
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(target: "mediadl_server::metrics", error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let svc = warp::service(filter.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut svc = svc.clone();
            async move {
                let id = uuid::Uuid::new_v4().to_string();
                let mut response = match with_request_id(id.clone(), svc.call(request)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if let Ok(value) = HeaderValue::from_str(&id) {
                    static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
                    response.headers_mut().insert(&X_REQUEST_ID, value);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = watched.await {
                tracing::debug!(target: "mediadl_server::metrics", error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // A scrape takes milliseconds; a client holding a connection open does not delay the stop.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_under_templates_never_raw_paths() {
        assert_eq!(route_template("/api/v1/queue/42"), "/api/v1/queue/:id");
        assert_eq!(route_template("/api/v1/queue/stats"), "/api/v1/queue/stats");
        assert_eq!(
            route_template("/api/v1/downloads/7/thumbnail"),
            "/api/v1/downloads/:id/thumbnail"
        );
        assert_eq!(route_template("/metrics"), "/metrics");
        assert_eq!(route_template("/ws/downloads"), "/ws/downloads");
        assert_eq!(route_template("/api/docs/index.html"), "/api/docs");
        assert_eq!(route_template("/api/v1/no/such/9"), "unmatched");
        assert_eq!(route_template("/ws/elsewhere"), "unmatched");
        assert_eq!(route_template("/assets/app.1234.js"), "dashboard");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("scrape-secret", "scrape-secret"));
        assert!(!token_matches("scrape-secre", "scrape-secret"));
        assert!(!token_matches("scrape-secret-", "scrape-secret"));
        assert!(!token_matches("", "scrape-secret"));
    }
}
