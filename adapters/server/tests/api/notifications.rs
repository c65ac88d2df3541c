//! `/notifications/*` and browser notifications over a real WebSocket.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backing, Db, TestApp, assert_error};

async fn app() -> (Backing, TestApp) {
    let backing = Backing::new(Db::Sqlite).await;
    let mut config = backing.config();
    // A failing download is one of the notified events.
    config.run_engine = true;
    let app = TestApp::start(config).await;
    (backing, app)
}

async fn patch_settings(app: &TestApp, token: &str, patch: Value) -> (StatusCode, Value) {
    let (status, _, body) = app
        .call(Method::PATCH, "/api/v1/settings", Some(token), Some(patch))
        .await;
    (status, body)
}

/// The next `notification` event on the socket (other events skipped).
async fn next_notification<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("an event within 30 s (hang guard)")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(text) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            if event["type"] == "notification" {
                return event;
            }
        }
    }
}

#[tokio::test]
async fn browser_notifications_reach_a_websocket_client() {
    let (_backing, app) = app().await;
    let admin = app.admin_token().await;
    let fixture = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&fixture)
        .await;
    let (status, body) =
        patch_settings(&app, &admin, json!({"general": {"retry_attempts": 1}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/ws/downloads?token={admin}", app.ws_base))
            .await
            .expect("websocket handshake");

    // The test message, through the browser transport only.
    let (status, body) = app
        .post(
            "/api/v1/notifications/test",
            &admin,
            json!({"transport": "browser"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["transport"], "browser");
    let event = next_notification(&mut socket).await;
    assert_eq!(event["data"]["title"], "mediadl test notification");
    assert_eq!(event["data"]["level"], "info");
    assert!(event["timestamp"].is_string());

    // A download that fails notifies by the `download_failed` rule.
    let url = format!("{}/missing.jpg", fixture.uri());
    let (status, created) = app
        .post(
            "/api/v1/queue",
            &admin,
            json!({"url": url, "platform": "direct", "source": "fixture", "content_type": "file"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let event = next_notification(&mut socket).await;
    let data = &event["data"];
    assert_eq!(data["topic"], "download_failed", "{event}");
    assert_eq!(data["level"], "error");
    assert_eq!(data["title"], "Download failed: fixture");
    assert_eq!(data["action"]["link"], "/queue");
    assert!(data["message"].as_str().unwrap().contains("404"), "{event}");
    app.stop().await;
}

#[tokio::test]
async fn the_test_endpoint_reports_the_smtp_error_and_the_history_keeps_it() {
    let (_backing, app) = app().await;
    let admin = app.admin_token().await;

    // Unconfigured email names the setting to fill in.
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/notifications/test",
            Some(&admin),
            Some(json!({"transport": "email"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&headers, &body, "VALIDATION_ERROR");
    assert_eq!(body["field"], "notifications.email.smtp_host");

    // Invalid settings are refused with their path.
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"notifications": {"email": {"smtp_port": 0}}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "notifications.email.smtp_port");

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"notifications": {"email": {
            "smtp_host": "127.0.0.1", "smtp_port": port, "security": "none",
            "smtp_username": "me", "smtp_password": "hunter2",
            "from": "mediadl@example.org", "to": ["alice@example.org"]
        }}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, settings) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(
        settings["notifications"]["email"]["smtp_password"], "***",
        "{settings}"
    );

    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/notifications/test",
            Some(&admin),
            Some(json!({"transport": "email"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_error(&headers, &body, "NOTIFICATION_FAILED");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("email to alice@example.org: SMTP: "),
        "{detail}"
    );
    assert!(detail.to_lowercase().contains("refused"), "{detail}");
    assert_eq!(body["results"][0]["success"], false);

    let (status, body) = app.get("/api/v1/notifications/deliveries", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deliveries = body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{body}");
    assert_eq!(deliveries[0]["transport"], "email");
    assert_eq!(deliveries[0]["status"], "failed");
    assert_eq!(deliveries[0]["test"], true);
    assert!(
        deliveries[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused")
    );
    let (status, headers, body) = app
        .call(
            Method::GET,
            "/api/v1/notifications/deliveries?status=nope",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&headers, &body, "VALIDATION_ERROR");
    app.stop().await;
}

#[tokio::test]
async fn webhooks_are_tested_signed_and_secrets_never_returned() {
    let (_backing, app) = app().await;
    let admin = app.admin_token().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header_exists("x-mediadl-signature"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"notifications": {"webhooks": {"ci": {
            "url": format!("{}/hook", receiver.uri()), "secret": "hook-secret", "format": "json"
        }}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, settings) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(settings["notifications"]["webhooks"]["ci"]["secret"], "***");

    // Writing the masked document back keeps the secret.
    let (status, body) = patch_settings(
        &app,
        &admin,
        json!({"notifications": settings["notifications"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = app
        .post(
            "/api/v1/notifications/test",
            &admin,
            json!({"webhook": "ci"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["transport"], "webhook");
    assert_eq!(body["results"][0]["success"], true);

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let signature = requests[0]
        .headers
        .get("x-mediadl-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        mediadl::notify::webhook::verify("hook-secret", &requests[0].body, signature),
        "signed with the stored secret, not the mask"
    );

    let (status, body) = app
        .get(
            "/api/v1/notifications/deliveries?transport=webhook&limit=5",
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["deliveries"][0]["target"], "ci");
    assert_eq!(body["deliveries"][0]["status"], "delivered");
    assert!(!body.to_string().contains("hook-secret"));

    let (status, body) = app
        .post(
            "/api/v1/notifications/test",
            &admin,
            json!({"webhook": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let reader = app.user_token(&admin, "reader1", "viewer").await;
    let (status, headers, body) = app
        .call(
            Method::GET,
            "/api/v1/notifications/deliveries",
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&headers, &body, "FORBIDDEN");
    app.stop().await;
}
