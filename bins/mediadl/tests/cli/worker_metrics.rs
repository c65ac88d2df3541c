//! `mediadl worker --metrics-bind`: the worker serves `/metrics` on its own
//! listener, behind `--metrics-token`, and counts the downloads it makes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mediadl::model::NewQueueItem;
use mediadl::store::QueueRepo;
use mediadl::testkit::{Fixture, FixtureServer};
use prometheus_parse::{Scrape, Value};

/// Stops the worker (SIGKILL) however the test ends.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn number(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
}

#[tokio::test]
async fn worker_serves_its_own_metrics_behind_a_token() {
    let fixture = FixtureServer::start().await;
    fixture.route("/file.bin", Fixture::bytes(vec![9u8; 2_500]));
    let data = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", data.path().join("mediadl.db").display());
    {
        let store = mediadl_store::SqliteStore::connect(&database)
            .await
            .unwrap();
        store
            .enqueue(
                NewQueueItem::new(fixture.url("/file.bin"), "direct", "cli", "file"),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_mediadl"))
        .args(["worker", "--metrics-bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .env("MEDIADL_METRICS_TOKEN", "worker-scrape-token")
        .env("MEDIADL_LOG", "info")
        .env_remove("MEDIADL_LOG_FORMAT")
        .env_remove("MEDIADL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("MEDIADL_METRICS_BIND")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mediadl worker starts");
    let stderr = child.stderr.take().unwrap();
    let _worker = Worker(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the worker logs its metrics address");
        if let Some((_, rest)) = line.split_once("metrics listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(url.ends_with("/metrics"), "{url}");
    let client = reqwest::Client::new();

    // Without the token: the API's error body, its id in X-Request-Id.
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let request_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "UNAUTHORIZED", "{body}");
    assert_eq!(body["request_id"], request_id);
    let elsewhere = client
        .get(url.replace("/metrics", "/api/v1/queue"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404, "the listener serves /metrics only");

    let direct = [("platform", "direct")];
    let mut scraped = None;
    for _ in 0..300 {
        let response = client
            .get(&url)
            .bearer_auth("worker-scrape-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        if number(&scrape, "mediadl_items_completed_total", &direct) == Some(1.0) {
            scraped = Some(scrape);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scrape = scraped.expect("the worker completes the queued download");
    assert_eq!(
        number(&scrape, "mediadl_items_started_total", &direct),
        Some(1.0)
    );
    assert_eq!(
        number(&scrape, "mediadl_downloaded_bytes_total", &direct),
        Some(2_500.0)
    );
    assert_eq!(
        number(&scrape, "mediadl_queue_items", &[("status", "completed")]),
        Some(1.0)
    );
    assert_eq!(
        number(&scrape, "mediadl_storage_used_bytes", &[]),
        Some(2_500.0)
    );
    assert!(
        number(
            &scrape,
            "mediadl_db_pool_max_connections",
            &[("pool", "writer")]
        )
        .is_some(),
        "the worker's own pools"
    );
}
