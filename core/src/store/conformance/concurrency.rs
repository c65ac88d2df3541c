//! Conformance checks of several workers at once on one store.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use crate::error::StoreError;
use crate::model::{DownloadFilter, NewUser, Page, QueueProgress, Role};
use crate::store::Store;

use super::*;

/// The concurrency checks, expanded by
/// [`store_conformance_suite!`](crate::store_conformance_suite). A new
/// check of this file goes in this list (a test fails when one is missing).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_concurrency_cases {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory; concurrent_claims_take_each_item_once, stalled_worker_loses_its_items, concurrent_inserts_of_one_archive_key, concurrent_refresh_token_use);
    };
}

/// Items enqueued by [`concurrent_claims_take_each_item_once`].
pub const CONCURRENT_ITEMS: usize = 5_000;
/// Workers of [`concurrent_claims_take_each_item_once`].
pub const CONCURRENT_WORKERS: usize = 8;

/// Eight workers claiming and completing at once take each of 5,000 items
/// exactly once.
pub async fn concurrent_claims_take_each_item_once(store: Arc<dyn Store>) {
    let mut producers = Vec::new();
    for part in 0..4 {
        let store = store.clone();
        producers.push(tokio::spawn(async move {
            for n in (part..CONCURRENT_ITEMS).step_by(4) {
                let priority = (n % 10) as u8 + 1;
                store
                    .enqueue(
                        new_item(&format!("https://example.com/c/{n}"), priority),
                        at(0),
                    )
                    .await
                    .expect("enqueue");
            }
        }));
    }
    for producer in producers {
        producer.await.expect("producer");
    }
    let mut workers = Vec::new();
    for w in 0..CONCURRENT_WORKERS {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let me = worker(&format!("worker-{w}"));
            let mut done = Vec::new();
            loop {
                let batch = store
                    .claim(&me, 1 + (w as u32 % 4) * 8, LEASE, at(1))
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    break;
                }
                for leased in batch {
                    assert_eq!(leased.item.attempts, 1, "claimed before");
                    store
                        .complete(&leased.lease, 1, at(2))
                        .await
                        .expect("complete under my lease");
                    done.push(leased.item.id);
                }
            }
            done
        }));
    }
    let mut all = Vec::new();
    for handle in workers {
        all.extend(handle.await.expect("worker"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), CONCURRENT_ITEMS, "every item claimed");
    assert_eq!(unique.len(), CONCURRENT_ITEMS, "no item claimed twice");
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!(counts.completed, CONCURRENT_ITEMS as u64);
    assert_eq!(counts.total(), CONCURRENT_ITEMS as u64);
}

/// A worker that stops renewing loses its items to another after the
/// lease; its late writes are refused and nothing is done twice.
pub async fn stalled_worker_loses_its_items(store: Arc<dyn Store>) {
    for n in 0..20 {
        store
            .enqueue(new_item(&format!("https://example.com/s/{n}"), 5), at(0))
            .await
            .expect("enqueue");
    }
    let stalled = store
        .claim(&worker("stalled"), 10, LEASE, at(1))
        .await
        .expect("claim");
    let healthy = store
        .claim(&worker("healthy"), 10, LEASE, at(1))
        .await
        .expect("claim");
    assert_eq!((stalled.len(), healthy.len()), (10, 10));
    assert!(
        store
            .claim(&worker("healthy"), 10, LEASE, at(2))
            .await
            .expect("claim")
            .is_empty(),
        "held items are not claimed"
    );

    // The healthy worker renews; the stalled one does not.
    for leased in &healthy {
        store
            .renew(&leased.lease, LEASE, at(25))
            .await
            .expect("renew");
    }
    let requeued = store.requeue_expired(at(31)).await.expect("reaper");
    let requeued: BTreeSet<i64> = requeued.iter().map(|item| item.id).collect();
    let stalled_ids: BTreeSet<i64> = stalled.iter().map(|l| l.item.id).collect();
    assert_eq!(requeued, stalled_ids, "only the stalled worker's items");

    let taken = store
        .claim(&worker("healthy"), 20, LEASE, at(32))
        .await
        .expect("take over");
    let taken_ids: BTreeSet<i64> = taken.iter().map(|l| l.item.id).collect();
    assert_eq!(taken_ids, stalled_ids);
    for leased in &stalled {
        expect_lease_lost(
            store.complete(&leased.lease, 1, at(33)).await,
            leased.item.id,
            "the stalled worker wakes up",
        );
        expect_lease_lost(
            store
                .record_progress(&leased.lease, QueueProgress::default())
                .await,
            leased.item.id,
            "progress from the stalled worker",
        );
    }
    for leased in healthy.iter().chain(&taken) {
        store
            .complete(&leased.lease, 1, at(34))
            .await
            .expect("complete");
    }
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!((counts.completed, counts.total()), (20, 20));
}

/// Workers racing to record one archive key: one record, the others see a
/// conflict ("already have it").
pub async fn concurrent_inserts_of_one_archive_key(store: Arc<dyn Store>) {
    let mut racers = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            let mut new = new_download("race:one", at(n));
            new.source = format!("worker-{n}");
            store.insert_download(new).await
        }));
    }
    let stored = winners(racers, "Conflict", |err| {
        matches!(err, StoreError::Conflict(_))
    })
    .await;
    assert_eq!(stored, 1);
    let list = store
        .list_downloads(&DownloadFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(list.total, 1);
}

/// A refresh token used by racing requests works exactly once.
pub async fn concurrent_refresh_token_use(store: Arc<dyn Store>) {
    let user = store
        .create_user(
            NewUser {
                username: "racer".into(),
                email: None,
                role: Role::User,
                password_hash: argon2_hash("R"),
            },
            at(0),
        )
        .await
        .expect("user");
    store
        .insert_refresh_token(refresh_token("shared", user.id, "shared", 1000))
        .await
        .expect("token");
    let mut racers = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store.use_refresh_token("shared", at(1)).await
        }));
    }
    let accepted = winners(racers, "Invalid", |err| {
        matches!(err, StoreError::Invalid(_))
    })
    .await;
    assert_eq!(accepted, 1);
}

/// How many of `racers` succeeded; each of the others must have failed with
/// the error `loses` accepts (`expected` names it in the panic).
async fn winners<T>(
    racers: Vec<tokio::task::JoinHandle<StoreResult<T>>>,
    expected: &str,
    loses: impl Fn(&StoreError) -> bool,
) -> usize {
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => won += 1,
            Err(err) if loses(&err) => {}
            Err(other) => panic!("expected {expected}, got {other:?}"),
        }
    }
    won
}
