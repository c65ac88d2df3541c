//! Secrets and the address guard, tried as an attacker would: a viewer
//! reading a failing webhook's token from the logs, an admin token changing
//! what programs run, downloads and webhooks aimed inside the network.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backing, Db, TestApp, assert_error, log_capture};

const TOKEN: &str = "T0KEN-9f8e7d6c5b4a";

async fn patch_settings(app: &TestApp, token: &str, patch: Value) -> (StatusCode, Value) {
    let (status, headers, body) = app
        .call(Method::PATCH, "/api/v1/settings", Some(token), Some(patch))
        .await;
    if status != StatusCode::OK {
        assert_error(&headers, &body, body["error_code"].as_str().unwrap_or("?"));
    }
    (status, body)
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_failing_webhook_token_never_reaches_a_viewer() {
    let backing = Backing::new(Db::Sqlite).await;
    let (capture, _guard) = log_capture();
    let mut config = backing.config();
    config.log_capture = Some(capture);
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let viewer = app.user_token(&admin, "watcher", "viewer").await;
    // The receiver fails and quotes the URL it was called at.
    let fixture = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500).set_body_string(format!("no hook at /api/webhooks/{TOKEN}")),
        )
        .mount(&fixture)
        .await;
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"notifications": {"webhooks": {
            "discord": {"url": format!("{}/api/webhooks/{TOKEN}", fixture.uri())},
            "ntfy": {"url": format!("http://127.0.0.1:{}/alerts-{TOKEN}?auth={TOKEN}", closed_port())}
        }}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/ws/downloads?token={viewer}", app.ws_base))
            .await
            .expect("websocket handshake");
    let mut frames = Vec::new();
    let mut found = Value::Null;
    for attempt in 0..400 {
        // Under a loaded test run an event can miss this thread's scoped
        // subscriber: a fresh failing delivery every second tries again.
        if attempt % 20 == 0 {
            // Every delivery failing is an error answer carrying the results.
            let (_, outcome) = app
                .post(
                    "/api/v1/notifications/test",
                    &admin,
                    json!({"transport": "webhook"}),
                )
                .await;
            assert!(!outcome.to_string().contains(TOKEN), "{outcome}");
            assert_eq!(outcome["results"][0]["success"], false, "{outcome}");
        }
        let (status, logs) = app
            .get("/api/v1/logs?search=webhook%20delivery%20failed", &viewer)
            .await;
        assert_eq!(status, StatusCode::OK, "{logs}");
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(10), socket.next()).await
        {
            frames.push(text.to_string());
        }
        if logs["filtered"].as_u64().unwrap_or(0) >= 2
            && frames.iter().any(|f| f.contains("webhook delivery failed"))
        {
            found = logs;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found.is_object(), "failed deliveries were logged");
    let (_, everything) = app.get("/api/v1/logs?limit=1000", &viewer).await;
    for text in [found.to_string(), everything.to_string()]
        .iter()
        .chain(&frames)
    {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    let (_, history) = app.get("/api/v1/notifications/deliveries", &admin).await;
    assert!(!history.to_string().contains(TOKEN), "{history}");
}

#[tokio::test]
async fn settings_hide_secrets_and_program_settings_are_read_only() {
    let backing = Backing::new(Db::Sqlite).await;
    let mut config = backing.config();
    // From the config file: the only place programs are chosen.
    config.settings_layers = mediadl::SettingsLayers::default().pin(
        "the config file mediadl.toml",
        json!({"platforms": {"tiktok": {"yt-dlp": {
            "path": "/opt/yt-dlp/bin/yt-dlp",
            "extra_args": ["--cookies", "/secret/cookies.txt"]
        }}}}),
    );
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({
            "network": {"proxy": "http://bob:pr0xy-pass@proxy.example:3128"},
            "notifications": {"webhooks": {"ci": {"url": format!("https://discord.example/api/webhooks/{TOKEN}")}}}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, shown) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let text = shown.to_string();
    for secret in [TOKEN, "pr0xy-pass", "bob", "/secret/cookies.txt"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    assert_eq!(shown["network"]["proxy"], "http://***@proxy.example:3128/");
    assert_eq!(shown["notifications"]["webhooks"]["ci"]["url"], "***");
    let program = &shown["platforms"]["tiktok"]["yt-dlp"];
    assert_eq!(program["extra_args"], "***");
    assert_eq!(program["path"], "/opt/yt-dlp/bin/yt-dlp", "shown read-only");

    // Changing what runs is refused, naming the field; nothing is stored.
    for (patch, field) in [
        (
            json!({"platforms": {"tiktok": {"yt-dlp": {"path": "/bin/sh"}}}}),
            "platforms.tiktok.yt-dlp.path",
        ),
        (
            json!({"platforms": {"tiktok": {"yt-dlp": {"extra_args": ["--exec", "touch /tmp/x"]}}}}),
            "platforms.tiktok.yt-dlp.extra_args",
        ),
        (
            json!({"platforms": {"instagram": {"gallery-dl": {"path": "/tmp/evil"}}},
                   "general": {"retry_attempts": 7}}),
            "platforms.instagram.gallery-dl.path",
        ),
    ] {
        let (status, headers, body) = app
            .call(Method::PATCH, "/api/v1/settings", Some(&admin), Some(patch))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_error(&headers, &body, "READ_ONLY_SETTING");
        assert_eq!(body["field"], field, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(field), "{body}");
    }
    let (_, after) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(after, shown, "nothing stored by a refused patch");

    // What GET returned, sent back, is accepted and changes nothing.
    let (status, body) = patch_settings(&app, &admin, shown.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, after) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(after, shown);
    // Another change keeps the config file's programs and the stored secrets.
    let (status, body) =
        patch_settings(&app, &admin, json!({"general": {"retry_attempts": 2}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, after) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(after["general"]["retry_attempts"], 2);
    assert_eq!(after["platforms"], shown["platforms"]);
    assert_eq!(after["network"]["proxy"], shown["network"]["proxy"]);
    app.stop().await;
}

/// Queues `url` and waits until it failed; returns the error message.
async fn queue_and_fail(app: &TestApp, token: &str, url: &str) -> String {
    let (status, created) = app
        .post(
            "/api/v1/queue",
            token,
            json!({"url": url, "platform": "direct", "source": "guard", "content_type": "file"}),
        )
        .await;
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        return created["detail"].as_str().unwrap_or_default().to_owned();
    }
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = &created["id"];
    for _ in 0..600 {
        let (_, item) = app.get(&format!("/api/v1/queue/{id}"), token).await;
        match item["status"].as_str() {
            Some("failed") => return item["error_message"].as_str().unwrap_or_default().into(),
            Some("completed") => panic!("{url} was downloaded: {item}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("{url} did not finish (hang guard)");
}

/// Tests the webhook `name`, which must fail; returns its error.
async fn failed_test_delivery(app: &TestApp, token: &str, name: &str) -> String {
    let (_, outcome) = app
        .post(
            "/api/v1/notifications/test",
            token,
            json!({"webhook": name}),
        )
        .await;
    assert_eq!(outcome["results"][0]["success"], false, "{outcome}");
    outcome["results"][0]["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_guard_refuses_inside_addresses_for_downloads_and_webhooks() {
    let backing = Backing::new(Db::Sqlite).await;
    let mut config = backing.config();
    config.run_engine = true;
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let fixture = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"inside".to_vec()))
        .mount(&fixture)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fixture)
        .await;
    let port = fixture.address().port();

    // Guard off: metadata endpoints are refused all the same.
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"general": {"retry_attempts": 1},
               "notifications": {"webhooks": {"meta": {"url": "http://169.254.169.254/latest/meta-data/"}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let error = queue_and_fail(&app, &admin, "http://169.254.169.254/latest/meta-data/").await;
    assert!(error.contains("metadata address refused"), "{error}");
    let error = failed_test_delivery(&app, &admin, "meta").await;
    assert!(error.contains("metadata"), "{error}");

    // Guard on: loopback, also written as IPv4-mapped IPv6, is refused.
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"network": {"block_private_addresses": true},
        "notifications": {"webhooks": {
            "meta": null,
            "local": {"url": format!("http://127.0.0.1:{port}/hook")}
        }}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for url in [
        format!("http://127.0.0.1:{port}/inside.bin"),
        format!("http://[::ffff:127.0.0.1]:{port}/inside.bin"),
        format!("http://localhost:{port}/inside.bin"),
    ] {
        let error = queue_and_fail(&app, &admin, &url).await;
        assert!(
            error.contains("private or special-purpose address refused"),
            "{url}: {error}"
        );
    }
    let error = failed_test_delivery(&app, &admin, "local").await;
    assert!(error.contains("refused"), "{error}");
    assert!(
        fixture.received_requests().await.unwrap().is_empty(),
        "nothing reached the inside server"
    );
    app.stop().await;
}
