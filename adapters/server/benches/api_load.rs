//! Load generator for the issue's targets (run with `cargo bench -p
//! mediadl-server --bench api_load`; `MEDIADL_BENCH_ROWS` sets the history
//! size, default 1,000,000; `MEDIADL_BENCH_SECONDS` the load duration, default 10;
//! `MEDIADL_BENCH_DATA` a data dir to keep: seeded on the first run, reused
//! as it is afterwards, and usable by `mediadl serve --data-dir`):
//!
//! - `GET /downloads?platform=…&per_page=50` under 16 concurrent keep-alive
//!   clients: requests/s, p50/p99 latency;
//! - `GET /stats/overview`: latency;
//! - resident memory of the process after start-up, idle;
//! - 1,000 WebSocket clients: delay from publishing a progress event to each
//!   client receiving it, p50/p99.
//!
//! The server and the load generator share the machine (and this process),
//! so the figures are conservative. With `MEDIADL_BENCH_WRK=1` the list load
//! is also run by `wrk` (Debian package `wrk`) with `benches/wrk_list.lua`,
//! a load generator in a separate process: 2 threads, 16 connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use mediadl::model::{Event, EventKind, ProgressEvent, QueueStatus};
use mediadl::{BroadcastBus, EventBus};
use mediadl_server::{RateLimits, ServerConfig};
use sqlx::{Connection, QueryBuilder, Sqlite};
use tokio_util::sync::CancellationToken;

const PLATFORMS: [(&str, &[&str]); 4] = [
    ("instagram", &["post", "story", "reel"]),
    ("tiktok", &["video"]),
    ("forum", &["image"]),
    ("direct", &["file"]),
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `rows` download records spread over the last year, inserted in large
/// transactions through the schema (its triggers keep the roll-ups).
async fn seed(path: &std::path::Path, rows: usize) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .pragma("synchronous", "OFF");
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("connect");
    let end = Utc::now().timestamp_micros();
    let year_seconds = 365 * 86_400_u64;
    let mut n = 0;
    while n < rows {
        let mut tx = conn.begin().await.expect("begin");
        let chunk_end = (n + 50_000).min(rows);
        while n < chunk_end {
            let batch_end = (n + 1_000).min(chunk_end);
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO downloads (url, url_hash, archive_key, platform, source, \
                 content_type, filename, file_path, file_size, file_hash, download_date, status, \
                 attempts, error_message, metadata) ",
            );
            qb.push_values(n..batch_end, |mut row, i| {
                let mix = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let (platform, types) = PLATFORMS[(mix % 4) as usize];
                let content_type = types[((mix >> 8) as usize) % types.len()];
                let source = format!("{platform}-source-{}", (mix >> 16) % 200);
                let failed = (mix >> 24).is_multiple_of(33);
                let when = end - ((mix >> 20) % year_seconds) as i64 * 1_000_000;
                let key = format!("{platform}:{i}");
                let filename = format!("{source}_{i}.jpg");
                row.push_bind(format!(
                    "https://cdn.{platform}.example.com/media/{i}/original.jpg"
                ))
                .push_bind(mediadl::model::url_hash(&key))
                .push_bind(key)
                .push_bind(platform)
                .push_bind(source.clone())
                .push_bind(content_type)
                .push_bind(filename.clone())
                .push_bind(format!("/data/downloads/{platform}/{source}/{filename}"))
                .push_bind((!failed).then_some(((mix >> 40) % 5_000_000) as i64))
                .push_bind((!failed).then(|| format!("sha256:{mix:064x}")))
                .push_bind(when)
                .push_bind(if failed { "failed" } else { "completed" })
                .push_bind(1_i64)
                .push_bind(failed.then_some("HTTP 404"))
                .push_bind(format!(r#"{{"width":1080,"height":1350,"post_id":"{i}"}}"#));
            });
            qb.build().execute(&mut *tx).await.expect("insert");
            n = batch_end;
        }
        tx.commit().await.expect("commit");
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("analyze");
}

async fn login(client: &reqwest::Client, base: &str, password: &str) -> String {
    let body: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    body["access_token"].as_str().expect("token").to_string()
}

async fn list_load(base: &str, token: &str, clients: usize, seconds: u64) {
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let url_base = format!("{base}/api/v1/downloads");
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut samples = Vec::new();
            let mut n = worker;
            while Instant::now() < stop_at {
                let platform = PLATFORMS[n % 4].0;
                n += 1;
                let started = Instant::now();
                let response = client
                    .get(format!(
                        "{url_base}?platform={platform}&per_page=50&page={}",
                        1 + n % 20
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await.expect("body");
                samples.push(started.elapsed());
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("client task"));
    }
    samples.sort();
    println!(
        "GET /downloads?platform=…&per_page=50: {} requests in {seconds} s with {clients} clients = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        samples.len() as f64 / seconds as f64,
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// The list load from `wrk`, a separate process; prints wrk's report.
async fn wrk_list_load(base: &str, token: &str, seconds: u64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk_list.lua");
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", "-c16", "--latency", "-s", script])
        .arg(format!("-d{seconds}s"))
        .arg(base)
        .env("MEDIADL_TOKEN", token)
        .output()
        .await
        .expect("wrk (apt-get install wrk)");
    assert!(output.status.success(), "wrk failed: {output:?}");
    println!(
        "wrk -t2 -c16 GET /downloads?platform=…&per_page=50:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

async fn overview(base: &str, token: &str) {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = client
            .get(format!("{base}/api/v1/stats/overview"))
            .bearer_auth(token)
            .send()
            .await
            .expect("overview");
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "GET /stats/overview: p50 {:.2} ms, max {:.2} ms (20 calls)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

async fn websocket_fanout(ws_base: &str, token: &str, bus: Arc<BroadcastBus>, clients: usize) {
    let published: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let mut sockets = Vec::new();
    for _ in 0..clients {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("{ws_base}/ws/downloads?token={token}"))
                .await
                .expect("websocket");
        sockets.push(socket);
    }
    let rounds = 10usize;
    let mut tasks = Vec::new();
    for mut socket in sockets {
        let published = Arc::clone(&published);
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::new();
            while delays.len() < rounds {
                let Some(Ok(message)) = socket.next().await else {
                    break;
                };
                let received = Instant::now();
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
                    continue;
                };
                if value["type"] != "download_progress" {
                    continue;
                }
                let seq = value["data"]["queue_id"].as_u64().unwrap_or(0) as usize;
                let sent = published.lock().unwrap()[seq];
                delays.push(received.duration_since(sent));
            }
            delays
        }));
    }
    for seq in 0..rounds {
        published.lock().unwrap().push(Instant::now());
        bus.send(Event {
            timestamp: Utc::now(),
            kind: EventKind::DownloadProgress(ProgressEvent {
                queue_id: seq as i64,
                url: "https://example.com/x".into(),
                platform: "direct".into(),
                source: "bench".into(),
                status: QueueStatus::Downloading,
                progress: 50,
                items_downloaded: 1,
                items_total: Some(2),
                current_item: Some("x.jpg".into()),
                speed_mbps: 2.5,
                eta_seconds: Some(3),
                bytes_downloaded: 1000,
                bytes_total: Some(2000),
            }),
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut delays = Vec::new();
    for task in tasks {
        delays.extend(task.await.expect("ws task"));
    }
    delays.sort();
    println!(
        "WebSocket fan-out to {clients} clients, {rounds} progress events: {} deliveries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        delays.len(),
        percentile(&delays, 0.5).as_secs_f64() * 1e3,
        percentile(&delays, 0.99).as_secs_f64() * 1e3,
        delays.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rows = env_usize("MEDIADL_BENCH_ROWS", 1_000_000);
        let seconds = env_usize("MEDIADL_BENCH_SECONDS", 10) as u64;
        let dir = tempfile::tempdir().expect("temp dir");
        let data = std::env::var_os("MEDIADL_BENCH_DATA")
            .map_or_else(|| dir.path().join("data"), std::path::PathBuf::from);
        std::fs::create_dir_all(&data).expect("data dir");
        let db = data.join("mediadl.db");
        if db.exists() {
            println!("reusing the downloads in {}", db.display());
        } else {
            drop(mediadl_store::SqliteStore::open(&db).await.expect("migrate"));
            let seeding = Instant::now();
            seed(&db, rows).await;
            println!("seeded {rows} downloads in {:.1} s", seeding.elapsed().as_secs_f64());
        }

        let password = "bench-password-1";
        let mut config = ServerConfig::new(&data);
        config.admin.password = Some(password.into());
        config.rate_limits = RateLimits {
            public_per_hour: 10_000_000,
            authenticated_per_hour: 10_000_000,
            websocket_per_user: 5_000,
        };
        config.run_scheduler = false;
        let store = mediadl_server::open_store(&config).await.expect("store");
        let bus = Arc::new(BroadcastBus::new(65_536));
        let events: Arc<dyn EventBus> = bus.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let rss_before = rss_mib();
        let server = tokio::spawn(mediadl_server::run_with(listener, config, store, events, shutdown.clone()));
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        let token = loop {
            if let Ok(response) = client.get(format!("{base}/api/v1/health")).send().await
                && response.status() == 200
            {
                break login(&client, &base, password).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "process RSS idle after start-up: {:.1} MiB (before the server started: {rss_before:.1} MiB)",
            rss_mib()
        );
        overview(&base, &token).await;
        list_load(&base, &token, 4, 2).await; // warm-up
        list_load(&base, &token, 16, seconds).await;
        if std::env::var_os("MEDIADL_BENCH_WRK").is_some() {
            wrk_list_load(&base, &token, seconds).await;
        }
        websocket_fanout(&format!("ws://{addr}"), &token, bus, 1000).await;
        shutdown.cancel();
        server.await.expect("server task").expect("server exits cleanly");
    });
}
