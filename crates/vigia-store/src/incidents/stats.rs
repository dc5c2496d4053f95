//! Aggregates for dashboards and the public rankings, and a bulk loader of synthetic incidents
//! for load tests.
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
use crate::{Db, StoreResult, composed, on_reader};

mod basic;
mod synthetic;
pub use basic::reporter_stats;
pub use synthetic::{SYNTHETIC_REPORTER, SyntheticIncident, assignable_staff, load_synthetic};

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

/// One pass over (status, urgency, creation time): a count per status, urgency and day,
/// rolled up by status, by urgency and by day (`dim`, `k`, `n`).
fn created_cells_sql(scope: &ReadScope, filter: &StatsFilter) -> Sql {
    let mut sql = Sql::default();
    let days = days_cte(&mut sql, filter);
    let cond = filter_conditions(&mut sql, scope, filter);
    let values = |names: Vec<&str>| -> String {
        names
            .iter()
            .map(|n| format!("('{n}')"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let statuses = values(Status::ALL.iter().map(|s| s.as_str()).collect());
    let urgencies = values(Urgency::ALL.iter().map(|u| u.as_str()).collect());
    sql.push(&format!(
        "WITH RECURSIVE {days}, s(v) AS (VALUES {statuses}), u(v) AS (VALUES {urgencies}), \
         cells AS MATERIALIZED (SELECT s.v AS status, u.v AS urgency, b.dn AS dn, \
           (SELECT COUNT(*) FROM incidents i WHERE i.status = s.v AND i.urgency = u.v \
             AND i.created_at >= b.lo AND i.created_at < b.hi{cond}) AS n \
           FROM s CROSS JOIN u CROSS JOIN b) \
         SELECT 'status', status, CAST(SUM(n) AS BIGINT) FROM cells GROUP BY status \
         UNION ALL SELECT 'urgency', urgency, CAST(SUM(n) AS BIGINT) FROM cells GROUP BY urgency \
         UNION ALL SELECT 'day', CAST(dn AS TEXT), CAST(SUM(n) AS BIGINT) FROM cells GROUP BY dn"
    ));
    sql
}

/// The scope and the filter's department and category, as conditions on `i`.
fn filter_conditions(sql: &mut Sql, scope: &ReadScope, filter: &StatsFilter) -> String {
    let department = filter.department;
    scope_conditions(sql, scope, department, filter.category, "+i.department_id")
}

/// One pass over (category, department, creation time): a count per category and department,
/// rolled up by each (`dim`, `k`, `n`; groups without incidents left out).
fn category_department_sql(scope: &ReadScope, filter: &StatsFilter) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let cond = filter_conditions(&mut sql, scope, filter);
    let outer = scope_conditions(&mut sql, scope, filter.department, None, "d.id");
    let count = |on: &str| {
        format!(
            "(SELECT COUNT(*) FROM incidents i WHERE i.category_id = c.id AND {on}{range}{cond})"
        )
    };
    // Incidents not routed yet are outside every department's scope.
    let unrouted = if matches!(scope, ReadScope::All) && filter.department.is_none() {
        format!(
            " UNION ALL SELECT c.id, NULL, {} FROM categories c",
            count("i.department_id IS NULL")
        )
    } else {
        String::new()
    };
    sql.push(&format!(
        "WITH cells AS MATERIALIZED (SELECT c.id AS category, d.id AS department, {} AS n \
           FROM categories c CROSS JOIN departments d WHERE 1 = 1{outer}{unrouted}) \
         SELECT 'category', category, CAST(SUM(n) AS BIGINT) FROM cells GROUP BY category HAVING SUM(n) > 0 \
         UNION ALL SELECT 'department', department, CAST(SUM(n) AS BIGINT) FROM cells \
           GROUP BY department HAVING SUM(n) > 0",
        count("i.department_id = d.id"),
    ));
    sql
}

/// One pass over (zone, creation time): a count per zone (`dim`, `k`, `n`; zones without
/// incidents left out).
fn zones_sql(scope: &ReadScope, filter: &StatsFilter) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let cond = filter_conditions(&mut sql, scope, filter);
    let count = |on: &str| format!("(SELECT COUNT(*) FROM incidents i WHERE {on}{range}{cond})");
    sql.push(&format!(
        "WITH cells AS MATERIALIZED (SELECT z.id AS zone, {} AS n FROM zones z \
           UNION ALL SELECT NULL, {}) \
         SELECT 'zone', zone, n FROM cells WHERE n > 0",
        count("i.zone_id = z.id"),
        count("i.zone_id IS NULL"),
    ));
    sql
}

/// One pass over the resolution time: incidents resolved per day of the range (`dn`, `n`).
fn resolved_per_day_sql(scope: &ReadScope, filter: &StatsFilter) -> Sql {
    let mut sql = Sql::default();
    let days = days_cte(&mut sql, filter);
    let cond = filter_conditions(&mut sql, scope, filter);
    sql.push(&format!(
        "WITH RECURSIVE {days} SELECT b.dn, (SELECT COUNT(*) FROM incidents i \
           WHERE i.resolved_at >= b.lo AND i.resolved_at < b.hi{cond}) FROM b"
    ));
    sql
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

/// Fetches every row of the composed statement `$sql` as `$row` from `$pool` (a future, so that
/// several statements can run at once on separate connections).
macro_rules! fetch_rows {
    ($pool:expr, $row:ty, $sql:expr) => {
        bind_args!(sqlx::query_as::<_, $row>(composed(&$sql.text)), &$sql.args).fetch_all($pool)
    };
}

type TextCell = (String, String, i64);
type IdCell = (String, Option<i64>, i64);

/// Counts of the incidents `scope` covers that match `filter`. The whole UTC days of the range
/// are read from the per-day summaries (migration 0010, kept by triggers); the parts of a day
/// at either end, if any, from the incidents themselves. All of it runs at once.
#[tracing::instrument(skip_all)]
pub async fn incident_stats(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
) -> StoreResult<IncidentStats> {
    let parts = split_at_days(filter);
    let scan = |part: Option<StatsFilter>| async move {
        match part {
            Some(part) => scan_stats(db, scope, &part).await.map(Some),
            None => Ok(None),
        }
    };
    let whole = |days: Option<(i64, i64)>| async move {
        match days {
            Some(days) => summary_stats(db, scope, filter, days).await.map(Some),
            None => Ok(None),
        }
    };
    let (head, middle, tail) =
        tokio::try_join!(scan(parts.head), whole(parts.whole_days), scan(parts.tail))?;
    let (first, last) = day_span(filter.created_from, filter.created_to);
    Ok(merge(
        [head, middle, tail].into_iter().flatten(),
        first,
        last,
    ))
}

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

/// The per-day summaries' counts for the whole days `first..=last` (one statement).
fn summary_sql(scope: &ReadScope, filter: &StatsFilter, (first, last): (i64, i64)) -> Sql {
    let mut sql = Sql::default();
    let first = sql.arg(Arg::I64(first));
    let last = sql.arg(Arg::I64(last));
    let cond = scope_conditions(
        &mut sql,
        scope,
        filter.department,
        filter.category,
        "+i.department_key",
    );
    let from =
        |table: &str| format!("FROM {table} i WHERE i.day >= {first} AND i.day <= {last}{cond}");
    let created = from("stats_created_daily");
    let zones = from("stats_zone_daily");
    let resolved = from("stats_resolved_daily");
    sql.push(&format!(
        "SELECT 'status', i.status, CAST(SUM(i.n) AS BIGINT) {created} GROUP BY i.status \
         UNION ALL SELECT 'urgency', i.urgency, CAST(SUM(i.n) AS BIGINT) {created} GROUP BY i.urgency \
         UNION ALL SELECT 'day', CAST(i.day AS TEXT), CAST(SUM(i.n) AS BIGINT) {created} GROUP BY i.day \
         UNION ALL SELECT 'category', CAST(i.category_id AS TEXT), CAST(SUM(i.n) AS BIGINT) {created} \
           GROUP BY i.category_id \
         UNION ALL SELECT 'department', CAST(i.department_key AS TEXT), CAST(SUM(i.n) AS BIGINT) {created} \
           GROUP BY i.department_key \
         UNION ALL SELECT 'zone', CAST(i.zone_key AS TEXT), CAST(SUM(i.n) AS BIGINT) {zones} GROUP BY i.zone_key \
         UNION ALL SELECT 'resolved', CAST(i.day AS TEXT), CAST(SUM(i.n) AS BIGINT) {resolved} GROUP BY i.day"
    ));
    sql
}

/// Counts over whole days, from the per-day summaries.
async fn summary_stats(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
    days: (i64, i64),
) -> StoreResult<IncidentStats> {
    let sql = summary_sql(scope, filter, days);
    let cells: Vec<TextCell> = on_reader!(db, |pool| fetch_rows!(pool, TextCell, sql).await?);
    let of = |dim: &'static str| {
        cells
            .iter()
            .filter(move |(d, _, n)| d == dim && *n != 0)
            .map(|(_, k, n)| (k.as_str(), *n))
    };
    let id = |key: &str| key.parse::<i64>().ok().filter(|&k| k != 0);
    let day_count = |dim: &'static str, day: i64| {
        of(dim)
            .find(|(k, _)| k.parse::<i64>().ok() == Some(day))
            .map_or(0, |(_, n)| n)
    };
    Ok(IncidentStats {
        by_status: of("status")
            .filter_map(|(k, n)| {
                Status::parse("status", k)
                    .ok()
                    .map(|key| Count { key, count: n })
            })
            .collect(),
        by_urgency: of("urgency")
            .filter_map(|(k, n)| {
                Urgency::parse("urgency", k)
                    .ok()
                    .map(|key| Count { key, count: n })
            })
            .collect(),
        by_category: of("category")
            .filter_map(|(k, n)| {
                id(k).map(|k| Count {
                    key: CategoryId(k),
                    count: n,
                })
            })
            .collect(),
        by_department: of("department")
            .map(|(k, n)| Count {
                key: id(k).map(DepartmentId),
                count: n,
            })
            .collect(),
        by_zone: of("zone")
            .map(|(k, n)| Count {
                key: id(k).map(ZoneId),
                count: n,
            })
            .collect(),
        per_day: (days.0..=days.1)
            .map(|day| DayCount {
                date: date_of(day),
                created: day_count("day", day),
                resolved: day_count("resolved", day),
            })
            .collect(),
    })
}

/// Counts read from the incidents themselves: four statements, each one pass over an index
/// range, run at once on separate connections. Used for the parts of a day at the range's ends.
async fn scan_stats(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
) -> StoreResult<IncidentStats> {
    let created = created_cells_sql(scope, filter);
    let catalog = category_department_sql(scope, filter);
    let zones = zones_sql(scope, filter);
    let resolved = resolved_per_day_sql(scope, filter);
    let (created, catalog, zones, resolved) = on_reader!(db, |pool| tokio::try_join!(
        fetch_rows!(pool, TextCell, created),
        fetch_rows!(pool, IdCell, catalog),
        fetch_rows!(pool, IdCell, zones),
        fetch_rows!(pool, (i64, i64), resolved),
    )?);
    let count_of = |dim: &str, name: &str| {
        created
            .iter()
            .find(|(d, k, _)| d == dim && k == name)
            .map_or(0, |(_, _, n)| *n)
    };
    let of = |dim: &'static str| catalog.iter().filter(move |(d, _, _)| d == dim);
    let (first, last) = day_span(filter.created_from, filter.created_to);
    Ok(IncidentStats {
        by_status: Status::ALL
            .iter()
            .map(|&s| Count {
                key: s,
                count: count_of("status", s.as_str()),
            })
            .collect(),
        by_urgency: Urgency::ALL
            .iter()
            .map(|&u| Count {
                key: u,
                count: count_of("urgency", u.as_str()),
            })
            .collect(),
        by_category: sorted(of("category").filter_map(|(_, k, n)| k.map(|k| (CategoryId(k), *n)))),
        by_department: sorted(of("department").map(|(_, k, n)| (k.map(DepartmentId), *n))),
        by_zone: sorted(zones.iter().map(|(_, k, n)| (k.map(ZoneId), *n))),
        per_day: (first..=last)
            .map(|day| DayCount {
                date: date_of(day),
                created: count_of("day", &day.to_string()),
                resolved: resolved
                    .iter()
                    .find(|(d, _)| *d == day)
                    .map_or(0, |(_, n)| *n),
            })
            .collect(),
    })
}

/// The workload and speed of one department or assignee, over incidents created in the range.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload<K> {
    pub key: K,
    /// The department's or assignee's name.
    pub name: Option<String>,
    /// Not yet resolved.
    pub open: i64,
    /// Open and past the acknowledge target (when new) or the resolve target (otherwise).
    pub overdue: i64,
    /// Mean seconds from creation to acknowledgement, over acknowledged incidents.
    pub mean_acknowledge_secs: Option<f64>,
    /// Mean seconds from creation to resolution, over resolved incidents.
    pub mean_resolve_secs: Option<f64>,
}

/// Per department (those in scope, even with nothing to count) and per assignee (those with
/// incidents in the range; `None` is the unassigned ones).
#[derive(Debug, Clone)]
pub struct StaffStats {
    pub departments: Vec<Workload<DepartmentId>>,
    pub assignees: Vec<Workload<Option<UserId>>>,
}

/// What a [`Workload`] is computed from: sums over the incidents of one department and
/// assignee, added up across the parts of a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    open: i64,
    overdue: i64,
    acknowledged: i64,
    acknowledge_ms: i64,
    resolved: i64,
    resolve_ms: i64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.open += other.open;
        self.overdue += other.overdue;
        self.acknowledged += other.acknowledged;
        self.acknowledge_ms += other.acknowledge_ms;
        self.resolved += other.resolved;
        self.resolve_ms += other.resolve_ms;
    }
}

impl Tally {
    fn counts_anything(&self) -> bool {
        self.open > 0 || self.acknowledged > 0 || self.resolved > 0
    }

    fn workload<K>(self, key: K, name: Option<String>) -> Workload<K> {
        let mean_secs = |ms: i64, n: i64| (n > 0).then(|| ms as f64 / n as f64 / 1000.0);
        Workload {
            key,
            name,
            open: self.open,
            overdue: self.overdue,
            mean_acknowledge_secs: mean_secs(self.acknowledge_ms, self.acknowledged),
            mean_resolve_secs: mean_secs(self.resolve_ms, self.resolved),
        }
    }
}

/// `(department_key, assignee_key, open, overdue, acknowledged, acknowledge_ms, resolved,
/// resolve_ms)`; a key is 0 for none.
type TallyRow = (i64, i64, i64, i64, i64, i64, i64, i64);

/// The tallies of the incidents created in the filter's range, per department and assignee,
/// read from the incidents themselves (one pass over the creation-time range). Used for the
/// parts of a day at the range's ends.
fn tally_scan_sql(scope: &ReadScope, filter: &StatsFilter, now: Timestamp) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let now = sql.arg(Arg::I64(now.millis()));
    let cond = scope_conditions(&mut sql, scope, filter.department, None, "+i.department_id");
    sql.push(&format!(
        "SELECT COALESCE(i.department_id, 0), COALESCE(i.assignee_id, 0), \
           CAST(SUM(CASE WHEN i.status IN {OPEN} THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN (i.status = 'new' AND i.acknowledge_due_at < {now}) \
             OR (i.status IN {STARTED} AND i.resolve_due_at < {now}) THEN 1 ELSE 0 END) AS BIGINT), \
           COUNT(i.acknowledged_at), CAST(COALESCE(SUM(i.acknowledged_at - i.created_at), 0) AS BIGINT), \
           COUNT(i.resolved_at), CAST(COALESCE(SUM(i.resolved_at - i.created_at), 0) AS BIGINT) \
         FROM incidents i WHERE 1 = 1{range}{cond} GROUP BY 1, 2"
    ));
    sql
}

/// The tallies of whole days `first..=last`, from the per-day summary (migration 0011); the
/// overdue column holds the open incidents with a target, still to be reduced by
/// [`pending_sql`]'s.
fn tally_summary_sql(scope: &ReadScope, filter: &StatsFilter, (first, last): (i64, i64)) -> Sql {
    let mut sql = Sql::default();
    let first = sql.arg(Arg::I64(first));
    let last = sql.arg(Arg::I64(last));
    let cond = scope_conditions(
        &mut sql,
        scope,
        filter.department,
        None,
        "+i.department_key",
    );
    let sum = |column: &str| format!("CAST(SUM(i.{column}) AS BIGINT)");
    sql.push(&format!(
        "SELECT i.department_key, i.assignee_key, {}, {}, {}, {}, {}, {} FROM stats_staff_daily i \
         WHERE i.day >= {first} AND i.day <= {last}{cond} GROUP BY 1, 2",
        sum("open"),
        sum("timed"),
        sum("acknowledged"),
        sum("acknowledge_ms"),
        sum("resolved"),
        sum("resolve_ms"),
    ));
    sql
}

/// Per department and assignee, the open incidents created in the filter's range whose target
/// is still ahead at `now`: few (recent ones), read from the end of two partial indexes
/// (migration 0011). SQLite is told to use them: without table statistics its planner would
/// walk every open incident of the status instead.
fn pending_sql(scope: &ReadScope, filter: &StatsFilter, now: Timestamp, sqlite: bool) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let now = sql.arg(Arg::I64(now.millis()));
    let cond = scope_conditions(&mut sql, scope, filter.department, None, "+i.department_id");
    let indexed = |index: &str| {
        if sqlite {
            format!(" INDEXED BY {index}")
        } else {
            String::new()
        }
    };
    let (new_due, started_due) = (
        indexed("incidents_new_due_idx"),
        indexed("incidents_started_due_idx"),
    );
    sql.push(&format!(
        "SELECT COALESCE(p.department_id, 0), COALESCE(p.assignee_id, 0), COUNT(*) FROM ( \
           SELECT i.department_id, i.assignee_id FROM incidents i{new_due} \
           WHERE i.status = 'new' AND i.acknowledge_due_at >= {now}{range}{cond} \
           UNION ALL SELECT i.department_id, i.assignee_id FROM incidents i{started_due} \
           WHERE i.status IN {STARTED} AND i.resolve_due_at >= {now}{range}{cond} \
         ) p GROUP BY 1, 2"
    ));
    sql
}

/// The tallies of whole days: the summary's, less the open incidents not yet overdue.
async fn summary_tallies(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
    now: Timestamp,
    (first, last): (i64, i64),
) -> StoreResult<Vec<TallyRow>> {
    let summary = tally_summary_sql(scope, filter, (first, last));
    let days = StatsFilter {
        created_from: Timestamp::from_millis(first * DAY_MS),
        created_to: Timestamp::from_millis((last + 1) * DAY_MS),
        ..*filter
    };
    let pending = pending_sql(scope, &days, now, db.is_sqlite());
    let (mut rows, pending) = on_reader!(db, |pool| tokio::try_join!(
        fetch_rows!(pool, TallyRow, summary),
        fetch_rows!(pool, (i64, i64, i64), pending),
    )?);
    for (department, assignee, n) in pending {
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.0 == department && r.1 == assignee)
        {
            row.3 -= n;
        }
    }
    Ok(rows)
}

/// Workload per department and per assignee as of `now`, over incidents created in the
/// filter's range (its category is ignored). Whole UTC days come from the per-day summary
/// (migration 0011); the parts of a day at either end are read from the incidents.
#[tracing::instrument(skip_all)]
pub async fn staff_stats(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
    now: Timestamp,
) -> StoreResult<StaffStats> {
    use std::collections::BTreeMap;
    let parts = split_at_days(filter);
    let scan = |part: Option<StatsFilter>| async move {
        match part {
            Some(part) => {
                let sql = tally_scan_sql(scope, &part, now);
                Ok(on_reader!(db, |pool| fetch_rows!(pool, TallyRow, sql).await?))
            }
            None => StoreResult::Ok(Vec::new()),
        }
    };
    let whole = |days: Option<(i64, i64)>| async move {
        match days {
            Some(days) => summary_tallies(db, scope, filter, now, days).await,
            None => Ok(Vec::new()),
        }
    };
    let mut departments_sql = Sql::default();
    let in_scope = scope_conditions(&mut departments_sql, scope, filter.department, None, "d.id");
    departments_sql.push(&format!(
        "SELECT d.id, d.name FROM departments d WHERE 1 = 1{in_scope} ORDER BY d.id"
    ));
    let departments = async {
        Ok(on_reader!(db, |pool| fetch_rows!(
            pool,
            (i64, String),
            departments_sql
        )
        .await?))
    };
    let (head, middle, tail, departments) = tokio::try_join!(
        scan(parts.head),
        whole(parts.whole_days),
        scan(parts.tail),
        departments
    )?;

    let mut by_department: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut by_assignee: BTreeMap<i64, Tally> = BTreeMap::new();
    for (department, assignee, open, overdue, acknowledged, acknowledge_ms, resolved, resolve_ms) in
        head.into_iter().chain(middle).chain(tail)
    {
        let tally = Tally {
            open,
            overdue,
            acknowledged,
            acknowledge_ms,
            resolved,
            resolve_ms,
        };
        *by_department.entry(department).or_default() += tally;
        *by_assignee.entry(assignee).or_default() += tally;
    }
    by_assignee.retain(|_, tally| tally.counts_anything());
    let names = assignee_names(db, by_assignee.keys().copied().filter(|&k| k != 0)).await?;

    // Assignees by id, the unassigned ones (key 0) last.
    let mut assignees: Vec<Workload<Option<UserId>>> = by_assignee
        .iter()
        .filter(|(k, _)| **k != 0)
        .map(|(&k, tally)| tally.workload(Some(UserId(k)), names.get(&k).cloned()))
        .collect();
    if let Some(tally) = by_assignee.get(&0) {
        assignees.push(tally.workload(None, None));
    }
    Ok(StaffStats {
        departments: departments
            .into_iter()
            .map(|(id, name)| {
                let tally = by_department.get(&id).copied().unwrap_or_default();
                tally.workload(DepartmentId(id), Some(name))
            })
            .collect(),
        assignees,
    })
}

/// The display names of the users `ids`.
async fn assignee_names(
    db: &Db,
    ids: impl Iterator<Item = i64>,
) -> StoreResult<std::collections::HashMap<i64, String>> {
    let mut sql = Sql::default();
    let list: Vec<String> = ids.map(|id| sql.arg(Arg::I64(id))).collect();
    if list.is_empty() {
        return Ok(Default::default());
    }
    sql.push(&format!(
        "SELECT id, display_name FROM users WHERE id IN ({})",
        list.join(", ")
    ));
    let rows = on_reader!(db, |pool| fetch_rows!(pool, (i64, String), sql).await?);
    Ok(rows.into_iter().collect())
}

/// A public incident in a ranking: nothing personal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub id: IncidentId,
    pub code: IncidentCode,
    pub title: String,
    pub votes: i64,
    pub status: Status,
    pub zone_id: Option<ZoneId>,
    pub category_id: CategoryId,
}

/// The most voted public incidents of every zone and every category (groups without public
/// incidents are left out), most voted first.
#[derive(Debug, Clone, Default)]
pub struct Rankings {
    pub by_zone: Vec<(ZoneId, Vec<Ranked>)>,
    pub by_category: Vec<(CategoryId, Vec<Ranked>)>,
}

type RankedRow = (String, i64, i64, String, i64, String, Option<i64>, i64);

/// The top `limit` public incidents by votes per zone and per category: one statement, an
/// index range of `limit` entries per group.
#[tracing::instrument(skip(db))]
pub async fn rankings(db: &Db, limit: u32) -> StoreResult<Rankings> {
    const COLUMNS: &str = "i.id, i.title, i.votes, i.status, i.zone_id, i.category_id";
    let top = |group: &str, table: &str, alias: &str, column: &str| {
        let most_voted = |columns: &str| {
            format!(
                "SELECT {columns} FROM incidents j WHERE j.{column} = {alias}.id AND j.visibility = 'public' \
                 ORDER BY j.votes DESC, j.id DESC{}",
                crate::sql::limit(limit as usize)
            )
        };
        // SQLite has no LATERAL: a correlated `IN` list of ids, then a rowid lookup per id.
        if db.is_sqlite() {
            let ids = most_voted("j.id");
            format!(
                "SELECT '{group}', {alias}.id, {COLUMNS} FROM {table} {alias} JOIN incidents i ON i.id IN ({ids})"
            )
        } else {
            let rows = most_voted("j.id, j.title, j.votes, j.status, j.zone_id, j.category_id");
            format!(
                "SELECT '{group}', {alias}.id, {COLUMNS} FROM {table} {alias} CROSS JOIN LATERAL ({rows}) i"
            )
        }
    };
    let sql = format!(
        "{} UNION ALL {} ORDER BY 1, 2, 5 DESC, 3 DESC",
        top("zone", "zones", "z", "zone_id"),
        top("category", "categories", "c", "category_id")
    );
    let rows: Vec<RankedRow> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .fetch_all(pool)
        .await?);
    let mut out = Rankings::default();
    for (group, key, id, title, votes, status, zone, category) in rows {
        let ranked = Ranked {
            id: IncidentId(id),
            code: IncidentCode::from_sequence(id.max(0) as u64),
            title,
            votes,
            status: Status::parse("status", &status).unwrap_or(Status::New),
            zone_id: zone.map(ZoneId),
            category_id: CategoryId(category),
        };
        if group == "zone" {
            push_grouped(&mut out.by_zone, ZoneId(key), ranked);
        } else {
            push_grouped(&mut out.by_category, CategoryId(key), ranked);
        }
    }
    Ok(out)
}

/// Appends to the last group when it is `key`'s (rows arrive ordered by group), else opens one.
fn push_grouped<K: PartialEq>(groups: &mut Vec<(K, Vec<Ranked>)>, key: K, item: Ranked) {
    match groups.last_mut() {
        Some((last, items)) if *last == key => items.push(item),
        _ => groups.push((key, vec![item])),
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
