//! Attacks on accounts and sessions, tried against a running server: a
//! stranger guessing passwords to lock the admin out, guesses through the
//! password change, over-long login names, a replayed refresh token,
//! access tokens that should have ended, and database files other users
//! could read.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, Backing, Db, TestApp, assert_error};

/// A client whose requests come from `local` (inside 127.0.0.0/8, so the
/// server sees distinct client addresses on one machine).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client.request(method, app.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        app,
        client,
        Method::POST,
        "/api/v1/auth/login",
        None,
        json!({"username": username, "password": password}),
    )
    .await
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers["retry-after"].to_str().unwrap().parse().unwrap()
}

/// The test helpers make the first wait an hour, so no assertion here
/// depends on how fast the machine is.
#[tokio::test]
async fn guessing_from_one_address_does_not_lock_out_another() {
    let backing = Backing::new(Db::Sqlite).await;
    let app = TestApp::start(backing.config()).await;
    let attacker = client_from("127.0.0.2");
    let owner = client_from("127.0.0.3");

    for _ in 0..3 {
        let (status, headers, body) = login_from(&app, &attacker, "Admin", "guess-guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_error(&headers, &body, "INVALID_CREDENTIALS");
    }
    // The guessing address now waits, even with the right password.
    let (status, headers, body) = login_from(&app, &attacker, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&headers, &body, "ACCOUNT_LOCKED");
    assert!(retry_after(&headers) > 60, "{headers:?}");
    // The owner, from another address, signs in at once.
    let (status, _, body) = login_from(&app, &owner, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let owner_token = body["access_token"].as_str().unwrap().to_string();

    // Guesses through the password change count too: a stolen access
    // token does not give unlimited tries at the password.
    let thief = client_from("127.0.0.4");
    for _ in 0..3 {
        let (status, headers, body) = send(
            &app,
            &thief,
            Method::POST,
            "/api/v1/auth/password",
            Some(&owner_token),
            json!({"current_password": "guess-guess", "new_password": "taken-over-1"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_error(&headers, &body, "VALIDATION_ERROR");
    }
    let (status, headers, body) = send(
        &app,
        &thief,
        Method::POST,
        "/api/v1/auth/password",
        Some(&owner_token),
        json!({"current_password": ADMIN_PASSWORD, "new_password": "taken-over-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&headers, &body, "ACCOUNT_LOCKED");
    // The password is unchanged: the owner still signs in with it.
    let (status, _, body) = login_from(&app, &owner, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn many_addresses_lock_the_account_only_for_those_that_failed() {
    let backing = Backing::new(Db::Sqlite).await;
    let mut config = backing.config();
    config.lockout.account_lock_failures = Some(4);
    let app = TestApp::start(config).await;
    let first = client_from("127.0.0.2");
    let second = client_from("127.0.0.5");
    for _ in 0..3 {
        login_from(&app, &first, "admin", "guess-guess").await;
    }
    // One more failure, from elsewhere, reaches the account's threshold.
    let (status, _, _) = login_from(&app, &second, "admin", "guess-guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for client in [&first, &second] {
        let (status, headers, body) = login_from(&app, client, "admin", ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_error(&headers, &body, "ACCOUNT_LOCKED");
    }
    // An address that never failed is let in with the right password.
    let clean = client_from("127.0.0.6");
    let (status, _, body) = login_from(&app, &clean, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

/// A `MakeWriter` keeping everything logged on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn over_long_login_names_and_passwords_are_refused_unlogged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let backing = Backing::new(Db::Sqlite).await;
    let app = TestApp::start(backing.config()).await;
    let client = client_from("127.0.0.2");

    let long_name = "Q".repeat(512 * 1024);
    let (status, headers, body) = login_from(&app, &client, &long_name, "guess-guess").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&headers, &body, "VALIDATION_ERROR");
    assert_eq!(body["field"], "username", "{body}");
    // A password no account can have is refused before it is hashed, and
    // is not a guess: after more of them than the free failures, the right
    // password still works from the same address.
    let long_password = "p".repeat(64 * 1024);
    for _ in 0..4 {
        let (status, headers, body) = login_from(&app, &client, "admin", &long_password).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_error(&headers, &body, "VALIDATION_ERROR");
    }
    let (status, _, body) = login_from(&app, &client, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An ordinary failed login is logged (so the capture works) …
    let (status, _, _) = login_from(&app, &client, "marker-name", "guess-guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
    let text = captured.text();
    assert!(text.contains("marker-name"), "the capture saw the server");
    // … and the long name was written nowhere.
    assert!(
        !text.contains("QQQQQQQQ"),
        "the over-long name reached the log"
    );
}

async fn admin_patch(app: &TestApp, admin: &str, id: &Value, body: Value) {
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(admin),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn assert_ended(app: &TestApp, token: &str, why: &str) {
    let (status, headers, body) = app
        .call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    assert_error(&headers, &body, "TOKEN_INVALID");
}

async fn assert_live(app: &TestApp, token: &str, why: &str) {
    let (status, body) = app.get("/api/v1/auth/me", token).await;
    assert_eq!(status, StatusCode::OK, "{why}: {body}");
}

async fn refresh(app: &TestApp, token: &Value) -> (StatusCode, Value) {
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": token})),
        )
        .await;
    (status, body)
}

async fn replayed_refresh_tokens_and_ended_sessions(db: Db) {
    let backing = Backing::new(db).await;
    let app = TestApp::start(backing.config()).await;
    let admin = app.admin_token().await;
    app.user_token(&admin, "ulla", "user").await;

    // Two logins: two families.
    let phone = app.login("ulla", "password-123").await;
    let laptop = app.login("ulla", "password-123").await;
    let user_id = phone["user"]["id"].clone();
    let (status, rotated) = refresh(&app, &phone["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    // The spent token comes back (a thief, or the owner after the thief):
    // refused, and everything issued after it in its family ends.
    let (status, body) = refresh(&app, &phone["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error_code"], "TOKEN_INVALID");
    let (status, _) = refresh(&app, &rotated["refresh_token"]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the rotated token is revoked"
    );
    assert_ended(
        &app,
        rotated["access_token"].as_str().unwrap(),
        "an access token issued after the replayed one",
    )
    .await;
    // The other login's refresh token still works.
    let (status, laptop) = refresh(&app, &laptop["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{laptop}");
    let laptop_access = laptop["access_token"].as_str().unwrap();
    assert_live(&app, laptop_access, "the other login").await;

    // Logout ends the access token at once, and its refresh token.
    let (status, _) = app
        .post("/api/v1/auth/logout", laptop_access, json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_ended(&app, laptop_access, "after logout").await;
    let (status, _) = refresh(&app, &laptop["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An admin's password reset, disabling and a new role end them too.
    // Each signs in with the password valid before the change.
    let changes = [
        (
            "password reset",
            json!({"password": "password-456"}),
            "password-123",
        ),
        ("new role", json!({"role": "viewer"}), "password-456"),
        ("disabled", json!({"disabled": true}), "password-456"),
    ];
    for (why, change, password) in changes {
        let token = app.login("ulla", password).await["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_live(&app, &token, why).await;
        admin_patch(&app, &admin, &user_id, change).await;
        let (status, _, body) = app
            .call(Method::GET, "/api/v1/auth/me", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    }
    admin_patch(&app, &admin, &user_id, json!({"disabled": false})).await;
    // A change of email alone leaves sessions alone.
    let session = app.login("ulla", "password-456").await;
    let token = session["access_token"].as_str().unwrap();
    assert_eq!(session["user"]["role"], "viewer");
    admin_patch(&app, &admin, &user_id, json!({"email": "u@example.org"})).await;
    assert_live(&app, token, "an email change").await;

    // One's own password change ends every session, this one included.
    let (status, body) = app
        .post(
            "/api/v1/auth/password",
            token,
            json!({"current_password": "password-456", "new_password": "password-789"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_ended(&app, token, "after one's own password change").await;
    let (status, _) = refresh(&app, &session["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.login("ulla", "password-789").await;
    app.stop().await;
}

#[tokio::test]
async fn replayed_refresh_tokens_and_ended_sessions_sqlite() {
    replayed_refresh_tokens_and_ended_sessions(Db::Sqlite).await;
}

#[tokio::test]
async fn replayed_refresh_tokens_and_ended_sessions_postgres() {
    replayed_refresh_tokens_and_ended_sessions(Db::Postgres).await;
}

#[cfg(unix)]
#[tokio::test]
async fn data_dir_database_and_secret_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let backing = Backing::new(Db::Sqlite).await;
    let config = backing.config();
    let data = config.data_dir.clone();
    assert!(!data.exists());
    let app = TestApp::start(config.clone()).await;
    // A write, so the WAL file exists.
    app.admin_token().await;
    assert_eq!(mode(&data), 0o700, "data directory");
    let db = data.join("mediadl.db");
    let mut files = vec![db.clone(), data.join("jwt_secret")];
    for companion in ["mediadl.db-wal", "mediadl.db-shm"] {
        if data.join(companion).exists() {
            files.push(data.join(companion));
        }
    }
    assert!(files.len() >= 3, "the WAL or shared-memory file: {files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    app.stop().await;

    // Files left readable by an older version are tightened at start.
    for file in [&db, &data.join("jwt_secret")] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let app = TestApp::start(config).await;
    app.admin_token().await;
    assert_eq!(mode(&db), 0o600, "database tightened");
    assert_eq!(mode(&data.join("jwt_secret")), 0o600, "secret tightened");
    app.stop().await;
}
