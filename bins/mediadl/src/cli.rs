//! Flags and subcommands (see CONTRACT.md for the names users rely on).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use mediadl_server::config::{
    ConfigFile, MAX_CONNECTIONS_LIMIT, ProcessSettings, read_config_file,
};
use mediadl_server::{ServerConfig, ServerError};

/// A self-hosted media archiver: subscribe to sources, download what is new
/// exactly once, and browse the history in a web dashboard.
#[derive(Debug, Parser)]
#[command(name = "mediadl", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as plain text or as JSON objects, one per line (with the
    /// request id of HTTP requests and the queue id of queue items).
    #[arg(
        long,
        global = true,
        env = "MEDIADL_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the spans it was logged in.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: API, WebSocket, dashboard, workers, scheduler.
    Serve(ServeArgs),
    /// Run download workers only (no API; `--metrics-bind` serves /metrics), against a shared database.
    Worker(WorkerArgs),
    /// Download URLs once from the terminal, with progress, then exit.
    Download(DownloadArgs),
    /// Record what yt-dlp, gallery-dl or an existing media tree already
    /// holds, so subscriptions download only what is new (see docs/IMPORT.md).
    Import(ImportArgs),
    /// Manage user accounts.
    User(UserArgs),
    /// Apply database migrations and exit.
    Migrate(DataArgs),
    /// Check the media storage, or move the media to another one.
    Storage(StorageArgs),
    /// Write a consistent snapshot of the database and the data directory's
    /// secrets to one archive file, while a server may be running.
    Backup(BackupArgs),
    /// Restore an archive written by `mediadl backup`; a database that holds
    /// data is replaced only with --force.
    Restore(RestoreArgs),
    /// Ask a running server's /api/v1/health/ready; exit 0 when it answers 200
    /// (the container image's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Print a shell completion script to standard output.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per
    /// subcommand into a directory.
    Manpage {
        /// Write `mediadl.1`, `mediadl-serve.1`, … into DIR instead.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Root of the downloads; overrides the settings' general.download_directory.
    #[arg(long, env = "MEDIADL_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: StorageAction,
}

#[derive(Debug, Subcommand)]
pub enum StorageAction {
    /// Write, read back and delete a probe object; say in words what is
    /// wrong (endpoint, credentials, bucket, permissions) and exit non-zero.
    Check,
    /// Copy every download's media to the other backend, verify each copy's
    /// hash and update the records; run again to resume. The source files stay.
    Migrate {
        /// The backend to move to.
        #[arg(long, value_parser = ["local", "s3"])]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The server's listen address (an unspecified address such as 0.0.0.0 is asked on loopback).
    #[arg(
        long,
        env = "MEDIADL_BIND",
        default_value = "127.0.0.1:8000",
        value_name = "ADDR"
    )]
    pub bind: String,
    /// The readiness URL to ask instead of the one derived from --bind.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub timeout: u64,
}

/// The data directory when neither a flag, the environment nor the config
/// file names one.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The config file read when `--config` and `MEDIADL_CONFIG` name none.
pub const DEFAULT_CONFIG_FILE: &str = "mediadl.toml";

/// Where the data lives and the config file (shared by every command that
/// opens the database).
///
/// A value is taken from, in this order: the flag, its environment
/// variable, the config file's `[server]` section, the default.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Holds the embedded SQLite database `mediadl.db` and, unless set
    /// otherwise, the downloads [default: ./data].
    #[arg(long, env = "MEDIADL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` (the default, embedded in the data dir) or `postgres://…`.
    /// Also read from `DATABASE_URL`.
    #[arg(long, env = "MEDIADL_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Config file (TOML): process settings in `[server]` and the settings
    /// API's sections, which override the stored settings and cannot be
    /// changed through the API [default: mediadl.toml when present].
    #[arg(long, env = "MEDIADL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where media bytes live: `local` (the download directory) or `s3`
    /// (the bucket of the settings' storage.s3, which the
    /// MEDIADL_STORAGE_S3_* variables also set); overrides storage.backend
    /// and MEDIADL_STORAGE_BACKEND.
    #[arg(long, value_name = "BACKEND", value_parser = ["local", "s3"])]
    pub storage_backend: Option<String>,
}

/// What a command starts from: the config file (when there is one) and
/// the server configuration the flags, environment and file make.
#[derive(Debug)]
pub struct Loaded {
    /// The file's `[server]` section (empty without a file).
    pub process: ProcessSettings,
    /// Data directory, database and settings layers.
    pub server: ServerConfig,
}

impl DataArgs {
    /// The database URL: the flag, `MEDIADL_DATABASE_URL`, then `DATABASE_URL`.
    fn database_url(&self) -> Option<String> {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|url| !url.trim().is_empty())
    }

    /// Reads the config file in effect and layers it under the flags and
    /// the environment; `download_dir` (`--download-dir`) pins the
    /// settings' download directory.
    ///
    /// # Errors
    ///
    /// The config file cannot be read or is not acceptable (naming the
    /// file, the line and the key).
    pub fn load(&self, download_dir: Option<PathBuf>) -> Result<Loaded, ServerError> {
        let file = config_file(self.config.as_deref())?;
        let process = file
            .as_ref()
            .map(|file| file.server.clone())
            .unwrap_or_default();
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| process.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut server = ServerConfig::new(data_dir).with_env();
        server.database_url = self.database_url().or_else(|| process.database_url.clone());
        server.download_dir = download_dir;
        if let Some(file) = &file {
            server = server.with_config_file(file);
        }
        let server = server.with_storage_overrides(self.storage_backend.as_deref());
        Ok(Loaded { process, server })
    }
}

/// The config file named by `--config` / `MEDIADL_CONFIG` (which must
/// exist), else `mediadl.toml` when present; read and checked.
fn config_file(named: Option<&Path>) -> Result<Option<ConfigFile>, ServerError> {
    match named {
        Some(path) => read_config_file(path).map(Some),
        None => {
            let default = Path::new(DEFAULT_CONFIG_FILE);
            default
                .exists()
                .then(|| read_config_file(default))
                .transpose()
        }
    }
}

/// `mediadl serve`'s flags. Each without a value here is taken from the
/// config file's `[server]` section, else its default (see
/// `mediadl_server::config::ProcessSettings`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "MEDIADL_BIND", value_name = "ADDR")]
    pub bind: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Root of the downloads [default: DIR/downloads under the data dir];
    /// overrides the settings' general.download_directory.
    #[arg(long, env = "MEDIADL_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Requests per hour allowed to each signed-in user [default: 1000].
    #[arg(long, env = "MEDIADL_RATE_LIMIT_USER", value_name = "N")]
    pub rate_limit_user: Option<u32>,
    /// Requests per hour allowed to each client address without a valid
    /// token, logins included [default: 100].
    #[arg(long, env = "MEDIADL_RATE_LIMIT_PUBLIC", value_name = "N")]
    pub rate_limit_public: Option<u32>,
    /// Seconds a client has to send a request's headers (a new connection,
    /// its first request's) [default: 10].
    #[arg(long, env = "MEDIADL_HEADER_READ_TIMEOUT", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: Option<u64>,
    /// Seconds a kept-alive connection may sit idle between requests [default: 60].
    #[arg(long, env = "MEDIADL_IDLE_TIMEOUT", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: Option<u64>,
    /// Most connections open at once; more are answered 503 and closed [default: 1024].
    #[arg(long, env = "MEDIADL_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS_LIMIT))]
    pub max_connections: Option<u64>,
    /// Bearer token GET /metrics asks for (open to anyone who reaches the server when unset).
    #[arg(
        long,
        env = "MEDIADL_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Root of the downloads; overrides the settings' general.download_directory
    /// [default: that setting, else DIR/downloads under the data dir].
    #[arg(long, env = "MEDIADL_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Workers in this process, over the settings' general.concurrent_downloads
    /// (kept on every reload of the shared settings).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: Option<u32>,
    /// Serve GET /metrics (Prometheus) on this address, e.g. 0.0.0.0:9464.
    #[arg(long, env = "MEDIADL_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<String>,
    /// Bearer token the metrics listener asks for.
    #[arg(
        long,
        env = "MEDIADL_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// URLs to download (or sources, with --platform).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read more URLs from FILE, one per line (`-` for standard input; `#` starts a comment).
    #[arg(short = 'i', long = "input-file", value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Directory to write into.
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub output: PathBuf,
    /// Transfers at once.
    #[arg(short = 'j', long, default_value_t = 4, value_name = "N")]
    pub concurrency: u32,
    /// Platform of the URLs (direct, forum, instagram, tiktok, video,
    /// gallery, …). By default each URL's platform is recognised from the URL
    /// (as `"platform": "auto"` in the API); a URL nobody claims is `direct`.
    #[arg(short, long, default_value = "auto", value_name = "P")]
    pub platform: String,
    /// Content type for the platform (e.g. posts, stories, reels); its first by default.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Attempts per URL before giving up.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,
    /// Print one line per finished URL instead of progress bars.
    #[arg(short, long)]
    pub quiet: bool,
    /// Keep what was downloaded in this SQLite file (created if missing):
    /// a later run with the same archive skips every media item recorded
    /// in it, as yt-dlp's and gallery-dl's `--download-archive` do.
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// A Netscape cookies.txt used by this run's platforms (for sites that
    /// need a login).
    #[arg(long, value_name = "FILE")]
    pub cookies: Option<PathBuf>,
}

/// `mediadl import`: exactly one of the three sources.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).multiple(false)
    .args(["yt_dlp_archive", "gallery_dl_archive", "directory"])))]
pub struct ImportArgs {
    /// A yt-dlp `--download-archive` file (`<extractor> <id>` per line).
    #[arg(long, value_name = "FILE")]
    pub yt_dlp_archive: Option<PathBuf>,
    /// A gallery-dl archive database (SQLite, its `--download-archive`).
    #[arg(long, value_name = "FILE")]
    pub gallery_dl_archive: Option<PathBuf>,
    /// A directory tree of media files, recorded where they are (not
    /// copied): each is hashed so content dedupe knows it.
    #[arg(long, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// With --directory: the platform of files nothing else identifies
    /// [default: direct]; files with a yt-dlp `.info.json` or a YouTube id
    /// in their name are `video` items.
    #[arg(long, value_name = "P", requires = "directory")]
    pub platform: Option<String>,
    /// With --directory: the source of every file [default: the name of
    /// the file's directory, or a video's channel].
    #[arg(long, value_name = "S", requires = "directory")]
    pub source: Option<String>,
    /// No progress bar, only the summary.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (replaced only once the new one is complete; mode 0600).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive written by `mediadl backup` or the scheduled backup job.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace a database that holds data (accounts, downloads, queue, jobs).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account.
    Add {
        #[arg(long)]
        username: String,
        /// admin, user or viewer.
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from standard input (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account's password.
    Passwd {
        #[arg(long)]
        username: String,
        /// Read the password from standard input (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
}
