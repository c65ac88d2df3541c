//! Platform `direct`: one http(s) URL is one file.

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use url::Url;

use crate::downloader::{Context, Downloader, MediaItem, Request, Unavailable};
use crate::error::{DownloadError, Error};
use crate::model::{DownloaderInfo, ListingOrder, Settings};

/// The plain-URL downloader (`direct` / `http`).
#[derive(Debug, Clone, Default)]
pub struct Direct;

impl Direct {
    /// The archive key of a URL: the URL itself, without its fragment.
    pub fn archive_key(url: &Url) -> String {
        crate::downloader::url_archive_key(url)
    }

    fn parse(request: &Request) -> Result<Url, Error> {
        request.web_url("URL", "only http and https URLs can be downloaded")
    }
}

#[async_trait]
impl Downloader for Direct {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: "direct".into(),
            platform_display_name: "Direct URL".into(),
            name: "http".into(),
            display_name: "HTTP(S)".into(),
            aliases: vec!["native".into()],
            content_types: vec!["file".into()],
            features: vec!["resume".into()],
            listing_order: ListingOrder::Single,
            accepts_cookies: false,
            is_default: true,
        }
    }

    async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
        if settings.platform_common("direct").enabled {
            Ok(())
        } else {
            Err(Unavailable::new(
                "disabled in settings (platforms.direct.enabled)",
            ))
        }
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        Self::parse(request).map(|_| ())
    }

    fn discover(
        &self,
        request: &Request,
        _cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        let item = Self::parse(request)
            .map_err(|err| DownloadError::permanent(err.to_string()))
            .map(|url| {
                let mut item = MediaItem::new(Self::archive_key(&url), url, "file");
                item.referer = request.referer.as_deref().and_then(|r| Url::parse(r).ok());
                item
            });
        stream::once(async move { item }).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> Request {
        Request::new("direct", "label", "file", url)
    }

    #[test]
    fn validates_schemes() {
        assert!(
            Direct
                .validate(&request("https://example.com/a.jpg"))
                .is_ok()
        );
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/x",
            "not a url",
            "http://",
        ] {
            assert!(Direct.validate(&request(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn archive_key_ignores_fragment() {
        let a = Url::parse("https://e.com/a.jpg#x").unwrap();
        let b = Url::parse("https://e.com/a.jpg").unwrap();
        assert_eq!(Direct::archive_key(&a), Direct::archive_key(&b));
    }
}
