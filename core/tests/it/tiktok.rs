//! TikTok's native client against a local server answering with a profile
//! page and item_list responses shaped like the real ones
//! (core/testdata/tiktok/).

use std::sync::Arc;

use futures::StreamExt;
use mediadl::downloader::{Context, Downloader, MediaItem, Request};
use mediadl::model::Settings;
use mediadl::platforms::tiktok::TikTok;
use mediadl::store::MemoryStore;
use mediadl::testkit;
use mediadl::{DownloadError, Error};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SEC_UID: &str =
    "MS4wLjABAAAAepiJKgwWhulvCpSuUVsp7sgVVsFJbbNaLeQ6OQ0oAJERGDUIXhb2yxxHZedsItgT";
const ITEM_LIST: &str = "/api/post/item_list/";

fn fixture_text(name: &str, server: &MockServer) -> String {
    let path = format!("{}/testdata/tiktok/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    text.replace("{{CDN}}", &format!("{}/cdn", server.uri()))
}

fn fixture(name: &str, server: &MockServer) -> Value {
    serde_json::from_str(&fixture_text(name, server)).unwrap()
}

fn settings(server: &MockServer, extra: Value) -> Settings {
    let mut value = json!({
        "platforms": {
            "tiktok": {
                "native": {
                    "base_url": server.uri(),
                    "request_delay_min_seconds": 0.0,
                    "request_delay_max_seconds": 0.0
                }
            }
        }
    });
    mediadl::model::settings::merge_patch(&mut value, &extra);
    Settings::from_value(&value).unwrap()
}

fn context(settings: Settings) -> Context {
    testkit::context(settings, Arc::new(MemoryStore::new()))
}

fn request(source: &str) -> Request {
    Request::new(
        "tiktok",
        source,
        "videos",
        format!("https://www.tiktok.com/@{source}"),
    )
}

async fn mount_profile(server: &MockServer, name: &str) {
    Mock::given(method("GET"))
        .and(path("/@someone"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=utf-8")
                .set_body_string(fixture_text(name, server)),
        )
        .mount(server)
        .await;
}

async fn mount_list(server: &MockServer, cursor: &str, name: &str) {
    Mock::given(method("GET"))
        .and(path(ITEM_LIST))
        .and(query_param("secUid", SEC_UID))
        .and(query_param("cursor", cursor))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture(name, server)))
        .expect(1)
        .mount(server)
        .await;
}

async fn collect(settings: Settings, source: &str) -> Result<Vec<MediaItem>, DownloadError> {
    let cx = context(settings);
    let mut stream = TikTok::default().discover(&request(source), &cx);
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?);
    }
    Ok(items)
}

#[tokio::test]
async fn videos_and_photos_are_listed_newest_first_across_cursors() {
    let server = MockServer::start().await;
    mount_profile(&server, "profile.html").await;
    mount_list(&server, "0", "item_list_page1.json").await;
    mount_list(&server, "1759990000000", "item_list_page2.json").await;
    let items = collect(settings(&server, json!({})), "someone")
        .await
        .unwrap();
    let keys: Vec<String> = items
        .iter()
        .map(|item| item.archive_key.replace("tiktok:74000000000000000", "#"))
        .collect();
    assert_eq!(
        keys,
        ["#10", "#20:1", "#20:2", "#30", "#01", "#40"],
        "the pinned old video waits for its place"
    );

    let video = &items[0];
    assert_eq!(video.content_type, "video");
    assert_eq!(
        video.url.as_str(),
        format!("{}/cdn/play/7400000000000000010_1080.mp4", server.uri())
    );
    assert_eq!(video.resolution, Some((1080, 1920)), "the highest bitrate");
    assert_eq!(video.metadata["bitrate"], 2_100_000);
    assert_eq!(video.posted_at.unwrap().timestamp(), 1_760_000_000);
    assert_eq!(
        video.referer.as_ref().unwrap().as_str(),
        format!("{}/", server.uri())
    );
    let photo = &items[1];
    assert_eq!(photo.content_type, "image");
    assert_eq!(photo.resolution, Some((1080, 1440)));
    assert_eq!(
        photo.posted_at.unwrap().timestamp(),
        1_760_000_000 - 3600,
        "string createTime"
    );
}

#[tokio::test]
async fn sd_quality_takes_the_lowest_bitrate() {
    let server = MockServer::start().await;
    mount_profile(&server, "profile.html").await;
    mount_list(&server, "0", "item_list_page2.json").await;
    let items = collect(
        settings(&server, json!({"platforms": {"tiktok": {"quality": "sd"}}})),
        "someone",
    )
    .await
    .unwrap();
    assert!(
        items[0].url.path().ends_with("_540.mp4"),
        "{}",
        items[0].url
    );
    assert_eq!(items[0].resolution, Some((576, 1024)));
}

#[tokio::test]
async fn accounts_that_cannot_be_listed_say_why() {
    let cases: [(&str, Option<&str>, &str, &str); 5] = [
        (
            "profile_private.html",
            Some("item_list_private.json"),
            "DOWNLOAD_FAILED",
            "private",
        ),
        (
            "profile_not_found.html",
            None,
            "DOWNLOAD_FAILED",
            "does not exist",
        ),
        (
            "profile.html",
            Some("item_list_blocked.json"),
            "DOWNLOAD_FAILED",
            "blocks this server's IP",
        ),
        (
            "profile_captcha.html",
            None,
            "DOWNLOAD_FAILED",
            "__UNIVERSAL_DATA_FOR_REHYDRATION__",
        ),
        (
            "profile_missing_secuid.html",
            None,
            "DOWNLOAD_FAILED",
            "secUid",
        ),
    ];
    for (profile, list, code, words) in cases {
        let server = MockServer::start().await;
        mount_profile(&server, profile).await;
        if let Some(list) = list {
            Mock::given(method("GET"))
                .and(path(ITEM_LIST))
                .respond_with(ResponseTemplate::new(200).set_body_json(fixture(list, &server)))
                .mount(&server)
                .await;
        }
        let err = collect(settings(&server, json!({})), "someone")
            .await
            .unwrap_err();
        crate::assert_failure(&err, code, words, profile);
    }
}

/// The error listing `someone` ends with when `server` answers GET `at`
/// with `response`.
async fn refusal(server: &MockServer, at: &str, response: ResponseTemplate) -> DownloadError {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .mount(server)
        .await;
    collect(settings(server, json!({})), "someone")
        .await
        .unwrap_err()
}

#[tokio::test]
async fn transport_level_refusals_are_typed() {
    // A missing account's page.
    let server = MockServer::start().await;
    let err = refusal(&server, "/@someone", ResponseTemplate::new(404)).await;
    assert!(err.to_string().contains("does not exist"), "{err}");

    // A login wall.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>Log in</html>"))
        .mount(&server)
        .await;
    let redirect =
        ResponseTemplate::new(302).insert_header("location", "/login?redirect_url=%2F%40someone");
    let err = refusal(&server, "/@someone", redirect).await;
    assert_eq!(err.code(), "AUTH_REQUIRED", "{err:?}");

    // Too many requests.
    let server = MockServer::start().await;
    mount_profile(&server, "profile.html").await;
    let limited = ResponseTemplate::new(429).insert_header("retry-after", "120");
    let err = refusal(&server, ITEM_LIST, limited).await;
    assert!(
        matches!(err, DownloadError::RateLimited { after, .. } if after.as_secs() == 120),
        "{err:?}"
    );

    // The empty answer TikTok gives unsigned requests.
    let server = MockServer::start().await;
    mount_profile(&server, "profile.html").await;
    let err = refusal(&server, ITEM_LIST, ResponseTemplate::new(200)).await;
    assert!(err.to_string().contains("empty body"), "{err}");

    // A blocked address answered with 403 "Access Denied".
    let server = MockServer::start().await;
    let denied = ResponseTemplate::new(403).set_body_string("<html><h1>Access Denied</h1></html>");
    let err = refusal(&server, "/@someone", denied).await;
    assert!(err.to_string().contains("proxy"), "{err}");
}

#[tokio::test]
async fn missing_fields_name_their_place() {
    let server = MockServer::start().await;
    mount_profile(&server, "profile.html").await;
    mount_list(&server, "0", "item_list_missing_id.json").await;
    let err = collect(settings(&server, json!({})), "someone")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::Permanent(reason) if reason.contains("itemList[0]") && reason.contains("id")),
        "{err:?}"
    );
}

#[tokio::test]
async fn settings_and_names_are_checked() {
    let server = MockServer::start().await;
    let tiktok = TikTok::default();
    tiktok.check(&settings(&server, json!({}))).await.unwrap();
    let off = settings(
        &server,
        json!({"platforms": {"tiktok": {"enabled": false}}}),
    );
    crate::assert_unavailable(&tiktok, &off, "platforms.tiktok.enabled").await;
    let bad_quality = settings(&server, json!({"platforms": {"tiktok": {"quality": "8k"}}}));
    crate::assert_unavailable(&tiktok, &bad_quality, "quality").await;
    let bad_cookies = settings(
        &server,
        json!({"platforms": {"tiktok": {"cookies": "not\ta cookie\n"}}}),
    );
    crate::assert_unavailable(&tiktok, &bad_cookies, "malformed").await;

    tiktok.validate(&request("someone")).unwrap();
    for bad in ["", "x", "with-dash", "name.", "a".repeat(25).as_str()] {
        let err = tiktok.validate(&request(bad)).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "source"),
            "{bad:?}: {err}"
        );
    }
    let mut photos = request("someone");
    photos.content_type = "posts".into();
    assert!(tiktok.validate(&photos).is_err());
}
