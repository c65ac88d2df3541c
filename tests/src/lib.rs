//! Shared harness of the end-to-end tests (`tests/e2e/`): a real mediadl
//! server started in-process on port 0 with a fresh data directory, and a
//! local fixture site that serves media slowly enough for progress to be
//! seen. Nothing here fakes the server: the tests talk to it only over HTTP,
//! the WebSocket and a browser, as any client would.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Why the harness could not start something.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server never answered its health check; the text says what was seen.
    #[error("the server did not become ready: {0}")]
    NotReady(String),
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> HarnessError {
    move |source| HarnessError::Io { context, source }
}

/// The password of the bootstrap admin of every test server.
pub const ADMIN_PASSWORD: &str = "admin-password-e2e";

/// A running `mediadl serve` (in-process), stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// Where the server listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Keeps the data directory alive for the server's lifetime.
    pub data_dir: tempfile::TempDir,
    config: mediadl_server::ServerConfig,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), mediadl_server::ServerError>>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 with a fresh data directory (SQLite),
    /// admin `admin` / [`ADMIN_PASSWORD`], and generous rate limits (a
    /// browser test makes many requests; the limits have their own tests).
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_with(|_| {}).await
    }

    /// [`TestServer::start`] with the configuration adjusted by `adjust`
    /// (say, `run_engine = false` to keep queued items pending).
    pub async fn start_with(
        adjust: impl FnOnce(&mut mediadl_server::ServerConfig),
    ) -> Result<Self, HarnessError> {
        let data_dir = tempfile::tempdir().map_err(io("creating the data directory"))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding the server port"))?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the server port"))?;
        let mut config = mediadl_server::ServerConfig::new(data_dir.path());
        config.admin.username = "admin".into();
        config.admin.password = Some(ADMIN_PASSWORD.into());
        config.jwt_secret = Some("e2e-secret-e2e-secret-e2e-secret".into());
        config.rate_limits.public_per_hour = 100_000;
        config.rate_limits.authenticated_per_hour = 100_000;
        config.shutdown_grace = Duration::from_secs(2);
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(mediadl_server::run(
            listener,
            config.clone(),
            shutdown.clone(),
        ));
        let server = Self {
            addr,
            data_dir,
            config,
            shutdown,
            task: Some(task),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Stops the server (gracefully) and starts it again on the same
    /// address and data: clients see a restart, not a new server.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            // The outcome of the old run does not matter; it is gone either way.
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        // The port may linger for a moment after the old listener closes.
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) if attempts < 100 => {
                    attempts += 1;
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(source) => {
                    return Err(HarnessError::Io {
                        context: "binding the server port again",
                        source,
                    });
                }
            }
        };
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(mediadl_server::run(
            listener,
            self.config.clone(),
            self.shutdown.clone(),
        )));
        self.wait_ready().await
    }

    /// Stops the server and waits until it has let go of its port.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Starts a stopped server again (see [`TestServer::restart`]).
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        self.restart().await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `GET /api/v1/health` answers 200.
    async fn wait_ready(&self) -> Result<(), HarnessError> {
        let mut last = String::from("no answer");
        for _ in 0..200 {
            match raw_get(self.addr, "/api/v1/health").await {
                Ok((200, _)) => return Ok(()),
                Ok((status, _)) => last = format!("HTTP {status}"),
                Err(err) => last = err.to_string(),
            }
            if self.task.as_ref().is_some_and(|task| task.is_finished()) {
                return Err(HarnessError::NotReady("the server task ended".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(HarnessError::NotReady(last))
    }

    /// The data directory (database, downloads).
    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A minimal HTTP/1.1 GET returning status and body (readiness probe).
async fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, response))
}

/// One file the fixture site serves.
#[derive(Debug, Clone)]
pub struct FixtureFile {
    /// The URL path it is served at (`/media/a.jpg`).
    pub path: String,
    /// The `Content-Type` sent with it.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: Vec<u8>,
    /// The body is sent in this many pieces with `pause` between them, so a
    /// download takes a while and reports progress on the way.
    pub pieces: usize,
    /// The wait between two pieces.
    pub pause: Duration,
}

/// A local web site serving fixture files over plain HTTP/1.1.
#[derive(Debug)]
pub struct FixtureSite {
    /// Where the site listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl FixtureSite {
    /// Serves `files` on 127.0.0.1:0 until dropped; other paths are 404.
    pub async fn start(files: Vec<FixtureFile>) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding the fixture site"))?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the fixture port"))?;
        let stop = CancellationToken::new();
        let files = std::sync::Arc::new(files);
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let files = std::sync::Arc::clone(&files);
                tokio::spawn(async move {
                    // A client that hangs up mid-transfer is not an error here.
                    let _ = serve_fixture(stream, &files).await;
                });
            }
        });
        Ok(Self { addr, stop })
    }

    /// The URL of `path` on this site.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for FixtureSite {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve_fixture(stream: TcpStream, files: &[FixtureFile]) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let mut stream = reader.into_inner();
    let Some(file) = files.iter().find(|f| f.path == path) else {
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        file.content_type,
        file.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method == "HEAD" {
        return Ok(());
    }
    let piece = file.body.len().div_ceil(file.pieces.max(1)).max(1);
    for (index, chunk) in file.body.chunks(piece).enumerate() {
        if index > 0 {
            tokio::time::sleep(file.pause).await;
        }
        stream.write_all(chunk).await?;
        stream.flush().await?;
    }
    stream.shutdown().await
}

/// A PNG of `width`×`height` with a colourful, poorly compressible pattern
/// (so the file has some size and a real thumbnail can be made of it).
pub fn png_fixture(width: u32, height: u32) -> Result<Vec<u8>, image::ImageError> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let n = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ (x * y);
        image::Rgb([
            (n & 0xff) as u8,
            ((n >> 8) & 0xff) as u8,
            ((x + y) & 0xff) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}
