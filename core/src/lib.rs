//! # mediadl
//!
//! The core of mediadl, a self-hosted media archiver: the domain types, the
//! four traits adapters implement ([`Downloader`], [`Store`], [`Scheduler`],
//! [`EventBus`]), the download engine, and the platforms (each a cargo
//! feature).
//!
//! The crate knows nothing of HTTP servers, SQL or JWT: it opens sockets
//! only through [`fetch`] and the downloaders.

pub mod backup;
pub mod clock;
pub mod config;
pub mod downloader;
pub mod downloads;
pub mod engine;
#[cfg(any(feature = "ytdlp", feature = "gallerydl"))]
pub mod engines;
pub mod error;
pub mod events;
pub mod fetch;
pub mod format;
pub mod import;
pub mod markup;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod platforms;
pub mod queue;
pub mod recognise;
pub mod scheduler;
pub mod storage;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use clock::{Clock, SystemClock};
pub use config::{SettingsHandle, SettingsLayers};
pub use downloader::{Context, Downloader, MediaItem, Registry, Request, Unavailable};
pub use downloads::DownloadService;
pub use engine::{Engine, EngineBuilder};
pub use error::{DownloadError, Error, StoreError};
pub use events::{BroadcastBus, BusMessage, EventBus};
pub use import::ImportService;
pub use metrics::{MeteredBus, Metrics};
pub use model::Settings;
pub use queue::QueueService;
pub use scheduler::{CronScheduler, Scheduler};
pub use store::Store;
