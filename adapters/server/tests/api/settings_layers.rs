//! One configuration: the config file's values (and the download root the
//! operator sets) are laid over the stored settings on every load, update,
//! reload and restart; `GET /settings` shows the effective document.

use mediadl::SettingsHandle;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backing, Db, TestApp, assert_error};

const FILE: &str = "the config file /etc/mediadl/mediadl.toml";

fn file_values() -> Value {
    json!({
        "general": {"retry_attempts": 7},
        "platforms": {"tiktok": {"quality": "sd"}}
    })
}

async fn patch(app: &TestApp, token: &str, patch: Value) -> (StatusCode, Value) {
    let (status, headers, body) = app
        .call(Method::PATCH, "/api/v1/settings", Some(token), Some(patch))
        .await;
    if status != StatusCode::OK {
        assert_error(&headers, &body, body["error_code"].as_str().unwrap_or("?"));
    }
    (status, body)
}

/// What the file sets, and what the earlier PATCHes set, are in effect.
fn assert_layers(settings: &Value) {
    assert_eq!(settings["general"]["retry_attempts"], 7, "{settings}");
    assert_eq!(settings["general"]["concurrent_downloads"], 6);
    let tiktok = &settings["platforms"]["tiktok"];
    assert_eq!(tiktok["quality"], "sd");
    assert_eq!(tiktok["enabled"], true);
    let native = &settings["platforms"]["instagram"]["native"];
    assert_eq!(native["rate_limit_per_hour"], 50);
    assert_eq!(native["enabled"], true, "the platform's other keys stay");
    assert_eq!(settings["platforms"]["instagram"]["auto_upgrade"], true);
    assert_eq!(
        settings["platforms"]["instagram"]["gallery-dl"]["enabled"],
        true
    );
}

pub async fn file_values_survive_patch_reload_and_restart(db: Db) {
    let backing = Backing::new(db).await;
    let config = || {
        let mut config = backing.config();
        config.settings_layers = mediadl::SettingsLayers::default().pin(FILE, file_values());
        config
    };
    let app = TestApp::start(config()).await;
    let admin = app.admin_token().await;

    // Every key with its default, the real download root, the file's values.
    let (status, shown) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let root = backing.dir.path().join("data").join("downloads");
    assert_eq!(
        shown["general"]["download_directory"],
        root.display().to_string()
    );
    assert_eq!(shown["downloads"]["files_per_item"], 4);
    assert_eq!(shown["network"]["connect_timeout_seconds"], 15);
    assert_eq!(shown["logs"]["retention_days"], 30);
    assert_eq!(shown["notifications"]["email"]["smtp_port"], 587);
    assert_eq!(shown["notifications"]["retry"]["max_attempts"], 5);
    assert_eq!(shown["platforms"]["video"]["yt-dlp"]["enabled"], true);
    assert_eq!(shown["general"]["retry_attempts"], 7);

    // A PATCH of other keys (one key of a platform among them) keeps the file's.
    let (status, body) = patch(
        &app,
        &admin,
        json!({
            "general": {"concurrent_downloads": 6},
            "platforms": {"instagram": {"native": {"rate_limit_per_hour": 50}}}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["updated_fields"], 2);
    let (_, after) = app.get("/api/v1/settings", &admin).await;
    assert_layers(&after);
    let mut expected = shown.clone();
    expected["general"]["concurrent_downloads"] = json!(6);
    expected["platforms"]["instagram"]["native"]["rate_limit_per_hour"] = json!(50);
    assert_eq!(after, expected, "the PATCH changed its two keys only");

    // A key the file sets is read-only, naming the file; nothing is stored.
    for (body, field) in [
        (
            json!({"general": {"retry_attempts": 2}}),
            "general.retry_attempts",
        ),
        (
            json!({"platforms": {"tiktok": {"quality": "hd"}}}),
            "platforms.tiktok.quality",
        ),
    ] {
        let (status, headers, body) = app
            .call(Method::PATCH, "/api/v1/settings", Some(&admin), Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_error(&headers, &body, "READ_ONLY_SETTING");
        assert_eq!(body["field"], field);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(FILE), "{body}");
    }
    // The document sent back as shown is accepted and changes nothing.
    let (status, body) = patch(&app, &admin, after.clone()).await;
    assert_eq!(
        (status, &body["updated_fields"]),
        (StatusCode::OK, &json!(0))
    );

    // A worker's reload (every 30 s) on the same database lays the file
    // over what the server stored.
    let store = mediadl_server::open_store(&config()).await.unwrap();
    let layers = config().effective_settings_layers();
    let worker = SettingsHandle::load(store.as_ref(), &layers).await.unwrap();
    let (status, body) = patch(&app, &admin, json!({"general": {"default_priority": 2}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    worker.reload(store.as_ref()).await.unwrap();
    let reloaded = worker.current();
    assert_eq!(reloaded.general.default_priority, 2);
    assert_layers(&reloaded.to_value());

    // And a restart.
    app.stop().await;
    let app = TestApp::start(config()).await;
    let admin = app.admin_token().await;
    let (_, restarted) = app.get("/api/v1/settings", &admin).await;
    assert_layers(&restarted);
    assert_eq!(restarted["general"]["default_priority"], 2);
    app.stop().await;
}

pub async fn the_operators_download_dir_is_shown_and_read_only(db: Db) {
    let backing = Backing::new(db).await;
    let mut config = backing.config();
    let root = backing.dir.path().join("media");
    config.download_dir = Some(root.clone());
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let (_, shown) = app.get("/api/v1/settings", &admin).await;
    assert_eq!(
        shown["general"]["download_directory"],
        root.display().to_string()
    );
    assert!(root.is_dir(), "made at start");
    let (status, headers, body) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"general": {"download_directory": "/elsewhere"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&headers, &body, "READ_ONLY_SETTING");
    assert_eq!(body["field"], "general.download_directory");
    assert!(
        body["detail"].as_str().unwrap().contains("--download-dir"),
        "{body}"
    );
    app.stop().await;
}
