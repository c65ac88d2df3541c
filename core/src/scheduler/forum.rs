//! Forum thread monitors (`POST /platforms/forum/monitor`): a job of kind
//! `forum_monitor` re-checking the thread on a schedule until
//! `monitor_until`, then disabling itself.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::jobs::{self, slug};
use super::{CronScheduler, Fired};
use crate::error::Error;
use crate::model::{CatchUp, Job, JobConfig, JobKind, JobRun, JobSpec, NextRun};

/// Checks per hour unless the request says otherwise.
const DEFAULT_SCHEDULE: &str = "0 * * * *";
const DEFAULT_MONITOR_DAYS: u32 = 30;
const MAX_MONITOR_DAYS: u32 = 3650;

/// `POST /platforms/forum/monitor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForumMonitorRequest {
    /// Becomes the downloads' `source`.
    pub forum_name: String,
    /// The thread's `http(s)://` address.
    pub thread_url: String,
    /// The thread's title, kept in the job's config, when known.
    pub thread_title: Option<String>,
    /// 30 when absent; 1–3650.
    pub monitor_days: Option<u32>,
    /// Cron of the re-checks; hourly when absent.
    pub schedule: Option<String>,
    /// IANA zone the schedule is read in; UTC when absent.
    pub timezone: Option<String>,
}

/// The monitor after a request, and the check it started.
#[derive(Debug, Clone, PartialEq)]
pub struct ForumMonitor {
    /// The `forum_monitor` job that re-checks the thread.
    pub job: Job,
    /// False when the thread was already monitored (re-checked, not duplicated).
    pub created: bool,
    /// The check queued now, or the one still running from before.
    pub run: JobRun,
    /// The check's queue item id.
    pub queue_id: Option<i64>,
}

fn thread_url(raw: &str) -> Result<url::Url, Error> {
    match url::Url::parse(raw.trim()) {
        Ok(mut url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            url.set_fragment(None);
            Ok(url)
        }
        _ => Err(Error::invalid(
            "thread_url",
            format!("must be an http(s) URL, not {raw:?}"),
        )),
    }
}

impl CronScheduler {
    /// [`Scheduler::monitor_forum`](super::Scheduler::monitor_forum).
    pub(crate) async fn monitor_thread(
        &self,
        request: ForumMonitorRequest,
    ) -> Result<ForumMonitor, Error> {
        let now = self.clock.now();
        let forum_name = request.forum_name.trim().to_owned();
        if forum_name.is_empty() {
            return Err(Error::invalid("forum_name", "must not be empty"));
        }
        let url = thread_url(&request.thread_url)?;
        let days = request.monitor_days.unwrap_or(DEFAULT_MONITOR_DAYS);
        if !(1..=MAX_MONITOR_DAYS).contains(&days) {
            return Err(Error::invalid(
                "monitor_days",
                format!("must be between 1 and {MAX_MONITOR_DAYS}"),
            ));
        }
        let until = now + Duration::days(i64::from(days));
        let existing = self.store.list_jobs().await?.into_iter().find(|job| {
            job.spec.kind == JobKind::ForumMonitor
                && job.spec.config.url.as_deref() == Some(url.as_str())
        });
        match existing {
            Some(job) => self.recheck(job, request, until, now).await,
            None => {
                self.create_monitor(request, forum_name, url, until, now)
                    .await
            }
        }
    }

    async fn recheck(
        &self,
        job: Job,
        request: ForumMonitorRequest,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ForumMonitor, Error> {
        let schedule = super::Schedule::parse(
            request.schedule.as_deref().unwrap_or(&job.spec.schedule),
            request.timezone.as_deref().or(job.spec.timezone.as_deref()),
        )?;
        // The definition re-read just before writing, so a change made
        // meanwhile is kept.
        let job = self.store.get_job(&job.id).await?;
        let mut spec = job.spec;
        spec.monitor_until = Some(spec.monitor_until.map_or(until, |old| old.max(until)));
        if let Some(title) = request.thread_title.filter(|t| !t.trim().is_empty()) {
            spec.config.thread_title = Some(title.trim().to_owned());
        }
        let retime = request.schedule.is_some() || request.timezone.is_some();
        if retime {
            spec.schedule = schedule.expr().to_owned();
            spec.timezone = schedule.timezone().map(|tz| tz.name().to_owned());
        }
        spec.enabled = true;
        let next_run = if retime || job.state.next_run.is_none() {
            NextRun::Set(schedule.next_after(now))
        } else {
            NextRun::Keep
        };
        let job = self
            .store
            .update_job_spec(&job.id, spec, next_run, self.clock.now())
            .await?;
        if let Some(active) = self.active_run(&job, now).await? {
            return Ok(ForumMonitor {
                queue_id: active.queue_id,
                run: active,
                job,
                created: false,
            });
        }
        let fired = self.start_run(&job, None, now).await?;
        let job = self.store.get_job(&job.id).await?;
        Ok(monitor(job, false, fired))
    }

    async fn create_monitor(
        &self,
        request: ForumMonitorRequest,
        forum_name: String,
        url: url::Url,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ForumMonitor, Error> {
        let title = request
            .thread_title
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let config = JobConfig {
            url: Some(url.to_string()),
            thread_title: title.clone(),
            ..JobConfig::default()
        };
        let id = slug(&[
            "forum",
            url.host_str().unwrap_or_default(),
            url.path(),
            url.query().unwrap_or_default(),
        ]);
        let spec = JobSpec {
            name: title.unwrap_or_else(|| format!("{forum_name} thread {url}")),
            kind: JobKind::ForumMonitor,
            platform: "forum".to_owned(),
            source: forum_name,
            content_type: String::new(),
            schedule: request.schedule.unwrap_or_else(|| DEFAULT_SCHEDULE.into()),
            timezone: request.timezone.filter(|tz| !tz.trim().is_empty()),
            enabled: true,
            catch_up: CatchUp::Once,
            config,
            monitor_until: Some(until),
        };
        let mut job = Job::new(id, spec, now);
        let settings = self.settings.current();
        let schedule = jobs::validate_job(&mut job.spec, &self.registry, &settings, now, true)
            .await
            .map_err(|err| match err {
                // The request names the thread `thread_url`, the job `config.url`.
                Error::Invalid { field, reason } if field == "config.url" => {
                    Error::invalid("thread_url", reason)
                }
                Error::Invalid { field, reason } if field == "source" => {
                    Error::invalid("forum_name", reason)
                }
                other => other,
            })?;
        let job = job.with_next_run(schedule.next_after(now));
        let job = self.insert_with_unique_id(job).await?;
        let fired = self.start_run(&job, None, now).await?;
        let job = self.store.get_job(&job.id).await?;
        Ok(monitor(job, true, fired))
    }
}

fn monitor(job: Job, created: bool, fired: Fired) -> ForumMonitor {
    ForumMonitor {
        job,
        created,
        queue_id: fired.queue_item.as_ref().map(|item| item.id),
        run: fired.run,
    }
}
