use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a downloader lists a source, which decides whether the incremental
/// stop ("N known items in a row") applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingOrder {
    /// Profiles and feeds: the first known items mean the rest is known too.
    NewestFirst,
    /// Threads: new posts come last, so every page must be looked at.
    OldestFirst,
    /// One URL, one item.
    Single,
}

/// Describes one downloader of one platform (`GET /platforms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloaderInfo {
    /// Platform name: `direct`, `forum`, `instagram`, `tiktok`, or a plugin's.
    pub platform: String,
    /// Platform name for people (`Instagram`, `Forum threads`).
    pub platform_display_name: String,
    /// Downloader name within the platform: `http`, `html`, `native`, `yt-dlp`, …
    pub name: String,
    /// Downloader name for people.
    pub display_name: String,
    /// Other names accepted for this downloader (`fastdl`, `toolzu`).
    pub aliases: Vec<String>,
    /// Content types the downloader can list (`posts`, `stories`, `thread`, …).
    pub content_types: Vec<String>,
    /// `quality_upgrade`, `date_filtering`, `limit_downloads`, …
    pub features: Vec<String>,
    /// Whether the incremental stop applies to its listings.
    pub listing_order: ListingOrder,
    /// Whether the platform accepts a cookies.txt upload.
    pub accepts_cookies: bool,
    /// Used when a request names no downloader.
    pub is_default: bool,
}

/// Whether a downloader can be used now, and why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloaderStatus {
    /// The downloader described.
    pub info: DownloaderInfo,
    /// Whether requests may use it now (configured, its program installed, …).
    pub enabled: bool,
    /// A reason a person can act on when not enabled.
    pub reason: Option<String>,
}

/// Whether a platform can be used now (`GET /platforms`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformStatus {
    /// Switched on, and at least one downloader is usable.
    Operational,
    /// Switched on, but no downloader is usable (see their reasons).
    Unavailable,
    /// Switched off in the settings (`platforms.<name>.enabled = false`).
    Disabled,
}

/// One downloader of a platform in a [`PlatformOverview`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloaderOverview {
    /// Downloader name within the platform.
    pub name: String,
    /// Downloader name for people.
    pub display_name: String,
    /// Whether requests may use it now.
    pub enabled: bool,
    /// Why not, when not enabled.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reason: Option<String>,
    /// Other names accepted for it.
    pub aliases: Vec<String>,
    /// Used when a request names no downloader.
    pub default: bool,
}

/// What is known of a platform's uploaded cookies.txt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookiesState {
    /// Whether cookies are stored.
    pub present: bool,
    /// How many cookies the stored file holds (0 when it does not parse).
    pub count: usize,
    /// The earliest expiry among them.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether that expiry has passed (stored cookies that parse only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub expired: Option<bool>,
    /// Why the stored file does not parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub error: Option<String>,
}

/// A platform as users see it: what it can do and whether it works now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformOverview {
    /// Platform name.
    pub name: String,
    /// Platform name for people.
    pub display_name: String,
    /// Switched on and usable.
    pub enabled: bool,
    /// Its downloaders, in registration order.
    pub downloaders: Vec<DownloaderOverview>,
    /// Content types any of its downloaders lists.
    pub content_types: Vec<String>,
    /// Features any of its downloaders has.
    pub features: Vec<String>,
    /// Whether it can be used now.
    pub status: PlatformStatus,
    /// When its newest download was saved.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_successful_download: Option<DateTime<Utc>>,
    /// Its cookies, when a downloader of it takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub cookies: Option<CookiesState>,
}
