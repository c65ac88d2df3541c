//! Test helpers for downloaders and embedders (feature `testkit`): a local
//! fixture HTTP server that can misbehave the way real servers do, and an
//! engine on the in-memory store with short timings.

#[cfg(feature = "s3")]
pub mod s3;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::SettingsHandle;
use crate::downloader::{Context, Registry, TransferProgress};
use crate::engine::{Engine, EngineTiming, RetryPolicy};
use crate::events::BroadcastBus;
use crate::fetch::HttpClient;
use crate::model::{Download, DownloadFilter, Page, Paged, QueueItem, Settings};
use crate::store::{DownloadRepo, MemoryStore, QueueRepo, StateRepo};

/// A downloader's [`Context`] for calling it directly: the HTTP client of
/// `settings.network`, the system clock, no cancellation, and `state` for
/// what the downloader keeps between runs.
///
/// # Panics
///
/// When the network settings cannot build a client (a bad proxy URL).
pub fn context(settings: Settings, state: Arc<dyn StateRepo>) -> Context {
    Context {
        http: HttpClient::new(&settings.network).expect("an HTTP client from the network settings"),
        settings: Arc::new(settings),
        cancel: CancellationToken::new(),
        clock: Arc::new(SystemClock),
        state,
        progress: Arc::new(TransferProgress::new()),
    }
}

/// How a fixture answers one request.
#[derive(Debug, Clone)]
pub struct Fixture {
    status: u16,
    body: Bytes,
    headers: Vec<(String, String)>,
    ranges: bool,
    /// Answer the first `n` requests with this status (and `Retry-After` if set) instead.
    fail_first: Vec<(u16, Option<u64>)>,
    /// Cut the body after this many bytes for the first `n` requests.
    truncate_first: Vec<usize>,
    /// Pause between chunks of `chunk` bytes.
    chunk: usize,
    delay: Duration,
}

impl Fixture {
    /// A 200 with this body, served in 64 KiB chunks, Range requests honoured.
    pub fn bytes(body: impl Into<Bytes>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            headers: Vec::new(),
            ranges: true,
            fail_first: Vec::new(),
            truncate_first: Vec::new(),
            chunk: 64 * 1024,
            delay: Duration::ZERO,
        }
    }

    /// A response with this status and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::bytes(Bytes::new())
        }
    }

    /// An HTML page.
    pub fn html(body: impl Into<String>) -> Self {
        Self::bytes(body.into()).header("content-type", "text/html; charset=utf-8")
    }

    /// A JSON document.
    pub fn json(value: &serde_json::Value) -> Self {
        Self::bytes(value.to_string()).header("content-type", "application/json")
    }

    /// A redirect to `location`.
    pub fn redirect(location: &str) -> Self {
        Self::status(302).header("location", location)
    }

    /// Adds a response header (replacing none: headers may repeat).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Ignore `Range` headers (always send the whole body with 200).
    pub fn without_ranges(mut self) -> Self {
        self.ranges = false;
        self
    }

    /// Answer the next request with `status` (and `Retry-After: secs`) before succeeding.
    pub fn then_fail_once(mut self, status: u16, retry_after: Option<u64>) -> Self {
        self.fail_first.push((status, retry_after));
        self
    }

    /// Cut the next response's body after `bytes` bytes (the connection closes early).
    pub fn then_truncate_once(mut self, bytes: usize) -> Self {
        self.truncate_first.push(bytes);
        self
    }

    /// Send the body in chunks of `chunk` bytes with `delay` between them.
    pub fn slow(mut self, chunk: usize, delay: Duration) -> Self {
        self.chunk = chunk.max(1);
        self.delay = delay;
        self
    }
}

#[derive(Debug, Default)]
struct Routes {
    fixtures: HashMap<String, Fixture>,
    hits: HashMap<String, usize>,
    ranges_asked: HashMap<String, Vec<String>>,
    /// Requests being answered now (until their body is sent or dropped).
    in_flight: usize,
    most_in_flight: usize,
}

/// Counts one request as being answered while it lives.
struct Answering(Arc<Mutex<Routes>>);

impl Answering {
    fn begin(routes: &Arc<Mutex<Routes>>) -> Self {
        let mut state = routes.lock().expect("routes lock");
        state.in_flight += 1;
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        Self(Arc::clone(routes))
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.lock().expect("routes lock").in_flight -= 1;
    }
}

/// A local HTTP/1.1 server answering from [`Fixture`]s by path (and query).
#[derive(Debug, Clone)]
pub struct FixtureServer {
    addr: SocketAddr,
    routes: Arc<Mutex<Routes>>,
    stop: CancellationToken,
}

impl FixtureServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let routes = Arc::new(Mutex::new(Routes::default()));
        let stop = CancellationToken::new();
        let server = Self {
            addr,
            routes: Arc::clone(&routes),
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let routes = Arc::clone(&routes);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(Arc::clone(&routes), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    /// Serves `fixture` at `path` (which may include a query string).
    pub fn route(&self, path: &str, fixture: Fixture) -> &Self {
        self.routes
            .lock()
            .expect("routes lock")
            .fixtures
            .insert(path.to_owned(), fixture);
        self
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The loopback address and port the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.routes
            .lock()
            .expect("routes lock")
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The `Range` headers received for `path`, in order.
    pub fn ranges(&self, path: &str) -> Vec<String> {
        self.routes
            .lock()
            .expect("routes lock")
            .ranges_asked
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// The most requests this server was answering at once, counting each
    /// from its arrival until its body was sent or the client went away.
    pub fn most_in_flight(&self) -> usize {
        self.routes.lock().expect("routes lock").most_in_flight
    }

    /// Stops accepting connections; connections already open finish their request.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

async fn answer(
    routes: Arc<Mutex<Routes>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let answering = Answering::begin(&routes);
    let key = match request.uri().query() {
        Some(query) => format!("{}?{query}", request.uri().path()),
        None => request.uri().path().to_owned(),
    };
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (fixture, failure, truncate) = {
        let mut routes = routes.lock().expect("routes lock");
        let path = request.uri().path().to_owned();
        let found = if routes.fixtures.contains_key(&key) {
            key.clone()
        } else {
            path
        };
        *routes.hits.entry(found.clone()).or_default() += 1;
        if let Some(range) = &range {
            routes
                .ranges_asked
                .entry(found.clone())
                .or_default()
                .push(range.clone());
        }
        match routes.fixtures.get_mut(&found) {
            None => (None, None, None),
            Some(fixture) => {
                let failure =
                    (!fixture.fail_first.is_empty()).then(|| fixture.fail_first.remove(0));
                let truncate = if failure.is_none() && !fixture.truncate_first.is_empty() {
                    Some(fixture.truncate_first.remove(0))
                } else {
                    None
                };
                (Some(fixture.clone()), failure, truncate)
            }
        }
    };
    let Some(fixture) = fixture else {
        return Ok(plain(StatusCode::NOT_FOUND, "no fixture here"));
    };
    if let Some((status, retry_after)) = failure {
        let mut response = plain(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "fixture failure",
        );
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return Ok(response);
    }
    let total = fixture.body.len();
    let mut start = 0usize;
    let mut status = StatusCode::from_u16(fixture.status).unwrap_or(StatusCode::OK);
    if fixture.ranges
        && status == StatusCode::OK
        && let Some(from) = range.as_deref().and_then(parse_range_start)
    {
        if from >= total {
            let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "");
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{total}")).expect("header"),
            );
            return Ok(response);
        }
        start = from;
        status = StatusCode::PARTIAL_CONTENT;
    }
    let body = fixture.body.slice(start..);
    let declared = body.len();
    let send = truncate.map_or(declared, |cut| cut.saturating_sub(start).min(declared));
    let chunk = fixture.chunk;
    let delay = fixture.delay;
    let cut_short = send < declared;
    let stream = futures::stream::unfold(0usize, move |offset| {
        let body = body.clone();
        // The request counts as answered until the stream ends or is dropped.
        let _answering = &answering;
        async move {
            if offset >= send {
                if cut_short && offset < declared {
                    // Let the bytes sent so far reach the client before the connection drops.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Some((
                        Err(std::io::Error::other("fixture cut the body short")),
                        declared,
                    ));
                }
                return None;
            }
            if !delay.is_zero() && offset > 0 {
                tokio::time::sleep(delay).await;
            }
            let end = (offset + chunk).min(send);
            Some((Ok(Frame::data(body.slice(offset..end))), end))
        }
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
    if fixture.ranges {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{total}", total.saturating_sub(1));
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("header"),
        );
    }
    for (name, value) in &fixture.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(
        Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {}),
    ));
    *response.status_mut() = status;
    response
}

fn parse_range_start(value: &str) -> Option<usize> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, _) = spec.split_once('-')?;
    start.trim().parse().ok()
}

/// An engine on a fresh [`MemoryStore`] and [`BroadcastBus`], with short
/// leases and retry delays, downloading into `root`.
#[derive(Debug, Clone)]
pub struct TestEngine {
    /// The engine; start it with [`Engine::run`].
    pub engine: Engine,
    /// The in-memory store the engine uses, for seeding and inspecting rows.
    pub store: Arc<MemoryStore>,
    /// The bus the engine publishes on; subscribe before queueing to see every event.
    pub events: Arc<BroadcastBus>,
    /// The engine's live settings, defaults to begin with.
    pub settings: SettingsHandle,
    /// The downloaders the engine and [`TestEngine::queue`] know.
    pub registry: Arc<Registry>,
}

impl TestEngine {
    /// Builds one with the built-in downloaders.
    pub fn new(root: &Path) -> Self {
        Self::with_registry(root, Registry::builtin())
    }

    /// Builds one with only the downloaders of `registry` (a plugin under test).
    pub fn with_registry(root: &Path, registry: Registry) -> Self {
        Self::sharing(
            root,
            registry,
            Arc::new(MemoryStore::new()),
            Arc::new(BroadcastBus::default()),
            "test",
        )
    }

    /// Another engine on the same store and bus (a second worker process).
    pub fn sharing(
        root: &Path,
        registry: Registry,
        store: Arc<MemoryStore>,
        events: Arc<BroadcastBus>,
        name: &str,
    ) -> Self {
        Self::assemble(registry, store, events, name, |engine| {
            engine.download_root(root)
        })
    }

    /// An engine keeping its media in `storage` (an S3 bucket), with the
    /// built-in downloaders.
    pub fn on_storage(
        storage: Arc<dyn crate::storage::MediaStorage>,
        store: Arc<MemoryStore>,
        events: Arc<BroadcastBus>,
        name: &str,
    ) -> Self {
        Self::assemble(Registry::builtin(), store, events, name, |engine| {
            engine.storage(storage)
        })
    }

    fn assemble(
        registry: Registry,
        store: Arc<MemoryStore>,
        events: Arc<BroadcastBus>,
        name: &str,
        media: impl FnOnce(crate::engine::EngineBuilder) -> crate::engine::EngineBuilder,
    ) -> Self {
        let settings = SettingsHandle::new(Settings::default());
        let registry = Arc::new(registry);
        let engine = media(Engine::builder())
            .store(Arc::clone(&store) as Arc<dyn crate::store::Store>)
            .events(Arc::clone(&events) as Arc<dyn crate::events::EventBus>)
            .registry(Arc::clone(&registry))
            .settings(settings.clone())
            .name(name)
            .retry_policy(RetryPolicy {
                base: Duration::from_millis(20),
                max: Duration::from_millis(200),
            })
            .timing(EngineTiming {
                lease: Duration::from_secs(5),
                renew_every: Duration::from_millis(200),
                poll_every: Duration::from_millis(20),
                reap_every: Duration::from_millis(100),
                storage_wait: Duration::from_millis(200),
            })
            .build()
            .expect("engine builds");
        Self {
            engine,
            store,
            events,
            settings,
            registry,
        }
    }

    /// Starts the engine on a task of its own; cancel the token to stop it,
    /// then await the handle for how the run ended.
    pub fn start(
        &self,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), crate::Error>>,
    ) {
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn({
            let engine = self.engine.clone();
            let shutdown = shutdown.clone();
            async move { engine.run(shutdown).await }
        });
        (shutdown, runner)
    }

    /// Runs the engine until every queue item of `ids` is finished (or a
    /// minute passes), stops it, and returns the items as they are then, in order.
    ///
    /// # Panics
    ///
    /// When the store cannot read an item or the engine fails.
    pub async fn run_until_finished(&self, ids: &[i64]) -> Vec<QueueItem> {
        let (shutdown, runner) = self.start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let items = loop {
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                items.push(self.store.get_queue_item(*id).await.expect("queue item"));
            }
            if items.iter().all(|item| item.status.is_finished())
                || tokio::time::Instant::now() > deadline
            {
                break items;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        shutdown.cancel();
        runner.await.expect("engine task").expect("engine run");
        items
    }

    /// Every download record (up to 1,000), newest first, and their total.
    ///
    /// # Panics
    ///
    /// When the store cannot list them.
    pub async fn downloads(&self) -> Paged<Download> {
        self.store
            .list_downloads(&DownloadFilter::default(), Page::new(1, 1000))
            .await
            .expect("download listing")
    }

    /// A queue service over the same store, bus and registry.
    pub fn queue(&self) -> crate::queue::QueueService {
        crate::queue::QueueService::new(
            Arc::clone(&self.store) as Arc<dyn crate::store::Store>,
            Arc::clone(&self.events) as Arc<dyn crate::events::EventBus>,
            Arc::clone(&self.registry),
            self.settings.clone(),
            Arc::new(crate::clock::SystemClock),
        )
    }
}
