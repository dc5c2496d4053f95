//! `/stats`: counts of the incidents created in a range, by dimension and per day; whole days
//! from the per-day summaries, the parts of a day at either end from the incidents.

use super::*;

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
         SELECT 'status' AS dim, status AS k, CAST(SUM(n) AS BIGINT) AS total FROM cells GROUP BY status \
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
         SELECT 'category' AS dim, category AS k, CAST(SUM(n) AS BIGINT) AS total FROM cells \
           GROUP BY category HAVING SUM(n) > 0 \
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
         SELECT 'zone' AS dim, zone AS k, n AS total FROM cells WHERE n > 0",
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
        "WITH RECURSIVE {days} SELECT b.dn AS dn, (SELECT COUNT(*) FROM incidents i \
           WHERE i.resolved_at >= b.lo AND i.resolved_at < b.hi{cond}) AS total FROM b"
    ));
    sql
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
        "SELECT 'status' AS dim, i.status AS k, CAST(SUM(i.n) AS BIGINT) AS total {created} GROUP BY i.status \
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
    let cells: Vec<TextCell> = fetch_rows(db, sql, cell).await?;
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
    let per_day = |r: &rusqlite::Row<'_>| Ok((r.get("dn")?, r.get("total")?));
    let (created, catalog, zones, resolved): (Vec<TextCell>, Vec<IdCell>, Vec<IdCell>, _) = tokio::try_join!(
        fetch_rows(db, created, cell),
        fetch_rows(db, catalog, cell),
        fetch_rows(db, zones, cell),
        fetch_rows::<(i64, i64)>(db, resolved, per_day),
    )?;
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
