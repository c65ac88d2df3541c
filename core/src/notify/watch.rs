//! Notices the bus does not carry, found by looking at the store now and
//! then: scheduled runs that failed without a queue item (not queued, a
//! maintenance job, interrupted) and forum monitors about to stop.
//!
//! What was already announced is kept under a [`StateRepo`] key so a
//! restart does not announce it again.
//!
//! [`StateRepo`]: crate::store::StateRepo

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::notice::Notice;
use super::settings::NotificationSettings;
use crate::error::StoreError;
use crate::model::{JobKind, RunFilter, RunStatus};
use crate::store::Store;

/// The [`StateRepo`](crate::store::StateRepo) key of what was announced.
pub const WATCH_KEY: &str = "notifications.watch";

/// Failed runs looked at per check.
const RUNS_PER_CHECK: u32 = 200;

/// Monitors that stopped longer ago than this are not announced any more
/// (the notifier was not running then).
fn stale_after() -> Duration {
    Duration::days(1)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct WatchState {
    /// Highest failed run id seen; `None` before the first check, which
    /// announces nothing (old failures are history, not news).
    last_failed_run_id: Option<i64>,
    /// Monitors announced, with the `monitor_until` announced.
    warned_monitors: BTreeMap<String, DateTime<Utc>>,
}

/// The notices due now, remembering them as announced.
pub(super) async fn check(
    store: &dyn Store,
    settings: &NotificationSettings,
    now: DateTime<Utc>,
) -> Result<Vec<Notice>, StoreError> {
    let mut state: WatchState = store
        .get_state(WATCH_KEY)
        .await?
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    let before = state.clone();
    let mut notices = Vec::new();

    let runs = store
        .run_history(&RunFilter {
            job_id: None,
            status: Some(RunStatus::Failure),
            limit: RUNS_PER_CHECK,
        })
        .await?;
    let newest = runs.iter().map(|run| run.id).max();
    match state.last_failed_run_id {
        None => state.last_failed_run_id = Some(newest.unwrap_or(0)),
        Some(last) => {
            let mut fresh: Vec<_> = runs
                .iter()
                // A run with a queue item was announced by the item's
                // `download_completed` (or the item was removed by hand).
                .filter(|run| run.id > last && run.queue_id.is_none())
                .collect();
            fresh.sort_by_key(|run| run.id);
            notices.extend(fresh.into_iter().map(Notice::from_failed_run));
            state.last_failed_run_id = Some(newest.unwrap_or(last).max(last));
        }
    }

    let warning = Duration::hours(i64::from(settings.forum_monitor_warning_hours));
    let jobs = store.list_jobs().await?;
    state
        .warned_monitors
        .retain(|id, _| jobs.iter().any(|job| &job.id == id));
    for job in &jobs {
        let Some(until) = job.spec.monitor_until else {
            continue;
        };
        if job.spec.kind != JobKind::ForumMonitor
            || now < until - warning
            || now > until + stale_after()
            || state.warned_monitors.get(&job.id) == Some(&until)
        {
            continue;
        }
        // A monitor switched off by hand before its end is no news.
        if !job.spec.enabled && now < until {
            continue;
        }
        notices.push(Notice::monitor_expiring(job, until, now));
        state.warned_monitors.insert(job.id.clone(), until);
    }

    if state != before {
        let value = serde_json::to_value(&state).unwrap_or_default();
        store.put_state(WATCH_KEY, &value).await?;
    }
    Ok(notices)
}
