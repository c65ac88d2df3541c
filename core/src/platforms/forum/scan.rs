//! One streaming pass over a thread page with lol_html's tokenizer: for
//! every forum engine at once, it records the posts, the raw `href`/`src`
//! values of their media, the texts that hold titles, authors and dates,
//! and the links that may lead to the next page. Nothing is resolved here:
//! `parse.rs` turns the `RawPage` into a thread page once the
//! page's `<base href>` and engine are known.
//!
//! No DOM is built. What a DOM walk got from the tree, the pass gets from a
//! stack of open frames: an element that opens a post, a post body, a
//! skipped region (quotes, signatures), a context (`.author`,
//! `.pagination`), a link or a text to capture pushes a frame and closes it
//! from its end-tag handler. lol_html calls those handlers for elements
//! closed implicitly by an ancestor's end tag too, so the frames follow its
//! element stack; elements still open at the end of the page stay open, as
//! in a browser.
//!
//! One handler sees every start tag and matches the engines' selectors
//! (written next to each test below) on the tag, its classes and id. Given
//! to lol_html as some fifty CSS selectors instead, its selector machine
//! made the pass about three times as slow: most are class selectors, which
//! it must try on the attributes of every element.

use std::cell::RefCell;
use std::rc::Rc;

use lol_html::html_content::Element;
use lol_html::{HandlerResult, HtmlRewriter, Settings, doc_text, element, end_tag};

/// What a handler fails with (lol_html's handler error type).
type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Longest text kept from one captured element (titles, authors, dates);
/// JSON-LD scripts are kept whole.
const MAX_CAPTURE_BYTES: usize = 16 * 1024;

/// The attributes of an `<img>` that decide whether and where it is media,
/// entities decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RawImage {
    /// Candidate addresses, best first: `data-url` (XenForo's original
    /// behind its proxy), lazy-loading attributes, then `src`.
    pub sources: Vec<String>,
    pub width: Option<String>,
    pub height: Option<String>,
    pub class: Option<String>,
    /// `data-smilie` or `data-shortname`: a smilie whatever its class.
    pub marked_smilie: bool,
}

/// A piece of possible media in document order, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawMedia {
    /// `<a href>` with the images and videos inside it.
    Anchor { href: String, images: Vec<RawImage> },
    /// An image outside any link.
    Image(RawImage),
    /// A `<video>`: its own `src`/`data-src`, then those of its `<source>`s.
    Video(Vec<String>),
}

/// An element that may carry a date: `data-time`, `datetime` and its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RawDate {
    pub data_time: Option<String>,
    pub datetime: Option<String>,
    pub text: String,
}

/// A post (or a vBulletin post's container) as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RawPost {
    pub id: String,
    /// XenForo's `data-author`, or the text of the first author element.
    pub author: Option<String>,
    /// Date candidates in document order.
    pub dates: Vec<RawDate>,
    /// The body's media (XenForo `.bbWrapper`, phpBB `div.content`).
    pub body: Vec<Rc<RawMedia>>,
    /// Media after the body: XenForo's attachment list, phpBB's
    /// `.attachbox`, a vBulletin container's attachment links.
    pub extra: Vec<Rc<RawMedia>>,
    body_taken: bool,
}

/// A vBulletin post body (`div#post_message_N` or `td#td_post_N`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RawVbBody {
    pub id: String,
    /// Index in [`RawPage::vb_containers`] of the innermost enclosing
    /// `li#post_N`, `table#postN` or `div#editN` of the same id.
    pub container: Option<usize>,
    pub media: Vec<Rc<RawMedia>>,
}

/// Which heading a captured title text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TitleSource {
    /// `h1.p-title-value`
    XenForo,
    /// `span.threadtitle`
    VbThreadTitle,
    /// `td.navbar strong`
    VbNavbar,
    H1,
    /// `h2` (phpBB's `h2.topic-title` and `h2 a` are inside one)
    H2,
    Title,
}

/// Which selector a candidate next-page link matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NextSource {
    /// `a.pageNav-jump--next`
    XenForo,
    /// `a[rel=next]`, `a[title^="Next Page"]`
    VBulletin,
    /// phpBB's pagination `next` links
    PhpBb,
    /// `link[rel=next]`, `a[rel=next]`
    RelNext,
}

/// Everything one pass records, unresolved.
#[derive(Debug, Default)]
pub(super) struct RawPage {
    pub base_href: Option<String>,
    /// `<html id="XF">`
    pub xf_root: bool,
    /// Any `article.message[data-content^="post-"]`, with an id or not.
    pub xf_post_seen: bool,
    pub vb_generator: bool,
    pub vb_body_seen: bool,
    pub vb_td_body_seen: bool,
    /// `<body id="phpbb">`
    pub phpbb_root: bool,
    pub phpbb_post_seen: bool,
    pub password_input: bool,
    /// Heading texts in document order.
    pub titles: Vec<(TitleSource, String)>,
    pub og_title: Option<String>,
    pub json_ld: Vec<String>,
    /// Candidate next-page links in document order.
    pub next_links: Vec<(NextSource, String)>,
    /// Every link whose address may name a page of the thread
    /// (it contains `page` or `start`).
    pub page_links: Vec<String>,
    pub xf_posts: Vec<RawPost>,
    pub vb_bodies: Vec<RawVbBody>,
    pub vb_td_bodies: Vec<RawVbBody>,
    pub vb_containers: Vec<RawPost>,
    pub phpbb_posts: Vec<RawPost>,
    /// The generic fallback: every medium outside the head, headers,
    /// footers, navigation, asides and signatures.
    pub generic: Vec<Rc<RawMedia>>,
}

/// Regions whose media a scope leaves out (bit flags).
const SKIP_XF: u8 = 1;
const SKIP_VB: u8 = 2;
const SKIP_PHPBB: u8 = 4;
const SKIP_GENERIC: u8 = 8;
/// Embedded documents and widgets: never walked into.
const SKIP_OPAQUE: u8 = 16;

/// Where the media met inside an open region go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    XfBody(usize),
    XfAttachments(usize),
    VbBody(usize),
    VbTdBody(usize),
    /// Only links to `attachment.php`.
    VbContainer(usize),
    PhpbbBody(usize),
    PhpbbAttachbox(usize),
    Generic,
}

impl Scope {
    fn skipped_regions(self) -> u8 {
        match self {
            Self::XfBody(_) => SKIP_XF | SKIP_OPAQUE,
            Self::XfAttachments(_) => 0,
            Self::VbBody(_) | Self::VbTdBody(_) => SKIP_VB | SKIP_OPAQUE,
            Self::VbContainer(_) => SKIP_VB,
            Self::PhpbbBody(_) | Self::PhpbbAttachbox(_) => SKIP_PHPBB | SKIP_OPAQUE,
            Self::Generic => SKIP_GENERIC | SKIP_OPAQUE,
        }
    }

    /// Whether lone images and videos count here (not only links).
    fn takes_everything(self) -> bool {
        !matches!(self, Self::XfAttachments(_) | Self::VbContainer(_))
    }

    fn takes_link(self, href: &str) -> bool {
        match self {
            Self::VbContainer(_) => href.contains("attachment.php"),
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct OpenScope {
    scope: Scope,
    /// How many skipped regions of this scope are open around the current element.
    skipped: u32,
}

/// Which kind of post a capture or a date belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PostRef {
    Xf(usize),
    VbContainer(usize),
    Phpbb(usize),
}

#[derive(Debug, Clone, Copy)]
enum CaptureTarget {
    Title(usize),
    JsonLd(usize),
    Author(PostRef),
    Date(PostRef, usize),
}

#[derive(Debug)]
struct OpenLink {
    seq: u64,
    href: String,
    images: Vec<RawImage>,
    videos: Vec<Vec<String>>,
    scopes: Vec<Scope>,
}

#[derive(Debug)]
struct OpenVideo {
    seq: u64,
    sources: Vec<String>,
    /// Inside a link: the video goes with it.
    in_link: bool,
    scopes: Vec<Scope>,
}

/// Ancestors some selectors need (`.author .username`): bit flags, each
/// with a count of open elements in [`Scan::contexts`].
const IN_ATTRIBUTION: u8 = 1;
const IN_POPUPMENU: u8 = 2;
const IN_AUTHOR: u8 = 4;
const IN_P_AUTHOR: u8 = 8;
const IN_P_AUTHOR_STRONG: u8 = 16;
const IN_TD_NAVBAR: u8 = 32;
const IN_PAGINATION: u8 = 64;
const IN_LI_NEXT: u8 = 128;

#[derive(Debug, Clone, Copy)]
enum FrameKind {
    Context(u8),
    XfPost,
    PhpbbPost,
    VbContainer,
    Scope,
    Skip { regions: u8, scopes: usize },
    Capture,
    Link,
    Video,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    seq: u64,
    kind: FrameKind,
}

/// The state of one pass.
#[derive(Debug, Default)]
struct Scan {
    page: RawPage,
    next_seq: u64,
    frames: Vec<Frame>,
    scopes: Vec<OpenScope>,
    captures: Vec<CaptureTarget>,
    /// The innermost open vBulletin containers.
    containers: Vec<usize>,
    xf_post: Option<usize>,
    phpbb_post: Option<usize>,
    link: Option<OpenLink>,
    video: Option<OpenVideo>,
    head: Option<u64>,
    /// Open elements per context bit (see `IN_AUTHOR` and the others).
    contexts: [u32; 8],
}

type Shared = Rc<RefCell<Scan>>;

/// Reads `html` in one pass. Markup lol_html cannot read further (it
/// reports an error) ends the pass with what was found until then.
pub(super) fn scan(html: &str) -> RawPage {
    let state: Shared = Rc::new(RefCell::new(Scan::default()));
    state.borrow_mut().scopes.push(OpenScope {
        scope: Scope::Generic,
        skipped: 0,
    });
    {
        let s = &state;
        let settings = Settings {
            element_content_handlers: vec![element!("*", move |el| start_tag(s, el))],
            document_content_handlers: vec![doc_text!(move |chunk| {
                s.borrow_mut().text(chunk.as_str());
                Ok(())
            })],
            ..Settings::new()
        };
        let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
        // An error (a handler's, or lol_html's memory limit) ends the pass early.
        if rewriter.write(html.as_bytes()).is_ok() {
            let _ = rewriter.end();
        }
    }
    let mut scan = state.take();
    // Elements left open at the end of the page end there.
    scan.close_from(0);
    scan.page
}

/// The class attribute's words, split once: an element is asked about a
/// dozen classes, and re-splitting the attribute for each was a measurable
/// share of the pass.
struct Classes<'a>(Vec<&'a str>);

impl<'a> Classes<'a> {
    fn new(attribute: Option<&'a str>) -> Self {
        Self(attribute.map_or_else(Vec::new, |classes| {
            classes.split_ascii_whitespace().collect()
        }))
    }

    fn has(&self, class: &str) -> bool {
        self.0.contains(&class)
    }
}

/// Whether `el`'s attribute `name` equals `value` (ASCII case ignored).
fn attribute_is(el: &Element, name: &str, value: &str) -> bool {
    el.get_attribute(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
}

/// Everything a start tag may open or stand for, in the order the roles
/// depend on each other: skipped regions before the links inside them,
/// posts before their bodies, context checks before the element's own context.
fn start_tag(s: &Shared, el: &mut Element) -> HandlerResult {
    let tag = el.tag_name();
    let tag = tag.as_str();
    let class_attribute = el.get_attribute("class");
    let classes = Classes::new(class_attribute.as_deref());
    // Only these tags' ids mean anything below; reading an attribute costs
    // an allocation and a search of the element's attributes.
    let id = if matches!(tag, "html" | "body" | "li" | "table" | "div" | "td") {
        el.get_attribute("id")
    } else {
        None
    };
    let id = id.as_deref().unwrap_or_default();
    let contexts = s.borrow().contexts;
    let inside = |bit: u8| contexts[bit.trailing_zeros() as usize] > 0;

    match tag {
        "head" => {
            let seq = open_skip(s, SKIP_GENERIC, el)?;
            s.borrow_mut().head = seq;
        }
        "body" => {
            // A page without `</head>` has its head closed by `<body>`.
            let head = s.borrow_mut().head.take();
            if let Some(head) = head {
                s.borrow_mut().close(head);
            }
            if id == "phpbb" {
                s.borrow_mut().page.phpbb_root = true;
            }
        }
        // html#XF
        "html" if id == "XF" => s.borrow_mut().page.xf_root = true,
        // meta[name="generator"][content^="vBulletin"]
        "meta"
            if attribute_is(el, "name", "generator")
                && el
                    .get_attribute("content")
                    .is_some_and(|c| c.starts_with("vBulletin")) =>
        {
            s.borrow_mut().page.vb_generator = true;
        }
        _ => {}
    }

    let skipped = skipped_regions(tag, &classes);
    if skipped != 0 {
        open_skip(s, skipped, el)?;
    }

    // XenForo: article.message[data-content^="post-"], .bbWrapper,
    // .message-attachments, .attachmentList, `.message-attribution time, time.u-dt`.
    if tag == "article"
        && classes.has("message")
        && el
            .get_attribute("data-content")
            .is_some_and(|c| c.starts_with("post-"))
    {
        xf_post(s, el)?;
    }
    let xf_post_open = s.borrow().xf_post;
    if let Some(post) = xf_post_open {
        if classes.has("bbWrapper") && !s.borrow().page.xf_posts[post].body_taken {
            s.borrow_mut().page.xf_posts[post].body_taken = true;
            open_scope(s, Scope::XfBody(post), el)?;
        }
        if classes.has("message-attachments") || classes.has("attachmentList") {
            open_scope(s, Scope::XfAttachments(post), el)?;
        }
        if tag == "time" && (inside(IN_ATTRIBUTION) || classes.has("u-dt")) {
            open_date(s, PostRef::Xf(post), el)?;
        }
    }

    // vBulletin: `li[id^=post], table[id^=post], div[id^=edit]` around a
    // post, div[id^="post_message_"], td[id^="td_post_"], the author
    // (`a.username, a.bigusername, .username, .popupmenu a.siteicon_profile`)
    // and date (`span.date, span.postdate, .postdate, td.thead`).
    if (matches!(tag, "li" | "table") && id.starts_with("post"))
        || (tag == "div" && id.starts_with("edit"))
    {
        vb_container(s, el, id)?;
    }
    if tag == "div" && id.starts_with("post_message_") {
        s.borrow_mut().page.vb_body_seen = true;
        vb_body(s, el, &id["post_message_".len()..], false)?;
    }
    if tag == "td" && id.starts_with("td_post_") {
        s.borrow_mut().page.vb_td_body_seen = true;
        vb_body(s, el, &id["td_post_".len()..], true)?;
    }
    let container = s.borrow().containers.last().copied();
    if let Some(container) = container {
        if classes.has("username")
            || (tag == "a"
                && (classes.has("bigusername")
                    || (classes.has("siteicon_profile") && inside(IN_POPUPMENU))))
        {
            open_author(s, PostRef::VbContainer(container), el)?;
        }
        if (tag == "span" && classes.has("date"))
            || classes.has("postdate")
            || (tag == "td" && classes.has("thead"))
        {
            open_date(s, PostRef::VbContainer(container), el)?;
        }
    }

    // phpBB: div.post[id^="p"], div.content, .attachbox, the author
    // (`.author .username, .author .username-coloured, p.author strong a,
    // .author a[href*="mode=viewprofile"]`) and date (`.author time, p.author`).
    if tag == "div" && classes.has("post") && id.starts_with('p') {
        phpbb_post(s, el, &id[1..])?;
    }
    let phpbb_post_open = s.borrow().phpbb_post;
    if let Some(post) = phpbb_post_open {
        if tag == "div" && classes.has("content") && !s.borrow().page.phpbb_posts[post].body_taken {
            s.borrow_mut().page.phpbb_posts[post].body_taken = true;
            open_scope(s, Scope::PhpbbBody(post), el)?;
        }
        if classes.has("attachbox") {
            open_scope(s, Scope::PhpbbAttachbox(post), el)?;
        }
        let author = (inside(IN_AUTHOR)
            && (classes.has("username")
                || classes.has("username-coloured")
                || (tag == "a"
                    && el
                        .get_attribute("href")
                        .is_some_and(|h| h.contains("mode=viewprofile")))))
            || (tag == "a" && inside(IN_P_AUTHOR_STRONG));
        if author {
            open_author(s, PostRef::Phpbb(post), el)?;
        }
        if (tag == "time" && inside(IN_AUTHOR)) || (tag == "p" && classes.has("author")) {
            open_date(s, PostRef::Phpbb(post), el)?;
        }
    }

    // Headings: h1.p-title-value, span.threadtitle, `td.navbar strong`, h1, h2, title.
    match tag {
        "h1" => {
            if classes.has("p-title-value") {
                open_title(s, TitleSource::XenForo, el)?;
            }
            open_title(s, TitleSource::H1, el)?;
        }
        "h2" => open_title(s, TitleSource::H2, el)?,
        "title" => open_title(s, TitleSource::Title, el)?,
        "span" if classes.has("threadtitle") => open_title(s, TitleSource::VbThreadTitle, el)?,
        "strong" if inside(IN_TD_NAVBAR) => open_title(s, TitleSource::VbNavbar, el)?,
        // meta[property="og:title"][content]
        "meta" if attribute_is(el, "property", "og:title") => {
            let content = attribute(el, "content");
            let mut scan = s.borrow_mut();
            if scan.page.og_title.is_none() {
                scan.page.og_title = content;
            }
        }
        // script[type="application/ld+json"]
        "script" if attribute_is(el, "type", "application/ld+json") => {
            let index = {
                let mut scan = s.borrow_mut();
                scan.page.json_ld.push(String::new());
                scan.page.json_ld.len() - 1
            };
            open_capture(s, CaptureTarget::JsonLd(index), el)?;
        }
        "base" => {
            let href = attribute(el, "href");
            let mut scan = s.borrow_mut();
            if scan.page.base_href.is_none() {
                scan.page.base_href = href;
            }
        }
        "input" if attribute_is(el, "type", "password") => {
            s.borrow_mut().page.password_input = true;
        }
        _ => {}
    }

    if matches!(tag, "a" | "link")
        && let Some(href) = attribute(el, "href")
    {
        let rel_next = attribute_is(el, "rel", "next");
        let mut sources = Vec::new();
        if tag == "a" {
            // a.pageNav-jump--next
            if classes.has("pageNav-jump--next") {
                sources.push(NextSource::XenForo);
            }
            // a[rel="next"], a[title^="Next Page"]
            if rel_next
                || el
                    .get_attribute("title")
                    .is_some_and(|t| t.starts_with("Next Page"))
            {
                sources.push(NextSource::VBulletin);
            }
            // .pagination li.next a, .pagination a[rel="next"], a.right-box[rel="next"]
            if (inside(IN_PAGINATION) && (inside(IN_LI_NEXT) || rel_next))
                || (classes.has("right-box") && rel_next)
            {
                sources.push(NextSource::PhpBb);
            }
        }
        // link[rel="next"], a[rel="next"]
        if rel_next {
            sources.push(NextSource::RelNext);
        }
        if !sources.is_empty() {
            let mut scan = s.borrow_mut();
            for source in sources {
                scan.page.next_links.push((source, href.clone()));
            }
        }
        if tag == "a" {
            open_link(s, el, href)?;
        }
    }
    match tag {
        "img" => image(s, el),
        "video" => open_video(s, el)?,
        "source" => {
            let mut scan = s.borrow_mut();
            if let Some(video) = scan.video.as_mut() {
                video.sources.extend(attribute(el, "src"));
                video.sources.extend(attribute(el, "data-src"));
            }
        }
        _ => {}
    }

    let mut opened = 0;
    if classes.has("message-attribution") {
        opened |= IN_ATTRIBUTION;
    }
    if classes.has("popupmenu") {
        opened |= IN_POPUPMENU;
    }
    if classes.has("author") {
        opened |= IN_AUTHOR;
        if tag == "p" {
            opened |= IN_P_AUTHOR;
        }
    }
    if tag == "strong" && inside(IN_P_AUTHOR) {
        opened |= IN_P_AUTHOR_STRONG;
    }
    if tag == "td" && classes.has("navbar") {
        opened |= IN_TD_NAVBAR;
    }
    if classes.has("pagination") {
        opened |= IN_PAGINATION;
    }
    if tag == "li" && classes.has("next") {
        opened |= IN_LI_NEXT;
    }
    if opened != 0 && el.can_have_content() {
        {
            let mut scan = s.borrow_mut();
            for (bit, count) in scan.contexts.iter_mut().enumerate() {
                if opened & (1 << bit) != 0 {
                    *count += 1;
                }
            }
        }
        open_frame(s, el, FrameKind::Context(opened))?;
    }
    Ok(())
}

/// Which engines leave out what is inside this element:
/// XenForo `blockquote, .bbCodeBlock--quote, .message-signature, script, style, noscript, template`;
/// vBulletin `.bbcode_container, .bbcode_quote, .quote_container, .signature,
/// .signaturecontainer, td.alt2, script, style, noscript`;
/// phpBB `blockquote, .signature, script, style, noscript`;
/// the generic fallback `header, footer, nav, script, style, noscript, .signature, aside`;
/// and nobody walks into `iframe, object, embed, svg, select, textarea`.
fn skipped_regions(tag: &str, classes: &Classes<'_>) -> u8 {
    let mut regions = match tag {
        "script" | "style" | "noscript" => SKIP_XF | SKIP_VB | SKIP_PHPBB | SKIP_GENERIC,
        "blockquote" => SKIP_XF | SKIP_PHPBB,
        "template" => SKIP_XF,
        "header" | "footer" | "nav" | "aside" => SKIP_GENERIC,
        "iframe" | "object" | "embed" | "svg" | "select" | "textarea" => SKIP_OPAQUE,
        "td" if classes.has("alt2") => SKIP_VB,
        _ => 0,
    };
    if classes.0.is_empty() {
        return regions;
    }
    if classes.has("bbCodeBlock--quote") || classes.has("message-signature") {
        regions |= SKIP_XF;
    }
    if [
        "bbcode_container",
        "bbcode_quote",
        "quote_container",
        "signaturecontainer",
    ]
    .iter()
    .any(|c| classes.has(c))
    {
        regions |= SKIP_VB;
    }
    if classes.has("signature") {
        regions |= SKIP_VB | SKIP_PHPBB | SKIP_GENERIC;
    }
    regions
}

/// An attribute's value with character references decoded.
pub(super) fn attribute(el: &Element, name: &str) -> Option<String> {
    el.get_attribute(name)
        .map(|raw| htmlize::unescape_attribute(raw).into_owned())
}

impl Scan {
    fn push_frame(&mut self, kind: FrameKind) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.frames.push(Frame { seq, kind });
        seq
    }

    /// Closes the frame `seq`, if still open, and every frame opened after it.
    fn close(&mut self, seq: u64) {
        if self.frames.iter().rev().any(|frame| frame.seq == seq) {
            self.close_from(seq);
        }
    }

    fn close_from(&mut self, seq: u64) {
        while let Some(frame) = self.frames.last().copied() {
            if frame.seq < seq {
                break;
            }
            self.frames.pop();
            self.undo(frame);
        }
    }

    fn undo(&mut self, frame: Frame) {
        match frame.kind {
            FrameKind::Context(bits) => {
                for (bit, count) in self.contexts.iter_mut().enumerate() {
                    if bits & (1 << bit) != 0 {
                        *count -= 1;
                    }
                }
            }
            FrameKind::XfPost => self.xf_post = None,
            FrameKind::PhpbbPost => self.phpbb_post = None,
            FrameKind::VbContainer => {
                self.containers.pop();
                self.scopes.pop();
            }
            FrameKind::Scope => {
                self.scopes.pop();
            }
            FrameKind::Skip { regions, scopes } => {
                for open in &mut self.scopes[..scopes] {
                    if open.scope.skipped_regions() & regions != 0 {
                        open.skipped -= 1;
                    }
                }
            }
            FrameKind::Capture => {
                self.captures.pop();
            }
            FrameKind::Link => {
                if self.link.as_ref().is_some_and(|l| l.seq == frame.seq) {
                    self.finish_link();
                }
            }
            FrameKind::Video => {
                if self.video.as_ref().is_some_and(|v| v.seq == frame.seq) {
                    self.finish_video();
                }
            }
        }
    }

    /// The scopes that take what is met here (not inside a region they skip).
    fn taking_scopes(&self, everything: bool, href: Option<&str>) -> Vec<Scope> {
        self.scopes
            .iter()
            .filter(|open| open.skipped == 0)
            .map(|open| open.scope)
            .filter(|scope| !everything || scope.takes_everything())
            .filter(|scope| href.is_none_or(|h| scope.takes_link(h)))
            .collect()
    }

    fn media_list(&mut self, scope: Scope) -> &mut Vec<Rc<RawMedia>> {
        let page = &mut self.page;
        match scope {
            Scope::XfBody(i) => &mut page.xf_posts[i].body,
            Scope::XfAttachments(i) => &mut page.xf_posts[i].extra,
            Scope::VbBody(i) => &mut page.vb_bodies[i].media,
            Scope::VbTdBody(i) => &mut page.vb_td_bodies[i].media,
            Scope::VbContainer(i) => &mut page.vb_containers[i].extra,
            Scope::PhpbbBody(i) => &mut page.phpbb_posts[i].body,
            Scope::PhpbbAttachbox(i) => &mut page.phpbb_posts[i].extra,
            Scope::Generic => &mut page.generic,
        }
    }

    fn emit(&mut self, scopes: &[Scope], media: RawMedia) {
        let media = Rc::new(media);
        for scope in scopes {
            self.media_list(*scope).push(Rc::clone(&media));
        }
    }

    fn finish_link(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        self.emit(
            &link.scopes,
            RawMedia::Anchor {
                href: link.href,
                images: link.images,
            },
        );
        // Videos inside links are rare but real; they count after the link.
        let walked: Vec<Scope> = link
            .scopes
            .into_iter()
            .filter(|s| s.takes_everything())
            .collect();
        for sources in link.videos {
            self.emit(&walked, RawMedia::Video(sources));
        }
    }

    fn finish_video(&mut self) {
        let Some(video) = self.video.take() else {
            return;
        };
        if video.in_link {
            if let Some(link) = self.link.as_mut() {
                link.videos.push(video.sources);
            }
        } else {
            self.emit(&video.scopes, RawMedia::Video(video.sources));
        }
    }

    fn post(&mut self, post: PostRef) -> &mut RawPost {
        match post {
            PostRef::Xf(i) => &mut self.page.xf_posts[i],
            PostRef::VbContainer(i) => &mut self.page.vb_containers[i],
            PostRef::Phpbb(i) => &mut self.page.phpbb_posts[i],
        }
    }

    fn text(&mut self, chunk: &str) {
        for index in 0..self.captures.len() {
            let target = self.captures[index];
            let (text, limit) = match target {
                CaptureTarget::Title(i) => (&mut self.page.titles[i].1, MAX_CAPTURE_BYTES),
                CaptureTarget::JsonLd(i) => (&mut self.page.json_ld[i], usize::MAX),
                CaptureTarget::Author(post) => (
                    self.post(post).author.get_or_insert_with(String::new),
                    MAX_CAPTURE_BYTES,
                ),
                CaptureTarget::Date(post, i) => {
                    (&mut self.post(post).dates[i].text, MAX_CAPTURE_BYTES)
                }
            };
            if text.len() < limit {
                text.push_str(chunk);
            }
        }
    }
}

/// Pushes a frame for `el` that closes with its end tag. Elements that
/// cannot have content (`<img>`, `<embed>`) get none: they enclose nothing.
fn open_frame(s: &Shared, el: &mut Element, kind: FrameKind) -> Result<u64, HandlerError> {
    let seq = s.borrow_mut().push_frame(kind);
    let state = Rc::clone(s);
    el.on_end_tag(end_tag!(move |_| {
        state.borrow_mut().close(seq);
        Ok(())
    }))?;
    Ok(seq)
}

fn open_skip(s: &Shared, regions: u8, el: &mut Element) -> Result<Option<u64>, HandlerError> {
    if !el.can_have_content() {
        return Ok(None);
    }
    let scopes = {
        let mut scan = s.borrow_mut();
        for open in &mut scan.scopes {
            if open.scope.skipped_regions() & regions != 0 {
                open.skipped += 1;
            }
        }
        scan.scopes.len()
    };
    open_frame(s, el, FrameKind::Skip { regions, scopes }).map(Some)
}

fn open_scope(s: &Shared, scope: Scope, el: &mut Element) -> HandlerResult {
    if !el.can_have_content() {
        return Ok(());
    }
    s.borrow_mut().scopes.push(OpenScope { scope, skipped: 0 });
    open_frame(s, el, FrameKind::Scope).map(drop)
}

fn open_capture(s: &Shared, target: CaptureTarget, el: &mut Element) -> HandlerResult {
    if !el.can_have_content() {
        return Ok(());
    }
    s.borrow_mut().captures.push(target);
    open_frame(s, el, FrameKind::Capture).map(drop)
}

fn open_title(s: &Shared, source: TitleSource, el: &mut Element) -> HandlerResult {
    let index = {
        let mut scan = s.borrow_mut();
        scan.page.titles.push((source, String::new()));
        scan.page.titles.len() - 1
    };
    open_capture(s, CaptureTarget::Title(index), el)
}

/// The first author element of a post: its text.
fn open_author(s: &Shared, post: PostRef, el: &mut Element) -> HandlerResult {
    {
        let mut scan = s.borrow_mut();
        let post = scan.post(post);
        if post.author.is_some() {
            return Ok(());
        }
        post.author = Some(String::new());
    }
    open_capture(s, CaptureTarget::Author(post), el)
}

fn open_date(s: &Shared, post: PostRef, el: &mut Element) -> HandlerResult {
    let index = {
        let mut scan = s.borrow_mut();
        let dates = &mut scan.post(post).dates;
        dates.push(RawDate {
            data_time: attribute(el, "data-time"),
            datetime: attribute(el, "datetime"),
            text: String::new(),
        });
        dates.len() - 1
    };
    open_capture(s, CaptureTarget::Date(post, index), el)
}

fn xf_post(s: &Shared, el: &mut Element) -> HandlerResult {
    let index = {
        let mut scan = s.borrow_mut();
        scan.page.xf_post_seen = true;
        // A post inside a post (never in XenForo's markup) stays part of the outer one.
        if scan.xf_post.is_some() || !el.can_have_content() {
            return Ok(());
        }
        let id = attribute(el, "data-content")
            .and_then(|c| c.strip_prefix("post-").map(|id| id.trim().to_owned()))
            .unwrap_or_default();
        scan.page.xf_posts.push(RawPost {
            id,
            author: attribute(el, "data-author"),
            ..RawPost::default()
        });
        scan.page.xf_posts.len() - 1
    };
    s.borrow_mut().xf_post = Some(index);
    open_frame(s, el, FrameKind::XfPost).map(drop)
}

fn phpbb_post(s: &Shared, el: &mut Element, id: &str) -> HandlerResult {
    let index = {
        let mut scan = s.borrow_mut();
        scan.page.phpbb_post_seen = true;
        if scan.phpbb_post.is_some() || !el.can_have_content() || !is_post_id(id) {
            return Ok(());
        }
        scan.page.phpbb_posts.push(RawPost {
            id: id.to_owned(),
            ..RawPost::default()
        });
        scan.page.phpbb_posts.len() - 1
    };
    s.borrow_mut().phpbb_post = Some(index);
    open_frame(s, el, FrameKind::PhpbbPost).map(drop)
}

/// `li#post_N` (vB4), `table#postN` or `div#editN` (vB3): where a post's
/// author, date and attachment links sit around its body.
fn vb_container(s: &Shared, el: &mut Element, id: &str) -> HandlerResult {
    let digits = id
        .strip_prefix("post_")
        .or_else(|| id.strip_prefix("post"))
        .or_else(|| id.strip_prefix("edit"))
        .filter(|d| is_post_id(d));
    let (Some(digits), true) = (digits, el.can_have_content()) else {
        return Ok(());
    };
    {
        let mut scan = s.borrow_mut();
        scan.page.vb_containers.push(RawPost {
            id: digits.to_owned(),
            ..RawPost::default()
        });
        let index = scan.page.vb_containers.len() - 1;
        scan.containers.push(index);
        scan.scopes.push(OpenScope {
            scope: Scope::VbContainer(index),
            skipped: 0,
        });
    }
    open_frame(s, el, FrameKind::VbContainer).map(drop)
}

fn vb_body(s: &Shared, el: &mut Element, id: &str, in_cell: bool) -> HandlerResult {
    if !is_post_id(id) {
        return Ok(());
    }
    let id = id.to_owned();
    let scope = {
        let mut scan = s.borrow_mut();
        let container = scan
            .containers
            .iter()
            .rev()
            .copied()
            .find(|&c| scan.page.vb_containers[c].id == id);
        let body = RawVbBody {
            id,
            container,
            media: Vec::new(),
        };
        if in_cell {
            scan.page.vb_td_bodies.push(body);
            Scope::VbTdBody(scan.page.vb_td_bodies.len() - 1)
        } else {
            scan.page.vb_bodies.push(body);
            Scope::VbBody(scan.page.vb_bodies.len() - 1)
        }
    };
    open_scope(s, scope, el)
}

fn open_link(s: &Shared, el: &mut Element, href: String) -> HandlerResult {
    let scopes = {
        let mut scan = s.borrow_mut();
        if href.contains("page") || href.contains("start") {
            scan.page.page_links.push(href.clone());
        }
        // A link inside a link ends the outer one, as HTML parsing does.
        scan.finish_link();
        scan.taking_scopes(false, Some(&href))
    };
    if scopes.is_empty() || !el.can_have_content() {
        return Ok(());
    }
    let seq = open_frame(s, el, FrameKind::Link)?;
    s.borrow_mut().link = Some(OpenLink {
        seq,
        href,
        images: Vec::new(),
        videos: Vec::new(),
        scopes,
    });
    Ok(())
}

/// The candidate sources and declared size of an `<img>`.
pub(super) fn raw_image(el: &Element) -> RawImage {
    RawImage {
        sources: [
            "data-url",
            "data-src",
            "data-original",
            "data-lazy-src",
            "src",
        ]
        .iter()
        .filter_map(|name| attribute(el, name))
        .collect(),
        width: attribute(el, "width"),
        height: attribute(el, "height"),
        class: attribute(el, "class"),
        marked_smilie: el.has_attribute("data-smilie") || el.has_attribute("data-shortname"),
    }
}

fn image(s: &Shared, el: &mut Element) {
    let mut scan = s.borrow_mut();
    if scan.video.is_some() {
        // A video's fallback content.
        return;
    }
    if let Some(link) = scan.link.as_mut() {
        link.images.push(raw_image(el));
        return;
    }
    let scopes = scan.taking_scopes(true, None);
    if !scopes.is_empty() {
        scan.emit(&scopes, RawMedia::Image(raw_image(el)));
    }
}

fn open_video(s: &Shared, el: &mut Element) -> HandlerResult {
    let (in_link, scopes) = {
        let scan = s.borrow();
        if scan.video.is_some() || !el.can_have_content() {
            return Ok(());
        }
        let in_link = scan.link.is_some();
        let scopes = if in_link {
            Vec::new()
        } else {
            scan.taking_scopes(true, None)
        };
        (in_link, scopes)
    };
    if !in_link && scopes.is_empty() {
        return Ok(());
    }
    let seq = open_frame(s, el, FrameKind::Video)?;
    s.borrow_mut().video = Some(OpenVideo {
        seq,
        sources: attribute(el, "src")
            .into_iter()
            .chain(attribute(el, "data-src"))
            .collect(),
        in_link,
        scopes,
    });
    Ok(())
}

pub(super) fn is_post_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}
