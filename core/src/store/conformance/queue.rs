//! Conformance checks of the queue: enqueueing, leases, retries, pause and resume, statistics.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::model::{Completion, Page, QueueFilter, QueuePatch, QueueProgress, QueueStatus};
use crate::store::Store;

use super::*;

/// The queue checks, expanded by
/// [`store_conformance_suite!`](crate::store_conformance_suite). A new
/// check of this file goes in this list (a test fails when one is missing).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_queue_cases {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory; queue_enqueue_list_and_counts, queue_claim_order_and_due_time, queue_lease_renew_progress_complete, queue_complete_many_checks_each_lease, queue_fail_retry_and_attempts, queue_release_gives_the_attempt_back, queue_expired_leases_are_requeued, queue_pause_resume_and_priority, queue_delete_and_clear, queue_stats_wait_run_and_workers);
    };
}

/// Enqueue validates and stores every field; lists are most urgent first.
pub async fn queue_enqueue_list_and_counts(store: Arc<dyn Store>) {
    let mut first = new_item("https://example.com/1", 5);
    first.referer = Some("https://example.com/".into());
    first.save_path = Some("/data/custom".into());
    first.max_attempts = 7;
    first.options.downloader = Some("native".into());
    first.options.max_downloads = Some(50);
    first.options.job_id = Some("job-1".into());
    first.options.run_id = Some(9);
    first.metadata.insert("k".into(), json!({"v": [1, 2, 3]}));
    let stored = store.enqueue(first.clone(), at(0)).await.expect("enqueue");
    assert_eq!(stored, first.clone().into_item(stored.id, at(0)));
    assert_eq!(store.get_queue_item(stored.id).await.expect("get"), stored);
    expect_not_found(store.get_queue_item(999_999).await, "missing item");

    for priority in [0, 11] {
        expect_invalid(
            store
                .enqueue(new_item("https://example.com/p", priority), at(0))
                .await,
            "priority out of range",
        );
    }
    expect_invalid(store.enqueue(new_item("", 5), at(0)).await, "empty url");
    let mut no_attempts = new_item("https://example.com/z", 5);
    no_attempts.max_attempts = 0;
    expect_invalid(store.enqueue(no_attempts, at(0)).await, "zero attempts");

    let urgent = store
        .enqueue(new_item("https://example.com/urgent", 1), at(10))
        .await
        .expect("urgent");
    let later = store
        .enqueue(new_item("https://example.com/later", 5), at(5))
        .await
        .expect("later");
    let mut tiktok = new_item("https://tiktok.com/@x", 9);
    tiktok.platform = "tiktok".into();
    let tiktok = store.enqueue(tiktok, at(1)).await.expect("tiktok");

    let all = store
        .list_queue(&QueueFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(all.total, 4);
    assert_eq!(
        ids(&all.items, |i| i.id),
        [urgent.id, stored.id, later.id, tiktok.id],
        "priority, then oldest"
    );
    let page = store
        .list_queue(&QueueFilter::default(), Page::new(2, 2))
        .await
        .expect("page");
    assert_eq!(
        (ids(&page.items, |i| i.id), page.total),
        (vec![later.id, tiktok.id], 4)
    );
    let only_tiktok = store
        .list_queue(
            &QueueFilter {
                platform: Some("tiktok".into()),
                status: None,
            },
            Page::default(),
        )
        .await
        .expect("platform filter");
    assert_eq!(ids(&only_tiktok.items, |i| i.id), [tiktok.id]);

    store
        .claim(&worker("w"), 1, LEASE, at(20))
        .await
        .expect("claim");
    let downloading = store
        .list_queue(
            &QueueFilter {
                status: Some(QueueStatus::Downloading),
                platform: None,
            },
            Page::default(),
        )
        .await
        .expect("status filter");
    assert_eq!(ids(&downloading.items, |i| i.id), [urgent.id]);
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!(
        (counts.pending, counts.downloading, counts.total()),
        (3, 1, 4)
    );
}

/// Claims take due pending items, most urgent first, each once; items
/// waiting for a later attempt time stay.
pub async fn queue_claim_order_and_due_time(store: Arc<dyn Store>) {
    let low = store
        .enqueue(new_item("https://example.com/low", 9), at(0))
        .await
        .expect("low");
    let high_old = store
        .enqueue(new_item("https://example.com/high-old", 2), at(1))
        .await
        .expect("high old");
    let high_new = store
        .enqueue(new_item("https://example.com/high-new", 2), at(2))
        .await
        .expect("high new");
    // Not due until t=100: enqueued "in the future".
    let future = store
        .enqueue(new_item("https://example.com/future", 1), at(100))
        .await
        .expect("future");

    assert!(
        store
            .claim(&worker("w1"), 0, LEASE, at(10))
            .await
            .expect("claim none")
            .is_empty()
    );
    let first = store
        .claim(&worker("w1"), 2, LEASE, at(10))
        .await
        .expect("claim 2");
    assert_eq!(ids(&first, |l| l.item.id), [high_old.id, high_new.id]);
    for leased in &first {
        assert_eq!(leased.lease.queue_id, leased.item.id);
        assert_eq!(leased.lease.worker, worker("w1"));
        assert_eq!(leased.item.status, QueueStatus::Downloading);
        assert_eq!(leased.item.attempts, 1);
        assert_eq!(leased.item.started_at, Some(at(10)));
        assert_eq!(leased.item.assigned_worker.as_deref(), Some("w1"));
        assert_eq!(leased.item.lease_expires_at, Some(at(40)));
        assert_eq!(
            store.get_queue_item(leased.item.id).await.expect("stored"),
            leased.item,
            "the claim returns the stored row"
        );
    }
    assert_ne!(first[0].lease.token, first[1].lease.token);

    let second = store
        .claim(&worker("w2"), 10, LEASE, at(10))
        .await
        .expect("claim rest");
    assert_eq!(
        ids(&second, |l| l.item.id),
        [low.id],
        "the future item is not due"
    );
    assert!(
        store
            .claim(&worker("w2"), 10, LEASE, at(99))
            .await
            .expect("claim")
            .is_empty()
    );
    let due = store
        .claim(&worker("w2"), 10, LEASE, at(100))
        .await
        .expect("claim due");
    assert_eq!(ids(&due, |l| l.item.id), [future.id]);
}

/// The holder may renew, report progress and complete; nobody else may.
pub async fn queue_lease_renew_progress_complete(store: Arc<dyn Store>) {
    let item = store
        .enqueue(new_item("https://example.com/a", 5), at(0))
        .await
        .expect("enqueue");
    let leased = store
        .claim(&worker("w1"), 1, LEASE, at(1))
        .await
        .expect("claim")
        .pop()
        .expect("one item");
    let lease = leased.lease.clone();

    store
        .renew(&lease, Duration::from_secs(60), at(20))
        .await
        .expect("renew");
    assert_eq!(
        store
            .get_queue_item(item.id)
            .await
            .expect("get")
            .lease_expires_at,
        Some(at(80))
    );

    store
        .record_progress(
            &lease,
            QueueProgress {
                progress: 40,
                items_downloaded: 2,
                items_total: Some(5),
                estimated_completion: Some(at(90)),
            },
        )
        .await
        .expect("progress");
    let running = store.get_queue_item(item.id).await.expect("get");
    assert_eq!(
        (
            running.progress,
            running.items_downloaded,
            running.items_total,
            running.estimated_completion
        ),
        (40, 2, Some(5), Some(at(90)))
    );
    expect_invalid(
        store
            .record_progress(
                &lease,
                QueueProgress {
                    progress: 101,
                    ..Default::default()
                },
            )
            .await,
        "progress above 100",
    );

    let mut forged = lease.clone();
    forged.token = uuid::Uuid::new_v4();
    expect_lease_lost(
        store.complete(&forged, 1, at(30)).await,
        item.id,
        "a forged token",
    );
    let mut other_worker = lease.clone();
    other_worker.worker = worker("w2");
    expect_lease_lost(
        store.renew(&other_worker, LEASE, at(30)).await,
        item.id,
        "another worker's name",
    );

    let done = store.complete(&lease, 5, at(60)).await.expect("complete");
    assert_eq!(done.status, QueueStatus::Completed);
    assert_eq!(done.download_date, Some(at(60)));
    assert_eq!(done.items_downloaded, 5);
    assert_eq!(done.progress, 100);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.error_message, None);
    assert_eq!(store.get_queue_item(item.id).await.expect("get"), done);

    expect_lease_lost(
        store.complete(&lease, 5, at(61)).await,
        item.id,
        "completing twice",
    );
    expect_lease_lost(
        store.renew(&lease, LEASE, at(61)).await,
        item.id,
        "renewing a finished item",
    );
    expect_lease_lost(
        store.fail(&lease, "late", None, at(61)).await,
        item.id,
        "failing a finished item",
    );
    let mut missing = lease.clone();
    missing.queue_id = 999_999;
    expect_lease_lost(
        store.complete(&missing, 1, at(61)).await,
        999_999,
        "a lease on a missing item",
    );
}

/// A batched completion checks every lease on its own: a lost lease fails
/// that item only, the others complete with their own counts and times.
pub async fn queue_complete_many_checks_each_lease(store: Arc<dyn Store>) {
    for n in 0..4 {
        store
            .enqueue(new_item(&format!("https://example.com/{n}"), 5), at(0))
            .await
            .expect("enqueue");
    }
    let claimed = store
        .claim(&worker("w1"), 4, LEASE, at(1))
        .await
        .expect("claim");
    let [a, b, c, d] = <[_; 4]>::try_from(claimed).expect("four items");
    store
        .complete(&d.lease, 1, at(5))
        .await
        .expect("complete d alone");
    let mut forged = b.lease.clone();
    forged.token = uuid::Uuid::new_v4();
    let mut other_worker = c.lease.clone();
    other_worker.worker = worker("w2");
    let completion = |lease: &crate::model::LeaseToken, items: u32, seconds: i64| Completion {
        lease: lease.clone(),
        items_downloaded: items,
        finished_at: at(seconds),
    };

    assert_eq!(
        store.complete_many(&[]).await.expect("empty batch"),
        Vec::new(),
        "an empty batch"
    );
    let results = store
        .complete_many(&[
            completion(&a.lease, 3, 10),
            completion(&forged, 1, 11),
            completion(&other_worker, 1, 12),
            completion(&c.lease, 7, 13),
            completion(&c.lease, 8, 14),
            completion(&d.lease, 1, 15),
        ])
        .await
        .expect("batch");
    let [done_a, lost_b, lost_c_other, done_c, again_c, again_d] =
        <[_; 6]>::try_from(results).expect("one result per completion");

    let done_a = done_a.expect("a completes");
    assert_eq!(
        (
            done_a.status,
            done_a.items_downloaded,
            done_a.download_date,
            done_a.progress
        ),
        (QueueStatus::Completed, 3, Some(at(10)), 100)
    );
    assert_eq!(done_a.lease_expires_at, None);
    assert_eq!(store.get_queue_item(a.item.id).await.expect("get"), done_a);
    expect_lease_lost(lost_b, b.item.id, "a forged token in a batch");
    expect_lease_lost(lost_c_other, c.item.id, "another worker's name in a batch");
    let done_c = done_c.expect("c completes under its own lease");
    assert_eq!(
        (done_c.status, done_c.items_downloaded, done_c.download_date),
        (QueueStatus::Completed, 7, Some(at(13)))
    );
    expect_lease_lost(again_c, c.item.id, "the same lease twice in a batch");
    expect_lease_lost(again_d, d.item.id, "an item completed before the batch");

    let untouched = store.get_queue_item(b.item.id).await.expect("get b");
    assert_eq!(
        (untouched.status, untouched.lease_expires_at),
        (QueueStatus::Downloading, Some(at(31))),
        "a lost lease in a batch leaves the item as it was"
    );
    assert_eq!(
        store
            .get_queue_item(d.item.id)
            .await
            .expect("get d")
            .download_date,
        Some(at(5)),
        "the earlier completion stands"
    );
    assert_eq!(
        store.get_queue_item(c.item.id).await.expect("get c"),
        done_c
    );
}

/// Failures with a retry time go back to pending until their attempts run
/// out; retry gives a failed item more attempts.
pub async fn queue_fail_retry_and_attempts(store: Arc<dyn Store>) {
    let mut new = new_item("https://example.com/flaky", 5);
    new.max_attempts = 2;
    let item = store.enqueue(new, at(0)).await.expect("enqueue");

    let first = store
        .claim(&worker("w"), 1, LEASE, at(1))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    let after_first = store
        .fail(&first.lease, "HTTP 503", Some(at(100)), at(2))
        .await
        .expect("fail 1");
    assert_eq!(after_first.status, QueueStatus::Pending);
    assert_eq!(after_first.attempts, 1);
    assert_eq!(after_first.next_attempt_at, at(100));
    assert_eq!(after_first.error_message.as_deref(), Some("HTTP 503"));
    assert_eq!(after_first.lease_expires_at, None);
    assert!(
        store
            .claim(&worker("w"), 1, LEASE, at(99))
            .await
            .expect("claim early")
            .is_empty(),
        "not before the retry time"
    );

    let second = store
        .claim(&worker("w"), 1, LEASE, at(100))
        .await
        .expect("claim again")
        .pop()
        .expect("item");
    assert_eq!(second.item.attempts, 2);
    expect_lease_lost(
        store.complete(&first.lease, 1, at(101)).await,
        item.id,
        "the first attempt's lease",
    );
    // Out of attempts: a retry time no longer keeps it alive.
    let failed = store
        .fail(&second.lease, "HTTP 503 again", Some(at(200)), at(102))
        .await
        .expect("fail 2");
    assert_eq!(failed.status, QueueStatus::Failed);
    assert_eq!(failed.download_date, Some(at(102)));
    assert_eq!(failed.error_message.as_deref(), Some("HTTP 503 again"));
    assert!(
        store
            .claim(&worker("w"), 1, LEASE, at(300))
            .await
            .expect("claim")
            .is_empty()
    );

    expect_invalid(
        store.retry_queue_item(item.id, 0, at(300)).await,
        "retry without attempts",
    );
    let retried = store
        .retry_queue_item(item.id, 1, at(300))
        .await
        .expect("retry");
    assert_eq!(retried.status, QueueStatus::Pending);
    assert_eq!(retried.max_attempts, 3);
    assert_eq!(retried.next_attempt_at, at(300));
    assert_eq!(retried.download_date, None);
    expect_invalid(
        store.retry_queue_item(item.id, 1, at(300)).await,
        "retry of a pending item",
    );
    expect_not_found(
        store.retry_queue_item(999_999, 1, at(300)).await,
        "retry of a missing item",
    );

    let third = store
        .claim(&worker("w"), 1, LEASE, at(301))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    assert_eq!(third.item.attempts, 3);
    let permanent = store
        .fail(&third.lease, "HTTP 404", None, at(302))
        .await
        .expect("permanent failure");
    assert_eq!(permanent.status, QueueStatus::Failed);

    // A completed item can be retried too (re-download).
    let other = store
        .enqueue(new_item("https://example.com/ok", 5), at(400))
        .await
        .expect("enqueue");
    let leased = store
        .claim(&worker("w"), 1, LEASE, at(401))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    store
        .complete(&leased.lease, 1, at(402))
        .await
        .expect("complete");
    let again = store
        .retry_queue_item(other.id, 2, at(403))
        .await
        .expect("retry completed");
    assert_eq!(
        (again.status, again.max_attempts),
        (QueueStatus::Pending, 3)
    );
}

/// Releasing gives the item back without using up an attempt.
pub async fn queue_release_gives_the_attempt_back(store: Arc<dyn Store>) {
    let mut new = new_item("https://example.com/r", 5);
    new.max_attempts = 1;
    let item = store.enqueue(new, at(0)).await.expect("enqueue");
    let leased = store
        .claim(&worker("w"), 1, LEASE, at(1))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    let released = store
        .release(&leased.lease, Some("storage full".into()), at(50))
        .await
        .expect("release");
    assert_eq!(released.status, QueueStatus::Pending);
    assert_eq!(released.attempts, 0);
    assert_eq!(released.next_attempt_at, at(50));
    assert_eq!(released.error_message.as_deref(), Some("storage full"));
    expect_lease_lost(
        store.complete(&leased.lease, 1, at(2)).await,
        item.id,
        "a released lease",
    );
    let again = store
        .claim(&worker("w"), 1, LEASE, at(50))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    assert_eq!(again.item.attempts, 1);
    let shutdown = store
        .release(&again.lease, None, at(51))
        .await
        .expect("release without reason");
    assert_eq!(shutdown.error_message, None);
}

/// An expired lease returns the item to pending (or failed when out of
/// attempts); the old holder cannot write any more.
pub async fn queue_expired_leases_are_requeued(store: Arc<dyn Store>) {
    let mut once = new_item("https://example.com/once", 5);
    once.max_attempts = 1;
    let once = store.enqueue(once, at(0)).await.expect("once");
    let twice = store
        .enqueue(new_item("https://example.com/twice", 5), at(1))
        .await
        .expect("twice");
    let leases = store
        .claim(&worker("crashed"), 2, LEASE, at(10))
        .await
        .expect("claim");
    assert_eq!(leases.len(), 2);

    assert!(
        store
            .requeue_expired(at(39))
            .await
            .expect("nothing expired")
            .is_empty()
    );
    let mut changed = store.requeue_expired(at(40)).await.expect("requeue");
    changed.sort_by_key(|item| item.id);
    assert_eq!(ids(&changed, |i| i.id), [once.id, twice.id]);
    assert_eq!(changed[0].status, QueueStatus::Failed, "out of attempts");
    assert!(changed[0].error_message.is_some(), "says why it failed");
    assert_eq!(changed[0].download_date, Some(at(40)));
    assert_eq!(changed[1].status, QueueStatus::Pending);
    assert_eq!(changed[1].attempts, 1, "the lost attempt counts");
    assert_eq!(changed[1].lease_expires_at, None);
    assert!(
        store
            .requeue_expired(at(41))
            .await
            .expect("again")
            .is_empty(),
        "requeue is done once"
    );

    for leased in &leases {
        expect_lease_lost(
            store.complete(&leased.lease, 1, at(41)).await,
            leased.item.id,
            "complete after expiry",
        );
        expect_lease_lost(
            store.renew(&leased.lease, LEASE, at(41)).await,
            leased.item.id,
            "renew after expiry",
        );
    }
    let taken = store
        .claim(&worker("healthy"), 5, LEASE, at(42))
        .await
        .expect("claim");
    assert_eq!(ids(&taken, |l| l.item.id), [twice.id]);
    assert_eq!(taken[0].item.attempts, 2);
    assert_eq!(taken[0].item.assigned_worker.as_deref(), Some("healthy"));
    store
        .complete(&taken[0].lease, 1, at(43))
        .await
        .expect("the new holder completes");
}

/// Pause and resume, priority changes, and refused transitions.
pub async fn queue_pause_resume_and_priority(store: Arc<dyn Store>) {
    let a = store
        .enqueue(new_item("https://example.com/a", 5), at(0))
        .await
        .expect("a");
    let b = store
        .enqueue(new_item("https://example.com/b", 5), at(1))
        .await
        .expect("b");

    let paused = store
        .update_queue_item(
            a.id,
            QueuePatch {
                status: Some(QueueStatus::Paused),
                priority: None,
            },
            at(2),
        )
        .await
        .expect("pause pending");
    assert_eq!(paused.status, QueueStatus::Paused);
    let claimed = store
        .claim(&worker("w"), 5, LEASE, at(3))
        .await
        .expect("claim");
    assert_eq!(
        ids(&claimed, |l| l.item.id),
        [b.id],
        "paused items are not claimed"
    );

    // Pausing a running item drops its lease and gives the attempt back.
    let paused_running = store
        .update_queue_item(
            b.id,
            QueuePatch {
                status: Some(QueueStatus::Paused),
                priority: None,
            },
            at(4),
        )
        .await
        .expect("pause running");
    assert_eq!(paused_running.status, QueueStatus::Paused);
    assert_eq!(paused_running.attempts, 0);
    assert_eq!(paused_running.lease_expires_at, None);
    expect_lease_lost(
        store.complete(&claimed[0].lease, 1, at(5)).await,
        b.id,
        "complete after pause",
    );
    expect_lease_lost(
        store.renew(&claimed[0].lease, LEASE, at(5)).await,
        b.id,
        "renew after pause",
    );

    expect_invalid(
        store
            .update_queue_item(
                a.id,
                QueuePatch {
                    status: Some(QueueStatus::Completed),
                    priority: None,
                },
                at(6),
            )
            .await,
        "setting completed by hand",
    );
    let resumed = store
        .update_queue_item(
            a.id,
            QueuePatch {
                status: Some(QueueStatus::Pending),
                priority: Some(1),
            },
            at(7),
        )
        .await
        .expect("resume with priority");
    assert_eq!(
        (resumed.status, resumed.priority),
        (QueueStatus::Pending, 1)
    );
    assert_eq!(resumed.next_attempt_at, at(7));
    expect_invalid(
        store
            .update_queue_item(
                a.id,
                QueuePatch {
                    status: Some(QueueStatus::Pending),
                    priority: None,
                },
                at(8),
            )
            .await,
        "resuming an item that is not paused",
    );
    expect_invalid(
        store
            .update_queue_item(
                a.id,
                QueuePatch {
                    status: None,
                    priority: Some(0),
                },
                at(8),
            )
            .await,
        "priority 0",
    );
    expect_not_found(
        store
            .update_queue_item(999_999, QueuePatch::default(), at(8))
            .await,
        "missing item",
    );

    store
        .update_queue_item(
            b.id,
            QueuePatch {
                status: Some(QueueStatus::Pending),
                priority: None,
            },
            at(9),
        )
        .await
        .expect("resume b");
    let c = store
        .enqueue(new_item("https://example.com/c", 3), at(10))
        .await
        .expect("c");
    store
        .update_queue_item(
            c.id,
            QueuePatch {
                status: None,
                priority: Some(10),
            },
            at(11),
        )
        .await
        .expect("demote c");
    let order = store
        .claim(&worker("w"), 3, LEASE, at(12))
        .await
        .expect("claim all");
    assert_eq!(ids(&order, |l| l.item.id), [a.id, b.id, c.id]);
    assert_eq!(order[1].item.attempts, 1);
}

/// Deleting and clearing remove rows; a deleted item's lease is lost.
pub async fn queue_delete_and_clear(store: Arc<dyn Store>) {
    let mut items = Vec::new();
    for n in 0..6 {
        items.push(
            store
                .enqueue(new_item(&format!("https://example.com/{n}"), 5), at(n))
                .await
                .expect("enqueue"),
        );
    }
    let leased = store
        .claim(&worker("w"), 3, LEASE, at(10))
        .await
        .expect("claim");
    store
        .complete(&leased[0].lease, 1, at(11))
        .await
        .expect("complete");
    store
        .fail(&leased[1].lease, "gone", None, at(11))
        .await
        .expect("fail");
    // leased[2] stays downloading.

    let removed = store
        .delete_queue_item(leased[2].item.id)
        .await
        .expect("delete");
    assert_eq!(removed.id, leased[2].item.id);
    expect_not_found(store.get_queue_item(removed.id).await, "deleted item");
    expect_not_found(store.delete_queue_item(removed.id).await, "delete twice");
    expect_lease_lost(
        store.complete(&leased[2].lease, 1, at(12)).await,
        removed.id,
        "complete a deleted item",
    );

    assert_eq!(
        store
            .clear_queue(&[QueueStatus::Completed, QueueStatus::Failed])
            .await
            .expect("clear finished"),
        2
    );
    assert_eq!(store.clear_queue(&[]).await.expect("clear nothing"), 0);
    let counts = store.queue_counts().await.expect("counts");
    assert_eq!((counts.pending, counts.total()), (3, 3));
    assert_eq!(
        store
            .clear_queue(&[QueueStatus::Pending])
            .await
            .expect("clear pending"),
        3
    );
    assert_eq!(store.queue_counts().await.expect("counts").total(), 0);
}

/// Average wait and run times over the last day, and workers holding
/// live leases.
pub async fn queue_stats_wait_run_and_workers(store: Arc<dyn Store>) {
    let empty = store.queue_stats(at(0)).await.expect("stats");
    assert_eq!(empty.avg_wait_time_seconds, None);
    assert_eq!(empty.avg_run_time_seconds, None);
    assert_eq!(empty.active_workers, 0);

    // Waits: 10 s and 30 s; the finished one ran 60 s.
    store
        .enqueue(new_item("https://example.com/1", 1), at(0))
        .await
        .expect("1");
    store
        .enqueue(new_item("https://example.com/2", 2), at(0))
        .await
        .expect("2");
    store
        .enqueue(new_item("https://example.com/3", 3), at(0))
        .await
        .expect("3");
    let first = store
        .claim(&worker("w1"), 1, LEASE, at(10))
        .await
        .expect("claim")
        .pop()
        .expect("item");
    store
        .claim(&worker("w2"), 1, Duration::from_secs(1000), at(30))
        .await
        .expect("claim");
    store
        .complete(&first.lease, 1, at(70))
        .await
        .expect("complete");

    let stats = store.queue_stats(at(80)).await.expect("stats");
    assert_eq!(
        (
            stats.counts.pending,
            stats.counts.downloading,
            stats.counts.completed
        ),
        (1, 1, 1)
    );
    let wait = stats.avg_wait_time_seconds.expect("wait");
    assert!((wait - 20.0).abs() < 1e-6, "mean wait 20 s, got {wait}");
    let run = stats.avg_run_time_seconds.expect("run");
    assert!((run - 60.0).abs() < 1e-6, "mean run 60 s, got {run}");
    assert_eq!(stats.active_workers, 1);

    let much_later = store
        .queue_stats(at(3 * 86_400))
        .await
        .expect("stats later");
    assert_eq!(much_later.avg_wait_time_seconds, None, "older than a day");
    assert_eq!(much_later.avg_run_time_seconds, None);
    assert_eq!(much_later.active_workers, 0, "the lease ran out");
}
