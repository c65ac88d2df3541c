//! [`QueueRepo`] of the [`MemoryStore`](super::MemoryStore): the queue, leases and its statistics.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::error::StoreError;
use crate::model::{
    LeaseToken, Leased, NewQueueItem, Page, Paged, QueueCounts, QueueFilter, QueueItem, QueuePatch,
    QueueProgress, QueueStats, QueueStatus, WorkerId,
};
use crate::store::rules::{self, QueueTransition, to_micros};
use crate::store::{QueueRepo, StoreResult};

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[async_trait]
impl QueueRepo for MemoryStore {
    async fn enqueue(&self, new: NewQueueItem, now: DateTime<Utc>) -> StoreResult<QueueItem> {
        rules::validate_new_queue_item(&new)?;
        let mut state = self.lock()?;
        let id = state.next_id("queue");
        let item = new.into_item(id, to_micros(now));
        state.insert_queue_item(item.clone());
        Ok(item)
    }

    async fn get_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        cloned_row(&self.lock()?.queue, "queue item", &id)
    }

    async fn list_queue(&self, filter: &QueueFilter, page: Page) -> StoreResult<Paged<QueueItem>> {
        let page = Page::new(page.page, page.per_page);
        let state = self.lock()?;
        let mut matching: Vec<&QueueItem> = state
            .queue
            .values()
            .filter(|item| filter.status.is_none_or(|s| item.status == s))
            .filter(|item| filter.platform.as_ref().is_none_or(|p| &item.platform == p))
            .collect();
        matching.sort_by_key(|item| (item.priority, item.created_date, item.id));
        Ok(paged(matching, page))
    }

    async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let state = self.lock()?;
        let mut counts = QueueCounts::default();
        for item in state.queue.values() {
            counts.add(item.status, 1);
        }
        Ok(counts)
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        let counts = self.queue_counts().await?;
        let since = now - chrono::Duration::hours(24);
        let state = self.lock()?;
        let waits: Vec<f64> = state
            .queue
            .values()
            .filter_map(|item| item.started_at.map(|started| (item, started)))
            .filter(|(_, started)| *started >= since)
            .map(|(item, started)| seconds_between(item.created_date, started))
            .collect();
        let runs: Vec<f64> = state
            .queue
            .values()
            .filter(|item| item.status.is_finished())
            .filter_map(|item| Some((item.started_at?, item.download_date?)))
            .filter(|(_, finished)| *finished >= since)
            .map(|(started, finished)| seconds_between(started, finished))
            .collect();
        let active: HashSet<&str> = state
            .queue
            .values()
            .filter(|item| item.status == QueueStatus::Downloading)
            .filter(|item| item.lease_expires_at.is_some_and(|until| until > now))
            .filter_map(|item| item.assigned_worker.as_deref())
            .collect();
        Ok(QueueStats {
            counts,
            avg_wait_time_seconds: mean(&waits),
            avg_run_time_seconds: mean(&runs),
            active_workers: active.len() as u64,
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
        let mut state = self.lock()?;
        let state = &mut *state;
        // Items waiting for a retry time stay in the order but are passed over.
        let due: Vec<i64> = state
            .claim_order
            .iter()
            .map(|&(_, _, id)| id)
            .filter(|id| state.queue[id].next_attempt_at <= now)
            .take(n as usize)
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            let token = uuid::Uuid::new_v4();
            state.leases.insert(id, token);
            let item = state
                .change_queue_item(id, |item| {
                    item.status = QueueStatus::Downloading;
                    item.attempts += 1;
                    item.started_at = Some(now);
                    item.assigned_worker = Some(worker.0.clone());
                    item.lease_expires_at = Some(until);
                    item.clone()
                })
                .expect("id taken from the claim order");
            claimed.push(Leased {
                item,
                lease: LeaseToken {
                    queue_id: id,
                    worker: worker.clone(),
                    token,
                },
            });
        }
        Ok(claimed)
    }

    async fn renew(
        &self,
        lease: &LeaseToken,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let until = rules::lease_until(to_micros(now), lease_for)?;
        self.lock()?
            .change_leased(lease, |item| item.lease_expires_at = Some(until))
    }

    async fn record_progress(
        &self,
        lease: &LeaseToken,
        progress: QueueProgress,
    ) -> StoreResult<()> {
        rules::validate_progress(progress.progress)?;
        self.lock()?.change_leased(lease, |item| {
            item.progress = progress.progress;
            item.items_downloaded = progress.items_downloaded;
            item.items_total = progress.items_total;
            item.estimated_completion = progress.estimated_completion.map(to_micros);
        })
    }

    async fn complete(
        &self,
        lease: &LeaseToken,
        items_downloaded: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        self.lock()?.finish_leased(lease, |item| {
            item.status = QueueStatus::Completed;
            item.download_date = Some(to_micros(now));
            item.progress = 100;
            item.items_downloaded = items_downloaded;
            item.error_message = None;
            item.estimated_completion = None;
        })
    }

    async fn fail(
        &self,
        lease: &LeaseToken,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        self.lock()?.finish_leased(lease, |item| {
            item.error_message = Some(error.to_string());
            item.estimated_completion = None;
            match retry_at {
                // The store, not only the caller, guards the attempt budget.
                Some(retry_at) if item.attempts < item.max_attempts => {
                    item.status = QueueStatus::Pending;
                    item.next_attempt_at = to_micros(retry_at);
                }
                _ => {
                    item.status = QueueStatus::Failed;
                    item.download_date = Some(to_micros(now));
                }
            }
        })
    }

    async fn release(
        &self,
        lease: &LeaseToken,
        reason: Option<String>,
        not_before: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        self.lock()?.finish_leased(lease, |item| {
            item.status = QueueStatus::Pending;
            item.attempts = item.attempts.saturating_sub(1);
            item.next_attempt_at = to_micros(not_before);
            item.error_message = reason;
            item.estimated_completion = None;
        })
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueItem>> {
        let now = to_micros(now);
        let mut state = self.lock()?;
        let mut expired: Vec<i64> = state
            .leases
            .keys()
            .filter(|id| {
                state.queue[id]
                    .lease_expires_at
                    .is_none_or(|until| until <= now)
            })
            .copied()
            .collect();
        // In queue order, as a scan of the queue would return them.
        expired.sort_unstable();
        let mut changed = Vec::with_capacity(expired.len());
        for id in expired {
            state.drop_lease(id);
            let item = state
                .change_queue_item(id, |item| {
                    if item.attempts < item.max_attempts {
                        item.status = QueueStatus::Pending;
                        item.next_attempt_at = now;
                    } else {
                        item.status = QueueStatus::Failed;
                        item.download_date = Some(now);
                        item.error_message = Some(rules::lease_expired_message(item.attempts));
                    }
                    item.estimated_completion = None;
                    item.clone()
                })
                .expect("a lease is only held on a queued item");
            changed.push(item);
        }
        Ok(changed)
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
        let mut state = self.lock()?;
        let item = state
            .queue
            .get(&id)
            .ok_or_else(|| StoreError::not_found("queue item", id))?;
        let transition = rules::queue_transition(id, item.status, patch.status)?;
        if matches!(
            transition,
            QueueTransition::Pause {
                interrupts_attempt: true
            }
        ) {
            state.drop_lease(id);
        }
        let item = state.change_queue_item(id, |item| {
            if let Some(priority) = patch.priority {
                item.priority = priority;
            }
            match transition {
                QueueTransition::Pause { interrupts_attempt } => {
                    if interrupts_attempt {
                        item.attempts = item.attempts.saturating_sub(1);
                    }
                    item.status = QueueStatus::Paused;
                    item.estimated_completion = None;
                }
                QueueTransition::Resume => {
                    item.status = QueueStatus::Pending;
                    item.next_attempt_at = to_micros(now);
                }
                QueueTransition::Stay => {}
            }
            item.clone()
        });
        Ok(item.expect("checked above"))
    }

    async fn retry_queue_item(
        &self,
        id: i64,
        extra_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let mut state = self.lock()?;
        let item = state
            .queue
            .get(&id)
            .ok_or_else(|| StoreError::not_found("queue item", id))?;
        let max_attempts =
            rules::retry_max_attempts(id, item.status, item.attempts, extra_attempts)?;
        let item = state.change_queue_item(id, |item| {
            item.status = QueueStatus::Pending;
            item.max_attempts = max_attempts;
            item.next_attempt_at = to_micros(now);
            item.download_date = None;
            item.error_message = None;
            item.progress = 0;
            item.clone()
        });
        Ok(item.expect("checked above"))
    }

    async fn delete_queue_item(&self, id: i64) -> StoreResult<QueueItem> {
        self.lock()?
            .take_queue_item(id)
            .ok_or_else(|| StoreError::not_found("queue item", id))
    }

    async fn clear_queue(&self, statuses: &[QueueStatus]) -> StoreResult<u64> {
        let mut state = self.lock()?;
        let doomed: Vec<i64> = state
            .queue
            .values()
            .filter(|item| statuses.contains(&item.status))
            .map(|item| item.id)
            .collect();
        for &id in &doomed {
            state.take_queue_item(id);
        }
        Ok(doomed.len() as u64)
    }
}
