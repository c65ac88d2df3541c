//! Failed-login throttling that a stranger cannot turn against the owner
//! of an account.
//!
//! Failures are counted per (username, client network): after
//! [`LoginLockout::free_failures`] of them, that client waits before its
//! next try, the wait doubling with every further failure up to
//! [`LoginLockout::max_delay`]. Another client is not slowed by them, so
//! guessing from one address never locks the owner out. Only failures for
//! one username from many networks at once, far more than one address may
//! send under the public rate limit, lock the account, and then only for
//! clients that have themselves failed: the right password from a network
//! with no failures is always let in.
//!
//! Both tables are bounded ([`MAX_TRACKED`] entries each): at the bound,
//! forgotten entries are dropped first and then the least recent one, so
//! a stranger sending names or addresses cannot grow memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{LoginLockout, RateLimits};
use crate::error::{ApiError, codes};
use crate::ratelimit::client_network;

/// Entries kept per table (client failures, account failures).
pub const MAX_TRACKED: usize = 10_000;
/// A client's failures are forgotten this long after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Account-wide failures are counted over windows of this length.
const ACCOUNT_WINDOW: Duration = Duration::from_secs(3600);
/// Failures per hour from all networks that lock an account, as a
/// multiple of what one address may send per hour.
const ACCOUNT_LOCK_RATE_FACTOR: u32 = 10;

/// Failures of one client for one username.
#[derive(Debug, Clone, Copy)]
struct ClientFailures {
    count: u32,
    last: Instant,
    wait_until: Option<Instant>,
}

/// Failures for one username from every client in the current window.
#[derive(Debug, Clone, Copy)]
struct AccountFailures {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Tables {
    clients: HashMap<(String, IpAddr), ClientFailures>,
    accounts: HashMap<String, AccountFailures>,
}

/// Counts failed logins (and failed `current_password` checks) and says
/// when a client must wait.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: LoginLockout,
    account_lock_failures: u32,
    tables: Mutex<Tables>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(
            LoginLockout::default(),
            RateLimits::default().public_per_hour,
        )
    }
}

/// The key of a login attempt: the case-folded username and the client's
/// network (IPv6 by /64, as the rate limits count it). Requests without a
/// peer address (in-process tests) share one key.
fn client_key(username: &str, client: Option<IpAddr>) -> (String, IpAddr) {
    let network = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), client_network);
    (username.to_lowercase(), network)
}

fn locked(detail: &str, until: Instant, now: Instant) -> ApiError {
    let left = until.saturating_duration_since(now);
    // Round up: a client that waits exactly `Retry-After` seconds is let in.
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    ApiError::too_many(codes::ACCOUNT_LOCKED, detail, seconds)
}

impl LoginThrottle {
    /// Throttles as `policy` says; without an explicit account threshold,
    /// an account locks at ten times `public_per_hour` failures an hour.
    pub fn new(policy: LoginLockout, public_per_hour: u32) -> Self {
        let account_lock_failures = policy.account_lock_failures.unwrap_or_else(|| {
            public_per_hour
                .max(1)
                .saturating_mul(ACCOUNT_LOCK_RATE_FACTOR)
        });
        Self {
            policy,
            account_lock_failures: account_lock_failures.max(1),
            tables: Mutex::new(Tables::default()),
        }
    }

    /// Failures from all networks within an hour that lock an account.
    pub fn account_lock_failures(&self) -> u32 {
        self.account_lock_failures
    }

    /// 429 `ACCOUNT_LOCKED` with `Retry-After` while `client` must wait
    /// before trying `username` again.
    pub fn check(&self, username: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        self.check_at(username, client, Instant::now())
    }

    fn check_at(
        &self,
        username: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), ApiError> {
        let key = client_key(username, client);
        let tables = self.tables.lock().expect("login throttle lock");
        // A client that never failed is always let through.
        let Some(failures) = tables.clients.get(&key) else {
            return Ok(());
        };
        if let Some(until) = failures.wait_until.filter(|until| *until > now) {
            return Err(locked(
                "too many failed attempts from your address; try again later",
                until,
                now,
            ));
        }
        if let Some(until) = tables
            .accounts
            .get(&key.0)
            .and_then(|account| account.locked_until)
            .filter(|until| *until > now)
        {
            return Err(locked(
                "this account is locked after many failed attempts; try again later",
                until,
                now,
            ));
        }
        Ok(())
    }

    /// Counts a failure of `client` for `username` (known or not, so the
    /// answer reveals nothing).
    pub fn record_failure(&self, username: &str, client: Option<IpAddr>) {
        self.record_failure_at(username, client, Instant::now());
    }

    fn record_failure_at(&self, username: &str, client: Option<IpAddr>, now: Instant) {
        let key = client_key(username, client);
        let account_key = key.0.clone();
        let mut tables = self.tables.lock().expect("login throttle lock");
        if !tables.clients.contains_key(&key) && tables.clients.len() >= MAX_TRACKED {
            make_room(&mut tables.clients, |f| f.last, now);
        }
        let failures = tables.clients.entry(key).or_insert(ClientFailures {
            count: 0,
            last: now,
            wait_until: None,
        });
        if now.duration_since(failures.last) >= FORGET_AFTER {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        failures.wait_until = self.wait_after(failures.count).map(|wait| now + wait);

        if !tables.accounts.contains_key(&account_key) && tables.accounts.len() >= MAX_TRACKED {
            make_room(&mut tables.accounts, |a| a.window_start, now);
        }
        let account = tables
            .accounts
            .entry(account_key)
            .or_insert(AccountFailures {
                window_start: now,
                count: 0,
                locked_until: None,
            });
        if now.duration_since(account.window_start) >= ACCOUNT_WINDOW {
            account.window_start = now;
            account.count = 0;
        }
        account.count = account.count.saturating_add(1);
        if account.count >= self.account_lock_failures {
            account.locked_until = Some(now + self.policy.account_lock_for);
            account.window_start = now;
            account.count = 0;
        }
    }

    /// The wait after the `count`th failure in a row: none for the free
    /// ones, then `first_delay`, doubling up to `max_delay`.
    fn wait_after(&self, count: u32) -> Option<Duration> {
        let beyond = count.checked_sub(self.policy.free_failures.max(1))?;
        let factor = 1u32.checked_shl(beyond).unwrap_or(u32::MAX);
        Some(
            self.policy
                .first_delay
                .saturating_mul(factor)
                .min(self.policy.max_delay),
        )
    }

    /// The right password: the client's failures for `username` are
    /// forgotten (the account-wide count stays).
    pub fn record_success(&self, username: &str, client: Option<IpAddr>) {
        let key = client_key(username, client);
        self.tables
            .lock()
            .expect("login throttle lock")
            .clients
            .remove(&key);
    }

    /// Entries held now (client failures, account failures).
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.tables.lock().expect("login throttle lock");
        (tables.clients.len(), tables.accounts.len())
    }
}

/// Frees one place in a full table: drops what is old enough to be
/// forgotten, else the entry whose `time` is the oldest.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V>,
    time: impl Fn(&V) -> Instant,
    now: Instant,
) {
    table.retain(|_, value| now.duration_since(time(value)) < FORGET_AFTER);
    if table.len() < MAX_TRACKED {
        return;
    }
    if let Some(oldest) = table
        .iter()
        .min_by_key(|(_, value)| time(value))
        .map(|(key, _)| key.clone())
    {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn throttle(account_lock_failures: Option<u32>) -> LoginThrottle {
        LoginThrottle::new(
            LoginLockout {
                free_failures: 3,
                first_delay: Duration::from_secs(10),
                max_delay: Duration::from_secs(100),
                account_lock_failures,
                account_lock_for: Duration::from_secs(600),
            },
            100,
        )
    }

    fn retry_after(result: Result<(), ApiError>) -> u64 {
        let err = result.unwrap_err();
        assert_eq!(err.code, codes::ACCOUNT_LOCKED);
        err.retry_after.unwrap()
    }

    #[test]
    fn one_client_waits_ever_longer_and_others_are_not_slowed() {
        let throttle = throttle(None);
        let start = Instant::now();
        for _ in 0..2 {
            throttle.record_failure_at("Admin", ip("10.0.0.1"), start);
            assert!(throttle.check_at("admin", ip("10.0.0.1"), start).is_ok());
        }
        throttle.record_failure_at("admin", ip("10.0.0.1"), start);
        assert_eq!(
            retry_after(throttle.check_at("ADMIN", ip("10.0.0.1"), start)),
            10
        );
        // Another address, and another name from the same address, go on.
        assert!(throttle.check_at("admin", ip("10.0.0.2"), start).is_ok());
        assert!(throttle.check_at("bob", ip("10.0.0.1"), start).is_ok());
        // The waits double, up to the maximum.
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..5 {
            now += Duration::from_secs(1000);
            throttle.record_failure_at("admin", ip("10.0.0.1"), now);
            waits.push(retry_after(throttle.check_at("admin", ip("10.0.0.1"), now)));
        }
        assert_eq!(waits, vec![20, 40, 80, 100, 100]);
        // Once the wait is over the client may try again; success clears it.
        now += Duration::from_secs(100);
        assert!(throttle.check_at("admin", ip("10.0.0.1"), now).is_ok());
        throttle.record_success("admin", ip("10.0.0.1"));
        throttle.record_failure_at("admin", ip("10.0.0.1"), now);
        assert!(throttle.check_at("admin", ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn ipv6_clients_are_one_per_64_and_mapped_ipv4_is_ipv4() {
        let throttle = throttle(None);
        let now = Instant::now();
        for _ in 0..3 {
            throttle.record_failure_at("admin", ip("2001:db8:1:2::1"), now);
        }
        assert!(
            throttle
                .check_at("admin", ip("2001:db8:1:2:ffff::9"), now)
                .is_err()
        );
        assert!(
            throttle
                .check_at("admin", ip("2001:db8:1:3::1"), now)
                .is_ok()
        );
        for _ in 0..3 {
            throttle.record_failure_at("admin", ip("::ffff:192.0.2.7"), now);
        }
        assert!(throttle.check_at("admin", ip("192.0.2.7"), now).is_err());
    }

    #[test]
    fn many_networks_lock_the_account_but_not_for_clean_clients() {
        let throttle = throttle(Some(6));
        let now = Instant::now();
        // Six failing networks, one failure each: none is delayed yet.
        for n in 1..=5 {
            throttle.record_failure_at("admin", ip(&format!("10.0.0.{n}")), now);
            assert!(
                throttle
                    .check_at("admin", ip(&format!("10.0.0.{n}")), now)
                    .is_ok()
            );
        }
        throttle.record_failure_at("admin", ip("10.0.0.6"), now);
        // Now every network that failed waits for the lock …
        assert_eq!(
            retry_after(throttle.check_at("admin", ip("10.0.0.1"), now)),
            600
        );
        // … and one that never failed is let in.
        assert!(throttle.check_at("admin", ip("10.0.0.99"), now).is_ok());
        assert!(throttle.check_at("other", ip("10.0.0.1"), now).is_ok());
        let later = now + Duration::from_secs(601);
        assert!(throttle.check_at("admin", ip("10.0.0.1"), later).is_ok());
    }

    #[test]
    fn the_default_account_threshold_is_far_above_one_address() {
        let throttle = LoginThrottle::new(LoginLockout::default(), 100);
        assert_eq!(throttle.account_lock_failures(), 1000);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_names() {
        let throttle = throttle(None);
        let now = Instant::now();
        for n in 0..(MAX_TRACKED + 500) {
            throttle.record_failure_at(&format!("name-{n}"), ip("10.0.0.1"), now);
        }
        assert_eq!(throttle.tracked(), (MAX_TRACKED, MAX_TRACKED));
        // Entries old enough are forgotten first.
        let later = now + FORGET_AFTER;
        throttle.record_failure_at("fresh", ip("10.0.0.1"), later);
        assert_eq!(throttle.tracked(), (1, 1));
    }
}
