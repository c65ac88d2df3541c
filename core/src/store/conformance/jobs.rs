//! Conformance checks of scheduled jobs: definitions, slot claims and runs.

use std::sync::Arc;

use crate::model::{NextRun, RunFilter, RunStatus};
use crate::store::Store;

use super::*;

/// The jobs checks, expanded by
/// [`store_conformance_suite!`](crate::store_conformance_suite). A new
/// check of this file goes in this list (a test fails when one is missing).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_jobs_cases {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory; jobs_crud_and_slots, jobs_runs_and_history, jobs_spec_update_never_reopens_a_slot);
    };
}

/// Job definitions round-trip; a slot fires for exactly one caller.
pub async fn jobs_crud_and_slots(store: Arc<dyn Store>) {
    let job = new_job("instagram-someone-posts");
    assert_eq!(store.create_job(job.clone()).await.expect("create"), job);
    expect_conflict(store.create_job(job.clone()).await, "duplicate job id");
    expect_invalid(store.create_job(new_job("")).await, "empty job id");
    let other = store.create_job(new_job("a-first")).await.expect("create");
    assert_eq!(store.get_job(&job.id).await.expect("get"), job);
    expect_not_found(store.get_job("nope").await, "missing job");
    assert_eq!(
        store.list_jobs().await.expect("list"),
        vec![other.clone(), job.clone()],
        "ordered by id"
    );

    let mut spec = job.spec.clone();
    spec.schedule = "*/5 * * * *".into();
    spec.monitor_until = Some(at(7 * 86_400));
    spec.config.days_back = Some(3);
    let changed = store
        .update_job_spec(&job.id, spec.clone(), NextRun::Keep, at(60))
        .await
        .expect("update");
    assert_eq!(
        (&changed.spec, &changed.state, changed.updated_at),
        (&spec, &job.state, at(60)),
        "the definition changes, the state stays"
    );
    assert_eq!(store.get_job(&job.id).await.expect("get"), changed);
    let retimed = store
        .update_job_spec(&job.id, spec.clone(), NextRun::Set(Some(at(300))), at(61))
        .await
        .expect("retime");
    assert_eq!(retimed.state.next_run, Some(at(300)));
    spec.enabled = false;
    let disabled = store
        .update_job_spec(&job.id, spec.clone(), NextRun::Keep, at(62))
        .await
        .expect("disable");
    assert_eq!(
        (disabled.spec.enabled, disabled.state.next_run),
        (false, None),
        "a disabled job has no next run"
    );
    let enabled = store
        .set_job_enabled(&job.id, true, Some(at(3600)), at(63))
        .await
        .expect("enable");
    assert_eq!(
        (
            &enabled.spec.schedule,
            enabled.spec.enabled,
            enabled.state.next_run
        ),
        (&spec.schedule, true, Some(at(3600)))
    );
    let paused = store
        .set_job_enabled(&job.id, false, Some(at(3600)), at(64))
        .await
        .expect("disable");
    assert_eq!(
        (
            paused.spec.enabled,
            paused.state.next_run,
            paused.updated_at
        ),
        (false, None, at(64))
    );
    expect_not_found(
        store
            .update_job_spec("ghost", spec.clone(), NextRun::Keep, at(65))
            .await,
        "update missing",
    );
    expect_not_found(
        store.set_job_enabled("ghost", true, None, at(65)).await,
        "enable missing",
    );
    store
        .set_job_enabled(&job.id, true, Some(at(3600)), at(66))
        .await
        .expect("enable again");

    assert!(
        store
            .claim_slot(&job.id, at(3600), Some(at(7200)))
            .await
            .expect("first claim")
    );
    assert!(
        !store
            .claim_slot(&job.id, at(3600), Some(at(7200)))
            .await
            .expect("same slot again"),
        "a slot fires once"
    );
    assert!(
        !store
            .claim_slot(&job.id, at(1800), None)
            .await
            .expect("older slot"),
        "an older slot never fires after a newer one"
    );
    let stored = store.get_job(&job.id).await.expect("get");
    assert_eq!(
        (stored.state.last_slot, stored.state.next_run),
        (Some(at(3600)), Some(at(7200)))
    );
    expect_not_found(
        store.claim_slot("ghost", at(1), None).await,
        "slot of a missing job",
    );

    // Racing schedulers: exactly one wins each slot.
    let mut racers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let id = job.id.clone();
        racers.push(tokio::spawn(async move {
            store.claim_slot(&id, at(7200), Some(at(10_800))).await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        if racer.await.expect("join").expect("claim") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);

    store.delete_job(&other.id).await.expect("delete");
    expect_not_found(store.get_job(&other.id).await, "deleted job");
    expect_not_found(store.delete_job(&other.id).await, "delete twice");
}

/// Runs open and close once, keep the job's counters, and list newest first.
pub async fn jobs_runs_and_history(store: Arc<dyn Store>) {
    let job = store.create_job(new_job("j1")).await.expect("create");
    let other = store.create_job(new_job("j2")).await.expect("create");
    expect_not_found(
        store
            .open_run("ghost", at(0), RunStatus::Running, None)
            .await,
        "run of a missing job",
    );
    expect_invalid(
        store
            .open_run(&job.id, at(0), RunStatus::Success, None)
            .await,
        "a run cannot open as success",
    );

    let run = store
        .open_run(&job.id, at(100), RunStatus::Running, None)
        .await
        .expect("open");
    assert_eq!(
        (run.status, run.started_at, run.completed_at),
        (RunStatus::Running, at(100), None)
    );
    assert_eq!(
        store.active_run(&job.id).await.expect("active"),
        Some(run.clone())
    );
    store
        .set_run_queue_item(run.id, 77)
        .await
        .expect("link queue item");
    expect_not_found(
        store.set_run_queue_item(999_999, 1).await,
        "link a missing run",
    );
    let skipped = store
        .open_run(&job.id, at(200), RunStatus::Skipped, None)
        .await
        .expect("skipped");
    assert_eq!(
        (skipped.completed_at, skipped.duration_seconds),
        (Some(at(200)), Some(0.0))
    );

    expect_invalid(
        store
            .close_run(run.id, RunStatus::Running, 0, None, at(150))
            .await,
        "closing as running",
    );
    let closed = store
        .close_run(run.id, RunStatus::Success, 12, None, at(190))
        .await
        .expect("close");
    assert_eq!(closed.status, RunStatus::Success);
    assert_eq!(closed.completed_at, Some(at(190)));
    assert_eq!(closed.duration_seconds, Some(90.0));
    assert_eq!(closed.items_downloaded, 12);
    assert_eq!(closed.queue_id, Some(77));
    let again = store
        .close_run(run.id, RunStatus::Failure, 0, Some("late".into()), at(500))
        .await
        .expect("close twice");
    assert_eq!(again, closed, "closing a closed run changes nothing");
    assert_eq!(store.active_run(&job.id).await.expect("active"), None);
    expect_not_found(
        store
            .close_run(999_999, RunStatus::Success, 0, None, at(1))
            .await,
        "close a missing run",
    );

    let failing = store
        .open_run(&other.id, at(300), RunStatus::Running, Some(5))
        .await
        .expect("open other");
    store
        .close_run(
            failing.id,
            RunStatus::Failure,
            0,
            Some("HTTP 429".into()),
            at(310),
        )
        .await
        .expect("close other");

    let stored = store.get_job(&job.id).await.expect("job");
    assert_eq!(stored.state.total_runs, 2, "skipped runs count as runs");
    assert_eq!(
        (stored.state.success_count, stored.state.failure_count),
        (1, 0)
    );
    assert_eq!(stored.state.last_run, Some(at(200)));
    let stored_other = store.get_job(&other.id).await.expect("job");
    assert_eq!(
        (
            stored_other.state.total_runs,
            stored_other.state.failure_count,
            stored_other.state.last_run_status,
            stored_other.state.last_run_items
        ),
        (1, 1, Some(RunStatus::Failure), Some(0))
    );

    let history = store
        .run_history(&RunFilter::default())
        .await
        .expect("history");
    assert_eq!(
        ids(&history, |r| r.id),
        [failing.id, skipped.id, run.id],
        "newest first"
    );
    let only_job = store
        .run_history(&RunFilter {
            job_id: Some(job.id.clone()),
            status: None,
            limit: 0,
        })
        .await
        .expect("history of one job");
    assert_eq!(ids(&only_job, |r| r.id), [skipped.id, run.id]);
    let only_failures = store
        .run_history(&RunFilter {
            job_id: None,
            status: Some(RunStatus::Failure),
            limit: 10,
        })
        .await
        .expect("failures");
    assert_eq!(only_failures.len(), 1);
    assert_eq!(only_failures[0].error_message.as_deref(), Some("HTTP 429"));
    let limited = store
        .run_history(&RunFilter {
            job_id: None,
            status: None,
            limit: 1,
        })
        .await
        .expect("limited");
    assert_eq!(ids(&limited, |r| r.id), [failing.id]);

    store.delete_job(&job.id).await.expect("delete job");
    let remaining = store
        .run_history(&RunFilter::default())
        .await
        .expect("history");
    assert_eq!(
        ids(&remaining, |r| r.id),
        [failing.id],
        "a deleted job's runs go with it"
    );
}

/// A definition written from a read taken before another process claimed
/// a slot and ran it leaves the slot claimed and the run counted: the same
/// slot never fires twice.
pub async fn jobs_spec_update_never_reopens_a_slot(store: Arc<dyn Store>) {
    let job = store.create_job(new_job("j-race")).await.expect("create");
    let stale = store
        .get_job(&job.id)
        .await
        .expect("read before the firing");

    // Another scheduler fires the slot and its run ends.
    assert!(
        store
            .claim_slot(&job.id, at(3600), Some(at(18_000)))
            .await
            .expect("claim")
    );
    let run = store
        .open_run(&job.id, at(3600), RunStatus::Running, Some(1))
        .await
        .expect("open");
    store
        .close_run(run.id, RunStatus::Success, 4, None, at(3700))
        .await
        .expect("close");
    let fired = store.get_job(&job.id).await.expect("after the firing");

    // A PATCH computed from the stale read, and a pause from the worker.
    let mut spec = stale.spec.clone();
    spec.name = "renamed".into();
    let updated = store
        .update_job_spec(&job.id, spec, NextRun::Keep, at(3800))
        .await
        .expect("update from the stale read");
    assert_eq!(updated.spec.name, "renamed");
    assert_eq!(
        updated.state, fired.state,
        "slot, counters, last and next run as the firing left them"
    );
    assert!(
        !store
            .claim_slot(&job.id, at(3600), Some(at(18_000)))
            .await
            .expect("claim again"),
        "the slot stays taken"
    );
    let paused = store
        .set_job_enabled(&job.id, false, None, at(3900))
        .await
        .expect("pause");
    assert_eq!(
        (
            paused.state.last_slot,
            paused.state.total_runs,
            paused.state.success_count
        ),
        (Some(at(3600)), 1, 1)
    );
    let resumed = store
        .update_job_spec(
            &job.id,
            stale.spec.clone(),
            NextRun::Set(Some(at(18_000))),
            at(4000),
        )
        .await
        .expect("resume from the stale read");
    assert_eq!(resumed.state.last_slot, Some(at(3600)));
    assert!(
        !store
            .claim_slot(&job.id, at(3600), Some(at(18_000)))
            .await
            .expect("claim after resume"),
        "re-enabling does not re-open the slot either"
    );

    // Writers racing claimers: each slot is won once.
    let mut tasks = Vec::new();
    for n in 0..4_i64 {
        let store = store.clone();
        let id = job.id.clone();
        let spec = stale.spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            for slot in 2..10_i64 {
                let slot_at = at(slot * 3600);
                if store
                    .claim_slot(&id, slot_at, Some(slot_at + chrono::Duration::hours(1)))
                    .await
                    .expect("racing claim")
                {
                    wins += 1;
                }
                store
                    .update_job_spec(&id, spec.clone(), NextRun::Keep, at(slot * 3600 + n))
                    .await
                    .expect("racing update");
            }
            wins
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.expect("join");
    }
    assert_eq!(wins, 8, "slots 2 to 9 fired once each");
    let last = store.get_job(&job.id).await.expect("after the race");
    assert_eq!(last.state.last_slot, Some(at(9 * 3600)));
}
