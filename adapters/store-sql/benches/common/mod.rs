//! What the store benchmarks share: one worker's claim-and-complete loop.

use std::time::Duration;

use chrono::Utc;
use mediadl::engine::CompletionBatcher;
use mediadl::model::WorkerId;
use mediadl::store::QueueRepo;

/// Claims up to `batch` items at a time as worker `me` and completes each
/// (through `completer` when completions are batched) until the queue has
/// nothing left to claim; returns how many items this worker completed.
pub async fn drain_queue<S: QueueRepo>(
    store: &S,
    me: &WorkerId,
    batch: u32,
    lease: Duration,
    completer: Option<&CompletionBatcher>,
) -> u64 {
    let mut done = 0;
    loop {
        let claimed = store
            .claim(me, batch, lease, Utc::now())
            .await
            .expect("claim");
        if claimed.is_empty() {
            return done;
        }
        done += claimed.len() as u64;
        match completer {
            Some(completer) => {
                let finished = claimed
                    .iter()
                    .map(|leased| completer.complete(&leased.lease, 1, Utc::now()));
                for result in futures::future::join_all(finished).await {
                    result.expect("complete");
                }
            }
            None => {
                for leased in claimed {
                    store
                        .complete(&leased.lease, 1, Utc::now())
                        .await
                        .expect("complete");
                }
            }
        }
    }
}
