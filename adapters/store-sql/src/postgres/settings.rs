//! The settings document, stored logs and the per-key state documents.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::metrics::PoolUsage;
use mediadl::model::{LogEntry, LogFilter, LogPage, LogsDeleted, NewLogEntry};
use mediadl::store::rules::{self, to_micros};
use mediadl::store::{LogRepo, SettingsRepo, StateRepo, StoreResult};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::error::map_err;
use super::rows::{LogRow, convert_all, from_i64};

/// Log rows written per INSERT (PostgreSQL allows 65,535 parameters; 5 per row).
const LOG_INSERT_CHUNK: usize = 1000;

#[async_trait]
impl SettingsRepo for PgStore {
    async fn get_settings(&self) -> StoreResult<Value> {
        let document: Option<Json<Value>> =
            sqlx::query_scalar("SELECT document FROM settings WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(document.map_or_else(|| Value::Object(Default::default()), |doc| doc.0))
    }

    async fn save_settings(&self, document: &Value) -> StoreResult<()> {
        rules::validate_settings_document(document)?;
        sqlx::query(
            "INSERT INTO settings (id, document) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document",
        )
        .bind(Json(document))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl LogRepo for PgStore {
    async fn append_logs(&self, entries: Vec<NewLogEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // One transaction: a batch is stored whole or not at all, in order.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for chunk in entries.chunks(LOG_INSERT_CHUNK) {
            let mut query = QueryBuilder::<Postgres>::new(
                "INSERT INTO logs (timestamp, level, module, message, metadata) ",
            );
            query.push_values(chunk, |mut row, entry| {
                row.push_bind(to_micros(entry.timestamp))
                    .push_bind(entry.level.as_str())
                    .push_bind(entry.module.clone())
                    .push_bind(entry.message.clone())
                    .push_bind(Json(entry.metadata.clone()));
            });
            query.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn query_logs(&self, filter: &LogFilter) -> StoreResult<LogPage> {
        let push_filter = |query: &mut QueryBuilder<Postgres>| {
            query.push(" WHERE TRUE");
            if !rules::log_filter_can_match(filter) {
                query.push(" AND FALSE");
                return;
            }
            if let Some(level) = filter.level {
                query.push(" AND level = ").push_bind(level.as_str());
            }
            if let Some(module) = &filter.module {
                query
                    .push(" AND lower(module) = lower(")
                    .push_bind(module.clone())
                    .push(")");
            }
            if let Some(search) = &filter.search {
                query
                    .push(" AND message ILIKE ")
                    .push_bind(rules::like_substring_pattern(search))
                    .push(" ESCAPE '\\'");
            }
            if let Some(from) = filter.date_from {
                query.push(" AND timestamp >= ").push_bind(from);
            }
            if let Some(to) = filter.date_to {
                query.push(" AND timestamp <= ").push_bind(to);
            }
        };
        let mut list = QueryBuilder::new("SELECT * FROM logs");
        push_filter(&mut list);
        list.push(" ORDER BY timestamp DESC, id DESC LIMIT ")
            .push_bind(i64::from(rules::log_limit(filter.limit)));
        let mut matching = QueryBuilder::new("SELECT count(*) FROM logs");
        push_filter(&mut matching);
        // One snapshot for the page and both counts, so a line logged
        // meanwhile cannot be counted but missing from the page.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let rows = list
            .build_query_as::<LogRow>()
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let matching = matching
            .build_query_scalar::<i64>()
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let total = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM logs")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let logs: Vec<LogEntry> = convert_all(rows)?;
        Ok(LogPage {
            logs,
            matching: from_i64("log count", matching)?,
            total: from_i64("log count", total)?,
        })
    }

    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<LogsDeleted> {
        // The byte estimate is the memory store's: message length plus the
        // metadata's compact JSON text, measured on the rows removed.
        let removed: Vec<(String, Json<mediadl::model::Metadata>)> =
            sqlx::query_as("DELETE FROM logs WHERE timestamp < $1 RETURNING message, metadata")
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        let mut deleted = LogsDeleted::default();
        for (message, metadata) in &removed {
            deleted.entries += 1;
            deleted.bytes += rules::log_entry_bytes(message, &metadata.0);
        }
        Ok(deleted)
    }
}

#[async_trait]
impl StateRepo for PgStore {
    async fn get_state(&self, key: &str) -> StoreResult<Option<Value>> {
        let value: Option<Json<Value>> =
            sqlx::query_scalar("SELECT value FROM state WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(value.map(|value| value.0))
    }

    async fn put_state(&self, key: &str, value: &Value) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(key)
        .bind(Json(value))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn delete_state(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM state WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        let mut pools = vec![crate::pool_usage("main", &self.pool)];
        if self.separate_lease_pool {
            pools.push(crate::pool_usage("lease", &self.lease_pool));
        }
        pools
    }

    async fn snapshot(
        &self,
        dir: &std::path::Path,
    ) -> StoreResult<mediadl::backup::DatabaseSnapshot> {
        self.snapshot_into(dir).await
    }
}
