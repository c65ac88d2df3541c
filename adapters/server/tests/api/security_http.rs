//! The HTTP side of "safe to expose", each test written as the attack:
//! a user's script page opened by an admin, media links stolen or altered,
//! half-sent requests and idle sockets, an oversized WebSocket frame before
//! authentication, a huge image's thumbnail, and search text that used to
//! match everything.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl_server::ConnectionLimits;
use mediadl_server::media_links::{MediaKind, MediaLinks};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backing, Db, TestApp, assert_error};

/// A bound on waits that must end, so a regression fails instead of hanging.
const SAFETY: Duration = Duration::from_secs(30);
const JWT_SECRET: &str = "security-http-test-secret-0123456789";

const SCRIPT_PAGE: &str =
    "<html><body><script>fetch('/api/v1/users/2',{method:'PATCH'})</script></body></html>";
const SCRIPT_SVG: &str =
    "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.domain)</script></svg>";

fn png_bytes(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([10, 120, 200]));
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// A PNG whose header declares `width` x `height` but carries no pixels.
fn declared_png(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &[][..]), (b"IEND", &[][..])] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    png
}

async fn start(db: Db, engine: bool, limits: Option<ConnectionLimits>) -> (TestApp, Backing) {
    let backing = Backing::new(db).await;
    let mut config = backing.config();
    config.run_engine = engine;
    config.jwt_secret = Some(JWT_SECRET.into());
    if let Some(limits) = limits {
        config.connection_limits = limits;
    }
    (TestApp::start(config).await, backing)
}

/// Queues `url` as a direct file with `token` and returns nothing; the
/// engine downloads it.
async fn queue(app: &TestApp, token: &str, url: &str) {
    let (status, body) = app
        .post(
            "/api/v1/queue",
            token,
            json!({"url": url, "platform": "direct", "source": "fixture", "content_type": "file"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Waits until `count` downloads are completed; returns them by filename.
async fn completed_downloads(app: &TestApp, token: &str, count: u64) -> Vec<Value> {
    let wait = async {
        loop {
            let (status, list) = app
                .get("/api/v1/downloads?status=completed&per_page=100", token)
                .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            if list["total"].as_u64() == Some(count) {
                return list["items"].as_array().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(SAFETY, wait)
        .await
        .expect("the downloads complete")
}

fn id_of(downloads: &[Value], filename: &str) -> i64 {
    downloads
        .iter()
        .find(|d| {
            d["filename"]
                .as_str()
                .is_some_and(|f| f.ends_with(filename))
        })
        .unwrap_or_else(|| panic!("{filename} among {downloads:?}"))["id"]
        .as_i64()
        .unwrap()
}

async fn get_media(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

fn assert_inert(response: &reqwest::Response) {
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(response, "content-security-policy"),
        "sandbox; default-src 'none'"
    );
}

/// A `user` downloads a page with a script (HTML and SVG); an admin who
/// opens it gets an inert attachment, while images and video stay inline.
pub async fn a_users_script_page_reaches_the_admin_as_an_inert_attachment() {
    let (app, _backing) = start(Db::Sqlite, true, None).await;
    let admin = app.admin_token().await;
    let user = app.user_token(&admin, "mallory", "user").await;
    let site = FixtureServer::start().await;
    site.route("/evil/page.html", Fixture::html(SCRIPT_PAGE));
    site.route(
        "/evil/drawing.svg",
        Fixture::bytes(SCRIPT_SVG).header("content-type", "image/svg+xml"),
    );
    site.route(
        "/evil/notes.xml",
        Fixture::bytes("<?xml version=\"1.0\"?><a/>").header("content-type", "text/xml"),
    );
    site.route(
        "/ok/picture.png",
        Fixture::bytes(png_bytes(40, 30)).header("content-type", "image/png"),
    );
    site.route(
        "/ok/clip.mp4",
        Fixture::bytes(vec![0u8; 4096]).header("content-type", "video/mp4"),
    );
    for path in [
        "/evil/page.html",
        "/evil/drawing.svg",
        "/evil/notes.xml",
        "/ok/picture.png",
        "/ok/clip.mp4",
    ] {
        queue(&app, &user, &site.url(path)).await;
    }
    let downloads = completed_downloads(&app, &admin, 5).await;

    for (name, content_type) in [
        ("page.html", "text/html"),
        ("drawing.svg", "image/svg+xml"),
        ("notes.xml", "text/xml"),
    ] {
        let id = id_of(&downloads, name);
        let response = get_media(&app, &format!("/api/v1/downloads/{id}/file"), Some(&admin)).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert!(
            header(&response, "content-disposition").starts_with("attachment;"),
            "{name}: {}",
            header(&response, "content-disposition")
        );
        assert!(header(&response, "content-type").starts_with(content_type));
        assert_inert(&response);
    }
    for name in ["picture.png", "clip.mp4"] {
        let id = id_of(&downloads, name);
        let response = get_media(&app, &format!("/api/v1/downloads/{id}/file"), Some(&admin)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "content-disposition").starts_with("inline;"));
        assert_inert(&response);
    }
    // Ranges still work on the inert responses.
    let clip = id_of(&downloads, "clip.mp4");
    let partial = app
        .client
        .get(app.url(&format!("/api/v1/downloads/{clip}/file")))
        .bearer_auth(&admin)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&partial, "content-range"), "bytes 100-199/4096");
    assert_inert(&partial);
    assert_eq!(partial.bytes().await.unwrap().len(), 100);
    let outside = app
        .client
        .get(app.url(&format!("/api/v1/downloads/{clip}/file")))
        .bearer_auth(&admin)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Thumbnails, of the page too, are images and inert.
    for name in ["page.html", "picture.png"] {
        let id = id_of(&downloads, name);
        let response = get_media(
            &app,
            &format!("/api/v1/downloads/{id}/thumbnail"),
            Some(&admin),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "content-type").starts_with("image/"));
        assert_inert(&response);
    }
    app.stop().await;
}

/// The dashboard shell carries a strict policy and runs no inline script;
/// the API docs page is still served.
pub async fn the_dashboard_has_a_strict_policy_and_no_inline_script() {
    let (app, _backing) = start(Db::Sqlite, false, None).await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let policy = header(&response, "content-security-policy").to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert!(!header(&response, "referrer-policy").is_empty());
    let page = response.text().await.unwrap().to_ascii_lowercase();
    let scripts: Vec<&str> = page.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for script in scripts {
        let (tag, rest) = script.split_once('>').unwrap();
        assert!(tag.contains(" src="), "inline script: <script{tag}>");
        assert!(rest.starts_with("</script>"), "a script with a body");
    }
    let docs = app.client.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    app.stop().await;
}

/// Signed links open one medium of one download for their user until
/// they expire; altered, transplanted or expired links and `?token=` are
/// refused with the error body.
pub async fn signed_media_links_open_one_download_until_they_expire() {
    let (app, _backing) = start(Db::Sqlite, true, None).await;
    let admin = app.admin_token().await;
    let viewer = app.user_token(&admin, "vera", "viewer").await;
    let site = FixtureServer::start().await;
    let first = png_bytes(50, 40);
    site.route(
        "/a.png",
        Fixture::bytes(first.clone()).header("content-type", "image/png"),
    );
    site.route(
        "/b.png",
        Fixture::bytes(png_bytes(20, 20)).header("content-type", "image/png"),
    );
    queue(&app, &admin, &site.url("/a.png")).await;
    queue(&app, &admin, &site.url("/b.png")).await;
    let downloads = completed_downloads(&app, &admin, 2).await;
    let (a, b) = (id_of(&downloads, "a.png"), id_of(&downloads, "b.png"));

    let (status, signed) = app
        .post("/api/v1/downloads/links", &viewer, json!({"ids": [a, b]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert!(signed["expires_at"].is_string());
    let link = |index: usize, kind: &str| {
        signed["links"][index][kind]
            .as_str()
            .unwrap_or_else(|| panic!("{signed}"))
            .to_owned()
    };
    let (a_file, a_thumbnail, b_file) = (
        link(0, "file_url"),
        link(0, "thumbnail_url"),
        link(1, "file_url"),
    );
    assert_eq!(signed["links"][0]["id"], a);
    assert!(!a_file.contains("token="), "{a_file}");

    // Without any header, as an <img> or <video> loads it.
    let response = get_media(&app, &a_file, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), first.as_slice());
    let response = get_media(&app, &a_thumbnail, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "image/jpeg");
    let response = app
        .client
        .get(app.url(&a_file))
        .header("range", "bytes=0-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);

    let query = |url: &str| url.split_once('?').unwrap().1.to_owned();
    // The signature's last character, changed to another one.
    let altered_last = {
        let (kept, last) = a_file.split_at(a_file.len() - 1);
        format!("{kept}{}", if last == "A" { "B" } else { "A" })
    };
    let refused = [
        // a's signature on b's file, and on a's thumbnail.
        format!("/api/v1/downloads/{b}/file?{}", query(&a_file)),
        format!("/api/v1/downloads/{a}/thumbnail?{}", query(&a_file)),
        // Another user, a later expiry, a changed signature.
        a_file.replace("user=", "user=1"),
        a_file.replace("expires=", "expires=9"),
        altered_last,
        b_file.replace("signature=", "signature=x"),
    ];
    for url in refused {
        let response = get_media(&app, &url, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{url}");
        let headers = response.headers().clone();
        let body: Value = response.json().await.unwrap();
        assert_error(&headers, &body, "MEDIA_LINK_INVALID");
    }

    // A genuine link past its expiry (signed here with the server's secret).
    let (_, me) = app.get("/api/v1/auth/me", &viewer).await;
    let viewer_id = me["id"].as_i64().unwrap_or_else(|| panic!("{me}"));
    let past = chrono::Utc::now().timestamp() - 1;
    let expired = MediaLinks::new(JWT_SECRET.as_bytes()).url(a, MediaKind::File, viewer_id, past);
    let response = get_media(&app, &expired, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_error(&headers, &body, "MEDIA_LINK_EXPIRED");

    // The access token in the query string is no longer accepted.
    for kind in ["file", "thumbnail"] {
        let response = get_media(
            &app,
            &format!("/api/v1/downloads/{a}/{kind}?token={admin}"),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{kind}");
        let headers = response.headers().clone();
        let body: Value = response.json().await.unwrap();
        assert_error(&headers, &body, "UNAUTHORIZED");
    }

    // Minting needs a signed-in reader and a sane list.
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/downloads/links",
            None,
            Some(json!({"ids": [a]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    for ids in [json!([]), json!((0..201).collect::<Vec<i64>>())] {
        let (status, body) = app
            .post("/api/v1/downloads/links", &viewer, json!({"ids": ids}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    // A disabled account's links stop working at once.
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{viewer_id}"),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = get_media(&app, &a_file, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(SAFETY, read)
        .await
        .expect("the server closes the connection");
    received
}

/// A client that never finishes its headers, or never sends a byte, is
/// disconnected once the header timeout has passed, with no answer.
pub async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let (app, _backing) = start(Db::Sqlite, false, Some(limits)).await;
    let address = app.base.trim_start_matches("http://").to_owned();

    let mut half = TcpStream::connect(&address).await.unwrap();
    half.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: mediadl\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(&address).await.unwrap();
    assert!(read_until_closed(&mut half).await.is_empty());
    assert!(read_until_closed(&mut silent).await.is_empty());

    // A client that sends its request in time is answered.
    let mut prompt = TcpStream::connect(&address).await.unwrap();
    prompt
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: mediadl\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut prompt).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

/// Idle sockets up to the cap leave room for a new client's health check;
/// beyond the cap a connection gets a clean 503 with the error body, and
/// closing the idle ones makes room again.
pub async fn idle_sockets_up_to_the_cap_do_not_stop_health() {
    const CAP: usize = 48;
    let limits = ConnectionLimits {
        max_connections: CAP,
        ..ConnectionLimits::default()
    };
    let (app, _backing) = start(Db::Sqlite, false, Some(limits)).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let fresh_health = || async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        client.get(app.url("/api/v1/health")).send().await.unwrap()
    };

    // The test client may hold one pooled connection; leave one for the check.
    let mut idle = Vec::new();
    for _ in 0..CAP - 2 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    assert_eq!(fresh_health().await.status(), StatusCode::OK);

    // Fill every place that is left (those beyond the cap are refused).
    for _ in 0..CAP {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut extra = TcpStream::connect(&address).await.unwrap();
    extra
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: mediadl\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut extra).await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error_code"], "TOO_MANY_CONNECTIONS", "{body}");
    assert!(body["detail"].is_string() && body["request_id"].is_string());

    drop(idle);
    let recovered = async {
        loop {
            if fresh_health().await.status() == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(SAFETY, recovered)
        .await
        .expect("closed sockets free their places");
    app.stop().await;
}

/// A 64 KiB frame sent before authenticating closes the socket instead of
/// being buffered.
pub async fn an_oversized_pre_auth_websocket_frame_closes_the_socket() {
    let (app, _backing) = start(Db::Sqlite, false, None).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}/ws/downloads", app.ws_base))
        .await
        .expect("handshake without a token");
    let huge = format!(
        "{{\"type\":\"auth\",\"token\":\"{}\"}}",
        "x".repeat(64 * 1024)
    );
    // The server may close while the frame is still being written.
    let _ = socket.send(Message::text(huge)).await;
    let ended = async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(other)) => assert!(
                    !other.to_text().unwrap_or("").contains("auth_ok"),
                    "{other:?}"
                ),
            }
        }
    };
    tokio::time::timeout(SAFETY, ended)
        .await
        .expect("the socket is closed");

    // A normal-sized auth message still works.
    let admin = app.admin_token().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}/ws/downloads", app.ws_base))
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "auth", "token": admin}).to_string(),
        ))
        .await
        .unwrap();
    let ack = tokio::time::timeout(SAFETY, socket.next())
        .await
        .expect("an answer")
        .expect("open")
        .expect("no error");
    assert!(ack.to_text().unwrap().contains("auth_ok"), "{ack:?}");
    app.stop().await;
}

/// A PNG declaring 30000 x 30000 pixels, asked for by many clients at
/// once, is refused from its header: every request gets the placeholder,
/// and the refusal is cached so nothing is decoded again.
pub async fn a_huge_images_thumbnail_is_refused_without_decoding() {
    let (app, backing) = start(Db::Sqlite, true, None).await;
    let admin = app.admin_token().await;
    let site = FixtureServer::start().await;
    site.route(
        "/huge.png",
        Fixture::bytes(declared_png(30_000, 30_000)).header("content-type", "image/png"),
    );
    queue(&app, &admin, &site.url("/huge.png")).await;
    let downloads = completed_downloads(&app, &admin, 1).await;
    let id = id_of(&downloads, "huge.png");
    let path = format!("/api/v1/downloads/{id}/thumbnail");
    let requests = (0..8).map(|_| get_media(&app, &path, Some(&admin)));
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            "image/png",
            "the placeholder"
        );
    }
    let marker = backing
        .dir
        .path()
        .join("data/thumbnails")
        .join(format!("{id}.none"));
    assert!(
        marker.exists(),
        "the refusal is cached at {}",
        marker.display()
    );
    app.stop().await;
}

/// `search=%00`, `%` and `_` are plain text on both databases: a NUL
/// matches nothing (it used to match everything, or fail on PostgreSQL).
pub async fn search_text_is_literal(db: Db) {
    let (app, _backing) = start(db, true, None).await;
    let admin = app.admin_token().await;
    let site = FixtureServer::start().await;
    // Different contents: a second copy of the same bytes would be recorded
    // as a duplicate under the first one's name.
    for (name, side) in [("/a_b.png", 8), ("/cd.png", 9)] {
        site.route(
            name,
            Fixture::bytes(png_bytes(side, side)).header("content-type", "image/png"),
        );
        queue(&app, &admin, &site.url(name)).await;
    }
    completed_downloads(&app, &admin, 2).await;
    let total = |query: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let (status, list) = app.get(&format!("/api/v1/downloads?{query}"), admin).await;
            assert_eq!(status, StatusCode::OK, "{query}: {list}");
            list["total"].as_u64().unwrap()
        }
    };
    assert_eq!(total("search=%00").await, 0);
    assert_eq!(total("search=png%00").await, 0);
    assert_eq!(total("source=fixture%00").await, 0);
    assert_eq!(total("search=%25").await, 0, "a percent sign is literal");
    assert_eq!(total("search=_").await, 1, "an underscore is literal");
    assert_eq!(total("search=png").await, 2);
    let (status, logs) = app.get("/api/v1/logs?search=%00", &admin).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    app.stop().await;
}
