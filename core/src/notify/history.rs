//! Delivery history: every email and webhook delivery with each attempt,
//! kept as one bounded list under a [`StateRepo`] key (newest first), so it
//! survives restarts on every store.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::metrics::Metrics;
use crate::model::NotificationTopic;
use crate::store::StateRepo;

/// The [`StateRepo`] key of the history.
pub const HISTORY_KEY: &str = "notifications.deliveries";

/// How a delivery travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryTransport {
    /// An email through the configured SMTP server.
    Email,
    /// An HTTP POST to a configured webhook.
    Webhook,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Attempts are still to come.
    Pending,
    /// An attempt succeeded.
    Delivered,
    /// Every attempt failed; `attempts` says why.
    Failed,
}

/// One try at delivering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// 1-based.
    pub attempt: u32,
    /// When the attempt started.
    pub at: DateTime<Utc>,
    /// Whether the transport accepted it.
    pub success: bool,
    /// HTTP status a webhook answered with.
    pub status_code: Option<u16>,
    /// Why it failed (the SMTP server's words, a timeout, the HTTP status).
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: u64,
}

/// One delivery: an email (possibly a digest) or one webhook call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Random (UUID v4) id, unique in the history.
    pub id: String,
    /// Email or webhook.
    pub transport: DeliveryTransport,
    /// The webhook's name, or the recipients of an email (never a secret).
    pub target: String,
    /// Event kinds the delivery carries (several for a digest).
    pub topics: Vec<NotificationTopic>,
    /// The email's subject or the notice's title.
    pub title: String,
    /// Notices the delivery carries.
    pub notices: u32,
    /// Where it stands now.
    pub status: DeliveryStatus,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// Sent by `POST /notifications/test`.
    pub test: bool,
    /// When the delivery was created.
    pub created_at: DateTime<Utc>,
    /// When its last attempt ended.
    pub updated_at: DateTime<Utc>,
}

impl Delivery {
    /// A pending delivery with no attempt yet.
    pub fn new(
        transport: DeliveryTransport,
        target: String,
        topics: Vec<NotificationTopic>,
        title: String,
        notices: u32,
        now: DateTime<Utc>,
    ) -> Self {
        let mut unique = Vec::new();
        for topic in topics {
            if !unique.contains(&topic) {
                unique.push(topic);
            }
        }
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            transport,
            target,
            topics: unique,
            title,
            notices,
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            test: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// Adds an attempt and settles the status: delivered when it succeeded,
    /// failed when it was the last one allowed (`final_attempt`) or is not
    /// worth repeating (`retryable` false), pending otherwise. Returns
    /// whether the delivery is settled (no attempt follows).
    pub fn add_attempt(
        &mut self,
        attempt: DeliveryAttempt,
        retryable: bool,
        final_attempt: bool,
        now: DateTime<Utc>,
    ) -> bool {
        let success = attempt.success;
        let settled = success || !retryable || final_attempt;
        self.status = match (success, settled) {
            (true, _) => DeliveryStatus::Delivered,
            (false, true) => DeliveryStatus::Failed,
            (false, false) => DeliveryStatus::Pending,
        };
        self.attempts.push(attempt);
        self.updated_at = now;
        settled
    }

    /// The last attempt's error.
    pub fn last_error(&self) -> Option<&str> {
        self.attempts.last().and_then(|a| a.error.as_deref())
    }
}

/// Filters of the history listing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFilter {
    /// Only deliveries by this transport.
    pub transport: Option<DeliveryTransport>,
    /// Only deliveries in this status.
    pub status: Option<DeliveryStatus>,
    /// At most this many (newest first); 0 means all kept.
    pub limit: u32,
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store could not read or write the history's state key.
    #[error("delivery history: {0}")]
    Store(#[from] StoreError),
    /// The stored history is not a list of deliveries (written by another version?).
    #[error("delivery history is not readable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Reads and writes the history. Writes in one process are serialised
/// (read, change, write back); instances sharing a database may lose an
/// entry to each other, never corrupt the list.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    state: Arc<dyn StateRepo>,
    metrics: Option<Metrics>,
}

/// One lock for every log of the process (the API's test sends and the
/// notifier write the same key).
fn write_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

impl DeliveryLog {
    /// A log kept under [`HISTORY_KEY`] of `state`.
    pub fn new(state: Arc<dyn StateRepo>) -> Self {
        Self {
            state,
            metrics: None,
        }
    }

    /// Also counts every delivery that ends (not the API's test sends) in
    /// `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn load(&self) -> Result<Vec<Delivery>, HistoryError> {
        match self.state.get_state(HISTORY_KEY).await? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(value) => Ok(serde_json::from_value(value)?),
        }
    }

    /// Inserts or replaces `delivery` (by id) at the top and keeps the
    /// newest `limit`.
    ///
    /// # Errors
    ///
    /// [`HistoryError`] when the history cannot be read or written.
    pub async fn record(&self, delivery: &Delivery, limit: u32) -> Result<(), HistoryError> {
        if let Some(metrics) = self.metrics.as_ref().filter(|_| !delivery.test) {
            metrics.delivery_recorded(delivery.transport, delivery.status);
        }
        let _guard = write_lock().lock().await;
        // An unreadable history (another version wrote it) is started afresh
        // rather than blocking every delivery.
        let mut list = self.load().await.unwrap_or_else(|err| {
            tracing::warn!(target: "mediadl::notify", error = %err, "starting a new delivery history");
            Vec::new()
        });
        list.retain(|kept| kept.id != delivery.id);
        list.insert(0, delivery.clone());
        list.sort_by_key(|d| std::cmp::Reverse(d.created_at));
        list.truncate(limit.max(1) as usize);
        let value = serde_json::to_value(&list)?;
        self.state.put_state(HISTORY_KEY, &value).await?;
        Ok(())
    }

    /// Deliveries, newest first.
    ///
    /// # Errors
    ///
    /// [`HistoryError`] when the history cannot be read.
    pub async fn list(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, HistoryError> {
        let list = self.load().await?;
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit as usize
        };
        Ok(list
            .into_iter()
            .filter(|d| filter.transport.is_none_or(|t| d.transport == t))
            .filter(|d| filter.status.is_none_or(|s| d.status == s))
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn delivery(title: &str, at: i64) -> Delivery {
        Delivery::new(
            DeliveryTransport::Webhook,
            "ci".into(),
            vec![
                NotificationTopic::DownloadFailed,
                NotificationTopic::DownloadFailed,
            ],
            title.into(),
            1,
            DateTime::from_timestamp(at, 0).unwrap(),
        )
    }

    #[tokio::test]
    async fn keeps_the_newest_bounded_and_updates_in_place() {
        let log = DeliveryLog::new(Arc::new(MemoryStore::new()));
        let mut first = delivery("one", 1);
        assert_eq!(first.topics.len(), 1, "topics are deduplicated");
        log.record(&first, 2).await.unwrap();
        log.record(&delivery("two", 2), 2).await.unwrap();
        first.status = DeliveryStatus::Delivered;
        log.record(&first, 2).await.unwrap();
        let all = log.list(&DeliveryFilter::default()).await.unwrap();
        let titles: Vec<&str> = all.iter().map(|d| d.title.as_str()).collect();
        assert_eq!(titles, ["two", "one"]);
        assert_eq!(all[1].status, DeliveryStatus::Delivered);
        log.record(&delivery("three", 3), 2).await.unwrap();
        let titles: Vec<String> = log
            .list(&DeliveryFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.title)
            .collect();
        assert_eq!(titles, ["three", "two"]);
        let delivered = log
            .list(&DeliveryFilter {
                status: Some(DeliveryStatus::Delivered),
                ..DeliveryFilter::default()
            })
            .await
            .unwrap();
        assert!(delivered.is_empty());
    }

    #[tokio::test]
    async fn finished_deliveries_are_counted_once_each_and_tests_not_at_all() {
        let store = Arc::new(MemoryStore::new());
        let metrics = Metrics::new();
        let log = DeliveryLog::new(store.clone()).with_metrics(metrics.clone());
        let mut hook = delivery("hook", 1);
        log.record(&hook, 10).await.unwrap();
        hook.status = DeliveryStatus::Failed;
        log.record(&hook, 10).await.unwrap();
        let mut test = delivery("test", 2);
        test.test = true;
        test.status = DeliveryStatus::Delivered;
        log.record(&test, 10).await.unwrap();

        let text = metrics.render(store.as_ref()).await;
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap();
        let counted: Vec<(String, String, f64)> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "mediadl_notification_deliveries_total")
            .map(|s| {
                let prometheus_parse::Value::Counter(n) = s.value else {
                    panic!("a counter")
                };
                let label = |k| s.labels.get(k).unwrap().to_owned();
                (label("transport"), label("outcome"), n)
            })
            .collect();
        assert_eq!(counted, [("webhook".into(), "failed".into(), 1.0)]);
    }
}
