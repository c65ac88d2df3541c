//! URLs found in forum pages: resolving `href`/`src` values against the
//! page, unwrapping the forums' redirect and image-proxy links, recognising
//! attachments, and telling a thread's id and page number from its URL.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use sha2::{Digest, Sha256};
use url::Url;

use super::parse::ThreadEngine;

/// How many redirect wrappers are unwrapped before giving up (a link to a
/// redirect of a redirect is plausible, a longer chain is not).
const MAX_UNWRAP: usize = 4;

/// File extensions served as images.
const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "gif", "webp", "bmp", "tif", "tiff", "avif", "heic", "jfif",
];
/// File extensions served as videos.
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "webm", "mov", "m4v", "mkv", "avi", "wmv", "flv"];

/// An `href` or `src` value from `base`, made absolute, with forum redirect
/// wrappers removed. `None` for empty values, fragments, `javascript:`,
/// `data:`, `mailto:` and anything else that is not http(s).
pub fn resolve_href(base: &Url, raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.starts_with('#') || raw.len() > 8192 {
        return None;
    }
    let url = base.join(raw).ok()?;
    let url = unwrap_redirects(url);
    is_fetchable(&url).then_some(url)
}

/// Whether a URL is http(s) with a host.
pub fn is_fetchable(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
}

/// Removes XenForo's `/goto/link-confirmation?url=<base64>`, `/redirect/?to=<base64>`,
/// the image proxy `proxy.php?image=<url>` and vBulletin's
/// `redirect-to/?redirect=<url>` wrappers, as long as they wrap an http(s) URL.
pub fn unwrap_redirects(mut url: Url) -> Url {
    for _ in 0..MAX_UNWRAP {
        match unwrap_once(&url) {
            Some(inner) if is_fetchable(&inner) => url = inner,
            _ => break,
        }
    }
    url
}

fn unwrap_once(url: &Url) -> Option<Url> {
    let path = url.path();
    let query = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let encoded = if path.ends_with("/link-confirmation") || path.ends_with("/link-confirmation/") {
        query("url")
    } else if path.ends_with("/redirect") || path.ends_with("/redirect/") {
        query("to")
    } else if path.ends_with("/proxy.php") || path.ends_with("/proxy") {
        return query("image")
            .or_else(|| query("link"))
            .and_then(|inner| Url::parse(&inner).ok());
    } else if path.contains("/redirect-to") {
        return query("redirect").and_then(|inner| Url::parse(&inner).ok());
    } else {
        None
    }?;
    // Some versions pass the URL itself rather than its base64 form.
    if let Ok(plain) = Url::parse(&encoded)
        && is_fetchable(&plain)
    {
        return Some(plain);
    }
    let decoded = decode_base64(&encoded)?;
    Url::parse(decoded.trim()).ok()
}

/// Decodes standard or URL-safe base64, padded or not, into UTF-8 text.
pub fn decode_base64(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = URL_SAFE_PAD_INDIFFERENT
        .decode(compact.as_bytes())
        .or_else(|_| STANDARD_PAD_INDIFFERENT.decode(compact.as_bytes()))
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The lower-cased extension of the URL's last path segment.
pub fn extension(url: &Url) -> Option<String> {
    let segment = url.path_segments()?.rfind(|s| !s.is_empty())?;
    let (_, ext) = segment.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5).then(|| ext.to_ascii_lowercase())
}

/// Whether the URL names an image file.
pub fn is_image_url(url: &Url) -> bool {
    extension(url).is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.as_str()))
}

/// Whether the URL names a video file.
pub fn is_video_url(url: &Url) -> bool {
    extension(url).is_some_and(|ext| VIDEO_EXTENSIONS.contains(&ext.as_str()))
}

/// The forum's id of an attachment link: XenForo `/attachments/<name>.<id>/`,
/// vBulletin `attachment.php?attachmentid=<id>`, phpBB `download/file.php?id=<id>`.
pub fn attachment_id(url: &Url) -> Option<String> {
    let path = url.path();
    if let Some(rest) = path.split("/attachments/").nth(1) {
        let name = rest.split('/').next().unwrap_or_default();
        let id = name.rsplit('.').next().unwrap_or(name);
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return Some(id.to_owned());
        }
        return None;
    }
    let key = if path.ends_with("attachment.php") {
        "attachmentid"
    } else if path.ends_with("/download/file.php") || path.ends_with("/file.php") {
        "id"
    } else {
        return None;
    };
    url.query_pairs()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// A forum's own page for one picture, which a post links a thumbnail to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaPage {
    /// XenForo Media Gallery `/media/<slug>.<id>/`: the full image is at
    /// `/media/<slug>.<id>/full`.
    XenForoMedia {
        /// The full image.
        full: Url,
    },
    /// A gallery or lightbox viewer page (vBulletin `showphoto.php`, IPS
    /// `/gallery/image/…`, `…/lightbox…`, photo album pages): the image is
    /// read from the page.
    Viewer,
}

/// What a link to `url` is when it is a forum's page for one picture.
pub fn media_page(url: &Url) -> Option<MediaPage> {
    let path = url.path().to_ascii_lowercase();
    // XenForo without friendly URLs puts the route in the query: `index.php?media/x.12/`.
    let route = if path.ends_with("/index.php") || path == "/" {
        url.query().unwrap_or_default().to_ascii_lowercase()
    } else {
        path.clone()
    };
    if let Some(rest) = route.split("media/").nth(1)
        && route
            .split("media/")
            .next()
            .is_some_and(|before| before.is_empty() || before.ends_with('/'))
    {
        let item = rest.split(['/', '&']).next().unwrap_or_default();
        let id = item.rsplit('.').next().unwrap_or_default();
        if item.contains('.') && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            let mut full = url.clone();
            if route == path {
                let base = url.path();
                let cut = base
                    .to_ascii_lowercase()
                    .find(item)
                    .map(|at| at + item.len());
                full.set_path(&format!("{}/full", &base[..cut?]));
                full.set_query(None);
            } else {
                let query = url.query().unwrap_or_default();
                let cut = query
                    .to_ascii_lowercase()
                    .find(item)
                    .map(|at| at + item.len());
                full.set_query(Some(&format!("{}/full", &query[..cut?])));
            }
            full.set_fragment(None);
            return Some(MediaPage::XenForoMedia { full });
        }
    }
    let viewer = path.ends_with("/showphoto.php")
        || path.contains("/gallery/image/")
        || path.contains("/photos/")
        || path.contains("lightbox")
        || url
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("lightbox"));
    viewer.then_some(MediaPage::Viewer)
}

/// A vBulletin or phpBB attachment link asking for the small version
/// (`attachment.php?attachmentid=7&thumb=1`, `file.php?id=7&t=1`) turned
/// into the link of the file itself; other URLs unchanged.
pub fn full_attachment(url: &Url) -> Url {
    if attachment_id(url).is_none() || url.path().contains("/attachments/") {
        return url.clone();
    }
    let mut full = url.clone();
    // The id parameter stays, so the query never ends up empty.
    drop_query_params(&mut full, |name| {
        matches!(name, "thumb" | "thumbnail" | "stc" | "t")
    });
    full
}

/// Removes the query parameters `unwanted` picks by name from `url`, and
/// the `?` with them when none are left.
pub(crate) fn drop_query_params(url: &mut Url, unwanted: impl Fn(&str) -> bool) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| !unwanted(name))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

/// A thread's identity: its id on the forum and the URL of its first page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadId {
    /// The forum's thread id when the URL shows one, otherwise a hash of the first page's URL.
    pub id: String,
    /// The thread URL without page number, fragment or post anchor.
    pub first_page: Url,
}

/// The thread a page URL belongs to: XenForo `/threads/<slug>.<id>/`,
/// vBulletin `showthread.php?t=<id>` or `/threads/<id>-<slug>`, phpBB
/// `viewtopic.php?t=<id>`; any other URL is identified by a hash.
pub fn thread_id(url: &Url) -> ThreadId {
    let mut first_page = url.clone();
    first_page.set_fragment(None);
    // Page markers in the path: XenForo `/page-3`, vBulletin `/page3`.
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.map(str::to_owned).collect())
        .unwrap_or_default();
    let kept: Vec<&str> = segments
        .iter()
        .map(String::as_str)
        .filter(|s| path_page_number(s).is_none())
        .collect();
    let had_trailing_slash = url.path().ends_with('/');
    let mut path = format!("/{}", kept.join("/"));
    if had_trailing_slash && !path.ends_with('/') {
        path.push('/');
    }
    first_page.set_path(&path);
    drop_query_params(&mut first_page, |key| {
        matches!(key, "page" | "start" | "p" | "postcount")
    });

    let query = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    };
    let from_path = || {
        let position = kept
            .iter()
            .position(|s| matches!(*s, "threads" | "thread" | "topic" | "showthread.php"))?;
        let segment = kept.get(position + 1)?;
        // `slug.123`, `123-slug` or `123`.
        let by_dot = segment.rsplit('.').next().filter(|id| is_digits(id));
        let by_dash = segment.split('-').next().filter(|id| is_digits(id));
        by_dot.or(by_dash).map(str::to_owned)
    };
    let from_vb_query = || {
        // `showthread.php?123-slug`
        let q = url.query()?;
        let first = q.split('&').next()?;
        let id = first.split('-').next()?;
        is_digits(id).then(|| id.to_owned())
    };
    let id = query("t")
        .or_else(|| query("threadid"))
        .or_else(from_path)
        .or_else(from_vb_query)
        .unwrap_or_else(|| short_hash(first_page.as_str()));
    ThreadId { id, first_page }
}

/// The forum software a thread URL's shape names, for recognising pasted
/// URLs: XenForo `/threads/<slug>.<id>/`, vBulletin `/threads/<id>-<slug>`
/// or `showthread.php?t=<id>` (`?<id>-<slug>`), phpBB `viewtopic.php?t=<id>`
/// (or `?p=<post>`). `None` for any other URL: the forum platform reads
/// any page, but only these shapes are surely threads.
pub fn thread_url_engine(url: &Url) -> Option<ThreadEngine> {
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let numeric = |name: &str| {
        url.query_pairs()
            .any(|(key, value)| key == name && is_digits(&value))
    };
    match segments.last() {
        Some(&"showthread.php") => {
            let vb_slug = url
                .query()
                .and_then(|q| q.split('&').next())
                .and_then(|first| first.split('-').next())
                .is_some_and(is_digits);
            return (numeric("t") || numeric("threadid") || vb_slug)
                .then_some(ThreadEngine::VBulletin);
        }
        Some(&"viewtopic.php") => {
            return (numeric("t") || numeric("p")).then_some(ThreadEngine::PhpBb);
        }
        _ => {}
    }
    let thread = segments.iter().position(|s| *s == "threads")?;
    let segment = segments.get(thread + 1)?;
    if is_digits(segment)
        || segment
            .rsplit_once('.')
            .is_some_and(|(_, id)| is_digits(id))
    {
        Some(ThreadEngine::XenForo)
    } else if segment.split_once('-').is_some_and(|(id, _)| is_digits(id)) {
        Some(ThreadEngine::VBulletin)
    } else {
        None
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `page-3` (XenForo) or `page3` (vBulletin) as a path segment.
fn path_page_number(segment: &str) -> Option<u64> {
    let rest = segment.strip_prefix("page")?;
    let digits = rest.strip_prefix('-').unwrap_or(rest);
    is_digits(digits).then(|| digits.parse().ok()).flatten()
}

/// Where a page sits in its thread: a page number (`/page-N`, `/pageN`,
/// `page=N`) or a post offset (`start=N`, phpBB). The first page is `Page(1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PagePosition {
    /// A page number, 1-based (`/page-N`, `/pageN`, `page=N`).
    Page(u64),
    /// The offset of the page's first post, 0 on the first page (phpBB `start=N`).
    Offset(u64),
}

/// The position of `url` within its thread.
pub fn page_position(url: &Url) -> PagePosition {
    if let Some(n) = url
        .path_segments()
        .and_then(|mut s| s.find_map(path_page_number))
    {
        return PagePosition::Page(n);
    }
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "page" if is_digits(&value) => {
                return PagePosition::Page(value.parse().unwrap_or(1));
            }
            "start" if is_digits(&value) => {
                return PagePosition::Offset(value.parse().unwrap_or(0));
            }
            _ => {}
        }
    }
    PagePosition::Page(1)
}

/// The first 12 hex digits of the SHA-256 of `text`: a short stable name.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..6])
}

#[cfg(test)]
mod tests {

    #[test]
    fn thread_urls_name_their_forum_software() {
        let cases = [
            (
                "https://forum.example/threads/some-title.4567/",
                Some(ThreadEngine::XenForo),
            ),
            (
                "https://f.example/community/threads/a.1/page-3#post-9",
                Some(ThreadEngine::XenForo),
            ),
            (
                "https://f.example/threads/321-a-title/page2",
                Some(ThreadEngine::VBulletin),
            ),
            (
                "https://f.example/showthread.php?t=88&page=4",
                Some(ThreadEngine::VBulletin),
            ),
            (
                "https://f.example/showthread.php?123-a-title",
                Some(ThreadEngine::VBulletin),
            ),
            (
                "https://f.example/forum/viewtopic.php?f=2&t=55",
                Some(ThreadEngine::PhpBb),
            ),
            (
                "https://f.example/viewtopic.php?p=901",
                Some(ThreadEngine::PhpBb),
            ),
            ("https://f.example/viewtopic.php?f=2", None),
            ("https://f.example/showthread.php", None),
            ("https://f.example/threads/", None),
            ("https://f.example/threads/popular", None),
            ("https://www.threads.net/@someone", None),
            ("https://f.example/forums/general.2/", None),
        ];
        for (text, expected) in cases {
            assert_eq!(thread_url_engine(&url(text)), expected, "{text}");
        }
    }
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn refuses_links_that_are_not_http() {
        let base = url("https://forum.example/threads/a.1/");
        for bad in [
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "mailto:a@b.c",
            "#post-3",
            "",
            "   ",
            "ftp://x.example/a.jpg",
        ] {
            assert_eq!(resolve_href(&base, bad), None, "{bad}");
        }
        assert_eq!(
            resolve_href(&base, "//cdn.example/a.jpg").unwrap().as_str(),
            "https://cdn.example/a.jpg"
        );
        assert_eq!(
            resolve_href(&base, "../../data/x.jpg").unwrap().as_str(),
            "https://forum.example/data/x.jpg"
        );
    }

    #[test]
    fn unwraps_xenforo_redirects_and_the_image_proxy() {
        let base = url("https://forum.example/threads/a.1/");
        let target = "https://pixhost.to/show/1/2_a.jpg";
        let b64 = base64::engine::general_purpose::STANDARD.encode(target);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(target);
        for href in [
            format!("/goto/link-confirmation?url={b64}"),
            format!("/goto/link-confirmation?url={b64url}"),
            format!("/redirect/?to={}", b64.replace('=', "%3D")),
            format!("/proxy.php?image={}&hash=abc", urlencode(target)),
            format!("/redirect-to/?redirect={}", urlencode(target)),
        ] {
            assert_eq!(
                resolve_href(&base, &href).map(String::from).as_deref(),
                Some(target),
                "{href}"
            );
        }
        // A wrapper around something that is not http stays the wrapper.
        let js = base64::engine::general_purpose::STANDARD.encode("javascript:alert(1)");
        let wrapped = resolve_href(&base, &format!("/redirect/?to={js}")).unwrap();
        assert_eq!(wrapped.path(), "/redirect/");
    }

    fn urlencode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn recognises_the_forums_own_picture_pages() {
        for (link, full) in [
            (
                "https://f.example/media/beach-jpg.12/",
                Some("https://f.example/media/beach-jpg.12/full"),
            ),
            (
                "https://f.example/community/media/beach.12/?lightbox=1#x",
                Some("https://f.example/community/media/beach.12/full"),
            ),
            (
                "https://f.example/index.php?media/beach-jpg.12/",
                Some("https://f.example/index.php?media/beach-jpg.12/full"),
            ),
        ] {
            assert_eq!(
                media_page(&url(link)),
                full.map(|full| MediaPage::XenForoMedia { full: url(full) }),
                "{link}"
            );
        }
        for viewer in [
            "https://f.example/showphoto.php?photo=77",
            "https://f.example/gallery/image/33-sunset/",
            "https://f.example/album/lightbox/9",
            "https://f.example/photos/9/",
            "https://f.example/view?id=9&lightbox=1",
        ] {
            assert_eq!(
                media_page(&url(viewer)),
                Some(MediaPage::Viewer),
                "{viewer}"
            );
        }
        for other in [
            "https://f.example/media/",
            "https://f.example/media/albums/",
            "https://f.example/threads/beach.12/",
            "https://f.example/members/alice.3/",
            "https://f.example/social-media/x.1/",
        ] {
            assert_eq!(media_page(&url(other)), None, "{other}");
        }
    }

    #[test]
    fn attachment_thumbnails_become_the_file() {
        for (link, full) in [
            (
                "https://f.example/attachment.php?attachmentid=77&thumb=1&d=1",
                "https://f.example/attachment.php?attachmentid=77&d=1",
            ),
            (
                "https://f.example/download/file.php?id=5&t=1",
                "https://f.example/download/file.php?id=5",
            ),
            (
                "https://f.example/attachments/beach-jpg.12/",
                "https://f.example/attachments/beach-jpg.12/",
            ),
            (
                "https://f.example/a.jpg?thumb=1",
                "https://f.example/a.jpg?thumb=1",
            ),
        ] {
            assert_eq!(full_attachment(&url(link)).as_str(), full, "{link}");
        }
    }

    #[test]
    fn recognises_attachments_of_each_engine() {
        for (link, id) in [
            (
                "https://f.example/attachments/beach-jpg.12345/",
                Some("12345"),
            ),
            (
                "https://f.example/attachment.php?attachmentid=77&d=1",
                Some("77"),
            ),
            ("https://f.example/download/file.php?id=9", Some("9")),
            ("https://f.example/attachments/not-an-id/", None),
            ("https://f.example/images/a.jpg", None),
        ] {
            assert_eq!(attachment_id(&url(link)).as_deref(), id, "{link}");
        }
    }

    #[test]
    fn thread_ids_and_first_pages() {
        for (page, id, first) in [
            (
                "https://f.example/threads/some-title.4567/page-3#post-9",
                "4567",
                "https://f.example/threads/some-title.4567",
            ),
            (
                "https://f.example/threads/some-title.4567/page-3/",
                "4567",
                "https://f.example/threads/some-title.4567/",
            ),
            (
                "https://f.example/showthread.php?t=88&page=4",
                "88",
                "https://f.example/showthread.php?t=88",
            ),
            (
                "https://f.example/threads/321-a-title/page2",
                "321",
                "https://f.example/threads/321-a-title",
            ),
            (
                "https://f.example/viewtopic.php?f=2&t=55&start=30",
                "55",
                "https://f.example/viewtopic.php?f=2&t=55",
            ),
        ] {
            let got = thread_id(&url(page));
            assert_eq!(got.id, id, "{page}");
            assert_eq!(got.first_page.as_str(), first, "{page}");
        }
        let other = thread_id(&url("https://f.example/some/board"));
        assert_eq!(other.id.len(), 12);
    }

    #[test]
    fn page_positions() {
        assert_eq!(
            page_position(&url("https://f.example/threads/a.1/page-7")),
            PagePosition::Page(7)
        );
        assert_eq!(
            page_position(&url("https://f.example/threads/1-a/page12")),
            PagePosition::Page(12)
        );
        assert_eq!(
            page_position(&url("https://f.example/showthread.php?t=1&page=3")),
            PagePosition::Page(3)
        );
        assert_eq!(
            page_position(&url("https://f.example/viewtopic.php?t=1&start=50")),
            PagePosition::Offset(50)
        );
        assert_eq!(
            page_position(&url("https://f.example/threads/a.1/")),
            PagePosition::Page(1)
        );
    }

    #[test]
    fn image_and_video_extensions() {
        assert!(is_image_url(&url("https://x.example/a/B.JPG")));
        assert!(is_video_url(&url("https://x.example/v.mp4?x=1")));
        assert!(!is_image_url(&url("https://x.example/show/1")));
    }
}
