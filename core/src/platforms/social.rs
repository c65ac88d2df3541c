//! What the social-network clients (Instagram, TikTok) share: pacing
//! requests politely, and keeping a listing newest first when the site
//! pins old posts to the top.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::downloader::MediaItem;
use crate::error::DownloadError;

const HOUR: Duration = Duration::from_secs(3600);

/// How a platform wants its requests spaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    /// Names the limit in a [`DownloadError::RateLimited`] (the setting to change).
    pub label: &'static str,
    /// Each request waits a random time in this range after the previous one.
    pub delay_min_seconds: f64,
    /// Upper end of that range, in seconds.
    pub delay_max_seconds: f64,
    /// Requests per rolling hour; 0 for no limit.
    pub per_hour: u32,
    /// A longer wait for the hourly budget hands the item back to the queue.
    pub max_inline_wait: Duration,
}

/// Spaces one platform's requests across every source and worker of the
/// process: a random delay after the previous request and a rolling
/// hourly budget. Requests wait their turn in order.
#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    last: Option<Instant>,
    recent: VecDeque<Instant>,
}

impl Pacer {
    /// Waits until the next request may go, or says how long the hourly
    /// budget needs when that is longer than `pace.max_inline_wait`.
    pub async fn wait(&self, pace: &Pace, cancel: &CancellationToken) -> Result<(), DownloadError> {
        let mut state = self.state.lock().await;
        if pace.per_hour > 0 {
            let now = Instant::now();
            while state
                .recent
                .front()
                .is_some_and(|at| now.duration_since(*at) >= HOUR)
            {
                state.recent.pop_front();
            }
            if state.recent.len() >= pace.per_hour as usize
                && let Some(oldest) = state.recent.front()
            {
                let wait = (*oldest + HOUR).saturating_duration_since(now);
                if wait > pace.max_inline_wait {
                    return Err(DownloadError::RateLimited {
                        host: pace.label.into(),
                        after: wait,
                    });
                }
                sleep(wait, cancel).await?;
            }
        }
        if let Some(last) = state.last {
            let min = pace.delay_min_seconds.max(0.0);
            let max = pace.delay_max_seconds.max(min);
            let delay = if max > min {
                rand::random_range(min..=max)
            } else {
                min
            };
            let at = last + Duration::from_secs_f64(delay);
            sleep(at.saturating_duration_since(Instant::now()), cancel).await?;
        }
        let now = Instant::now();
        state.last = Some(now);
        state.recent.push_back(now);
        Ok(())
    }
}

/// Sleeps unless cancelled first.
pub async fn sleep(duration: Duration, cancel: &CancellationToken) -> Result<(), DownloadError> {
    if duration.is_zero() {
        return Ok(());
    }
    tokio::select! {
        _ = cancel.cancelled() => Err(DownloadError::Cancelled),
        _ = tokio::time::sleep(duration) => Ok(()),
    }
}

/// Pinned posts sit at the top of a profile whatever their age. They are
/// held back and released where their date puts them, so the listing stays
/// newest first (the engine stops at the first item older than
/// `days_back`, and counts known items in a row).
#[derive(Debug, Default)]
pub struct Pinned {
    held: Vec<MediaItem>,
}

impl Pinned {
    /// Holds `items` back until the listing reaches their date.
    pub fn hold(&mut self, items: Vec<MediaItem>) {
        self.held.extend(items);
        self.held
            .sort_by_key(|item| std::cmp::Reverse(item.posted_at));
    }

    /// Held items posted at or after `posted_at`, newest first (all of
    /// them when `None`, at the end of the listing).
    pub fn release_newer_than(&mut self, posted_at: Option<DateTime<Utc>>) -> Vec<MediaItem> {
        let split = match posted_at {
            None => self.held.len(),
            Some(at) => self
                .held
                .iter()
                .position(|item| item.posted_at.is_none_or(|held| held < at))
                .unwrap_or(self.held.len()),
        };
        self.held.drain(..split).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_posts_are_released_in_date_order() {
        let item = |key: &str, at: i64| {
            let mut item = MediaItem::new(
                key,
                url::Url::parse("https://cdn.example/x.jpg").unwrap(),
                "post",
            );
            item.posted_at = DateTime::from_timestamp(at, 0);
            item
        };
        let mut pinned = Pinned::default();
        pinned.hold(vec![item("old", 100), item("mid", 500)]);
        assert!(
            pinned
                .release_newer_than(DateTime::from_timestamp(900, 0))
                .is_empty()
        );
        let released: Vec<String> = pinned
            .release_newer_than(DateTime::from_timestamp(400, 0))
            .into_iter()
            .map(|i| i.archive_key)
            .collect();
        assert_eq!(released, ["mid"]);
        assert_eq!(pinned.release_newer_than(None).len(), 1);
    }

    /// A pace waiting `delay` (min, max seconds) between requests, at most
    /// `per_hour` an hour (0: no budget), waiting in place up to `inline_wait` seconds.
    fn test_pace(delay: (f64, f64), per_hour: u32, inline_wait: u64) -> Pace {
        Pace {
            label: "test",
            delay_min_seconds: delay.0,
            delay_max_seconds: delay.1,
            per_hour,
            max_inline_wait: Duration::from_secs(inline_wait),
        }
    }

    #[tokio::test]
    async fn the_hourly_budget_hands_long_waits_back() {
        let pacer = Pacer::default();
        let cancel = CancellationToken::new();
        let pace = test_pace((0.0, 0.0), 2, 1);
        pacer.wait(&pace, &cancel).await.unwrap();
        pacer.wait(&pace, &cancel).await.unwrap();
        let err = pacer.wait(&pace, &cancel).await.unwrap_err();
        assert!(
            matches!(err, DownloadError::RateLimited { after, .. } if after > Duration::from_secs(3500)),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_delay() {
        let pacer = Pacer::default();
        let cancel = CancellationToken::new();
        let pace = test_pace((6.0, 12.0), 0, 60);
        pacer.wait(&pace, &cancel).await.unwrap();
        let first = Instant::now();
        pacer.wait(&pace, &cancel).await.unwrap();
        let gap = Instant::now() - first;
        assert!(
            gap >= Duration::from_secs(6) && gap <= Duration::from_secs(12),
            "{gap:?}"
        );
    }
}
