//! `platform` omitted or `"auto"` on `POST /queue` and `POST
//! /scheduler/jobs`, and the dashboard's preview `GET
//! /platforms/recognise` (issue 16): the platform is chosen from the URL,
//! the response names it, and explicit platforms behave as before.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backing, Db, TestApp};

const REELS: &str = "https://www.instagram.com/evalongoria/reels/";
const THREAD: &str = "https://forum.example.com/threads/a-title.123/";
const TIKTOK: &str = "https://www.tiktok.com/@some.user";

fn preview_path(url: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("url", url)
        .finish();
    format!("/api/v1/platforms/recognise?{query}")
}

/// `(platform, source, content_type)` of a response body.
fn chosen(body: &Value) -> (&str, &str, &str) {
    let field = |name: &str| body[name].as_str().unwrap_or_default();
    (field("platform"), field("source"), field("content_type"))
}

#[tokio::test]
async fn the_preview_names_the_platform_for_users_only() {
    let backing = Backing::new(Db::Sqlite).await;
    let app = TestApp::start(backing.config()).await;
    let admin = app.admin_token().await;
    let user = app.user_token(&admin, "paster", "user").await;
    let viewer = app.user_token(&admin, "looker", "viewer").await;

    for (url, expected, by) in [
        (REELS, ("instagram", "evalongoria", "reels"), "rules"),
        (TIKTOK, ("tiktok", "some.user", "videos"), "rules"),
        (THREAD, ("forum", "forum.example.com", "images"), "rules"),
        (
            "http://127.0.0.1:9/files/report.pdf",
            ("direct", "127.0.0.1", "file"),
            "nobody",
        ),
    ] {
        let (status, body) = app.get(&preview_path(url), &user).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        assert_eq!(chosen(&body), expected, "{url}: {body}");
        assert_eq!(body["matched_by"]["kind"], by, "{body}");
    }

    let (status, _) = app.get(&preview_path(REELS), &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "viewers may not queue");
    let (status, _, _) = app
        .call(Method::GET, &preview_path(REELS), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for bad in [
        preview_path("evalongoria"),
        preview_path("ftp://example.com/file"),
        "/api/v1/platforms/recognise".to_owned(),
    ] {
        app.expect_invalid(Method::GET, &bad, &user, None).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn queue_and_jobs_pick_the_platform_from_the_url() {
    let backing = Backing::new(Db::Sqlite).await;
    let app = TestApp::start(backing.config()).await;
    let admin = app.admin_token().await;
    let user = app.user_token(&admin, "paster", "user").await;

    // Omitted, "auto", the URL given as the source: all recognised.
    for (request, expected) in [
        (json!({"url": REELS}), ("instagram", "evalongoria", "reels")),
        (
            json!({"platform": "auto", "url": THREAD}),
            ("forum", "forum.example.com", "images"),
        ),
        (
            json!({"platform": "auto", "source": TIKTOK}),
            ("tiktok", "some.user", "videos"),
        ),
        (
            json!({"url": "http://127.0.0.1:9/a.bin", "source": "my label"}),
            ("direct", "my label", "file"),
        ),
    ] {
        let (status, body) = app.post("/api/v1/queue", &user, request.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{request}: {body}");
        assert_eq!(chosen(&body), expected, "{request}: {body}");
    }
    // An explicit platform is taken as given, as before.
    let (status, body) = app
        .post(
            "/api/v1/queue",
            &user,
            json!({"platform": "direct", "url": REELS, "source": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(chosen(&body), ("direct", "x", "file"));
    for bad in [
        json!({"platform": "auto"}),
        json!({"source": "evalongoria"}),
        json!({"platform": "auto", "url": "mailto:a@b.example"}),
    ] {
        app.expect_invalid(Method::POST, "/api/v1/queue", &user, Some(bad))
            .await;
    }

    let job = |extra: Value| {
        let mut body = json!({"schedule": "0 3 * * *"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, body) = app
        .post(
            "/api/v1/scheduler/jobs",
            &admin,
            job(json!({"source": TIKTOK})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(chosen(&body), ("tiktok", "some.user", "videos"));
    let (status, body) = app
        .post(
            "/api/v1/scheduler/jobs",
            &admin,
            job(json!({"platform": "auto", "source": THREAD})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(chosen(&body), ("forum", "forum.example.com", "images"));
    assert_eq!(body["config"]["url"], THREAD, "{body}");
    let body = app
        .expect_invalid(
            Method::POST,
            "/api/v1/scheduler/jobs",
            &admin,
            Some(job(json!({"platform": "auto", "source": "evalongoria"}))),
        )
        .await;
    assert!(
        body["detail"].as_str().unwrap().contains("source"),
        "{body}"
    );
    app.stop().await;
}
