//! The core crate's integration tests: the engine end to end on the
//! in-memory store against local fixture servers, and each platform.

mod engine;
#[cfg(any(feature = "ytdlp", feature = "gallerydl"))]
mod engines;
#[cfg(feature = "forum")]
mod forum;
#[cfg(feature = "instagram")]
mod instagram;
#[cfg(all(feature = "notify-email", feature = "webhooks"))]
mod notify;
mod scheduler;
#[cfg(feature = "s3")]
mod storage;
#[cfg(feature = "tiktok")]
mod tiktok;
