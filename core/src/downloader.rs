//! What a platform implements: [`Downloader`] turns a [`Request`] into a
//! stream of [`MediaItem`]s. Moving bytes, dedupe, placement and records
//! stay in the engine, so every platform gets them the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::{DownloadError, Error};
use crate::fetch::HttpClient;
use crate::model::{DownloaderInfo, DownloaderStatus, Metadata, QueueItem, Settings};
use crate::recognise::Recognition;
use crate::store::StateRepo;

/// One way of getting media from one platform.
///
/// A downloader only *discovers*: it lists [`MediaItem`]s with stable
/// archive keys. The engine skips keys it has archived, fetches the rest
/// (with retries, rate limits, resuming and hashing), deduplicates, places
/// and records them. Errors say what the engine should do next
/// ([`DownloadError`]); cancellation arrives through [`Context::cancel`].
///
/// A complete platform, run by an engine on the in-memory store against a
/// local fixture server:
///
/// ```
/// use async_trait::async_trait;
/// use futures::stream::{self, BoxStream, StreamExt};
/// use mediadl::model::{DownloaderInfo, EventKind, ListingOrder, NewQueueItem, QueueStatus, Settings};
/// use mediadl::testkit::{Fixture, FixtureServer, TestEngine};
/// use mediadl::{
///     BusMessage, Context, DownloadError, Downloader, Error, EventBus, MediaItem, Registry,
///     Request, Unavailable,
/// };
/// use tokio_util::sync::CancellationToken;
///
/// /// Platform `note`: the source URL is the one file to save.
/// #[derive(Debug)]
/// struct Note;
///
/// #[async_trait]
/// impl Downloader for Note {
///     fn info(&self) -> DownloaderInfo {
///         DownloaderInfo {
///             platform: "note".into(),
///             platform_display_name: "Notes".into(),
///             name: "native".into(),
///             display_name: "Notes".into(),
///             aliases: Vec::new(),
///             content_types: vec!["file".into()],
///             features: Vec::new(),
///             listing_order: ListingOrder::Single,
///             accepts_cookies: false,
///             is_default: true,
///         }
///     }
///
///     async fn check(&self, _settings: &Settings) -> Result<(), Unavailable> {
///         Ok(())
///     }
///
///     fn validate(&self, request: &Request) -> Result<(), Error> {
///         url::Url::parse(&request.url)
///             .map(drop)
///             .map_err(|err| Error::invalid("url", err.to_string()))
///     }
///
///     fn discover(
///         &self,
///         request: &Request,
///         _cx: &Context,
///     ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
///         let item = url::Url::parse(&request.url)
///             .map(|url| MediaItem::new(format!("note:{url}"), url, "file"))
///             .map_err(|err| DownloadError::permanent(err.to_string()));
///         stream::iter([item]).boxed()
///     }
/// }
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = FixtureServer::start().await;
/// server.route("/hello.txt", Fixture::bytes("hello"));
///
/// let mut registry = Registry::new();
/// registry.register(Note);
/// let root = tempfile::tempdir()?;
/// let test = TestEngine::with_registry(root.path(), registry);
/// let mut events = test.events.subscribe();
/// test.queue()
///     .submit(NewQueueItem::new(server.url("/hello.txt"), "note", "local", "file"))
///     .await?;
///
/// let shutdown = CancellationToken::new();
/// let engine = test.engine.clone();
/// let running = tokio::spawn({
///     let shutdown = shutdown.clone();
///     async move { engine.run(shutdown).await }
/// });
/// let completed = loop {
///     if let Some(BusMessage::Event(event)) = events.next().await
///         && let EventKind::DownloadCompleted(completed) = &event.kind
///     {
///         break completed.clone();
///     }
/// };
/// shutdown.cancel();
/// running.await??;
/// assert_eq!(completed.status, QueueStatus::Completed);
/// assert_eq!(completed.items_downloaded, 1);
/// # Ok(())
/// # }
/// ```
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Downloader: Send + Sync + std::fmt::Debug {
    /// Platform, name, display name, content types, features.
    fn info(&self) -> DownloaderInfo;

    /// Usable with these settings? A missing program or absent credentials
    /// is an `Err` with a reason a person can act on (shown by `GET /platforms`).
    /// Must not touch the network.
    async fn check(&self, settings: &Settings) -> Result<(), Unavailable>;

    /// Refuses requests this downloader can never serve (a malformed
    /// username, a URL of the wrong site), before anything is queued.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the request field (`source`, `url`) and
    /// saying what is wrong; the API answers it with a 422.
    fn validate(&self, request: &Request) -> Result<(), Error>;

    /// Whether this downloader claims `url` (an http(s) URL someone pasted)
    /// and as what request: platform, source, content type. A named
    /// platform answers by host and path rules ([`MatchedBy::Rules`]); an
    /// external program by its extractor patterns. Must not touch the
    /// network and must be quick: [`Registry::recognise`] asks every
    /// downloader. The default claims nothing.
    ///
    /// [`MatchedBy::Rules`]: crate::recognise::MatchedBy::Rules
    async fn recognise(&self, _url: &url::Url, _settings: &Settings) -> Option<Recognition> {
        None
    }

    /// Lists media for a request, newest first where the platform allows,
    /// as a stream: the engine pulls only as many as it needs
    /// (`max_downloads`, the date window, N known in a row), so a
    /// 10,000-post profile is never listed whole. The stream owns what it
    /// uses (clone the request, the context and your configuration into it;
    /// `async_stream::try_stream!` makes paging loops easy).
    fn discover(
        &self,
        request: &Request,
        cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>>;

    /// Only for downloaders that move bytes themselves (external programs):
    /// writes the item's file into `staging` and returns its path. The
    /// default, `None`, hands the item to the engine's shared HTTP fetch.
    async fn transfer(
        &self,
        _item: &MediaItem,
        _staging: &Staging,
        _cx: &Context,
    ) -> Option<Result<PathBuf, DownloadError>> {
        None
    }
}

/// The archive key of a plain URL: the URL itself, without its fragment.
pub fn url_archive_key(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    format!("direct:{url}")
}

/// Why a downloader cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{reason}")]
pub struct Unavailable {
    /// What is missing, phrased so a person can fix it ("yt-dlp is not installed").
    pub reason: String,
}

impl Unavailable {
    /// An [`Unavailable`] saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// What to fetch: one queue item's platform, source and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The queue item this request runs for.
    pub queue_id: i64,
    /// The URL to fetch or the source's page (direct files, forum threads).
    pub url: String,
    /// Platform name, as in [`Registry`].
    pub platform: String,
    /// The account, thread or URL to download from; its form is the platform's.
    pub source: String,
    /// Kind of content to list (`posts`, `stories`, `thread`, …); one of the downloader's `content_types`.
    pub content_type: String,
    /// The downloader asked for by name or alias; the platform's default when `None`.
    pub downloader: Option<String>,
    /// Save at most this many new media items; the engine stops pulling after that.
    pub max_downloads: Option<u32>,
    /// Only media posted at or after this time (`days_back`).
    pub since: Option<DateTime<Utc>>,
    /// Stop a newest-first listing after this many archived items in a row.
    pub stop_after_known: u32,
    /// `Referer` header the requests should send, when the URL needs one.
    pub referer: Option<String>,
    /// Free-form data carried from the queue item (forum post, job name, …).
    pub metadata: Metadata,
}

impl Request {
    /// A request for `source` on `platform` with no limits and the default
    /// incremental stop, as a queue item without options asks; for calling
    /// a downloader directly (embedders, tests).
    pub fn new(
        platform: impl Into<String>,
        source: impl Into<String>,
        content_type: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Self {
            queue_id: 0,
            url: url.into(),
            platform: platform.into(),
            source: source.into(),
            content_type: content_type.into(),
            downloader: None,
            max_downloads: None,
            since: None,
            stop_after_known: crate::model::settings::DownloadSettings::default().stop_after_known,
            referer: None,
            metadata: Metadata::default(),
        }
    }

    /// The request's URL when it is http(s) with a host. `what` names the
    /// URL in the errors (`URL`, `thread URL`); `accepted` says what a
    /// refused scheme should have been.
    #[cfg(any(feature = "direct", feature = "forum"))]
    pub(crate) fn web_url(&self, what: &str, accepted: &str) -> Result<url::Url, Error> {
        let url = url::Url::parse(self.url.trim())
            .map_err(|err| Error::invalid("url", format!("not a {what}: {err}")))?;
        match url.scheme() {
            "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
            "http" | "https" => Err(Error::invalid("url", format!("{what} has no host"))),
            other => Err(Error::invalid(
                "url",
                format!("unsupported scheme {other:?}: {accepted}"),
            )),
        }
    }

    /// The request a queue item stands for, as of `now`.
    pub fn from_item(item: &QueueItem, settings: &Settings, now: DateTime<Utc>) -> Self {
        Self {
            queue_id: item.id,
            url: item.url.clone(),
            platform: item.platform.clone(),
            source: item.source.clone(),
            content_type: item.content_type.clone(),
            downloader: item.options.downloader.clone(),
            max_downloads: item.options.max_downloads,
            // A window reaching before the earliest representable time
            // means "everything": saturate rather than overflow.
            since: item.options.days_back.map(|days| {
                now.checked_sub_signed(chrono::Duration::days(i64::from(days)))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC)
            }),
            stop_after_known: item
                .options
                .stop_after_known
                .unwrap_or(settings.downloads.stop_after_known),
            referer: item.referer.clone(),
            metadata: item.metadata.clone(),
        }
    }
}

/// One media file a downloader found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaItem {
    /// Stable across runs: `instagram:3141592653`, `forum:site:123:post-9:2`.
    pub archive_key: String,
    /// Where the file's bytes are.
    pub url: url::Url,
    /// `Referer` header the fetch sends, when the host checks it.
    pub referer: Option<url::Url>,
    /// `post`, `story`, `reel`, `video`, `image`, `file`.
    pub content_type: String,
    /// When the platform says the media was posted; used by the date window and `{date}` placeholders.
    pub posted_at: Option<DateTime<Utc>>,
    /// The platform's id of the media, used by filename templates.
    pub media_id: Option<String>,
    /// A file name the platform suggests (sanitised before use).
    pub suggested_name: Option<String>,
    /// Pixel size, when known, for quality upgrades.
    pub resolution: Option<(u32, u32)>,
    /// Platform data written to the download record (and the sidecar, when enabled).
    pub metadata: Metadata,
}

impl MediaItem {
    /// An item with only the required parts; fill the rest with struct update syntax.
    pub fn new(
        archive_key: impl Into<String>,
        url: url::Url,
        content_type: impl Into<String>,
    ) -> Self {
        Self {
            archive_key: archive_key.into(),
            url,
            referer: None,
            content_type: content_type.into(),
            posted_at: None,
            media_id: None,
            suggested_name: None,
            resolution: None,
            metadata: Metadata::new(),
        }
    }
}

/// A directory on the same file system as the final location, where a
/// downloader that transfers by itself writes its file.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Staging in `dir`, which must exist and be on the final location's file system.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory to write into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Byte progress of the current transfer, shared between whoever moves the
/// bytes and the engine's rate-limited progress publisher.
#[derive(Debug, Default)]
pub struct TransferProgress {
    done: AtomicU64,
    /// `u64::MAX` while unknown.
    total: AtomicU64,
}

impl TransferProgress {
    /// Nothing done, total unknown.
    pub fn new() -> Self {
        Self {
            done: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
        }
    }

    /// Sets the bytes done and the total (`None` when unknown).
    pub fn set(&self, done: u64, total: Option<u64>) {
        self.done.store(done, Ordering::Relaxed);
        self.total
            .store(total.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Adds `bytes` to the bytes done.
    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Sets the total once known (`None` when unknown).
    pub fn set_total(&self, total: Option<u64>) {
        self.total
            .store(total.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Bytes done and the total when known.
    pub fn get(&self) -> (u64, Option<u64>) {
        let total = self.total.load(Ordering::Relaxed);
        (
            self.done.load(Ordering::Relaxed),
            (total != u64::MAX).then_some(total),
        )
    }
}

/// What a downloader may use while it works.
#[derive(Debug, Clone)]
pub struct Context {
    /// The shared client: proxy, user agent, per-host limits, address
    /// checks, and the platform's cookies.
    pub http: HttpClient,
    /// The settings as they were when the item started.
    pub settings: Arc<Settings>,
    /// Cancelled when the item is paused, removed, or the engine stops.
    pub cancel: CancellationToken,
    /// The time source; use it instead of `Utc::now()` so tests control time.
    pub clock: Arc<dyn Clock>,
    /// Per-source state kept between runs (a thread's last page, a cursor).
    pub state: Arc<dyn StateRepo>,
    /// Byte progress of a self-transferring downloader's current file.
    pub progress: Arc<TransferProgress>,
}

/// The downloaders a process knows, by platform and name.
///
/// ```
/// use mediadl::Registry;
///
/// let registry = Registry::builtin();
/// // `direct` is a default feature: plain http(s) URLs.
/// let direct = registry.find("direct", None).expect("built in");
/// assert!(direct.info().is_default);
/// assert!(registry.find("no-such-platform", None).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    downloaders: Vec<Arc<dyn Downloader>>,
}

impl Registry {
    /// An empty registry; see [`Registry::builtin`](crate::platforms) for the built-in downloaders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a downloader; a later one with the same platform and name replaces the earlier.
    pub fn register(&mut self, downloader: impl Downloader + 'static) -> &mut Self {
        self.register_arc(Arc::new(downloader))
    }

    /// Adds a shared downloader; the same replacement rule as [`Registry::register`].
    pub fn register_arc(&mut self, downloader: Arc<dyn Downloader>) -> &mut Self {
        let info = downloader.info();
        self.downloaders.retain(|known| {
            let k = known.info();
            !(k.platform == info.platform && k.name == info.name)
        });
        self.downloaders.push(downloader);
        self
    }

    /// All downloaders, in registration order.
    pub fn all(&self) -> &[Arc<dyn Downloader>] {
        &self.downloaders
    }

    /// Platform names, in registration order, without repeats.
    pub fn platforms(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for downloader in &self.downloaders {
            let platform = downloader.info().platform;
            if !names.contains(&platform) {
                names.push(platform);
            }
        }
        names
    }

    /// The downloader for `platform` named `name` (or one of its aliases),
    /// or the platform's default when `name` is `None`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming `platform` or `downloader` when no such
    /// platform or downloader is registered; the message lists the known ones.
    pub fn find(&self, platform: &str, name: Option<&str>) -> Result<Arc<dyn Downloader>, Error> {
        let of_platform: Vec<_> = self
            .downloaders
            .iter()
            .filter(|d| d.info().platform == platform)
            .collect();
        if of_platform.is_empty() {
            let known = self.platforms().join(", ");
            return Err(Error::invalid(
                "platform",
                format!("unknown platform {platform:?} (known: {known})"),
            ));
        }
        let found = match name {
            Some(name) => of_platform.iter().find(|d| {
                let info = d.info();
                info.name == name || info.aliases.iter().any(|alias| alias == name)
            }),
            None => of_platform
                .iter()
                .find(|d| d.info().is_default)
                .or_else(|| of_platform.first()),
        };
        found.map(|d| Arc::clone(d)).ok_or_else(|| {
            let names: Vec<String> = of_platform.iter().map(|d| d.info().name).collect();
            Error::invalid(
                "downloader",
                format!(
                    "unknown downloader {:?} for {platform} (known: {})",
                    name.unwrap_or_default(),
                    names.join(", ")
                ),
            )
        })
    }

    /// Every downloader with whether it can be used under `settings`, and why not.
    pub async fn statuses(&self, settings: &Settings) -> Vec<DownloaderStatus> {
        let mut statuses = Vec::with_capacity(self.downloaders.len());
        for downloader in &self.downloaders {
            let check = downloader.check(settings).await;
            statuses.push(DownloaderStatus {
                info: downloader.info(),
                enabled: check.is_ok(),
                reason: check.err().map(|unavailable| unavailable.reason),
            });
        }
        statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewQueueItem;

    fn item_with_days_back(days_back: u32) -> QueueItem {
        let mut new = NewQueueItem::new("u", "tiktok", "someone", "videos");
        new.options.days_back = Some(days_back);
        new.into_item(1, Utc::now())
    }

    #[test]
    fn days_back_sets_the_window_and_saturates_at_the_earliest_time() {
        let now = Utc::now();
        let settings = Settings::default();
        let week = Request::from_item(&item_with_days_back(7), &settings, now);
        assert_eq!(week.since, Some(now - chrono::Duration::days(7)));
        let forever = Request::from_item(&item_with_days_back(u32::MAX), &settings, now);
        assert_eq!(forever.since, Some(DateTime::<Utc>::MIN_UTC));
    }
}
