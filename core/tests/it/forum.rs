//! The forum platform end to end: a local fixture forum (XenForo markup,
//! three pages) whose thumbnails link to a fake image host, through the
//! engine on the in-memory store; and `discover` directly for login walls,
//! oversized pages and logging in.

use std::sync::Arc;

use futures::StreamExt;
use mediadl::downloader::{Context, Downloader, Request};
use mediadl::error::DownloadError;
use mediadl::model::{DownloadStatus, NewQueueItem, Settings};
use mediadl::platforms::forum::{Forum, state_key, thread_id};
use mediadl::store::{MemoryStore, QueueRepo, StateRepo};
use mediadl::testkit::{self, Fixture, FixtureServer, TestEngine};
use serde_json::json;
use url::Url;

const THREAD: &str = "/threads/fixture-thread.1/";

fn image_bytes(n: u32) -> Vec<u8> {
    let mut bytes = b"\xFF\xD8\xFF\xE0fake jpeg ".to_vec();
    bytes.extend((0..20_000u32).map(|i| (i.wrapping_mul(7).wrapping_add(n * 13) % 251) as u8));
    bytes
}

/// One XenForo post: `(post id, author, link target, thumbnail)`.
struct FixturePost {
    id: u32,
    author: &'static str,
    body: String,
}

fn post_linking(id: u32, host: &FixtureServer, target: &str) -> FixturePost {
    FixturePost {
        id,
        author: if id.is_multiple_of(2) {
            "Second"
        } else {
            "First"
        },
        body: format!(
            r#"Photo {id} <img src="/styles/smilies/smile.png" class="smilie" alt=":)">
            <a href="{}" target="_blank" class="link link--external"><img src="{}" class="bbImage" alt="t"></a>
            <blockquote class="bbCodeBlock bbCodeBlock--quote"><a href="{}"><img src="{}"></a></blockquote>"#,
            host.url(target),
            host.url(&format!("/thumbs/{id}.jpg")),
            host.url("/show/quoted"),
            host.url("/thumbs/quoted.jpg"),
        ),
    }
}

/// A one-page thread whose only post is `body` by `author`.
fn single_post_page(title: &str, id: u32, author: &'static str, body: impl Into<String>) -> String {
    let post = FixturePost {
        id,
        author,
        body: body.into(),
    };
    xenforo_page(title, &[post], None)
}

fn xenforo_page(title: &str, posts: &[FixturePost], next: Option<&str>) -> String {
    let articles: String = posts
        .iter()
        .map(|post| {
            format!(
                r#"<article class="message message--post js-post" data-author="{author}" data-content="post-{id}" id="js-post-{id}">
  <div class="message-inner"><div class="message-cell message-cell--user"><img class="avatar" src="/data/avatars/m/0/{id}.jpg" width="96" height="96"></div>
  <div class="message-cell message-cell--main"><header class="message-attribution"><time class="u-dt" datetime="2024-03-0{day}T10:00:00+0000" data-time="{time}">Mar</time></header>
  <div class="message-content"><article class="message-body"><div class="bbWrapper">{body}</div></article></div>
  <aside class="message-signature"><div class="bbWrapper"><img src="/sig/banner.jpg" class="bbImage"></div></aside></div></div>
</article>"#,
                author = post.author,
                id = post.id,
                day = 1 + post.id % 9,
                time = 1_709_287_200 + u64::from(post.id) * 86_400,
                body = post.body,
            )
        })
        .collect();
    let next = next
        .map(|href| format!(r#"<a href="{href}" class="pageNav-jump pageNav-jump--next">Next</a>"#))
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html id="XF" data-template="thread_view"><head><title>{title} | Fixture Forum</title></head>
<body><div class="p-title"><h1 class="p-title-value">{title}</h1></div>
<div class="pageNav">{next}</div><div class="block-body">{articles}</div></body></html>"#
    )
}

/// An image host viewer page: a logo, an ad and the image.
fn host_page(image: &str) -> String {
    format!(
        r#"<html><body><img src="/logo.png" width="160" height="40">
        <img src="/ad.gif" width="728" height="90"><div class="viewer"><img src="{image}" width="1600" height="1200"></div></body></html>"#
    )
}

/// A forum on one fixture server whose posts link to an image host on another.
struct FixtureForum {
    forum: FixtureServer,
    host: FixtureServer,
}

impl FixtureForum {
    async fn start() -> Self {
        let forum = FixtureServer::start().await;
        let host = FixtureServer::start().await;
        for n in 1..=20u32 {
            host.route(
                &format!("/show/{n}"),
                Fixture::html(host_page(&format!("/img/{n}.jpg"))),
            );
            host.route(
                &format!("/img/{n}.jpg"),
                Fixture::bytes(image_bytes(n)).header("content-type", "image/jpeg"),
            );
        }
        host.route("/show/quoted", Fixture::html(host_page("/img/quoted.jpg")));
        Self { forum, host }
    }

    fn page_path(page: u32) -> String {
        if page == 1 {
            THREAD.to_owned()
        } else {
            format!("{THREAD}page-{page}")
        }
    }

    /// Serves the thread with `posts_per_page[i]` post ids on page `i + 1`.
    fn serve(&self, pages: &[Vec<u32>]) {
        for (index, ids) in pages.iter().enumerate() {
            let page = index as u32 + 1;
            let posts: Vec<FixturePost> = ids
                .iter()
                .map(|id| post_linking(*id, &self.host, &format!("/show/{id}")))
                .collect();
            let next = (index + 1 < pages.len()).then(|| Self::page_path(page + 1));
            self.forum.route(
                &Self::page_path(page),
                Fixture::html(xenforo_page("Fixture Thread", &posts, next.as_deref())),
            );
        }
    }

    fn thread_url(&self) -> String {
        self.forum.url(THREAD)
    }
}

fn forum_settings(extra: serde_json::Value) -> Settings {
    let mut settings = Settings::default();
    let mut section = json!({"enabled": true, "request_interval_ms": 0});
    if let (Some(section), Some(extra)) = (section.as_object_mut(), extra.as_object()) {
        section.extend(extra.clone());
    }
    settings.platforms.insert("forum".into(), section);
    settings
}

async fn check_thread(test: &TestEngine, url: &str) -> i64 {
    let item = test
        .queue()
        .submit(NewQueueItem::new(url, "forum", "FixtureForum", "images"))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let done = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_completed(&done);
    item.id
}

#[tokio::test]
async fn a_thread_across_three_pages_then_only_the_new_post() {
    let fixture = FixtureForum::start().await;
    fixture.serve(&[vec![1, 2], vec![3, 4], vec![5, 6]]);
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(forum_settings(json!({})));

    check_thread(&test, &fixture.thread_url()).await;
    let list = test.downloads().await;
    assert_eq!(
        list.total,
        6,
        "{:#?}",
        list.items.iter().map(|d| &d.url).collect::<Vec<_>>()
    );
    for download in &list.items {
        assert_eq!(
            download.status,
            DownloadStatus::Completed,
            "{:?}",
            download.error_message
        );
        assert_eq!(download.platform, "forum");
        assert_eq!(download.source, "FixtureForum");
        let post_id: u32 = download.metadata["post_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            download.url,
            fixture.host.url(&format!("/img/{post_id}.jpg"))
        );
        assert_eq!(download.metadata["thread_id"], "1");
        assert_eq!(download.metadata["thread_title"], "Fixture Thread");
        assert_eq!(download.metadata["forum"], "FixtureForum");
        let author = if post_id.is_multiple_of(2) {
            "Second"
        } else {
            "First"
        };
        assert_eq!(download.metadata["author"], author);
        assert!(download.post_date.is_some());
        let path = std::path::PathBuf::from(download.file_path.as_deref().unwrap());
        assert!(path.starts_with(root.path()), "{path:?}");
        assert_eq!(std::fs::read(&path).unwrap(), image_bytes(post_id));
    }
    // Never the thumbnails, the quoted post's image, avatars, smilies or signatures.
    for path in ["/thumbs/1.jpg", "/show/quoted", "/img/quoted.jpg"] {
        assert_eq!(fixture.host.hits(path), 0, "{path}");
    }
    for path in [
        "/data/avatars/m/0/1.jpg",
        "/sig/banner.jpg",
        "/styles/smilies/smile.png",
    ] {
        assert_eq!(fixture.forum.hits(path), 0, "{path}");
    }
    let key = state_key(&thread_id(&Url::parse(&fixture.thread_url()).unwrap()));
    let state = test
        .store
        .get_state(&key)
        .await
        .unwrap()
        .expect("thread state");
    assert_eq!(
        state["last_page_url"],
        fixture.forum.url(&format!("{THREAD}page-3"))
    );
    assert_eq!(state["last_post_id"], "6");

    // A post is appended on the last page: the next check starts there and
    // downloads only the new image.
    fixture.serve(&[vec![1, 2], vec![3, 4], vec![5, 6, 7]]);
    check_thread(&test, &fixture.thread_url()).await;
    let list = test.downloads().await;
    assert_eq!(list.total, 7);
    assert_eq!(fixture.forum.hits(THREAD), 1, "page 1 is not read again");
    assert_eq!(fixture.forum.hits(&format!("{THREAD}page-2")), 1);
    assert_eq!(fixture.forum.hits(&format!("{THREAD}page-3")), 2);
    for n in 1..=7 {
        assert_eq!(fixture.host.hits(&format!("/img/{n}.jpg")), 1, "image {n}");
        assert_eq!(fixture.host.hits(&format!("/show/{n}")), 1, "host page {n}");
    }
    let state = test.store.get_state(&key).await.unwrap().unwrap();
    assert_eq!(state["last_post_id"], "7");

    // A new page appears after the last one: followed from there.
    fixture.serve(&[vec![1, 2], vec![3, 4], vec![5, 6, 7], vec![8]]);
    check_thread(&test, &fixture.thread_url()).await;
    let total = test.downloads().await.total;
    assert_eq!(total, 8);
    assert_eq!(fixture.forum.hits(THREAD), 1);
}

#[tokio::test]
async fn broken_links_fail_alone_and_bad_links_are_ignored() {
    let fixture = FixtureForum::start().await;
    fixture.host.route(
        "/show/empty",
        Fixture::html("<html><body><p>Image removed</p></body></html>"),
    );
    fixture
        .host
        .route("/show/loop", Fixture::redirect("/show/loop"));
    let mut posts = vec![
        post_linking(1, &fixture.host, "/show/empty"),
        post_linking(2, &fixture.host, "/show/loop"),
        post_linking(3, &fixture.host, "/show/3"),
    ];
    posts.push(FixturePost {
        id: 4,
        author: "Prankster",
        body: format!(
            r#"<a href="javascript:alert(1)">js</a> <a href="data:text/html,hi">data</a>
            <img src="data:image/png;base64,AAAA"> <a href="mailto:a@b.c">mail</a>
            <a href="{}"><img src="{}"></a>"#,
            fixture.host.url("/img/..%2F..%2Fetc%2Fpasswd%00.jpg"),
            fixture.host.url("/thumbs/4.jpg"),
        ),
    });
    fixture.host.route(
        "/img/..%2F..%2Fetc%2Fpasswd%00.jpg",
        Fixture::bytes(image_bytes(4)).header("content-type", "image/jpeg"),
    );
    fixture
        .forum
        .route(THREAD, Fixture::html(xenforo_page("Broken", &posts, None)));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(forum_settings(json!({})));
    check_thread(&test, &fixture.thread_url()).await;

    let list = test.downloads().await;
    let by_post = |id: &str| list.items.iter().find(|d| d.metadata["post_id"] == id);
    let good = by_post("3").expect("post 3 downloaded");
    assert_eq!(good.status, DownloadStatus::Completed);
    let odd_name = by_post("4").expect("post 4 downloaded");
    assert_eq!(odd_name.status, DownloadStatus::Completed);
    let path = std::path::PathBuf::from(odd_name.file_path.as_deref().unwrap());
    assert!(path.starts_with(root.path()), "{path:?}");
    for (post, reason) in [("1", "no image"), ("2", "redirect")] {
        let failed = by_post(post).unwrap_or_else(|| panic!("post {post}: no failed record"));
        assert_eq!(failed.status, DownloadStatus::Failed, "post {post}");
        let message = failed.error_message.as_deref().unwrap_or_default();
        assert!(message.contains(reason), "post {post}: {message}");
    }
    assert!(
        list.items
            .iter()
            .all(|d| d.status == DownloadStatus::Failed || d.file_path.is_some()),
        "{list:#?}"
    );
    // Only the two good files (the engine may leave its hidden lock files).
    let files: Vec<_> = walk(root.path())
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn context(settings: Settings, state: Arc<MemoryStore>) -> Context {
    testkit::context(settings, state)
}

fn request(url: &str) -> Request {
    Request::new("forum", "FixtureForum", "images", url)
}

const LOGIN_PAGE: &str = r#"<html id="XF" data-template="login"><body>
<form action="/login/login" method="post"><input type="text" name="login"><input type="password" name="password">
<input type="hidden" name="_xfToken" value="tok123"></form></body></html>"#;

#[tokio::test]
async fn a_login_gated_attachment_is_auth_required() {
    let forum = FixtureServer::start().await;
    let page = single_post_page(
        "Members only",
        1,
        "Member",
        r#"<a href="/attachments/secret-jpg.5/"><img src="/data/attachments/0/5-abc.jpg" class="bbImage"></a>"#,
    );
    forum.route(THREAD, Fixture::html(page));
    forum.route("/attachments/secret-jpg.5/", Fixture::redirect("/login/"));
    forum.route("/login/", Fixture::html(LOGIN_PAGE));
    let cx = context(forum_settings(json!({})), Arc::new(MemoryStore::new()));
    let mut listing = Forum::default().discover(&request(&forum.url(THREAD)), &cx);
    match listing.next().await {
        Some(Err(DownloadError::AuthRequired(reason))) => {
            assert!(reason.contains("login"), "{reason}");
        }
        other => panic!("expected AuthRequired, got {other:?}"),
    }
    assert!(
        listing.next().await.is_none(),
        "nothing after the auth error"
    );

    // Through the engine: the queue item fails with the auth error, nothing is written.
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(forum_settings(json!({})));
    let item = test
        .queue()
        .submit(NewQueueItem::new(
            forum.url(THREAD),
            "forum",
            "FixtureForum",
            "images",
        ))
        .await
        .unwrap();
    test.run_until_finished(&[item.id]).await;
    let item = test.store.get_queue_item(item.id).await.unwrap();
    crate::assert_failed(&item, "authentication required");
    assert!(
        walk(root.path())
            .iter()
            .all(|p| p.file_name().unwrap().to_string_lossy().starts_with('.')),
        "no file written"
    );
}

#[tokio::test]
async fn a_guest_placeholder_or_login_redirect_is_auth_required() {
    let forum = FixtureServer::start().await;
    let placeholder = single_post_page(
        "Videos",
        1,
        "A",
        r#"<video controls><source src="/styles/notregistered.mp4"></video>"#,
    );
    forum.route("/threads/videos.2/", Fixture::html(placeholder));
    forum.route("/threads/private.3/", Fixture::redirect("/login/"));
    forum.route("/login/", Fixture::html(LOGIN_PAGE));
    let cx = context(forum_settings(json!({})), Arc::new(MemoryStore::new()));
    for (path, needle) in [
        ("/threads/videos.2/", "notregistered"),
        ("/threads/private.3/", "login"),
    ] {
        let mut listing = Forum::default().discover(&request(&forum.url(path)), &cx);
        match listing.next().await {
            Some(Err(DownloadError::AuthRequired(reason))) => {
                assert!(reason.contains(needle), "{path}: {reason}")
            }
            other => panic!("{path}: expected AuthRequired, got {other:?}"),
        }
    }
    assert_eq!(forum.hits("/styles/notregistered.mp4"), 0);
}

#[tokio::test]
async fn an_oversized_page_is_a_clear_error() {
    let forum = FixtureServer::start().await;
    forum.route(
        THREAD,
        Fixture::html("<html><body>".to_owned() + &"x".repeat(200_000)),
    );
    let cx = context(
        forum_settings(json!({"max_page_bytes": 100_000})),
        Arc::new(MemoryStore::new()),
    );
    let mut listing = Forum::default().discover(&request(&forum.url(THREAD)), &cx);
    match listing.next().await {
        Some(Err(DownloadError::Permanent(reason))) => {
            assert!(reason.contains("larger than 100000 bytes"), "{reason}")
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn logs_in_with_credentials_and_keeps_the_session() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let base = server.uri();
    let thread = format!("{base}/threads/private.9/");
    let page = single_post_page(
        "Private",
        90,
        "Member",
        format!(r#"<img src="{base}/data/full/90.jpg" class="bbImage">"#),
    );
    mount_members_only_thread(
        &server,
        "/threads/private.9/",
        "xf_user=alice-session",
        page,
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/login/login"))
        .and(body_string_contains("login=alice"))
        .and(body_string_contains("password=s3cret"))
        .and(body_string_contains("_xfToken=tok123"))
        .respond_with(
            ResponseTemplate::new(303)
                .insert_header("set-cookie", "xf_user=alice-session; Path=/; HttpOnly")
                .insert_header("location", "/"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Welcome back</body></html>", "text/html"),
        )
        .mount(&server)
        .await;

    let host = Url::parse(&base).unwrap().host_str().unwrap().to_owned();
    let settings = forum_settings(json!({
        "forums": { "FixtureForum": { "username": "alice", "password": "s3cret" } }
    }));
    let cx = context(settings, Arc::new(MemoryStore::new()));
    let items: Vec<_> = Forum::default()
        .discover(&request(&thread), &cx)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(items.len(), 1, "{items:?}");
    let item = items.into_iter().next().unwrap().unwrap();
    assert_eq!(item.url.as_str(), format!("{base}/data/full/90.jpg"));
    assert_eq!(item.metadata["post_id"], "90");
    assert_eq!(item.metadata["host"], host);

    // Wrong password: the forum shows the login form again → AuthRequired.
    let settings = forum_settings(json!({
        "forums": { "FixtureForum": { "username": "alice", "password": "wrong" } }
    }));
    Mock::given(method("POST"))
        .and(path("/login/login"))
        .and(body_string_contains("password=wrong"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(LOGIN_PAGE, "text/html"))
        .mount(&server)
        .await;
    let cx = context(settings, Arc::new(MemoryStore::new()));
    let first = Forum::default()
        .discover(&request(&thread), &cx)
        .next()
        .await;
    assert!(
        matches!(&first, Some(Err(DownloadError::AuthRequired(reason))) if reason.contains("alice")),
        "{first:?}"
    );
}

#[tokio::test]
async fn cookies_from_settings_are_sent() {
    use wiremock::MockServer;

    let server = MockServer::start().await;
    let base = server.uri();
    let page = single_post_page(
        "Cookie",
        5,
        "A",
        format!(r#"<img src="{base}/data/full/5.jpg" class="bbImage">"#),
    );
    mount_members_only_thread(&server, "/threads/c.5/", "xf_session=from-browser", page).await;
    let host = Url::parse(&base).unwrap().host_str().unwrap().to_owned();
    let cookies = format!(
        "# Netscape HTTP Cookie File\n{host}\tFALSE\t/\tFALSE\t0\txf_session\tfrom-browser\n"
    );
    let cx = context(
        forum_settings(json!({ "cookies": cookies })),
        Arc::new(MemoryStore::new()),
    );
    let items: Vec<_> = Forum::default()
        .discover(&request(&format!("{base}/threads/c.5/")), &cx)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].is_ok(), "{items:?}");

    // Without them: the login redirect is AuthRequired.
    let cx = context(forum_settings(json!({})), Arc::new(MemoryStore::new()));
    let first = Forum::default()
        .discover(&request(&format!("{base}/threads/c.5/")), &cx)
        .next()
        .await;
    assert!(
        matches!(first, Some(Err(DownloadError::AuthRequired(_)))),
        "{first:?}"
    );
}

/// A thread shown only with the session cookie `cookie`; guests are sent
/// to the forum's login page.
async fn mount_members_only_thread(
    server: &wiremock::MockServer,
    thread_path: &str,
    cookie: &str,
    page: String,
) {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, ResponseTemplate};

    Mock::given(method("GET"))
        .and(path(thread_path))
        .and(header("cookie", cookie))
        .respond_with(ResponseTemplate::new(200).set_body_raw(page, "text/html"))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(thread_path))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/login/"))
        .with_priority(5)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/login/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(LOGIN_PAGE, "text/html"))
        .mount(server)
        .await;
}

/// A thread as an old forum serves it: compressed (only to clients that
/// ask), in windows-1252, with thumbnails linking to the forum's own
/// gallery pages and a vBulletin attachment shown small. Every picture is
/// saved full size and the title keeps its accents.
#[tokio::test]
async fn legacy_compressed_pages_and_gallery_links_give_full_images() {
    use std::io::Write;
    use wiremock::matchers::{header_regex, method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let base = server.uri();
    let title = "Café – Grüße";
    let posts = [
        FixturePost {
            id: 1,
            author: "A",
            body: format!(
                r#"<a href="{base}/media/beach-jpg.12/"><img src="{base}/data/xfmg/thumbnail/12/12-abc.jpg" class="bbImage"></a>"#
            ),
        },
        FixturePost {
            id: 2,
            author: "B",
            body: format!(
                r#"<a href="{base}/gallery/image/33-sunset/"><img src="{base}/uploads/thumb_33.jpg" class="bbImage"></a>"#
            ),
        },
        FixturePost {
            id: 3,
            author: "C",
            body: format!(
                r#"<img src="{base}/attachment.php?attachmentid=77&amp;thumb=1" class="bbImage" width="1200" height="900">"#
            ),
        },
    ];
    let html = xenforo_page(title, &posts, None)
        .replace("<head>", r#"<head><meta charset="windows-1252">"#);
    let (legacy, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&html);
    assert!(!unmappable);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&legacy).unwrap();
    let compressed = gzip.finish().unwrap();

    Mock::given(method("GET"))
        .and(path("/threads/old.4/"))
        .and(header_regex("accept-encoding", "gzip"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(compressed, "text/html"),
        )
        .mount(&server)
        .await;
    let image = |n: u32| ResponseTemplate::new(200).set_body_raw(image_bytes(n), "image/jpeg");
    for (route, n) in [
        ("/media/beach-jpg.12/full", 1),
        ("/uploads/full_33.jpg", 2),
        ("/data/xfmg/thumbnail/12/12-abc.jpg", 90),
        ("/uploads/thumb_33.jpg", 91),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(image(n))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/gallery/image/33-sunset/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                r#"<html><head><meta property="og:image" content="{base}/uploads/full_33.jpg"></head>
                <body><img src="/uploads/thumb_33.jpg" width="200" height="150"></body></html>"#
            ),
            "text/html",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/attachment.php"))
        .and(query_param("attachmentid", "77"))
        .and(query_param_is_missing("thumb"))
        .respond_with(image(3))
        .mount(&server)
        .await;

    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(forum_settings(json!({})));
    check_thread(&test, &format!("{base}/threads/old.4/")).await;

    let list = test.downloads().await;
    let mut saved: Vec<Vec<u8>> = list
        .items
        .iter()
        .map(|d| std::fs::read(d.file_path.as_deref().unwrap()).unwrap())
        .collect();
    saved.sort();
    let mut expected = vec![image_bytes(1), image_bytes(2), image_bytes(3)];
    expected.sort();
    assert_eq!(saved, expected, "full images only, no thumbnail");
    for download in &list.items {
        assert_eq!(download.metadata["thread_title"], title);
    }
}
