//! Request rate limits (governor, GCRA): per user for authenticated calls,
//! per client network otherwise (an IPv4 address, or an IPv6 /64: one
//! subscriber's allocation, which a client can hop across at will),
//! reported on every response as
//! `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds when the
//! full allowance is back).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::RateLimits;

type Keyed<K> = Governor<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Who a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An authenticated user, by id ([`RateLimits::authenticated_per_hour`]).
    User(i64),
    /// An unauthenticated client, by address ([`RateLimits::public_per_hour`]);
    /// counted by [`client_network`].
    Address(IpAddr),
}

/// The network a client is counted as: an IPv4 address as it is (also
/// when it arrives IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its
/// /64 prefix.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Requests allowed per hour for this key (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Unix seconds when the whole allowance is available again.
    pub reset: u64,
    /// Set when the request is refused: seconds until one more is allowed.
    pub retry_after: Option<u64>,
}

impl RateStatus {
    /// Writes the `X-RateLimit-*` headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
        static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
        static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
        headers.insert(&LIMIT, HeaderValue::from(self.limit));
        headers.insert(&REMAINING, HeaderValue::from(self.remaining));
        headers.insert(&RESET, HeaderValue::from(self.reset));
    }
}

/// The two keyed limiters.
pub struct RateLimiter {
    users: Keyed<i64>,
    addresses: Keyed<IpAddr>,
    limits: RateLimits,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn hourly(per_hour: u32) -> Quota {
    Quota::per_hour(NonZeroU32::new(per_hour.max(1)).expect("at least one"))
}

impl RateLimiter {
    /// Limiters allowing `limits` per hour for users and for addresses.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            users: Governor::keyed(hourly(limits.authenticated_per_hour))
                .with_middleware::<StateInformationMiddleware>(),
            addresses: Governor::keyed(hourly(limits.public_per_hour))
                .with_middleware::<StateInformationMiddleware>(),
            limits,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request for `key`.
    pub fn check(&self, key: RateKey) -> RateStatus {
        let (limit, outcome) = match key {
            RateKey::User(id) => (
                self.limits.authenticated_per_hour.max(1),
                self.users.check_key(&id),
            ),
            RateKey::Address(ip) => (
                self.limits.public_per_hour.max(1),
                self.addresses.check_key(&client_network(ip)),
            ),
        };
        // One request's share of the hour: the time to win one back.
        let per_request = Duration::from_secs(3600) / limit;
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let refill = per_request * (limit - remaining.min(limit));
                RateStatus {
                    limit,
                    remaining,
                    reset: (now_unix + refill).as_secs(),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                RateStatus {
                    limit,
                    remaining: 0,
                    reset: (now_unix + per_request * limit).as_secs(),
                    retry_after: Some(wait.as_secs().max(1)),
                }
            }
        }
    }

    /// Forgets keys whose allowance is full again (bounded memory).
    pub fn prune(&self) {
        self.users.retain_recent();
        self.addresses.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_then_refuses_with_retry_after() {
        let limiter = RateLimiter::new(RateLimits {
            public_per_hour: 3,
            authenticated_per_hour: 10,
            websocket_per_user: 1,
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check(RateKey::Address(ip)).remaining)
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(RateKey::Address(ip));
        assert!(refused.retry_after.unwrap() > 0);
        // Another key has its own allowance.
        assert_eq!(limiter.check(RateKey::User(1)).remaining, 9);
        assert_eq!(limiter.check(RateKey::User(1)).limit, 10);
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let limiter = RateLimiter::new(RateLimits {
            public_per_hour: 2,
            authenticated_per_hour: 10,
            websocket_per_user: 1,
        });
        let address = |text: &str| RateKey::Address(text.parse().unwrap());
        // Hopping addresses inside one /64 draws on one allowance.
        assert_eq!(limiter.check(address("2001:db8:0:1::1")).remaining, 1);
        assert_eq!(limiter.check(address("2001:db8:0:1:abcd::2")).remaining, 0);
        assert!(
            limiter
                .check(address("2001:db8:0:1:ffff:ffff:ffff:ffff"))
                .retry_after
                .is_some()
        );
        // The next /64 is another client.
        assert_eq!(limiter.check(address("2001:db8:0:2::1")).remaining, 1);
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(limiter.check(address("::ffff:192.0.2.1")).remaining, 1);
        assert_eq!(limiter.check(address("192.0.2.1")).remaining, 0);
        assert_eq!(
            client_network("2001:db8:0:1:2:3:4:5".parse().unwrap()),
            "2001:db8:0:1::".parse::<IpAddr>().unwrap()
        );
    }
}
