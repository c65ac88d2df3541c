//! Batches queue completions so one commit covers many items.
//!
//! A SQL store's cost per completion is its commit (one WAL flush), not the
//! `UPDATE`. Workers hand their finished lease to a [`CompletionBatcher`]
//! and await the result; the batcher writes what has gathered with one
//! [`QueueRepo::complete_many`](crate::store::QueueRepo::complete_many)
//! once `max_batch` are waiting or `window` has passed since the first, the
//! "batch completer" of River and graphile-worker. Each lease is still
//! checked on its own, so a lost lease fails only its own item.
//!
//! No task runs while nothing waits: the first completion of a batch starts
//! a flusher, which ends when it finds nobody waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, oneshot};

use crate::error::StoreError;
use crate::model::{Completion, LeaseToken, QueueItem};
use crate::store::{QueueRepo, StoreResult};

/// Most completions written in one commit by default.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// How long the first completion of a batch waits for company by default:
/// short next to a download, long next to a commit.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(2);

/// Gathers completions from many workers into batched writes. Cheap to
/// clone; clones share one batch.
#[derive(Clone)]
pub struct CompletionBatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn QueueRepo>,
    max_batch: usize,
    window: Duration,
    state: Mutex<State>,
    /// Signalled when `max_batch` completions are waiting.
    full: Notify,
}

#[derive(Default)]
struct State {
    waiting: Vec<Waiting>,
    /// A flusher task is running (it clears this when it ends).
    flushing: bool,
}

struct Waiting {
    completion: Completion,
    reply: oneshot::Sender<StoreResult<QueueItem>>,
}

impl std::fmt::Debug for CompletionBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionBatcher")
            .field("max_batch", &self.inner.max_batch)
            .field("window", &self.inner.window)
            .finish_non_exhaustive()
    }
}

impl CompletionBatcher {
    /// A batcher with the default limits.
    pub fn new(store: Arc<dyn QueueRepo>) -> Self {
        Self::with_limits(store, DEFAULT_MAX_BATCH, DEFAULT_WINDOW)
    }

    /// A batcher writing at most `max_batch` completions per commit (at
    /// least one), waiting at most `window` for a batch to fill.
    pub fn with_limits(store: Arc<dyn QueueRepo>, max_batch: usize, window: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                max_batch: max_batch.max(1),
                window,
                state: Mutex::new(State::default()),
                full: Notify::new(),
            }),
        }
    }

    /// What [`QueueRepo::complete`](crate::store::QueueRepo::complete)
    /// does, written together with other workers' completions.
    pub async fn complete(
        &self,
        lease: &LeaseToken,
        items_downloaded: u32,
        finished_at: DateTime<Utc>,
    ) -> StoreResult<QueueItem> {
        let (reply, result) = oneshot::channel();
        let start_flusher = {
            let mut state = self.inner.state.lock().expect("batcher lock");
            state.waiting.push(Waiting {
                completion: Completion {
                    lease: lease.clone(),
                    items_downloaded,
                    finished_at,
                },
                reply,
            });
            if state.waiting.len() >= self.inner.max_batch {
                self.inner.full.notify_one();
            }
            !std::mem::replace(&mut state.flushing, true)
        };
        if start_flusher {
            tokio::spawn(flush(Arc::clone(&self.inner)));
        }
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(format!(
                "the store gave no result for completing queue item {}",
                lease.queue_id
            )))
        })
    }
}

/// Writes batches until nobody is waiting.
async fn flush(inner: Arc<Inner>) {
    loop {
        let full = inner.state.lock().expect("batcher lock").waiting.len() >= inner.max_batch;
        if !full {
            tokio::select! {
                _ = inner.full.notified() => {}
                _ = tokio::time::sleep(inner.window) => {}
            }
        }
        let batch: Vec<Waiting> = {
            let mut state = inner.state.lock().expect("batcher lock");
            if state.waiting.is_empty() {
                state.flushing = false;
                return;
            }
            let n = state.waiting.len().min(inner.max_batch);
            state.waiting.drain(..n).collect()
        };
        let (completions, replies): (Vec<Completion>, Vec<_>) = batch
            .into_iter()
            .map(|waiting| (waiting.completion, waiting.reply))
            .unzip();
        match inner.store.complete_many(&completions).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    // A worker that stopped waiting no longer needs its result.
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewQueueItem, QueueStatus, WorkerId};
    use crate::store::{MemoryStore, MockQueueRepo};

    const LEASE: Duration = Duration::from_secs(60);

    fn now() -> DateTime<Utc> {
        "2026-03-02T00:00:00Z".parse().expect("time")
    }

    async fn store_with_claimed(n: usize) -> (Arc<MemoryStore>, Vec<LeaseToken>) {
        let store = Arc::new(MemoryStore::new());
        for i in 0..n {
            store
                .enqueue(
                    NewQueueItem::new(
                        format!("https://example.com/{i}"),
                        "direct",
                        "example.com",
                        "file",
                    ),
                    now(),
                )
                .await
                .expect("enqueue");
        }
        let claimed = store
            .claim(&WorkerId("w".into()), n as u32, LEASE, now())
            .await
            .expect("claim");
        (
            store,
            claimed.into_iter().map(|leased| leased.lease).collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_completions_share_batches_and_each_gets_its_own_result() {
        let (store, leases) = store_with_claimed(10).await;
        let batcher = CompletionBatcher::with_limits(store.clone(), 4, Duration::from_millis(2));
        let mut lost = leases[3].clone();
        lost.token = uuid::Uuid::new_v4();
        let results = futures::future::join_all(leases.iter().enumerate().map(|(i, lease)| {
            let batcher = batcher.clone();
            let lease = if i == 3 { lost.clone() } else { lease.clone() };
            async move { batcher.complete(&lease, i as u32, now()).await }
        }))
        .await;
        for (i, result) in results.into_iter().enumerate() {
            if i == 3 {
                assert_eq!(
                    result,
                    Err(StoreError::LeaseLost {
                        queue_id: leases[3].queue_id
                    })
                );
            } else {
                let item = result.expect("completed");
                assert_eq!(
                    (item.id, item.status, item.items_downloaded),
                    (leases[i].queue_id, QueueStatus::Completed, i as u32)
                );
            }
        }
        let counts = store.queue_counts().await.expect("counts");
        assert_eq!((counts.completed, counts.downloading), (9, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_one_write_and_a_failed_write_reaches_every_waiter() {
        let (_, leases) = store_with_claimed(3).await;
        let mut store = MockQueueRepo::new();
        store
            .expect_complete_many()
            .withf(|done| done.len() == 3)
            .times(1)
            .returning(|_| Err(StoreError::Unavailable("down".into())));
        // The window is an hour: only a full batch can have been written.
        let batcher = CompletionBatcher::with_limits(Arc::new(store), 3, Duration::from_secs(3600));
        let started = tokio::time::Instant::now();
        let results =
            futures::future::join_all(leases.iter().map(|lease| batcher.complete(lease, 1, now())))
                .await;
        assert_eq!(
            tokio::time::Instant::now(),
            started,
            "the full batch was written without waiting for the window"
        );
        assert!(
            results
                .iter()
                .all(|result| *result == Err(StoreError::Unavailable("down".into()))),
            "{results:?}"
        );
    }
}
