//! Unit tests of the forum platform: saved pages of each engine and host
//! through one `check` helper, and random HTML that must never panic.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use reqwest::StatusCode;
use url::Url;

use super::hosts::{
    Chevereto, ImageHosts, Imagebam, Imagetwist, Imgbox, Imxto, Pixhost, Postimg, pick,
};
use super::parse::{find_form, largest_image, parse_thread_page, select_url};
use super::session::FetchedPage;
use super::{MediaKind, MediaLink, host_link, posts_after, suggested_name};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/forum")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Where a link leads without any request: a host's thumbnail rewrite, or
/// the link itself; `None` for plain links to pages no host knows.
fn offline_target(hosts: &ImageHosts, link: &MediaLink) -> Option<Url> {
    match link.kind {
        MediaKind::Video | MediaKind::Attachment => Some(link.target.clone()),
        MediaKind::Image | MediaKind::Page => {
            let host_link = host_link(link);
            match hosts.find(&host_link) {
                Some(host) => Some(
                    host.rewrite(&host_link)
                        .unwrap_or_else(|| link.target.clone()),
                ),
                None if link.kind == MediaKind::Image || link.thumbnail.is_some() => {
                    Some(link.target.clone())
                }
                None => None,
            }
        }
    }
}

/// Parses `testdata/forum/<name>.html` and compares it with `<name>.expected`:
/// `# key: value` lines (url, engine, title, next, authors, dates,
/// login-wall) and then `<post id> <url>` per expected file, in order.
fn check(name: &str) -> Result<(), String> {
    let html = read(&testdata().join(format!("{name}.html")));
    let expected = read(&testdata().join(format!("{name}.expected")));
    let mut headers = std::collections::HashMap::new();
    let mut expected_urls = Vec::new();
    for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(header) = line.strip_prefix('#') {
            let (key, value) = header
                .split_once(':')
                .ok_or(format!("bad header {line:?}"))?;
            headers.insert(key.trim().to_owned(), value.trim().to_owned());
        } else {
            let (post, url) = line.split_once(' ').ok_or(format!("bad line {line:?}"))?;
            expected_urls.push(format!("{post} {}", url.trim()));
        }
    }
    let url = Url::parse(headers.get("url").ok_or("no # url")?).map_err(|e| e.to_string())?;
    let page = parse_thread_page(&html, &url);
    let hosts = ImageHosts::builtin();
    let mut problems = Vec::new();
    let mut compare = |what: &str, got: String, want: &str| {
        if got != want {
            problems.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    if let Some(engine) = headers.get("engine") {
        compare("engine", page.engine.as_str().to_owned(), engine);
    }
    if let Some(title) = headers.get("title") {
        compare("title", page.title.clone().unwrap_or_default(), title);
    }
    if let Some(next) = headers.get("next") {
        compare(
            "next",
            page.next_page
                .as_ref()
                .map(Url::to_string)
                .unwrap_or_default(),
            next,
        );
    } else if !headers.contains_key("login-wall") {
        compare(
            "next",
            page.next_page
                .as_ref()
                .map(Url::to_string)
                .unwrap_or_default(),
            "",
        );
    }
    let wall = if page.login_wall.is_some() {
        "yes"
    } else {
        "no"
    };
    compare(
        "login-wall",
        wall.to_owned(),
        headers.get("login-wall").map_or("no", String::as_str),
    );
    for (key, field) in [("authors", 0), ("dates", 1)] {
        let Some(list) = headers.get(key) else {
            continue;
        };
        for pair in list.split_whitespace() {
            let (id, want) = pair.split_once('=').ok_or(format!("bad {key} {pair:?}"))?;
            let post = page.posts.iter().find(|p| p.id == id);
            let got = post
                .and_then(|p| match field {
                    0 => p.author.clone(),
                    _ => p.posted_at.map(|d| d.to_rfc3339()),
                })
                .unwrap_or_default();
            compare(&format!("{key} of {id}"), got, want);
        }
    }
    let got_urls: Vec<String> = page
        .posts
        .iter()
        .flat_map(|post| {
            post.media
                .iter()
                .filter_map(|link| offline_target(&hosts, link))
                .map(move |url| format!("{} {url}", post.id))
        })
        .collect();
    if got_urls != expected_urls {
        problems.push(format!(
            "media:\n  got:\n    {}\n  want:\n    {}",
            got_urls.join("\n    "),
            expected_urls.join("\n    ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn saved_thread_pages() {
    let mut names: Vec<String> = std::fs::read_dir(testdata())
        .expect("testdata/forum")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".expected").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 8, "testdata pages: {names:?}");
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| check(name).err().map(|err| format!("== {name}\n{err}")))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn host_page(file: &str, url: &str) -> FetchedPage {
    FetchedPage {
        url: Url::parse(url).unwrap(),
        status: StatusCode::OK,
        content_type: Some("text/html; charset=utf-8".into()),
        body: read(&testdata().join("hosts").join(file)),
    }
}

#[test]
fn saved_host_pages() {
    type Resolve = fn(&FetchedPage) -> Option<Url>;
    let cases: &[(&str, &str, Resolve, Option<&str>)] = &[
        (
            "pixhost.html",
            "https://pixhost.to/show/123/4567_jane1.jpg",
            |p| pick(p, Pixhost::SELECTORS),
            Some("https://img12.pixhost.to/images/123/4567_jane1.jpg"),
        ),
        (
            "imgbox.html",
            "https://imgbox.com/AbCdEf12",
            |p| pick(p, Imgbox::SELECTORS),
            Some("https://images2.imgbox.com/ab/cd/AbCdEf12_o.jpg"),
        ),
        (
            "imagebam.html",
            "https://www.imagebam.com/view/MEABC12",
            |p| pick(p, Imagebam::SELECTORS),
            Some("https://images4.imagebam.com/ab/cd/ef/MEABC12_o.jpeg"),
        ),
        (
            "imagebam_interstitial.html",
            "https://www.imagebam.com/view/MEABC12",
            |p| select_url(&p.body, &p.url, Imagebam::CONTINUE, "href"),
            Some("https://www.imagebam.com/view/MEABC12"),
        ),
        (
            "imagetwist.html",
            "https://imagetwist.com/x7k2m9q1p0ab/jane_premiere_03.jpg",
            |p| pick(p, Imagetwist::SELECTORS),
            Some("https://img119.imagetwist.com/i/54321/x7k2m9q1p0ab.jpg/jane_premiere_03.jpg"),
        ),
        (
            "postimg.html",
            "https://postimg.cc/AbCd1234",
            Postimg::image_on,
            Some("https://i.postimg.cc/AbCd1234/jane.jpg"),
        ),
        (
            "imx_image.html",
            "https://imx.to/i/2abcd",
            |p| pick(p, Imxto::SELECTORS),
            Some("https://imx.to/u/i/2023/01/15/2abcd.jpg"),
        ),
        (
            "chevereto.html",
            "https://pics.example/image/jane-gala.Xy12",
            |p| pick(p, Chevereto::SELECTORS),
            Some("https://pics.example/images/2023/01/15/jane-gala.jpg"),
        ),
        (
            "unknown_host.html",
            "https://somehost.example/image/8842",
            |p| largest_image(&p.body, &p.url),
            Some("https://somehost.example/files/8842/full_jane.jpg"),
        ),
        (
            "no_image.html",
            "https://somehost.example/image/1",
            |p| largest_image(&p.body, &p.url),
            None,
        ),
    ];
    for (file, url, resolve, want) in cases {
        let page = host_page(file, url);
        assert_eq!(resolve(&page).map(String::from).as_deref(), *want, "{file}");
    }
    // The imagebam interstitial has no main image: strict selectors find nothing.
    let interstitial = host_page(
        "imagebam_interstitial.html",
        "https://www.imagebam.com/view/MEABC12",
    );
    assert!(
        Imagebam::SELECTORS.iter().all(|(css, attr)| select_url(
            &interstitial.body,
            &interstitial.url,
            css,
            attr
        )
        .is_none())
    );
    // imx.to asks to continue with a form that posts `imgContinue`.
    let imx = host_page("imx_continue.html", "https://imx.to/i/2abcd");
    let form = find_form(&imx.body, &imx.url, "form", false).expect("continue form");
    assert_eq!(form.method, "POST");
    assert_eq!(form.action.as_str(), "https://imx.to/i/2abcd");
    assert!(form.fields.iter().any(|(name, _)| name == "imgContinue"));
}

#[test]
fn resumed_pages_skip_posts_seen_before() {
    let page = parse_thread_page(
        &read(&testdata().join("xenforo2_thread.html")),
        &Url::parse("https://forum.example/threads/jane-doe-red-carpet-photos.4567/").unwrap(),
    );
    let ids = |posts: Vec<super::Post>| posts.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(posts_after(page.posts.clone(), "100001")),
        ["100002", "100003"]
    );
    assert_eq!(
        ids(posts_after(page.posts.clone(), "100003")),
        Vec::<String>::new()
    );
    // The remembered post was deleted: later ids are new.
    assert_eq!(ids(posts_after(page.posts.clone(), "100002")), ["100003"]);
    assert_eq!(ids(posts_after(page.posts.clone(), "99999")).len(), 3);
}

#[test]
fn attachment_names_come_back() {
    let link = |kind, target: &str| MediaLink {
        kind,
        target: Url::parse(target).unwrap(),
        thumbnail: None,
    };
    let xf = link(
        MediaKind::Attachment,
        "https://forum.example/attachments/jane-doe-premiere-jpg.98765/",
    );
    assert_eq!(
        suggested_name(&xf.target, &xf).as_deref(),
        Some("jane-doe-premiere.jpg")
    );
    let image = link(MediaKind::Image, "https://cdn.example/a/b%20c.jpg");
    assert_eq!(
        suggested_name(&image.target, &image).as_deref(),
        Some("b c.jpg")
    );
}

/// Pieces of forum markup, put together at random (and with random text)
/// to look for panics and non-http results.
fn html_fragment() -> impl Strategy<Value = String> {
    let href = prop_oneof![
        Just("javascript:alert(1)".to_owned()),
        Just("data:image/png;base64,AAAA".to_owned()),
        Just("//cdn.example/x.jpg".to_owned()),
        Just("../../../etc/passwd".to_owned()),
        Just("/goto/link-confirmation?url=amF2YXNjcmlwdDphbGVydCgxKQ==".to_owned()),
        Just("/redirect/?to=%%%".to_owned()),
        Just("/proxy.php?image=file%3A%2F%2F%2Fetc%2Fpasswd".to_owned()),
        Just("https://pixhost.to/show/1/2.jpg".to_owned()),
        Just("/attachments/a-jpg.12/".to_owned()),
        Just("http://[::1".to_owned()),
        "[a-z0-9./:?=&%#-]{0,40}",
        "\\PC{0,20}",
    ];
    let tag = prop_oneof![
        Just("div"),
        Just("article"),
        Just("blockquote"),
        Just("a"),
        Just("img"),
        Just("video"),
        Just("source"),
        Just("li"),
        Just("td"),
        Just("table"),
        Just("form"),
        Just("input"),
        Just("script"),
        Just("time"),
        Just("base"),
    ];
    let attr = prop_oneof![
        Just("class=\"message bbWrapper\""),
        Just("class=\"post\""),
        Just("class=\"content\""),
        Just("class=\"smilie\""),
        Just("data-content=\"post-7\""),
        Just("data-content=\"post-\""),
        Just("id=\"post_message_12\""),
        Just("id=\"td_post_99999999999999999999999\""),
        Just("id=\"p3\""),
        Just("id=\"XF\""),
        Just("type=\"password\""),
        Just("type=\"application/ld+json\""),
        Just("width=\"4294967296\""),
        Just("height=\"-3\""),
        Just("data-time=\"-99999999999999\""),
        Just("datetime=\"2023-99-99\""),
        Just("rel=\"next\""),
        Just(""),
    ];
    (tag, attr, href, "\\PC{0,12}", any::<bool>()).prop_map(|(tag, attr, href, text, close)| {
        let link_attr = match tag {
            "a" | "base" => "href",
            _ => "src",
        };
        let mut out = format!("<{tag} {attr} {link_attr}=\"{href}\" data-src=\"{href}\">{text}");
        if close {
            out.push_str(&format!("</{tag}>"));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_markup_never_panics_and_yields_only_http(
        parts in prop::collection::vec(html_fragment(), 0..60),
        prefix in prop_oneof![
            Just("<html id=\"XF\"><body>"),
            Just("<html><body id=\"phpbb\">"),
            Just("<meta name=\"generator\" content=\"vBulletin 4\">"),
            Just(""),
        ],
    ) {
        let html = format!("{prefix}{}", parts.concat());
        let url = Url::parse("https://forum.example/threads/t.1/page-2").unwrap();
        let page = parse_thread_page(&html, &url);
        for post in &page.posts {
            for link in &post.media {
                prop_assert!(matches!(link.target.scheme(), "http" | "https"), "{}", link.target);
            }
        }
        if let Some(next) = &page.next_page {
            prop_assert!(matches!(next.scheme(), "http" | "https"));
        }
        let _ = largest_image(&html, &url);
        let _ = find_form(&html, &url, "form", true);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let url = Url::parse("https://forum.example/showthread.php?t=1").unwrap();
        let _ = parse_thread_page(&text, &url);
    }
}

#[test]
fn deeply_nested_markup_is_walked_without_recursion() {
    let depth = 20_000;
    let html = format!(
        "<html id=\"XF\"><body><article class=\"message\" data-content=\"post-1\"><div class=\"bbWrapper\">{}<a href=\"https://cdn.example/deep.jpg\"><img src=\"https://cdn.example/deep_t.jpg\"></a>{}</div></article></body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let page = parse_thread_page(
        &html,
        &Url::parse("https://forum.example/threads/a.1/").unwrap(),
    );
    let targets: Vec<String> = page
        .posts
        .iter()
        .flat_map(|p| p.media.iter().map(|m| m.target.to_string()))
        .collect();
    assert_eq!(targets, ["https://cdn.example/deep.jpg"]);
}

/// The media targets of each post, as `<post id> <target>` lines.
fn targets(html: &str, url: &str) -> Vec<String> {
    let page = parse_thread_page(html, &Url::parse(url).unwrap());
    page.posts
        .iter()
        .flat_map(|post| {
            post.media
                .iter()
                .map(move |link| format!("{} {}", post.id, link.target))
        })
        .collect()
}

fn xenforo_post(id: u32, body: &str) -> String {
    format!(
        r#"<article class="message" data-content="post-{id}" data-author="A"><div class="bbWrapper">{body}</div></article>"#
    )
}

#[test]
fn character_references_in_links_are_decoded() {
    let html = format!(
        r#"<html id="XF"><head><title>Fish &amp; Chips</title></head><body>{}
        <a class="pageNav-jump pageNav-jump--next" href="/threads/a.1/page-2?x=1&amp;y=2">Next</a></body></html>"#,
        xenforo_post(
            1,
            r#"<a href="https://host.example/show.php?id=1&amp;size=full"><img src="https://host.example/t/1.jpg?a=1&amp;b=2"></a>
            <img src="https://cdn.example/full.jpg?w=1&#38;h=2">
            <a href="https://host.example/img.php?a=1&copy=2"><img src="https://host.example/t/2.jpg"></a>"#
        )
    );
    let url = Url::parse("https://forum.example/threads/a.1/").unwrap();
    let page = parse_thread_page(&html, &url);
    let media = &page.posts[0].media;
    assert_eq!(
        media[0].target.as_str(),
        "https://host.example/show.php?id=1&size=full"
    );
    assert_eq!(
        media[0].thumbnail.as_ref().unwrap().as_str(),
        "https://host.example/t/1.jpg?a=1&b=2"
    );
    assert_eq!(
        media[1].target.as_str(),
        "https://cdn.example/full.jpg?w=1&h=2"
    );
    // In an attribute, `&copy` followed by `=` is not a reference (HTML's rule).
    assert_eq!(
        media[2].target.as_str(),
        "https://host.example/img.php?a=1&copy=2"
    );
    assert_eq!(
        page.next_page.unwrap().as_str(),
        "https://forum.example/threads/a.1/page-2?x=1&y=2"
    );
    assert_eq!(page.title.as_deref(), Some("Fish & Chips"));
}

#[test]
fn nested_quotes_are_left_out_and_what_follows_them_counts() {
    let html = format!(
        r#"<html id="XF"><body>{}</body></html>"#,
        xenforo_post(
            1,
            r#"<blockquote><img src="https://cdn.example/q1.jpg">
                <blockquote><img src="https://cdn.example/q2.jpg"></blockquote>
                <img src="https://cdn.example/q3.jpg"></blockquote>
            <img src="https://cdn.example/own.jpg">"#
        )
    );
    assert_eq!(
        targets(&html, "https://forum.example/threads/a.1/"),
        ["1 https://cdn.example/own.jpg"]
    );
}

#[test]
fn malformed_markup_is_read_as_a_browser_would() {
    let url = "https://forum.example/threads/a.1/";
    // A quote never closed ends with the element around it.
    let html = format!(
        r#"<html id="XF"><body>{}</body></html>"#,
        xenforo_post(
            1,
            r#"<div><blockquote><img src="https://cdn.example/quoted.jpg"></div>
            <img src="https://cdn.example/after.jpg">"#
        )
    );
    assert_eq!(targets(&html, url), ["1 https://cdn.example/after.jpg"]);
    // A link never closed ends where the next one starts; the second post
    // and the page's end close everything left open.
    let html = format!(
        r#"<html id="XF"><body>{}<article class="message" data-content="post-2"><div class="bbWrapper">
        <a href="https://cdn.example/b.jpg"><img src="https://cdn.example/b_t.jpg">"#,
        xenforo_post(
            1,
            r#"<a href="https://cdn.example/a1.jpg"><img src="https://cdn.example/a1_t.jpg"><a href="https://cdn.example/a2.jpg">x</a>"#
        )
    );
    assert_eq!(
        targets(&html, url),
        [
            "1 https://cdn.example/a1.jpg",
            "1 https://cdn.example/a2.jpg",
            "2 https://cdn.example/b.jpg"
        ]
    );
    // A generic page whose head is never closed: `<body>` closes it.
    let html = r#"<html><head><title>Gallery</title><body>
        <a href="https://host.example/v/1"><img src="https://host.example/t/1.jpg"></a>"#;
    assert_eq!(targets(html, url), ["page https://host.example/v/1"]);
}
