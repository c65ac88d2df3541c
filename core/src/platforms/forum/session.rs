//! The HTTP side of a forum check: a client with the forum's cookies,
//! page fetches with size limits and request spacing, login-wall
//! detection, and logging in with a username and password.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::header::{CONTENT_TYPE, REFERER};
use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::error::DownloadError;
use crate::fetch::{HttpClient, map_reqwest_error, status_error};

use super::parse;

/// A page as fetched: where it ended up after redirects, its status and text.
#[derive(Debug, Clone)]
pub struct FetchedPage {
    /// The URL after redirects.
    pub url: Url,
    /// The HTTP status of the final response.
    pub status: StatusCode,
    /// The response's media type, when it sent one.
    pub content_type: Option<String>,
    /// The body when it is text; empty for images and other binary bodies.
    pub body: String,
}

impl FetchedPage {
    /// Whether the server answered with an image rather than a page.
    pub fn is_image(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("image/"))
    }
}

/// Fetches forum and image-host pages for one check, sharing a cookie jar
/// (the forum's cookies, a login session, hosts' interstitial cookies).
#[derive(Debug, Clone)]
pub struct PageFetcher {
    http: HttpClient,
    jar: Arc<Jar>,
    max_page_bytes: u64,
    spacing: Duration,
    last_forum_request: Arc<Mutex<Option<Instant>>>,
}

impl PageFetcher {
    /// A fetcher over `http` (which must have been built with `jar` as its cookie provider).
    pub fn new(http: HttpClient, jar: Arc<Jar>, max_page_bytes: u64, spacing: Duration) -> Self {
        Self {
            http,
            jar,
            max_page_bytes,
            spacing,
            last_forum_request: Arc::new(Mutex::new(None)),
        }
    }

    /// The client, for requests of resolvers with special needs.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Adds a cookie (`name=value; Domain=…`) for `url`, as a host's interstitial wants.
    pub fn add_cookie(&self, url: &Url, cookie: &str) {
        self.jar.add_cookie_str(cookie, url);
    }

    /// Whether any cookie would be sent to `url`.
    pub fn has_cookies_for(&self, url: &Url) -> bool {
        self.jar.cookies(url).is_some()
    }

    /// `GET url` on an image host or another site: the shared client's
    /// rate limits apply and error statuses become errors (429/503 → rate limited).
    pub async fn get(
        &self,
        url: &Url,
        referer: Option<&Url>,
    ) -> Result<FetchedPage, DownloadError> {
        let mut request = self.http.request(Method::GET, url.clone());
        if let Some(referer) = referer {
            request = request.header(REFERER, referer.as_str());
        }
        let response = self.http.send(request).await?;
        self.read(url, response).await
    }

    /// Posts a form (URL-encoded) and returns the page it leads to.
    pub async fn post_form(
        &self,
        url: &Url,
        fields: &[(String, String)],
        referer: Option<&Url>,
    ) -> Result<FetchedPage, DownloadError> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut request = self
            .http
            .request(Method::POST, url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(referer) = referer {
            request = request.header(REFERER, referer.as_str());
        }
        let response = self.http.send(request).await?;
        self.read(url, response).await
    }

    /// `GET` of a forum page, spaced by the forum's request interval and
    /// within the host's shared rate limit and concurrency, with the status
    /// left for the caller to judge ([`forum_page_error`]): a 403 page with
    /// a login form means something else than a plain 403.
    pub async fn get_forum_page(&self, url: &Url) -> Result<FetchedPage, DownloadError> {
        self.http.check_url(url)?;
        self.wait_turn().await;
        let _slot = self.http.host_permit(url).await;
        let response = self
            .http
            .send_any_status(self.http.request(Method::GET, url.clone()))
            .await?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(status_error(url, status, response.headers()));
        }
        self.read(url, response).await
    }

    async fn wait_turn(&self) {
        if self.spacing.is_zero() {
            return;
        }
        let mut last = self.last_forum_request.lock().await;
        if let Some(previous) = *last {
            tokio::time::sleep_until(previous + self.spacing).await;
        }
        *last = Some(Instant::now());
    }

    async fn read(
        &self,
        requested: &Url,
        mut response: reqwest::Response,
    ) -> Result<FetchedPage, DownloadError> {
        let url = response.url().clone();
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let page = FetchedPage {
            url,
            status,
            content_type,
            body: String::new(),
        };
        if page.is_image() {
            return Ok(page);
        }
        let too_large = || {
            DownloadError::permanent(format!(
                "{requested}: page larger than {} bytes (forum.max_page_bytes)",
                self.max_page_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_page_bytes)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| map_reqwest_error(requested, err))?
        {
            if body.len() as u64 + chunk.len() as u64 > self.max_page_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchedPage {
            body: crate::fetch::decode_html(&body, page.content_type.as_deref()),
            ..page
        })
    }
}

/// Whether a URL is a login or registration page (where forums redirect guests).
pub fn is_login_url(url: &Url) -> bool {
    let path = url.path().to_ascii_lowercase();
    let query = url.query().unwrap_or_default().to_ascii_lowercase();
    path.contains("/login")
        || path.contains("/register")
        || path.ends_with("/login.php")
        || path.ends_with("/register.php")
        || (path.ends_with("/ucp.php")
            && (query.contains("mode=login") || query.contains("mode=register")))
        || (path.ends_with("/member.php") && query.contains("action=login"))
}

/// The error a forum page stands for, or `None` when it can be parsed: a
/// redirect to a login page or a 401/403 with a login form is
/// [`DownloadError::AuthRequired`]; other statuses map as usual.
pub fn forum_page_error(requested: &Url, page: &FetchedPage) -> Option<DownloadError> {
    if is_login_url(&page.url) && !is_login_url(requested) {
        return Some(DownloadError::AuthRequired(format!(
            "{requested} redirects to the login page {}: add credentials or a cookies file for this forum",
            page.url
        )));
    }
    let status = page.status;
    if status.is_success() {
        return None;
    }
    let has_login_form = parse::find_form(&page.body, &page.url, "form", true).is_some();
    if status == StatusCode::UNAUTHORIZED || (status == StatusCode::FORBIDDEN && has_login_form) {
        return Some(DownloadError::AuthRequired(format!(
            "{requested}: HTTP {status} with a login form: add credentials or a cookies file for this forum"
        )));
    }
    Some(status_error(
        requested,
        status,
        &reqwest::header::HeaderMap::new(),
    ))
}

/// Logs in through the login form on `page` (a login wall or the forum's
/// login page): fills the first form with a password field with
/// `username` and `password`, keeps its hidden fields (CSRF tokens), posts
/// it, and reports whether the forum still shows a login form.
pub async fn log_in(
    fetcher: &PageFetcher,
    page: &FetchedPage,
    username: &str,
    password: &str,
) -> Result<(), DownloadError> {
    let form = parse::find_form(&page.body, &page.url, "form", true).ok_or_else(|| {
        DownloadError::AuthRequired(format!(
            "{}: no login form found to log in as {username}",
            page.url
        ))
    })?;
    let mut fields = form.fields.clone();
    if let Some(name) = &form.text_field {
        fields.push((name.clone(), username.to_owned()));
    }
    if let Some(name) = &form.password_field {
        fields.push((name.clone(), password.to_owned()));
    }
    // vBulletin and phpBB keep the user logged in with these; harmless elsewhere.
    for (name, value) in [("remember", "1"), ("autologin", "on"), ("cookieuser", "1")] {
        if !fields.iter().any(|(n, _)| n == name) && page.body.contains(&format!("name=\"{name}\""))
        {
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    let after = if form.method == "POST" {
        fetcher
            .post_form(&form.action, &fields, Some(&page.url))
            .await
    } else {
        let mut target = form.action.clone();
        target.query_pairs_mut().extend_pairs(&fields);
        fetcher.get(&target, Some(&page.url)).await
    };
    let after = match after {
        Ok(after) => after,
        Err(DownloadError::Permanent(reason)) => {
            return Err(DownloadError::AuthRequired(format!(
                "logging in as {username} failed: {reason}"
            )));
        }
        Err(other) => return Err(other),
    };
    let still_login_form = parse::find_form(&after.body, &after.url, "form", true).is_some()
        && parse::parse_thread_page(&after.body, &after.url)
            .posts
            .is_empty();
    if still_login_form {
        return Err(DownloadError::AuthRequired(format!(
            "logging in as {username} at {} failed: the forum shows the login form again (wrong password?)",
            form.action
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::settings::NetworkSettings;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn forum_pages_take_their_share_of_the_host_rate_limit() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_string("<p>no</p>"))
            .mount(&server)
            .await;
        let network = NetworkSettings {
            per_host_requests_per_second: 1,
            ..NetworkSettings::default()
        };
        let jar = Arc::new(Jar::default());
        let http = HttpClient::builder(&network)
            .cookies(Arc::clone(&jar))
            .build()
            .unwrap();
        let fetcher = PageFetcher::new(http.clone(), jar, 1024, Duration::ZERO);
        let page = Url::parse(&format!("{}/threads/a.1/", server.uri())).unwrap();
        let fetched = fetcher.get_forum_page(&page).await.unwrap();
        // The error page is left to the caller, as before.
        assert_eq!(fetched.status, StatusCode::FORBIDDEN);
        // The host's budget of one request per second is spent by that fetch
        // (a fresh budget replenishes only after a second).
        assert!(!http.host_rate_allows(&page));
        let other_host = Url::parse("http://other.example/").unwrap();
        assert!(http.host_rate_allows(&other_host));
    }
}
