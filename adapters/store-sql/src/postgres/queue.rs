//! The work queue with leases.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{
    Completion, LeaseToken, Leased, NewQueueItem, Page, Paged, QueueCounts, QueueFilter, QueueItem,
    QueuePatch, QueueProgress, QueueStats, QueueStatus, WorkerId,
};
use mediadl::store::rules::{self, QueueTransition, to_micros};
use mediadl::store::{QueueRepo, StoreResult};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::error::map_err;
use super::rows::{QueueRow, convert_all, from_i64, to_i32};

const ENQUEUE: &str = include_str!("../../queries/postgres/enqueue.sql");
const CLAIM: &str = include_str!("../../queries/postgres/claim.sql");
const RENEW: &str = include_str!("../../queries/postgres/renew.sql");
const RECORD_PROGRESS: &str = include_str!("../../queries/postgres/record_progress.sql");
const COMPLETE: &str = include_str!("../../queries/postgres/complete.sql");
const COMPLETE_MANY: &str = include_str!("../../queries/postgres/complete_many.sql");
const FAIL: &str = include_str!("../../queries/postgres/fail.sql");
const RELEASE: &str = include_str!("../../queries/postgres/release.sql");
const REQUEUE_EXPIRED: &str = include_str!("../../queries/postgres/requeue_expired.sql");

fn lease_lost(lease: &LeaseToken) -> StoreError {
    StoreError::LeaseLost {
        queue_id: lease.queue_id,
    }
}

fn not_found(id: i64) -> StoreError {
    StoreError::not_found("queue item", id)
}

/// A row of `complete_many.sql`: the completed item and the lease it was
/// completed under.
#[derive(sqlx::FromRow)]
struct CompletedRow {
    #[sqlx(flatten)]
    row: QueueRow,
    completed_token: uuid::Uuid,
    completed_worker: String,
}

/// Puts the rows a batched completion returned in the order of the batch;
/// a completion without its row lost its lease. A lease named twice
/// completes once, as two calls to `complete` would.
fn match_completions(
    done: &[Completion],
    completed: Vec<CompletedRow>,
) -> StoreResult<Vec<StoreResult<QueueItem>>> {
    let mut by_lease = completed
        .into_iter()
        .map(|completed| {
            let item = QueueItem::try_from(completed.row)?;
            let lease = (
                item.id,
                completed.completed_token,
                completed.completed_worker,
            );
            Ok((lease, item))
        })
        .collect::<StoreResult<HashMap<_, _>>>()?;
    Ok(done
        .iter()
        .map(|completion| {
            by_lease
                .remove(&(
                    completion.lease.queue_id,
                    completion.lease.token,
                    completion.lease.worker.0.clone(),
                ))
                .ok_or_else(|| lease_lost(&completion.lease))
        })
        .collect())
}

impl PgStore {
    /// Runs a statement guarded by `lease` (its first three parameters are
    /// id, token, worker) that returns the row; no row means the lease is gone.
    async fn leased_write(
        &self,
        lease: &LeaseToken,
        query: sqlx::query::QueryAs<'_, Postgres, QueueRow, sqlx::postgres::PgArguments>,
    ) -> StoreResult<QueueItem> {
        query
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| lease_lost(lease))
            .and_then(QueueItem::try_from)
    }

    async fn fetch_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        sqlx::query_as::<_, QueueRow>("SELECT * FROM queue WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| not_found(id))
            .and_then(QueueItem::try_from)
    }
}

fn leased<'q>(
    sql: &'static str,
    lease: &LeaseToken,
) -> sqlx::query::QueryAs<'q, Postgres, QueueRow, sqlx::postgres::PgArguments> {
    sqlx::query_as::<_, QueueRow>(sql)
        .bind(lease.queue_id)
        .bind(lease.token)
        .bind(lease.worker.0.clone())
}

/// `sql` with the lease's item, token and worker bound as `$1`–`$3`, for
/// writes that change nothing once the lease is lost.
fn under_lease<'q>(
    sql: &'static str,
    lease: &LeaseToken,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(lease.queue_id)
        .bind(lease.token)
        .bind(lease.worker.0.clone())
}

/// `LeaseLost` when a write under `lease` matched no row.
fn held(done: sqlx::postgres::PgQueryResult, lease: &LeaseToken) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        return Err(lease_lost(lease));
    }
    Ok(())
}

#[async_trait]
impl QueueRepo for PgStore {
    async fn enqueue(&self, new: NewQueueItem, now: DateTime<Utc>) -> StoreResult<QueueItem> {
        rules::validate_new_queue_item(&new)?;
        sqlx::query_as::<_, QueueRow>(ENQUEUE)
            .bind(new.url)
            .bind(new.platform)
            .bind(new.source)
            .bind(new.content_type)
            .bind(new.referer)
            .bind(new.save_path)
            .bind(i16::from(new.priority))
            .bind(to_i32("max_attempts", new.max_attempts)?)
            .bind(to_micros(now))
            .bind(Json(new.options))
            .bind(Json(new.metadata))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
            .and_then(QueueItem::try_from)
    }

    async fn get_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        self.fetch_queue_item(id).await
    }

    async fn list_queue(&self, filter: &QueueFilter, page: Page) -> StoreResult<Paged<QueueItem>> {
        let page = Page::new(page.page, page.per_page);
        let push_filter = |query: &mut QueryBuilder<Postgres>| {
            query.push(" WHERE TRUE");
            if let Some(status) = filter.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(platform) = &filter.platform {
                query.push(" AND platform = ").push_bind(platform.clone());
            }
        };
        let mut list = QueryBuilder::new("SELECT * FROM queue");
        push_filter(&mut list);
        list.push(" ORDER BY priority, created_date, id LIMIT ")
            .push_bind(i64::from(page.per_page))
            .push(" OFFSET ")
            .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
        let mut count = QueryBuilder::new("SELECT count(*) FROM queue");
        push_filter(&mut count);
        let (rows, total) = futures::try_join!(
            list.build_query_as::<QueueRow>().fetch_all(&self.pool),
            count.build_query_scalar::<i64>().fetch_one(&self.pool),
        )
        .map_err(map_err)?;
        Ok(Paged {
            items: convert_all(rows)?,
            total: from_i64("count", total)?,
        })
    }

    async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM queue GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        let mut counts = QueueCounts::default();
        for (status, n) in rows {
            let status: QueueStatus = status
                .parse()
                .map_err(|_| StoreError::Internal(format!("unknown queue status {status:?}")))?;
            counts.add(status, from_i64("count", n)?);
        }
        Ok(counts)
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        let since = now - chrono::Duration::hours(24);
        let stats = sqlx::query_as::<_, (Option<f64>, Option<f64>, i64)>(
            "SELECT \
               (SELECT avg(extract(epoch FROM started_at - created_date))::float8 \
                FROM queue WHERE started_at >= $1), \
               (SELECT avg(extract(epoch FROM download_date - started_at))::float8 \
                FROM queue WHERE download_date >= $1 AND started_at IS NOT NULL \
                  AND status IN ('completed', 'failed')), \
               (SELECT count(DISTINCT assigned_worker) FROM queue \
                WHERE status = 'downloading' AND lease_expires_at > $2)",
        )
        .bind(since)
        .bind(now);
        let (counts, (avg_wait, avg_run, active)) =
            futures::try_join!(self.queue_counts(), async {
                stats.fetch_one(&self.pool).await.map_err(map_err)
            },)?;
        Ok(QueueStats {
            counts,
            avg_wait_time_seconds: avg_wait,
            avg_run_time_seconds: avg_run,
            active_workers: from_i64("active workers", active)?,
        })
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        n: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Leased>> {
        let now = to_micros(now);
        let until = rules::lease_until(now, lease_for)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as::<_, QueueRow>(CLAIM)
            .bind(now)
            .bind(worker.0.clone())
            .bind(until)
            .bind(i64::from(n))
            .fetch_all(&self.lease_pool)
            .await
            .map_err(map_err)?;
        let mut claimed = rows
            .into_iter()
            .map(QueueRow::into_leased)
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING has no order: most urgent first, as the claim chose them.
        claimed.sort_by_key(|leased| {
            (
                leased.item.priority,
                leased.item.created_date,
                leased.item.id,
            )
        });
        Ok(claimed)
    }

    async fn renew(
        &self,
        lease: &LeaseToken,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let until = rules::lease_until(to_micros(now), lease_for)?;
        let done = under_lease(RENEW, lease)
            .bind(until)
            .execute(&self.lease_pool)
            .await
            .map_err(map_err)?;
        held(done, lease)
    }

    async fn record_progress(
        &self,
        lease: &LeaseToken,
        progress: QueueProgress,
    ) -> StoreResult<()> {
        rules::validate_progress(progress.progress)?;
        let items_total = progress
            .items_total
            .map(|total| to_i32("items_total", total))
            .transpose()?;
        let done = under_lease(RECORD_PROGRESS, lease)
            .bind(i16::from(progress.progress))
            .bind(to_i32("items_downloaded", progress.items_downloaded)?)
            .bind(items_total)
            .bind(progress.estimated_completion.map(to_micros))
            .execute(&self.lease_pool)
            .await
            .map_err(map_err)?;
        held(done, lease)
    }

    async fn complete(
        &self,
        lease: &LeaseToken,
        items_downloaded: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let query = leased(COMPLETE, lease)
            .bind(to_micros(now))
            .bind(to_i32("items_downloaded", items_downloaded)?);
        self.leased_write(lease, query).await
    }

    async fn complete_many(&self, done: &[Completion]) -> StoreResult<Vec<StoreResult<QueueItem>>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let items_downloaded = done
            .iter()
            .map(|completion| to_i32("items_downloaded", completion.items_downloaded))
            .collect::<StoreResult<Vec<_>>>()?;
        let rows = sqlx::query_as::<_, CompletedRow>(COMPLETE_MANY)
            .bind(done.iter().map(|c| c.lease.queue_id).collect::<Vec<_>>())
            .bind(done.iter().map(|c| c.lease.token).collect::<Vec<_>>())
            .bind(
                done.iter()
                    .map(|c| c.lease.worker.0.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                done.iter()
                    .map(|c| to_micros(c.finished_at))
                    .collect::<Vec<_>>(),
            )
            .bind(items_downloaded)
            .fetch_all(&self.lease_pool)
            .await
            .map_err(map_err)?;
        match_completions(done, rows)
    }

    async fn fail(
        &self,
        lease: &LeaseToken,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let query = leased(FAIL, lease)
            .bind(error.to_owned())
            .bind(retry_at.map(to_micros))
            .bind(to_micros(now));
        self.leased_write(lease, query).await
    }

    async fn release(
        &self,
        lease: &LeaseToken,
        reason: Option<String>,
        not_before: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let query = leased(RELEASE, lease)
            .bind(to_micros(not_before))
            .bind(reason);
        self.leased_write(lease, query).await
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueItem>> {
        let mut rows = sqlx::query_as::<_, QueueRow>(REQUEUE_EXPIRED)
            .bind(to_micros(now))
            .fetch_all(&self.lease_pool)
            .await
            .map_err(map_err)?;
        let mut items: Vec<QueueItem> = convert_all(std::mem::take(&mut rows))?;
        items.sort_by_key(|item| item.id);
        Ok(items)
    }

    async fn update_queue_item(
        &self,
        id: i64,
        patch: QueuePatch,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        if let Some(priority) = patch.priority {
            rules::validate_priority(priority)?;
        }
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Locks the row so a concurrent claim or completion sees the change
        // whole, and the transition is checked against the current status.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM queue WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let from: QueueStatus = status
            .ok_or_else(|| not_found(id))?
            .parse()
            .map_err(|err| StoreError::Internal(format!("queue item {id}: {err}")))?;
        let transition = rules::queue_transition(id, from, patch.status)?;
        let mut query = QueryBuilder::<Postgres>::new("UPDATE queue SET id = id");
        if let Some(priority) = patch.priority {
            query.push(", priority = ").push_bind(i16::from(priority));
        }
        match transition {
            QueueTransition::Pause { interrupts_attempt } => {
                query.push(", status = 'paused', estimated_completion = NULL");
                if interrupts_attempt {
                    // The worker's lease is void.
                    query.push(
                        ", attempts = GREATEST(attempts - 1, 0), \
                         lease_token = NULL, lease_expires_at = NULL",
                    );
                }
            }
            QueueTransition::Resume => {
                query
                    .push(", status = 'pending', next_attempt_at = ")
                    .push_bind(to_micros(now));
            }
            QueueTransition::Stay => {}
        }
        query
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" RETURNING *");
        let row = query
            .build_query_as::<QueueRow>()
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        QueueItem::try_from(row)
    }

    async fn retry_queue_item(
        &self,
        id: i64,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let current: Option<(String, i32)> =
            sqlx::query_as("SELECT status, attempts FROM queue WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let (status, attempts) = current.ok_or_else(|| not_found(id))?;
        let status: QueueStatus = status
            .parse()
            .map_err(|err| StoreError::Internal(format!("queue item {id}: {err}")))?;
        let attempts = u32::try_from(attempts).unwrap_or(0);
        let max_attempts = rules::retry_max_attempts(id, status, attempts, extra_attempts)?;
        let row = sqlx::query_as::<_, QueueRow>(
            "UPDATE queue SET status = 'pending', max_attempts = $2, next_attempt_at = $3, \
             download_date = NULL, error_message = NULL, progress = 0 \
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(to_i32("max_attempts", max_attempts)?)
        .bind(to_micros(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        QueueItem::try_from(row)
    }

    async fn delete_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        sqlx::query_as::<_, QueueRow>("DELETE FROM queue WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| not_found(id))
            .and_then(QueueItem::try_from)
    }

    async fn clear_queue(&self, statuses: &[QueueStatus]) -> StoreResult<u64> {
        if statuses.is_empty() {
            return Ok(0);
        }
        let statuses: Vec<&str> = statuses.iter().map(|status| status.as_str()).collect();
        let done = sqlx::query("DELETE FROM queue WHERE status = ANY($1)")
            .bind(statuses)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
