//! The work queue on SQLite. Every worker transition is one
//! `UPDATE … RETURNING` guarded by the lease token, so it either applies to
//! the lease holder or to nobody.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{
    Completion, LeaseToken, Leased, NewQueueItem, Page, Paged, QueueCounts, QueueFilter, QueueItem,
    QueuePatch, QueueProgress, QueueStats, QueueStatus, WorkerId,
};
use mediadl::store::rules::{self, QueueTransition};
use mediadl::store::{QueueRepo, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{self, json_text, micros, opt_micros};
use super::{SqliteStore, map_err};

const CLAIM: &str = "UPDATE queue SET status = 'downloading', attempts = attempts + 1, \
    started_at = $1, assigned_worker = $2, lease_expires_at = $3, \
    lease_token = lower(hex(randomblob(16))) \
    WHERE id IN (SELECT id FROM queue WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY priority, created_date, id LIMIT $4) \
    RETURNING *";

/// The condition every write under a lease carries (`$1` id, `$2` token, `$3` worker).
macro_rules! held {
    () => {
        "id = $1 AND lease_token = $2 AND assigned_worker = $3 AND status = 'downloading'"
    };
}

const COMPLETE: &str = concat!(
    "UPDATE queue SET status = 'completed', download_date = $4, progress = 100, \
     items_downloaded = $5, error_message = NULL, estimated_completion = NULL, \
     lease_token = NULL, lease_expires_at = NULL WHERE ",
    held!(),
    " RETURNING *",
);

fn token_text(lease: &LeaseToken) -> String {
    lease.token.simple().to_string()
}

/// Runs a statement guarded by `held!()`; no row means the lease is gone.
async fn under_lease(
    store: &SqliteStore,
    sql: &'static str,
    lease: &LeaseToken,
    extra: impl FnOnce(
        sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
) -> StoreResult<SqliteRow> {
    let query = sqlx::query(sql)
        .bind(lease.queue_id)
        .bind(token_text(lease))
        .bind(lease.worker.0.clone());
    let mut conn = store.write_conn().await?;
    extra(query)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::LeaseLost {
            queue_id: lease.queue_id,
        })
}

fn push_filter(qb: &mut QueryBuilder<Sqlite>, filter: &QueueFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(platform) = &filter.platform {
        qb.push(" AND platform = ").push_bind(platform.clone());
    }
}

async fn fetch_item(conn: &mut sqlx::SqliteConnection, id: i64) -> StoreResult<QueueItem> {
    let row = sqlx::query("SELECT * FROM queue WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("queue item", id))?;
    rows::queue_item(&row)
}

#[async_trait]
impl QueueRepo for SqliteStore {
    async fn enqueue(&self, new: NewQueueItem, now: DateTime<Utc>) -> StoreResult<QueueItem> {
        rules::validate_new_queue_item(&new)?;
        let now = micros(now);
        let mut conn = self.write_conn().await?;
        let row = sqlx::query(
            "INSERT INTO queue (url, platform, source, content_type, referer, save_path, \
             priority, status, max_attempts, created_date, next_attempt_at, options, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9, $10, $11) RETURNING *",
        )
        .bind(new.url.clone())
        .bind(new.platform.clone())
        .bind(new.source.clone())
        .bind(new.content_type.clone())
        .bind(new.referer.clone())
        .bind(new.save_path.clone())
        .bind(i64::from(new.priority))
        .bind(i64::from(new.max_attempts))
        .bind(now)
        .bind(json_text(&new.options)?)
        .bind(json_text(&new.metadata)?)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        rows::queue_item(&row)
    }

    async fn get_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        fetch_item(&mut conn, id).await
    }

    async fn list_queue(&self, filter: &QueueFilter, page: Page) -> StoreResult<Paged<QueueItem>> {
        let page = Page::new(page.page, page.per_page);
        let mut qb = QueryBuilder::new("SELECT * FROM queue");
        push_filter(&mut qb, filter);
        qb.push(" ORDER BY priority, created_date, id LIMIT ")
            .push_bind(i64::from(page.per_page))
            .push(" OFFSET ")
            .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
        let items = qb
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::queue_item)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM queue");
        push_filter(&mut count, filter);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(Paged {
            items,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM queue GROUP BY status")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let mut counts = QueueCounts::default();
        for row in rows {
            let status: String = row.try_get(0).map_err(map_err)?;
            let n: i64 = row.try_get(1).map_err(map_err)?;
            let status = status
                .parse::<QueueStatus>()
                .map_err(|err| StoreError::Internal(format!("corrupt queue status: {err}")))?;
            counts.add(status, u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        let counts = self.queue_counts().await?;
        let since = micros(now - chrono::Duration::hours(24));
        let row = sqlx::query(
            "SELECT \
               (SELECT AVG((started_at - created_date) / 1e6) FROM queue \
                WHERE started_at >= $1), \
               (SELECT AVG((download_date - started_at) / 1e6) FROM queue \
                WHERE download_date >= $1 AND started_at IS NOT NULL \
                  AND status IN ('completed', 'failed')), \
               (SELECT COUNT(DISTINCT assigned_worker) FROM queue \
                WHERE status = 'downloading' AND lease_expires_at > $2)",
        )
        .bind(since)
        .bind(micros(now))
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        let active: i64 = row.try_get(2).map_err(map_err)?;
        Ok(QueueStats {
            counts,
            avg_wait_time_seconds: row.try_get(0).map_err(map_err)?,
            avg_run_time_seconds: row.try_get(1).map_err(map_err)?,
            active_workers: u64::try_from(active).unwrap_or(0),
        })
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        n: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Leased>> {
        let until = rules::lease_until(now, lease_for)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.write_conn().await?;
        let rows = sqlx::query(CLAIM)
            .bind(micros(now))
            .bind(worker.0.clone())
            .bind(micros(until))
            .bind(i64::from(n))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        drop(conn);
        let mut claimed = rows
            .iter()
            .map(|row| {
                let item = rows::queue_item(row)?;
                let lease = LeaseToken {
                    queue_id: item.id,
                    worker: worker.clone(),
                    token: rows::lease_token(row)?,
                };
                Ok(Leased { item, lease })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING gives no order: hand items out most urgent first.
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
        let until = rules::lease_until(now, lease_for)?;
        under_lease(
            self,
            concat!(
                "UPDATE queue SET lease_expires_at = $4 WHERE ",
                held!(),
                " RETURNING id"
            ),
            lease,
            |query| query.bind(micros(until)),
        )
        .await
        .map(|_| ())
    }

    async fn record_progress(
        &self,
        lease: &LeaseToken,
        progress: QueueProgress,
    ) -> StoreResult<()> {
        rules::validate_progress(progress.progress)?;
        under_lease(
            self,
            concat!(
                "UPDATE queue SET progress = $4, items_downloaded = $5, items_total = $6, \
                 estimated_completion = $7 WHERE ",
                held!(),
                " RETURNING id",
            ),
            lease,
            |query| {
                query
                    .bind(i64::from(progress.progress))
                    .bind(i64::from(progress.items_downloaded))
                    .bind(progress.items_total.map(i64::from))
                    .bind(opt_micros(progress.estimated_completion))
            },
        )
        .await
        .map(|_| ())
    }

    async fn complete(
        &self,
        lease: &LeaseToken,
        items_downloaded: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let row = under_lease(self, COMPLETE, lease, |query| {
            query.bind(micros(now)).bind(i64::from(items_downloaded))
        })
        .await?;
        rows::queue_item(&row)
    }

    async fn complete_many(&self, done: &[Completion]) -> StoreResult<Vec<StoreResult<QueueItem>>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        // One transaction: SQLite's cost per write is the commit, so the
        // batch pays it once.
        let mut tx = self.write_tx().await?;
        let mut results = Vec::with_capacity(done.len());
        for completion in done {
            let row = sqlx::query(COMPLETE)
                .bind(completion.lease.queue_id)
                .bind(token_text(&completion.lease))
                .bind(completion.lease.worker.0.clone())
                .bind(micros(completion.finished_at))
                .bind(i64::from(completion.items_downloaded))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            results.push(match row {
                Some(row) => rows::queue_item(&row),
                None => Err(StoreError::LeaseLost {
                    queue_id: completion.lease.queue_id,
                }),
            });
        }
        tx.commit().await.map_err(map_err)?;
        Ok(results)
    }

    async fn fail(
        &self,
        lease: &LeaseToken,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        // The store, not only the caller, guards the attempt budget.
        let row = under_lease(
            self,
            concat!(
                "UPDATE queue SET error_message = $4, estimated_completion = NULL, \
                 lease_token = NULL, lease_expires_at = NULL, \
                 status = CASE WHEN $5 IS NOT NULL AND attempts < max_attempts \
                          THEN 'pending' ELSE 'failed' END, \
                 next_attempt_at = CASE WHEN $5 IS NOT NULL AND attempts < max_attempts \
                          THEN $5 ELSE next_attempt_at END, \
                 download_date = CASE WHEN $5 IS NOT NULL AND attempts < max_attempts \
                          THEN download_date ELSE $6 END WHERE ",
                held!(),
                " RETURNING *",
            ),
            lease,
            |query| {
                query
                    .bind(error.to_string())
                    .bind(opt_micros(retry_at))
                    .bind(micros(now))
            },
        )
        .await?;
        rows::queue_item(&row)
    }

    async fn release(
        &self,
        lease: &LeaseToken,
        reason: Option<String>,
        not_before: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let row = under_lease(
            self,
            concat!(
                "UPDATE queue SET status = 'pending', attempts = MAX(attempts - 1, 0), \
                 next_attempt_at = $4, error_message = $5, estimated_completion = NULL, \
                 lease_token = NULL, lease_expires_at = NULL WHERE ",
                held!(),
                " RETURNING *",
            ),
            lease,
            |query| query.bind(micros(not_before)).bind(reason.clone()),
        )
        .await?;
        rows::queue_item(&row)
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueItem>> {
        let mut conn = self.write_conn().await?;
        let rows = sqlx::query(
            "UPDATE queue SET lease_token = NULL, lease_expires_at = NULL, \
             estimated_completion = NULL, \
             status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END, \
             next_attempt_at = CASE WHEN attempts < max_attempts THEN $1 ELSE next_attempt_at END, \
             download_date = CASE WHEN attempts < max_attempts THEN download_date ELSE $1 END, \
             error_message = CASE WHEN attempts < max_attempts THEN error_message \
                 ELSE 'worker stopped responding (lease expired) after ' || attempts \
                      || ' attempt(s)' END \
             WHERE status = 'downloading' AND (lease_expires_at IS NULL OR lease_expires_at <= $1) \
             RETURNING *",
        )
        .bind(micros(now))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        rows.iter().map(rows::queue_item).collect()
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
        let mut tx = self.write_tx().await?;
        let item = fetch_item(&mut tx, id).await?;
        let transition = rules::queue_transition(id, item.status, patch.status)?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE queue SET id = id");
        if let Some(priority) = patch.priority {
            qb.push(", priority = ").push_bind(i64::from(priority));
        }
        match transition {
            QueueTransition::Pause { interrupts_attempt } => {
                qb.push(
                    ", status = 'paused', estimated_completion = NULL, \
                     lease_token = NULL, lease_expires_at = NULL",
                );
                if interrupts_attempt {
                    qb.push(", attempts = MAX(attempts - 1, 0)");
                }
            }
            QueueTransition::Resume => {
                qb.push(", status = 'pending', next_attempt_at = ")
                    .push_bind(micros(now));
            }
            QueueTransition::Stay => {}
        }
        qb.push(" WHERE id = ").push_bind(id).push(" RETURNING *");
        let row = qb.build().fetch_one(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows::queue_item(&row)
    }

    async fn retry_queue_item(
        &self,
        id: i64,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut tx = self.write_tx().await?;
        let item = fetch_item(&mut tx, id).await?;
        let max_attempts =
            rules::retry_max_attempts(id, item.status, item.attempts, extra_attempts)?;
        let row = sqlx::query(
            "UPDATE queue SET status = 'pending', max_attempts = $1, next_attempt_at = $2, \
             download_date = NULL, error_message = NULL, progress = 0 WHERE id = $3 RETURNING *",
        )
        .bind(i64::from(max_attempts))
        .bind(micros(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows::queue_item(&row)
    }

    async fn delete_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        let mut conn = self.write_conn().await?;
        let row = sqlx::query("DELETE FROM queue WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("queue item", id))?;
        rows::queue_item(&row)
    }

    async fn clear_queue(&self, statuses: &[QueueStatus]) -> StoreResult<u64> {
        if statuses.is_empty() {
            return Ok(0);
        }
        let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM queue WHERE status IN (");
        let mut list = qb.separated(", ");
        for status in statuses {
            list.push_bind(status.as_str());
        }
        qb.push(")");
        let mut conn = self.write_conn().await?;
        let result = qb.build().execute(&mut *conn).await.map_err(map_err)?;
        Ok(result.rows_affected())
    }
}
