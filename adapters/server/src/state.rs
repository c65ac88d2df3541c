//! [`AppState`]: what every route handler may use. Cheap to clone.

use std::path::PathBuf;
use std::sync::Arc;

use mediadl::scheduler::Scheduler;
use mediadl::{
    Clock, DownloadService, EventBus, Metrics, QueueService, Registry, SettingsHandle, Store,
};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::RateLimits;
use crate::media_links::MediaLinks;
use crate::metrics::MetricsSource;
use crate::ratelimit::RateLimiter;
use crate::thumbnail::Thumbnailer;
use crate::ws::{Connections, EventFrames};

/// Shared state of a running server.
#[derive(Clone)]
pub struct AppState {
    /// The database every handler reads and writes.
    pub store: Arc<dyn Store>,
    /// Where queue changes, progress and logs are published (and the
    /// WebSocket subscribes).
    pub events: Arc<dyn EventBus>,
    /// The downloaders `/platforms` lists and requests are checked against.
    pub registry: Arc<Registry>,
    /// The live settings (`/settings` reads and updates them).
    pub settings: SettingsHandle,
    /// Every queue write goes through here (validation, `queue_updated`).
    pub queue: QueueService,
    /// Deleting, retrying and summarising downloads, and finding their files.
    pub downloads: DownloadService,
    /// Moving in from yt-dlp, gallery-dl and media trees (`POST /import`).
    pub imports: mediadl::ImportService,
    /// Job management for `/scheduler/*`; its firing loop runs in the server.
    pub scheduler: Arc<dyn Scheduler>,
    /// The time source of tokens, history rows and queue items.
    pub clock: Arc<dyn Clock>,
    /// Token issuing and checking, login lockout.
    pub auth: Arc<Auth>,
    /// Signs and checks the media links of `<img>` and `<video>`.
    pub media_links: Arc<MediaLinks>,
    /// Makes thumbnails, a few at a time, and caches them.
    pub thumbnails: Arc<Thumbnailer>,
    /// Per-user and per-address request counters.
    pub limits: Arc<RateLimiter>,
    /// The limits `limits` enforces, for the WebSocket connection cap.
    pub rate_limits: RateLimits,
    /// WebSocket connections per user.
    pub connections: Arc<Connections>,
    /// Events serialised once for every WebSocket.
    pub event_frames: Arc<EventFrames>,
    /// Where downloads go unless the settings say otherwise (the media
    /// itself is reached through [`DownloadService::storage`]).
    pub download_root: PathBuf,
    /// The server's data directory (thumbnail cache, JWT secret).
    pub data_dir: PathBuf,
    /// The series `/metrics` shows; the engine, scheduler, notifier and
    /// the HTTP layer count into it.
    pub metrics: Metrics,
    /// The bearer token `/metrics` asks for, when one is configured.
    pub metrics_token: Option<Arc<str>>,
    /// Cancelled when the server shuts down (WebSockets close).
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("download_root", &self.download_root)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// What `/metrics` answers from: this server's series, store, token
    /// and WebSocket connections.
    pub fn metrics_source(&self) -> MetricsSource {
        MetricsSource {
            metrics: self.metrics.clone(),
            store: Arc::clone(&self.store),
            token: self.metrics_token.clone(),
            connections: Some(Arc::clone(&self.connections)),
        }
    }
}
