//! # mediadl-server
//!
//! The reference server of mediadl: the HTTP API of the spec under
//! `/api/v1`, the WebSocket at `/ws/downloads`, the OpenAPI document and
//! Swagger UI, the dashboard at `/`, and the download engine, in one process.
//!
//! The binary stays thin: it parses flags, starts tracing and calls [`run`]:
//!
//! ```
//! use mediadl_server::{ServerConfig, run};
//! use tokio::net::TcpListener;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let data = tempfile::tempdir()?;
//! // Port 0 picks a free port; a real server binds its configured address.
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?;
//! // SQLite in the data directory; the JWT secret and admin from the environment.
//! let config = ServerConfig::new(data.path()).with_env();
//! let shutdown = CancellationToken::new();
//! let server = tokio::spawn(run(listener, config, shutdown.clone()));
//!
//! let health = reqwest::get(format!("http://{address}/api/v1/health")).await?;
//! assert!(health.status().is_success());
//!
//! // Ctrl-C or a service manager's stop would do this.
//! shutdown.cancel();
//! server.await??;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mediadl::backup::BackupSources;
use mediadl::scheduler::{CronScheduler, Scheduler, SchedulerOptions};
use mediadl::{
    BroadcastBus, DownloadService, EventBus, MeteredBus, Metrics, QueueService, SettingsHandle,
    Store, SystemClock,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

pub mod auth;
pub mod config;
mod connection;
pub mod error;
pub mod lockout;
pub mod logs;
pub mod media_links;
pub mod metrics;
pub mod openapi;

pub mod pagination;
pub mod ratelimit;
pub mod request;
pub mod routes;
mod serve;
pub mod state;
pub mod thumbnail;
pub mod users;
pub mod web;
pub mod ws;

pub use config::{AdminBootstrap, ConnectionLimits, LoginLockout, RateLimits, ServerConfig};
pub use logs::LogCapture;
pub use state::AppState;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path (`reading config file …`).
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not usable (a short JWT secret, a bad config file).
    #[error("configuration: {reason}")]
    Config {
        /// What to fix.
        reason: String,
    },
    /// The database could not be opened or migrated; the URL is redacted.
    #[error("database: {0}")]
    Store(String),
    /// The core refused something at start-up (invalid stored settings, the engine).
    #[error(transparent)]
    Core(#[from] mediadl::Error),
    /// The first admin could not be created.
    #[error("users: {0}")]
    Users(#[from] users::UserError),
}

/// Opens the store named by `config` (SQLite in the data dir by default).
///
/// # Errors
///
/// [`ServerError::Io`] when the data directory cannot be created,
/// [`ServerError::Store`] when the database cannot be opened or migrated.
pub async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, ServerError> {
    create_dir(&config.data_dir)?;
    let url = config.database_url();
    connect_store(&url)
        .await
        .map_err(|err| ServerError::Store(format!("{}: {err}", config::redact_url(&url))))
}

/// The event bus for `config`: PostgreSQL LISTEN/NOTIFY when the database
/// is PostgreSQL (so `mediadl worker`s elsewhere reach this server's
/// WebSockets), else the in-process broadcast.
///
/// # Errors
///
/// [`ServerError::Store`] when PostgreSQL cannot be reached for `LISTEN`.
pub async fn open_event_bus(config: &ServerConfig) -> Result<Arc<dyn EventBus>, ServerError> {
    let url = config.database_url();
    if is_postgres(&url) {
        let bus = mediadl_store::PgEventBus::connect(&url)
            .await
            .map_err(|err| ServerError::Store(format!("{}: {err}", config::redact_url(&url))))?;
        return Ok(Arc::new(bus));
    }
    Ok(Arc::new(BroadcastBus::default()))
}

/// Whether a database URL names PostgreSQL (else it is SQLite).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

async fn connect_store(url: &str) -> Result<Arc<dyn Store>, mediadl::StoreError> {
    if is_postgres(url) {
        let store = mediadl_store::PgStore::connect(url).await?;
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(mediadl_store::SqliteStore::connect(url).await?))
}

/// Creates the data directory (and missing parents) readable by its
/// owner only: it holds the database and the JWT secret.
fn create_dir(dir: &Path) -> Result<(), ServerError> {
    mediadl_store::private::create_private_dir(dir).map_err(|source| ServerError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })
}

/// The file in the data directory keeping the generated JWT secret.
const JWT_SECRET_FILE: &str = "jwt_secret";

/// What a backup (`mediadl backup`, the scheduled backup job) keeps beside
/// the database: the data directory's secrets (without the JWT secret a
/// restored server signs everyone out), and `<data_dir>/backups` as the
/// scheduled job's default directory.
pub fn backup_sources(config: &ServerConfig) -> BackupSources {
    BackupSources {
        secrets: vec![config.data_dir.join(JWT_SECRET_FILE)],
        default_directory: config.data_dir.join("backups"),
    }
}

/// The JWT secret: the configured one, else the one kept in
/// `<data_dir>/jwt_secret`, generated on first start.
///
/// # Errors
///
/// [`ServerError::Config`] for a configured secret shorter than 16
/// characters, [`ServerError::Io`] when the secret file cannot be read or
/// written.
pub fn jwt_secret(config: &ServerConfig) -> Result<Vec<u8>, ServerError> {
    if let Some(secret) = &config.jwt_secret {
        if secret.len() < 16 {
            return Err(ServerError::Config {
                reason: "MEDIADL_JWT_SECRET must be at least 16 characters".into(),
            });
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join(JWT_SECRET_FILE);
    let io = |context: &str, source| ServerError::Io {
        context: format!("{context} {}", path.display()),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => {
            // Kept by an older version readable by others: tighten it.
            mediadl_store::private::restrict_to_owner(&path)
                .map_err(|err| io("restricting the mode of", err))?;
            return Ok(text.trim().as_bytes().to_vec());
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io("reading", err)),
    }
    create_dir(&config.data_dir)?;
    let secret = {
        use rand::RngExt;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    write_private(&path, &secret).map_err(|err| io("writing", err))?;
    Ok(secret.into_bytes())
}

/// Writes a file only the owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Builds the shared state for `store` (used by [`run`] and by tests).
///
/// # Errors
///
/// [`ServerError::Core`] when the stored settings are invalid, and the
/// errors of [`jwt_secret`].
pub async fn build_state(
    config: &ServerConfig,
    store: Arc<dyn Store>,
    events: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<AppState, ServerError> {
    let settings =
        SettingsHandle::load(store.as_ref(), &config.effective_settings_layers()).await?;
    let secret = jwt_secret(config)?;
    // One registry per server: servers sharing a process count apart.
    let metrics = Metrics::new();
    let events: Arc<dyn EventBus> = Arc::new(MeteredBus::new(events, metrics.clone()));
    let clock: Arc<dyn mediadl::Clock> = Arc::new(SystemClock);
    let queue = QueueService::new(
        Arc::clone(&store),
        Arc::clone(&events),
        Arc::clone(&config.registry),
        settings.clone(),
        Arc::clone(&clock),
    );
    let download_root = PathBuf::from(&settings.current().general.download_directory);
    // Made at start so a fresh server is ready (GET /health/ready checks it).
    create_dir(&download_root)?;
    let storage = mediadl::storage::open(
        &settings,
        download_root.clone(),
        config.data_dir.join("staging"),
    )
    .map_err(mediadl::Error::from)?;
    let scheduler: Arc<dyn Scheduler> = Arc::new(
        CronScheduler::new(
            Arc::clone(&store),
            queue.clone(),
            Arc::clone(&config.registry),
            settings.clone(),
            Arc::clone(&clock),
        )
        .with_metrics(metrics.clone())
        .with_options(SchedulerOptions {
            backups: Some(backup_sources(config)),
            storage: Some(Arc::clone(&storage)),
            ..SchedulerOptions::default()
        }),
    );
    let thumbnails = Arc::new(thumbnail::Thumbnailer::new(
        config.data_dir.join("thumbnails"),
        thumbnail::Thumbnailer::default_concurrency(),
    ));
    let downloads = DownloadService::new(
        Arc::clone(&store),
        queue.clone(),
        settings.clone(),
        &download_root,
        Arc::clone(&clock),
    )
    .with_storage(storage)
    .with_derived(thumbnails.clone());
    let imports = mediadl::ImportService::new(Arc::clone(&store), Arc::clone(&clock));
    // Reading gallery-dl's archive database takes SQLite.
    #[cfg(feature = "sqlite")]
    let imports = imports.with_database_reader(Arc::new(mediadl_store::GalleryDlArchiveReader));
    // Read the programs' extractor patterns now, not on the first pasted URL.
    tokio::spawn({
        let registry = Arc::clone(&config.registry);
        let settings = settings.current();
        async move { registry.warm_up_recognition(&settings).await }
    });
    Ok(AppState {
        store,
        events,
        registry: Arc::clone(&config.registry),
        settings,
        queue,
        downloads,
        imports,
        scheduler,
        clock,
        auth: Arc::new(auth::Auth::new(
            &secret,
            lockout::LoginThrottle::new(config.lockout, config.rate_limits.public_per_hour),
        )),
        media_links: Arc::new(media_links::MediaLinks::new(&secret)),
        thumbnails,
        limits: Arc::new(ratelimit::RateLimiter::new(config.rate_limits)),
        rate_limits: config.rate_limits,
        connections: Arc::new(ws::Connections::default()),
        event_frames: Arc::new(ws::EventFrames::default()),
        download_root,
        data_dir: config.data_dir.clone(),
        metrics,
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
        shutdown,
    })
}

/// Every route of the server, with errors turned into the error body.
pub fn router(state: AppState) -> BoxedFilter<(Response,)> {
    let api = warp::path!("api" / "v1" / ..).and(routes::api(state.clone()));
    let metrics = metrics::route(state.metrics_source());
    api.or(openapi::routes())
        .unify()
        .or(metrics)
        .unify()
        .or(ws::routes(state))
        .unify()
        .or(not_api().and(web::routes()))
        .unify()
        .recover(error::recover)
        .unify()
        .boxed()
}

/// Rejects (404) paths of the API, the WebSocket and the docs before the
/// dashboard's routes look at the method, so an unknown API path is a 404
/// and not a 405.
fn not_api() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and_then(|full: warp::path::FullPath| async move {
            let path = full.as_str();
            if path == "/api" || path.starts_with("/api/") || path.starts_with("/ws/") {
                Err(warp::reject::not_found())
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

/// Runs the server on `listener` until `shutdown` is cancelled: opens the
/// store, creates the first admin, starts the log writer and the engine,
/// and serves the API. On shutdown it stops accepting, lets open requests
/// finish, returns running items to the queue and flushes the logs.
///
/// # Errors
///
/// Start-up failures only: the errors of [`open_store`],
/// [`open_event_bus`] and [`run_with`]. Once serving, problems are logged
/// and the server keeps running.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let store = open_store(&config).await?;
    let events = open_event_bus(&config).await?;
    run_with(listener, config, store, events, shutdown).await
}

/// [`run`] with a store and event bus chosen by the caller (embedders, a
/// PostgreSQL event bus).
///
/// # Errors
///
/// The errors of [`build_state`], [`ServerError::Users`] when the first
/// admin cannot be created, [`ServerError::Core`] when the engine cannot
/// be built.
pub async fn run_with(
    listener: TcpListener,
    config: ServerConfig,
    store: Arc<dyn Store>,
    events: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    // Background tasks stop on their own token, cancelled only once the
    // HTTP side has drained, so in-flight requests still see a live store.
    let background = CancellationToken::new();
    // WebSockets close as soon as shutdown starts: upgraded connections are
    // not waited for by the HTTP drain.
    let state = build_state(&config, store, events, shutdown.child_token()).await?;

    if let Some((user, generated)) =
        users::bootstrap_admin(state.store.as_ref(), &config.admin).await?
    {
        match generated {
            Some(password) => tracing::warn!(
                target: "mediadl_server::bootstrap",
                "created admin user {:?} with generated password {password} (shown once; change it with `mediadl user passwd`)",
                user.username
            ),
            None => {
                tracing::info!(target: "mediadl_server::bootstrap", "created admin user {:?}", user.username)
            }
        }
    }

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(receiver) = config
        .log_capture
        .as_ref()
        .and_then(LogCapture::take_receiver)
    {
        tasks.spawn(logs::run_writer(
            receiver,
            Arc::clone(&state.store),
            Arc::clone(&state.events),
            state.settings.clone(),
            background.clone(),
        ));
    }
    {
        let limits = Arc::clone(&state.limits);
        let stop = background.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => limits.prune(),
                }
            }
        });
    }
    // Notifications (email, browser, webhooks) as the settings' rules say.
    tasks.spawn(
        mediadl::notify::Notifier::new(
            Arc::clone(&state.store),
            Arc::clone(&state.events),
            state.settings.clone(),
            Arc::clone(&state.clock),
        )
        .with_metrics(state.metrics.clone())
        .run(background.clone()),
    );
    if config.run_scheduler {
        let scheduler = Arc::clone(&state.scheduler);
        let stop = background.clone();
        tasks.spawn(async move { scheduler.run(stop).await });
    }
    let engine_stop = CancellationToken::new();
    let engine = if config.run_engine {
        Some(start_engine(&state, engine_stop.clone())?)
    } else {
        None
    };

    let local = listener.local_addr().ok();
    tracing::info!(target: "mediadl_server", address = ?local, "listening");
    serve::serve(
        listener,
        router(state.clone()),
        state.clone(),
        shutdown.clone(),
        config.shutdown_grace,
        config.connection_limits,
    )
    .await;
    tracing::info!(target: "mediadl_server", "shutting down");

    // Running items go back to pending before the logs are flushed, so the
    // engine's last words are stored too.
    engine_stop.cancel();
    if let Some(engine) = engine {
        match engine.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(target: "mediadl_server", error = %err, "engine stopped with an error")
            }
            Err(err) => {
                tracing::error!(target: "mediadl_server", error = %err, "engine task failed")
            }
        }
    }
    background.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

type EngineTask = tokio::task::JoinHandle<Result<(), mediadl::Error>>;

/// Starts the download engine on the server's store, bus and settings.
fn start_engine(state: &AppState, stop: CancellationToken) -> Result<EngineTask, ServerError> {
    let engine = mediadl::Engine::builder()
        .store(Arc::clone(&state.store))
        .events(Arc::clone(&state.events))
        .registry(Arc::clone(&state.registry))
        .settings(state.settings.clone())
        .storage(Arc::clone(state.downloads.storage()))
        .clock(Arc::clone(&state.clock))
        .metrics(state.metrics.clone())
        .build()?;
    Ok(tokio::spawn(async move { engine.run(stop).await }))
}
