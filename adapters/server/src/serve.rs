//! The connection layer around the warp filter: accepts connections until
//! shutdown (then lets in-flight requests finish), caps how many are open
//! and closes those that miss their header or idle deadline
//! ([`crate::connection`]), gives every request an id (`X-Request-Id`),
//! applies the body size limit and the rate limits before any route runs,
//! and adds the rate-limit headers to the answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::auth::{TokenKind, bearer_token};
use crate::config::ConnectionLimits;
use crate::connection::{Activity, TrackedIo, refuse_over_capacity, tracked};
use crate::error::{ApiError, codes};
use crate::ratelimit::RateKey;
use crate::request::{MAX_BODY_BYTES, RequestInfo, with_request_id};
use crate::state::AppState;

/// Serves `filter` on `listener` until `shutdown`, then waits up to `grace`
/// for open requests.
pub(crate) async fn serve(
    listener: TcpListener,
    filter: BoxedFilter<(Response,)>,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
    limits: ConnectionLimits,
) {
    let graceful = GracefulShutdown::new();
    let open_connections = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "mediadl_server::serve", error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&open_connections).try_acquire_owned() else {
            tokio::spawn(refuse_over_capacity(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let filter = filter.clone();
        let state = state.clone();
        let activity = Activity::new(limits);
        let service = {
            let activity = Arc::clone(&activity);
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let in_flight = activity.request_started();
                let svc = warp::service(filter.clone());
                let state = state.clone();
                async move {
                    let response = handle(request, remote, state, svc).await;
                    Ok::<_, Infallible>(tracked(response, in_flight))
                }
            })
        };
        let io = TokioIo::new(TrackedIo::new(stream, Arc::clone(&activity), slot));
        let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            // An upgraded connection (WebSocket) leaves this select when the
            // upgrade completes; its own pings and auth deadline take over.
            tokio::select! {
                result = watched => if let Err(err) = result {
                    tracing::debug!(target: "mediadl_server::serve", error = %err, "connection ended with an error");
                },
                () = activity.expired() => {
                    tracing::debug!(target: "mediadl_server::serve", client = %remote, "closing a connection that missed its header or idle deadline");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "mediadl_server::serve", "open connections did not finish in time");
    }
}

/// Paths counted by the rate limiter: the API and the WebSocket, not the
/// dashboard's static files, the API docs or the health probes.
fn is_rate_limited(path: &str) -> bool {
    (path.starts_with("/api/") || path.starts_with("/ws/"))
        && !crate::routes::health::PROBE_PATHS.contains(&path)
        && !path.starts_with("/api/docs")
}

/// A client-supplied request id is kept when it is short and plain.
fn request_id_from(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Who the request counts against: the user of a valid access token (in
/// the `Authorization` header or, for the WebSocket, `?token=`) or of a
/// valid signed media link, else the client address.
fn rate_key(request: &Request<Incoming>, remote: SocketAddr, state: &AppState) -> RateKey {
    if let Some(user) = state.media_links.user_of_request(
        request.uri().path(),
        request.uri().query().unwrap_or(""),
        state.clock.now(),
    ) {
        return RateKey::User(user);
    }
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let query_token = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
    });
    let token = bearer_token(header).map(str::to_owned).or(query_token);
    token
        .and_then(|token| state.auth.verify(&token, TokenKind::Access).ok())
        .and_then(|claims| claims.sub.parse().ok())
        .map_or(RateKey::Address(remote.ip()), RateKey::User)
}

async fn handle<S>(
    mut request: Request<Incoming>,
    remote: SocketAddr,
    state: AppState,
    mut svc: S,
) -> Response
where
    S: Service<Request<Limited<Incoming>>, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let request_id = request_id_from(&request);
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let route = crate::metrics::route_template(&path);
    // Every line logged while the request is handled carries its id, method
    // and path (JSON logs show them as span fields).
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path);
    let handled = with_request_id(request_id.clone(), async move {
        let rate =
            is_rate_limited(&path).then(|| state.limits.check(rate_key(&request, remote, &state)));
        let too_large = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|length| length > MAX_BODY_BYTES);
        let mut response = if let Some(retry_after) = rate.and_then(|rate| rate.retry_after) {
            ApiError::too_many(
                codes::RATE_LIMITED,
                "rate limit exceeded; see Retry-After",
                retry_after,
            )
            .to_response()
        } else if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY_BYTES} bytes"),
            )
            .to_response()
        } else {
            request.extensions_mut().insert(RequestInfo {
                request_id: request_id.clone(),
                client_addr: Some(remote),
            });
            let request = request.map(|body| Limited::new(body, MAX_BODY_BYTES as usize));
            match svc.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static(crate::openapi::allowed_methods(&path)),
            );
        }
        if let Some(rate) = rate {
            rate.apply(response.headers_mut());
        }
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
            response.headers_mut().insert(&X_REQUEST_ID, value);
        }
        tracing::debug!(
            target: "mediadl_server::access",
            status = response.status().as_u16(),
            "request"
        );
        state.metrics.http_request(
            route,
            method.as_str(),
            response.status().as_u16(),
            started.elapsed(),
        );
        response
    });
    handled.instrument(span).await
}
