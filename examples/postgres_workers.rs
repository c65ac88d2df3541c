//! Scaling out: one server (API only, no workers) and two worker engines,
//! all sharing one PostgreSQL database; progress from the workers reaches
//! the server through LISTEN/NOTIFY. Here all three run in one process for
//! brevity; in production each is its own `mediadl serve` / `mediadl worker`.
//!
//! ```sh
//! MEDIADL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run -p mediadl-examples --example postgres_workers
//! ```
//! (A fresh database is created on that server and dropped at the end.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mediadl::model::{Page, QueueFilter, QueueStatus};
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl::{Engine, EventBus, Registry, SettingsHandle, Store};
use mediadl_store::{PgEventBus, PgStore};
use tokio_util::sync::CancellationToken;

const FILES: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = mediadl_store::testing::fresh_pg_database().await?;
    let files = FixtureServer::start().await;
    for n in 0..FILES {
        files.route(
            &format!("/f{n}.bin"),
            Fixture::bytes(vec![n as u8; 100_000]).slow(20_000, Duration::from_millis(5)),
        );
    }
    let shutdown = CancellationToken::new();

    // The server: API and scheduler, no download workers of its own.
    let data = tempfile::tempdir()?;
    let mut config = mediadl_server::ServerConfig::new(data.path());
    config.database_url = Some(database.url().to_owned());
    config.admin.password = Some("example-password".into());
    config.run_engine = false;
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(database.url()).await?);
    let events: Arc<dyn EventBus> = Arc::new(PgEventBus::connect(database.url()).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(mediadl_server::run_with(
        listener,
        config,
        store.clone(),
        events,
        shutdown.clone(),
    ));

    // Two workers, each with its own connections, as on two machines.
    let downloads = tempfile::tempdir()?;
    let mut workers = Vec::new();
    for name in ["worker-a", "worker-b"] {
        let store: Arc<dyn Store> = Arc::new(PgStore::connect(database.url()).await?);
        let events: Arc<dyn EventBus> = Arc::new(PgEventBus::connect(database.url()).await?);
        let settings = SettingsHandle::load(store.as_ref(), &Default::default()).await?;
        let engine = Engine::builder()
            .store(store)
            .events(events)
            .registry(Arc::new(Registry::builtin()))
            .settings(settings)
            .download_root(downloads.path())
            .name(name)
            .build()?;
        let shutdown = shutdown.clone();
        workers.push(tokio::spawn(async move { engine.run(shutdown).await }));
    }

    // Queue the files through the server's API.
    let http = reqwest::Client::new();
    let token = loop {
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": "example-password"}))
            .send()
            .await;
        if let Ok(response) = response
            && response.status().is_success()
        {
            let body: serde_json::Value = response.json().await?;
            break body["access_token"].as_str().unwrap_or_default().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for n in 0..FILES {
        http.post(format!("{base}/api/v1/queue"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"url": files.url(&format!("/f{n}.bin")), "platform": "direct", "source": "example", "content_type": "file"}))
            .send()
            .await?
            .error_for_status()?;
    }
    println!("queued {FILES} files through {base}");

    // Wait until every item is completed, then see who did the work.
    let items = loop {
        let list = store
            .list_queue(&QueueFilter::default(), Page::new(1, 200))
            .await?;
        if list
            .items
            .iter()
            .all(|item| item.status == QueueStatus::Completed)
            && list.total as usize == FILES
        {
            break list.items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for item in &items {
        let worker = item
            .assigned_worker
            .as_deref()
            .unwrap_or("?")
            .split('/')
            .next()
            .unwrap_or("?")
            .to_owned();
        *by_worker.entry(worker).or_default() += 1;
    }
    println!("completed {} items: {by_worker:?}", items.len());
    shutdown.cancel();
    for worker in workers {
        worker.await??;
    }
    server.await??;
    println!("all stopped cleanly");
    Ok(())
}
