//! The settings document (`GET/PATCH /settings`): typed sections with
//! defaults, validation that names the offending field, deep merge, and the
//! masking of secrets.
//!
//! The store keeps the document as JSON; [`Settings::from_value`] is the one
//! place that turns it into typed, validated values, so the API, the config
//! file and the engine agree on what is valid.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// What secrets look like on the way out; written back, it keeps the old value.
pub const MASK: &str = "***";

/// The whole settings document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where files go, worker count, time zone and other process-wide choices.
    pub general: GeneralSettings,
    /// Placement, file names, retries and limits of the downloads.
    pub downloads: DownloadSettings,
    /// Proxies, timeouts, rate limits and the address filter.
    pub network: NetworkSettings,
    /// Per platform, then per downloader; each platform reads its own part
    /// with [`Settings::platform`].
    pub platforms: Map<String, Value>,
    /// Email, browser and webhook notifications; read by the notifier.
    pub notifications: Map<String, Value>,
    /// Log level and retention.
    pub logs: LogSettings,
    /// The scheduled backup job.
    pub backup: crate::backup::BackupSettings,
    /// Where media bytes live: the download directory or an S3 bucket.
    pub storage: crate::storage::StorageSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            general: GeneralSettings::default(),
            downloads: DownloadSettings::default(),
            network: NetworkSettings::default(),
            platforms: default_platforms(),
            notifications: default_notifications(),
            logs: LogSettings::default(),
            backup: crate::backup::BackupSettings::default(),
            storage: crate::storage::StorageSettings::default(),
        }
    }
}

/// The keys every platform's section (`platforms.<platform>`) has; each
/// platform's own settings type flattens it, and
/// [`Settings::platform_common`] reads it for any platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlatformCommon {
    /// Off: none of the platform's downloaders runs (`GET /platforms` says why).
    pub enabled: bool,
    /// The uploaded Netscape cookies.txt (a secret, masked on the way out).
    pub cookies: Option<String>,
    /// Download an archived item again when the listing offers a larger version.
    pub auto_upgrade: bool,
}

impl Default for PlatformCommon {
    fn default() -> Self {
        Self {
            enabled: true,
            cookies: None,
            auto_upgrade: false,
        }
    }
}

impl PlatformCommon {
    /// The cookies' text, unless none were uploaded (or only blanks).
    pub fn cookies(&self) -> Option<&str> {
        self.cookies
            .as_deref()
            .filter(|text| !text.trim().is_empty())
    }
}

/// The spec's `general` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneralSettings {
    /// Root of all downloads; empty means `<data dir>/downloads`.
    pub download_directory: String,
    /// Workers per process (1–64); changes apply while running.
    pub concurrent_downloads: u32,
    /// Attempts per queue item (1–20).
    pub retry_attempts: u32,
    /// Priority of new queue items (1 most urgent – 10).
    pub default_priority: u8,
    /// New items wait once the download root holds this much; 0 is unlimited.
    pub storage_limit_gb: f64,
    /// Downloads older than this many days are removed; 0 keeps them.
    pub auto_cleanup_days: u32,
    /// Whether the automatic clean-up deletes files too, or only records.
    pub auto_cleanup_delete_files: bool,
}

impl Default for GeneralSettings {
    fn default() -> Self {
        Self {
            download_directory: String::new(),
            concurrent_downloads: 4,
            retry_attempts: 3,
            default_priority: 5,
            storage_limit_gb: 500.0,
            auto_cleanup_days: 0,
            auto_cleanup_delete_files: false,
        }
    }
}

/// Where files go and what is written next to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadSettings {
    /// Directory under the root, with `{platform}`, `{source}`, … placeholders.
    pub directory_template: String,
    /// File name, with `{source}`, `{date:%Y%m%d}`, `{media_id}`, `{ext}`, … placeholders.
    pub filename_template: String,
    /// Write `<file>.json` with the item's metadata next to each file.
    pub metadata_sidecar: bool,
    /// Stop a newest-first listing after this many archived items in a row.
    pub stop_after_known: u32,
    /// Progress events per second per item, at most.
    pub progress_events_per_second: u32,
    /// Files of one queue item (a thread, a profile) transferred at once (1–32).
    pub files_per_item: u32,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        Self {
            directory_template: "{platform}/{source}".into(),
            filename_template: "{source}_{date:%Y%m%d_%H%M%S}_{media_id}.{ext}".into(),
            metadata_sidecar: false,
            stop_after_known: 3,
            progress_events_per_second: 4,
            files_per_item: 4,
        }
    }
}

/// How mediadl talks to the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSettings {
    /// `http://`, `https://` or `socks5://` proxy for every request; empty for none.
    pub proxy: String,
    /// Per-platform proxies, overriding `proxy`.
    pub platform_proxies: Map<String, Value>,
    /// `User-Agent` header of every request that does not set its own.
    pub user_agent: String,
    /// Refuse loopback, private and link-local targets (checked after DNS and on every redirect).
    pub block_private_addresses: bool,
    /// Longest wait for a TCP (and TLS) connection, in seconds.
    pub connect_timeout_seconds: u32,
    /// Longest silence while reading a response.
    pub read_timeout_seconds: u32,
    /// Requests per second to one host, 0 for unlimited.
    pub per_host_requests_per_second: u32,
    /// Concurrent transfers from one host, 0 for unlimited.
    pub per_host_concurrency: u32,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            proxy: String::new(),
            platform_proxies: Map::new(),
            user_agent: concat!("mediadl/", env!("CARGO_PKG_VERSION")).into(),
            block_private_addresses: false,
            connect_timeout_seconds: 15,
            read_timeout_seconds: 60,
            per_host_requests_per_second: 0,
            per_host_concurrency: 0,
        }
    }
}

/// Stored log retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Stored log entries older than this many days are removed; 0 keeps them.
    pub retention_days: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { retention_days: 30 }
    }
}

fn default_platforms() -> Map<String, Value> {
    let value = serde_json::json!({
        "direct": { "enabled": true },
        "forum": { "enabled": true },
        "instagram": {
            "enabled": true,
            "native": { "enabled": true, "rate_limit_per_hour": 100 },
            "gallery-dl": { "enabled": true },
            "auto_upgrade": true
        },
        "tiktok": {
            "enabled": true,
            "quality": "hd",
            "native": { "enabled": true },
            "yt-dlp": { "enabled": true }
        },
        "video": {
            "enabled": true,
            "quality": "best",
            "audio_format": "m4a",
            "subtitles": [],
            "embed_subtitles": false,
            "thumbnail": false,
            "info_json": true,
            "nfo": false,
            "nfo_kind": "episode",
            "mtime_from_upload_date": true,
            "sleep_requests_seconds": 0.0,
            "limit_rate": "",
            "fast_listing": false,
            "yt-dlp": { "enabled": true }
        },
        "gallery": {
            "enabled": true,
            "generic": true,
            "sleep_request_seconds": 0.0,
            "metadata_json": false,
            "gallery-dl": { "enabled": true }
        }
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("literal object"),
    }
}

/// Every key of the typed `notifications` section, with its default.
fn default_notifications() -> Map<String, Value> {
    match serde_json::to_value(super::notifications::NotificationSettings::default()) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("a struct serializes to an object"),
    }
}

/// A settings value that is not acceptable, naming the field by its dotted path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    /// Dotted path of the field, such as `network.proxy`.
    pub field: String,
    /// What is wrong with the value, for a person to read.
    pub reason: String,
}

impl InvalidSetting {
    pub(crate) fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl Settings {
    /// Typed, validated settings from a stored or patched document.
    /// Missing keys take their defaults; unknown keys and wrong types are refused.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the first unacceptable field by its dotted path.
    pub fn from_value(value: &Value) -> Result<Self, InvalidSetting> {
        // Over the defaults document, so a platform or notification section
        // that sets one key keeps the defaults of its others (serde's
        // `default` fills missing fields of typed sections only, not of maps).
        let mut document = Settings::default().to_value();
        merge_patch(&mut document, value);
        let settings: Settings = serde_path_to_error::deserialize(&document).map_err(|err| {
            let path = err.path().to_string();
            InvalidSetting::new(&path, err.into_inner().to_string())
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// The document as JSON (every key, defaults included).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("settings serialize to JSON")
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let g = &self.general;
        range(
            "general.concurrent_downloads",
            g.concurrent_downloads,
            1,
            64,
        )?;
        range("general.retry_attempts", g.retry_attempts, 1, 20)?;
        range("general.default_priority", g.default_priority, 1, 10)?;
        if !(g.storage_limit_gb.is_finite() && g.storage_limit_gb >= 0.0) {
            return Err(InvalidSetting::new(
                "general.storage_limit_gb",
                "must be a number ≥ 0 (0 is unlimited)",
            ));
        }
        range("general.auto_cleanup_days", g.auto_cleanup_days, 0, 36_500)?;
        self.storage.validate()?;
        let d = &self.downloads;
        if d.filename_template.trim().is_empty() {
            return Err(InvalidSetting::new(
                "downloads.filename_template",
                "must not be empty",
            ));
        }
        range(
            "downloads.progress_events_per_second",
            d.progress_events_per_second,
            1,
            20,
        )?;
        range("downloads.stop_after_known", d.stop_after_known, 0, 1000)?;
        range("downloads.files_per_item", d.files_per_item, 1, 32)?;
        let n = &self.network;
        if !n.proxy.is_empty() {
            proxy_url("network.proxy", &n.proxy)?;
        }
        for (platform, proxy) in &n.platform_proxies {
            let field = format!("network.platform_proxies.{platform}");
            match proxy.as_str() {
                Some(text) => proxy_url(&field, text)?,
                None => return Err(InvalidSetting::new(&field, "must be a proxy URL string")),
            }
        }
        range(
            "network.connect_timeout_seconds",
            n.connect_timeout_seconds,
            1,
            600,
        )?;
        range(
            "network.read_timeout_seconds",
            n.read_timeout_seconds,
            1,
            3600,
        )?;
        range("logs.retention_days", self.logs.retention_days, 0, 36_500)?;
        self.backup.validate()?;
        super::notifications::NotificationSettings::from_settings(self)?;
        for (name, section) in &self.platforms {
            if !section.is_object() {
                return Err(InvalidSetting::new(
                    &format!("platforms.{name}"),
                    "must be an object",
                ));
            }
            self.platform::<PlatformCommon>(name)?;
        }
        super::general_platforms::VideoSettings::read(self)?;
        super::general_platforms::GallerySettings::read(self)?;
        Ok(())
    }

    /// The keys every platform's section has (`enabled`, `cookies`,
    /// `auto_upgrade`), with defaults where the document says nothing.
    /// Validation refuses a document whose sections do not fit, so this
    /// falls back to the defaults only for settings built by hand.
    pub fn platform_common(&self, platform: &str) -> PlatformCommon {
        self.platform(platform).unwrap_or_default()
    }

    /// One downloader's part of a platform's section
    /// (`platforms.<platform>.<downloader>`, e.g. `platforms.tiktok."yt-dlp"`),
    /// deserialised into its own type (defaults where the document says nothing).
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the field
    /// (`platforms.<platform>.<downloader>.…`) that does not fit `T`.
    pub fn downloader<T: DeserializeOwned + Default>(
        &self,
        platform: &str,
        downloader: &str,
    ) -> Result<T, InvalidSetting> {
        let section = self
            .platforms
            .get(platform)
            .and_then(Value::as_object)
            .and_then(|section| section.get(downloader));
        match section {
            None => Ok(T::default()),
            Some(value) => serde_path_to_error::deserialize(value).map_err(|err| {
                let field = format!("platforms.{platform}.{downloader}.{}", err.path());
                InvalidSetting::new(&field, err.into_inner().to_string())
            }),
        }
    }

    /// A platform's part of `platforms`, deserialised into its own type
    /// (defaults where the document says nothing).
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the field (`platforms.<platform>.…`) that
    /// does not fit `T`.
    pub fn platform<T: DeserializeOwned + Default>(
        &self,
        platform: &str,
    ) -> Result<T, InvalidSetting> {
        match self.platforms.get(platform) {
            None => Ok(T::default()),
            Some(value) => serde_path_to_error::deserialize(value).map_err(|err| {
                let field = format!("platforms.{platform}.{}", err.path());
                InvalidSetting::new(&field, err.into_inner().to_string())
            }),
        }
    }

    /// `general.storage_limit_gb` in bytes; `None` when unlimited.
    pub fn storage_limit_bytes(&self) -> Option<u64> {
        let gb = self.general.storage_limit_gb;
        (gb > 0.0).then_some((gb * 1024.0 * 1024.0 * 1024.0) as u64)
    }
}

fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), InvalidSetting> {
    if value < min || value > max {
        Err(InvalidSetting::new(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    } else {
        Ok(())
    }
}

fn proxy_url(field: &str, text: &str) -> Result<(), InvalidSetting> {
    let url = url::Url::parse(text)
        .map_err(|err| InvalidSetting::new(field, format!("not a URL: {err}")))?;
    match url.scheme() {
        "http" | "https" | "socks5" | "socks5h" => Ok(()),
        other => Err(InvalidSetting::new(
            field,
            format!("unsupported proxy scheme {other:?} (http, https, socks5, socks5h)"),
        )),
    }
}

/// Deep-merges `patch` into `target` (RFC 7396: objects merge, `null`
/// removes a key so its default returns, anything else replaces), and
/// returns how many leaf values changed.
pub fn merge_patch(target: &mut Value, patch: &Value) -> usize {
    let Value::Object(patch_map) = patch else {
        let changed = usize::from(target != patch);
        *target = patch.clone();
        return changed;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    let mut changed = 0;
    for (key, value) in patch_map {
        if value.is_null() {
            changed += usize::from(target_map.remove(key).is_some());
        } else {
            changed += merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
    changed
}

/// Whether a settings key holds a secret that is never shown.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "api_key",
        "secret",
        "token",
        "cookies",
        "sessionid",
    ]
    .iter()
    .any(|marker| key.ends_with(marker))
}

/// How a secret field is shown on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecretKind {
    /// Replaced by [`MASK`] as a whole (passwords, tokens, webhook URLs,
    /// `extra_args`).
    Whole,
    /// A URL whose user name and password are replaced by [`MASK`]
    /// (`http://***@proxy:3128/`), so the proxy's address stays visible.
    UrlCredentials,
}

/// Which fields are secret, by their path in the settings document.
/// The one classification behind the settings responses, the patch's
/// masked values and [`Redactor`].
fn secret_kind(path: &[&str]) -> Option<SecretKind> {
    match path {
        // Discord and ntfy carry the token in the URL itself.
        ["notifications", "webhooks", _, "url"] => Some(SecretKind::Whole),
        ["network", "proxy"] | ["network", "platform_proxies", _] => {
            Some(SecretKind::UrlCredentials)
        }
        // Arguments may carry a password or a cookie file's path.
        ["platforms", _, _, "extra_args"] => Some(SecretKind::Whole),
        ["storage", "s3", "secret_access_key"] => Some(SecretKind::Whole),
        [.., key] if is_secret_key(key) => Some(SecretKind::Whole),
        _ => None,
    }
}

/// What `value` at `path` looks like on the way out; `None` when it is
/// shown as it is (not secret, empty, or a proxy URL without credentials).
fn masked(path: &[&str], value: &Value) -> Option<Value> {
    let empty = match value {
        Value::Null | Value::Object(_) => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    if empty {
        return None;
    }
    match secret_kind(path)? {
        SecretKind::Whole => Some(Value::String(MASK.into())),
        SecretKind::UrlCredentials => value
            .as_str()
            .and_then(url_with_masked_credentials)
            .map(Value::String),
    }
}

/// `scheme://***@host/…` for a URL with a user name or password.
fn url_with_masked_credentials(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    url.set_username(MASK).ok()?;
    url.set_password(None).ok()?;
    Some(url.to_string())
}

/// Replaces every secret with its masked form (see [`MASK`]): passwords,
/// tokens and cookies, webhook URLs, `extra_args`, and the credentials of
/// proxy URLs.
pub fn mask_secrets(document: &mut Value) {
    fn walk(path: &mut Vec<String>, value: &mut Value) {
        let Value::Object(map) = value else { return };
        for (key, child) in map.iter_mut() {
            path.push(key.clone());
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            match masked(&segments, child) {
                Some(mask) => *child = mask,
                None => walk(path, child),
            }
            path.pop();
        }
    }
    walk(&mut Vec::new(), document);
}

/// Drops from a patch every secret written back in its masked form (what
/// [`mask_secrets`] made of `current`, or a bare [`MASK`]), so merging the
/// patch keeps the value in effect.
pub fn strip_masked(patch: &mut Value, current: &Value) {
    fn walk(path: &mut Vec<String>, patch: &mut Value, current: Option<&Value>) {
        let Value::Object(map) = patch else { return };
        let mut echoed = Vec::new();
        for (key, sent) in map.iter_mut() {
            path.push(key.clone());
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let stored = current.and_then(|current| current.get(key));
            let is_echo = secret_kind(&segments).is_some()
                && (sent.as_str() == Some(MASK)
                    || stored.and_then(|stored| masked(&segments, stored)).as_ref() == Some(sent));
            if is_echo {
                echoed.push(key.clone());
            } else {
                walk(path, sent, stored);
            }
            path.pop();
        }
        for key in echoed {
            map.remove(&key);
        }
    }
    walk(&mut Vec::new(), patch, Some(current));
}

/// Drops from a patch every value equal to the one in effect (`current`),
/// so a client sending back the document it was shown stores nothing: the
/// defaults and the real download directory it shows are not frozen into
/// the stored document. `null` (back to the default) always stays.
pub fn drop_unchanged(patch: &mut Value, current: &Value) {
    let Value::Object(map) = patch else { return };
    map.retain(|key, sent| match (sent, current.get(key)) {
        (Value::Null, _) | (_, None) => true,
        (sent @ Value::Object(_), Some(now)) => {
            drop_unchanged(sent, now);
            sent.as_object().is_some_and(|inner| !inner.is_empty())
        }
        (sent, Some(now)) => sent != now,
    });
}

/// Keys of a downloader's section (`platforms.<platform>.<downloader>`)
/// that decide what runs on the host: the program and its extra arguments.
/// They come from the config file (or code embedding the library), never
/// from `PATCH /settings` or the stored document.
pub const PROGRAM_KEYS: &[&str] = &["path", "extra_args"];

/// Whether a dotted path names a program setting (`platforms.<p>.<d>.path`
/// or `….extra_args`).
pub fn is_program_field(field: &str) -> bool {
    let parts: Vec<&str> = field.split('.').collect();
    matches!(parts.as_slice(), ["platforms", _, _, key] if PROGRAM_KEYS.contains(key))
}

/// Every program setting of `document`, as (platform, downloader, key, value).
fn program_fields(document: &Value) -> Vec<(String, String, &'static str, Value)> {
    let mut found = Vec::new();
    let Some(platforms) = document.get("platforms").and_then(Value::as_object) else {
        return found;
    };
    for (platform, section) in platforms {
        let Some(section) = section.as_object() else {
            continue;
        };
        for (downloader, program) in section {
            for key in PROGRAM_KEYS {
                if let Some(value) = program.as_object().and_then(|program| program.get(*key)) {
                    found.push((platform.clone(), downloader.clone(), *key, value.clone()));
                }
            }
        }
    }
    found
}

/// Removes every program setting from `document` and returns their dotted
/// paths (a stored document from before they became read-only may hold some).
pub fn remove_program_fields(document: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    for (platform, downloader, key, _) in program_fields(document) {
        if let Some(program) = document["platforms"][&platform][&downloader].as_object_mut() {
            program.remove(key);
        }
        removed.push(format!("platforms.{platform}.{downloader}.{key}"));
    }
    removed
}

/// Only the program settings of `document`, as a document of their own
/// (the layer [`SettingsHandle`](crate::SettingsHandle) keeps over the stored settings).
pub fn program_layer(document: &Value) -> Value {
    let mut layer = Value::Object(Map::new());
    for (platform, downloader, key, value) in program_fields(document) {
        layer["platforms"][&platform][&downloader][key] = value;
    }
    layer
}

/// Refuses a patch that changes a program setting, and removes the ones it
/// sends back unchanged (as `current` has them, or in their masked form).
///
/// # Errors
///
/// [`InvalidSetting`] naming the first program setting the patch would change.
pub fn take_program_fields(patch: &mut Value, current: &Value) -> Result<(), InvalidSetting> {
    for (platform, downloader, key, sent) in program_fields(patch) {
        let field = format!("platforms.{platform}.{downloader}.{key}");
        let path = ["platforms", platform.as_str(), downloader.as_str(), key];
        let now = current
            .get("platforms")
            .and_then(|p| p.get(&platform))
            .and_then(|p| p.get(&downloader))
            .and_then(|p| p.get(key))
            .filter(|now| !now.is_null());
        let unchanged = match now {
            None => sent.is_null(),
            Some(now) => *now == sent || masked(&path, now).as_ref() == Some(&sent),
        };
        if !unchanged {
            return Err(InvalidSetting::new(
                &field,
                "read-only over HTTP: programs and their arguments are set in the config file (--config / MEDIADL_CONFIG)",
            ));
        }
    }
    remove_program_fields(patch);
    Ok(())
}

/// Shortest secret value [`Redactor`] looks for in free text: shorter ones
/// (`-f`, `hd`) would blank out ordinary words.
const MIN_REDACTED_LEN: usize = 6;

/// URL credentials (`scheme://user:pass@`) in free text.
static URL_CREDENTIALS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@").expect("valid regex")
});
/// Query parameters that carry credentials (`?token=…`, `&api_key=…`).
static SECRET_QUERY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)([?&](?:access_token|token|api_key|apikey|key|secret|password|passwd|sig|signature|auth)=)[^&\s#]+",
    )
    .expect("valid regex")
});

/// Removes secrets from free text (log messages, delivery errors) before
/// anyone else reads it: every secret value of the settings (the fields
/// [`mask_secrets`] masks), plus URL credentials and credential query
/// parameters wherever they appear.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a URL is replaced before the token inside it.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the secrets of `settings`.
    pub fn from_settings(settings: &Settings) -> Self {
        fn walk(path: &mut Vec<String>, value: &Value, redactor: &mut Redactor) {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            if let Some(kind) = secret_kind(&segments) {
                match (kind, value) {
                    (SecretKind::UrlCredentials, Value::String(url)) => {
                        redactor.add_url_credentials(url)
                    }
                    (_, Value::String(text)) if segments.last() == Some(&"url") => {
                        redactor.add_url(text)
                    }
                    (_, Value::String(text)) => redactor.add(text),
                    (_, Value::Array(items)) => {
                        for arg in items.iter().filter_map(Value::as_str) {
                            // `--password=x`: the value; `--verbose`: nothing.
                            match arg.split_once('=') {
                                Some((_, value)) => redactor.add(value),
                                None if !arg.starts_with('-') => redactor.add(arg),
                                None => {}
                            }
                        }
                    }
                    _ => {}
                }
                return;
            }
            if let Value::Object(map) = value {
                for (key, child) in map {
                    path.push(key.clone());
                    walk(path, child, redactor);
                    path.pop();
                }
            }
        }
        let mut redactor = Self::default();
        walk(&mut Vec::new(), &settings.to_value(), &mut redactor);
        redactor
    }

    /// Also hides `secret` (ignored when shorter than a few characters).
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.chars().count() >= MIN_REDACTED_LEN && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Also hides a URL that is a secret as a whole, in the forms it is
    /// printed in: as written, normalised, its path and query, its path.
    pub fn add_url(&mut self, text: &str) {
        self.add(text);
        if let Ok(url) = url::Url::parse(text.trim()) {
            self.add(url.as_str());
            for rest in [
                &url[url::Position::BeforePath..],
                &url[url::Position::BeforePath..url::Position::AfterPath],
            ] {
                if rest.len() > 1 {
                    self.add(rest);
                }
            }
        }
    }

    fn add_url_credentials(&mut self, text: &str) {
        if let Ok(url) = url::Url::parse(text.trim()) {
            if let Some(password) = url.password() {
                self.add(password);
            }
            if !url.username().is_empty() {
                self.add(url.username());
            }
        }
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        let text = URL_CREDENTIALS.replace_all(&text, "${1}***@");
        SECRET_QUERY.replace_all(&text, "${1}***").into_owned()
    }

    /// Every string inside `value` redacted.
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(text) => *text = self.redact(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_value(item)),
            Value::Object(map) => map.values_mut().for_each(|item| self.redact_value(item)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_validate_and_round_trip() {
        let value = Settings::default().to_value();
        assert_eq!(Settings::from_value(&value).unwrap(), Settings::default());
        assert_eq!(
            Settings::from_value(&json!({})).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn wrong_type_and_range_name_the_field() {
        let err =
            Settings::from_value(&json!({"general": {"concurrent_downloads": "six"}})).unwrap_err();
        assert_eq!(err.field, "general.concurrent_downloads");
        let err =
            Settings::from_value(&json!({"general": {"concurrent_downloads": 0}})).unwrap_err();
        assert_eq!(err.field, "general.concurrent_downloads");
        for files_per_item in [0, 33] {
            let err =
                Settings::from_value(&json!({"downloads": {"files_per_item": files_per_item}}))
                    .unwrap_err();
            assert_eq!(err.field, "downloads.files_per_item");
        }
        let err = Settings::from_value(&json!({"general": {"nope": 1}})).unwrap_err();
        assert!(err.reason.contains("nope"), "{err}");
        let err = Settings::from_value(&json!({"network": {"proxy": "ftp://x"}})).unwrap_err();
        assert_eq!(err.field, "network.proxy");
    }

    #[test]
    fn merge_patch_counts_changed_leaves() {
        let mut doc = Settings::default().to_value();
        let patch = json!({
            "general": {"concurrent_downloads": 6},
            "platforms": {"instagram": {"gallery-dl": {"enabled": false}}}
        });
        assert_eq!(merge_patch(&mut doc, &patch), 2);
        let settings = Settings::from_value(&doc).unwrap();
        assert_eq!(settings.general.concurrent_downloads, 6);
        assert_eq!(
            doc["platforms"]["instagram"]["native"]["enabled"],
            json!(true)
        );
        assert_eq!(
            merge_patch(&mut doc, &patch),
            0,
            "same values change nothing"
        );
    }

    #[test]
    fn secrets_are_masked_and_mask_written_back_keeps_them() {
        let mut doc =
            json!({"notifications": {"email": {"smtp_password": "hunter2", "smtp_host": "mx"}}});
        let stored = doc.clone();
        mask_secrets(&mut doc);
        assert_eq!(doc["notifications"]["email"]["smtp_password"], json!(MASK));
        assert_eq!(doc["notifications"]["email"]["smtp_host"], json!("mx"));
        let mut patch = doc.clone();
        strip_masked(&mut patch, &stored);
        let mut merged = stored.clone();
        merge_patch(&mut merged, &patch);
        assert_eq!(merged, stored);
    }

    #[test]
    fn webhook_urls_proxy_credentials_and_extra_args_are_masked_and_echo_keeps_them() {
        let stored = json!({
            "network": {"proxy": "http://bob:pa55word@proxy.example:3128", "platform_proxies": {"tiktok": "socks5://proxy.example:1080"}},
            "notifications": {"webhooks": {"ci": {"url": "https://discord.com/api/webhooks/1/T0KEN-abcdef"}}},
            "platforms": {"tiktok": {"yt-dlp": {"extra_args": ["--password", "hunter22"], "path": "/usr/bin/yt-dlp"}}}
        });
        let mut shown = stored.clone();
        mask_secrets(&mut shown);
        assert_eq!(
            shown["network"]["proxy"],
            json!("http://***@proxy.example:3128/")
        );
        assert_eq!(
            shown["network"]["platform_proxies"]["tiktok"],
            json!("socks5://proxy.example:1080")
        );
        assert_eq!(shown["notifications"]["webhooks"]["ci"]["url"], json!(MASK));
        assert_eq!(
            shown["platforms"]["tiktok"]["yt-dlp"]["extra_args"],
            json!(MASK)
        );
        assert_eq!(
            shown["platforms"]["tiktok"]["yt-dlp"]["path"],
            json!("/usr/bin/yt-dlp")
        );
        let mut patch = shown.clone();
        strip_masked(&mut patch, &stored);
        take_program_fields(&mut patch, &stored).unwrap();
        let mut merged = stored.clone();
        assert_eq!(
            merge_patch(&mut merged, &patch),
            0,
            "the echo changes nothing"
        );
        assert_eq!(merged, stored);
    }

    #[test]
    fn program_settings_cannot_be_changed_by_a_patch() {
        let current = json!({"platforms": {"tiktok": {"yt-dlp": {"path": "/usr/bin/yt-dlp", "extra_args": ["-f", "best"]}}}});
        for (patch, field) in [
            (
                json!({"platforms": {"tiktok": {"yt-dlp": {"path": "/tmp/evil"}}}}),
                "platforms.tiktok.yt-dlp.path",
            ),
            (
                json!({"platforms": {"tiktok": {"yt-dlp": {"extra_args": ["--exec", "sh"]}}}}),
                "platforms.tiktok.yt-dlp.extra_args",
            ),
            (
                json!({"platforms": {"tiktok": {"yt-dlp": {"path": null}}}}),
                "platforms.tiktok.yt-dlp.path",
            ),
            (
                json!({"platforms": {"instagram": {"gallery-dl": {"path": "/bin/sh"}}}}),
                "platforms.instagram.gallery-dl.path",
            ),
        ] {
            let mut patch = patch;
            let err = take_program_fields(&mut patch, &current).unwrap_err();
            assert_eq!(err.field, field);
            assert!(is_program_field(&err.field));
        }
        let mut stored = current.clone();
        assert_eq!(remove_program_fields(&mut stored).len(), 2);
        assert_eq!(stored, json!({"platforms": {"tiktok": {"yt-dlp": {}}}}));
        assert_eq!(program_layer(&current), current);
        assert!(!is_program_field("platforms.tiktok.quality"));
    }

    #[test]
    fn the_redactor_hides_every_secret_of_the_settings() {
        let settings = Settings::from_value(&json!({
            "network": {"proxy": "http://bob:pa55word@proxy.example:3128"},
            "notifications": {
                "email": {"smtp_password": "smtp-s3cret"},
                "webhooks": {"ci": {"url": "https://ntfy.example/alerts-T0KEN?auth=xyz", "secret": "hmac-s3cret"}}
            },
            "platforms": {"tiktok": {"yt-dlp": {"extra_args": ["--password=argsecret", "--verbose"]}}}
        }))
        .unwrap();
        let redactor = Redactor::from_settings(&settings);
        let text = "POST https://ntfy.example/alerts-T0KEN?auth=xyz failed; /alerts-T0KEN; \
                    proxy pa55word; smtp-s3cret hmac-s3cret argsecret --verbose; \
                    other https://u:p@host.example/x?token=abc&page=2";
        let clean = redactor.redact(text);
        for secret in [
            "T0KEN",
            "xyz",
            "pa55word",
            "smtp-s3cret",
            "hmac-s3cret",
            "argsecret",
            "u:p",
            "abc",
        ] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(
            clean.contains("--verbose") && clean.contains("page=2"),
            "{clean}"
        );
        assert_eq!(
            redactor.redact(&clean),
            clean,
            "redacting twice changes nothing"
        );
    }
}
