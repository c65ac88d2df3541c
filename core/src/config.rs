//! Live settings: the validated [`Settings`] every part of a process reads,
//! changed through the store and broadcast to whoever watches (the engine
//! resizes its worker pool, clients rebuild).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use crate::error::Error;
use crate::model::Settings;
use crate::model::settings::{
    merge_patch, program_layer, remove_program_fields, strip_masked, take_program_fields,
};
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
///
/// Program settings (`platforms.<p>.<downloader>.path` and `.extra_args`)
/// are a layer of their own, kept over the stored document: they come from
/// the config file or the code that built the handle, a patch cannot change
/// them, and updates and reloads keep them.
#[derive(Debug, Clone)]
pub struct SettingsHandle {
    sender: Arc<watch::Sender<Arc<Settings>>>,
    programs: Arc<std::sync::RwLock<Value>>,
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
    /// A handle holding `settings` (program settings included); clones
    /// share it, and every clone sees later updates.
    pub fn new(settings: Settings) -> Self {
        let programs = program_layer(&settings.to_value());
        let (sender, _) = watch::channel(Arc::new(settings));
        Self {
            sender: Arc::new(sender),
            programs: Arc::new(std::sync::RwLock::new(programs)),
        }
    }

    /// Loads the stored document, applies `overrides` (a config file, flags)
    /// on top without saving them, and validates the result. Program
    /// settings are taken from `overrides` only.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the document cannot be read, [`Error::Invalid`]
    /// naming the first unacceptable field.
    pub async fn load(store: &dyn SettingsRepo, overrides: Option<&Value>) -> Result<Self, Error> {
        let mut document = stored_without_programs(store).await?;
        if let Some(overrides) = overrides {
            merge_patch(&mut document, overrides);
        }
        let settings =
            Settings::from_value(&document).map_err(|err| Error::invalid(err.field, err.reason))?;
        Ok(Self::new(settings))
    }

    /// The stored document with the program layer on top, validated.
    fn effective(&self, mut stored: Value) -> Result<Settings, Error> {
        let programs = self.programs.read().expect("program settings lock");
        merge_patch(&mut stored, &programs);
        Settings::from_value(&stored).map_err(|err| Error::invalid(err.field, err.reason))
    }

    /// The settings now.
    pub fn current(&self) -> Arc<Settings> {
        Arc::clone(&self.sender.borrow())
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Settings>> {
        self.sender.subscribe()
    }

    /// Replaces the settings in this process only (program settings
    /// included: this is the embedding code speaking, not a client).
    pub fn replace(&self, settings: Settings) {
        *self.programs.write().expect("program settings lock") =
            program_layer(&settings.to_value());
        self.sender.send_replace(Arc::new(settings));
    }

    /// Deep-merges `patch` into the stored document (a secret written back
    /// masked keeps the stored secret), validates the result, saves it
    /// and publishes it. Nothing is saved when validation fails.
    ///
    /// Program settings are not stored: a patch that sends them back as
    /// they are is accepted, one that changes them is refused.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `patch` is not an object, changes a program
    /// setting, or the result is not acceptable (naming the field),
    /// [`Error::Store`] when reading or saving fails.
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
        let current = self.current().to_value();
        let mut patch = patch.clone();
        take_program_fields(&mut patch, &current)
            .map_err(|err| Error::invalid(err.field, err.reason))?;
        strip_masked(&mut patch, &current);
        let mut document = stored_without_programs(store).await?;
        let updated_fields = merge_patch(&mut document, &patch);
        let settings = self.effective(document.clone())?;
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
        let document = stored_without_programs(store).await?;
        let settings = self.effective(document)?;
        self.sender.send_replace(Arc::new(settings));
        Ok(())
    }
}

/// The stored document without program settings: a database written
/// before they became read-only (or by hand) cannot choose what runs.
async fn stored_without_programs(store: &dyn SettingsRepo) -> Result<Value, Error> {
    let mut document = store.get_settings().await?;
    let ignored = remove_program_fields(&mut document);
    if !ignored.is_empty() {
        tracing::warn!(
            target: "mediadl::config",
            fields = %ignored.join(", "),
            "ignoring program settings found in the database; set them in the config file"
        );
    }
    Ok(document)
}
