//! Settings, logs and per-key state documents on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::metrics::PoolUsage;
use mediadl::model::{LogFilter, LogPage, LogsDeleted, NewLogEntry};
use mediadl::store::rules;
use mediadl::store::{LogRepo, SettingsRepo, StateRepo, StoreResult};
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{self, json_text, micros};
use super::{SqliteStore, map_err};

/// Log rows per INSERT statement (6 parameters each).
const LOG_BATCH: usize = 150;

fn parse_document(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|err| StoreError::Internal(format!("corrupt {what}: {err}")))
}

#[async_trait]
impl SettingsRepo for SqliteStore {
    async fn get_settings(&self) -> StoreResult<Value> {
        let text: Option<String> = sqlx::query_scalar("SELECT document FROM settings WHERE id = 1")
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        match text {
            Some(text) => parse_document(&text, "settings document"),
            None => Ok(Value::Object(Default::default())),
        }
    }

    async fn save_settings(&self, document: &Value) -> StoreResult<()> {
        rules::validate_settings_document(document)?;
        let mut conn = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO settings (id, document) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET document = excluded.document",
        )
        .bind(json_text(document)?)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

fn push_log_filter(qb: &mut QueryBuilder<Sqlite>, filter: &LogFilter) {
    qb.push(" WHERE 1 = 1");
    if !rules::log_filter_can_match(filter) {
        qb.push(" AND 1 = 0");
        return;
    }
    if let Some(level) = filter.level {
        qb.push(" AND level = ").push_bind(level.as_str());
    }
    if let Some(module) = &filter.module {
        qb.push(" AND lower(module) = lower(")
            .push_bind(module.clone())
            .push(")");
    }
    if let Some(search) = &filter.search {
        qb.push(" AND message LIKE ")
            .push_bind(rules::like_substring_pattern(search))
            .push(" ESCAPE '\\'");
    }
    if let Some(from) = filter.date_from {
        qb.push(" AND timestamp >= ").push_bind(micros(from));
    }
    if let Some(to) = filter.date_to {
        qb.push(" AND timestamp <= ").push_bind(micros(to));
    }
}

#[async_trait]
impl LogRepo for SqliteStore {
    async fn append_logs(&self, entries: Vec<NewLogEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for batch in entries.chunks(LOG_BATCH) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO logs (timestamp, level, module, message, metadata) ",
            );
            let mut failed = None;
            qb.push_values(batch, |mut row, entry| {
                let metadata = json_text(&entry.metadata).unwrap_or_else(|err| {
                    failed = Some(err);
                    String::from("{}")
                });
                row.push_bind(micros(entry.timestamp))
                    .push_bind(entry.level.as_str())
                    .push_bind(entry.module.clone())
                    .push_bind(entry.message.clone())
                    .push_bind(metadata);
            });
            if let Some(err) = failed {
                return Err(err);
            }
            qb.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn query_logs(&self, filter: &LogFilter) -> StoreResult<LogPage> {
        // One read transaction: the page and both counts see the same
        // snapshot, so a line logged meanwhile cannot be counted but missing.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        let mut qb = QueryBuilder::new("SELECT * FROM logs");
        push_log_filter(&mut qb, filter);
        qb.push(" ORDER BY timestamp DESC, id DESC LIMIT ")
            .push_bind(i64::from(rules::log_limit(filter.limit)));
        let logs = qb
            .build()
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::log_entry)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM logs");
        push_log_filter(&mut count, filter);
        let matching: i64 = count
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM logs")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(LogPage {
            logs,
            matching: u64::try_from(matching).unwrap_or(0),
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<LogsDeleted> {
        let cutoff = micros(cutoff);
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(length(CAST(message AS BLOB)) \
             + length(CAST(metadata AS BLOB))), 0) FROM logs WHERE timestamp < $1",
        )
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let entries: i64 = row.try_get(0).map_err(map_err)?;
        let bytes: i64 = row.try_get(1).map_err(map_err)?;
        sqlx::query("DELETE FROM logs WHERE timestamp < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(LogsDeleted {
            entries: u64::try_from(entries).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }
}

#[async_trait]
impl StateRepo for SqliteStore {
    async fn get_state(&self, key: &str) -> StoreResult<Option<Value>> {
        let text: Option<String> = sqlx::query_scalar("SELECT value FROM state WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        text.map(|text| parse_document(&text, "state document"))
            .transpose()
    }

    async fn put_state(&self, key: &str, value: &Value) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key.to_string())
        .bind(json_text(value)?)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn delete_state(&self, key: &str) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        sqlx::query("DELETE FROM state WHERE key = $1")
            .bind(key.to_string())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        // A query the file must answer (not a constant SQLite computes
        // without reading it): a deleted or corrupt database fails here.
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM settings")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        vec![
            crate::pool_usage("writer", &self.writer),
            crate::pool_usage("reader", &self.reader),
        ]
    }

    async fn snapshot(
        &self,
        dir: &std::path::Path,
    ) -> StoreResult<mediadl::backup::DatabaseSnapshot> {
        self.snapshot_into(dir).await
    }
}
