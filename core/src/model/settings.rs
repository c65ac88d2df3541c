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
        }
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
            "native": { "enabled": true, "rate_limit_per_hour": 100 },
            "gallery-dl": { "enabled": true },
            "auto_upgrade": true
        },
        "tiktok": { "enabled": true, "quality": "hd" }
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("literal object"),
    }
}

fn default_notifications() -> Map<String, Value> {
    let value = serde_json::json!({
        "email": { "enabled": false, "smtp_host": "", "smtp_port": 587 },
        "browser": { "enabled": true }
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("literal object"),
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
    fn new(field: &str, reason: impl Into<String>) -> Self {
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
        let settings: Settings = serde_path_to_error::deserialize(value).map_err(|err| {
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
        crate::notify::NotificationSettings::from_settings(self)?;
        for (name, section) in &self.platforms {
            if !section.is_object() {
                return Err(InvalidSetting::new(
                    &format!("platforms.{name}"),
                    "must be an object",
                ));
            }
        }
        Ok(())
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

/// Replaces every non-empty secret value with [`MASK`].
pub fn mask_secrets(value: &mut Value) {
    if let Value::Object(map) = value {
        for (key, child) in map.iter_mut() {
            if is_secret_key(key) && !child.is_object() {
                let empty = child.is_null() || child.as_str().is_some_and(str::is_empty);
                if !empty {
                    *child = Value::String(MASK.into());
                }
            } else {
                mask_secrets(child);
            }
        }
    }
}

/// Drops every secret written back as [`MASK`] from a patch, so merging it
/// keeps the stored value.
pub fn strip_masked(patch: &mut Value) {
    if let Value::Object(map) = patch {
        map.retain(|key, child| !(is_secret_key(key) && child.as_str() == Some(MASK)));
        for child in map.values_mut() {
            strip_masked(child);
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
        strip_masked(&mut patch);
        let mut merged = stored.clone();
        merge_patch(&mut merged, &patch);
        assert_eq!(merged, stored);
    }
}
