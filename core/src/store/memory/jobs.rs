//! [`JobRepo`] of the [`MemoryStore`](super::MemoryStore): scheduled jobs, slot claims and runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::error::StoreError;
use crate::model::{Job, JobRun, JobSpec, NextRun, RunFilter, RunStatus};
use crate::store::rules::{self, to_micros};
use crate::store::{JobRepo, StoreResult};

fn normalize_spec(mut spec: JobSpec) -> JobSpec {
    spec.monitor_until = spec.monitor_until.map(to_micros);
    spec
}

fn normalize_job(mut job: Job) -> Job {
    job.spec = normalize_spec(job.spec);
    let state = &mut job.state;
    state.last_run = state.last_run.map(to_micros);
    state.next_run = state.next_run.map(to_micros);
    state.last_slot = state.last_slot.map(to_micros);
    job.created_at = to_micros(job.created_at);
    job.updated_at = to_micros(job.updated_at);
    job
}

#[async_trait]
impl JobRepo for MemoryStore {
    async fn create_job(&self, job: Job) -> StoreResult<Job> {
        rules::validate_job_id(&job.id)?;
        let mut state = self.lock()?;
        if state.jobs.contains_key(&job.id) {
            return Err(StoreError::Conflict(format!("job {} exists", job.id)));
        }
        let job = normalize_job(job);
        state.jobs.insert(job.id.clone(), job.clone());
        Ok(job)
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        cloned_row(&self.lock()?.jobs, "job", id)
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        Ok(self.lock()?.jobs.values().cloned().collect())
    }

    async fn update_job_spec(
        &self,
        id: &str,
        spec: JobSpec,
        next_run: NextRun,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let mut state = self.lock()?;
        let job = state.job_mut(id)?;
        let next_run = match next_run {
            NextRun::Keep => job.state.next_run,
            NextRun::Set(next_run) => next_run,
        };
        job.state.next_run = rules::stored_next_run(spec.enabled, next_run);
        job.spec = normalize_spec(spec);
        job.updated_at = to_micros(now);
        Ok(job.clone())
    }

    async fn set_job_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let mut state = self.lock()?;
        let job = state.job_mut(id)?;
        job.spec.enabled = enabled;
        job.state.next_run = rules::stored_next_run(enabled, next_run);
        job.updated_at = to_micros(now);
        Ok(job.clone())
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let mut state = self.lock()?;
        state
            .jobs
            .remove(id)
            .ok_or_else(|| StoreError::not_found("job", id))?;
        state.runs.retain(|_, run| run.job_id != id);
        Ok(())
    }

    async fn claim_slot(
        &self,
        job_id: &str,
        slot: DateTime<Utc>,
        next_run: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let slot = to_micros(slot);
        let mut state = self.lock()?;
        let job = state.job_mut(job_id)?;
        if job.state.last_slot.is_some_and(|last| last >= slot) {
            return Ok(false);
        }
        job.state.last_slot = Some(slot);
        job.state.next_run = next_run.map(to_micros);
        Ok(true)
    }

    async fn open_run(
        &self,
        job_id: &str,
        started_at: DateTime<Utc>,
        status: RunStatus,
        queue_id: Option<i64>,
    ) -> StoreResult<JobRun> {
        rules::validate_run_opening(status)?;
        let started_at = to_micros(started_at);
        let mut state = self.lock()?;
        if !state.jobs.contains_key(job_id) {
            return Err(StoreError::not_found("job", job_id));
        }
        let id = state.next_id("runs");
        let skipped = status == RunStatus::Skipped;
        let run = JobRun {
            id,
            job_id: job_id.to_string(),
            started_at,
            completed_at: skipped.then_some(started_at),
            duration_seconds: skipped.then_some(0.0),
            status,
            items_downloaded: 0,
            error_message: None,
            queue_id,
        };
        state.runs.insert(id, run.clone());
        let job = &mut state.jobs.get_mut(job_id).expect("checked above").state;
        job.total_runs += 1;
        job.last_run = Some(started_at);
        job.last_run_status = Some(status);
        job.last_run_items = rules::opening_run_items(status);
        Ok(run)
    }

    async fn set_run_queue_item(&self, run_id: i64, queue_id: i64) -> StoreResult<()> {
        let mut state = self.lock()?;
        let run = state
            .runs
            .get_mut(&run_id)
            .ok_or_else(|| StoreError::not_found("job run", run_id))?;
        run.queue_id = Some(queue_id);
        Ok(())
    }

    async fn close_run(
        &self,
        run_id: i64,
        status: RunStatus,
        items_downloaded: u32,
        error: Option<String>,
        completed_at: DateTime<Utc>,
    ) -> StoreResult<JobRun> {
        let outcome = rules::run_outcome(status)?;
        let completed_at = to_micros(completed_at);
        let mut state = self.lock()?;
        let run = state
            .runs
            .get_mut(&run_id)
            .ok_or_else(|| StoreError::not_found("job run", run_id))?;
        if run.status != RunStatus::Running {
            return Ok(run.clone());
        }
        run.status = status;
        run.completed_at = Some(completed_at);
        run.duration_seconds = Some(seconds_between(run.started_at, completed_at));
        run.items_downloaded = items_downloaded;
        run.error_message = error;
        let run = run.clone();
        if let Some(job) = state.jobs.get_mut(&run.job_id).map(|job| &mut job.state) {
            job.success_count += u64::from(outcome.successes);
            job.failure_count += u64::from(outcome.failures);
            job.last_run_status = Some(status);
            job.last_run_items = Some(items_downloaded);
        }
        Ok(run)
    }

    async fn active_run(&self, job_id: &str) -> StoreResult<Option<JobRun>> {
        Ok(self
            .lock()?
            .runs
            .values()
            .rev()
            .find(|run| run.job_id == job_id && run.status == RunStatus::Running)
            .cloned())
    }

    async fn run_history(&self, filter: &RunFilter) -> StoreResult<Vec<JobRun>> {
        let state = self.lock()?;
        let mut runs: Vec<&JobRun> = state
            .runs
            .values()
            .filter(|run| filter.job_id.as_ref().is_none_or(|id| &run.job_id == id))
            .filter(|run| filter.status.is_none_or(|s| run.status == s))
            .collect();
        runs.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(runs
            .into_iter()
            .take(rules::run_history_limit(filter.limit) as usize)
            .cloned()
            .collect())
    }
}
