//! A third-party platform in one file: [JSON Feed](https://jsonfeed.org)
//! attachments (podcasts, photo blogs) as media. It implements
//! `mediadl::Downloader`, is registered in a `Registry`, and is then run by
//! the engine directly and by the reference server over its HTTP API.
//!
//! ```sh
//! cargo run -p mediadl-examples --example custom_downloader
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use mediadl::model::{DownloaderInfo, ListingOrder, NewQueueItem, QueueStatus};
use mediadl::store::{MemoryStore, QueueRepo};
use mediadl::testkit::{Fixture, FixtureServer};
use mediadl::{
    BroadcastBus, Context, DownloadError, DownloadService, Downloader, Engine, MediaItem,
    QueueService, Registry, Request, SettingsHandle, SystemClock, Unavailable,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The largest feed document read (a feed is a page of JSON, not media).
const MAX_FEED_BYTES: u64 = 5 * 1024 * 1024;

/// Platform `jsonfeed`: the source is a label, the request URL the feed.
#[derive(Debug, Clone, Default)]
pub struct JsonFeed;

#[derive(Debug, Deserialize)]
struct Feed {
    #[serde(default)]
    items: Vec<FeedItem>,
}

#[derive(Debug, Deserialize)]
struct FeedItem {
    id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    date_published: Option<DateTime<Utc>>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
}

#[async_trait]
impl Downloader for JsonFeed {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: "jsonfeed".into(),
            platform_display_name: "JSON Feed".into(),
            name: "native".into(),
            display_name: "JSON Feed attachments".into(),
            aliases: Vec::new(),
            content_types: vec!["media".into()],
            features: vec!["date_filtering".into(), "limit_downloads".into()],
            // Feeds list newest first: the engine may stop after a few known items.
            listing_order: ListingOrder::NewestFirst,
            accepts_cookies: false,
            is_default: true,
        }
    }

    /// No program or credentials needed: always usable.
    async fn check(&self, _settings: &mediadl::Settings) -> Result<(), Unavailable> {
        Ok(())
    }

    /// Refuse what can never work before it is queued.
    fn validate(&self, request: &Request) -> Result<(), mediadl::Error> {
        let url = url::Url::parse(&request.url)
            .map_err(|err| mediadl::Error::invalid("url", err.to_string()))?;
        match url.scheme() {
            "http" | "https" => Ok(()),
            other => Err(mediadl::Error::invalid(
                "url",
                format!("feeds are fetched over http(s), not {other}"),
            )),
        }
    }

    /// One request for the feed, then one media item per attachment. The
    /// stream owns its inputs; the engine pulls only what it needs.
    fn discover(
        &self,
        request: &Request,
        cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        let http = cx.http.clone();
        let feed_url = request.url.clone();
        let source = request.source.clone();
        async_stream::try_stream! {
            let url = url::Url::parse(&feed_url).map_err(|err| DownloadError::permanent(err.to_string()))?;
            // Status codes, timeouts, rate limits and Retry-After are mapped
            // to the right DownloadError by the shared client.
            let feed: Feed = http.get_json(&url, MAX_FEED_BYTES).await?;
            for entry in feed.items {
                for (index, attachment) in entry.attachments.iter().enumerate() {
                    let Ok(media_url) = url.join(&attachment.url) else { continue };
                    let mut item = MediaItem::new(format!("jsonfeed:{source}:{}:{index}", entry.id), media_url, "media");
                    item.posted_at = entry.date_published;
                    item.media_id = Some(format!("{}-{index}", entry.id));
                    if let Some(title) = &entry.title {
                        item.metadata.insert("title".into(), title.clone().into());
                    }
                    if let Some(mime) = &attachment.mime_type {
                        item.metadata.insert("mime_type".into(), mime.clone().into());
                    }
                    yield item;
                }
            }
        }
        .boxed()
    }
}

/// Serves a feed of three episodes and their files.
pub async fn fixture_feed() -> FixtureServer {
    let server = FixtureServer::start().await;
    let feed = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Example podcast",
        "items": [
            {"id": "3", "title": "Episode 3", "date_published": "2026-11-20T10:00:00Z",
             "attachments": [{"url": "/media/ep3.mp3", "mime_type": "audio/mpeg"}]},
            {"id": "2", "title": "Episode 2", "date_published": "2026-11-13T10:00:00Z",
             "attachments": [{"url": "/media/ep2.mp3", "mime_type": "audio/mpeg"}]},
            {"id": "1", "title": "Episode 1", "date_published": "2026-11-06T10:00:00Z",
             "attachments": [{"url": "/media/ep1.mp3", "mime_type": "audio/mpeg"}]}
        ]
    });
    server.route("/feed.json", Fixture::json(&feed));
    for n in 1..=3u8 {
        server.route(
            &format!("/media/ep{n}.mp3"),
            Fixture::bytes(vec![n; 50_000]).header("content-type", "audio/mpeg"),
        );
    }
    server
}

/// A registry with the built-in downloaders and this plugin.
pub fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register(JsonFeed);
    registry
}

#[allow(dead_code)] // unused when embedded_server includes this file
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let feed = fixture_feed().await;
    run_in_engine(&feed).await?;
    run_in_server(&feed).await?;
    Ok(())
}

/// 1. The plugin run by the engine, on the in-memory store.
async fn run_in_engine(feed: &FixtureServer) -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let store = Arc::new(MemoryStore::new());
    let events = Arc::new(BroadcastBus::default());
    let registry = Arc::new(registry());
    let settings = SettingsHandle::new(Default::default());
    let engine = Engine::builder()
        .store(store.clone())
        .events(events.clone())
        .registry(registry.clone())
        .settings(settings.clone())
        .download_root(root.path())
        .build()?;
    // What `GET /platforms` shows: whether the plugin can be used, and why not.
    for platform in registry
        .overview(&settings.current(), store.as_ref(), Utc::now())
        .await?
    {
        println!("platform {}: {:?}", platform.name, platform.status);
    }
    let queue = QueueService::new(
        store.clone(),
        events,
        registry,
        settings.clone(),
        Arc::new(SystemClock),
    );
    let downloads = DownloadService::new(
        store.clone(),
        queue.clone(),
        settings,
        root.path(),
        Arc::new(SystemClock),
    );
    let item = queue
        .submit(NewQueueItem::new(
            feed.url("/feed.json"),
            "jsonfeed",
            "example-podcast",
            "media",
        ))
        .await?;
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { engine.run(shutdown).await }
    });
    let done = loop {
        let current = store.get_queue_item(item.id).await?;
        if current.status.is_finished() {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    runner.await??;
    assert_eq!(
        done.status,
        QueueStatus::Completed,
        "{:?}",
        done.error_message
    );
    let totals = downloads.totals().await?;
    println!(
        "engine: downloaded {} episodes ({} in the history) into {}",
        done.items_downloaded,
        totals.completed,
        root.path().display()
    );
    Ok(())
}

/// 2. The same plugin in the reference server, driven over its HTTP API.
async fn run_in_server(feed: &FixtureServer) -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let mut config = mediadl_server::ServerConfig::new(data.path());
    config.registry = Arc::new(registry());
    config.admin.password = Some("example-password".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(mediadl_server::run(listener, config, shutdown.clone()));

    let http = reqwest::Client::new();
    let login: serde_json::Value = loop {
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": "example-password"}))
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => break response.json().await?,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let token = login["access_token"]
        .as_str()
        .ok_or("no access token")?
        .to_owned();
    let queued: serde_json::Value = http
        .post(format!("{base}/api/v1/queue"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "url": feed.url("/feed.json"), "platform": "jsonfeed",
            "source": "example-podcast", "content_type": "media"
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("server: queued #{}", queued["id"]);
    let total = loop {
        let page: serde_json::Value = http
            .get(format!("{base}/api/v1/downloads?platform=jsonfeed"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let total = page["total"].as_u64().unwrap_or(0);
        if total >= 3 {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("server: {total} jsonfeed downloads listed by GET /api/v1/downloads");
    shutdown.cancel();
    server.await??;
    Ok(())
}
