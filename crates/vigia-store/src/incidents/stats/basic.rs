//! A reporter's basic figures: the same counts as [`incident_stats`](super::incident_stats),
//! over what a reporter may see — the incidents they reported and the public ones. The per-day
//! summaries have no visibility or reporter dimension, so these are read from the incidents:
//! the public ones of the range from partial covering indexes, the reporter's own from the
//! reporter index; one grouped statement over the creation range, one over the resolution range.

use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::Status;

use super::{
    Count, DAY_MS, DayCount, IncidentStats, StatsFilter, date_of, day_span, fetch_rows, merge,
};
use crate::sql::{Arg, Sql};
use crate::{Db, StoreResult};

/// The filter's department and category, as conditions on `i`.
fn conditions(sql: &mut Sql, filter: &StatsFilter) -> String {
    let mut text = String::new();
    if let Some(d) = filter.department {
        text.push_str(&format!(
            " AND i.department_id = {}",
            sql.arg(Arg::I64(d.0))
        ));
    }
    if let Some(c) = filter.category {
        text.push_str(&format!(" AND i.category_id = {}", sql.arg(Arg::I64(c.0))));
    }
    text
}

/// `INDEXED BY index` on SQLite, whose planner (without statistics) would rather walk every
/// public incident through the list's visibility index; PostgreSQL chooses by itself.
fn indexed_by(db: &Db, index: &str) -> String {
    if db.is_sqlite() {
        format!(" INDEXED BY {index}")
    } else {
        String::new()
    }
}

type CreatedRow = (String, String, i64, Option<i64>, Option<i64>, i64, i64);

/// A [`CreatedRow`] read on a direct SQLite connection, each column by its name.
fn created_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CreatedRow> {
    Ok((
        r.get("status")?,
        r.get("urgency")?,
        r.get("category_id")?,
        r.get("department_id")?,
        r.get("zone_id")?,
        r.get("day")?,
        r.get("total")?,
    ))
}

/// A day and its resolutions, read on a direct SQLite connection.
fn resolved_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64)> {
    Ok((r.get("day")?, r.get("total")?))
}

/// Counts of the incidents created in the filter's range that `reporter` reported or that are
/// public, with every status, urgency and date listed as in [`super::incident_stats`].
#[tracing::instrument(skip_all, fields(reporter = reporter.0))]
pub async fn reporter_stats(
    db: &Db,
    reporter: UserId,
    filter: &StatsFilter,
) -> StoreResult<IncidentStats> {
    let (from, to) = (filter.created_from.millis(), filter.created_to.millis());
    // Two branches each: the public incidents, from a partial covering index (migration 0014),
    // and the reporter's own other incidents, from the reporter index.
    let mut created = Sql::default();
    let (lo, hi) = (created.arg(Arg::I64(from)), created.arg(Arg::I64(to)));
    let me = created.arg(Arg::I64(reporter.0));
    let cond = conditions(&mut created, filter);
    let public = indexed_by(db, "incidents_public_created_idx");
    let columns = format!(
        "i.status, i.urgency, i.category_id, i.department_id, i.zone_id, i.created_at / {DAY_MS} AS dn"
    );
    created.push(&format!(
        "SELECT status, urgency, category_id, department_id, zone_id, CAST(dn AS BIGINT) AS day, \
           CAST(COUNT(*) AS BIGINT) AS total FROM (\
           SELECT {columns} FROM incidents i{public} WHERE i.visibility = 'public' \
             AND i.created_at >= {lo} AND i.created_at < {hi}{cond} \
           UNION ALL SELECT {columns} FROM incidents i WHERE i.reporter_id = {me} \
             AND i.visibility <> 'public' AND i.created_at >= {lo} AND i.created_at < {hi}{cond}) c \
         GROUP BY status, urgency, category_id, department_id, zone_id, dn"
    ));
    let mut resolved = Sql::default();
    let (lo, hi) = (resolved.arg(Arg::I64(from)), resolved.arg(Arg::I64(to)));
    let me = resolved.arg(Arg::I64(reporter.0));
    let cond = conditions(&mut resolved, filter);
    let public = indexed_by(db, "incidents_public_resolved_idx");
    resolved.push(&format!(
        "SELECT CAST(dn AS BIGINT) AS day, CAST(COUNT(*) AS BIGINT) AS total FROM (\
           SELECT i.resolved_at / {DAY_MS} AS dn FROM incidents i{public} \
             WHERE i.visibility = 'public' AND i.resolved_at IS NOT NULL \
             AND i.resolved_at >= {lo} AND i.resolved_at < {hi}{cond} \
           UNION ALL SELECT i.resolved_at / {DAY_MS} FROM incidents i WHERE i.reporter_id = {me} \
             AND i.visibility <> 'public' AND i.resolved_at >= {lo} AND i.resolved_at < {hi}{cond}) c \
         GROUP BY dn"
    ));
    let (rows, resolved): (Vec<CreatedRow>, Vec<(i64, i64)>) = tokio::try_join!(
        fetch_rows(db, created, created_row),
        fetch_rows(db, resolved, resolved_row),
    )?;
    let mut part = IncidentStats {
        by_status: Vec::new(),
        by_urgency: Vec::new(),
        by_category: Vec::new(),
        by_department: Vec::new(),
        by_zone: Vec::new(),
        per_day: Vec::new(),
    };
    for (status, urgency, category, department, zone, day, n) in rows {
        if let Ok(key) = Status::parse("status", &status) {
            part.by_status.push(Count { key, count: n });
        }
        if let Ok(key) = Urgency::parse("urgency", &urgency) {
            part.by_urgency.push(Count { key, count: n });
        }
        part.by_category.push(Count {
            key: CategoryId(category),
            count: n,
        });
        part.by_department.push(Count {
            key: department.map(DepartmentId),
            count: n,
        });
        part.by_zone.push(Count {
            key: zone.map(ZoneId),
            count: n,
        });
        part.per_day.push(DayCount {
            date: date_of(day),
            created: n,
            resolved: 0,
        });
    }
    part.per_day
        .extend(resolved.into_iter().map(|(day, n)| DayCount {
            date: date_of(day),
            created: 0,
            resolved: n,
        }));
    let (first, last) = day_span(filter.created_from, filter.created_to);
    Ok(merge([part].into_iter(), first, last))
}
