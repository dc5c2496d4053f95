//! Aggregates for dashboards and the public rankings, and a bulk loader of synthetic incidents
//! for load tests.
//!
//! Every aggregate is one statement that reads covering indexes only (migration 0003). For each
//! value of a dimension (a status, a category, a day) a correlated `COUNT` or `AVG` walks one
//! index range — the value, then the creation time — so the cost grows with the incidents in
//! the range, not with the table, and nothing is sorted. The values come from the catalogs
//! (foreign keys guarantee none is missed) or, for assignees, from a loose index scan.
//!
//! Aggregates count the incidents routed to the caller's departments (all of them for
//! admins): unlike lists, a staff member's figures leave out other departments' public
//! incidents and the member's own reports.

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, IncidentId, UserId, ZoneId};
use vigia_domain::incidents::{
    EventData, IncidentCode, IncidentVisibility, ReadScope, SlaClockRecord, Source, Status,
};

use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, on_reader, on_writer};

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

type TextCell = (String, String, i64);
type IdCell = (String, Option<i64>, i64);

/// Counts of the incidents `scope` covers that match `filter`: four statements, each one pass
/// over an index range, run at once on separate connections.
#[tracing::instrument(skip_all)]
pub async fn incident_stats(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
) -> StoreResult<IncidentStats> {
    let created = created_cells_sql(scope, filter);
    let catalog = category_department_sql(scope, filter);
    let zones = zones_sql(scope, filter);
    let resolved = resolved_per_day_sql(scope, filter);
    let (created, catalog, zones, resolved) = on_reader!(db, |pool| {
        let created = bind_args!(
            sqlx::query_as::<_, TextCell>(composed(&created.text)),
            &created.args
        )
        .fetch_all(pool);
        let catalog = bind_args!(
            sqlx::query_as::<_, IdCell>(composed(&catalog.text)),
            &catalog.args
        )
        .fetch_all(pool);
        let zones = bind_args!(
            sqlx::query_as::<_, IdCell>(composed(&zones.text)),
            &zones.args
        )
        .fetch_all(pool);
        let resolved = bind_args!(
            sqlx::query_as::<_, (i64, i64)>(composed(&resolved.text)),
            &resolved.args
        )
        .fetch_all(pool);
        tokio::try_join!(created, catalog, zones, resolved)?
    });
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

type WorkloadRow = (
    Option<i64>,
    Option<String>,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
);

/// The open and overdue counts, as correlated subqueries on incidents where `on` holds.
fn open_overdue(on: &str, range: &str, cond: &str, now: &str) -> String {
    let count =
        |more: &str| format!("(SELECT COUNT(*) FROM incidents i WHERE {on}{more}{range}{cond})");
    format!(
        "{}, {} + {}",
        count(&format!(" AND i.status IN {OPEN}")),
        count(&format!(
            " AND i.status = 'new' AND i.acknowledge_due_at < {now}"
        )),
        count(&format!(
            " AND i.status IN {STARTED} AND i.resolve_due_at < {now}"
        )),
    )
}

/// The mean times in seconds, as aggregates over the joined incidents `i`.
const MEAN_TIMES: &str = "CAST(AVG(i.acknowledged_at - i.created_at) / 1000.0 AS DOUBLE PRECISION), \
    CAST(AVG(i.resolved_at - i.created_at) / 1000.0 AS DOUBLE PRECISION)";

/// Every department in scope: mean times in one pass over (department, creation time), open
/// and overdue over the open ones only.
fn departments_sql(scope: &ReadScope, filter: &StatsFilter, now: Timestamp) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let now = sql.arg(Arg::I64(now.millis()));
    let outer = scope_conditions(&mut sql, scope, filter.department, None, "d.id");
    let counts = open_overdue("i.department_id = d.id", &range, "", &now);
    sql.push(&format!(
        "SELECT d.id, MAX(d.name), {counts}, {MEAN_TIMES} FROM departments d \
         LEFT JOIN incidents i ON i.department_id = d.id{range} WHERE 1 = 1{outer} \
         GROUP BY d.id ORDER BY d.id"
    ));
    sql
}

/// Every assignee with incidents in the range (found by a loose index scan), then the
/// unassigned ones, if any.
fn assignees_sql(scope: &ReadScope, filter: &StatsFilter, now: Timestamp) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let now = sql.arg(Arg::I64(now.millis()));
    let cond = scope_conditions(&mut sql, scope, filter.department, None, "+i.department_id");
    let assigned = open_overdue("i.assignee_id = u.id", &range, &cond, &now);
    let unassigned = open_overdue("i.assignee_id IS NULL", &range, &cond, &now);
    sql.push(&format!(
        "WITH RECURSIVE a(id) AS (SELECT MIN(assignee_id) FROM incidents \
           UNION ALL SELECT (SELECT MIN(j.assignee_id) FROM incidents j WHERE j.assignee_id > a.id) \
           FROM a WHERE a.id IS NOT NULL), \
         m(id, name, open, overdue, mtta, mttr) AS MATERIALIZED ( \
           SELECT u.id, MAX(u.display_name), {assigned}, {MEAN_TIMES} FROM users u \
           JOIN incidents i ON i.assignee_id = u.id{range}{cond} \
           WHERE u.id IN (SELECT id FROM a) GROUP BY u.id \
           UNION ALL SELECT NULL, NULL, {unassigned}, {MEAN_TIMES} FROM incidents i \
           WHERE i.assignee_id IS NULL{range}{cond}) \
         SELECT id, name, open, overdue, mtta, mttr FROM m WHERE open > 0 OR mtta IS NOT NULL \
         ORDER BY id IS NULL, id"
    ));
    sql
}

fn workload<K>(row: WorkloadRow, key: impl Fn(Option<i64>) -> K) -> Workload<K> {
    let (id, name, open, overdue, mtta, mttr) = row;
    Workload {
        key: key(id),
        name,
        open,
        overdue,
        mean_acknowledge_secs: mtta,
        mean_resolve_secs: mttr,
    }
}

/// Workload per department and per assignee as of `now`, over incidents created in the
/// filter's range (its category is ignored).
#[tracing::instrument(skip_all)]
pub async fn staff_stats(
    db: &Db,
    scope: &ReadScope,
    filter: &StatsFilter,
    now: Timestamp,
) -> StoreResult<StaffStats> {
    let departments = departments_sql(scope, filter, now);
    let assignees = assignees_sql(scope, filter, now);
    let (departments, assignees) = on_reader!(db, |pool| {
        let departments = bind_args!(
            sqlx::query_as::<_, WorkloadRow>(composed(&departments.text)),
            &departments.args
        )
        .fetch_all(pool);
        let assignees = bind_args!(
            sqlx::query_as::<_, WorkloadRow>(composed(&assignees.text)),
            &assignees.args
        )
        .fetch_all(pool);
        tokio::try_join!(departments, assignees)?
    });
    Ok(StaffStats {
        departments: departments
            .into_iter()
            .map(|row| workload(row, |id| DepartmentId(id.unwrap_or_default())))
            .collect(),
        assignees: assignees
            .into_iter()
            .map(|row| workload(row, |id| id.map(UserId)))
            .collect(),
    })
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
                 ORDER BY j.votes DESC, j.id DESC LIMIT $1"
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
        .bind(i64::from(limit))
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

// --- synthetic incidents ---------------------------------------------------------------------

/// An incident made up for load tests, already consistent (timestamps in order, SLA columns as
/// the lifecycle would leave them). The caller generates it; [`load_synthetic`] stores it.
#[derive(Debug, Clone)]
pub struct SyntheticIncident {
    pub category_id: CategoryId,
    pub department_id: Option<DepartmentId>,
    pub assignee_id: Option<UserId>,
    pub title: String,
    pub description: String,
    pub zone_id: Option<ZoneId>,
    pub urgency: Urgency,
    pub status: Status,
    pub source: Source,
    pub visibility: IncidentVisibility,
    pub votes: i64,
    pub version: i64,
    pub sla: SlaClockRecord,
    pub acknowledge_due_at: Timestamp,
    /// `None` while on hold and once resolved, as transitions leave it.
    pub resolve_due_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Who synthetic incidents are reported by.
pub const SYNTHETIC_REPORTER: &str = "system";
const SYNTHETIC_COLUMNS: &str = "category_id, department_id, assignee_id, reporter_label, title, description, \
    zone_id, urgency, status, source, visibility, votes, version, sla_started_at, sla_acknowledge_secs, \
    sla_resolve_secs, sla_raise_urgency, sla_paused_since, sla_paused_total_ms, acknowledge_due_at, \
    resolve_due_at, acknowledged_at, resolved_at, closed_at, created_at, updated_at";
const SYNTHETIC_WIDTH: usize = 26;
/// Rows per INSERT statement: well under SQLite's 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1_000;

/// `INSERT INTO {table} ({columns}) VALUES (...), ...` for `rows` rows of `width` placeholders.
/// SQLite gets anonymous `?` placeholders: sqlx resolves a named one (`$N`) by asking SQLite
/// for its name, a linear search, which makes a statement with thousands of them quadratic.
fn multi_row_insert(db: &Db, table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for row in 0..rows {
        let list: Vec<String> = (1..=width)
            .map(|c| {
                if db.is_sqlite() {
                    "?".to_owned()
                } else {
                    format!("${}", row * width + c)
                }
            })
            .collect();
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&list.join(", "));
        sql.push(')');
    }
    sql
}

/// Stores `incidents` and their `created` events in one transaction, with multi-row INSERTs.
/// Returns how many were stored. For load tests and demos: no routing, assignment or audit.
#[tracing::instrument(skip_all, fields(count = incidents.len()))]
pub async fn load_synthetic(db: &Db, incidents: &[SyntheticIncident]) -> StoreResult<u64> {
    type Created = (i64, i64, Option<i64>, String, String, String, i64);
    const EVENT_COLUMNS: &str = "incident_id, kind, actor, at, internal, data";
    let mut stored = 0u64;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        for chunk in incidents.chunks(ROWS_PER_STATEMENT) {
            let sql = multi_row_insert(
                db,
                "incidents",
                SYNTHETIC_COLUMNS,
                SYNTHETIC_WIDTH,
                chunk.len(),
            ) + " RETURNING id, category_id, department_id, urgency, source, visibility, created_at";
            let mut insert = sqlx::query_as::<_, Created>(composed(&sql));
            for i in chunk {
                let ms = |t: Option<Timestamp>| t.map(Timestamp::millis);
                insert = insert
                    .bind(i.category_id.0)
                    .bind(i.department_id.map(|d| d.0))
                    .bind(i.assignee_id.map(|u| u.0))
                    .bind(SYNTHETIC_REPORTER)
                    .bind(i.title.as_str())
                    .bind(i.description.as_str())
                    .bind(i.zone_id.map(|z| z.0))
                    .bind(i.urgency.as_str())
                    .bind(i.status.as_str())
                    .bind(i.source.as_str())
                    .bind(i.visibility.as_str())
                    .bind(i.votes)
                    .bind(i.version)
                    .bind(i.sla.started_at.millis())
                    .bind(i.sla.acknowledge_within_secs)
                    .bind(i.sla.resolve_within_secs)
                    .bind(i.sla.raise_urgency_on_breach)
                    .bind(ms(i.sla.paused_since))
                    .bind(i.sla.paused_total_ms)
                    .bind(i.acknowledge_due_at.millis())
                    .bind(ms(i.resolve_due_at))
                    .bind(ms(i.acknowledged_at))
                    .bind(ms(i.resolved_at))
                    .bind(ms(i.closed_at))
                    .bind(i.created_at.millis())
                    .bind(i.updated_at.millis());
            }
            let created: Vec<Created> = insert.fetch_all(&mut *tx).await?;
            let sql = multi_row_insert(db, "incident_events", EVENT_COLUMNS, 6, created.len());
            let mut events = sqlx::query(composed(&sql));
            for (id, category, department, urgency, source, visibility, at) in &created {
                let data = EventData::created(
                    Urgency::parse("urgency", urgency).unwrap_or_default(),
                    CategoryId(*category),
                    department.map(DepartmentId),
                    Source::parse("source", source).unwrap_or(Source::Api),
                    IncidentVisibility::parse("visibility", visibility).unwrap_or_default(),
                );
                let json = serde_json::to_string(&data).map_err(|e| StoreError::Other(e.into()))?;
                events = events
                    .bind(*id)
                    .bind(data.kind().as_str())
                    .bind(SYNTHETIC_REPORTER)
                    .bind(*at)
                    .bind(false)
                    .bind(json);
            }
            if !created.is_empty() {
                events.execute(&mut *tx).await?;
            }
            stored += created.len() as u64;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(())
    })?;
    Ok(stored)
}

/// The enabled staff members and admins of every department, as (department, user) pairs: who
/// synthetic incidents may be assigned to.
pub async fn assignable_staff(db: &Db) -> StoreResult<Vec<(DepartmentId, UserId)>> {
    let sql = "SELECT m.department_id, m.user_id FROM department_members m JOIN users u ON u.id = m.user_id \
               WHERE u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY m.department_id, m.user_id";
    let rows: Vec<(i64, i64)> = on_reader!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    Ok(rows
        .into_iter()
        .map(|(d, u)| (DepartmentId(d), UserId(u)))
        .collect())
}
