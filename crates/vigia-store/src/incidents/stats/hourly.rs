//! Incidents created and resolved per hour over a short range (the dashboard's last 24 hours),
//! in the same scope as [`incident_stats`](super::incident_stats): the caller's departments, or
//! everything for admins. Two grouped statements over the creation and resolution indexes.

use vigia_domain::Timestamp;
use vigia_domain::incidents::ReadScope;

use super::{fetch_rows, scope_conditions};
use crate::sql::{Arg, Sql};
use crate::{Db, StoreResult};

/// An hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// The longest range [`per_hour`] covers, in hours (a week).
pub const MAX_HOURS: i64 = 168;

/// An hour's index from the start of the range and its count.
type HourRow = (i64, i64);

/// A [`HourRow`] read on a direct SQLite connection, each column by its name.
fn hour_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HourRow> {
    Ok((r.get("hour")?, r.get("total")?))
}

/// Incidents created and resolved in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// The hour's start.
    pub start: Timestamp,
    pub created: i64,
    pub resolved: i64,
}

/// Per hour from `from` (rounded down to the hour) to `to`: incidents of `scope` created in
/// that hour and incidents resolved in it, every hour listed, oldest first. At most
/// [`MAX_HOURS`] hours, the latest ones.
#[tracing::instrument(skip_all)]
pub async fn per_hour(
    db: &Db,
    scope: &ReadScope,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<HourCount>> {
    let end = to.millis();
    let first = from
        .millis()
        .div_euclid(HOUR_MS)
        .max((end - 1).div_euclid(HOUR_MS) - MAX_HOURS + 1);
    let start = first * HOUR_MS;
    let grouped = |column: &str| {
        let mut sql = Sql::default();
        let lo = sql.arg(Arg::I64(start));
        let hi = sql.arg(Arg::I64(end));
        let cond = scope_conditions(&mut sql, scope, None, None, "+i.department_id");
        sql.push(&format!(
            "SELECT CAST((i.{column} - {lo}) / {HOUR_MS} AS BIGINT) AS hour, CAST(COUNT(*) AS BIGINT) AS total \
             FROM incidents i WHERE i.{column} >= {lo} AND i.{column} < {hi}{cond} \
             GROUP BY (i.{column} - {lo}) / {HOUR_MS}"
        ));
        sql
    };
    let created = grouped("created_at");
    let resolved = grouped("resolved_at");
    let (created, resolved): (Vec<HourRow>, Vec<HourRow>) = tokio::try_join!(
        fetch_rows(db, created, hour_row),
        fetch_rows(db, resolved, hour_row),
    )?;
    let hours = if end > start {
        (end - start + HOUR_MS - 1) / HOUR_MS
    } else {
        0
    };
    let mut out: Vec<HourCount> = (0..hours)
        .map(|h| HourCount {
            start: Timestamp::from_millis(start + h * HOUR_MS),
            created: 0,
            resolved: 0,
        })
        .collect();
    for (h, n) in created {
        if let Some(slot) = usize::try_from(h).ok().and_then(|h| out.get_mut(h)) {
            slot.created += n;
        }
    }
    for (h, n) in resolved {
        if let Some(slot) = usize::try_from(h).ok().and_then(|h| out.get_mut(h)) {
            slot.resolved += n;
        }
    }
    Ok(out)
}
