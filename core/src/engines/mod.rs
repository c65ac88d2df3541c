//! External programs as downloaders: `yt-dlp` and `gallery-dl` run as child
//! processes whose machine-readable output (JSON lines of a template of
//! ours) is parsed; their human progress lines never are.
//!
//! Shared here: where the program is ([`locate`]), whether its version is
//! recent enough ([`VersionCache`]), the per-downloader settings
//! ([`ProgramSettings`]), what a failure text means ([`classify_failure`]),
//! the private working directory each transfer runs in ([`WorkDir`]), the
//! archive keys of the general platforms ([`archive_key`]), and (private)
//! the one driver both programs run through: settings, arguments, the
//! listing stream and the transfer loop are written once there.
//! Invariant: a program runs in a process group of its own, and every way
//! out of a run (end, error, cancel, timeout, a dropped stream) kills the
//! group ([`runner::RunningProgram`]).

#[cfg(any(feature = "ytdlp", feature = "gallerydl"))]
mod driver;
pub mod extractors;
#[cfg(feature = "ytdlp")]
mod nfo;
pub mod runner;

#[cfg(feature = "gallerydl")]
pub mod gallerydl;
#[cfg(feature = "ytdlp")]
pub mod ytdlp;

#[cfg(feature = "gallerydl")]
pub use gallerydl::GalleryDl;
#[cfg(feature = "ytdlp")]
pub use ytdlp::YtDlp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::downloader::{Context, Staging, Unavailable};
use crate::error::DownloadError;
use crate::model::Settings;
use runner::{Invocation, ProgramEvent, RunningProgram};

/// How long `<program> --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);
/// A rate limit a program reports without saying for how long.
const ENGINE_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);

/// One external downloader's settings: `platforms.<platform>.<downloader>`
/// (for example `platforms.tiktok."yt-dlp"`). Unknown keys are ignored so
/// the spec's own keys can live next to ours.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ProgramSettings {
    /// Off: the downloader refuses to run (`GET /platforms` says why).
    pub enabled: bool,
    /// The program: a path, or a name looked up on `PATH`. Empty: the default name.
    pub path: String,
    /// Longest run of one listing or one transfer.
    pub timeout_seconds: u64,
    /// A run printing nothing and writing nothing this long is stopped as hung.
    pub stall_timeout_seconds: u64,
    /// The page a source is listed from, per content type, with
    /// `{username}` (and `{content_type}`) placeholders.
    pub url_templates: HashMap<String, String>,
    /// Extra arguments placed before the URL (a format choice, a config file).
    pub extra_args: Vec<String>,
}

impl Default for ProgramSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: String::new(),
            timeout_seconds: 3600,
            stall_timeout_seconds: 300,
            url_templates: HashMap::new(),
            extra_args: Vec::new(),
        }
    }
}

impl ProgramSettings {
    /// `platforms.<platform>.<downloader>` of `settings`, with defaults.
    pub fn read(settings: &Settings, platform: &str, downloader: &str) -> Result<Self, String> {
        settings
            .downloader(platform, downloader)
            .map_err(|err| err.to_string())
    }

    fn invocation(&self, name: &str, program: PathBuf) -> Invocation {
        let mut invocation = Invocation::new(name, program);
        invocation.timeout = Duration::from_secs(self.timeout_seconds.max(1));
        invocation.stall_timeout = Duration::from_secs(self.stall_timeout_seconds.max(1));
        invocation
    }

    /// The URL a source is listed from: the configured template for the
    /// content type, else `default`.
    pub fn source_url(&self, default: &str, username: &str, content_type: &str) -> String {
        let template = self
            .url_templates
            .get(content_type)
            .map(String::as_str)
            .unwrap_or(default);
        template
            .replace("{username}", username)
            .replace("{content_type}", content_type)
    }
}

/// The executable `configured` names, or `default_name` on `PATH`.
pub fn locate(configured: &str, default_name: &str) -> Result<PathBuf, Unavailable> {
    let wanted = if configured.trim().is_empty() {
        default_name
    } else {
        configured.trim()
    };
    if wanted.contains('/') {
        let path = PathBuf::from(wanted);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(Unavailable::new(format!(
                "{wanted} is not an executable file (check the downloader's `path` setting)"
            )))
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .map(|dir| dir.join(wanted))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            Unavailable::new(format!(
                "{wanted} was not found on PATH; install it (pip install {default_name}) \
                 or set the downloader's `path` setting"
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A version like `2026.10.26` or `1.32.18` as numbers, for comparison.
pub fn parse_version(text: &str) -> Option<Vec<u32>> {
    let token = text.split_whitespace().find(|word| {
        word.chars().next().is_some_and(|c| c.is_ascii_digit()) && word.contains('.')
    })?;
    let parts: Option<Vec<u32>> = token
        .split('.')
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    parts.filter(|parts| parts.len() >= 2)
}

/// Remembers `--version` answers per executable (path, size, mtime), so
/// `GET /platforms` does not start a Python interpreter on every call.
#[derive(Debug, Default)]
pub struct VersionCache {
    known: Mutex<HashMap<PathBuf, VersionAnswer>>,
}

/// What `--version` said, and the executable's (mtime, size) it said it for.
type VersionAnswer = (Option<SystemTime>, u64, Result<String, Unavailable>);

impl VersionCache {
    /// The program's version when it is at least `minimum`.
    pub async fn check(
        &self,
        name: &str,
        program: &Path,
        minimum: &[u32],
    ) -> Result<String, Unavailable> {
        let stamp = std::fs::metadata(program)
            .map(|meta| (meta.modified().ok(), meta.len()))
            .unwrap_or((None, 0));
        if let Some((modified, len, answer)) =
            self.known.lock().expect("version cache").get(program)
            && (*modified, *len) == stamp
        {
            return answer.clone();
        }
        let answer = query_version(name, program, minimum).await;
        self.known
            .lock()
            .expect("version cache")
            .insert(program.to_path_buf(), (stamp.0, stamp.1, answer.clone()));
        answer
    }
}

async fn query_version(name: &str, program: &Path, minimum: &[u32]) -> Result<String, Unavailable> {
    let mut invocation = Invocation::new(name, program).arg("--version");
    invocation.timeout = VERSION_TIMEOUT;
    invocation.stall_timeout = VERSION_TIMEOUT;
    let unavailable = |reason: String| Unavailable::new(format!("{name}: {reason}"));
    let output = run_to_end(&invocation)
        .await
        .map_err(|reason| unavailable(format!("`--version` {reason}")))?;
    let version = output.trim().to_owned();
    let parsed = parse_version(&version).ok_or_else(|| {
        unavailable(format!(
            "`--version` printed {:?}, not a version",
            excerpt(&version)
        ))
    })?;
    if parsed.as_slice() < minimum {
        let minimum: Vec<String> = minimum.iter().map(u32::to_string).collect();
        return Err(unavailable(format!(
            "version {version} is too old; {} or newer is needed",
            minimum.join(".")
        )));
    }
    Ok(version)
}

/// Runs a short query of a program (its version, its extractor list)
/// within the invocation's time limits and returns what it printed on
/// stdout, or why it failed ("failed: …", "exited with …: stderr").
pub async fn run_to_end(invocation: &Invocation) -> Result<String, String> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut run = RunningProgram::spawn(invocation).map_err(|err| format!("failed: {err}"))?;
    let mut output = String::new();
    loop {
        match run.next_event(&cancel, None).await {
            Ok(ProgramEvent::Line(line)) => {
                output.push_str(&line);
                output.push('\n');
            }
            Ok(ProgramEvent::Eof) => break,
            Ok(ProgramEvent::Tick) => {}
            Err(err) => return Err(format!("failed: {err}")),
        }
    }
    let finished = run
        .finish(&cancel)
        .await
        .map_err(|err| format!("failed: {err}"))?;
    if !finished.status.success() {
        return Err(format!(
            "exited with {}: {}",
            finished.status,
            excerpt(&finished.stderr)
        ));
    }
    Ok(output)
}

/// What went wrong in a run of yt-dlp or gallery-dl, read from its error
/// text: each kind says what a person (or the engine) should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A login (cookies) is needed: an age gate, a bot check, a login page.
    LoginRequired,
    /// Only members (paying subscribers) of the channel may see it.
    MembersOnly,
    /// The site asks us to slow down.
    RateLimited,
    /// Not available from this server's country.
    GeoBlocked,
    /// The site blocks this server's IP address.
    IpBlocked,
    /// Private: only its owner (or who they share it with) may see it.
    Private,
    /// Removed, deleted, terminated or never there (404/410).
    Removed,
    /// No extractor of the program accepts the URL.
    Unsupported,
    /// Anything else (a reset connection, a crash): worth another attempt.
    Other,
}

/// The phrases of each kind, checked in this order: a login problem needs
/// a person (even when the text also mentions a rate limit, waiting would
/// not fix it), then members-only, rate limits, blocks, and what is gone.
const FAILURE_PHRASES: &[(FailureKind, &[&str])] = &[
    (
        FailureKind::LoginRequired,
        &[
            "not a bot",
            "login required",
            "login_required",
            "log in",
            "log into",
            "redirect to login",
            "redirected to the login",
            "/accounts/login",
            "challenge page",
            "checkpoint",
            "credentials required",
            "needed to access",
            "use --cookies",
            "cookies are no longer valid",
            "sign in to confirm",
            "authrequired",
            "authorizationerror",
        ],
    ),
    (
        FailureKind::MembersOnly,
        &[
            "members-only",
            "members only",
            "channel's members",
            "join this channel",
            "subscribers only",
        ],
    ),
    (
        FailureKind::RateLimited,
        &[
            "rate-limit reached",
            "rate limit",
            "rate-limit",
            "ratelimit",
            "too many requests",
            "http error 429",
            "429 too many",
            "please wait a few minutes",
        ],
    ),
    (
        FailureKind::GeoBlocked,
        &[
            "in your country",
            "geo restrict",
            "geo-restrict",
            "georestrict",
            "from your location",
            "not available in your region",
        ],
    ),
    (
        FailureKind::IpBlocked,
        &["ip address is blocked", "ip is blocked", "your ip"],
    ),
    (
        FailureKind::Private,
        &[
            "private video",
            "video is private",
            "private",
            "is not public",
        ],
    ),
    (
        FailureKind::Removed,
        &[
            "has been removed",
            "been deleted",
            "has been terminated",
            "no longer available",
            "video unavailable",
            "does not exist",
            "could not be found",
            "notfounderror",
            "http error 404",
            "404 not found",
            "'404 ",
            "'410 ",
            "http error 410",
        ],
    ),
    (
        FailureKind::Unsupported,
        &["unsupported url", "no suitable extractor"],
    ),
];

/// What kind of failure `stderr` (and gallery-dl's exit code bits) report.
pub fn failure_kind(name: &str, stderr: &str, exit_code: Option<i32>) -> FailureKind {
    let text = stderr.to_ascii_lowercase();
    let found = FAILURE_PHRASES
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|phrase| text.contains(phrase)))
        .map(|(kind, _)| *kind);
    if let Some(kind) = found {
        return kind;
    }
    if text.contains("no video formats") || text.contains("not available") {
        return FailureKind::Removed;
    }
    // gallery-dl's exit code is a bit set: 16 is "authorization needed".
    if name == "gallery-dl" && exit_code.is_some_and(|code| code & 16 != 0) {
        return FailureKind::LoginRequired;
    }
    FailureKind::Other
}

/// What an external program's failure means for the engine (see
/// [`FailureKind`]), with a message that says what to do.
pub fn classify_failure(name: &str, stderr: &str, exit_code: Option<i32>) -> DownloadError {
    let detail = error_lines(stderr);
    match failure_kind(name, stderr, exit_code) {
        FailureKind::LoginRequired => DownloadError::AuthRequired(format!(
            "{name}: {detail} (upload fresh cookies for the platform)"
        )),
        FailureKind::MembersOnly => DownloadError::AuthRequired(format!(
            "{name}: members only: {detail} (upload cookies of a member's account)"
        )),
        FailureKind::RateLimited => DownloadError::RateLimited {
            host: name.to_owned(),
            after: ENGINE_RATE_LIMIT_WAIT,
        },
        FailureKind::GeoBlocked => DownloadError::permanent(format!(
            "{name}: not available from this server's country ({detail}); \
             set a proxy in an allowed country (network.platform_proxies)"
        )),
        FailureKind::IpBlocked => DownloadError::permanent(format!(
            "{name}: the platform blocks this server's IP address ({detail}); \
             set a proxy for the platform (network.platform_proxies)"
        )),
        FailureKind::Private => DownloadError::permanent(format!("{name}: private: {detail}")),
        FailureKind::Removed => DownloadError::permanent(format!("{name}: removed: {detail}")),
        FailureKind::Unsupported => {
            DownloadError::permanent(format!("{name} does not support this URL: {detail}"))
        }
        FailureKind::Other => {
            let code = exit_code.map_or_else(|| "a signal".to_owned(), |code| code.to_string());
            DownloadError::retryable(format!("{name} exited with {code}: {detail}"))
        }
    }
}

/// The error lines of a program's stderr (its last ones when none are marked).
fn error_lines(stderr: &str) -> String {
    let marked: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("error") || lower.contains("[error]")
        })
        .collect();
    let chosen = if marked.is_empty() {
        stderr
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        marked
    };
    let text = chosen.join(" | ");
    if text.trim().is_empty() {
        "no error message".to_owned()
    } else {
        excerpt(&text)
    }
}

/// At most 500 characters of `text`, for error messages.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 500;
    let text = text.trim();
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// A timestamp as the programs print it: epoch seconds, `YYYYMMDD`,
/// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339.
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => {
            let seconds = number.as_f64()?;
            Utc.timestamp_opt(seconds as i64, 0).single()
        }
        Value::String(text) => {
            let text = text.trim();
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Some(at.with_timezone(&Utc));
            }
            if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
                return Some(at.and_utc());
            }
            if text.len() == 8
                && let Ok(day) = NaiveDate::parse_from_str(text, "%Y%m%d")
            {
                return day.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
            }
            text.parse::<i64>()
                .ok()
                .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single())
        }
        _ => None,
    }
}

/// A JSON value that is an id: a string or a number, as text.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The mediadl archive key of an entry of a program's own download
/// archive: `"{platform}:{entry}"`. `entry` is exactly what the program
/// stores: a line of yt-dlp's `--download-archive` file (`youtube
/// dQw4w9WgXcQ`, the extractor lowercased, a space, the id) or a row of
/// gallery-dl's archive database (`twitter1234567890_1`: the category and
/// the extractor's `archive_fmt`). The listings of platforms `video` and
/// `gallery` key their items the same way, so an imported archive makes a
/// later subscription skip what the program had already downloaded.
///
/// ```
/// assert_eq!(
///     mediadl::engines::archive_key("video", "youtube dQw4w9WgXcQ\n"),
///     "video:youtube dQw4w9WgXcQ"
/// );
/// ```
pub fn archive_key(platform: &str, entry: &str) -> String {
    // Archive files end lines with `\n` (or `\r\n` when edited on Windows).
    format!("{platform}:{}", entry.trim_end_matches(['\r', '\n']))
}

/// A private directory inside the staging directory for one run: the
/// program writes there, the finished file is moved next to it, and the
/// directory (with any partial file and the cookies copy) goes when this
/// is dropped, so nothing partial is kept.
#[derive(Debug)]
pub struct WorkDir {
    dir: tempfile::TempDir,
    staging: PathBuf,
}

impl WorkDir {
    /// A fresh directory inside `staging`, or inside the system's
    /// temporary directory for listings (no staging then).
    pub fn new(staging: Option<&Staging>) -> Result<Self, DownloadError> {
        if let Some(staging) = staging {
            // The engine names the staging directory; it may not exist yet.
            std::fs::create_dir_all(staging.dir()).map_err(|err| {
                DownloadError::Storage(format!("{}: {err}", staging.dir().display()))
            })?;
        }
        let builder = tempfile::Builder::new().prefix(".mediadl-run-").tempdir_in(
            staging.map_or_else(std::env::temp_dir, |staging| staging.dir().to_path_buf()),
        );
        let dir = builder.map_err(|err| {
            DownloadError::Storage(format!("cannot create a work directory: {err}"))
        })?;
        Ok(Self {
            dir,
            staging: staging.map_or_else(std::env::temp_dir, |s| s.dir().to_path_buf()),
        })
    }

    /// The directory the program writes into.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the platform's cookies for the program (owner-only permissions).
    pub fn write_cookies(&self, text: &str) -> Result<PathBuf, DownloadError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.path().join("cookies.txt");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| DownloadError::Storage(format!("cannot write cookies: {err}")))?;
        let mut text = text.to_owned();
        if !text.starts_with("# Netscape HTTP Cookie File")
            && !text.starts_with("# HTTP Cookie File")
        {
            // Both programs refuse a cookies file without its header line.
            text.insert_str(0, "# Netscape HTTP Cookie File\n");
        }
        file.write_all(text.as_bytes())
            .map_err(|err| DownloadError::Storage(format!("cannot write cookies: {err}")))?;
        Ok(path)
    }

    /// Sum of the sizes of the files in the directory (progress of a
    /// program that reports none).
    pub fn bytes_written(&self) -> u64 {
        std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.file_name() != "cookies.txt")
                    .filter_map(|entry| entry.metadata().ok())
                    .filter(|meta| meta.is_file())
                    .map(|meta| meta.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Moves `companion` (a file of this directory that belongs with
    /// `produced`, such as `media.info.json` beside `media.mp4`) next to
    /// `kept`, named as the engine's placement expects
    /// ([`companion_path`](crate::downloads::companion_path)): the part of
    /// its name after `produced`'s stem becomes its suffix.
    pub fn keep_companion(
        &self,
        kept: &Path,
        produced: &Path,
        companion: &Path,
    ) -> Result<PathBuf, DownloadError> {
        let storage =
            |err: std::io::Error| DownloadError::Storage(format!("{}: {err}", companion.display()));
        let stem = produced
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        let name = companion
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let suffix = name
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|suffix| crate::downloads::companion_suffix_is_safe(suffix))
            .ok_or_else(|| {
                DownloadError::permanent(format!(
                    "{name:?} is not a companion of {}",
                    produced.display()
                ))
            })?;
        if companion.parent() != Some(self.dir.path()) {
            return Err(DownloadError::permanent(format!(
                "{} is not a file the program wrote",
                companion.display()
            )));
        }
        let target = crate::downloads::companion_path(kept, suffix);
        std::fs::rename(companion, &target).map_err(storage)?;
        Ok(target)
    }

    /// Moves `produced` (which must be inside this directory) next to it,
    /// under a unique name, and returns the new path.
    pub fn keep(&self, produced: &Path) -> Result<PathBuf, DownloadError> {
        let storage =
            |err: std::io::Error| DownloadError::Storage(format!("{}: {err}", produced.display()));
        let real = produced.canonicalize().map_err(storage)?;
        let root = self.dir.path().canonicalize().map_err(storage)?;
        if !real.starts_with(&root) || !real.is_file() {
            return Err(DownloadError::permanent(format!(
                "the program reported {} which is not a file it wrote",
                produced.display()
            )));
        }
        let extension = real
            .extension()
            .and_then(|ext| ext.to_str())
            .filter(|ext| ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(|ext| format!(".{}", ext.to_ascii_lowercase()))
            .unwrap_or_default();
        let target = self
            .staging
            .join(format!(".mediadl-{}{extension}", uuid::Uuid::new_v4()));
        std::fs::rename(&real, &target).map_err(storage)?;
        Ok(target)
    }
}

/// The arguments every run of a program gets from the network settings:
/// the platform's proxy, when one is set.
fn proxy_for(cx: &Context, platform: &str) -> Option<String> {
    let network = &cx.settings.network;
    let proxy = network
        .platform_proxies
        .get(platform)
        .and_then(Value::as_str)
        .unwrap_or(&network.proxy);
    (!proxy.is_empty()).then(|| proxy.to_owned())
}

/// The availability check both engines share: platform and downloader
/// switched on, the program found, its version recent enough.
async fn check_program(
    settings: &Settings,
    platform: &str,
    downloader: &str,
    default_name: &str,
    minimum: &[u32],
    versions: &VersionCache,
) -> Result<PathBuf, Unavailable> {
    if !settings.platform_common(platform).enabled {
        return Err(Unavailable::new(format!(
            "disabled in settings (platforms.{platform}.enabled)"
        )));
    }
    let program =
        ProgramSettings::read(settings, platform, downloader).map_err(Unavailable::new)?;
    if !program.enabled {
        return Err(Unavailable::new(format!(
            "disabled in settings (platforms.{platform}.{downloader}.enabled)"
        )));
    }
    let path = locate(&program.path, default_name)?;
    versions.check(default_name, &path, minimum).await?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(parse_version("2026.10.26\n"), Some(vec![2026, 10, 26]));
        assert_eq!(parse_version("1.32.18"), Some(vec![1, 32, 18]));
        assert_eq!(parse_version("gallery-dl 1.9.0-dev"), Some(vec![1, 9, 0]));
        assert!(parse_version("1.32.18").unwrap().as_slice() >= [1, 26].as_slice());
        assert!(parse_version("1.9.0").unwrap().as_slice() < [1, 26].as_slice());
        assert_eq!(parse_version("command not found"), None);
    }

    #[test]
    fn failure_texts_map_to_what_the_engine_should_do() {
        use FailureKind::*;
        let cases = [
            (
                "yt-dlp",
                "ERROR: [tiktok] x: This user's account is private. Log into an account",
                LoginRequired,
                "AUTH_REQUIRED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Sign in to confirm you're not a bot",
                LoginRequired,
                "AUTH_REQUIRED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Sign in to confirm your age. This video may be inappropriate for some users. Use --cookies-from-browser or --cookies for the authentication.",
                LoginRequired,
                "AUTH_REQUIRED",
            ),
            (
                "gallery-dl",
                "[instagram][error] HTTP redirect to login page (https://www.instagram.com/accounts/login/)",
                LoginRequired,
                "AUTH_REQUIRED",
            ),
            (
                "gallery-dl",
                "[pixiv][error] AuthRequired: 'refresh-token' needed (https://github.com/mikf/gallery-dl#oauth)",
                LoginRequired,
                "AUTH_REQUIRED",
            ),
            (
                "yt-dlp",
                "ERROR: [instagram] x: Requested content is not available, rate-limit reached or login required",
                LoginRequired,
                "AUTH_REQUIRED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Join this channel to get access to members-only content like this video, and other exclusive perks.",
                MembersOnly,
                "AUTH_REQUIRED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: This video is available to this channel's members on level: Tier 1 (or any higher level).",
                MembersOnly,
                "AUTH_REQUIRED",
            ),
            (
                "yt-dlp",
                "ERROR: [instagram] x: rate-limit reached",
                RateLimited,
                "RATE_LIMITED",
            ),
            (
                "yt-dlp",
                "ERROR: unable to download: HTTP Error 429: Too Many Requests",
                RateLimited,
                "RATE_LIMITED",
            ),
            (
                "gallery-dl",
                "[kemonoparty][error] HttpError: '429 Too Many Requests' for 'https://kemono.su/api/v1/user'",
                RateLimited,
                "RATE_LIMITED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Video unavailable. The uploader has not made this video available in your country",
                GeoBlocked,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: [BiliBili] x: This video may be deleted or geo-restricted. You might want to try a VPN or a proxy server (with --proxy)",
                GeoBlocked,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: [tiktok] 1: Your IP address is blocked from accessing this post",
                IpBlocked,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Private video. Sign in if you've been granted access to this video",
                Private,
                "DOWNLOAD_FAILED",
            ),
            (
                "gallery-dl",
                "[twitter][error] 'This account's posts are private'",
                Private,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader",
                Removed,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: [youtube] x: Video unavailable. This video is no longer available because the YouTube account associated with this video has been terminated.",
                Removed,
                "DOWNLOAD_FAILED",
            ),
            (
                "gallery-dl",
                "[twitter][error] NotFoundError: Requested user could not be found",
                Removed,
                "DOWNLOAD_FAILED",
            ),
            (
                "gallery-dl",
                "[deviantart][error] HttpError: '404 Not Found' for 'https://www.deviantart.com/x'",
                Removed,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: Unsupported URL: http://x/",
                Unsupported,
                "DOWNLOAD_FAILED",
            ),
            (
                "gallery-dl",
                "[gallery-dl][error] No suitable extractor found for 'https://example.org/'",
                Unsupported,
                "DOWNLOAD_FAILED",
            ),
            (
                "yt-dlp",
                "ERROR: Connection reset by peer",
                Other,
                "DOWNLOAD_RETRYABLE",
            ),
            (
                "gallery-dl",
                "Traceback (most recent call last):\n  File \"gallery_dl/job.py\", line 1\nKeyError: 'x'",
                Other,
                "DOWNLOAD_RETRYABLE",
            ),
        ];
        for (name, stderr, kind, code) in cases {
            assert_eq!(failure_kind(name, stderr, Some(1)), kind, "{stderr}");
            assert_eq!(
                classify_failure(name, stderr, Some(1)).code(),
                code,
                "{stderr}"
            );
        }
        assert_eq!(
            classify_failure("gallery-dl", "[instagram][error] something", Some(16)).code(),
            "AUTH_REQUIRED"
        );
        let ip = classify_failure("yt-dlp", "ERROR: Your IP address is blocked", Some(1));
        assert!(ip.to_string().contains("proxy"), "{ip}");
        let geo = classify_failure("yt-dlp", "ERROR: not available in your country", Some(1));
        assert!(geo.to_string().contains("country"), "{geo}");
    }

    #[test]
    fn timestamps_in_every_printed_form() {
        let at = Utc.with_ymd_and_hms(2025, 10, 12, 14, 15, 23).unwrap();
        assert_eq!(parse_timestamp(&serde_json::json!(1_760_278_523)), Some(at));
        assert_eq!(
            parse_timestamp(&serde_json::json!(1_760_278_523.0)),
            Some(at)
        );
        assert_eq!(
            parse_timestamp(&serde_json::json!("2025-10-12 14:15:23")),
            Some(at)
        );
        assert_eq!(
            parse_timestamp(&serde_json::json!("2025-10-12T14:15:23Z")),
            Some(at)
        );
        assert_eq!(
            parse_timestamp(&serde_json::json!("20251012")),
            Some(Utc.with_ymd_and_hms(2025, 10, 12, 0, 0, 0).unwrap())
        );
        assert_eq!(parse_timestamp(&serde_json::json!("soon")), None);
        assert_eq!(parse_timestamp(&Value::Null), None);
    }

    #[test]
    fn locate_reports_what_to_do() {
        let err = locate("", "mediadl-no-such-program").unwrap_err();
        assert!(err.reason.contains("not found on PATH"), "{err}");
        let err = locate("/nonexistent/yt-dlp", "yt-dlp").unwrap_err();
        assert!(err.reason.contains("not an executable"), "{err}");
        assert_eq!(
            locate("/bin/sh", "yt-dlp").unwrap(),
            PathBuf::from("/bin/sh")
        );
    }

    #[test]
    fn source_urls_follow_templates() {
        let mut program = ProgramSettings::default();
        assert_eq!(
            program.source_url("https://www.tiktok.com/@{username}", "someone", "videos"),
            "https://www.tiktok.com/@someone"
        );
        program.url_templates.insert(
            "videos".into(),
            "http://127.0.0.1:1/{username}/{content_type}.html".into(),
        );
        assert_eq!(
            program.source_url("https://www.tiktok.com/@{username}", "someone", "videos"),
            "http://127.0.0.1:1/someone/videos.html"
        );
    }

    #[test]
    fn settings_name_the_bad_field() {
        let settings = Settings::from_value(&serde_json::json!({
            "platforms": {"tiktok": {"yt-dlp": {"timeout_seconds": "long"}}}
        }))
        .unwrap();
        let err = ProgramSettings::read(&settings, "tiktok", "yt-dlp").unwrap_err();
        assert!(
            err.contains("platforms.tiktok.yt-dlp.timeout_seconds"),
            "{err}"
        );
    }

    #[test]
    fn work_dirs_keep_only_their_own_files() {
        let staging_dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(staging_dir.path().to_path_buf());
        let work = WorkDir::new(Some(&staging)).unwrap();
        let produced = work.path().join("media.MP4");
        std::fs::write(&produced, b"data").unwrap();
        assert_eq!(work.bytes_written(), 4);
        let kept = work.keep(&produced).unwrap();
        assert_eq!(kept.parent().unwrap(), staging_dir.path());
        assert_eq!(kept.extension().unwrap(), "mp4");
        assert!(work.keep(Path::new("/etc/passwd")).is_err());
        let work_path = work.path().to_path_buf();
        drop(work);
        assert!(!work_path.exists(), "the work directory is removed");
        assert!(kept.exists(), "the kept file stays");
    }
}
