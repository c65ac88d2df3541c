//! Each scenario takes the database to run on.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    ADMIN_PASSWORD, Backing, Db, TestApp, assert_error, assert_serves_ranges, log_capture,
};

/// `POST /import` (issue 16), kept in its own module.
pub use crate::import::import_is_admin_only_confined_and_idempotent;

async fn app(db: Db) -> (Backing, TestApp) {
    let backing = Backing::new(db).await;
    let app = TestApp::start(backing.config()).await;
    (backing, app)
}

pub async fn health_errors_and_headers(db: Db) {
    let (_backing, app) = app(db).await;
    let (status, headers, body) = app.call(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    assert!(headers.contains_key("x-request-id"));

    let (status, headers, body) = app.call(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&headers, &body, "ROUTE_NOT_FOUND");

    // A 405 names the methods the path answers.
    let (status, headers, body) = app.call(Method::PUT, "/api/v1/queue/3", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&headers, &body, "METHOD_NOT_ALLOWED");
    assert_eq!(headers["allow"], "GET, PATCH, DELETE");

    let (status, headers, body) = app.call(Method::GET, "/api/v1/downloads", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &body, "UNAUTHORIZED");
    for header in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(headers.contains_key(header), "{header} missing");
    }

    // Malformed JSON, wrong types, a 5 MiB body.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let headers = response.headers().clone();
    assert_error(&headers, &response.json().await.unwrap(), "BAD_REQUEST");
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": 5, "password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&headers, &body, "VALIDATION_ERROR");
    assert_eq!(body["field"], "username");
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .body(vec![b'a'; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A request id given by the client is echoed.
    let response = app
        .client
        .get(app.url("/api/v1/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");

    // OpenAPI and Swagger UI.
    let (status, _, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/downloads"]["get"].is_object());
    let response = app.client.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("swagger"));
    app.stop().await;
}

pub async fn auth_tokens_and_lockout(db: Db) {
    let (_backing, app) = app(db).await;
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "wrong-password"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &body, "INVALID_CREDENTIALS");
    assert_eq!(body["detail"], "Incorrect username or password");

    let login = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login["token_type"], "bearer");
    assert_eq!(login["expires_in"], 900);
    assert_eq!(login["user"]["role"], "admin");
    let access = login["access_token"].as_str().unwrap();
    let (status, me) = app.get("/api/v1/auth/me", access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert!(me["last_login"].is_string() && me["created_at"].is_string());

    // Refresh rotates; the used token is refused afterwards.
    let refresh = login["refresh_token"].as_str().unwrap();
    let (status, _, rotated) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["expires_in"], 900);
    assert_ne!(rotated["refresh_token"], login["refresh_token"]);
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &body, "TOKEN_INVALID");
    // An access token is not a refresh token.
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": access})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Forged tokens: another secret, alg none, garbage.
    let other = mediadl_server::auth::Auth::new(b"some-other-secret-entirely", Default::default());
    let user = mediadl::model::User {
        id: 1,
        username: "admin".into(),
        email: None,
        role: mediadl::model::Role::Admin,
        disabled: false,
        created_at: chrono::Utc::now(),
        last_login: None,
    };
    let forged = other
        .issue(
            &user,
            &mediadl_server::auth::Session::login(0),
            mediadl_server::auth::TokenKind::Access,
            chrono::Utc::now(),
        )
        .unwrap()
        .token;
    let mut parts: Vec<String> = forged.split('.').map(str::to_owned).collect();
    for token in [
        forged.clone(),
        {
            parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0".into();
            format!("{}.{}.", parts[0], parts[1])
        },
        "not.a.token".to_string(),
    ] {
        let (status, headers, body) = app
            .call(Method::GET, "/api/v1/auth/me", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        assert_error(&headers, &body, "TOKEN_INVALID");
    }
    // An expired token from the right secret.
    let secret = std::fs::read_to_string(app.data_dir.join("jwt_secret")).unwrap();
    let same = mediadl_server::auth::Auth::new(secret.trim().as_bytes(), Default::default());
    let expired = same
        .issue(
            &user,
            &mediadl_server::auth::Session::login(0),
            mediadl_server::auth::TokenKind::Access,
            chrono::Utc::now() - chrono::Duration::hours(1),
        )
        .unwrap()
        .token;
    let (status, headers, body) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&expired), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &body, "TOKEN_EXPIRED");

    // Changing one's password: wrong current → 422, then the new one works.
    // (The replayed refresh token above ended the first session.)
    let access = &app.admin_token().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/password",
            access,
            json!({"current_password": "bad-bad-bad", "new_password": "another-pass-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .post(
            "/api/v1/auth/password",
            access,
            json!({"current_password": ADMIN_PASSWORD, "new_password": "another-pass-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Three failures from this address make it wait, even with the right
    // password, and an unknown name is answered the same way.
    for _ in 0..3 {
        let (status, _, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "ADMIN", "password": "nope-nope"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "another-pass-9"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_error(&headers, &body, "ACCOUNT_LOCKED");
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    for _ in 0..3 {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "nope-nope"})),
        )
        .await;
    }
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "nope-nope"})),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("ACCOUNT_LOCKED"))
    );
    app.stop().await;
}

pub async fn roles_and_user_admin(db: Db) {
    let (_backing, app) = app(db).await;
    let admin = app.admin_token().await;
    let viewer = app.user_token(&admin, "vera", "viewer").await;
    let user = app.user_token(&admin, "ulla", "user").await;

    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "VERA", "password": "password-123", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&headers, &body, "CONFLICT");
    let (status, body) = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "x", "password": "password-123", "role": "root"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("role"))
    );
    let (status, body) = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "../etc", "password": "password-123", "role": "user"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("username"))
    );

    let item = json!({"url": "http://127.0.0.1:9/a.bin", "platform": "direct", "source": "x", "content_type": "file"});
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/v1/queue",
            Some(&viewer),
            Some(item.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&headers, &body, "FORBIDDEN");
    let (status, created) = app.post("/api/v1/queue", &user, item).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = app.get("/api/v1/queue", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path) in [
        (Method::GET, "/api/v1/settings"),
        (Method::GET, "/api/v1/users"),
    ] {
        let (status, _, _) = app.call(method, path, Some(&user), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/queue/{}", created["id"]),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Users list with pagination headers, change, delete.
    let (status, headers, users) = app
        .call(Method::GET, "/api/v1/users?per_page=2", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["total"], 3);
    assert_eq!(headers["x-total-pages"], "2");
    let vera = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "vera")
        .cloned()
        .unwrap();
    let (status, _, changed) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", vera["id"]),
            Some(&admin),
            Some(json!({"role": "user", "email": "v@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (changed["role"].as_str(), changed["email"].as_str()),
        (Some("user"), Some("v@example.com"))
    );
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}", vera["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&viewer), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a deleted user's token stops working"
    );
    let (status, _, _) = app
        .call(Method::DELETE, "/api/v1/users/999999", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            "/api/v1/users/..%2F..%2Fetc",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

pub async fn queue_validation_and_changes(db: Db) {
    let (_backing, app) = app(db).await;
    let admin = app.admin_token().await;
    for (body, field) in [
        (
            json!({"url": "http://h/x", "platform": "myspace", "source": "s"}),
            "platform",
        ),
        (
            json!({"url": "not a url", "platform": "direct", "source": "s"}),
            "url",
        ),
        (
            json!({"url": "file:///etc/passwd", "platform": "direct", "source": "s"}),
            "url",
        ),
        (
            json!({"url": "http://h/x", "platform": "direct", "source": "s", "content_type": "videos"}),
            "content_type",
        ),
        (
            json!({"url": "http://h/x", "platform": "direct", "source": "s", "priority": 300}),
            "priority",
        ),
        (
            json!({"url": "http://h/x", "platform": "direct", "source": "s", "priority": -1}),
            "priority",
        ),
        (
            json!({"url": "http://h/x", "platform": "direct", "source": "s", "priority": 0}),
            "priority",
        ),
        (json!({"platform": "direct", "source": "s"}), "url"),
        (json!(["http://h/x", "direct", "s"]), "body"),
    ] {
        let (status, headers, reply) = app
            .call(
                Method::POST,
                "/api/v1/queue",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
        assert_error(&headers, &reply, "VALIDATION_ERROR");
        assert_eq!(reply["field"], field, "{reply}");
    }
    // A held item: the engine never gets it while it is paused.
    let (status, created) = app
        .post("/api/v1/queue", &admin, json!({"url": "http://127.0.0.1:9/'; DROP TABLE queue;--", "platform": "direct", "source": "x' OR 1=1", "priority": 9}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    assert!(created["task_id"].is_string());
    let id = created["id"].as_i64().unwrap();
    let (status, _, patched) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/queue/{id}"),
            Some(&admin),
            Some(json!({"status": "paused", "priority": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["status"].as_str(), patched["priority"].as_i64()),
        (Some("paused"), Some(1))
    );
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/queue/{id}"),
            Some(&admin),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status"))
    );
    let (status, _, _) = app
        .call(
            Method::PATCH,
            "/api/v1/queue/424242",
            Some(&admin),
            Some(json!({"priority": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, item) = app.get(&format!("/api/v1/queue/{id}"), &admin).await;
    assert_eq!(
        (status, item["source"].as_str()),
        (StatusCode::OK, Some("x' OR 1=1"))
    );
    let (status, list) = app.get("/api/v1/queue?status=paused", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["paused"], 1);
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/v1/queue?status=sleeping",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, stats) = app.get("/api/v1/queue/stats", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["total"], 1);
    // Retrying an item that has not failed is a conflict; clearing takes finished statuses only.
    let (status, _) = app
        .post(&format!("/api/v1/queue/{id}/retry"), &admin, json!({}))
        .await;
    assert!(
        status == StatusCode::CONFLICT || status == StatusCode::OK,
        "{status}"
    );
    let (status, body) = app
        .post(
            "/api/v1/queue/clear",
            &admin,
            json!({"status": ["pending"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/queue/clear",
            &admin,
            json!({"status": ["completed", "failed"]}),
        )
        .await;
    assert_eq!((status, body["deleted"].is_u64()), (StatusCode::OK, true));
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/queue/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/queue/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

fn png_bytes() -> Vec<u8> {
    let image = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("an event within 30 s")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

pub async fn download_with_websocket_file_and_thumbnail(db: Db) {
    let backing = Backing::new(db).await;
    let mut config = backing.config();
    config.run_engine = true;
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let fixture = MockServer::start().await;
    let png = png_bytes();
    Mock::given(method("GET"))
        .and(path("/media/picture.png"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(png.clone())
                .insert_header("content-type", "image/png"),
        )
        .mount(&fixture)
        .await;

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/ws/downloads?token={admin}", app.ws_base))
            .await
            .expect("websocket handshake");
    let url = format!("{}/media/picture.png", fixture.uri());
    let (status, created) = app
        .post(
            "/api/v1/queue",
            &admin,
            json!({"url": url, "platform": "direct", "source": "fixture", "content_type": "file"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let queue_id = created["id"].clone();

    let mut seen = Vec::new();
    let completed = loop {
        let event = next_json(&mut socket).await;
        assert!(
            event["timestamp"].is_string() && event["data"].is_object(),
            "{event}"
        );
        let kind = event["type"].as_str().unwrap().to_string();
        seen.push(kind.clone());
        if kind == "download_completed" && event["data"]["queue_id"] == queue_id {
            break event;
        }
    };
    assert!(seen.contains(&"queue_updated".to_string()), "{seen:?}");
    assert_eq!(completed["data"]["status"], "completed", "{completed}");

    let (status, headers, list) = app
        .call(
            Method::GET,
            "/api/v1/downloads?platform=direct&source=fixture",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(headers["x-total-count"], "1");
    let download = &list["items"][0];
    assert_eq!(download["status"], "completed");
    assert_eq!(download["file_size"], png.len());
    let id = download["id"].as_i64().unwrap();
    let (status, one) = app.get(&format!("/api/v1/downloads/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one["thumbnail_url"],
        format!("/api/v1/downloads/{id}/thumbnail")
    );

    // The whole file, a range, an unsatisfiable range, signed links for <img>.
    let (status, signed) = app
        .post("/api/v1/downloads/links", &admin, json!({"ids": [id]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let file_link = signed["links"][0]["file_url"].as_str().unwrap().to_owned();
    let thumbnail_link = signed["links"][0]["thumbnail_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_serves_ranges(&app, id, &admin, &png).await;
    let response = app.client.get(app.url(&file_link)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let response = app
        .client
        .get(app.url(&thumbnail_link))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 240));

    // Stats see it; bulk mark, delete with the file.
    let (status, stats) = app
        .get("/api/v1/downloads/stats?period=today", &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            stats["completed"].as_u64(),
            stats["by_platform"]["direct"].as_u64()
        ),
        (Some(1), Some(1)),
        "{stats}"
    );
    let (status, bulk) = app
        .post(
            "/api/v1/downloads/bulk",
            &admin,
            json!({"action": "mark_upgraded", "ids": [id, 987654]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (bulk["success"].as_u64(), bulk["failed"].as_u64()),
        (Some(1), Some(1)),
        "{bulk}"
    );
    let file_path = download["file_path"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&file_path).exists());
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/downloads/{id}?delete_file=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!std::path::Path::new(&file_path).exists());
    let (status, _) = app.get(&format!("/api/v1/downloads/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = socket.close(None).await;
    app.stop().await;
}

pub async fn websocket_auth_and_limits(db: Db) {
    let (_backing, app) = app(db).await;
    let admin = app.admin_token().await;
    // A bad token fails the handshake with 401.
    let err =
        tokio_tungstenite::connect_async(format!("{}/ws/downloads?token=forged", app.ws_base))
            .await
            .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected an HTTP 401, got {other:?}"),
    }
    // First-message auth: a bad token closes with 4401, a good one is acknowledged.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}/ws/downloads", app.ws_base))
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "auth", "token": "nope"}).to_string(),
        ))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4401),
        other => panic!("expected close 4401, got {other:?}"),
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}/ws/downloads", app.ws_base))
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "auth", "token": admin}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "auth_ok");
    socket
        .send(Message::text(json!({"type": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    // Events reach it: a queue change.
    let (status, _) = app
        .post(
            "/api/v1/queue",
            &admin,
            json!({"url": "http://127.0.0.1:9/x.bin", "platform": "direct", "source": "ws"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let event = next_json(&mut socket).await;
    assert_eq!(event["type"], "queue_updated", "{event}");
    assert_eq!(event["data"]["action"], "added");
    // Ten connections per user: this one plus nine more, then 429.
    let mut open = Vec::new();
    for _ in 0..9 {
        open.push(
            tokio_tungstenite::connect_async(format!("{}/ws/downloads?token={admin}", app.ws_base))
                .await
                .unwrap()
                .0,
        );
    }
    let err =
        tokio_tungstenite::connect_async(format!("{}/ws/downloads?token={admin}", app.ws_base))
            .await
            .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 429),
        other => panic!("expected an HTTP 429, got {other:?}"),
    }
    drop(open);
    let _ = socket.close(None).await;
    app.stop().await;
}

pub async fn settings_and_cookies(db: Db) {
    let (_backing, app) = app(db).await;
    let admin = app.admin_token().await;
    let (status, settings) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["general"]["concurrent_downloads"], 4);
    let (status, _, body) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"general": {"concurrent_downloads": "six"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "general.concurrent_downloads");
    let (status, _, body) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"general": {"concurrent_downloads": 0}})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("general.concurrent_downloads")
        )
    );
    let (status, _, body) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"general": {"concurrent_downloads": 6}, "notifications": {"email": {"smtp_password": "hunter2"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["updated_fields"], 2);
    let (_, settings) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(settings["general"]["concurrent_downloads"], 6);
    assert_eq!(settings["notifications"]["email"]["smtp_password"], "***");
    // Writing the mask back keeps the secret.
    let (status, _, body) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"notifications": {"email": {"smtp_password": "***"}}})),
        )
        .await;
    assert_eq!(
        (status, body["updated_fields"].as_u64()),
        (StatusCode::OK, Some(0))
    );

    // Cookies for a platform that takes them.
    let good = ".instagram.com\tTRUE\t/\tTRUE\t4102444800\tsessionid\tabc\n";
    let put = |body: &'static str, platform: &'static str| {
        app.client
            .put(app.url(&format!("/api/v1/platforms/{platform}/cookies")))
            .bearer_auth(&admin)
            .body(body)
            .send()
    };
    let response = put("# header\nnot a cookie\n", "instagram").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("line 2"),
        "{body}"
    );
    let response = put(good, "myspace").await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = put(good, "instagram").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, settings) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(settings["platforms"]["instagram"]["cookies"], "***");
    let (status, platforms) = app.get("/api/v1/platforms", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let listed = |name: &str| {
        platforms["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is listed: {platforms}"))
    };
    let instagram = listed("instagram");
    assert_eq!(instagram["cookies"]["present"], true);
    assert_eq!(instagram["cookies"]["expires_at"], "2100-01-01T00:00:00Z");
    assert!(!instagram["downloaders"].as_array().unwrap().is_empty());
    assert_eq!(listed("direct")["status"], "operational");
    // The general platforms, beside the named ones, with their programs.
    for (platform, program) in [("video", "yt-dlp"), ("gallery", "gallery-dl")] {
        let general = listed(platform);
        assert_eq!(general["downloaders"][0]["name"], program, "{general}");
    }
    // A site's cookies go to the general platform; a page is queued as is.
    let youtube = ".youtube.com\tTRUE\t/\tTRUE\t4102444800\tSID\tabc\n";
    assert_eq!(
        put(youtube, "video").await.unwrap().status(),
        StatusCode::OK
    );
    let channel = "http://127.0.0.1:9/@someone/videos";
    for (body, status, field) in [
        (
            json!({"url": channel, "platform": "video"}),
            StatusCode::CREATED,
            None,
        ),
        (
            json!({"platform": "gallery", "source": "someone"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("source"),
        ),
        (
            json!({"url": channel, "platform": "video", "metadata": {"directory_template": "../x"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("metadata.directory_template"),
        ),
    ] {
        let (got, reply) = app.post("/api/v1/queue", &admin, body.clone()).await;
        assert_eq!(
            (got, reply["field"].as_str()),
            (status, field),
            "{body} → {reply}"
        );
    }

    // The platform shortcuts validate and queue.
    let (status, body) = app
        .post(
            "/api/v1/platforms/tiktok/download",
            &admin,
            json!({"username": "../../etc", "max_downloads": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app.post("/api/v1/platforms/instagram/download", &admin, json!({"username": "evalongoria", "content_type": "stories", "downloader": "fastdl", "max_downloads": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    let (status, body) = app
        .post(
            "/api/v1/platforms/instagram/download",
            &admin,
            json!({"username": "eva", "content_type": "tweets"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("content_type"))
    );
    app.stop().await;
}

pub async fn lists_paginate_and_stats(db: Db) {
    let (_backing, app) = app(db).await;
    let admin = app.admin_token().await;
    for n in 0..5 {
        let (status, _) = app
            .post("/api/v1/queue", &admin, json!({"url": format!("http://127.0.0.1:9/{n}.bin"), "platform": "direct", "source": "pages"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, headers, body) = app
        .call(
            Method::GET,
            "/api/v1/queue?platform=direct&per_page=2&page=2",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(headers["x-total-count"], "5");
    assert_eq!(headers["x-page"], "2");
    assert_eq!(headers["x-per-page"], "2");
    assert_eq!(headers["x-total-pages"], "3");
    let link = headers["link"].to_str().unwrap();
    for rel in ["first", "prev", "next", "last"] {
        assert!(link.contains(&format!("rel=\"{rel}\"")), "{link}");
    }
    assert!(
        link.contains("/api/v1/queue?platform=direct&page=3&per_page=2"),
        "{link}"
    );
    for query in [
        "per_page=201",
        "per_page=0",
        "page=0",
        "page=-1",
        "page=99999999999999999999",
        "status=pending",
        "date_from=yesterday",
    ] {
        let (status, headers, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/downloads?{query}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_error(&headers, &body, "VALIDATION_ERROR");
    }
    let (status, headers, body) = app
        .call(
            Method::GET,
            "/api/v1/downloads?search=%27%20OR%201%3D1--&source=..%2F..",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((status, body["total"].as_u64()), (StatusCode::OK, Some(0)));
    assert_eq!(headers["x-total-pages"], "1");
    let (status, overview) = app.get("/api/v1/stats/overview", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["queue"]["pending"], 5, "{overview}");
    assert!(overview["storage"]["used_human"].is_string());
    let (status, timeline) = app
        .get("/api/v1/stats/timeline?period=week&group_by=day", &admin)
        .await;
    assert_eq!(
        (status, timeline["timeline"].is_array()),
        (StatusCode::OK, true)
    );
    let (status, _) = app.get("/api/v1/stats/timeline?period=eon", &admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, platforms) = app.get("/api/v1/stats/platforms", &admin).await;
    assert_eq!(
        (status, platforms["platforms"].is_array()),
        (StatusCode::OK, true)
    );
    let (status, stats) = app
        .get(
            "/api/v1/downloads/stats?period=all&group_by=content_type",
            &admin,
        )
        .await;
    assert_eq!(
        (status, stats["success_rate"].as_f64()),
        (StatusCode::OK, Some(100.0))
    );
    app.stop().await;
}

pub async fn logs_are_stored_and_served(db: Db) {
    let backing = Backing::new(db).await;
    let (capture, _guard) = log_capture();
    let mut config = backing.config();
    config.log_capture = Some(capture);
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "mallory", "password": "guessing-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut found = Value::Null;
    for attempt in 0..400 {
        // Under a loaded test run an event can miss this thread's scoped
        // subscriber; a fresh failed login every second tries again.
        if attempt % 20 == 19 {
            app.call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": format!("mallory{attempt}"), "password": "guessing-1"})),
            )
            .await;
        }
        let (status, logs) = app
            .get(
                "/api/v1/logs?module=Server&search=failed%20login&level=INFO",
                &admin,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        if logs["filtered"].as_u64().unwrap_or(0) > 0 {
            found = logs;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, everything) = app.get("/api/v1/logs?limit=1000", &admin).await;
    let entry = &found["logs"][0];
    assert_eq!(entry["level"], "INFO", "{found} / all: {everything}");
    assert!(
        entry["metadata"]["username"]
            .as_str()
            .unwrap_or("")
            .starts_with("mallory"),
        "{entry}"
    );
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/logs?limit=5000", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/logs?level=LOUD", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .client
        .get(app.url("/api/v1/logs/download?format=text"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"media_downloader_"),
        "{disposition}"
    );
    assert!(response.text().await.unwrap().contains("failed login"));
    let response = app
        .client
        .get(app.url("/api/v1/logs/download?format=json"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let entries: Value = response.json().await.unwrap();
    assert!(!entries.as_array().unwrap().is_empty());
    let (status, _, deleted) = app
        .call(
            Method::DELETE,
            "/api/v1/logs?older_than_days=0",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        deleted["deleted_entries"].as_u64().unwrap() >= 1,
        "{deleted}"
    );
    app.stop().await;
}

pub async fn rate_limit_answers_429(db: Db) {
    let backing = Backing::new(db).await;
    let mut config = backing.config();
    config.rate_limits.public_per_hour = 3;
    let app = TestApp::start(config).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        remaining.push(
            headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let (status, headers, body) = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_error(&headers, &body, "RATE_LIMITED");
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    // Health stays reachable for probes.
    let (status, _, _) = app.call(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

pub async fn restart_keeps_data(db: Db) {
    let backing = Backing::new(db).await;
    let app = TestApp::start(backing.config()).await;
    let admin = app.admin_token().await;
    let token = app.user_token(&admin, "persist", "user").await;
    let (status, created) = app
        .post(
            "/api/v1/queue",
            &token,
            json!({"url": "http://127.0.0.1:9/keep.bin", "platform": "direct", "source": "keep"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"general": {"default_priority": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;

    let app = TestApp::start(backing.config()).await;
    // The JWT secret survived: the old token still works.
    let (status, me) = app.get("/api/v1/auth/me", &token).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (StatusCode::OK, Some("persist"))
    );
    let (status, item) = app
        .get(&format!("/api/v1/queue/{}", created["id"]), &token)
        .await;
    assert_eq!(
        (status, item["source"].as_str()),
        (StatusCode::OK, Some("keep"))
    );
    let admin = app.admin_token().await;
    let (_, settings) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(settings["general"]["default_priority"], 3);
    app.stop().await;
}

/// Polls `/health/ready` until it answers `status` (a pool reconnects in
/// the background, so the flip back is awaited, not timed).
async fn readiness_until(app: &TestApp, status: StatusCode) -> (reqwest::header::HeaderMap, Value) {
    let mut last = None;
    for _ in 0..100 {
        let (answered, headers, body) = app
            .call(Method::GET, "/api/v1/health/ready", None, None)
            .await;
        if answered == status {
            return (headers, body);
        }
        last = Some((answered, body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/health/ready never answered {status}; last: {last:?}");
}

pub async fn readiness_checks_database_and_storage(db: Db) {
    let (backing, app) = app(db).await;
    let (status, _, body) = app
        .call(Method::GET, "/api/v1/health/ready", None, None)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "ok", "checks": {"database": "ok", "storage": "ok"}})
        )
    );

    // The download directory gone: 503 naming storage, then back.
    let downloads = app.data_dir.join("downloads");
    std::fs::remove_dir(&downloads).unwrap();
    let (headers, body) = readiness_until(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_error(&headers, &body, "SERVICE_UNAVAILABLE");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("storage: download directory"), "{detail}");
    assert!(!detail.contains("database"), "{detail}");
    assert_eq!(headers["retry-after"], "5");
    std::fs::create_dir(&downloads).unwrap();
    readiness_until(&app, StatusCode::OK).await;
    // The probe leaves no file behind.
    assert_eq!(std::fs::read_dir(&downloads).unwrap().count(), 0);

    // PostgreSQL refusing this database: 503 naming the database, then back.
    if let Some(pg) = &backing.pg {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&mediadl_store::testing::test_server_url())
            .await
            .unwrap();
        let allow = |on: bool| {
            sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {on}",
                pg.name()
            ))
        };
        sqlx::raw_sql(allow(false))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(pg.name())
            .execute(&mut admin)
            .await
            .unwrap();
        let (headers, body) = readiness_until(&app, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_error(&headers, &body, "SERVICE_UNAVAILABLE");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("not ready: database: "), "{detail}");
        assert!(!detail.contains("storage"), "{detail}");
        sqlx::raw_sql(allow(true))
            .execute(&mut admin)
            .await
            .unwrap();
        readiness_until(&app, StatusCode::OK).await;
    }
    // Probes are not rate limited.
    let response = app
        .client
        .get(app.url("/api/v1/health/ready"))
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("x-ratelimit-limit"));
    app.stop().await;
}
