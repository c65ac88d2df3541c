//! Scheduled jobs and their run history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{Job, JobRun, JobSpec, NextRun, RunFilter, RunStatus};
use mediadl::store::rules::{self, to_micros};
use mediadl::store::{JobRepo, StoreResult};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::error::{map_err, map_err_conflict};
use super::rows::{JobRow, JobRunRow, convert_all, enum_text, to_i32, to_i64};

const CLAIM_SLOT: &str = include_str!("../../queries/postgres/claim_slot.sql");
const INSERT_JOB: &str = include_str!("../../queries/postgres/insert_job.sql");
const UPDATE_JOB_SPEC: &str = include_str!("../../queries/postgres/update_job_spec.sql");

type JobQuery<'q> = sqlx::query::QueryAs<'q, Postgres, JobRow, sqlx::postgres::PgArguments>;

/// A new job's 22 columns in the order of `insert_job.sql`.
fn bind_job<'q>(query: JobQuery<'q>, job: &Job) -> StoreResult<JobQuery<'q>> {
    let state = &job.state;
    Ok(bind_spec(query.bind(job.id.clone()), &job.spec)?
        .bind(state.last_run.map(to_micros))
        .bind(state.last_run_status.map(RunStatus::as_str))
        .bind(
            state
                .last_run_items
                .map(|items| to_i32("last_run_items", items))
                .transpose()?,
        )
        .bind(state.next_run.map(to_micros))
        .bind(state.last_slot.map(to_micros))
        .bind(to_i64("total_runs", state.total_runs)?)
        .bind(to_i64("success_count", state.success_count)?)
        .bind(to_i64("failure_count", state.failure_count)?)
        .bind(to_micros(job.created_at))
        .bind(to_micros(job.updated_at)))
}

/// The 11 columns of a job's definition, `name` to `monitor_until`, as
/// `$2`–`$12` of `insert_job.sql` and `update_job_spec.sql`.
fn bind_spec<'q>(query: JobQuery<'q>, spec: &JobSpec) -> StoreResult<JobQuery<'q>> {
    Ok(query
        .bind(spec.name.clone())
        .bind(enum_text(&spec.kind)?)
        .bind(spec.platform.clone())
        .bind(spec.source.clone())
        .bind(spec.content_type.clone())
        .bind(spec.schedule.clone())
        .bind(spec.timezone.clone())
        .bind(spec.enabled)
        .bind(enum_text(&spec.catch_up)?)
        .bind(Json(spec.config.clone()))
        .bind(spec.monitor_until.map(to_micros)))
}

fn job_not_found(id: &str) -> StoreError {
    StoreError::not_found("job", id)
}

fn run_not_found(id: i64) -> StoreError {
    StoreError::not_found("job run", id)
}

#[async_trait]
impl JobRepo for PgStore {
    async fn create_job(&self, job: Job) -> StoreResult<Job> {
        rules::validate_job_id(&job.id)?;
        let row = bind_job(sqlx::query_as::<_, JobRow>(INSERT_JOB), &job)?
            .fetch_one(&self.pool)
            .await
            .map_err(|err| map_err_conflict(err, || format!("job {} exists", job.id)))?;
        Job::try_from(row)
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        sqlx::query_as::<_, JobRow>("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| job_not_found(id))
            .and_then(Job::try_from)
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        // `COLLATE "C"`: byte order, like the memory store's BTreeMap.
        let rows = sqlx::query_as::<_, JobRow>("SELECT * FROM jobs ORDER BY id COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        convert_all(rows)
    }

    async fn update_job_spec(
        &self,
        id: &str,
        spec: JobSpec,
        next_run: NextRun,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let (keep_next_run, next_run) = match next_run {
            NextRun::Keep => (true, None),
            NextRun::Set(next_run) => (false, next_run),
        };
        let row = bind_spec(sqlx::query_as::<_, JobRow>(UPDATE_JOB_SPEC).bind(id), &spec)?
            .bind(keep_next_run)
            .bind(next_run.map(to_micros))
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| job_not_found(id))?;
        Job::try_from(row)
    }

    async fn set_job_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let row = sqlx::query_as::<_, JobRow>(
            "UPDATE jobs SET enabled = $2, next_run = $3, updated_at = $4 \
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(enabled)
        .bind(rules::stored_next_run(enabled, next_run))
        .bind(to_micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .ok_or_else(|| job_not_found(id))?;
        Job::try_from(row)
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let deleted = sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if deleted.rows_affected() == 0 {
            return Err(job_not_found(id));
        }
        sqlx::query("DELETE FROM job_runs WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn claim_slot(
        &self,
        job_id: &str,
        slot: DateTime<Utc>,
        next_run: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let claimed: Option<bool> = sqlx::query_scalar(CLAIM_SLOT)
            .bind(job_id)
            .bind(to_micros(slot))
            .bind(next_run.map(to_micros))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        claimed.ok_or_else(|| job_not_found(job_id))
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
        let skipped = status == RunStatus::Skipped;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let updated = sqlx::query(
            "UPDATE jobs SET total_runs = total_runs + 1, last_run = $2, \
             last_run_status = $3, last_run_items = $4 WHERE id = $1",
        )
        .bind(job_id)
        .bind(started_at)
        .bind(status.as_str())
        .bind(
            rules::opening_run_items(status)
                .map(|items| to_i32("last_run_items", items))
                .transpose()?,
        )
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if updated.rows_affected() == 0 {
            return Err(job_not_found(job_id));
        }
        let row = sqlx::query_as::<_, JobRunRow>(
            "INSERT INTO job_runs (job_id, started_at, completed_at, duration_seconds, status, \
             items_downloaded, queue_id) VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING *",
        )
        .bind(job_id)
        .bind(started_at)
        .bind(skipped.then_some(started_at))
        .bind(skipped.then_some(0.0_f64))
        .bind(status.as_str())
        .bind(queue_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        JobRun::try_from(row)
    }

    async fn set_run_queue_item(&self, run_id: i64, queue_id: i64) -> StoreResult<()> {
        let updated = sqlx::query("UPDATE job_runs SET queue_id = $2 WHERE id = $1")
            .bind(run_id)
            .bind(queue_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if updated.rows_affected() == 0 {
            return Err(run_not_found(run_id));
        }
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
        let items = to_i32("items_downloaded", items_downloaded)?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The job row is locked before its run row, the order `open_run` and
        // `delete_job` take, so closing a run never deadlocks with deleting its job.
        sqlx::query(
            "SELECT 1 FROM jobs WHERE id = (SELECT job_id FROM job_runs WHERE id = $1) FOR UPDATE",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // Only a running row closes; a closed one is returned unchanged.
        let closed = sqlx::query_as::<_, JobRunRow>(
            "UPDATE job_runs SET status = $2, completed_at = $3, \
             duration_seconds = extract(epoch FROM $3 - started_at)::float8, \
             items_downloaded = $4, error_message = $5 \
             WHERE id = $1 AND status = 'running' RETURNING *",
        )
        .bind(run_id)
        .bind(status.as_str())
        .bind(completed_at)
        .bind(items)
        .bind(error)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(closed) = closed else {
            let row = sqlx::query_as::<_, JobRunRow>("SELECT * FROM job_runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .ok_or_else(|| run_not_found(run_id))?;
            return JobRun::try_from(row);
        };
        sqlx::query(
            "UPDATE jobs SET success_count = success_count + $2, \
             failure_count = failure_count + $3, last_run_status = $4, last_run_items = $5 \
             WHERE id = $1",
        )
        .bind(&closed.job_id)
        .bind(i64::from(outcome.successes))
        .bind(i64::from(outcome.failures))
        .bind(status.as_str())
        .bind(items)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        JobRun::try_from(closed)
    }

    async fn active_run(&self, job_id: &str) -> StoreResult<Option<JobRun>> {
        sqlx::query_as::<_, JobRunRow>(
            "SELECT * FROM job_runs WHERE job_id = $1 AND status = 'running' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(JobRun::try_from)
        .transpose()
    }

    async fn run_history(&self, filter: &RunFilter) -> StoreResult<Vec<JobRun>> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM job_runs WHERE TRUE");
        if let Some(job_id) = &filter.job_id {
            query.push(" AND job_id = ").push_bind(job_id.clone());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(rules::run_history_limit(filter.limit)));
        let rows = query
            .build_query_as::<JobRunRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        convert_all(rows)
    }
}
