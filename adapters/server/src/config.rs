//! How a server is configured: [`ServerConfig`], filled by the binary from
//! flags and environment (or by an embedder or a test by hand).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mediadl::Registry;
use serde_json::Value;

use crate::ServerError;
use crate::logs::LogCapture;

/// Request limits per client (the spec's "Rate Limiting").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per hour for calls without a valid token, per client address.
    pub public_per_hour: u32,
    /// Requests per hour for authenticated calls, per user.
    pub authenticated_per_hour: u32,
    /// Concurrent WebSocket connections per user.
    pub websocket_per_user: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            public_per_hour: 100,
            authenticated_per_hour: 1000,
            websocket_per_user: 10,
        }
    }
}

/// Failed-login throttling (see [`crate::lockout`]): per username and
/// client network, growing waits after a few failures; an account-wide
/// lock only when many networks fail at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLockout {
    /// Failures of one client for one username answered without a wait.
    pub free_failures: u32,
    /// The wait after the last free failure; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest wait asked of one client.
    pub max_delay: Duration,
    /// Failures for one username from all clients within an hour that lock
    /// the account for every client that has failed; `None`: ten times the
    /// public rate limit (`--rate-limit-public`), far above what one
    /// address may send.
    pub account_lock_failures: Option<u32>,
    /// How long such an account lock lasts.
    pub account_lock_for: Duration,
}

impl Default for LoginLockout {
    fn default() -> Self {
        Self {
            free_failures: 3,
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(15 * 60),
            account_lock_failures: None,
            account_lock_for: Duration::from_secs(15 * 60),
        }
    }
}

/// Limits on client connections, so idle or slow clients cannot crowd out
/// the others (enforced by the connection layer, `serve.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a client may take to send the headers of a request, counted
    /// from its first byte (or, for a new connection, from the accept).
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Most connections open at once; a connection beyond it is answered
    /// `503 TOO_MANY_CONNECTIONS` and closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The admin created on first start when there are no users.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminBootstrap {
    /// Login name of the first admin (`admin` by default).
    pub username: String,
    /// `None`: a random password is generated and printed once to the log.
    pub password: Option<String>,
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminBootstrap")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for AdminBootstrap {
    fn default() -> Self {
        Self {
            username: "admin".into(),
            password: None,
        }
    }
}

/// Everything `run` needs besides the listener.
#[derive(Clone)]
pub struct ServerConfig {
    /// Holds `mediadl.db`, the generated JWT secret, thumbnails.
    pub data_dir: PathBuf,
    /// Root of the downloads; `<data_dir>/downloads` when `None` (the
    /// settings' `general.download_directory` wins when set).
    pub download_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`; `<data_dir>/mediadl.db` when `None`.
    pub database_url: Option<String>,
    /// Signs tokens; generated once and kept in `<data_dir>/jwt_secret` when `None`.
    pub jwt_secret: Option<String>,
    /// The admin created on first start when there are no users.
    pub admin: AdminBootstrap,
    /// Requests per client the API accepts.
    pub rate_limits: RateLimits,
    /// Failed-login lockout.
    pub lockout: LoginLockout,
    /// Timeouts and the cap on open connections.
    pub connection_limits: ConnectionLimits,
    /// Settings from a config file, applied over the stored ones (not saved).
    pub settings_overrides: Option<Value>,
    /// The downloaders; embedders add their own.
    pub registry: Arc<Registry>,
    /// Where tracing events are picked up to be stored as logs.
    pub log_capture: Option<LogCapture>,
    /// Whether this process runs download workers (off for API-only replicas).
    pub run_engine: bool,
    /// Whether this process fires scheduled jobs.
    pub run_scheduler: bool,
    /// Longest wait for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// The bearer token `GET /metrics` asks for; open to anyone who can
    /// reach the server when `None`.
    pub metrics_token: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("download_dir", &self.download_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("admin", &self.admin)
            .field("rate_limits", &self.rate_limits)
            .field("lockout", &self.lockout)
            .field("connection_limits", &self.connection_limits)
            .field("run_engine", &self.run_engine)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults for a data directory: SQLite inside it, built-in downloaders,
    /// the spec's rate limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            download_dir: None,
            database_url: None,
            jwt_secret: None,
            admin: AdminBootstrap::default(),
            rate_limits: RateLimits::default(),
            lockout: LoginLockout::default(),
            connection_limits: ConnectionLimits::default(),
            settings_overrides: None,
            registry: Arc::new(Registry::builtin()),
            log_capture: None,
            run_engine: true,
            run_scheduler: true,
            shutdown_grace: Duration::from_secs(10),
            metrics_token: None,
        }
    }

    /// Reads `MEDIADL_JWT_SECRET`, `MEDIADL_ADMIN_USERNAME` and
    /// `MEDIADL_ADMIN_PASSWORD` where the config does not set them.
    pub fn with_env(mut self) -> Self {
        if self.jwt_secret.is_none() {
            self.jwt_secret = non_empty_env("MEDIADL_JWT_SECRET");
        }
        if let Some(username) = non_empty_env("MEDIADL_ADMIN_USERNAME") {
            self.admin.username = username;
        }
        if self.admin.password.is_none() {
            self.admin.password = non_empty_env("MEDIADL_ADMIN_PASSWORD");
        }
        self
    }

    /// Loads a TOML config file with the settings API's keys as overrides.
    ///
    /// # Errors
    ///
    /// As [`read_config_file`].
    pub fn with_config_file(mut self, path: &Path) -> Result<Self, ServerError> {
        self.settings_overrides = Some(read_config_file(path)?);
        Ok(self)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mediadl.db").display()))
    }
}

/// A TOML file with the settings document's sections, as JSON.
///
/// # Errors
///
/// [`ServerError::Io`] when the file cannot be read, [`ServerError::Config`]
/// naming the file when it is not valid TOML.
pub fn read_config_file(path: &Path) -> Result<Value, ServerError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
        context: format!("reading config file {}", path.display()),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|err| ServerError::Config {
        reason: format!("{}: {err}", path.display()),
    })?;
    serde_json::to_value(table).map_err(|err| ServerError::Config {
        reason: format!("{}: {err}", path.display()),
    })
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_defaults_to_sqlite_in_the_data_dir() {
        let config = ServerConfig::new("/tmp/x");
        assert_eq!(config.database_url(), "sqlite:///tmp/x/mediadl.db");
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn config_files_become_settings_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediadl.toml");
        std::fs::write(&path, "[general]\nconcurrent_downloads = 2\n").unwrap();
        let value = read_config_file(&path).unwrap();
        assert_eq!(value["general"]["concurrent_downloads"], 2);
        std::fs::write(&path, "[general\n").unwrap();
        assert!(matches!(
            read_config_file(&path),
            Err(ServerError::Config { .. })
        ));
    }
}
