//! Platform `forum`: a thread URL becomes every full-size image and video
//! posted in it, across its pages, never thumbnails, avatars or smilies.
//!
//! - [`parse`]: thread pages (XenForo 2, vBulletin 3/4, phpBB, a generic
//!   fallback) into posts with their media, the title and the next page.
//! - [`hosts`]: image hosts behind thumbnails, as a small trait with a registry.
//! - [`session`]: the forum's cookies or login, page fetches, login walls.
//!
//! A check remembers the thread's last page and last post in the state
//! store, so the next check starts from that page and lists only what was
//! posted since. Archive keys name the forum, thread, post and the media's
//! identity, so the engine also skips whatever was downloaded before.

pub mod hosts;
pub mod links;
pub mod parse;
mod scan;
pub mod session;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::cookie::Jar;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::downloader::{Context, Downloader, MediaItem, Request, Staging, Unavailable};
use crate::error::{DownloadError, Error};
use crate::fetch::{HttpClient, parse_netscape_cookies};
use crate::model::settings::PlatformCommon;
use crate::model::{DownloaderInfo, ListingOrder, Metadata, Settings};
use crate::recognise::Recognition;

pub use hosts::{HostLink, ImageHost, ImageHosts, Resolved};
pub use links::{ThreadId, thread_id};
pub use parse::{
    MediaKind, MediaLink, Post, ThreadEngine, ThreadPage, largest_image, parse_thread_page,
};
pub use session::{FetchedPage, PageFetcher};

use links::{PagePosition, page_position, short_hash};
use session::{forum_page_error, is_login_url, log_in};

/// The platform's name in requests, records and settings.
pub const PLATFORM: &str = "forum";

/// Metadata key of an item whose link could not be resolved (the reason).
pub const UNRESOLVED: &str = "unresolved";
/// Metadata key: whether resolving that link again later may succeed.
const UNRESOLVED_RETRYABLE: &str = "unresolved_retryable";

/// `platforms.forum` in the settings document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForumSettings {
    /// `enabled`, the Netscape cookies.txt's text for every forum without
    /// its own (what `PUT /platforms/forum/cookies` stores), `auto_upgrade`.
    #[serde(flatten)]
    pub common: PlatformCommon,
    /// Least time between two requests to a forum's pages, in milliseconds
    /// (image hosts follow `network.per_host_requests_per_second`).
    pub request_interval_ms: u64,
    /// Largest thread or host page read, in bytes.
    pub max_page_bytes: u64,
    /// Most pages read in one check (a guard against endless paging).
    pub max_pages_per_check: u32,
    /// A Netscape cookies file used for every forum without its own.
    pub cookies_file: Option<String>,
    /// Per forum, by forum name (the request's source) or host name.
    pub forums: BTreeMap<String, ForumAccess>,
}

impl Default for ForumSettings {
    fn default() -> Self {
        Self {
            common: PlatformCommon::default(),
            request_interval_ms: 1000,
            max_page_bytes: 20 * 1024 * 1024,
            max_pages_per_check: 1000,
            cookies_file: None,
            forums: BTreeMap::new(),
        }
    }
}

/// How to be let into one forum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForumAccess {
    /// Account name, for forums that hide media from guests.
    pub username: Option<String>,
    /// Password of `username`; shown as `***` by the API.
    pub password: Option<String>,
    /// The login page; without it, the login form of the first login wall is used.
    pub login_url: Option<String>,
    /// Path of a Netscape cookies file exported from a logged-in browser.
    pub cookies_file: Option<String>,
    /// The same cookies file's text, inline.
    pub cookies: Option<String>,
    /// Overrides [`ForumSettings::request_interval_ms`] for this forum.
    pub request_interval_ms: Option<u64>,
}

impl ForumSettings {
    /// The access settings of a forum by name, then by host (with or without `www.`).
    pub fn access_for(&self, forum: &str, thread: &Url) -> ForumAccess {
        let host = thread.host_str().unwrap_or_default().to_ascii_lowercase();
        let bare = host.strip_prefix("www.").unwrap_or(&host).to_owned();
        [forum.to_owned(), host, bare]
            .iter()
            .find_map(|key| self.forums.get(key))
            .cloned()
            .unwrap_or_default()
    }
}

/// What a check remembers about a thread for the next one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadState {
    /// The last page read.
    pub last_page_url: Option<String>,
    /// The last post on that page whose media were all handed out.
    pub last_post_id: Option<String>,
    /// The thread's title, for metadata and the job's name.
    pub title: Option<String>,
    /// When the thread was last checked.
    pub checked_at: Option<DateTime<Utc>>,
}

/// The key of a thread's [`ThreadState`] in the state store.
pub fn state_key(thread: &ThreadId) -> String {
    format!(
        "forum:thread:{}:{}",
        thread.first_page.host_str().unwrap_or_default(),
        thread.id
    )
}

/// The forum downloader (`forum` / `html`).
#[derive(Debug, Clone, Default)]
pub struct Forum {
    hosts: Arc<ImageHosts>,
}

impl Forum {
    /// A forum downloader with these image hosts (the built-in ones plus a user's).
    pub fn with_hosts(hosts: ImageHosts) -> Self {
        Self {
            hosts: Arc::new(hosts),
        }
    }

    fn thread_url(request: &Request) -> Result<Url, Error> {
        request.web_url("thread URL", "a forum thread URL is http or https")
    }
}

#[async_trait]
impl Downloader for Forum {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: PLATFORM.into(),
            platform_display_name: "Forum".into(),
            name: "html".into(),
            display_name: "Forum threads (XenForo, vBulletin, phpBB)".into(),
            aliases: vec!["native".into()],
            content_types: vec!["images".into()],
            features: vec![
                "incremental".into(),
                "image_hosts".into(),
                "credentials".into(),
            ],
            listing_order: ListingOrder::OldestFirst,
            accepts_cookies: true,
            is_default: true,
        }
    }

    async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
        let forum: ForumSettings = settings
            .platform(PLATFORM)
            .map_err(|err| Unavailable::new(format!("invalid settings: {err}")))?;
        if !forum.common.enabled {
            return Err(Unavailable::new(
                "disabled in settings (platforms.forum.enabled)",
            ));
        }
        Ok(())
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        Self::thread_url(request).map(|_| ())
    }

    /// Thread URLs of the forum software the parser knows; the source is
    /// the forum's host (without `www.`), a label the user may change.
    async fn recognise(&self, url: &Url, _settings: &Settings) -> Option<Recognition> {
        links::thread_url_engine(url)?;
        let host = url.host_str()?;
        let label = host.strip_prefix("www.").unwrap_or(host);
        Some(Recognition::by_rules(url, PLATFORM, label, "images"))
    }

    /// Fails the items whose link could not be resolved (a host page
    /// without an image, a redirect loop); the others go to the engine's fetch.
    async fn transfer(
        &self,
        item: &MediaItem,
        _staging: &Staging,
        _cx: &Context,
    ) -> Option<Result<PathBuf, DownloadError>> {
        let reason = item.metadata.get(UNRESOLVED)?.as_str()?.to_owned();
        let retryable = item
            .metadata
            .get(UNRESOLVED_RETRYABLE)
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Some(Err(if retryable {
            DownloadError::retryable(reason)
        } else {
            DownloadError::permanent(reason)
        }))
    }

    fn discover(
        &self,
        request: &Request,
        cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        let request = request.clone();
        let cx = cx.clone();
        let hosts = Arc::clone(&self.hosts);
        async_stream::stream! {
            let mut walk = match ThreadWalk::start(&request, &cx, hosts).await {
                Ok(walk) => walk,
                Err(err) => {
                    yield Err(err);
                    return;
                }
            };
            loop {
                let page = match walk.next_page().await {
                    Ok(Some(page)) => page,
                    Ok(None) => break,
                    Err(err) => {
                        yield Err(err);
                        return;
                    }
                };
                for post in &page.posts {
                    for (index, link) in post.media.iter().enumerate() {
                        match walk.item(&page, post, index, link).await {
                            Ok(Some(item)) => yield Ok(item),
                            Ok(None) => {}
                            Err(err) if ends_listing(&err) => {
                                yield Err(err);
                                return;
                            }
                            Err(err) if matches!(err, DownloadError::RateLimited { .. }) => {
                                yield Err(err);
                                return;
                            }
                            Err(err) => {
                                // One broken link: an item that fails on its own
                                // (see `transfer`), so the rest of the thread goes on.
                                walk.item_failed(&err);
                                yield Ok(walk.unresolved_item(&page, post, index, link, &err));
                            }
                        }
                    }
                    // Reached only once the consumer asked for more, i.e. took the post's items.
                    if let Err(err) = walk.post_done(&page, post).await {
                        yield Err(err);
                        return;
                    }
                }
                if let Err(err) = walk.page_done(&page).await {
                    yield Err(err);
                    return;
                }
            }
        }
        .boxed()
    }
}

/// Errors after which listing the thread makes no sense (the next items
/// would fail the same way); others concern one link only.
fn ends_listing(err: &DownloadError) -> bool {
    matches!(
        err,
        DownloadError::AuthRequired(_) | DownloadError::Cancelled | DownloadError::Storage(_)
    )
}

/// A thread page ready to hand out: parsed, with posts seen before dropped.
#[derive(Debug)]
struct PageWork {
    url: Url,
    engine: ThreadEngine,
    posts: Vec<Post>,
}

/// One check of one thread, page after page.
#[derive(Debug)]
struct ThreadWalk {
    request: Request,
    cx: Context,
    hosts: Arc<ImageHosts>,
    fetcher: PageFetcher,
    access: ForumAccess,
    thread: ThreadId,
    forum_host: String,
    state_key: String,
    state: ThreadState,
    max_pages: u32,
    next: Option<Url>,
    /// The post after which the resumed page is new.
    resume_after: Option<String>,
    resuming: bool,
    visited: HashSet<Url>,
    pages_read: u32,
    tried_login: bool,
    attachments_checked: bool,
    /// A link failed in a way worth retrying: the state stops advancing so
    /// the next check looks at those posts again.
    frozen: bool,
    title: Option<String>,
}

impl ThreadWalk {
    async fn start(
        request: &Request,
        cx: &Context,
        hosts: Arc<ImageHosts>,
    ) -> Result<Self, DownloadError> {
        let settings: ForumSettings = cx
            .settings
            .platform(PLATFORM)
            .map_err(|err| DownloadError::permanent(format!("invalid forum settings: {err}")))?;
        let start =
            Forum::thread_url(request).map_err(|err| DownloadError::permanent(err.to_string()))?;
        let access = settings.access_for(&request.source, &start);
        let jar = load_cookies(&settings, &access).await?;
        let http = HttpClient::builder(&cx.settings.network)
            .platform(PLATFORM)
            .cookies(Arc::clone(&jar))
            .share_limits_with(&cx.http)
            .build()
            .map_err(|err| DownloadError::permanent(err.to_string()))?;
        let spacing = Duration::from_millis(
            access
                .request_interval_ms
                .unwrap_or(settings.request_interval_ms),
        );
        let fetcher = PageFetcher::new(http, jar, settings.max_page_bytes, spacing);
        let thread = thread_id(&start);
        let state_key = state_key(&thread);
        let state: ThreadState = match cx.state.get_state(&state_key).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => ThreadState::default(),
        };
        // Resume from the last page read, if it still belongs to this thread.
        let resume_page = state
            .last_page_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            // Same forum and thread id (page URLs may differ from the first
            // page's in a trailing slash).
            .filter(|u| thread_id(u).id == thread.id && u.host_str() == start.host_str());
        let resuming = resume_page.is_some();
        let next = Some(resume_page.unwrap_or_else(|| thread.first_page.clone()));
        let mut walk = Self {
            request: request.clone(),
            cx: cx.clone(),
            hosts,
            fetcher,
            forum_host: start.host_str().unwrap_or_default().to_owned(),
            access,
            resume_after: if resuming {
                state.last_post_id.clone()
            } else {
                None
            },
            resuming,
            title: state.title.clone(),
            state,
            thread,
            state_key,
            max_pages: settings.max_pages_per_check.max(1),
            next,
            visited: HashSet::new(),
            pages_read: 0,
            tried_login: false,
            attachments_checked: false,
            frozen: false,
        };
        if let (Some(login_url), Some(_), Some(_)) = (
            walk.access.login_url.clone(),
            walk.access.username.as_ref(),
            walk.access.password.as_ref(),
        ) {
            let login_url = Url::parse(&login_url).map_err(|err| {
                DownloadError::AuthRequired(format!("login_url {login_url:?} is not a URL: {err}"))
            })?;
            let page = walk.fetcher.get(&login_url, None).await?;
            walk.log_in(&page).await?;
        }
        Ok(walk)
    }

    async fn log_in(&mut self, page: &FetchedPage) -> Result<(), DownloadError> {
        self.tried_login = true;
        match (&self.access.username, &self.access.password) {
            (Some(user), Some(password)) => log_in(&self.fetcher, page, user, password).await,
            _ => Err(DownloadError::AuthRequired(
                "no credentials for this forum".into(),
            )),
        }
    }

    /// Whether a login wall may be passed by logging in now.
    fn may_log_in(&self) -> bool {
        !self.tried_login && self.access.username.is_some() && self.access.password.is_some()
    }

    /// Fetches and parses the next page; `None` when the thread ends.
    async fn next_page(&mut self) -> Result<Option<PageWork>, DownloadError> {
        loop {
            if self.cx.cancel.is_cancelled() {
                return Err(DownloadError::Cancelled);
            }
            let Some(url) = self.next.take() else {
                return Ok(None);
            };
            if !self.visited.insert(url.clone()) {
                tracing::warn!(%url, "forum thread pages loop; stopping here");
                return Ok(None);
            }
            if self.pages_read >= self.max_pages {
                tracing::warn!(%url, max = self.max_pages, "forum.max_pages_per_check reached");
                return Ok(None);
            }
            self.pages_read += 1;
            let fetched = tokio::select! {
                _ = self.cx.cancel.cancelled() => return Err(DownloadError::Cancelled),
                fetched = self.fetcher.get_forum_page(&url) => fetched,
            };
            let fetched = match fetched {
                Ok(fetched) => fetched,
                Err(err) => return Err(err),
            };
            if let Some(err) = forum_page_error(&url, &fetched) {
                if matches!(err, DownloadError::AuthRequired(_)) && self.may_log_in() {
                    self.log_in(&fetched).await?;
                    self.retry(url);
                    continue;
                }
                if self.resuming && matches!(err, DownloadError::Permanent(_)) {
                    // The remembered page is gone (posts deleted, thread moved): start over.
                    tracing::info!(%url, %err, "remembered forum page unavailable; reading from page 1");
                    self.restart();
                    continue;
                }
                return Err(err);
            }
            let parsed = parse_thread_page(&fetched.body, &fetched.url);
            if let Some(reason) = parsed.login_wall.clone() {
                if self.may_log_in() {
                    self.log_in(&fetched).await?;
                    self.retry(url);
                    continue;
                }
                return Err(DownloadError::AuthRequired(format!("{url}: {reason}")));
            }
            if parsed.title.is_some()
                && (self.title.is_none() || page_position(&url) == PagePosition::Page(1))
            {
                self.title = parsed.title.clone();
            }
            self.next = parsed.next_page.clone();
            let mut posts = parsed.posts;
            if self.resuming {
                self.resuming = false;
                if let Some(last) = self.resume_after.take()
                    && parsed.engine != ThreadEngine::Generic
                {
                    posts = posts_after(posts, &last);
                }
            }
            return Ok(Some(PageWork {
                url: fetched.url,
                engine: parsed.engine,
                posts,
            }));
        }
    }

    fn retry(&mut self, url: Url) {
        self.visited.remove(&url);
        self.pages_read = self.pages_read.saturating_sub(1);
        self.next = Some(url);
    }

    fn restart(&mut self) {
        self.resuming = false;
        self.resume_after = None;
        self.next = Some(self.thread.first_page.clone());
    }

    /// Turns one link of a post into a media item (`None`: nothing to download there).
    async fn item(
        &mut self,
        page: &PageWork,
        post: &Post,
        index: usize,
        link: &MediaLink,
    ) -> Result<Option<MediaItem>, DownloadError> {
        if self.cx.cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let (url, host, referer, content_type) = match link.kind {
            MediaKind::Video => (
                link.target.clone(),
                host_name(&link.target),
                Some(page.url.clone()),
                "video",
            ),
            MediaKind::Attachment => {
                self.check_attachment(&link.target, &page.url).await?;
                let kind = if links::is_video_url(&link.target) {
                    "video"
                } else {
                    "image"
                };
                (
                    link.target.clone(),
                    host_name(&link.target),
                    Some(page.url.clone()),
                    kind,
                )
            }
            MediaKind::Image | MediaKind::Page => {
                let host_link = host_link(link);
                let known = self.hosts.find(&host_link).is_some();
                if !known && link.kind == MediaKind::Image {
                    (
                        link.target.clone(),
                        host_name(&link.target),
                        Some(page.url.clone()),
                        "image",
                    )
                } else if !known && link.thumbnail.is_none() {
                    // A plain link to a page no host resolver knows: not media.
                    return Ok(None);
                } else {
                    let resolved = self
                        .hosts
                        .resolve(&host_link, &self.fetcher)
                        .await
                        .map_err(|err| {
                            with_context(err, &format!("post {} link {}", post.id, link.target))
                        })?;
                    let kind = if links::is_video_url(&resolved.url) {
                        "video"
                    } else {
                        "image"
                    };
                    (resolved.url, resolved.host, resolved.referer, kind)
                }
            }
        };
        if !links::is_fetchable(&url) {
            return Err(DownloadError::permanent(format!(
                "post {}: {url} is not an http(s) URL",
                post.id
            )));
        }
        Ok(Some(self.media_item(
            page,
            post,
            index,
            link,
            url,
            host,
            referer,
            content_type,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn media_item(
        &self,
        page: &PageWork,
        post: &Post,
        index: usize,
        link: &MediaLink,
        url: Url,
        host: String,
        referer: Option<Url>,
        content_type: &str,
    ) -> MediaItem {
        let identity = link.identity();
        let archive_key = format!(
            "forum:{}:{}:post-{}:{}",
            self.forum_host,
            self.thread.id,
            post.id,
            short_hash(&identity)
        );
        let mut metadata = Metadata::new();
        metadata.insert("forum".into(), json!(self.request.source));
        metadata.insert("thread_id".into(), json!(self.thread.id));
        metadata.insert("thread_title".into(), json!(self.title));
        metadata.insert("thread_url".into(), json!(self.thread.first_page.as_str()));
        metadata.insert("page_url".into(), json!(page.url.as_str()));
        metadata.insert("post_id".into(), json!(post.id));
        metadata.insert("author".into(), json!(post.author));
        metadata.insert(
            "post_date".into(),
            json!(post.posted_at.map(|d| d.to_rfc3339())),
        );
        metadata.insert("host".into(), json!(host));
        metadata.insert("engine".into(), json!(page.engine.as_str()));
        metadata.insert("link".into(), json!(link.target.as_str()));
        metadata.insert("media_index".into(), json!(index + 1));
        MediaItem {
            referer,
            posted_at: post.posted_at,
            media_id: Some(format!("{}_{}", post.id, index + 1)),
            suggested_name: suggested_name(&url, link),
            metadata,
            ..MediaItem::new(archive_key, url, content_type)
        }
    }

    /// The first attachment of a check is fetched once to see whether the
    /// forum serves attachments to this session, or a login page or placeholder.
    async fn check_attachment(&mut self, url: &Url, page: &Url) -> Result<(), DownloadError> {
        if self.attachments_checked {
            return Ok(());
        }
        let fetched = self.fetcher.get_forum_page(url).await?;
        let auth = |detail: String| {
            DownloadError::AuthRequired(format!(
                "attachment {url} (in {page}) {detail}: add credentials or a cookies file for this forum"
            ))
        };
        if is_login_url(&fetched.url) {
            return Err(auth(format!("redirects to the login page {}", fetched.url)));
        }
        if matches!(fetched.status.as_u16(), 401 | 403) {
            return Err(auth(format!("is refused with HTTP {}", fetched.status)));
        }
        if let Some(err) = forum_page_error(url, &fetched) {
            return Err(err);
        }
        let is_page = fetched
            .content_type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("text/html"));
        if is_page {
            return Err(auth("is a page, not a file".into()));
        }
        self.attachments_checked = true;
        Ok(())
    }

    /// An item standing for a link that could not be resolved: the engine
    /// hands it to [`Forum::transfer`], which fails it with `err`, so it is
    /// recorded as a failed download with a clear message.
    fn unresolved_item(
        &self,
        page: &PageWork,
        post: &Post,
        index: usize,
        link: &MediaLink,
        err: &DownloadError,
    ) -> MediaItem {
        let mut item = self.media_item(
            page,
            post,
            index,
            link,
            link.target.clone(),
            host_name(&link.target),
            None,
            "image",
        );
        item.metadata
            .insert(UNRESOLVED.into(), json!(err.to_string()));
        item.metadata
            .insert(UNRESOLVED_RETRYABLE.into(), json!(err.is_retryable()));
        item
    }

    fn item_failed(&mut self, err: &DownloadError) {
        if err.is_retryable() {
            self.frozen = true;
        }
        tracing::warn!(%err, "forum link not resolved");
    }

    async fn post_done(&mut self, page: &PageWork, post: &Post) -> Result<(), DownloadError> {
        if self.frozen {
            return Ok(());
        }
        self.state.last_page_url = Some(page.url.to_string());
        self.state.last_post_id = Some(post.id.clone());
        if post.media.is_empty() {
            return Ok(());
        }
        self.save_state().await
    }

    async fn page_done(&mut self, page: &PageWork) -> Result<(), DownloadError> {
        if self.frozen {
            return Ok(());
        }
        // A page whose posts were all seen before still moves the position forward.
        if self.state.last_page_url.as_deref() != Some(page.url.as_str()) {
            self.state.last_page_url = Some(page.url.to_string());
            if let Some(last) = page.posts.last() {
                self.state.last_post_id = Some(last.id.clone());
            }
        }
        self.save_state().await
    }

    async fn save_state(&mut self) -> Result<(), DownloadError> {
        self.state.title = self.title.clone();
        self.state.checked_at = Some(self.cx.clock.now());
        let value: Value = serde_json::to_value(&self.state)
            .map_err(|err| DownloadError::permanent(format!("thread state: {err}")))?;
        self.cx.state.put_state(&self.state_key, &value).await?;
        Ok(())
    }
}

/// Posts after the one with id `last`; when that post is gone, those with a
/// larger numeric id.
fn posts_after(posts: Vec<Post>, last: &str) -> Vec<Post> {
    if let Some(position) = posts.iter().position(|p| p.id == last) {
        return posts.into_iter().skip(position + 1).collect();
    }
    match last.parse::<u64>() {
        Ok(last) => posts
            .into_iter()
            .filter(|p| p.id.parse::<u64>().map_or(true, |id| id > last))
            .collect(),
        Err(_) => posts,
    }
}

/// How a post's link is put to the image hosts: with the thumbnail shown,
/// or for a lone image, the image itself as the thumbnail (a host may know
/// the full size of its thumbnails).
pub fn host_link(link: &MediaLink) -> HostLink {
    HostLink {
        page: link.target.clone(),
        thumbnail: link
            .thumbnail
            .clone()
            .or_else(|| (link.kind == MediaKind::Image).then(|| link.target.clone())),
    }
}

fn host_name(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_owned()
}

fn with_context(err: DownloadError, context: &str) -> DownloadError {
    match err {
        DownloadError::Permanent(reason) => {
            DownloadError::Permanent(format!("{context}: {reason}"))
        }
        DownloadError::Retryable { reason, after } => DownloadError::Retryable {
            reason: format!("{context}: {reason}"),
            after,
        },
        other => other,
    }
}

/// A file name for the item: the URL's last segment, or for XenForo
/// attachments (`/attachments/beach-jpg.123/`) the original `beach.jpg`.
fn suggested_name(url: &Url, link: &MediaLink) -> Option<String> {
    let last = |u: &Url| {
        u.path_segments()
            .and_then(|mut s| s.rfind(|s| !s.is_empty()))
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    };
    if link.kind == MediaKind::Attachment && url.path().contains("/attachments/") {
        let segment = last(url)?;
        let stem = segment
            .rsplit_once('.')
            .map_or(segment.as_str(), |(stem, _)| stem);
        if let Some((name, ext)) = stem.rsplit_once('-')
            && !name.is_empty()
            && (1..=5).contains(&ext.len())
        {
            return Some(format!("{name}.{ext}"));
        }
        return Some(stem.to_owned());
    }
    last(url).filter(|name| !name.is_empty())
}

/// The cookie jar of a check: the forum's own cookies (inline, then file),
/// else the platform's (inline, then file), else empty (a login may fill it).
async fn load_cookies(
    settings: &ForumSettings,
    access: &ForumAccess,
) -> Result<Arc<Jar>, DownloadError> {
    let inline = access
        .cookies
        .as_deref()
        .or(access
            .cookies_file
            .is_none()
            .then_some(())
            .and(settings.common.cookies.as_deref()))
        .filter(|c| !c.trim().is_empty() && *c != crate::model::settings::MASK);
    let text = if let Some(inline) = inline {
        Some(("inline cookies".to_owned(), inline.to_owned()))
    } else if let Some(path) = access
        .cookies_file
        .as_deref()
        .or(settings.cookies_file.as_deref())
        .filter(|p| !p.trim().is_empty())
    {
        let text = tokio::fs::read_to_string(path).await.map_err(|err| {
            DownloadError::AuthRequired(format!("cannot read the cookies file {path}: {err}"))
        })?;
        Some((path.to_owned(), text))
    } else {
        None
    };
    match text {
        Some((name, text)) => parse_netscape_cookies(&text)
            .map(|parsed| parsed.jar)
            .map_err(|err| DownloadError::AuthRequired(format!("{name}: {err}"))),
        None => Ok(Arc::new(Jar::default())),
    }
}

#[cfg(test)]
mod tests;
