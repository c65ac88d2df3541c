//! The built-in platforms, one cargo feature each, and the registry of
//! them ([`Registry::builtin`]). They depend on the [`Downloader`] trait,
//! never the other way round.
//!
//! [`Downloader`]: crate::Downloader

use crate::downloader::Registry;
use crate::model::Settings;

#[cfg(feature = "direct")]
pub mod direct;

#[cfg(any(
    feature = "instagram",
    feature = "tiktok",
    feature = "ytdlp",
    feature = "gallerydl"
))]
pub mod accounts;
#[cfg(feature = "forum")]
pub mod forum;
#[cfg(feature = "instagram")]
pub mod instagram;
mod overview;
#[cfg(any(feature = "instagram", feature = "tiktok"))]
pub mod social;
#[cfg(feature = "tiktok")]
pub mod tiktok;
#[cfg(any(feature = "instagram", feature = "tiktok"))]
pub mod urls;

impl Registry {
    /// Every downloader built into this build of the crate (its features).
    pub fn builtin() -> Self {
        #[allow(unused_mut)]
        let mut registry = Self::new();
        #[cfg(feature = "direct")]
        registry.register(direct::Direct);
        #[cfg(feature = "forum")]
        registry.register(forum::Forum::default());
        #[cfg(feature = "instagram")]
        registry.register(instagram::Instagram::default());
        #[cfg(feature = "gallerydl")]
        registry.register(crate::engines::GalleryDl::instagram());
        #[cfg(feature = "tiktok")]
        registry.register(tiktok::TikTok::default());
        #[cfg(feature = "ytdlp")]
        registry.register(crate::engines::YtDlp::tiktok());
        // The general platforms: any site the programs support.
        #[cfg(feature = "ytdlp")]
        registry.register(crate::engines::YtDlp::video());
        #[cfg(feature = "gallerydl")]
        registry.register(crate::engines::GalleryDl::gallery());
        registry
    }
}

/// Whether a platform's source is the URL itself: the general platforms
/// `video` (any site yt-dlp supports) and `gallery` (any site gallery-dl
/// supports), whose sources are channel, playlist, board or post URLs.
pub fn source_is_url(platform: &str) -> bool {
    matches!(platform, "video" | "gallery")
}

/// Whether the platform as a whole is switched on (`platforms.<p>.enabled`,
/// on unless set to `false`).
pub fn platform_enabled(settings: &Settings, platform: &str) -> bool {
    settings.platform_common(platform).enabled
}

/// The platform's uploaded Netscape cookies (`platforms.<p>.cookies`), if any.
pub fn platform_cookies(settings: &Settings, platform: &str) -> Option<String> {
    settings
        .platform_common(platform)
        .cookies()
        .map(str::to_owned)
}
