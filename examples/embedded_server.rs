//! `mediadl_server::run` on a tokio runtime the program already has, with
//! SQLite and the JSON Feed plugin from `custom_downloader.rs`, shut down
//! gracefully on Ctrl-C.
//!
//! ```sh
//! cargo run -p mediadl-examples --example embedded_server              # until Ctrl-C
//! cargo run -p mediadl-examples --example embedded_server -- --demo    # queue the feed, wait, stop
//! ```

#[path = "custom_downloader.rs"]
mod custom_downloader;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The host program's own runtime; the server is one task on it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let demo = std::env::args().any(|arg| arg == "--demo");
        let data = tempfile::tempdir()?;
        let mut config = mediadl_server::ServerConfig::new(data.path());
        // SQLite inside the data directory (the default, spelled out).
        config.database_url = Some(format!(
            "sqlite://{}?mode=rwc",
            data.path().join("mediadl.db").display()
        ));
        config.registry = Arc::new(custom_downloader::registry());
        config.admin.password = Some("example-password".into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        println!("serving http://{address} (admin / example-password); Ctrl-C stops");

        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    shutdown.cancel();
                }
            }
        });
        let server = tokio::spawn(mediadl_server::run(listener, config, shutdown.clone()));

        if demo {
            let feed = custom_downloader::fixture_feed().await;
            let downloaded =
                queue_and_wait(&format!("http://{address}"), &feed.url("/feed.json")).await?;
            println!("demo: {downloaded} files downloaded; stopping");
            shutdown.cancel();
        }
        server.await??;
        println!("server stopped cleanly");
        Ok(())
    })
}

/// Logs in, queues the feed and waits for its downloads to be listed.
async fn queue_and_wait(base: &str, feed_url: &str) -> Result<u64, Box<dyn std::error::Error>> {
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
    http.post(format!("{base}/api/v1/queue"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": feed_url, "platform": "jsonfeed", "source": "demo", "content_type": "media"}))
        .send()
        .await?
        .error_for_status()?;
    loop {
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
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
