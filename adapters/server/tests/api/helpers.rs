//! `spawn_app`: a server in this process on port 0 with its own data dir
//! (SQLite) or its own fresh PostgreSQL database, and a client for it.

use std::path::PathBuf;
use std::sync::Arc;

use mediadl_server::{LogCapture, RateLimits, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Where a server keeps its data; kept across restarts.
pub struct Backing {
    pub dir: tempfile::TempDir,
    pub pg: Option<Arc<mediadl_store::testing::TestDatabase>>,
}

impl Backing {
    pub async fn new(db: Db) -> Self {
        let pg = match db {
            Db::Sqlite => None,
            // Fails (not skips) when PostgreSQL is unreachable.
            Db::Postgres => Some(Arc::new(
                mediadl_store::testing::fresh_pg_database()
                    .await
                    .expect("PostgreSQL at 127.0.0.1:5432 for the server tests"),
            )),
        };
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            pg,
        }
    }

    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.dir.path().join("data"));
        config.database_url = self.pg.as_ref().map(|db| db.url().to_string());
        config.admin.password = Some(ADMIN_PASSWORD.into());
        // Queue items stay where the test puts them; the download scenario
        // turns the engine on.
        config.run_engine = false;
        config.rate_limits = RateLimits {
            public_per_hour: 100_000,
            authenticated_per_hour: 100_000,
            websocket_per_user: 10,
        };
        // A client that failed three logins waits an hour: tests of the
        // lockout never depend on how fast the machine answers.
        config.lockout.first_delay = std::time::Duration::from_secs(3600);
        config
    }
}

pub struct TestApp {
    pub base: String,
    pub ws_base: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<Result<(), mediadl_server::ServerError>>>,
    pub data_dir: PathBuf,
}

impl TestApp {
    pub async fn start(config: ServerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let data_dir = config.data_dir.clone();
        let handle = tokio::spawn(mediadl_server::run(listener, config, shutdown.clone()));
        let app = Self {
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            client: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
            data_dir,
        };
        // Ready once health answers.
        for _ in 0..200 {
            if let Ok(response) = app.client.get(app.url("/api/v1/health")).send().await
                && response.status() == StatusCode::OK
            {
                return app;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server did not come up");
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let result = self.handle.take().unwrap().await.unwrap();
        result.expect("server exits cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    /// Calls and checks the answer is `422 VALIDATION_ERROR` with the spec's
    /// error body; returns the body.
    pub async fn expect_invalid(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let what = format!("{method} {path} {body:?}");
        let (status, headers, reply) = self.call(method, path, Some(token), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what} → {reply}");
        assert_error(&headers, &reply, "VALIDATION_ERROR");
        reply
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.call(Method::GET, path, Some(token), None).await;
        (status, body)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.call(Method::POST, path, Some(token), Some(body)).await;
        (status, body)
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        let (status, _, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates a user with `role` and returns their access token.
    pub async fn user_token(&self, admin: &str, username: &str, role: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/users",
                admin,
                json!({"username": username, "password": "password-123", "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.login(username, "password-123").await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Checks the spec's error body and that `X-Request-Id` carries its id.
pub fn assert_error(headers: &reqwest::header::HeaderMap, body: &Value, code: &str) {
    assert_eq!(body["error_code"], code, "{body}");
    assert!(
        body["detail"].is_string() && body["timestamp"].is_string(),
        "{body}"
    );
    let id = headers
        .get("x-request-id")
        .expect("X-Request-Id")
        .to_str()
        .unwrap();
    assert_eq!(body["request_id"], id);
}

/// A server with stored logs: the capture layer is this test thread's
/// default subscriber (tests run on a current-thread runtime).
pub fn log_capture() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::layer::SubscriberExt;
    // tracing caches per callsite whether anyone listens, from the
    // subscribers alive when it is first hit (or rebuilt). A callsite first
    // hit on another test's thread while no scoped subscriber lived was
    // cached as "never" and stayed so, and the capture below missed its
    // events for good. A global subscriber that takes everything (and keeps
    // nothing) makes every callsite "ask each time".
    static LISTEN_EVERYWHERE: std::sync::Once = std::sync::Once::new();
    LISTEN_EVERYWHERE.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry())
            .expect("no other global subscriber in the api tests");
    });
    let capture = LogCapture::new();
    let subscriber = tracing_subscriber::registry().with(capture.layer());
    let guard = tracing::subscriber::set_default(subscriber);
    (capture, guard)
}

/// `/downloads/{id}/file` serves `body` whole, a range of it (206 with its
/// Content-Range), and refuses a range past its end (416): on every storage.
pub async fn assert_serves_ranges(app: &TestApp, id: i64, token: &str, body: &[u8]) {
    let get = |range: Option<String>| {
        let mut request = app
            .client
            .get(app.url(&format!("/api/v1/downloads/{id}/file")))
            .bearer_auth(token);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send()
    };
    let response = get(None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    assert_eq!(response.bytes().await.unwrap().as_ref(), body);
    let response = get(Some("bytes=1-8".into())).await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 1-8/{}", body.len())
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &body[1..=8]);
    let response = get(Some(format!("bytes={}-", body.len() + 10)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}
