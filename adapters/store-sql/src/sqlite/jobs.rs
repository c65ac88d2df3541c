//! Scheduled jobs and their run history on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{Job, JobRun, JobSpec, NextRun, RunFilter, RunStatus};
use mediadl::store::rules;
use mediadl::store::{JobRepo, StoreResult};
use sqlx::{QueryBuilder, Sqlite};

use super::rows::{self, enum_name, json_text, micros, opt_micros};
use super::{SqliteStore, change_existing, map_err};

/// Binds a new job's 22 columns in the order of the insert statement.
fn bind_job<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    job: &Job,
) -> StoreResult<sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let state = &job.state;
    Ok(bind_spec(query.bind(job.id.clone()), &job.spec)?
        .bind(opt_micros(state.last_run))
        .bind(state.last_run_status.map(RunStatus::as_str))
        .bind(state.last_run_items.map(i64::from))
        .bind(opt_micros(state.next_run))
        .bind(opt_micros(state.last_slot))
        .bind(count(state.total_runs))
        .bind(count(state.success_count))
        .bind(count(state.failure_count))
        .bind(micros(job.created_at))
        .bind(micros(job.updated_at)))
}

/// Binds the 11 columns of a job's definition, from `name` to `monitor_until`.
fn bind_spec<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    spec: &JobSpec,
) -> StoreResult<sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>> {
    Ok(query
        .bind(spec.name.clone())
        .bind(enum_name(&spec.kind)?)
        .bind(spec.platform.clone())
        .bind(spec.source.clone())
        .bind(spec.content_type.clone())
        .bind(spec.schedule.clone())
        .bind(spec.timezone.clone())
        .bind(spec.enabled)
        .bind(enum_name(&spec.catch_up)?)
        .bind(json_text(&spec.config)?)
        .bind(opt_micros(spec.monitor_until)))
}

async fn fetch_run(conn: &mut sqlx::SqliteConnection, run_id: i64) -> StoreResult<JobRun> {
    let row = sqlx::query("SELECT * FROM job_runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("job run", run_id))?;
    rows::job_run(&row)
}

#[async_trait]
impl JobRepo for SqliteStore {
    async fn create_job(&self, job: Job) -> StoreResult<Job> {
        rules::validate_job_id(&job.id)?;
        let mut conn = self.write_conn().await?;
        let row = bind_job(
            sqlx::query(
                "INSERT INTO jobs (id, name, kind, platform, source, content_type, schedule, \
                 timezone, enabled, catch_up, config, monitor_until, last_run, last_run_status, \
                 last_run_items, next_run, last_slot, total_runs, success_count, failure_count, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) RETURNING *",
            ),
            &job,
        )?
        .fetch_one(&mut *conn)
        .await
        .map_err(|err| match map_err(err) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("job {} exists", job.id)),
            other => other,
        })?;
        rows::job(&row)
    }

    async fn get_job(&self, id: &str) -> StoreResult<Job> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("job", id))?;
        rows::job(&row)
    }

    async fn list_jobs(&self) -> StoreResult<Vec<Job>> {
        sqlx::query("SELECT * FROM jobs ORDER BY id")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::job)
            .collect()
    }

    async fn update_job_spec(
        &self,
        id: &str,
        spec: JobSpec,
        next_run: NextRun,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        // `keep_next_run` picks the stored value inside the statement, so
        // nothing read before it is written back.
        let (keep_next_run, next_run) = match next_run {
            NextRun::Keep => (true, None),
            NextRun::Set(next_run) => (false, next_run),
        };
        let mut conn = self.write_conn().await?;
        let row = bind_spec(
            sqlx::query(
                "UPDATE jobs SET name = $2, kind = $3, platform = $4, source = $5, \
                 content_type = $6, schedule = $7, timezone = $8, enabled = $9, catch_up = $10, \
                 config = $11, monitor_until = $12, \
                 next_run = CASE WHEN NOT $9 THEN NULL WHEN $13 THEN next_run ELSE $14 END, \
                 updated_at = $15 WHERE id = $1 RETURNING *",
            )
            .bind(id.to_string()),
            &spec,
        )?
        .bind(keep_next_run)
        .bind(opt_micros(next_run))
        .bind(micros(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("job", id))?;
        rows::job(&row)
    }

    async fn set_job_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let mut conn = self.write_conn().await?;
        let row = sqlx::query(
            "UPDATE jobs SET enabled = $2, next_run = $3, updated_at = $4 \
             WHERE id = $1 RETURNING *",
        )
        .bind(id.to_string())
        .bind(enabled)
        .bind(opt_micros(rules::stored_next_run(enabled, next_run)))
        .bind(micros(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("job", id))?;
        rows::job(&row)
    }

    async fn delete_job(&self, id: &str) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        // The runs go with the job (ON DELETE CASCADE).
        change_existing(
            sqlx::query("DELETE FROM jobs WHERE id = $1").bind(id.to_string()),
            &mut conn,
            "job",
            id,
        )
        .await
    }

    async fn claim_slot(
        &self,
        job_id: &str,
        slot: DateTime<Utc>,
        next_run: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        let claimed = sqlx::query(
            "UPDATE jobs SET last_slot = $2, next_run = $3 \
             WHERE id = $1 AND (last_slot IS NULL OR last_slot < $2) RETURNING id",
        )
        .bind(job_id.to_string())
        .bind(micros(slot))
        .bind(opt_micros(next_run))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        if claimed.is_some() {
            return Ok(true);
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = $1")
            .bind(job_id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        match exists {
            Some(_) => Ok(false),
            None => Err(StoreError::not_found("job", job_id)),
        }
    }

    async fn open_run(
        &self,
        job_id: &str,
        started_at: DateTime<Utc>,
        status: RunStatus,
        queue_id: Option<i64>,
    ) -> StoreResult<JobRun> {
        rules::validate_run_opening(status)?;
        let skipped = status == RunStatus::Skipped;
        let started = micros(started_at);
        let mut tx = self.write_tx().await?;
        change_existing(
            sqlx::query(
                "UPDATE jobs SET total_runs = total_runs + 1, last_run = $2, \
                 last_run_status = $3, last_run_items = $4 WHERE id = $1",
            )
            .bind(job_id.to_string())
            .bind(started)
            .bind(status.as_str())
            .bind(rules::opening_run_items(status).map(i64::from)),
            &mut tx,
            "job",
            job_id,
        )
        .await?;
        let row = sqlx::query(
            "INSERT INTO job_runs (job_id, started_at, completed_at, duration_seconds, status, \
             items_downloaded, queue_id) VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING *",
        )
        .bind(job_id.to_string())
        .bind(started)
        .bind(skipped.then_some(started))
        .bind(skipped.then_some(0.0_f64))
        .bind(status.as_str())
        .bind(queue_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows::job_run(&row)
    }

    async fn set_run_queue_item(&self, run_id: i64, queue_id: i64) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        change_existing(
            sqlx::query("UPDATE job_runs SET queue_id = $2 WHERE id = $1")
                .bind(run_id)
                .bind(queue_id),
            &mut conn,
            "job run",
            run_id,
        )
        .await
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
        let mut tx = self.write_tx().await?;
        let closed = sqlx::query(
            "UPDATE job_runs SET status = $2, completed_at = $3, \
             duration_seconds = ($3 - started_at) / 1e6, items_downloaded = $4, \
             error_message = $5 WHERE id = $1 AND status = 'running' RETURNING *",
        )
        .bind(run_id)
        .bind(status.as_str())
        .bind(micros(completed_at))
        .bind(i64::from(items_downloaded))
        .bind(error)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = closed else {
            // Closing a closed run changes nothing.
            return fetch_run(&mut tx, run_id).await;
        };
        let run = rows::job_run(&row)?;
        sqlx::query(
            "UPDATE jobs SET success_count = success_count + $2, \
             failure_count = failure_count + $3, last_run_status = $4, last_run_items = $5 \
             WHERE id = $1",
        )
        .bind(run.job_id.clone())
        .bind(i64::from(outcome.successes))
        .bind(i64::from(outcome.failures))
        .bind(status.as_str())
        .bind(i64::from(items_downloaded))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(run)
    }

    async fn active_run(&self, job_id: &str) -> StoreResult<Option<JobRun>> {
        sqlx::query(
            "SELECT * FROM job_runs WHERE job_id = $1 AND status = 'running' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(job_id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(rows::job_run)
        .transpose()
    }

    async fn run_history(&self, filter: &RunFilter) -> StoreResult<Vec<JobRun>> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM job_runs WHERE 1 = 1");
        if let Some(job_id) = &filter.job_id {
            qb.push(" AND job_id = ").push_bind(job_id.clone());
        }
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        qb.push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(rules::run_history_limit(filter.limit)));
        qb.build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::job_run)
            .collect()
    }
}
