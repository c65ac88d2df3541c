//! Platform `instagram`, downloader `native` (aliases `fastdl`, `toolzu`):
//! Instagram's web JSON API with the user's `sessionid` cookie.
//!
//! username → user id (`/api/v1/users/web_profile_info/`), then posts
//! (`/api/v1/feed/user/{id}/`), reels (`/api/v1/clips/user/`) or stories
//! (`/api/v1/feed/reels_media/`), paged with `max_id`, newest first. Each
//! request waits a random 6–12 s after the previous one (any source, any
//! worker) and stays within `rate_limit_per_hour`; a 429 backs off. A
//! redirect to the login or challenge page is [`DownloadError::AuthRequired`],
//! so the source's job pauses and a person is told.

pub(crate) mod api;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
use crate::platforms::social::{self, Pace, Pacer, Pinned};
use crate::recognise::Recognition;
use api::{ClipsPage, FeedPage, Id, Media, ProfileResponse, ProfileUser, ReelsMedia, Section};

/// The web app's id, sent as `X-IG-App-ID` by instagram.com itself.
/// What an Instagram source lists.
const CONTENT_TYPES: &[&str] = &["posts", "stories", "reels"];
const WEB_APP_ID: &str = "936619743392459";
/// Largest API response read.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Wait after a rate limit that names no time.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(300);

/// `platforms.instagram` as this downloader reads it. Other keys (the
/// spec's `fastdl` / `toolzu` sections, `gallery-dl`) are ignored here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InstagramSettings {
    /// The built-in `native` downloader's settings.
    pub native: NativeSettings,
    /// `enabled`, the uploaded Netscape cookies.txt, `auto_upgrade`.
    #[serde(flatten)]
    pub common: PlatformCommon,
}

/// `platforms.instagram.native`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct NativeSettings {
    /// Off: the `native` downloader refuses to run (`GET /platforms` says why).
    pub enabled: bool,
    /// Where the web API lives (tests point it at a local server).
    pub base_url: String,
    /// `X-IG-App-ID`.
    pub app_id: String,
    /// Instagram answers browsers; its API refuses unknown clients.
    pub user_agent: String,
    /// Items per page asked for.
    pub page_size: u32,
    /// Each request waits a random time in this range after the previous one.
    pub request_delay_min_seconds: f64,
    /// Upper end of that range, in seconds.
    pub request_delay_max_seconds: f64,
    /// Requests per rolling hour, 0 for no limit.
    pub rate_limit_per_hour: u32,
    /// Waits up to this long in place (a 429's `Retry-After`, the hourly
    /// budget); longer waits hand the item back to the queue.
    pub max_inline_wait_seconds: u64,
    /// Times a rate-limited request is tried again in place.
    pub rate_limit_retries: u32,
}

impl Default for NativeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            base_url: "https://www.instagram.com".into(),
            app_id: WEB_APP_ID.into(),
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into(),
            page_size: 12,
            request_delay_min_seconds: 6.0,
            request_delay_max_seconds: 12.0,
            rate_limit_per_hour: 100,
            max_inline_wait_seconds: 60,
            rate_limit_retries: 2,
        }
    }
}

impl InstagramSettings {
    fn read(settings: &Settings) -> Result<Self, String> {
        settings
            .platform::<Self>("instagram")
            .map_err(|err| err.to_string())
    }
}

/// The session a cookies file holds.
#[derive(Debug, Clone)]
struct Session {
    jar: Arc<reqwest::cookie::Jar>,
}

/// Parses the uploaded cookies and checks they hold a live `sessionid`.
fn session(cookies: Option<&str>, now: DateTime<Utc>) -> Result<Session, String> {
    let text = cookies
        .filter(|text| !text.trim().is_empty())
        .ok_or("no Instagram cookies: upload a cookies.txt exported from a logged-in browser (it must contain `sessionid`)")?;
    let parsed = parse_netscape_cookies(text)
        .map_err(|err| format!("the Instagram cookies file is malformed: {err}"))?;
    // The jar does not say when a cookie expires; read sessionid's line.
    let expiry = text.lines().find_map(|line| {
        let line = line.strip_prefix("#HttpOnly_").unwrap_or(line);
        let fields: Vec<&str> = line.split('\t').collect();
        (fields.len() == 7 && fields[5] == "sessionid")
            .then(|| fields[4].parse::<i64>().unwrap_or(0))
    });
    match expiry {
        None => Err(
            "the Instagram cookies file has no `sessionid` cookie: export it again while logged in"
                .into(),
        ),
        Some(at) if at > 0 && at < now.timestamp() => {
            let when =
                DateTime::from_timestamp(at, 0).map_or_else(|| at.to_string(), |d| d.to_rfc3339());
            Err(format!(
                "the Instagram session cookie expired on {when}: upload fresh cookies"
            ))
        }
        Some(_) => Ok(Session { jar: parsed.jar }),
    }
}

/// Instagram's `native` downloader.
#[derive(Debug, Clone, Default)]
pub struct Instagram {
    pacer: Arc<Pacer>,
}

#[async_trait]
impl Downloader for Instagram {
    async fn recognise(&self, url: &Url, _settings: &Settings) -> Option<Recognition> {
        super::urls::instagram(url)
    }

    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: "instagram".into(),
            platform_display_name: "Instagram".into(),
            name: "native".into(),
            display_name: "Instagram web API".into(),
            aliases: vec!["fastdl".into(), "toolzu".into()],
            content_types: CONTENT_TYPES.iter().map(|t| (*t).into()).collect(),
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
        let config = InstagramSettings::read(settings).map_err(Unavailable::new)?;
        if !config.native.enabled {
            return Err(Unavailable::new(
                "disabled in settings (platforms.instagram.native.enabled)",
            ));
        }
        Url::parse(&config.native.base_url).map_err(|err| {
            Unavailable::new(format!("platforms.instagram.native.base_url: {err}"))
        })?;
        session(config.common.cookies(), Utc::now())
            .map(|_| ())
            .map_err(Unavailable::new)
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        accounts::requested_account("instagram", CONTENT_TYPES, request).map(drop)
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
            let username = accounts::listed_account("instagram", CONTENT_TYPES, &request)?;
            let section = Section::parse(&request.content_type)
                .expect("listed_account admits only the content types Section knows");
            let api = Api::new(&cx, pacer, &username)?;
            let user = api.profile(&username).await?;
            let user_id = user.id.0.clone();
            let mut skipped = Vec::new();
            match section {
                Section::Stories => {
                    let stories: ReelsMedia = api
                        .call(Method::GET, "/api/v1/feed/reels_media/", &[("reel_ids", user_id.clone())], None)
                        .await?;
                    let mut items: Vec<Media> = stories
                        .reels
                        .into_values()
                        .chain(stories.reels_media)
                        .flat_map(|reel| reel.items)
                        .collect();
                    // Stories come oldest first; the engine wants newest first.
                    // The same reel may come under `reels` and `reels_media`.
                    let mut seen = std::collections::HashSet::new();
                    items.retain(|media| seen.insert(media.pk.clone()));
                    items.sort_by_key(|media| std::cmp::Reverse(media.taken_at));
                    for media in &items {
                        for item in api::media_items(media, section, &api.site, &mut skipped) {
                            yield item;
                        }
                    }
                }
                Section::Posts | Section::Reels => {
                    let mut cursor: Option<Id> = None;
                    let mut seen_cursors = Vec::new();
                    let mut pinned = Pinned::default();
                    loop {
                        let (medias, next) = match section {
                            Section::Posts => {
                                let mut query = vec![("count", api.settings.page_size.to_string())];
                                if let Some(cursor) = &cursor {
                                    query.push(("max_id", cursor.0.clone()));
                                }
                                let page: FeedPage = api
                                    .call(Method::GET, &format!("/api/v1/feed/user/{user_id}/"), &query, None)
                                    .await?;
                                let next = page.next_max_id.filter(|_| page.more_available);
                                (page.items, next)
                            }
                            _ => {
                                let mut form = vec![
                                    ("target_user_id", user_id.clone()),
                                    ("page_size", api.settings.page_size.to_string()),
                                    ("include_feed_video", "true".to_owned()),
                                ];
                                if let Some(cursor) = &cursor {
                                    form.push(("max_id", cursor.0.clone()));
                                }
                                let page: ClipsPage = api
                                    .call(Method::POST, "/api/v1/clips/user/", &[], Some(&form))
                                    .await?;
                                let next = page
                                    .paging_info
                                    .filter(|info| info.more_available)
                                    .and_then(|info| info.max_id);
                                (page.items.into_iter().map(|clip| clip.media).collect(), next)
                            }
                        };
                        for media in &medias {
                            let items = api::media_items(media, section, &api.site, &mut skipped);
                            if media.is_pinned() {
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
                        for reason in skipped.drain(..) {
                            tracing::warn!(platform = "instagram", source = %username, "{reason}");
                        }
                        match next {
                            // A cursor seen before would loop forever.
                            Some(next) if !seen_cursors.contains(&next) => {
                                seen_cursors.push(next.clone());
                                cursor = Some(next);
                            }
                            _ => break,
                        }
                    }
                    for held in pinned.release_newer_than(None) {
                        yield held;
                    }
                }
            }
            for reason in skipped {
                tracing::warn!(platform = "instagram", source = %username, "{reason}");
            }
        }
        .boxed()
    }
}

/// One listing's view of the API: the client with the session's cookies,
/// the headers Instagram's web app sends, and the shared pacer.
struct Api {
    http: HttpClient,
    settings: NativeSettings,
    base: Url,
    /// What downloads name as their referer.
    site: Url,
    headers: HeaderMap,
    pace: Pace,
    pacer: Arc<Pacer>,
    cancel: CancellationToken,
}

impl Api {
    fn new(cx: &Context, pacer: Arc<Pacer>, username: &str) -> Result<Self, DownloadError> {
        let config = InstagramSettings::read(&cx.settings).map_err(DownloadError::Permanent)?;
        let settings = config.native;
        let base = Url::parse(&settings.base_url).map_err(|err| {
            DownloadError::permanent(format!("platforms.instagram.native.base_url: {err}"))
        })?;
        let session = session(config.common.cookies(), cx.clock.now())
            .map_err(DownloadError::AuthRequired)?;
        let http = HttpClient::builder(&cx.settings.network)
            .platform("instagram")
            .cookies(Arc::clone(&session.jar))
            .share_limits_with(&cx.http)
            .build()
            .map_err(|err| DownloadError::permanent(err.to_string()))?;
        let csrf = csrf_token(&session.jar, &base);
        let mut headers = HeaderMap::new();
        let mut insert = |name: &'static str, value: &str| {
            if let Ok(value) = value.parse() {
                headers.insert(name, value);
            }
        };
        insert("x-ig-app-id", &settings.app_id);
        insert("x-requested-with", "XMLHttpRequest");
        insert("x-asbd-id", "129477");
        if let Some(csrf) = &csrf {
            insert("x-csrftoken", csrf);
        }
        headers.insert(ACCEPT, "*/*".parse().expect("static header"));
        if let Ok(agent) = settings.user_agent.parse() {
            headers.insert(USER_AGENT, agent);
        }
        if let Ok(referer) = base.join(&format!("/{username}/")).map(String::from)
            && let Ok(referer) = referer.parse()
        {
            headers.insert(REFERER, referer);
        }
        let site = base.join("/").unwrap_or_else(|_| base.clone());
        let pace = Pace {
            label: "instagram (platforms.instagram.native.rate_limit_per_hour)",
            delay_min_seconds: settings.request_delay_min_seconds,
            delay_max_seconds: settings.request_delay_max_seconds,
            per_hour: settings.rate_limit_per_hour,
            max_inline_wait: Duration::from_secs(settings.max_inline_wait_seconds),
        };
        Ok(Self {
            pace,
            http,
            settings,
            base,
            site,
            headers,
            pacer,
            cancel: cx.cancel.clone(),
        })
    }

    /// The account behind `username`; a private account the session does
    /// not follow is refused with a reason.
    async fn profile(&self, username: &str) -> Result<ProfileUser, DownloadError> {
        let response: Result<ProfileResponse, DownloadError> = self
            .call(
                Method::GET,
                "/api/v1/users/web_profile_info/",
                &[("username", username.to_owned())],
                None,
            )
            .await;
        let user = match response {
            Err(DownloadError::Permanent(reason)) if reason.contains("HTTP 404") => None,
            other => other?.data.and_then(|data| data.user),
        };
        let user = user.ok_or_else(|| {
            DownloadError::permanent(format!("the Instagram account {username:?} does not exist"))
        })?;
        if user.is_private && user.followed_by_viewer != Some(true) {
            return Err(DownloadError::permanent(format!(
                "the Instagram account {:?} is private and the account of the uploaded cookies does not follow it",
                user.username
            )));
        }
        Ok(user)
    }

    /// One API request: paced, 429s backed off in place when short,
    /// login redirects and error bodies mapped to typed errors.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        form: Option<&[(&str, String)]>,
    ) -> Result<T, DownloadError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|err| DownloadError::permanent(format!("{path}: {err}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut retries = self.settings.rate_limit_retries;
        let max_inline = Duration::from_secs(self.settings.max_inline_wait_seconds);
        loop {
            self.pacer.wait(&self.pace, &self.cancel).await?;
            match self.call_once(method.clone(), &url, form).await {
                Err(DownloadError::RateLimited { after, .. })
                    if retries > 0 && after <= max_inline =>
                {
                    retries -= 1;
                    tracing::info!(platform = "instagram", url = %url, "rate limited; waiting {}s", after.as_secs());
                    social::sleep(after, &self.cancel).await?;
                }
                other => return other,
            }
        }
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        form: Option<&[(&str, String)]>,
    ) -> Result<T, DownloadError> {
        self.http.check_url(url)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .headers(self.headers.clone());
        if let Some(form) = form {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
        }
        let response = tokio::select! {
            _ = self.cancel.cancelled() => return Err(DownloadError::Cancelled),
            sent = request.send() => sent.map_err(|err| crate::fetch::map_reqwest_error(url, err))?,
        };
        let landed = response.url().clone();
        if landed.path().starts_with("/accounts/login") {
            return Err(DownloadError::AuthRequired(
                "Instagram redirected to its login page: the session cookie is missing, expired or logged out; upload fresh cookies".into(),
            ));
        }
        if landed.path().starts_with("/challenge") || landed.path().contains("/checkpoint") {
            return Err(DownloadError::AuthRequired(
                "Instagram asks this session to pass a security check (challenge): complete it in a browser, then upload fresh cookies".into(),
            ));
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(url, response).await?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success()
            || json
                .as_ref()
                .is_some_and(|v| v.get("status").and_then(Value::as_str) == Some("fail"))
        {
            return Err(api_failure(url, status, &headers, json.as_ref()));
        }
        let Some(json) = json else {
            let text = String::from_utf8_lossy(&body[..body.len().min(2000)]).to_ascii_lowercase();
            if text.contains("login") {
                return Err(DownloadError::AuthRequired(
                    "Instagram answered with its login page instead of data: upload fresh cookies"
                        .into(),
                ));
            }
            return Err(DownloadError::permanent(format!(
                "{url}: Instagram answered with something that is not JSON"
            )));
        };
        serde_path_to_error::deserialize(json).map_err(|err| {
            DownloadError::permanent(format!(
                "{}: unexpected response, at `{}`: {}",
                url.path(),
                err.path(),
                err.inner()
            ))
        })
    }
}

async fn read_body(url: &Url, mut response: reqwest::Response) -> Result<Vec<u8>, DownloadError> {
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
    Ok(body)
}

/// What an error answer of the API means: Instagram says it in `message`
/// and a few flags as often as in the status code.
fn api_failure(
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> DownloadError {
    let field = |name: &str| body.and_then(|b| b.get(name));
    let message = field("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let lower = message.to_ascii_lowercase();
    let flag = |name: &str| field(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("require_login") || lower.contains("login_required") || lower.contains("login required")
    {
        return DownloadError::AuthRequired(
            "Instagram requires a login: the session cookie is missing, expired or logged out; upload fresh cookies".into(),
        );
    }
    if lower.contains("checkpoint")
        || lower.contains("challenge")
        || field("checkpoint_url").is_some()
    {
        return DownloadError::AuthRequired(
            "Instagram asks this session to pass a security check (challenge): complete it in a browser, then upload fresh cookies".into(),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || flag("spam")
        || lower.contains("please wait a few minutes")
        || lower.contains("rate limit")
    {
        return DownloadError::RateLimited {
            host: url.host_str().unwrap_or("instagram").to_owned(),
            after: crate::fetch::retry_after(headers).unwrap_or(DEFAULT_BACKOFF),
        };
    }
    if lower.contains("not authorized to view user") {
        return DownloadError::permanent(
            "the Instagram account is private and the account of the uploaded cookies does not follow it",
        );
    }
    if lower.contains("user not found") || status == StatusCode::NOT_FOUND {
        return DownloadError::permanent(format!("{}: HTTP {status}: not found", url.path()));
    }
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    match crate::fetch::status_error(url, status, headers) {
        DownloadError::Permanent(_) => {
            DownloadError::permanent(format!("{url}: HTTP {status}{detail}"))
        }
        DownloadError::Retryable { after, .. } => DownloadError::Retryable {
            reason: format!("{url}: HTTP {status}{detail}"),
            after,
        },
        other => other,
    }
}

/// The `csrftoken` cookie the session sends to `base`, for `X-CSRFToken`.
fn csrf_token(jar: &reqwest::cookie::Jar, base: &Url) -> Option<String> {
    use reqwest::cookie::CookieStore;
    let header = jar.cookies(base)?;
    header.to_str().ok()?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == "csrftoken").then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIES: &str = "# Netscape HTTP Cookie File\n.instagram.com\tTRUE\t/\tTRUE\t4102444800\tsessionid\t123%3Aabc\n.instagram.com\tTRUE\t/\tTRUE\t4102444800\tcsrftoken\ttok123\n";

    #[test]
    fn sessions_need_a_live_sessionid() {
        let now = Utc::now();
        let ok = session(Some(COOKIES), now).unwrap();
        assert_eq!(
            csrf_token(&ok.jar, &Url::parse("https://www.instagram.com/").unwrap()).as_deref(),
            Some("tok123")
        );
        let no_session = ".instagram.com\tTRUE\t/\tTRUE\t0\tcsrftoken\tx\n";
        let expired = ".instagram.com\tTRUE\t/\tTRUE\t1000000000\tsessionid\tx\n";
        let malformed = "sessionid=abc; csrftoken=def\n";
        for (cookies, words) in [
            (None, "upload a cookies.txt"),
            (Some(no_session), "no `sessionid`"),
            (Some(expired), "expired on 2001-09-09"),
            (Some(malformed), "malformed"),
        ] {
            let err = session(cookies, now).unwrap_err();
            assert!(err.contains(words), "{words}: {err}");
        }
    }

    #[test]
    fn error_bodies_map_to_typed_errors() {
        let url = Url::parse("https://www.instagram.com/api/v1/feed/user/1/").unwrap();
        let headers = HeaderMap::new();
        let check = |status: u16, body: Value| {
            api_failure(
                &url,
                StatusCode::from_u16(status).unwrap(),
                &headers,
                Some(&body),
            )
            .code()
        };
        assert_eq!(
            check(
                403,
                serde_json::json!({"message": "login_required", "require_login": true, "status": "fail"})
            ),
            "AUTH_REQUIRED"
        );
        assert_eq!(
            check(
                400,
                serde_json::json!({"message": "checkpoint_required", "checkpoint_url": "/challenge/x/", "status": "fail"})
            ),
            "AUTH_REQUIRED"
        );
        assert_eq!(
            check(
                400,
                serde_json::json!({"message": "Please wait a few minutes before you try again.", "spam": true, "status": "fail"})
            ),
            "RATE_LIMITED"
        );
        assert_eq!(check(429, serde_json::json!({})), "RATE_LIMITED");
        assert_eq!(
            check(
                400,
                serde_json::json!({"message": "Not authorized to view user", "status": "fail"})
            ),
            "DOWNLOAD_FAILED"
        );
        assert_eq!(
            check(500, serde_json::json!({"message": "oops"})),
            "DOWNLOAD_RETRYABLE"
        );
    }
}
