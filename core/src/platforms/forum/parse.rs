//! Thread pages into owned data: which forum software made the page, its
//! posts (id, author, date) with the media each links to, the thread title,
//! the next page, and whether the page is a login wall.
//!
//! Everything here is synchronous and returns owned values: scraper's
//! `Html` is not `Send`, so it never crosses an `.await`.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use scraper::{ElementRef, Html, Selector};
use serde_json::Value;
use url::Url;

use super::links::{
    PagePosition, attachment_id, is_fetchable, is_image_url, is_video_url, page_position,
    resolve_href, thread_id,
};

/// Longest thread title kept; longer ones are cut (they become file and folder names).
const MAX_TITLE_CHARS: usize = 300;
/// Images declared at most this wide or high are icons, smilies or spacers.
const ICON_MAX_PIXELS: u32 = 48;
/// In the generic fallback, an image not wrapped in a link counts when it
/// is declared at least this large (or declares no size at all).
const GENERIC_LONE_MIN_PIXELS: u32 = 300;

/// The forum software a page comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadEngine {
    /// A XenForo forum (`article.message` posts).
    XenForo,
    /// A vBulletin forum.
    VBulletin,
    /// A phpBB forum.
    PhpBb,
    /// Any other page: anchors around images and lone large images.
    Generic,
}

impl ThreadEngine {
    /// A short stable name (metadata, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XenForo => "xenforo",
            Self::VBulletin => "vbulletin",
            Self::PhpBb => "phpbb",
            Self::Generic => "generic",
        }
    }
}

/// What one thread page holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadPage {
    /// The forum software recognised on the page.
    pub engine: ThreadEngine,
    /// The thread's title (JSON-LD, then the page's heading, then `<title>`).
    pub title: Option<String>,
    /// The thread's start date from JSON-LD, when the page has it.
    pub published_at: Option<DateTime<Utc>>,
    /// Posts in page order.
    pub posts: Vec<Post>,
    /// The next page of the thread, if any.
    pub next_page: Option<Url>,
    /// Why this page is a login wall (a login form instead of posts, a
    /// placeholder shown to guests); `None` for a normal page.
    pub login_wall: Option<String>,
}

/// One post and the media in it (quotes and signatures left out).
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// The forum's post id; `page` for the generic fallback's single pseudo-post.
    pub id: String,
    /// The poster's name, when the page shows it.
    pub author: Option<String>,
    /// When the post was made, when the page says.
    pub posted_at: Option<DateTime<Utc>>,
    /// The media the post links to or shows, in document order.
    pub media: Vec<MediaLink>,
}

/// A piece of media a post links to or shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLink {
    /// How the link becomes a file URL.
    pub kind: MediaKind,
    /// The file, the attachment or the page to resolve.
    pub target: Url,
    /// The thumbnail the post shows for it, if any.
    pub thumbnail: Option<Url>,
}

/// How a [`MediaLink`] is turned into a file URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An image file: fetched as it is (or rewritten by a host that knows its thumbnails).
    Image,
    /// A video file.
    Video,
    /// A forum attachment (may need a logged-in session).
    Attachment,
    /// A page on an image host, or any other page: resolved to its image.
    Page,
}

impl MediaLink {
    /// What identifies this media within a post, for de-duplication and archive keys:
    /// an attachment's id, otherwise the target without its fragment.
    pub fn identity(&self) -> String {
        if self.kind == MediaKind::Attachment
            && let Some(id) = attachment_id(&self.target)
        {
            return format!("attachment:{id}");
        }
        let mut target = self.target.clone();
        target.set_fragment(None);
        target.into()
    }
}

fn selector(css: &str) -> Selector {
    // Only called with the literals below; a typo is caught by every test.
    Selector::parse(css).unwrap_or_else(|err| panic!("invalid built-in selector {css:?}: {err}"))
}

macro_rules! selectors {
    ($($name:ident = $css:expr;)*) => {
        $(static $name: LazyLock<Selector> = LazyLock::new(|| selector($css));)*
    };
}

selectors! {
    XF_POST = "article.message[data-content^=\"post-\"]";
    XF_BODY = ".message-body .bbWrapper, .message-content .bbWrapper, .bbWrapper";
    XF_TIME = ".message-attribution time, time.u-dt";
    XF_ATTACHMENTS = ".message-attachments a[href], .attachmentList a[href]";
    XF_SKIP = "blockquote, .bbCodeBlock--quote, .message-signature, script, style, noscript, template";
    XF_TITLE = "h1.p-title-value";
    XF_NEXT = "a.pageNav-jump--next";
    VB_GENERATOR = "meta[name=\"generator\"][content^=\"vBulletin\"]";
    VB_BODY = "div[id^=\"post_message_\"]";
    VB_TD_BODY = "td[id^=\"td_post_\"]";
    VB_AUTHOR = "a.username, a.bigusername, .username, .popupmenu a.siteicon_profile";
    VB_DATE = "span.date, span.postdate, .postdate, td.thead";
    VB_ATTACHMENTS = "a[href*=\"attachment.php\"]";
    VB_SKIP = ".bbcode_container, .bbcode_quote, .quote_container, .signature, .signaturecontainer, td.alt2, script, style, noscript";
    VB_TITLE = "span.threadtitle";
    VB_NAVBAR_TITLE = "td.navbar strong";
    VB_NEXT = "a[rel=\"next\"], a[title^=\"Next Page\"]";
    PHPBB_ROOT = "body#phpbb";
    PHPBB_POST = "div.post[id^=\"p\"]";
    PHPBB_BODY = "div.content";
    PHPBB_ATTACHBOX = ".attachbox";
    PHPBB_AUTHOR = ".author .username, .author .username-coloured, p.author strong a, .author a[href*=\"mode=viewprofile\"]";
    PHPBB_TIME = ".author time, p.author";
    PHPBB_SKIP = "blockquote, .signature, script, style, noscript";
    PHPBB_TITLE = "h2.topic-title, h2 a, h2";
    PHPBB_NEXT = ".pagination li.next a, .pagination a[rel=\"next\"], a.right-box[rel=\"next\"]";
    GENERIC_BODY = "body";
    GENERIC_SKIP = "header, footer, nav, script, style, noscript, .signature, aside";
    GENERIC_TITLE = "meta[property=\"og:title\"]";
    H1 = "h1";
    TITLE = "title";
    BASE = "base[href]";
    REL_NEXT = "link[rel=\"next\"], a[rel=\"next\"]";
    ANCHOR = "a[href]";
    IMG = "img";
    JSON_LD = "script[type=\"application/ld+json\"]";
    PASSWORD = "input[type=\"password\"]";
    VIDEO_SOURCE = "source";
    OG_IMAGE = "meta[property=\"og:image\"], meta[name=\"twitter:image\"]";
}

/// Parses one thread page fetched from `url`.
pub fn parse_thread_page(html: &str, url: &Url) -> ThreadPage {
    let doc = Html::parse_document(html);
    // `<base href>` (vBulletin 4 sets it) decides what relative links mean.
    let base = doc
        .select(&BASE)
        .find_map(|b| b.attr("href"))
        .and_then(|href| url.join(href.trim()).ok())
        .filter(is_fetchable)
        .unwrap_or_else(|| url.clone());
    let base = &base;
    let engine = detect_engine(&doc);
    let mut guest_placeholder = false;
    let posts = match engine {
        ThreadEngine::XenForo => xenforo_posts(&doc, base, &mut guest_placeholder),
        ThreadEngine::VBulletin => vbulletin_posts(&doc, base, &mut guest_placeholder),
        ThreadEngine::PhpBb => phpbb_posts(&doc, base, &mut guest_placeholder),
        ThreadEngine::Generic => Vec::new(),
    };
    let has_password_form = doc.select(&PASSWORD).next().is_some();
    let (engine, posts) = if posts.is_empty() && !has_password_form {
        // No posts in the engine's markup: take what any page offers.
        let posts = generic_posts(&doc, base, &mut guest_placeholder);
        let engine = if posts.is_empty() {
            engine
        } else {
            ThreadEngine::Generic
        };
        (engine, posts)
    } else {
        (engine, posts)
    };
    let login_wall = if guest_placeholder {
        Some(
            "the forum shows guests a placeholder instead of the media (notregistered): \
             log in with credentials or a cookies file"
                .to_owned(),
        )
    } else if has_password_form
        && posts.iter().all(|p| p.media.is_empty())
        && !looks_like_thread(&doc, engine)
    {
        Some("the page asks to log in (a login form instead of the thread)".to_owned())
    } else {
        None
    };
    let json_ld = json_ld(&doc);
    let title = json_ld
        .title
        .or_else(|| engine_title(&doc, engine))
        .map(|t| clean_text(&t, MAX_TITLE_CHARS))
        .filter(|t| !t.is_empty());
    let mut posts = posts;
    if let (Some(first), Some(date)) = (posts.first_mut(), json_ld.published_at)
        && first.posted_at.is_none()
        && page_position(url) == PagePosition::Page(1)
    {
        first.posted_at = Some(date);
    }
    ThreadPage {
        engine,
        title,
        published_at: json_ld.published_at,
        posts,
        next_page: next_page(&doc, url, base, engine),
        login_wall,
    }
}

/// Whether the page still shows thread posts (a quick-reply or login box
/// next to posts is not a wall).
fn looks_like_thread(doc: &Html, engine: ThreadEngine) -> bool {
    match engine {
        ThreadEngine::XenForo => doc.select(&XF_POST).next().is_some(),
        ThreadEngine::VBulletin => {
            doc.select(&VB_BODY).next().is_some() || doc.select(&VB_TD_BODY).next().is_some()
        }
        ThreadEngine::PhpBb => doc.select(&PHPBB_POST).next().is_some(),
        ThreadEngine::Generic => false,
    }
}

fn detect_engine(doc: &Html) -> ThreadEngine {
    // The root element first: one check instead of a walk over the page.
    let root = doc.root_element();
    let xf_root = root.value().name() == "html" && root.value().id() == Some("XF");
    if xf_root || doc.select(&XF_POST).next().is_some() {
        ThreadEngine::XenForo
    } else if doc.select(&VB_GENERATOR).next().is_some()
        || doc.select(&VB_BODY).next().is_some()
        || doc.select(&VB_TD_BODY).next().is_some()
    {
        ThreadEngine::VBulletin
    } else if doc.select(&PHPBB_ROOT).next().is_some() || doc.select(&PHPBB_POST).next().is_some() {
        ThreadEngine::PhpBb
    } else {
        ThreadEngine::Generic
    }
}

// ---------------------------------------------------------------- XenForo

fn xenforo_posts(doc: &Html, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    let mut posts = Vec::new();
    for article in doc.select(&XF_POST) {
        let Some(id) = article
            .attr("data-content")
            .and_then(|c| c.strip_prefix("post-"))
            .map(str::trim)
            .filter(|id| !id.is_empty())
        else {
            continue;
        };
        let mut collector = Collector::new(base, &XF_SKIP, None);
        if let Some(body) = article.select(&XF_BODY).next() {
            collector.walk(body);
        }
        for link in article.select(&XF_ATTACHMENTS) {
            collector.anchor(link);
        }
        *placeholder |= collector.guest_placeholder;
        posts.push(Post {
            id: id.to_owned(),
            author: article
                .attr("data-author")
                .map(|a| clean_text(a, 200))
                .filter(|a| !a.is_empty()),
            posted_at: article.select(&XF_TIME).find_map(element_time),
            media: collector.finish(),
        });
    }
    posts
}

// ------------------------------------------------------------- vBulletin

fn vbulletin_posts(doc: &Html, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    let mut bodies: Vec<(String, ElementRef)> = doc
        .select(&VB_BODY)
        .filter_map(|el| {
            let id = el.attr("id")?.strip_prefix("post_message_")?;
            is_post_id(id).then(|| (id.to_owned(), el))
        })
        .collect();
    if bodies.is_empty() {
        bodies = doc
            .select(&VB_TD_BODY)
            .filter_map(|el| {
                let id = el.attr("id")?.strip_prefix("td_post_")?;
                is_post_id(id).then(|| (id.to_owned(), el))
            })
            .collect();
    }
    let mut seen = HashSet::new();
    let mut posts = Vec::new();
    for (id, body) in bodies {
        if !seen.insert(id.clone()) {
            continue;
        }
        let container = vb_container(body, &id);
        let mut collector = Collector::new(base, &VB_SKIP, None);
        collector.walk(body);
        if let Some(container) = container {
            for link in container.select(&VB_ATTACHMENTS) {
                if !is_inside(link, &VB_SKIP, container) {
                    collector.anchor(link);
                }
            }
        }
        *placeholder |= collector.guest_placeholder;
        let author = container
            .and_then(|c| c.select(&VB_AUTHOR).next())
            .map(|a| clean_text(&a.text().collect::<String>(), 200))
            .filter(|a| !a.is_empty());
        let posted_at = container.and_then(|c| c.select(&VB_DATE).find_map(element_time));
        posts.push(Post {
            id,
            author,
            posted_at,
            media: collector.finish(),
        });
    }
    posts
}

/// The element holding a vBulletin post's header (author, date): `li#post_N`
/// (vB4), `table#postN` or `div#editN` (vB3).
fn vb_container<'a>(body: ElementRef<'a>, id: &str) -> Option<ElementRef<'a>> {
    let wanted = [
        format!("post_{id}"),
        format!("post{id}"),
        format!("edit{id}"),
    ];
    body.ancestors()
        .filter_map(ElementRef::wrap)
        .find(|el| el.attr("id").is_some_and(|i| wanted.iter().any(|w| w == i)))
}

fn is_post_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `el` sits inside an element matching `skip`, below `scope`.
fn is_inside(el: ElementRef, skip: &Selector, scope: ElementRef) -> bool {
    for ancestor in el.ancestors().filter_map(ElementRef::wrap) {
        if ancestor.id() == scope.id() {
            return false;
        }
        if skip.matches(&ancestor) {
            return true;
        }
    }
    false
}

// ----------------------------------------------------------------- phpBB

fn phpbb_posts(doc: &Html, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    let mut posts = Vec::new();
    for post in doc.select(&PHPBB_POST) {
        let Some(id) = post
            .attr("id")
            .and_then(|i| i.strip_prefix('p'))
            .filter(|i| is_post_id(i))
        else {
            continue;
        };
        let mut collector = Collector::new(base, &PHPBB_SKIP, None);
        if let Some(body) = post.select(&PHPBB_BODY).next() {
            collector.walk(body);
        }
        for attachbox in post.select(&PHPBB_ATTACHBOX) {
            collector.walk(attachbox);
        }
        *placeholder |= collector.guest_placeholder;
        posts.push(Post {
            id: id.to_owned(),
            author: post
                .select(&PHPBB_AUTHOR)
                .next()
                .map(|a| clean_text(&a.text().collect::<String>(), 200))
                .filter(|a| !a.is_empty()),
            posted_at: post.select(&PHPBB_TIME).find_map(element_time),
            media: collector.finish(),
        });
    }
    posts
}

// --------------------------------------------------------------- generic

fn generic_posts(doc: &Html, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    let mut collector = Collector::new(base, &GENERIC_SKIP, Some(GENERIC_LONE_MIN_PIXELS));
    match doc.select(&GENERIC_BODY).next() {
        Some(body) => collector.walk(body),
        None => collector.walk(doc.root_element()),
    }
    *placeholder |= collector.guest_placeholder;
    let media = collector.finish();
    if media.is_empty() {
        return Vec::new();
    }
    vec![Post {
        id: "page".to_owned(),
        author: None,
        posted_at: None,
        media,
    }]
}

// ------------------------------------------------------- media collection

/// Gathers the media of one post body in document order, skipping
/// quotes, signatures and decorations, without recursion (deeply nested
/// markup cannot overflow the stack).
struct Collector<'a> {
    base: &'a Url,
    skip: &'a Selector,
    /// `Some(n)`: lone images count only when declared at least `n` pixels
    /// (or undeclared); `None`: every non-decoration image counts.
    lone_min_pixels: Option<u32>,
    media: Vec<MediaLink>,
    seen: HashSet<String>,
    guest_placeholder: bool,
}

impl<'a> Collector<'a> {
    fn new(base: &'a Url, skip: &'a Selector, lone_min_pixels: Option<u32>) -> Self {
        Self {
            base,
            skip,
            lone_min_pixels,
            media: Vec::new(),
            seen: HashSet::new(),
            guest_placeholder: false,
        }
    }

    fn finish(self) -> Vec<MediaLink> {
        self.media
    }

    fn push(&mut self, link: MediaLink) {
        if self.seen.insert(link.identity()) {
            self.media.push(link);
        }
    }

    fn walk(&mut self, root: ElementRef) {
        let mut stack: Vec<ElementRef> = root.child_elements().collect();
        stack.reverse();
        if root.value().name() == "img" || root.value().name() == "a" {
            stack.push(root);
        }
        while let Some(el) = stack.pop() {
            if self.skip.matches(&el) {
                continue;
            }
            match el.value().name() {
                "a" if el.attr("href").is_some() => {
                    self.anchor(el);
                    // Videos inside links are rare but real; images were handled.
                    for video in el
                        .descendent_elements()
                        .filter(|e| e.value().name() == "video")
                    {
                        self.video(video);
                    }
                    continue;
                }
                "img" => {
                    self.lone_image(el);
                    continue;
                }
                "video" => {
                    self.video(el);
                    continue;
                }
                "iframe" | "object" | "embed" | "svg" | "select" | "textarea" => continue,
                _ => {}
            }
            let first_child = stack.len();
            stack.extend(el.child_elements());
            stack[first_child..].reverse();
        }
    }

    /// A link, with or without a thumbnail inside.
    fn anchor(&mut self, anchor: ElementRef) {
        let target = anchor.attr("href").and_then(|h| resolve_href(self.base, h));
        let thumbnail_found = anchor
            .descendent_elements()
            .filter(|e| e.value().name() == "img")
            .find_map(|img| usable_image(img, self.base).map(|source| (img, source)));
        let thumbnail_img = thumbnail_found.as_ref().map(|(img, _)| *img);
        let thumbnail = thumbnail_found.map(|(_, source)| source);
        let Some(target) = target else {
            // `javascript:` lightboxes and the like: the image itself is what there is.
            if let Some(img) = thumbnail_img {
                self.lone_image(img);
            }
            return;
        };
        if self.is_guest_placeholder(&target) {
            return;
        }
        let kind = if attachment_id(&target).is_some() {
            MediaKind::Attachment
        } else if is_image_url(&target) {
            MediaKind::Image
        } else if is_video_url(&target) {
            MediaKind::Video
        } else if thumbnail.is_some() && same_site(&target, self.base) {
            // A thumbnail linking elsewhere in the forum (a profile, another
            // thread): the picture is the media, not the link.
            if let Some(img) = thumbnail_img {
                self.lone_image(img);
            }
            return;
        } else if thumbnail.is_none() && same_site(&target, self.base) {
            // A plain link inside the forum is navigation, not media.
            return;
        } else {
            MediaKind::Page
        };
        self.push(MediaLink {
            kind,
            target,
            thumbnail,
        });
    }

    /// An image not wrapped in a link.
    fn lone_image(&mut self, img: ElementRef) {
        let Some(source) = usable_image(img, self.base) else {
            return;
        };
        if self.is_guest_placeholder(&source) {
            return;
        }
        if let Some(min) = self.lone_min_pixels {
            let declared = declared_size(img);
            let large = match declared {
                (Some(w), Some(h)) => w.max(h) >= min,
                (Some(d), None) | (None, Some(d)) => d >= min,
                (None, None) => is_image_url(&source),
            };
            if !large {
                return;
            }
        }
        let kind = if attachment_id(&source).is_some() {
            MediaKind::Attachment
        } else {
            MediaKind::Image
        };
        self.push(MediaLink {
            kind,
            target: source,
            thumbnail: None,
        });
    }

    fn video(&mut self, video: ElementRef) {
        let mut sources: Vec<&str> = Vec::new();
        for attr in ["src", "data-src"] {
            sources.extend(video.attr(attr));
        }
        for source in video.select(&VIDEO_SOURCE) {
            for attr in ["src", "data-src"] {
                sources.extend(source.attr(attr));
            }
        }
        // One file per <video>: the first usable source (the others are other encodings).
        for raw in sources {
            if let Some(url) = resolve_href(self.base, raw) {
                if self.is_guest_placeholder(&url) {
                    return;
                }
                self.push(MediaLink {
                    kind: MediaKind::Video,
                    target: url,
                    thumbnail: None,
                });
                return;
            }
        }
    }

    /// XenForo's `notregistered.mp4` (and look-alikes) stand in for media guests may not see.
    fn is_guest_placeholder(&mut self, url: &Url) -> bool {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let placeholder = name.starts_with("notregistered") || name.starts_with("not_registered");
        self.guest_placeholder |= placeholder;
        placeholder
    }
}

/// The best address of an image: the original behind XenForo's proxy
/// (`data-url`), a lazy-loaded source, then `src`.
fn image_source(img: ElementRef, base: &Url) -> Option<Url> {
    [
        "data-url",
        "data-src",
        "data-original",
        "data-lazy-src",
        "src",
    ]
    .iter()
    .filter_map(|attr| img.attr(attr))
    .find_map(|raw| resolve_href(base, raw))
}

/// The image's address unless it is a smilie, avatar, icon or spacer.
fn usable_image(img: ElementRef, base: &Url) -> Option<Url> {
    const CLASSES: &[&str] = &[
        "smilie",
        "smiley",
        "smilies",
        "emoji",
        "avatar",
        "icon",
        "inlineimg",
        "reaction",
    ];
    const PATHS: &[&str] = &[
        "/smilies/",
        "/smiley",
        "/emoji",
        "/emoticons/",
        "/avatars/",
        "/avatar/",
        "/styles/",
        "/images/icons/",
        "/images/misc/",
        "/images/buttons/",
        "/images/statusicon/",
        "/images/ranks/",
        "/images/reputation/",
        "/upload_icons/",
        "spacer.gif",
        "clear.gif",
        "pixel.gif",
    ];
    let element = img.value();
    if element.attr("data-smilie").is_some() || element.attr("data-shortname").is_some() {
        return None;
    }
    if element.classes().any(|class| {
        let class = class.to_ascii_lowercase();
        CLASSES.iter().any(|c| class.contains(c))
    }) {
        return None;
    }
    if let (w, h) = declared_size(img)
        && (w.is_some_and(|w| w <= ICON_MAX_PIXELS) || h.is_some_and(|h| h <= ICON_MAX_PIXELS))
    {
        return None;
    }
    let source = image_source(img, base)?;
    let path = source.path().to_ascii_lowercase();
    (!PATHS.iter().any(|p| path.contains(p))).then_some(source)
}

/// `width` and `height` attributes when they are plain pixel numbers.
fn declared_size(img: ElementRef) -> (Option<u32>, Option<u32>) {
    let read = |name: &str| {
        img.attr(name)
            .map(|v| v.trim().trim_end_matches("px"))
            .and_then(|v| v.parse::<u32>().ok())
    };
    (read("width"), read("height"))
}

/// Same host (ignoring `www.`) and port: the same site.
fn same_site(a: &Url, b: &Url) -> bool {
    let strip = |h: &str| h.strip_prefix("www.").unwrap_or(h).to_ascii_lowercase();
    match (a.host_str(), b.host_str()) {
        (Some(x), Some(y)) => {
            strip(x) == strip(y) && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

// ---------------------------------------------------------- titles, dates

fn engine_title(doc: &Html, engine: ThreadEngine) -> Option<String> {
    let heading = match engine {
        ThreadEngine::XenForo => first_text(doc, &XF_TITLE),
        ThreadEngine::VBulletin => first_text(doc, &VB_TITLE)
            .or_else(|| first_text(doc, &VB_NAVBAR_TITLE))
            .or_else(|| first_text(doc, &H1)),
        ThreadEngine::PhpBb => first_text(doc, &PHPBB_TITLE),
        ThreadEngine::Generic => doc
            .select(&GENERIC_TITLE)
            .find_map(|m| m.attr("content").map(str::to_owned))
            .or_else(|| first_text(doc, &H1)),
    };
    heading.or_else(|| first_text(doc, &TITLE))
}

fn first_text(doc: &Html, selector: &Selector) -> Option<String> {
    doc.select(selector)
        .map(|el| clean_text(&el.text().collect::<String>(), MAX_TITLE_CHARS))
        .find(|t| !t.is_empty())
}

/// Whitespace collapsed and trimmed, cut at `max_chars`.
fn clean_text(text: &str, max_chars: usize) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max_chars)
        .collect()
}

/// A date from `data-time` (Unix seconds), `datetime` or the element's text.
fn element_time(el: ElementRef) -> Option<DateTime<Utc>> {
    if let Some(seconds) = el
        .attr("data-time")
        .and_then(|t| t.trim().parse::<i64>().ok())
        && let Some(at) = DateTime::from_timestamp(seconds, 0)
    {
        return Some(at);
    }
    if let Some(at) = el.attr("datetime").and_then(parse_date) {
        return Some(at);
    }
    let text = clean_text(&el.text().collect::<String>(), 200);
    // phpBB 3.0: "by author » Sun Jan 15, 2023 10:30 am".
    let text = text.rsplit('»').next().unwrap_or(&text).trim().to_owned();
    parse_date(&text)
}

/// The date formats forums print (RFC 3339, XenForo's `+0000`, vBulletin's
/// and phpBB's defaults); times without a zone are taken as UTC.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text.len() > 100 {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(at.with_timezone(&Utc));
    }
    const NAIVE: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d, %H:%M",
        "%m-%d-%Y, %I:%M %p",
        "%m-%d-%Y %I:%M %p",
        "%d-%m-%Y, %H:%M",
        "%d.%m.%Y, %H:%M",
        "%d/%m/%Y, %H:%M",
        "%a %b %d, %Y %I:%M %p",
        "%a %b %d, %Y %H:%M",
        "%b %d, %Y %I:%M %p",
        "%b %d, %Y, %I:%M %p",
        "%B %d, %Y, %I:%M %p",
        "%d %b %Y %H:%M",
    ];
    NAIVE
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| Utc.from_utc_datetime(&naive))
}

#[derive(Default)]
struct JsonLd {
    title: Option<String>,
    published_at: Option<DateTime<Utc>>,
}

/// The thread's headline and start date from `DiscussionForumPosting` JSON-LD.
fn json_ld(doc: &Html) -> JsonLd {
    let mut found = JsonLd::default();
    for script in doc.select(&JSON_LD) {
        let text: String = script.text().collect();
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let mut pending = vec![&value];
        let mut visited = 0;
        while let Some(value) = pending.pop() {
            visited += 1;
            if visited > 1000 {
                break;
            }
            match value {
                Value::Array(items) => pending.extend(items.iter()),
                Value::Object(map) => {
                    let kind = map.get("@type").and_then(Value::as_str).unwrap_or_default();
                    if matches!(
                        kind,
                        "DiscussionForumPosting" | "Article" | "SocialMediaPosting"
                    ) {
                        if found.title.is_none() {
                            found.title = map
                                .get("headline")
                                .or_else(|| map.get("name"))
                                .and_then(Value::as_str)
                                .map(str::to_owned);
                        }
                        if found.published_at.is_none() {
                            found.published_at = map
                                .get("datePublished")
                                .and_then(Value::as_str)
                                .and_then(parse_date);
                        }
                    }
                    if let Some(graph) = map.get("@graph") {
                        pending.push(graph);
                    }
                    if let Some(main) = map.get("mainEntity") {
                        pending.push(main);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

// ------------------------------------------------------------ next page

fn next_page(doc: &Html, url: &Url, base: &Url, engine: ThreadEngine) -> Option<Url> {
    let specific: Option<&Selector> = match engine {
        ThreadEngine::XenForo => Some(&XF_NEXT),
        ThreadEngine::VBulletin => Some(&VB_NEXT),
        ThreadEngine::PhpBb => Some(&PHPBB_NEXT),
        ThreadEngine::Generic => None,
    };
    let current = without_fragment(url);
    let candidates = specific
        .into_iter()
        .chain(std::iter::once(&*REL_NEXT))
        .flat_map(|selector| doc.select(selector))
        .filter_map(|el| el.attr("href"))
        .filter_map(|href| resolve_href(base, href))
        .map(|u| without_fragment(&u));
    for candidate in candidates {
        if candidate != current && same_site(&candidate, url) {
            return Some(candidate);
        }
    }
    next_by_number(doc, url, base)
}

/// The closest later page among the links of the same thread, for pages
/// without `rel="next"` or a recognised "next" button.
fn next_by_number(doc: &Html, url: &Url, base: &Url) -> Option<Url> {
    let thread = thread_id(url).id;
    let here = page_position(url);
    doc.select(&ANCHOR)
        .filter_map(|a| a.attr("href"))
        .filter_map(|href| resolve_href(base, href))
        .filter(|u| same_site(u, url) && is_fetchable(u))
        .filter_map(|u| {
            let position = page_position(&u);
            let later = match (here, position) {
                (PagePosition::Page(a), PagePosition::Page(b)) => b > a,
                (PagePosition::Page(1), PagePosition::Offset(b)) => b > 0,
                (PagePosition::Offset(a), PagePosition::Offset(b)) => b > a,
                _ => false,
            };
            (later && thread_id(&u).id == thread).then_some((position, u))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, u)| without_fragment(&u))
}

fn without_fragment(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_fragment(None);
    url
}

// ------------------------------------------------------- host page images

/// The main image of an image host's page, or of any page: the largest
/// declared `<img>`, then the page's `og:image`, then the first image file
/// that is not a decoration.
pub fn largest_image(html: &str, base: &Url) -> Option<Url> {
    let doc = Html::parse_document(html);
    let mut best: Option<(u64, Url)> = None;
    let mut first_undeclared: Option<Url> = None;
    for img in doc.select(&IMG) {
        let Some(source) = usable_image(img, base) else {
            continue;
        };
        match declared_size(img) {
            (Some(w), Some(h)) => {
                let area = u64::from(w) * u64::from(h);
                if best.as_ref().is_none_or(|(a, _)| area > *a) {
                    best = Some((area, source));
                }
            }
            _ => {
                if first_undeclared.is_none() && is_image_url(&source) {
                    first_undeclared = Some(source);
                }
            }
        }
    }
    best.map(|(_, u)| u)
        .or_else(|| meta_image(&doc, base))
        .or(first_undeclared)
}

fn meta_image(doc: &Html, base: &Url) -> Option<Url> {
    doc.select(&OG_IMAGE)
        .filter_map(|m| m.attr("content"))
        .find_map(|c| resolve_href(base, c))
}

/// The first value of `attr` on an element matching `css` in `html`,
/// resolved against `base`: what most image-host resolvers need.
pub fn select_url(html: &str, base: &Url, css: &str, attr: &str) -> Option<Url> {
    let selector = Selector::parse(css).ok()?;
    let doc = Html::parse_document(html);
    doc.select(&selector)
        .filter_map(|el| el.attr(attr))
        .find_map(|raw| resolve_href(base, raw))
}

/// A form on a page: where it posts and the fields it would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlForm {
    /// Where the form posts to (resolved against the page).
    pub action: Url,
    /// The HTTP method, upper case (`POST`, `GET`).
    pub method: String,
    /// Named inputs with their values, in document order (hidden fields,
    /// submit buttons, checkboxes that are checked).
    pub fields: Vec<(String, String)>,
    /// The name of the password input, if any.
    pub password_field: Option<String>,
    /// The name of the first text or e-mail input, if any.
    pub text_field: Option<String>,
}

/// The first form in `html` that matches `css` (for example a login form:
/// `form:has(input[type=password])` is not supported by scraper, so the
/// caller passes a plain selector and `needs_password`).
pub fn find_form(html: &str, base: &Url, css: &str, needs_password: bool) -> Option<HtmlForm> {
    static INPUTS: LazyLock<Selector> = LazyLock::new(|| selector("input[name], button[name]"));
    let form_selector = Selector::parse(css).ok()?;
    let doc = Html::parse_document(html);
    for form in doc.select(&form_selector) {
        let mut fields = Vec::new();
        let mut password_field = None;
        let mut text_field = None;
        for input in form.select(&INPUTS) {
            let Some(name) = input.attr("name") else {
                continue;
            };
            let kind = input
                .attr("type")
                .unwrap_or(if input.value().name() == "button" {
                    "submit"
                } else {
                    "text"
                })
                .to_ascii_lowercase();
            let value = input.attr("value").unwrap_or_default();
            match kind.as_str() {
                "password" => {
                    password_field.get_or_insert_with(|| name.to_owned());
                }
                "text" | "email" => {
                    text_field.get_or_insert_with(|| name.to_owned());
                }
                "checkbox" | "radio" if input.attr("checked").is_some() => {
                    fields.push((name.to_owned(), value.to_owned()));
                }
                "hidden" | "submit" => fields.push((name.to_owned(), value.to_owned())),
                _ => {}
            }
        }
        if needs_password && password_field.is_none() {
            continue;
        }
        let action = form
            .attr("action")
            .filter(|a| !a.trim().is_empty())
            .and_then(|a| resolve_href(base, a))
            .unwrap_or_else(|| base.clone());
        let method = form.attr("method").unwrap_or("get").to_ascii_uppercase();
        return Some(HtmlForm {
            action,
            method,
            fields,
            password_field,
            text_field,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn dates_in_the_formats_forums_print() {
        for text in [
            "2023-01-15T10:30:00+0000",
            "2023-01-15T10:30:00+00:00",
            "01-15-2023, 10:30 AM",
            "15.01.2023, 10:30",
            "Sun Jan 15, 2023 10:30 am",
            "Jan 15, 2023 10:30 AM",
        ] {
            let at = parse_date(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(at.to_rfc3339(), "2023-01-15T10:30:00+00:00", "{text}");
        }
        assert_eq!(parse_date("Today, 10:30 AM"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn largest_image_prefers_declared_size_then_og_image() {
        let base = url("https://host.example/v/1");
        let html = r#"<html><head><meta property="og:image" content="/og.jpg"></head><body>
            <img src="/logo.png" width="120" height="40">
            <img src="/full.jpg" width="1600" height="1200">
            <img src="/smilies/x.gif"></body></html>"#;
        assert_eq!(
            largest_image(html, &base).unwrap().as_str(),
            "https://host.example/full.jpg"
        );
        let html = r#"<html><head><meta property="og:image" content="/og.jpg"></head><body>
            <img src="/a.jpg"></body></html>"#;
        assert_eq!(
            largest_image(html, &base).unwrap().as_str(),
            "https://host.example/og.jpg"
        );
        assert_eq!(largest_image("<p>nothing</p>", &base), None);
    }

    #[test]
    fn finds_a_login_form_with_its_hidden_fields() {
        let base = url("https://f.example/login/");
        let html = r#"<form action="/login/login" method="post">
            <input type="text" name="login"><input type="password" name="password">
            <input type="checkbox" name="remember" value="1" checked>
            <input type="hidden" name="_xfToken" value="tok">
            <button type="submit" name="go" value="1">Log in</button></form>"#;
        let form = find_form(html, &base, "form", true).unwrap();
        assert_eq!(form.action.as_str(), "https://f.example/login/login");
        assert_eq!(form.method, "POST");
        assert_eq!(form.text_field.as_deref(), Some("login"));
        assert_eq!(form.password_field.as_deref(), Some("password"));
        assert_eq!(
            form.fields,
            vec![
                ("remember".to_owned(), "1".to_owned()),
                ("_xfToken".to_owned(), "tok".to_owned()),
                ("go".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(
            find_form("<form><input name=q></form>", &base, "form", true),
            None
        );
    }
}
