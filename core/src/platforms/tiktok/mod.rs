//! Platform `tiktok`, downloader `native`: the profile page's
//! `__UNIVERSAL_DATA_FOR_REHYDRATION__` JSON gives the account's `secUid`,
//! then the `item_list` API lists its posts newest first, paged by
//! `cursor`. Videos take the highest-bitrate play address (or the lowest
//! with `quality: "sd"`), photo posts give one item per image.

pub(crate) mod api;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::{ACCEPT, HeaderMap, REFERER, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::downloader::{Context, Downloader, MediaItem, Request, Unavailable};
use crate::error::{DownloadError, Error};
use crate::fetch::{HttpClient, parse_netscape_cookies};
use crate::model::settings::PlatformCommon;
use crate::model::{DownloaderInfo, ListingOrder, Settings};
use crate::platforms::accounts;
use crate::platforms::social::{Pace, Pacer, Pinned};
use api::{ItemListPage, Quality, UserDetail};

/// Largest page or API response read.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// `platforms.tiktok` as this downloader reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TikTokSettings {
    /// `enabled`, the uploaded Netscape cookies.txt (optional for public
    /// accounts), `auto_upgrade`.
    #[serde(flatten)]
    pub common: PlatformCommon,
    /// `hd` (highest bitrate, the default) or `sd` (lowest).
    pub quality: String,
    /// The built-in `native` downloader's settings.
    pub native: NativeSettings,
}

impl Default for TikTokSettings {
    fn default() -> Self {
        Self {
            common: PlatformCommon::default(),
            quality: "hd".into(),
            native: NativeSettings::default(),
        }
    }
}

/// `platforms.tiktok.native`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct NativeSettings {
    /// Off: the `native` downloader refuses to run (`GET /platforms` says why).
    pub enabled: bool,
    /// The profile pages' site (tests point it at a local server).
    pub base_url: String,
    /// Where `/api/post/item_list/` lives; empty: the same as `base_url`.
    pub api_base_url: String,
    /// `User-Agent` of every request to TikTok.
    pub user_agent: String,
    /// Posts per page asked for.
    pub page_size: u32,
    /// Each request waits a random time between this and `request_delay_max_seconds` after the previous one.
    pub request_delay_min_seconds: f64,
    /// Upper end of the random wait between requests, in seconds.
    pub request_delay_max_seconds: f64,
    /// Requests per rolling hour; 0 for no limit.
    pub rate_limit_per_hour: u32,
    /// A wait for the hourly budget longer than this many seconds hands the item back to the queue instead.
    pub max_inline_wait_seconds: u64,
}

impl Default for NativeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            base_url: "https://www.tiktok.com".into(),
            api_base_url: String::new(),
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into(),
            page_size: 30,
            request_delay_min_seconds: 1.0,
            request_delay_max_seconds: 3.0,
            rate_limit_per_hour: 600,
            max_inline_wait_seconds: 60,
        }
    }
}

fn read_settings(settings: &Settings) -> Result<TikTokSettings, String> {
    let config = settings
        .platform::<TikTokSettings>("tiktok")
        .map_err(|err| err.to_string())?;
    Quality::parse(&config.quality)?;
    Url::parse(&config.native.base_url)
        .map_err(|err| format!("platforms.tiktok.native.base_url: {err}"))?;
    if !config.native.api_base_url.is_empty() {
        Url::parse(&config.native.api_base_url)
            .map_err(|err| format!("platforms.tiktok.native.api_base_url: {err}"))?;
    }
    if let Some(cookies) = config.common.cookies() {
        parse_netscape_cookies(cookies)
            .map_err(|err| format!("the TikTok cookies file is malformed: {err}"))?;
    }
    Ok(config)
}

/// TikTok's `native` downloader.
#[derive(Debug, Clone, Default)]
pub struct TikTok {
    pacer: Arc<Pacer>,
}

#[async_trait]
impl Downloader for TikTok {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: "tiktok".into(),
            platform_display_name: "TikTok".into(),
            name: "native".into(),
            display_name: "TikTok web API".into(),
            aliases: vec![],
            content_types: vec!["videos".into()],
            features: vec![
                "quality_upgrade".into(),
                "date_filtering".into(),
                "limit_downloads".into(),
            ],
            listing_order: ListingOrder::NewestFirst,
            accepts_cookies: true,
            is_default: true,
        }
    }

    async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
        let config = read_settings(settings).map_err(Unavailable::new)?;
        if !config.common.enabled {
            return Err(Unavailable::new(
                "disabled in settings (platforms.tiktok.enabled)",
            ));
        }
        if !config.native.enabled {
            return Err(Unavailable::new(
                "disabled in settings (platforms.tiktok.native.enabled)",
            ));
        }
        Ok(())
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        accounts::username("tiktok", &request.source)?;
        accounts::content_type("TikTok", &["videos"], &request.content_type)
    }

    fn discover(
        &self,
        request: &Request,
        cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        let pacer = Arc::clone(&self.pacer);
        let request = request.clone();
        let cx = cx.clone();
        async_stream::try_stream! {
            let username = accounts::username("tiktok", &request.source)
                .map_err(|err| DownloadError::permanent(err.to_string()))?;
            let client = Client::new(&cx, pacer)?;
            let profile = client.profile(&username).await?;
            let mut cursor = "0".to_owned();
            let mut seen_cursors = Vec::new();
            let mut pinned = Pinned::default();
            let mut listed = 0usize;
            loop {
                let page = client.item_list(&profile.sec_uid, &cursor).await?;
                for post in &page.item_list {
                    let items = match api::post_items(post, client.quality, &client.site) {
                        Ok(items) => items,
                        Err(reason) => {
                            tracing::warn!(platform = "tiktok", source = %username, "{reason}");
                            continue;
                        }
                    };
                    listed += items.len();
                    if post.is_pinned_item {
                        pinned.hold(items);
                        continue;
                    }
                    for item in items {
                        for held in pinned.release_newer_than(item.posted_at) {
                            yield held;
                        }
                        yield item;
                    }
                }
                let next = page.cursor.as_ref().and_then(api::id_text);
                match next {
                    Some(next) if page.has_more && !seen_cursors.contains(&next) => {
                        seen_cursors.push(next.clone());
                        cursor = next;
                    }
                    _ => break,
                }
            }
            for held in pinned.release_newer_than(None) {
                yield held;
            }
            if listed == 0 && profile.private {
                Err(DownloadError::permanent(format!(
                    "the TikTok account {username:?} is private: upload cookies of an account that follows it"
                )))?;
            }
        }
        .boxed()
    }
}

/// The account a profile page describes.
#[derive(Debug, Clone)]
struct Profile {
    sec_uid: String,
    private: bool,
}

struct Client {
    http: HttpClient,
    base: Url,
    api_base: Url,
    site: Url,
    headers: HeaderMap,
    quality: Quality,
    page_size: u32,
    pace: Pace,
    pacer: Arc<Pacer>,
    cancel: CancellationToken,
}

impl Client {
    fn new(cx: &Context, pacer: Arc<Pacer>) -> Result<Self, DownloadError> {
        let config = read_settings(&cx.settings).map_err(DownloadError::Permanent)?;
        let native = config.native;
        let base = Url::parse(&native.base_url)
            .map_err(|err| DownloadError::permanent(err.to_string()))?;
        let api_base = if native.api_base_url.is_empty() {
            base.clone()
        } else {
            Url::parse(&native.api_base_url)
                .map_err(|err| DownloadError::permanent(err.to_string()))?
        };
        let mut builder = HttpClient::builder(&cx.settings.network)
            .platform("tiktok")
            .share_limits_with(&cx.http);
        if let Some(cookies) = config.common.cookies() {
            let parsed = parse_netscape_cookies(cookies).map_err(|err| {
                DownloadError::permanent(format!("the TikTok cookies file is malformed: {err}"))
            })?;
            builder = builder.cookies(parsed.jar);
        }
        let http = builder
            .build()
            .map_err(|err| DownloadError::permanent(err.to_string()))?;
        let mut headers = HeaderMap::new();
        if let Ok(agent) = native.user_agent.parse() {
            headers.insert(USER_AGENT, agent);
        }
        headers.insert(ACCEPT, "*/*".parse().expect("static header"));
        let site = base.join("/").unwrap_or_else(|_| base.clone());
        if let Ok(referer) = site.as_str().parse() {
            headers.insert(REFERER, referer);
        }
        Ok(Self {
            http,
            base,
            api_base,
            site,
            headers,
            quality: Quality::parse(&config.quality).map_err(DownloadError::Permanent)?,
            page_size: native.page_size.clamp(1, 35),
            pace: Pace {
                label: "tiktok (platforms.tiktok.native.rate_limit_per_hour)",
                delay_min_seconds: native.request_delay_min_seconds,
                delay_max_seconds: native.request_delay_max_seconds,
                per_hour: native.rate_limit_per_hour,
                max_inline_wait: Duration::from_secs(native.max_inline_wait_seconds),
            },
            pacer,
            cancel: cx.cancel.clone(),
        })
    }

    /// The profile page's user detail: secUid, or why there is none.
    async fn profile(&self, username: &str) -> Result<Profile, DownloadError> {
        let url = self
            .base
            .join(&format!("/@{username}"))
            .map_err(|err| DownloadError::permanent(err.to_string()))?;
        let (status, body) = self.get(&url).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(DownloadError::permanent(format!(
                "the TikTok account {username:?} does not exist"
            )));
        }
        if !status.is_success() {
            return Err(http_failure(&url, status, &body));
        }
        let html = String::from_utf8_lossy(&body);
        let detail: UserDetail = api::user_detail(&html).map_err(|reason| {
            DownloadError::permanent(format!("TikTok profile page of {username:?}: {reason}"))
        })?;
        if let Some(err) =
            api::status_error(detail.status_code, detail.status_msg.as_deref(), username)
        {
            return Err(err);
        }
        let user = detail.user_info.and_then(|info| info.user).ok_or_else(|| {
            DownloadError::permanent(format!(
                "the TikTok account {username:?} does not exist (the profile page names no user)"
            ))
        })?;
        let sec_uid = user.sec_uid.filter(|s| !s.is_empty()).ok_or_else(|| {
            DownloadError::permanent(format!(
                "TikTok profile page of {username:?}: the user has no secUid"
            ))
        })?;
        Ok(Profile {
            sec_uid,
            private: user.private_account,
        })
    }

    async fn item_list(&self, sec_uid: &str, cursor: &str) -> Result<ItemListPage, DownloadError> {
        let mut url = self
            .api_base
            .join("/api/post/item_list/")
            .map_err(|err| DownloadError::permanent(err.to_string()))?;
        url.query_pairs_mut()
            .append_pair("aid", "1988")
            .append_pair("app_name", "tiktok_web")
            .append_pair("device_platform", "web_pc")
            .append_pair("count", &self.page_size.to_string())
            .append_pair("cursor", cursor)
            .append_pair("secUid", sec_uid)
            .append_pair("coverFormat", "2");
        let (status, body) = self.get(&url).await?;
        if !status.is_success() {
            return Err(http_failure(&url, status, &body));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(DownloadError::permanent(
                "TikTok answered the item list with an empty body: it refuses unsigned requests from this address; upload cookies or use the yt-dlp downloader",
            ));
        }
        let json: Value = serde_json::from_slice(&body).map_err(|err| {
            DownloadError::permanent(format!(
                "{}: TikTok answered with something that is not JSON ({err})",
                url.path()
            ))
        })?;
        let page: ItemListPage = parse(url.path(), json)?;
        if let Some(err) = api::status_error(page.status_code, page.status_msg.as_deref(), sec_uid)
        {
            return Err(err);
        }
        Ok(page)
    }

    async fn get(&self, url: &Url) -> Result<(StatusCode, Vec<u8>), DownloadError> {
        self.pacer.wait(&self.pace, &self.cancel).await?;
        self.http.check_url(url)?;
        let request = self
            .http
            .request(Method::GET, url.clone())
            .headers(self.headers.clone());
        let response = tokio::select! {
            _ = self.cancel.cancelled() => return Err(DownloadError::Cancelled),
            sent = request.send() => sent.map_err(|err| crate::fetch::map_reqwest_error(url, err))?,
        };
        if response.url().path().starts_with("/login") {
            return Err(DownloadError::AuthRequired(
                "TikTok redirected to its login page: upload cookies of a logged-in account".into(),
            ));
        }
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(crate::fetch::status_error(url, status, response.headers()));
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| crate::fetch::map_reqwest_error(url, err))?
        {
            if body.len() as u64 + chunk.len() as u64 > MAX_RESPONSE_BYTES {
                return Err(DownloadError::permanent(format!(
                    "{url}: response larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

fn parse<T: DeserializeOwned>(what: &str, json: Value) -> Result<T, DownloadError> {
    serde_path_to_error::deserialize(json).map_err(|err| {
        DownloadError::permanent(format!(
            "{what}: unexpected response, at `{}`: {}",
            err.path(),
            err.inner()
        ))
    })
}

/// An error status of a page or the API; TikTok puts its reason in the body.
fn http_failure(url: &Url, status: StatusCode, body: &[u8]) -> DownloadError {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
    if text.contains("ip address is blocked") || text.contains("access denied") {
        return api::blocked(&format!("{url}: HTTP {status}"));
    }
    crate::fetch::status_error(url, status, &HeaderMap::new())
}
