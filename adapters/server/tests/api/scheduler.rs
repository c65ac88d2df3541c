//! The scheduler across server instances on one PostgreSQL database
//! (exactly one fires each slot), and the `/scheduler` endpoints.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mediadl::clock::ManualClock;
use mediadl::model::{QueueFilter, RunFilter, RunStatus};
use mediadl::scheduler::{CronScheduler, NewJob, SchedulerOptions};
use mediadl::store::{JobRepo, QueueRepo};
use mediadl::{
    BroadcastBus, Clock, EventBus, QueueService, Registry, Scheduler, Settings, SettingsHandle,
    Store,
};
use mediadl_store::PgStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backing, Db, TestApp, assert_error};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One server process's scheduler: its own connection pool to the shared
/// database, its own bus, the shared hand-moved clock.
async fn instance(url: &str, clock: &Arc<ManualClock>) -> (Arc<PgStore>, CronScheduler) {
    let store = Arc::new(PgStore::connect(url).await.unwrap());
    let registry = Arc::new(Registry::builtin());
    let settings = SettingsHandle::new(Settings::default());
    let events: Arc<dyn EventBus> = Arc::new(BroadcastBus::default());
    let queue = QueueService::new(
        Arc::clone(&store) as Arc<dyn Store>,
        events,
        Arc::clone(&registry),
        settings.clone(),
        Arc::clone(clock) as Arc<dyn Clock>,
    );
    let scheduler = CronScheduler::new(
        Arc::clone(&store) as Arc<dyn Store>,
        queue,
        registry,
        settings,
        Arc::clone(clock) as Arc<dyn Clock>,
    )
    .with_options(SchedulerOptions {
        builtin_jobs: false,
        ..SchedulerOptions::default()
    });
    (store, scheduler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_postgres_fire_each_of_twenty_slots_once() {
    // Fails (not skips) when PostgreSQL is unreachable.
    let db = mediadl_store::testing::fresh_pg_database()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 for the leader test");
    let clock = Arc::new(ManualClock::new(at("2025-10-13T10:00:00Z")));
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(instance(db.url(), &clock).await);
    }
    let (store, first) = &instances[0];
    let job = first
        .create_job(NewJob {
            name: Some("Every five minutes".into()),
            platform: "direct".into(),
            source: "leader test".into(),
            content_type: "file".into(),
            schedule: "*/5 * * * *".into(),
            config: serde_json::from_value(json!({"url": "https://example.com/file.bin"})).unwrap(),
            ..NewJob::default()
        })
        .await
        .unwrap();
    let store = Arc::clone(store);
    let instances: Vec<(Arc<PgStore>, Arc<CronScheduler>)> = instances
        .into_iter()
        .map(|(store, scheduler)| (store, Arc::new(scheduler)))
        .collect();

    let mut slot = at("2025-10-13T10:05:00Z");
    let mut runs_per_slot = Vec::new();
    for round in 0..20 {
        clock.set(slot);
        // All three tick at once, as three servers would.
        let handles: Vec<_> = instances
            .iter()
            .map(|(_, scheduler)| {
                let scheduler = Arc::clone(scheduler);
                tokio::spawn(async move { scheduler.tick(slot).await.unwrap() })
            })
            .collect();
        let mut fired = Vec::new();
        for handle in handles {
            fired.extend(handle.await.unwrap());
        }
        runs_per_slot.push(fired.len());
        assert_eq!(fired.len(), 1, "slot {slot}: {fired:?}");
        assert_eq!(fired[0].slot, Some(slot));
        assert_eq!(fired[0].run.status, RunStatus::Running);
        // The engine (on any instance) closes the run when the item ends.
        instances[round % 3]
            .0
            .close_run(fired[0].run.id, RunStatus::Success, 1, None, slot)
            .await
            .unwrap();
        slot += Duration::minutes(5);
    }
    assert_eq!(runs_per_slot, vec![1; 20]);

    let job = store.get_job(&job.id).await.unwrap();
    assert_eq!((job.state.total_runs, job.state.success_count), (20, 20));
    assert_eq!(job.state.last_slot, Some(at("2025-10-13T11:40:00Z")));
    let history = store
        .run_history(&RunFilter {
            job_id: Some(job.id.clone()),
            status: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 20);
    let mut queue_ids: Vec<i64> = history.iter().filter_map(|run| run.queue_id).collect();
    queue_ids.sort_unstable();
    queue_ids.dedup();
    assert_eq!(queue_ids.len(), 20, "one queue item per slot");
    let queued = store
        .list_queue(&QueueFilter::default(), mediadl::model::Page::new(1, 100))
        .await
        .unwrap();
    assert_eq!(queued.total, 20);
    for (store, _) in &instances {
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_patches_racing_two_schedulers_never_fire_a_slot_twice() {
    // Two schedulers on one PostgreSQL database fire a job each minute
    // (cron has no seconds field: the shared clock is moved by hand) while
    // an admin PATCHes its definition through a real server on the same
    // database. Every PATCH reads the job before writing it; none may
    // re-open a slot that a scheduler claimed in between.
    let backing = Backing::new(Db::Postgres).await;
    let mut config = backing.config();
    config.run_scheduler = false;
    let app = TestApp::start(config).await;
    let token = app.admin_token().await;
    let url = backing.pg.as_ref().unwrap().url().to_string();
    let clock = Arc::new(ManualClock::new(at("2025-10-13T10:00:00Z")));
    let (store, first) = instance(&url, &clock).await;
    let (other_store, second) = instance(&url, &clock).await;
    let job = first
        .create_job(NewJob {
            name: Some("Every minute".into()),
            platform: "direct".into(),
            source: "race test".into(),
            content_type: "file".into(),
            schedule: "* * * * *".into(),
            config: serde_json::from_value(json!({"url": "https://example.com/file.bin"})).unwrap(),
            ..NewJob::default()
        })
        .await
        .unwrap();
    let schedulers = [Arc::new(first), Arc::new(second)];
    let path = format!("/api/v1/scheduler/jobs/{}", job.id);
    let app = Arc::new(app);

    const SLOTS: usize = 30;
    let mut slot = at("2025-10-13T10:01:00Z");
    let mut slots = Vec::with_capacity(SLOTS);
    for round in 0..SLOTS {
        clock.set(slot);
        let ticks: Vec<_> = schedulers
            .iter()
            .map(|scheduler| {
                let scheduler = Arc::clone(scheduler);
                tokio::spawn(async move { scheduler.tick(slot).await.unwrap().len() })
            })
            .collect();
        let patches: Vec<_> = (0..3)
            .map(|n| {
                let (app, token, path) = (Arc::clone(&app), token.clone(), path.clone());
                tokio::spawn(async move {
                    let body = json!({
                        "name": format!("Every minute ({round}.{n})"),
                        "config": {"url": "https://example.com/file.bin", "max_downloads": n + 1},
                    });
                    let (status, _, body) = app
                        .call(Method::PATCH, &path, Some(&token), Some(body))
                        .await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                })
            })
            .collect();
        let mut fired = 0;
        for tick in ticks {
            fired += tick.await.unwrap();
        }
        for patch in patches {
            patch.await.unwrap();
        }
        // A late tick of both, after every PATCH has landed.
        for scheduler in &schedulers {
            fired += scheduler.tick(slot).await.unwrap().len();
        }
        assert_eq!(fired, 1, "slot {slot} fired {fired} times");
        // The engine closes the run, so the next slot is not skipped.
        let running = store.active_run(&job.id).await.unwrap().unwrap();
        store
            .close_run(running.id, RunStatus::Success, 1, None, slot)
            .await
            .unwrap();
        slots.push(slot);
        slot += Duration::minutes(1);
    }

    let history = store
        .run_history(&RunFilter {
            job_id: Some(job.id.clone()),
            status: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let mut started: Vec<DateTime<Utc>> = history.iter().map(|run| run.started_at).collect();
    started.sort_unstable();
    assert_eq!(started, slots, "one run per slot");
    assert!(history.iter().all(|run| run.status == RunStatus::Success));
    let queued = store
        .list_queue(&QueueFilter::default(), mediadl::model::Page::new(1, 1000))
        .await
        .unwrap();
    assert_eq!(queued.total, SLOTS as u64, "one queue item per slot");
    let stored = store.get_job(&job.id).await.unwrap();
    assert_eq!(
        (stored.state.total_runs, stored.state.success_count),
        (SLOTS as u64, SLOTS as u64)
    );
    assert_eq!(stored.state.last_slot, slots.last().copied());
    assert!(
        stored
            .spec
            .name
            .starts_with(&format!("Every minute ({}.", SLOTS - 1)),
    );
    store.close().await;
    other_store.close().await;
    Arc::into_inner(app).expect("no request left").stop().await;
}

/// A stand-in for the forum platform (a cargo feature the server test
/// build may not enable): accepts any thread, finds nothing new.
#[derive(Debug)]
struct QuietForum;

impl mediadl::Downloader for QuietForum {
    fn info(&self) -> mediadl::model::DownloaderInfo {
        mediadl::model::DownloaderInfo {
            platform: "forum".into(),
            platform_display_name: "Forum".into(),
            name: "html".into(),
            display_name: "HTML".into(),
            aliases: vec![],
            content_types: vec!["images".into()],
            features: vec![],
            listing_order: mediadl::model::ListingOrder::OldestFirst,
            accepts_cookies: false,
            is_default: true,
        }
    }

    // The trait is `#[async_trait]`; this crate does not depend on the
    // macro, so the boxed future is written out.
    fn check<'a, 'b, 'f>(
        &'a self,
        _settings: &'b Settings,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), mediadl::Unavailable>> + Send + 'f>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(async { Ok(()) })
    }

    fn validate(&self, _request: &mediadl::Request) -> Result<(), mediadl::Error> {
        Ok(())
    }

    fn discover(
        &self,
        _request: &mediadl::Request,
        _cx: &mediadl::Context,
    ) -> futures::stream::BoxStream<'static, Result<mediadl::MediaItem, mediadl::DownloadError>>
    {
        use futures::StreamExt;
        futures::stream::empty().boxed()
    }
}

async fn scheduler_app(db: Db) -> (Backing, TestApp) {
    let backing = Backing::new(db).await;
    let mut config = backing.config();
    let mut registry = Registry::builtin();
    registry.register(QuietForum);
    config.registry = Arc::new(registry);
    // Runs must finish: the engine closes their history rows.
    config.run_engine = true;
    let app = TestApp::start(config).await;
    (backing, app)
}

/// Polls `GET path` until `done` holds (the engine and the scheduler work
/// in the background); fails after 20 s.
async fn eventually(
    app: &TestApp,
    path: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = app.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn scheduler_endpoints(db: Db) {
    let files = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/nightly.bin"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_bytes(vec![9u8; 2048]))
        .mount(&files)
        .await;
    let (_backing, app) = scheduler_app(db).await;
    let admin = app.admin_token().await;
    let user = app.user_token(&admin, "sched-user", "user").await;
    let viewer = app.user_token(&admin, "sched-viewer", "viewer").await;

    // The built-in maintenance jobs are listed with the others while their
    // setting is on: by default only the log retention (clean-up and
    // backup are off), which is then the next scheduled task.
    let jobs = eventually(&app, "/api/v1/scheduler/jobs", &viewer, |body| {
        body["jobs"].as_array().is_some_and(|jobs| jobs.len() == 1)
    })
    .await;
    assert_eq!(jobs["jobs"][0]["id"], "maintenance-log-retention");
    let (status, overview) = app.get("/api/v1/stats/overview", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(
        overview["next_scheduled_task"]["job_id"], "maintenance-log-retention",
        "{overview}"
    );
    let (status, _, body) = app
        .call(
            Method::GET,
            "/api/v1/scheduler/jobs/maintenance-auto-cleanup",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let set = |patch: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (status, _, body) = app
                .call(Method::PATCH, "/api/v1/settings", Some(&admin), Some(patch))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    // Both off: no next task at all.
    set(json!({"logs": {"retention_days": 0}})).await;
    let (_, overview) = app.get("/api/v1/stats/overview", &viewer).await;
    assert_eq!(overview["next_scheduled_task"], Value::Null, "{overview}");
    let (_, jobs) = app.get("/api/v1/scheduler/jobs", &viewer).await;
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
    // Switched on at run time: listed again, and the sooner of the two
    // (by the wall clock) is next.
    set(json!({"general": {"auto_cleanup_days": 30}, "logs": {"retention_days": 30}})).await;
    let jobs = eventually(&app, "/api/v1/scheduler/jobs", &viewer, |body| {
        body["jobs"].as_array().is_some_and(|jobs| jobs.len() == 2)
    })
    .await;
    let sooner = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .min_by_key(|job| {
            let next = job["next_run"].as_str().expect("both scheduled");
            chrono::DateTime::parse_from_rfc3339(next).expect("a time")
        })
        .unwrap();
    let (_, overview) = app.get("/api/v1/stats/overview", &viewer).await;
    assert_eq!(
        overview["next_scheduled_task"]["job_id"], sooner["id"],
        "{overview}"
    );
    let cleanup = &jobs["jobs"][0];
    assert_eq!(cleanup["id"], "maintenance-auto-cleanup");
    assert_eq!(cleanup["kind"], "maintenance");
    assert_eq!(cleanup["schedule_human"], "Every day at 03:30");
    assert!(cleanup.get("last_slot").is_none(), "internal field hidden");

    // Roles: admin creates; user and viewer may not; anonymous is 401.
    let nightly = json!({
        "name": "Nightly dump",
        "platform": "direct",
        "source": "nightly",
        "content_type": "file",
        "schedule": "0 3 * * *",
        "config": {"url": format!("{}/nightly.bin", files.uri())}
    });
    for token in [&user, &viewer] {
        let (status, headers, body) = app
            .call(
                Method::POST,
                "/api/v1/scheduler/jobs",
                Some(token),
                Some(nightly.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_error(&headers, &body, "FORBIDDEN");
    }
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/scheduler/jobs",
            None,
            Some(nightly.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad input: 422 naming the field, nothing stored.
    let bad = [
        (
            json!({"schedule": "*/0 * * * *"}),
            "schedule",
            "step of zero",
        ),
        (json!({"schedule": "0 */4 * *"}), "schedule", "5 fields"),
        (json!({"schedule": "0 0 * * 9"}), "schedule", "invalid cron"),
        (json!({"schedule": ""}), "schedule", "empty"),
        (json!({"schedule": 5}), "schedule", ""),
        (json!({"timezone": "Mars/Base"}), "timezone", "Mars/Base"),
        (
            json!({"platform": "myspace"}),
            "platform",
            "unknown platform",
        ),
        (json!({"content_type": "video"}), "content_type", "file"),
        (json!({"config": {}}), "source", "http(s) URL"),
        (
            json!({"config": {"url": "ftp://x/y"}}),
            "config.url",
            "http(s) URL",
        ),
        (json!({"catch_up": "sometimes"}), "catch_up", ""),
    ];
    for (change, field, reason) in bad {
        let mut body = nightly.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, headers, answer) = app
            .call(
                Method::POST,
                "/api/v1/scheduler/jobs",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_error(&headers, &answer, "VALIDATION_ERROR");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(reason),
            "{answer}"
        );
    }

    let (status, job) = app
        .post("/api/v1/scheduler/jobs", &admin, nightly.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["id"], "direct-nightly-file");
    assert_eq!(job["schedule_human"], "Every day at 03:00");
    assert_eq!(job["enabled"], true);
    assert_eq!(job["total_runs"], 0);
    let next_run: DateTime<Utc> = serde_json::from_value(job["next_run"].clone()).unwrap();
    assert!(next_run > Utc::now() && next_run - Utc::now() <= Duration::days(1));
    let id = "direct-nightly-file";

    // PATCH: disable → next_run null; re-enable recomputes; bad schedule 422.
    let path = format!("/api/v1/scheduler/jobs/{id}");
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&user),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, off) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"enabled": false, "schedule": "0 */8 * * *"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(
        (off["enabled"].clone(), off["next_run"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(off["schedule_human"], "Every 8 hours");
    let (status, _, on) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(on["next_run"].is_string(), "{on}");
    let (status, headers, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"schedule": "61 * * * *"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&headers, &body, "VALIDATION_ERROR");
    assert_eq!(body["field"], "schedule");
    let (status, headers, body) = app
        .call(
            Method::PATCH,
            "/api/v1/scheduler/jobs/nope",
            Some(&admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&headers, &body, "NOT_FOUND");

    // Run now: 202 with the queue item's id; the engine downloads it and
    // closes the history row.
    let run_path = format!("{path}/run");
    let (status, _, _) = app.call(Method::POST, &run_path, Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, queued) = app.call(Method::POST, &run_path, Some(&user), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "queued");
    let queue_id = queued["queue_id"].as_i64().unwrap();
    assert_eq!(queued["task_id"], queue_id.to_string());
    let history = eventually(
        &app,
        &format!("/api/v1/scheduler/history?job_id={id}"),
        &viewer,
        |body| {
            body["history"][0]["status"] == "success" || body["history"][0]["status"] == "failure"
        },
    )
    .await;
    let run = &history["history"][0];
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["items_downloaded"], 1);
    assert_eq!(run["queue_id"], queue_id);
    assert!(run["duration_seconds"].is_number());
    let (_, job) = app.get(&path, &viewer).await;
    assert_eq!(
        (job["total_runs"].clone(), job["success_count"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(job["last_run_status"], "success");
    assert_eq!(job["last_run_items"], 1);

    // History filters and their validation.
    let (status, body) = app
        .get("/api/v1/scheduler/history?status=failure", &viewer)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["history"], json!([]));
    let (_, body) = app.get("/api/v1/scheduler/history?limit=1", &viewer).await;
    assert_eq!(body["history"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("status=exploded", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
    ] {
        let (status, headers, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/scheduler/history?{query}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_error(&headers, &body, "VALIDATION_ERROR");
        assert_eq!(body["field"], field);
    }

    // Forum monitors: a job too, checked at once, not duplicated.
    let thread = json!({
        "forum_name": "PicturePub",
        "thread_url": format!("{}/threads/celebrity-photos.123/", files.uri()),
        "thread_title": "Celebrity Photos",
        "monitor_days": 30
    });
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/platforms/forum/monitor",
            Some(&viewer),
            Some(thread.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, monitor) = app
        .post("/api/v1/platforms/forum/monitor", &user, thread.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{monitor}");
    assert_eq!(monitor["status"], "active");
    assert_eq!(monitor["created"], true);
    assert!(monitor["queue_id"].is_i64());
    let until: DateTime<Utc> = serde_json::from_value(monitor["monitor_until"].clone()).unwrap();
    assert!(
        (until - (Utc::now() + Duration::days(30)))
            .num_minutes()
            .abs()
            < 5
    );
    let thread_id = monitor["thread_id"].as_str().unwrap().to_owned();
    let (status, again) = app
        .post("/api/v1/platforms/forum/monitor", &user, thread.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["thread_id"], thread_id.as_str());
    let mut bad_thread = thread.clone();
    bad_thread["thread_url"] = json!("not a url");
    let (status, body) = app
        .post("/api/v1/platforms/forum/monitor", &user, bad_thread)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "thread_url");
    let (_, jobs) = app.get("/api/v1/scheduler/jobs", &viewer).await;
    let monitors: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["kind"] == "forum_monitor")
        .collect();
    assert_eq!(monitors.len(), 1);
    assert_eq!(monitors[0]["id"], thread_id.as_str());
    assert_eq!(monitors[0]["schedule_human"], "Every hour");
    assert_eq!(monitors[0]["source"], "PicturePub");

    // Deleting: admin only; built-in jobs are disabled, not deleted.
    let monitor_path = format!("/api/v1/scheduler/jobs/{thread_id}");
    let (status, _, _) = app
        .call(Method::DELETE, &monitor_path, Some(&user), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(Method::DELETE, &monitor_path, Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = app
        .call(Method::GET, &monitor_path, Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/api/v1/scheduler/jobs/maintenance-auto-cleanup",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "id");
    let (status, _, body) = app
        .call(
            Method::PATCH,
            "/api/v1/scheduler/jobs/maintenance-log-retention",
            Some(&admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["next_run"], Value::Null);
    let (status, _, _) = app.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.stop().await;
}

#[tokio::test]
async fn scheduler_endpoints_on_sqlite() {
    scheduler_endpoints(Db::Sqlite).await;
}

#[tokio::test]
async fn scheduler_endpoints_on_postgres() {
    scheduler_endpoints(Db::Postgres).await;
}
