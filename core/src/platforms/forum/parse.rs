//! Thread pages into owned data: which forum software made the page, its
//! posts (id, author, date) with the media each links to, the thread title,
//! the next page, and whether the page is a login wall.
//!
//! A thread page is read in one streaming pass (`scan.rs`, no DOM);
//! this module turns what the pass recorded into posts and links once the
//! page's engine and `<base href>` are known. Host pages (small) are read
//! the same way by [`largest_image`], [`select_url`] and [`find_form`].
//!
//! Everything here is synchronous and returns owned values.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use lol_html::html_content::Element;
use lol_html::{ElementContentHandlers, HtmlRewriter, Selector, Settings, element, end_tag};
use serde_json::Value;
use url::Url;

use super::links::{
    PagePosition, attachment_id, full_attachment, is_fetchable, is_image_url, is_video_url,
    media_page, page_position, resolve_href, thread_id,
};
use super::scan::{
    NextSource, RawDate, RawImage, RawMedia, RawPage, RawPost, TitleSource, attribute, raw_image,
    scan,
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

/// Parses one thread page fetched from `url`.
pub fn parse_thread_page(html: &str, url: &Url) -> ThreadPage {
    let raw = scan(html);
    // `<base href>` (vBulletin 4 sets it) decides what relative links mean.
    let base = raw
        .base_href
        .as_deref()
        .and_then(|href| url.join(href.trim()).ok())
        .filter(is_fetchable)
        .unwrap_or_else(|| url.clone());
    let base = &base;
    let engine = detect_engine(&raw);
    let mut guest_placeholder = false;
    let posts = match engine {
        ThreadEngine::XenForo => xenforo_posts(&raw, base, &mut guest_placeholder),
        ThreadEngine::VBulletin => vbulletin_posts(&raw, base, &mut guest_placeholder),
        ThreadEngine::PhpBb => phpbb_posts(&raw, base, &mut guest_placeholder),
        ThreadEngine::Generic => Vec::new(),
    };
    let has_password_form = raw.password_input;
    let (engine, posts) = if posts.is_empty() && !has_password_form {
        // No posts in the engine's markup: take what any page offers.
        let posts = generic_posts(&raw, base, &mut guest_placeholder);
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
        && !looks_like_thread(&raw, engine)
    {
        Some("the page asks to log in (a login form instead of the thread)".to_owned())
    } else {
        None
    };
    let json_ld = json_ld(&raw.json_ld);
    let title = json_ld
        .title
        .or_else(|| engine_title(&raw, engine))
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
        next_page: next_page(&raw, url, base, engine),
        login_wall,
    }
}

/// Whether the page still shows thread posts (a quick-reply or login box
/// next to posts is not a wall).
fn looks_like_thread(raw: &RawPage, engine: ThreadEngine) -> bool {
    match engine {
        ThreadEngine::XenForo => raw.xf_post_seen,
        ThreadEngine::VBulletin => raw.vb_body_seen || raw.vb_td_body_seen,
        ThreadEngine::PhpBb => raw.phpbb_post_seen,
        ThreadEngine::Generic => false,
    }
}

fn detect_engine(raw: &RawPage) -> ThreadEngine {
    if raw.xf_root || raw.xf_post_seen {
        ThreadEngine::XenForo
    } else if raw.vb_generator || raw.vb_body_seen || raw.vb_td_body_seen {
        ThreadEngine::VBulletin
    } else if raw.phpbb_root || raw.phpbb_post_seen {
        ThreadEngine::PhpBb
    } else {
        ThreadEngine::Generic
    }
}

/// A post as the thread shows it: the body's media, then the media after
/// it (attachments), with the author and the first readable date.
fn post_from(
    id: &str,
    author: Option<&str>,
    dates: &[RawDate],
    media: &[&[Rc<RawMedia>]],
    base: &Url,
    placeholder: &mut bool,
) -> Post {
    let mut collector = Collector::new(base, None);
    for list in media {
        for item in list.iter() {
            collector.take(item);
        }
    }
    *placeholder |= collector.guest_placeholder;
    Post {
        id: id.to_owned(),
        author: author
            .map(|a| clean_text(&htmlize::unescape(a), 200))
            .filter(|a| !a.is_empty()),
        posted_at: dates.iter().find_map(raw_date_time),
        media: collector.finish(),
    }
}

fn xenforo_posts(raw: &RawPage, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    raw.xf_posts
        .iter()
        .filter(|post| !post.id.is_empty())
        .map(|post| {
            // `data-author` is an attribute: its entities are decoded already.
            let author = post.author.as_deref().map(|a| clean_text(a, 200));
            let mut post = post_from(
                &post.id,
                None,
                &post.dates,
                &[&post.body, &post.extra],
                base,
                placeholder,
            );
            post.author = author.filter(|a| !a.is_empty());
            post
        })
        .collect()
}

fn vbulletin_posts(raw: &RawPage, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    let bodies = if raw.vb_bodies.is_empty() {
        &raw.vb_td_bodies
    } else {
        &raw.vb_bodies
    };
    let mut seen = HashSet::new();
    let mut posts = Vec::new();
    for body in bodies {
        if !seen.insert(body.id.as_str()) {
            continue;
        }
        let empty = RawPost::default();
        let container = body
            .container
            .and_then(|c| raw.vb_containers.get(c))
            .unwrap_or(&empty);
        posts.push(post_from(
            &body.id,
            container.author.as_deref(),
            &container.dates,
            &[&body.media, &container.extra],
            base,
            placeholder,
        ));
    }
    posts
}

fn phpbb_posts(raw: &RawPage, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    raw.phpbb_posts
        .iter()
        .map(|post| {
            post_from(
                &post.id,
                post.author.as_deref(),
                &post.dates,
                &[&post.body, &post.extra],
                base,
                placeholder,
            )
        })
        .collect()
}

fn generic_posts(raw: &RawPage, base: &Url, placeholder: &mut bool) -> Vec<Post> {
    let mut collector = Collector::new(base, Some(GENERIC_LONE_MIN_PIXELS));
    for item in &raw.generic {
        collector.take(item);
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

/// Turns a post's raw media into links in document order, leaving out
/// decorations and repeats.
struct Collector<'a> {
    base: &'a Url,
    /// `Some(n)`: lone images count only when declared at least `n` pixels
    /// (or undeclared); `None`: every non-decoration image counts.
    lone_min_pixels: Option<u32>,
    media: Vec<MediaLink>,
    seen: HashSet<String>,
    guest_placeholder: bool,
}

impl<'a> Collector<'a> {
    fn new(base: &'a Url, lone_min_pixels: Option<u32>) -> Self {
        Self {
            base,
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

    fn take(&mut self, media: &RawMedia) {
        match media {
            RawMedia::Anchor { href, images } => self.anchor(href, images),
            RawMedia::Image(image) => self.lone_image(image),
            RawMedia::Video(sources) => self.video(sources),
        }
    }

    /// A link, with or without a thumbnail inside.
    fn anchor(&mut self, href: &str, images: &[RawImage]) {
        let target = resolve_href(self.base, href);
        let thumbnail_found = images
            .iter()
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
        let (kind, target) = if attachment_id(&target).is_some() {
            (MediaKind::Attachment, full_attachment(&target))
        } else if is_image_url(&target) {
            (MediaKind::Image, target)
        } else if is_video_url(&target) {
            (MediaKind::Video, target)
        } else if thumbnail.is_some() && media_page(&target).is_some() {
            // The forum's own page for this picture (a media gallery item,
            // a lightbox viewer): resolved to the full image.
            (MediaKind::Page, target)
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
            (MediaKind::Page, target)
        };
        self.push(MediaLink {
            kind,
            target,
            thumbnail,
        });
    }

    /// An image not wrapped in a link.
    fn lone_image(&mut self, img: &RawImage) {
        let Some(source) = usable_image(img, self.base) else {
            return;
        };
        if self.is_guest_placeholder(&source) {
            return;
        }
        if let Some(min) = self.lone_min_pixels {
            let large = match declared_size(img) {
                (Some(w), Some(h)) => w.max(h) >= min,
                (Some(d), None) | (None, Some(d)) => d >= min,
                (None, None) => is_image_url(&source),
            };
            if !large {
                return;
            }
        }
        // An attachment shown small (`attachment.php?…&thumb=1`): its file.
        let (kind, target) = if attachment_id(&source).is_some() {
            (MediaKind::Attachment, full_attachment(&source))
        } else {
            (MediaKind::Image, source)
        };
        self.push(MediaLink {
            kind,
            target,
            thumbnail: None,
        });
    }

    /// One file per `<video>`: the first usable source (the others are other encodings).
    fn video(&mut self, sources: &[String]) {
        if let Some(url) = sources.iter().find_map(|raw| resolve_href(self.base, raw)) {
            if self.is_guest_placeholder(&url) {
                return;
            }
            self.push(MediaLink {
                kind: MediaKind::Video,
                target: url,
                thumbnail: None,
            });
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

/// The image's address unless it is a smilie, avatar, icon or spacer: the
/// original behind XenForo's proxy (`data-url`), a lazy-loaded source, then `src`.
fn usable_image(img: &RawImage, base: &Url) -> Option<Url> {
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
    if img.marked_smilie {
        return None;
    }
    if img.class.as_deref().is_some_and(|classes| {
        classes.split_ascii_whitespace().any(|class| {
            let class = class.to_ascii_lowercase();
            CLASSES.iter().any(|c| class.contains(c))
        })
    }) {
        return None;
    }
    if let (w, h) = declared_size(img)
        && (w.is_some_and(|w| w <= ICON_MAX_PIXELS) || h.is_some_and(|h| h <= ICON_MAX_PIXELS))
    {
        return None;
    }
    let source = img.sources.iter().find_map(|raw| resolve_href(base, raw))?;
    let path = source.path().to_ascii_lowercase();
    (!PATHS.iter().any(|p| path.contains(p))).then_some(source)
}

/// `width` and `height` attributes when they are plain pixel numbers.
fn declared_size(img: &RawImage) -> (Option<u32>, Option<u32>) {
    let read = |value: &Option<String>| {
        value
            .as_deref()
            .map(|v| v.trim().trim_end_matches("px"))
            .and_then(|v| v.parse::<u32>().ok())
    };
    (read(&img.width), read(&img.height))
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

fn engine_title(raw: &RawPage, engine: ThreadEngine) -> Option<String> {
    let heading = match engine {
        ThreadEngine::XenForo => first_text(raw, TitleSource::XenForo),
        ThreadEngine::VBulletin => first_text(raw, TitleSource::VbThreadTitle)
            .or_else(|| first_text(raw, TitleSource::VbNavbar))
            .or_else(|| first_text(raw, TitleSource::H1)),
        ThreadEngine::PhpBb => first_text(raw, TitleSource::H2),
        ThreadEngine::Generic => raw
            .og_title
            .clone()
            .or_else(|| first_text(raw, TitleSource::H1)),
    };
    heading.or_else(|| first_text(raw, TitleSource::Title))
}

/// The first non-empty text of the headings of one kind.
fn first_text(raw: &RawPage, source: TitleSource) -> Option<String> {
    raw.titles
        .iter()
        .filter(|(from, _)| *from == source)
        .map(|(_, text)| clean_text(&htmlize::unescape(text), MAX_TITLE_CHARS))
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
fn raw_date_time(date: &RawDate) -> Option<DateTime<Utc>> {
    if let Some(seconds) = date
        .data_time
        .as_deref()
        .and_then(|t| t.trim().parse::<i64>().ok())
        && let Some(at) = DateTime::from_timestamp(seconds, 0)
    {
        return Some(at);
    }
    if let Some(at) = date.datetime.as_deref().and_then(parse_date) {
        return Some(at);
    }
    let text = clean_text(&htmlize::unescape(date.text.as_str()), 200);
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
fn json_ld(scripts: &[String]) -> JsonLd {
    let mut found = JsonLd::default();
    for text in scripts {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
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

fn next_page(raw: &RawPage, url: &Url, base: &Url, engine: ThreadEngine) -> Option<Url> {
    let specific = match engine {
        ThreadEngine::XenForo => Some(NextSource::XenForo),
        ThreadEngine::VBulletin => Some(NextSource::VBulletin),
        ThreadEngine::PhpBb => Some(NextSource::PhpBb),
        ThreadEngine::Generic => None,
    };
    let current = without_fragment(url);
    let candidates = specific
        .into_iter()
        .chain(std::iter::once(NextSource::RelNext))
        .flat_map(|source| {
            raw.next_links
                .iter()
                .filter(move |(from, _)| *from == source)
                .map(|(_, href)| href)
        })
        .filter_map(|href| resolve_href(base, href))
        .map(|u| without_fragment(&u));
    for candidate in candidates {
        if candidate != current && same_site(&candidate, url) {
            return Some(candidate);
        }
    }
    next_by_number(raw, url, base)
}

/// The closest later page among the links of the same thread, for pages
/// without `rel="next"` or a recognised "next" button.
fn next_by_number(raw: &RawPage, url: &Url, base: &Url) -> Option<Url> {
    let thread = thread_id(url).id;
    let here = page_position(url);
    raw.page_links
        .iter()
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

/// Runs `html` through lol_html with these handlers; markup it cannot
/// read further ends the pass with what was found until then.
fn stream(html: &str, settings: Settings<'_, '_>) {
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    if rewriter.write(html.as_bytes()).is_ok() {
        let _ = rewriter.end();
    }
}

/// The main image of an image host's page, or of any page: the largest
/// declared `<img>`, then the page's `og:image`, then the first image file
/// that is not a decoration.
pub fn largest_image(html: &str, base: &Url) -> Option<Url> {
    let images = RefCell::new(Vec::new());
    let meta_images = RefCell::new(Vec::new());
    stream(
        html,
        Settings {
            element_content_handlers: vec![
                element!("img", |el| {
                    images.borrow_mut().push(raw_image(el));
                    Ok(())
                }),
                element!(
                    "meta[property=\"og:image\"][content], meta[name=\"twitter:image\"][content]",
                    |el| {
                        meta_images.borrow_mut().extend(attribute(el, "content"));
                        Ok(())
                    }
                ),
            ],
            ..Settings::new()
        },
    );
    let mut best: Option<(u64, Url)> = None;
    let mut first_undeclared: Option<Url> = None;
    for img in images.borrow().iter() {
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
        .or_else(|| {
            meta_images
                .borrow()
                .iter()
                .find_map(|c| resolve_href(base, c))
        })
        .or(first_undeclared)
}

/// The first value of `attr` on an element matching `css` in `html`,
/// resolved against `base`: what most image-host resolvers need. `None`
/// also for a selector lol_html does not support (`:has`, `+`, `~`).
pub fn select_url(html: &str, base: &Url, css: &str, attr: &str) -> Option<Url> {
    let selector: Selector = css.parse().ok()?;
    let found = RefCell::new(None);
    stream(
        html,
        Settings {
            element_content_handlers: vec![(
                Cow::Owned(selector),
                ElementContentHandlers::default().element(|el: &mut Element| {
                    let mut found = found.borrow_mut();
                    if found.is_none() {
                        *found = attribute(el, attr).and_then(|raw| resolve_href(base, &raw));
                    }
                    Ok(())
                }),
            )],
            ..Settings::new()
        },
    );
    found.into_inner()
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

/// A form as read, before its action is resolved.
#[derive(Debug, Default)]
struct RawForm {
    action: Option<String>,
    method: Option<String>,
    fields: Vec<(String, String)>,
    password_field: Option<String>,
    text_field: Option<String>,
}

/// The first form in `html` that matches `css` (for example a login form:
/// `form:has(input[type=password])` is not supported, so the caller passes
/// a plain selector and `needs_password`).
pub fn find_form(html: &str, base: &Url, css: &str, needs_password: bool) -> Option<HtmlForm> {
    let selector: Selector = css.parse().ok()?;
    // Forms in document order; the last one is open while its inputs stream by.
    let forms: RefCell<Vec<RawForm>> = RefCell::new(Vec::new());
    let open = Rc::new(Cell::new(false));
    stream(
        html,
        Settings {
            element_content_handlers: vec![
                (
                    Cow::Owned(selector),
                    ElementContentHandlers::default().element(|el: &mut Element| {
                        // HTML does not nest forms: an inner one is ignored.
                        if open.get() || !el.can_have_content() {
                            return Ok(());
                        }
                        forms.borrow_mut().push(RawForm {
                            action: attribute(el, "action"),
                            method: attribute(el, "method"),
                            ..RawForm::default()
                        });
                        open.set(true);
                        let open = Rc::clone(&open);
                        el.on_end_tag(end_tag!(move |_| {
                            open.set(false);
                            Ok(())
                        }))
                    }),
                ),
                element!("input[name], button[name]", |el| {
                    if open.get()
                        && let Some(form) = forms.borrow_mut().last_mut()
                    {
                        form_field(form, el);
                    }
                    Ok(())
                }),
            ],
            ..Settings::new()
        },
    );
    let form = forms
        .into_inner()
        .into_iter()
        .find(|form| !needs_password || form.password_field.is_some())?;
    let action = form
        .action
        .filter(|a| !a.trim().is_empty())
        .and_then(|a| resolve_href(base, &a))
        .unwrap_or_else(|| base.clone());
    Some(HtmlForm {
        action,
        method: form.method.as_deref().unwrap_or("get").to_ascii_uppercase(),
        fields: form.fields,
        password_field: form.password_field,
        text_field: form.text_field,
    })
}

/// What one `<input>` or `<button>` adds to its form.
fn form_field(form: &mut RawForm, input: &Element) {
    let Some(name) = attribute(input, "name") else {
        return;
    };
    let kind = attribute(input, "type")
        .unwrap_or_else(|| {
            if input.tag_name() == "button" {
                "submit"
            } else {
                "text"
            }
            .to_owned()
        })
        .to_ascii_lowercase();
    let value = attribute(input, "value").unwrap_or_default();
    match kind.as_str() {
        "password" => {
            form.password_field.get_or_insert(name);
        }
        "text" | "email" => {
            form.text_field.get_or_insert(name);
        }
        "checkbox" | "radio" if input.has_attribute("checked") => {
            form.fields.push((name, value));
        }
        "hidden" | "submit" => form.fields.push((name, value)),
        _ => {}
    }
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
