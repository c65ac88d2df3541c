//! The download engine: a pool of workers claiming queue items with
//! renewed leases, running each through its platform's [`Downloader`],
//! fetching, deduplicating, placing and recording what is new.
//!
//! ```text
//! claim → discover → skip known keys → fetch to staging (hash while writing)
//!       → dedupe by content hash → rename into place → record → publish → complete
//! ```
//!
//! Invariant: a queue item is only written under its lease; a worker whose
//! lease was lost (expired, paused, removed) stops and writes nothing more.
//!
//! [`Downloader`]: crate::Downloader

mod clients;
mod completer;
pub mod placement;
mod retry;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use completer::CompletionBatcher;
pub use retry::RetryPolicy;

use crate::clock::{Clock, SystemClock};
use crate::config::SettingsHandle;
use crate::downloader::Registry;
use crate::error::Error;
use crate::events::{BusMessage, EventBus};
use crate::metrics::Metrics;
use crate::model::{Event, EventKind, QueueAction, QueueUpdate, WorkerId};
use crate::storage::{LocalStorage, MediaStorage};
use crate::store::{QueueRepo, Store};
use clients::Clients;

/// Prefix of temporary files; files with it are never final.
pub use crate::storage::TEMP_PREFIX;

/// Timing knobs; the defaults suit production, tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTiming {
    /// How long a claim holds an item without renewal.
    pub lease: Duration,
    /// How often a worker renews its lease (well under `lease`).
    pub renew_every: Duration,
    /// How often idle workers look for due items when no event woke them.
    pub poll_every: Duration,
    /// How often expired leases are returned to the queue.
    pub reap_every: Duration,
    /// Wait before a storage-limited item is tried again.
    pub storage_wait: Duration,
}

impl Default for EngineTiming {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            renew_every: Duration::from_secs(15),
            poll_every: Duration::from_secs(1),
            reap_every: Duration::from_secs(10),
            storage_wait: Duration::from_secs(300),
        }
    }
}

/// Builds an [`Engine`].
#[derive(Debug, Default)]
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    events: Option<Arc<dyn EventBus>>,
    registry: Option<Arc<Registry>>,
    settings: Option<SettingsHandle>,
    download_root: Option<PathBuf>,
    storage: Option<Arc<dyn MediaStorage>>,
    clock: Option<Arc<dyn Clock>>,
    retry: RetryPolicy,
    timing: EngineTiming,
    name: Option<String>,
    metrics: Option<Metrics>,
}

impl EngineBuilder {
    /// The queue and the records (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where progress, completions and queue changes are published (required).
    pub fn events(mut self, events: Arc<dyn EventBus>) -> Self {
        self.events = Some(events);
        self
    }

    /// The downloaders; [`Registry::builtin`] when not given.
    pub fn registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The live settings; the defaults when not given. Changes to worker
    /// count, network and placement apply without a restart.
    pub fn settings(mut self, settings: SettingsHandle) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Where files go when `general.download_directory` is empty (for
    /// the local storage used when no [`EngineBuilder::storage`] is given).
    pub fn download_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.download_root = Some(root.into());
        self
    }

    /// Where media is stored; a [`LocalStorage`] following the settings'
    /// download directory (else [`EngineBuilder::download_root`]) when not
    /// given.
    pub fn storage(mut self, storage: Arc<dyn MediaStorage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The time source of leases and backoff; the system clock when not given.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Backoff between attempts of a failed item; [`RetryPolicy::default`] when not given.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Leases and polling; [`EngineTiming::default`] when not given.
    pub fn timing(mut self, timing: EngineTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Names this engine's workers (`<name>/w<n>`); host and process id by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where transfers, retries and expired leases are counted (the
    /// process's `/metrics`); a registry of its own when not given. Give
    /// the events as a [`MeteredBus`](crate::MeteredBus) over the same
    /// metrics to count items started, completed and failed too.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The engine; nothing runs until [`Engine::run`].
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when the store or the event bus is missing, or
    /// the network settings (a proxy URL) cannot be used.
    pub fn build(self) -> Result<Engine, Error> {
        let store = self
            .store
            .ok_or_else(|| Error::invalid("engine", "a store is required"))?;
        let events = self
            .events
            .ok_or_else(|| Error::invalid("engine", "an event bus is required"))?;
        let settings = self
            .settings
            .unwrap_or_else(|| SettingsHandle::new(Default::default()));
        let storage = self.storage.unwrap_or_else(|| {
            let root = self
                .download_root
                .unwrap_or_else(|| PathBuf::from("data").join("downloads"));
            Arc::new(LocalStorage::following(settings.clone(), root))
        });
        let name = self.name.unwrap_or_else(default_engine_name);
        let clients = Clients::new(&settings.current())?;
        Ok(Engine {
            shared: Arc::new(Shared {
                completer: CompletionBatcher::new(Arc::clone(&store) as Arc<dyn QueueRepo>),
                store,
                events,
                registry: self
                    .registry
                    .unwrap_or_else(|| Arc::new(Registry::builtin())),
                settings,
                storage,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                retry: self.retry,
                timing: self.timing,
                clients,
                metrics: self.metrics.unwrap_or_default(),
                running: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
            name,
        })
    }
}

fn default_engine_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// What every worker of one engine shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    /// Completions go through here, so concurrent workers share commits.
    pub(crate) completer: CompletionBatcher,
    pub(crate) events: Arc<dyn EventBus>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) settings: SettingsHandle,
    pub(crate) storage: Arc<dyn MediaStorage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timing: EngineTiming,
    pub(crate) clients: Clients,
    pub(crate) metrics: Metrics,
    /// Cancellation of each item this engine is working on, by queue id.
    running: Mutex<HashMap<i64, CancellationToken>>,
    wake: Notify,
}

impl Shared {
    pub(crate) async fn publish(&self, kind: EventKind) {
        self.events
            .publish(Event {
                timestamp: self.clock.now(),
                kind,
            })
            .await;
    }

    pub(crate) async fn announce(&self, action: QueueAction, item: &crate::model::QueueItem) {
        self.publish(EventKind::QueueUpdated(QueueUpdate {
            action,
            item: item.into(),
        }))
        .await;
    }

    fn cancel_running(&self, queue_id: i64) {
        if let Some(token) = self.running.lock().expect("running lock").get(&queue_id) {
            token.cancel();
        }
    }
}

/// The download engine. Cheap to clone; clones share one pool.
///
/// Built with [`Engine::builder`] from a store, an event bus, the
/// downloaders and the live settings, then [`run`](Engine::run) until a
/// token is cancelled. Items are queued through a
/// [`QueueService`](crate::QueueService) (or by another process sharing
/// the store).
///
/// ```
/// use std::sync::Arc;
///
/// use futures::StreamExt;
/// use mediadl::model::{EventKind, NewQueueItem, QueueStatus};
/// use mediadl::store::MemoryStore;
/// use mediadl::testkit::{Fixture, FixtureServer};
/// use mediadl::{
///     BroadcastBus, BusMessage, Engine, EventBus, QueueService, Registry, SettingsHandle,
///     SystemClock,
/// };
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = FixtureServer::start().await;
/// server.route("/photo.jpg", Fixture::bytes(vec![7u8; 1000]).header("content-type", "image/jpeg"));
/// let root = tempfile::tempdir()?;
///
/// let store = Arc::new(MemoryStore::new());
/// let events = Arc::new(BroadcastBus::default());
/// let registry = Arc::new(Registry::builtin());
/// let settings = SettingsHandle::new(Default::default());
/// let engine = Engine::builder()
///     .store(store.clone())
///     .events(events.clone())
///     .registry(registry.clone())
///     .settings(settings.clone())
///     .download_root(root.path())
///     .build()?;
/// let queue = QueueService::new(store, events.clone(), registry, settings, Arc::new(SystemClock));
///
/// let mut feed = events.subscribe();
/// queue
///     .submit(NewQueueItem::new(server.url("/photo.jpg"), "direct", "", "file"))
///     .await?;
/// let shutdown = CancellationToken::new();
/// let running = tokio::spawn({
///     let (engine, shutdown) = (engine.clone(), shutdown.clone());
///     async move { engine.run(shutdown).await }
/// });
/// let completed = loop {
///     if let Some(BusMessage::Event(event)) = feed.next().await
///         && let EventKind::DownloadCompleted(completed) = &event.kind
///     {
///         break completed.clone();
///     }
/// };
/// shutdown.cancel();
/// running.await??;
/// assert_eq!(completed.status, QueueStatus::Completed);
/// assert!(root.path().join("direct").exists(), "placed under {{platform}}/{{source}}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    name: String,
}

impl Engine {
    /// A builder; see [`Engine`] for an example.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Runs workers until `shutdown` is cancelled, then stops taking work,
    /// returns in-flight items to `pending` (their partial files kept for
    /// resuming) and returns.
    ///
    /// # Errors
    ///
    /// None once running: an unreachable store or a failed item is logged
    /// and retried, never returned, so the engine outlives outages.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), Error> {
        let shared = &self.shared;
        // What a crash left: stale temporary files, unfinished uploads.
        match shared.storage.recover().await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(target: "mediadl::engine", removed, "removed what an earlier run left unfinished")
            }
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", error = %err, "cannot clean up the storage")
            }
        }
        let mut settings = shared.settings.subscribe();
        // Settings may have changed between build() and run().
        shared.clients.refresh(&settings.borrow_and_update());
        let mut tasks: JoinSet<usize> = JoinSet::new();
        let mut free_slots: Vec<usize> = Vec::new();
        let mut next_slot = 0usize;
        let background = CancellationToken::new();
        let listener = tokio::spawn(listen(Arc::clone(shared), background.clone()));
        let reaper = tokio::spawn(reap(Arc::clone(shared), background.clone()));
        let mut poll = tokio::time::interval(shared.timing.poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let wanted = shared
                .settings
                .current()
                .general
                .concurrent_downloads
                .max(1) as usize;
            let mut claimed_any = false;
            while tasks.len() < wanted && !shutdown.is_cancelled() {
                let slot = free_slots.pop().unwrap_or_else(|| {
                    next_slot += 1;
                    next_slot
                });
                let worker = WorkerId(format!("{}/w{slot}", self.name));
                let claimed = shared
                    .store
                    .claim(&worker, 1, shared.timing.lease, shared.clock.now())
                    .await;
                match claimed {
                    Ok(mut leased) if !leased.is_empty() => {
                        claimed_any = true;
                        let leased = leased.remove(0);
                        let item_cancel = shutdown.child_token();
                        shared
                            .running
                            .lock()
                            .expect("running lock")
                            .insert(leased.item.id, item_cancel.clone());
                        let shared = Arc::clone(shared);
                        let shutdown = shutdown.clone();
                        // Every line logged while the item runs carries its id,
                        // platform and source (JSON logs show them as span fields).
                        let span = tracing::info_span!(
                            "queue_item",
                            queue_id = leased.item.id,
                            platform = %leased.item.platform,
                            source = %leased.item.source,
                        );
                        tasks.spawn(
                            async move {
                                let id = leased.item.id;
                                worker::process(&shared, leased, item_cancel, shutdown).await;
                                shared.running.lock().expect("running lock").remove(&id);
                                slot
                            }
                            .instrument(span),
                        );
                    }
                    Ok(_) => {
                        free_slots.push(slot);
                        break;
                    }
                    Err(err) => {
                        free_slots.push(slot);
                        tracing::warn!(target: "mediadl::engine", error = %err, "cannot claim queue items; retrying");
                        break;
                    }
                }
            }
            if shutdown.is_cancelled() && tasks.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = tasks.join_next() => match done {
                    Ok(slot) => free_slots.push(slot),
                    Err(err) => tracing::error!(target: "mediadl::engine", error = %err, "a worker task failed"),
                },
                _ = shared.wake.notified(), if !shutdown.is_cancelled() => {}
                _ = poll.tick(), if !shutdown.is_cancelled() && !claimed_any => {}
                _ = settings.changed(), if !shutdown.is_cancelled() => {
                    shared.clients.refresh(&shared.settings.current());
                }
                _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            }
        }
        background.cancel();
        let _ = listener.await;
        let _ = reaper.await;
        Ok(())
    }

    /// Asks the engine to look for work now (an item was queued in this process).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }
}

/// Reacts to queue events from any process: new work wakes the pool, a
/// pause or removal of an item this engine runs cancels it.
async fn listen(shared: Arc<Shared>, stop: CancellationToken) {
    let mut events = shared.events.subscribe();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = events.next() => message,
        };
        let Some(message) = message else { return };
        let BusMessage::Event(event) = message else {
            // Missed events: look for work in case some were additions.
            shared.wake.notify_one();
            continue;
        };
        if let EventKind::QueueUpdated(update) = &event.kind {
            match update.action {
                QueueAction::Added | QueueAction::Resumed | QueueAction::Retrying => {
                    shared.wake.notify_one()
                }
                QueueAction::Paused | QueueAction::Removed => shared.cancel_running(update.item.id),
                _ => {}
            }
        }
    }
}

/// Returns items whose lease ran out (a crashed worker's) to the queue.
async fn reap(shared: Arc<Shared>, stop: CancellationToken) {
    let mut every = tokio::time::interval(shared.timing.reap_every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        match shared.store.requeue_expired(shared.clock.now()).await {
            Ok(items) => {
                for item in &items {
                    let action = if item.status == crate::model::QueueStatus::Failed {
                        QueueAction::Failed
                    } else {
                        QueueAction::Retrying
                    };
                    tracing::warn!(target: "mediadl::engine", queue_id = item.id, "lease expired; item returned to the queue");
                    shared
                        .metrics
                        .lease_expired(action == QueueAction::Retrying);
                    shared.announce(action, item).await;
                }
                if !items.is_empty() {
                    shared.wake.notify_one();
                }
            }
            Err(err) => {
                tracing::warn!(target: "mediadl::engine", error = %err, "cannot requeue expired items")
            }
        }
    }
}
