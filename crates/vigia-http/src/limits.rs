//! Rate limits on the endpoints attackers hammer: login and registration.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock>;

/// Keyed token buckets (GCRA) per client address and per account.
pub struct RateLimits {
    login_by_ip: Keyed<IpAddr>,
    login_by_account: Keyed<String>,
    register_by_ip: Keyed<IpAddr>,
    clock: DefaultClock,
}

fn quota_per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

fn quota_per_hour(n: u32) -> Quota {
    Quota::per_hour(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    pub fn new(login_per_minute: u32, register_per_hour: u32) -> Self {
        Self {
            login_by_ip: RateLimiter::dashmap(quota_per_minute(login_per_minute)),
            login_by_account: RateLimiter::dashmap(quota_per_minute(login_per_minute)),
            register_by_ip: RateLimiter::dashmap(quota_per_hour(register_per_hour)),
            clock: DefaultClock::default(),
        }
    }

    fn retry<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Keyed<K>,
        key: &K,
    ) -> Result<(), ApiError> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }

    /// One login attempt from `ip` for `account` (the e-mail as typed, lower-cased).
    pub fn login(&self, ip: IpAddr, account: &str) -> Result<(), ApiError> {
        self.retry(&self.login_by_ip, &ip)?;
        self.retry(&self.login_by_account, &account.trim().to_lowercase())
    }

    /// One registration attempt from `ip`.
    pub fn register(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.retry(&self.register_by_ip, &ip)
    }
}
