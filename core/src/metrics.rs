//! Prometheus metrics: the series one process (a server or a `mediadl
//! worker`) exposes at `/metrics`, in the Prometheus text format.
//!
//! A [`Metrics`] is one registry with every series; it is created per
//! server or worker process and handed to the parts that count (the engine,
//! the scheduler, the notifier, the HTTP layer), so two servers in one
//! process (tests, embedders) never mix their counts.
//!
//! Counters come from three places:
//! - [`MeteredBus`] wraps the [`EventBus`] and counts what this process
//!   publishes (items started, completed and failed, item durations, the
//!   end of scheduled download runs). Only publishing is counted, never
//!   what arrives from other processes over a shared bus, so summing the
//!   series of several processes counts every item once.
//! - Hooks where no event says enough: transfers (bytes, files, duration),
//!   retries with their cause, expired leases, scheduler firings that end at
//!   once, notification deliveries, HTTP requests.
//! - State read when scraped ([`Metrics::render`]): queue depth by status,
//!   storage used, the database pools, WebSocket clients.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error::DownloadError;
use crate::events::{BusMessage, EventBus};
use crate::model::{Event, EventKind, QueueAction, QueueItem, QueueStatus, RunStatus};
use crate::notify::{DeliveryStatus, DeliveryTransport};
use crate::store::Store;

/// The `Content-Type` of [`Metrics::render`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Seconds one file's transfer takes: from a fraction of a second to ten minutes.
const TRANSFER_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Seconds a queue item runs: a single file up to an account's whole history.
const ITEM_BUCKETS: [f64; 13] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Seconds an HTTP request takes to answer (a file download's body streams after).
const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn transfer_histogram() -> Histogram {
    Histogram::new(TRANSFER_BUCKETS)
}

fn item_histogram() -> Histogram {
    Histogram::new(ITEM_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlatformLabels {
    platform: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemEndLabels {
    platform: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    platform: String,
    cause: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    transport: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabels {
    pool: &'static str,
    state: &'static str,
}

/// A database connection pool as a scrape sees it ([`StateRepo::pool_usage`]).
///
/// [`StateRepo::pool_usage`]: crate::store::StateRepo::pool_usage
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool of the store (`main`, `reader`, `writer`, `lease`).
    pub pool: &'static str,
    /// Connections open now (idle ones included).
    pub open: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
}

/// Every series of one process.
struct Series {
    registry: Registry,
    queue_items: Family<StatusLabels, Gauge>,
    items_started: Family<PlatformLabels, Counter>,
    items_completed: Family<PlatformLabels, Counter>,
    items_failed: Family<PlatformLabels, Counter>,
    item_duration: Family<ItemEndLabels, Histogram, fn() -> Histogram>,
    downloaded_bytes: Family<PlatformLabels, Counter>,
    downloaded_files: Family<PlatformLabels, Counter>,
    transfer_duration: Family<PlatformLabels, Histogram, fn() -> Histogram>,
    retries: Family<RetryLabels, Counter>,
    lease_expiries: Counter,
    lease_recoveries: Counter,
    scheduler_runs: Family<OutcomeLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    websocket_clients: Gauge,
    pool_connections: Family<PoolStateLabels, Gauge>,
    pool_max: Family<PoolLabels, Gauge>,
    storage_used: Gauge,
}

impl Series {
    fn new() -> Self {
        let series = Self {
            registry: Registry::with_prefix("mediadl"),
            queue_items: Family::default(),
            items_started: Family::default(),
            items_completed: Family::default(),
            items_failed: Family::default(),
            item_duration: Family::new_with_constructor(item_histogram),
            downloaded_bytes: Family::default(),
            downloaded_files: Family::default(),
            transfer_duration: Family::new_with_constructor(transfer_histogram),
            retries: Family::default(),
            lease_expiries: Counter::default(),
            lease_recoveries: Counter::default(),
            scheduler_runs: Family::default(),
            deliveries: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            websocket_clients: Gauge::default(),
            pool_connections: Family::default(),
            pool_max: Family::default(),
            storage_used: Gauge::default(),
        };
        series.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "queue_items",
            "Queue items by status, read from the database when scraped",
            self.queue_items.clone(),
        );
        r.register(
            "items_started",
            "Queue items this process started downloading",
            self.items_started.clone(),
        );
        r.register(
            "items_completed",
            "Queue items this process completed",
            self.items_completed.clone(),
        );
        r.register(
            "items_failed",
            "Queue items this process failed for good",
            self.items_failed.clone(),
        );
        r.register_with_unit(
            "item_duration",
            "Time from a queue item's start to its end (completed or failed)",
            Unit::Seconds,
            self.item_duration.clone(),
        );
        r.register_with_unit(
            "downloaded",
            "Bytes of the files this process downloaded",
            Unit::Bytes,
            self.downloaded_bytes.clone(),
        );
        r.register(
            "downloaded_files",
            "Files this process downloaded completely",
            self.downloaded_files.clone(),
        );
        r.register_with_unit(
            "transfer_duration",
            "Time one file's transfer took",
            Unit::Seconds,
            self.transfer_duration.clone(),
        );
        r.register(
            "retries",
            "Queue items sent back for another attempt, by the cause of the failure",
            self.retries.clone(),
        );
        r.register(
            "lease_expiries",
            "Leases that ran out (a worker crashed or lost the database)",
            self.lease_expiries.clone(),
        );
        r.register(
            "lease_recoveries",
            "Items of expired leases returned to the queue for another attempt",
            self.lease_recoveries.clone(),
        );
        r.register(
            "scheduler_runs",
            "Scheduled job runs by outcome (success, failure, skipped)",
            self.scheduler_runs.clone(),
        );
        r.register(
            "notification_deliveries",
            "Notification deliveries by transport and outcome",
            self.deliveries.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            self.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template and method",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        r.register(
            "websocket_clients",
            "Open WebSocket connections",
            self.websocket_clients.clone(),
        );
        r.register(
            "db_pool_connections",
            "Database connections open, by pool and state (idle, in_use)",
            self.pool_connections.clone(),
        );
        r.register(
            "db_pool_max_connections",
            "Most connections each database pool opens",
            self.pool_max.clone(),
        );
        r.register_with_unit(
            "storage_used",
            "Bytes of the downloaded files the archive records",
            Unit::Bytes,
            self.storage_used.clone(),
        );
        self
    }
}

/// The metrics of one process. Cheap to clone; clones share the series.
#[derive(Clone)]
pub struct Metrics {
    series: Arc<Series>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `status` label of a queue status.
fn status_label(status: QueueStatus) -> &'static str {
    match status {
        QueueStatus::Pending => "pending",
        QueueStatus::Downloading => "downloading",
        QueueStatus::Paused => "paused",
        QueueStatus::Completed => "completed",
        QueueStatus::Failed => "failed",
    }
}

/// The `cause` label of a retry: the kind of error, never its text
/// (bounded label values).
fn retry_cause(error: &DownloadError) -> &'static str {
    match error {
        DownloadError::Retryable { .. } => "transient",
        DownloadError::RateLimited { .. } => "rate_limited",
        DownloadError::Storage(_) => "storage",
        DownloadError::AuthRequired(_) => "auth_required",
        DownloadError::Permanent(_) => "permanent",
        DownloadError::Cancelled => "cancelled",
    }
}

impl Metrics {
    /// Every series at zero.
    pub fn new() -> Self {
        Self {
            series: Arc::new(Series::new()),
        }
    }

    /// Counts an event this process publishes (see [`MeteredBus`]).
    pub fn observe(&self, event: &Event) {
        let s = &self.series;
        match &event.kind {
            EventKind::QueueUpdated(update) if update.action == QueueAction::Started => {
                s.items_started
                    .get_or_create(&PlatformLabels {
                        platform: update.item.platform.clone(),
                    })
                    .inc();
            }
            EventKind::DownloadCompleted(done) => {
                let platform = PlatformLabels {
                    platform: done.platform.clone(),
                };
                let completed = done.status == QueueStatus::Completed;
                if completed {
                    s.items_completed.get_or_create(&platform).inc();
                } else {
                    s.items_failed.get_or_create(&platform).inc();
                }
                s.item_duration
                    .get_or_create(&ItemEndLabels {
                        platform: done.platform.clone(),
                        status: status_label(done.status),
                    })
                    .observe(done.duration_seconds);
                // A scheduled download run ends with its queue item.
                if done.job_id.is_some() {
                    self.scheduler_run(if completed {
                        RunStatus::Success
                    } else {
                        RunStatus::Failure
                    });
                }
            }
            _ => {}
        }
    }

    /// One file of `item` transferred completely: `bytes` since `began`.
    pub fn transferred(&self, item: &QueueItem, bytes: u64, began: Instant) {
        let labels = PlatformLabels {
            platform: item.platform.clone(),
        };
        let s = &self.series;
        s.downloaded_files.get_or_create(&labels).inc();
        s.downloaded_bytes.get_or_create(&labels).inc_by(bytes);
        s.transfer_duration
            .get_or_create(&labels)
            .observe(began.elapsed().as_secs_f64());
    }

    /// A queue item of `platform` failed with `cause` and waits for another attempt.
    pub fn retried(&self, platform: &str, cause: &DownloadError) {
        self.series
            .retries
            .get_or_create(&RetryLabels {
                platform: platform.to_owned(),
                cause: retry_cause(cause),
            })
            .inc();
    }

    /// A lease ran out; `recovered` when its item went back to the queue
    /// (not failed for good).
    pub fn lease_expired(&self, recovered: bool) {
        self.series.lease_expiries.inc();
        if recovered {
            self.series.lease_recoveries.inc();
        }
    }

    /// A scheduled job's run ended with `status` (`running` is not an end and is ignored).
    pub fn scheduler_run(&self, status: RunStatus) {
        let outcome = match status {
            RunStatus::Running => return,
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Skipped => "skipped",
        };
        self.series
            .scheduler_runs
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A notification went out over `transport` (`browser`, `email`,
    /// `webhook`) and ended `delivered` or `failed`.
    pub fn notification_delivered(&self, transport: &'static str, delivered: bool) {
        self.series
            .deliveries
            .get_or_create(&DeliveryLabels {
                transport,
                outcome: if delivered { "delivered" } else { "failed" },
            })
            .inc();
    }

    /// An email or webhook delivery's state as it is recorded: counted once
    /// it is final (not while attempts are still to come).
    pub fn delivery_recorded(&self, transport: DeliveryTransport, status: DeliveryStatus) {
        let transport = match transport {
            DeliveryTransport::Email => "email",
            DeliveryTransport::Webhook => "webhook",
        };
        match status {
            DeliveryStatus::Pending => {}
            DeliveryStatus::Delivered => self.notification_delivered(transport, true),
            DeliveryStatus::Failed => self.notification_delivered(transport, false),
        }
    }

    /// An HTTP request to `route` (a template such as `/api/v1/queue/{id}`,
    /// never a raw path: bounded label values) answered `status` after `took`.
    pub fn http_request(&self, route: &'static str, method: &str, status: u16, took: Duration) {
        let s = &self.series;
        s.http_requests
            .get_or_create(&RequestLabels {
                route,
                method: method.to_owned(),
                status,
            })
            .inc();
        s.http_duration
            .get_or_create(&RouteLabels {
                route,
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Open WebSocket connections now (the server sets it before rendering).
    pub fn set_websocket_clients(&self, open: u64) {
        self.series
            .websocket_clients
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Reads the state series from `store` (queue depth, storage used, the
    /// pools) and returns every series in the Prometheus text format.
    /// A store that cannot answer leaves its series out of this scrape
    /// rather than showing stale numbers.
    pub async fn render(&self, store: &dyn Store) -> String {
        let s = &self.series;
        match store.queue_counts().await {
            Ok(counts) => {
                for (status, n) in [
                    (QueueStatus::Pending, counts.pending),
                    (QueueStatus::Downloading, counts.downloading),
                    (QueueStatus::Paused, counts.paused),
                    (QueueStatus::Completed, counts.completed),
                    (QueueStatus::Failed, counts.failed),
                ] {
                    s.queue_items
                        .get_or_create(&StatusLabels {
                            status: status_label(status),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            Err(err) => {
                tracing::debug!(target: "mediadl::metrics", error = %err, "queue depth unavailable");
                s.queue_items.clear();
            }
        }
        let storage = store.storage_used().await;
        match storage {
            Ok(bytes) => {
                s.storage_used.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            Err(err) => {
                tracing::debug!(target: "mediadl::metrics", error = %err, "storage used unavailable");
            }
        }
        s.pool_connections.clear();
        s.pool_max.clear();
        for usage in store.pool_usage() {
            let in_use = usage.open.saturating_sub(usage.idle);
            for (state, n) in [("idle", usage.idle), ("in_use", in_use)] {
                s.pool_connections
                    .get_or_create(&PoolStateLabels {
                        pool: usage.pool,
                        state,
                    })
                    .set(i64::from(n));
            }
            s.pool_max
                .get_or_create(&PoolLabels { pool: usage.pool })
                .set(i64::from(usage.max));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &s.registry);
        text
    }
}

/// An [`EventBus`] that counts what this process publishes into a
/// [`Metrics`] and passes everything on to the bus it wraps.
#[derive(Debug)]
pub struct MeteredBus {
    inner: Arc<dyn EventBus>,
    metrics: Metrics,
}

impl MeteredBus {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn EventBus>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl EventBus for MeteredBus {
    async fn publish(&self, event: Event) {
        self.metrics.observe(&event);
        self.inner.publish(event).await;
    }

    fn subscribe(&self) -> BoxStream<'static, BusMessage> {
        self.inner.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use futures::StreamExt;
    use prometheus_parse::{Scrape, Value};

    use super::*;
    use crate::events::BroadcastBus;
    use crate::model::{CompletedEvent, NewQueueItem, QueueEventItem, QueueUpdate};
    use crate::store::{MemoryStore, QueueRepo};

    async fn parsed(metrics: &Metrics, store: &MemoryStore) -> Scrape {
        let text = metrics.render(store).await;
        Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
    }

    /// The number of the one sample `name` with `labels`; `None` when absent.
    fn number(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => {
                    buckets
                        .iter()
                        .find(|b| b.less_than.is_infinite())
                        .unwrap()
                        .count
                }
                Value::Summary(_) => unreachable!("no summaries"),
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
        found.first().copied()
    }

    fn started(platform: &str) -> Event {
        Event::now(EventKind::QueueUpdated(QueueUpdate {
            action: QueueAction::Started,
            item: QueueEventItem {
                id: 1,
                url: "https://example.com/a".into(),
                platform: platform.into(),
                source: "s".into(),
                status: QueueStatus::Downloading,
                priority: 5,
                attempts: 1,
                error_message: None,
            },
        }))
    }

    fn ended(platform: &str, status: QueueStatus, job: Option<&str>, seconds: f64) -> Event {
        Event::now(EventKind::DownloadCompleted(CompletedEvent {
            queue_id: 1,
            url: "https://example.com/a".into(),
            platform: platform.into(),
            source: "s".into(),
            content_type: "file".into(),
            items_downloaded: 1,
            items_failed: 0,
            duration_seconds: seconds,
            status,
            error_message: None,
            job_id: job.map(str::to_owned),
        }))
    }

    #[tokio::test]
    async fn published_events_count_items_runs_and_durations() {
        let metrics = Metrics::new();
        let store = MemoryStore::new();
        let inner = Arc::new(BroadcastBus::default());
        let bus = MeteredBus::new(inner.clone(), metrics.clone());
        let mut feed = bus.subscribe();
        bus.publish(started("direct")).await;
        bus.publish(ended("direct", QueueStatus::Completed, Some("job-1"), 0.3))
            .await;
        bus.publish(ended("forum", QueueStatus::Failed, None, 40.0))
            .await;
        // What other processes publish on a shared bus is theirs to count.
        inner.publish(started("direct")).await;

        let first = feed.next().await.unwrap();
        assert!(
            matches!(first, BusMessage::Event(event) if event.type_name() == "queue_updated"),
            "the wrapped bus still delivers"
        );
        let s = parsed(&metrics, &store).await;
        let direct = [("platform", "direct")];
        assert_eq!(
            number(&s, "mediadl_items_started_total", &direct),
            Some(1.0)
        );
        assert_eq!(
            number(&s, "mediadl_items_completed_total", &direct),
            Some(1.0)
        );
        assert_eq!(number(&s, "mediadl_items_failed_total", &direct), None);
        assert_eq!(
            number(&s, "mediadl_items_failed_total", &[("platform", "forum")]),
            Some(1.0)
        );
        let forum_failed = [("platform", "forum"), ("status", "failed")];
        assert_eq!(
            number(&s, "mediadl_item_duration_seconds", &forum_failed),
            Some(1.0)
        );
        assert_eq!(
            number(&s, "mediadl_item_duration_seconds_sum", &forum_failed),
            Some(40.0)
        );
        assert_eq!(
            number(
                &s,
                "mediadl_scheduler_runs_total",
                &[("outcome", "success")]
            ),
            Some(1.0),
            "only the item with a job ends a scheduled run"
        );
        assert_eq!(
            number(
                &s,
                "mediadl_scheduler_runs_total",
                &[("outcome", "failure")]
            ),
            None
        );
    }

    #[tokio::test]
    async fn hooks_count_transfers_retries_leases_runs_deliveries_and_requests() {
        let metrics = Metrics::new();
        let store = MemoryStore::new();
        let item = store
            .enqueue(
                NewQueueItem::new("https://example.com/a", "tiktok", "s", "videos"),
                Utc::now(),
            )
            .await
            .unwrap();
        metrics.transferred(&item, 1_500, Instant::now());
        metrics.transferred(&item, 500, Instant::now());
        metrics.retried("tiktok", &DownloadError::retryable("reset"));
        metrics.retried("tiktok", &DownloadError::Storage("full".into()));
        metrics.retried("tiktok", &DownloadError::retryable("reset again"));
        metrics.lease_expired(true);
        metrics.lease_expired(false);
        metrics.scheduler_run(RunStatus::Running);
        metrics.scheduler_run(RunStatus::Skipped);
        metrics.delivery_recorded(DeliveryTransport::Webhook, DeliveryStatus::Pending);
        metrics.delivery_recorded(DeliveryTransport::Webhook, DeliveryStatus::Failed);
        metrics.delivery_recorded(DeliveryTransport::Email, DeliveryStatus::Delivered);
        metrics.notification_delivered("browser", true);
        metrics.http_request("/api/v1/queue/:id", "GET", 404, Duration::from_millis(3));
        metrics.http_request("/api/v1/queue/:id", "GET", 200, Duration::from_secs(20));
        metrics.set_websocket_clients(3);

        let s = parsed(&metrics, &store).await;
        let tiktok = [("platform", "tiktok")];
        assert_eq!(
            number(&s, "mediadl_downloaded_files_total", &tiktok),
            Some(2.0)
        );
        assert_eq!(
            number(&s, "mediadl_downloaded_bytes_total", &tiktok),
            Some(2_000.0)
        );
        assert_eq!(
            number(&s, "mediadl_transfer_duration_seconds", &tiktok),
            Some(2.0)
        );
        let cause = |c| [("platform", "tiktok"), ("cause", c)];
        assert_eq!(
            number(&s, "mediadl_retries_total", &cause("transient")),
            Some(2.0)
        );
        assert_eq!(
            number(&s, "mediadl_retries_total", &cause("storage")),
            Some(1.0)
        );
        assert_eq!(number(&s, "mediadl_lease_expiries_total", &[]), Some(2.0));
        assert_eq!(number(&s, "mediadl_lease_recoveries_total", &[]), Some(1.0));
        assert_eq!(
            number(
                &s,
                "mediadl_scheduler_runs_total",
                &[("outcome", "skipped")]
            ),
            Some(1.0)
        );
        assert_eq!(
            number(
                &s,
                "mediadl_scheduler_runs_total",
                &[("outcome", "running")]
            ),
            None,
            "a run that has not ended is not an outcome"
        );
        let delivery = |t, o| [("transport", t), ("outcome", o)];
        assert_eq!(
            number(
                &s,
                "mediadl_notification_deliveries_total",
                &delivery("webhook", "failed")
            ),
            Some(1.0),
            "pending attempts are not counted"
        );
        assert_eq!(
            number(
                &s,
                "mediadl_notification_deliveries_total",
                &delivery("email", "delivered")
            ),
            Some(1.0)
        );
        assert_eq!(
            number(
                &s,
                "mediadl_notification_deliveries_total",
                &delivery("browser", "delivered")
            ),
            Some(1.0)
        );
        let route = [("route", "/api/v1/queue/:id"), ("method", "GET")];
        assert_eq!(
            number(&s, "mediadl_http_request_duration_seconds", &route),
            Some(2.0)
        );
        let fast = s
            .samples
            .iter()
            .find(|x| x.metric == "mediadl_http_request_duration_seconds")
            .map(|x| match &x.value {
                Value::Histogram(buckets) => {
                    buckets.iter().find(|b| b.less_than == 0.005).unwrap().count
                }
                _ => unreachable!(),
            });
        assert_eq!(
            fast,
            Some(1.0),
            "3 ms falls in the 5 ms bucket, 20 s only in +Inf"
        );
        assert_eq!(
            number(
                &s,
                "mediadl_http_requests_total",
                &[("route", "/api/v1/queue/:id"), ("status", "404")]
            ),
            Some(1.0)
        );
        assert_eq!(number(&s, "mediadl_websocket_clients", &[]), Some(3.0));
    }

    /// The series names in the PromQL expressions of a Grafana dashboard.
    fn series_in(dashboard: &serde_json::Value, found: &mut Vec<String>) {
        match dashboard {
            serde_json::Value::Object(map) => {
                if let Some(expr) = map.get("expr").and_then(|expr| expr.as_str()) {
                    found.extend(
                        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .filter(|word| word.starts_with("mediadl_"))
                            .map(|word| {
                                ["_bucket", "_sum", "_count"]
                                    .iter()
                                    .find_map(|suffix| word.strip_suffix(suffix))
                                    .unwrap_or(word)
                                    .to_owned()
                            }),
                    );
                }
                map.values().for_each(|value| series_in(value, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| series_in(item, found)),
            _ => {}
        }
    }

    #[tokio::test]
    async fn the_grafana_dashboard_uses_only_series_that_exist() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../contrib/grafana-dashboard.json"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON");
        let mut used = Vec::new();
        series_in(&dashboard, &mut used);
        assert!(used.len() >= 19, "{used:?}");

        // Every family with a sample, so each has its HELP line.
        let metrics = Metrics::new();
        let store = MemoryStore::new();
        let item = store
            .enqueue(
                NewQueueItem::new("https://example.com/a", "direct", "s", "file"),
                Utc::now(),
            )
            .await
            .unwrap();
        metrics.observe(&started("direct"));
        metrics.observe(&ended("direct", QueueStatus::Completed, Some("j"), 1.0));
        metrics.observe(&ended("direct", QueueStatus::Failed, None, 1.0));
        metrics.transferred(&item, 1, Instant::now());
        metrics.retried("direct", &DownloadError::retryable("x"));
        metrics.notification_delivered("browser", true);
        metrics.http_request("/metrics", "GET", 200, Duration::ZERO);
        let exposed = parsed(&metrics, &store).await.docs;
        // The in-memory store has no pool; the server's tests see the SQL stores' pools.
        let pools = [
            "mediadl_db_pool_connections",
            "mediadl_db_pool_max_connections",
        ];
        for name in &used {
            assert!(
                exposed.contains_key(name) || pools.contains(&name.as_str()),
                "the dashboard uses {name}, which /metrics does not have"
            );
        }
    }

    #[tokio::test]
    async fn state_is_read_from_the_store_at_each_scrape() {
        let metrics = Metrics::new();
        let store = MemoryStore::new();
        let s = parsed(&metrics, &store).await;
        assert_eq!(
            number(&s, "mediadl_queue_items", &[("status", "pending")]),
            Some(0.0)
        );
        assert_eq!(number(&s, "mediadl_storage_used_bytes", &[]), Some(0.0));
        assert_eq!(
            number(&s, "mediadl_db_pool_max_connections", &[("pool", "main")]),
            None,
            "the in-memory store has no pool"
        );
        for url in ["https://example.com/a", "https://example.com/b"] {
            store
                .enqueue(NewQueueItem::new(url, "direct", "s", "file"), Utc::now())
                .await
                .unwrap();
        }
        let s = parsed(&metrics, &store).await;
        assert_eq!(
            number(&s, "mediadl_queue_items", &[("status", "pending")]),
            Some(2.0)
        );
        assert_eq!(
            number(&s, "mediadl_queue_items", &[("status", "failed")]),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn two_registries_never_mix() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.lease_expired(true);
        let store = MemoryStore::new();
        assert_eq!(
            number(
                &parsed(&a, &store).await,
                "mediadl_lease_expiries_total",
                &[]
            ),
            Some(1.0)
        );
        assert_eq!(
            number(
                &parsed(&b, &store).await,
                "mediadl_lease_expiries_total",
                &[]
            ),
            Some(0.0)
        );
    }
}
