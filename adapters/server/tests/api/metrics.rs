//! `GET /metrics`: scraped after downloads, a failure and a retry, and read
//! with a Prometheus text parser; the optional bearer token.

use std::time::Duration;

use mediadl::testkit::{Fixture, FixtureServer};
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backing, Db, TestApp, assert_error};

/// The parsed answer of `GET /metrics` (with `token` when given).
async fn scrape(app: &TestApp, token: Option<&str>) -> Scrape {
    let mut request = app.client.get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text format")
}

/// Scrapes until `ready` holds (the engine counts as it goes), at most 30 s.
async fn scrape_until(app: &TestApp, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..300 {
        let scraped = scrape(app, None).await;
        if ready(&scraped) {
            return scraped;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/metrics never showed {what}");
}

fn matching<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
        .collect()
}

/// The one counter or gauge `name` with `labels` (0 when absent: a counter
/// not yet touched is not shown).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match matching(scrape, name, labels).as_slice() {
        [] => 0.0,
        [sample] => match sample.value {
            PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
            ref other => panic!("{name} is not a single number: {other:?}"),
        },
        many => panic!("{name} {labels:?} matches {} series", many.len()),
    }
}

/// Observations of histogram `name` with `labels` (its `+Inf` bucket), and
/// checks the buckets never decrease.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = matching(scrape, name, labels);
    let [sample] = samples.as_slice() else {
        return 0.0;
    };
    let PromValue::Histogram(buckets) = &sample.value else {
        panic!("{name} is not a histogram");
    };
    assert!(
        buckets
            .windows(2)
            .all(|pair| pair[0].count <= pair[1].count),
        "{name}: cumulative buckets"
    );
    buckets
        .iter()
        .find(|bucket| bucket.less_than.is_infinite())
        .map_or(0.0, |bucket| bucket.count)
}

async fn queue(app: &TestApp, admin: &str, url: &str) -> i64 {
    let (status, created) = app
        .post(
            "/api/v1/queue",
            admin,
            json!({"url": url, "platform": "direct", "source": "metrics", "content_type": "file"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().unwrap()
}

pub async fn counters_and_histograms_follow_downloads_failures_and_retries(db: Db) {
    let backing = Backing::new(db).await;
    let mut config = backing.config();
    config.run_engine = true;
    let app = TestApp::start(config).await;
    let admin = app.admin_token().await;
    let fixture = FixtureServer::start().await;
    fixture.route("/one.bin", Fixture::bytes(vec![1u8; 1_000]));
    fixture.route("/two.bin", Fixture::bytes(vec![2u8; 3_000]));
    fixture.route("/gone.bin", Fixture::status(404));
    // A 503 first: the item fails with a transient error and waits for its next attempt.
    fixture.route(
        "/flaky.bin",
        Fixture::bytes(vec![3u8; 500]).then_fail_once(503, None),
    );

    let before = scrape(&app, None).await;
    assert_eq!(
        value(&before, "mediadl_items_completed_total", &[]),
        0.0,
        "a fresh server has counted nothing"
    );
    for status in ["pending", "downloading", "paused", "completed", "failed"] {
        assert_eq!(
            value(&before, "mediadl_queue_items", &[("status", status)]),
            0.0
        );
    }

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/ws/downloads?token={admin}", app.ws_base))
            .await
            .expect("websocket handshake");
    for path in ["/one.bin", "/two.bin", "/gone.bin", "/flaky.bin"] {
        queue(&app, &admin, &fixture.url(path)).await;
    }
    let direct = [("platform", "direct")];
    let after = scrape_until(&app, "two completions, a failure and a retry", |s| {
        value(s, "mediadl_items_completed_total", &direct) >= 2.0
            && value(s, "mediadl_items_failed_total", &direct) >= 1.0
            && value(
                s,
                "mediadl_retries_total",
                &[("platform", "direct"), ("cause", "transient")],
            ) >= 1.0
    })
    .await;

    assert_eq!(value(&after, "mediadl_items_completed_total", &direct), 2.0);
    assert_eq!(value(&after, "mediadl_items_failed_total", &direct), 1.0);
    assert_eq!(value(&after, "mediadl_items_started_total", &direct), 4.0);
    assert_eq!(
        value(
            &after,
            "mediadl_retries_total",
            &[("platform", "direct"), ("cause", "transient")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "mediadl_downloaded_files_total", &direct),
        2.0
    );
    assert_eq!(
        value(&after, "mediadl_downloaded_bytes_total", &direct),
        4_000.0
    );
    assert_eq!(
        observations(&after, "mediadl_transfer_duration_seconds", &direct),
        2.0
    );
    assert_eq!(
        observations(
            &after,
            "mediadl_item_duration_seconds",
            &[("platform", "direct"), ("status", "completed")]
        ),
        2.0
    );
    assert_eq!(
        observations(
            &after,
            "mediadl_item_duration_seconds",
            &[("platform", "direct"), ("status", "failed")]
        ),
        1.0
    );
    // State read at the scrape: the retrying item waits as pending.
    assert_eq!(
        value(&after, "mediadl_queue_items", &[("status", "completed")]),
        2.0
    );
    assert_eq!(
        value(&after, "mediadl_queue_items", &[("status", "failed")]),
        1.0
    );
    assert_eq!(
        value(&after, "mediadl_queue_items", &[("status", "pending")]),
        1.0
    );
    assert_eq!(value(&after, "mediadl_storage_used_bytes", &[]), 4_000.0);
    assert_eq!(value(&after, "mediadl_websocket_clients", &[]), 1.0);
    let pool = match db {
        Db::Sqlite => "reader",
        Db::Postgres => "main",
    };
    assert!(
        value(&after, "mediadl_db_pool_max_connections", &[("pool", pool)]) >= 1.0,
        "the {pool} pool is shown"
    );
    assert!(
        value(
            &after,
            "mediadl_db_pool_connections",
            &[("pool", pool), ("state", "idle")]
        ) + value(
            &after,
            "mediadl_db_pool_connections",
            &[("pool", pool), ("state", "in_use")]
        ) >= 1.0,
        "the {pool} pool has a connection open"
    );

    // HTTP requests by route template and status, with latencies.
    let posted = [
        ("route", "/api/v1/queue"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(value(&after, "mediadl_http_requests_total", &posted), 4.0);
    assert_eq!(
        observations(
            &after,
            "mediadl_http_request_duration_seconds",
            &[("route", "/api/v1/queue"), ("method", "POST")]
        ),
        4.0
    );
    let (status, _) = app.get("/api/v1/queue/987654", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let later = scrape(&app, None).await;
    assert_eq!(
        value(
            &later,
            "mediadl_http_requests_total",
            &[
                ("route", "/api/v1/queue/:id"),
                ("method", "GET"),
                ("status", "404")
            ]
        ),
        1.0
    );
    assert!(
        value(
            &later,
            "mediadl_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ) >= 2.0,
        "earlier scrapes are counted"
    );
    assert!(
        later
            .samples
            .iter()
            .filter_map(|sample| sample.labels.get("route"))
            .all(|route| !route.contains("987654")),
        "routes are templates, never raw paths"
    );
    drop(socket.close(None).await);
    app.stop().await;
}

pub async fn a_metrics_token_is_required_when_set() {
    let backing = Backing::new(Db::Sqlite).await;
    let mut config = backing.config();
    config.metrics_token = Some("scrape-secret-1".into());
    let app = TestApp::start(config).await;

    let (status, headers, body) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &body, "UNAUTHORIZED");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"metrics\"");
    let (status, headers, body) = app
        .call(Method::GET, "/metrics", Some("scrape-secret-2"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &body, "UNAUTHORIZED");
    // An access token of the API is not the metrics token either.
    let admin = app.admin_token().await;
    let (status, _, _) = app.call(Method::GET, "/metrics", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let scraped = scrape(&app, Some("scrape-secret-1")).await;
    assert_eq!(
        value(
            &scraped,
            "mediadl_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "401")]
        ),
        3.0
    );
    app.stop().await;
}
