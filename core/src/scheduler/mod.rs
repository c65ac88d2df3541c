//! The scheduler: cron jobs that enqueue downloads, forum thread monitors,
//! and built-in maintenance, with run history.
//!
//! # Running it
//!
//! ```
//! use std::sync::Arc;
//!
//! use mediadl::scheduler::{CronScheduler, NewJob, Scheduler};
//! use mediadl::SystemClock;
//! use mediadl::testkit::TestEngine;
//! use serde_json::json;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let root = tempfile::tempdir()?;
//! // An engine's store, queue, registry and settings (here the in-memory test engine's).
//! let test = TestEngine::new(root.path());
//! let scheduler = Arc::new(CronScheduler::new(
//!     test.store.clone(),
//!     test.queue(),
//!     Arc::clone(&test.registry),
//!     test.settings.clone(),
//!     Arc::new(SystemClock),
//! ));
//! let shutdown = CancellationToken::new();
//! let task = tokio::spawn({
//!     let scheduler = Arc::clone(&scheduler);
//!     let shutdown = shutdown.clone();
//!     async move { scheduler.run(shutdown).await }
//! });
//!
//! // Serve requests with `scheduler`: create, update and run jobs.
//! let job = scheduler
//!     .create_job(NewJob {
//!         platform: "direct".into(),
//!         source: "example.org".into(),
//!         schedule: "0 */4 * * *".into(),
//!         config: json!({ "url": "https://example.org/daily.jpg" })
//!             .as_object()
//!             .cloned()
//!             .unwrap_or_default(),
//!         ..NewJob::default()
//!     })
//!     .await?;
//! assert!(job.state.next_run.is_some());
//! let fired = scheduler.run_now(&job.id).await?;
//! assert!(fired.queue_item.is_some(), "the run queued a download");
//!
//! shutdown.cancel();
//! task.await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`CronScheduler::new`] takes the store, the [`QueueService`] it submits
//! through, the downloader [`Registry`] (validation), the live settings and
//! the [`Clock`]. [`CronScheduler::run`] creates the built-in maintenance
//! jobs when missing and then calls [`Scheduler::tick`] every
//! [`SchedulerOptions::tick_interval`] with the clock's time until the
//! token is cancelled.
//!
//! # Several instances
//!
//! Every instance ticks; none is elected. A due slot is taken with
//! [`JobRepo::claim_slot`](crate::store::JobRepo::claim_slot), which is
//! true for exactly one caller across processes (a conditional update of
//! the job's `last_slot`), so each slot fires once however many servers
//! share the database, and a crashed instance hands over nothing.
//!
//! # A firing
//!
//! If the job's previous run is still active the slot is recorded as
//! `skipped`. Otherwise a `running` history row is opened and a queue item
//! carrying the job's platform, source, content type and config (and the
//! job and run ids) is submitted through the [`QueueService`]; the engine
//! closes the row when the item ends. A run whose queue item was removed
//! or finished without the row being closed is closed at the next firing,
//! so a job never stays blocked. Maintenance jobs run in the scheduler and
//! close their row themselves.

mod forum;
mod jobs;
mod maintenance;
pub mod schedule;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use forum::{ForumMonitor, ForumMonitorRequest};
pub use jobs::{JobPatch, NewJob};
pub use maintenance::{AUTO_CLEANUP_JOB_ID, BACKUP_JOB_ID, LOG_RETENTION_JOB_ID};
pub use schedule::{Schedule, ScheduleError};

use crate::backup::BackupSources;
use crate::clock::Clock;
use crate::config::SettingsHandle;
use crate::downloader::Registry;
use crate::error::{Error, StoreError};
use crate::metrics::Metrics;
use crate::model::{
    CatchUp, Job, JobKind, JobRun, NextRun, QueueItem, QueueStatus, RunFilter, RunStatus, Settings,
};
use crate::queue::QueueService;
use crate::storage::MediaStorage;
use crate::store::Store;

/// A scheduler as the server (and any embedder) uses it: job management
/// for the API, the firing loop, run history and forum monitors. The
/// server holds an `Arc<dyn Scheduler>`; [`CronScheduler`] is the one built
/// in, and another (say, one driven by an external cron service) can take
/// its place without the routes changing.
#[async_trait]
pub trait Scheduler: Send + Sync + std::fmt::Debug {
    /// Ticks every `tick_interval` until `shutdown` is cancelled, after
    /// creating the built-in maintenance jobs when missing. Errors are
    /// logged and retried at the next tick; this returns only on shutdown.
    async fn run(&self, shutdown: CancellationToken);
    /// Fires the jobs due at `now`, each slot once across every instance
    /// sharing the store. One job's failure never stops the others: it is
    /// logged (and recorded as a failed run where it got that far).
    async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Fired>, SchedulerError>;
    /// Every job, ordered by id (built-in jobs only while their setting is on).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    async fn list_jobs(&self) -> Result<Vec<Job>, Error>;
    /// The enabled job that fires next (the dashboard's `next_scheduled_task`);
    /// never a built-in job whose setting is off.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    async fn next_scheduled(&self) -> Result<Option<Job>, Error>;
    /// The job with `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] with [`StoreError::NotFound`] when there is none
    /// (also for a built-in job whose setting is off).
    async fn get_job(&self, id: &str) -> Result<Job, Error>;
    /// Validates and stores a download job; its id is a slug of platform,
    /// source and content type (`instagram-evalongoria-posts`, then `-2`, …).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the field when the platform, downloader,
    /// content type, schedule, time zone or config is not acceptable;
    /// [`Error::Store`] when storing fails.
    async fn create_job(&self, new: NewJob) -> Result<Job, Error>;
    /// Changes a job's definition. Disabling clears `next_run`; enabling or
    /// a new schedule computes it from now (slots missed while disabled are
    /// not run). Only the definition is written: a slot another instance
    /// fired meanwhile stays fired, and its counters stay counted.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] as for [`create_job`](Self::create_job);
    /// [`Error::Store`] with [`StoreError::NotFound`] for an unknown id.
    async fn update_job(&self, id: &str, patch: JobPatch) -> Result<Job, Error>;
    /// Deletes a job and its run history. Built-in maintenance jobs can be
    /// disabled, not deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a built-in job; [`Error::Store`] with
    /// [`StoreError::NotFound`] for an unknown id.
    async fn delete_job(&self, id: &str) -> Result<(), Error>;
    /// Runs a job now, outside its schedule. A job whose run is still
    /// active is a `Conflict`; a run that could not be queued is recorded
    /// as failed and returned as an `Invalid` error with the reason.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] with [`StoreError::Conflict`] while a run is active
    /// or [`StoreError::NotFound`] for an unknown id; [`Error::Invalid`]
    /// when the run could not be queued.
    async fn run_now(&self, id: &str) -> Result<Fired, Error>;
    /// Run history, newest first (`limit` 0 means 100).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    async fn history(&self, filter: RunFilter) -> Result<Vec<JobRun>, Error>;
    /// Starts monitoring a forum thread: a `forum_monitor` job and a first
    /// full check at once. The same thread posted again is re-checked at
    /// once, re-enabled, and its `monitor_until` extended when the new
    /// period ends later; it never becomes a second monitor.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the request field that is not acceptable;
    /// [`Error::Store`] when the store fails.
    async fn monitor_forum(&self, request: ForumMonitorRequest) -> Result<ForumMonitor, Error>;
}

/// Why a whole tick failed (one job's problem is never a tick error).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store could not list the jobs.
    #[error("listing jobs: {0}")]
    Store(#[from] StoreError),
}

/// What one firing did.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The job that fired ([`Job::id`]).
    pub job_id: String,
    /// The schedule slot fired; `None` for a manual run.
    pub slot: Option<DateTime<Utc>>,
    /// The history row: `running` (queued), `skipped`, or already closed
    /// (`success`/`failure`) for maintenance jobs and failed submissions.
    pub run: JobRun,
    /// The queue item the run enqueued.
    pub queue_item: Option<QueueItem>,
}

/// Tuning of [`CronScheduler`].
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// How often [`CronScheduler::run`] ticks.
    pub tick_interval: Duration,
    /// A slot fired later than this after its time counts as missed
    /// (downtime): jobs with `catch_up: none` drop it.
    pub missed_after: chrono::Duration,
    /// An open run that never got its queue item is considered
    /// interrupted after this long.
    pub stale_run_after: chrono::Duration,
    /// Create the built-in maintenance jobs at start-up.
    pub builtin_jobs: bool,
    /// What the built-in backup job archives and where by default; without
    /// it that job fails, saying so, when `backup.enabled` is on.
    pub backups: Option<BackupSources>,
    /// Where download media is, for the clean-up job's
    /// `auto_cleanup_delete_files`; without it that job fails, saying so,
    /// when the setting is on.
    pub storage: Option<Arc<dyn MediaStorage>>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            tick_interval: Duration::from_secs(10),
            missed_after: chrono::Duration::minutes(2),
            stale_run_after: chrono::Duration::hours(1),
            builtin_jobs: true,
            backups: None,
            storage: None,
        }
    }
}

/// The cron scheduler: job management for the API and the firing loop.
#[derive(Debug)]
pub struct CronScheduler {
    store: Arc<dyn Store>,
    queue: QueueService,
    registry: Arc<Registry>,
    settings: SettingsHandle,
    clock: Arc<dyn Clock>,
    options: SchedulerOptions,
    builtins_ready: AtomicBool,
    metrics: Metrics,
    /// Built-in jobs this process has seen switched off by their setting:
    /// when one comes back on it is rescheduled from then, like a job
    /// enabled again, instead of firing for the slots it sat out.
    switched_off: Mutex<HashSet<String>>,
}

/// Whether users see `job` under `settings`: every job but a built-in one
/// whose setting is off.
fn shown(job: &Job, settings: &Settings) -> bool {
    job.spec.kind != JobKind::Maintenance || maintenance::is_active(&job.id, settings)
}

/// `schedule_human` of a job: plain English, or the expression itself if
/// it no longer parses.
pub fn schedule_human(job: &Job) -> String {
    Schedule::parse(&job.spec.schedule, job.spec.timezone.as_deref())
        .map(|schedule| schedule.describe())
        .unwrap_or_else(|_| job.spec.schedule.clone())
}

/// How many ids `create` tries (`id`, `id-2`, …) before giving up.
const ID_ATTEMPTS: u32 = 50;

impl CronScheduler {
    /// A scheduler submitting through `queue`. `registry` validates jobs;
    /// `clock` decides "now" for firings and history rows.
    pub fn new(
        store: Arc<dyn Store>,
        queue: QueueService,
        registry: Arc<Registry>,
        settings: SettingsHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            queue,
            registry,
            settings,
            clock,
            options: SchedulerOptions::default(),
            builtins_ready: AtomicBool::new(false),
            metrics: Metrics::default(),
            switched_off: Mutex::new(HashSet::new()),
        }
    }

    /// Counts the runs that end when they fire (skipped slots, maintenance
    /// jobs, runs that could not be queued) into `metrics`; a download
    /// run is counted when its queue item ends (see [`Metrics::observe`]).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Replaces the default [`SchedulerOptions`].
    pub fn with_options(mut self, options: SchedulerOptions) -> Self {
        self.options = options;
        self
    }

    /// The job with `id` as users see it: a built-in job whose setting is
    /// off does not exist.
    async fn shown_job(&self, id: &str) -> Result<Job, Error> {
        let job = self.store.get_job(id).await?;
        if !shown(&job, &self.settings.current()) {
            return Err(StoreError::NotFound {
                entity: "job",
                id: id.to_owned(),
            }
            .into());
        }
        Ok(job)
    }

    /// Notes which built-in jobs their settings switched off, and
    /// reschedules from `now` those switched back on since (their slots
    /// while off are not run). Called before each tick and on every
    /// settings change, so turning a setting on never fires a stale slot.
    /// Returns whether it rescheduled any.
    async fn follow_settings(&self, jobs: &[Job], now: DateTime<Utc>) -> Result<bool, Error> {
        let settings = self.settings.current();
        let mut rescheduled = false;
        for job in jobs
            .iter()
            .filter(|job| job.spec.kind == JobKind::Maintenance)
        {
            let active = maintenance::is_active(&job.id, &settings);
            let came_back = {
                let mut off = self
                    .switched_off
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if active {
                    off.remove(&job.id)
                } else {
                    off.insert(job.id.clone());
                    false
                }
            };
            let stale = job.state.next_run.is_some_and(|next| next <= now);
            if came_back && job.spec.enabled && stale {
                let schedule = Schedule::parse(&job.spec.schedule, job.spec.timezone.as_deref())?;
                self.store
                    .update_job_spec(
                        &job.id,
                        job.spec.clone(),
                        NextRun::Set(schedule.next_after(now)),
                        now,
                    )
                    .await?;
                rescheduled = true;
            }
        }
        Ok(rescheduled)
    }

    /// Creates the built-in maintenance jobs that do not exist yet
    /// (idempotent across instances). A no-op after the first success or
    /// when [`SchedulerOptions::builtin_jobs`] is off.
    pub async fn ensure_builtin_jobs(&self) -> Result<(), Error> {
        if !self.options.builtin_jobs || self.builtins_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = self.clock.now();
        for job in maintenance::builtin_jobs(now) {
            match self.store.get_job(&job.id).await {
                Ok(_) => continue,
                Err(StoreError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
            let schedule = Schedule::parse(&job.spec.schedule, None)?;
            let job = job.with_next_run(schedule.next_after(now));
            match self.store.create_job(job).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.builtins_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn insert_with_unique_id(&self, mut job: Job) -> Result<Job, Error> {
        let base = job.id.clone();
        for attempt in 1..=ID_ATTEMPTS {
            if attempt > 1 {
                job.id = format!("{base}-{attempt}");
            }
            match self.store.create_job(job.clone()).await {
                Ok(job) => return Ok(job),
                Err(StoreError::Conflict(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Conflict(format!(
            "{ID_ATTEMPTS} jobs named {base:?} exist already: give this one another source"
        ))
        .into())
    }

    /// The job's run still in progress, after closing one whose queue item
    /// ended or vanished without the row being closed.
    async fn active_run(&self, job: &Job, now: DateTime<Utc>) -> Result<Option<JobRun>, Error> {
        let Some(run) = self.store.active_run(&job.id).await? else {
            return Ok(None);
        };
        let outcome = match run.queue_id {
            Some(queue_id) => match self.store.get_queue_item(queue_id).await {
                Ok(item) => match item.status {
                    QueueStatus::Completed => {
                        Some((RunStatus::Success, item.items_downloaded, None))
                    }
                    QueueStatus::Failed => Some((
                        RunStatus::Failure,
                        item.items_downloaded,
                        Some(
                            item.error_message
                                .unwrap_or_else(|| format!("queue item {queue_id} failed")),
                        ),
                    )),
                    _ => None,
                },
                Err(StoreError::NotFound { .. }) => Some((
                    RunStatus::Failure,
                    0,
                    Some(format!(
                        "queue item {queue_id} was removed before it finished"
                    )),
                )),
                Err(err) => return Err(err.into()),
            },
            None if now - run.started_at > self.options.stale_run_after => Some((
                RunStatus::Failure,
                0,
                Some("interrupted (the scheduler stopped during the run)".to_owned()),
            )),
            None => None,
        };
        match outcome {
            Some((status, items, error)) => {
                self.store
                    .close_run(run.id, status, items, error, now)
                    .await?;
                Ok(None)
            }
            None => Ok(Some(run)),
        }
    }

    /// Opens the run and does the work: a queue item for download and
    /// forum jobs, the clean-up itself for maintenance jobs.
    async fn start_run(
        &self,
        job: &Job,
        slot: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Fired, Error> {
        let mut run = self
            .store
            .open_run(&job.id, now, RunStatus::Running, None)
            .await?;
        if job.spec.kind == JobKind::Maintenance {
            let settings = self.settings.current();
            let result = maintenance::run_maintenance(
                &job.id,
                &*self.store,
                &settings,
                self.options.backups.as_ref(),
                self.options.storage.as_deref(),
                now,
            )
            .await;
            let finished = self.clock.now();
            let run = match result {
                Ok(removed) => {
                    self.store
                        .close_run(run.id, RunStatus::Success, removed, None, finished)
                        .await?
                }
                Err(err) => {
                    tracing::warn!(job = %job.id, error = %err, "maintenance job failed");
                    self.store
                        .close_run(
                            run.id,
                            RunStatus::Failure,
                            0,
                            Some(err.to_string()),
                            finished,
                        )
                        .await?
                }
            };
            self.metrics.scheduler_run(run.status);
            return Ok(Fired {
                job_id: job.id.clone(),
                slot,
                run,
                queue_item: None,
            });
        }
        match self.enqueue(job, run.id).await {
            Ok(item) => {
                self.store.set_run_queue_item(run.id, item.id).await?;
                run.queue_id = Some(item.id);
                Ok(Fired {
                    job_id: job.id.clone(),
                    slot,
                    run,
                    queue_item: Some(item),
                })
            }
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err, "scheduled run could not be queued");
                let run = self
                    .store
                    .close_run(run.id, RunStatus::Failure, 0, Some(err.to_string()), now)
                    .await?;
                self.metrics.scheduler_run(run.status);
                Ok(Fired {
                    job_id: job.id.clone(),
                    slot,
                    run,
                    queue_item: None,
                })
            }
        }
    }

    /// Submits the job's queue item, after checking that its downloader can
    /// run now (a missing program fails the run with the reason).
    async fn enqueue(&self, job: &Job, run_id: i64) -> Result<QueueItem, Error> {
        let new = jobs::queue_item_for(&job.id, &job.spec, Some(run_id))?;
        let downloader = self
            .registry
            .find(&new.platform, new.options.downloader.as_deref())?;
        let settings = self.settings.current();
        if let Err(unavailable) = downloader.check(&settings).await {
            return Err(Error::invalid(
                "config.downloader",
                format!(
                    "{} downloader {:?} is unavailable: {}",
                    job.spec.platform,
                    downloader.info().name,
                    unavailable.reason
                ),
            ));
        }
        self.queue.submit(new).await
    }

    /// A firing of a due slot: skipped when the previous run is active.
    async fn fire(
        &self,
        job: &Job,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Fired, Error> {
        if let Some(active) = self.active_run(job, now).await? {
            tracing::info!(job = %job.id, %slot, active_run = active.id, "slot skipped: previous run still active");
            let run = self
                .store
                .open_run(&job.id, now, RunStatus::Skipped, None)
                .await?;
            self.metrics.scheduler_run(run.status);
            return Ok(Fired {
                job_id: job.id.clone(),
                slot: Some(slot),
                run,
                queue_item: None,
            });
        }
        self.start_run(job, Some(slot), now).await
    }

    /// One job's share of a tick.
    async fn tick_job(&self, job: &Job, now: DateTime<Utc>) -> Result<Option<Fired>, Error> {
        let spec = &job.spec;
        if !spec.enabled || !shown(job, &self.settings.current()) {
            return Ok(None);
        }
        if spec.kind == JobKind::ForumMonitor
            && spec.monitor_until.is_some_and(|until| until <= now)
        {
            tracing::info!(job = %job.id, "forum monitor period over: disabling");
            self.store
                .set_job_enabled(&job.id, false, None, self.clock.now())
                .await?;
            return Ok(None);
        }
        let schedule = Schedule::parse(&spec.schedule, spec.timezone.as_deref())?;
        let Some(next_run) = job.state.next_run else {
            // Enabled without a next run (written by another tool): start now.
            let next = schedule.next_after(now);
            self.store
                .set_job_enabled(&job.id, true, next, self.clock.now())
                .await?;
            return Ok(None);
        };
        if next_run > now {
            return Ok(None);
        }
        // The latest slot due; earlier missed slots coalesce into it.
        let slot = schedule
            .latest_at_or_before(now)
            .filter(|latest| *latest >= next_run)
            .unwrap_or(next_run);
        let following = schedule.next_after(now);
        if !self.store.claim_slot(&job.id, slot, following).await? {
            return Ok(None);
        }
        if spec.catch_up == CatchUp::None && now - slot > self.options.missed_after {
            tracing::info!(job = %job.id, %slot, "missed slot dropped (catch_up: none)");
            return Ok(None);
        }
        self.fire(job, slot, now).await.map(Some)
    }
}

#[async_trait]
impl Scheduler for CronScheduler {
    async fn run(&self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.options.tick_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut settings = self.settings.subscribe();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
                changed = settings.changed() => {
                    if changed.is_ok() {
                        let followed = match self.store.list_jobs().await {
                            Ok(jobs) => self.follow_settings(&jobs, self.clock.now()).await.map(drop),
                            Err(err) => Err(err.into()),
                        };
                        if let Err(err) = followed {
                            tracing::warn!(error = %err, "scheduler: following a settings change failed");
                        }
                    }
                    continue;
                }
            }
            if let Err(err) = self.ensure_builtin_jobs().await {
                tracing::warn!(error = %err, "scheduler: creating maintenance jobs failed");
            }
            if let Err(err) = self.tick(self.clock.now()).await {
                tracing::warn!(error = %err, "scheduler tick failed");
            }
        }
    }

    async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Fired>, SchedulerError> {
        let mut jobs = self.store.list_jobs().await?;
        match self.follow_settings(&jobs, now).await {
            Ok(true) => jobs = self.store.list_jobs().await?,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "scheduler: rescheduling maintenance jobs failed")
            }
        }
        let mut fired = Vec::new();
        for job in &jobs {
            match self.tick_job(job, now).await {
                Ok(Some(firing)) => {
                    tracing::info!(
                        job = %firing.job_id,
                        slot = ?firing.slot,
                        run = firing.run.id,
                        status = firing.run.status.as_str(),
                        queue_id = ?firing.queue_item.as_ref().map(|item| item.id),
                        "job fired"
                    );
                    fired.push(firing);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(job = %job.id, error = %err, "scheduler: job not fired"),
            }
        }
        Ok(fired)
    }

    async fn list_jobs(&self) -> Result<Vec<Job>, Error> {
        let settings = self.settings.current();
        let mut jobs = self.store.list_jobs().await?;
        jobs.retain(|job| shown(job, &settings));
        Ok(jobs)
    }

    async fn next_scheduled(&self) -> Result<Option<Job>, Error> {
        Ok(self
            .list_jobs()
            .await?
            .into_iter()
            .filter(|job| job.spec.enabled && job.state.next_run.is_some())
            .min_by_key(|job| job.state.next_run))
    }

    async fn get_job(&self, id: &str) -> Result<Job, Error> {
        self.shown_job(id).await
    }

    async fn create_job(&self, mut new: NewJob) -> Result<Job, Error> {
        let now = self.clock.now();
        let settings = self.settings.current();
        jobs::recognise_platform(&mut new, &self.registry, &settings).await?;
        let mut spec = new.into_spec()?;
        let schedule = jobs::validate_job(&mut spec, &self.registry, &settings, now, true).await?;
        let id = jobs::slug(&[&spec.platform, &spec.source, &spec.content_type]);
        let next_run = if spec.enabled {
            schedule.next_after(now)
        } else {
            None
        };
        self.insert_with_unique_id(Job::new(id, spec, now).with_next_run(next_run))
            .await
    }

    async fn update_job(&self, id: &str, patch: JobPatch) -> Result<Job, Error> {
        let now = self.clock.now();
        let job = self.shown_job(id).await?;
        let was_enabled = job.spec.enabled;
        let retime = patch.touches_timing();
        let mut spec = job.spec;
        patch.apply(&mut spec)?;
        let settings = self.settings.current();
        let schedule = jobs::validate_job(&mut spec, &self.registry, &settings, now, false).await?;
        let next_run = if !spec.enabled {
            NextRun::Set(None)
        } else if retime || !was_enabled || job.state.next_run.is_none() {
            NextRun::Set(schedule.next_after(now))
        } else {
            NextRun::Keep
        };
        if spec.kind == JobKind::ForumMonitor
            && spec.enabled
            && spec.monitor_until.is_some_and(|until| until <= now)
        {
            return Err(Error::invalid(
                "enabled",
                "the monitor period is over: post the thread to /platforms/forum/monitor again",
            ));
        }
        Ok(self.store.update_job_spec(id, spec, next_run, now).await?)
    }

    async fn delete_job(&self, id: &str) -> Result<(), Error> {
        let job = self.shown_job(id).await?;
        if job.spec.kind == JobKind::Maintenance {
            return Err(Error::invalid(
                "id",
                "built-in maintenance jobs cannot be deleted; disable them instead",
            ));
        }
        Ok(self.store.delete_job(id).await?)
    }

    async fn run_now(&self, id: &str) -> Result<Fired, Error> {
        let job = self.shown_job(id).await?;
        let now = self.clock.now();
        if let Some(active) = self.active_run(&job, now).await? {
            return Err(StoreError::Conflict(format!(
                "job {id} is already running (run {}{})",
                active.id,
                active
                    .queue_id
                    .map(|q| format!(", queue item {q}"))
                    .unwrap_or_default()
            ))
            .into());
        }
        let fired = self.start_run(&job, None, now).await?;
        if fired.run.status == RunStatus::Failure && job.spec.kind != JobKind::Maintenance {
            let reason = fired
                .run
                .error_message
                .clone()
                .unwrap_or_else(|| "the run could not be queued".into());
            return Err(Error::invalid("job", reason));
        }
        Ok(fired)
    }

    async fn history(&self, mut filter: RunFilter) -> Result<Vec<JobRun>, Error> {
        if filter.limit == 0 {
            filter.limit = 100;
        }
        Ok(self.store.run_history(&filter).await?)
    }

    async fn monitor_forum(&self, request: ForumMonitorRequest) -> Result<ForumMonitor, Error> {
        self.monitor_thread(request).await
    }
}
