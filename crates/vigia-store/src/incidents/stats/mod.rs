//! Aggregates for dashboards and the public rankings, and a bulk loader of synthetic incidents
//! for load tests.
//!
//! Code map: this module holds what the aggregates share (filters, counts, the scope
//! conditions, the cut of a range at UTC midnights); [`incident`] is `/stats`, [`staff`] is
//! `/stats/staff`, [`basic`] a reporter's figures, [`rankings`] the public rankings,
//! [`synthetic`] the loader.
//!
//! Both dashboards cut their range at UTC midnights. Whole days are read from per-day summary
//! tables that triggers keep in the same transaction as every change to `incidents`
//! (migrations 0010 and 0011), so their cost grows with the days, not the incidents. The part
//! of a day at either end is read from the incidents themselves: for `/stats`, one correlated
//! `COUNT` per value of a dimension (a status, a category, a day) over a covering index
//! (migration 0003); for `/stats/staff`, one pass over the creation-time range. The overdue
//! count is the only figure that depends on the time of the request: the summary holds the
//! open incidents that have a target, and those whose target is still ahead are subtracted.
//!
//! Aggregates count the incidents routed to the caller's departments (all of them for
//! admins): unlike lists, a staff member's figures leave out other departments' public
//! incidents and the member's own reports.

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, IncidentId, UserId, ZoneId};
use vigia_domain::incidents::{IncidentCode, ReadScope, Status};

use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreResult, composed, direct, direct_read};

/// A day in milliseconds; days are UTC dates.
pub const DAY_MS: i64 = 86_400_000;
const OPEN: &str = "('new', 'acknowledged', 'in_progress', 'on_hold')";
const STARTED: &str = "('acknowledged', 'in_progress', 'on_hold')";

/// What an aggregate covers: incidents created in `[created_from, created_to)`, optionally of
/// one department and one category.
#[derive(Debug, Clone, Copy)]
pub struct StatsFilter {
    pub created_from: Timestamp,
    pub created_to: Timestamp,
    pub department: Option<DepartmentId>,
    pub category: Option<CategoryId>,
}

/// A count for one value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count<K> {
    pub key: K,
    pub count: i64,
}

/// Incidents created and resolved on one UTC date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub date: time::Date,
    pub created: i64,
    pub resolved: i64,
}

/// Counts of the incidents created in a range, by dimension (statuses and urgencies always all
/// listed; categories, departments and zones only when counted), and the per-day series.
#[derive(Debug, Clone)]
pub struct IncidentStats {
    pub by_status: Vec<Count<Status>>,
    pub by_urgency: Vec<Count<Urgency>>,
    pub by_category: Vec<Count<CategoryId>>,
    pub by_department: Vec<Count<Option<DepartmentId>>>,
    pub by_zone: Vec<Count<Option<ZoneId>>>,
    /// Every date of the range, oldest first; `resolved` counts resolutions on that date.
    pub per_day: Vec<DayCount>,
}

/// Appends the scope and the department and category filters as conditions on `column` (the
/// department) and `i.category_id`; returns the text, to repeat in every subquery.
///
/// On incidents the columns carry a unary `+` (a no-op in both databases) so that SQLite's
/// planner never picks a department index for a scope check: the dimension's index must drive
/// each count, with the scope checked on its entries.
fn scope_conditions(
    sql: &mut Sql,
    scope: &ReadScope,
    department: Option<DepartmentId>,
    category: Option<CategoryId>,
    column: &str,
) -> String {
    let mut text = String::new();
    match scope {
        ReadScope::All => {}
        ReadScope::Limited { departments, .. } if !departments.is_empty() => {
            let list: Vec<String> = departments.iter().map(|d| sql.arg(Arg::I64(d.0))).collect();
            text.push_str(&format!(" AND {column} IN ({})", list.join(", ")));
        }
        ReadScope::Limited { .. } | ReadScope::PublicOnly => text.push_str(" AND 1 = 0"),
    }
    if let Some(d) = department {
        text.push_str(&format!(" AND {column} = {}", sql.arg(Arg::I64(d.0))));
    }
    if let Some(c) = category {
        text.push_str(&format!(" AND +i.category_id = {}", sql.arg(Arg::I64(c.0))));
    }
    text
}

/// `AND i.created_at` within the filter's range, as placeholders.
fn created_range(sql: &mut Sql, filter: &StatsFilter) -> String {
    let from = sql.arg(Arg::I64(filter.created_from.millis()));
    let to = sql.arg(Arg::I64(filter.created_to.millis()));
    format!(" AND i.created_at >= {from} AND i.created_at < {to}")
}

/// `d(dn)` and `b(dn, lo, hi)` (for `WITH RECURSIVE`): every UTC day of the filter's range and
/// the part of the range it covers.
fn days_cte(sql: &mut Sql, filter: &StatsFilter) -> String {
    let (first, last) = day_span(filter.created_from, filter.created_to);
    let first = sql.arg(Arg::I64(first));
    let last = sql.arg(Arg::I64(last));
    let from = sql.arg(Arg::I64(filter.created_from.millis()));
    let to = sql.arg(Arg::I64(filter.created_to.millis()));
    format!(
        "d(dn) AS (SELECT CAST({first} AS BIGINT) UNION ALL SELECT dn + 1 FROM d WHERE dn < {last}), \
         b(dn, lo, hi) AS (SELECT dn, \
           CASE WHEN dn * {DAY_MS} < {from} THEN {from} ELSE dn * {DAY_MS} END, \
           CASE WHEN dn * {DAY_MS} + {DAY_MS} > {to} THEN {to} ELSE dn * {DAY_MS} + {DAY_MS} END FROM d)"
    )
}

/// The first and last UTC day (days since the epoch) of `[from, to)`.
pub fn day_span(from: Timestamp, to: Timestamp) -> (i64, i64) {
    let first = from.millis().div_euclid(DAY_MS);
    let last = (to.millis() - 1).div_euclid(DAY_MS).max(first);
    (first, last)
}

/// The UTC date of a day number (days since 1970-01-01).
fn date_of(day: i64) -> time::Date {
    const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
    i32::try_from(day + UNIX_EPOCH_JULIAN_DAY)
        .ok()
        .and_then(|jd| time::Date::from_julian_day(jd).ok())
        .unwrap_or(time::Date::MIN)
}

/// Counts ordered by key (the unrouted or zoneless `None` first).
fn sorted<K: Ord>(cells: impl Iterator<Item = (K, i64)>) -> Vec<Count<K>> {
    let mut counts: Vec<Count<K>> = cells.map(|(key, count)| Count { key, count }).collect();
    counts.sort_by(|a, b| a.key.cmp(&b.key));
    counts
}

/// Every row of the composed statement `sql`: on SQLite on a reader, each row decoded by
/// `from_direct` (by column name); on PostgreSQL as `T`. A future of its own, so that several
/// statements can run at once on separate connections.
async fn fetch_rows<T>(
    db: &Db,
    sql: Sql,
    from_direct: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + 'static,
{
    direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql.text, &direct::args(&sql.args), from_direct),
        postgres: |pool| Ok(bind_args!(sqlx::query_as::<_, T>(composed(&sql.text)), &sql.args)
            .fetch_all(pool)
            .await?),
    )
}

/// A `(dim, k, total)` row: a dimension's name, a value of it and its count.
fn cell<K: rusqlite::types::FromSql>(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, K, i64)> {
    Ok((row.get("dim")?, row.get("k")?, row.get("total")?))
}

/// An `(id, name)` row.
fn named(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String)> {
    Ok((row.get("id")?, row.get("name")?))
}

mod basic;
mod hourly;
mod incident;
mod rankings;
mod staff;
mod synthetic;
pub use basic::reporter_stats;
pub use hourly::{HOUR_MS, HourCount, MAX_HOURS, per_hour};
pub use incident::incident_stats;
pub use rankings::{Ranked, Rankings, rankings};
pub use staff::{StaffStats, Workload, staff_stats};
pub use synthetic::{SYNTHETIC_REPORTER, SyntheticIncident, assignable_staff, load_synthetic};

/// A range cut at UTC midnights: the part of a day before the first whole day, the whole days,
/// and the part of a day after them.
#[derive(Debug)]
struct DayParts {
    head: Option<StatsFilter>,
    whole_days: Option<(i64, i64)>,
    tail: Option<StatsFilter>,
}

fn split_at_days(filter: &StatsFilter) -> DayParts {
    let (from, to) = (filter.created_from.millis(), filter.created_to.millis());
    let first_whole = from.div_euclid(DAY_MS) + i64::from(from.rem_euclid(DAY_MS) != 0);
    let end_whole = to.div_euclid(DAY_MS);
    if first_whole >= end_whole {
        return DayParts {
            head: (from < to).then_some(*filter),
            whole_days: None,
            tail: None,
        };
    }
    let within = |lo: i64, hi: i64| {
        (lo < hi).then_some(StatsFilter {
            created_from: Timestamp::from_millis(lo),
            created_to: Timestamp::from_millis(hi),
            ..*filter
        })
    };
    DayParts {
        head: within(from, first_whole * DAY_MS),
        whole_days: Some((first_whole, end_whole - 1)),
        tail: within(end_whole * DAY_MS, to),
    }
}

/// Adds up the counts of the parts of one range, keeping every date from `first` to `last`.
fn merge(parts: impl Iterator<Item = IncidentStats>, first: i64, last: i64) -> IncidentStats {
    use std::collections::BTreeMap;
    let mut status: Vec<Count<Status>> = Status::ALL
        .iter()
        .map(|&key| Count { key, count: 0 })
        .collect();
    let mut urgency: Vec<Count<Urgency>> = Urgency::ALL
        .iter()
        .map(|&key| Count { key, count: 0 })
        .collect();
    let mut category: BTreeMap<CategoryId, i64> = BTreeMap::new();
    let mut department: BTreeMap<Option<DepartmentId>, i64> = BTreeMap::new();
    let mut zone: BTreeMap<Option<ZoneId>, i64> = BTreeMap::new();
    let mut days: BTreeMap<time::Date, (i64, i64)> =
        (first..=last).map(|d| (date_of(d), (0, 0))).collect();
    for part in parts {
        for c in part.by_status {
            if let Some(total) = status.iter_mut().find(|t| t.key == c.key) {
                total.count += c.count;
            }
        }
        for c in part.by_urgency {
            if let Some(total) = urgency.iter_mut().find(|t| t.key == c.key) {
                total.count += c.count;
            }
        }
        for c in part.by_category {
            *category.entry(c.key).or_default() += c.count;
        }
        for c in part.by_department {
            *department.entry(c.key).or_default() += c.count;
        }
        for c in part.by_zone {
            *zone.entry(c.key).or_default() += c.count;
        }
        for d in part.per_day {
            if let Some(day) = days.get_mut(&d.date) {
                day.0 += d.created;
                day.1 += d.resolved;
            }
        }
    }
    fn counts<K: Ord>(map: std::collections::BTreeMap<K, i64>) -> Vec<Count<K>> {
        map.into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(key, count)| Count { key, count })
            .collect()
    }
    IncidentStats {
        by_status: status,
        by_urgency: urgency,
        by_category: counts(category),
        by_department: counts(department),
        by_zone: counts(zone),
        per_day: days
            .into_iter()
            .map(|(date, (created, resolved))| DayCount {
                date,
                created,
                resolved,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(from: i64, to: i64) -> StatsFilter {
        StatsFilter {
            created_from: Timestamp::from_millis(from),
            created_to: Timestamp::from_millis(to),
            department: None,
            category: None,
        }
    }

    fn bounds(f: Option<StatsFilter>) -> Option<(i64, i64)> {
        f.map(|f| (f.created_from.millis(), f.created_to.millis()))
    }

    const H: i64 = 3_600_000;

    #[test]
    fn a_range_is_cut_at_utc_midnights() {
        let day = 20_000 * DAY_MS;
        // Whole days only.
        let parts = split_at_days(&filter(day, day + 3 * DAY_MS));
        assert_eq!(
            (bounds(parts.head), parts.whole_days, bounds(parts.tail)),
            (None, Some((20_000, 20_002)), None)
        );
        // Both ends inside a day.
        let parts = split_at_days(&filter(day + 5 * H, day + 2 * DAY_MS + 7 * H));
        assert_eq!(bounds(parts.head), Some((day + 5 * H, day + DAY_MS)));
        assert_eq!(parts.whole_days, Some((20_001, 20_001)));
        assert_eq!(
            bounds(parts.tail),
            Some((day + 2 * DAY_MS, day + 2 * DAY_MS + 7 * H))
        );
        // Across one midnight with no whole day: scanned as it is.
        let parts = split_at_days(&filter(day + 20 * H, day + DAY_MS + 3 * H));
        assert_eq!(
            (bounds(parts.head), parts.whole_days, bounds(parts.tail)),
            (Some((day + 20 * H, day + DAY_MS + 3 * H)), None, None)
        );
        // Within one day, and empty.
        let parts = split_at_days(&filter(day + H, day + 2 * H));
        assert_eq!(
            (bounds(parts.head), parts.whole_days),
            (Some((day + H, day + 2 * H)), None)
        );
        let parts = split_at_days(&filter(day, day));
        assert_eq!(
            (bounds(parts.head), parts.whole_days, bounds(parts.tail)),
            (None, None, None)
        );
    }
}
