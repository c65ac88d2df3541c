//! Notifications end to end: the notifier on a broadcast bus and the
//! in-memory store, email into an in-process SMTP sink, webhooks into a
//! local receiver that checks the signature.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use mediadl::model::{
    CatchUp, CompletedEvent, Event, EventKind, Job, JobConfig, JobKind, JobSpec, Notification,
    NotificationLevel, NotificationTopic, QueueStatus, RunStatus, Settings,
};
use mediadl::notify::{
    DeliveryFilter, DeliveryLog, DeliveryStatus, DeliveryTransport, Notifier, NotifierOptions,
    TestRequest, TestTransport, send_test,
};
use mediadl::store::{JobRepo, MemoryStore};
use mediadl::{BroadcastBus, BusMessage, EventBus, SettingsHandle, SystemClock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Upper bound for things that should happen at once (a hang guard, not
/// a timing assertion).
const PATIENCE: Duration = Duration::from_secs(20);

/// A message the SMTP sink accepted.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    recipients: Vec<String>,
    data: String,
}

impl Mail {
    /// A header's value, unfolded (RFC 5322: a line break before
    /// whitespace continues the header).
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}: ");
        let headers = self.data.split("\r\n\r\n").next()?.replace("\r\n ", " ");
        headers
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
    }

    /// The data with quoted-printable soft breaks and `=3D` undone.
    fn decoded(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }
}

/// A tiny SMTP server speaking EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP and
/// QUIT, handing every accepted message to the returned channel.
async fn smtp_sink() -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                write.write_all(b"220 sink ESMTP ready\r\n").await.ok();
                let mut mail = Mail {
                    from: String::new(),
                    recipients: Vec::new(),
                    data: String::new(),
                };
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let command = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") {
                        b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                    } else if command.starts_with("HELO") || command.starts_with("NOOP") {
                        b"250 ok\r\n"
                    } else if command.starts_with("MAIL FROM:") {
                        mail.from = line.trim_end()[10..].trim().to_owned();
                        b"250 ok\r\n"
                    } else if command.starts_with("RCPT TO:") {
                        mail.recipients.push(line.trim_end()[8..].trim().to_owned());
                        b"250 ok\r\n"
                    } else if command == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.ok();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        mail.data = data;
                        sender.send(mail.clone()).ok();
                        b"250 queued\r\n"
                    } else if command == "RSET" {
                        mail.recipients.clear();
                        b"250 ok\r\n"
                    } else if command == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.ok();
                        return;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, receiver)
}

fn settings_with(notifications: Value) -> SettingsHandle {
    let settings = Settings::from_value(&json!({ "notifications": notifications }))
        .expect("valid notification settings");
    SettingsHandle::new(settings)
}

fn email_settings(port: u16) -> Value {
    json!({
        "enabled": true,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        "from": "mediadl <mediadl@example.org>",
        "to": ["alice@example.org", "bob@example.org"],
        "timeout_seconds": 10
    })
}

fn completed(source: &str, status: QueueStatus, job_id: Option<&str>) -> Event {
    Event::now(EventKind::DownloadCompleted(CompletedEvent {
        queue_id: 1,
        url: format!("https://{source}/file.jpg"),
        platform: "direct".into(),
        source: source.into(),
        content_type: "file".into(),
        items_downloaded: if status == QueueStatus::Completed {
            4
        } else {
            0
        },
        items_failed: 0,
        duration_seconds: 12.0,
        status,
        error_message: (status == QueueStatus::Failed).then(|| "HTTP 404 Not Found".into()),
        job_id: job_id.map(Into::into),
    }))
}

struct Running {
    store: Arc<MemoryStore>,
    bus: Arc<BroadcastBus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(settings: SettingsHandle) -> Self {
        Self::start_with(settings, NotifierOptions::default())
    }

    fn start_with(settings: SettingsHandle, options: NotifierOptions) -> Self {
        Self::start_on(Arc::new(MemoryStore::new()), settings, options)
    }

    fn start_on(
        store: Arc<MemoryStore>,
        settings: SettingsHandle,
        options: NotifierOptions,
    ) -> Self {
        let bus = Arc::new(BroadcastBus::new(1024));
        let shutdown = CancellationToken::new();
        let notifier = Notifier::new(store.clone(), bus.clone(), settings, Arc::new(SystemClock))
            .with_options(options);
        let task = tokio::spawn(notifier.run(shutdown.clone()));
        Self {
            store,
            bus,
            shutdown,
            task,
        }
    }

    fn log(&self) -> DeliveryLog {
        DeliveryLog::new(self.store.clone())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

async fn next_mail(mails: &mut mpsc::UnboundedReceiver<Mail>) -> Mail {
    next_mail_within(mails, PATIENCE).await
}

async fn next_mail_within(mails: &mut mpsc::UnboundedReceiver<Mail>, patience: Duration) -> Mail {
    tokio::time::timeout(patience, mails.recv())
        .await
        .expect("an email arrives")
        .expect("sink running")
}

/// Waits until the history holds a finished delivery of `transport`.
async fn finished_delivery(
    log: &DeliveryLog,
    transport: DeliveryTransport,
) -> mediadl::notify::Delivery {
    let wait = async {
        loop {
            let list = log
                .list(&DeliveryFilter {
                    transport: Some(transport),
                    ..DeliveryFilter::default()
                })
                .await
                .unwrap();
            if let Some(done) = list
                .into_iter()
                .find(|d| d.status != DeliveryStatus::Pending)
            {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the delivery finishes")
}

#[tokio::test]
async fn a_failed_download_sends_an_email_with_both_parts_to_every_recipient() {
    let (port, mut mails) = smtp_sink().await;
    let running = Running::start(settings_with(json!({
        "email": email_settings(port),
        "rules": { "download_failed": { "email": true, "digest_minutes": 0 } }
    })));
    running
        .bus
        .publish(completed("example.org", QueueStatus::Failed, None))
        .await;
    let mail = next_mail(&mut mails).await;
    assert_eq!(mail.from, "<mediadl@example.org>");
    assert_eq!(
        mail.recipients,
        ["<alice@example.org>", "<bob@example.org>"]
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[mediadl] Download failed: example.org")
    );
    let body = mail.decoded();
    assert!(body.contains("multipart/alternative"), "{body}");
    assert!(body.contains("Content-Type: text/plain"), "{body}");
    assert!(body.contains("Content-Type: text/html"), "{body}");
    assert!(body.contains("HTTP 404 Not Found"), "{body}");
    assert!(
        body.contains("<strong>Download failed: example.org</strong>"),
        "{body}"
    );

    let delivery = finished_delivery(&running.log(), DeliveryTransport::Email).await;
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    assert_eq!(delivery.topics, [NotificationTopic::DownloadFailed]);
    assert_eq!(delivery.target, "alice@example.org, bob@example.org");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_completions_is_one_digest_email() {
    let (port, mut mails) = smtp_sink().await;
    let running = Running::start(settings_with(json!({
        "email": email_settings(port),
        "rules": {
            "download_completed": { "email": true, "digest_minutes": 10 },
            "download_failed": { "email": true, "digest_minutes": 10 }
        }
    })));
    for n in 0..40 {
        running
            .bus
            .publish(completed(
                &format!("site{n}.example"),
                QueueStatus::Completed,
                None,
            ))
            .await;
    }
    running
        .bus
        .publish(completed("broken.example", QueueStatus::Failed, None))
        .await;
    // The clock is paused: it jumps to the digest's deadline once the
    // notifier has nothing else to do (the guard is longer than the digest).
    let digest_patience = Duration::from_secs(3600);
    let mail = next_mail_within(&mut mails, digest_patience).await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[mediadl] 41 notifications: 40 downloads completed, 1 download failed")
    );
    let body = mail.decoded();
    assert!(body.contains("Downloads completed (40)"), "{body}");
    assert!(body.contains("site39.example"), "{body}");
    assert!(body.contains("broken.example"), "{body}");

    // The next burst is the next digest, not part of the first.
    running
        .bus
        .publish(completed("late.example", QueueStatus::Completed, None))
        .await;
    let mail = next_mail_within(&mut mails, digest_patience).await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[mediadl] Downloaded late.example")
    );
    let emails = running
        .log()
        .list(&DeliveryFilter {
            transport: Some(DeliveryTransport::Email),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(emails.len(), 2, "{emails:#?}");
    assert_eq!(emails[1].notices, 41);
    assert!(mails.try_recv().is_err(), "no other email was sent");
    running.stop().await;
}

#[tokio::test]
async fn the_test_message_reports_the_smtp_error_of_a_closed_port() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let settings = Settings::from_value(&json!({
        "notifications": { "email": email_settings(port) }
    }))
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let bus = BroadcastBus::new(16);
    let outcomes = send_test(
        store.clone(),
        &bus,
        &SystemClock,
        &settings,
        &TestRequest {
            transport: Some(TestTransport::Email),
            webhook: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(!outcomes[0].success);
    let error = outcomes[0].error.clone().unwrap();
    assert!(error.starts_with("SMTP: "), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    let history = DeliveryLog::new(store)
        .list(&DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].test);
    assert_eq!(history[0].status, DeliveryStatus::Failed);
    assert_eq!(history[0].attempts.len(), 1, "a test is tried once");
}

#[tokio::test]
async fn the_test_message_arrives_and_unconfigured_email_names_the_field() {
    let (port, mut mails) = smtp_sink().await;
    let settings = Settings::from_value(&json!({
        "notifications": { "email": email_settings(port), "browser": { "enabled": true } }
    }))
    .unwrap();
    let bus = BroadcastBus::new(16);
    let mut events = bus.subscribe();
    let outcomes = send_test(
        Arc::new(MemoryStore::new()),
        &bus,
        &SystemClock,
        &settings,
        &TestRequest::default(),
    )
    .await
    .unwrap();
    let kinds: Vec<TestTransport> = outcomes.iter().map(|o| o.transport).collect();
    assert_eq!(kinds, [TestTransport::Browser, TestTransport::Email]);
    assert!(outcomes.iter().all(|o| o.success), "{outcomes:?}");
    let mail = next_mail(&mut mails).await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[mediadl] mediadl test notification")
    );
    let Some(BusMessage::Event(event)) = events.next().await else {
        panic!("a browser notification")
    };
    assert_eq!(event.type_name(), "notification");

    let err = send_test(
        Arc::new(MemoryStore::new()),
        &bus,
        &SystemClock,
        &Settings::default(),
        &TestRequest {
            transport: Some(TestTransport::Email),
            webhook: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().starts_with("notifications.email.smtp_host"),
        "{err}"
    );
}

/// HMAC-SHA256 written out (RFC 2104), independent of the code under test.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Matches requests whose `X-Mediadl-Signature` is right for the body.
struct SignedWith(&'static str);

impl wiremock::Match for SignedWith {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let expected = format!(
            "sha256={}",
            hex::encode(hmac_sha256(self.0.as_bytes(), &request.body))
        );
        request
            .headers
            .get("x-mediadl-signature")
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str())
    }
}

#[tokio::test]
async fn a_webhook_is_signed_retried_after_failures_and_every_attempt_recorded() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(SignedWith("hook-secret"))
        .respond_with(ResponseTemplate::new(500).set_body_string("receiver is down"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(SignedWith("hook-secret"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&receiver)
        .await;

    let running = Running::start(settings_with(json!({
        "webhooks": {
            "ci": {
                "url": format!("{}/hook", receiver.uri()),
                "secret": "hook-secret",
                "events": ["scheduled_run_failed"]
            },
            "other": {
                "url": format!("{}/other", receiver.uri()),
                "events": ["download_completed"]
            }
        },
        "retry": { "max_attempts": 4, "initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.2 }
    })));
    running
        .bus
        .publish(completed(
            "example.org",
            QueueStatus::Failed,
            Some("direct-example-file"),
        ))
        .await;

    let delivery = finished_delivery(&running.log(), DeliveryTransport::Webhook).await;
    assert_eq!(delivery.status, DeliveryStatus::Delivered, "{delivery:#?}");
    assert_eq!(delivery.target, "ci");
    let codes: Vec<Option<u16>> = delivery.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(500), Some(204)]);
    assert_eq!(
        delivery.attempts[0].error.as_deref(),
        Some("HTTP 500: receiver is down")
    );
    assert!(delivery.attempts[2].success);

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "only the subscribed hook was called");
    let ids: Vec<_> = requests
        .iter()
        .map(|r| r.headers.get("x-mediadl-delivery").cloned())
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0] && id.is_some()));
    let body: Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(body["event"], "scheduled_run_failed");
    assert_eq!(body["data"]["type"], "download_completed");
    assert_eq!(body["data"]["data"]["job_id"], "direct-example-file");
    running.stop().await;
}

#[tokio::test]
async fn a_webhook_answering_500_forever_fails_after_its_attempts() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let running = Running::start(settings_with(json!({
        "webhooks": { "down": { "url": receiver.uri(), "format": "discord" } },
        "retry": { "max_attempts": 3, "initial_backoff_seconds": 0.02, "max_backoff_seconds": 0.05 }
    })));
    running
        .bus
        .publish(completed("example.org", QueueStatus::Failed, None))
        .await;
    let delivery = finished_delivery(&running.log(), DeliveryTransport::Webhook).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.attempts.len(), 3);
    assert_eq!(delivery.last_error(), Some("HTTP 503: "));
    let requests = receiver.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["embeds"][0]["title"], "Download failed: example.org");
    running.stop().await;
}

async fn next_notification(
    events: &mut futures::stream::BoxStream<'static, BusMessage>,
) -> Notification {
    let wait = async {
        loop {
            match events.next().await {
                Some(BusMessage::Event(event)) => {
                    if let EventKind::Notification(n) = &event.kind {
                        return n.clone();
                    }
                }
                Some(BusMessage::Lagged(_)) => {}
                None => panic!("bus closed"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("a notification event")
}

#[tokio::test]
async fn browser_notifications_follow_the_rules_and_are_not_echoed() {
    let running = Running::start(settings_with(json!({
        "browser": { "enabled": true, "auto_dismiss_seconds": 7 },
        "rules": { "download_completed": { "browser": false } }
    })));
    let mut events = running.bus.subscribe();
    running
        .bus
        .publish(completed("quiet.example", QueueStatus::Completed, None))
        .await;
    // The engine's own notification is already on the bus: it is not repeated.
    running
        .bus
        .publish(Event::now(EventKind::Notification(Notification {
            level: NotificationLevel::Warning,
            title: "Storage limit reached".into(),
            message: "10 GB of 10 GB used".into(),
            action: None,
            auto_dismiss_seconds: None,
            topic: NotificationTopic::StorageThreshold,
        })))
        .await;
    running
        .bus
        .publish(completed("loud.example", QueueStatus::Failed, None))
        .await;

    let storage = next_notification(&mut events).await;
    assert_eq!(storage.topic, NotificationTopic::StorageThreshold);
    let failed = next_notification(&mut events).await;
    assert_eq!(
        failed.topic,
        NotificationTopic::DownloadFailed,
        "{failed:?}"
    );
    assert_eq!(failed.level, NotificationLevel::Error);
    assert_eq!(failed.title, "Download failed: loud.example");
    assert_eq!(failed.action.unwrap().link, "/queue");
    assert_eq!(
        failed.auto_dismiss_seconds, None,
        "errors stay until dismissed"
    );

    // A marker proves nothing else was published in between.
    running
        .bus
        .publish(completed("again.example", QueueStatus::Failed, None))
        .await;
    let next = next_notification(&mut events).await;
    assert_eq!(next.title, "Download failed: again.example");
    running.stop().await;
}

fn forum_job(id: &str, until: chrono::DateTime<Utc>) -> Job {
    let spec = JobSpec {
        name: "Thread 42".into(),
        kind: JobKind::ForumMonitor,
        platform: "forum".into(),
        source: "exampleforum".into(),
        content_type: "thread".into(),
        schedule: "0 * * * *".into(),
        timezone: None,
        enabled: true,
        catch_up: CatchUp::Once,
        config: JobConfig {
            url: Some("https://forum.example/t/42".into()),
            ..JobConfig::default()
        },
        monitor_until: Some(until),
    };
    Job::new(id, spec, Utc::now())
}

/// A run of `job` that started and failed with `error` just now.
async fn failed_run(store: &MemoryStore, job: &str, error: &str) {
    let run = store
        .open_run(job, Utc::now(), RunStatus::Running, None)
        .await
        .unwrap();
    store
        .close_run(
            run.id,
            RunStatus::Failure,
            0,
            Some(error.into()),
            Utc::now(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn failed_runs_without_a_queue_item_and_expiring_monitors_are_announced_once() {
    // An old failure, from before the notifier first looked: not news.
    let store = Arc::new(MemoryStore::new());
    store
        .create_job(forum_job(
            "forum-old",
            Utc::now() + chrono::Duration::days(20),
        ))
        .await
        .unwrap();
    failed_run(&store, "forum-old", "old").await;
    let running = Running::start_on(
        store.clone(),
        settings_with(json!({ "forum_monitor_warning_hours": 24 })),
        NotifierOptions {
            watch_interval: Duration::from_millis(50),
            ..NotifierOptions::default()
        },
    );
    let mut events = running.bus.subscribe();
    tokio::time::sleep(Duration::from_millis(200)).await;

    store
        .create_job(forum_job(
            "forum-soon",
            Utc::now() + chrono::Duration::hours(3),
        ))
        .await
        .unwrap();
    failed_run(&store, "forum-old", "forum downloader is unavailable").await;

    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_notification(&mut events).await);
    }
    seen.sort_by_key(|n| n.topic != NotificationTopic::ScheduledRunFailed);
    assert_eq!(
        seen[0].topic,
        NotificationTopic::ScheduledRunFailed,
        "{seen:?}"
    );
    assert!(
        seen[0].message.contains("forum downloader is unavailable"),
        "{:?}",
        seen[0]
    );
    assert_eq!(
        seen[1].topic,
        NotificationTopic::ForumMonitorExpiring,
        "{seen:?}"
    );
    assert!(
        seen[1]
            .title
            .starts_with("Forum monitor Thread 42 stops in 2h"),
        "{:?}",
        seen[1]
    );

    // Several more checks announce nothing again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running
        .bus
        .publish(completed("marker.example", QueueStatus::Failed, None))
        .await;
    let next = next_notification(&mut events).await;
    assert_eq!(next.title, "Download failed: marker.example");
    running.stop().await;
}

#[test]
fn invalid_notification_settings_are_refused_with_their_path_and_secrets_masked() {
    let err = Settings::from_value(&json!({
        "notifications": { "email": { "enabled": true, "smtp_host": "mx.example.org", "from": "me@example.org", "to": ["a@"] } }
    }))
    .unwrap_err();
    assert_eq!(err.field, "notifications.email.to[0]");
    let err = Settings::from_value(&json!({
        "notifications": { "webhooks": { "x": { "url": "not a url" } } }
    }))
    .unwrap_err();
    assert_eq!(err.field, "notifications.webhooks.x.url");

    let mut document = Settings::from_value(&json!({
        "notifications": {
            "email": { "smtp_username": "me", "smtp_password": "hunter2" },
            "webhooks": { "x": { "url": "https://hooks.example.org/a", "secret": "s3cret" } }
        }
    }))
    .unwrap()
    .to_value();
    mediadl::model::settings::mask_secrets(&mut document);
    assert_eq!(document["notifications"]["email"]["smtp_password"], "***");
    assert_eq!(document["notifications"]["webhooks"]["x"]["secret"], "***");
}
