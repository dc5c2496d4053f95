//! `/stats/staff`: workload and speed per department and assignee; whole days from the
//! per-day summary (migration 0011), overdue as of the request.

use super::*;

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
    /// Every incident counted above together (the dashboard's headline figures).
    pub total: Workload<()>,
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

/// A [`TallyRow`] read on a direct SQLite connection, each column by its name.
fn tally_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TallyRow> {
    Ok((
        r.get("department_key")?,
        r.get("assignee_key")?,
        r.get("open")?,
        r.get("overdue")?,
        r.get("acknowledged")?,
        r.get("acknowledge_ms")?,
        r.get("resolved")?,
        r.get("resolve_ms")?,
    ))
}

/// The tallies of the incidents created in the filter's range, per department and assignee,
/// read from the incidents themselves (one pass over the creation-time range). Used for the
/// parts of a day at the range's ends.
fn tally_scan_sql(scope: &ReadScope, filter: &StatsFilter, now: Timestamp) -> Sql {
    let mut sql = Sql::default();
    let range = created_range(&mut sql, filter);
    let now = sql.arg(Arg::I64(now.millis()));
    let cond = scope_conditions(&mut sql, scope, filter.department, None, "+i.department_id");
    sql.push(&format!(
        "SELECT COALESCE(i.department_id, 0) AS department_key, COALESCE(i.assignee_id, 0) AS assignee_key, \
           CAST(SUM(CASE WHEN i.status IN {OPEN} THEN 1 ELSE 0 END) AS BIGINT) AS open, \
           CAST(SUM(CASE WHEN (i.status = 'new' AND i.acknowledge_due_at < {now}) \
             OR (i.status IN {STARTED} AND i.resolve_due_at < {now}) THEN 1 ELSE 0 END) AS BIGINT) AS overdue, \
           COUNT(i.acknowledged_at) AS acknowledged, \
           CAST(COALESCE(SUM(i.acknowledged_at - i.created_at), 0) AS BIGINT) AS acknowledge_ms, \
           COUNT(i.resolved_at) AS resolved, \
           CAST(COALESCE(SUM(i.resolved_at - i.created_at), 0) AS BIGINT) AS resolve_ms \
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
    let sum = |column: &str, name: &str| format!("CAST(SUM(i.{column}) AS BIGINT) AS {name}");
    sql.push(&format!(
        "SELECT i.department_key AS department_key, i.assignee_key AS assignee_key, {}, {}, {}, {}, {}, {} \
         FROM stats_staff_daily i WHERE i.day >= {first} AND i.day <= {last}{cond} GROUP BY 1, 2",
        sum("open", "open"),
        sum("timed", "overdue"),
        sum("acknowledged", "acknowledged"),
        sum("acknowledge_ms", "acknowledge_ms"),
        sum("resolved", "resolved"),
        sum("resolve_ms", "resolve_ms"),
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
        "SELECT COALESCE(p.department_id, 0) AS department_key, COALESCE(p.assignee_id, 0) AS assignee_key, \
           COUNT(*) AS pending FROM ( \
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
    let pending_row = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get("department_key")?,
            r.get("assignee_key")?,
            r.get("pending")?,
        ))
    };
    let (mut rows, pending) = tokio::try_join!(
        fetch_rows(db, summary, tally_row),
        fetch_rows::<(i64, i64, i64)>(db, pending, pending_row),
    )?;
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
                fetch_rows(db, sql, tally_row).await
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
        "SELECT d.id AS id, d.name AS name FROM departments d WHERE 1 = 1{in_scope} ORDER BY d.id"
    ));
    let departments = fetch_rows(db, departments_sql, named);
    let (head, middle, tail, departments) = tokio::try_join!(
        scan(parts.head),
        whole(parts.whole_days),
        scan(parts.tail),
        departments
    )?;

    let mut by_department: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut by_assignee: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut total = Tally::default();
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
        total += tally;
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
        total: total.workload((), None),
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
        "SELECT id, display_name AS name FROM users WHERE id IN ({})",
        list.join(", ")
    ));
    let rows = fetch_rows(db, sql, named).await?;
    Ok(rows.into_iter().collect())
}
