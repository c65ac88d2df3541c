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
