//! Rate limits shared by every node: a generic cell rate algorithm (GCRA) whose state, one
//! theoretical arrival time per key, lives in the `rate_limits` table. An attempt is one
//! conditional upsert, so concurrent attempts on any node are counted once each and never
//! exceed the quota together.

use std::time::Duration;

use vigia_domain::Timestamp;

use crate::{Db, StoreResult, direct, grouped_write};

/// `burst` attempts at once, and one more every `period / burst` after that (so `burst` per
/// `period` in the long run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub burst: u32,
    pub period: Duration,
}

impl Quota {
    /// The time one attempt takes up, in ms (at least 1).
    fn interval_ms(self) -> i64 {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        (period / i64::from(self.burst.max(1))).max(1)
    }

    /// How far ahead of now the arrival time may run, in ms: the whole burst.
    fn tolerance_ms(self) -> i64 {
        self.interval_ms() * i64::from(self.burst.max(1))
    }
}

/// Moves `key`'s arrival time on by one attempt, only if it stays within the tolerance; the new
/// time when it did. `$1` key, `$2` now, `$3` interval, `$4` tolerance (ms).
const TAKE: &str = "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3) \
     ON CONFLICT (key) DO UPDATE \
     SET tat = (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) + $3 \
     WHERE (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) + $3 - $2 <= $4 \
     RETURNING tat";

/// The arrival time of `key`, read when an attempt was refused.
const TAT: &str = "SELECT tat FROM rate_limits WHERE key = $1";
const PURGE: &str = "DELETE FROM rate_limits WHERE tat < $1";

/// Counts one attempt for `key` at `now` under `quota`: `Ok(())` when it is allowed,
/// `Err(wait)` with how long until the next one would be.
#[tracing::instrument(skip(db))]
pub async fn take(
    db: &Db,
    key: &str,
    quota: Quota,
    now: Timestamp,
) -> StoreResult<Result<(), Duration>> {
    let (interval, tolerance) = (quota.interval_ms(), quota.tolerance_ms());
    let (key, at) = (key.to_owned(), now.millis());
    // `Ok` when taken, else the arrival time that refused it (read in the same transaction).
    let taken: Result<(), Option<i64>> = grouped_write!(db,
        sqlite: |conn| {
            let taken: Option<i64> = direct::query_optional(
                conn,
                TAKE,
                &[&key, &at, &interval, &tolerance],
                |r| r.get("tat"),
            )?;
            if taken.is_some() {
                return Ok(Ok(()));
            }
            Ok(Err(direct::query_optional(conn, TAT, &[&key], |r| r.get("tat"))?))
        },
        postgres: |tx| {
            let taken: Option<i64> = sqlx::query_scalar(TAKE)
                .bind(&key)
                .bind(at)
                .bind(interval)
                .bind(tolerance)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Ok(Ok(()));
            }
            Ok(Err(sqlx::query_scalar(TAT)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?))
        },
    )?;
    let Err(tat) = taken else {
        return Ok(Ok(()));
    };
    // Allowed again once the arrival time, one more attempt on, is back within the tolerance.
    let wait = tat.unwrap_or(at) + interval - tolerance - at;
    Ok(Err(Duration::from_millis(wait.max(0) as u64)))
}

/// Deletes the keys whose arrival time has passed (they limit nothing any more).
pub async fn purge(db: &Db, now: Timestamp) -> StoreResult<u64> {
    db.delete_before(PURGE, now.millis()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_spreads_its_period_over_its_burst() {
        let quota = Quota {
            burst: 10,
            period: Duration::from_secs(60),
        };
        assert_eq!(quota.interval_ms(), 6_000);
        assert_eq!(quota.tolerance_ms(), 60_000);
        let zero = Quota {
            burst: 0,
            period: Duration::ZERO,
        };
        assert_eq!((zero.interval_ms(), zero.tolerance_ms()), (1, 1));
    }
}
