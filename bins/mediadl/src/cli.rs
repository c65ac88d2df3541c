//! Flags and subcommands (see CONTRACT.md for the names users rely on).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mediadl_server::{ConnectionLimits, RateLimits};

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
    /// Run download workers only (no HTTP), against a shared database.
    Worker(WorkerArgs),
    /// Download URLs once from the terminal, with progress, then exit.
    Download(DownloadArgs),
    /// Manage user accounts.
    User(UserArgs),
    /// Apply database migrations and exit.
    Migrate(DataArgs),
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

/// Where the data lives (shared by every command that opens the database).
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Holds the embedded SQLite database `mediadl.db` and, unless set otherwise, the downloads.
    #[arg(
        long,
        env = "MEDIADL_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// `sqlite://…` (the default, embedded in the data dir) or `postgres://…`.
    /// Also read from `DATABASE_URL`.
    #[arg(long, env = "MEDIADL_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

impl DataArgs {
    /// The database URL: the flag, `MEDIADL_DATABASE_URL`, then `DATABASE_URL`.
    pub fn database_url(&self) -> Option<String> {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|url| !url.trim().is_empty())
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "MEDIADL_BIND",
        default_value = "127.0.0.1:8000",
        value_name = "ADDR"
    )]
    pub bind: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Root of the downloads (default: DIR/downloads under the data dir).
    #[arg(long, env = "MEDIADL_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Settings file with the settings API's keys (default: mediadl.toml when
    /// present); the only place program paths and `extra_args` are set.
    #[arg(long, env = "MEDIADL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Requests per hour allowed to each signed-in user.
    #[arg(long, env = "MEDIADL_RATE_LIMIT_USER", value_name = "N",
          default_value_t = RateLimits::default().authenticated_per_hour)]
    pub rate_limit_user: u32,
    /// Requests per hour allowed to each client address without a valid token (logins included).
    #[arg(long, env = "MEDIADL_RATE_LIMIT_PUBLIC", value_name = "N",
          default_value_t = RateLimits::default().public_per_hour)]
    pub rate_limit_public: u32,
    /// Seconds a client has to send a request's headers (a new connection, its first request's).
    #[arg(long, env = "MEDIADL_HEADER_READ_TIMEOUT", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = ConnectionLimits::default().header_read_timeout.as_secs())]
    pub header_read_timeout: u64,
    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(long, env = "MEDIADL_IDLE_TIMEOUT", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = ConnectionLimits::default().idle_timeout.as_secs())]
    pub idle_timeout: u64,
    /// Most connections open at once; more are answered 503 and closed.
    #[arg(long, env = "MEDIADL_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000),
          default_value_t = ConnectionLimits::default().max_connections as u64)]
    pub max_connections: u64,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Root of the downloads (default: the settings' download directory, else DIR/downloads).
    #[arg(long, env = "MEDIADL_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Workers in this process (default: the settings' general.concurrent_downloads).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Settings file with the settings API's keys (default: mediadl.toml when
    /// present); the only place program paths and `extra_args` are set.
    #[arg(long, env = "MEDIADL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Platform of the URLs: direct, forum, instagram, tiktok.
    #[arg(short, long, default_value = "direct", value_name = "P")]
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
