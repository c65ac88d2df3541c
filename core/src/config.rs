//! Live settings: the validated [`Settings`] every part of a process reads,
//! changed through the store and broadcast to whoever watches (the engine
//! resizes its worker pool, clients rebuild).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use crate::error::Error;
use crate::model::Settings;
use crate::model::settings::{merge_patch, strip_masked};
use crate::store::SettingsRepo;

/// A cheap, cloneable handle on the current settings.
///
/// Every part of the process reads [`current`](Self::current) when it needs
/// a value, so a change through [`update`](Self::update) applies without a
/// restart; [`subscribe`](Self::subscribe) is for parts that must react.
///
/// ```
/// use mediadl::SettingsHandle;
/// use mediadl::store::MemoryStore;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mediadl::Error> {
/// let store = MemoryStore::new();
/// let settings = SettingsHandle::load(&store, None).await?;
/// let mut changes = settings.subscribe();
///
/// let patch = json!({ "network": { "user_agent": "archiver/1.0" } });
/// let update = settings.update(&store, &patch).await?;
/// assert_eq!(update.updated_fields, 1);
/// assert!(changes.has_changed().expect("handle alive"));
/// assert_eq!(settings.current().network.user_agent, "archiver/1.0");
///
/// // An unacceptable value is refused and nothing is saved.
/// let bad = json!({ "general": { "no_such_field": true } });
/// assert!(settings.update(&store, &bad).await.is_err());
/// assert_eq!(settings.current().network.user_agent, "archiver/1.0");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SettingsHandle {
    sender: Arc<watch::Sender<Arc<Settings>>>,
}

/// What [`SettingsHandle::update`] changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsUpdate {
    /// Leaf values that changed (the spec's `updated_fields`).
    pub updated_fields: usize,
    /// The settings after the update.
    pub settings: Arc<Settings>,
}

impl SettingsHandle {
    /// A handle holding `settings`; clones share it, and every clone sees later updates.
    pub fn new(settings: Settings) -> Self {
        let (sender, _) = watch::channel(Arc::new(settings));
        Self {
            sender: Arc::new(sender),
        }
    }

    /// Loads the stored document, applies `overrides` (a config file, flags)
    /// on top without saving them, and validates the result.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the document cannot be read, [`Error::Invalid`]
    /// naming the first unacceptable field.
    pub async fn load(store: &dyn SettingsRepo, overrides: Option<&Value>) -> Result<Self, Error> {
        let mut document = store.get_settings().await?;
        if let Some(overrides) = overrides {
            merge_patch(&mut document, overrides);
        }
        let settings =
            Settings::from_value(&document).map_err(|err| Error::invalid(err.field, err.reason))?;
        Ok(Self::new(settings))
    }

    /// The settings now.
    pub fn current(&self) -> Arc<Settings> {
        Arc::clone(&self.sender.borrow())
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Settings>> {
        self.sender.subscribe()
    }

    /// Replaces the settings in this process only.
    pub fn replace(&self, settings: Settings) {
        self.sender.send_replace(Arc::new(settings));
    }

    /// Deep-merges `patch` into the stored document (a `"***"` written back
    /// for a secret keeps the stored secret), validates the result, saves it
    /// and publishes it. Nothing is saved when validation fails.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `patch` is not an object or the result is not
    /// acceptable (naming the field), [`Error::Store`] when reading or
    /// saving fails.
    pub async fn update(
        &self,
        store: &dyn SettingsRepo,
        patch: &Value,
    ) -> Result<SettingsUpdate, Error> {
        if !patch.is_object() {
            return Err(Error::invalid(
                "body",
                "settings patch must be a JSON object",
            ));
        }
        let mut patch = patch.clone();
        strip_masked(&mut patch);
        let mut document = store.get_settings().await?;
        let updated_fields = merge_patch(&mut document, &patch);
        let settings =
            Settings::from_value(&document).map_err(|err| Error::invalid(err.field, err.reason))?;
        store.save_settings(&document).await.map_err(Error::from)?;
        let settings = Arc::new(settings);
        self.sender.send_replace(Arc::clone(&settings));
        Ok(SettingsUpdate {
            updated_fields,
            settings,
        })
    }

    /// Re-reads the stored document (another process changed it).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the document cannot be read, [`Error::Invalid`]
    /// when it is not acceptable; the current settings stay then.
    pub async fn reload(&self, store: &dyn SettingsRepo) -> Result<(), Error> {
        let document = store.get_settings().await?;
        let settings =
            Settings::from_value(&document).map_err(|err| Error::invalid(err.field, err.reason))?;
        self.replace(settings);
        Ok(())
    }
}
