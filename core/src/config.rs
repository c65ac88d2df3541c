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
#[derive(Debug, Clone)]
pub struct SettingsHandle {
    sender: Arc<watch::Sender<Arc<Settings>>>,
}

/// What [`SettingsHandle::update`] changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsUpdate {
    /// Leaf values that changed (the spec's `updated_fields`).
    pub updated_fields: usize,
    pub settings: Arc<Settings>,
}

impl SettingsHandle {
    pub fn new(settings: Settings) -> Self {
        let (sender, _) = watch::channel(Arc::new(settings));
        Self {
            sender: Arc::new(sender),
        }
    }

    /// Loads the stored document, applies `overrides` (a config file, flags)
    /// on top without saving them, and validates the result.
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
    pub async fn reload(&self, store: &dyn SettingsRepo) -> Result<(), Error> {
        let document = store.get_settings().await?;
        let settings =
            Settings::from_value(&document).map_err(|err| Error::invalid(err.field, err.reason))?;
        self.replace(settings);
        Ok(())
    }
}
