//! The deadlines of one client connection and the answer to a connection
//! beyond the cap.
//!
//! A connection is given [`ConnectionLimits::header_read_timeout`] to send
//! the headers of a request (from the accept for its first request, from
//! the first byte for later ones) and [`ConnectionLimits::idle_timeout`] to
//! start a new request once its last response has been sent. While a
//! request is handled or its response streams, no deadline runs.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a
//! kept-alive connection waits for its next request (so idle connections
//! would be cut at the header timeout, not the idle one), and it does not
//! cover the protocol detection of hyper-util's HTTP/1 + HTTP/2 builder,
//! where a socket that never sends a byte would wait forever.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::{Duration, Instant};

use crate::config::ConnectionLimits;
use crate::error::{ApiError, codes};

/// What a connection is doing, for its deadline.
#[derive(Debug)]
struct Phase {
    /// Requests being handled or responses being sent.
    in_flight: u32,
    /// When the current request head started arriving (the accept for the
    /// first request), while no request is in flight.
    head_since: Option<Instant>,
    /// When the last response finished.
    idle_since: Instant,
}

/// The activity of one connection, shared by its socket, its requests and
/// its watchdog ([`Activity::expired`]).
#[derive(Debug)]
pub(crate) struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Activity {
    /// A connection accepted now: its first request head is due within the
    /// header timeout.
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            phase: Mutex::new(Phase {
                in_flight: 0,
                head_since: Some(now),
                idle_since: now,
            }),
            changed: Notify::new(),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // The phase is plain data: a panic elsewhere cannot leave it torn.
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived: while idle, they start a request head.
    fn on_read(&self) {
        let mut phase = self.phase();
        if phase.in_flight == 0 && phase.head_since.is_none() {
            phase.head_since = Some(Instant::now());
            drop(phase);
            self.changed.notify_waiters();
        }
    }

    /// A request's head is complete and it is being handled; the returned
    /// guard ends it (hold it until the response body is sent).
    pub(crate) fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut phase = self.phase();
        phase.in_flight += 1;
        phase.head_since = None;
        drop(phase);
        self.changed.notify_waiters();
        RequestGuard {
            activity: Arc::clone(self),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let phase = self.phase();
        if phase.in_flight > 0 {
            None
        } else if let Some(since) = phase.head_since {
            Some(since + self.header_read_timeout)
        } else {
            Some(phase.idle_since + self.idle_timeout)
        }
    }

    /// Completes when the connection has missed its deadline.
    pub(crate) async fn expired(&self) {
        loop {
            // Registered before the phase is read, so no change is missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline() {
                None => changed.await,
                Some(deadline) if Instant::now() >= deadline => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// One request in flight; dropping it (when the response body has been
/// sent, or the request was abandoned) may start the idle deadline.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut phase = self.activity.phase();
        phase.in_flight = phase.in_flight.saturating_sub(1);
        if phase.in_flight == 0 {
            phase.idle_since = Instant::now();
        }
        drop(phase);
        self.activity.changed.notify_waiters();
    }
}

/// A response body that keeps its request in flight until it is sent.
#[derive(Debug)]
pub(crate) struct TrackedBody<B> {
    body: B,
    _request: RequestGuard,
}

impl<B> TrackedBody<B> {
    /// `body`, ending `request` when it is dropped.
    pub(crate) fn new(body: B, request: RequestGuard) -> Self {
        Self {
            body,
            _request: request,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client socket, telling its [`Activity`] when bytes arrive and
/// holding its place under the connection cap until it is closed (an
/// upgraded WebSocket keeps it too).
#[derive(Debug)]
pub(crate) struct TrackedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl TrackedIo {
    pub(crate) fn new(
        stream: TcpStream,
        activity: Arc<Activity>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            stream,
            activity,
            _slot: slot,
        }
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How long a refused connection is given to send its request and read
/// the answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers a connection beyond the cap with `503 TOO_MANY_CONNECTIONS`
/// (the error body, `Retry-After`, `Connection: close`) and closes it.
pub(crate) async fn refuse_over_capacity(mut stream: TcpStream, max_connections: usize) {
    let response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::TOO_MANY_CONNECTIONS,
        format!("the server has {max_connections} connections open; retry shortly"),
    )
    .to_response();
    let bytes = raw_response(response).await;
    // Read (part of) the request first: closing a socket with unread bytes
    // resets it, and the client would see the reset instead of the answer.
    let mut request = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, stream.read(&mut request)).await;
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// `response` as HTTP/1.1 bytes, closing the connection.
async fn raw_response(response: warp::reply::Response) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let reason = parts.status.canonical_reason().unwrap_or("");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_u16());
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH || name == http::header::CONNECTION {
            continue;
        }
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// A response whose body keeps `request` in flight until it is sent.
pub(crate) fn tracked<B>(response: Response<B>, request: RequestGuard) -> Response<TrackedBody<B>> {
    response.map(|body| TrackedBody::new(body, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_expires_at_the_header_timeout() {
        let activity = Activity::new(limits());
        let opened = Instant::now();
        activity.expired().await;
        assert_eq!(opened.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_runs_while_a_request_is_in_flight() {
        let activity = Activity::new(limits());
        let request = activity.request_started();
        assert_eq!(activity.deadline(), None);
        tokio::time::sleep(Duration::from_secs(300)).await;
        let finished = Instant::now();
        drop(request);
        assert_eq!(
            activity.deadline(),
            Some(finished + Duration::from_secs(60)),
            "idle timeout from the end of the response"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        activity.on_read();
        assert_eq!(
            activity.deadline(),
            Some(finished + Duration::from_secs(15)),
            "the next head is due within the header timeout of its first byte"
        );
        activity.on_read();
        assert_eq!(
            activity.deadline(),
            Some(finished + Duration::from_secs(15)),
            "more bytes of the same head do not extend it"
        );
        let _next = activity.request_started();
        assert_eq!(activity.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_kept_alive_connection_expires_at_the_idle_timeout() {
        let activity = Activity::new(limits());
        drop(activity.request_started());
        let idle = Instant::now();
        let watchdog = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { activity.expired().await })
        };
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(!watchdog.is_finished());
        watchdog.await.unwrap();
        assert_eq!(idle.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn the_refusal_is_an_error_body_that_closes() {
        let response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TOO_MANY_CONNECTIONS,
            "full",
        )
        .to_response();
        let text = String::from_utf8(raw_response(response).await).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("connection: close\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error_code"], codes::TOO_MANY_CONNECTIONS);
    }
}
