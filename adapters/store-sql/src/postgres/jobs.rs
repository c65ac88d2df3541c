//! Scheduled jobs and their run history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{Job, JobRun, RunFilter, RunStatus};
use mediadl::store::rules::{self, to_micros};
use mediadl::store::{JobRepo, StoreResult};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::error::{map_err, map_err_conflict};
use super::rows::{JobRow, JobRunRow, convert_all, enum_text, to_i32, to_i64};

const CLAIM_SLOT: &str = include_str!("../../queries/postgres/claim_slot.sql");
const INSERT_JOB: &str = include_str!("../../queries/postgres/insert_job.sql");
const UPDATE_JOB: &str = include_str!("../../queries/postgres/update_job.sql");

/// The job's 22 columns in the order of `insert_job.sql` and `update_job.sql`.
fn bind_job<'q>(
    query: sqlx::query::QueryAs<'q, Postgres, JobRow, sqlx::postgres::PgArguments>,
    job: &Job,
) -> StoreResult<sqlx::query::QueryAs<'q, Postgres, JobRow, sqlx::postgres::PgArguments>> {
    Ok(query
        .bind(job.id.clone())
        .bind(job.name.clone())
        .bind(enum_text(&job.kind)?)
        .bind(job.platform.clone())
        .bind(job.source.clone())
        .bind(job.content_type.clone())
        .bind(job.schedule.clone())
        .bind(job.timezone.clone())
        .bind(job.enabled)
        .bind(enum_text(&job.catch_up)?)
        .bind(Json(job.config.clone()))
        .bind(job.monitor_until.map(to_micros))
        .bind(job.last_run.map(to_micros))
        .bind(job.last_run_status.map(RunStatus::as_str))
        .bind(
            job.last_run_items
                .map(|items| to_i32("last_run_items", items))
                .transpose()?,
        )
        .bind(job.next_run.map(to_micros))
        .bind(job.last_slot.map(to_micros))
        .bind(to_i64("total_runs", job.total_runs)?)
        .bind(to_i64("success_count", job.success_count)?)
        .bind(to_i64("failure_count", job.failure_count)?)
        .bind(to_micros(job.created_at))
        .bind(to_micros(job.updated_at)))
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

    async fn update_job(&self, job: Job) -> StoreResult<Job> {
        let row = bind_job(sqlx::query_as::<_, JobRow>(UPDATE_JOB), &job)?
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| job_not_found(&job.id))?;
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
        if !matches!(status, RunStatus::Running | RunStatus::Skipped) {
            return Err(StoreError::Invalid(format!(
                "a run opens as running or skipped, not {}",
                status.as_str()
            )));
        }
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
        .bind(skipped.then_some(0_i32))
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
        if !matches!(status, RunStatus::Success | RunStatus::Failure) {
            return Err(StoreError::Invalid(format!(
                "a run closes as success or failure, not {}",
                status.as_str()
            )));
        }
        let completed_at = to_micros(completed_at);
        let items = to_i32("items_downloaded", items_downloaded)?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
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
        let (success, failure) = match status {
            RunStatus::Success => (1_i64, 0_i64),
            _ => (0, 1),
        };
        sqlx::query(
            "UPDATE jobs SET success_count = success_count + $2, \
             failure_count = failure_count + $3, last_run_status = $4, last_run_items = $5 \
             WHERE id = $1",
        )
        .bind(&closed.job_id)
        .bind(success)
        .bind(failure)
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
