//! The scheduler on the in-memory store with a hand-moved clock: job
//! validation, firing, skips, missed slots, history counters, several
//! instances, forum monitors, maintenance, and one run end to end through
//! the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use mediadl::clock::ManualClock;
use mediadl::downloader::Context;
use mediadl::model::{
    CatchUp, DownloaderInfo, JobKind, ListingOrder, LogFilter, LogLevel, Metadata, NewDownload,
    NewLogEntry, NextRun, QueueStatus, RunFilter, RunStatus, Settings,
};
use mediadl::scheduler::{
    AUTO_CLEANUP_JOB_ID, BACKUP_JOB_ID, CronScheduler, ForumMonitorRequest, JobPatch,
    LOG_RETENTION_JOB_ID, NewJob, SchedulerOptions,
};
use mediadl::storage::LocalStorage;
use mediadl::store::{DownloadRepo, JobRepo, LogRepo, MemoryStore, QueueRepo};
use mediadl::{
    BroadcastBus, Clock, DownloadError, Downloader, Error, EventBus, MediaItem, QueueService,
    Registry, Request, Scheduler, SettingsHandle, Store, StoreError, Unavailable,
};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A downloader for tests: validates sources (letters and digits only)
/// and can be switched unavailable, like a missing external program.
#[derive(Debug, Clone)]
struct FakeDownloader {
    platform: &'static str,
    name: &'static str,
    content_types: &'static [&'static str],
    available: Arc<AtomicBool>,
}

#[async_trait]
impl Downloader for FakeDownloader {
    fn info(&self) -> DownloaderInfo {
        DownloaderInfo {
            platform: self.platform.into(),
            platform_display_name: self.platform.into(),
            name: self.name.into(),
            display_name: self.name.into(),
            aliases: vec![],
            content_types: self.content_types.iter().map(|c| c.to_string()).collect(),
            features: vec![],
            listing_order: ListingOrder::NewestFirst,
            accepts_cookies: false,
            is_default: true,
        }
    }

    async fn check(&self, _settings: &Settings) -> Result<(), Unavailable> {
        if self.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Unavailable::new("fake-dl is not installed"))
        }
    }

    fn validate(&self, request: &Request) -> Result<(), Error> {
        if self.platform == "forum" || request.source.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err(Error::invalid("source", "letters and digits only"))
        }
    }

    fn discover(
        &self,
        _request: &Request,
        _cx: &Context,
    ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
        stream::empty().boxed()
    }
}

struct Harness {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    settings: SettingsHandle,
    available: Arc<AtomicBool>,
    registry: Arc<Registry>,
    events: Arc<BroadcastBus>,
    scheduler: CronScheduler,
    metrics: mediadl::Metrics,
}

const START: &str = "2025-10-13T10:00:00Z";

impl Harness {
    fn new() -> Self {
        Self::sharing(Arc::new(MemoryStore::new()))
    }

    fn sharing(store: Arc<MemoryStore>) -> Self {
        let available = Arc::new(AtomicBool::new(true));
        let mut registry = Registry::builtin();
        registry.register(FakeDownloader {
            platform: "fake",
            name: "native",
            content_types: &["posts", "stories"],
            available: Arc::clone(&available),
        });
        registry.register(FakeDownloader {
            platform: "forum",
            name: "html",
            content_types: &["images"],
            available: Arc::clone(&available),
        });
        let registry = Arc::new(registry);
        let clock = Arc::new(ManualClock::new(at(START)));
        let settings = SettingsHandle::new(Settings::default());
        let events = Arc::new(BroadcastBus::default());
        let queue = QueueService::new(
            Arc::clone(&store) as Arc<dyn Store>,
            Arc::clone(&events) as Arc<dyn EventBus>,
            Arc::clone(&registry),
            settings.clone(),
            Arc::clone(&clock) as Arc<dyn Clock>,
        );
        let metrics = mediadl::Metrics::new();
        let scheduler = CronScheduler::new(
            Arc::clone(&store) as Arc<dyn Store>,
            queue,
            Arc::clone(&registry),
            settings.clone(),
            Arc::clone(&clock) as Arc<dyn Clock>,
        )
        .with_metrics(metrics.clone());
        Self {
            store,
            clock,
            settings,
            available,
            registry,
            events,
            scheduler,
            metrics,
        }
    }

    /// Another scheduler instance (another server process) on the same store.
    fn instance(&self) -> CronScheduler {
        let queue = QueueService::new(
            Arc::clone(&self.store) as Arc<dyn Store>,
            Arc::clone(&self.events) as Arc<dyn EventBus>,
            Arc::clone(&self.registry),
            self.settings.clone(),
            Arc::clone(&self.clock) as Arc<dyn Clock>,
        );
        CronScheduler::new(
            Arc::clone(&self.store) as Arc<dyn Store>,
            queue,
            Arc::clone(&self.registry),
            self.settings.clone(),
            Arc::clone(&self.clock) as Arc<dyn Clock>,
        )
    }

    async fn tick_at(&self, now: &str) -> Vec<mediadl::scheduler::Fired> {
        self.clock.set(at(now));
        self.scheduler.tick(at(now)).await.unwrap()
    }

    /// Closes a run the way the engine does when its queue item ends.
    async fn finish(&self, run_id: i64, status: RunStatus, items: u32, error: Option<&str>) {
        self.store
            .close_run(
                run_id,
                status,
                items,
                error.map(str::to_owned),
                self.clock.now(),
            )
            .await
            .unwrap();
    }
}

fn fake_job(source: &str, schedule: &str) -> NewJob {
    NewJob {
        name: Some(format!("Fake {source}")),
        platform: "fake".into(),
        source: source.into(),
        content_type: "posts".into(),
        schedule: schedule.into(),
        config: serde_json::from_value(json!({"max_downloads": 15, "days_back": 7})).unwrap(),
        ..NewJob::default()
    }
}

fn invalid_field(err: &Error) -> &str {
    match err {
        Error::Invalid { field, .. } => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_validates_with_a_reason_per_field() {
    let h = Harness::new();
    let cases: Vec<(NewJob, &str, &str)> = vec![
        (fake_job("eva", "0 */4 * *"), "schedule", "5 fields"),
        (fake_job("eva", "*/0 * * * *"), "schedule", "step of zero"),
        (fake_job("eva", "0 25 * * *"), "schedule", "invalid cron"),
        (fake_job("eva", ""), "schedule", "empty"),
        (
            NewJob {
                timezone: Some("Mars/Base".into()),
                ..fake_job("eva", "0 * * * *")
            },
            "timezone",
            "Mars/Base",
        ),
        (
            NewJob {
                platform: "myspace".into(),
                ..fake_job("eva", "0 * * * *")
            },
            "platform",
            "unknown platform",
        ),
        (
            NewJob {
                config: serde_json::from_value(json!({"downloader": "nope"})).unwrap(),
                ..fake_job("eva", "0 * * * *")
            },
            "config.downloader",
            "unknown downloader",
        ),
        (
            NewJob {
                content_type: "reels".into(),
                ..fake_job("eva", "0 * * * *")
            },
            "content_type",
            "posts, stories",
        ),
        (fake_job("eva longoria", "0 * * * *"), "source", "letters"),
        (
            NewJob {
                config: serde_json::from_value(json!({"max_downloads": -1})).unwrap(),
                ..fake_job("eva", "0 * * * *")
            },
            "config.max_downloads",
            "whole number",
        ),
        (
            NewJob {
                platform: "direct".into(),
                source: "my label".into(),
                content_type: "file".into(),
                ..fake_job("x", "0 * * * *")
            },
            "source",
            "http(s) URL",
        ),
    ];
    for (job, field, reason) in cases {
        let err = h.scheduler.create_job(job.clone()).await.unwrap_err();
        assert_eq!(invalid_field(&err), field, "{job:?}: {err}");
        assert!(err.to_string().contains(reason), "{err} lacks {reason:?}");
    }
    h.available.store(false, Ordering::SeqCst);
    let err = h
        .scheduler
        .create_job(fake_job("eva", "0 * * * *"))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&err), "config.downloader");
    assert!(err.to_string().contains("not installed"), "{err}");
    assert!(h.store.list_jobs().await.unwrap().is_empty());
}

#[tokio::test]
async fn create_fills_defaults_ids_and_next_run() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(NewJob {
            content_type: String::new(),
            ..fake_job("evalongoria", "0 */4 * * *")
        })
        .await
        .unwrap();
    assert_eq!(job.id, "fake-evalongoria-posts");
    assert_eq!(
        job.spec.content_type, "posts",
        "the downloader's first type"
    );
    assert_eq!(job.spec.kind, JobKind::Download);
    assert!(job.spec.enabled);
    assert_eq!(job.state.next_run, Some(at("2025-10-13T12:00:00Z")));
    let again = h
        .scheduler
        .create_job(fake_job("evalongoria", "0 9 * * 1"))
        .await
        .unwrap();
    assert_eq!(again.id, "fake-evalongoria-posts-2");
    assert_eq!(again.state.next_run, Some(at("2025-10-20T09:00:00Z")));

    let zoned = h
        .scheduler
        .create_job(NewJob {
            timezone: Some("Europe/Berlin".into()),
            ..fake_job("zoned", "0 9 * * *")
        })
        .await
        .unwrap();
    assert_eq!(zoned.state.next_run, Some(at("2025-10-14T07:00:00Z")));
    assert_eq!(
        mediadl::scheduler::schedule_human(&zoned),
        "Every day at 09:00 (Europe/Berlin)"
    );

    let next = h.scheduler.next_scheduled().await.unwrap().unwrap();
    assert_eq!(next.id, "fake-evalongoria-posts", "12:00 today comes first");

    let disabled = h
        .scheduler
        .create_job(NewJob {
            enabled: Some(false),
            ..fake_job("off", "0 * * * *")
        })
        .await
        .unwrap();
    assert_eq!(disabled.state.next_run, None);

    let direct = h
        .scheduler
        .create_job(NewJob {
            platform: "direct".into(),
            source: "nightly dump".into(),
            content_type: "file".into(),
            config: serde_json::from_value(json!({"url": "https://example.com/dump.tar"})).unwrap(),
            ..fake_job("x", "0 3 * * *")
        })
        .await
        .unwrap();
    assert_eq!(direct.id, "direct-nightly-dump-file");
}

#[tokio::test]
async fn patch_disable_clears_next_run_and_enable_recomputes_from_now() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(fake_job("eva", "0 */4 * * *"))
        .await
        .unwrap();
    let off = h
        .scheduler
        .update_job(
            &job.id,
            JobPatch {
                enabled: Some(false),
                schedule: Some("0 */8 * * *".into()),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(!off.spec.enabled);
    assert_eq!(off.state.next_run, None);
    assert_eq!(off.spec.schedule, "0 */8 * * *");
    // Disabled slots are not run: nothing fires while it is off.
    assert!(h.tick_at("2025-10-14T00:00:00Z").await.is_empty());

    h.clock.set(at("2025-10-14T09:30:00Z"));
    let on = h
        .scheduler
        .update_job(
            &job.id,
            JobPatch {
                enabled: Some(true),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(on.state.next_run, Some(at("2025-10-14T16:00:00Z")));
    assert!(h.tick_at("2025-10-14T09:31:00Z").await.is_empty());

    let err = h
        .scheduler
        .update_job(
            &job.id,
            JobPatch {
                schedule: Some("61 * * * *".into()),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&err), "schedule");
    assert_eq!(
        h.store.get_job(&job.id).await.unwrap().spec.schedule,
        "0 */8 * * *"
    );
    let err = h
        .scheduler
        .update_job("missing", JobPatch::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn a_firing_enqueues_the_jobs_request_and_opens_a_run() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(NewJob {
            config: serde_json::from_value(json!({
                "max_downloads": 15, "days_back": 7, "downloader": "native", "priority": 2
            }))
            .unwrap(),
            ..fake_job("eva", "0 */4 * * *")
        })
        .await
        .unwrap();
    assert!(h.tick_at("2025-10-13T11:59:59Z").await.is_empty());
    let fired = h.tick_at("2025-10-13T12:00:05Z").await;
    assert_eq!(fired.len(), 1);
    let fired = &fired[0];
    assert_eq!(fired.slot, Some(at("2025-10-13T12:00:00Z")));
    assert_eq!(fired.run.status, RunStatus::Running);
    let item = fired.queue_item.as_ref().unwrap();
    assert_eq!(fired.run.queue_id, Some(item.id));
    assert_eq!(
        (
            item.platform.as_str(),
            item.source.as_str(),
            item.content_type.as_str()
        ),
        ("fake", "eva", "posts")
    );
    assert_eq!(item.priority, 2);
    assert_eq!(item.options.max_downloads, Some(15));
    assert_eq!(item.options.days_back, Some(7));
    assert_eq!(item.options.downloader.as_deref(), Some("native"));
    assert_eq!(item.options.job_id.as_deref(), Some(job.id.as_str()));
    assert_eq!(item.options.run_id, Some(fired.run.id));
    let stored = h.store.get_queue_item(item.id).await.unwrap();
    assert_eq!(stored.status, QueueStatus::Pending);
    let active = h.store.active_run(&job.id).await.unwrap().unwrap();
    assert_eq!(active.queue_id, Some(item.id));

    let job = h.store.get_job(&job.id).await.unwrap();
    assert_eq!(job.state.next_run, Some(at("2025-10-13T16:00:00Z")));
    assert_eq!(job.state.last_slot, Some(at("2025-10-13T12:00:00Z")));
    // The same slot does not fire twice.
    assert!(h.tick_at("2025-10-13T12:00:30Z").await.is_empty());
}

#[tokio::test]
async fn history_and_counters_after_success_failure_and_skip() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(fake_job("eva", "0 * * * *"))
        .await
        .unwrap();

    // 11:00 fires and succeeds with 8 items.
    let first = h.tick_at("2025-10-13T11:00:00Z").await.remove(0);
    h.clock.set(at("2025-10-13T11:03:45Z"));
    h.finish(first.run.id, RunStatus::Success, 8, None).await;
    let j = h.store.get_job(&job.id).await.unwrap();
    assert_eq!(
        (
            j.state.total_runs,
            j.state.success_count,
            j.state.failure_count
        ),
        (1, 1, 0)
    );
    assert_eq!(j.state.last_run, Some(at("2025-10-13T11:00:00Z")));
    assert_eq!(j.state.last_run_status, Some(RunStatus::Success));
    assert_eq!(j.state.last_run_items, Some(8));
    let run = &h.scheduler.history(RunFilter::default()).await.unwrap()[0];
    assert_eq!(run.duration_seconds, Some(225.0));
    assert_eq!(run.items_downloaded, 8);

    // 12:00 fires; it is still running at 13:00, so 13:00 is skipped.
    let second = h.tick_at("2025-10-13T12:00:00Z").await.remove(0);
    let skipped = h.tick_at("2025-10-13T13:00:00Z").await.remove(0);
    assert_eq!(skipped.run.status, RunStatus::Skipped);
    assert!(skipped.queue_item.is_none());
    assert_eq!(h.store.queue_counts().await.unwrap().pending, 2);
    let j = h.store.get_job(&job.id).await.unwrap();
    assert_eq!(j.state.total_runs, 3);
    assert_eq!(j.state.last_run_status, Some(RunStatus::Skipped));

    // The 12:00 run then fails.
    h.finish(second.run.id, RunStatus::Failure, 0, Some("HTTP 500"))
        .await;
    let j = h.store.get_job(&job.id).await.unwrap();
    assert_eq!(
        (
            j.state.total_runs,
            j.state.success_count,
            j.state.failure_count
        ),
        (3, 1, 1)
    );
    assert_eq!(j.state.last_run_status, Some(RunStatus::Failure));

    let all = h
        .scheduler
        .history(RunFilter {
            job_id: Some(job.id.clone()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let statuses: Vec<RunStatus> = all.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [RunStatus::Skipped, RunStatus::Failure, RunStatus::Success],
        "newest first"
    );
    assert_eq!(all[1].error_message.as_deref(), Some("HTTP 500"));
    let failures = h
        .scheduler
        .history(RunFilter {
            status: Some(RunStatus::Failure),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    let limited = h
        .scheduler
        .history(RunFilter {
            limit: 2,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    let other = h
        .scheduler
        .history(RunFilter {
            job_id: Some("other".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn a_run_whose_queue_item_vanished_does_not_block_the_job() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(fake_job("eva", "0 * * * *"))
        .await
        .unwrap();
    let first = h.tick_at("2025-10-13T11:00:00Z").await.remove(0);
    h.store
        .delete_queue_item(first.queue_item.unwrap().id)
        .await
        .unwrap();
    let second = h.tick_at("2025-10-13T12:00:00Z").await.remove(0);
    assert_eq!(second.run.status, RunStatus::Running);
    let closed = h
        .scheduler
        .history(RunFilter {
            status: Some(RunStatus::Failure),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert!(
        closed[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("removed"),
        "{closed:?}"
    );
    assert_eq!(
        h.store.get_job(&job.id).await.unwrap().state.failure_count,
        1
    );
}

#[tokio::test]
async fn missed_slots_run_once_or_not_at_all_per_job() {
    let h = Harness::new();
    let once = h
        .scheduler
        .create_job(fake_job("once", "0 * * * *"))
        .await
        .unwrap();
    let none = h
        .scheduler
        .create_job(NewJob {
            catch_up: Some(CatchUp::None),
            ..fake_job("none", "0 * * * *")
        })
        .await
        .unwrap();
    // Down from 10:00 to 15:20: slots 11:00 … 15:00 were missed.
    let fired = h.tick_at("2025-10-13T15:20:00Z").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].job_id, once.id);
    assert_eq!(
        fired[0].slot,
        Some(at("2025-10-13T15:00:00Z")),
        "coalesced into the latest"
    );
    for id in [&once.id, &none.id] {
        let job = h.store.get_job(id).await.unwrap();
        assert_eq!(job.state.next_run, Some(at("2025-10-13T16:00:00Z")), "{id}");
    }
    assert_eq!(h.store.get_job(&none.id).await.unwrap().state.total_runs, 0);
    assert_eq!(h.store.get_job(&once.id).await.unwrap().state.total_runs, 1);
    // On time again, the catch_up: none job fires normally.
    h.finish(fired[0].run.id, RunStatus::Success, 0, None).await;
    let fired = h.tick_at("2025-10-13T16:00:10Z").await;
    assert_eq!(fired.len(), 2);
}

#[tokio::test]
async fn an_unavailable_downloader_fails_its_run_and_never_stops_other_jobs() {
    let h = Harness::new();
    let broken = h
        .scheduler
        .create_job(fake_job("aaa", "0 * * * *"))
        .await
        .unwrap();
    let healthy = h
        .scheduler
        .create_job(NewJob {
            platform: "direct".into(),
            source: "https://example.com/file.bin".into(),
            content_type: "file".into(),
            config: Metadata::new(),
            ..fake_job("x", "0 * * * *")
        })
        .await
        .unwrap();
    h.available.store(false, Ordering::SeqCst);
    let fired = h.tick_at("2025-10-13T11:00:00Z").await;
    assert_eq!(fired.len(), 2);
    let broken_run = fired.iter().find(|f| f.job_id == broken.id).unwrap();
    assert_eq!(broken_run.run.status, RunStatus::Failure);
    assert!(
        broken_run
            .run
            .error_message
            .as_deref()
            .unwrap()
            .contains("not installed")
    );
    let healthy_run = fired.iter().find(|f| f.job_id == healthy.id).unwrap();
    assert_eq!(healthy_run.run.status, RunStatus::Running);
    assert_eq!(
        healthy_run.queue_item.as_ref().unwrap().url,
        "https://example.com/file.bin"
    );
    let job = h.store.get_job(&broken.id).await.unwrap();
    assert_eq!((job.state.total_runs, job.state.failure_count), (1, 1));

    // A manual run of it says why.
    let err = h.scheduler.run_now(&broken.id).await.unwrap_err();
    assert!(err.to_string().contains("not installed"), "{err}");
    // A stored job whose schedule became unreadable is skipped, not fatal.
    let mut corrupt = h.store.get_job(&broken.id).await.unwrap();
    corrupt.spec.schedule = "not cron".into();
    h.store
        .update_job_spec(&corrupt.id, corrupt.spec, NextRun::Keep, corrupt.updated_at)
        .await
        .unwrap();
    h.finish(healthy_run.run.id, RunStatus::Success, 1, None)
        .await;
    let fired = h.tick_at("2025-10-13T12:00:00Z").await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].job_id, healthy.id);
}

/// `mediadl_scheduler_runs_total` by outcome, parsed from the scrape.
async fn runs_by_outcome(h: &Harness) -> Vec<(String, f64)> {
    let text = h.metrics.render(h.store.as_ref()).await;
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap();
    let mut runs: Vec<(String, f64)> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "mediadl_scheduler_runs_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(n) => (s.labels.get("outcome").unwrap().into(), n),
            ref other => panic!("not a counter: {other:?}"),
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}

#[tokio::test]
async fn runs_that_end_as_they_fire_are_counted_by_outcome() {
    let h = Harness::new();
    let busy = h
        .scheduler
        .create_job(fake_job("busy", "0 * * * *"))
        .await
        .unwrap();
    let fired = h.tick_at("2025-10-13T11:00:00Z").await;
    assert_eq!(fired[0].run.status, RunStatus::Running);
    let queued = fired[0].run.id;
    assert!(
        runs_by_outcome(&h).await.is_empty(),
        "a queued run has not ended"
    );
    // The next slot finds the run still active; then the downloader goes missing.
    let fired = h.tick_at("2025-10-13T12:00:00Z").await;
    assert_eq!(fired[0].run.status, RunStatus::Skipped);
    // Closed the way the engine does; the engine's event counts its outcome.
    h.finish(queued, RunStatus::Success, 1, None).await;
    h.available.store(false, Ordering::SeqCst);
    let fired = h.tick_at("2025-10-13T13:00:00Z").await;
    assert_eq!(
        (fired[0].job_id.as_str(), fired[0].run.status),
        (busy.id.as_str(), RunStatus::Failure)
    );
    assert_eq!(
        runs_by_outcome(&h).await,
        [("failure".to_owned(), 1.0), ("skipped".to_owned(), 1.0)]
    );
}

#[tokio::test]
async fn run_now_queues_at_once_and_refuses_while_running() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(NewJob {
            enabled: Some(false),
            ..fake_job("eva", "0 * * * *")
        })
        .await
        .unwrap();
    let fired = h.scheduler.run_now(&job.id).await.unwrap();
    assert_eq!(fired.slot, None);
    let item = fired.queue_item.unwrap();
    assert_eq!(item.options.run_id, Some(fired.run.id));
    let err = h.scheduler.run_now(&job.id).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::Conflict(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("already running"));
    let err = h.scheduler.run_now("missing").await.unwrap_err();
    assert!(matches!(err, Error::Store(StoreError::NotFound { .. })));
}

/// Three instances on one store, 20 slots: each slot fires exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_instances_fire_each_of_twenty_slots_once() {
    let h = Harness::new();
    let job = h
        .scheduler
        .create_job(fake_job("eva", "*/5 * * * *"))
        .await
        .unwrap();
    let instances = [
        Arc::new(h.instance()),
        Arc::new(h.instance()),
        Arc::new(h.instance()),
    ];
    let mut slot = at("2025-10-13T10:05:00Z");
    let mut fired_slots = Vec::new();
    for _ in 0..20 {
        h.clock.set(slot);
        let ticks = instances.iter().map(|instance| {
            let instance = Arc::clone(instance);
            tokio::spawn(async move { instance.tick(slot).await.unwrap() })
        });
        let mut fired: Vec<_> = Vec::new();
        for handle in ticks.collect::<Vec<_>>() {
            fired.extend(handle.await.unwrap());
        }
        assert_eq!(fired.len(), 1, "slot {slot}: {fired:?}");
        assert_eq!(fired[0].slot, Some(slot));
        assert_eq!(fired[0].run.status, RunStatus::Running);
        fired_slots.push(slot);
        h.finish(fired[0].run.id, RunStatus::Success, 1, None).await;
        slot += Duration::minutes(5);
    }
    fired_slots.dedup();
    assert_eq!(fired_slots.len(), 20);
    let job = h.store.get_job(&job.id).await.unwrap();
    assert_eq!((job.state.total_runs, job.state.success_count), (20, 20));
    assert_eq!(h.store.queue_counts().await.unwrap().pending, 20);
}

#[tokio::test]
async fn forum_monitor_checks_at_once_rechecks_on_repost_and_expires() {
    let h = Harness::new();
    let request = ForumMonitorRequest {
        forum_name: "PicturePub".into(),
        thread_url: "https://forum.example.com/threads/celebrity-photos.123/".into(),
        thread_title: Some("Celebrity Photos".into()),
        monitor_days: Some(2),
        ..ForumMonitorRequest::default()
    };
    let started = h.scheduler.monitor_forum(request.clone()).await.unwrap();
    assert!(started.created);
    let job = &started.job;
    assert_eq!(job.spec.kind, JobKind::ForumMonitor);
    assert_eq!(job.spec.platform, "forum");
    assert_eq!(job.spec.source, "PicturePub");
    assert_eq!(job.spec.content_type, "images");
    assert_eq!(job.spec.schedule, "0 * * * *", "hourly by default");
    assert_eq!(job.spec.monitor_until, Some(at("2025-10-15T10:00:00Z")));
    assert_eq!(job.state.total_runs, 1);
    let first = h
        .store
        .get_queue_item(started.queue_id.unwrap())
        .await
        .unwrap();
    assert_eq!(first.url, request.thread_url);
    assert_eq!(first.source, "PicturePub");
    assert_eq!(first.metadata["thread_title"], "Celebrity Photos");

    // Posted again while the check runs: the same monitor, the same check.
    let again = h.scheduler.monitor_forum(request.clone()).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.job.id, job.id);
    assert_eq!(again.queue_id, started.queue_id);
    // Posted again after it finished: checked again at once.
    h.finish(started.run.id, RunStatus::Success, 12, None).await;
    h.clock.set(at("2025-10-13T10:10:00Z"));
    let third = h
        .scheduler
        .monitor_forum(ForumMonitorRequest {
            monitor_days: Some(3),
            ..request.clone()
        })
        .await
        .unwrap();
    assert!(!third.created);
    assert_ne!(third.queue_id, started.queue_id);
    assert_eq!(
        third.job.spec.monitor_until,
        Some(at("2025-10-16T10:10:00Z"))
    );
    assert_eq!(h.store.list_jobs().await.unwrap().len(), 1);
    h.finish(third.run.id, RunStatus::Success, 0, None).await;

    // Hourly re-checks until monitor_until, then it disables itself.
    let fired = h.tick_at("2025-10-13T11:00:00Z").await;
    assert_eq!(fired.len(), 1);
    h.finish(fired[0].run.id, RunStatus::Success, 0, None).await;
    assert!(h.tick_at("2025-10-16T10:10:00Z").await.is_empty());
    let job = h.store.get_job(&job.id).await.unwrap();
    assert!(!job.spec.enabled);
    assert_eq!(job.state.next_run, None);
    // Re-enabling past the period is refused with a hint.
    let err = h
        .scheduler
        .update_job(
            &job.id,
            JobPatch {
                enabled: Some(true),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&err), "enabled");
    // Stoppable through the scheduler: delete.
    h.scheduler.delete_job(&job.id).await.unwrap();
    assert!(h.store.list_jobs().await.unwrap().is_empty());
}

#[tokio::test]
async fn forum_monitor_refuses_bad_requests() {
    let h = Harness::new();
    let good = ForumMonitorRequest {
        forum_name: "PicturePub".into(),
        thread_url: "https://forum.example.com/t/1".into(),
        ..ForumMonitorRequest::default()
    };
    let cases = [
        (
            ForumMonitorRequest {
                forum_name: " ".into(),
                ..good.clone()
            },
            "forum_name",
        ),
        (
            ForumMonitorRequest {
                thread_url: "ftp://x/y".into(),
                ..good.clone()
            },
            "thread_url",
        ),
        (
            ForumMonitorRequest {
                monitor_days: Some(0),
                ..good.clone()
            },
            "monitor_days",
        ),
        (
            ForumMonitorRequest {
                schedule: Some("*/0 * * * *".into()),
                ..good.clone()
            },
            "schedule",
        ),
    ];
    for (request, field) in cases {
        let err = h.scheduler.monitor_forum(request).await.unwrap_err();
        assert_eq!(invalid_field(&err), field, "{err}");
    }
    assert!(h.store.list_jobs().await.unwrap().is_empty());
}

fn download(path: Option<String>, date: DateTime<Utc>, key: &str) -> NewDownload {
    NewDownload {
        file_path: path,
        file_size: Some(3),
        ..mediadl::store::conformance::new_download(key, date)
    }
}

fn shown_ids(jobs: &[mediadl::model::Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

#[tokio::test]
async fn maintenance_jobs_are_listed_and_clean_up_per_settings() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new();
    let h = Harness {
        scheduler: h.scheduler.with_options(SchedulerOptions {
            storage: Some(Arc::new(LocalStorage::new(dir.path()))),
            ..SchedulerOptions::default()
        }),
        ..h
    };
    h.scheduler.ensure_builtin_jobs().await.unwrap();
    h.scheduler.ensure_builtin_jobs().await.unwrap();
    // The defaults: log retention on (30 days), clean-up and backup off.
    let jobs = h.scheduler.list_jobs().await.unwrap();
    assert_eq!(shown_ids(&jobs), [LOG_RETENTION_JOB_ID]);
    assert_eq!(h.store.list_jobs().await.unwrap().len(), 3, "all stored");
    assert!(
        jobs.iter()
            .all(|j| j.spec.kind == JobKind::Maintenance && j.spec.enabled)
    );

    let now = at(START);
    let mut paths = Vec::new();
    for (i, age) in [40i64, 35, 5].iter().enumerate() {
        let path = dir.path().join(format!("f{i}.bin"));
        std::fs::write(&path, b"abc").unwrap();
        paths.push(path.clone());
        h.store
            .insert_download(download(
                Some(path.display().to_string()),
                now - Duration::days(*age),
                &format!("k{i}"),
            ))
            .await
            .unwrap();
    }
    // Auto clean-up off (0 days): no such job to run.
    let err = h.scheduler.run_now(AUTO_CLEANUP_JOB_ID).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::NotFound { .. })),
        "{err}"
    );

    let mut settings = Settings::default();
    settings.general.auto_cleanup_days = 30;
    settings.general.auto_cleanup_delete_files = true;
    settings.logs.retention_days = 7;
    h.settings.replace(settings);
    let jobs = h.scheduler.list_jobs().await.unwrap();
    assert_eq!(
        shown_ids(&jobs),
        [AUTO_CLEANUP_JOB_ID, LOG_RETENTION_JOB_ID]
    );
    let fired = h.scheduler.run_now(AUTO_CLEANUP_JOB_ID).await.unwrap();
    assert_eq!(fired.run.status, RunStatus::Success);
    assert_eq!(fired.run.items_downloaded, 2);
    assert!(!paths[0].exists() && !paths[1].exists());
    assert!(paths[2].exists());
    let left = h
        .store
        .downloads_before(now + Duration::days(1), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);

    // Records only: the file stays.
    let old = dir.path().join("old.bin");
    std::fs::write(&old, b"abc").unwrap();
    h.store
        .insert_download(download(
            Some(old.display().to_string()),
            now - Duration::days(60),
            "old",
        ))
        .await
        .unwrap();
    let mut settings = (*h.settings.current()).clone();
    settings.general.auto_cleanup_delete_files = false;
    h.settings.replace(settings);
    let fired = h.scheduler.run_now(AUTO_CLEANUP_JOB_ID).await.unwrap();
    assert_eq!(fired.run.items_downloaded, 1);
    assert!(old.exists());

    // Log retention.
    let entry = |days: i64| NewLogEntry {
        timestamp: now - Duration::days(days),
        level: LogLevel::Info,
        module: "Scheduler".into(),
        message: format!("{days} days ago"),
        metadata: Metadata::new(),
    };
    h.store
        .append_logs(vec![entry(10), entry(8), entry(1)])
        .await
        .unwrap();
    let fired = h.scheduler.run_now(LOG_RETENTION_JOB_ID).await.unwrap();
    assert_eq!(fired.run.items_downloaded, 2);
    let logs = h
        .store
        .query_logs(&LogFilter {
            limit: 100,
            ..LogFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.total, 1);

    // Disable-able, not deletable, definition fixed.
    let off = h
        .scheduler
        .update_job(
            LOG_RETENTION_JOB_ID,
            JobPatch {
                enabled: Some(false),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(off.state.next_run, None);
    let err = h
        .scheduler
        .delete_job(AUTO_CLEANUP_JOB_ID)
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&err), "id");
    let err = h
        .scheduler
        .update_job(
            AUTO_CLEANUP_JOB_ID,
            JobPatch {
                config: Some(Metadata::new()),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&err), "config");
    // Scheduled: at 03:30 only the enabled clean-up fires.
    let fired = h.tick_at("2025-10-14T03:30:00Z").await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].job_id, AUTO_CLEANUP_JOB_ID);
    assert!(h.tick_at("2025-10-14T03:45:00Z").await.is_empty());
}

#[tokio::test]
async fn maintenance_jobs_exist_only_while_their_setting_is_on() {
    let h = Harness::new();
    h.scheduler.ensure_builtin_jobs().await.unwrap();
    let mut settings = Settings::default();
    settings.logs.retention_days = 0;
    h.settings.replace(settings.clone());
    let weekly = h
        .scheduler
        .create_job(fake_job("weekly", "0 12 * * 0"))
        .await
        .unwrap();
    assert_eq!(
        shown_ids(&h.scheduler.list_jobs().await.unwrap()),
        [weekly.id.as_str()]
    );
    let next = h.scheduler.next_scheduled().await.unwrap().unwrap();
    assert_eq!(next.id, weekly.id, "no switched-off job is next");
    for id in [AUTO_CLEANUP_JOB_ID, LOG_RETENTION_JOB_ID, BACKUP_JOB_ID] {
        let hidden = h.scheduler.get_job(id).await.unwrap_err();
        assert!(
            matches!(hidden, Error::Store(StoreError::NotFound { .. })),
            "{id}"
        );
        let patch = JobPatch {
            schedule: Some("0 1 * * *".into()),
            ..JobPatch::default()
        };
        assert!(h.scheduler.update_job(id, patch).await.is_err(), "{id}");
        assert!(h.scheduler.delete_job(id).await.is_err(), "{id}");
    }
    // Their slots pass unfired while off (03:30 and 03:45 each night).
    assert!(h.tick_at("2025-10-14T03:30:00Z").await.is_empty());
    assert!(h.tick_at("2025-10-15T03:45:00Z").await.is_empty());

    // Switched on at 09:00: shown again, next at tonight's slot, and the
    // slots sat out are not made up for.
    settings.general.auto_cleanup_days = 30;
    h.settings.replace(settings.clone());
    let fired = h.tick_at("2025-10-15T09:00:00Z").await;
    assert!(fired.is_empty(), "no stale slot fired: {fired:?}");
    let cleanup = h.scheduler.get_job(AUTO_CLEANUP_JOB_ID).await.unwrap();
    assert_eq!(cleanup.state.next_run, Some(at("2025-10-16T03:30:00Z")));
    let next = h.scheduler.next_scheduled().await.unwrap().unwrap();
    assert_eq!(
        next.id, AUTO_CLEANUP_JOB_ID,
        "the clean-up comes before Sunday noon"
    );
    let fired = h.tick_at("2025-10-16T03:30:00Z").await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].job_id, AUTO_CLEANUP_JOB_ID);

    // A schedule a person gave it survives switching off and on.
    h.scheduler
        .update_job(
            AUTO_CLEANUP_JOB_ID,
            JobPatch {
                schedule: Some("15 2 * * *".into()),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap();
    settings.general.auto_cleanup_days = 0;
    h.settings.replace(settings.clone());
    assert!(h.tick_at("2025-10-17T02:15:00Z").await.is_empty());
    assert_eq!(
        h.scheduler.next_scheduled().await.unwrap().unwrap().id,
        weekly.id
    );
    settings.general.auto_cleanup_days = 7;
    h.settings.replace(settings);
    assert!(h.tick_at("2025-10-18T08:00:00Z").await.is_empty());
    let cleanup = h.scheduler.get_job(AUTO_CLEANUP_JOB_ID).await.unwrap();
    assert_eq!(cleanup.spec.schedule, "15 2 * * *");
    assert_eq!(cleanup.state.next_run, Some(at("2025-10-19T02:15:00Z")));
}

#[tokio::test(start_paused = true)]
async fn a_settings_change_reschedules_a_switched_on_job_before_the_next_tick() {
    let h = Harness::new();
    let mut settings = Settings::default();
    settings.logs.retention_days = 0;
    h.settings.replace(settings.clone());
    let scheduler = Arc::new(h.scheduler.with_options(SchedulerOptions {
        tick_interval: std::time::Duration::from_secs(3600),
        ..SchedulerOptions::default()
    }));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let scheduler = Arc::clone(&scheduler);
        let shutdown = shutdown.clone();
        async move { scheduler.run(shutdown).await }
    });
    // The first tick creates the jobs and sees the log retention off.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(scheduler.list_jobs().await.unwrap().is_empty());
    h.clock.set(at("2025-10-16T09:00:00Z"));
    settings.logs.retention_days = 30;
    h.settings.replace(settings);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let job = scheduler.get_job(LOG_RETENTION_JOB_ID).await.unwrap();
    assert_eq!(
        job.state.next_run,
        Some(at("2025-10-17T03:45:00Z")),
        "rescheduled from the change, not left at the slot it sat out"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn run_ticks_on_the_injected_clock_until_shutdown() {
    let h = Harness::new();
    let scheduler = Arc::new(h.scheduler.with_options(SchedulerOptions {
        tick_interval: std::time::Duration::from_secs(5),
        ..SchedulerOptions::default()
    }));
    let job = scheduler
        .create_job(fake_job("eva", "0 * * * *"))
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let scheduler = Arc::clone(&scheduler);
        let shutdown = shutdown.clone();
        async move { scheduler.run(shutdown).await }
    });
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert_eq!(h.store.get_job(&job.id).await.unwrap().state.total_runs, 0);
    assert_eq!(
        h.store.list_jobs().await.unwrap().len(),
        4,
        "maintenance jobs created"
    );
    h.clock.set(at("2025-10-13T11:00:02Z"));
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(h.store.get_job(&job.id).await.unwrap().state.total_runs, 1);
    shutdown.cancel();
    task.await.unwrap();
}

/// A scheduled direct job downloaded by the real engine: the engine closes
/// the run with its item count.
#[tokio::test]
async fn a_scheduled_download_closes_its_run_through_the_engine() {
    use mediadl::testkit::{Fixture, FixtureServer, TestEngine};

    let server = FixtureServer::start().await;
    server.route("/nightly.bin", Fixture::bytes(vec![7u8; 4096]));
    let root = tempfile::tempdir().unwrap();
    let test = TestEngine::new(root.path());
    let clock = Arc::new(ManualClock::new(at(START)));
    let scheduler = CronScheduler::new(
        Arc::clone(&test.store) as Arc<dyn Store>,
        test.queue(),
        Arc::clone(&test.registry),
        test.settings.clone(),
        Arc::clone(&clock) as Arc<dyn Clock>,
    );
    let job = scheduler
        .create_job(NewJob {
            name: Some("Nightly".into()),
            platform: "direct".into(),
            source: "nightly".into(),
            content_type: "file".into(),
            schedule: "0 3 * * *".into(),
            config: serde_json::from_value(json!({"url": server.url("/nightly.bin")})).unwrap(),
            ..NewJob::default()
        })
        .await
        .unwrap();
    let fired = scheduler
        .tick(at("2025-10-14T03:00:00Z"))
        .await
        .unwrap()
        .remove(0);
    let queue_id = fired.queue_item.unwrap().id;

    test.run_until_finished(&[queue_id]).await;

    let run = &scheduler
        .history(RunFilter {
            job_id: Some(job.id.clone()),
            ..RunFilter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.items_downloaded, 1);
    assert_eq!(run.queue_id, Some(queue_id));
    let job = test.store.get_job(&job.id).await.unwrap();
    assert_eq!((job.state.total_runs, job.state.success_count), (1, 1));
    assert_eq!(job.state.last_run_items, Some(1));
}

/// A job read in Europe/Berlin keeps firing at 09:00 local time when the
/// clocks go back: 07:00 UTC before the change, 08:00 UTC after.
#[tokio::test]
async fn a_zoned_job_fires_at_its_wall_clock_across_dst() {
    let h = Harness::new();
    h.clock.set(at("2025-10-24T12:00:00Z"));
    let job = h
        .scheduler
        .create_job(NewJob {
            timezone: Some("Europe/Berlin".into()),
            ..fake_job("berlin", "0 9 * * *")
        })
        .await
        .unwrap();
    assert_eq!(job.state.next_run, Some(at("2025-10-25T07:00:00Z")));
    assert!(h.tick_at("2025-10-25T06:59:00Z").await.is_empty());
    let first = h.tick_at("2025-10-25T07:00:00Z").await.remove(0);
    h.finish(first.run.id, RunStatus::Success, 0, None).await;
    assert_eq!(
        h.store.get_job(&job.id).await.unwrap().state.next_run,
        Some(at("2025-10-26T08:00:00Z"))
    );
    assert!(h.tick_at("2025-10-26T07:00:00Z").await.is_empty());
    let second = h.tick_at("2025-10-26T08:00:00Z").await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].slot, Some(at("2025-10-26T08:00:00Z")));
}
