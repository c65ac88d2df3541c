//! `mediadl serve`, `mediadl worker` and `mediadl migrate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{DataArgs, LogFormat, ServeArgs, WorkerArgs};
use crate::logging;
use mediadl::engine::Engine;
use mediadl::{BroadcastBus, EventBus, Registry, SettingsHandle, Store};
use mediadl_server::{ConnectionLimits, LogCapture, ServerConfig};
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

/// The config file in effect: the flag, else `mediadl.toml` when present.
fn config_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        let default = PathBuf::from("mediadl.toml");
        default.exists().then_some(default)
    })
}

pub fn server_config(
    data: &DataArgs,
    download_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let mut server = ServerConfig::new(&data.data_dir).with_env();
    server.database_url = data.database_url();
    server.download_dir = download_dir;
    if let Some(path) = config_file(config) {
        server = server.with_config_file(&path)?;
    }
    Ok(server)
}

pub async fn serve(args: ServeArgs, log_format: LogFormat) -> CliResult {
    let capture = LogCapture::new();
    logging::init(log_format, Some(&capture));
    let mut config = server_config(&args.data, args.download_dir, args.config)?;
    config.log_capture = Some(capture);
    config.rate_limits.authenticated_per_hour = args.rate_limit_user;
    config.rate_limits.public_per_hour = args.rate_limit_public;
    config.connection_limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_connections: usize::try_from(args.max_connections)?,
    };
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.bind))?;
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
    let config = server_config(&args.data, args.download_dir.clone(), args.config)?;
    let (store, events) = open_shared(&config).await?;
    let settings = SettingsHandle::load(store.as_ref(), config.settings_overrides.as_ref()).await?;
    let concurrency = args.concurrency;
    let apply_override = move |settings: &SettingsHandle| {
        if let Some(n) = concurrency {
            let mut current = (*settings.current()).clone();
            current.general.concurrent_downloads = n.clamp(1, 64);
            settings.replace(current);
        }
    };
    apply_override(&settings);
    let root = args
        .download_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("downloads"));
    let engine = Engine::builder()
        .store(Arc::clone(&store))
        .events(events)
        .registry(Arc::new(Registry::builtin()))
        .settings(settings.clone())
        .download_root(root)
        .build()?;
    let shutdown = shutdown_on_signals();
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
                match settings.reload(store.as_ref()).await {
                    Ok(()) => apply_override(&settings),
                    Err(err) => {
                        tracing::warn!(target: "mediadl::worker", error = %err, "cannot reload settings")
                    }
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
    tracing::info!(target: "mediadl::worker", "worker stopped; running items returned to the queue");
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(data: DataArgs, log_format: LogFormat) -> CliResult {
    logging::init(log_format, None);
    let config = server_config(&data, None, None)?;
    mediadl_server::open_store(&config).await?;
    println!(
        "database {} is up to date",
        mediadl_server::config::redact_url(&config.database_url())
    );
    Ok(ExitCode::SUCCESS)
}
