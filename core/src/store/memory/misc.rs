//! The small capabilities of the [`MemoryStore`](super::MemoryStore): settings, logs and key-value state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;
use crate::model::{LogEntry, LogFilter, LogPage, LogsDeleted, NewLogEntry};
use crate::store::rules::{self, to_micros};
use crate::store::{LogRepo, SettingsRepo, StateRepo, StoreResult};

#[async_trait]
impl SettingsRepo for MemoryStore {
    async fn get_settings(&self) -> StoreResult<Value> {
        Ok(self
            .lock()?
            .settings
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default())))
    }

    async fn save_settings(&self, document: &Value) -> StoreResult<()> {
        rules::validate_settings_document(document)?;
        self.lock()?.settings = Some(document.clone());
        Ok(())
    }
}

#[async_trait]
impl LogRepo for MemoryStore {
    async fn append_logs(&self, entries: Vec<NewLogEntry>) -> StoreResult<()> {
        let mut state = self.lock()?;
        for entry in entries {
            let id = state.next_id("logs");
            state.logs.insert(
                id,
                LogEntry {
                    id,
                    timestamp: to_micros(entry.timestamp),
                    level: entry.level,
                    module: entry.module,
                    message: entry.message,
                    metadata: entry.metadata,
                },
            );
        }
        Ok(())
    }

    async fn query_logs(&self, filter: &LogFilter) -> StoreResult<LogPage> {
        let module = filter.module.as_ref().map(|m| m.to_lowercase());
        let search = filter.search.as_ref().map(|s| s.to_lowercase());
        let state = self.lock()?;
        let mut matching: Vec<&LogEntry> = state
            .logs
            .values()
            .filter(|e| filter.level.is_none_or(|level| e.level == level))
            .filter(|e| {
                module
                    .as_ref()
                    .is_none_or(|m| &e.module.to_lowercase() == m)
            })
            .filter(|e| {
                search
                    .as_ref()
                    .is_none_or(|s| contains_ignore_case(&e.message, s))
            })
            .filter(|e| filter.date_from.is_none_or(|from| e.timestamp >= from))
            .filter(|e| filter.date_to.is_none_or(|to| e.timestamp <= to))
            .collect();
        matching.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then_with(|| b.id.cmp(&a.id)));
        Ok(LogPage {
            matching: matching.len() as u64,
            total: state.logs.len() as u64,
            logs: matching
                .into_iter()
                .take(rules::log_limit(filter.limit) as usize)
                .cloned()
                .collect(),
        })
    }

    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<LogsDeleted> {
        let mut state = self.lock()?;
        let mut deleted = LogsDeleted::default();
        state.logs.retain(|_, entry| {
            let keep = entry.timestamp >= cutoff;
            if !keep {
                deleted.entries += 1;
                deleted.bytes += rules::log_entry_bytes(&entry.message, &entry.metadata);
            }
            keep
        });
        Ok(deleted)
    }
}

#[async_trait]
impl StateRepo for MemoryStore {
    async fn get_state(&self, key: &str) -> StoreResult<Option<Value>> {
        Ok(self.lock()?.state.get(key).cloned())
    }

    async fn put_state(&self, key: &str, value: &Value) -> StoreResult<()> {
        self.lock()?.state.insert(key.to_string(), value.clone());
        Ok(())
    }

    async fn delete_state(&self, key: &str) -> StoreResult<()> {
        self.lock()?.state.remove(key);
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        // The tables are in this process: reachable whenever the lock is.
        self.lock().map(drop)
    }

    async fn snapshot(
        &self,
        _dir: &std::path::Path,
    ) -> StoreResult<crate::backup::DatabaseSnapshot> {
        Err(StoreError::Invalid(
            "the in-memory store keeps nothing on disk to back up; back up a SQLite or PostgreSQL store".into(),
        ))
    }
}
