//! Per-host politeness: a request rate (governor) and a cap on concurrent
//! transfers, both optional.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(crate) struct HostLimits {
    rate: Option<DefaultKeyedRateLimiter<String>>,
    concurrency: Option<usize>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One of a host's concurrent-transfer slots; released on drop.
#[derive(Debug)]
pub struct HostPermit {
    _permit: Option<OwnedSemaphorePermit>,
}

impl HostLimits {
    /// `0` means unlimited for either limit.
    pub(crate) fn new(requests_per_second: u32, concurrency: u32) -> Self {
        Self {
            rate: NonZeroU32::new(requests_per_second)
                .map(|rps| governor::RateLimiter::keyed(Quota::per_second(rps))),
            concurrency: (concurrency > 0).then_some(concurrency as usize),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until the host may receive another request.
    pub(crate) async fn until_ready(&self, host: String) {
        if let Some(rate) = &self.rate {
            rate.until_key_ready(&host).await;
        }
    }

    /// Whether the host may receive a request right now; takes that
    /// request's share of the budget when it may.
    #[cfg(test)]
    pub(crate) fn try_now(&self, host: &str) -> bool {
        self.rate
            .as_ref()
            .is_none_or(|rate| rate.check_key(&host.to_owned()).is_ok())
    }

    pub(crate) async fn permit(&self, host: String) -> HostPermit {
        let Some(limit) = self.concurrency else {
            return HostPermit { _permit: None };
        };
        let semaphore = {
            let mut slots = self.slots.lock().expect("host slots lock");
            Arc::clone(
                slots
                    .entry(host)
                    .or_insert_with(|| Arc::new(Semaphore::new(limit))),
            )
        };
        let permit = semaphore
            .acquire_owned()
            .await
            .expect("host semaphores are never closed");
        HostPermit {
            _permit: Some(permit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn rate_limit_spaces_requests_per_host() {
        let limits = HostLimits::new(10, 0);
        let start = Instant::now();
        for _ in 0..13 {
            limits.until_ready("a:80".into()).await;
        }
        // A burst of 10 passes at once; three more need ~100 ms each.
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        let other = Instant::now();
        limits.until_ready("b:80".into()).await;
        assert!(
            other.elapsed() < Duration::from_millis(50),
            "other hosts are not slowed"
        );
    }

    #[tokio::test]
    async fn concurrency_is_capped_per_host() {
        let limits = Arc::new(HostLimits::new(0, 1));
        let first = limits.permit("a".into()).await;
        let waiting = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.permit("a".into()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        let _other_host = limits.permit("b".into()).await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
