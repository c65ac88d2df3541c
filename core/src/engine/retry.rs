//! When to try a failed queue item again: exponential backoff with jitter,
//! never sooner than the server's `Retry-After`.

use std::time::Duration;

use rand::RngExt;

/// Backoff between attempts of one queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure.
    pub base: Duration,
    /// No wait is longer than this (except a longer `Retry-After`).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`, after `attempts` failed
    /// ones: `base · 2^(attempts-1)` capped at `max`, times a random factor
    /// in [0.5, 1.5) so failed items do not all return at once; at least
    /// `retry_after`.
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let backoff = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let jitter: f64 = rand::rng().random_range(0.5..1.5);
        let jittered = backoff.mul_f64(jitter);
        retry_after.map_or(jittered, |after| jittered.max(after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for (attempts, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (20, 60.0)] {
            let delay = policy.delay(attempts, None).as_secs_f64();
            assert!(
                delay >= nominal * 0.5 && delay < nominal * 1.5,
                "attempt {attempts}: {delay}"
            );
        }
    }

    #[test]
    fn never_sooner_than_retry_after() {
        let policy = RetryPolicy::default();
        let delay = policy.delay(1, Some(Duration::from_secs(600)));
        assert!(delay >= Duration::from_secs(600));
    }
}
