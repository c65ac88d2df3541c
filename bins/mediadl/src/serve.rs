//! `mediadl serve`, `mediadl worker` and `mediadl migrate`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{DataArgs, Loaded, LogFormat, ServeArgs, WorkerArgs};
use crate::logging;
use mediadl::engine::Engine;
use mediadl::{BroadcastBus, EventBus, MeteredBus, Metrics, Registry, SettingsHandle, Store};
use mediadl_server::metrics::MetricsSource;
use mediadl_server::{LogCapture, ServerConfig};
use tokio_util::sync::CancellationToken;

pub type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// How often a worker re-reads the shared settings (changes made through the API).
const SETTINGS_RELOAD: Duration = Duration::from_secs(30);

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Where `serve` listens when neither a flag, the environment nor the
/// config file says.
const DEFAULT_BIND: &str = "127.0.0.1:8000";

pub async fn serve(args: ServeArgs, log_format: LogFormat) -> CliResult {
    let capture = LogCapture::new();
    logging::init(log_format, Some(&capture));
    // Each value: the flag or its environment variable (clap), else the
    // config file's `[server]`, else the default `ServerConfig` holds.
    let Loaded {
        process,
        server: mut config,
    } = args.data.load(args.download_dir)?;
    config.log_capture = Some(capture);
    config.metrics_token = args.metrics_token.filter(|token| !token.is_empty());
    let rates = &mut config.rate_limits;
    rates.authenticated_per_hour = (args.rate_limit_user)
        .or(process.rate_limit_user)
        .unwrap_or(rates.authenticated_per_hour);
    rates.public_per_hour = (args.rate_limit_public)
        .or(process.rate_limit_public)
        .unwrap_or(rates.public_per_hour);
    let limits = &mut config.connection_limits;
    if let Some(secs) = args.header_read_timeout.or(process.header_read_timeout) {
        limits.header_read_timeout = Duration::from_secs(secs);
    }
    if let Some(secs) = args.idle_timeout.or(process.idle_timeout) {
        limits.idle_timeout = Duration::from_secs(secs);
    }
    if let Some(max) = args.max_connections.or(process.max_connections) {
        limits.max_connections = usize::try_from(max)?;
    }
    let bind = (args.bind)
        .or(process.bind)
        .unwrap_or_else(|| DEFAULT_BIND.into());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|err| format!("cannot listen on {bind}: {err}"))?;
    let address = listener.local_addr()?;
    tracing::info!(target: "mediadl::serve", "listening on http://{address} (data in {})", config.data_dir.display());
    mediadl_server::run(listener, config, shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the store and the event bus a worker shares with the server:
/// PostgreSQL with LISTEN/NOTIFY, or SQLite with an in-process bus.
async fn open_shared(
    config: &ServerConfig,
) -> Result<(Arc<dyn Store>, Arc<dyn EventBus>), Box<dyn std::error::Error>> {
    let url = config.database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = mediadl_store::PgStore::connect(&url)
            .await
            .map_err(|err| format!("database: {err}"))?;
        let events = mediadl_store::PgEventBus::connect(&url)
            .await
            .map_err(|err| format!("event bus: {err}"))?;
        Ok((Arc::new(store), Arc::new(events)))
    } else {
        let store = mediadl_server::open_store(config).await?;
        Ok((store, Arc::new(BroadcastBus::default())))
    }
}

pub async fn worker(args: WorkerArgs, log_format: LogFormat) -> CliResult {
    logging::init(log_format, None);
    let config = args.data.load(args.download_dir)?.server;
    let (store, events) = open_shared(&config).await?;
    let mut layers = config.effective_settings_layers();
    if let Some(n) = args.concurrency {
        layers = layers.pin_field("--concurrency", "general.concurrent_downloads", n.into());
    }
    let settings = SettingsHandle::load(store.as_ref(), &layers).await?;
    let root = settings.current().general.download_directory.clone();
    let storage = mediadl::storage::open(&settings, root.into(), config.data_dir.join("staging"))
        .map_err(mediadl::Error::from)?;
    let metrics = Metrics::new();
    let engine = Engine::builder()
        .store(Arc::clone(&store))
        .events(Arc::new(MeteredBus::new(events, metrics.clone())))
        .registry(Arc::new(Registry::builtin()))
        .settings(settings.clone())
        .storage(storage)
        .metrics(metrics.clone())
        .build()?;
    let shutdown = shutdown_on_signals();
    let metrics_listener = match &args.metrics_bind {
        Some(bind) => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|err| format!("cannot listen on {bind} (--metrics-bind): {err}"))?;
            tracing::info!(target: "mediadl::worker", "metrics listening on http://{}{}", listener.local_addr()?, mediadl_server::metrics::PATH);
            let source = MetricsSource {
                metrics,
                store: Arc::clone(&store),
                token: args
                    .metrics_token
                    .as_deref()
                    .filter(|token| !token.is_empty())
                    .map(Arc::from),
                connections: None,
            };
            Some(tokio::spawn(mediadl_server::metrics::serve_standalone(
                listener,
                source,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let reload = tokio::spawn({
        let store = Arc::clone(&store);
        let settings = settings.clone();
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(SETTINGS_RELOAD) => {}
                }
                // Every layer (config file, --concurrency) is laid over again.
                if let Err(err) = settings.reload(store.as_ref()).await {
                    tracing::warn!(target: "mediadl::worker", error = %err, "cannot reload settings")
                }
            }
        }
    });
    tracing::info!(
        target: "mediadl::worker",
        database = %mediadl_server::config::redact_url(&config.database_url()),
        workers = settings.current().general.concurrent_downloads,
        "worker started"
    );
    engine.run(shutdown).await?;
    reload.abort();
    if let Some(listener) = metrics_listener {
        let _ = listener.await;
    }
    tracing::info!(target: "mediadl::worker", "worker stopped; running items returned to the queue");
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(data: DataArgs, log_format: LogFormat) -> CliResult {
    logging::init(log_format, None);
    let config = data.load(None)?.server;
    mediadl_server::open_store(&config).await?;
    println!(
        "database {} is up to date",
        mediadl_server::config::redact_url(&config.database_url())
    );
    Ok(ExitCode::SUCCESS)
}
