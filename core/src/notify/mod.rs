//! Notifications: an [`EventBus`] subscriber that turns what happens
//! (downloads completed or failed, sources needing a login, failed
//! scheduled runs, the storage limit, forum monitors ending) into browser
//! toasts, emails and signed webhooks, as the `notifications` settings'
//! rules say.
//!
//! ```
//! use std::sync::Arc;
//!
//! use mediadl::notify::Notifier;
//! use mediadl::store::MemoryStore;
//! use mediadl::{BroadcastBus, SettingsHandle, SystemClock};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tokio::task::JoinError> {
//! let store = Arc::new(MemoryStore::new());
//! let events = Arc::new(BroadcastBus::default());
//! let settings = SettingsHandle::new(Default::default());
//! let shutdown = CancellationToken::new();
//! let notifier = Notifier::new(store, events, settings, Arc::new(SystemClock));
//! // Subscribes now; the returned future does the work.
//! let notifying = tokio::spawn(notifier.run(shutdown.clone()));
//!
//! // … the engine and the API publish on `events` …
//!
//! shutdown.cancel();
//! notifying.await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Transports
//!
//! * **browser** (always built): the spec's `notification` event published
//!   on the bus, which the WebSocket forwards. The engine's own
//!   `notification` events (storage, source needs attention) reach browsers
//!   as they are; the notifier reads them as rule events for email and
//!   webhooks and ignores every other `notification`, its own among them,
//!   so nothing is announced twice.
//! * **email** (feature `notify-email`): SMTP through lettre and rustls.
//!   Rules with `digest_minutes` group their emails: the first notice
//!   starts the window and one email carries everything of that window.
//! * **webhooks** (feature `webhooks`): a POST per notice, signed with
//!   HMAC-SHA256 in `X-Mediadl-Signature`, as JSON, a Discord message or an
//!   ntfy publish.
//!
//! Email and webhook deliveries run in their own tasks (a few at a time),
//! are retried with backoff as `notifications.retry` says, and are
//! recorded with every attempt in the [`history`]. The engine and the API
//! never wait on them: the bus never blocks its publishers, and a slow
//! notifier only lags (and says so in the log).
//!
//! Several instances sharing a database each run a notifier: with a
//! cross-process bus each would deliver, so run notifications on one.

pub mod history;
pub mod notice;
mod watch;

#[cfg(feature = "notify-email")]
pub mod email;
#[cfg(feature = "webhooks")]
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::SettingsHandle;
use crate::events::{BusMessage, EventBus};
use crate::metrics::Metrics;
use crate::model::{Event, EventKind, NotificationTopic, Settings};
use crate::store::{StateRepo, Store};

/// The `notifications` section's types live with the settings model
/// (`model::notifications`); this path keeps naming them.
pub use crate::model::notifications as settings;
pub use history::{Delivery, DeliveryFilter, DeliveryLog, DeliveryStatus, DeliveryTransport};
pub use notice::{EmailContent, Notice};
pub use settings::NotificationSettings;

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// An email address in the settings cannot be parsed.
    #[error("{field}: {reason}")]
    InvalidAddress {
        /// The setting holding the address (`notifications.email.from`, …).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The transport lacks a setting it needs; the text names it.
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// What the SMTP server or the connection to it said.
    #[error("SMTP: {reason}")]
    Smtp {
        /// The server's reply or the connection error.
        reason: String,
        /// A 5xx reply: retrying the same message will not help.
        permanent: bool,
    },
    /// The webhook receiver answered with a non-success status.
    #[error("HTTP {status}: {body}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for the history.
        body: String,
    },
    /// The connection failed (DNS, refused, reset, TLS).
    #[error("{0}")]
    Network(String),
    /// No answer within the transport's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The address guard refused the receiver's address (a metadata
    /// endpoint, or a private one under `network.block_private_addresses`).
    #[error("{0}")]
    Refused(#[from] crate::fetch::guard::AddressRefused),
}

impl DeliveryError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidAddress { .. } | Self::NotConfigured(_) | Self::Refused(_) => false,
            Self::Smtp { permanent, .. } => !permanent,
            Self::HttpStatus { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            Self::Network(_) | Self::Timeout(_) => true,
        }
    }
}

/// Tuning of a [`Notifier`].
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// How often the store is looked at for failed runs without a queue
    /// item and for forum monitors about to stop.
    pub watch_interval: Duration,
    /// Deliveries in flight at once; the rest wait their turn.
    pub max_concurrent_deliveries: usize,
    /// On shutdown: how long the pending digest and deliveries in flight
    /// may still take.
    pub shutdown_grace: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        Self {
            watch_interval: Duration::from_secs(60),
            max_concurrent_deliveries: 8,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What deliveries share.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    events: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    /// Written by the email and webhook transports.
    #[cfg_attr(
        not(any(feature = "notify-email", feature = "webhooks")),
        allow(dead_code)
    )]
    log: DeliveryLog,
    permits: Semaphore,
    metrics: Metrics,
    #[cfg(feature = "webhooks")]
    http: WebhookClients,
}

/// The notification subscriber.
#[derive(Debug)]
pub struct Notifier {
    shared: Arc<Shared>,
    settings: SettingsHandle,
    options: NotifierOptions,
}

/// Notices waiting for their digest email.
#[derive(Debug, Default)]
struct Digest {
    notices: Vec<Notice>,
    deadline: Option<Instant>,
}

impl Digest {
    /// Adds a notice; the digest goes out `minutes` after the notice at
    /// the latest (the earliest deadline of its notices wins).
    fn push(&mut self, notice: Notice, minutes: u32, now: Instant) {
        let due = now + Duration::from_secs(u64::from(minutes) * 60);
        self.deadline = Some(self.deadline.map_or(due, |d| d.min(due)));
        self.notices.push(notice);
    }

    fn take(&mut self) -> Vec<Notice> {
        self.deadline = None;
        std::mem::take(&mut self.notices)
    }
}

/// The parsed `notifications` section of the settings now in effect.
#[derive(Debug)]
struct CurrentSettings {
    source: Arc<Settings>,
    parsed: Arc<NotificationSettings>,
}

fn parse(settings: &Settings) -> Arc<NotificationSettings> {
    Arc::new(
        NotificationSettings::from_settings(settings).unwrap_or_else(|err| {
            // Settings are validated before they are published, so this is
            // a document from another version: notify with the defaults.
            tracing::warn!(target: "mediadl::notify", error = %err, "invalid notification settings; using defaults");
            NotificationSettings::default()
        }),
    )
}

impl Notifier {
    /// A notifier reading rules from `settings` (live), publishing browser
    /// notifications on `events` and keeping its delivery history in
    /// `store`'s state; it does nothing until [`run`](Self::run).
    pub fn new(
        store: Arc<dyn Store>,
        events: Arc<dyn EventBus>,
        settings: SettingsHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let options = NotifierOptions::default();
        let state: Arc<dyn StateRepo> = store.clone();
        Self {
            shared: Arc::new(Shared {
                store,
                events,
                clock,
                log: DeliveryLog::new(state),
                permits: Semaphore::new(options.max_concurrent_deliveries),
                metrics: Metrics::default(),
                #[cfg(feature = "webhooks")]
                http: WebhookClients::new(),
            }),
            settings,
            options,
        }
    }

    /// Replaces the default [`NotifierOptions`].
    pub fn with_options(mut self, options: NotifierOptions) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.permits = Semaphore::new(options.max_concurrent_deliveries.max(1));
        }
        self.options = options;
        self
    }

    /// Counts deliveries (browser, email, webhook) by outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.log = shared.log.clone().with_metrics(metrics.clone());
            shared.metrics = metrics;
        }
        self
    }

    /// Subscribes to the bus now and returns the work: notifying until
    /// `shutdown` is cancelled (then the pending digest is sent and
    /// deliveries in flight get [`NotifierOptions::shutdown_grace`]).
    pub fn run(self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let stream = self.shared.events.subscribe();
        self.work(stream, shutdown)
    }

    async fn work(self, mut stream: BoxStream<'static, BusMessage>, shutdown: CancellationToken) {
        let mut state = LoopState {
            current: CurrentSettings {
                source: self.settings.current(),
                parsed: parse(&self.settings.current()),
            },
            digest: Digest::default(),
            recent: HashMap::new(),
            deliveries: JoinSet::new(),
        };
        let mut watch = tokio::time::interval(self.options.watch_interval);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = state.digest.deadline;
            tokio::select! {
                () = shutdown.cancelled() => break,
                message = stream.next() => match message {
                    None => break,
                    Some(BusMessage::Event(event)) => self.on_event(&mut state, &event).await,
                    Some(BusMessage::Lagged(missed)) => {
                        tracing::warn!(target: "mediadl::notify", missed, "notifier fell behind the event bus; events were not notified");
                    }
                },
                () = sleep_until(deadline) => self.flush_digest(&mut state),
                _ = watch.tick() => self.watch(&mut state).await,
                Some(_) = state.deliveries.join_next(), if !state.deliveries.is_empty() => {}
            }
        }
        if !state.digest.notices.is_empty() {
            self.flush_digest(&mut state);
        }
        let drain = async { while state.deliveries.join_next().await.is_some() {} };
        if tokio::time::timeout(self.options.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(target: "mediadl::notify", "stopping with notification deliveries unfinished");
        }
    }

    fn settings_now(&self, state: &mut LoopState) -> Arc<NotificationSettings> {
        let now = self.settings.current();
        if !Arc::ptr_eq(&now, &state.current.source) {
            state.current = CurrentSettings {
                parsed: parse(&now),
                source: now,
            };
        }
        Arc::clone(&state.current.parsed)
    }

    async fn on_event(&self, state: &mut LoopState, event: &Event) {
        if let Some(notice) = Notice::from_event(event) {
            self.dispatch(state, notice).await;
        }
    }

    async fn watch(&self, state: &mut LoopState) {
        let settings = self.settings_now(state);
        let now = self.shared.clock.now();
        let check = watch::check(self.shared.store.as_ref(), &settings, now);
        match tokio::time::timeout(Duration::from_secs(30), check).await {
            Ok(Ok(notices)) => {
                for notice in notices {
                    self.dispatch(state, notice).await;
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(target: "mediadl::notify", error = %err, "cannot check runs and monitors")
            }
            Err(_) => {
                tracing::warn!(target: "mediadl::notify", "checking runs and monitors timed out")
            }
        }
    }

    /// Sends `notice` through every transport its rule has on.
    async fn dispatch(&self, state: &mut LoopState, notice: Notice) {
        let settings = self.settings_now(state);
        let Some(rule) = settings.rules.get(notice.topic).cloned() else {
            return;
        };
        if !rule.enabled {
            return;
        }
        if rule.repeat_after_minutes > 0 {
            let key = (notice.topic, notice.repeat_key());
            let now = Instant::now();
            let quiet = Duration::from_secs(u64::from(rule.repeat_after_minutes) * 60);
            if state
                .recent
                .get(&key)
                .is_some_and(|last| now.duration_since(*last) < quiet)
            {
                return;
            }
            state
                .recent
                .retain(|_, last| now.duration_since(*last) < quiet);
            state.recent.insert(key, now);
        }
        if rule.browser && settings.browser.enabled && !notice.on_bus {
            let notification = notice.to_notification(settings.browser.auto_dismiss_seconds);
            self.shared
                .events
                .publish(Event {
                    timestamp: self.shared.clock.now(),
                    kind: EventKind::Notification(notification),
                })
                .await;
            self.shared.metrics.notification_delivered("browser", true);
        }
        if rule.email && settings.email.enabled {
            if rule.digest_minutes == 0 {
                self.spawn_email(state, &settings, vec![notice.clone()]);
            } else {
                state
                    .digest
                    .push(notice.clone(), rule.digest_minutes, Instant::now());
            }
        }
        if rule.webhook {
            self.spawn_webhooks(state, &settings, &notice);
        }
    }

    fn flush_digest(&self, state: &mut LoopState) {
        let notices = state.digest.take();
        if notices.is_empty() {
            return;
        }
        let settings = self.settings_now(state);
        if settings.email.enabled {
            self.spawn_email(state, &settings, notices);
        }
    }

    /// Runs `deliver` among the deliveries once one of the permits is free.
    #[cfg(any(feature = "notify-email", feature = "webhooks"))]
    fn spawn_delivery<F>(&self, state: &mut LoopState, deliver: impl FnOnce(Arc<Shared>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let delivery = deliver(Arc::clone(&shared));
        state.deliveries.spawn(async move {
            let Ok(_permit) = shared.permits.acquire().await else {
                return;
            };
            delivery.await;
        });
    }

    #[cfg(feature = "notify-email")]
    fn spawn_email(
        &self,
        state: &mut LoopState,
        settings: &Arc<NotificationSettings>,
        notices: Vec<Notice>,
    ) {
        let settings = Arc::clone(settings);
        self.spawn_delivery(state, |shared| async move {
            deliver_email(
                &settings,
                &notices,
                &shared.log,
                shared.clock.as_ref(),
                false,
            )
            .await;
        });
    }

    #[cfg(not(feature = "notify-email"))]
    fn spawn_email(&self, _: &mut LoopState, _: &Arc<NotificationSettings>, _: Vec<Notice>) {
        tracing::debug!(target: "mediadl::notify", "email is enabled but not built in (feature notify-email)");
    }

    #[cfg(feature = "webhooks")]
    fn spawn_webhooks(
        &self,
        state: &mut LoopState,
        settings: &Arc<NotificationSettings>,
        notice: &Notice,
    ) {
        for (name, hook) in &settings.webhooks {
            if !hook.wants(notice.topic) {
                continue;
            }
            let settings = Arc::clone(settings);
            let (name, hook, notice) = (name.clone(), hook.clone(), notice.clone());
            self.spawn_delivery(state, |shared| async move {
                webhook::deliver(
                    shared.http.get(settings.guard),
                    &name,
                    &hook,
                    &notice,
                    &settings,
                    &shared.log,
                    shared.clock.as_ref(),
                    false,
                )
                .await;
            });
        }
    }

    #[cfg(not(feature = "webhooks"))]
    fn spawn_webhooks(&self, _: &mut LoopState, settings: &Arc<NotificationSettings>, _: &Notice) {
        if !settings.webhooks.is_empty() {
            tracing::debug!(target: "mediadl::notify", "webhooks are set but not built in (feature webhooks)");
        }
    }
}

/// What the notifier's loop keeps between events.
#[derive(Debug)]
struct LoopState {
    current: CurrentSettings,
    digest: Digest,
    /// When each notice was last sent, for `repeat_after_minutes`.
    recent: HashMap<(NotificationTopic, String), Instant>,
    deliveries: JoinSet<()>,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One webhook client per address-guard mode, since the guard is part of
/// the client (its resolver and redirect policy) and the setting is live.
#[cfg(feature = "webhooks")]
#[derive(Debug)]
struct WebhookClients {
    open: reqwest::Client,
    private_blocked: reqwest::Client,
}

#[cfg(feature = "webhooks")]
impl WebhookClients {
    fn new() -> Self {
        Self {
            open: webhook_client(crate::fetch::AddressGuard::new(false)),
            private_blocked: webhook_client(crate::fetch::AddressGuard::new(true)),
        }
    }

    fn get(&self, guard: crate::fetch::AddressGuard) -> &reqwest::Client {
        if guard.block_private {
            &self.private_blocked
        } else {
            &self.open
        }
    }
}

/// Redirects followed by a webhook delivery.
#[cfg(feature = "webhooks")]
const WEBHOOK_REDIRECTS: usize = 3;

/// A client whose connections pass `guard`: resolved names keep only
/// allowed addresses, and every redirect target is checked.
#[cfg(feature = "webhooks")]
fn webhook_client(guard: crate::fetch::AddressGuard) -> reqwest::Client {
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= WEBHOOK_REDIRECTS {
            return attempt.error(format!("more than {WEBHOOK_REDIRECTS} redirects"));
        }
        if let Err(err) = guard.check_url(attempt.url()) {
            return attempt.error(err);
        }
        attempt.follow()
    });
    reqwest::Client::builder()
        .user_agent(concat!(
            "mediadl/",
            env!("CARGO_PKG_VERSION"),
            " (notifications)"
        ))
        .redirect(redirect)
        .dns_resolver(guard.resolver())
        .build()
        .unwrap_or_default()
}

/// Sends one email for `notices` with retries and records it.
#[cfg(feature = "notify-email")]
async fn deliver_email(
    settings: &NotificationSettings,
    notices: &[Notice],
    log: &DeliveryLog,
    clock: &dyn Clock,
    test: bool,
) -> Delivery {
    let content = EmailContent::render(notices, settings);
    let mut delivery = Delivery::new(
        DeliveryTransport::Email,
        settings.email.to.join(", "),
        notices.iter().map(|n| n.topic).collect(),
        content.subject.clone(),
        notices.len() as u32,
        clock.now(),
    );
    delivery.test = test;
    let attempts = if test {
        1
    } else {
        settings.retry.max_attempts.max(1)
    };
    for number in 1..=attempts {
        let at = clock.now();
        let started = std::time::Instant::now();
        let result = email::send(&settings.email, settings.guard, &content).await;
        let (success, error, again) = match &result {
            Ok(()) => (true, None, false),
            Err(err) => (false, Some(err.to_string()), err.is_retryable()),
        };
        let attempt = history::DeliveryAttempt {
            attempt: number,
            at,
            success,
            status_code: None,
            error: error.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let last = delivery.add_attempt(attempt, again, number == attempts, clock.now());
        if let Err(err) = log.record(&delivery, settings.history_limit).await {
            tracing::warn!(target: "mediadl::notify", error = %err, "cannot record an email delivery");
        }
        if last {
            if !success {
                tracing::warn!(target: "mediadl::notify", attempts = number, error = error.as_deref().unwrap_or_default(), "email delivery failed");
            }
            break;
        }
        tokio::time::sleep(settings.retry.backoff(number)).await;
    }
    delivery
}

/// Which transports `POST /notifications/test` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TestTransport {
    /// An email to the configured recipients.
    Email,
    /// A POST to each configured webhook (or the one named).
    Webhook,
    /// A `notification` event to the connected dashboards.
    Browser,
}

/// The body of `POST /notifications/test`; empty tests every transport set up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestRequest {
    /// Only this transport; every transport that is set up when `None`.
    pub transport: Option<TestTransport>,
    /// Only this webhook (by name).
    pub webhook: Option<String>,
}

/// How one test delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestOutcome {
    /// The transport tried.
    pub transport: TestTransport,
    /// Recipients, webhook name, or `browser`.
    pub target: String,
    /// Whether the delivery was accepted.
    pub success: bool,
    /// The SMTP server's, the network's or the receiver's words.
    pub error: Option<String>,
    /// The entry in the delivery history (email and webhooks).
    pub delivery_id: Option<String>,
}

/// Why nothing could be tested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestError {
    /// A transport is not set up; `field` names the setting to fill in.
    #[error("{field}: {reason}")]
    NotConfigured {
        /// The setting to fill in (`notifications.email.from`, …).
        field: String,
        /// What is missing.
        reason: String,
    },
    /// No webhook of that name.
    #[error("no webhook named {0:?}")]
    UnknownWebhook(String),
    /// The transport is not built into this binary.
    #[error("{0} notifications are not built in (cargo feature {1})")]
    NotBuilt(&'static str, &'static str),
}

/// Sends a test message through the transports `request` names (all that
/// are set up when it names none), waiting for each (bounded by the
/// transports' timeouts, one attempt each), and records email and webhook
/// tests in the history.
///
/// # Errors
///
/// [`TestError`] when nothing could be tried: the notification settings
/// are invalid, a transport asked for is not set up or not built in, or no
/// webhook has the name asked for. Failed
/// deliveries are not errors: they are [`TestOutcome`]s with `success` false.
pub async fn send_test(
    store: Arc<dyn StateRepo>,
    events: &dyn EventBus,
    clock: &dyn Clock,
    settings: &Settings,
    request: &TestRequest,
) -> Result<Vec<TestOutcome>, TestError> {
    let settings =
        NotificationSettings::from_settings(settings).map_err(|err| TestError::NotConfigured {
            field: err.field,
            reason: err.reason,
        })?;
    let notice = Notice::test(clock.now());
    let log = DeliveryLog::new(store);
    // Naming a webhook means testing that webhook only.
    let only = request
        .transport
        .or(request.webhook.as_ref().map(|_| TestTransport::Webhook));
    let wants = |transport| only.is_none_or(|t| t == transport);
    let mut outcomes = Vec::new();

    if let Some(name) = &request.webhook
        && !settings.webhooks.contains_key(name)
    {
        return Err(TestError::UnknownWebhook(name.clone()));
    }

    if wants(TestTransport::Browser) && (only.is_some() || settings.browser.enabled) {
        events
            .publish(Event {
                timestamp: clock.now(),
                kind: EventKind::Notification(
                    notice.to_notification(settings.browser.auto_dismiss_seconds),
                ),
            })
            .await;
        outcomes.push(TestOutcome {
            transport: TestTransport::Browser,
            target: "browser".into(),
            success: true,
            error: None,
            delivery_id: None,
        });
    }

    if wants(TestTransport::Email) {
        let email = &settings.email;
        if email.is_configured() {
            outcomes.push(test_email(&settings, &notice, &log, clock).await?);
        } else if only == Some(TestTransport::Email) {
            let field = if email.smtp_host.trim().is_empty() {
                "notifications.email.smtp_host"
            } else if email.from.trim().is_empty() {
                "notifications.email.from"
            } else {
                "notifications.email.to"
            };
            return Err(TestError::NotConfigured {
                field: field.into(),
                reason: "must be set to send email".into(),
            });
        }
    }

    if wants(TestTransport::Webhook) {
        let hooks: Vec<_> = settings
            .webhooks
            .iter()
            .filter(|(name, hook)| match &request.webhook {
                Some(wanted) => *name == wanted,
                None => hook.enabled,
            })
            .collect();
        if hooks.is_empty() && only == Some(TestTransport::Webhook) {
            return Err(TestError::NotConfigured {
                field: "notifications.webhooks".into(),
                reason: "no webhook is set up".into(),
            });
        }
        for (name, hook) in hooks {
            outcomes.push(test_webhook(name, hook, &settings, &notice, &log, clock).await?);
        }
    }

    if outcomes.is_empty() {
        return Err(TestError::NotConfigured {
            field: "notifications".into(),
            reason: "no transport is set up (browser off, no SMTP host, no webhook)".into(),
        });
    }
    Ok(outcomes)
}

impl TestOutcome {
    /// How the test `delivery` over `transport` to `target` went.
    #[cfg(any(feature = "notify-email", feature = "webhooks"))]
    fn of_delivery(transport: TestTransport, target: String, delivery: Delivery) -> Self {
        Self {
            transport,
            target,
            success: delivery.status == DeliveryStatus::Delivered,
            error: delivery.last_error().map(str::to_owned),
            delivery_id: Some(delivery.id),
        }
    }
}

#[cfg(feature = "notify-email")]
async fn test_email(
    settings: &NotificationSettings,
    notice: &Notice,
    log: &DeliveryLog,
    clock: &dyn Clock,
) -> Result<TestOutcome, TestError> {
    let delivery = deliver_email(settings, std::slice::from_ref(notice), log, clock, true).await;
    Ok(TestOutcome::of_delivery(
        TestTransport::Email,
        delivery.target.clone(),
        delivery,
    ))
}

#[cfg(not(feature = "notify-email"))]
async fn test_email(
    _: &NotificationSettings,
    _: &Notice,
    _: &DeliveryLog,
    _: &dyn Clock,
) -> Result<TestOutcome, TestError> {
    Err(TestError::NotBuilt("email", "notify-email"))
}

#[cfg(feature = "webhooks")]
async fn test_webhook(
    name: &str,
    hook: &settings::WebhookSettings,
    settings: &NotificationSettings,
    notice: &Notice,
    log: &DeliveryLog,
    clock: &dyn Clock,
) -> Result<TestOutcome, TestError> {
    let client = webhook_client(settings.guard);
    let delivery = webhook::deliver(&client, name, hook, notice, settings, log, clock, true).await;
    Ok(TestOutcome::of_delivery(
        TestTransport::Webhook,
        name.to_owned(),
        delivery,
    ))
}

#[cfg(not(feature = "webhooks"))]
async fn test_webhook(
    _: &str,
    _: &settings::WebhookSettings,
    _: &NotificationSettings,
    _: &Notice,
    _: &DeliveryLog,
    _: &dyn Clock,
) -> Result<TestOutcome, TestError> {
    Err(TestError::NotBuilt("webhook", "webhooks"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_earliest_deadline_of_a_digest_wins() {
        let mut digest = Digest::default();
        let now = Instant::now();
        let notice = Notice::test(chrono::Utc::now());
        digest.push(notice.clone(), 15, now);
        digest.push(notice.clone(), 5, now + Duration::from_secs(60));
        digest.push(notice, 30, now + Duration::from_secs(120));
        assert_eq!(digest.deadline, Some(now + Duration::from_secs(360)));
        assert_eq!(digest.take().len(), 3);
        assert_eq!(digest.deadline, None);
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let smtp = |permanent| DeliveryError::Smtp {
            reason: "535 bad credentials".into(),
            permanent,
        };
        assert!(!smtp(true).is_retryable());
        assert!(smtp(false).is_retryable());
        assert!(DeliveryError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(
            !DeliveryError::HttpStatus {
                status: 404,
                body: String::new()
            }
            .is_retryable()
        );
    }
}
