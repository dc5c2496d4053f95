//! Rate limits on the endpoints attackers hammer: login and registration.
//!
//! The counts live in the database ([`vigia_store::rate_limits`]), not in the node's memory: on
//! several nodes sharing one PostgreSQL, a client spreading its attempts over them still gets
//! one budget, not one per node.

use std::net::IpAddr;
use std::time::Duration;

use vigia_domain::Timestamp;
use vigia_domain::auth::secret_hash;
use vigia_store::Db;
use vigia_store::rate_limits::{self, Quota};

use crate::error::{ApiError, ApiResult};

/// The quotas per client address and per account.
pub struct RateLimits {
    login: Quota,
    register: Quota,
}

impl RateLimits {
    pub fn new(login_per_minute: u32, register_per_hour: u32) -> Self {
        Self {
            login: Quota {
                burst: login_per_minute.max(1),
                period: Duration::from_secs(60),
            },
            register: Quota {
                burst: register_per_hour.max(1),
                period: Duration::from_secs(3600),
            },
        }
    }

    async fn take(&self, db: &Db, key: &str, quota: Quota) -> ApiResult<()> {
        rate_limits::take(db, key, quota, Timestamp::now())
            .await?
            .map_err(|wait| ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            })
    }

    /// One login attempt from `ip` for `account` (the e-mail as typed; counted lower-cased,
    /// and stored only as a hash).
    pub async fn login(&self, db: &Db, ip: IpAddr, account: &str) -> ApiResult<()> {
        self.take(db, &format!("login:ip:{ip}"), self.login).await?;
        let account = secret_hash(&account.trim().to_lowercase());
        self.take(db, &format!("login:account:{account}"), self.login)
            .await
    }

    /// One registration attempt from `ip`.
    pub async fn register(&self, db: &Db, ip: IpAddr) -> ApiResult<()> {
        self.take(db, &format!("register:ip:{ip}"), self.register)
            .await
    }
}
