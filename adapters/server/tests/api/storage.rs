//! The API on media in an S3 bucket (moto on loopback): the engine stores
//! there, `/file` serves ranges from it or redirects to a presigned URL,
//! and an object deleted behind the server's back is a 404 with a body.

use std::time::Duration;

use mediadl::storage::{MediaStorage, S3Config, S3Storage};
use mediadl::testkit::s3::S3Server;
use mediadl::testkit::{Fixture, FixtureServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backing, Db, TestApp, assert_error, assert_serves_ranges};

const BUCKET: &str = "media";

/// A server (engine on) storing media in a fresh bucket on `s3`.
async fn app_on_s3(backing: &Backing, s3: &S3Server, presigned: bool) -> TestApp {
    let mut config = backing.config();
    config.run_engine = true;
    let settings = s3.settings(BUCKET);
    config.settings_layers = config.settings_layers.pin(
        "the test",
        json!({"storage": {"backend": "s3", "s3": {
            "endpoint": settings.endpoint,
            "bucket": BUCKET,
            "access_key_id": settings.access_key_id,
            "secret_access_key": settings.secret_access_key,
            "presigned_redirect": presigned,
        }}}),
    );
    TestApp::start(config).await
}

/// Queues `url` and waits for its completed download record.
async fn downloaded(app: &TestApp, token: &str, url: &str) -> Value {
    let (status, created) = app
        .post(
            "/api/v1/queue",
            token,
            json!({"url": url, "platform": "direct", "source": "fixture", "content_type": "file"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for _ in 0..300 {
        let (_, list) = app.get("/api/v1/downloads?source=fixture", token).await;
        if let Some(done) = list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["url"] == url))
        {
            assert_eq!(done["status"], "completed", "{done}");
            return done.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} was not downloaded within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_ranges_come_from_the_bucket_and_a_vanished_object_is_a_404() {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let site = FixtureServer::start().await;
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    site.route("/clip.bin", Fixture::bytes(body.clone()));
    let backing = Backing::new(Db::Sqlite).await;
    let app = app_on_s3(&backing, &s3, false).await;
    let admin = app.admin_token().await;

    let download = downloaded(&app, &admin, &site.url("/clip.bin")).await;
    let locator = download["file_path"].as_str().unwrap();
    assert!(locator.starts_with("s3://media/direct/"), "{locator}");
    let id = download["id"].as_i64().unwrap();
    assert_serves_ranges(&app, id, &admin, &body).await;
    let (status, ready) = app.get("/api/v1/health/ready", &admin).await;
    assert_eq!(status, StatusCode::OK, "{ready}");

    // Deleted behind the server's back (by another client of the bucket).
    let staging = tempfile::tempdir().unwrap();
    let other = S3Storage::new(&S3Config::new(s3.settings(BUCKET), staging.path())).unwrap();
    let key = other.key_of(locator).unwrap();
    other.delete(&key).await.unwrap();
    assert_eq!(other.size(&key).await.unwrap(), None);
    let response = app
        .client
        .get(app.url(&format!("/api/v1/downloads/{id}/file")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let headers = response.headers().clone();
    let error: Value = response.json().await.unwrap();
    assert_error(&headers, &error, "NOT_FOUND");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_can_redirect_to_a_presigned_url_that_serves_the_bytes() {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let site = FixtureServer::start().await;
    site.route("/photo.jpg", Fixture::bytes(b"not really a jpeg".to_vec()));
    let backing = Backing::new(Db::Sqlite).await;
    let app = app_on_s3(&backing, &s3, true).await;
    let admin = app.admin_token().await;
    let id = downloaded(&app, &admin, &site.url("/photo.jpg")).await["id"]
        .as_i64()
        .unwrap();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(app.url(&format!("/api/v1/downloads/{id}/file")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(s3.endpoint()), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let bytes = reqwest::get(&location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), b"not really a jpeg");
    app.stop().await;
}
