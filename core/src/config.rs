//! Live settings: the validated [`Settings`] every part of a process reads,
//! changed through the store and broadcast to whoever watches (the engine
//! resizes its worker pool, clients rebuild).
//!
//! The settings in effect are layered, lowest first: the built-in defaults,
//! [`SettingsLayers::with_default`] (the download root a process uses),
//! the document stored in the database (what `PATCH /settings` edits),
//! program settings, then the pinned layers in the order they were added
//! (the config file, the environment, flags). Every load, update and
//! reload rebuilds the settings from all of them, so none is lost, and a
//! change through [`SettingsHandle::update`] of a pinned key is refused.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::error::Error;
use crate::model::Settings;
use crate::model::settings::{
    InvalidSetting, drop_unchanged, merge_patch, program_layer, remove_program_fields,
    strip_masked, take_program_fields,
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
/// let settings = SettingsHandle::load(&store, &Default::default()).await?;
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
/// them, and updates and reloads keep them. So are the [`SettingsLayers`]
/// given to [`load`](Self::load).
#[derive(Debug, Clone)]
pub struct SettingsHandle {
    sender: Arc<watch::Sender<Arc<Settings>>>,
    programs: Arc<std::sync::RwLock<Value>>,
    layers: Arc<SettingsLayers>,
}

/// What [`SettingsHandle::update`] changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsUpdate {
    /// Leaf values that changed (the spec's `updated_fields`).
    pub updated_fields: usize,
    /// The settings after the update.
    pub settings: Arc<Settings>,
}

/// The values a process lays under and over the stored settings document.
///
/// ```
/// use mediadl::SettingsLayers;
/// use serde_json::json;
///
/// let layers = SettingsLayers::default()
///     .with_default(json!({"general": {"download_directory": "/data/downloads"}}))
///     .pin("the config file mediadl.toml", json!({"general": {"concurrent_downloads": 2}}))
///     .pin("--concurrency", json!({"general": {"concurrent_downloads": 8}}));
/// assert_eq!(layers.origin("general.concurrent_downloads"), Some("--concurrency"));
/// assert_eq!(layers.origin("general.download_directory"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsLayers {
    defaults: Value,
    pins: Vec<Pin>,
}

/// Values set outside the database, and where.
#[derive(Debug, Clone, PartialEq)]
struct Pin {
    origin: String,
    values: Value,
}

impl SettingsLayers {
    /// Defaults of this process that replace the built-in ones, under the
    /// stored document (the stored document may still change them).
    pub fn with_default(mut self, values: Value) -> Self {
        merge_patch(&mut self.defaults, &values);
        self
    }

    /// Values over the stored document, set at `origin` (`the config file
    /// /etc/mediadl.toml`, `--download-dir`); later pins win over earlier
    /// ones. A change through the API of a key a pin holds is refused,
    /// naming `origin`.
    pub fn pin(mut self, origin: impl Into<String>, values: Value) -> Self {
        if values.as_object().is_some_and(|map| !map.is_empty()) {
            self.pins.push(Pin {
                origin: origin.into(),
                values,
            });
        }
        self
    }

    /// Pins one key, by its dotted path (`general.concurrent_downloads`),
    /// to `value` (see [`pin`](Self::pin)).
    pub fn pin_field(self, origin: impl Into<String>, field: &str, value: Value) -> Self {
        let values = field.rsplit('.').fold(value, |inner, key| {
            Value::Object(Map::from_iter([(key.to_owned(), inner)]))
        });
        self.pin(origin, values)
    }

    /// Where the key at the dotted path `field` (or a section holding it)
    /// is pinned, by the pin that wins; `None` when it is not.
    pub fn origin(&self, field: &str) -> Option<&str> {
        let path: Vec<&str> = field.split('.').collect();
        self.pins
            .iter()
            .rev()
            .find(|pin| holds(&pin.values, &path))
            .map(|pin| pin.origin.as_str())
    }

    /// `stored` between the defaults and the pins, with `programs` over it.
    fn apply(&self, stored: &Value, programs: &Value) -> Result<Settings, Error> {
        let mut document = self.defaults.clone();
        merge_patch(&mut document, stored);
        merge_patch(&mut document, programs);
        for pin in &self.pins {
            merge_patch(&mut document, &pin.values);
        }
        Settings::from_value(&document).map_err(invalid)
    }

    /// Refuses a patch that changes a pinned value, and removes from it the
    /// pinned values it sends back unchanged (a client echoing the document).
    fn take_pinned(&self, patch: &mut Value) -> Result<(), Error> {
        let mut pinned = Value::Object(Map::new());
        for pin in &self.pins {
            merge_patch(&mut pinned, &pin.values);
        }
        let mut path = Vec::new();
        match take_pinned(patch, &pinned, &mut path) {
            Ok(()) => Ok(()),
            Err(()) => {
                let field = path.join(".");
                let origin = self.origin(&field).unwrap_or("the config file");
                Err(Error::ReadOnlySetting {
                    reason: format!(
                        "set in {origin}; change it there (the API cannot override it)"
                    ),
                    field,
                })
            }
        }
    }
}

/// Whether `values` holds the key at `path`, or a value above it.
fn holds(values: &Value, path: &[&str]) -> bool {
    match path.split_first() {
        None => true,
        Some((key, rest)) => match values.get(key) {
            Some(Value::Object(_)) => holds(&values[key], rest),
            Some(_) => true,
            None => false,
        },
    }
}

/// Walks `patch` beside `pinned`: a value sent where a pinned one is must
/// equal it (and is then dropped from the patch). On a refusal `path`
/// holds the refused key.
fn take_pinned(patch: &mut Value, pinned: &Value, path: &mut Vec<String>) -> Result<(), ()> {
    let (Value::Object(sent), Value::Object(pinned)) = (patch, pinned) else {
        return Ok(());
    };
    let mut echoed = Vec::new();
    for (key, value) in sent.iter_mut() {
        let Some(pinned) = pinned.get(key) else {
            continue;
        };
        path.push(key.clone());
        match (value.is_object(), pinned.is_object()) {
            (true, true) => take_pinned(value, pinned, path)?,
            (false, false) if value == pinned => echoed.push(key.clone()),
            _ => return Err(()),
        }
        path.pop();
    }
    for key in echoed {
        sent.remove(&key);
    }
    Ok(())
}

fn invalid(err: InvalidSetting) -> Error {
    Error::invalid(err.field, err.reason)
}

impl SettingsHandle {
    /// A handle holding `settings` (program settings included); clones
    /// share it, and every clone sees later updates.
    pub fn new(settings: Settings) -> Self {
        let programs = program_layer(&settings.to_value());
        Self::with_layers(settings, programs, SettingsLayers::default())
    }

    fn with_layers(settings: Settings, programs: Value, layers: SettingsLayers) -> Self {
        let (sender, _) = watch::channel(Arc::new(settings));
        Self {
            sender: Arc::new(sender),
            programs: Arc::new(std::sync::RwLock::new(programs)),
            layers: Arc::new(layers),
        }
    }

    /// Loads the stored document, lays `layers` under and over it without
    /// saving them, and validates the result. Program settings are taken
    /// from the pinned layers only.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the document cannot be read, [`Error::Invalid`]
    /// naming the first unacceptable field.
    pub async fn load(store: &dyn SettingsRepo, layers: &SettingsLayers) -> Result<Self, Error> {
        let stored = stored_without_programs(store).await?;
        let programs = Value::Object(Map::new());
        let settings = layers.apply(&stored, &programs)?;
        Ok(Self::with_layers(settings, programs, layers.clone()))
    }

    /// The layers this handle keeps under and over the stored document.
    pub fn layers(&self) -> &SettingsLayers {
        &self.layers
    }

    /// The stored document with every other layer applied, validated.
    fn effective(&self, stored: &Value) -> Result<Settings, Error> {
        let programs = self.programs.read().expect("program settings lock");
        self.layers.apply(stored, &programs)
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
    /// masked keeps the stored secret), validates the result with every
    /// layer applied, saves it and publishes it. Nothing is saved when
    /// validation fails.
    ///
    /// Program settings and pinned keys are not stored: a patch that sends
    /// them back as they are is accepted, one that changes them is refused.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnlySetting`] when `patch` changes a program setting or
    /// a pinned key (naming it and where it is set), [`Error::Invalid`]
    /// when `patch` is not an object or the result is not acceptable
    /// (naming the field), [`Error::Store`] when reading or saving fails.
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
        take_program_fields(&mut patch, &current).map_err(|err| Error::ReadOnlySetting {
            field: err.field,
            reason: err.reason,
        })?;
        strip_masked(&mut patch, &current);
        self.layers.take_pinned(&mut patch)?;
        drop_unchanged(&mut patch, &current);
        let mut document = stored_without_programs(store).await?;
        let updated_fields = merge_patch(&mut document, &patch);
        let settings = self.effective(&document)?;
        store.save_settings(&document).await.map_err(Error::from)?;
        let settings = Arc::new(settings);
        self.sender.send_replace(Arc::clone(&settings));
        Ok(SettingsUpdate {
            updated_fields,
            settings,
        })
    }

    /// Re-reads the stored document (another process changed it) and lays
    /// every other layer over it again.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the document cannot be read, [`Error::Invalid`]
    /// when it is not acceptable; the current settings stay then.
    pub async fn reload(&self, store: &dyn SettingsRepo) -> Result<(), Error> {
        let document = stored_without_programs(store).await?;
        let settings = self.effective(&document)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use serde_json::json;

    const FILE: &str = "the config file /etc/mediadl.toml";

    fn layers() -> SettingsLayers {
        SettingsLayers::default()
            .with_default(json!({"general": {"download_directory": "/data/downloads"}}))
            .pin(
                FILE,
                json!({
                    "general": {"retry_attempts": 7, "concurrent_downloads": 2},
                    "platforms": {"tiktok": {"quality": "sd", "yt-dlp": {"path": "/opt/yt-dlp"}}}
                }),
            )
            .pin_field("--concurrency", "general.concurrent_downloads", json!(9))
    }

    #[tokio::test]
    async fn pinned_values_survive_load_update_and_reload() {
        let store = MemoryStore::new();
        store
            .save_settings(&json!({"general": {"retry_attempts": 1, "default_priority": 3}}))
            .await
            .unwrap();
        let handle = SettingsHandle::load(&store, &layers()).await.unwrap();
        let check = |settings: &Settings| {
            assert_eq!(
                settings.general.retry_attempts, 7,
                "the file beats the database"
            );
            assert_eq!(
                settings.general.concurrent_downloads, 9,
                "a flag beats the file"
            );
            assert_eq!(settings.general.download_directory, "/data/downloads");
            let tiktok = &settings.platforms["tiktok"];
            assert_eq!(tiktok["quality"], "sd");
            assert_eq!(tiktok["yt-dlp"]["path"], "/opt/yt-dlp");
            assert_eq!(tiktok["enabled"], true, "the section's defaults stay");
        };
        check(&handle.current());
        assert_eq!(handle.current().general.default_priority, 3);

        let update = handle
            .update(&store, &json!({"general": {"default_priority": 8}}))
            .await
            .unwrap();
        assert_eq!(update.updated_fields, 1);
        check(&update.settings);
        let stored = store.get_settings().await.unwrap();
        assert_eq!(
            stored,
            json!({"general": {"retry_attempts": 1, "default_priority": 8}}),
            "pinned values are never stored"
        );

        // Another process changes the stored document; the reload a worker
        // runs every 30 s lays the pins over it again.
        store
            .save_settings(&json!({"general": {"retry_attempts": 4, "default_priority": 6}}))
            .await
            .unwrap();
        handle.reload(&store).await.unwrap();
        check(&handle.current());
        assert_eq!(handle.current().general.default_priority, 6);
    }

    #[tokio::test]
    async fn a_patch_of_a_pinned_key_is_refused_naming_where_it_is_set() {
        let store = MemoryStore::new();
        let handle = SettingsHandle::load(&store, &layers()).await.unwrap();
        for (patch, field, origin) in [
            (
                json!({"general": {"retry_attempts": 3}}),
                "general.retry_attempts",
                FILE,
            ),
            (
                json!({"general": {"concurrent_downloads": 3}}),
                "general.concurrent_downloads",
                "--concurrency",
            ),
            (
                json!({"platforms": {"tiktok": {"quality": null}}}),
                "platforms.tiktok.quality",
                FILE,
            ),
            (
                json!({"platforms": {"tiktok": "off"}}),
                "platforms.tiktok",
                FILE,
            ),
        ] {
            match handle.update(&store, &patch).await {
                Err(Error::ReadOnlySetting {
                    field: refused,
                    reason,
                }) => {
                    assert_eq!(refused, field);
                    assert!(reason.contains(origin), "{reason}");
                }
                other => panic!("{patch} accepted: {other:?}"),
            }
        }
        assert_eq!(
            store.get_settings().await.unwrap(),
            json!({}),
            "nothing saved"
        );

        // The document sent back as shown changes nothing and is accepted.
        let shown = handle.current().to_value();
        let update = handle.update(&store, &shown).await.unwrap();
        assert_eq!(update.updated_fields, 0);
        assert_eq!(
            store.get_settings().await.unwrap(),
            json!({}),
            "an echo freezes no default, pinned value or download root"
        );
        let tiktok = &handle.current().platforms["tiktok"];
        assert_eq!(tiktok["quality"], "sd");
    }

    #[tokio::test]
    async fn a_patch_of_one_platform_key_keeps_the_others_and_their_defaults() {
        let store = MemoryStore::new();
        let handle = SettingsHandle::load(&store, &SettingsLayers::default())
            .await
            .unwrap();
        let before = handle.current().to_value();
        let patch = json!({"platforms": {"instagram": {"native": {"rate_limit_per_hour": 50}}}});
        let update = handle.update(&store, &patch).await.unwrap();
        assert_eq!(update.updated_fields, 1);
        let mut expected = before;
        expected["platforms"]["instagram"]["native"]["rate_limit_per_hour"] = json!(50);
        assert_eq!(handle.current().to_value(), expected);
        // `null` gives a key its default back.
        let reset = json!({"platforms": {"instagram": {"native": {"rate_limit_per_hour": null}}}});
        handle.update(&store, &reset).await.unwrap();
        assert_eq!(
            handle.current().platforms["instagram"]["native"]["rate_limit_per_hour"],
            100
        );
    }
}
