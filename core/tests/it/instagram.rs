//! Instagram's native client against a local server answering with
//! fixtures shaped like the real web API (core/testdata/instagram/).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mediadl::downloader::{Context, Downloader, MediaItem, Request};
use mediadl::model::{NewQueueItem, Settings};
use mediadl::platforms::instagram::Instagram;
use mediadl::store::{DownloadRepo, MemoryStore};
use mediadl::testkit::{self, TestEngine};
use mediadl::{DownloadError, Error};
use serde_json::{Value, json};
use wiremock::matchers::{
    body_string_contains, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const USER_ID: &str = "1234567890";
const FEED: &str = "/api/v1/feed/user/1234567890/";
const PROFILE: &str = "/api/v1/users/web_profile_info/";

/// A fixture with its `{{CDN}}` placeholders pointing at `server`.
fn fixture(name: &str, server: &MockServer) -> Value {
    let path = format!("{}/testdata/instagram/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text.replace("{{CDN}}", &format!("{}/cdn", server.uri()))).unwrap()
}

fn cookies(host: &str) -> String {
    format!(
        "# Netscape HTTP Cookie File\n{host}\tFALSE\t/\tFALSE\t4102444800\tsessionid\t1234567890%3Aabc%3A1\n{host}\tFALSE\t/\tFALSE\t4102444800\tcsrftoken\tcsrf-from-cookie\n"
    )
}

fn settings_value(server: &MockServer, extra: Value) -> Value {
    let mut value = json!({
        "platforms": {
            "instagram": {
                "cookies": cookies("127.0.0.1"),
                "auto_upgrade": true,
                "native": {
                    "base_url": server.uri(),
                    "request_delay_min_seconds": 0.0,
                    "request_delay_max_seconds": 0.0,
                    "rate_limit_retries": 1,
                    "max_inline_wait_seconds": 5
                }
            }
        }
    });
    mediadl::model::settings::merge_patch(&mut value, &extra);
    value
}

fn settings(server: &MockServer, extra: Value) -> Settings {
    Settings::from_value(&settings_value(server, extra)).unwrap()
}

fn context(settings: Settings) -> Context {
    testkit::context(settings, Arc::new(MemoryStore::new()))
}

fn request(source: &str, content_type: &str) -> Request {
    Request::new(
        "instagram",
        source,
        content_type,
        format!("https://instagram.com/{source}"),
    )
}

async fn mount_profile(server: &MockServer, name: &str) {
    Mock::given(method("GET"))
        .and(path(PROFILE))
        .and(query_param("username", "someone"))
        .and(header("x-ig-app-id", "936619743392459"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture(name, server)))
        .mount(server)
        .await;
}

async fn collect(settings: Settings, request: Request) -> Result<Vec<MediaItem>, DownloadError> {
    let cx = context(settings);
    let mut stream = Instagram::default().discover(&request, &cx);
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?);
    }
    Ok(items)
}

fn keys(items: &[MediaItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.archive_key.replace("instagram:30000000000000000", "#"))
        .collect()
}

#[tokio::test]
async fn posts_are_listed_newest_first_across_pages() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .and(query_param_is_missing("max_id"))
        .and(header("x-csrftoken", "csrf-from-cookie"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("feed_user_page1.json", &server)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .and(query_param("max_id", "3000000000000000030_1234567890"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("feed_user_page2.json", &server)),
        )
        .expect(1)
        .mount(&server)
        .await;

    let items = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap();
    // The pinned old post waits for its place; carousel children are items of their own.
    assert_eq!(
        keys(&items),
        ["#10", "#21", "#22", "#30", "#40", "#01", "#50"]
    );
    let dates: Vec<_> = items.iter().map(|item| item.posted_at.unwrap()).collect();
    assert!(
        dates.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {dates:?}"
    );

    let newest = &items[0];
    assert_eq!(newest.content_type, "post");
    assert_eq!(
        newest.resolution,
        Some((1080, 1350)),
        "the largest candidate"
    );
    assert!(
        newest.url.path().ends_with("_1080x1350_n.jpg"),
        "{}",
        newest.url
    );
    assert_eq!(newest.media_id.as_deref(), Some("3000000000000000010"));
    assert_eq!(newest.metadata["resolution"], "1080x1350");
    assert_eq!(newest.metadata["shortcode"], "Newest");
    assert_eq!(
        newest.metadata["post_url"],
        "https://www.instagram.com/p/Newest/"
    );
    assert_eq!(
        newest.suggested_name.as_deref(),
        Some("3000000000000000010.jpg")
    );

    let child_video = &items[2];
    assert_eq!(
        child_video.metadata["carousel_parent_id"],
        "3000000000000000020"
    );
    assert_eq!(child_video.metadata["carousel_index"], 2);
    assert!(
        child_video.url.path().ends_with("_1080.mp4"),
        "the best video version: {}",
        child_video.url
    );
    assert_eq!(
        child_video.posted_at, items[1].posted_at,
        "children carry the post's time"
    );
    assert_eq!(items[3].resolution, Some((1080, 1920)));
}

#[tokio::test]
async fn reels_page_through_clips_user() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("POST"))
        .and(path("/api/v1/clips/user/"))
        .and(body_string_contains("max_id=QVFCreel"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("clips_user_page2.json", &server)),
        )
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/clips/user/"))
        .and(body_string_contains(format!("target_user_id={USER_ID}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("clips_user_page1.json", &server)),
        )
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let items = collect(settings(&server, json!({})), request("someone", "reels"))
        .await
        .unwrap();
    let keys = crate::archive_keys(&items);
    assert_eq!(
        keys,
        [
            "instagram:3100000000000000001",
            "instagram:3100000000000000002",
            "instagram:3100000000000000003"
        ]
    );
    assert!(items.iter().all(|item| item.content_type == "reel"));
    assert_eq!(
        items[0].metadata["post_url"],
        "https://www.instagram.com/reel/ReelNew/"
    );
}

#[tokio::test]
async fn stories_come_newest_first() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path("/api/v1/feed/reels_media/"))
        .and(query_param("reel_ids", USER_ID))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("reels_media.json", &server)),
        )
        .mount(&server)
        .await;
    let items = collect(settings(&server, json!({})), request("someone", "stories"))
        .await
        .unwrap();
    let keys = crate::archive_keys(&items);
    assert_eq!(
        keys,
        [
            "instagram:3200000000000000002",
            "instagram:3200000000000000001"
        ],
        "deduplicated, newest first"
    );
    assert_eq!(items[0].content_type, "story");
    assert!(items[0].metadata.contains_key("expiring_at"));
}

#[tokio::test]
async fn a_login_redirect_needs_a_person() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            "/accounts/login/?next=%2Fapi%2Fv1%2Ffeed%2Fuser%2F",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/accounts/login/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>Log in • Instagram</html>"))
        .mount(&server)
        .await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::AuthRequired(reason) if reason.contains("login page")),
        "{err:?}"
    );
}

#[tokio::test]
async fn api_error_bodies_become_typed_errors() {
    for (fixture_name, status, code, words) in [
        (
            "login_required.json",
            403,
            "AUTH_REQUIRED",
            "requires a login",
        ),
        ("challenge.json", 400, "AUTH_REQUIRED", "security check"),
        ("not_authorized.json", 400, "DOWNLOAD_FAILED", "private"),
    ] {
        let server = MockServer::start().await;
        mount_profile(&server, "web_profile_info.json").await;
        Mock::given(method("GET"))
            .and(path(FEED))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(fixture(fixture_name, &server)),
            )
            .mount(&server)
            .await;
        let err = collect(settings(&server, json!({})), request("someone", "posts"))
            .await
            .unwrap_err();
        crate::assert_failure(&err, code, words, fixture_name);
    }
}

#[tokio::test]
async fn a_short_429_is_waited_out_in_place() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("feed_user_page2.json", &server)),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let items = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn a_long_rate_limit_hands_the_item_back() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "900"))
        .mount(&server)
        .await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DownloadError::RateLimited { after, .. } if after == Duration::from_secs(900)),
        "{err:?}"
    );

    // "Please wait a few minutes" is Instagram's other way of saying 429.
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(fixture("please_wait.json", &server)),
        )
        .mount(&server)
        .await;
    let err = collect(
        settings(
            &server,
            json!({"platforms": {"instagram": {"native": {"rate_limit_retries": 0}}}}),
        ),
        request("someone", "posts"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "RATE_LIMITED", "{err:?}");
}

#[tokio::test]
async fn private_and_missing_accounts_are_refused_with_a_reason() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info_private.json").await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::Permanent(reason) if reason.contains("is private")),
        "{err:?}"
    );

    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info_no_user.json").await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::Permanent(reason) if reason.contains("does not exist")),
        "{err:?}"
    );

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROFILE))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::Permanent(reason) if reason.contains("does not exist")),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_fields_name_their_place() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("feed_user_missing_pk.json", &server)),
        )
        .mount(&server)
        .await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::Permanent(reason) if reason.contains("items[0]") && reason.contains("pk")),
        "{err:?}"
    );

    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    Mock::given(method("GET"))
        .and(path(FEED))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>not json</html>"))
        .mount(&server)
        .await;
    let err = collect(settings(&server, json!({})), request("someone", "posts"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DOWNLOAD_FAILED", "{err:?}");
}

#[tokio::test]
async fn cookies_decide_whether_the_downloader_is_usable() {
    let server = MockServer::start().await;
    let instagram = Instagram::default();
    instagram
        .check(&settings(&server, json!({})))
        .await
        .unwrap();
    let none = settings(
        &server,
        json!({"platforms": {"instagram": {"cookies": null}}}),
    );
    crate::assert_unavailable(&instagram, &none, "no Instagram cookies").await;
    let expired = settings(
        &server,
        json!({"platforms": {"instagram": {"cookies": "127.0.0.1\tFALSE\t/\tFALSE\t1000000000\tsessionid\tx\n"}}}),
    );
    crate::assert_unavailable(&instagram, &expired, "expired").await;
    let malformed = settings(
        &server,
        json!({"platforms": {"instagram": {"cookies": "sessionid=abc\n"}}}),
    );
    crate::assert_unavailable(&instagram, &malformed, "line 1").await;
    // Listing without a session is a person's job, not a retry.
    let err = collect(none, request("someone", "posts"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AUTH_REQUIRED");
}

#[test]
fn requests_are_validated_before_queueing() {
    let instagram = Instagram::default();
    instagram.validate(&request("someone", "posts")).unwrap();
    instagram
        .validate(&request("@some.one_", "stories"))
        .unwrap();
    for bad in ["", "has space", "../etc", "a..b", "x".repeat(31).as_str()] {
        let err = instagram.validate(&request(bad, "posts")).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "source"),
            "{bad:?}: {err}"
        );
    }
    let err = instagram
        .validate(&request("someone", "videos"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "content_type"),
        "{err}"
    );
    let info = instagram.info();
    assert_eq!(info.aliases, ["fastdl", "toolzu"]);
    assert!(info.is_default && info.accepts_cookies);
}

/// Runs the engine until the queue item is finished.
async fn run_until_finished(test: &TestEngine, id: i64) -> mediadl::model::QueueItem {
    test.run_until_finished(&[id]).await.remove(0)
}

async fn mount_cdn(server: &MockServer) {
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/cdn/.*"))
        .respond_with(|request: &wiremock::Request| {
            // Each file's bytes are its own path, so every file is distinct.
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(request.url.path().as_bytes().repeat(50))
        })
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_engine_downloads_new_posts_then_stops_at_known_ones_and_upgrades() {
    let server = MockServer::start().await;
    mount_profile(&server, "web_profile_info.json").await;
    mount_cdn(&server).await;
    let page2 = Mock::given(method("GET"))
        .and(path(FEED))
        .and(query_param("max_id", "3000000000000000030_1234567890"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("feed_user_page2.json", &server)),
        )
        .named("page 2")
        .mount_as_scoped(&server)
        .await;
    let page1 = Mock::given(method("GET"))
        .and(path(FEED))
        .and(query_param_is_missing("max_id"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("feed_user_page1.json", &server)),
        )
        .mount_as_scoped(&server)
        .await;
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    test.settings.replace(settings(&server, json!({})));
    let first = test
        .queue()
        .submit(NewQueueItem::new(
            "https://instagram.com/someone",
            "instagram",
            "someone",
            "posts",
        ))
        .await
        .unwrap();
    let first = run_until_finished(&test, first.id).await;
    crate::assert_completed(&first);
    let listed = test.downloads().await;
    assert_eq!(listed.total, 7, "every file of both pages");
    let newest = test
        .store
        .download_by_archive_key("instagram:3000000000000000010")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newest.metadata["resolution"], "1080x1350");
    assert_eq!(newest.metadata["upgraded"], false);
    assert!(std::path::Path::new(newest.file_path.as_deref().unwrap()).exists());
    drop(page1);
    drop(page2);

    // Second run: one new post on top, a better picture of the newest one;
    // the rest is known, so the listing stops before page 2.
    let mut page = fixture("feed_user_page1.json", &server);
    let items = page["items"].as_array_mut().unwrap();
    let mut fresh = items[1].clone();
    fresh["pk"] = json!(3000000000000000099u64);
    fresh["code"] = json!("Fresh");
    fresh["taken_at"] = json!(fresh["taken_at"].as_i64().unwrap() + 60);
    items[1]["image_versions2"]["candidates"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"width": 1440, "height": 1800, "url": format!("{}/cdn/better_1440.jpg", server.uri())}));
    items.insert(1, fresh);
    Mock::given(method("GET"))
        .and(path(FEED))
        .and(query_param_is_missing("max_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&server)
        .await;
    let second = test
        .queue()
        .submit(NewQueueItem::new(
            "https://instagram.com/someone",
            "instagram",
            "someone",
            "posts",
        ))
        .await
        .unwrap();
    let second = run_until_finished(&test, second.id).await;
    crate::assert_completed(&second);
    let listed = test.downloads().await;
    assert_eq!(
        listed.total, 8,
        "one new record; the upgrade keeps its record"
    );
    let upgraded = test
        .store
        .download_by_archive_key("instagram:3000000000000000010")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(upgraded.id, newest.id);
    assert_eq!(upgraded.metadata["resolution"], "1440x1800");
    assert_eq!(upgraded.metadata["upgraded"], true);
    let bytes = std::fs::read(upgraded.file_path.as_deref().unwrap()).unwrap();
    assert!(
        bytes.starts_with(b"/cdn/better_1440.jpg"),
        "the file was replaced"
    );
    let page2_requests = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.query().is_some_and(|q| q.contains("max_id")))
        .count();
    assert_eq!(page2_requests, 1, "only the first run read page 2");
}
