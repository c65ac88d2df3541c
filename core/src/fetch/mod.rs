//! HTTP for every downloader: one client with the network settings (proxy,
//! user agent, timeouts), per-host rate limits and concurrency, the
//! private-address guard, status codes mapped to [`DownloadError`]s, and
//! [`transfer`]: streaming a body to disk while hashing it.

mod cookies;
pub mod guard;
mod limits;
mod text;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

pub use cookies::{CookieError, ParsedCookies, cookies_for_host, parse_netscape_cookies};
pub use guard::{AddressGuard, is_blocked_address};
pub use limits::HostPermit;
pub use text::decode_html;

use crate::error::{DownloadError, Error, error_chain};
use crate::model::settings::NetworkSettings;
use limits::HostLimits;

/// Default wait when a server says 429 without `Retry-After`.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured; anything longer is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);
/// Redirects followed before giving up (loops end here).
const MAX_REDIRECTS: usize = 10;

/// The shared HTTP client. Cheap to clone; clones share connections and limits.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    hosts: Arc<HostLimits>,
    guard: AddressGuard,
}

impl HttpClient {
    /// A client following `settings`, with no proxy override and no cookies.
    pub fn new(settings: &NetworkSettings) -> Result<Self, Error> {
        Self::builder(settings).build()
    }

    /// A builder to add a platform's proxy or cookies.
    pub fn builder(settings: &NetworkSettings) -> HttpClientBuilder<'_> {
        HttpClientBuilder {
            settings,
            proxy: None,
            cookies: None,
            hosts: None,
        }
    }

    /// The underlying reqwest client, for requests [`HttpClient::send`] then checks.
    pub fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request after the address check and the host's rate limit,
    /// and turns error statuses into [`DownloadError`]s (429 → `RateLimited`,
    /// 5xx → `Retryable`, other 4xx → `Permanent`).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, DownloadError> {
        let (url, response) = self.execute(request).await?;
        check_status(&url, response)
    }

    /// Sends a request after the address check and the host's rate limit,
    /// like [`HttpClient::send`], but returns the response whatever its
    /// status, for callers that read error pages (a 403 with a login form).
    pub async fn send_any_status(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, DownloadError> {
        self.execute(request).await.map(|(_, response)| response)
    }

    /// The request's URL (before redirects, for error messages) and the response.
    async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Url, Response), DownloadError> {
        let request = request
            .build()
            .map_err(|err| DownloadError::permanent(format!("invalid request: {err}")))?;
        let url = request.url().clone();
        self.check_url(&url)?;
        self.hosts.until_ready(host_key(&url)).await;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|err| map_reqwest_error(&url, err))?;
        Ok((url, response))
    }

    /// `GET url` through [`HttpClient::send`].
    pub async fn get(&self, url: &Url) -> Result<Response, DownloadError> {
        self.send(self.client.get(url.clone())).await
    }

    /// The body of `GET url` as text in the encoding it declares (see
    /// [`decode_html`]), refusing bodies over `max_bytes`.
    pub async fn get_text(&self, url: &Url, max_bytes: u64) -> Result<String, DownloadError> {
        let response = self.get(url).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(url, response, max_bytes).await?;
        Ok(decode_html(&bytes, content_type.as_deref()))
    }

    /// The body of `GET url` as JSON of type `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        max_bytes: u64,
    ) -> Result<T, DownloadError> {
        let response = self.get(url).await?;
        let bytes = read_limited(url, response, max_bytes).await?;
        serde_json::from_slice(&bytes)
            .map_err(|err| DownloadError::permanent(format!("{url}: unexpected JSON: {err}")))
    }

    /// Holds one of the host's concurrent-transfer slots until dropped.
    pub async fn host_permit(&self, url: &Url) -> HostPermit {
        self.hosts.permit(host_key(url)).await
    }

    /// Whether the host's rate limit lets a request through right now
    /// (taking its share): how tests see that a path goes through the limiter.
    #[cfg(test)]
    pub(crate) fn host_rate_allows(&self, url: &Url) -> bool {
        self.hosts.try_now(&host_key(url))
    }

    /// Refuses schemes other than http(s), metadata endpoints, and private
    /// addresses when blocked.
    pub fn check_url(&self, url: &Url) -> Result<(), DownloadError> {
        check_scheme(url)?;
        self.guard.check_url(url)?;
        Ok(())
    }
}

/// Builds an [`HttpClient`] with a platform's proxy and cookies.
#[derive(Debug)]
pub struct HttpClientBuilder<'a> {
    settings: &'a NetworkSettings,
    proxy: Option<String>,
    cookies: Option<Arc<reqwest::cookie::Jar>>,
    hosts: Option<Arc<HostLimits>>,
}

impl HttpClientBuilder<'_> {
    /// Uses `platform`'s proxy from the settings when it has one.
    pub fn platform(mut self, platform: &str) -> Self {
        if let Some(proxy) = self
            .settings
            .platform_proxies
            .get(platform)
            .and_then(|v| v.as_str())
        {
            self.proxy = Some(proxy.to_owned());
        }
        self
    }

    /// Sends these cookies (see [`parse_netscape_cookies`]).
    pub fn cookies(mut self, jar: Arc<reqwest::cookie::Jar>) -> Self {
        self.cookies = Some(jar);
        self
    }

    /// Shares rate limits and concurrency slots with `other` (same hosts, same budget).
    pub fn share_limits_with(mut self, other: &HttpClient) -> Self {
        self.hosts = Some(Arc::clone(&other.hosts));
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming `network.proxy` for an unusable proxy URL,
    /// or `network` when the TLS stack cannot be set up.
    pub fn build(self) -> Result<HttpClient, Error> {
        let settings = self.settings;
        let guard = AddressGuard::new(settings.block_private_addresses);
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            if let Err(err) = check_scheme(attempt.url()) {
                return attempt.error(err.to_string());
            }
            if let Err(err) = guard.check_url(attempt.url()) {
                return attempt.error(err.to_string());
            }
            attempt.follow()
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .connect_timeout(Duration::from_secs(settings.connect_timeout_seconds.into()))
            .read_timeout(Duration::from_secs(settings.read_timeout_seconds.into()))
            .redirect(redirect)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .dns_resolver(guard.resolver());
        let proxy = self.proxy.as_deref().unwrap_or(&settings.proxy);
        if proxy.is_empty() {
            builder = builder.no_proxy();
        } else {
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|err| Error::invalid("network.proxy", err.to_string()))?;
            builder = builder.proxy(proxy);
        }
        if let Some(jar) = self.cookies {
            builder = builder.cookie_provider(jar);
        }
        let client = builder.build().map_err(|err| {
            Error::invalid("network", format!("cannot build the HTTP client: {err}"))
        })?;
        let hosts = self.hosts.unwrap_or_else(|| {
            Arc::new(HostLimits::new(
                settings.per_host_requests_per_second,
                settings.per_host_concurrency,
            ))
        });
        Ok(HttpClient {
            client,
            hosts,
            guard,
        })
    }
}

fn host_key(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}

fn check_scheme(url: &Url) -> Result<(), DownloadError> {
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(()),
        "http" | "https" => Err(DownloadError::permanent(format!("{url}: URL has no host"))),
        other => Err(DownloadError::permanent(format!(
            "unsupported URL scheme {other:?} (only http and https)"
        ))),
    }
}

/// Maps a transport error to what the engine should do.
pub(crate) fn map_reqwest_error(url: &Url, err: reqwest::Error) -> DownloadError {
    let detail = error_chain(&err);
    if err.is_redirect() || err.is_builder() {
        DownloadError::permanent(format!("{url}: {detail}"))
    } else if err.is_timeout() {
        DownloadError::retryable(format!("{url}: timed out ({detail})"))
    } else {
        DownloadError::retryable(format!("{url}: {detail}"))
    }
}

fn check_status(url: &Url, response: Response) -> Result<Response, DownloadError> {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return Ok(response);
    }
    Err(status_error(url, status, response.headers()))
}

/// The error an HTTP status stands for.
pub fn status_error(url: &Url, status: StatusCode, headers: &HeaderMap) -> DownloadError {
    let retry_after = retry_after(headers);
    let what = format!("{url}: HTTP {status}");
    match status {
        StatusCode::TOO_MANY_REQUESTS => DownloadError::RateLimited {
            host: url.host_str().unwrap_or_default().to_owned(),
            after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
        },
        StatusCode::SERVICE_UNAVAILABLE if retry_after.is_some() => DownloadError::RateLimited {
            host: url.host_str().unwrap_or_default().to_owned(),
            after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
        },
        StatusCode::REQUEST_TIMEOUT => DownloadError::Retryable {
            reason: what,
            after: retry_after,
        },
        s if s.is_server_error() => DownloadError::Retryable {
            reason: what,
            after: retry_after,
        },
        _ => DownloadError::Permanent(what),
    }
}

/// `Retry-After` as seconds or an HTTP date, capped.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

async fn read_limited(
    url: &Url,
    mut response: Response,
    max_bytes: u64,
) -> Result<Vec<u8>, DownloadError> {
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(DownloadError::permanent(format!(
            "{url}: response larger than {max_bytes} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| map_reqwest_error(url, err))?
    {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(DownloadError::permanent(format!(
                "{url}: response larger than {max_bytes} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn url() -> Url {
        Url::parse("https://cdn.example/a.jpg").unwrap()
    }

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            status_error(&url(), StatusCode::NOT_FOUND, &headers),
            DownloadError::Permanent(_)
        ));
        assert!(matches!(
            status_error(&url(), StatusCode::BAD_GATEWAY, &headers),
            DownloadError::Retryable { after: None, .. }
        ));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            status_error(&url(), StatusCode::TOO_MANY_REQUESTS, &headers),
            DownloadError::RateLimited {
                host: "cdn.example".into(),
                after: Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_them() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(25),
            "{wait:?}"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn only_http_and_https_are_fetched() {
        let client = HttpClient::new(&NetworkSettings::default()).unwrap();
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/a",
            "data:text/plain,hi",
        ] {
            let err = client.check_url(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(matches!(err, DownloadError::Permanent(_)), "{bad}: {err:?}");
        }
        client.check_url(&url()).unwrap();
    }
}
