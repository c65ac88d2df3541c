//! The built-in platforms, one cargo feature each.

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
#[cfg(any(feature = "instagram", feature = "tiktok"))]
pub mod social;
#[cfg(feature = "tiktok")]
pub mod tiktok;
