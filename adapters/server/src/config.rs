//! How a server is configured: [`ServerConfig`], filled by the binary from
//! flags and environment (or by an embedder or a test by hand).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mediadl::model::Settings;
use mediadl::{Registry, SettingsLayers};
use serde::Deserialize;
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
    /// Root of the downloads, set by the operator (`--download-dir`,
    /// `MEDIADL_DOWNLOAD_DIR`): it pins `general.download_directory`.
    /// `None`: the settings decide, and `<data_dir>/downloads` when they do not.
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
    /// Settings set outside the database (a config file, flags), laid
    /// over the stored ones on every load, update and reload (not saved).
    pub settings_layers: SettingsLayers,
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
            settings_layers: SettingsLayers::default(),
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

    /// Pins the `storage` settings the environment sets
    /// (`MEDIADL_STORAGE_BACKEND`, `MEDIADL_STORAGE_S3_*`; see
    /// [`STORAGE_ENV`]) and then `backend` (`--storage-backend`) over the
    /// stored ones and the config file's: call after
    /// [`ServerConfig::with_config_file`].
    pub fn with_storage_overrides(mut self, backend: Option<&str>) -> Self {
        for (var, field) in STORAGE_ENV {
            let Some(text) = non_empty_env(var) else {
                continue;
            };
            let value = match text.parse::<bool>() {
                Ok(flag) if field.ends_with("path_style") || field.ends_with("redirect") => {
                    Value::Bool(flag)
                }
                _ => Value::String(text),
            };
            self.settings_layers = self.settings_layers.pin_field(var, field, value);
        }
        if let Some(backend) = backend {
            self.settings_layers = self.settings_layers.pin_field(
                "--storage-backend",
                "storage.backend",
                Value::String(backend.to_owned()),
            );
        }
        self
    }

    /// Pins the settings of a config file over the stored ones (its
    /// `[server]` section is the caller's to apply).
    pub fn with_config_file(mut self, file: &ConfigFile) -> Self {
        self.settings_layers = self.settings_layers.pin(
            format!("the config file {}", file.path.display()),
            file.settings.clone(),
        );
        self
    }

    /// The layers of the settings: this config's, with the download root
    /// `download_dir` pins (or, when unset, the default one under the data
    /// directory).
    pub fn effective_settings_layers(&self) -> SettingsLayers {
        const FIELD: &str = "general.download_directory";
        let root = |dir: &Path| Value::String(dir.display().to_string());
        let default = serde_json::json!({"general": {"download_directory": root(&self.data_dir.join("downloads"))}});
        let layers = self.settings_layers.clone().with_default(default);
        match &self.download_dir {
            Some(dir) => {
                layers.pin_field("--download-dir / MEDIADL_DOWNLOAD_DIR", FIELD, root(dir))
            }
            None => layers,
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mediadl.db").display()))
    }
}

/// The process settings of a config file (its `[server]` section): what
/// the flags and environment variables of the same names set, below them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSettings {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--rate-limit-user`.
    pub rate_limit_user: Option<u32>,
    /// `--rate-limit-public`.
    pub rate_limit_public: Option<u32>,
    /// `--header-read-timeout`, in seconds.
    pub header_read_timeout: Option<u64>,
    /// `--idle-timeout`, in seconds.
    pub idle_timeout: Option<u64>,
    /// `--max-connections`.
    pub max_connections: Option<u64>,
}

/// Most connections `--max-connections` (or `server.max_connections`) may allow.
pub const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;

impl ProcessSettings {
    /// The first value out of range, as (dotted field, reason).
    fn check(&self) -> Result<(), (String, String)> {
        for (key, value, max) in [
            ("header_read_timeout", self.header_read_timeout, u64::MAX),
            ("idle_timeout", self.idle_timeout, u64::MAX),
            (
                "max_connections",
                self.max_connections,
                MAX_CONNECTIONS_LIMIT,
            ),
        ] {
            if let Some(value) = value
                && !(1..=max).contains(&value)
            {
                let reason = format!("must be between 1 and {max}, got {value}");
                return Err((format!("server.{key}"), reason));
            }
        }
        Ok(())
    }
}

/// A TOML config file: process settings in `[server]`, and any sections
/// of the settings document (`[general]`, `[platforms.tiktok]`, …), which
/// are pinned over the stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// Where it was read from (named by errors and read-only refusals).
    pub path: PathBuf,
    /// The `[server]` section.
    pub server: ProcessSettings,
    /// The settings document's sections, as JSON.
    pub settings: Value,
}

/// Reads and checks a config file: its TOML, the keys and types of
/// `[server]`, and its settings as the settings API would (unknown keys,
/// types, ranges).
///
/// # Errors
///
/// [`ServerError::Io`] when the file cannot be read, [`ServerError::Config`]
/// naming the file, the line and the key when it is not acceptable.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ServerError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
        context: format!("reading config file {}", path.display()),
        source,
    })?;
    // toml's message names the line and column and quotes the line.
    let mut table: toml::Table = toml::from_str(&text).map_err(|err| ServerError::Config {
        reason: format!("{}: {err}", path.display()),
    })?;
    let refuse = |field: String, reason: String| {
        let field = with_unknown_key(field, &reason);
        let line = line_of(&text, &field).map_or_else(String::new, |line| format!(":{line}"));
        ServerError::Config {
            reason: format!("{}{line}: {field}: {reason}", path.display()),
        }
    };
    let server = match table.remove("server") {
        None => ProcessSettings::default(),
        Some(section) => serde_path_to_error::deserialize(section).map_err(|err| {
            let field = format!("server.{}", err.path())
                .trim_end_matches('.')
                .to_owned();
            refuse(field, err.into_inner().to_string())
        })?,
    };
    server
        .check()
        .map_err(|(field, reason)| refuse(field, reason))?;
    let settings = serde_json::to_value(table).map_err(|err| ServerError::Config {
        reason: format!("{}: {err}", path.display()),
    })?;
    Settings::from_value(&settings).map_err(|err| refuse(err.field, err.reason))?;
    Ok(ConfigFile {
        path: path.to_owned(),
        server,
        settings,
    })
}

/// `field`, ending with the key an "unknown field" error is about when
/// its path stops at the section holding it.
fn with_unknown_key(field: String, reason: &str) -> String {
    let Some(key) = reason
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return field;
    };
    match field.as_str() {
        "" | "." => key.to_owned(),
        path if path.rsplit('.').next() == Some(key) => field,
        path => format!("{path}.{key}"),
    }
}

/// The line (from 1) of `text` where the key at the dotted path `field` is
/// written, or the deepest section of it that is.
fn line_of(text: &str, field: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut start = None;
    for segment in field.split('.') {
        // `to[0]`: the array's key.
        let segment = segment.split('[').next().unwrap_or(segment);
        let Some((key, value)) = table
            .iter()
            .find(|(key, _)| key.get_ref().as_ref() == segment)
        else {
            break;
        };
        start = Some(key.span().start);
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    start.map(|start| text[..start].matches('\n').count() + 1)
}

/// Environment variables that set `storage` settings, and their fields.
pub const STORAGE_ENV: [(&str, &str); 9] = [
    ("MEDIADL_STORAGE_BACKEND", "storage.backend"),
    ("MEDIADL_STORAGE_S3_ENDPOINT", "storage.s3.endpoint"),
    ("MEDIADL_STORAGE_S3_BUCKET", "storage.s3.bucket"),
    ("MEDIADL_STORAGE_S3_REGION", "storage.s3.region"),
    ("MEDIADL_STORAGE_S3_PREFIX", "storage.s3.prefix"),
    ("MEDIADL_STORAGE_S3_PATH_STYLE", "storage.s3.path_style"),
    (
        "MEDIADL_STORAGE_S3_ACCESS_KEY_ID",
        "storage.s3.access_key_id",
    ),
    (
        "MEDIADL_STORAGE_S3_SECRET_ACCESS_KEY",
        "storage.s3.secret_access_key",
    ),
    (
        "MEDIADL_STORAGE_S3_PRESIGNED_REDIRECT",
        "storage.s3.presigned_redirect",
    ),
];

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
    fn config_files_hold_process_settings_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediadl.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"0.0.0.0:9000\"\n\n[general]\nconcurrent_downloads = 2\n",
        )
        .unwrap();
        let file = read_config_file(&path).unwrap();
        assert_eq!(file.server.bind.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(file.settings["general"]["concurrent_downloads"], 2);
        assert!(file.settings.get("server").is_none());
    }

    /// Leaf paths of `value` (`general.retry_attempts`, …).
    fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    leaves(child, child_path, out);
                }
            }
            _ => out.push(path),
        }
    }

    #[test]
    fn the_sample_config_file_is_accepted_and_names_every_key() {
        let sample = include_str!("../../../contrib/mediadl.toml");
        // `#key = …` and `#[section]` lines are settings; `# …` and `## …` prose.
        let uncommented: String = sample
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c == '[' || c.is_ascii_lowercase()) => {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediadl.toml");
        std::fs::write(&path, &uncommented).unwrap();
        let file = read_config_file(&path).unwrap();
        assert_eq!(file.server.bind.as_deref(), Some("127.0.0.1:8000"));
        assert_eq!(file.server.max_connections, Some(1024));
        let mut defaults = Vec::new();
        leaves(
            &Settings::default().to_value(),
            String::new(),
            &mut defaults,
        );
        let mut documented = Vec::new();
        leaves(&file.settings, String::new(), &mut documented);
        let missing: Vec<&String> = defaults
            .iter()
            // An empty map (webhooks by name) is documented by an example entry.
            .filter(|key| {
                !documented
                    .iter()
                    .any(|doc| doc == *key || doc.starts_with(&format!("{key}.")))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "not in contrib/mediadl.toml: {missing:?}"
        );
    }

    /// The message of a refused file.
    fn refusal(path: &Path, text: &str) -> String {
        std::fs::write(path, text).unwrap();
        match read_config_file(path) {
            Err(ServerError::Config { reason }) => reason,
            other => panic!("{text:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn bad_config_files_name_the_file_the_line_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediadl.toml");
        let shown = path.display().to_string();
        for (text, expected) in [
            (
                "[general]\nconcurrent_downloads = 2\nno_such_key = true\n",
                format!("{shown}:3: general.no_such_key: unknown field"),
            ),
            (
                "[general]\n\nconcurrent_downloads = \"six\"\n",
                format!("{shown}:3: general.concurrent_downloads: invalid type"),
            ),
            (
                "[general]\nconcurrent_downloads = 0\n",
                format!("{shown}:2: general.concurrent_downloads: must be between 1 and 64"),
            ),
            (
                "[server]\nbind = \"x\"\nport = 1\n",
                format!("{shown}:3: server.port: unknown field"),
            ),
            (
                "[server]\nrate_limit_user = \"many\"\n",
                format!("{shown}:2: server.rate_limit_user: invalid type"),
            ),
            (
                "[server]\nbind = \"x\"\nmax_connections = 0\n",
                format!("{shown}:3: server.max_connections: must be between 1 and 1000000"),
            ),
            (
                "[genral]\nx = 1\n",
                format!("{shown}:1: genral: unknown field"),
            ),
            (
                "[notifications.email]\nsmtp_port = 70000\n",
                format!("{shown}:2: notifications.email.smtp_port: invalid value"),
            ),
        ] {
            let reason = refusal(&path, text);
            assert!(reason.starts_with(&expected), "{text:?}: {reason}");
        }
        let reason = refusal(&path, "[general]\nconcurrent_downloads = \n");
        assert!(
            reason.starts_with(&shown) && reason.contains("line 2"),
            "{reason}"
        );
    }
}
