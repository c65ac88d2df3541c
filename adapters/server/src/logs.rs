//! Logs kept in the store: a `tracing` layer picks up events at INFO and
//! above ([`LogCapture::layer`]), and the server's writer task stores them
//! in batches and publishes each as a `log` WebSocket event.
//!
//! Secrets never reach readers: the writer passes every entry through the
//! settings' [`Redactor`] before publishing or storing it, and `GET /logs`
//! redacts again on the way out (entries stored before a secret was set).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use mediadl::model::settings::Redactor;
use mediadl::model::{Event, EventKind, LogEvent, LogLevel, Metadata, NewLogEntry};
use mediadl::{EventBus, SettingsHandle, Store};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Entries waiting for the writer, at most; beyond that new ones are dropped
/// (logging never blocks the code that logs).
const BUFFER: usize = 10_000;
/// Entries stored per write.
const BATCH: usize = 256;

/// Targets never stored: the writer itself (no feedback loop), database
/// driver chatter, and the bootstrap password.
const SKIPPED_TARGETS: &[&str] = &[
    "mediadl_server::logs",
    "mediadl_server::bootstrap",
    "mediadl_server::access",
    "sqlx",
    "hyper",
    "h2",
    "warp",
    "rustls",
    "tungstenite",
];

/// A handle joining the tracing layer to the server that stores its events.
#[derive(Clone)]
pub struct LogCapture {
    sender: mpsc::Sender<NewLogEntry>,
    receiver: Arc<Mutex<Option<mpsc::Receiver<NewLogEntry>>>>,
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

impl Default for LogCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl LogCapture {
    /// A capture with an empty buffer; add its [`layer`](Self::layer) to the
    /// subscriber and hand it to the server's config.
    pub fn new() -> Self {
        let (sender, receiver) = mpsc::channel(BUFFER);
        Self {
            sender,
            receiver: Arc::new(Mutex::new(Some(receiver))),
        }
    }

    /// The layer to add to the process's tracing subscriber.
    pub fn layer(&self) -> CaptureLayer {
        CaptureLayer {
            sender: self.sender.clone(),
        }
    }

    /// The receiving end; only the first server to ask gets it.
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<NewLogEntry>> {
        self.receiver.lock().expect("log capture lock").take()
    }
}

/// Sends INFO-and-above events to the [`LogCapture`].
#[derive(Debug, Clone)]
pub struct CaptureLayer {
    sender: mpsc::Sender<NewLogEntry>,
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if *metadata.level() > Level::INFO {
            return;
        }
        let target = metadata.target();
        if SKIPPED_TARGETS.iter().any(|skip| target.starts_with(skip)) {
            return;
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let level = match *metadata.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            _ => LogLevel::Info,
        };
        let module = visitor.module.take().unwrap_or_else(|| module_name(target));
        // A full buffer drops the entry: logging must never block.
        let _ = self.sender.try_send(NewLogEntry {
            timestamp: Utc::now(),
            level,
            module,
            message: visitor.message,
            metadata: visitor.fields,
        });
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    module: Option<String>,
    fields: Metadata,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                }
            }
            "module" => self.module = value.as_str().map(str::to_owned),
            name => {
                self.fields.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

/// The spec's module names (`Instagram`, `Scheduler`, …) from a target path.
pub fn module_name(target: &str) -> String {
    let segments: Vec<&str> = target.split("::").collect();
    let known = |segment: &str| match segment {
        "instagram" => Some("Instagram"),
        "tiktok" => Some("TikTok"),
        "forum" => Some("Forum"),
        "direct" => Some("Direct"),
        "scheduler" => Some("Scheduler"),
        "engine" => Some("Engine"),
        "fetch" => Some("Fetch"),
        "engines" | "ytdlp" | "gallerydl" => Some("External"),
        "notify" | "notifications" => Some("Notifications"),
        _ => None,
    };
    if let Some(name) = segments.iter().rev().find_map(|segment| known(segment)) {
        return name.to_string();
    }
    match segments.first().copied() {
        Some("mediadl_server") => "Server".to_string(),
        Some("mediadl_store") => "Store".to_string(),
        Some("mediadl") | Some("mediadl_cli") => "Core".to_string(),
        _ => target.to_string(),
    }
}

/// Hides the settings' secrets in a log entry's message and fields.
pub(crate) fn redact_entry(redactor: &Redactor, message: &mut String, metadata: &mut Metadata) {
    *message = redactor.redact(message);
    for value in metadata.values_mut() {
        redactor.redact_value(value);
    }
}

/// Stores captured entries (redacted with `settings`' secrets) until
/// `shutdown`, then drains what is left.
pub(crate) async fn run_writer(
    mut receiver: mpsc::Receiver<NewLogEntry>,
    store: Arc<dyn Store>,
    events: Arc<dyn EventBus>,
    settings: SettingsHandle,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<NewLogEntry> = Vec::with_capacity(BATCH);
    loop {
        let more = tokio::select! {
            biased;
            received = receiver.recv_many(&mut batch, BATCH) => received > 0,
            () = shutdown.cancelled() => false,
        };
        if !more {
            // Shutdown or every sender gone: take what is queued and stop.
            while let Ok(entry) = receiver.try_recv() {
                batch.push(entry);
            }
            write(&store, &events, &settings, &mut batch).await;
            return;
        }
        write(&store, &events, &settings, &mut batch).await;
    }
}

async fn write(
    store: &Arc<dyn Store>,
    events: &Arc<dyn EventBus>,
    settings: &SettingsHandle,
    batch: &mut Vec<NewLogEntry>,
) {
    if batch.is_empty() {
        return;
    }
    let mut entries = std::mem::take(batch);
    let redactor = Redactor::from_settings(&settings.current());
    for entry in &mut entries {
        redact_entry(&redactor, &mut entry.message, &mut entry.metadata);
    }
    for entry in &entries {
        events
            .publish(Event {
                timestamp: entry.timestamp,
                kind: EventKind::Log(LogEvent {
                    level: entry.level,
                    module: entry.module.clone(),
                    message: entry.message.clone(),
                    metadata: entry.metadata.clone(),
                }),
            })
            .await;
    }
    for attempt in 0..3u32 {
        match store.append_logs(entries.clone()).await {
            Ok(()) => return,
            Err(err) if err.is_transient() && attempt < 2 => {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(err) => {
                tracing::warn!(target: "mediadl_server::logs", error = %err, dropped = entries.len(), "could not store log entries");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn module_names_follow_the_spec() {
        assert_eq!(
            module_name("mediadl::platforms::instagram::api"),
            "Instagram"
        );
        assert_eq!(module_name("mediadl::scheduler"), "Scheduler");
        assert_eq!(module_name("mediadl_server::routes::queue"), "Server");
        assert_eq!(module_name("my_plugin"), "my_plugin");
    }

    #[test]
    fn info_and_above_are_captured_with_fields() {
        let capture = LogCapture::new();
        let subscriber = tracing_subscriber::registry().with(capture.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "mediadl::platforms::tiktok", username = "eva", count = 3u64, "listed videos");
            tracing::debug!("not stored");
            tracing::warn!(target: "mediadl_server::bootstrap", "secret password");
            tracing::error!(target: "my_plugin", module = "Custom", "broke");
        });
        let mut receiver = capture.take_receiver().unwrap();
        let first = receiver.try_recv().unwrap();
        assert_eq!(first.module, "TikTok");
        assert_eq!(first.message, "listed videos");
        assert_eq!(first.metadata["username"], "eva");
        assert_eq!(first.metadata["count"], 3);
        let second = receiver.try_recv().unwrap();
        assert_eq!(
            (second.level, second.module.as_str()),
            (LogLevel::Error, "Custom")
        );
        assert!(receiver.try_recv().is_err());
        assert!(capture.take_receiver().is_none());
    }
}
