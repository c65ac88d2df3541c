//! Queue operations as users request them (API, CLI, scheduler): validated
//! against the registered downloaders, stored, and announced on the event
//! bus so dashboards and engines in every process react.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::SettingsHandle;
use crate::downloader::{Registry, Request};
use crate::error::Error;
use crate::events::EventBus;
use crate::model::{
    DownloaderInfo, Event, EventKind, NewQueueItem, QueueAction, QueueItem, QueuePatch,
    QueueStatus, QueueUpdate,
};
use crate::recognise::is_auto;
use crate::store::Store;

/// Refuses a content type the downloader `info` describes does not list,
/// naming the ones it does.
pub(crate) fn check_content_type(
    info: &DownloaderInfo,
    platform: &str,
    content_type: &str,
) -> Result<(), Error> {
    if info
        .content_types
        .iter()
        .any(|listed| listed == content_type)
    {
        return Ok(());
    }
    Err(Error::invalid(
        "content_type",
        format!(
            "{content_type:?} is not a content type of {platform} (one of: {})",
            info.content_types.join(", ")
        ),
    ))
}

/// Adds, changes and removes queue items, publishing `queue_updated` for each.
#[derive(Debug, Clone)]
pub struct QueueService {
    store: Arc<dyn Store>,
    events: Arc<dyn EventBus>,
    registry: Arc<Registry>,
    settings: SettingsHandle,
    clock: Arc<dyn Clock>,
}

impl QueueService {
    /// A service over `store` that announces changes on `events`; `registry`
    /// checks that a request's platform and downloader exist, `settings`
    /// gives the defaults, `clock` stamps the items.
    pub fn new(
        store: Arc<dyn Store>,
        events: Arc<dyn EventBus>,
        registry: Arc<Registry>,
        settings: SettingsHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            events,
            registry,
            settings,
            clock,
        }
    }

    /// Validates and enqueues an item. A `priority` of 0 or `max_attempts`
    /// of 0 take the settings' defaults; an empty `content_type` takes the
    /// downloader's first; a `direct` item without a source is labelled
    /// with the URL's host. An empty platform or `auto` is chosen from the
    /// URL ([`Registry::recognise`]), and so are an empty source and
    /// content type.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when the platform, downloader, content type,
    /// priority or source is not acceptable (or the downloader's own
    /// validation refuses the request); [`Error::Store`] when enqueueing fails.
    pub async fn submit(&self, mut new: NewQueueItem) -> Result<QueueItem, Error> {
        let settings = self.settings.current();
        if is_auto(&new.platform) {
            // The URL says the platform; what the caller gave explicitly stays.
            let found = self.registry.recognise(&new.url, &settings).await?;
            new.platform = found.platform;
            if new.source.trim().is_empty() {
                new.source = found.source;
            }
            if new.content_type.trim().is_empty() {
                new.content_type = found.content_type;
            }
        }
        let downloader = self
            .registry
            .find(&new.platform, new.options.downloader.as_deref())?;
        let info = downloader.info();
        if new.content_type.is_empty() {
            new.content_type = info.content_types.first().cloned().unwrap_or_default();
        }
        check_content_type(&info, &new.platform, &new.content_type)?;
        if new.priority == 0 {
            new.priority = settings.general.default_priority;
        }
        if !(1..=10).contains(&new.priority) {
            return Err(Error::invalid(
                "priority",
                "must be between 1 (most urgent) and 10",
            ));
        }
        if new.max_attempts == 0 {
            new.max_attempts = settings.general.retry_attempts;
        }
        if new.source.trim().is_empty() && crate::platforms::source_is_url(&new.platform) {
            // The general platforms' source is the page itself.
            new.source = new.url.trim().to_owned();
        }
        if new.source.trim().is_empty() && new.platform == "direct" {
            new.source = url::Url::parse(new.url.trim())
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_default();
        }
        crate::engine::placement::check_template_overrides(&new.metadata, "metadata")?;
        let now = self.clock.now();
        let probe = Request::from_item(&new.clone().into_item(0, now), &settings, now);
        downloader.validate(&probe)?;
        if new.source.trim().is_empty() {
            return Err(Error::invalid("source", "must not be empty"));
        }
        let item = self.store.enqueue(new, now).await?;
        self.announce(QueueAction::Added, &item).await;
        Ok(item)
    }

    /// Changes priority, pauses (a running item stops; its partial file is
    /// kept for resuming) or resumes.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a priority outside 1–10 or a status other than
    /// `paused`/`pending`; [`Error::Store`] when the item does not exist
    /// ([`StoreError::NotFound`](crate::StoreError::NotFound)) or the change
    /// does not apply to its state.
    pub async fn update(&self, id: i64, patch: QueuePatch) -> Result<QueueItem, Error> {
        if let Some(priority) = patch.priority
            && !(1..=10).contains(&priority)
        {
            return Err(Error::invalid(
                "priority",
                "must be between 1 (most urgent) and 10",
            ));
        }
        let action = match patch.status {
            None => QueueAction::Updated,
            Some(QueueStatus::Paused) => QueueAction::Paused,
            Some(QueueStatus::Pending) => QueueAction::Resumed,
            Some(other) => {
                return Err(Error::invalid(
                    "status",
                    format!(
                        "cannot set status {:?}: only \"paused\" or \"pending\" (resume)",
                        other.as_str()
                    ),
                ));
            }
        };
        let item = self
            .store
            .update_queue_item(id, patch, self.clock.now())
            .await?;
        self.announce(action, &item).await;
        Ok(item)
    }

    /// Puts a failed item back in the queue with a fresh budget of attempts.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the item does not exist or is not failed.
    pub async fn retry(&self, id: i64) -> Result<QueueItem, Error> {
        let extra = self.settings.current().general.retry_attempts;
        let item = self
            .store
            .retry_queue_item(id, extra, self.clock.now())
            .await?;
        self.announce(QueueAction::Retrying, &item).await;
        Ok(item)
    }

    /// Removes an item; a running one is cancelled by its worker.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the item does not exist.
    pub async fn remove(&self, id: i64) -> Result<QueueItem, Error> {
        let item = self.store.delete_queue_item(id).await?;
        self.announce(QueueAction::Removed, &item).await;
        Ok(item)
    }

    /// Removes every item in one of `statuses` (only finished statuses may
    /// be cleared) and returns how many went.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `statuses` names an unfinished status;
    /// [`Error::Store`] when the store fails.
    pub async fn clear(&self, statuses: &[QueueStatus]) -> Result<u64, Error> {
        if let Some(active) = statuses.iter().find(|status| !status.is_finished()) {
            return Err(Error::invalid(
                "status",
                format!(
                    "only completed or failed items can be cleared, not {:?}",
                    active.as_str()
                ),
            ));
        }
        Ok(self.store.clear_queue(statuses).await?)
    }

    async fn announce(&self, action: QueueAction, item: &QueueItem) {
        let update = QueueUpdate {
            action,
            item: item.into(),
        };
        self.events
            .publish(Event {
                timestamp: self.clock.now(),
                kind: EventKind::QueueUpdated(update),
            })
            .await;
    }
}
