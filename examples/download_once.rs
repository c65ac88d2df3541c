//! The engine on the in-memory store: download a few URLs once, printing
//! progress from the event bus.
//!
//! ```sh
//! cargo run -p mediadl-examples --example download_once              # files from a local fixture server
//! cargo run -p mediadl-examples --example download_once -- URL…      # your own URLs
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mediadl::model::{EventKind, NewQueueItem, QueueStatus};
use mediadl::store::MemoryStore;
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl::{
    BroadcastBus, BusMessage, Engine, EventBus, QueueService, Registry, SettingsHandle, SystemClock,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Without arguments, serve three files locally (one of them slowly, so
    // there is progress to see).
    let server = FixtureServer::start().await;
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        server.route(
            "/photo.jpg",
            Fixture::bytes(vec![1u8; 300_000]).header("content-type", "image/jpeg"),
        );
        server.route(
            "/clip.mp4",
            Fixture::bytes(vec![2u8; 2_000_000]).slow(100_000, Duration::from_millis(30)),
        );
        server.route(
            "/notes.txt",
            Fixture::bytes("hello").header("content-type", "text/plain"),
        );
        urls = ["/photo.jpg", "/clip.mp4", "/notes.txt"]
            .iter()
            .map(|p| server.url(p))
            .collect();
    }
    let root = tempfile::tempdir()?;

    // The four pieces an embedder wires: a store, an event bus, the
    // downloaders, and live settings.
    let store = Arc::new(MemoryStore::new());
    let events = Arc::new(BroadcastBus::default());
    let registry = Arc::new(Registry::builtin());
    let settings = SettingsHandle::new(Default::default());
    let engine = Engine::builder()
        .store(store.clone())
        .events(events.clone())
        .registry(registry.clone())
        .settings(settings.clone())
        .download_root(root.path())
        .build()?;
    let queue = QueueService::new(
        store,
        events.clone(),
        registry,
        settings,
        Arc::new(SystemClock),
    );

    // Subscribe before queueing so no event is missed.
    let mut feed = events.subscribe();
    let mut waiting = 0;
    for url in &urls {
        let item = queue
            .submit(NewQueueItem::new(url.as_str(), "direct", "", "file"))
            .await?;
        println!("queued #{} {}", item.id, item.url);
        waiting += 1;
    }

    let shutdown = CancellationToken::new();
    let runner = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { engine.run(shutdown).await }
    });
    let mut downloaded = 0;
    while waiting > 0 {
        let Some(BusMessage::Event(event)) = feed.next().await else {
            continue;
        };
        match &event.kind {
            EventKind::DownloadProgress(p) => println!(
                "  #{} {:>3}% {} ({:.1} MB/s)",
                p.queue_id,
                p.progress,
                p.current_item.as_deref().unwrap_or(&p.url),
                p.speed_mbps
            ),
            EventKind::DownloadCompleted(done) => {
                waiting -= 1;
                if done.status == QueueStatus::Completed {
                    downloaded += done.items_downloaded;
                    println!(
                        "done   #{} {} in {:.2}s",
                        done.queue_id, done.url, done.duration_seconds
                    );
                } else {
                    println!(
                        "failed #{} {}: {}",
                        done.queue_id,
                        done.url,
                        done.error_message.as_deref().unwrap_or("?")
                    );
                }
            }
            _ => {}
        }
    }
    shutdown.cancel();
    runner.await??;
    println!(
        "downloaded {downloaded} files into {}",
        root.path().display()
    );
    Ok(())
}
