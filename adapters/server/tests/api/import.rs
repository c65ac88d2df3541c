//! `POST /import` (issue 16): admins only, confined to the download root
//! and `<data dir>/imports` (links resolved; nothing of a refused file in
//! the answer), idempotent, and what it records is listed and served.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backing, Db, TestApp, assert_error};

async fn import(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let (status, headers, body) = app
        .call(Method::POST, "/api/v1/import", Some(token), Some(body))
        .await;
    if !status.is_success() {
        let code = if status == StatusCode::FORBIDDEN {
            "FORBIDDEN"
        } else {
            "VALIDATION_ERROR"
        };
        assert_error(&headers, &body, code);
    }
    (status, body)
}

pub async fn import_is_admin_only_confined_and_idempotent(db: Db) {
    let backing = Backing::new(db).await;
    let app = TestApp::start(backing.config()).await;
    let admin = app.admin_token().await;
    let user = app.user_token(&admin, "importer", "user").await;
    let viewer = app.user_token(&admin, "looker", "viewer").await;

    let imports = app.data_dir.join("imports");
    std::fs::create_dir_all(&imports).unwrap();
    let archive = imports.join("archive.txt");
    std::fs::write(&archive, "youtube dQw4w9WgXcQ\ntiktok 7301\n").unwrap();
    let album = app.data_dir.join("downloads").join("album");
    std::fs::create_dir_all(&album).unwrap();
    std::fs::write(album.join("a.jpg"), b"\xff\xd8\xff picture").unwrap();
    std::fs::write(album.join("a copy.jpg"), b"\xff\xd8\xff picture").unwrap();
    // A link inside the download root to a file the server must not read.
    std::os::unix::fs::symlink("/etc/passwd", album.join("passwd.txt")).unwrap();

    let archive_request = json!({"kind": "yt_dlp_archive", "path": archive});
    for token in [&user, &viewer] {
        let (status, _) = import(&app, token, archive_request.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    let refused = [
        json!({"kind": "yt_dlp_archive", "path": "/etc/passwd"}),
        json!({"kind": "yt_dlp_archive", "path": app.data_dir.join("jwt_secret")}),
        json!({"kind": "yt_dlp_archive", "path": album.join("passwd.txt")}),
        json!({"kind": "gallery_dl_archive", "path": app.data_dir.join("mediadl.db")}),
        json!({"kind": "directory", "path": "/etc"}),
        json!({"kind": "directory", "path": "relative/dir"}),
        json!({"kind": "yt_dlp_archive", "path": archive, "platform": "video"}),
    ];
    for body in refused {
        let (status, answer) = import(&app, &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(!detail.contains("root:"), "{detail}");
    }
    // A file of the wrong kind inside the allowed directories: a reason.
    let (status, answer) = import(
        &app,
        &admin,
        json!({"kind": "gallery_dl_archive", "path": archive}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer["detail"].as_str().unwrap().contains("text file"),
        "{answer}"
    );

    let (status, answer) = import(&app, &admin, archive_request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["finished"], true);
    assert_eq!(answer["summary"]["imported"], 2, "{answer}");
    let (_, again) = import(&app, &admin, archive_request).await;
    assert_eq!(
        (
            &again["summary"]["imported"],
            &again["summary"]["already_known"]
        ),
        (&json!(0), &json!(2)),
        "{again}"
    );

    let (status, tree) = import(
        &app,
        &admin,
        json!({"kind": "directory", "path": album, "source": "holiday"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tree}");
    assert_eq!(
        (&tree["summary"]["imported"], &tree["summary"]["duplicates"]),
        (&json!(1), &json!(1)),
        "{tree}"
    );
    assert!(
        tree["message"]
            .as_str()
            .unwrap()
            .contains("imported 1 entry"),
        "{tree}"
    );

    // Archive entries are listed as completed without a file; the media
    // file inside the download root is served.
    let (_, videos) = app.get("/api/v1/downloads?platform=video", &admin).await;
    let entry = &videos["items"][0];
    assert_eq!(entry["status"], "completed", "{videos}");
    assert_eq!(entry["file_path"], Value::Null, "{videos}");
    let (_, files) = app
        .get("/api/v1/downloads?platform=direct&source=holiday", &admin)
        .await;
    let original = files["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["duplicate_of"].is_null())
        .expect("the original")
        .clone();
    let response = app
        .client
        .get(app.url(&format!("/api/v1/downloads/{}/file", original["id"])))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        &response.bytes().await.unwrap()[..],
        b"\xff\xd8\xff picture"
    );
    app.stop().await;
}
