//! Image hosts: from a post's link (a host's viewer page, usually with a
//! thumbnail inside) to the full-size image.
//!
//! Each host is an [`ImageHost`]; [`ImageHosts`] holds them in order and
//! falls back to the largest image of an unknown page. Users add their own
//! with [`ImageHosts::register`] and [`super::Forum::with_hosts`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use crate::error::DownloadError;

use super::links::{MediaPage, drop_query_params, is_image_url, media_page, resolve_href};
use super::parse::{find_form, largest_image, select_url};
use super::session::{FetchedPage, PageFetcher};

/// A post's link to an image: the page it points to and the thumbnail shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLink {
    /// The link target (a viewer page, or an image).
    pub page: Url,
    /// The image inside the link, if any.
    pub thumbnail: Option<Url>,
}

/// Where a link's full image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image file to fetch.
    pub url: Url,
    /// The host's name (`pixhost`, …) or the page's domain for unknown hosts.
    pub host: String,
    /// The page to send as `Referer` when fetching the image.
    pub referer: Option<Url>,
}

/// One image host.
#[async_trait]
pub trait ImageHost: Send + Sync + fmt::Debug {
    /// A short stable name, stored as the download's `host` metadata.
    fn name(&self) -> &str;

    /// Whether this host serves the link (by its page or its thumbnail).
    fn handles(&self, link: &HostLink) -> bool;

    /// The full image's URL computed from the link alone, without a request,
    /// where the host's URL scheme allows it.
    fn rewrite(&self, _link: &HostLink) -> Option<Url> {
        None
    }

    /// The full image's URL, fetching the viewer page (with whatever
    /// cookie or interstitial form the host needs).
    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError>;
}

/// The known image hosts, consulted in order (user hosts first), with the
/// largest-image fallback for unknown pages.
#[derive(Debug, Clone)]
pub struct ImageHosts {
    hosts: Vec<Arc<dyn ImageHost>>,
}

impl Default for ImageHosts {
    fn default() -> Self {
        Self::builtin()
    }
}

impl ImageHosts {
    /// No hosts: every link goes to the largest-image fallback.
    pub fn empty() -> Self {
        Self { hosts: Vec::new() }
    }

    /// pixhost, imgbox, imagebam, imagetwist, postimg, imx.to, Chevereto-style
    /// hosts and the forums' own picture pages.
    pub fn builtin() -> Self {
        let hosts: Vec<Arc<dyn ImageHost>> = vec![
            Arc::new(Pixhost),
            Arc::new(Imgbox),
            Arc::new(Imagebam),
            Arc::new(Imagetwist),
            Arc::new(Postimg),
            Arc::new(Imxto),
            Arc::new(Chevereto),
            Arc::new(ForumMediaPages),
        ];
        Self { hosts }
    }

    /// Adds a host, consulted before those already known.
    pub fn register(&mut self, host: impl ImageHost + 'static) -> &mut Self {
        self.hosts.insert(0, Arc::new(host));
        self
    }

    /// The first host that serves `link`.
    pub fn find(&self, link: &HostLink) -> Option<&Arc<dyn ImageHost>> {
        self.hosts.iter().find(|host| host.handles(link))
    }

    /// The full image of a lone image URL when a host knows how to rewrite
    /// it (a pixhost or Chevereto thumbnail shown without a link), with no request.
    pub fn rewrite_image(&self, image: &Url) -> Option<(Url, String)> {
        let link = HostLink {
            page: image.clone(),
            thumbnail: Some(image.clone()),
        };
        let host = self.find(&link)?;
        host.rewrite(&link).map(|url| (url, host.name().to_owned()))
    }

    /// Whether a plain link (no thumbnail) points to a known host.
    pub fn knows(&self, page: &Url) -> bool {
        self.find(&HostLink {
            page: page.clone(),
            thumbnail: None,
        })
        .is_some()
    }

    /// The full image behind `link`: a known host's rewrite, else its
    /// resolver, else the largest image of the linked page.
    pub async fn resolve(
        &self,
        link: &HostLink,
        fetcher: &PageFetcher,
    ) -> Result<Resolved, DownloadError> {
        if let Some(host) = self.find(link) {
            let url = match host.rewrite(link) {
                Some(url) => url,
                None => host.resolve(link, fetcher).await?,
            };
            return Ok(Resolved {
                url,
                host: host.name().to_owned(),
                referer: Some(link.page.clone()),
            });
        }
        let url = largest_on_page(&link.page, fetcher).await?;
        Ok(Resolved {
            url,
            host: link.page.host_str().unwrap_or_default().to_owned(),
            referer: Some(link.page.clone()),
        })
    }
}

/// Whether `url`'s host is `domain` or one of its subdomains.
pub fn host_is(url: &Url, domain: &str) -> bool {
    url.host_str().is_some_and(|host| {
        let host = host.to_ascii_lowercase();
        host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|prefix| prefix.ends_with('.'))
    })
}

/// Whether `url`'s host is `domain` itself or `www.` + `domain` (a host's
/// viewer pages, as opposed to its file servers on other subdomains).
pub fn site_is(url: &Url, domain: &str) -> bool {
    url.host_str().is_some_and(|host| {
        let host = host.to_ascii_lowercase();
        host.strip_prefix("www.").unwrap_or(&host) == domain
    })
}

fn thumbnail_is(link: &HostLink, domain: &str) -> bool {
    link.thumbnail.as_ref().is_some_and(|t| host_is(t, domain))
}

fn no_image(page: &Url, host: &str) -> DownloadError {
    DownloadError::permanent(format!("{page}: no image found on this {host} page"))
}

/// The link's page if it is an image already, else the largest image on it.
async fn largest_on_page(page: &Url, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
    let fetched = fetcher.get(page, None).await?;
    if fetched.is_image() {
        return Ok(fetched.url);
    }
    largest_image(&fetched.body, &fetched.url).ok_or_else(|| no_image(page, "linked"))
}

/// The first image matching one of `selectors` (`(css, attribute)` pairs)
/// on a fetched page, falling back to the largest image: what most
/// resolvers, including users' own, need.
pub fn pick(page: &FetchedPage, selectors: &[(&str, &str)]) -> Option<Url> {
    selectors
        .iter()
        .find_map(|(css, attr)| select_url(&page.body, &page.url, css, attr))
        .or_else(|| largest_image(&page.body, &page.url))
}

/// Replaces the first host label `from<N>` by `to<N>` (pixhost `t12` → `img12`).
fn swap_numbered_label(url: &Url, from: &str, to: &str) -> Option<Url> {
    let host = url.host_str()?;
    let (label, rest) = host.split_once('.')?;
    let number = label.strip_prefix(from)?;
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut out = url.clone();
    out.set_host(Some(&format!("{to}{number}.{rest}"))).ok()?;
    Some(out)
}

/// pixhost.to: thumbnails `t<N>.pixhost.to/thumbs/<dir>/<file>` are
/// `img<N>.pixhost.to/images/<dir>/<file>` in full; viewer pages `/show/…`
/// hold `img#image`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pixhost;

impl Pixhost {
    /// Where the full image is on the viewer page.
    pub const SELECTORS: &[(&str, &str)] = &[("img#image", "src")];
}

#[async_trait]
impl ImageHost for Pixhost {
    fn name(&self) -> &str {
        "pixhost"
    }

    fn handles(&self, link: &HostLink) -> bool {
        let viewer = ["pixhost.to", "pixhost.org"]
            .iter()
            .any(|d| site_is(&link.page, d));
        let thumb = link
            .thumbnail
            .as_ref()
            .is_some_and(|t| host_is(t, "pixhost.to") && t.path().starts_with("/thumbs/"));
        viewer || thumb
    }

    fn rewrite(&self, link: &HostLink) -> Option<Url> {
        let thumb = link.thumbnail.as_ref()?;
        let path = thumb.path().strip_prefix("/thumbs/")?;
        let mut full = swap_numbered_label(thumb, "t", "img")?;
        full.set_path(&format!("/images/{path}"));
        Some(full)
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let page = fetcher.get(&link.page, None).await?;
        pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "pixhost"))
    }
}

/// imgbox.com: thumbnails `thumbs<N>.imgbox.com/…/<id>_t.<ext>` are
/// `images<N>.imgbox.com/…/<id>_o.<ext>`; viewer pages hold `img#img`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Imgbox;

impl Imgbox {
    /// Where the full image is on the viewer page.
    pub const SELECTORS: &[(&str, &str)] = &[("img#img", "src")];
}

#[async_trait]
impl ImageHost for Imgbox {
    fn name(&self) -> &str {
        "imgbox"
    }

    fn handles(&self, link: &HostLink) -> bool {
        site_is(&link.page, "imgbox.com")
            || link
                .thumbnail
                .as_ref()
                .is_some_and(|t| host_is(t, "imgbox.com") && t.path().contains("_t."))
    }

    fn rewrite(&self, link: &HostLink) -> Option<Url> {
        let thumb = link.thumbnail.as_ref()?;
        let mut full = swap_numbered_label(thumb, "thumbs", "images")?;
        let path = thumb.path();
        let (stem, ext) = path.rsplit_once('.')?;
        let stem = stem.strip_suffix("_t")?;
        full.set_path(&format!("{stem}_o.{ext}"));
        Some(full)
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let page = fetcher.get(&link.page, None).await?;
        pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "imgbox"))
    }
}

/// imagebam.com: the viewer page shows an adult-content interstitial
/// unless the `nsfw_inter=1` cookie is set; the image is `img.main-image`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Imagebam;

impl Imagebam {
    /// Where the full image is on the viewer page (past the interstitial).
    pub const SELECTORS: &[(&str, &str)] = &[("img.main-image", "src"), ("img#main-image", "src")];
    /// The interstitial's link to the image page.
    pub const CONTINUE: &str = "a#continue, .continue a, a.continue";
}

#[async_trait]
impl ImageHost for Imagebam {
    fn name(&self) -> &str {
        "imagebam"
    }

    fn handles(&self, link: &HostLink) -> bool {
        site_is(&link.page, "imagebam.com")
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        fetcher.add_cookie(&link.page, "nsfw_inter=1; Path=/");
        let page = fetcher.get(&link.page, None).await?;
        if let Some(url) = Self::SELECTORS
            .iter()
            .find_map(|(css, attr)| select_url(&page.body, &page.url, css, attr))
        {
            return Ok(url);
        }
        // Still the interstitial: follow its "continue" link once.
        if let Some(next) = select_url(&page.body, &page.url, Self::CONTINUE, "href")
            && next != page.url
        {
            let page = fetcher.get(&next, Some(&link.page)).await?;
            return pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "imagebam"));
        }
        largest_image(&page.body, &page.url).ok_or_else(|| no_image(&link.page, "imagebam"))
    }
}

/// imagetwist.com: the viewer page holds `img.pic`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Imagetwist;

impl Imagetwist {
    /// Where the full image is on the viewer page.
    pub const SELECTORS: &[(&str, &str)] = &[("img.pic", "src")];
}

#[async_trait]
impl ImageHost for Imagetwist {
    fn name(&self) -> &str {
        "imagetwist"
    }

    fn handles(&self, link: &HostLink) -> bool {
        site_is(&link.page, "imagetwist.com")
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let page = fetcher.get(&link.page, None).await?;
        pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "imagetwist"))
    }
}

/// postimg.cc: the viewer page's download button (`a#download`) or `og:image`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postimg;

impl Postimg {
    /// The full image on a viewer page: the download button, then `og:image`.
    pub fn image_on(page: &FetchedPage) -> Option<Url> {
        let found = select_url(&page.body, &page.url, "a#download", "href").map(|mut url| {
            // The button adds `?dl=1` to force a download; the file is the same.
            drop_query_params(&mut url, |name| name == "dl");
            url
        });
        found.or_else(|| {
            pick(
                page,
                &[
                    ("meta[property=\"og:image\"]", "content"),
                    ("img#main-image", "src"),
                ],
            )
        })
    }
}

#[async_trait]
impl ImageHost for Postimg {
    fn name(&self) -> &str {
        "postimg"
    }

    fn handles(&self, link: &HostLink) -> bool {
        ["postimg.cc", "postimg.org", "postimages.org"]
            .iter()
            .any(|domain| site_is(&link.page, domain))
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let page = fetcher.get(&link.page, None).await?;
        Self::image_on(&page).ok_or_else(|| no_image(&link.page, "postimg"))
    }
}

/// imx.to: thumbnails `/u/t/…` are `/u/i/…` in full; the viewer page asks
/// to "continue to your image" with a form before showing `img.centred`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Imxto;

impl Imxto {
    /// Where the full image is on the viewer page (past the "continue" form).
    pub const SELECTORS: &[(&str, &str)] = &[("img.centred", "src"), ("img.image-show", "src")];
}

#[async_trait]
impl ImageHost for Imxto {
    fn name(&self) -> &str {
        "imx.to"
    }

    fn handles(&self, link: &HostLink) -> bool {
        (site_is(&link.page, "imx.to") && link.page.path().starts_with("/i/"))
            || (thumbnail_is(link, "imx.to")
                && link
                    .thumbnail
                    .as_ref()
                    .is_some_and(|t| t.path().starts_with("/u/t/")))
    }

    fn rewrite(&self, link: &HostLink) -> Option<Url> {
        let thumb = link.thumbnail.as_ref().filter(|t| host_is(t, "imx.to"))?;
        let rest = thumb.path().strip_prefix("/u/t/")?;
        let mut full = thumb.clone();
        full.set_path(&format!("/u/i/{rest}"));
        Some(full)
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let mut page = fetcher.get(&link.page, None).await?;
        if let Some(form) = find_form(&page.body, &page.url, "form", false)
            && form.fields.iter().any(|(name, _)| name == "imgContinue")
        {
            page = fetcher
                .post_form(&form.action, &form.fields, Some(&link.page))
                .await?;
        }
        pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "imx.to"))
    }
}

/// Chevereto-powered hosts (many small ones): thumbnails `<name>.th.<ext>`
/// and medium sizes `<name>.md.<ext>` sit next to `<name>.<ext>`; viewer
/// pages carry `og:image`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chevereto;

impl Chevereto {
    /// Where the full image is on a viewer page.
    pub const SELECTORS: &[(&str, &str)] = &[
        ("meta[property=\"og:image\"]", "content"),
        ("link[rel=\"image_src\"]", "href"),
    ];

    /// `name.th.jpg` / `name.md.jpg` → `name.jpg`.
    fn full_size(url: &Url) -> Option<Url> {
        if !is_image_url(url) {
            return None;
        }
        let path = url.path();
        let (dir, file) = path.rsplit_once('/')?;
        let (stem, ext) = file.rsplit_once('.')?;
        let base = stem
            .strip_suffix(".th")
            .or_else(|| stem.strip_suffix(".md"))?;
        if base.is_empty() {
            return None;
        }
        let mut full = url.clone();
        full.set_path(&format!("{dir}/{base}.{ext}"));
        Some(full)
    }
}

#[async_trait]
impl ImageHost for Chevereto {
    fn name(&self) -> &str {
        "chevereto"
    }

    fn handles(&self, link: &HostLink) -> bool {
        link.thumbnail
            .as_ref()
            .is_some_and(|t| Self::full_size(t).is_some())
            || Self::full_size(&link.page).is_some()
    }

    fn rewrite(&self, link: &HostLink) -> Option<Url> {
        if is_image_url(&link.page) && Self::full_size(&link.page).is_none() {
            // The link is a full-size file already; only its thumbnail is Chevereto's.
            return Some(link.page.clone());
        }
        Self::full_size(&link.page).or_else(|| link.thumbnail.as_ref().and_then(Self::full_size))
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let page = fetcher.get(&link.page, None).await?;
        pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "Chevereto"))
    }
}

/// A forum's own page for one picture (XenForo Media Gallery, gallery and
/// lightbox viewers; see [`media_page`]) that a post links its thumbnail
/// to: the full image, never the thumbnail. Fetched with the forum's
/// session, so members-only galleries work as the thread does.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForumMediaPages;

impl ForumMediaPages {
    /// Where the full image is on a viewer page.
    pub const SELECTORS: &[(&str, &str)] = &[
        ("meta[property=\"og:image\"]", "content"),
        ("a.js-lbImage", "href"),
        ("img.js-lbImage", "src"),
        ("[data-lb-src]", "data-lb-src"),
        ("img[data-full]", "data-full"),
        ("img.js-mediaImage", "src"),
        ("link[rel=\"image_src\"]", "href"),
    ];
}

#[async_trait]
impl ImageHost for ForumMediaPages {
    fn name(&self) -> &str {
        "forum-media"
    }

    fn handles(&self, link: &HostLink) -> bool {
        link.thumbnail.is_some() && media_page(&link.page).is_some()
    }

    fn rewrite(&self, link: &HostLink) -> Option<Url> {
        match media_page(&link.page)? {
            MediaPage::XenForoMedia { full } => Some(full),
            MediaPage::Viewer => None,
        }
    }

    async fn resolve(&self, link: &HostLink, fetcher: &PageFetcher) -> Result<Url, DownloadError> {
        let page = fetcher.get(&link.page, None).await?;
        if page.is_image() {
            return Ok(page.url);
        }
        pick(&page, Self::SELECTORS).ok_or_else(|| no_image(&link.page, "gallery"))
    }
}

/// Resolves `href` against `base` like the thread parser does (for user hosts).
pub fn absolute(base: &Url, href: &str) -> Option<Url> {
    resolve_href(base, href)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(page: &str, thumb: Option<&str>) -> HostLink {
        HostLink {
            page: Url::parse(page).unwrap(),
            thumbnail: thumb.map(|t| Url::parse(t).unwrap()),
        }
    }

    fn rewrite(page: &str, thumb: Option<&str>) -> Option<String> {
        let hosts = ImageHosts::builtin();
        let link = link(page, thumb);
        let host = hosts.find(&link)?;
        host.rewrite(&link).map(String::from)
    }

    #[test]
    fn thumbnails_rewritten_without_a_request() {
        assert_eq!(
            rewrite(
                "https://pixhost.to/show/123/4567_beach.jpg",
                Some("https://t12.pixhost.to/thumbs/123/4567_beach.jpg")
            )
            .as_deref(),
            Some("https://img12.pixhost.to/images/123/4567_beach.jpg")
        );
        assert_eq!(
            rewrite(
                "https://imgbox.com/AbCdEf12",
                Some("https://thumbs2.imgbox.com/ab/cd/AbCdEf12_t.jpg")
            )
            .as_deref(),
            Some("https://images2.imgbox.com/ab/cd/AbCdEf12_o.jpg")
        );
        assert_eq!(
            rewrite(
                "https://imx.to/i/2abcd",
                Some("https://imx.to/u/t/2023/01/15/2abcd.jpg")
            )
            .as_deref(),
            Some("https://imx.to/u/i/2023/01/15/2abcd.jpg")
        );
        assert_eq!(
            rewrite(
                "https://pics.example/image/beach.Xy12",
                Some("https://pics.example/images/2023/01/15/beach.th.jpg")
            )
            .as_deref(),
            Some("https://pics.example/images/2023/01/15/beach.jpg")
        );
        assert_eq!(
            rewrite(
                "https://pics.example/images/2023/beach.md.png",
                Some("https://pics.example/images/2023/beach.th.png")
            )
            .as_deref(),
            Some("https://pics.example/images/2023/beach.png")
        );
        // Hosts that need their page: no rewrite.
        assert_eq!(
            rewrite(
                "https://www.imagebam.com/view/ME1234",
                Some("https://thumbs4.imagebam.com/ab/cd/ME1234_t.jpeg")
            ),
            None
        );
        assert_eq!(rewrite("https://pixhost.to/show/1/2_a.jpg", None), None);
    }

    #[test]
    fn host_matching_is_by_domain_not_substring() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(host_is(&url("https://t1.pixhost.to/x"), "pixhost.to"));
        assert!(host_is(&url("https://pixhost.to/x"), "pixhost.to"));
        assert!(!host_is(&url("https://notpixhost.to/x"), "pixhost.to"));
        assert!(!host_is(
            &url("https://pixhost.to.evil.example/x"),
            "pixhost.to"
        ));
    }

    #[derive(Debug)]
    struct Custom;

    #[async_trait]
    impl ImageHost for Custom {
        fn name(&self) -> &str {
            "custom"
        }
        fn handles(&self, link: &HostLink) -> bool {
            host_is(&link.page, "pixhost.to")
        }
        fn rewrite(&self, link: &HostLink) -> Option<Url> {
            absolute(&link.page, "/custom.jpg")
        }
        async fn resolve(&self, _: &HostLink, _: &PageFetcher) -> Result<Url, DownloadError> {
            Err(DownloadError::permanent("unused"))
        }
    }

    #[test]
    fn user_hosts_come_before_builtin_ones() {
        let mut hosts = ImageHosts::builtin();
        hosts.register(Custom);
        let link = link("https://pixhost.to/show/1/2.jpg", None);
        let host = hosts.find(&link).unwrap();
        assert_eq!(host.name(), "custom");
        assert!(hosts.knows(&link.page));
        assert!(!ImageHosts::empty().knows(&link.page));
    }
}
